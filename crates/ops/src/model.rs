//! The machine-learning task kinds on the lake: `train` fits a model from an asset and writes it as a new version,
//! `deploy` decides whether a version may be promoted, and [`ServedVersion`] answers predictions with a version.
//!
//! A version lives in `lake://models/<name>/<version>/`: the model (`model.json`), the fitted transform of the asset
//! it was trained on (`fitted_transform.json`, so that serving prepares a raw record exactly as the training data
//! was prepared), a sample of its prepared training data (`reference.json`, what monitoring compares new data with)
//! and its signature (`signature.json`: the columns a request must carry, the features, the classes).
//! The signature is written last; a version is registered only when the try that wrote it succeeded, so a reader
//! never meets a half-written version that the registry names.
//!
//! A `command` task with `registers:` fills a folder with its own files instead (`command.rs`): `metrics.json`,
//! optionally `params.json`, its model, and `model.onnx` if it exported one, which Sluice then serves.

mod command;
mod deploy;
mod feedback;
mod log;
mod monitor;
mod records;
mod serve;
mod train;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_core::protocol::{RegistryView, VersionView};
use sluice_core::serving::InputColumn;

use crate::error::{OpsError, Result};
use crate::lake::Lake;
use crate::transform::FittedTransform;

pub use self::command::run_command;
pub use self::deploy::run_deploy;
pub use self::log::LakePredictionLog;
pub use self::monitor::{Reference, run_monitor, run_score};
pub use self::serve::{LakeModelLoader, ServedVersion};
pub use self::train::run_train;

const MODEL_FILE: &str = "model.json";
/// A model that users' own code exported to ONNX.
const ONNX_FILE: &str = "model.onnx";
/// The names of the columns of an ONNX model's one `[N, F]` input, in order.
const FEATURES_FILE: &str = "features.json";
const TRANSFORM_FILE: &str = "fitted_transform.json";
const SIGNATURE_FILE: &str = "signature.json";
/// A sample of the training data, prepared, with the model's predictions on it: the reference of drift checks.
const REFERENCE_FILE: &str = "reference.json";

/// What a served version must be given and gives back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// The raw columns of a request, before the transform.
    pub inputs: Vec<InputColumn>,
    /// The model's features, after the transform, in the model's order.
    pub features: Vec<String>,
    pub target: String,
    /// Classification: the classes, in the order of the probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// Whether `fitted_transform.json` is part of the version.
    pub has_transform: bool,
    #[serde(default)]
    pub format: ModelFormat,
}

/// What predicts for a version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    /// A model `train` fitted (`model.json`).
    #[default]
    Sluice,
    /// An ONNX model that a command task exported (`model.onnx`).
    Onnx,
    /// A command task's own files, which Sluice registers but does not serve.
    External,
}

/// The URI of a version's folder.
pub fn artifact_uri(model: &str, version: i64) -> String {
    format!("lake://models/{model}/{version}")
}

/// A version the registry lists, or an error naming it.
fn registered(registry: &RegistryView, version: i64) -> Result<&VersionView> {
    registry
        .version(version)
        .ok_or_else(|| OpsError::Invalid(format!("model {} has no version {version}", registry.model)))
}

/// The folder of a version, and one of its files.
fn artifact_file(lake: &Lake, artifact_uri: &str, file: &str) -> Result<PathBuf> {
    Ok(lake.asset_dir(artifact_uri)?.join(file))
}

fn read_artifact(lake: &Lake, artifact_uri: &str, file: &str) -> Result<Vec<u8>> {
    let path = artifact_file(lake, artifact_uri, file)?;
    lake.get_object(&path)?.ok_or_else(|| OpsError::Invalid(format!("the model version {artifact_uri} has no {file}")))
}

fn parse_artifact<T: for<'de> Deserialize<'de>>(bytes: &[u8], artifact_uri: &str, file: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| OpsError::Invalid(format!("the model version {artifact_uri} has a corrupt {file}: {e}")))
}

fn json_bytes(value: &impl Serialize, what: &Path) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| OpsError::Invalid(format!("cannot write {}: {e}", what.display())))
}

/// The columns a request must carry: the raw columns the transform was fitted on (but the target), or, without a
/// transform, the features themselves.
fn request_inputs(transform: Option<&FittedTransform>, target: &str, features: &[String]) -> Vec<InputColumn> {
    match transform {
        Some(fitted) if !fitted.input_schema.is_empty() => fitted
            .required_inputs(target)
            .into_iter()
            .map(|c| InputColumn { dtype: request_dtype(&c.dtype).to_owned(), name: c.name })
            .collect(),
        _ => features.iter().map(|f| InputColumn { name: f.clone(), dtype: "float".to_owned() }).collect(),
    }
}

/// The column type of a lake column (`ColumnInfo::dtype`, polars' name) as a request's values must have it.
fn request_dtype(engine_dtype: &str) -> &'static str {
    match engine_dtype {
        "bool" => "bool",
        "str" | "cat" => "string",
        t if t.starts_with('i') || t.starts_with('u') => "int",
        t if t.starts_with('f') => "float",
        _ => "string",
    }
}
