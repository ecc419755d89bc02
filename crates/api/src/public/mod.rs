//! The public REST API, `/api/v2`, shaped like Airflow 3's.

mod clear;
mod connections;
mod dags;
mod monitor;
mod pools;
mod runs;
mod tasks;
mod variables;
mod xcom;

use axum::Router;
use axum::routing::{get, patch, post};
use serde::Deserialize;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dags", get(dags::list).patch(dags::patch_many))
        .route("/dags/{dag_id}", get(dags::get).patch(dags::patch).delete(dags::delete))
        .route("/dags/{dag_id}/details", get(dags::details))
        .route("/dagSources/{dag_id}", get(dags::source))
        .route("/dags/{dag_id}/clearTaskInstances", post(clear::clear_task_instances))
        .route("/dags/{dag_id}/dagRuns", get(runs::list).post(runs::trigger))
        .route("/dags/{dag_id}/dagRuns/list", post(runs::list_batch))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}", get(runs::get).patch(runs::patch).delete(runs::delete))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/clear", post(runs::clear))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", get(tasks::list))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", get(tasks::get).patch(clear::patch))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/dry_run", patch(clear::patch_dry_run))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries", get(tasks::tries))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries/{try_number}", get(tasks::try_detail))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}", get(tasks::logs))
        .route("/variables", get(variables::list).post(variables::create))
        .route("/variables/{key}", get(variables::get).patch(variables::patch).delete(variables::delete))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries", get(xcom::list))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}", get(xcom::get))
        .route("/connections", get(connections::list).post(connections::create))
        .route(
            "/connections/{connection_id}",
            get(connections::get).patch(connections::patch).delete(connections::delete),
        )
        .route("/pools", get(pools::list).post(pools::create))
        .route("/pools/{pool_name}", get(pools::get).patch(pools::patch).delete(pools::delete))
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

/// `update_mask` of Airflow's PATCH endpoints: the body fields to apply (repeated key or comma-separated).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMask {
    #[serde(default)]
    update_mask: Vec<String>,
}

impl From<Vec<String>> for UpdateMask {
    fn from(update_mask: Vec<String>) -> Self {
        UpdateMask { update_mask }
    }
}

impl UpdateMask {
    /// The fields to change: those named, each one of `allowed`, or every allowed field when none is named.
    pub fn fields<'a>(&self, allowed: &[&'a str]) -> Result<Vec<&'a str>, crate::ApiError> {
        let named: Vec<&str> =
            self.update_mask.iter().flat_map(|m| m.split(',')).map(str::trim).filter(|m| !m.is_empty()).collect();
        if named.is_empty() {
            return Ok(allowed.to_vec());
        }
        named
            .into_iter()
            .map(|name| {
                allowed.iter().copied().find(|a| *a == name).ok_or_else(|| {
                    crate::ApiError::BadRequest(format!(
                        "update_mask names {name:?}, which cannot be changed; allowed: {}",
                        allowed.join(", ")
                    ))
                })
            })
            .collect()
    }
}
