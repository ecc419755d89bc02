//! Task instances and their tries: queueing, claiming by workers, leases, and the end of a try.
//!
//! A task instance runs only while it holds a lease: `state = 'running'` with a `lease_id` naming its current
//! try. Claiming moves `queued → running` under a row lock ([`crate::Claim`]); every later change about the try is
//! conditional on the same `lease_id`, so a worker that lost its lease (or a second report) changes nothing.
//!
//! Changes to task instances are methods of [`RunTx`], the guard of a locked run (see [`crate::tx`]), and each
//! statement is restricted to that run. The one exception is [`LeafTry`], which ends a leaf task's try without
//! its run's lock.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::TaskState;
use sluice_core::xcom::XComValue;
use sqlx::Row;
use uuid::Uuid;

use crate::assets::TryRef;
use crate::dags::placeholders;
use crate::error::Result;
use crate::logs::LogEntry;
use crate::rows::{TaskInstanceRow, int, uuid};
use crate::time::to_ms;
use crate::xcom::{put_xcom, stored_value, value_columns};
use crate::{NewAssetEvent, Reads, RunTx, Store, Tx};

/// How many instances of one task may be queued or running at once (`max_active_tis_per_dag`,
/// `max_active_tis_per_dagrun`); `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskLimit {
    pub per_dag: Option<i64>,
    pub per_run: Option<i64>,
}

/// A task instance a worker has just claimed, with the id of its new try.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub ti: TaskInstanceRow,
    pub lease_id: Uuid,
}

/// How a try ended and what that makes of its task instance.
#[derive(Debug, Clone)]
pub struct TryEnd {
    /// `success`, `failed` or `skipped`: the try's own outcome; `up_for_reschedule` while a sensor's try waits for
    /// its next poke.
    pub try_state: TaskState,
    /// The task instance's next state: `success`, `failed`, `skipped`, `up_for_retry` or `up_for_reschedule`.
    pub ti_state: TaskState,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    /// The return value.
    pub output: Option<XComValue>,
    /// The values pushed under other keys: each replaces the task instance's entry of its key.
    pub xcom: Vec<(String, XComValue)>,
    /// When the next try (or a sensor's next poke) is due.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// The task's callbacks this end fires, recorded with it.
    pub alerts: Vec<crate::NewNotification>,
}

/// What a try says about data, stored in the transaction that records its end: its last log lines, the quality
/// reports (whatever the outcome) and, for a try that succeeded, one asset event per output.
#[derive(Debug, Clone)]
pub struct TryRecord {
    /// The try's id, which is the lease's.
    pub lease_id: Uuid,
    pub from: TryRef,
    /// The DAG's owner, who owns the assets written for the first time.
    pub owner: Option<String>,
    pub logs: Vec<LogEntry>,
    pub quality: Vec<QualityEntry>,
    pub events: Vec<NewAssetEvent>,
}

/// A quality task's report on one asset.
#[derive(Debug, Clone)]
pub struct QualityEntry {
    pub uri: String,
    pub status: String,
    pub report: Value,
}

impl Tx {
    /// Stores what a try says about data (see [`TryRecord`]).
    pub async fn record_try(&mut self, record: &TryRecord, now: DateTime<Utc>) -> Result<()> {
        self.insert_log_lines(record.lease_id, &record.logs).await?;
        for q in &record.quality {
            self.record_quality_report(&record.from, &q.uri, &q.status, &q.report, now).await?;
        }
        if !record.events.is_empty() {
            self.record_asset_events(&record.from, record.owner.as_deref(), &record.events, now).await?;
        }
        Ok(())
    }
}

