//! Users, for Admin: the REST side of `sluice users`. Passwords are hashed with argon2 and never answered.
//!
//! Routes (Admin only, by the rule table):
//! - `GET /auth/users` → every user, by name;
//! - `POST /auth/users` `{"username", "password", "role"}` → 201; 409 when the name is taken;
//! - `PATCH /auth/users/{username}` `{"role"}` → the user; their tokens and keys act with it at once;
//! - `DELETE /auth/users/{username}` → 204, with their API keys.
//!
//! Admin cannot change their own role nor delete themselves (409), so that an Admin is always left to undo a
//! mistake.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_core::Role;
use sluice_store::UserRow;

use super::{Principal, hash_password};
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};

/// Why a username cannot be used, if it cannot: 1 to 100 characters, no whitespace.
pub fn username_problem(username: &str) -> Option<&'static str> {
    let ok = !username.is_empty() && username.len() <= 100 && !username.chars().any(char::is_whitespace);
    (!ok).then_some("a username has 1 to 100 characters and no whitespace")
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    username: String,
    password: String,
    role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    pub username: String,
    pub role: Role,
    pub created: DateTime<Utc>,
}

impl From<UserRow> for UserResponse {
    fn from(row: UserRow) -> Self {
        UserResponse { username: row.username, role: row.role, created: row.created }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserCollection {
    pub users: Vec<UserResponse>,
    pub total_entries: usize,
}

/// Every user, by name.
#[utoipa::path(get, path = "/users", tag = "Auth", responses((status = 200, body = UserCollection),
    (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<UserCollection>, ApiError> {
    let users: Vec<UserResponse> = state.engine.store().list_users().await?.into_iter().map(Into::into).collect();
    Ok(Json(UserCollection { total_entries: users.len(), users }))
}

/// Creates a user who signs in with `POST /auth/token`.
#[utoipa::path(post, path = "/users", tag = "Auth", request_body = CreateUserBody,
    responses((status = 201, body = UserResponse),
    (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<(StatusCode, Json<UserResponse>), ApiError> {
    if let Some(problem) = username_problem(&body.username) {
        return Err(ApiError::Unprocessable(problem.into()));
    }
    if body.password.len() < 8 {
        return Err(ApiError::Unprocessable("password must have at least 8 characters".into()));
    }
    let password = body.password;
    // argon2 takes tens of milliseconds of CPU on purpose: keep it off the async workers.
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = state
        .engine
        .store()
        .create_user(&body.username, &hash, body.role)
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("The user `{}` exists already", body.username)))?;
    tracing::info!(username = %user.username, role = %user.role, by = %principal.username, "user created");
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    role: Role,
}

/// Gives a user another role; requests with their tokens and API keys are judged by it from now on.
#[utoipa::path(patch, path = "/users/{username}", tag = "Auth", params(("username" = String, Path)),
    request_body = UpdateUserBody, responses((status = 200, body = UserResponse),
    (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateUserBody>,
) -> Result<Json<UserResponse>, ApiError> {
    if username == principal.username {
        return Err(ApiError::Conflict("you cannot change your own role: ask another Admin".into()));
    }
    let user = state
        .engine
        .store()
        .set_user_role(&username, body.role)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("The user `{username}` was not found")))?;
    tracing::info!(%username, role = %user.role, by = %principal.username, "user role changed");
    Ok(Json(user.into()))
}

/// Deletes a user and their API keys; their tokens stop working at once.
#[utoipa::path(delete, path = "/users/{username}", tag = "Auth", params(("username" = String, Path)),
    responses((status = 204, description = "Deleted"),
    (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if username == principal.username {
        return Err(ApiError::Conflict("you cannot delete yourself: ask another Admin".into()));
    }
    if !state.engine.store().delete_user(&username).await? {
        return Err(ApiError::NotFound(format!("The user `{username}` was not found")));
    }
    tracing::info!(%username, by = %principal.username, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}
