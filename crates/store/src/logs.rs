//! Task logs, workers and scheduler heartbeats.
//!
//! A try's log lines are written here while it runs. With logs kept in the lake, a pass moves an ended try's lines
//! to one object ([`Store::take_logs_to_move`], [`Store::record_log_moved`]) and [`Store::log_uri`] says where.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_core::TaskState;
use sqlx::Row;
use uuid::Uuid;

use crate::Store;
use crate::dags::placeholders;
use crate::error::Result;
use crate::rows::{WorkerRow, uuid};
use crate::time::{from_ms, to_ms};

/// A log line as readers get it, and as it is kept in the lake once moved there (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    /// Increasing within a try: the continuation token of a log read.
    pub id: i64,
    pub timestamp: DateTime<Utc>,
    pub stream: String,
    pub line: String,
}

/// An ended try whose log lines are to be moved to the lake, with what names its object.
#[derive(Debug, Clone, PartialEq)]
pub struct LogsToMove {
    pub try_id: Uuid,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
    pub try_number: i64,
}

/// Rows per multi-row INSERT of log lines.
const LOG_CHUNK: usize = 1000;

/// A log line as stored: time, stream name, text.
pub type LogEntry = (DateTime<Utc>, String, String);

/// Inserts log lines of try `try_id` in the caller's transaction.
async fn insert_log_lines(conn: &mut sqlx::AnyConnection, try_id: Uuid, lines: &[LogEntry]) -> Result<()> {
    for chunk in lines.chunks(LOG_CHUNK) {
        let values =
            (0..chunk.len()).map(|i| format!("({})", placeholders(i * 4 + 1, 4))).collect::<Vec<_>>().join(", ");
        let sql = format!("INSERT INTO task_logs (try_id, ts_ms, stream, line) VALUES {values}");
        let mut query = sqlx::query(&sql);
        for (ts, stream, line) in chunk {
            query = query.bind(try_id.to_string()).bind(to_ms(*ts)).bind(stream).bind(line);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

impl crate::Tx {
    /// Stores log lines of the try `lease_id`, whose task instance the caller has locked.
    pub async fn insert_log_lines(&mut self, lease_id: Uuid, lines: &[LogEntry]) -> Result<()> {
        insert_log_lines(&mut self.inner, lease_id, lines).await
    }
}

impl Store {
    /// Appends log lines to the try `lease_id` of task instance `ti_id`. `false`, storing nothing, when that
    /// try no longer holds the task.
    pub async fn append_logs(&self, ti_id: Uuid, lease_id: Uuid, lines: &[LogEntry]) -> Result<bool> {
        let held = sqlx::query("SELECT 1 AS held FROM task_instances WHERE id = $1 AND lease_id = $2")
            .bind(ti_id.to_string())
            .bind(lease_id.to_string())
            .fetch_optional(self.pool())
            .await?
            .is_some();
        if !held {
            return Ok(false);
        }
        let mut tx = self.pool().begin().await?;
        if self.dialect() == crate::Dialect::Postgres {
            // Log lines may be lost if PostgreSQL itself crashes, but not wait for a disk flush each: a task's
            // state changes keep their durable commits.
            sqlx::query("SET LOCAL synchronous_commit TO OFF").execute(&mut *tx).await?;
        }
        insert_log_lines(&mut tx, lease_id, lines).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Log lines of a try after line `after_id` (0 for the start), at most `limit`.
    pub async fn read_logs(&self, try_id: Uuid, after_id: i64, limit: i64) -> Result<Vec<LogRow>> {
        let sql = format!(
            "SELECT id, ts_ms, stream, line FROM task_logs WHERE try_id = $1 AND id > $2 ORDER BY id LIMIT {}",
            limit.max(1)
        );
        let rows = sqlx::query(&sql).bind(try_id.to_string()).bind(after_id).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(LogRow {
                    id: r.try_get("id")?,
                    timestamp: from_ms(r.try_get("ts_ms")?),
                    stream: r.try_get("stream")?,
                    line: r.try_get("line")?,
                })
            })
            .collect()
    }

    /// Takes up to `limit` tries that ended at or before `ended_before` and whose log lines were not moved to the
    /// lake, oldest first, each held until `hold_until`: meanwhile another server's pass leaves them alone, and
    /// after it takes them over (this one stopped half-way). A sensor's try waiting to be rescheduled is not
    /// taken: it writes to its log again when it resumes.
    pub async fn take_logs_to_move(
        &self,
        ended_before: DateTime<Utc>,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<LogsToMove>> {
        let sql = format!(
            "UPDATE task_tries SET log_hold_ms = $1
              WHERE id IN (SELECT id FROM task_tries
                            WHERE log_uri IS NULL AND end_ms <= $2 AND state <> $3
                              AND (log_hold_ms IS NULL OR log_hold_ms <= $4)
                            ORDER BY end_ms LIMIT $5{})
              RETURNING id",
            self.dialect().lock_skip_locked()
        );
        let taken = sqlx::query(&sql)
            .bind(to_ms(hold_until))
            .bind(to_ms(ended_before))
            .bind(TaskState::UpForReschedule.as_str())
            .bind(to_ms(now))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        if taken.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT t.id, t.try_number, ti.dag_id, ti.run_id, ti.task_id, ti.map_index
               FROM task_tries t JOIN task_instances ti ON ti.id = t.ti_id
              WHERE t.id IN ({}) ORDER BY t.end_ms",
            placeholders(1, taken.len())
        );
        let mut query = sqlx::query(&sql);
        for row in &taken {
            query = query.bind(row.try_get::<String, _>("id")?);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(LogsToMove {
                    try_id: uuid(r, "id")?,
                    dag_id: r.try_get("dag_id")?,
                    run_id: r.try_get("run_id")?,
                    task_id: r.try_get("task_id")?,
                    map_index: r.try_get("map_index")?,
                    try_number: r.try_get("try_number")?,
                })
            })
            .collect()
    }

    /// Records that the lake keeps the log lines of try `try_id` up to line `last_id` at `uri`, and deletes them
    /// here, in one transaction: a reader of the rows, then of [`Store::log_uri`], finds every line in one or the
    /// other. `false`, changing nothing, when another pass recorded the try's move first.
    pub async fn record_log_moved(&self, try_id: Uuid, uri: &str, last_id: i64) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let recorded =
            sqlx::query("UPDATE task_tries SET log_uri = $1, log_hold_ms = NULL WHERE id = $2 AND log_uri IS NULL")
                .bind(uri)
                .bind(try_id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if recorded == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM task_logs WHERE try_id = $1 AND id <= $2")
            .bind(try_id.to_string())
            .bind(last_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Where the lake keeps the log lines of try `try_id` that were moved out of the database, if they were.
    pub async fn log_uri(&self, try_id: Uuid) -> Result<Option<String>> {
        let row = sqlx::query("SELECT log_uri FROM task_tries WHERE id = $1")
            .bind(try_id.to_string())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get::<Option<String>, _>("log_uri")).transpose()?.flatten())
    }

    /// Records that a worker is alive and what it serves.
    pub async fn touch_worker(&self, name: &str, hostname: &str, queues: &[String], slots: i64) -> Result<()> {
        let now = crate::now_ms();
        sqlx::query(
            "INSERT INTO workers (name, hostname, queues, slots, first_seen_ms, last_seen_ms)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (name) DO UPDATE SET hostname = excluded.hostname, queues = excluded.queues,
                 slots = excluded.slots, last_seen_ms = excluded.last_seen_ms",
        )
        .bind(name)
        .bind(hostname)
        .bind(serde_json::to_string(queues).unwrap_or_else(|_| "[]".into()))
        .bind(slots)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn list_workers(&self) -> Result<Vec<WorkerRow>> {
        let rows = sqlx::query(
            "SELECT name, hostname, queues, slots, first_seen_ms, last_seen_ms, token_name FROM workers ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(WorkerRow::decode).collect()
    }

    pub async fn scheduler_heartbeat(&self, scheduler_id: &str, hostname: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO scheduler_heartbeats (scheduler_id, hostname, last_heartbeat_ms) VALUES ($1, $2, $3)
             ON CONFLICT (scheduler_id) DO UPDATE SET last_heartbeat_ms = excluded.last_heartbeat_ms",
        )
        .bind(scheduler_id)
        .bind(hostname)
        .bind(crate::now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn latest_scheduler_heartbeat(&self) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query("SELECT MAX(last_heartbeat_ms) AS last FROM scheduler_heartbeats")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<Option<i64>, _>("last")?.map(from_ms))
    }
}

/// The PostgreSQL channel that announces queued work to every server.
pub(crate) const WORK_CHANNEL: &str = "sluice_work";

impl Store {
    /// Calls `on_work` whenever any process announces queued work; returns at once on SQLite. Reconnects after
    /// errors, so it only returns there.
    pub async fn listen_for_work(&self, url: &str, on_work: impl Fn() + Send) {
        if self.dialect() != crate::Dialect::Postgres {
            return;
        }
        let mut outage = crate::Outage::new("listener of queued work");
        loop {
            let pause = match sqlx::postgres::PgListener::connect(url).await {
                Ok(mut listener) => {
                    outage.reached();
                    if let Err(e) = listener.listen(WORK_CHANNEL).await {
                        tracing::warn!(error = %e, "cannot listen for queued work");
                    } else {
                        while listener.recv().await.is_ok() {
                            on_work();
                        }
                    }
                    std::time::Duration::from_secs(1)
                }
                Err(e) => outage.down(&e),
            };
            tokio::time::sleep(pause).await;
        }
    }
}
