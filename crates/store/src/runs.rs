//! DAG runs and their task instances: creation, the scheduler's run-level decisions and the API's reads.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::{RunState, TaskState};
use sqlx::Row;
use uuid::Uuid;

use crate::dags::{Bind, bind_all, placeholders};
use crate::error::Result;
use crate::rows::{DagRow, DagRunRow, TaskInstanceRow, TaskTryRow};
use crate::time::to_ms;
use crate::{Dialect, LockedRuns, RunTx, Store, Tx};

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub dag_id: String,
    pub run_id: String,
    pub version_id: Uuid,
    pub run_type: String,
    pub logical_date: Option<DateTime<Utc>>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub conf: Value,
    pub note: Option<String>,
    pub triggered_by: String,
    pub backfill_id: Option<i64>,
}

/// A task instance created with its run (state `none`).
#[derive(Debug, Clone)]
pub struct NewTaskInstance {
    pub task_id: String,
    pub max_tries: i64,
    pub priority_weight: i64,
    pub queue: String,
    pub pool: String,
    pub pool_slots: i64,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// `None` lists the runs of every DAG (Airflow's `~`).
    pub dag_id: Option<String>,
    /// Further restricts to these DAGs when not empty.
    pub dag_ids: Vec<String>,
    pub states: Vec<RunState>,
    pub run_types: Vec<String>,
    pub time_bounds: Vec<TimeBound>,
    pub order: RunOrder,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
    /// DAGs whose runs are left out: those the caller may not read.
    pub hidden_dag_ids: Vec<String>,
    pub backfill_id: Option<i64>,
}

/// Which task instances a list shows; empty lists and `None` do not filter.
#[derive(Debug, Clone, Default)]
pub struct TiFilter {
    pub run_pk: Option<Uuid>,
    pub dag_id: Option<String>,
    pub dag_ids: Vec<String>,
    pub run_ids: Vec<String>,
    pub states: Vec<TaskState>,
    pub task_ids: Vec<String>,
    pub pools: Vec<String>,
    pub queues: Vec<String>,
    pub limit: i64,
    pub offset: i64,
    /// DAGs whose task instances are left out: those the caller may not read.
    pub hidden_dag_ids: Vec<String>,
}

/// One side of a date range filter, such as `logical_date >= t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBound {
    pub column: RunTime,
    pub compare: Compare,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTime {
    LogicalDate,
    RunAfter,
    StartDate,
    EndDate,
}

impl RunTime {
    fn column(self) -> &'static str {
        match self {
            RunTime::LogicalDate => "logical_date_ms",
            RunTime::RunAfter => "run_after_ms",
            RunTime::StartDate => "start_ms",
            RunTime::EndDate => "end_ms",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Gte,
    Gt,
    Lte,
    Lt,
}

impl Compare {
    fn operator(self) -> &'static str {
        match self {
            Compare::Gte => ">=",
            Compare::Gt => ">",
            Compare::Lte => "<=",
            Compare::Lt => "<",
        }
    }
}

/// The orders a run list can be sorted in (ties broken by the internal id, which follows creation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunOrder {
    /// Creation order.
    #[default]
    Id,
    Time(RunTime),
    State,
    DagId,
    RunId,
}

impl RunOrder {
    fn column(self) -> &'static str {
        match self {
            RunOrder::Id => "id",
            RunOrder::Time(t) => t.column(),
            RunOrder::State => "state",
            RunOrder::DagId => "dag_id",
            RunOrder::RunId => "run_id",
        }
    }
}

/// Rows per multi-row INSERT: well under both databases' bound-parameter limits.
const INSERT_CHUNK: usize = 500;

