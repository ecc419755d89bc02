//! The rows the store hands out, decoded from the shared schema.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::{RunState, TaskState};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::time::{from_ms, opt_from_ms};

pub(crate) fn uuid(row: &AnyRow, col: &str) -> Result<Uuid> {
    let text: String = row.try_get(col)?;
    Uuid::parse_str(&text).map_err(|e| Error::corrupt("uuid", format!("{col}: {e}")))
}

pub(crate) fn opt_uuid(row: &AnyRow, col: &str) -> Result<Option<Uuid>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|e| Error::corrupt("uuid", format!("{col}: {e}")))).transpose()
}

/// PostgreSQL answers BOOLEAN, SQLite INTEGER 0/1.
pub(crate) fn flag(row: &AnyRow, col: &str) -> Result<bool> {
    match row.try_get::<bool, _>(col) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(col)? != 0),
    }
}

pub(crate) fn json(row: &AnyRow, col: &str) -> Result<Value> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| Error::corrupt("json", format!("{col}: {e}")))
}

pub(crate) fn opt_json(row: &AnyRow, col: &str) -> Result<Option<Value>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| Error::corrupt("json", format!("{col}: {e}")))).transpose()
}

fn string_list(row: &AnyRow, col: &str) -> Result<Vec<String>> {
    serde_json::from_value(json(row, col)?).map_err(|e| Error::corrupt("string list", e))
}

pub(crate) fn time(row: &AnyRow, col: &str) -> Result<DateTime<Utc>> {
    Ok(from_ms(row.try_get::<i64, _>(col)?))
}

pub(crate) fn opt_time(row: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(opt_from_ms(row.try_get::<Option<i64>, _>(col)?))
}

pub(crate) fn int(row: &AnyRow, col: &str) -> Result<i64> {
    Ok(row.try_get::<i64, _>(col)?)
}

#[derive(Debug, Clone, PartialEq)]
pub struct DagRow {
    pub dag_id: String,
    pub fileloc: String,
    pub is_paused: bool,
    pub is_active: bool,
    pub latest_version_id: Option<Uuid>,
    pub description: Option<String>,
    pub owners: Vec<String>,
    pub tags: Vec<String>,
    pub timetable_summary: String,
    pub max_active_runs: i64,
    pub max_active_tasks: i64,
    pub last_parsed: Option<DateTime<Utc>>,
}

impl DagRow {
    pub(crate) const COLUMNS: &'static str = "dag_id, fileloc, is_paused, is_active, latest_version_id, \
        description, owners, tags, timetable_summary, max_active_runs, max_active_tasks, last_parsed_ms";

