//! API keys for machines: `sluice_<key id>_<secret>`, usable wherever a token is. Only the secret's SHA-256 is
//! stored, so a key is shown once, when it is created. A key acts for the user who created it, with the role it
//! was created with but never more than that user's role now; revoking it or deleting its user ends it.
//!
//! Routes (every signed-in user manages their own keys; Admin also those of others):
//! - `POST /auth/api-keys` `{"name", "role"?, "username"?}` → 201 with the key in `key`, shown only this once;
//! - `GET /auth/api-keys` → the caller's keys (every key for Admin), never their secrets;
//! - `DELETE /auth/api-keys/{id}` → 204; the key stops working at once.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_core::Role;
use sluice_store::{ApiKeyRow, NewApiKey, Store};
use uuid::Uuid;

use super::Principal;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};

const PREFIX: &str = "sluice_";

pub(super) fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new secret of 256 random bits, as hex.
pub(super) fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// `(key id, secret)` of something shaped like an API key.
fn parse(token: &str) -> Option<(Uuid, &str)> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    Some((Uuid::try_parse(id).ok()?, secret))
}

pub(super) fn looks_like_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// The principal an API key acts as, or why it does not.
pub(super) async fn authenticate(store: &Store, token: &str) -> Result<Principal, ApiError> {
    let invalid = || ApiError::Unauthorized("invalid API key".into());
    let (id, secret) = parse(token).ok_or_else(invalid)?;
    let key = store.get_api_key(id).await?.ok_or_else(invalid)?;
    if !super::same_secret(&secret_hash(secret), &key.secret_hash) {
        return Err(invalid());
    }
    if key.revoked.is_some() {
        return Err(ApiError::Unauthorized("API key revoked".into()));
    }
    // One write a minute at most per key: enough to tell a forgotten key from a busy one.
    if key.last_used.is_none_or(|t| Utc::now() - t > chrono::Duration::minutes(1)) {
        store.touch_api_key(id).await?;
    }
    Ok(Principal {
        user_id: key.user_id,
        username: key.username,
        role: key.role.min(key.owner_role),
        api_key: Some(id),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    /// Defaults to the owner's role; never above it.
    role: Option<Role>,
    /// Whose key this is; someone else than the caller only for Admin.
    username: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyResponse {
    pub id: Uuid,
    pub name: String,
    pub username: String,
    pub role: Role,
    pub created: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
    pub revoked: Option<DateTime<Utc>>,
    /// The key itself: in the answer to its creation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<ApiKeyRow> for ApiKeyResponse {
    fn from(row: ApiKeyRow) -> Self {
        ApiKeyResponse {
            id: row.id,
            name: row.name,
            username: row.username,
            role: row.role,
            created: row.created,
            last_used: row.last_used,
            revoked: row.revoked,
            key: None,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyCollection {
    pub api_keys: Vec<ApiKeyResponse>,
    pub total_entries: usize,
}

/// Creates an API key; its secret is in `key`, shown only in this answer.
#[utoipa::path(post, path = "/api-keys", tag = "Auth", request_body = CreateBody,
    responses((status = 201, body = ApiKeyResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<ApiKeyResponse>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::Unprocessable("name must have 1 to 200 characters".into()));
    }
    let store = state.engine.store();
    let owner = match body.username.as_deref() {
        Some(username) if username != principal.username => {
            principal.require(Role::Admin, "only Admin creates API keys for other users")?;
            store
                .get_user_by_name(username)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("The user `{username}` was not found")))?
        }
        _ => store
            .get_user(principal.user_id)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the signed-in user no longer exists".into()))?,
    };
    let role = body.role.unwrap_or(owner.role);
    if role > owner.role || role > principal.role {
        return Err(ApiError::Forbidden(format!(
            "an API key cannot have more rights than {}",
            owner.role.min(principal.role)
        )));
    }
    let id = Uuid::now_v7();
    let secret = new_secret();
    let hash = secret_hash(&secret);
    let row = store.create_api_key(&NewApiKey { id, name, user_id: owner.id, role, secret_hash: &hash }).await?;
    tracing::info!(key = %id, owner = %owner.username, %role, by = %principal.username, "API key created");
    let mut response = ApiKeyResponse::from(row);
    response.key = Some(format!("{PREFIX}{}_{secret}", id.simple()));
    Ok((StatusCode::CREATED, Json(response)))
}

/// The caller's API keys (every key for Admin), without their secrets.
#[utoipa::path(get, path = "/api-keys", tag = "Auth", responses((status = 200, body = ApiKeyCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<ApiKeyCollection>, ApiError> {
    let owner = (principal.role < Role::Admin).then_some(principal.user_id);
    let keys = state.engine.store().list_api_keys(owner).await?;
    Ok(Json(ApiKeyCollection { total_entries: keys.len(), api_keys: keys.into_iter().map(Into::into).collect() }))
}

/// Revokes an API key: it stops working at once.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "Auth", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked"), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound(format!("The API key `{id}` was not found"));
    let key_id = Uuid::try_parse(&id).map_err(|_| not_found())?;
    let store = state.engine.store();
    let key = store.get_api_key(key_id).await?.ok_or_else(not_found)?;
    // Someone else's key is as good as missing: its existence is not the caller's business.
    if key.user_id != principal.user_id && principal.role < Role::Admin {
        return Err(not_found());
    }
    if !store.revoke_api_key(key_id).await? {
        return Err(ApiError::Conflict(format!("The API key `{id}` is revoked already")));
    }
    tracing::info!(key = %key_id, by = %principal.username, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_into_id_and_secret() {
        let id = Uuid::now_v7();
        let key = format!("{PREFIX}{}_abc123", id.simple());
        assert_eq!(parse(&key), Some((id, "abc123")));
        assert!(looks_like_key(&key));
        assert_eq!(parse("sluice_nothex_abc"), None);
        assert_eq!(parse("eyJhbGciOi.x.y"), None);
    }
}