impl Tx {
    /// Creates a run and its task instances. Returns `None`, creating nothing, when the run exists already (same
    /// `run_id` or logical date: another scheduler made it) or when `max_active_runs` active runs exist. The new
    /// run is this transaction's until it commits, so it comes as a [`RunTx`].
    pub async fn create_run(
        &mut self,
        run: &NewRun,
        tasks: &[NewTaskInstance],
        max_active_runs: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Option<RunTx<'_>>> {
        if let Some(max) = max_active_runs {
            // Lock the DAG so that two schedulers count its active runs one after the other.
            self.lock_dag(&run.dag_id).await?;
            if self.count_active_runs(&run.dag_id).await? >= max {
                return Ok(None);
            }
        }
        let id = Uuid::now_v7();
        let sql = format!(
            "INSERT INTO dag_runs (id, dag_id, run_id, version_id, run_type, state, logical_date_ms, \
                 data_interval_start_ms, data_interval_end_ms, run_after_ms, queued_at_ms, conf, note, triggered_by, \
                 backfill_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT DO NOTHING RETURNING {}",
            DagRunRow::COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(&run.dag_id)
            .bind(&run.run_id)
            .bind(run.version_id.to_string())
            .bind(&run.run_type)
            .bind(RunState::Queued.as_str())
            .bind(run.logical_date.map(to_ms))
            .bind(run.data_interval_start.map(to_ms))
            .bind(run.data_interval_end.map(to_ms))
            .bind(to_ms(run.run_after))
            .bind(to_ms(now))
            .bind(run.conf.to_string())
            .bind(&run.note)
            .bind(&run.triggered_by)
            .bind(run.backfill_id)
            .fetch_optional(&mut *self.inner)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let created = DagRunRow::decode(&row)?;
        for chunk in tasks.chunks(INSERT_CHUNK) {
            self.insert_task_instances(&created, chunk).await?;
        }
        // Nobody else sees the run before the commit: no claim can be running on it.
        Ok(Some(RunTx::new(self, created, true)))
    }

    async fn insert_task_instances(&mut self, run: &DagRunRow, tasks: &[NewTaskInstance]) -> Result<()> {
        const COLS: usize = 11;
        let values =
            (0..tasks.len()).map(|i| format!("({})", placeholders(i * COLS + 1, COLS))).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "INSERT INTO task_instances (id, run_pk, dag_id, run_id, task_id, state, max_tries, \
                 priority_weight, queue, pool, pool_slots) VALUES {values}"
        );
        let mut query = sqlx::query(&sql);
        for task in tasks {
            query = query
                .bind(Uuid::now_v7().to_string())
                .bind(run.id.to_string())
                .bind(&run.dag_id)
                .bind(&run.run_id)
                .bind(&task.task_id)
                .bind(TaskState::None.as_str())
                .bind(task.max_tries)
                .bind(task.priority_weight)
                .bind(&task.queue)
                .bind(&task.pool)
                .bind(task.pool_slots);
        }
        query.execute(&mut *self.inner).await?;
        Ok(())
    }

