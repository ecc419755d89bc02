//! The worker protocol, `/worker/v1`: lease, heartbeat, logs, report. Only workers holding the shared worker token
//! or a named one ([`crate::auth::WorkerAuth`]) get in; an answer of 409 tells a worker that its lease is gone and
//! it must drop the task.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Json, Router};
use sluice_core::protocol::{
    HeartbeatRequest, HeartbeatResponse, LeaseRequest, LeaseResponse, LogBatch, ReportRequest,
};
use uuid::Uuid;

use crate::auth::WorkerCredential;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/lease", post(lease))
        .route("/tasks/{ti_id}/heartbeat", post(heartbeat))
        .route("/tasks/{ti_id}/logs", post(logs))
        .route("/tasks/{ti_id}/report", post(report))
        .layer(middleware::from_fn_with_state(state, require_worker_token))
}

async fn require_worker_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = presented else {
        return Err(ApiError::Unauthorized("missing worker token: send Authorization: Bearer <token>".into()));
    };
    let credential = state.workers.check(state.engine.store(), token).await?;
    request.extensions_mut().insert(credential);
    Ok(next.run(request).await)
}

async fn lease(
    State(state): State<AppState>,
    Extension(credential): Extension<WorkerCredential>,
    ApiJson(request): ApiJson<LeaseRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    if request.queues.is_empty() {
        return Err(ApiError::BadRequest("a worker must serve at least one queue".into()));
    }
    let tasks = state.engine.lease(&request).await?;
    // After the lease, which writes the worker's row on its first call.
    state.workers.note_use(state.engine.store(), &credential, &request.worker).await?;
    Ok(Json(LeaseResponse { tasks }))
}

async fn heartbeat(
    State(state): State<AppState>,
    Path(ti_id): Path<Uuid>,
    ApiJson(request): ApiJson<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    Ok(Json(state.engine.heartbeat(ti_id, request.lease_id).await?))
}

async fn logs(
    State(state): State<AppState>,
    Path(ti_id): Path<Uuid>,
    ApiJson(batch): ApiJson<LogBatch>,
) -> Result<StatusCode, ApiError> {
    state.engine.append_logs(ti_id, &batch).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn report(
    State(state): State<AppState>,
    Path(ti_id): Path<Uuid>,
    ApiJson(request): ApiJson<ReportRequest>,
) -> Result<StatusCode, ApiError> {
    state.engine.report(ti_id, &request).await?;
    Ok(StatusCode::NO_CONTENT)
}
