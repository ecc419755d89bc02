//! Named worker tokens: what `sluice worker-tokens` and `/auth/worker-tokens` manage, and what the worker protocol
//! checks besides the shared token. The store keeps the secret's hash only, computed by the caller.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::Store;
use crate::error::{Error, Result};
use crate::rows::uuid;
use crate::time::{from_ms, now_ms, opt_from_ms};

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerTokenRow {
    pub id: Uuid,
    pub name: String,
    pub secret_hash: String,
    pub created: DateTime<Utc>,
    /// The user who created it; `None` when made with the command line.
    pub created_by: Option<String>,
    pub last_used: Option<DateTime<Utc>>,
    /// The worker that presented it last.
    pub last_worker: Option<String>,
    pub revoked: Option<DateTime<Utc>>,
}

const SELECT: &str =
    "SELECT id, name, secret_hash, created_ms, created_by, last_used_ms, last_worker, revoked_ms FROM worker_tokens";

fn decode(row: &AnyRow) -> Result<WorkerTokenRow> {
    Ok(WorkerTokenRow {
        id: uuid(row, "id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        created: from_ms(row.try_get("created_ms")?),
        created_by: row.try_get("created_by")?,
        last_used: opt_from_ms(row.try_get("last_used_ms")?),
        last_worker: row.try_get("last_worker")?,
        revoked: opt_from_ms(row.try_get("revoked_ms")?),
    })
}

impl Store {
    /// Creates a token; `None` when a token of that name exists (revoked ones included: names are never reused,
    /// so a worker's history keeps meaning one token).
    pub async fn create_worker_token(
        &self,
        id: Uuid,
        name: &str,
        secret_hash: &str,
        created_by: Option<&str>,
    ) -> Result<Option<WorkerTokenRow>> {
        let done = sqlx::query(
            "INSERT INTO worker_tokens (id, name, secret_hash, created_ms, created_by) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(secret_hash)
        .bind(now_ms())
        .bind(created_by)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let created = self.get_worker_token(id).await?;
        created.ok_or_else(|| Error::corrupt("worker token", "missing right after its insert")).map(Some)
    }

    pub async fn get_worker_token(&self, id: Uuid) -> Result<Option<WorkerTokenRow>> {
        let row =
            sqlx::query(&format!("{SELECT} WHERE id = $1")).bind(id.to_string()).fetch_optional(self.pool()).await?;
        row.as_ref().map(decode).transpose()
    }

    /// Every token, oldest first.
    pub async fn list_worker_tokens(&self) -> Result<Vec<WorkerTokenRow>> {
        let rows = sqlx::query(&format!("{SELECT} ORDER BY created_ms, name")).fetch_all(self.pool()).await?;
        rows.iter().map(decode).collect()
    }

    /// Revokes the token named `name` for good; `false` when there is none or it was revoked already.
    pub async fn revoke_worker_token(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE worker_tokens SET revoked_ms = $1 WHERE name = $2 AND revoked_ms IS NULL")
            .bind(now_ms())
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that `worker` just presented the token `id`, on both rows.
    pub async fn note_worker_token_use(&self, id: Uuid, worker: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let name: Option<String> = sqlx::query_scalar(
            "UPDATE worker_tokens SET last_used_ms = $1, last_worker = $2 WHERE id = $3 RETURNING name",
        )
        .bind(now_ms())
        .bind(worker)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query("UPDATE workers SET token_name = $1 WHERE name = $2")
            .bind(name)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
