//! Task instances of a run, their tries and their logs.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::masking::{SensitiveKeys, shown_rendering};
use sluice_core::{Role, TaskState};
use sluice_store::{DagRunRow, TaskInstanceRow, TaskTryRow, TiFilter};
use uuid::Uuid;

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// How much of what tries were given a caller is shown. Rendered fields keep the values read from variables and
/// connections only for the roles that may read those (Op and above); secrets are masked for everyone (see
/// `sluice_core::masking`).
#[derive(Debug, Clone)]
pub(crate) struct Shown {
    may_read_values: bool,
    keys: SensitiveKeys,
}

impl Shown {
    /// For answers about changes (clears, marks), which do not look at the caller's role: what every role may
    /// see, with Airflow's sensitive words.
    fn to_anyone() -> Shown {
        Shown { may_read_values: false, keys: SensitiveKeys::default() }
    }

    fn rendered(&self, stored: Option<Value>) -> Value {
        stored.map_or_else(
            || Value::Object(Default::default()),
            |stored| shown_rendering(&stored, self.may_read_values, &self.keys),
        )
    }
}

impl FromRequestParts<AppState> for Shown {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        Ok(Shown { may_read_values: principal.role >= Role::Op, keys: state.engine.config().sensitive.clone() })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskInstanceResponse {
    pub id: String,
    pub task_id: String,
    pub dag_id: String,
    pub dag_run_id: String,
    pub map_index: i64,
    pub logical_date: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    /// `null` until the scheduler first decides about the task, as in Airflow.
    pub state: Option<TaskState>,
    pub try_number: i64,
    pub max_tries: i64,
    pub task_display_name: String,
    pub dag_display_name: String,
    pub hostname: Option<String>,
    pub pool: String,
    pub pool_slots: i64,
    pub queue: String,
    pub priority_weight: i64,
    pub operator: String,
    pub queued_when: Option<DateTime<Utc>>,
    pub scheduled_when: Option<DateTime<Utc>>,
    pub pid: Option<i64>,
    pub executor: Option<String>,
    pub note: Option<String>,
    pub rendered_fields: Value,
    /// Airflow's per-task executor settings; Sluice has none, so always `{}`.
    pub executor_config: String,
    /// The small JSON value the task's last try produced (what downstream templates read as `outputs`).
    pub output: Option<Value>,
}

fn duration(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Option<f64> {
    start.zip(end).map(|(s, e)| (e - s).num_milliseconds() as f64 / 1000.0)
}

fn response(ti: TaskInstanceRow, run: &DagRunRow, shown: &Shown) -> TaskInstanceResponse {
    TaskInstanceResponse {
        id: ti.id.to_string(),
        task_display_name: ti.task_id.clone(),
        dag_display_name: ti.dag_id.clone(),
        task_id: ti.task_id,
        dag_id: ti.dag_id,
        dag_run_id: ti.run_id,
        map_index: ti.map_index,
        logical_date: run.logical_date,
        run_after: run.run_after,
        duration: duration(ti.start_date, ti.end_date),
        start_date: ti.start_date,
        end_date: ti.end_date,
        state: (ti.state != TaskState::None).then_some(ti.state),
        try_number: ti.try_number,
        max_tries: ti.max_tries,
        hostname: ti.hostname,
        pool: ti.pool,
        pool_slots: ti.pool_slots,
        queue: ti.queue,
        priority_weight: ti.priority_weight,
        operator: "command".into(),
        queued_when: ti.queued_at,
        scheduled_when: ti.scheduled_at,
        pid: ti.pid,
        executor: ti.worker,
        note: None,
        rendered_fields: shown.rendered(ti.rendered),
        executor_config: NO_EXECUTOR_CONFIG.into(),
        output: ti.output,
    }
}

const NO_EXECUTOR_CONFIG: &str = "{}";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskInstanceCollection {
    pub task_instances: Vec<TaskInstanceResponse>,
    pub total_entries: i64,
}

/// Task instances of one run, answered with that run's dates.
pub(crate) fn collection(tis: Vec<TaskInstanceRow>, run: &DagRunRow) -> TaskInstanceCollection {
    let total_entries = i64::try_from(tis.len()).unwrap_or(i64::MAX);
    let shown = Shown::to_anyone();
    TaskInstanceCollection {
        task_instances: tis.into_iter().map(|ti| response(ti, run, &shown)).collect(),
        total_entries,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    #[serde(default)]
    state: Vec<String>,
    #[serde(default)]
    task_id: Vec<String>,
    #[serde(default)]
    pool: Vec<String>,
    #[serde(default)]
    queue: Vec<String>,
}

fn parse_states(values: &[String]) -> Result<Vec<TaskState>, ApiError> {
    values
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<TaskState>().map_err(|e| ApiError::Unprocessable(e.to_string())))
        .collect()
}

/// Task instances of a run, or across runs and DAGs with `~` for the run id and the DAG id (leaving out the DAGs
/// the caller may not read).
#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", tag = "TaskInstance", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ListQuery), responses((status = 200, body = TaskInstanceCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    shown: Shown,
    Path((dag_id, run_id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<TaskInstanceCollection>, ApiError> {
    let (limit, offset) = super::Page { limit: q.limit, offset: q.offset }.checked()?;
    let mut filter = TiFilter {
        states: parse_states(&q.state)?,
        task_ids: q.task_id,
        pools: q.pool,
        queues: q.queue,
        limit,
        offset,
        hidden_dag_ids: principal.hidden_dags(state.engine.store()).await?,
        ..TiFilter::default()
    };
    let mut runs: HashMap<Uuid, DagRunRow> = HashMap::new();
    match (dag_id.as_str(), run_id.as_str()) {
        ("~", "~") => {}
        ("~", _) => return Err(ApiError::BadRequest("a run id needs its DAG id: use `~` for both or neither".into())),
        (_, "~") => {
            super::dags::find(&state, &dag_id).await?;
            filter.dag_id = Some(dag_id);
        }
        _ => {
            let run = super::runs::find(&state, &dag_id, &run_id).await?;
            filter.run_pk = Some(run.id);
            runs.insert(run.id, run);
        }
    }
    page(&state, &filter, runs, &shown).await
}

/// A page of task instances, each answered with its run's dates (`runs`: those known already).
async fn page(
    state: &AppState,
    filter: &TiFilter,
    mut runs: HashMap<Uuid, DagRunRow>,
    shown: &Shown,
) -> Result<Json<TaskInstanceCollection>, ApiError> {
    let store = state.engine.store();
    let (tis, total_entries) = store.list_task_instances(filter).await?;
    let mut task_instances = Vec::with_capacity(tis.len());
    for ti in tis {
        if !runs.contains_key(&ti.run_pk) {
            let Some(run) = store.get_run_by_pk(ti.run_pk).await? else { continue };
            runs.insert(run.id, run);
        }
        let Some(run) = runs.get(&ti.run_pk) else { continue };
        task_instances.push(response(ti, run, shown));
    }
    Ok(Json(TaskInstanceCollection { task_instances, total_entries }))
}

/// Airflow 3's `TaskInstancesBatchBody` (`POST /dags/~/dagRuns/~/taskInstances/list`): its list filters.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    #[serde(default)]
    page_offset: i64,
    #[serde(default = "super::default_limit")]
    page_limit: i64,
    dag_ids: Option<Vec<String>>,
    dag_run_ids: Option<Vec<String>>,
    task_ids: Option<Vec<String>>,
    state: Option<Vec<Option<String>>>,
    pool: Option<Vec<String>>,
    queue: Option<Vec<String>>,
}

/// Task instances across DAGs and runs, filtered by a body; the DAGs the caller may not read are left out.
#[utoipa::path(post, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/list", tag = "TaskInstance", params(("dag_id" = String, Path), ("dag_run_id" = String, Path)), request_body = BatchBody, responses((status = 200, body = TaskInstanceCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list_batch(
    State(state): State<AppState>,
    principal: Principal,
    shown: Shown,
    Path((dag_id, run_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<BatchBody>,
) -> Result<Json<TaskInstanceCollection>, ApiError> {
    if dag_id != "~" || run_id != "~" {
        return Err(ApiError::BadRequest("the batch list reads across DAGs and runs: use `~` for both".into()));
    }
    let (limit, offset) = super::Page { limit: body.page_limit, offset: body.page_offset }.checked()?;
    // Airflow's `null` state is the task instance with no state yet.
    let states: Vec<String> = body
        .state
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.unwrap_or_else(|| TaskState::None.as_str().to_owned()))
        .collect();
    let filter = TiFilter {
        dag_ids: body.dag_ids.unwrap_or_default(),
        run_ids: body.dag_run_ids.unwrap_or_default(),
        task_ids: body.task_ids.unwrap_or_default(),
        states: parse_states(&states)?,
        pools: body.pool.unwrap_or_default(),
        queues: body.queue.unwrap_or_default(),
        limit,
        offset,
        hidden_dag_ids: principal.hidden_dags(state.engine.store()).await?,
        ..TiFilter::default()
    };
    page(&state, &filter, HashMap::new(), &shown).await
}

pub(crate) async fn find(
    state: &AppState,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    map_index: i64,
) -> Result<(DagRunRow, TaskInstanceRow), ApiError> {
    let run = super::runs::find(state, dag_id, run_id).await?;
    let store = state.engine.store();
    if let Some(ti) = store.get_task_instance(run.id, task_id, map_index).await? {
        return Ok((run, ti));
    }
    // Airflow's answer when a mapped task is asked for as if it were not mapped.
    if map_index == -1 && store.get_task_instance(run.id, task_id, 0).await?.is_some() {
        return Err(ApiError::NotFound(format!(
            "Task Instance `{task_id}` is mapped, add the map_index value to the URL"
        )));
    }
    Err(ApiError::NotFound(format!(
        "The Task Instance with dag_id: `{dag_id}`, run_id: `{run_id}`, task_id: `{task_id}` and map_index: `{map_index}` was not found"
    )))
}

#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", tag = "TaskInstance", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path)), responses((status = 200, body = TaskInstanceResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    shown: Shown,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
) -> Result<Json<TaskInstanceResponse>, ApiError> {
    let (run, ti) = find(&state, &dag_id, &run_id, &task_id, -1).await?;
    Ok(Json(response(ti, &run, &shown)))
}

/// One instance of a mapped task.
#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}", tag = "TaskInstance", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), ("map_index" = i64, Path)), responses((status = 200, body = TaskInstanceResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn get_mapped(
    State(state): State<AppState>,
    shown: Shown,
    ApiPath((dag_id, run_id, task_id, map_index)): ApiPath<(String, String, String, i64)>,
) -> Result<Json<TaskInstanceResponse>, ApiError> {
    let (run, ti) = find(&state, &dag_id, &run_id, &task_id, map_index).await?;
    Ok(Json(response(ti, &run, &shown)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MappedQuery {
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

/// The instances of a mapped task in `map_index` order.
#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/listMapped", tag = "TaskInstance", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), MappedQuery), responses((status = 200, body = TaskInstanceCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list_mapped(
    State(state): State<AppState>,
    shown: Shown,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<MappedQuery>,
) -> Result<Json<TaskInstanceCollection>, ApiError> {
    let (limit, offset) = super::Page { limit: q.limit, offset: q.offset }.checked()?;
    let run = super::runs::find(&state, &dag_id, &run_id).await?;
    let filter = TiFilter { run_pk: Some(run.id), task_ids: vec![task_id], limit, offset, ..TiFilter::default() };
    page(&state, &filter, HashMap::from([(run.id, run)]), &shown).await
}

/// One try, shaped like Airflow's `TaskInstanceHistoryResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TryResponse {
    pub task_id: String,
    pub dag_id: String,
    pub dag_run_id: String,
    pub map_index: i64,
    pub start_date: DateTime<Utc>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub state: TaskState,
    pub try_number: i64,
    pub max_tries: i64,
    pub task_display_name: String,
    pub hostname: Option<String>,
    pub pool: String,
    pub pool_slots: i64,
    pub queue: String,
    pub priority_weight: i64,
    pub operator: String,
    pub pid: Option<i64>,
    pub executor: Option<String>,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub rendered_fields: Value,
    pub executor_config: String,
    pub output: Option<Value>,
    /// Where the lake keeps the try's return value, when it was too big for `output`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_uri: Option<String>,
}

fn try_response(t: TaskTryRow, ti: &TaskInstanceRow, shown: &Shown) -> TryResponse {
    TryResponse {
        task_id: ti.task_id.clone(),
        dag_id: ti.dag_id.clone(),
        dag_run_id: ti.run_id.clone(),
        map_index: ti.map_index,
        duration: duration(Some(t.start_date), t.end_date),
        start_date: t.start_date,
        end_date: t.end_date,
        state: t.state,
        try_number: t.try_number,
        max_tries: ti.max_tries,
        task_display_name: ti.task_id.clone(),
        hostname: t.hostname,
        pool: ti.pool.clone(),
        pool_slots: ti.pool_slots,
        queue: ti.queue.clone(),
        priority_weight: ti.priority_weight,
        operator: "command".into(),
        pid: t.pid,
        executor: t.worker,
        exit_code: t.exit_code,
        error: t.error,
        rendered_fields: shown.rendered(t.rendered),
        executor_config: NO_EXECUTOR_CONFIG.into(),
        output: t.output,
        output_uri: t.output_uri,
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TryCollection {
    pub task_instances: Vec<TryResponse>,
    pub total_entries: i64,
}

#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries", tag = "TaskInstance", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path)), responses((status = 200, body = TryCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn tries(
    State(state): State<AppState>,
    shown: Shown,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
) -> Result<Json<TryCollection>, ApiError> {
    let (_, ti) = find(&state, &dag_id, &run_id, &task_id, -1).await?;
    try_collection(&state, ti, &shown).await
}

#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/tries", tag = "TaskInstance", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), ("map_index" = i64, Path)), responses((status = 200, body = TryCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn mapped_tries(
    State(state): State<AppState>,
    shown: Shown,
    ApiPath((dag_id, run_id, task_id, map_index)): ApiPath<(String, String, String, i64)>,
) -> Result<Json<TryCollection>, ApiError> {
    let (_, ti) = find(&state, &dag_id, &run_id, &task_id, map_index).await?;
    try_collection(&state, ti, &shown).await
}

async fn try_collection(state: &AppState, ti: TaskInstanceRow, shown: &Shown) -> Result<Json<TryCollection>, ApiError> {
    let tries = state.engine.store().list_tries(ti.id).await?;
    let total_entries = i64::try_from(tries.len()).unwrap_or(i64::MAX);
    Ok(Json(TryCollection {
        task_instances: tries.into_iter().map(|t| try_response(t, &ti, shown)).collect(),
        total_entries,
    }))
}

pub(crate) async fn find_try(
    state: &AppState,
    (dag_id, run_id, task_id, try_number): &(String, String, String, i64),
    map_index: i64,
) -> Result<(TaskInstanceRow, TaskTryRow), ApiError> {
    let (_, ti) = find(state, dag_id, run_id, task_id, map_index).await?;
    let found = state.engine.store().get_try(ti.id, *try_number).await?;
    let t = found.ok_or_else(|| {
        ApiError::NotFound(format!(
            "Try {try_number} of task `{task_id}` in run `{run_id}` of `{dag_id}` was not found"
        ))
    })?;
    Ok((ti, t))
}

#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries/{task_try_number}", tag = "TaskInstance", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), ("task_try_number" = i64, Path)), responses((status = 200, body = TryResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn try_detail(
    State(state): State<AppState>,
    shown: Shown,
    ApiPath(key): ApiPath<(String, String, String, i64)>,
) -> Result<Json<TryResponse>, ApiError> {
    let (ti, t) = find_try(&state, &key, -1).await?;
    Ok(Json(try_response(t, &ti, &shown)))
}

#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/tries/{task_try_number}", tag = "TaskInstance", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), ("map_index" = i64, Path), ("task_try_number" = i64, Path)), responses((status = 200, body = TryResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn mapped_try_detail(
    State(state): State<AppState>,
    shown: Shown,
    ApiPath((dag_id, run_id, task_id, map_index, try_number)): ApiPath<(String, String, String, i64, i64)>,
) -> Result<Json<TryResponse>, ApiError> {
    let (ti, t) = find_try(&state, &(dag_id, run_id, task_id, try_number), map_index).await?;
    Ok(Json(try_response(t, &ti, &shown)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Airflow's continuation token: here, the id of the last line already read.
    token: Option<String>,
    #[serde(default)]
    full_content: Option<bool>,
    map_index: Option<i64>,
    /// Lines per page (at most and by default 10,000); ignored with `full_content`.
    limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// Increasing within the try: a line's id is a continuation token that reads on after it.
    pub id: i64,
    pub timestamp: DateTime<Utc>,
    pub event: String,
    pub stream: String,
}

/// Airflow 3's `TaskInstancesLogResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogResponse {
    pub content: Vec<LogLine>,
    pub continuation_token: Option<String>,
}

/// Lines per page when not asked for the full content.
const LOG_PAGE: i64 = 10_000;

/// The log of one try, also while it runs. `Accept: text/plain` answers the lines as text.
#[utoipa::path(get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}", tag = "TaskInstance", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), ("try_number" = i64, Path), LogQuery), responses((status = 200, content((LogResponse = "application/json"), (String = "text/plain"))), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn logs(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<(String, String, String, i64)>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    let (_, t) = find_try(&state, &key, q.map_index.unwrap_or(-1)).await?;
    let after = match &q.token {
        Some(token) => {
            token.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("invalid continuation token {token:?}")))?
        }
        None => 0,
    };
    let limit = match (q.full_content.unwrap_or(false), q.limit) {
        (true, _) => i64::MAX,
        (false, None) => LOG_PAGE,
        (false, Some(limit)) if (1..=LOG_PAGE).contains(&limit) => limit,
        (false, Some(limit)) => {
            return Err(ApiError::Unprocessable(format!("limit {limit} must be between 1 and {LOG_PAGE}")));
        }
    };
    let rows = state.engine.read_logs(t.id, after, limit).await?;
    let continuation_token = rows.last().map(|r| r.id.to_string()).or(q.token);
    let plain = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if plain {
        let text: String = rows.iter().map(|r| format!("{}\n", r.line)).collect();
        return Ok(text.into_response());
    }
    let content = rows
        .into_iter()
        .map(|r| LogLine { id: r.id, timestamp: r.timestamp, event: r.line, stream: r.stream })
        .collect();
    Ok(Json(LogResponse { content, continuation_token }).into_response())
}
