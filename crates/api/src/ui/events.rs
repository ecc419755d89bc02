//! `GET /api/v2/ui/events?dag_id=&run_id=`: runs and task instances changing, as Server-Sent Events.
//!
//! Events: `dag_run` and `task_instance` (their JSON below), a `: keep-alive` comment every 15 seconds, and
//! `resync` when this stream fell too far behind and dropped changes: the view should reload its data. Only DAGs
//! the caller may read appear; the decision is taken once per DAG and stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use sluice_core::{DagAction, RunState, TaskState};
use sluice_store::Store;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use super::feed::Change;
use crate::auth::Principal;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

/// Comment lines keep proxies from closing a quiet stream.
pub(super) const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only this DAG's changes.
    dag_id: Option<String>,
    /// Only this run's changes (with `dag_id`).
    run_id: Option<String>,
}

/// `event: dag_run`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DagRunEvent {
    pub dag_id: String,
    pub run_id: String,
    pub state: RunState,
    pub run_type: String,
    pub logical_date: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

/// `event: task_instance`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskInstanceEvent {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
    /// `null` until the scheduler first decides about the task, as in Airflow.
    pub state: Option<TaskState>,
    pub try_number: i64,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

fn event(change: &Change) -> Event {
    let (name, data) = match change {
        Change::Run(r) => (
            "dag_run",
            serde_json::to_string(&DagRunEvent {
                dag_id: r.dag_id.clone(),
                run_id: r.run_id.clone(),
                state: r.state,
                run_type: r.run_type.clone(),
                logical_date: r.logical_date,
                queued_at: r.queued_at,
                start_date: r.start_date,
                end_date: r.end_date,
            }),
        ),
        Change::TaskInstance(t) => (
            "task_instance",
            serde_json::to_string(&TaskInstanceEvent {
                dag_id: t.dag_id.clone(),
                run_id: t.run_id.clone(),
                task_id: t.task_id.clone(),
                map_index: t.map_index,
                state: (t.state != TaskState::None).then_some(t.state),
                try_number: t.try_number,
                queued_at: t.queued_at,
                start_date: t.start_date,
                end_date: t.end_date,
            }),
        ),
    };
    Event::default().event(name).data(data.unwrap_or_default())
}

/// Which changes one stream passes on.
struct Subscription {
    changes: Receiver<Change>,
    store: Store,
    principal: Principal,
    query: EventsQuery,
    /// Whether the caller may read each DAG seen so far.
    readable: HashMap<String, bool>,
}

impl Subscription {
    async fn wanted(&mut self, change: &Change) -> bool {
        if self.query.dag_id.as_deref().is_some_and(|d| d != change.dag_id())
            || self.query.run_id.as_deref().is_some_and(|r| r != change.run_id())
        {
            return false;
        }
        if let Some(may) = self.readable.get(change.dag_id()) {
            return *may;
        }
        let may = match self.principal.may_on_dag(&self.store, change.dag_id(), DagAction::CanRead).await {
            Ok(may) => may,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check access to a DAG for an event stream");
                return false;
            }
        };
        self.readable.insert(change.dag_id().to_owned(), may);
        may
    }

    /// The next event for this stream; `None` when the feed stopped (the server is shutting down).
    async fn next(&mut self) -> Option<Event> {
        loop {
            match self.changes.recv().await {
                Ok(change) => {
                    if self.wanted(&change).await {
                        return Some(event(&change));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    return Some(Event::default().event("resync").data(format!("{{\"missed\":{missed}}}")));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// Changes of runs and task instances, from now on, as Server-Sent Events.
#[utoipa::path(get, path = "/ui/events", tag = "Dashboard", params(EventsQuery), responses((status = 200, description = "`event: dag_run` (data: DagRunEvent), `event: task_instance` (data: TaskInstanceEvent), `event: resync` (the stream dropped changes: reload), and `: keep-alive` comments every 15 s", content_type = "text/event-stream", body = crate::openapi::ServerSentEvent), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let store = state.engine.store().clone();
    if query.run_id.is_some() && query.dag_id.is_none() {
        return Err(ApiError::Unprocessable("run_id needs dag_id".into()));
    }
    if let Some(dag_id) = &query.dag_id {
        crate::public::dags::find(&state, dag_id).await?;
        if !principal.may_on_dag(&store, dag_id, DagAction::CanRead).await? {
            return Err(ApiError::Forbidden(format!("{} may not access the DAG `{dag_id}`", principal.username)));
        }
    }
    let changes = state.feed.subscribe(&state.engine);
    let subscription = Subscription { changes, store, principal, query, readable: HashMap::new() };
    let stream =
        futures::stream::unfold(subscription, |mut s| async move { s.next().await.map(|event| (Ok(event), s)) });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}
