//! Worker tokens: the shared `SLUICE_WORKER_TOKEN`, and named tokens (`sluicew_<id>_<secret>`) that an Admin makes
//! for one worker or a group of them, revokes alone, and sees in use: each token records which worker presented
//! it last, and each worker which token it presents.
//!
//! The worker protocol checks a token on every call, so a named token, once read from the database, is trusted
//! for [`RECHECK_AFTER`] before it is read again: revoking one stops it everywhere within that time (at once on the
//! server that revoked it). A worker whose token is refused stops.
//!
//! Routes (Admin):
//! - `POST /auth/worker-tokens` `{"name"}` → 201 with the token in `token`, shown only this once; 409 if the name
//!   was ever used;
//! - `GET /auth/worker-tokens` → every token, never its secret;
//! - `DELETE /auth/worker-tokens/{name}` → 204.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_store::{Store, WorkerTokenRow};
use uuid::Uuid;

use super::Principal;
use super::keys::{new_secret, secret_hash};
use crate::extract::ApiJson;
use crate::{ApiError, AppState};

const PREFIX: &str = "sluicew_";

/// How long a named token read from the database is trusted before it is read again.
pub const RECHECK_AFTER: Duration = Duration::from_secs(5);
/// How often a token's use by one worker is written down.
const NOTE_EVERY: Duration = Duration::from_secs(60);

/// Which token a worker's call presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerCredential {
    Shared,
    Named { id: Uuid, name: String },
}

struct Checked {
    name: String,
    secret_hash: String,
    at: Instant,
}

/// The worker tokens a server accepts.
pub struct WorkerAuth {
    shared: Option<String>,
    checked: Mutex<HashMap<Uuid, Checked>>,
    noted: Mutex<HashMap<(Uuid, String), Instant>>,
}

impl WorkerAuth {
    /// `shared`: the token every worker may present (`SLUICE_WORKER_TOKEN`); without one, only named tokens work.
    pub fn new(shared: Option<String>) -> WorkerAuth {
        WorkerAuth { shared, checked: Mutex::default(), noted: Mutex::default() }
    }

    /// The credential `presented` stands for, or 401 saying why it does not.
    pub async fn check(&self, store: &Store, presented: &str) -> Result<WorkerCredential, ApiError> {
        let invalid = || ApiError::Unauthorized("invalid worker token".into());
        if self.shared.as_deref().is_some_and(|shared| super::same_secret(presented, shared)) {
            return Ok(WorkerCredential::Shared);
        }
        let (id, secret) = parse(presented).ok_or_else(invalid)?;
        let hash = secret_hash(secret);
        if let Some(name) = self.trusted(id, &hash) {
            return Ok(WorkerCredential::Named { id, name });
        }
        let row = store.get_worker_token(id).await?.ok_or_else(invalid)?;
        if !super::same_secret(&hash, &row.secret_hash) {
            return Err(invalid());
        }
        if row.revoked.is_some() {
            return Err(ApiError::Unauthorized(format!("the worker token `{}` is revoked", row.name)));
        }
        let checked = Checked { name: row.name.clone(), secret_hash: row.secret_hash, at: Instant::now() };
        self.lock_checked().insert(id, checked);
        Ok(WorkerCredential::Named { id, name: row.name })
    }

    /// The name of token `id` if it was read recently and `hash` is its secret's.
    fn trusted(&self, id: Uuid, hash: &str) -> Option<String> {
        let checked = self.lock_checked();
        let entry = checked.get(&id).filter(|c| c.at.elapsed() < RECHECK_AFTER)?;
        super::same_secret(hash, &entry.secret_hash).then(|| entry.name.clone())
    }

    /// Records, at most once a minute per token and worker, that `worker` presented `credential`.
    pub async fn note_use(&self, store: &Store, credential: &WorkerCredential, worker: &str) -> Result<(), ApiError> {
        let WorkerCredential::Named { id, .. } = credential else { return Ok(()) };
        {
            let mut noted = self.noted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = (*id, worker.to_owned());
            if noted.get(&key).is_some_and(|at| at.elapsed() < NOTE_EVERY) {
                return Ok(());
            }
            noted.insert(key, Instant::now());
        }
        store.note_worker_token_use(*id, worker).await?;
        Ok(())
    }

