//! `/api/v2/backfills`: runs for past dates of a DAG's schedule, as Airflow 3 creates them.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::{DagAction, RunState};
use sluice_scheduler::{BackfillRequest, Reprocess};
use sluice_store::{BackfillRow, Compare, RunFilter, RunOrder, RunTime, TimeBound};

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// Airflow 3's `BackfillResponse`. Sluice's backfills cannot be paused, so `is_paused` is always false.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BackfillResponse {
    pub id: i64,
    pub dag_id: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub dag_run_conf: Value,
    pub is_paused: bool,
    pub reprocess_behavior: String,
    pub max_active_runs: i64,
    pub created_at: DateTime<Utc>,
    /// When its last run finished; `null` while some of its runs are queued or running.
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub dag_display_name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BackfillCollection {
    pub backfills: Vec<BackfillResponse>,
    pub total_entries: i64,
}

/// Airflow 3's `BackfillPostBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillBody {
    dag_id: String,
    from_date: DateTime<Utc>,
    to_date: DateTime<Utc>,
    #[serde(default)]
    run_backwards: bool,
    #[serde(default)]
    dag_run_conf: Option<Value>,
    /// `none` (default), `failed` or `completed`.
    #[serde(default)]
    reprocess_behavior: Option<String>,
    #[serde(default = "default_max_active_runs")]
    max_active_runs: i64,
}

fn default_max_active_runs() -> i64 {
    10
}

/// The runs in a backfill's range, in the given states, most recently ended first.
fn runs_of(backfill: &BackfillRow, states: Vec<RunState>, limit: i64) -> RunFilter {
    RunFilter {
        dag_id: Some(backfill.dag_id.clone()),
        run_types: vec!["backfill".into()],
        states,
        time_bounds: vec![
            TimeBound { column: RunTime::LogicalDate, compare: Compare::Gte, at: backfill.from_date },
            TimeBound { column: RunTime::LogicalDate, compare: Compare::Lte, at: backfill.to_date },
        ],
        order: RunOrder::Time(RunTime::EndDate),
        descending: true,
        limit,
        ..RunFilter::default()
    }
}

async fn respond(state: &AppState, backfill: BackfillRow) -> Result<BackfillResponse, ApiError> {
    let store = state.engine.store();
    let (_, unfinished) = store.list_runs(&runs_of(&backfill, vec![RunState::Queued, RunState::Running], 0)).await?;
    let completed_at = if unfinished == 0 {
        let (last, _) = store.list_runs(&runs_of(&backfill, vec![RunState::Success, RunState::Failed], 1)).await?;
        last.first().and_then(|run| run.end_date).or(Some(backfill.created_at))
    } else {
        None
    };
    Ok(BackfillResponse {
        id: backfill.id,
        dag_display_name: backfill.dag_id.clone(),
        dag_id: backfill.dag_id,
        from_date: backfill.from_date,
        to_date: backfill.to_date,
        dag_run_conf: backfill.dag_run_conf,
        is_paused: false,
        reprocess_behavior: backfill.reprocess_behavior,
        max_active_runs: backfill.max_active_runs,
        updated_at: completed_at.unwrap_or(backfill.created_at),
        created_at: backfill.created_at,
        completed_at,
    })
}

/// Creates the runs of a DAG's schedule between two dates (logical dates, both included).
#[utoipa::path(post, path = "/backfills", tag = "Backfill", request_body = BackfillBody,
    responses((status = 200, body = BackfillResponse), (status = "default", description = "An error", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<BackfillBody>,
) -> Result<Json<BackfillResponse>, ApiError> {
    // The DAG is in the body, not the path, so its access_control is checked here.
    if !principal.may_on_dag(state.engine.store(), &body.dag_id, DagAction::CanEdit).await? {
        return Err(ApiError::Forbidden(format!("you may not edit the DAG `{}`", body.dag_id)));
    }
    let reprocess = match body.reprocess_behavior.as_deref() {
        None | Some("none") => Reprocess::None,
        Some("failed") => Reprocess::Failed,
        Some("completed") => Reprocess::Completed,
        Some(other) => {
            return Err(ApiError::Unprocessable(format!(
                "reprocess_behavior {other:?} must be none, failed or completed"
            )));
        }
    };
    if body.max_active_runs < 1 {
        return Err(ApiError::Unprocessable("max_active_runs must be at least 1".into()));
    }
    let request = BackfillRequest {
        dag_id: body.dag_id,
        from_date: body.from_date,
        to_date: body.to_date,
        run_backwards: body.run_backwards,
        dag_run_conf: body.dag_run_conf.unwrap_or_else(|| Value::Object(Default::default())),
        reprocess,
        max_active_runs: body.max_active_runs,
    };
    let (backfill, _) = state.engine.backfill(&request).await?;
    Ok(Json(respond(&state, backfill).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    dag_id: String,
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

#[utoipa::path(get, path = "/backfills", tag = "Backfill", params(ListQuery),
    responses((status = 200, body = BackfillCollection), (status = "default", description = "An error", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<BackfillCollection>, ApiError> {
    if !principal.may_on_dag(state.engine.store(), &q.dag_id, DagAction::CanRead).await? {
        return Err(ApiError::Forbidden(format!("you may not read the DAG `{}`", q.dag_id)));
    }
    let (limit, offset) = super::Page { limit: q.limit, offset: q.offset }.checked()?;
    let (rows, total_entries) = state.engine.store().list_backfills(&q.dag_id, limit, offset).await?;
    let mut backfills = Vec::with_capacity(rows.len());
    for row in rows {
        backfills.push(respond(&state, row).await?);
    }
    Ok(Json(BackfillCollection { backfills, total_entries }))
}

#[utoipa::path(get, path = "/backfills/{backfill_id}", tag = "Backfill", params(("backfill_id" = i64, Path)),
    responses((status = 200, body = BackfillResponse), (status = "default", description = "An error", body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<BackfillResponse>, ApiError> {
    let store = state.engine.store();
    let missing = || ApiError::NotFound(format!("Backfill with id {id} not found"));
    let row = store.get_backfill(id).await?.ok_or_else(missing)?;
    // A backfill of a DAG the caller may not read does not exist for them.
    if !principal.may_on_dag(store, &row.dag_id, DagAction::CanRead).await? {
        return Err(missing());
    }
    Ok(Json(respond(&state, row).await?))
}
