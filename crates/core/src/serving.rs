//! What serving a model means, independent of how the model computes: the columns a prediction request must carry,
//! what it answers, and what can be wrong with a request. The API speaks these types; the model library behind them
//! is plugged in by the `sluice` binary, so the server crates build without it.

use serde::{Deserialize, Serialize};

/// One column a prediction request must carry, with the type its values must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputColumn {
    pub name: String,
    /// `int`, `float`, `string`, `bool` (the lake's column types as users name them).
    pub dtype: String,
}

/// The answer to a batch of records, one entry per record, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The predicted class (classification) or value (regression).
    pub predictions: Vec<serde_json::Value>,
    /// Classification: each record's probability of each class, in the order of `classes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<Vec<f64>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
}

/// Why a request cannot be answered: each names what the caller must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredictError {
    #[error("record {record}: column {column:?} is missing (the model reads {expected})")]
    MissingColumn { record: usize, column: String, expected: String },
    #[error("record {record}: column {column:?} is not an input of the model (it reads {expected})")]
    ExtraColumn { record: usize, column: String, expected: String },
    #[error("record {record}: column {column:?} must be {dtype}, got {got}")]
    WrongType { record: usize, column: String, dtype: String, got: String },
    #[error("{0}")]
    Invalid(String),
    /// The model or its artifact cannot be used: not the caller's fault.
    #[error("the model cannot answer: {0}")]
    Broken(String),
}

/// A loaded model version, ready to answer.
pub trait ServedModel: Send + Sync {
    fn inputs(&self) -> &[InputColumn];
    fn predict(&self, records: &[serde_json::Map<String, serde_json::Value>]) -> Result<Prediction, PredictError>;
}

/// Why a version cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The version is registered but Sluice does not serve it: a model that users' own code wrote without an ONNX
    /// export. Asking it is the caller's mistake, and the message says what would make it servable.
    #[error("{0}")]
    NotServed(String),
    /// A missing or corrupt artifact.
    #[error("{0}")]
    Broken(String),
}

/// Loads model versions from where `train` wrote them (`lake://models/<name>/<version>`).
pub trait ModelLoader: Send + Sync {
    fn load(&self, artifact_uri: &str) -> Result<std::sync::Arc<dyn ServedModel>, LoadError>;
}

/// One answered prediction request, as the prediction log keeps it for monitoring.
pub struct LoggedPrediction {
    pub request_id: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub version: i64,
    /// The version that answered: its signature gives the logged columns their types.
    pub model: std::sync::Arc<dyn ServedModel>,
    pub records: Vec<serde_json::Map<String, serde_json::Value>>,
    /// One per record, in order.
    pub predictions: Vec<serde_json::Value>,
}

/// What one write of the prediction log produced: an event of the log's asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogWrite {
    pub uri: String,
    pub rows: i64,
    /// The columns as `[{"name": …, "dtype": …}]`.
    pub schema: serde_json::Value,
    pub content_hash: String,
}

/// Writes batches of logged predictions of one model where monitoring reads them (a lake asset per model): one
/// write per day and version of the batch.
pub trait PredictionSink: Send + Sync {
    fn write(&self, model: &str, batch: &[LoggedPrediction]) -> Result<Vec<LogWrite>, String>;
}

/// The asset a model's predictions are logged to.
pub fn prediction_log_uri(model: &str) -> String {
    format!("lake://predictions/{model}")
}

/// The JSON type name of a value, for [`PredictError::WrongType`].
pub fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
