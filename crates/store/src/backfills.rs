//! Backfills: what a user asked to run for past dates. The runs themselves are ordinary DAG runs.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::RunState;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::Result;
use crate::rows::{flag, json};
use crate::time::{from_ms, to_ms};
use crate::{DagRunRow, RunTx, Store, Tx};

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
    /// A paused backfill starts none of its queued runs.
    pub is_paused: bool,
    /// When it was cancelled. A backfill that was not is complete once none of its runs is queued or running.
    pub cancelled_at: Option<DateTime<Utc>>,
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

const COLUMNS: &str = "id, dag_id, from_ms, to_ms, dag_run_conf, reprocess_behavior, max_active_runs, created_ms, is_paused, completed_ms";

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
        is_paused: flag(r, "is_paused")?,
        cancelled_at: r.try_get::<Option<i64>, _>("completed_ms")?.map(from_ms),
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

    /// The backfill, locked until the transaction ends: pausing, cancelling and starting its runs take turns.
    pub async fn lock_backfill(&mut self, id: i64) -> Result<Option<BackfillRow>> {
        let sql = format!("SELECT {COLUMNS} FROM backfills WHERE id = $1{}", self.dialect.lock_wait());
        let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *self.inner).await?;
        row.as_ref().map(decode).transpose()
    }

    /// A backfill of the DAG that is neither cancelled nor done: one of its runs is queued or running.
    pub async fn unfinished_backfill(&mut self, dag_id: &str) -> Result<Option<i64>> {
        self.unfinished_backfill_where("b.dag_id = $1", dag_id.to_owned()).await
    }

    /// Whether the backfill is neither cancelled nor done.
    pub async fn backfill_is_unfinished(&mut self, id: i64) -> Result<bool> {
        Ok(self.unfinished_backfill_where("b.id = $1", id).await?.is_some())
    }

    async fn unfinished_backfill_where<T>(&mut self, condition: &str, value: T) -> Result<Option<i64>>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + 'static,
    {
        let sql = format!(
            "SELECT b.id FROM backfills b
              WHERE {condition} AND b.completed_ms IS NULL
                AND EXISTS (SELECT 1 FROM dag_runs r WHERE r.backfill_id = b.id AND r.state IN ($2, $3))
              LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(value)
            .bind(RunState::Queued.as_str())
            .bind(RunState::Running.as_str())
            .fetch_optional(&mut *self.inner)
            .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    pub async fn set_backfill_paused(&mut self, id: i64, paused: bool) -> Result<()> {
        sqlx::query("UPDATE backfills SET is_paused = $1 WHERE id = $2")
            .bind(paused)
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Records that the backfill was cancelled: it stays paused and counts as complete from now on.
    pub async fn cancel_backfill(&mut self, id: i64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE backfills SET is_paused = $1, completed_ms = $2 WHERE id = $3")
            .bind(true)
            .bind(to_ms(now))
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// The run of a DAG at a logical date, if there is one, locked until the transaction ends.
    pub async fn lock_run_at(&mut self, dag_id: &str, logical_date: DateTime<Utc>) -> Result<Option<RunTx<'_>>> {
        let sql = format!(
            "SELECT {} FROM dag_runs WHERE dag_id = $1 AND logical_date_ms = $2{}",
            DagRunRow::COLUMNS,
            self.dialect.lock_decide()
        );
        let row = sqlx::query(&sql).bind(dag_id).bind(to_ms(logical_date)).fetch_optional(&mut *self.inner).await?;
        match row.as_ref().map(DagRunRow::decode).transpose()? {
            Some(run) => Ok(Some(RunTx::new(self, run, false))),
            None => Ok(None),
        }
    }
}

impl RunTx<'_> {
    /// Makes the backfill the owner of this run, which it reruns.
    pub async fn set_run_backfill(&mut self, backfill_id: i64) -> Result<()> {
        sqlx::query("UPDATE dag_runs SET backfill_id = $1 WHERE id = $2")
            .bind(backfill_id)
            .bind(self.run.id.to_string())
            .execute(&mut *self.tx.inner)
            .await?;
        self.run.backfill_id = Some(backfill_id);
        Ok(())
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
