//! `kind: train`: read the input asset, turn it into features and a target, cross-validate every candidate of the
//! grid, refit the best on all rows and write it as the version the server reserved.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde_json::json;
use sluice_core::ops_spec::{ModelSpec, Problem, TrainSpec};
use sluice_core::protocol::ModelWrite;
use sluice_ml::{Algorithm, Dataset, Metric, Target, TrainOutcome};

use super::monitor::Reference;
use super::{
    MODEL_FILE, ModelFormat, REFERENCE_FILE, SIGNATURE_FILE, Signature, TRANSFORM_FILE, artifact_file, artifact_uri,
    json_bytes, request_inputs,
};
use crate::error::{OpsError, Result};
use crate::task::OpContext;
use crate::transform::FittedTransform;

/// Trains `spec` as version `version` of its model.
pub fn run_train(spec: &TrainSpec, ctx: &OpContext<'_>, version: i64) -> Result<ModelWrite> {
    let [input] = spec.inputs.as_slice() else {
        return Err(OpsError::Invalid(format!(
            "a train task reads exactly one input asset, got {}",
            spec.inputs.len()
        )));
    };
    let model = &spec.model;
    let (df, content_hash) = ctx.lake.read_hashed(input, ctx.ds)?;
    if df.height() == 0 {
        return Err(OpsError::Invalid(format!("{input} has no rows for {}: there is nothing to train on", ctx.ds)));
    }
    let transform = match FittedTransform::load(ctx.lake, input, ctx.ds) {
        Ok(fitted) => Some(fitted),
        Err(OpsError::NoPartition { .. }) => None,
        Err(e) => return Err(e),
    };
    let dataset = dataset(&df, model)?;
    (ctx.log)(&format!(
        "training {} on {input} ({} rows, {} features: {})",
        model.name,
        df.height(),
        dataset.feature_names.len(),
        dataset.feature_names.join(", ")
    ));
    let train_spec = train_spec(model, &dataset)?;
    let outcome = sluice_ml::train(&dataset, &train_spec).map_err(|e| OpsError::Invalid(e.to_string()))?;
    log_candidates(ctx, &outcome, train_spec.metric);

    let signature = Signature {
        inputs: request_inputs(transform.as_ref(), &model.target, &dataset.feature_names),
        features: dataset.feature_names.clone(),
        target: model.target.clone(),
        classes: match &dataset.target {
            Target::Classes { classes, .. } => Some(classes.clone()),
            Target::Values(_) => None,
        },
        has_transform: transform.is_some(),
        format: ModelFormat::Sluice,
    };
    let uri = artifact_uri(&model.name, version);
    let reference = reference(&dataset, &outcome)?;
    write_version(ctx, &uri, &outcome, transform.as_ref(), &reference, &signature)?;
    (ctx.log)(&format!("wrote {uri}"));

    let best = outcome.candidates.iter().find(|c| c.candidate == outcome.best);
    let metrics = best.map(|c| c.cv.mean.clone()).unwrap_or_default();
    let details = json!({
        "cv": {"folds": train_spec.folds, "seed": train_spec.seed, "metric": train_spec.metric.name(),
               "fold_of_row": outcome.folds},
        "per_fold": best.map(|c| c.cv.per_fold.clone()),
        "confusion_matrix": best.and_then(|c| c.cv.confusion_matrix.clone()),
        "candidates": outcome.candidates.iter().map(|c| json!({
            "algorithm": c.candidate.algorithm, "params": c.candidate.params, "metrics": c.cv.mean,
        })).collect::<Vec<_>>(),
        "features": signature.features,
        "classes": signature.classes,
        "target": model.target,
        "inputs": signature.inputs,
        "rows": df.height(),
        "transform": transform.is_some().then(|| format!("{uri}/{TRANSFORM_FILE}")),
    });
    Ok(ModelWrite {
        name: model.name.clone(),
        version,
        algorithm: outcome.best.algorithm.name().to_owned(),
        params: serde_json::to_value(&outcome.best.params).unwrap_or_default(),
        metrics,
        details,
        artifact_uri: uri,
        input_uri: input.clone(),
        input_content_hash: Some(content_hash),
        description: model.description.clone(),
    })
}

/// The features and target of `df`, or which column is unfit and what to do about it.
fn dataset(df: &DataFrame, model: &ModelSpec) -> Result<Dataset> {
    let present = || df.get_column_names().iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let target = df
        .column(&model.target)
        .map_err(|_| OpsError::MissingColumn { column: model.target.clone(), present: present() })?
        .as_materialized_series()
        .clone();
    let feature_names: Vec<String> = match &model.features {
        Some(features) => features.clone(),
        None => present().into_iter().filter(|c| *c != model.target).collect(),
    };
    if feature_names.is_empty() {
        return Err(OpsError::Invalid("the model has no feature columns".into()));
    }
    let mut columns = Vec::with_capacity(feature_names.len());
    for name in &feature_names {
        let column =
            df.column(name).map_err(|_| OpsError::MissingColumn { column: name.clone(), present: present() })?;
        columns.push(feature_values(name, column.as_materialized_series())?);
    }
    let rows = df.height();
    let features = ndarray::Array2::from_shape_fn((rows, columns.len()), |(r, c)| columns[c][r]);
    Ok(Dataset { features, feature_names, target: target_values(&target, model.problem)? })
}

