//! `/api/v2/notifications`: the alerts of task and run callbacks and missed deadlines, with how their delivery
//! went (Sluice's own; Airflow keeps no record of its callbacks). Alerts of DAGs the caller may not read are left
//! out.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_store::{NotificationFilter, NotificationRow};

use crate::auth::Principal;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

/// One alert.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationResponse {
    pub id: i64,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: Option<String>,
    pub map_index: Option<i64>,
    pub try_number: Option<i64>,
    /// `on_failure`, `on_retry`, `on_success`, `on_execute` or `deadline`.
    pub event: String,
    /// How it is delivered: the notifier as the DAG file wrote it (`type`, `connection`, …).
    #[schema(value_type = Object)]
    pub notifier: Value,
    /// Sluice's description of the event (what a notifier without its own text sends).
    pub message: Option<String>,
    /// `pending` (waiting for its first or next attempt), `delivered` or `failed` (no attempt left).
    pub state: String,
    pub attempts: i64,
    /// When a pending alert is attempted next.
    pub next_attempt: Option<DateTime<Utc>>,
    /// Why the last failed attempt failed (kept once a later one delivered it).
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it was delivered or given up on.
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationCollection {
    pub notifications: Vec<NotificationResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    dag_id: Option<String>,
    run_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    state: Option<String>,
    event: Option<String>,
}

const STATES: [&str; 3] =
    [sluice_store::notifications::PENDING, sluice_store::notifications::DELIVERED, sluice_store::notifications::FAILED];

fn respond(row: NotificationRow) -> NotificationResponse {
    let alert = row.alert;
    NotificationResponse {
        id: row.id,
        message: alert.context["message"].as_str().map(str::to_owned),
        dag_id: alert.dag_id,
        run_id: alert.run_id,
        task_id: alert.task_id,
        map_index: alert.map_index,
        try_number: alert.try_number,
        event: alert.event,
        notifier: alert.notifier,
        next_attempt: (row.state == sluice_store::notifications::PENDING).then_some(row.next_attempt),
        state: row.state,
        attempts: row.attempts,
        last_error: row.last_error,
        created_at: row.created,
        finished_at: row.finished,
    }
}

/// Alerts, newest first.
#[utoipa::path(get, path = "/notifications", tag = "Notification", params(ListQuery), responses((status = 200, body = NotificationCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<NotificationCollection>, ApiError> {
    let (limit, offset) = super::Page { limit: q.limit, offset: q.offset }.checked()?;
    if let Some(wanted) = q.state.as_deref().filter(|s| !STATES.contains(s)) {
        return Err(ApiError::BadRequest(format!("unknown state {wanted:?}: use one of {}", STATES.join(", "))));
    }
    let store = state.engine.store();
    let filter = NotificationFilter {
        dag_id: q.dag_id,
        run_id: q.run_id,
        state: q.state,
        event: q.event,
        hidden_dag_ids: principal.hidden_dags(store).await?,
        limit,
        offset,
    };
    let (rows, total_entries) = store.list_notifications(&filter).await?;
    Ok(Json(NotificationCollection { notifications: rows.into_iter().map(respond).collect(), total_entries }))
}