    /// Queued and running runs of a DAG, as its `max_active_runs` counts them: backfill runs have their own limit.
    pub async fn count_active_runs(&mut self, dag_id: &str) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM dag_runs WHERE dag_id = $1 AND state IN ($2, $3) AND backfill_id IS NULL",
        )
        .bind(dag_id)
        .bind(RunState::Queued.as_str())
        .bind(RunState::Running.as_str())
        .fetch_one(&mut *self.inner)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Running runs of a DAG outside backfills (`Some(id)`: of that backfill), for starting a queued one.
    pub async fn count_running_runs(&mut self, dag_id: &str, backfill_id: Option<i64>) -> Result<i64> {
        let sql = match backfill_id {
            None => "SELECT COUNT(*) AS n FROM dag_runs WHERE dag_id = $1 AND state = $2 AND backfill_id IS NULL",
            Some(_) => "SELECT COUNT(*) AS n FROM dag_runs WHERE dag_id = $1 AND state = $2 AND backfill_id = $3",
        };
        let mut query = sqlx::query(sql).bind(dag_id).bind(RunState::Running.as_str());
        if let Some(id) = backfill_id {
            query = query.bind(id);
        }
        Ok(query.fetch_one(&mut *self.inner).await?.try_get("n")?)
    }

    /// Locks up to `limit` unfinished runs that no other scheduler holds, least recently examined first.
    pub async fn lock_runs_to_schedule(&mut self, limit: i64) -> Result<LockedRuns<'_>> {
        let sql = format!(
            "SELECT {} FROM dag_runs WHERE state IN ($1, $2)
              ORDER BY last_scheduling_decision_ms NULLS FIRST, id LIMIT {}{}",
            DagRunRow::COLUMNS,
            limit.max(1),
            self.dialect.lock_decide_skip_locked()
        );
        let rows = sqlx::query(&sql)
            .bind(RunState::Queued.as_str())
            .bind(RunState::Running.as_str())
            .fetch_all(&mut *self.inner)
            .await?;
        let runs = rows.iter().map(DagRunRow::decode).collect::<Result<Vec<_>>>()?;
        Ok(LockedRuns { tx: self, runs: runs.into_iter() })
    }
    /// The task instances of a run, all of them or those of `task_ids`.
    pub async fn run_task_instances(
        &mut self,
        run_pk: Uuid,
        task_ids: Option<&[String]>,
    ) -> Result<Vec<TaskInstanceRow>> {
        let mut sql = format!("SELECT {} FROM task_instances WHERE run_pk = $1", TaskInstanceRow::COLUMNS);
        if let Some(ids) = task_ids {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            sql += &format!(" AND task_id IN ({})", placeholders(2, ids.len()));
        }
        let mut query = sqlx::query(&sql).bind(run_pk.to_string());
        for id in task_ids.unwrap_or_default() {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&mut *self.inner).await?;
        rows.iter().map(TaskInstanceRow::decode).collect()
    }

    /// The tasks of a run that wait for a decision: not started yet (no state), up for retry, or a sensor up for
    /// its next poke.
    pub async fn waiting_task_ids(&mut self, run_pk: Uuid) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT task_id FROM task_instances WHERE run_pk = $1 AND state IN ($2, $3, $4)")
            .bind(run_pk.to_string())
            .bind(TaskState::None.as_str())
            .bind(TaskState::UpForRetry.as_str())
            .bind(TaskState::UpForReschedule.as_str())
            .fetch_all(&mut *self.inner)
            .await?;
        rows.iter().map(|row| Ok(row.try_get("task_id")?)).collect()
    }

    /// Whether any task instance of the run (of one of its tasks, with `task_id`) is not finished yet.
    pub async fn has_unfinished_tis(&mut self, run_pk: Uuid, task_id: Option<&str>) -> Result<bool> {
        let unfinished = unfinished_states();
        let first_state = if task_id.is_some() { 3 } else { 2 };
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM task_instances WHERE run_pk = $1{} AND state IN ({})) AS unfinished",
            if task_id.is_some() { " AND task_id = $2" } else { "" },
            placeholders(first_state, unfinished.len()),
        );
        let mut query = sqlx::query(&sql).bind(run_pk.to_string());
        if let Some(task_id) = task_id {
            query = query.bind(task_id);
        }
        for state in &unfinished {
            query = query.bind(*state);
        }
        crate::rows::flag(&query.fetch_one(&mut *self.inner).await?, "unfinished")
    }

    /// Queued and running task instances of a DAG across its runs (for `max_active_tasks`), counted up to `cap`:
    /// the caller only needs to know how much room is left below it. The DAG's row stays locked until the
    /// transaction ends, so that decisions queueing tasks of its runs count one at a time, for this limit and for its
    /// tasks' `max_active_tis_per_dag` (as a pool's row does for the pool). The count is a statement of its own:
    /// one that waited for the lock would still read with the snapshot it took before waiting.
    pub async fn count_active_tis_of_dag(&mut self, dag_id: &str, cap: i64) -> Result<i64> {
        // SQLite has one writer at a time: nothing to lock.
        if self.dialect == Dialect::Postgres {
            let lock = format!("SELECT dag_id FROM dags WHERE dag_id = $1{}", self.dialect.lock_decide());
            sqlx::query(&lock).bind(dag_id).execute(&mut *self.inner).await?;
        }
        let sql = format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM task_instances WHERE dag_id = $1 AND state IN ($2, $3) LIMIT {}) AS active",
            cap.max(0)
        );
        let row = sqlx::query(&sql)
            .bind(dag_id)
            .bind(TaskState::Queued.as_str())
            .bind(TaskState::Running.as_str())
            .fetch_one(&mut *self.inner)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn get_dag(&mut self, dag_id: &str) -> Result<Option<DagRow>> {
        let sql = format!("SELECT {} FROM dags WHERE dag_id = $1", DagRow::COLUMNS);
        let row = sqlx::query(&sql).bind(dag_id).fetch_optional(&mut *self.inner).await?;
        row.as_ref().map(DagRow::decode).transpose()
    }
}

