//! A worker's claim: queued task instances locked, their runs first, and their tries started.
//!
//! The claim keeps the lock order (run, then task instance) without making workers take turns on a run. One
//! statement picks the candidates without locking them, share-locks their runs (`FOR KEY SHARE SKIP LOCKED`), then
//! locks and re-checks the task instances (`FOR UPDATE SKIP LOCKED`). Claims share a run's lock with each other,
//! and each task instance goes to one of them, and with the decisions that move the run forward (reports, settling,
//! the scheduler's pass, which lock it `FOR NO KEY UPDATE`); a run held by a decision that takes queued tasks back
//! (a manual mark, a timeout: `FOR UPDATE`) is skipped this time. A claim never waits for a lock, so it cannot be
//! part of a deadlock. The candidates are more than the claim asks for, so that concurrent claims that
//! see the same first candidates still find the ones after them.

use std::ops::Deref;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::TaskState;
use uuid::Uuid;

use crate::dags::placeholders;
use crate::error::Result;
use crate::rows::{TaskInstanceRow, uuid};
use crate::tasks::ClaimedTask;
use crate::time::{from_ms, to_ms};
use crate::{Reads, Tx};

/// Candidates a claim of `limit` task instances looks at: enough that claims running at the same time, which all
/// see the same first candidates, still find work among the next ones.
fn candidates(limit: i64) -> i64 {
    limit.saturating_mul(4).saturating_add(16)
}

/// Queued task instances locked by a claim, with their runs share-locked. Between the locks and the start of the
/// tries it only reads ([`Claim::reads`], to render what each try runs): locking a run now, after task instances,
/// is the order that deadlocks, and a claim has no way to.
pub struct Claim<'t> {
    tx: &'t mut Tx,
    queued: Vec<QueuedTi>,
}

/// A queued task instance locked by a [`Claim`]: the only kind whose try can start.
#[derive(Debug)]
pub struct QueuedTi(TaskInstanceRow);

impl Deref for QueuedTi {
    type Target = TaskInstanceRow;
    fn deref(&self) -> &TaskInstanceRow {
        &self.0
    }
}

impl Tx {
    /// Locks up to `limit` queued task instances of `queues`, highest priority first, for a worker (see the
    /// module's comment for the order of the locks). On PostgreSQL, rows locked by a concurrent claim are skipped,
    /// never shared.
    pub async fn claim_queued(&mut self, queues: &[String], limit: i64) -> Result<Claim<'_>> {
        if queues.is_empty() || limit <= 0 {
            return Ok(Claim { tx: self, queued: Vec::new() });
        }
        let order = "ORDER BY priority_weight DESC, queued_ms";
        let sql = format!(
            "WITH candidates AS {materialized}(
                 SELECT id, run_pk FROM task_instances WHERE state = $1 AND queue IN ({queues}) {order} LIMIT {wide}),
             runs AS {materialized}(
                 SELECT id FROM dag_runs WHERE id IN (SELECT run_pk FROM candidates){share})
             SELECT {columns} FROM task_instances
              WHERE id IN (SELECT id FROM candidates) AND run_pk IN (SELECT id FROM runs) AND state = $1
              {order} LIMIT {limit}{lock}",
            materialized = self.dialect.materialized(),
            queues = placeholders(2, queues.len()),
            wide = candidates(limit),
            share = self.dialect.lock_share_skip_locked(),
            columns = TaskInstanceRow::COLUMNS,
            lock = self.dialect.lock_skip_locked(),
        );
        let mut query = sqlx::query(&sql).bind(TaskState::Queued.as_str());
        for q in queues {
            query = query.bind(q);
        }
        let rows = query.fetch_all(&mut *self.inner).await?;
        let queued = rows.iter().map(|r| TaskInstanceRow::decode(r).map(QueuedTi)).collect::<Result<_>>()?;
        Ok(Claim { tx: self, queued })
    }
}