impl RunTx<'_> {
    /// Moves task instances of this run to `state`, stamping the time column that goes with it. Only instances in
    /// one of `from` change, so a decision based on a stale read cannot overwrite a newer state.
    pub async fn set_ti_states(
        &mut self,
        ids: &[Uuid],
        from: &[TaskState],
        state: TaskState,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        if from.contains(&TaskState::Queued) && state != TaskState::Queued && !self.excludes_claims {
            return Err(crate::Error::LockOrder(
                "queued task instances are taken back only under a lock that excludes claims \
                 (Tx::lock_run_excluding_claims or RunTx::exclude_claims)",
            ));
        }
        // The time column that goes with the new state; `{now}` is the bound current time.
        let stamp = match state {
            TaskState::Scheduled => Some(", scheduled_ms = {now}"),
            TaskState::Queued => Some(", queued_ms = {now}"),
            TaskState::Skipped | TaskState::UpstreamFailed | TaskState::Removed => {
                Some(", start_ms = COALESCE(start_ms, {now}), end_ms = {now}")
            }
            TaskState::Success | TaskState::Failed => Some(", end_ms = {now}"),
            _ => None,
        };
        let from_start = if stamp.is_some() { 3 } else { 2 };
        let ids_start = from_start + from.len();
        let sql = format!(
            "UPDATE task_instances SET state = $1{}, lease_id = NULL, lease_until_ms = NULL
              WHERE run_pk = ${} AND state IN ({}) AND id IN ({})",
            stamp.map(|s| s.replace("{now}", "$2")).unwrap_or_default(),
            from_start,
            placeholders(from_start + 1, from.len()),
            placeholders(ids_start + 1, ids.len())
        );
        let mut query = sqlx::query(&sql).bind(state.as_str());
        if stamp.is_some() {
            query = query.bind(to_ms(now));
        }
        query = query.bind(self.run.id.to_string());
        for s in from {
            query = query.bind(s.as_str());
        }
        for id in ids {
            query = query.bind(id.to_string());
        }
        Ok(query.execute(&mut *self.tx.inner).await?.rows_affected())
    }

    /// Locks a running task instance of this run if `lease_id` still holds it; `None` means the lease is stale.
    pub async fn lock_leased_ti(&mut self, ti_id: Uuid, lease_id: Uuid) -> Result<Option<TaskInstanceRow>> {
        let run_pk = self.run.id;
        lock_leased(self.tx, ti_id, lease_id, Some(run_pk)).await
    }

    /// Ends the try that holds `ti` and moves the task instance on. The caller holds the lock from
    /// [`RunTx::lock_leased_ti`].
    pub async fn end_try(&mut self, ti: &TaskInstanceRow, end: &TryEnd, now: DateTime<Utc>) -> Result<()> {
        end_try(self.tx, ti, end, now).await
    }
}

/// Locks a running task instance if `lease_id` still holds it (and it belongs to `run_pk`, when given).
async fn lock_leased(
    tx: &mut Tx,
    ti_id: Uuid,
    lease_id: Uuid,
    run_pk: Option<Uuid>,
) -> Result<Option<TaskInstanceRow>> {
    let sql = format!(
        "SELECT {} FROM task_instances WHERE id = $1 AND lease_id = $2 AND state = $3{}{}",
        TaskInstanceRow::COLUMNS,
        if run_pk.is_some() { " AND run_pk = $4" } else { "" },
        tx.dialect.lock_wait()
    );
    let mut query =
        sqlx::query(&sql).bind(ti_id.to_string()).bind(lease_id.to_string()).bind(TaskState::Running.as_str());
    if let Some(run_pk) = run_pk {
        query = query.bind(run_pk.to_string());
    }
    let row = query.fetch_optional(&mut *tx.inner).await?;
    row.as_ref().map(TaskInstanceRow::decode).transpose()
}

