//! Changing task instances by hand: mark one (with its upstream or downstream tasks) and clear tasks so that they
//! run again, as Airflow's `PATCH .../taskInstances/{task_id}` and `POST /dags/{dag_id}/clearTaskInstances` do.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sluice_core::TaskState;
use sluice_scheduler::TaskSelection;
use sluice_store::{Compare, RunFilter, RunTime, TaskInstanceRow, TimeBound};

use super::UpdateMask;
use super::tasks::{TaskInstanceCollection, TaskInstanceResponse};
use crate::extract::{ApiJson, ApiQuery};
use crate::{ApiError, AppState};

/// Airflow 3's `PatchTaskInstanceBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    new_state: Option<TaskState>,
    note: Option<String>,
    #[serde(default)]
    include_upstream: bool,
    #[serde(default)]
    include_downstream: bool,
    #[serde(default)]
    include_future: bool,
    #[serde(default)]
    include_past: bool,
}

async fn mark(
    state: &AppState,
    (dag_id, run_id, task_id): (String, String, String),
    mask: &UpdateMask,
    body: PatchBody,
    dry_run: bool,
) -> Result<Json<TaskInstanceCollection>, ApiError> {
    if body.include_future || body.include_past {
        return Err(ApiError::BadRequest("include_future and include_past are not supported".into()));
    }
    let fields = mask.fields(&["new_state", "note"])?;
    if fields.contains(&"note") && body.note.is_some() {
        return Err(ApiError::BadRequest("notes on task instances are not supported; set the DAG run's note".into()));
    }
    let Some(new_state) = body.new_state.filter(|_| fields.contains(&"new_state")) else {
        return Err(ApiError::BadRequest("new_state is required".into()));
    };
    let run = super::runs::find(state, &dag_id, &run_id).await?;
    let selection = TaskSelection {
        task_ids: Some(vec![task_id]),
        map_indexes: Default::default(),
        include_upstream: body.include_upstream,
        include_downstream: body.include_downstream,
    };
    let marked = state.engine.mark_tasks(&dag_id, &run_id, &selection, new_state, dry_run).await?;
    // Answer the instances as they are now (or, for a dry run, as they were).
    let ids: Vec<_> = marked.iter().map(|ti| ti.task_id.clone()).collect();
    let now = if dry_run { marked } else { reread(state, run.id, &ids).await? };
    Ok(Json(super::tasks::collection(now, &run)))
}

async fn reread(state: &AppState, run_pk: uuid::Uuid, task_ids: &[String]) -> Result<Vec<TaskInstanceRow>, ApiError> {
    if task_ids.is_empty() {
        return Ok(Vec::new());
    }
    let filter = sluice_store::TiFilter {
        run_pk: Some(run_pk),
        task_ids: task_ids.to_vec(),
        limit: i64::MAX,
        ..Default::default()
    };
    Ok(state.engine.store().list_task_instances(&filter).await?.0)
}

/// Sets a task instance's state (success, failed or skipped), optionally with its upstream or downstream tasks.
#[utoipa::path(patch, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", tag = "TaskInstance", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), UpdateMask), request_body = PatchBody, responses((status = 200, body = TaskInstanceCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    Path(key): Path<(String, String, String)>,
    ApiQuery(mask): ApiQuery<UpdateMask>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<TaskInstanceCollection>, ApiError> {
    mark(&state, key, &mask, body, false).await
}

/// What [`patch`] would change, changing nothing.
#[utoipa::path(patch, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/dry_run", tag = "TaskInstance", params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), UpdateMask), request_body = PatchBody, responses((status = 200, body = TaskInstanceCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn patch_dry_run(
    State(state): State<AppState>,
    Path(key): Path<(String, String, String)>,
    ApiQuery(mask): ApiQuery<UpdateMask>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<TaskInstanceCollection>, ApiError> {
    mark(&state, key, &mask, body, true).await
}

