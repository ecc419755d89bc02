//! Sluice's HTTP surface, one router per area:
//!
//! - [`public`]: the REST API under `/api/v2`, following Airflow 3's paths, field names and status codes so that
//!   Airflow users' scripts and clients keep working.
//! - [`audit`]: the audit log of every change made over the API.
//! - [`auth`]: `/auth` (tokens, API keys) and the rules that decide who may call what under `/api/v2`.
//! - [`worker`]: the worker protocol under `/worker/v1` (lease, heartbeat, logs, report), behind the worker token.
//! - [`dashboard`]: the web dashboard, embedded in the binary, at `/`, and [`ui`], the API it reads under
//!   `/api/v2/ui`.
//! - [`metrics`]: `/metrics` for Prometheus.
//! - [`inference`]: the Open Inference Protocol v2 under `/v2`, predictions from the model registry ([`serving`]),
//!   a sample of which is logged for monitoring ([`prediction_log`]).
//!
//! Handlers are thin: they check input, call the [`Engine`] or the store, and shape the answer.

pub mod audit;
pub mod auth;
pub mod dashboard;
mod error;
mod extract;
pub mod inference;
pub mod metrics;
pub mod openapi;
pub mod prediction_log;
pub mod public;
pub mod serving;
pub mod ui;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sluice_scheduler::Engine;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// The tokens workers present as `Authorization: Bearer …`: the shared one and the named ones.
    pub workers: Arc<auth::WorkerAuth>,
    /// How users' tokens are signed and checked.
    pub auth: Arc<auth::AuthConfig>,
    /// The model versions that answer predictions.
    pub serving: Arc<serving::Serving>,
    /// Failed sign-ins counted against their limits.
    pub sign_in: Arc<auth::SignInThrottle>,
    /// Runs and task instances changing state, for the dashboard's event streams.
    pub feed: Arc<ui::ChangeFeed>,
}

/// Request bodies larger than this are refused with 413 (log batches are the largest legitimate ones).
pub(crate) const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The whole application: API (with its OpenAPI document), worker protocol, dashboard and `/health`.
pub fn router(state: AppState) -> Router {
    let guard = middleware::from_fn_with_state(state.clone(), auth::authorize);
    let (api, doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v2", public::router())
        .nest("/auth", auth::router())
        .split_for_parts();
    // The routes once more, without the recorder, for it to read what a change changes.
    let reads = api.clone().layer(guard.clone()).with_state(state.clone());
    let audit = middleware::from_fn_with_state(audit::Recorder { state: state.clone(), reads }, audit::record);
    let doc: Arc<str> = doc.to_json().unwrap_or_default().into();
    let router = Router::new()
        // The recorder runs inside the guard: it sees who the caller is, and only calls that passed the checks.
        .merge(api.layer(audit).layer(guard.clone()))
        .merge(inference::router().layer(guard.clone()))
        .route("/metrics", get(metrics::scrape).layer(guard))
        .route("/api/v2/openapi.json", get(move || openapi_json(doc.clone())))
        .nest(sluice_core::protocol::WORKER_API_PREFIX, worker::router(state.clone()))
        .route("/health", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .merge(dashboard::router());
    with_common_layers(router).with_state(state)
}

/// What every route of every router gets: the body limit, JSON 413s, request tracing.
fn with_common_layers(router: Router<AppState>) -> Router<AppState> {
    router
        // One limit for every route: axum's extractors would otherwise stop at their own default of 2 MB.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(middleware::map_response(json_payload_too_large))
        .layer(TraceLayer::new_for_http().on_failure(log_failure))
        .layer(middleware::from_fn(metrics::track))
}

/// Logs a failed request as tower-http does, except the 503s of a database outage: the scheduler loop says once
/// that the database is away, and an error line for every request meanwhile would bury that.
fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    let latency = latency.as_millis();
    match class {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(latency_ms = latency, "response failed: 503");
        }
        class => tracing::error!(classification = %class, latency_ms = latency, "response failed"),
    }
}

/// What `sluice serve` answers: the model registry's reads and predictions under `/api/v2/models`, the Open
/// Inference Protocol under `/v2`, sign-in under `/auth` and `/health`; no worker protocol, no scheduling.
pub fn serving_router(state: AppState) -> Router {
    let guard = middleware::from_fn_with_state(state.clone(), auth::authorize);
    let (api, _) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v2", public::models_router())
        .nest("/auth", auth::router())
        .split_for_parts();
    let router = Router::new()
        .merge(api.layer(guard.clone()))
        .merge(inference::router().layer(guard))
        .route("/health", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }));
    with_common_layers(router).with_state(state)
}

/// tower-http refuses a body whose `Content-Length` is over the limit with a plain-text 413; Sluice's errors are
/// JSON everywhere.
async fn json_payload_too_large(response: Response) -> Response {
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !json {
        return ApiError::body_too_large().into_response();
    }
    response
}

async fn openapi_json(doc: Arc<str>) -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], doc.to_string())
}
