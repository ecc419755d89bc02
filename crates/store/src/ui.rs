//! Reads for the dashboard: the newest runs of many DAGs at once, the task instances of a page of runs, every try
//! of a run, the workers' load, and the change feed (rows whose `updated_ms` moved).
//!
//! Each answer is one or two statements whatever the number of DAGs, runs or tasks shown. "The newest runs of
//! each DAG" is one small indexed range read per DAG (`dag_runs_dag_recent`) within one statement, which both
//! databases answer without reading older runs.
//!
//! `updated_ms` is kept by database triggers (migration 0013) whenever a run's or a task instance's state, try
//! or times change, so every process that changes them is covered without any code of its own. PostgreSQL stamps
//! the row with `clock_timestamp()` when the statement changes it, which is earlier than its commit: readers of
//! the feed must look back a little (see `sluice_api::ui::feed`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sluice_core::{RunState, TaskState};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::dags::placeholders;
use crate::error::{Error, Result};
use crate::rows::{DagRunRow, uuid};
use crate::time::{from_ms, opt_from_ms};
use crate::{Dialect, Store};

/// The grid's cell of one task instance.
#[derive(Debug, Clone, PartialEq)]
pub struct GridCell {
    pub run_pk: Uuid,
    pub task_id: String,
    pub map_index: i64,
    pub state: TaskState,
    pub try_number: i64,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

/// One try of a task instance, or the try a queued task instance waits to start (`started == false`).
#[derive(Debug, Clone, PartialEq)]
pub struct TryTimes {
    pub task_id: String,
    pub map_index: i64,
    pub try_number: i64,
    pub state: TaskState,
    /// Known for the task instance's current try only: older tries' queueing is not kept.
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

/// A run as the change feed reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunChange {
    pub id: Uuid,
    pub dag_id: String,
    pub run_id: String,
    pub state: RunState,
    pub run_type: String,
    pub logical_date: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub updated_ms: i64,
}

/// A task instance as the change feed reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TiChange {
    pub id: Uuid,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
    pub state: TaskState,
    pub try_number: i64,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub updated_ms: i64,
}

/// What changed after a point of the feed, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub runs: Vec<RunChange>,
    pub task_instances: Vec<TiChange>,
}

fn task_state(row: &AnyRow, col: &str) -> Result<TaskState> {
    let text: String = row.try_get(col)?;
    text.parse().map_err(|e| Error::corrupt("task state", e))
}

fn opt_time(row: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(opt_from_ms(row.try_get::<Option<i64>, _>(col)?))
}

/// `<select> WHERE dag_id = $i <tail>` for each of `dag_count` DAGs, as one statement: each DAG's rows are an
/// indexed range read, where one statement over all the DAGs' rows would read their whole history. PostgreSQL
/// joins a list of ids laterally (planning a `UNION ALL` of a thousand members takes it a second); SQLite, which
/// has no `LATERAL`, plans a `UNION ALL` quickly.
fn each_dag(dialect: Dialect, select: &str, tail: &str, dag_count: usize) -> String {
    match dialect {
        Dialect::Postgres => {
            let ids = (1..=dag_count).map(|i| format!("(${i})")).collect::<Vec<_>>().join(", ");
            format!(
                "SELECT x.* FROM (VALUES {ids}) AS d (wanted) CROSS JOIN LATERAL \
                 ({select} WHERE dag_id = d.wanted {tail}) AS x"
            )
        }
        Dialect::Sqlite => (1..=dag_count)
            .map(|i| format!("SELECT * FROM ({select} WHERE dag_id = ${i} {tail})"))
            .collect::<Vec<_>>()
            .join(" UNION ALL "),
    }
}

impl Store {
    /// The newest `per_dag` runs (by `run_after`, newest first) of each of `dag_ids`, in one statement.
    pub async fn recent_runs(&self, dag_ids: &[String], per_dag: i64) -> Result<Vec<DagRunRow>> {
        if dag_ids.is_empty() || per_dag <= 0 {
            return Ok(Vec::new());
        }
        let select = format!("SELECT {} FROM dag_runs", DagRunRow::COLUMNS);
        let tail = format!("ORDER BY run_after_ms DESC, id DESC LIMIT {per_dag}");
        let sql = each_dag(self.dialect(), &select, &tail, dag_ids.len());
        let rows = bind_ids(sqlx::query(&sql), dag_ids).fetch_all(self.pool()).await?;
        let mut runs = rows.iter().map(DagRunRow::decode).collect::<Result<Vec<_>>>()?;
        runs.sort_by(|a, b| (&a.dag_id, b.run_after, b.id).cmp(&(&b.dag_id, a.run_after, a.id)));
        Ok(runs)
    }

    /// The data interval of each DAG's latest scheduled run (DAGs without one are absent), in one statement.
    pub async fn last_scheduled_intervals(
        &self,
        dag_ids: &[String],
    ) -> Result<HashMap<String, (DateTime<Utc>, DateTime<Utc>)>> {
        if dag_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let select = "SELECT dag_id, data_interval_start_ms, data_interval_end_ms FROM dag_runs";
        let tail = "AND run_type = 'scheduled' AND logical_date_ms IS NOT NULL ORDER BY logical_date_ms DESC LIMIT 1";
        let sql = each_dag(self.dialect(), select, tail, dag_ids.len());
        let rows = bind_ids(sqlx::query(&sql), dag_ids).fetch_all(self.pool()).await?;
        let mut intervals = HashMap::new();
        for row in &rows {
            let start: Option<i64> = row.try_get("data_interval_start_ms")?;
            let end: Option<i64> = row.try_get("data_interval_end_ms")?;
            if let Some((start, end)) = start.zip(end) {
                intervals.insert(row.try_get("dag_id")?, (from_ms(start), from_ms(end)));
            }
        }
        Ok(intervals)
    }

