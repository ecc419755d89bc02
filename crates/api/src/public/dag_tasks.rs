//! `/api/v2/dags/{dag_id}/tasks`: the tasks of a DAG's latest version, as Airflow 3 lists them, with the task group
//! each is in.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;
use sluice_core::{Dag, TaskSpec};

use crate::{ApiError, AppState};

/// Airflow's serialised `timedelta`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimeDelta {
    #[serde(rename = "__type")]
    pub kind: String,
    pub days: u64,
    pub seconds: u64,
    pub microseconds: u32,
}

impl From<Duration> for TimeDelta {
    fn from(d: Duration) -> TimeDelta {
        let secs = d.as_secs();
        TimeDelta {
            kind: "TimeDelta".into(),
            days: secs / 86_400,
            seconds: secs % 86_400,
            microseconds: d.subsec_micros(),
        }
    }
}

/// Airflow 3's `TaskResponse` (the fields Sluice has), with `group_id`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskResponse {
    /// The full id: prefixed with the ids of the groups the task is in.
    pub task_id: String,
    pub task_display_name: String,
    pub owner: Option<String>,
    pub trigger_rule: String,
    pub retries: u32,
    pub queue: String,
    pub pool: String,
    pub execution_timeout: Option<TimeDelta>,
    pub retry_delay: Option<TimeDelta>,
    pub retry_exponential_backoff: bool,
    pub priority_weight: i32,
    /// `downstream`, `upstream` or `absolute`: how the priority adds up along the graph.
    pub weight_rule: String,
    pub pool_slots: u32,
    pub depends_on_past: bool,
    pub wait_for_downstream: bool,
    pub max_active_tis_per_dag: Option<u32>,
    pub max_active_tis_per_dagrun: Option<u32>,
    pub downstream_task_ids: Vec<String>,
    pub doc_md: Option<String>,
    /// The task's kind: `command`, or a built-in data task kind.
    pub operator_name: String,
    pub params: Value,
    /// Sluice: the innermost task group the task is in (`null` outside groups); the groups are listed by
    /// `GET /ui/structure/{dag_id}`.
    pub group_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskCollection {
    pub tasks: Vec<TaskResponse>,
    pub total_entries: usize,
}

fn respond(dag: &Dag, task: &TaskSpec) -> TaskResponse {
    let resolved = task.resolved(&dag.spec.default_args);
    TaskResponse {
        task_id: task.id.clone(),
        task_display_name: task.id.clone(),
        owner: dag.spec.owner.clone(),
        trigger_rule: task.trigger_rule.as_str().to_owned(),
        retries: resolved.retries,
        queue: resolved.queue,
        pool: resolved.pool,
        execution_timeout: resolved.execution_timeout.map(Into::into),
        retry_delay: Some(resolved.retry_delay.into()),
        retry_exponential_backoff: resolved.retry_exponential_backoff,
        priority_weight: resolved.priority_weight,
        weight_rule: resolved.weight_rule.as_str().to_owned(),
        pool_slots: resolved.pool_slots,
        depends_on_past: resolved.depends_on_past,
        wait_for_downstream: resolved.wait_for_downstream,
        max_active_tis_per_dag: resolved.max_active_tis_per_dag,
        max_active_tis_per_dagrun: resolved.max_active_tis_per_dagrun,
        downstream_task_ids: dag.downstream(&task.id).into_iter().map(str::to_owned).collect(),
        doc_md: task.description.clone(),
        operator_name: task.kind.clone(),
        params: super::dags::airflow_params(&dag.spec.params),
        group_id: task.group.clone(),
    }
}

/// The DAG's tasks in file order.
#[utoipa::path(get, path = "/dags/{dag_id}/tasks", tag = "Task", params(("dag_id" = String, Path)), responses((status = 200, body = TaskCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(State(state): State<AppState>, Path(dag_id): Path<String>) -> Result<Json<TaskCollection>, ApiError> {
    let dag = super::dags::latest_dag(&state, &dag_id).await?;
    let tasks: Vec<TaskResponse> = dag.spec.tasks.iter().map(|t| respond(&dag, t)).collect();
    Ok(Json(TaskCollection { total_entries: tasks.len(), tasks }))
}

#[utoipa::path(get, path = "/dags/{dag_id}/tasks/{task_id}", tag = "Task", params(("dag_id" = String, Path), ("task_id" = String, Path)), responses((status = 200, body = TaskResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path((dag_id, task_id)): Path<(String, String)>,
) -> Result<Json<TaskResponse>, ApiError> {
    let dag = super::dags::latest_dag(&state, &dag_id).await?;
    let task = dag
        .task(&task_id)
        .ok_or_else(|| ApiError::NotFound(format!("Task with id `{task_id}` not found in the DAG `{dag_id}`")))?;
    Ok(Json(respond(&dag, task)))
}
