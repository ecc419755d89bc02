//! `/api/v2/dags/{dag_id}/dagRuns`: list (`~` for every DAG, and a batch list), get, trigger, mark, clear, delete.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::{DataInterval, RunState};
use sluice_scheduler::{TaskSelection, TriggerRequest};
use sluice_store::{Compare, DagRunRow, RunFilter, RunOrder, RunTime, TimeBound, VersionSummary};
use uuid::Uuid;

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiQuery};
use crate::{ApiError, AppState};

/// Airflow 3's `DagVersionResponse`: the DAG version a run pinned.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DagVersionResponse {
    pub id: String,
    pub version_number: i64,
    pub dag_id: String,
    pub bundle_name: Option<String>,
    pub bundle_version: Option<String>,
    pub created_at: DateTime<Utc>,
    pub dag_display_name: String,
}

impl From<VersionSummary> for DagVersionResponse {
    fn from(v: VersionSummary) -> Self {
        DagVersionResponse {
            id: v.id.to_string(),
            version_number: v.version_number,
            dag_display_name: v.dag_id.clone(),
            dag_id: v.dag_id,
            bundle_name: Some(super::dags::BUNDLE_NAME.into()),
            bundle_version: None,
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DagRunResponse {
    pub dag_run_id: String,
    pub dag_id: String,
    pub logical_date: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub last_scheduling_decision: Option<DateTime<Utc>>,
    pub run_type: String,
    pub state: RunState,
    pub triggered_by: Option<String>,
    pub conf: Value,
    pub note: Option<String>,
    pub dag_versions: Vec<DagVersionResponse>,
    pub bundle_version: Option<String>,
    pub dag_display_name: String,
}

fn response(run: DagRunRow, versions: &HashMap<Uuid, VersionSummary>) -> DagRunResponse {
    let duration = run.start_date.zip(run.end_date).map(|(s, e)| (e - s).num_milliseconds() as f64 / 1000.0);
    DagRunResponse {
        dag_display_name: run.dag_id.clone(),
        dag_versions: versions.get(&run.version_id).cloned().map(Into::into).into_iter().collect(),
        dag_run_id: run.run_id,
        dag_id: run.dag_id,
        logical_date: run.logical_date,
        queued_at: run.queued_at,
        start_date: run.start_date,
        end_date: run.end_date,
        duration,
        data_interval_start: run.data_interval_start,
        data_interval_end: run.data_interval_end,
        run_after: run.run_after,
        last_scheduling_decision: run.last_scheduling_decision,
        run_type: run.run_type,
        state: run.state,
        triggered_by: run.triggered_by,
        conf: run.conf,
        note: run.note,
        bundle_version: None,
    }
}

/// Shapes runs for an answer, with the DAG version each one pinned.
pub(crate) async fn responses(state: &AppState, runs: Vec<DagRunRow>) -> Result<Vec<DagRunResponse>, ApiError> {
    let mut ids: Vec<Uuid> = runs.iter().map(|r| r.version_id).collect();
    ids.sort();
    ids.dedup();
    let versions = state.engine.store().version_summaries(&ids).await?.into_iter().map(|v| (v.id, v)).collect();
    Ok(runs.into_iter().map(|run| response(run, &versions)).collect())
}

async fn one(state: &AppState, run: DagRunRow) -> Result<DagRunResponse, ApiError> {
    let mut shaped = responses(state, vec![run]).await?;
    shaped.pop().ok_or_else(|| ApiError::NotFound("the DAG run disappeared".into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DagRunCollection {
    pub dag_runs: Vec<DagRunResponse>,
    pub total_entries: i64,
}

/// Query of `GET .../dagRuns`: Airflow's filters, each date range as `<field>_gte`, `_gt`, `_lte`, `_lt`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    /// Repeated, or several separated by commas.
    #[serde(default)]
    state: Vec<String>,
    #[serde(default)]
    run_type: Vec<String>,
    order_by: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    dates: DateRanges,
}

/// Airflow's date range filters of run lists.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
pub struct DateRanges {
    logical_date_gte: Option<DateTime<Utc>>,
    logical_date_gt: Option<DateTime<Utc>>,
    logical_date_lte: Option<DateTime<Utc>>,
    logical_date_lt: Option<DateTime<Utc>>,
    run_after_gte: Option<DateTime<Utc>>,
    run_after_gt: Option<DateTime<Utc>>,
    run_after_lte: Option<DateTime<Utc>>,
    run_after_lt: Option<DateTime<Utc>>,
    start_date_gte: Option<DateTime<Utc>>,
    start_date_gt: Option<DateTime<Utc>>,
    start_date_lte: Option<DateTime<Utc>>,
    start_date_lt: Option<DateTime<Utc>>,
    end_date_gte: Option<DateTime<Utc>>,
    end_date_gt: Option<DateTime<Utc>>,
    end_date_lte: Option<DateTime<Utc>>,
    end_date_lt: Option<DateTime<Utc>>,
}

impl DateRanges {
    fn bounds(&self) -> Vec<TimeBound> {
        use Compare::{Gt, Gte, Lt, Lte};
        use RunTime::{EndDate, LogicalDate, RunAfter, StartDate};
        let all = [
            (LogicalDate, Gte, self.logical_date_gte),
            (LogicalDate, Gt, self.logical_date_gt),
            (LogicalDate, Lte, self.logical_date_lte),
            (LogicalDate, Lt, self.logical_date_lt),
            (RunAfter, Gte, self.run_after_gte),
            (RunAfter, Gt, self.run_after_gt),
            (RunAfter, Lte, self.run_after_lte),
            (RunAfter, Lt, self.run_after_lt),
            (StartDate, Gte, self.start_date_gte),
            (StartDate, Gt, self.start_date_gt),
            (StartDate, Lte, self.start_date_lte),
            (StartDate, Lt, self.start_date_lt),
            (EndDate, Gte, self.end_date_gte),
            (EndDate, Gt, self.end_date_gt),
            (EndDate, Lte, self.end_date_lte),
            (EndDate, Lt, self.end_date_lt),
        ];
        all.into_iter().filter_map(|(column, compare, at)| Some(TimeBound { column, compare, at: at? })).collect()
    }
}

fn parse_states(values: &[String]) -> Result<Vec<RunState>, ApiError> {
    values
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<RunState>().map_err(|_| {
                ApiError::Unprocessable(format!("invalid state {s:?}: expected queued, running, success or failed"))
            })
        })
        .collect()
}

/// `order_by` as Airflow takes it: a field name, `-` in front for descending.
fn parse_order(order_by: Option<&str>) -> Result<(RunOrder, bool), ApiError> {
    let Some(text) = order_by.filter(|t| !t.is_empty()) else { return Ok((RunOrder::Id, false)) };
    let (field, descending) = match text.strip_prefix('-') {
        Some(field) => (field, true),
        None => (text, false),
    };
    let order = match field {
        "id" => RunOrder::Id,
        "run_after" => RunOrder::Time(RunTime::RunAfter),
        "logical_date" => RunOrder::Time(RunTime::LogicalDate),
        "start_date" => RunOrder::Time(RunTime::StartDate),
        "end_date" => RunOrder::Time(RunTime::EndDate),
        "state" => RunOrder::State,
        "dag_id" => RunOrder::DagId,
        "run_id" | "dag_run_id" => RunOrder::RunId,
        other => {
            return Err(ApiError::BadRequest(format!(
                "Ordering with '{other}' is disallowed or the attribute does not exist on the model; use one of \
                 id, run_after, logical_date, start_date, end_date, state, dag_id, dag_run_id"
            )));
        }
    };
    Ok((order, descending))
}

#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns", tag = "DagRun", params(("dag_id" = String, Path), ListQuery, DateRanges), responses((status = 200, body = DagRunCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(dag_id): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<DagRunCollection>, ApiError> {
    let (limit, offset) = super::Page { limit: q.limit, offset: q.offset }.checked()?;
    let dag_id = if dag_id == "~" {
        None
    } else {
        super::dags::find(&state, &dag_id).await?;
        Some(dag_id)
    };
    let (order, descending) = parse_order(q.order_by.as_deref())?;
    let filter = RunFilter {
        dag_id,
        states: parse_states(&q.state)?,
        run_types: q.run_type.iter().flat_map(|t| t.split(',')).filter(|t| !t.is_empty()).map(String::from).collect(),
        time_bounds: q.dates.bounds(),
        order,
        descending,
        limit,
        offset,
        hidden_dag_ids: principal.hidden_dags(state.engine.store()).await?,
        ..RunFilter::default()
    };
    page(&state, &filter).await
}

async fn page(state: &AppState, filter: &RunFilter) -> Result<Json<DagRunCollection>, ApiError> {
    let (runs, total_entries) = state.engine.store().list_runs(filter).await?;
    Ok(Json(DagRunCollection { dag_runs: responses(state, runs).await?, total_entries }))
}

/// Airflow 3's `DAGRunsBatchBody` (`POST /dags/~/dagRuns/list`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    order_by: Option<String>,
    #[serde(default)]
    page_offset: i64,
    #[serde(default = "super::default_limit")]
    page_limit: i64,
    dag_ids: Option<Vec<String>>,
    states: Option<Vec<Option<String>>>,
    #[serde(flatten)]
    dates: DateRanges,
}

#[utoipa::path(post, path = "/dags/{dag_id}/dagRuns/list", tag = "DagRun", params(("dag_id" = String, Path)), request_body = BatchBody, responses((status = 200, body = DagRunCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list_batch(
    State(state): State<AppState>,
    principal: Principal,
    Path(dag_id): Path<String>,
    ApiJson(body): ApiJson<BatchBody>,
) -> Result<Json<DagRunCollection>, ApiError> {
    if dag_id != "~" {
        return Err(ApiError::BadRequest("the batch list reads across DAGs: use `~` as the dag_id".into()));
    }
    let (limit, offset) = super::Page { limit: body.page_limit, offset: body.page_offset }.checked()?;
    let (order, descending) = parse_order(body.order_by.as_deref())?;
    let states: Vec<String> = body.states.unwrap_or_default().into_iter().flatten().collect();
    let filter = RunFilter {
        dag_ids: body.dag_ids.unwrap_or_default(),
        states: parse_states(&states)?,
        time_bounds: body.dates.bounds(),
        order,
        descending,
        limit,
        offset,
        hidden_dag_ids: principal.hidden_dags(state.engine.store()).await?,
        ..RunFilter::default()
    };
    page(&state, &filter).await
}

