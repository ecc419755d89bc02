//! `/api/v2/.../taskInstances/{task_id}/xcomEntries`: a task instance's keyed outputs, as Airflow's XCom entries.
//! What a task returns is the entry `return_value`; the values it pushed under other keys, and those created here,
//! are entries of their own keys (see `sluice_core::xcom`). A value the lake keeps is read back from it when an
//! entry is read, and a value above the database's limit given here is written to it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::xcom::{XComValue, check_key, lake_uri, store_value};
use sluice_store::{DagRunRow, TaskInstanceRow, XComRow};

use crate::extract::{ApiJson, ApiQuery};
use crate::{ApiError, AppState};

/// Airflow 3's `XComResponse`, plus `value` when one entry is read or written (`XComResponseNative`/
/// `XComResponseString`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct XComResponse {
    pub key: String,
    pub timestamp: DateTime<Utc>,
    pub logical_date: Option<DateTime<Utc>>,
    pub map_index: i64,
    pub task_id: String,
    pub dag_id: String,
    pub run_id: String,
    pub dag_display_name: String,
    pub task_display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct XComCollection {
    pub xcom_entries: Vec<XComResponse>,
    pub total_entries: i64,
}

fn response(run: &DagRunRow, ti: &TaskInstanceRow, entry: &XComRow) -> XComResponse {
    XComResponse {
        key: entry.key.clone(),
        timestamp: entry.updated.or(ti.end_date).or(ti.start_date).unwrap_or(run.run_after),
        logical_date: run.logical_date,
        map_index: ti.map_index,
        task_id: ti.task_id.clone(),
        dag_id: ti.dag_id.clone(),
        run_id: ti.run_id.clone(),
        dag_display_name: ti.dag_id.clone(),
        task_display_name: ti.task_id.clone(),
        value: None,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    xcom_key: Option<String>,
    map_index: Option<i64>,
}

#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries", tag = "XCom", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), ListQuery), responses((status = 200, body = XComCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<XComCollection>, ApiError> {
    let (limit, offset) = super::Page { limit: q.limit, offset: q.offset }.checked()?;
    let (run, ti) = super::tasks::find(&state, &dag_id, &run_id, &task_id, q.map_index.unwrap_or(-1)).await?;
    let mut entries = state.engine.store().xcom_entries(&ti).await?;
    entries.retain(|e| q.xcom_key.as_ref().is_none_or(|key| *key == e.key));
    let total_entries = i64::try_from(entries.len()).unwrap_or(i64::MAX);
    let xcom_entries = entries
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|e| response(&run, &ti, e))
        .collect();
    Ok(Json(XComCollection { xcom_entries, total_entries }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    #[serde(default = "unmapped")]
    map_index: i64,
    /// Values are stored as JSON already, so there is nothing to deserialize; accepted for Airflow's clients.
    #[serde(default, rename = "deserialize")]
    _deserialize: bool,
    /// Answer the value as a string instead of as JSON.
    #[serde(default)]
    stringify: bool,
}

fn unmapped() -> i64 {
    -1
}

#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}", tag = "XCom", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), ("xcom_key" = String, Path), GetQuery), responses((status = 200, body = XComResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path((dag_id, run_id, task_id, key)): Path<(String, String, String, String)>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> Result<Json<XComResponse>, ApiError> {
    let (run, ti) = super::tasks::find(&state, &dag_id, &run_id, &task_id, q.map_index).await?;
    let entry = state.engine.store().xcom_entry(&ti, &key).await?;
    let entry = entry.ok_or_else(|| ApiError::NotFound(format!("XCom entry with key: `{key}` not found")))?;
    let mut found = response(&run, &ti, &entry);
    let value = load(&state, entry.value).await?;
    found.value = Some(if q.stringify { Value::String(value.to_string()) } else { value });
    Ok(Json(found))
}

/// Airflow 3's `XComCreateBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct XComCreateBody {
    pub key: String,
    pub value: Value,
    #[serde(default = "unmapped")]
    pub map_index: i64,
}