    /// The task instances of these runs, for the grid.
    pub async fn grid_cells(&self, run_pks: &[Uuid]) -> Result<Vec<GridCell>> {
        if run_pks.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT run_pk, task_id, map_index, state, try_number, queued_ms, start_ms, end_ms
               FROM task_instances WHERE run_pk IN ({}) ORDER BY run_pk, task_id, map_index",
            placeholders(1, run_pks.len())
        );
        let mut query = sqlx::query(&sql);
        for pk in run_pks {
            query = query.bind(pk.to_string());
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(GridCell {
                    run_pk: uuid(r, "run_pk")?,
                    task_id: r.try_get("task_id")?,
                    map_index: r.try_get("map_index")?,
                    state: task_state(r, "state")?,
                    try_number: r.try_get("try_number")?,
                    queued_at: opt_time(r, "queued_ms")?,
                    start_date: opt_time(r, "start_ms")?,
                    end_date: opt_time(r, "end_ms")?,
                })
            })
            .collect()
    }

    /// Every try of every task instance of a run, and the next try of those queued now, by start.
    pub async fn run_tries(&self, run_pk: Uuid) -> Result<Vec<TryTimes>> {
        let rows = sqlx::query(
            "SELECT * FROM (
                SELECT ti.task_id, ti.map_index, t.try_number, t.state, t.start_ms, t.end_ms,
                       CASE WHEN t.try_number = ti.try_number THEN ti.queued_ms END AS queued_ms
                  FROM task_tries t JOIN task_instances ti ON ti.id = t.ti_id
                 WHERE ti.run_pk = $1
                UNION ALL
                SELECT task_id, map_index, try_number + 1 AS try_number, state, NULL AS start_ms,
                       NULL AS end_ms, queued_ms
                  FROM task_instances WHERE run_pk = $1 AND state = 'queued'
             ) AS tries
             ORDER BY start_ms IS NULL, start_ms, task_id, map_index, try_number",
        )
        .bind(run_pk.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TryTimes {
                    task_id: r.try_get("task_id")?,
                    map_index: r.try_get("map_index")?,
                    try_number: r.try_get("try_number")?,
                    state: task_state(r, "state")?,
                    queued_at: opt_time(r, "queued_ms")?,
                    start_date: opt_time(r, "start_ms")?,
                    end_date: opt_time(r, "end_ms")?,
                })
            })
            .collect()
    }

    /// How many task instances each worker runs now.
    pub async fn running_per_worker(&self) -> Result<HashMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT worker, COUNT(*) AS n FROM task_instances
              WHERE state = 'running' AND worker IS NOT NULL GROUP BY worker",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("worker")?, r.try_get("n")?))).collect()
    }

    /// The newest `updated_ms` of any run or task instance: where a change feed starts.
    pub async fn latest_change_ms(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COALESCE((SELECT MAX(updated_ms) FROM dag_runs), 0) AS runs,
                    COALESCE((SELECT MAX(updated_ms) FROM task_instances), 0) AS tis",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<i64, _>("runs")?.max(row.try_get("tis")?))
    }

    /// Runs and task instances whose `updated_ms` is after `after_ms`, oldest change first.
    pub async fn changes_since(&self, after_ms: i64) -> Result<Changes> {
        let runs = sqlx::query(
            "SELECT id, dag_id, run_id, state, run_type, logical_date_ms, queued_at_ms, start_ms, end_ms, updated_ms
               FROM dag_runs WHERE updated_ms > $1 ORDER BY updated_ms, id",
        )
        .bind(after_ms)
        .fetch_all(self.pool())
        .await?;
        let tis = sqlx::query(
            "SELECT id, dag_id, run_id, task_id, map_index, state, try_number, queued_ms, start_ms, end_ms,
                    updated_ms
               FROM task_instances WHERE updated_ms > $1 ORDER BY updated_ms, id",
        )
        .bind(after_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(Changes {
            runs: runs.iter().map(decode_run_change).collect::<Result<_>>()?,
            task_instances: tis.iter().map(decode_ti_change).collect::<Result<_>>()?,
        })
    }
}

fn bind_ids<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ids: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for id in ids {
        query = query.bind(id.as_str());
    }
    query
}

fn decode_run_change(r: &AnyRow) -> Result<RunChange> {
    let state: String = r.try_get("state")?;
    Ok(RunChange {
        id: uuid(r, "id")?,
        dag_id: r.try_get("dag_id")?,
        run_id: r.try_get("run_id")?,
        state: state.parse().map_err(|e| Error::corrupt("run state", e))?,
        run_type: r.try_get("run_type")?,
        logical_date: opt_time(r, "logical_date_ms")?,
        queued_at: opt_time(r, "queued_at_ms")?,
        start_date: opt_time(r, "start_ms")?,
        end_date: opt_time(r, "end_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

fn decode_ti_change(r: &AnyRow) -> Result<TiChange> {
    Ok(TiChange {
        id: uuid(r, "id")?,
        dag_id: r.try_get("dag_id")?,
        run_id: r.try_get("run_id")?,
        task_id: r.try_get("task_id")?,
        map_index: r.try_get("map_index")?,
        state: task_state(r, "state")?,
        try_number: r.try_get("try_number")?,
        queued_at: opt_time(r, "queued_ms")?,
        start_date: opt_time(r, "start_ms")?,
        end_date: opt_time(r, "end_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}
