//! Errors as users read them: JSON `{"detail": …}` with the status Airflow would use.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_core::protocol::UNAVAILABLE_HEADER;
use sluice_scheduler::EngineError;

/// `Retry-After` of a 503 while the database cannot be reached: about what a restart of PostgreSQL takes.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    /// A well-formed request that asks for something impossible.
    #[error("{0}")]
    BadRequest(String),
    /// A body or query that does not match the expected shape (FastAPI, and so Airflow, answers 422).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but the caller's role or the DAG's `access_control` does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed sign-ins: `Retry-After` says in how many seconds to try again.
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after_secs: u64 },
    /// A request body over the server's limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A failure of the server itself, not of the request.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] sluice_store::Error),
}

impl ApiError {
    /// A request body over [`crate::BODY_LIMIT`].
    pub fn body_too_large() -> ApiError {
        ApiError::PayloadTooLarge(format!("the request body is larger than {} MiB", crate::BODY_LIMIT >> 20))
    }

    /// Whether the database could not be reached: the same request may succeed in a moment.
    fn is_unavailable(&self) -> bool {
        match self {
            ApiError::Store(e) | ApiError::Engine(EngineError::Store(e)) => e.is_unavailable(),
            _ => false,
        }
    }

    fn status(&self) -> StatusCode {
        if self.is_unavailable() {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        match self {
            ApiError::NotFound(_) | ApiError::Engine(EngineError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::Engine(EngineError::Invalid(_)) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) | ApiError::Engine(EngineError::Conflict(_) | EngineError::StaleLease) => {
                StatusCode::CONFLICT
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_)
            | ApiError::Engine(EngineError::Store(_) | EngineError::BadVersion { .. } | EngineError::Log { .. })
            | ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let this = match self {
            ApiError::Store(ref e) | ApiError::Engine(EngineError::Store(ref e)) if e.is_unstorable_text() => {
                ApiError::Unprocessable("text values must not contain NUL characters (\\u0000)".into())
            }
            other => other,
        };
        let status = this.status();
        if this.is_unavailable() {
            // The scheduler loop says once that the database is away; every request failing meanwhile is no news.
            tracing::debug!(error = %this, "request failed: the database cannot be reached");
            let detail = format!("the database cannot be reached; try again shortly ({this})");
            let mut response = (status, Json(json!({ "detail": detail }))).into_response();
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS));
            headers.insert(UNAVAILABLE_HEADER, HeaderValue::from_static("database"));
            return response;
        }
        if status.is_server_error() {
            tracing::error!(error = %this, "request failed");
        }
        let mut response = (status, Json(json!({ "detail": this.to_string() }))).into_response();
        if let ApiError::TooManyRequests { retry_after_secs, .. } = this {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}