pub(super) fn feature_values(name: &str, series: &Series) -> Result<Vec<f64>> {
    let dtype = series.dtype();
    if !(dtype.is_primitive_numeric() || dtype.is_bool()) {
        return Err(OpsError::Invalid(format!(
            "feature {name:?} is {dtype}, not a number: encode it with a one_hot or ordinal_encode transform step, \
             or leave it out of `features`"
        )));
    }
    let floats = series.cast(&DataType::Float64)?;
    let missing = floats.null_count();
    if missing > 0 {
        return Err(OpsError::Invalid(format!(
            "feature {name:?} has {missing} missing values: fill them (fill_missing) or drop the rows (drop_missing) \
             in the transform"
        )));
    }
    Ok(floats.f64()?.into_no_null_iter().collect())
}

fn target_values(series: &Series, problem: Option<Problem>) -> Result<Target> {
    let name = series.name().to_string();
    let missing = series.null_count();
    if missing > 0 {
        return Err(OpsError::Invalid(format!("the target {name:?} has {missing} missing values")));
    }
    let dtype = series.dtype();
    let problem = problem.unwrap_or(if dtype.is_float() { Problem::Regression } else { Problem::Classification });
    match problem {
        Problem::Regression => {
            if !dtype.is_primitive_numeric() {
                return Err(OpsError::Invalid(format!("a regression target must be numeric; {name:?} is {dtype}")));
            }
            Ok(Target::Values(series.cast(&DataType::Float64)?.f64()?.into_no_null_iter().collect()))
        }
        Problem::Classification => {
            let text = series.cast(&DataType::String)?;
            let values: Vec<&str> = text.str()?.iter().map(Option::unwrap_or_default).collect();
            let mut classes: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
            classes.sort();
            classes.dedup();
            let index: BTreeMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
            let labels = values.iter().map(|v| index[v]).collect();
            Ok(Target::Classes { labels, classes })
        }
    }
}

fn train_spec(model: &ModelSpec, dataset: &Dataset) -> Result<sluice_ml::TrainSpec> {
    let invalid = |e: sluice_ml::MlError| OpsError::Invalid(e.to_string());
    let mut candidates = Vec::new();
    for grid in &model.candidates {
        let algorithm: Algorithm = grid.algorithm.parse().map_err(invalid)?;
        candidates.extend(sluice_ml::expand_grid(algorithm, &grid.grid).map_err(invalid)?);
    }
    let default_metric = match dataset.target {
        Target::Classes { .. } => "accuracy",
        Target::Values(_) => "r2",
    };
    let metric: Metric = model.metric.as_deref().unwrap_or(default_metric).parse().map_err(invalid)?;
    Ok(sluice_ml::TrainSpec {
        candidates,
        folds: usize::try_from(model.cv.folds).unwrap_or(5),
        seed: model.cv.seed,
        metric,
    })
}

fn log_candidates(ctx: &OpContext<'_>, outcome: &TrainOutcome, metric: Metric) {
    let name = metric.name();
    for result in &outcome.candidates {
        let score = result.cv.mean.get(name).copied().unwrap_or(f64::NAN);
        let params = serde_json::to_string(&result.candidate.params).unwrap_or_default();
        (ctx.log)(&format!("candidate {} {params}: {name} {score:.4}", result.candidate.algorithm.name()));
    }
    let best = serde_json::to_string(&outcome.best).unwrap_or_default();
    (ctx.log)(&format!("best: {best}, refitted on every row"));
}

/// A sample of the training features with the refitted model's predictions on it.
fn reference(dataset: &Dataset, outcome: &TrainOutcome) -> Result<Reference> {
    let predicted = outcome
        .model
        .predict(dataset.features.view())
        .map_err(|e| OpsError::Invalid(format!("the refitted model cannot predict its training data: {e}")))?;
    let texts: Vec<String> = match (predicted.labels, predicted.values) {
        (Some(labels), _) => labels,
        (None, Some(values)) => values.iter().map(f64::to_string).collect(),
        (None, None) => Vec::new(),
    };
    Ok(Reference::sample(&dataset.features, &dataset.feature_names, &texts))
}

/// The model, its transform, its training reference and, last, its signature.
fn write_version(
    ctx: &OpContext<'_>,
    uri: &str,
    outcome: &TrainOutcome,
    transform: Option<&FittedTransform>,
    reference: &Reference,
    signature: &Signature,
) -> Result<()> {
    let model = outcome.model.to_json().map_err(|e| OpsError::Invalid(format!("cannot serialise the model: {e}")))?;
    if let Some(fitted) = transform {
        let path = artifact_file(ctx.lake, uri, TRANSFORM_FILE)?;
        ctx.lake.put(&path, json_bytes(fitted, &path)?)?;
    }
    let path = artifact_file(ctx.lake, uri, REFERENCE_FILE)?;
    ctx.lake.put(&path, serde_json::to_vec(reference).map_err(|e| OpsError::Invalid(format!("reference: {e}")))?)?;
    let path = artifact_file(ctx.lake, uri, SIGNATURE_FILE)?;
    ctx.lake.put(&path, json_bytes(signature, &path)?)?;
    // Last, and each file whole (see `Lake::put`): a folder without its model is a write that was interrupted, on
    // local disk and object stores alike. The registry only ever points at a folder after the try's report.
    ctx.lake.put(&artifact_file(ctx.lake, uri, MODEL_FILE)?, model)
}
