//! Users, API keys and the per-DAG `access_control` that authorisation reads.
//!
//! The store keeps only what it is given: password hashes and API key secret hashes are computed by the caller, so
//! no secret in clear ever reaches the database.

use chrono::{DateTime, Utc};
use sluice_core::{AccessControl, Role};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::Store;
use crate::error::{Error, Result};
use crate::rows::uuid;
use crate::time::{from_ms, now_ms, opt_from_ms};

#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    /// argon2 PHC string.
    pub password_hash: String,
    pub role: Role,
    pub created: DateTime<Utc>,
}

/// An API key with its owner's name and current role.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub user_id: Uuid,
    pub username: String,
    /// The role the key was created with.
    pub role: Role,
    /// The owner's role now: a key never acts with more than this.
    pub owner_role: Role,
    pub secret_hash: String,
    pub created: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
    pub revoked: Option<DateTime<Utc>>,
}

/// What it takes to create an API key.
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub user_id: Uuid,
    pub role: Role,
    pub secret_hash: &'a str,
}

fn role(row: &AnyRow, col: &str) -> Result<Role> {
    let text: String = row.try_get(col)?;
    text.parse().map_err(|e| Error::corrupt("role", e))
}

const USER_COLUMNS: &str = "id, username, password_hash, role, created_ms";

fn decode_user(row: &AnyRow) -> Result<UserRow> {
    Ok(UserRow {
        id: uuid(row, "id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        role: role(row, "role")?,
        created: from_ms(row.try_get("created_ms")?),
    })
}

const KEY_SELECT: &str = "SELECT k.id, k.name, k.user_id, u.username, k.role, u.role AS owner_role, k.secret_hash, \
                                 k.created_ms, k.last_used_ms, k.revoked_ms
                            FROM api_keys k JOIN users u ON u.id = k.user_id";

fn decode_key(row: &AnyRow) -> Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: uuid(row, "id")?,
        name: row.try_get("name")?,
        user_id: uuid(row, "user_id")?,
        username: row.try_get("username")?,
        role: role(row, "role")?,
        owner_role: role(row, "owner_role")?,
        secret_hash: row.try_get("secret_hash")?,
        created: from_ms(row.try_get("created_ms")?),
        last_used: opt_from_ms(row.try_get("last_used_ms")?),
        revoked: opt_from_ms(row.try_get("revoked_ms")?),
    })
}

impl Store {
    /// Creates a user; `None`, changing nothing, when the username is taken.
    pub async fn create_user(&self, username: &str, password_hash: &str, role: Role) -> Result<Option<UserRow>> {
        let done = sqlx::query(
            "INSERT INTO users (id, username, password_hash, role, created_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(username)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_user_by_name(username).await
    }

    pub async fn get_user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
        let row = sqlx::query(&sql).bind(username).fetch_optional(self.pool()).await?;
        row.as_ref().map(decode_user).transpose()
    }

    pub async fn get_user(&self, id: Uuid) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(self.pool()).await?;
        row.as_ref().map(decode_user).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(decode_user).collect()
    }

    /// Gives a user another role, at once for their tokens and API keys; `None` when there is no such user.
    pub async fn set_user_role(&self, username: &str, role: Role) -> Result<Option<UserRow>> {
        let done = sqlx::query("UPDATE users SET role = $1 WHERE username = $2")
            .bind(role.as_str())
            .bind(username)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_user_by_name(username).await
    }

    /// Deletes a user and their API keys; `false` when there was no such user.
    pub async fn delete_user(&self, username: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE username = $1").bind(username).execute(self.pool()).await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn create_api_key(&self, key: &NewApiKey<'_>) -> Result<ApiKeyRow> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, user_id, role, secret_hash, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.id.to_string())
        .bind(key.name)
        .bind(key.user_id.to_string())
        .bind(key.role.as_str())
        .bind(key.secret_hash)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        self.get_api_key(key.id).await?.ok_or_else(|| Error::corrupt("api key", "missing right after its insert"))
    }

    pub async fn get_api_key(&self, id: Uuid) -> Result<Option<ApiKeyRow>> {
        let sql = format!("{KEY_SELECT} WHERE k.id = $1");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(self.pool()).await?;
        row.as_ref().map(decode_key).transpose()
    }

    /// The keys of one user, or of everyone (`None`), oldest first.
    pub async fn list_api_keys(&self, user_id: Option<Uuid>) -> Result<Vec<ApiKeyRow>> {
        let rows = match user_id {
            Some(id) => {
                let sql = format!("{KEY_SELECT} WHERE k.user_id = $1 ORDER BY k.created_ms, k.id");
                sqlx::query(&sql).bind(id.to_string()).fetch_all(self.pool()).await?
            }
            None => sqlx::query(&format!("{KEY_SELECT} ORDER BY k.created_ms, k.id")).fetch_all(self.pool()).await?,
        };
        rows.iter().map(decode_key).collect()
    }

    /// Revokes a key for good; `false` when there is no such key or it was revoked already.
    pub async fn revoke_api_key(&self, id: Uuid) -> Result<bool> {
        let done = sqlx::query("UPDATE api_keys SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL")
            .bind(now_ms())
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that a key was just used.
    pub async fn touch_api_key(&self, id: Uuid) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_ms = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The `access_control` of a DAG; `None` when the DAG sets none or does not exist.
    pub async fn dag_access_control(&self, dag_id: &str) -> Result<Option<AccessControl>> {
        let row = sqlx::query("SELECT access_control FROM dags WHERE dag_id = $1")
            .bind(dag_id)
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(row) => access_control(&row),
            None => Ok(None),
        }
    }

    /// Every DAG that sets an `access_control`, with it.
    pub async fn restricted_dags(&self) -> Result<Vec<(String, AccessControl)>> {
        let rows = sqlx::query("SELECT dag_id, access_control FROM dags WHERE access_control IS NOT NULL")
            .fetch_all(self.pool())
            .await?;
        let mut dags = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(access) = access_control(row)? {
                dags.push((row.try_get("dag_id")?, access));
            }
        }
        Ok(dags)
    }
}

fn access_control(row: &AnyRow) -> Result<Option<AccessControl>> {
    let text: Option<String> = row.try_get("access_control")?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| Error::corrupt("access_control", e))).transpose()
}
