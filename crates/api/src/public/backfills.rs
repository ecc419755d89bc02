//! `/api/v2/backfills`: runs for past dates of a DAG's schedule, as Airflow 3 creates them.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::{DagAction, RunState};
use sluice_scheduler::{BackfillRequest, Reprocess};
use sluice_store::{BackfillRow, RunFilter, RunOrder, RunTime};

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// Airflow 3's `BackfillResponse`.
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

/// The backfill's runs in the given states, most recently ended first.
fn runs_of(backfill: &BackfillRow, states: Vec<RunState>, limit: i64) -> RunFilter {
    RunFilter {
        dag_id: Some(backfill.dag_id.clone()),
        backfill_id: Some(backfill.id),
        states,
        order: RunOrder::Time(RunTime::EndDate),
        descending: true,
        limit,
        ..RunFilter::default()
    }
}

async fn respond(state: &AppState, backfill: BackfillRow) -> Result<BackfillResponse, ApiError> {
    let store = state.engine.store();
    let (_, unfinished) = store.list_runs(&runs_of(&backfill, vec![RunState::Queued, RunState::Running], 0)).await?;
    let completed_at = if backfill.cancelled_at.is_some() {
        backfill.cancelled_at
    } else if unfinished == 0 {
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
        is_paused: backfill.is_paused,
        reprocess_behavior: backfill.reprocess_behavior,
        max_active_runs: backfill.max_active_runs,
        updated_at: completed_at.unwrap_or(backfill.created_at),
        created_at: backfill.created_at,
        completed_at,
    })
}

impl BackfillBody {
    /// The request, checked; the caller must be allowed to edit the DAG (named in the body, not the path).
    async fn checked(self, state: &AppState, principal: &Principal) -> Result<BackfillRequest, ApiError> {
        if !principal.may_on_dag(state.engine.store(), &self.dag_id, DagAction::CanEdit).await? {
            return Err(ApiError::Forbidden(format!("you may not edit the DAG `{}`", self.dag_id)));
        }
        let reprocess = match self.reprocess_behavior.as_deref() {
            None | Some("none") => Reprocess::None,
            Some("failed") => Reprocess::Failed,
            Some("completed") => Reprocess::Completed,
            Some(other) => {
                return Err(ApiError::Unprocessable(format!(
                    "reprocess_behavior {other:?} must be none, failed or completed"
                )));
            }
        };
        if self.max_active_runs < 1 {
            return Err(ApiError::Unprocessable("max_active_runs must be at least 1".into()));
        }
        Ok(BackfillRequest {
            dag_id: self.dag_id,
            from_date: self.from_date,
            to_date: self.to_date,
            run_backwards: self.run_backwards,
            dag_run_conf: self.dag_run_conf.unwrap_or_else(|| Value::Object(Default::default())),
            reprocess,
            max_active_runs: self.max_active_runs,
        })
    }
}

/// Creates the runs of a DAG's schedule between two dates (logical dates, both included). 409 while the DAG has
/// an unfinished backfill.
#[utoipa::path(post, path = "/backfills", tag = "Backfill", request_body = BackfillBody,
    responses((status = 200, body = BackfillResponse), (status = "default", description = "An error", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<BackfillBody>,
) -> Result<Json<BackfillResponse>, ApiError> {
    let request = body.checked(&state, &principal).await?;
    let (backfill, _) = state.engine.backfill(&request).await?;
    Ok(Json(respond(&state, backfill).await?))
}

/// Airflow 3's `DryRunBackfillResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DryRunBackfillResponse {
    pub logical_date: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DryRunBackfillCollection {
    pub backfills: Vec<DryRunBackfillResponse>,
    pub total_entries: usize,
}

/// The logical dates a backfill would run (create, or rerun by `reprocess_behavior`), creating nothing.
#[utoipa::path(post, path = "/backfills/dry_run", tag = "Backfill", request_body = BackfillBody,
    responses((status = 200, body = DryRunBackfillCollection), (status = "default", description = "An error", body = crate::openapi::ErrorBody)))]
pub async fn dry_run(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<BackfillBody>,
) -> Result<Json<DryRunBackfillCollection>, ApiError> {
    let request = body.checked(&state, &principal).await?;
    let dates = state.engine.backfill_dry_run(&request).await?;
    let backfills: Vec<_> = dates.into_iter().map(|logical_date| DryRunBackfillResponse { logical_date }).collect();
    Ok(Json(DryRunBackfillCollection { total_entries: backfills.len(), backfills }))
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

/// The backfill, when it exists and the caller may `action` on its DAG; one the caller may not even read does
/// not exist for them.
async fn visible(state: &AppState, principal: &Principal, id: i64, action: DagAction) -> Result<BackfillRow, ApiError> {
    let store = state.engine.store();
    let missing = || ApiError::NotFound(format!("Backfill with id {id} not found"));
    let row = store.get_backfill(id).await?.ok_or_else(missing)?;
    if !principal.may_on_dag(store, &row.dag_id, DagAction::CanRead).await? {
        return Err(missing());
    }
    if action == DagAction::CanEdit && !principal.may_on_dag(store, &row.dag_id, action).await? {
        return Err(ApiError::Forbidden(format!("you may not edit the DAG `{}`", row.dag_id)));
    }
    Ok(row)
}

#[utoipa::path(get, path = "/backfills/{backfill_id}", tag = "Backfill", params(("backfill_id" = i64, Path)),
    responses((status = 200, body = BackfillResponse), (status = "default", description = "An error", body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<BackfillResponse>, ApiError> {
    let row = visible(&state, &principal, id, DagAction::CanRead).await?;
    Ok(Json(respond(&state, row).await?))
}

enum Control {
    Pause,
    Unpause,
    Cancel,
}

async fn control(
    state: &AppState,
    principal: &Principal,
    id: i64,
    control: Control,
) -> Result<Json<BackfillResponse>, ApiError> {
    visible(state, principal, id, DagAction::CanEdit).await?;
    let row = match control {
        Control::Pause => state.engine.pause_backfill(id, true).await?,
        Control::Unpause => state.engine.pause_backfill(id, false).await?,
        Control::Cancel => state.engine.cancel_backfill(id).await?,
    };
    Ok(Json(respond(state, row).await?))
}

/// Stops starting the backfill's queued runs; running ones finish. 409 when it is complete.
#[utoipa::path(put, path = "/backfills/{backfill_id}/pause", tag = "Backfill", params(("backfill_id" = i64, Path)),
    responses((status = 200, body = BackfillResponse), (status = "default", description = "An error", body = crate::openapi::ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<BackfillResponse>, ApiError> {
    control(&state, &principal, id, Control::Pause).await
}

/// Starts the backfill's queued runs again. 409 when it is complete.
#[utoipa::path(put, path = "/backfills/{backfill_id}/unpause", tag = "Backfill", params(("backfill_id" = i64, Path)),
    responses((status = 200, body = BackfillResponse), (status = "default", description = "An error", body = crate::openapi::ErrorBody)))]
pub async fn unpause(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<BackfillResponse>, ApiError> {
    control(&state, &principal, id, Control::Unpause).await
}

/// Cancels the backfill: its queued runs fail, running ones finish, and it is complete. 409 when it already is.
#[utoipa::path(put, path = "/backfills/{backfill_id}/cancel", tag = "Backfill", params(("backfill_id" = i64, Path)),
    responses((status = 200, body = BackfillResponse), (status = "default", description = "An error", body = crate::openapi::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<BackfillResponse>, ApiError> {
    control(&state, &principal, id, Control::Cancel).await
}
