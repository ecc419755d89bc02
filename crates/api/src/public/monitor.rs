//! Import errors, health and version.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::extract::ApiQuery;
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

#[utoipa::path(get, path = "/importErrors", tag = "ImportError", params(super::Page), responses((status = 200, body = ImportErrorCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn import_errors(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<super::Page>,
) -> Result<Json<ImportErrorCollection>, ApiError> {
    let (limit, offset) = page.checked()?;
    let (rows, total_entries) = state.engine.store().list_import_errors(limit, offset).await?;
    let import_errors = rows
        .into_iter()
        .map(|e| ImportErrorResponse {
            import_error_id: e.id,
            timestamp: e.timestamp,
            filename: e.filename,
            bundle_name: None,
            stack_trace: e.message,
        })
        .collect();
    Ok(Json(ImportErrorCollection { import_errors, total_entries }))
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
