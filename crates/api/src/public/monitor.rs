//! Import errors, health and version.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sluice_store::{ImportErrorFilter, ImportErrorRow};

use crate::auth::Principal;
use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportErrorResponse {
    pub import_error_id: i64,
    pub timestamp: DateTime<Utc>,
    pub filename: String,
    pub bundle_name: Option<String>,
    pub stack_trace: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportErrorCollection {
    pub import_errors: Vec<ImportErrorResponse>,
    pub total_entries: i64,
}

fn import_error_response(e: ImportErrorRow) -> ImportErrorResponse {
    ImportErrorResponse {
        import_error_id: e.id,
        timestamp: e.timestamp,
        filename: e.filename,
        bundle_name: None,
        stack_trace: e.message,
    }
}

/// Import errors the caller may see: those of files whose DAGs it may read, and, if it reads every DAG, those of
/// files with no known DAG (see `ImportErrorFilter`).
#[utoipa::path(get, path = "/importErrors", tag = "ImportError", params(super::Page), responses((status = 200, body = ImportErrorCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn import_errors(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<super::Page>,
) -> Result<Json<ImportErrorCollection>, ApiError> {
    let (limit, offset) = page.checked()?;
    let store = state.engine.store();
    let filter = ImportErrorFilter { hidden_dag_ids: principal.hidden_dags(store).await?, limit, offset, id: None };
    let (rows, total_entries) = store.list_import_errors(&filter).await?;
    let import_errors = rows.into_iter().map(import_error_response).collect();
    Ok(Json(ImportErrorCollection { import_errors, total_entries }))
}

/// One import error; 403, as in Airflow, when it belongs to a DAG the caller may not read.
#[utoipa::path(get, path = "/importErrors/{import_error_id}", tag = "ImportError", params(("import_error_id" = i64, Path)), responses((status = 200, body = ImportErrorResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn import_error(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ImportErrorResponse>, ApiError> {
    let store = state.engine.store();
    let one = ImportErrorFilter { id: Some(id), limit: 1, ..ImportErrorFilter::default() };
    if store.list_import_errors(&one).await?.1 == 0 {
        return Err(ApiError::NotFound(format!("The ImportError with import_error_id: `{id}` was not found")));
    }
    let visible = ImportErrorFilter { hidden_dag_ids: principal.hidden_dags(store).await?, ..one };
    let found = store.list_import_errors(&visible).await?.0.into_iter().next();
    let error = found
        .ok_or_else(|| ApiError::Forbidden("You do not have read permission on any of the DAGs in the file".into()))?;
    Ok(Json(import_error_response(error)))
}

/// A scheduler or worker is healthy when it was heard from this recently (Airflow's default threshold).
const HEALTHY_WITHIN: Duration = Duration::seconds(30);

/// Airflow's health document, plus the workers Sluice knows.
#[utoipa::path(get, path = "/monitor/health", tag = "Monitor", responses((status = 200, body = serde_json::Value)))]
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let store = state.engine.store();
    let database = if store.ping().await.is_ok() { "healthy" } else { "unhealthy" };
    let heartbeat = store.latest_scheduler_heartbeat().await.ok().flatten();
    let now = Utc::now();
    let scheduler = match heartbeat {
        Some(at) if now - at <= HEALTHY_WITHIN => "healthy",
        _ => "unhealthy",
    };
    let workers: Vec<Value> = store
        .list_workers()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|w| {
            json!({
                "name": w.name, "hostname": w.hostname, "queues": w.queues, "slots": w.slots,
                "latest_heartbeat": w.last_seen,
                "status": if now - w.last_seen <= HEALTHY_WITHIN { "healthy" } else { "unhealthy" },
            })
        })
        .collect();
    Json(json!({
        "metadatabase": {"status": database},
        "scheduler": {"status": scheduler, "latest_scheduler_heartbeat": heartbeat},
        "triggerer": {"status": null, "latest_triggerer_heartbeat": null},
        "dag_processor": {"status": scheduler, "latest_dag_processor_heartbeat": heartbeat},
        "workers": workers,
    }))
}

#[utoipa::path(get, path = "/version", tag = "Version", responses((status = 200, body = serde_json::Value)))]
pub async fn version() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION"), "git_version": null}))
}