/// Ends the try holding `ti`, locked by the caller: the task instance's row first, then the try's, the order
/// [`RunTx::end_running`] uses too.
async fn end_try(tx: &mut Tx, ti: &TaskInstanceRow, end: &TryEnd, now: DateTime<Utc>) -> Result<()> {
    let (output, output_uri) = value_columns(end.output.as_ref());
    sqlx::query(
        "UPDATE task_instances SET state = $1, end_ms = $2, output = $3, output_uri = $4, next_retry_ms = $5,
                lease_id = NULL, lease_until_ms = NULL
          WHERE id = $6",
    )
    .bind(end.ti_state.as_str())
    .bind(to_ms(now))
    .bind(&output)
    .bind(&output_uri)
    .bind(end.next_retry_at.map(to_ms))
    .bind(ti.id.to_string())
    .execute(&mut *tx.inner)
    .await?;
    if let Some(lease_id) = ti.lease_id {
        sqlx::query(
            "UPDATE task_tries SET state = $1, end_ms = $2, exit_code = $3, error = $4, output = $5, output_uri = $6
              WHERE id = $7",
        )
        .bind(end.try_state.as_str())
        .bind(to_ms(now))
        .bind(end.exit_code)
        .bind(&end.error)
        .bind(&output)
        .bind(&output_uri)
        .bind(lease_id.to_string())
        .execute(&mut *tx.inner)
        .await?;
    }
    for (key, value) in &end.xcom {
        put_xcom(tx, ti.id, key, value, now).await?;
    }
    if !end.alerts.is_empty() {
        tx.enqueue_notifications(&end.alerts, now).await?;
    }
    Ok(())
}

impl RunTx<'_> {
    /// Takes running task instances of this run away from their workers (run timed out or marked): they move to
    /// `state` and their open tries end as failed with `reason`, without a retry. The worker learns on its next
    /// heartbeat and kills the task. Task instances first, then tries, the order a try's end uses: a leaf's end
    /// that commits first wins, and this changes neither its state nor its try. Returns how many changed.
    pub async fn end_running(
        &mut self,
        ids: &[Uuid],
        state: TaskState,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let changed = self.set_ti_states(ids, &[TaskState::Running], state, now).await?;
        if ids.is_empty() {
            return Ok(changed);
        }
        let sql = format!(
            "UPDATE task_tries SET state = $1, end_ms = $2, error = $3 WHERE end_ms IS NULL AND ti_id IN ({})",
            placeholders(4, ids.len())
        );
        let mut query = sqlx::query(&sql).bind(TaskState::Failed.as_str()).bind(to_ms(now)).bind(reason);
        for id in ids {
            query = query.bind(id.to_string());
        }
        query.execute(&mut *self.tx.inner).await?;
        Ok(changed)
    }
}

/// The running try of a task with nothing downstream, locked by its lease without its run's lock.
///
/// Ending a leaf's try makes nothing ready, so it needs no decision about the run; taking the run's lock would
/// make every report of a wide run wait for the others. This guard owns its transaction and can only record the
/// try's data, end the try and commit: after this one task instance's row it locks nothing but the row of its own
/// try, the order every path keeps (run, then task instance, then try), so it cannot be part of a deadlock. The
/// run is settled afterwards under its lock (the scheduler's `settle_run`).
pub struct LeafTry {
    tx: Tx,
    ti: TaskInstanceRow,
}

impl Tx {
    /// Locks a leaf task's running instance if `lease_id` still holds it; `None` means the lease is stale (the
    /// transaction is then rolled back).
    pub async fn lock_leaf_try(mut self, ti_id: Uuid, lease_id: Uuid) -> Result<Option<LeafTry>> {
        let ti = lock_leased(&mut self, ti_id, lease_id, None).await?;
        Ok(ti.map(|ti| LeafTry { tx: self, ti }))
    }
}

impl LeafTry {
    pub fn ti(&self) -> &TaskInstanceRow {
        &self.ti
    }

    pub(crate) fn tx_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }

    pub async fn record_try(&mut self, record: &TryRecord, now: DateTime<Utc>) -> Result<()> {
        self.tx.record_try(record, now).await
    }

    /// Ends the try, moves the task instance on and commits.
    pub async fn end_and_commit(mut self, end: &TryEnd, now: DateTime<Utc>) -> Result<TaskInstanceRow> {
        end_try(&mut self.tx, &self.ti, end, now).await?;
        self.tx.commit().await?;
        Ok(self.ti)
    }
}