impl Claim<'_> {
    pub fn reads(&mut self) -> Reads<'_> {
        self.tx.reads()
    }

    /// Records the `on_execute` alerts of the tries this claim starts.
    pub async fn enqueue_notifications(&mut self, alerts: &[crate::NewNotification], now: DateTime<Utc>) -> Result<()> {
        if !alerts.is_empty() {
            self.tx.enqueue_notifications(alerts, now).await?;
        }
        Ok(())
    }

    pub(crate) fn tx_mut(&mut self) -> &mut Tx {
        self.tx
    }

    /// The task instances claimed, highest priority first.
    pub fn take_queued(&mut self) -> Vec<QueuedTi> {
        std::mem::take(&mut self.queued)
    }

    /// Starts the next try of a claimed task instance: it becomes `running`, held by a new lease whose id is the
    /// try's id, and what the try runs (`rendered`) is stored with it. `None` if it is no longer queued.
    pub async fn start_try(
        &mut self,
        ti: QueuedTi,
        rendered: &Value,
        worker: &str,
        hostname: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<ClaimedTask>> {
        let QueuedTi(ti) = ti;
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
        .execute(&mut *self.tx.inner)
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
        .execute(&mut *self.tx.inner)
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
            ..ti
        };
        Ok(Some(ClaimedTask { ti, lease_id }))
    }

    /// Resumes the try of a sensor in `reschedule` mode whose last poke found its condition false: the task
    /// instance runs again under that same try (its number and the start of its first poke kept, as Airflow keeps
    /// `try_number` across reschedules), and its log goes on. `None`, changing nothing, when the task instance has
    /// no such try: [`Claim::start_try`] starts a new one.
    ///
    /// The lease id stays the try's id, as everywhere, so a poke's calls are fenced against every other try. Pokes
    /// of one try share it: a late call of an earlier poke is refused while the task instance waits (only a
    /// `running` one accepts calls), but one that arrives while a later poke runs (a report retried for longer than
    /// the poke interval) is taken as that poke's. Its worst outcome is a poke more or less.
    /// A cleared task instance has no due time any more (the clear resets it) and starts a new try.
    pub async fn resume_try(
        &mut self,
        ti: &QueuedTi,
        worker: &str,
        hostname: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ClaimedTask>> {
        if ti.next_retry_at.is_none() {
            return Ok(None);
        }
        let open = sqlx::query("SELECT id FROM task_tries WHERE ti_id = $1 AND try_number = $2 AND state = $3")
            .bind(ti.id.to_string())
            .bind(ti.try_number)
            .bind(TaskState::UpForReschedule.as_str())
            .fetch_optional(&mut *self.tx.inner)
            .await?;
        let Some(open) = open else { return Ok(None) };
        let lease_id = uuid(&open, "id")?;
        let resumed = sqlx::query(
            "UPDATE task_instances SET state = $1, lease_id = $2, lease_until_ms = $3, worker = $4, hostname = $5,
                    pid = NULL, end_ms = NULL, next_retry_ms = NULL
              WHERE id = $6 AND state = $7",
        )
        .bind(TaskState::Running.as_str())
        .bind(lease_id.to_string())
        .bind(to_ms(lease_until))
        .bind(worker)
        .bind(hostname)
        .bind(ti.id.to_string())
        .bind(TaskState::Queued.as_str())
        .execute(&mut *self.tx.inner)
        .await?;
        if resumed.rows_affected() != 1 {
            return Ok(None);
        }
        sqlx::query("UPDATE task_tries SET state = $1, end_ms = NULL, worker = $2, hostname = $3 WHERE id = $4")
            .bind(TaskState::Running.as_str())
            .bind(worker)
            .bind(hostname)
            .bind(lease_id.to_string())
            .execute(&mut *self.tx.inner)
            .await?;
        let ti = TaskInstanceRow {
            state: TaskState::Running,
            lease_id: Some(lease_id),
            lease_until: Some(from_ms(to_ms(lease_until))),
            worker: Some(worker.to_string()),
            hostname: Some(hostname.to_string()),
            pid: None,
            end_date: None,
            next_retry_at: None,
            ..ti.0.clone()
        };
        Ok(Some(ClaimedTask { ti, lease_id }))
    }
}
