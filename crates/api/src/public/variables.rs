//! `/api/v2/variables`: the values templates read as `{{ var.value.<key> }}` and `{{ var.json.<key> }}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sluice_store::VariableRow;

use crate::extract::{ApiJson, ApiQuery};
use crate::{ApiError, AppState};

/// Airflow 3's `VariableResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariableResponse {
    pub key: String,
    pub value: String,
    pub description: Option<String>,
    pub is_encrypted: bool,
}

impl From<VariableRow> for VariableResponse {
    fn from(row: VariableRow) -> Self {
        VariableResponse { key: row.key, value: row.value, description: row.description, is_encrypted: false }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariableCollection {
    pub variables: Vec<VariableResponse>,
    pub total_entries: i64,
}

/// Airflow 3's `VariableBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableBody {
    key: String,
    value: String,
    description: Option<String>,
}

fn not_found(key: &str) -> ApiError {
    ApiError::NotFound(format!("The Variable with key: `{key}` was not found"))
}

fn checked_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 250 {
        return Err(ApiError::Unprocessable("key must have 1 to 250 characters".into()));
    }
    Ok(())
}

#[utoipa::path(get, path = "/variables", tag = "Variable", params(super::Page), responses((status = 200, body = VariableCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<super::Page>,
) -> Result<Json<VariableCollection>, ApiError> {
    let (limit, offset) = page.checked()?;
    let all = state.engine.store().list_variables().await?;
    let total_entries = i64::try_from(all.len()).unwrap_or(i64::MAX);
    let variables = all
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(Into::into)
        .collect();
    Ok(Json(VariableCollection { variables, total_entries }))
}

#[utoipa::path(get, path = "/variables/{variable_key}", tag = "Variable", params(("variable_key" = String, Path)), responses((status = 200, body = VariableResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn get(State(state): State<AppState>, Path(key): Path<String>) -> Result<Json<VariableResponse>, ApiError> {
    let row = state.engine.store().get_variable(&key).await?.ok_or_else(|| not_found(&key))?;
    Ok(Json(row.into()))
}

#[utoipa::path(post, path = "/variables", tag = "Variable", request_body = VariableBody, responses((status = 201, body = VariableResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VariableBody>,
) -> Result<(StatusCode, Json<VariableResponse>), ApiError> {
    checked_key(&body.key)?;
    let store = state.engine.store();
    if !store.create_variable(&body.key, &body.value, body.description.as_deref()).await? {
        return Err(ApiError::Conflict(format!("The Variable with key: `{}` already exists", body.key)));
    }
    let row = store.get_variable(&body.key).await?.ok_or_else(|| not_found(&body.key))?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[utoipa::path(patch, path = "/variables/{variable_key}", tag = "Variable", params(("variable_key" = String, Path)), request_body = VariableBody, responses((status = 200, body = VariableResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<VariableBody>,
) -> Result<Json<VariableResponse>, ApiError> {
    if body.key != key {
        return Err(ApiError::BadRequest(format!("the body's key {:?} does not match the path's {key:?}", body.key)));
    }
    let store = state.engine.store();
    store.get_variable(&key).await?.ok_or_else(|| not_found(&key))?;
    store.set_variable(&key, &body.value, body.description.as_deref()).await?;
    let row = store.get_variable(&key).await?.ok_or_else(|| not_found(&key))?;
    Ok(Json(row.into()))
}

#[utoipa::path(delete, path = "/variables/{variable_key}", tag = "Variable", params(("variable_key" = String, Path)), responses((status = 204, description = "Deleted"), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Path(key): Path<String>) -> Result<StatusCode, ApiError> {
    if state.engine.store().delete_variable(&key).await? { Ok(StatusCode::NO_CONTENT) } else { Err(not_found(&key)) }
}