    fn forget(&self, name: &str) {
        self.lock_checked().retain(|_, c| c.name != name);
    }

    fn lock_checked(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Checked>> {
        self.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `(token id, secret)` of something shaped like a named worker token.
fn parse(token: &str) -> Option<(Uuid, &str)> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// A new token's id, its text (to hand to the worker once) and the hash to store.
pub fn new_token() -> (Uuid, String, String) {
    let id = Uuid::now_v7();
    let secret = new_secret();
    let hash = secret_hash(&secret);
    (id, format!("{PREFIX}{}_{secret}", id.simple()), hash)
}

/// What makes a good token name, or why `name` is not one.
pub fn name_problem(name: &str) -> Option<String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    (name.is_empty() || name.len() > 100 || !name.chars().all(fine))
        .then(|| format!("a worker token's name has 1 to 100 letters, digits, `-`, `_` or `.`, not {name:?}"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkerTokenResponse {
    pub id: Uuid,
    pub name: String,
    pub created: DateTime<Utc>,
    pub created_by: Option<String>,
    pub last_used: Option<DateTime<Utc>>,
    /// The worker that presented it last.
    pub last_worker: Option<String>,
    pub revoked: Option<DateTime<Utc>>,
    /// The token itself: in the answer to its creation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<WorkerTokenRow> for WorkerTokenResponse {
    fn from(row: WorkerTokenRow) -> Self {
        WorkerTokenResponse {
            id: row.id,
            name: row.name,
            created: row.created,
            created_by: row.created_by,
            last_used: row.last_used,
            last_worker: row.last_worker,
            revoked: row.revoked,
            token: None,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkerTokenCollection {
    pub worker_tokens: Vec<WorkerTokenResponse>,
    pub total_entries: usize,
}

/// Creates a named worker token; the token is in `token`, shown only in this answer.
#[utoipa::path(post, path = "/worker-tokens", tag = "Auth", request_body = CreateBody,
    responses((status = 201, body = WorkerTokenResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<WorkerTokenResponse>), ApiError> {
    if let Some(problem) = name_problem(&body.name) {
        return Err(ApiError::Unprocessable(problem));
    }
    let (id, token, hash) = new_token();
    let store = state.engine.store();
    let row = store
        .create_worker_token(id, &body.name, &hash, Some(&principal.username))
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("a worker token named `{}` exists or existed", body.name)))?;
    tracing::info!(token = %body.name, by = %principal.username, "worker token created");
    let mut response = WorkerTokenResponse::from(row);
    response.token = Some(token);
    Ok((StatusCode::CREATED, Json(response)))
}

/// Every named worker token, without its secret.
#[utoipa::path(get, path = "/worker-tokens", tag = "Auth", responses((status = 200, body = WorkerTokenCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<WorkerTokenCollection>, ApiError> {
    let tokens = state.engine.store().list_worker_tokens().await?;
    Ok(Json(WorkerTokenCollection {
        total_entries: tokens.len(),
        worker_tokens: tokens.into_iter().map(Into::into).collect(),
    }))
}

/// Revokes a named worker token: the workers presenting it are refused within seconds, and stop.
#[utoipa::path(delete, path = "/worker-tokens/{name}", tag = "Auth", params(("name" = String, Path)),
    responses((status = 204, description = "Revoked"), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let store = state.engine.store();
    if !store.revoke_worker_token(&name).await? {
        let exists = store.list_worker_tokens().await?.iter().any(|t| t.name == name);
        return Err(if exists {
            ApiError::Conflict(format!("The worker token `{name}` is revoked already"))
        } else {
            ApiError::NotFound(format!("The worker token `{name}` was not found"))
        });
    }
    state.workers.forget(&name);
    tracing::info!(token = %name, by = %principal.username, "worker token revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_back_and_names_are_checked() {
        let (id, token, hash) = new_token();
        let (parsed, secret) = parse(&token).expect("parses");
        assert_eq!(parsed, id);
        assert_eq!(secret_hash(secret), hash);
        assert_eq!(parse("sluice_0190_abc"), None, "an API key is not a worker token");
        assert_eq!(name_problem("etl-workers.eu_1"), None);
        assert!(name_problem("").is_some() && name_problem("a b").is_some() && name_problem("a/b").is_some());
    }
}
