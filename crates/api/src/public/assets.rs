//! `/api/v2/assets`: the data catalog — assets with their newest event and quality status, their events, the
//! lineage graph across DAGs — and the quality reports of a task try.
//!
//! Assets, events and their query parameters are shaped like Airflow 3's (`AssetResponse`,
//! `AssetEventResponse`, `source_dag_id`, …); Sluice adds what a data catalog needs on top (row count, schema,
//! content hash, quality status, owner). Lineage has no Airflow counterpart: `GET /assets/lineage?uri=…` (or
//! `?dag_id=…&task_id=…`, or `?model=…&version=…`) answers everything upstream and downstream of an asset, a task or
//! a model version, across DAGs.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_core::Dag;
use sluice_core::lineage::{Lineage, LineageNode, LineageView, ModelVersionRef};
use sluice_core::spec::ScheduleSpec;
use sluice_store::{AssetEventFilter, AssetEventRow, AssetRow, DagFilter, QualityReportRow};

use crate::auth::Principal;
use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DagReference {
    pub dag_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskReference {
    pub dag_id: String,
    pub task_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LastEvent {
    pub id: i64,
    pub timestamp: DateTime<Utc>,
}

/// Airflow 3's `AssetResponse`, plus the catalog fields of the newest event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetResponse {
    pub id: i64,
    pub name: String,
    pub uri: String,
    pub group: String,
    pub extra: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub scheduled_dags: Vec<DagReference>,
    pub producing_tasks: Vec<TaskReference>,
    pub consuming_tasks: Vec<TaskReference>,
    pub aliases: Vec<Value>,
    pub last_asset_event: Option<LastEvent>,
    pub description: Option<String>,
    pub owner: Option<String>,
    /// The newest event's verdict from a quality task: `passed`, `warn`, `failed`, or null when none checked it.
    pub quality_status: Option<String>,
    pub row_count: Option<i64>,
    pub schema: Option<Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetCollection {
    pub assets: Vec<AssetResponse>,
    pub total_entries: i64,
}

/// Airflow 3's `AssetEventResponse`, plus what Sluice knows of the data written.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetEventResponse {
    pub id: i64,
    pub asset_id: i64,
    pub uri: String,
    pub name: String,
    pub group: String,
    pub extra: Value,
    pub source_task_id: String,
    pub source_dag_id: String,
    pub source_run_id: String,
    pub source_map_index: i64,
    pub source_try_number: i64,
    pub timestamp: DateTime<Utc>,
    pub row_count: Option<i64>,
    pub schema: Option<Value>,
    pub content_hash: Option<String>,
    pub quality_status: Option<String>,
    pub watermark: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetEventCollection {
    pub asset_events: Vec<AssetEventResponse>,
    pub total_entries: i64,
}

/// The current version of every active DAG but `hidden` ones: what lineage and the producer/consumer lists are
/// computed from, so that the tasks of DAGs the caller may not read never appear.
async fn current_dags(state: &AppState, hidden: &[String]) -> Result<Vec<Arc<Dag>>, ApiError> {
    let filter =
        DagFilter { limit: i64::MAX, only_active: true, hidden_dag_ids: hidden.to_vec(), ..DagFilter::default() };
    let (rows, _) = state.engine.store().list_dags(&filter).await?;
    let mut dags = Vec::with_capacity(rows.len());
    for version in rows.iter().filter_map(|row| row.latest_version_id) {
        dags.push(state.engine.dags().get(state.engine.store(), version).await?);
    }
    Ok(dags)
}

fn asset_response(row: AssetRow, dags: &[Arc<Dag>]) -> AssetResponse {
    let uri = row.uri.as_str();
    let tasks = |uses: fn(&sluice_core::TaskSpec, &str) -> bool| -> Vec<TaskReference> {
        dags.iter()
            .flat_map(|dag| dag.spec.tasks.iter().map(move |t| (dag, t)))
            .filter(|(_, t)| uses(t, uri))
            .map(|(dag, t)| TaskReference { dag_id: dag.spec.dag_id.clone(), task_id: t.id.clone() })
            .collect()
    };
    let scheduled_dags = dags
        .iter()
        .filter(|dag| matches!(&dag.spec.schedule, Some(ScheduleSpec::Assets { assets, .. }) if assets.uris().contains(&uri)))
        .map(|dag| DagReference { dag_id: dag.spec.dag_id.clone() })
        .collect();
    let last = row.last_event.as_ref();
    AssetResponse {
        id: row.id,
        name: row.uri.clone(),
        uri: row.uri.clone(),
        group: "asset".into(),
        extra: json!({}),
        created_at: row.created,
        updated_at: row.updated,
        scheduled_dags,
        producing_tasks: tasks(|t, uri| t.outputs.iter().any(|u| u == uri)),
        consuming_tasks: tasks(|t, uri| t.input_assets().any(|u| u == uri)),
        aliases: Vec::new(),
        last_asset_event: last.map(|e| LastEvent { id: e.id, timestamp: e.timestamp }),
        quality_status: last.and_then(|e| e.quality_status.clone()),
        row_count: last.and_then(|e| e.row_count),
        schema: last.and_then(|e| e.schema.clone()),
        description: row.description,
        owner: row.owner,
    }
}

fn event_response(e: AssetEventRow) -> AssetEventResponse {
    AssetEventResponse {
        id: e.id,
        asset_id: e.asset_id,
        name: e.uri.clone(),
        uri: e.uri,
        group: "asset".into(),
        extra: json!({}),
        source_task_id: e.task_id,
        source_dag_id: e.dag_id,
        source_run_id: e.run_id,
        source_map_index: -1,
        source_try_number: e.try_number,
        timestamp: e.timestamp,
        row_count: e.row_count,
        schema: e.schema,
        content_hash: e.content_hash,
        quality_status: e.quality_status,
        watermark: e.watermark,
    }
}

#[utoipa::path(get, path = "/assets", tag = "Asset", params(super::Page),
    responses((status = 200, body = AssetCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<super::Page>,
) -> Result<Json<AssetCollection>, ApiError> {
    let (limit, offset) = page.checked()?;
    let hidden = principal.hidden_dags(state.engine.store()).await?;
    let (rows, total_entries) = state.engine.store().list_assets(limit, offset, &hidden).await?;
    let dags = current_dags(&state, &hidden).await?;
    let assets = rows.into_iter().map(|row| asset_response(row, &dags)).collect();
    Ok(Json(AssetCollection { assets, total_entries }))
}

/// An asset, with the newest event not written by a `hidden` DAG.
async fn find(state: &AppState, asset_id: i64, hidden: &[String]) -> Result<AssetRow, ApiError> {
    let not_found = || ApiError::NotFound(format!("The Asset with ID: `{asset_id}` was not found"));
    let uri = state.engine.store().asset_uri(asset_id).await?.ok_or_else(not_found)?;
    state.engine.store().get_asset(&uri, hidden).await?.ok_or_else(not_found)
}

#[utoipa::path(get, path = "/assets/{asset_id}", tag = "Asset", params(("asset_id" = i64, Path)),
    responses((status = 200, body = AssetResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(asset_id): ApiPath<i64>,
) -> Result<Json<AssetResponse>, ApiError> {
    let hidden = principal.hidden_dags(state.engine.store()).await?;
    let row = find(&state, asset_id, &hidden).await?;
    let dags = current_dags(&state, &hidden).await?;
    Ok(Json(asset_response(row, &dags)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    asset_id: Option<i64>,
    source_dag_id: Option<String>,
    source_task_id: Option<String>,
    source_run_id: Option<String>,
}

/// Events, newest first, but those of DAGs the caller may not read.
#[utoipa::path(get, path = "/assets/events", tag = "Asset", params(EventQuery),
    responses((status = 200, body = AssetEventCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Json<AssetEventCollection>, ApiError> {
    let (limit, offset) = super::Page { limit: query.limit, offset: query.offset }.checked()?;
    let hidden_dag_ids = principal.hidden_dags(state.engine.store()).await?;
    let uri = match query.asset_id {
        Some(id) => Some(find(&state, id, &hidden_dag_ids).await?.uri),
        None => None,
    };
    let filter = AssetEventFilter {
        uri,
        dag_id: query.source_dag_id,
        run_id: query.source_run_id,
        task_id: query.source_task_id,
        limit,
        offset,
        hidden_dag_ids,
    };
    let (rows, total_entries) = state.engine.store().asset_events(&filter).await?;
    let asset_events = rows.into_iter().map(event_response).collect();
    Ok(Json(AssetEventCollection { asset_events, total_entries }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LineageQuery {
    uri: Option<String>,
    dag_id: Option<String>,
    task_id: Option<String>,
    /// A model, with `version` (absent: a model no version of which is registered yet).
    model: Option<String>,
    version: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LineageResponse {
    pub node: LineageNode,
    #[serde(flatten)]
    pub view: LineageView,
}

/// Everything upstream and downstream of an asset (`?uri=`), a task (`?dag_id=&task_id=`) or a model version
/// (`?model=&version=`), across the DAGs the caller may read: a task of another DAG is not in the graph (and asking
/// for one answers 404). Model versions sit between the task that trained them and the tasks that use them.
#[utoipa::path(get, path = "/assets/lineage", tag = "Asset", params(LineageQuery),
    responses((status = 200, body = LineageResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn lineage(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<LineageQuery>,
) -> Result<Json<LineageResponse>, ApiError> {
    let node = match query {
        LineageQuery { uri: Some(uri), dag_id: None, task_id: None, model: None, version: None } => {
            LineageNode::Asset { uri }
        }
        LineageQuery { uri: None, dag_id: Some(dag_id), task_id: Some(task_id), model: None, version: None } => {
            LineageNode::Task { dag_id, task_id }
        }
        LineageQuery { uri: None, dag_id: None, task_id: None, model: Some(name), version } => {
            LineageNode::Model { name, version }
        }
        _ => {
            return Err(ApiError::Unprocessable(
                "give either `uri`, both `dag_id` and `task_id`, or `model` (and `version`)".into(),
            ));
        }
    };
    let dags = current_dags(&state, &principal.hidden_dags(state.engine.store()).await?).await?;
    let versions: Vec<ModelVersionRef> = state
        .engine
        .store()
        .model_version_origins()
        .await?
        .into_iter()
        .map(|v| ModelVersionRef {
            name: v.model,
            version: v.version,
            stage: v.stage,
            dag_id: v.dag_id,
            task_id: v.task_id,
        })
        .collect();
    let lineage = Lineage::from_dags(dags.iter().map(|dag| &dag.spec)).with_models(&versions);
    let view = lineage
        .around(&node)
        .ok_or_else(|| ApiError::NotFound(format!("no DAG reads or writes {}", describe(&node))))?;
    Ok(Json(LineageResponse { node, view }))
}

fn describe(node: &LineageNode) -> String {
    match node {
        LineageNode::Asset { uri } => format!("asset `{uri}`"),
        LineageNode::Task { dag_id, task_id } => format!("task `{task_id}` of DAG `{dag_id}` (no such task)"),
        LineageNode::Model { name, version: Some(version) } => format!("version {version} of model `{name}`"),
        LineageNode::Model { name, version: None } => format!("model `{name}` (with no version registered)"),
    }
}

/// One asset's report from a quality task's try.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QualityReportResponse {
    pub uri: String,
    /// `passed`, `warn` (only warnings failed) or `failed` (an `error` check failed).
    pub status: String,
    pub rows: Option<i64>,
    /// Each check: `check`, `column`, `observed`, `threshold`, `passed`, `severity`.
    pub results: Value,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QualityReportCollection {
    pub dag_id: String,
    pub dag_run_id: String,
    pub task_id: String,
    pub try_number: i64,
    pub reports: Vec<QualityReportResponse>,
}

/// The newest quality report on an asset, and the try of the quality task that wrote it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetQualityResponse {
    pub dag_id: String,
    pub dag_run_id: String,
    pub task_id: String,
    pub try_number: i64,
    pub report: QualityReportResponse,
}

/// The newest quality report on an asset (what the catalog's quality status says), from a DAG the caller may read;
/// 404 when no quality task has judged it.
#[utoipa::path(get, path = "/assets/{asset_id}/quality", tag = "Asset", params(("asset_id" = i64, Path)),
    responses((status = 200, body = AssetQualityResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn asset_quality(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(asset_id): ApiPath<i64>,
) -> Result<Json<AssetQualityResponse>, ApiError> {
    let hidden_dag_ids = principal.hidden_dags(state.engine.store()).await?;
    let asset = find(&state, asset_id, &hidden_dag_ids).await?;
    let row = state
        .engine
        .store()
        .latest_quality_report(&asset.uri, &hidden_dag_ids)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no quality task has checked `{}` yet", asset.uri)))?;
    Ok(Json(AssetQualityResponse {
        dag_id: row.dag_id.clone(),
        dag_run_id: row.run_id.clone(),
        task_id: row.task_id.clone(),
        try_number: row.try_number,
        report: report_response(row),
    }))
}

fn report_response(row: QualityReportRow) -> QualityReportResponse {
    QualityReportResponse {
        uri: row.uri,
        status: row.status,
        rows: row.report["rows"].as_i64(),
        results: row.report["results"].clone(),
        timestamp: row.timestamp,
    }
}

/// The quality reports of a quality task's try: one per asset it checked.
#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries/{task_try_number}/quality",
    tag = "Asset",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), ("task_try_number" = i64, Path)),
    responses((status = 200, body = QualityReportCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn quality(
    State(state): State<AppState>,
    ApiPath((dag_id, run_id, task_id, try_number)): ApiPath<(String, String, String, i64)>,
) -> Result<Json<QualityReportCollection>, ApiError> {
    let rows = state.engine.store().quality_reports(&dag_id, &run_id, &task_id, try_number).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no quality report for try {try_number} of task `{task_id}` in run `{run_id}` of DAG `{dag_id}`"
        )));
    }
    let reports = rows.into_iter().map(report_response).collect();
    Ok(Json(QualityReportCollection { dag_id, dag_run_id: run_id, task_id, try_number, reports }))
}
