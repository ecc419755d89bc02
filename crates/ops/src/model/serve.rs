//! A model version loaded for predictions: records are checked against the signature, prepared by the version's
//! fitted transform (the same preparation as the training data) and passed to the model — Sluice's own, or the
//! ONNX model a command task exported. A command task's version without one loads as [`OpsError::NotServed`].

use std::sync::Arc;

use ndarray::Array2;
use polars::prelude::*;
use serde_json::{Map, Value};
use sluice_core::serving::{InputColumn, LoadError, ModelLoader, PredictError, Prediction, ServedModel, json_type};
use sluice_ml::{Model, OnnxModel, Predictions};

use super::{
    MODEL_FILE, ModelFormat, ONNX_FILE, SIGNATURE_FILE, Signature, TRANSFORM_FILE, parse_artifact, read_artifact,
    request_dtype,
};
use crate::error::{OpsError, Result};
use crate::lake::Lake;
use crate::transform::FittedTransform;

/// One version, ready to answer.
pub struct ServedVersion {
    model: Predictor,
    transform: Option<FittedTransform>,
    signature: Signature,
    /// The inputs' names, for messages.
    expected: String,
}

/// What computes the predictions.
enum Predictor {
    Sluice(Model),
    Onnx(OnnxModel),
}

impl Predictor {
    fn predict(&self, features: &Array2<f64>) -> std::result::Result<Predictions, sluice_ml::MlError> {
        match self {
            Predictor::Sluice(model) => model.predict(features.view()),
            Predictor::Onnx(model) => model.predict(features.view()),
        }
    }
}

impl ServedVersion {
    /// Reads the version at `artifact_uri`; fails if a file is missing or corrupt, or if the version is not served.
    pub fn load(lake: &Lake, artifact_uri: &str) -> Result<ServedVersion> {
        let signature: Signature =
            parse_artifact(&read_artifact(lake, artifact_uri, SIGNATURE_FILE)?, artifact_uri, SIGNATURE_FILE)?;
        let corrupt = |file: &str, e: sluice_ml::MlError| {
            OpsError::Invalid(format!("the model version {artifact_uri} has a corrupt {file}: {e}"))
        };
        let model = match signature.format {
            ModelFormat::Sluice => {
                let bytes = read_artifact(lake, artifact_uri, MODEL_FILE)?;
                Predictor::Sluice(Model::from_json(&bytes).map_err(|e| corrupt(MODEL_FILE, e))?)
            }
            ModelFormat::Onnx => {
                let bytes = read_artifact(lake, artifact_uri, ONNX_FILE)?;
                let onnx = OnnxModel::from_bytes(&bytes, Some(&signature.features));
                Predictor::Onnx(onnx.map_err(|e| corrupt(ONNX_FILE, e))?)
            }
            ModelFormat::External => return Err(OpsError::NotServed(not_served(artifact_uri))),
        };
        let transform = if signature.has_transform {
            let mut fitted: FittedTransform =
                parse_artifact(&read_artifact(lake, artifact_uri, TRANSFORM_FILE)?, artifact_uri, TRANSFORM_FILE)?;
            fitted.read_joined(lake)?;
            Some(fitted)
        } else {
            None
        };
        let expected = signature.inputs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
        Ok(ServedVersion { model, transform, signature, expected })
    }

    fn check(&self, records: &[Map<String, Value>]) -> Result<(), PredictError> {
        for (record, fields) in records.iter().enumerate() {
            for column in &self.signature.inputs {
                let Some(value) = fields.get(&column.name) else {
                    return Err(PredictError::MissingColumn {
                        record,
                        column: column.name.clone(),
                        expected: self.expected.clone(),
                    });
                };
                if !fits(value, &column.dtype) {
                    return Err(PredictError::WrongType {
                        record,
                        column: column.name.clone(),
                        dtype: column.dtype.clone(),
                        got: json_type(value).to_owned(),
                    });
                }
            }
            if let Some(extra) = fields.keys().find(|k| !self.signature.inputs.iter().any(|c| &c.name == *k)) {
                return Err(PredictError::ExtraColumn {
                    record,
                    column: extra.clone(),
                    expected: self.expected.clone(),
                });
            }
        }
        Ok(())
    }

    /// The feature matrix of `records`, prepared as the training data was: without a data frame when the
    /// transform allows it (see [`records`](super::records)), else by polars.
    fn features(&self, records: &[Map<String, Value>]) -> Result<Array2<f64>, PredictError> {
        if let Some(transform) = &self.transform
            && let Some(matrix) = super::records::features(transform, &self.signature, records)
        {
            return Ok(matrix);
        }
        polars_features(self.transform.as_ref(), &self.signature, records)
    }

    /// The feature matrix of a frame of raw input columns (extra columns are ignored), prepared as the training
    /// data was.
    pub fn frame_features(&self, df: DataFrame) -> Result<Array2<f64>, PredictError> {
        prepare(self.transform.as_ref(), &self.signature, df)
    }

