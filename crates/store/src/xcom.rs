//! Keyed task outputs (Airflow's XCom): a task instance's values by key.
//!
//! The return value lives in the task instance's row (`output`, or `output_uri` when the lake keeps it), where
//! mapping, branching and the dashboard read it; every other key has a row in `xcom`. The reads and writes here
//! take a key and hide that split from their callers. A try's end writes its values with the try
//! ([`crate::TryEnd`]); clearing a task instance deletes them (`RunTx::reset_task_instance`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::xcom::{RETURN_VALUE, XComValue};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};
use uuid::Uuid;

use crate::dags::placeholders;
use crate::error::Result;
use crate::rows::{TaskInstanceRow, opt_time};
use crate::time::to_ms;
use crate::{Reads, Store, Tx};

/// One entry of a task instance.
#[derive(Debug, Clone, PartialEq)]
pub struct XComRow {
    pub key: String,
    pub value: XComValue,
    /// When it was last written; `None` for the return value, which is as old as the try that ended with it.
    pub updated: Option<DateTime<Utc>>,
}

/// A value as its two columns: the JSON text, or where the lake keeps it.
pub(crate) fn value_columns(value: Option<&XComValue>) -> (Option<String>, Option<String>) {
    match value {
        Some(XComValue::Inline(value)) => (Some(value.to_string()), None),
        Some(XComValue::Lake(uri)) => (None, Some(uri.clone())),
        None => (None, None),
    }
}

/// The value of a row's `value` and `lake_uri` columns, one of which is set. Text that is not JSON (written by an
/// older version) reads as a string.
pub(crate) fn stored_value(row: &AnyRow) -> Result<XComValue> {
    if let Some(uri) = row.try_get::<Option<String>, _>("lake_uri")? {
        return Ok(XComValue::Lake(uri));
    }
    let text: String = row.try_get::<Option<String>, _>("value")?.unwrap_or_else(|| "null".to_owned());
    Ok(XComValue::Inline(serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// Writes a key's value, replacing the one it had.
pub(crate) async fn put_xcom(tx: &mut Tx, ti_id: Uuid, key: &str, value: &XComValue, now: DateTime<Utc>) -> Result<()> {
    let put = sqlx::query(
        "INSERT INTO xcom (ti_id, key, value, lake_uri, updated_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (ti_id, key) DO UPDATE
            SET value = excluded.value, lake_uri = excluded.lake_uri, updated_ms = excluded.updated_ms",
    );
    bind_entry(put, ti_id, key, value, now).execute(&mut *tx.inner).await?;
    Ok(())
}

/// `query`, an insert of an entry, with the entry's columns bound in table order.
fn bind_entry<'q>(
    query: Query<'q, Any, AnyArguments<'q>>,
    ti_id: Uuid,
    key: &'q str,
    value: &XComValue,
    now: DateTime<Utc>,
) -> Query<'q, Any, AnyArguments<'q>> {
    let (text, uri) = value_columns(Some(value));
    query.bind(ti_id.to_string()).bind(key).bind(text).bind(uri).bind(to_ms(now))
}

fn return_value(ti: &TaskInstanceRow) -> Option<XComRow> {
    let value = match (&ti.output_uri, &ti.output) {
        (Some(uri), _) => XComValue::Lake(uri.clone()),
        (None, Some(value)) => XComValue::Inline(value.clone()),
        (None, None) => return None,
    };
    Some(XComRow { key: RETURN_VALUE.to_owned(), value, updated: None })
}

fn decode(row: &AnyRow) -> Result<XComRow> {
    Ok(XComRow { key: row.try_get("key")?, value: stored_value(row)?, updated: opt_time(row, "updated_ms")? })
}

impl Store {
    /// Every entry of a task instance, by key.
    pub async fn xcom_entries(&self, ti: &TaskInstanceRow) -> Result<Vec<XComRow>> {
        let rows = sqlx::query("SELECT key, value, lake_uri, updated_ms FROM xcom WHERE ti_id = $1")
            .bind(ti.id.to_string())
            .fetch_all(self.pool())
            .await?;
        let mut entries = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        entries.extend(return_value(ti));
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    /// One entry of a task instance.
    pub async fn xcom_entry(&self, ti: &TaskInstanceRow, key: &str) -> Result<Option<XComRow>> {
        if key == RETURN_VALUE {
            return Ok(return_value(ti));
        }
        let row = sqlx::query("SELECT key, value, lake_uri, updated_ms FROM xcom WHERE ti_id = $1 AND key = $2")
            .bind(ti.id.to_string())
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Creates an entry; `false`, changing nothing, when the task instance has one of that key already.
    pub async fn create_xcom(&self, ti_id: Uuid, key: &str, value: &XComValue, now: DateTime<Utc>) -> Result<bool> {
        if key == RETURN_VALUE {
            return self.set_return_value(ti_id, value, "output IS NULL AND output_uri IS NULL").await;
        }
        let done = sqlx::query(
            "INSERT INTO xcom (ti_id, key, value, lake_uri, updated_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (ti_id, key) DO NOTHING",
        );
        Ok(bind_entry(done, ti_id, key, value, now).execute(self.pool()).await?.rows_affected() == 1)
    }

    /// Replaces an entry's value; `false`, changing nothing, when the task instance has no entry of that key.
    pub async fn update_xcom(&self, ti_id: Uuid, key: &str, value: &XComValue, now: DateTime<Utc>) -> Result<bool> {
        if key == RETURN_VALUE {
            return self.set_return_value(ti_id, value, "(output IS NOT NULL OR output_uri IS NOT NULL)").await;
        }
        let (text, uri) = value_columns(Some(value));
        let done =
            sqlx::query("UPDATE xcom SET value = $1, lake_uri = $2, updated_ms = $3 WHERE ti_id = $4 AND key = $5")
                .bind(&text)
                .bind(&uri)
                .bind(to_ms(now))
                .bind(ti_id.to_string())
                .bind(key)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets a task instance's return value if its row matches `when` (a condition on its output columns).
    async fn set_return_value(&self, ti_id: Uuid, value: &XComValue, when: &str) -> Result<bool> {
        let (text, uri) = value_columns(Some(value));
        let sql = format!("UPDATE task_instances SET output = $1, output_uri = $2 WHERE id = $3 AND {when}");
        let done = sqlx::query(&sql).bind(&text).bind(&uri).bind(ti_id.to_string()).execute(self.pool()).await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Reads<'_> {
    /// The values `task_ids` pushed in a run under keys other than the return value, as
    /// `(task_id, map_index, key, value)` in task, key and `map_index` order.
    pub async fn run_xcom(&mut self, run_pk: Uuid, task_ids: &[&str]) -> Result<Vec<(String, i64, String, XComValue)>> {
        if task_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT t.task_id AS task_id, t.map_index AS map_index, x.key AS key, x.value AS value,
                    x.lake_uri AS lake_uri
               FROM xcom x JOIN task_instances t ON t.id = x.ti_id
              WHERE t.run_pk = $1 AND t.task_id IN ({})
              ORDER BY t.task_id, x.key, t.map_index",
            placeholders(2, task_ids.len())
        );
        let mut query = sqlx::query(&sql).bind(run_pk.to_string());
        for task_id in task_ids {
            query = query.bind(*task_id);
        }
        let rows = query.fetch_all(&mut *self.tx.inner).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("task_id")?, r.try_get("map_index")?, r.try_get("key")?, stored_value(r)?)))
            .collect()
    }
}
