//! `/api/v2/dags/{dag_id}/dagRuns`: list (`~` for every DAG), get, trigger.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::{DataInterval, RunState};
use sluice_scheduler::TriggerRequest;
use sluice_store::{DagRunRow, RunFilter};

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiQuery};
use crate::{ApiError, AppState};

#[derive(Debug, Serialize)]
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
    pub dag_display_name: String,
}

impl From<DagRunRow> for DagRunResponse {
    fn from(run: DagRunRow) -> Self {
        let duration = run.start_date.zip(run.end_date).map(|(s, e)| (e - s).num_milliseconds() as f64 / 1000.0);
        DagRunResponse {
            dag_display_name: run.dag_id.clone(),
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
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DagRunCollection {
    pub dag_runs: Vec<DagRunResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    /// One state, or several separated by commas.
    state: Option<String>,
}

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
    let states = q
        .state
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<RunState>().map_err(|_| {
                ApiError::Unprocessable(format!("invalid state {s:?}: expected queued, running, success or failed"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let hidden_dag_ids = principal.hidden_dags(state.engine.store()).await?;
    let filter = RunFilter { dag_id, states, limit, offset, hidden_dag_ids };
    let (runs, total_entries) = state.engine.store().list_runs(&filter).await?;
    Ok(Json(DagRunCollection { dag_runs: runs.into_iter().map(Into::into).collect(), total_entries }))
}

pub(crate) async fn find(state: &AppState, dag_id: &str, run_id: &str) -> Result<DagRunRow, ApiError> {
    state.engine.store().get_run(dag_id, run_id).await?.ok_or_else(|| {
        ApiError::NotFound(format!("The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"))
    })
}

pub async fn get(
    State(state): State<AppState>,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> Result<Json<DagRunResponse>, ApiError> {
    Ok(Json(find(&state, &dag_id, &run_id).await?.into()))
}

/// Airflow 3's `TriggerDAGRunPostBody`.
#[derive(Debug, Deserialize)]
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
    Ok(Json(run.into()))
}
