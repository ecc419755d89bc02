//! `/api/v2/dags`: list, get, details, pause and unpause (one or many), delete, and `/dagSources`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_core::{Dag, DataInterval, ParamSpec, RunState};
use sluice_store::{DagDeletion, DagFilter, DagOrder, DagRow, RunFilter};

use sluice_core::DagAction;

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiQuery};
use crate::{ApiError, AppState};

/// Sluice reads every DAG from one folder; Airflow 3 calls such a source a bundle.
pub const BUNDLE_NAME: &str = "dags-folder";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DagTag {
    pub name: String,
    pub dag_id: String,
    pub dag_display_name: String,
}

/// Airflow 3's `DAGResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DagResponse {
    pub dag_id: String,
    pub dag_display_name: String,
    pub is_paused: bool,
    pub is_stale: bool,
    pub last_parsed_time: Option<DateTime<Utc>>,
    pub last_parse_duration: Option<f64>,
    pub last_expired: Option<DateTime<Utc>>,
    pub bundle_name: Option<String>,
    pub bundle_version: Option<String>,
    pub relative_fileloc: Option<String>,
    pub fileloc: String,
    pub description: Option<String>,
    pub timetable_summary: Option<String>,
    pub timetable_description: Option<String>,
    pub timetable_periodic: bool,
    pub timetable_partitioned: bool,
    pub tags: Vec<DagTag>,
    pub max_active_tasks: i64,
    pub max_active_runs: i64,
    pub max_consecutive_failed_dag_runs: i64,
    pub has_task_concurrency_limits: bool,
    pub has_import_errors: bool,
    pub is_backfillable: bool,
    pub next_dagrun_logical_date: Option<DateTime<Utc>>,
    pub next_dagrun_data_interval_start: Option<DateTime<Utc>>,
    pub next_dagrun_data_interval_end: Option<DateTime<Utc>>,
    pub next_dagrun_run_after: Option<DateTime<Utc>>,
    pub owners: Vec<String>,
    pub file_token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DagCollection {
    pub dags: Vec<DagResponse>,
    pub total_entries: i64,
}

/// Query of `GET /dags` (and the filters of the bulk `PATCH /dags`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    paused: Option<bool>,
    /// Airflow 2's name for `exclude_stale`.
    only_active: Option<bool>,
    exclude_stale: Option<bool>,
    dag_id_pattern: Option<String>,
    dag_display_name_pattern: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    tags_match_mode: Option<String>,
    #[serde(default)]
    owners: Vec<String>,
    order_by: Option<String>,
    /// Bulk PATCH only.
    #[serde(default)]
    update_mask: Vec<String>,
}

impl ListQuery {
    fn filter(&self) -> Result<DagFilter, ApiError> {
        let (limit, offset) = super::Page { limit: self.limit, offset: self.offset }.checked()?;
        let (order, descending) = match self.order_by.as_deref().filter(|o| !o.is_empty()) {
            None => (DagOrder::DagId, false),
            Some(text) => {
                let (field, descending) = text.strip_prefix('-').map_or((text, false), |f| (f, true));
                let order = match field {
                    "dag_id" | "dag_display_name" => DagOrder::DagId,
                    "last_parsed_time" => DagOrder::LastParsed,
                    "is_paused" => DagOrder::IsPaused,
                    other => {
                        return Err(ApiError::BadRequest(format!(
                            "Ordering with '{other}' is disallowed or the attribute does not exist on the model; \
                             use one of dag_id, dag_display_name, last_parsed_time, is_paused"
                        )));
                    }
                };
                (order, descending)
            }
        };
        let all_tags = match self.tags_match_mode.as_deref() {
            None | Some("any") => false,
            Some("all") => true,
            Some(other) => {
                return Err(ApiError::Unprocessable(format!("tags_match_mode {other:?} must be any or all")));
            }
        };
        let pattern = self.dag_id_pattern.as_ref().or(self.dag_display_name_pattern.as_ref());
        Ok(DagFilter {
            limit,
            offset,
            paused: self.paused,
            only_active: self.exclude_stale.or(self.only_active).unwrap_or(true),
            // Airflow's patterns are SQL LIKE patterns matched anywhere in the id.
            dag_id_pattern: pattern.map(|p| format!("%{p}%")),
            tags: self.tags.iter().flat_map(|t| t.split(',')).filter(|t| !t.is_empty()).map(String::from).collect(),
            all_tags,
            owners: self.owners.clone(),
            order,
            descending,
            hidden_dag_ids: Vec::new(),
            failing: false,
        })
    }
}