#[utoipa::path(post, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries", tag = "XCom", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path)), request_body = XComCreateBody, responses((status = 201, body = XComResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<XComCreateBody>,
) -> Result<(StatusCode, Json<XComResponse>), ApiError> {
    check_key(&body.key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (run, ti) = super::tasks::find(&state, &dag_id, &run_id, &task_id, body.map_index).await?;
    let store = state.engine.store();
    let exists = || {
        ApiError::Conflict(format!("The XCom with key: `{}` with mentioned task instance already exists.", body.key))
    };
    // Before the value is written anywhere: a large one would replace the existing entry's in the lake.
    if store.xcom_entry(&ti, &body.key).await?.is_some() {
        return Err(exists());
    }
    let kept = keep(&state, &ti, &body.key, body.value.clone()).await?;
    if !store.create_xcom(ti.id, &body.key, &kept, chrono::Utc::now()).await? {
        return Err(exists());
    }
    written(&state, &run, &ti, &body.key, body.value).await.map(|written| (StatusCode::CREATED, written))
}

/// Airflow 3's `XComUpdateBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct XComUpdateBody {
    pub value: Value,
    #[serde(default = "unmapped")]
    pub map_index: i64,
}

#[utoipa::path(patch, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}", tag = "XCom", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), ("xcom_key" = String, Path)), request_body = XComUpdateBody, responses((status = 200, body = XComResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Path((dag_id, run_id, task_id, key)): Path<(String, String, String, String)>,
    ApiJson(body): ApiJson<XComUpdateBody>,
) -> Result<Json<XComResponse>, ApiError> {
    let (run, ti) = super::tasks::find(&state, &dag_id, &run_id, &task_id, body.map_index).await?;
    let store = state.engine.store();
    let missing =
        || ApiError::NotFound(format!("The XCom with key: `{key}` with mentioned task instance doesn't exist."));
    if store.xcom_entry(&ti, &key).await?.is_none() {
        return Err(missing());
    }
    let kept = keep(&state, &ti, &key, body.value.clone()).await?;
    if !store.update_xcom(ti.id, &key, &kept, chrono::Utc::now()).await? {
        return Err(missing());
    }
    written(&state, &run, &ti, &key, body.value).await
}

/// The entry as written, with its value.
async fn written(
    state: &AppState,
    run: &DagRunRow,
    ti: &TaskInstanceRow,
    key: &str,
    value: Value,
) -> Result<Json<XComResponse>, ApiError> {
    let entry = state.engine.store().xcom_entry(ti, key).await?;
    let entry = entry.ok_or_else(|| ApiError::NotFound(format!("XCom entry with key: `{key}` not found")))?;
    Ok(Json(XComResponse { value: Some(value), ..response(run, ti, &entry) }))
}

/// `value` as the database keeps it: written to the lake first when it is above the database's limit.
async fn keep(state: &AppState, ti: &TaskInstanceRow, key: &str, value: Value) -> Result<XComValue, ApiError> {
    let uri = lake_uri(&ti.dag_id, &ti.run_id, &ti.task_id, ti.map_index, key);
    let (engine, key) = (state.engine.clone(), key.to_owned());
    let kept = tokio::task::spawn_blocking(move || store_value(&key, value, || uri, engine.lake(), "server")).await;
    match kept {
        Ok(Ok(kept)) => Ok(kept),
        Ok(Err(e)) => Err(ApiError::Internal(e.to_string())),
        Err(e) => Err(ApiError::Internal(format!("writing the value failed: {e}"))),
    }
}

/// The value itself, read back from the lake when it is kept there.
async fn load(state: &AppState, value: XComValue) -> Result<Value, ApiError> {
    if let XComValue::Inline(value) = value {
        return Ok(value);
    }
    let engine = state.engine.clone();
    match tokio::task::spawn_blocking(move || value.load(engine.lake())).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ApiError::Internal(e.to_string())),
        Err(e) => Err(ApiError::Internal(format!("reading the value failed: {e}"))),
    }
}