fn run_not_found(dag_id: &str, run_id: &str) -> ApiError {
    ApiError::NotFound(format!("The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"))
}

pub(crate) async fn find(state: &AppState, dag_id: &str, run_id: &str) -> Result<DagRunRow, ApiError> {
    state.engine.store().get_run(dag_id, run_id).await?.ok_or_else(|| run_not_found(dag_id, run_id))
}

#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun", params(("dag_id" = String, Path), ("dag_run_id" = String, Path)), responses((status = 200, body = DagRunResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> Result<Json<DagRunResponse>, ApiError> {
    let run = find(&state, &dag_id, &run_id).await?;
    Ok(Json(one(&state, run).await?))
}

/// Airflow 3's `DAGRunPatchBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default)]
    state: Option<RunState>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    note: Option<Option<String>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// Marks a run queued, success or failed (with its unfinished tasks), and sets its note.
#[utoipa::path(patch, path = "/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), super::UpdateMask), request_body = PatchBody, responses((status = 200, body = DagRunResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    Path((dag_id, run_id)): Path<(String, String)>,
    ApiQuery(mask): ApiQuery<super::UpdateMask>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<DagRunResponse>, ApiError> {
    let fields = mask.fields(&["state", "note"])?;
    let target = body.state.filter(|_| fields.contains(&"state"));
    if target == Some(RunState::Running) {
        return Err(ApiError::Unprocessable("state must be one of queued, success or failed".into()));
    }
    let note = body.note.filter(|_| fields.contains(&"note"));
    let run = state.engine.mark_run(&dag_id, &run_id, target, note).await?;
    Ok(Json(one(&state, run).await?))
}

