//! The audit log's recorder: every change asked of the API (a `POST`, `PUT`, `PATCH` or `DELETE` that passed the
//! sign-in and role checks) is recorded with its caller, the caller's address, the route, the DAG, run and task it
//! names, the request body with its secrets masked, and the answer's status. `GET /api/v2/eventLogs` serves it.
//!
//! A change of one resource (a `PATCH`, `PUT` or `DELETE` of a route with a path parameter: a DAG, a run, a task
//! instance, a variable, a connection, a pool) also keeps the resource as it was before and after, read with `GET`
//! on the same path as the caller, so what the caller may not read is not kept, and masked as the body is.

use axum::body::Body;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{RequestPartsExt, Router};
use chrono::Utc;
use serde_json::{Value, json};
use sluice_core::masking::{MASK, Masker};
use sluice_store::NewEvent;

use crate::auth::{Principal, client_address};
use crate::metrics::route_pattern;
use crate::{ApiError, AppState, BODY_LIMIT};

/// What the recorder needs: the application's state, and the API's routes without the recorder, to read a
/// resource before and after its change.
#[derive(Clone)]
pub struct Recorder {
    pub state: AppState,
    pub reads: Router,
}

pub async fn record(State(recorder): State<Recorder>, request: Request, next: Next) -> Response {
    let state = &recorder.state;
    let changes = matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    let route = request.extensions().get::<MatchedPath>().map(route_pattern);
    // Signing in changes nothing, and its body is a password.
    let (Some(route), true) = (route, changes) else { return next.run(request).await };
    if route == "/auth/token" {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let params: Vec<(String, String)> = match parts.extract::<RawPathParams>().await {
        Ok(params) => params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        Err(_) => Vec::new(),
    };
    let owner = parts.extensions.get::<Principal>().map(|p| p.username.clone());
    let from = client_address(&parts.extensions).to_string();
    let method = parts.method.to_string();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return ApiError::body_too_large().into_response();
    };
    let sent: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let one_resource = !params.is_empty() && matches!(parts.method, Method::PATCH | Method::PUT | Method::DELETE);
    let reading = one_resource.then(|| Reading::of(&parts));
    let before = match &reading {
        Some(reading) => reading.read(&recorder.reads).await,
        None => Value::Null,
    };
    let deletes = parts.method == Method::DELETE;
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let after = match &reading {
        Some(reading) if !deletes && response.status().is_success() => reading.read(&recorder.reads).await,
        _ => Value::Null,
    };

    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let event = NewEvent {
        when: Utc::now(),
        event: format!("{method} {}", route.strip_prefix("/api/v2/").unwrap_or(&route)),
        owner,
        dag_id: param("dag_id"),
        run_id: param("dag_run_id"),
        task_id: param("task_id"),
        map_index: param("map_index").and_then(|m| m.parse().ok()),
        try_number: None,
        extra: json!({
            "method": method,
            "path": route,
            "params": params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
            "status": response.status().as_u16(),
            "from": from,
            "body": masked_body(state, &route, &param("variable_key"), sent),
            "before": masked_body(state, &route, &param("variable_key"), before),
            "after": masked_body(state, &route, &param("variable_key"), after),
        }),
    };
    if let Err(e) = state.engine.store().record_event(&event).await {
        tracing::error!(error = %e, event = event.event, "the audit log could not record a change");
    }
    response
}

/// A `GET` of the changed resource's path, as the caller.
struct Reading {
    path: String,
    credentials: Option<HeaderValue>,
}

impl Reading {
    fn of(parts: &Parts) -> Reading {
        Reading { path: parts.uri.path().to_owned(), credentials: parts.headers.get(header::AUTHORIZATION).cloned() }
    }

    /// The resource as `GET` answers it; null when it does not exist or cannot be read.
    async fn read(&self, reads: &Router) -> Value {
        let mut request = Request::get(&self.path).body(Body::empty()).unwrap_or_default();
        if let Some(credentials) = &self.credentials {
            request.headers_mut().insert(header::AUTHORIZATION, credentials.clone());
        }
        let Ok(response) = tower::ServiceExt::oneshot(reads.clone(), request).await;
        if response.status() != StatusCode::OK {
            return Value::Null;
        }
        match axum::body::to_bytes(response.into_body(), BODY_LIMIT).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }
}

/// The body as the log keeps it: values under sensitive keys masked, as everywhere, and a variable's value when its
/// key is sensitive, and a connection's extra (it holds secrets in its own text).
fn masked_body(state: &AppState, route: &str, variable_key: &Option<String>, body: Value) -> Value {
    let keys = &state.engine.config().sensitive;
    let mut body = keys.redact(&body, &Masker::default());
    if let Value::Object(fields) = &mut body {
        let key = variable_key.clone().or_else(|| fields.get("key").and_then(Value::as_str).map(str::to_owned));
        let secret_variable = route.contains("/variables") && key.is_some_and(|k| keys.is_sensitive(&k));
        for (name, value) in fields.iter_mut() {
            if (secret_variable && name == "value") || (route.contains("/connections") && name == "extra") {
                *value = Value::String(MASK.to_owned());
            }
        }
    }
    body
}
