//! The public REST API, `/api/v2`, shaped like Airflow 3's.

mod assets;
mod dags;
mod monitor;
mod runs;
mod tasks;
mod variables;

use axum::Router;
use axum::routing::get;
use serde::Deserialize;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dags", get(dags::list))
        .route("/dags/{dag_id}", get(dags::get).patch(dags::patch))
        .route("/dags/{dag_id}/dagRuns", get(runs::list).post(runs::trigger))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}", get(runs::get))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", get(tasks::list))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", get(tasks::get))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries", get(tasks::tries))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries/{try_number}", get(tasks::try_detail))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}", get(tasks::logs))
        .route("/assets", get(assets::list))
        .route("/assets/events", get(assets::events))
        .route("/assets/lineage", get(assets::lineage))
        .route("/assets/{asset_id}", get(assets::get))
        .route(
            "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries/{try_number}/quality",
            get(assets::quality),
        )
        .route("/variables", get(variables::list).post(variables::create))
        .route("/variables/{key}", get(variables::get).patch(variables::patch).delete(variables::delete))
        .route("/importErrors", get(monitor::import_errors))
        .route("/monitor/health", get(monitor::health))
        .route("/version", get(monitor::version))
        .fallback(not_found)
}

async fn not_found() -> crate::ApiError {
    crate::ApiError::NotFound("no such API endpoint".into())
}

/// `limit` and `offset`, as every Airflow list endpoint takes them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default = "default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

fn default_limit() -> i64 {
    50
}

impl Page {
    pub fn checked(&self) -> Result<(i64, i64), crate::ApiError> {
        if self.limit < 0 || self.offset < 0 {
            return Err(crate::ApiError::Unprocessable("limit and offset must not be negative".into()));
        }
        Ok((self.limit.min(1000), self.offset))
    }
}
