//! Task instances and their tries: queueing, claiming by workers, leases, and the end of a try.
//!
//! A task instance runs only while it holds a lease: `state = 'running'` with a `lease_id` naming its current
//! try. Claiming moves `queued → running` under a row lock; every later change about the try is conditional on
//! the same `lease_id`, so a worker that lost its lease (or a second report) changes nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::TaskState;
use sqlx::Row;
use uuid::Uuid;

use crate::dags::placeholders;
use crate::error::Result;
use crate::rows::{TaskInstanceRow, uuid};
use crate::time::{from_ms, to_ms};
use crate::{Store, Tx};

/// A task instance a worker has just claimed, with the id of its new try.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub ti: TaskInstanceRow,
    pub lease_id: Uuid,
}

/// How a try ended and what that makes of its task instance.
#[derive(Debug, Clone)]
pub struct TryEnd {
    /// `success` or `failed`: the try's own outcome.
    pub try_state: TaskState,
    /// The task instance's next state: `success`, `failed` or `up_for_retry`.
    pub ti_state: TaskState,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub output: Option<Value>,
    pub next_retry_at: Option<DateTime<Utc>>,
}

impl Tx {
    /// Moves task instances to `state`, stamping the time column that goes with it. Only instances in one of
    /// `from` change, so a decision based on a stale read cannot overwrite a newer state.
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
              WHERE state IN ({}) AND id IN ({})",
            stamp.map(|s| s.replace("{now}", "$2")).unwrap_or_default(),
            placeholders(from_start, from.len()),
            placeholders(ids_start, ids.len())
        );
        let mut query = sqlx::query(&sql).bind(state.as_str());
        if stamp.is_some() {
            query = query.bind(to_ms(now));
        }
        for s in from {
            query = query.bind(s.as_str());
        }
        for id in ids {
            query = query.bind(id.to_string());
        }
        Ok(query.execute(&mut *self.inner).await?.rows_affected())
    }

    /// Locks up to `limit` queued task instances of `queues`, highest priority first, for a worker to claim with
    /// [`Tx::start_try`]. On PostgreSQL, rows locked by a concurrent claim are skipped, never shared.
    pub async fn lock_queued(&mut self, queues: &[String], limit: i64) -> Result<Vec<TaskInstanceRow>> {
        if queues.is_empty() || limit <= 0 {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM task_instances WHERE state = $1 AND queue IN ({})
              ORDER BY priority_weight DESC, queued_ms LIMIT {}{}",
            TaskInstanceRow::COLUMNS,
            placeholders(2, queues.len()),
            limit,
            self.dialect.lock_skip_locked()
        );
        let mut query = sqlx::query(&sql).bind(TaskState::Queued.as_str());
        for q in queues {
            query = query.bind(q);
        }
        query.fetch_all(&mut *self.inner).await?.iter().map(TaskInstanceRow::decode).collect()
    }

    /// Starts the next try of a task instance locked by [`Tx::lock_queued`]: it becomes `running`, held by a new
    /// lease whose id is the try's id, and what the try runs (`rendered`) is stored with it. `None` if the task
    /// instance is no longer queued.
    pub async fn start_try(
        &mut self,
        ti: &TaskInstanceRow,
        rendered: &Value,
        worker: &str,
        hostname: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<ClaimedTask>> {
        let lease_id = Uuid::now_v7();
        let rendered_text = rendered.to_string();
        let started = sqlx::query(
            "UPDATE task_instances SET state = $1, try_number = try_number + 1, lease_id = $2, lease_until_ms = $3,
                    worker = $4, hostname = $5, pid = NULL, start_ms = $6, end_ms = NULL, next_retry_ms = NULL,
                    rendered = $7
              WHERE id = $8 AND state = $9",
        )
        .bind(TaskState::Running.as_str())
        .bind(lease_id.to_string())
        .bind(to_ms(lease_until))
        .bind(worker)
        .bind(hostname)
        .bind(to_ms(now))
        .bind(&rendered_text)
        .bind(ti.id.to_string())
        .bind(TaskState::Queued.as_str())
        .execute(&mut *self.inner)
        .await?;
        if started.rows_affected() != 1 {
            return Ok(None);
        }
        let try_number = ti.try_number + 1;
        sqlx::query(
            "INSERT INTO task_tries (id, ti_id, try_number, state, worker, hostname, start_ms, rendered)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(lease_id.to_string())
        .bind(ti.id.to_string())
        .bind(try_number)
        .bind(TaskState::Running.as_str())
        .bind(worker)
        .bind(hostname)
        .bind(to_ms(now))
        .bind(&rendered_text)
        .execute(&mut *self.inner)
        .await?;
        // The row as stored: times at the database's millisecond precision.
        let stored = |t: DateTime<Utc>| from_ms(to_ms(t));
        let ti = TaskInstanceRow {
            state: TaskState::Running,
            try_number,
            lease_id: Some(lease_id),
            lease_until: Some(stored(lease_until)),
            worker: Some(worker.to_string()),
            hostname: Some(hostname.to_string()),
            pid: None,
            start_date: Some(stored(now)),
            end_date: None,
            next_retry_at: None,
            rendered: Some(rendered.clone()),
            ..ti.clone()
        };
        Ok(Some(ClaimedTask { ti, lease_id }))
    }

    /// Locks a running task instance if `lease_id` still holds it; `None` means the lease is stale.
    pub async fn lock_leased_ti(&mut self, ti_id: Uuid, lease_id: Uuid) -> Result<Option<TaskInstanceRow>> {
        let sql = format!(
            "SELECT {} FROM task_instances WHERE id = $1 AND lease_id = $2 AND state = $3{}",
            TaskInstanceRow::COLUMNS,
            self.dialect.lock_wait()
        );
        let row = sqlx::query(&sql)
            .bind(ti_id.to_string())
            .bind(lease_id.to_string())
            .bind(TaskState::Running.as_str())
            .fetch_optional(&mut *self.inner)
            .await?;
        row.as_ref().map(TaskInstanceRow::decode).transpose()
    }

    /// Ends the try that holds `ti` and moves the task instance on. The caller holds the lock from
    /// [`Tx::lock_leased_ti`].
    pub async fn end_try(&mut self, ti: &TaskInstanceRow, end: &TryEnd, now: DateTime<Utc>) -> Result<()> {
        let output = end.output.as_ref().map(Value::to_string);
        if let Some(lease_id) = ti.lease_id {
            sqlx::query(
                "UPDATE task_tries SET state = $1, end_ms = $2, exit_code = $3, error = $4, output = $5 WHERE id = $6",
            )
            .bind(end.try_state.as_str())
            .bind(to_ms(now))
            .bind(end.exit_code)
            .bind(&end.error)
            .bind(&output)
            .bind(lease_id.to_string())
            .execute(&mut *self.inner)
            .await?;
        }
        sqlx::query(
            "UPDATE task_instances SET state = $1, end_ms = $2, output = $3, next_retry_ms = $4,
                    lease_id = NULL, lease_until_ms = NULL
              WHERE id = $5",
        )
        .bind(end.ti_state.as_str())
        .bind(to_ms(now))
        .bind(&output)
        .bind(end.next_retry_at.map(to_ms))
        .bind(ti.id.to_string())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Ends the open try of a task instance that is being taken away from its worker (run timed out or marked),
    /// without a retry. The worker learns on its next heartbeat and kills the task.
    pub async fn abandon_try(&mut self, ti: &TaskInstanceRow, reason: &str, now: DateTime<Utc>) -> Result<()> {
        if let Some(lease_id) = ti.lease_id {
            sqlx::query("UPDATE task_tries SET state = $1, end_ms = $2, error = $3 WHERE id = $4 AND end_ms IS NULL")
                .bind(TaskState::Failed.as_str())
                .bind(to_ms(now))
                .bind(reason)
                .bind(lease_id.to_string())
                .execute(&mut *self.inner)
                .await?;
        }
        Ok(())
    }

    /// Upstream outputs for templates: `task_id → output` of the finished task instances of a run.
    pub async fn run_outputs(&mut self, run_pk: Uuid) -> Result<Vec<(String, Value)>> {
        let rows = sqlx::query("SELECT task_id, output FROM task_instances WHERE run_pk = $1 AND output IS NOT NULL")
            .bind(run_pk.to_string())
            .fetch_all(&mut *self.inner)
            .await?;
        rows.iter()
            .map(|r| {
                let task_id: String = r.try_get("task_id")?;
                let text: String = r.try_get("output")?;
                let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                Ok((task_id, value))
            })
            .collect()
    }

    pub async fn variables(&mut self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT key, val FROM variables").fetch_all(&mut *self.inner).await?;
        rows.iter().map(|r| Ok((r.try_get("key")?, r.try_get("val")?))).collect()
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

impl Tx {
    /// Tells every server listening on this database, when this transaction commits, that tasks were queued
    /// (PostgreSQL; with SQLite there is one server, which wakes its workers in-process).
    pub async fn announce_work(&mut self) -> Result<()> {
        if self.dialect == crate::Dialect::Postgres {
            sqlx::query("SELECT pg_notify($1, '')").bind(crate::logs::WORK_CHANNEL).execute(&mut *self.inner).await?;
        }
        Ok(())
    }

    /// Queues up to `limit` scheduled task instances of a run, highest priority first, within the open slots of
    /// their pools (Airflow's rule: a pool's queued and running task instances never exceed its slots; a task
    /// naming a pool that does not exist waits until it does). Returns their ids.
    pub async fn queue_scheduled(&mut self, run_pk: Uuid, limit: i64, now: DateTime<Utc>) -> Result<Vec<Uuid>> {
        let mut open: HashMap<String, i64> = HashMap::new();
        let mut ids = Vec::new();
        // Each pass leaves out the pools found full by the one before, so that a full pool's high-priority tasks
        // do not hold back the rest of the run; there are at most as many passes as pools.
        loop {
            let wanted = limit - ids.len() as i64;
            if wanted <= 0 {
                break;
            }
            let full: Vec<&String> = open.iter().filter(|(_, n)| **n <= 0).map(|(pool, _)| pool).collect();
            let mut sql = "SELECT id, pool FROM task_instances WHERE run_pk = $1 AND state = $2".to_owned();
            if !full.is_empty() {
                sql += &format!(" AND pool NOT IN ({})", placeholders(3, full.len()));
            }
            sql += &format!(" ORDER BY priority_weight DESC, scheduled_ms LIMIT {wanted}");
            let mut query = sqlx::query(&sql).bind(run_pk.to_string()).bind(TaskState::Scheduled.as_str());
            for pool in &full {
                query = query.bind(pool.as_str());
            }
            let candidates = query.fetch_all(&mut *self.inner).await?;
            let mut found_full = false;
            let mut picked = Vec::new();
            for row in &candidates {
                let pool: String = row.try_get("pool")?;
                let slots = match open.get_mut(&pool) {
                    Some(slots) => slots,
                    None => {
                        let slots = self.open_pool_slots(&pool).await?;
                        open.entry(pool).or_insert(slots)
                    }
                };
                if *slots > 0 {
                    *slots -= 1;
                    picked.push(uuid(row, "id")?);
                } else {
                    found_full = true;
                }
            }
            // Queued now, so that the next pass does not pick them again.
            self.set_ti_states(&picked, &[TaskState::Scheduled], TaskState::Queued, now).await?;
            ids.extend(picked);
            if !found_full {
                break;
            }
        }
        Ok(ids)
    }

    /// Slots of a pool not taken by queued or running task instances; 0 for a pool that does not exist. The
    /// pool's row stays locked until the transaction ends, so that concurrent schedulers count one at a time.
    async fn open_pool_slots(&mut self, pool: &str) -> Result<i64> {
        let sql = format!(
            "SELECT p.slots, (SELECT COUNT(*) FROM task_instances t WHERE t.pool = p.name AND t.state IN ($2, $3))
                    AS taken
               FROM pools p WHERE p.name = $1{}",
            self.dialect.lock_wait()
        );
        let row = sqlx::query(&sql)
            .bind(pool)
            .bind(TaskState::Queued.as_str())
            .bind(TaskState::Running.as_str())
            .fetch_optional(&mut *self.inner)
            .await?;
        let Some(row) = row else {
            tracing::warn!(pool, "task instances wait for pool {pool:?}, which does not exist");
            return Ok(0);
        };
        let (slots, taken): (i64, i64) = (row.try_get("slots")?, row.try_get("taken")?);
        Ok(if slots < 0 { i64::MAX } else { slots - taken })
    }

    pub async fn get_run_by_pk(&mut self, run_pk: Uuid) -> Result<Option<crate::DagRunRow>> {
        let sql = format!("SELECT {} FROM dag_runs WHERE id = $1", crate::DagRunRow::COLUMNS);
        let row = sqlx::query(&sql).bind(run_pk.to_string()).fetch_optional(&mut *self.inner).await?;
        row.as_ref().map(crate::DagRunRow::decode).transpose()
    }

    pub async fn get_dag_version(&mut self, id: Uuid) -> Result<Option<crate::DagVersionRow>> {
        let sql = format!("SELECT {} FROM dag_versions WHERE id = $1", crate::DagVersionRow::COLUMNS);
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&mut *self.inner).await?;
        row.as_ref().map(crate::DagVersionRow::decode).transpose()
    }
}