/// Airflow 3's `ClearTaskInstancesBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearBody {
    #[serde(default = "yes")]
    dry_run: bool,
    /// Task ids, or `[task_id, map_index]` pairs for single instances of mapped tasks.
    #[schema(value_type = Option<Vec<Object>>)]
    task_ids: Option<Vec<Value>>,
    dag_run_id: Option<String>,
    /// With no `dag_run_id`: the runs whose logical date is in `[start_date, end_date]`.
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
    #[serde(default = "yes")]
    only_failed: bool,
    #[serde(default)]
    only_running: bool,
    #[serde(default)]
    reset_dag_runs: Option<bool>,
    #[serde(default)]
    include_upstream: bool,
    #[serde(default)]
    include_downstream: bool,
    #[serde(default)]
    include_future: bool,
    #[serde(default)]
    include_past: bool,
}

fn yes() -> bool {
    true
}

/// Mapped tasks of a clear of which only some instances are named: task id → map indexes.
type Instances = BTreeMap<String, Vec<i64>>;

/// `task_ids` of a clear: each a task id, or Airflow's `[task_id, map_index]` for one instance of a mapped task.
fn task_ids_and_instances(items: &[Value]) -> Result<(Vec<String>, Instances), ApiError> {
    let (mut ids, mut whole) = (Vec::new(), Vec::new());
    let mut instances = Instances::new();
    for item in items {
        match item {
            Value::String(id) => {
                ids.push(id.clone());
                whole.push(id);
            }
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(id), index] if index.is_i64() => {
                    ids.push(id.clone());
                    instances.entry(id.clone()).or_default().extend(index.as_i64());
                }
                _ => return Err(bad_task_id(item)),
            },
            _ => return Err(bad_task_id(item)),
        }
    }
    // A task named whole is cleared whole, even if one of its instances is named too.
    for id in whole {
        instances.remove(id);
    }
    Ok((ids, instances))
}

fn bad_task_id(item: &Value) -> ApiError {
    ApiError::Unprocessable(format!("task_ids: {item} is neither a task id nor a [task_id, map_index] pair"))
}

/// A clear request touches at most this many DAG runs.
const CLEAR_RUNS_MAX: i64 = 1000;

#[utoipa::path(post, path = "/dags/{dag_id}/clearTaskInstances", tag = "TaskInstance", params(("dag_id" = String, Path)), request_body = ClearBody, responses((status = 200, body = TaskInstanceCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn clear_task_instances(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    ApiJson(body): ApiJson<ClearBody>,
) -> Result<Json<TaskInstanceCollection>, ApiError> {
    if body.include_future || body.include_past {
        return Err(ApiError::BadRequest("include_future and include_past are not supported".into()));
    }
    if body.only_running {
        return Err(ApiError::BadRequest(
            "running task instances cannot be cleared: mark them failed, or wait for them to finish".into(),
        ));
    }
    if body.reset_dag_runs == Some(false) {
        return Err(ApiError::BadRequest("a clear always re-queues the DAG runs it touches".into()));
    }
    super::dags::find(&state, &dag_id).await?;
    let runs = match &body.dag_run_id {
        Some(run_id) => vec![super::runs::find(&state, &dag_id, run_id).await?],
        None => {
            let bounds = [(Compare::Gte, body.start_date), (Compare::Lte, body.end_date)];
            let filter = RunFilter {
                dag_id: Some(dag_id.clone()),
                time_bounds: bounds
                    .into_iter()
                    .filter_map(|(compare, at)| Some(TimeBound { column: RunTime::LogicalDate, compare, at: at? }))
                    .collect(),
                limit: CLEAR_RUNS_MAX,
                ..RunFilter::default()
            };
            state.engine.store().list_runs(&filter).await?.0
        }
    };
    let (task_ids, map_indexes) = match &body.task_ids {
        Some(items) => {
            let (ids, indexes) = task_ids_and_instances(items)?;
            (Some(ids), indexes)
        }
        None => (None, BTreeMap::new()),
    };
    let selection = TaskSelection {
        task_ids,
        map_indexes,
        include_upstream: body.include_upstream,
        include_downstream: body.include_downstream,
    };
    let mut task_instances: Vec<TaskInstanceResponse> = Vec::new();
    for run in &runs {
        let cleared =
            state.engine.clear_tasks(&dag_id, &run.run_id, &selection, body.only_failed, body.dry_run).await?;
        task_instances.extend(super::tasks::collection(cleared, run).task_instances);
    }
    let total_entries = i64::try_from(task_instances.len()).unwrap_or(i64::MAX);
    Ok(Json(TaskInstanceCollection { task_instances, total_entries }))
}