    /// Predictions for a prepared feature matrix.
    pub fn predict_features(&self, features: &Array2<f64>) -> Result<Prediction, PredictError> {
        let out = self.model.predict(features).map_err(|e| PredictError::Broken(e.to_string()))?;
        let predictions = match (&out.labels, &out.values) {
            (Some(labels), _) => labels.iter().map(|l| Value::from(l.as_str())).collect(),
            (None, Some(values)) => values.iter().map(|v| Value::from(*v)).collect(),
            (None, None) => return Err(PredictError::Broken("the model predicted nothing".into())),
        };
        let probabilities = out.probabilities.map(|p| p.rows().into_iter().map(|row| row.to_vec()).collect());
        Ok(Prediction { predictions, probabilities, classes: self.signature.classes.clone() })
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

impl ServedModel for ServedVersion {
    fn inputs(&self) -> &[InputColumn] {
        &self.signature.inputs
    }

    fn predict(&self, records: &[Map<String, Value>]) -> Result<Prediction, PredictError> {
        if records.is_empty() {
            return Err(PredictError::Invalid("no records to predict".into()));
        }
        self.check(records)?;
        self.predict_features(&self.features(records)?)
    }
}

/// The feature matrix of `records`, from a frame of them that `transform` prepares.
pub(super) fn polars_features(
    transform: Option<&FittedTransform>,
    signature: &Signature,
    records: &[Map<String, Value>],
) -> Result<Array2<f64>, PredictError> {
    let features = &signature.features;
    if transform.is_none() {
        return Ok(Array2::from_shape_fn((records.len(), features.len()), |(r, c)| {
            records[r].get(&features[c]).and_then(Value::as_f64).unwrap_or(f64::NAN)
        }));
    }
    let columns: Vec<Column> = signature.inputs.iter().map(|c| input_column(c, records)).collect();
    let df = DataFrame::new(records.len(), columns).map_err(|e| PredictError::Broken(e.to_string()))?;
    prepare(transform, signature, df)
}

/// The feature matrix of a frame of raw input columns, prepared by `transform`.
fn prepare(
    transform: Option<&FittedTransform>,
    signature: &Signature,
    mut df: DataFrame,
) -> Result<Array2<f64>, PredictError> {
    let broken = |e: PolarsError| PredictError::Broken(e.to_string());
    let rows = df.height();
    if let Some(transform) = transform {
        // The transform was fitted on frames that had the target; new data has none, so it stands as unknown.
        if let Some(target) = transform.input_schema.iter().find(|c| c.name == signature.target)
            && df.column(&target.name).is_err()
        {
            let dtype = match request_dtype(&target.dtype) {
                "int" => DataType::Int64,
                "float" => DataType::Float64,
                "bool" => DataType::Boolean,
                _ => DataType::String,
            };
            df.with_column(Column::full_null(target.name.as_str().into(), rows, &dtype)).map_err(broken)?;
        }
        df = transform.apply(df).map_err(|e| PredictError::Invalid(format!("cannot prepare the data: {e}")))?;
    }
    let features = &signature.features;
    let mut matrix = Array2::zeros((rows, features.len()));
    for (c, name) in features.iter().enumerate() {
        let column = df
            .column(name)
            .map_err(|_| PredictError::Invalid(format!("the data has no feature {name:?} after the transform")))?
            .cast(&DataType::Float64)
            .map_err(broken)?;
        for (r, value) in column.f64().map_err(broken)?.iter().enumerate() {
            matrix[[r, c]] = value.ok_or_else(|| {
                PredictError::Invalid(format!("row {r}: feature {name:?} is missing after the transform"))
            })?;
        }
    }
    Ok(matrix)
}

/// Whether a JSON value may stand in a column of `dtype`; missing values (null) are the transform's business.
fn fits(value: &Value, dtype: &str) -> bool {
    match (value, dtype) {
        (Value::Null, _) => true,
        (Value::Number(n), "int") => n.is_i64() || n.is_u64(),
        (Value::Number(_), "float") => true,
        (Value::String(_), "string") => true,
        (Value::Bool(_), "bool") => true,
        _ => false,
    }
}

/// One input column of the records, typed as when the transform was fitted.
fn input_column(column: &InputColumn, records: &[Map<String, Value>]) -> Column {
    let name = PlSmallStr::from(column.name.as_str());
    let values = records.iter().map(|r| r.get(&column.name));
    match column.dtype.as_str() {
        "int" => Column::new(name, values.map(|v| v.and_then(Value::as_i64)).collect::<Vec<_>>()),
        "float" => Column::new(name, values.map(|v| v.and_then(Value::as_f64)).collect::<Vec<_>>()),
        "bool" => Column::new(name, values.map(|v| v.and_then(Value::as_bool)).collect::<Vec<_>>()),
        _ => Column::new(name, values.map(|v| v.and_then(Value::as_str)).collect::<Vec<_>>()),
    }
}

/// Loads versions from the lake, for the server's predict routes.
pub struct LakeModelLoader {
    pub lake: Lake,
}

impl ModelLoader for LakeModelLoader {
    fn load(&self, artifact_uri: &str) -> std::result::Result<Arc<dyn ServedModel>, LoadError> {
        ServedVersion::load(&self.lake, artifact_uri).map(|v| Arc::new(v) as Arc<dyn ServedModel>).map_err(
            |e| match e {
                OpsError::NotServed(why) => LoadError::NotServed(why),
                other => LoadError::Broken(other.to_string()),
            },
        )
    }
}

/// Why a command task's version without `model.onnx` answers no prediction, and what would change that.
pub(super) fn not_served(artifact_uri: &str) -> String {
    format!(
        "{artifact_uri} is registered but not served: the command task that trained it wrote no {ONNX_FILE}. \
         Export the model to ONNX (for scikit-learn, with skl2onnx) as {ONNX_FILE} in $SLUICE_MODEL_DIR to serve it"
    )
}