impl Reads<'_> {
    /// The outputs (return values) of `task_ids` in a run, as `(task_id, map_index, output)` in task and
    /// `map_index` order: a mapped task has one per instance that produced one.
    pub async fn run_outputs(&mut self, run_pk: Uuid, task_ids: &[&str]) -> Result<Vec<(String, i64, XComValue)>> {
        if task_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT task_id, map_index, output AS value, output_uri AS lake_uri FROM task_instances
              WHERE run_pk = $1 AND (output IS NOT NULL OR output_uri IS NOT NULL) AND task_id IN ({})
              ORDER BY task_id, map_index",
            placeholders(2, task_ids.len())
        );
        let mut query = sqlx::query(&sql).bind(run_pk.to_string());
        for task_id in task_ids {
            query = query.bind(*task_id);
        }
        let rows = query.fetch_all(&mut *self.tx.inner).await?;
        rows.iter().map(|r| Ok((r.try_get("task_id")?, r.try_get("map_index")?, stored_value(r)?))).collect()
    }

    /// Every variable, for templates that read `var`: the secrets backends' and the database's, a backend's
    /// winning for a key both have.
    pub async fn variables(&mut self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT key, val FROM variables").fetch_all(&mut *self.tx.inner).await?;
        let mut all = std::collections::BTreeMap::new();
        for row in rows {
            let stored: String = row.try_get("val")?;
            all.insert(row.try_get::<String, _>("key")?, self.tx.secrets.open(&stored)?);
        }
        all.extend(self.tx.backends.variables()?);
        Ok(all.into_iter().collect())
    }
}

impl Store {
    /// Running task instances whose lease ran out (their worker stopped heartbeating), oldest first. Not locked:
    /// each is locked afterwards, run first, the order every path uses, and checked again.
    pub async fn expired_leases(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<TaskInstanceRow>> {
        let sql = format!(
            "SELECT {} FROM task_instances WHERE state = $1 AND lease_until_ms < $2 ORDER BY lease_until_ms LIMIT {}",
            TaskInstanceRow::COLUMNS,
            limit.max(1)
        );
        let rows = sqlx::query(&sql).bind(TaskState::Running.as_str()).bind(to_ms(now)).fetch_all(self.pool()).await?;
        rows.iter().map(TaskInstanceRow::decode).collect()
    }

    /// Extends a lease. `false` when `lease_id` no longer holds the task (the worker must stop it).
    pub async fn extend_lease(&self, ti_id: Uuid, lease_id: Uuid, until: DateTime<Utc>) -> Result<bool> {
        let done =
            sqlx::query("UPDATE task_instances SET lease_until_ms = $1 WHERE id = $2 AND lease_id = $3 AND state = $4")
                .bind(to_ms(until))
                .bind(ti_id.to_string())
                .bind(lease_id.to_string())
                .bind(TaskState::Running.as_str())
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn get_task_instance_by_id(&self, ti_id: Uuid) -> Result<Option<TaskInstanceRow>> {
        let sql = format!("SELECT {} FROM task_instances WHERE id = $1", TaskInstanceRow::COLUMNS);
        let row = sqlx::query(&sql).bind(ti_id.to_string()).fetch_optional(self.pool()).await?;
        row.as_ref().map(TaskInstanceRow::decode).transpose()
    }
}

impl RunTx<'_> {
    /// Expands a mapped task: its placeholder instance (`map_index` -1, state `none`) becomes instance 0 and
    /// instances 1..`length` are added beside it, all scheduled, with the placeholder's settings. Returns whether
    /// the placeholder was still waiting (if not, nothing changes).
    pub async fn expand_mapped(
        &mut self,
        placeholder: &TaskInstanceRow,
        length: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let scheduled = TaskState::Scheduled.as_str();
        let done = sqlx::query(
            "UPDATE task_instances SET map_index = 0, state = $1, scheduled_ms = $2
              WHERE id = $3 AND run_pk = $4 AND map_index = -1 AND state = $5",
        )
        .bind(scheduled)
        .bind(to_ms(now))
        .bind(placeholder.id.to_string())
        .bind(self.run.id.to_string())
        .bind(TaskState::None.as_str())
        .execute(&mut *self.tx.inner)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        // Chunks stay below SQLite's limit of bound parameters.
        const COLS: usize = 13;
        let indexes: Vec<i64> = (1..length).collect();
        for chunk in indexes.chunks(1000) {
            let values = (0..chunk.len())
                .map(|i| format!("({})", placeholders(i * COLS + 1, COLS)))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO task_instances (id, run_pk, dag_id, run_id, task_id, map_index, state, scheduled_ms, \
                     max_tries, priority_weight, queue, pool, pool_slots) VALUES {values}"
            );
            let mut query = sqlx::query(&sql);
            for map_index in chunk {
                query = query
                    .bind(Uuid::now_v7().to_string())
                    .bind(self.run.id.to_string())
                    .bind(&placeholder.dag_id)
                    .bind(&placeholder.run_id)
                    .bind(&placeholder.task_id)
                    .bind(*map_index)
                    .bind(scheduled)
                    .bind(to_ms(now))
                    .bind(placeholder.max_tries)
                    .bind(placeholder.priority_weight)
                    .bind(&placeholder.queue)
                    .bind(&placeholder.pool)
                    .bind(placeholder.pool_slots);
            }
            query.execute(&mut *self.tx.inner).await?;
        }
        Ok(true)
    }