/// Airflow 3's `DAGRunClearBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearBody {
    #[serde(default = "yes")]
    dry_run: bool,
    #[serde(default)]
    only_failed: bool,
}

fn yes() -> bool {
    true
}

/// The answer of a run's clear: what would be cleared (dry run), or the run re-queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ClearRunResponse {
    DryRun(super::tasks::TaskInstanceCollection),
    Cleared(Box<DagRunResponse>),
}

/// Clears a run's tasks (all, or only the failed ones) so that they run again. A dry run answers the task
/// instances it would clear; otherwise the answer is the re-queued run.
#[utoipa::path(post, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/clear", tag = "DagRun", params(("dag_id" = String, Path), ("dag_run_id" = String, Path)), request_body = ClearBody, responses((status = 200, body = ClearRunResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn clear(
    State(state): State<AppState>,
    Path((dag_id, run_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ClearBody>,
) -> Result<Json<ClearRunResponse>, ApiError> {
    let selection = TaskSelection::default();
    let cleared = state.engine.clear_tasks(&dag_id, &run_id, &selection, body.only_failed, body.dry_run).await?;
    let run = find(&state, &dag_id, &run_id).await?;
    if body.dry_run {
        return Ok(Json(ClearRunResponse::DryRun(super::tasks::collection(cleared, &run))));
    }
    Ok(Json(ClearRunResponse::Cleared(Box::new(one(&state, run).await?))))
}

#[utoipa::path(delete, path = "/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun", params(("dag_id" = String, Path), ("dag_run_id" = String, Path)), responses((status = 204, description = "Deleted"), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if state.engine.store().delete_run(&dag_id, &run_id).await? {
        tracing::info!(dag_id, run_id, "DAG run deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(run_not_found(&dag_id, &run_id))
    }
}

