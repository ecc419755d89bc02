//! `/api/v2/models`: the model registry — models, their versions with metrics, parameters and lineage, the history
//! of their stages, promotion and rollback — and real-time predictions (`POST /models/{name}/predict`, records in the
//! shape of MLflow's `dataframe_records`). Airflow has no registry; the shapes follow MLflow's where it has one.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sluice_core::ops_spec::check_model_name;
use sluice_core::serving::LoggedPrediction;
use sluice_store::{ModelRow, ModelVersionRow, MonitorReportRow, NewFeedback, SetStage, StageChangeRow};

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::serving::{REQUEST_ID_HEADER, Selector, request_id};
use crate::{ApiError, AppState};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelResponse {
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub latest_version: Option<i64>,
    pub production_version: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelCollection {
    pub models: Vec<ModelResponse>,
    pub total_entries: i64,
}

/// Where a version comes from: the data, the transform and the run that made it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionLineage {
    pub input_uri: String,
    /// The asset event whose data the model was trained on.
    pub input_event_id: Option<i64>,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_id: String,
    pub dag_version_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelVersionResponse {
    pub name: String,
    pub version: i64,
    /// `none`, `staging`, `production` or `archived`.
    pub stage: String,
    pub algorithm: String,
    pub params: Value,
    /// The chosen candidate's cross-validated metrics (mean over the folds).
    pub metrics: Value,
    /// Per-fold metrics, every candidate of the grid, the fold of each row, confusion matrix, features, inputs.
    pub details: Value,
    pub artifact_uri: String,
    pub lineage: VersionLineage,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelVersionCollection {
    pub versions: Vec<ModelVersionResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StageChangeResponse {
    pub version: i64,
    pub from_stage: String,
    pub to_stage: String,
    /// `user:<name>` or `run:<dag_id>/<run_id>/<task_id>`.
    pub changed_by: String,
    pub reason: Option<String>,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StageHistory {
    pub stage_changes: Vec<StageChangeResponse>,
    pub total_entries: i64,
}

fn model_response(row: ModelRow) -> ModelResponse {
    ModelResponse {
        name: row.name,
        description: row.description,
        created_at: row.created,
        updated_at: row.updated,
        latest_version: row.latest_version,
        production_version: row.production_version,
    }
}

fn version_response(row: ModelVersionRow) -> ModelVersionResponse {
    ModelVersionResponse {
        name: row.model,
        version: row.version,
        stage: row.stage,
        algorithm: row.algorithm,
        params: row.params,
        metrics: serde_json::to_value(row.metrics).unwrap_or_default(),
        details: row.details,
        artifact_uri: row.artifact_uri,
        lineage: VersionLineage {
            input_uri: row.input_uri,
            input_event_id: row.input_event_id,
            dag_id: row.dag_id,
            run_id: row.run_id,
            task_id: row.task_id,
            try_id: row.try_id,
            dag_version_id: row.dag_version_id,
        },
        description: row.description,
        created_at: row.created,
    }
}

fn stage_response(row: StageChangeRow) -> StageChangeResponse {
    StageChangeResponse {
        version: row.version,
        from_stage: row.from_stage,
        to_stage: row.to_stage,
        changed_by: row.changed_by,
        reason: row.reason,
        timestamp: row.timestamp,
    }
}

async fn existing_model(state: &AppState, name: &str) -> Result<ModelRow, ApiError> {
    state.engine.store().get_model(name).await?.ok_or_else(|| ApiError::NotFound(format!("model {name:?} not found")))
}

#[utoipa::path(get, path = "/models", tag = "Model", params(super::Page),
    responses((status = 200, body = ModelCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<super::Page>,
) -> Result<Json<ModelCollection>, ApiError> {
    let (limit, offset) = page.checked()?;
    let (rows, total_entries) = state.engine.store().list_models(limit, offset).await?;
    Ok(Json(ModelCollection { models: rows.into_iter().map(model_response).collect(), total_entries }))
}

#[utoipa::path(get, path = "/models/{name}", tag = "Model", params(("name" = String, Path)),
    responses((status = 200, body = ModelResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ModelResponse>, ApiError> {
    Ok(Json(model_response(existing_model(&state, &name).await?)))
}

/// Every version, newest first.
#[utoipa::path(get, path = "/models/{name}/versions", tag = "Model", params(("name" = String, Path)),
    responses((status = 200, body = ModelVersionCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ModelVersionCollection>, ApiError> {
    existing_model(&state, &name).await?;
    let rows = state.engine.store().list_model_versions(&name).await?;
    let total_entries = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    Ok(Json(ModelVersionCollection { versions: rows.into_iter().map(version_response).collect(), total_entries }))
}

#[utoipa::path(get, path = "/models/{name}/versions/{version}", tag = "Model",
    params(("name" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = ModelVersionResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn version(
    State(state): State<AppState>,
    ApiPath((name, version)): ApiPath<(String, i64)>,
) -> Result<Json<ModelVersionResponse>, ApiError> {
    let row = state.engine.store().get_model_version(&name, version).await?;
    let row = row.ok_or_else(|| ApiError::NotFound(format!("model {name:?} has no version {version}")))?;
    Ok(Json(version_response(row)))
}

/// Every change of stage, oldest first: who (a user or a run) moved which version where, when and why.
#[utoipa::path(get, path = "/models/{name}/stageHistory", tag = "Model", params(("name" = String, Path)),
    responses((status = 200, body = StageHistory), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn stage_history(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<StageHistory>, ApiError> {
    existing_model(&state, &name).await?;
    let rows = state.engine.store().model_stage_history(&name).await?;
    let total_entries = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    Ok(Json(StageHistory { stage_changes: rows.into_iter().map(stage_response).collect(), total_entries }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageBody {
    /// `staging`, `production`, `archived` or `none`.
    pub stage: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Moves a version to a stage by hand (Op); the version that held the stage is archived.
#[utoipa::path(post, path = "/models/{name}/versions/{version}/stage", tag = "Model",
    params(("name" = String, Path), ("version" = i64, Path)), request_body = StageBody,
    responses((status = 200, body = ModelVersionResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn set_stage(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((name, version)): ApiPath<(String, i64)>,
    ApiJson(body): ApiJson<StageBody>,
) -> Result<Json<ModelVersionResponse>, ApiError> {
    if !sluice_core::ops_spec::STAGES.contains(&body.stage.as_str()) {
        return Err(ApiError::Unprocessable(format!(
            "stage {:?} is not one of {}",
            body.stage,
            sluice_core::ops_spec::STAGES.join(", ")
        )));
    }
    change_stage(&state, &principal, &name, version, &body.stage, body.reason.as_deref()).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Puts the version that was in production before the current one back into production (Op).
#[utoipa::path(post, path = "/models/{name}/rollback", tag = "Model", params(("name" = String, Path)),
    request_body = RollbackBody,
    responses((status = 200, body = ModelVersionResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<RollbackBody>,
) -> Result<Json<ModelVersionResponse>, ApiError> {
    existing_model(&state, &name).await?;
    let mut tx = state.engine.store().begin().await?;
    let (_, previous) = tx.model_versions_for_deploy(&name).await?;
    tx.rollback().await?;
    let previous = previous.ok_or_else(|| {
        ApiError::Conflict(format!("model {name:?} has had no production version before the current one"))
    })?;
    let reason = body.reason.unwrap_or_else(|| "rollback".to_owned());
    change_stage(&state, &principal, &name, previous, "production", Some(&reason)).await
}

async fn change_stage(
    state: &AppState,
    principal: &Principal,
    name: &str,
    version: i64,
    stage: &str,
    reason: Option<&str>,
) -> Result<Json<ModelVersionResponse>, ApiError> {
    let store = state.engine.store();
    if stage == "production" || stage == "staging" {
        // A version that cannot be loaded never reaches a serving stage: the one there keeps answering.
        if let Err(e) = state.serving.resolve(store, name, &Selector::Version(version)).await {
            return Err(match e {
                ApiError::Internal(why) | ApiError::Conflict(why) => {
                    ApiError::Conflict(format!("{why}; it stays out of {stage}"))
                }
                other => other,
            });
        }
    }
    let changed_by = format!("user:{}", principal.username);
    let change = SetStage { model: name, version, stage, changed_by: &changed_by, reason, expected_production: None };
    store.set_model_stage(&change, Utc::now()).await?.map_err(|refusal| ApiError::NotFound(refusal.to_string()))?;
    state.serving.forget_stages(name);
    tracing::info!(model = name, version, stage, by = %changed_by, "model stage changed");
    let row = store.get_model_version(name, version).await?;
    Ok(Json(version_response(
        row.ok_or_else(|| ApiError::NotFound(format!("model {name:?} has no version {version}")))?,
    )))
}

/// Which version answers: `?version=` or `?stage=` (default `production`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Which {
    pub stage: Option<String>,
    pub version: Option<i64>,
}

impl Which {
    pub fn selector(self) -> Result<Selector, ApiError> {
        match (self.stage, self.version) {
            (Some(_), Some(_)) => Err(ApiError::Unprocessable("give `stage` or `version`, not both".into())),
            (_, Some(version)) => Ok(Selector::Version(version)),
            (stage, None) => Ok(Selector::Stage(stage.unwrap_or_else(|| "production".to_owned()))),
        }
    }
}

/// MLflow's `dataframe_records`: one JSON object per row, keyed by column.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictBody {
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<Map<String, Value>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PredictResponse {
    pub model: String,
    pub version: i64,
    /// Identifies this prediction, e.g. to send the true labels later (`POST /models/{name}/feedback`): the
    /// request's `x-request-id` header if it had one, else a new UUIDv7. Also answered in `x-request-id`.
    pub request_id: String,
    /// The predicted class or value of each record, in order.
    pub predictions: Vec<Value>,
    /// Classification: each record's probability of each class, in the order of `classes`.
    pub probabilities: Option<Vec<Vec<f64>>>,
    pub classes: Option<Vec<String>>,
}

/// Records above this many are predicted on a blocking thread rather than the request's.
const INLINE_RECORDS: usize = 64;

/// Real-time predictions: the records are prepared by the version's fitted transform, then predicted. The answer
/// carries a request id, and a sample of the answers is logged with their inputs (`lake://predictions/{name}`).
#[utoipa::path(post, path = "/models/{name}/predict", tag = "Model", params(("name" = String, Path), Which),
    request_body = PredictBody,
    responses((status = 200, body = PredictResponse,
        headers(("x-request-id" = String, description = "The prediction's request id"))),
        (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn predict(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(which): ApiQuery<Which>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PredictBody>,
) -> Result<([(&'static str, String); 1], Json<PredictResponse>), ApiError> {
    check_model_name(&name).map_err(ApiError::NotFound)?;
    let request_id = request_id(headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()));
    let resolved = state.serving.resolve(state.engine.store(), &name, &which.selector()?).await?;
    let records = body.records;
    let (records, prediction) = if records.len() <= INLINE_RECORDS {
        let prediction = resolved.model.predict(&records);
        (records, prediction)
    } else {
        let model = resolved.model.clone();
        tokio::task::spawn_blocking(move || {
            let prediction = model.predict(&records);
            (records, prediction)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("prediction failed: {e}")))?
    };
    let prediction = prediction.map_err(crate::serving::predict_error)?;
    if state.serving.logs_next() {
        let logged = LoggedPrediction {
            request_id: request_id.clone(),
            at: Utc::now(),
            version: resolved.version,
            model: resolved.model.clone(),
            records,
            predictions: prediction.predictions.clone(),
        };
        state.serving.log(&name, logged);
    }
    let answer = PredictResponse {
        model: name,
        version: resolved.version,
        request_id: request_id.clone(),
        predictions: prediction.predictions,
        probabilities: prediction.probabilities,
        classes: prediction.classes,
    };
    Ok(([(REQUEST_ID_HEADER, request_id)], Json(answer)))
}

/// True labels of predictions, by the request ids the predictions answered with.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    pub feedback: Vec<FeedbackItem>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackItem {
    pub request_id: String,
    /// The true class (or value): a string, number or boolean.
    #[schema(value_type = Object)]
    pub label: Value,
    /// Which record of the request, 0 (the first) by default.
    #[serde(default)]
    pub record: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedbackResponse {
    pub model: String,
    /// Labels stored.
    pub recorded: usize,
}

/// Labels in one request at most.
const MAX_FEEDBACK: usize = 10_000;

/// Labels and request ids longer than this are refused.
const MAX_FEEDBACK_TEXT: usize = 200;

impl FeedbackItem {
    fn checked(self, index: usize) -> Result<NewFeedback, ApiError> {
        let invalid = |why: String| ApiError::Unprocessable(format!("feedback[{index}]: {why}"));
        if self.request_id.is_empty() || self.request_id.len() > MAX_FEEDBACK_TEXT {
            return Err(invalid(format!("request_id must be 1 to {MAX_FEEDBACK_TEXT} characters")));
        }
        if self.record < 0 {
            return Err(invalid("record must not be negative".into()));
        }
        let label = match self.label {
            Value::String(text) => text,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(invalid(format!(
                    "label must be a string, number or boolean, got {}",
                    sluice_core::serving::json_type(&other)
                )));
            }
        };
        if label.len() > MAX_FEEDBACK_TEXT {
            return Err(invalid(format!("label is longer than {MAX_FEEDBACK_TEXT} characters")));
        }
        Ok(NewFeedback { request_id: self.request_id, record: self.record, label })
    }
}

/// Records the true labels of earlier predictions (User): the next `monitor` task of the model reports its
/// accuracy and F1 on them, matched with the logged predictions by request id.
#[utoipa::path(post, path = "/models/{name}/feedback", tag = "Model", params(("name" = String, Path)),
    request_body = FeedbackBody,
    responses((status = 200, body = FeedbackResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn feedback(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<FeedbackBody>,
) -> Result<Json<FeedbackResponse>, ApiError> {
    check_model_name(&name).map_err(ApiError::NotFound)?;
    existing_model(&state, &name).await?;
    if body.feedback.is_empty() || body.feedback.len() > MAX_FEEDBACK {
        return Err(ApiError::Unprocessable(format!("`feedback` must list 1 to {MAX_FEEDBACK} labels")));
    }
    let labels =
        body.feedback.into_iter().enumerate().map(|(i, item)| item.checked(i)).collect::<Result<Vec<_>, _>>()?;
    let given_by = format!("user:{}", principal.username);
    let recorded = state.engine.store().record_feedback(&name, &labels, &given_by, Utc::now()).await?;
    Ok(Json(FeedbackResponse { model: name, recorded }))
}

/// A monitor task's drift report on a model version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MonitorReportResponse {
    pub id: i64,
    pub version: i64,
    pub input_uri: String,
    pub rows: i64,
    pub drifted: bool,
    /// Every check: `feature` (a feature, `prediction`, `label` or `feedback`), `statistic` (psi, ks_p_value,
    /// accuracy, f1), `value`, `threshold`, `drifted`.
    pub checks: Value,
    /// The labels fed back since the previous report that this one judged the model on, if any.
    pub feedback: Option<FeedbackUsed>,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    /// The retraining run the drift triggered, if any.
    pub retrain_dag_id: Option<String>,
    pub retrain_run_id: Option<String>,
    pub timestamp: DateTime<Utc>,
}

/// How much feedback a monitor report used.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedbackUsed {
    /// Labels given since the previous report.
    pub labels: i64,
    /// Those matched with a logged prediction: the accuracy and F1 are computed on them.
    pub matched: i64,
    /// The id of the newest label seen: the next report starts after it.
    pub through: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MonitorReportCollection {
    pub monitor_reports: Vec<MonitorReportResponse>,
    pub total_entries: i64,
}

fn monitor_response(row: MonitorReportRow) -> MonitorReportResponse {
    MonitorReportResponse {
        id: row.id,
        version: row.version,
        input_uri: row.input_uri,
        rows: row.rows,
        drifted: row.drifted,
        checks: row.checks,
        feedback: row.feedback.map(|f| FeedbackUsed { labels: f.labels, matched: f.matched, through: f.through }),
        dag_id: row.dag_id,
        run_id: row.run_id,
        task_id: row.task_id,
        retrain_dag_id: row.retrain_dag_id,
        retrain_run_id: row.retrain_run_id,
        timestamp: row.timestamp,
    }
}

/// Drift reports of monitor tasks on the model, newest first.
#[utoipa::path(get, path = "/models/{name}/monitorReports", tag = "Model", params(("name" = String, Path), super::Page),
    responses((status = 200, body = MonitorReportCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn monitor_reports(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(page): ApiQuery<super::Page>,
) -> Result<Json<MonitorReportCollection>, ApiError> {
    let (limit, offset) = page.checked()?;
    existing_model(&state, &name).await?;
    let (rows, total_entries) = state.engine.store().list_monitor_reports(&name, limit, offset).await?;
    Ok(Json(MonitorReportCollection {
        monitor_reports: rows.into_iter().map(monitor_response).collect(),
        total_entries,
    }))
}