    /// Queues up to `limit` scheduled task instances of this run, highest priority first, within the open slots of
    /// their pools (Airflow's rule: the `pool_slots` of a pool's queued and running task instances never exceed its
    /// slots; a task naming a pool that does not exist waits until it does) and the `limits` of their tasks, and
    /// announces the work (see [`Tx::commit`]). Returns their ids.
    pub async fn queue_scheduled(
        &mut self,
        limit: i64,
        limits: &HashMap<String, TaskLimit>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>> {
        let run_pk = self.run.id;
        let mut open: HashMap<String, i64> = HashMap::new();
        let mut room: HashMap<String, i64> = HashMap::new();
        let mut ids = Vec::new();
        // Each pass leaves out what the one before found no room for (a pool's instances needing more slots than
        // it has open, a task at its limit), so that those high-priority tasks do not hold back the rest of the
        // run; every pass leaves out more, so there are few.
        loop {
            let wanted = limit - ids.len() as i64;
            if wanted <= 0 {
                break;
            }
            let at_limit: Vec<&String> = room.iter().filter(|(_, n)| **n <= 0).map(|(task, _)| task).collect();
            let mut sql =
                "SELECT id, task_id, pool, pool_slots FROM task_instances WHERE run_pk = $1 AND state = $2".to_owned();
            let mut next = 3;
            for _ in &open {
                sql += &format!(" AND NOT (pool = ${next} AND pool_slots > ${})", next + 1);
                next += 2;
            }
            if !at_limit.is_empty() {
                sql += &format!(" AND task_id NOT IN ({})", placeholders(next, at_limit.len()));
            }
            sql += &format!(" ORDER BY priority_weight DESC, scheduled_ms LIMIT {wanted}");
            let mut query = sqlx::query(&sql).bind(run_pk.to_string()).bind(TaskState::Scheduled.as_str());
            for (pool, slots) in &open {
                query = query.bind(pool.as_str()).bind(*slots);
            }
            for task in &at_limit {
                query = query.bind(task.as_str());
            }
            let candidates = query.fetch_all(&mut *self.tx.inner).await?;
            let mut passed_over = false;
            let mut picked = Vec::new();
            for row in &candidates {
                let (task_id, pool): (String, String) = (row.try_get("task_id")?, row.try_get("pool")?);
                let needs = int(row, "pool_slots")?;
                if let Some(task_limit) = limits.get(&task_id)
                    && !room.contains_key(&task_id)
                {
                    let left = self.task_room(&task_id, task_limit).await?;
                    room.insert(task_id.clone(), left);
                }
                if room.get(&task_id).is_some_and(|left| *left <= 0) {
                    passed_over = true;
                    continue;
                }
                if !open.contains_key(&pool) {
                    let slots = self.open_pool_slots(&pool).await?;
                    open.insert(pool.clone(), slots);
                }
                let slots = open.entry(pool).or_default();
                if *slots < needs {
                    passed_over = true;
                    continue;
                }
                *slots -= needs;
                if let Some(left) = room.get_mut(&task_id) {
                    *left -= 1;
                }
                picked.push(uuid(row, "id")?);
            }
            // Queued now, so that the next pass does not pick them again.
            self.set_ti_states(&picked, &[TaskState::Scheduled], TaskState::Queued, now).await?;
            ids.extend(picked);
            if !passed_over || (candidates.len() as i64) < wanted {
                break;
            }
        }
        if !ids.is_empty() {
            self.tx.announce_work().await?;
        }
        Ok(ids)
    }

    /// How many more instances of a task may be queued now under its limits: its queued and running instances
    /// are counted across the DAG's runs and in this run.
    async fn task_room(&mut self, task_id: &str, limit: &TaskLimit) -> Result<i64> {
        let mut left = i64::MAX;
        let active = [TaskState::Queued.as_str(), TaskState::Running.as_str()];
        if let Some(per_dag) = limit.per_dag {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM task_instances WHERE dag_id = $1 AND task_id = $2 AND state IN ($3, $4)",
            )
            .bind(&self.run.dag_id)
            .bind(task_id)
            .bind(active[0])
            .bind(active[1])
            .fetch_one(&mut *self.tx.inner)
            .await?;
            left = left.min(per_dag - int(&row, "n")?);
        }
        if let Some(per_run) = limit.per_run {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM task_instances WHERE run_pk = $1 AND task_id = $2 AND state IN ($3, $4)",
            )
            .bind(self.run.id.to_string())
            .bind(task_id)
            .bind(active[0])
            .bind(active[1])
            .fetch_one(&mut *self.tx.inner)
            .await?;
            left = left.min(per_run - int(&row, "n")?);
        }
        Ok(left)
    }

    /// Slots of a pool not taken by queued or running task instances; 0 for a pool that does not exist. The
    /// pool's row stays locked until the transaction ends, so that concurrent schedulers count one at a time.
    async fn open_pool_slots(&mut self, pool: &str) -> Result<i64> {
        // Two statements: on PostgreSQL a statement that waited for the pool's lock still reads with the snapshot
        // it took before waiting, so a count in the locking statement would miss what the holder of the lock had
        // just queued; the next statement reads after that commit.
        let sql = format!("SELECT slots FROM pools WHERE name = $1{}", self.tx.dialect.lock_wait());
        let row = sqlx::query(&sql).bind(pool).fetch_optional(&mut *self.tx.inner).await?;
        let Some(row) = row else {
            tracing::warn!(pool, "task instances wait for pool {pool:?}, which does not exist");
            return Ok(0);
        };
        let slots: i64 = row.try_get("slots")?;
        let taken = sqlx::query(
            "SELECT CAST(COALESCE(SUM(pool_slots), 0) AS BIGINT) AS taken FROM task_instances
              WHERE pool = $1 AND state IN ($2, $3)",
        )
        .bind(pool)
        .bind(TaskState::Queued.as_str())
        .bind(TaskState::Running.as_str())
        .fetch_one(&mut *self.tx.inner)
        .await?;
        let taken: i64 = taken.try_get("taken")?;
        Ok(if slots < 0 { i64::MAX } else { slots - taken })
    }
}