async fn respond(state: &AppState, row: DagRow, broken_files: &HashSet<String>) -> Result<DagResponse, ApiError> {
    let has_import_errors = broken_files.contains(&row.fileloc);
    let dag = latest(state, &row).await?;
    let next = match &dag {
        Some(dag) => next_run(state, &row, dag).await?,
        None => None,
    };
    let periodic = dag.as_ref().is_some_and(|d| d.timetable().is_periodic());
    let timetable_summary = (row.timetable_summary != "None").then(|| row.timetable_summary.clone());
    Ok(DagResponse {
        dag_display_name: row.dag_id.clone(),
        tags: row
            .tags
            .iter()
            .map(|t| DagTag { name: t.clone(), dag_id: row.dag_id.clone(), dag_display_name: row.dag_id.clone() })
            .collect(),
        file_token: file_token(&row.fileloc),
        dag_id: row.dag_id,
        is_paused: row.is_paused,
        is_stale: !row.is_active,
        last_parsed_time: row.last_parsed,
        last_parse_duration: None,
        last_expired: None,
        bundle_name: Some(BUNDLE_NAME.into()),
        bundle_version: None,
        relative_fileloc: None,
        fileloc: row.fileloc,
        description: row.description,
        timetable_description: timetable_summary.clone(),
        timetable_summary,
        timetable_periodic: periodic,
        timetable_partitioned: false,
        owners: row.owners,
        max_active_tasks: row.max_active_tasks,
        max_active_runs: row.max_active_runs,
        max_consecutive_failed_dag_runs: 0,
        has_task_concurrency_limits: false,
        has_import_errors,
        is_backfillable: periodic,
        next_dagrun_logical_date: next.as_ref().map(|i| i.start),
        next_dagrun_data_interval_start: next.as_ref().map(|i| i.start),
        next_dagrun_data_interval_end: next.as_ref().map(|i| i.end),
        next_dagrun_run_after: next.as_ref().map(|i| i.end),
    })
}

/// Airflow hands out a token naming the DAG's file, to fetch its source with; the hashed path serves that purpose
/// without revealing the server's layout.
fn file_token(fileloc: &str) -> String {
    hex::encode(Sha256::digest(fileloc.as_bytes()))
}

async fn latest(state: &AppState, row: &DagRow) -> Result<Option<Arc<Dag>>, ApiError> {
    let Some(version_id) = row.latest_version_id else { return Ok(None) };
    let engine = &state.engine;
    Ok(Some(engine.dags().get(engine.store(), version_id).await?))
}

/// The latest version of the DAG that loaded; 404 for an unknown DAG and for one whose versions never loaded.
pub(crate) async fn latest_dag(state: &AppState, dag_id: &str) -> Result<Arc<Dag>, ApiError> {
    let row = find(state, dag_id).await?;
    latest(state, &row)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("The DAG `{dag_id}` has no version that loaded")))
}

/// Files with an import error now: their DAGs run their last good version.
pub(crate) async fn broken_files(state: &AppState) -> Result<HashSet<String>, ApiError> {
    let every = sluice_store::ImportErrorFilter { limit: i64::MAX, ..Default::default() };
    let (errors, _) = state.engine.store().list_import_errors(&every).await?;
    Ok(errors.into_iter().map(|e| e.filename).collect())
}

/// The data interval of the DAG's next scheduled run, as its timetable sees it now.
async fn next_run(state: &AppState, row: &DagRow, dag: &Dag) -> Result<Option<DataInterval>, ApiError> {
    let last = state
        .engine
        .store()
        .last_scheduled_interval(&row.dag_id)
        .await?
        .map(|(start, end)| DataInterval { start, end });
    Ok(dag.timetable().next_interval(last.as_ref(), Utc::now()))
}

async fn respond_all(state: &AppState, rows: Vec<DagRow>) -> Result<Vec<DagResponse>, ApiError> {
    let broken = broken_files(state).await?;
    let mut dags = Vec::with_capacity(rows.len());
    for row in rows {
        dags.push(respond(state, row, &broken).await?);
    }
    Ok(dags)
}

