//! Task logs, workers and scheduler heartbeats.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use crate::Store;
use crate::dags::placeholders;
use crate::error::Result;
use crate::rows::WorkerRow;
use crate::time::{from_ms, to_ms};

#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    /// Increasing within a try: the continuation token of a log read.
    pub id: i64,
    pub timestamp: DateTime<Utc>,
    pub stream: String,
    pub line: String,
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