impl RunTx<'_> {
    pub async fn set_run_state(&mut self, state: RunState, now: DateTime<Utc>) -> Result<()> {
        let sql = match state {
            RunState::Queued => "UPDATE dag_runs SET state = $1, queued_at_ms = $2 WHERE id = $3",
            RunState::Running => "UPDATE dag_runs SET state = $1, start_ms = COALESCE(start_ms, $2) WHERE id = $3",
            RunState::Success | RunState::Failed => "UPDATE dag_runs SET state = $1, end_ms = $2 WHERE id = $3",
        };
        sqlx::query(sql)
            .bind(state.as_str())
            .bind(to_ms(now))
            .bind(self.run.id.to_string())
            .execute(&mut *self.tx.inner)
            .await?;
        self.run.state = state;
        Ok(())
    }

    /// Puts a finished or running run back in the queue after some of its tasks were cleared: the scheduler starts
    /// it again as if new (Airflow resets its start and end too).
    pub async fn requeue_run(&mut self, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE dag_runs SET state = $1, queued_at_ms = $2, start_ms = NULL, end_ms = NULL,
                    last_scheduling_decision_ms = NULL
              WHERE id = $3",
        )
        .bind(RunState::Queued.as_str())
        .bind(to_ms(now))
        .bind(self.run.id.to_string())
        .execute(&mut *self.tx.inner)
        .await?;
        self.run.state = RunState::Queued;
        Ok(())
    }

    pub async fn set_run_note(&mut self, note: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE dag_runs SET note = $1 WHERE id = $2")
            .bind(note)
            .bind(self.run.id.to_string())
            .execute(&mut *self.tx.inner)
            .await?;
        Ok(())
    }

    /// Makes a task instance ready to run again (Airflow's clear): state back to none, with `max_tries` raised so
    /// that its retries count afresh, and without its outputs. Only an instance in one of `from` changes; returns
    /// whether it did.
    pub async fn reset_task_instance(&mut self, ti_id: Uuid, max_tries: i64, from: &[TaskState]) -> Result<bool> {
        // Its outputs go with the state, as Airflow deletes a cleared task instance's XComs: what runs downstream
        // afterwards reads the next try's.
        let sql = format!(
            "UPDATE task_instances SET state = $1, max_tries = $2, next_retry_ms = NULL, lease_id = NULL,
                    lease_until_ms = NULL, output = NULL, output_uri = NULL
              WHERE id = $3 AND run_pk = $4 AND state IN ({})",
            placeholders(5, from.len())
        );
        let mut query = sqlx::query(&sql)
            .bind(TaskState::None.as_str())
            .bind(max_tries)
            .bind(ti_id.to_string())
            .bind(self.run.id.to_string());
        for state in from {
            query = query.bind(state.as_str());
        }
        if query.execute(&mut *self.tx.inner).await?.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM xcom WHERE ti_id = $1").bind(ti_id.to_string()).execute(&mut *self.tx.inner).await?;
        Ok(true)
    }

    pub async fn touch_run(&mut self, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE dag_runs SET last_scheduling_decision_ms = $1 WHERE id = $2")
            .bind(to_ms(now))
            .bind(self.run.id.to_string())
            .execute(&mut *self.tx.inner)
            .await?;
        Ok(())
    }
}

fn unfinished_states() -> Vec<&'static str> {
    TaskState::ALL.iter().filter(|s| !s.is_finished()).map(TaskState::as_str).collect()
}

impl Store {
    /// The data interval of the DAG's latest scheduled run, if any.
    pub async fn last_scheduled_interval(&self, dag_id: &str) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        let row = sqlx::query(
            "SELECT data_interval_start_ms, data_interval_end_ms FROM dag_runs
              WHERE dag_id = $1 AND run_type = 'scheduled' AND logical_date_ms IS NOT NULL
              ORDER BY logical_date_ms DESC LIMIT 1",
        )
        .bind(dag_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let start: Option<i64> = row.try_get("data_interval_start_ms")?;
        let end: Option<i64> = row.try_get("data_interval_end_ms")?;
        Ok(start.zip(end).map(|(s, e)| (crate::from_ms(s), crate::from_ms(e))))
    }