#[utoipa::path(get, path = "/dags", tag = "DAG", params(ListQuery), responses((status = 200, body = DagCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<DagCollection>, ApiError> {
    if !q.update_mask.is_empty() {
        return Err(ApiError::Unprocessable("invalid query: update_mask belongs to PATCH /dags".into()));
    }
    let mut filter = q.filter()?;
    filter.hidden_dag_ids = principal.hidden_dags(state.engine.store()).await?;
    let (rows, total_entries) = state.engine.store().list_dags(&filter).await?;
    Ok(Json(DagCollection { dags: respond_all(&state, rows).await?, total_entries }))
}

pub(crate) async fn find(state: &AppState, dag_id: &str) -> Result<DagRow, ApiError> {
    state.engine.store().get_dag(dag_id).await?.ok_or_else(|| dag_not_found(dag_id))
}

fn dag_not_found(dag_id: &str) -> ApiError {
    ApiError::NotFound(format!("The DAG with dag_id: `{dag_id}` was not found"))
}

#[utoipa::path(get, path = "/dags/{dag_id}", tag = "DAG", params(("dag_id" = String, Path)), responses((status = 200, body = DagResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn get(State(state): State<AppState>, Path(dag_id): Path<String>) -> Result<Json<DagResponse>, ApiError> {
    let row = find(&state, &dag_id).await?;
    Ok(Json(respond(&state, row, &broken_files(&state).await?).await?))
}

/// Airflow 3's `DAGDetailsResponse`: the DAG with the settings of its latest version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DagDetailsResponse {
    #[serde(flatten)]
    pub dag: DagResponse,
    pub catchup: bool,
    pub concurrency: i64,
    pub dag_run_timeout: Option<String>,
    pub default_args: Value,
    pub doc_md: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub is_paused_upon_creation: Option<bool>,
    pub params: Value,
    pub render_template_as_native_obj: bool,
    pub template_search_path: Option<Vec<String>>,
    pub timezone: Option<String>,
    pub last_parsed: Option<DateTime<Utc>>,
    pub latest_dag_version: Option<super::runs::DagVersionResponse>,
    pub owner_links: Option<Value>,
    pub is_favorite: bool,
    pub active_runs_count: i64,
}

#[utoipa::path(get, path = "/dags/{dag_id}/details", tag = "DAG", params(("dag_id" = String, Path)), responses((status = 200, body = DagDetailsResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn details(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
) -> Result<Json<DagDetailsResponse>, ApiError> {
    let row = find(&state, &dag_id).await?;
    let dag = latest(&state, &row).await?.ok_or_else(|| dag_not_found(&dag_id))?;
    let store = state.engine.store();
    let version = match row.latest_version_id {
        Some(id) => store.version_summaries(&[id]).await?.pop().map(Into::into),
        None => None,
    };
    let active = RunFilter {
        dag_id: Some(dag_id.clone()),
        states: vec![RunState::Queued, RunState::Running],
        limit: 0,
        ..RunFilter::default()
    };
    let (_, active_runs_count) = store.list_runs(&active).await?;
    let spec = &dag.spec;
    let tz = dag.timezone();
    let details = DagDetailsResponse {
        catchup: spec.catchup,
        concurrency: row.max_active_tasks,
        dag_run_timeout: spec.dagrun_timeout.map(|d| format!("PT{}S", d.as_secs_f64())),
        default_args: serde_json::to_value(&spec.default_args).unwrap_or(Value::Null),
        doc_md: spec.description.clone(),
        start_date: spec.start_date.as_ref().map(|d| d.resolve(tz)),
        end_date: spec.end_date.as_ref().map(|d| d.resolve(tz)),
        is_paused_upon_creation: Some(dag.is_paused_upon_creation()),
        params: airflow_params(&spec.params),
        render_template_as_native_obj: false,
        template_search_path: None,
        timezone: Some(tz.name().to_owned()),
        last_parsed: row.last_parsed,
        latest_dag_version: version,
        owner_links: None,
        is_favorite: false,
        active_runs_count,
        dag: respond(&state, row, &broken_files(&state).await?).await?,
    };
    Ok(Json(details))
}

/// The DAG's params as Airflow 3 serialises a `ParamsDict` (`Param.dump()`): for each name its default as
/// `value`, its JSON Schema as `schema` and its `description`, which is what trigger forms are generated from.
pub(crate) fn airflow_params(params: &BTreeMap<String, ParamSpec>) -> Value {
    let dumped = params
        .iter()
        .map(|(name, p)| {
            let param = serde_json::json!({
                "__class": "airflow.sdk.definitions.param.Param",
                "value": p.default.clone().unwrap_or(Value::Null),
                "schema": p.schema,
                "description": p.description,
                "source": null,
            });
            (name.clone(), param)
        })
        .collect();
    Value::Object(dumped)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    is_paused: bool,
}

