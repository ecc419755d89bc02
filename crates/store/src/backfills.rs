//! Backfills: what a user asked to run for past dates. The runs themselves are ordinary DAG runs.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::Result;
use crate::rows::json;
use crate::time::{from_ms, to_ms};
use crate::{DagRunRow, Store, Tx};

#[derive(Debug, Clone, PartialEq)]
pub struct BackfillRow {
    pub id: i64,
    pub dag_id: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub dag_run_conf: Value,
    /// `none`, `failed` or `completed`, as Airflow names them.
    pub reprocess_behavior: String,
    pub max_active_runs: i64,
    pub created_at: DateTime<Utc>,
}

/// A backfill to record.
#[derive(Debug, Clone)]
pub struct NewBackfill {
    pub dag_id: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub dag_run_conf: Value,
    pub reprocess_behavior: String,
    pub max_active_runs: i64,
}

const COLUMNS: &str = "id, dag_id, from_ms, to_ms, dag_run_conf, reprocess_behavior, max_active_runs, created_ms";

fn decode(r: &AnyRow) -> Result<BackfillRow> {
    Ok(BackfillRow {
        id: r.try_get("id")?,
        dag_id: r.try_get("dag_id")?,
        from_date: from_ms(r.try_get("from_ms")?),
        to_date: from_ms(r.try_get("to_ms")?),
        dag_run_conf: json(r, "dag_run_conf")?,
        reprocess_behavior: r.try_get("reprocess_behavior")?,
        max_active_runs: r.try_get("max_active_runs")?,
        created_at: from_ms(r.try_get("created_ms")?),
    })
}

impl Tx {
    pub async fn insert_backfill(&mut self, backfill: &NewBackfill, now: DateTime<Utc>) -> Result<BackfillRow> {
        let sql = format!(
            "INSERT INTO backfills (dag_id, from_ms, to_ms, dag_run_conf, reprocess_behavior, max_active_runs, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(backfill.dag_id.as_str())
            .bind(to_ms(backfill.from_date))
            .bind(to_ms(backfill.to_date))
            .bind(backfill.dag_run_conf.to_string())
            .bind(backfill.reprocess_behavior.as_str())
            .bind(backfill.max_active_runs)
            .bind(to_ms(now))
            .fetch_one(&mut *self.inner)
            .await?;
        decode(&row)
    }

    /// The run of a DAG at a logical date, if there is one, locked until the transaction ends.
    pub async fn lock_run_at(&mut self, dag_id: &str, logical_date: DateTime<Utc>) -> Result<Option<DagRunRow>> {
        let sql = format!(
            "SELECT {} FROM dag_runs WHERE dag_id = $1 AND logical_date_ms = $2{}",
            DagRunRow::COLUMNS,
            self.dialect.lock_wait()
        );
        let row = sqlx::query(&sql).bind(dag_id).bind(to_ms(logical_date)).fetch_optional(&mut *self.inner).await?;
        row.as_ref().map(DagRunRow::decode).transpose()
    }
}

impl Store {
    pub async fn get_backfill(&self, id: i64) -> Result<Option<BackfillRow>> {
        let sql = format!("SELECT {COLUMNS} FROM backfills WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(decode).transpose()
    }

    /// One page of a DAG's backfills, newest first, and how many it has.
    pub async fn list_backfills(&self, dag_id: &str, limit: i64, offset: i64) -> Result<(Vec<BackfillRow>, i64)> {
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM backfills WHERE dag_id = $1")
            .bind(dag_id)
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        let sql = format!(
            "SELECT {COLUMNS} FROM backfills WHERE dag_id = $1 ORDER BY id DESC LIMIT {} OFFSET {}",
            limit.max(0),
            offset.max(0)
        );
        let rows = sqlx::query(&sql).bind(dag_id).fetch_all(self.pool()).await?;
        Ok((rows.iter().map(decode).collect::<Result<_>>()?, total))
    }
}
