//! The one error type of the crate: every message names what was wrong (the parameter, the class, the
//! column count) so that a user can fix the DAG file or the data without reading code.

/// Why training, prediction or (de)serialising a model failed.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// A candidate's parameter is unknown, of the wrong type or out of range.
    #[error("invalid parameter {key:?} for {algorithm}: {message}")]
    InvalidParam { algorithm: &'static str, key: String, message: String },
    /// The training specification itself is unusable (no candidates, zero folds, ...).
    #[error("invalid training specification: {0}")]
    InvalidSpec(String),
    /// The data cannot be trained on as given (too few rows, a constant target, ...).
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// The algorithm does not fit this kind of target (e.g. linear regression on classes).
    #[error("{algorithm} cannot be trained on a {target} target: {hint}")]
    WrongTarget { algorithm: &'static str, target: &'static str, hint: &'static str },
    /// A metric name that Sluice does not know.
    #[error("unknown metric {0:?}: expected one of accuracy, precision, recall, f1, roc_auc, log_loss, rmse, mae, r2")]
    UnknownMetric(String),
    /// The metric chosen to rank candidates does not apply to this target.
    #[error("metric {metric} does not apply to {target}")]
    MetricNotApplicable { metric: &'static str, target: &'static str },
    /// The fitting routine of the underlying library failed.
    #[error("fitting {algorithm} failed: {message}")]
    Fit { algorithm: &'static str, message: String },
    /// Rows handed to `Model::predict` do not have the model's columns.
    #[error("the model expects {expected} feature columns ({names}), got {got}")]
    ColumnCount { expected: usize, got: usize, names: String },
    /// An ONNX model that cannot be read or run, and why.
    #[error("{0}")]
    Onnx(String),
    /// A stored model could not be read or written.
    #[error("model JSON: {0}")]
    Json(#[from] serde_json::Error),
}
