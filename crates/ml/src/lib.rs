//! Sluice's machine-learning compute: cross-validated model selection over a few classic algorithms,
//! fitted models that predict and serialise, the usual metrics, and the drift statistics that monitoring
//! compares feature distributions with.
//!
//! Pure compute on `ndarray` and the linfa crates (pure Rust, no BLAS): no data frames and no IO beyond a
//! model's JSON. The data tasks in `sluice-ops` read the lake, build a [`Dataset`] and call [`train`]; the
//! store keeps [`Model::to_json`]; serving calls [`Model::predict`], or [`OnnxModel::predict`] for a model that
//! users' own code exported to ONNX.

use ndarray::Array2;

pub mod drift;
mod error;
mod folds;
mod forest;
pub mod metrics;
mod model;
mod onnx;
mod params;
mod train;

pub use error::MlError;
pub use model::{Model, Predictions};
pub use onnx::OnnxModel;
pub use params::{Algorithm, Candidate, Metric, expand_grid};
pub use train::{CandidateResult, CvMetrics, TrainOutcome, TrainSpec, train};

/// Rows to learn from: a feature matrix (rows × columns, finite numbers), the column names, and the target.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub features: Array2<f64>,
    pub feature_names: Vec<String>,
    pub target: Target,
}

/// What to predict.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Classification: `labels[row]` is an index into `classes`.
    Classes { labels: Vec<usize>, classes: Vec<String> },
    /// Regression: one value per row.
    Values(Vec<f64>),
}
