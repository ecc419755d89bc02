//! `/api/v2/pools`: named slot budgets shared by every DAG's task instances.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sluice_core::spec::DEFAULT_POOL;
use sluice_store::{PoolRow, PoolSettings};

use super::UpdateMask;
use crate::extract::{ApiJson, ApiQuery};
use crate::{ApiError, AppState};

/// Airflow 3's `PoolResponse`. Sluice has no deferred tasks, so `deferred_slots` is always 0.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PoolResponse {
    pub name: String,
    pub slots: i64,
    pub description: Option<String>,
    pub include_deferred: bool,
    pub occupied_slots: i64,
    pub running_slots: i64,
    pub queued_slots: i64,
    pub scheduled_slots: i64,
    pub open_slots: i64,
    pub deferred_slots: i64,
    pub team_name: Option<String>,
}

impl From<PoolRow> for PoolResponse {
    fn from(row: PoolRow) -> Self {
        PoolResponse {
            occupied_slots: row.occupied_slots(),
            open_slots: row.open_slots(),
            name: row.name,
            slots: row.slots,
            description: row.description,
            include_deferred: row.include_deferred,
            running_slots: row.running_slots,
            queued_slots: row.queued_slots,
            scheduled_slots: row.scheduled_slots,
            deferred_slots: 0,
            team_name: None,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PoolCollection {
    pub pools: Vec<PoolResponse>,
    pub total_entries: i64,
}

/// Airflow 3's `PoolBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolBody {
    name: String,
    slots: i64,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    include_deferred: bool,
}

/// Airflow 3's `PoolPatchBody`: every field optional, `update_mask` chooses which apply.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolPatchBody {
    #[serde(default, alias = "pool")]
    name: Option<String>,
    #[serde(default)]
    slots: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    include_deferred: Option<bool>,
}

fn checked(pool: PoolSettings) -> Result<PoolSettings, ApiError> {
    if pool.name.trim().is_empty() || pool.name.len() > 256 {
        return Err(ApiError::Unprocessable("name must have 1 to 256 characters".into()));
    }
    if pool.slots < -1 {
        return Err(ApiError::Unprocessable(format!("slots {} must be -1 (unlimited) or more", pool.slots)));
    }
    Ok(pool)
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("The Pool with name: `{name}` was not found"))
}

async fn find(state: &AppState, name: &str) -> Result<PoolRow, ApiError> {
    state.engine.store().get_pool(name).await?.ok_or_else(|| not_found(name))
}

#[utoipa::path(get, path = "/pools", tag = "Pool", params(super::Page), responses((status = 200, body = PoolCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<super::Page>,
) -> Result<Json<PoolCollection>, ApiError> {
    let (limit, offset) = page.checked()?;
    let (rows, total_entries) = state.engine.store().list_pools(limit, offset).await?;
    Ok(Json(PoolCollection { pools: rows.into_iter().map(Into::into).collect(), total_entries }))
}

#[utoipa::path(get, path = "/pools/{pool_name}", tag = "Pool", params(("pool_name" = String, Path)), responses((status = 200, body = PoolResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<PoolResponse>, ApiError> {
    Ok(Json(find(&state, &name).await?.into()))
}

#[utoipa::path(post, path = "/pools", tag = "Pool", request_body = PoolBody, responses((status = 201, body = PoolResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PoolBody>,
) -> Result<(StatusCode, Json<PoolResponse>), ApiError> {
    let pool = checked(PoolSettings {
        name: body.name,
        slots: body.slots,
        description: body.description,
        include_deferred: body.include_deferred,
    })?;
    if !state.engine.store().create_pool(&pool).await? {
        return Err(ApiError::Conflict(format!("The Pool with name: `{}` already exists", pool.name)));
    }
    tracing::info!(pool = pool.name, slots = pool.slots, "pool created");
    Ok((StatusCode::CREATED, Json(find(&state, &pool.name).await?.into())))
}

#[utoipa::path(patch, path = "/pools/{pool_name}", tag = "Pool", params(("pool_name" = String, Path), UpdateMask), request_body = PoolPatchBody, responses((status = 200, body = PoolResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(mask): ApiQuery<UpdateMask>,
    ApiJson(body): ApiJson<PoolPatchBody>,
) -> Result<Json<PoolResponse>, ApiError> {
    let old = find(&state, &name).await?;
    let update = mask.fields(&["name", "slots", "description", "include_deferred"])?;
    let pick = |field: &str| update.contains(&field);
    let new_name = body.name.filter(|_| pick("name")).unwrap_or_else(|| old.name.clone());
    if name == DEFAULT_POOL && new_name != name {
        return Err(ApiError::BadRequest("The default pool cannot be renamed".into()));
    }
    let pool = checked(PoolSettings {
        name: new_name,
        slots: body.slots.filter(|_| pick("slots")).unwrap_or(old.slots),
        description: if pick("description") && body.description.is_some() { body.description } else { old.description },
        include_deferred: body.include_deferred.filter(|_| pick("include_deferred")).unwrap_or(old.include_deferred),
    })?;
    let store = state.engine.store();
    if pool.name != name && store.get_pool(&pool.name).await?.is_some() {
        return Err(ApiError::Conflict(format!("The Pool with name: `{}` already exists", pool.name)));
    }
    if !store.update_pool(&name, &pool).await? {
        return Err(not_found(&name));
    }
    Ok(Json(find(&state, &pool.name).await?.into()))
}

#[utoipa::path(delete, path = "/pools/{pool_name}", tag = "Pool", params(("pool_name" = String, Path)), responses((status = 204, description = "Deleted"), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    if name == DEFAULT_POOL {
        return Err(ApiError::BadRequest("Default Pool can't be deleted".into()));
    }
    if state.engine.store().delete_pool(&name).await? { Ok(StatusCode::NO_CONTENT) } else { Err(not_found(&name)) }
}