    /// Active, unpaused DAGs with a parsed version: the ones whose schedules the scheduler follows.
    pub async fn schedulable_dags(&self) -> Result<Vec<DagRow>> {
        let sql = format!(
            "SELECT {} FROM dags WHERE is_active = $1 AND is_paused = $2 AND latest_version_id IS NOT NULL
              ORDER BY dag_id",
            DagRow::COLUMNS
        );
        let rows = sqlx::query(&sql).bind(true).bind(false).fetch_all(self.pool()).await?;
        rows.iter().map(DagRow::decode).collect()
    }

    pub async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<Option<DagRunRow>> {
        let sql = format!("SELECT {} FROM dag_runs WHERE dag_id = $1 AND run_id = $2", DagRunRow::COLUMNS);
        let row = sqlx::query(&sql).bind(dag_id).bind(run_id).fetch_optional(self.pool()).await?;
        row.as_ref().map(DagRunRow::decode).transpose()
    }

    /// A page of runs in the filter's order, and the number that match.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<(Vec<DagRunRow>, i64)> {
        let mut conditions = vec!["1 = 1".to_string()];
        let mut binds = Vec::new();
        if let Some(dag_id) = &filter.dag_id {
            binds.push(Bind::Text(dag_id.clone()));
            conditions.push(format!("dag_id = ${}", binds.len()));
        }
        let lists = [
            ("dag_id", filter.dag_ids.clone()),
            ("state", filter.states.iter().map(|s| s.as_str().to_owned()).collect()),
            ("run_type", filter.run_types.clone()),
        ];
        for (column, values) in lists {
            if values.is_empty() {
                continue;
            }
            let start = binds.len() + 1;
            let n = values.len();
            binds.extend(values.into_iter().map(Bind::Text));
            conditions.push(format!("{column} IN ({})", placeholders(start, n)));
        }
        for bound in &filter.time_bounds {
            binds.push(Bind::Int(to_ms(bound.at)));
            conditions.push(format!("{} {} ${}", bound.column.column(), bound.compare.operator(), binds.len()));
        }
        if let Some(backfill_id) = filter.backfill_id {
            binds.push(Bind::Int(backfill_id));
            conditions.push(format!("backfill_id = ${}", binds.len()));
        }
        crate::dags::push_hidden("dag_id", &filter.hidden_dag_ids, &mut conditions, &mut binds);
        let where_clause = conditions.join(" AND ");
        let count_sql = format!("SELECT COUNT(*) AS n FROM dag_runs WHERE {where_clause}");
        let total: i64 = bind_all(sqlx::query(&count_sql), &binds).fetch_one(self.pool()).await?.try_get("n")?;
        let direction = if filter.descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {} FROM dag_runs WHERE {where_clause} ORDER BY {} {direction}, id {direction} LIMIT {} OFFSET {}",
            DagRunRow::COLUMNS,
            filter.order.column(),
            filter.limit.max(0),
            filter.offset.max(0)
        );
        let rows = bind_all(sqlx::query(&sql), &binds).fetch_all(self.pool()).await?;
        Ok((rows.iter().map(DagRunRow::decode).collect::<Result<Vec<_>>>()?, total))
    }

    /// Deletes a run with its task instances, tries and logs; `false` when there is none. A worker still running
    /// one of its tasks loses the lease and kills it.
    pub async fn delete_run(&self, dag_id: &str, run_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM dag_runs WHERE dag_id = $1 AND run_id = $2")
            .bind(dag_id)
            .bind(run_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn get_run_by_pk(&self, run_pk: Uuid) -> Result<Option<DagRunRow>> {
        let sql = format!("SELECT {} FROM dag_runs WHERE id = $1", DagRunRow::COLUMNS);
        let row = sqlx::query(&sql).bind(run_pk.to_string()).fetch_optional(self.pool()).await?;
        row.as_ref().map(DagRunRow::decode).transpose()
    }

    /// Whether a run has unfinished task instances, and whether any of them wait in `scheduled` for room. Each
    /// answer stops at the first matching row, so this stays cheap however wide the run is.
    pub async fn run_progress(&self, run_pk: Uuid) -> Result<(bool, bool)> {
        let unfinished = unfinished_states();
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM task_instances WHERE run_pk = $1 AND state IN ({})) AS unfinished,
                    EXISTS (SELECT 1 FROM task_instances WHERE run_pk = $1 AND state = $2) AS waiting",
            placeholders(3, unfinished.len())
        );
        let mut query = sqlx::query(&sql).bind(run_pk.to_string()).bind(TaskState::Scheduled.as_str());
        for state in &unfinished {
            query = query.bind(*state);
        }
        let row = query.fetch_one(self.pool()).await?;
        Ok((crate::rows::flag(&row, "unfinished")?, crate::rows::flag(&row, "waiting")?))
    }

    /// A page of task instances in `(dag_id, run_id, task_id)` order, and the number that match.
    pub async fn list_task_instances(&self, filter: &TiFilter) -> Result<(Vec<TaskInstanceRow>, i64)> {
        let mut conditions = vec!["1 = 1".to_string()];
        let mut binds = Vec::new();
        let single = [("run_pk", filter.run_pk.map(|pk| pk.to_string())), ("dag_id", filter.dag_id.clone())];
        for (column, value) in single {
            if let Some(value) = value {
                binds.push(Bind::Text(value));
                conditions.push(format!("{column} = ${}", binds.len()));
            }
        }
        let lists = [
            ("dag_id", filter.dag_ids.clone()),
            ("run_id", filter.run_ids.clone()),
            ("state", filter.states.iter().map(|s| s.as_str().to_owned()).collect()),
            ("task_id", filter.task_ids.clone()),
            ("pool", filter.pools.clone()),
            ("queue", filter.queues.clone()),
        ];
        for (column, values) in lists {
            if values.is_empty() {
                continue;
            }
            let start = binds.len() + 1;
            let n = values.len();
            binds.extend(values.into_iter().map(Bind::Text));
            conditions.push(format!("{column} IN ({})", placeholders(start, n)));
        }
        crate::dags::push_hidden("dag_id", &filter.hidden_dag_ids, &mut conditions, &mut binds);
        let where_clause = conditions.join(" AND ");
        let count_sql = format!("SELECT COUNT(*) AS n FROM task_instances WHERE {where_clause}");
        let total: i64 = bind_all(sqlx::query(&count_sql), &binds).fetch_one(self.pool()).await?.try_get("n")?;
        let sql = format!(
            "SELECT {} FROM task_instances WHERE {where_clause}
              ORDER BY dag_id, run_id, task_id, map_index LIMIT {} OFFSET {}",
            TaskInstanceRow::COLUMNS,
            filter.limit.max(0),
            filter.offset.max(0)
        );
        let rows = bind_all(sqlx::query(&sql), &binds).fetch_all(self.pool()).await?;
        Ok((rows.iter().map(TaskInstanceRow::decode).collect::<Result<Vec<_>>>()?, total))
    }

    pub async fn get_task_instance(
        &self,
        run_pk: Uuid,
        task_id: &str,
        map_index: i64,
    ) -> Result<Option<TaskInstanceRow>> {
        let sql = format!(
            "SELECT {} FROM task_instances WHERE run_pk = $1 AND task_id = $2 AND map_index = $3",
            TaskInstanceRow::COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(run_pk.to_string())
            .bind(task_id)
            .bind(map_index)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(TaskInstanceRow::decode).transpose()
    }

    /// Every try of a task instance, first try first.
    pub async fn list_tries(&self, ti_id: Uuid) -> Result<Vec<TaskTryRow>> {
        let sql = format!("SELECT {} FROM task_tries WHERE ti_id = $1 ORDER BY try_number", TaskTryRow::COLUMNS);
        let rows = sqlx::query(&sql).bind(ti_id.to_string()).fetch_all(self.pool()).await?;
        rows.iter().map(TaskTryRow::decode).collect()
    }

    pub async fn get_try(&self, ti_id: Uuid, try_number: i64) -> Result<Option<TaskTryRow>> {
        let sql = format!("SELECT {} FROM task_tries WHERE ti_id = $1 AND try_number = $2", TaskTryRow::COLUMNS);
        let row = sqlx::query(&sql).bind(ti_id.to_string()).bind(try_number).fetch_optional(self.pool()).await?;
        row.as_ref().map(TaskTryRow::decode).transpose()
    }
}
