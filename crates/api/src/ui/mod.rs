//! `/api/v2/ui`: what the web dashboard reads, shaped for its views rather than for Airflow's clients.
//!
//! Each view loads in one or two requests answered by one or two statements each, however many DAGs, runs or
//! tasks it shows: the DAG list with each DAG's newest runs ([`dags`]), the grid of runs × tasks and a run's
//! tries for its Gantt chart ([`grid`]), the DAG laid out for drawing ([`structure`]), the workers
//! ([`workers`]). Live updates arrive as Server-Sent Events: the runs and task instances that change
//! ([`events`], fed by one poller per server process, [`feed`]) and a running try's log lines ([`logs`]).
//!
//! Authorisation follows the rest of `/api/v2` (see `crate::auth`): reads take the Viewer role, routes naming a
//! DAG in their path check its `access_control`, and lists and streams leave out the DAGs the caller may not read.

mod dags;
mod events;
pub mod feed;
mod grid;
mod logs;
mod structure;
pub(crate) mod workers;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sluice_core::RunState;
use sluice_store::DagRunRow;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub use feed::ChangeFeed;

/// Every route of `/api/v2/ui`, each with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(dags::list))
        .routes(routes!(grid::grid))
        .routes(routes!(grid::gantt))
        .routes(routes!(structure::structure))
        .routes(routes!(events::events))
        .routes(routes!(logs::stream))
        .routes(routes!(workers::list))
}

/// A run as the dashboard's lists, grid and events show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub dag_id: String,
    pub run_id: String,
    pub state: RunState,
    pub run_type: String,
    pub logical_date: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

impl From<&DagRunRow> for RunSummary {
    fn from(run: &DagRunRow) -> Self {
        RunSummary {
            dag_id: run.dag_id.clone(),
            run_id: run.run_id.clone(),
            state: run.state,
            run_type: run.run_type.clone(),
            logical_date: run.logical_date,
            run_after: run.run_after,
            queued_at: run.queued_at,
            start_date: run.start_date,
            end_date: run.end_date,
        }
    }
}

/// Seconds between two times, when both are known.
fn seconds(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Option<f64> {
    start.zip(end).map(|(s, e)| (e - s).num_milliseconds() as f64 / 1000.0)
}