impl Reads<'_> {
    /// The states of a DAG's task instances of `task_id` (every map index), or without it the state of its run, at
    /// `logical_date`: what an external-task sensor waits for.
    pub async fn external_states(
        &mut self,
        dag_id: &str,
        task_id: Option<&str>,
        logical_date: DateTime<Utc>,
    ) -> Result<Vec<TaskState>> {
        let query = match task_id {
            Some(task_id) => sqlx::query(
                "SELECT ti.state AS state FROM task_instances ti JOIN dag_runs r ON r.id = ti.run_pk
                  WHERE r.dag_id = $1 AND r.logical_date_ms = $2 AND ti.task_id = $3",
            )
            .bind(dag_id)
            .bind(to_ms(logical_date))
            .bind(task_id),
            None => sqlx::query("SELECT state FROM dag_runs WHERE dag_id = $1 AND logical_date_ms = $2")
                .bind(dag_id)
                .bind(to_ms(logical_date)),
        };
        let rows = query.fetch_all(&mut *self.tx.inner).await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                state
                    .parse()
                    .map_err(|e: sluice_core::state::UnknownState| crate::Error::corrupt("state", e.to_string()))
            })
            .collect()
    }

    /// The run `depends_on_past` looks back at from one at `logical_date`: the latest earlier run, or with
    /// `scheduled_only` (a DAG with catchup) the latest earlier one not triggered by hand, as Airflow does.
    pub async fn previous_run(
        &mut self,
        dag_id: &str,
        logical_date: DateTime<Utc>,
        scheduled_only: bool,
    ) -> Result<Option<Uuid>> {
        let sql = format!(
            "SELECT id FROM dag_runs WHERE dag_id = $1 AND logical_date_ms < $2{} \
              ORDER BY logical_date_ms DESC LIMIT 1",
            if scheduled_only { " AND run_type <> 'manual'" } else { "" }
        );
        let row = sqlx::query(&sql).bind(dag_id).bind(to_ms(logical_date)).fetch_optional(&mut *self.tx.inner).await?;
        row.as_ref().map(|row| uuid(row, "id")).transpose()
    }

    /// A run's task instances of `task_ids`: how many there are, and how many of them neither succeeded nor were
    /// skipped (unfinished ones included).
    pub async fn count_unsuccessful(&mut self, run_pk: Uuid, task_ids: &[&str]) -> Result<(i64, i64)> {
        if task_ids.is_empty() {
            return Ok((0, 0));
        }
        let sql = format!(
            "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN state IN ($2, $3) THEN 0 ELSE 1 END), 0) AS unsuccessful
               FROM task_instances WHERE run_pk = $1 AND task_id IN ({})",
            placeholders(4, task_ids.len())
        );
        let mut query = sqlx::query(&sql)
            .bind(run_pk.to_string())
            .bind(TaskState::Success.as_str())
            .bind(TaskState::Skipped.as_str());
        for task_id in task_ids {
            query = query.bind(*task_id);
        }
        let row = query.fetch_one(&mut *self.tx.inner).await?;
        Ok((int(&row, "total")?, int(&row, "unsuccessful")?))
    }

    /// Whether a task has an instance in a run of its DAG before `logical_date`.
    pub async fn ran_before(&mut self, dag_id: &str, task_id: &str, logical_date: DateTime<Utc>) -> Result<bool> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM task_instances t JOIN dag_runs r ON r.id = t.run_pk
                             WHERE r.dag_id = $1 AND t.task_id = $2 AND r.logical_date_ms < $3) AS found",
        )
        .bind(dag_id)
        .bind(task_id)
        .bind(to_ms(logical_date))
        .fetch_one(&mut *self.tx.inner)
        .await?;
        crate::rows::flag(&row, "found")
    }

    pub async fn get_run_by_pk(&mut self, run_pk: Uuid) -> Result<Option<crate::DagRunRow>> {
        let sql = format!("SELECT {} FROM dag_runs WHERE id = $1", crate::DagRunRow::COLUMNS);
        let row = sqlx::query(&sql).bind(run_pk.to_string()).fetch_optional(&mut *self.tx.inner).await?;
        row.as_ref().map(crate::DagRunRow::decode).transpose()
    }

    pub async fn get_dag_version(&mut self, id: Uuid) -> Result<Option<crate::DagVersionRow>> {
        let sql = format!("SELECT {} FROM dag_versions WHERE id = $1", crate::DagVersionRow::COLUMNS);
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&mut *self.tx.inner).await?;
        row.as_ref().map(crate::DagVersionRow::decode).transpose()
    }
}
