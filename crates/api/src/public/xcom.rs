//! `/api/v2/.../taskInstances/{task_id}/xcomEntries`: task outputs, read as Airflow's XCom entries. A task's
//! output (its `::output::` line or `$SLUICE_OUTPUT` file) is the entry with Airflow's key `return_value`.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_store::{DagRunRow, TaskInstanceRow};

use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

/// The key under which Airflow stores what a task returns.
const RETURN_VALUE: &str = "return_value";

/// Airflow 3's `XComResponse`, plus `value` when one entry is read (`XComResponseNative`/`XComResponseString`).
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

fn entry(run: &DagRunRow, ti: &TaskInstanceRow) -> Option<XComResponse> {
    ti.output.as_ref()?;
    Some(XComResponse {
        key: RETURN_VALUE.into(),
        timestamp: ti.end_date.or(ti.start_date).unwrap_or(run.run_after),
        logical_date: run.logical_date,
        map_index: ti.map_index,
        task_id: ti.task_id.clone(),
        dag_id: ti.dag_id.clone(),
        run_id: ti.run_id.clone(),
        dag_display_name: ti.dag_id.clone(),
        task_display_name: ti.task_id.clone(),
        value: None,
    })
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
    super::Page { limit: q.limit, offset: q.offset }.checked()?;
    let (run, ti) = super::tasks::find(&state, &dag_id, &run_id, &task_id, q.map_index.unwrap_or(-1)).await?;
    let wanted = q.xcom_key.as_deref().is_none_or(|k| k == RETURN_VALUE) && q.offset == 0 && q.limit > 0;
    let xcom_entries: Vec<_> = entry(&run, &ti).filter(|_| wanted).into_iter().collect();
    let total_entries = i64::try_from(xcom_entries.len()).unwrap_or(0);
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
    let missing = || ApiError::NotFound(format!("XCom entry with key: `{key}` not found"));
    if key != RETURN_VALUE {
        return Err(missing());
    }
    let mut found = entry(&run, &ti).ok_or_else(missing)?;
    let value = ti.output.unwrap_or(Value::Null);
    found.value = Some(if q.stringify { Value::String(value.to_string()) } else { value });
    Ok(Json(found))
}
