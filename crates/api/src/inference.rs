//! The Open Inference Protocol v2 (KServe, Triton, MLServer's REST protocol) in front of the model registry, so that
//! existing inference clients call Sluice unchanged: `GET /v2/health/ready`, `GET /v2/models/{name}`,
//! `POST /v2/models/{name}/infer` (and `/versions/{version}/…`). Each input tensor is one column of the model's
//! signature, one element per record; the answer has a `predict` tensor and, for classifiers, `probabilities`. The
//! request's `id` (or a new one) identifies the prediction in the prediction log and for feedback, as on the records
//! endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sluice_core::serving::{InputColumn, LoggedPrediction};

use crate::extract::{ApiJson, ApiPath};
use crate::serving::{REQUEST_ID_HEADER, Selector, predict_error, request_id};
use crate::{ApiError, AppState};

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/v2/health/live", get(|| async { Json(json!({"live": true})) }))
        .route("/v2/health/ready", get(|| async { Json(json!({"ready": true})) }))
        .route("/v2/models/{name}", get(metadata))
        .route("/v2/models/{name}/ready", get(ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_version))
}

#[derive(Debug, Serialize)]
struct TensorMetadata {
    name: String,
    datatype: &'static str,
    shape: Vec<i64>,
}

fn datatype(dtype: &str) -> &'static str {
    match dtype {
        "int" => "INT64",
        "float" => "FP64",
        "bool" => "BOOL",
        _ => "BYTES",
    }
}

async fn metadata(State(state): State<AppState>, ApiPath(name): ApiPath<String>) -> Result<Json<Value>, ApiError> {
    let resolved = state.serving.resolve(state.engine.store(), &name, &Selector::Stage("production".into())).await?;
    let inputs: Vec<TensorMetadata> = resolved
        .model
        .inputs()
        .iter()
        .map(|c| TensorMetadata { name: c.name.clone(), datatype: datatype(&c.dtype), shape: vec![-1] })
        .collect();
    Ok(Json(json!({
        "name": name,
        "versions": [resolved.version.to_string()],
        "platform": "sluice",
        "inputs": inputs,
        "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP64", "shape": [-1, -1]}],
    })))
}

async fn ready(State(state): State<AppState>, ApiPath(name): ApiPath<String>) -> Result<Json<Value>, ApiError> {
    state.serving.resolve(state.engine.store(), &name, &Selector::Stage("production".into())).await?;
    Ok(Json(json!({"name": name, "ready": true})))
}

/// One tensor of an inference request. Its `datatype` is not read: the values' JSON types are checked against the
/// model's signature instead.
#[derive(Debug, Deserialize)]
struct RequestTensor {
    name: String,
    #[serde(default)]
    shape: Vec<i64>,
    data: Vec<Value>,
}

/// The protocol's request; `parameters` and `outputs` are accepted and ignored (every output is returned).
#[derive(Debug, Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<RequestTensor>,
}

/// An answer with its request id in the `x-request-id` header too.
type Answer = ([(&'static str, String); 1], Json<Value>);

async fn infer(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<InferRequest>,
) -> Result<Answer, ApiError> {
    answer(&state, name, Selector::Stage("production".into()), &headers, request).await
}

async fn infer_version(
    State(state): State<AppState>,
    ApiPath((name, version)): ApiPath<(String, i64)>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<InferRequest>,
) -> Result<Answer, ApiError> {
    answer(&state, name, Selector::Version(version), &headers, request).await
}

/// The prediction's request id is the request's `id` (which the protocol echoes), else its `x-request-id` header,
/// else a new one; an `id` that is not short printable text is echoed, and the prediction gets a new id.
async fn answer(
    state: &AppState,
    name: String,
    selector: Selector,
    headers: &HeaderMap,
    request: InferRequest,
) -> Result<Answer, ApiError> {
    let header = headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
    let id = request_id(request.id.as_deref().or(header));
    let resolved = state.serving.resolve(state.engine.store(), &name, &selector).await?;
    let records = records(&request.inputs, resolved.model.inputs())?;
    let prediction = resolved.model.predict(&records).map_err(predict_error)?;
    if state.serving.logs_next() {
        let logged = LoggedPrediction {
            request_id: id.clone(),
            at: chrono::Utc::now(),
            version: resolved.version,
            model: resolved.model.clone(),
            records,
            predictions: prediction.predictions.clone(),
        };
        state.serving.log(&name, logged);
    }
    let rows = prediction.predictions.len();
    let numeric = prediction.predictions.iter().all(Value::is_number);
    let mut outputs = vec![json!({
        "name": "predict",
        "shape": [rows],
        "datatype": if numeric { "FP64" } else { "BYTES" },
        "data": prediction.predictions,
    })];
    if let Some(probabilities) = prediction.probabilities {
        let classes = probabilities.first().map_or(0, Vec::len);
        let flat: Vec<f64> = probabilities.into_iter().flatten().collect();
        outputs.push(json!({"name": "probabilities", "shape": [rows, classes], "datatype": "FP64", "data": flat,
            "parameters": {"classes": prediction.classes}}));
    }
    let body = json!({
        "model_name": name,
        "model_version": resolved.version.to_string(),
        "id": request.id.as_deref().unwrap_or(&id),
        "outputs": outputs,
    });
    Ok(([(REQUEST_ID_HEADER, id)], Json(body)))
}

/// The records the tensors describe: tensor `c`'s element `r` is column `c` of record `r`. Numbers are given the
/// signature's type where the protocol's JSON cannot say it (an INT64 tensor of `181.0`).
fn records(tensors: &[RequestTensor], signature: &[InputColumn]) -> Result<Vec<Map<String, Value>>, ApiError> {
    let rows = tensors.first().map_or(0, |t| t.data.len());
    if rows == 0 {
        return Err(ApiError::Unprocessable("the request has no input data".into()));
    }
    let mut records = vec![Map::new(); rows];
    for tensor in tensors {
        if tensor.data.len() != rows {
            return Err(ApiError::Unprocessable(format!(
                "input {:?} has {} elements, the first input {rows}: every input is one column",
                tensor.name,
                tensor.data.len()
            )));
        }
        if tensor.shape.iter().skip(1).any(|d| *d != 1) {
            return Err(ApiError::Unprocessable(format!(
                "input {:?} has shape {:?}: each input is one column, of shape [rows] or [rows, 1]",
                tensor.name, tensor.shape
            )));
        }
        let dtype = signature.iter().find(|c| c.name == tensor.name).map(|c| c.dtype.as_str());
        for (record, value) in records.iter_mut().zip(&tensor.data) {
            let value = match (dtype, value.as_f64()) {
                (Some("int"), Some(f)) if f.fract() == 0.0 && value.is_f64() => json!(f as i64),
                _ => value.clone(),
            };
            record.insert(tensor.name.clone(), value);
        }
    }
    Ok(records)
}
