//! `/api/v2/eventLogs`: the audit log, as Airflow 3 serves it. Events of DAGs the caller may not read are left out.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_store::{EventFilter, EventRow};

use crate::auth::Principal;
use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// Airflow 3's `EventLogResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventLogResponse {
    pub event_log_id: i64,
    pub when: DateTime<Utc>,
    pub dag_id: Option<String>,
    pub task_id: Option<String>,
    pub run_id: Option<String>,
    pub map_index: Option<i64>,
    pub try_number: Option<i64>,
    /// What was done: the method and the route (`PATCH dags/:dag_id`).
    pub event: String,
    pub logical_date: Option<DateTime<Utc>>,
    /// Who did it.
    pub owner: Option<String>,
    /// JSON text: the method, the route's parameters, the answer's status, the caller's address (`from`) and the
    /// request body with its secrets masked.
    pub extra: Option<String>,
    pub dag_display_name: Option<String>,
    pub task_display_name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventLogCollection {
    pub event_logs: Vec<EventLogResponse>,
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
    /// `id`/`when` (oldest first) or `-id`/`-when` (newest first, the default).
    order_by: Option<String>,
    dag_id: Option<String>,
    task_id: Option<String>,
    run_id: Option<String>,
    owner: Option<String>,
    event: Option<String>,
    /// Several separated by commas.
    included_events: Option<String>,
    excluded_events: Option<String>,
    before: Option<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
}

fn respond(row: EventRow) -> EventLogResponse {
    let event = row.event;
    EventLogResponse {
        event_log_id: row.id,
        when: event.when,
        dag_display_name: event.dag_id.clone(),
        task_display_name: event.task_id.clone(),
        dag_id: event.dag_id,
        task_id: event.task_id,
        run_id: event.run_id,
        map_index: event.map_index,
        try_number: event.try_number,
        event: event.event,
        logical_date: None,
        owner: event.owner,
        extra: (!event.extra.is_null()).then(|| event.extra.to_string()),
    }
}

fn list_of(text: Option<&str>) -> Vec<String> {
    text.into_iter().flat_map(|t| t.split(',')).map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect()
}

/// The audit log, newest first; filters as in Airflow.
#[utoipa::path(get, path = "/eventLogs", tag = "Event Log", params(ListQuery), responses((status = 200, body = EventLogCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<EventLogCollection>, ApiError> {
    let (limit, offset) = super::Page { limit: q.limit, offset: q.offset }.checked()?;
    let oldest_first = match q.order_by.as_deref() {
        None | Some("-id" | "-when" | "-event_log_id") => false,
        Some("id" | "when" | "event_log_id") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "cannot order event logs by {other:?}: use id, when or event_log_id, with - for newest first"
            )));
        }
    };
    let store = state.engine.store();
    let filter = EventFilter {
        dag_id: q.dag_id,
        run_id: q.run_id,
        task_id: q.task_id,
        owner: q.owner,
        event: q.event,
        included_events: list_of(q.included_events.as_deref()),
        excluded_events: list_of(q.excluded_events.as_deref()),
        after: q.after,
        before: q.before,
        hidden_dag_ids: principal.hidden_dags(store).await?,
        oldest_first,
        limit,
        offset,
        ..EventFilter::default()
    };
    let (rows, total_entries) = store.list_events(&filter).await?;
    Ok(Json(EventLogCollection { event_logs: rows.into_iter().map(respond).collect(), total_entries }))
}

/// One event; 404 when it does not exist or is of a DAG the caller may not read.
#[utoipa::path(get, path = "/eventLogs/{event_log_id}", tag = "Event Log", params(("event_log_id" = i64, Path)), responses((status = 200, body = EventLogResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<EventLogResponse>, ApiError> {
    let store = state.engine.store();
    let filter = EventFilter {
        id: Some(id),
        hidden_dag_ids: principal.hidden_dags(store).await?,
        limit: 1,
        ..EventFilter::default()
    };
    let (rows, _) = store.list_events(&filter).await?;
    let row = rows.into_iter().next();
    row.map(|row| Json(respond(row)))
        .ok_or_else(|| ApiError::NotFound(format!("The Event Log with id: `{id}` was not found")))
}