    pub(crate) fn decode(row: &AnyRow) -> Result<DagRow> {
        Ok(DagRow {
            dag_id: row.try_get("dag_id")?,
            fileloc: row.try_get("fileloc")?,
            is_paused: flag(row, "is_paused")?,
            is_active: flag(row, "is_active")?,
            latest_version_id: opt_uuid(row, "latest_version_id")?,
            description: row.try_get("description")?,
            owners: string_list(row, "owners")?,
            tags: string_list(row, "tags")?,
            timetable_summary: row.try_get("timetable_summary")?,
            max_active_runs: int(row, "max_active_runs")?,
            max_active_tasks: int(row, "max_active_tasks")?,
            last_parsed: opt_time(row, "last_parsed_ms")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DagVersionRow {
    pub id: Uuid,
    pub dag_id: String,
    pub version_number: i64,
    pub hash: String,
    /// The parsed DAG as JSON (`sluice_core::spec::DagSpec`).
    pub spec: Value,
    pub source: String,
    pub fileloc: String,
    pub created_at: DateTime<Utc>,
}

impl DagVersionRow {
    pub(crate) const COLUMNS: &'static str = "id, dag_id, version_number, hash, spec, source, fileloc, created_ms";

    pub(crate) fn decode(row: &AnyRow) -> Result<DagVersionRow> {
        Ok(DagVersionRow {
            id: uuid(row, "id")?,
            dag_id: row.try_get("dag_id")?,
            version_number: int(row, "version_number")?,
            hash: row.try_get("hash")?,
            spec: json(row, "spec")?,
            source: row.try_get("source")?,
            fileloc: row.try_get("fileloc")?,
            created_at: time(row, "created_ms")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DagRunRow {
    /// Internal key; users name a run by `(dag_id, run_id)`.
    pub id: Uuid,
    pub dag_id: String,
    pub run_id: String,
    pub version_id: Uuid,
    pub run_type: String,
    pub state: RunState,
    pub logical_date: Option<DateTime<Utc>>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub conf: Value,
    pub note: Option<String>,
    pub triggered_by: Option<String>,
    pub last_scheduling_decision: Option<DateTime<Utc>>,
    /// The backfill that created or last reran this run: its limits, not the DAG's, decide when the run starts.
    pub backfill_id: Option<i64>,
}

impl DagRunRow {
    pub(crate) const COLUMNS: &'static str = "id, dag_id, run_id, version_id, run_type, state, \
        logical_date_ms, data_interval_start_ms, data_interval_end_ms, run_after_ms, queued_at_ms, start_ms, \
        end_ms, conf, note, triggered_by, last_scheduling_decision_ms, backfill_id";

    pub(crate) fn decode(row: &AnyRow) -> Result<DagRunRow> {
        let state: String = row.try_get("state")?;
        Ok(DagRunRow {
            id: uuid(row, "id")?,
            dag_id: row.try_get("dag_id")?,
            run_id: row.try_get("run_id")?,
            version_id: uuid(row, "version_id")?,
            run_type: row.try_get("run_type")?,
            state: state.parse().map_err(|e| Error::corrupt("run state", e))?,
            logical_date: opt_time(row, "logical_date_ms")?,
            data_interval_start: opt_time(row, "data_interval_start_ms")?,
            data_interval_end: opt_time(row, "data_interval_end_ms")?,
            run_after: time(row, "run_after_ms")?,
            queued_at: opt_time(row, "queued_at_ms")?,
            start_date: opt_time(row, "start_ms")?,
            end_date: opt_time(row, "end_ms")?,
            conf: json(row, "conf")?,
            note: row.try_get("note")?,
            triggered_by: row.try_get("triggered_by")?,
            last_scheduling_decision: opt_time(row, "last_scheduling_decision_ms")?,
            backfill_id: row.try_get("backfill_id")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskInstanceRow {
    pub id: Uuid,
    pub run_pk: Uuid,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
    pub state: TaskState,
    pub try_number: i64,
    pub max_tries: i64,
    pub priority_weight: i64,
    pub queue: String,
    pub pool: String,
    pub pool_slots: i64,
    pub lease_id: Option<Uuid>,
    pub lease_until: Option<DateTime<Utc>>,
    pub worker: Option<String>,
    pub hostname: Option<String>,
    pub pid: Option<i64>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub next_retry_at: Option<DateTime<Utc>>,
    /// The return value, when the database keeps it.
    pub output: Option<Value>,
    /// Where the lake keeps the return value when it was too big for `output` (see `sluice_core::xcom`).
    pub output_uri: Option<String>,
    pub rendered: Option<Value>,
}

impl TaskInstanceRow {
    pub(crate) const COLUMNS: &'static str = "id, run_pk, dag_id, run_id, task_id, map_index, state, \
        try_number, max_tries, priority_weight, queue, pool, pool_slots, lease_id, lease_until_ms, worker, hostname, pid, \
        scheduled_ms, queued_ms, start_ms, end_ms, next_retry_ms, output, output_uri, rendered";

    pub(crate) fn decode(row: &AnyRow) -> Result<TaskInstanceRow> {
        let state: String = row.try_get("state")?;
        Ok(TaskInstanceRow {
            id: uuid(row, "id")?,
            run_pk: uuid(row, "run_pk")?,
            dag_id: row.try_get("dag_id")?,
            run_id: row.try_get("run_id")?,
            task_id: row.try_get("task_id")?,
            map_index: int(row, "map_index")?,
            state: state.parse().map_err(|e| Error::corrupt("task state", e))?,
            try_number: int(row, "try_number")?,
            max_tries: int(row, "max_tries")?,
            priority_weight: int(row, "priority_weight")?,
            queue: row.try_get("queue")?,
            pool: row.try_get("pool")?,
            pool_slots: int(row, "pool_slots")?,
            lease_id: opt_uuid(row, "lease_id")?,
            lease_until: opt_time(row, "lease_until_ms")?,
            worker: row.try_get("worker")?,
            hostname: row.try_get("hostname")?,
            pid: row.try_get("pid")?,
            scheduled_at: opt_time(row, "scheduled_ms")?,
            queued_at: opt_time(row, "queued_ms")?,
            start_date: opt_time(row, "start_ms")?,
            end_date: opt_time(row, "end_ms")?,
            next_retry_at: opt_time(row, "next_retry_ms")?,
            output: opt_json(row, "output")?,
            output_uri: row.try_get("output_uri")?,
            rendered: opt_json(row, "rendered")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskTryRow {
    pub id: Uuid,
    pub ti_id: Uuid,
    pub try_number: i64,
    pub state: TaskState,
    pub worker: Option<String>,
    pub hostname: Option<String>,
    pub pid: Option<i64>,
    pub start_date: DateTime<Utc>,
    pub end_date: Option<DateTime<Utc>>,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub rendered: Option<Value>,
    pub output: Option<Value>,
    /// Where the lake keeps the try's return value when it was too big for `output`.
    pub output_uri: Option<String>,
}

impl TaskTryRow {
    pub(crate) const COLUMNS: &'static str = "id, ti_id, try_number, state, worker, hostname, pid, start_ms, \
        end_ms, exit_code, error, rendered, output, output_uri";

    pub(crate) fn decode(row: &AnyRow) -> Result<TaskTryRow> {
        let state: String = row.try_get("state")?;
        Ok(TaskTryRow {
            id: uuid(row, "id")?,
            ti_id: uuid(row, "ti_id")?,
            try_number: int(row, "try_number")?,
            state: state.parse().map_err(|e| Error::corrupt("try state", e))?,
            worker: row.try_get("worker")?,
            hostname: row.try_get("hostname")?,
            pid: row.try_get("pid")?,
            start_date: time(row, "start_ms")?,
            end_date: opt_time(row, "end_ms")?,
            exit_code: row.try_get("exit_code")?,
            error: row.try_get("error")?,
            rendered: opt_json(row, "rendered")?,
            output: opt_json(row, "output")?,
            output_uri: row.try_get("output_uri")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    pub name: String,
    pub hostname: String,
    pub queues: Vec<String>,
    pub slots: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The named worker token it presented last; `None` for the shared token.
    pub token_name: Option<String>,
}

impl WorkerRow {
    pub(crate) fn decode(row: &AnyRow) -> Result<WorkerRow> {
        Ok(WorkerRow {
            name: row.try_get("name")?,
            hostname: row.try_get("hostname")?,
            queues: string_list(row, "queues")?,
            slots: int(row, "slots")?,
            first_seen: time(row, "first_seen_ms")?,
            last_seen: time(row, "last_seen_ms")?,
            token_name: row.try_get("token_name")?,
        })
    }
}
