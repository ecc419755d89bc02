//! `/api/v2/dags`: list, get, pause and unpause.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_core::DataInterval;
use sluice_store::{DagFilter, DagRow};

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiQuery};
use crate::{ApiError, AppState};

#[derive(Debug, Serialize)]
pub struct DagTag {
    pub name: String,
    pub dag_id: String,
}

#[derive(Debug, Serialize)]
pub struct DagResponse {
    pub dag_id: String,
    pub dag_display_name: String,
    pub is_paused: bool,
    pub is_stale: bool,
    pub last_parsed_time: Option<DateTime<Utc>>,
    pub fileloc: String,
    pub description: Option<String>,
    pub timetable_summary: Option<String>,
    pub tags: Vec<DagTag>,
    pub owners: Vec<String>,
    pub max_active_tasks: i64,
    pub max_active_runs: i64,
    pub has_import_errors: bool,
    pub next_dagrun_logical_date: Option<DateTime<Utc>>,
    pub next_dagrun_data_interval_start: Option<DateTime<Utc>>,
    pub next_dagrun_data_interval_end: Option<DateTime<Utc>>,
    pub next_dagrun_run_after: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct DagCollection {
    pub dags: Vec<DagResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    paused: Option<bool>,
    #[serde(default)]
    only_active: Option<bool>,
    dag_id_pattern: Option<String>,
}

async fn respond(state: &AppState, row: DagRow, broken_files: &HashSet<String>) -> Result<DagResponse, ApiError> {
    let has_import_errors = broken_files.contains(&row.fileloc);
    let next = next_run(state, &row).await?;
    let timetable_summary = (row.timetable_summary != "None").then(|| row.timetable_summary.clone());
    Ok(DagResponse {
        dag_display_name: row.dag_id.clone(),
        tags: row.tags.iter().map(|t| DagTag { name: t.clone(), dag_id: row.dag_id.clone() }).collect(),
        dag_id: row.dag_id,
        is_paused: row.is_paused,
        is_stale: !row.is_active,
        last_parsed_time: row.last_parsed,
        fileloc: row.fileloc,
        description: row.description,
        timetable_summary,
        owners: row.owners,
        max_active_tasks: row.max_active_tasks,
        max_active_runs: row.max_active_runs,
        has_import_errors,
        next_dagrun_logical_date: next.as_ref().map(|i| i.start),
        next_dagrun_data_interval_start: next.as_ref().map(|i| i.start),
        next_dagrun_data_interval_end: next.as_ref().map(|i| i.end),
        next_dagrun_run_after: next.as_ref().map(|i| i.end),
    })
}

/// Files with an import error now: their DAGs run their last good version.
async fn broken_files(state: &AppState) -> Result<HashSet<String>, ApiError> {
    let (errors, _) = state.engine.store().list_import_errors(i64::MAX, 0).await?;
    Ok(errors.into_iter().map(|e| e.filename).collect())
}

/// The data interval of the DAG's next scheduled run, as its timetable sees it now.
async fn next_run(state: &AppState, row: &DagRow) -> Result<Option<DataInterval>, ApiError> {
    let Some(version_id) = row.latest_version_id else { return Ok(None) };
    let engine = &state.engine;
    let dag = engine.dags().get(engine.store(), version_id).await?;
    let last =
        engine.store().last_scheduled_interval(&row.dag_id).await?.map(|(start, end)| DataInterval { start, end });
    Ok(dag.timetable().next_interval(last.as_ref(), Utc::now()))
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<DagCollection>, ApiError> {
    let (limit, offset) = super::Page { limit: q.limit, offset: q.offset }.checked()?;
    let filter = DagFilter {
        limit,
        offset,
        paused: q.paused,
        only_active: q.only_active.unwrap_or(true),
        dag_id_pattern: q.dag_id_pattern.map(|p| format!("%{p}%")),
        hidden_dag_ids: principal.hidden_dags(state.engine.store()).await?,
    };
    let (rows, total_entries) = state.engine.store().list_dags(&filter).await?;
    let broken = broken_files(&state).await?;
    let mut dags = Vec::with_capacity(rows.len());
    for row in rows {
        dags.push(respond(&state, row, &broken).await?);
    }
    Ok(Json(DagCollection { dags, total_entries }))
}

pub(crate) async fn find(state: &AppState, dag_id: &str) -> Result<DagRow, ApiError> {
    state
        .engine
        .store()
        .get_dag(dag_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("The DAG with dag_id: `{dag_id}` was not found")))
}

pub async fn get(State(state): State<AppState>, Path(dag_id): Path<String>) -> Result<Json<DagResponse>, ApiError> {
    let row = find(&state, &dag_id).await?;
    Ok(Json(respond(&state, row, &broken_files(&state).await?).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    is_paused: bool,
}

pub async fn patch(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<DagResponse>, ApiError> {
    find(&state, &dag_id).await?;
    let row = state
        .engine
        .store()
        .set_paused(&dag_id, body.is_paused)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("The DAG with dag_id: `{dag_id}` was not found")))?;
    tracing::info!(dag_id, is_paused = body.is_paused, "DAG paused flag changed");
    Ok(Json(respond(&state, row, &broken_files(&state).await?).await?))
}
