//! `GET /api/v2/ui/dags`: a page of DAGs with each one's newest runs, for the dashboard's DAG list.
//!
//! Two statements whatever the page size: the page of DAGs (with its count), then the newest runs of all of them
//! at once; the next run's date comes from the cached DAG versions and one more statement for all the page's
//! latest scheduled intervals.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_core::DataInterval;
use sluice_store::{DagFilter, DagRow};

use super::RunSummary;
use crate::auth::Principal;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

/// Which DAGs the list shows.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DagListFilter {
    #[default]
    All,
    /// Not paused.
    Active,
    Paused,
    /// Whose newest run failed.
    Failing,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DagListQuery {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    /// Part of the DAG id (SQL `LIKE` wildcards `%` and `_` allowed).
    dag_id_pattern: Option<String>,
    /// DAGs with any of these tags (repeat the key).
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    #[param(inline)]
    filter: DagListFilter,
    /// How many of each DAG's newest runs to include (at most 100).
    #[serde(default = "default_runs")]
    runs: i64,
}

fn default_limit() -> i64 {
    50
}

fn default_runs() -> i64 {
    10
}

/// A run in the DAG list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LatestRun {
    pub run_id: String,
    pub state: sluice_core::RunState,
    pub logical_date: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

impl From<RunSummary> for LatestRun {
    fn from(r: RunSummary) -> Self {
        LatestRun {
            run_id: r.run_id,
            state: r.state,
            logical_date: r.logical_date,
            run_after: r.run_after,
            start_date: r.start_date,
            end_date: r.end_date,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DagListItem {
    pub dag_id: String,
    pub description: Option<String>,
    pub owners: Vec<String>,
    pub tags: Vec<String>,
    /// The schedule as written (`null` for a DAG without one).
    pub timetable_summary: Option<String>,
    pub next_dagrun_logical_date: Option<DateTime<Utc>>,
    pub next_dagrun_run_after: Option<DateTime<Utc>>,
    pub is_paused: bool,
    /// The DAG's file does not load now; the DAG runs its last good version.
    pub has_import_errors: bool,
    /// Newest first.
    pub latest_dag_runs: Vec<LatestRun>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DagList {
    pub dags: Vec<DagListItem>,
    pub total_entries: i64,
}

/// A page of DAGs, each with its newest runs, in `dag_id` order.
#[utoipa::path(get, path = "/ui/dags", tag = "Dashboard", params(DagListQuery), responses((status = 200, body = DagList), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<DagListQuery>,
) -> Result<Json<DagList>, ApiError> {
    let (limit, offset) = crate::public::Page { limit: q.limit, offset: q.offset }.checked()?;
    if !(0..=100).contains(&q.runs) {
        return Err(ApiError::Unprocessable("runs must be between 0 and 100".into()));
    }
    let store = state.engine.store();
    let filter = DagFilter {
        limit,
        offset,
        paused: match q.filter {
            DagListFilter::Active => Some(false),
            DagListFilter::Paused => Some(true),
            DagListFilter::All | DagListFilter::Failing => None,
        },
        failing: matches!(q.filter, DagListFilter::Failing),
        only_active: true,
        dag_id_pattern: q.dag_id_pattern.filter(|p| !p.is_empty()).map(|p| format!("%{p}%")),
        tags: q.tags.iter().flat_map(|t| t.split(',')).filter(|t| !t.is_empty()).map(String::from).collect(),
        hidden_dag_ids: principal.hidden_dags(store).await?,
        ..DagFilter::default()
    };
    let (rows, total_entries) = store.list_dags(&filter).await?;
    let ids: Vec<String> = rows.iter().map(|r| r.dag_id.clone()).collect();
    let mut runs: HashMap<String, Vec<LatestRun>> = HashMap::new();
    for run in store.recent_runs(&ids, q.runs).await? {
        runs.entry(run.dag_id.clone()).or_default().push(RunSummary::from(&run).into());
    }
    let next = next_runs(&state, &rows).await?;
    let broken = crate::public::dags::broken_files(&state).await?;
    let dags = rows
        .into_iter()
        .map(|row| {
            let next = next.get(&row.dag_id);
            DagListItem {
                latest_dag_runs: runs.remove(&row.dag_id).unwrap_or_default(),
                has_import_errors: broken.contains(&row.fileloc),
                next_dagrun_logical_date: next.map(|i| i.start),
                next_dagrun_run_after: next.map(|i| i.end),
                timetable_summary: (row.timetable_summary != "None").then_some(row.timetable_summary),
                dag_id: row.dag_id,
                description: row.description,
                owners: row.owners,
                tags: row.tags,
                is_paused: row.is_paused,
            }
        })
        .collect();
    Ok(Json(DagList { dags, total_entries }))
}

/// The data interval of each DAG's next scheduled run, as its latest version's timetable sees it now.
async fn next_runs(state: &AppState, rows: &[DagRow]) -> Result<HashMap<String, DataInterval>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|r| r.dag_id.clone()).collect();
    let last = state.engine.store().last_scheduled_intervals(&ids).await?;
    let now = Utc::now();
    let mut next = HashMap::new();
    for row in rows {
        let Some(version_id) = row.latest_version_id else { continue };
        // Versions are cached once read: the scheduler has read every unpaused DAG's already.
        let dag = state.engine.dags().get(state.engine.store(), version_id).await?;
        let last = last.get(&row.dag_id).map(|(start, end)| DataInterval { start: *start, end: *end });
        if let Some(interval) = dag.timetable().next_interval(last.as_ref(), now) {
            next.insert(row.dag_id.clone(), interval);
        }
    }
    Ok(next)
}
