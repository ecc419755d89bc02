//! `GET /api/v2/ui/workers`: the workers that asked for work, with their load.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sluice_store::Store;

use crate::{ApiError, AppState};

/// A worker not seen for this long, and running nothing, is shown as gone. Workers ask for work at least every
/// 30 seconds (the longest long-poll) while they have a free slot.
const GONE_AFTER_SECS: i64 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Active,
    Gone,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkerResponse {
    pub name: String,
    pub hostname: String,
    pub queues: Vec<String>,
    /// How many tasks the worker runs at once.
    pub slots: i64,
    /// How many it runs now.
    pub slots_used: i64,
    pub last_heartbeat: DateTime<Utc>,
    /// `active` when seen lately or running tasks (whose leases it keeps extending), else `gone`.
    pub state: WorkerState,
    /// The named worker token it presents; `null` for the shared one.
    pub token_name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkerList {
    pub workers: Vec<WorkerResponse>,
}

/// Every worker that ever asked for work, by name.
#[utoipa::path(get, path = "/ui/workers", tag = "Dashboard", responses((status = 200, body = WorkerList), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<WorkerList>, ApiError> {
    Ok(Json(WorkerList { workers: workers(state.engine.store()).await? }))
}

/// Every worker with its load, as the dashboard and `/metrics` show them.
pub(crate) async fn workers(store: &Store) -> Result<Vec<WorkerResponse>, ApiError> {
    let rows = store.list_workers().await?;
    let running = store.running_per_worker().await?;
    let now = Utc::now();
    let workers = rows
        .into_iter()
        .map(|w| {
            let slots_used = running.get(&w.name).copied().unwrap_or(0);
            let recent = now - w.last_seen < Duration::seconds(GONE_AFTER_SECS);
            WorkerResponse {
                state: if recent || slots_used > 0 { WorkerState::Active } else { WorkerState::Gone },
                slots: w.slots.max(slots_used),
                slots_used,
                last_heartbeat: w.last_seen,
                name: w.name,
                hostname: w.hostname,
                queues: w.queues,
                token_name: w.token_name,
            }
        })
        .collect();
    Ok(workers)
}