#[utoipa::path(patch, path = "/dags/{dag_id}", tag = "DAG", params(("dag_id" = String, Path), super::UpdateMask), request_body = PatchBody, responses((status = 200, body = DagResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    ApiQuery(mask): ApiQuery<super::UpdateMask>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<DagResponse>, ApiError> {
    mask.fields(&["is_paused"])?;
    find(&state, &dag_id).await?;
    let row = state.engine.store().set_paused(&dag_id, body.is_paused).await?.ok_or_else(|| dag_not_found(&dag_id))?;
    tracing::info!(dag_id, is_paused = body.is_paused, "DAG paused flag changed");
    Ok(Json(respond(&state, row, &broken_files(&state).await?).await?))
}

/// Pauses or unpauses every DAG the filters select (one page of them, as Airflow does).
#[utoipa::path(patch, path = "/dags", tag = "DAG", params(ListQuery), request_body = PatchBody, responses((status = 200, body = DagCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn patch_many(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<DagCollection>, ApiError> {
    super::UpdateMask::from(q.update_mask.clone()).fields(&["is_paused"])?;
    let store = state.engine.store();
    let mut filter = q.filter()?;
    filter.hidden_dag_ids = principal.hidden_dags(store).await?;
    let (rows, total_entries) = store.list_dags(&filter).await?;
    // Every DAG must be editable by the caller before any changes: a bulk change is all or nothing.
    for row in &rows {
        if !principal.may_on_dag(store, &row.dag_id, DagAction::CanEdit).await? {
            return Err(ApiError::Forbidden(format!("you may not edit the DAG `{}`", row.dag_id)));
        }
    }
    let mut changed = Vec::with_capacity(rows.len());
    for row in rows {
        changed.extend(store.set_paused(&row.dag_id, body.is_paused).await?);
    }
    tracing::info!(count = changed.len(), is_paused = body.is_paused, "DAGs paused flag changed");
    Ok(Json(DagCollection { dags: respond_all(&state, changed).await?, total_entries }))
}

/// Deletes a DAG's records (runs, task instances, logs). Its file, if still in the folder, brings it back.
#[utoipa::path(delete, path = "/dags/{dag_id}", tag = "DAG", params(("dag_id" = String, Path)), responses((status = 204, description = "Deleted"), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Path(dag_id): Path<String>) -> Result<StatusCode, ApiError> {
    match state.engine.store().delete_dag(&dag_id).await? {
        DagDeletion::Deleted => {
            tracing::info!(dag_id, "DAG deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        DagDeletion::NotFound => Err(dag_not_found(&dag_id)),
        DagDeletion::TasksActive => {
            Err(ApiError::Conflict(format!("Task instances of dag with id: '{dag_id}' are still running")))
        }
    }
}

/// Airflow 3's `DAGSourceResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DagSourceResponse {
    pub content: Option<String>,
    pub dag_id: String,
    pub version_number: Option<i64>,
    pub dag_display_name: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SourceQuery {
    version_number: Option<i64>,
}

/// The DAG file as it was read for its latest version, or for `version_number`.
#[utoipa::path(get, path = "/dagSources/{dag_id}", tag = "DagSource", params(("dag_id" = String, Path), SourceQuery), responses((status = 200, body = DagSourceResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn source(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    ApiQuery(q): ApiQuery<SourceQuery>,
) -> Result<Json<DagSourceResponse>, ApiError> {
    let row = find(&state, &dag_id).await?;
    let store = state.engine.store();
    let version = match q.version_number {
        Some(number) => store.get_dag_version_by_number(&dag_id, number).await?,
        None => match row.latest_version_id {
            Some(id) => store.get_dag_version(id).await?,
            None => None,
        },
    };
    let version = version.ok_or_else(|| {
        ApiError::NotFound(format!(
            "The source code of DAG {dag_id}, version_number {:?} was not found",
            q.version_number
        ))
    })?;
    Ok(Json(DagSourceResponse {
        content: Some(version.source),
        version_number: Some(version.version_number),
        dag_display_name: dag_id.clone(),
        dag_id,
    }))
}
