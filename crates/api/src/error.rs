//! Errors as users read them: JSON `{"detail": …}` with the status Airflow would use.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_scheduler::EngineError;

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
    /// A failure of the server itself, not of the request.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] sluice_store::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::Engine(EngineError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::Engine(EngineError::Invalid(_)) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) | ApiError::Engine(EngineError::Conflict(_) | EngineError::StaleLease) => {
                StatusCode::CONFLICT
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Internal(_)
            | ApiError::Engine(EngineError::Store(_) | EngineError::BadVersion { .. })
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
        if status.is_server_error() {
            tracing::error!(error = %this, "request failed");
        }
        (status, Json(json!({ "detail": this.to_string() }))).into_response()
    }
}
