//! The alerts outbox: callbacks of tasks and runs, and missed deadlines, written by the scheduler in the
//! transaction of the change they tell about, and taken from here by the server's notifier to deliver.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::dags::{Bind, bind_all, placeholders};
use crate::error::Result;
use crate::rows::json;
use crate::time::{from_ms, opt_from_ms, to_ms};
use crate::{Dialect, Store, Tx};

/// Where an alert stands.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
/// Given up on after its last attempt; `last_error` says why.
pub const FAILED: &str = "failed";

/// An alert to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: Option<String>,
    pub map_index: Option<i64>,
    pub try_number: Option<i64>,
    /// `on_failure`, `on_retry`, `on_success`, `on_execute` or `deadline`.
    pub event: String,
    /// How to deliver it (a notifier of the DAG, as JSON).
    pub notifier: Value,
    /// What its templates read.
    pub context: Value,
    /// Set for an alert that must be recorded once whoever records it: a second one with the key is dropped.
    pub dedupe_key: Option<String>,
    /// Alerts of one stream are delivered one at a time, in the order they were recorded.
    pub stream: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRow {
    /// Grows with each alert recorded.
    pub id: i64,
    pub alert: NewNotification,
    pub state: String,
    pub attempts: i64,
    pub next_attempt: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created: DateTime<Utc>,
    /// When it was delivered or given up on.
    pub finished: Option<DateTime<Utc>>,
}

/// Which alerts to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub state: Option<String>,
    pub event: Option<String>,
    /// DAGs the caller may not read: their alerts are left out.
    pub hidden_dag_ids: Vec<String>,
    pub limit: i64,
    pub offset: i64,
}

const COLUMNS: &str = "id, dag_id, run_id, task_id, map_index, try_number, event, notifier, context, dedupe_key, \
                       stream, state, attempts, next_attempt_ms, last_error, created_ms, finished_ms";

fn decode(row: &AnyRow) -> Result<NotificationRow> {
    Ok(NotificationRow {
        id: row.try_get("id")?,
        alert: NewNotification {
            dag_id: row.try_get("dag_id")?,
            run_id: row.try_get("run_id")?,
            task_id: row.try_get("task_id")?,
            map_index: row.try_get("map_index")?,
            try_number: row.try_get("try_number")?,
            event: row.try_get("event")?,
            notifier: json(row, "notifier")?,
            context: json(row, "context")?,
            dedupe_key: row.try_get("dedupe_key")?,
            stream: row.try_get("stream")?,
        },
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        next_attempt: from_ms(row.try_get("next_attempt_ms")?),
        last_error: row.try_get("last_error")?,
        created: from_ms(row.try_get("created_ms")?),
        finished: opt_from_ms(row.try_get("finished_ms")?),
    })
}

impl Tx {
    /// Records alerts with the change they tell about; they become due when this transaction commits. Returns how
    /// many were recorded (an alert whose `dedupe_key` is known already is not).
    pub async fn enqueue_notifications(&mut self, alerts: &[NewNotification], now: DateTime<Utc>) -> Result<u64> {
        let mut recorded = 0;
        for alert in alerts {
            let done = sqlx::query(
                "INSERT INTO notifications (dag_id, run_id, task_id, map_index, try_number, event, notifier, context,
                                            dedupe_key, stream, state, attempts, next_attempt_ms, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $12)
                 ON CONFLICT (dedupe_key) DO NOTHING",
            )
            .bind(&alert.dag_id)
            .bind(&alert.run_id)
            .bind(alert.task_id.as_deref())
            .bind(alert.map_index)
            .bind(alert.try_number)
            .bind(&alert.event)
            .bind(alert.notifier.to_string())
            .bind(alert.context.to_string())
            .bind(alert.dedupe_key.as_deref())
            .bind(alert.stream.as_deref())
            .bind(PENDING)
            .bind(to_ms(now))
            .execute(&mut *self.inner)
            .await?;
            recorded += done.rows_affected();
        }
        Ok(recorded)
    }
}

impl Store {
    /// Takes up to `limit` due alerts to deliver, each put off until `hold_until` meanwhile: another notifier skips
    /// them, and a notifier that stops before finishing one leaves it due again then. Of a stream, only the oldest
    /// pending alert is taken, so that its alerts go out in order. Oldest first.
    pub async fn take_due_notifications(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<NotificationRow>> {
        let skip_locked = match self.dialect() {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE notifications SET next_attempt_ms = $1
              WHERE id IN (SELECT n.id FROM notifications n
                            WHERE n.state = $2 AND n.next_attempt_ms <= $3
                              AND (n.stream IS NULL OR NOT EXISTS (
                                    SELECT 1 FROM notifications o
                                     WHERE o.stream = n.stream AND o.state = $2 AND o.id < n.id))
                            ORDER BY n.id LIMIT $4{skip_locked})
              RETURNING {COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(to_ms(hold_until))
            .bind(PENDING)
            .bind(to_ms(now))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        let mut taken = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        taken.sort_by_key(|n| n.id);
        Ok(taken)
    }

    /// Records an attempt: delivered (`error` is `None`; an earlier attempt's error is kept), to be tried again at
    /// `retry_at`, or given up on.
    pub async fn record_notification_attempt(
        &self,
        id: i64,
        error: Option<&str>,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (state, next, finished) = match (error, retry_at) {
            (None, _) => (DELIVERED, now, Some(now)),
            (Some(_), Some(at)) => (PENDING, at, None),
            (Some(_), None) => (FAILED, now, Some(now)),
        };
        sqlx::query(
            "UPDATE notifications SET state = $1, attempts = attempts + 1, next_attempt_ms = $2,
                                      last_error = COALESCE($3, last_error),
                                      finished_ms = $4
              WHERE id = $5",
        )
        .bind(state)
        .bind(to_ms(next))
        .bind(error)
        .bind(finished.map(to_ms))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One page of alerts, newest first, and how many match in all.
    pub async fn list_notifications(&self, filter: &NotificationFilter) -> Result<(Vec<NotificationRow>, i64)> {
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut binds = Vec::new();
        let texts = [
            ("dag_id", &filter.dag_id),
            ("run_id", &filter.run_id),
            ("state", &filter.state),
            ("event", &filter.event),
        ];
        for (column, value) in texts {
            if let Some(value) = value {
                binds.push(Bind::Text(value.clone()));
                conditions.push(format!("{column} = ${}", binds.len()));
            }
        }
        if !filter.hidden_dag_ids.is_empty() {
            let start = binds.len() + 1;
            binds.extend(filter.hidden_dag_ids.iter().cloned().map(Bind::Text));
            conditions.push(format!("dag_id NOT IN ({})", placeholders(start, filter.hidden_dag_ids.len())));
        }
        let where_clause = conditions.join(" AND ");
        let count_sql = format!("SELECT COUNT(*) AS n FROM notifications WHERE {where_clause}");
        let total: i64 = bind_all(sqlx::query(&count_sql), &binds).fetch_one(self.pool()).await?.try_get("n")?;
        let sql = format!(
            "SELECT {COLUMNS} FROM notifications WHERE {where_clause} ORDER BY id DESC
              LIMIT {} OFFSET {}",
            filter.limit.max(0),
            filter.offset.max(0)
        );
        let rows = bind_all(sqlx::query(&sql), &binds).fetch_all(self.pool()).await?;
        Ok((rows.iter().map(decode).collect::<Result<Vec<_>>>()?, total))
    }
}