/// Airflow 3's `TriggerDAGRunPostBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    dag_run_id: Option<String>,
    #[serde(default)]
    logical_date: Option<DateTime<Utc>>,
    data_interval_start: Option<DateTime<Utc>>,
    data_interval_end: Option<DateTime<Utc>>,
    conf: Option<serde_json::Map<String, Value>>,
    note: Option<String>,
}

#[utoipa::path(post, path = "/dags/{dag_id}/dagRuns", tag = "DagRun", params(("dag_id" = String, Path)), request_body = TriggerBody, responses((status = 200, body = DagRunResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn trigger(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    ApiJson(body): ApiJson<TriggerBody>,
) -> Result<Json<DagRunResponse>, ApiError> {
    let data_interval = match (body.data_interval_start, body.data_interval_end) {
        (Some(start), Some(end)) if start <= end => Some(DataInterval { start, end }),
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest("data_interval_start must not be after data_interval_end".into()));
        }
        (None, None) => None,
        _ => {
            return Err(ApiError::BadRequest(
                "data_interval_start and data_interval_end must be given together".into(),
            ));
        }
    };
    if let Some(run_id) = &body.dag_run_id
        && run_id.trim().is_empty()
    {
        return Err(ApiError::BadRequest("dag_run_id must not be empty".into()));
    }
    let request = TriggerRequest {
        dag_run_id: body.dag_run_id,
        logical_date: body.logical_date,
        data_interval,
        conf: body.conf.map(Value::Object),
        note: body.note,
        triggered_by: "rest_api".into(),
    };
    let run = state.engine.trigger_run(&dag_id, request).await?;
    Ok(Json(one(&state, run).await?))
}
