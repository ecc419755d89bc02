//! `kind: monitor` and `kind: score`: a model version applied to recent data. Monitoring compares the data, prepared
//! by the version's transform, with the version's training reference — per feature the population stability index
//! and the Kolmogorov–Smirnov test, the distribution of predictions, accuracy and F1 on labels in the data and on
//! labels fed back through the API — reports each check with its threshold, and tells the drift to a webhook if the
//! task names one. Scoring writes every row with its prediction.

use std::collections::BTreeMap;

use ndarray::Array2;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_core::ops_spec::{ModelRef, MonitorSpec, Webhook};
use sluice_core::protocol::{DriftCheck, MonitorReport, RegistryView, VersionView};
use sluice_ml::drift;

use super::feedback::feedback_checks;
use super::{REFERENCE_FILE, ServedVersion, parse_artifact, read_artifact, registered};
use crate::error::{OpsError, Result};
use crate::http::{RetryPolicy, post_json};
use crate::lake::WrittenPartition;
use crate::task::OpContext;

/// Rows of the training data kept as the reference of drift checks, at most.
pub(super) const REFERENCE_ROWS: usize = 10_000;

/// Bins of the population stability index: deciles of the reference.
const PSI_BINS: usize = 10;

/// A sample of the training data, prepared: what monitoring compares new data with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Feature → its values in the sample.
    pub features: BTreeMap<String, Vec<f64>>,
    /// The model's predictions on the sample, as text.
    pub predictions: Vec<String>,
}

impl Reference {
    /// Every `step`-th row of `features`, so that the sample spans the whole data set.
    pub(super) fn sample(features: &Array2<f64>, names: &[String], predictions: &[String]) -> Reference {
        let step = features.nrows().div_ceil(REFERENCE_ROWS).max(1);
        let rows: Vec<usize> = (0..features.nrows()).step_by(step).collect();
        Reference {
            features: names
                .iter()
                .enumerate()
                .map(|(c, name)| (name.clone(), rows.iter().map(|&r| features[[r, c]]).collect()))
                .collect(),
            predictions: rows.iter().filter_map(|&r| predictions.get(r).cloned()).collect(),
        }
    }
}

/// The version a task asks for: `version`, or the one in `stage`.
fn chosen<'a>(registry: &'a RegistryView, wanted: &ModelRef) -> Result<&'a VersionView> {
    if let Some(number) = &wanted.version {
        return registered(registry, number.value("version").map_err(OpsError::Invalid)? as i64);
    }
    registry.versions.iter().rev().find(|v| v.stage == wanted.stage).ok_or_else(|| {
        OpsError::Invalid(format!("model {} has no version in {}: promote one first", wanted.model, wanted.stage))
    })
}

fn texts(prediction: &sluice_core::serving::Prediction) -> Vec<String> {
    prediction.predictions.iter().map(super::log::text).collect()
}

fn predict_error(e: sluice_core::serving::PredictError) -> OpsError {
    OpsError::Invalid(e.to_string())
}

pub fn run_monitor(spec: &MonitorSpec, ctx: &OpContext<'_>, registry: &RegistryView) -> Result<MonitorReport> {
    let [input] = spec.inputs.as_slice() else {
        return Err(OpsError::Invalid("a monitor task reads exactly one input asset".into()));
    };
    let config = &spec.monitor;
    let wanted = ModelRef { model: config.model.clone(), stage: config.stage.clone(), version: None };
    let version = chosen(registry, &wanted)?;
    let served = ServedVersion::load(ctx.lake, &version.artifact_uri)?;
    let reference: Reference = parse_artifact(
        &read_artifact(ctx.lake, &version.artifact_uri, REFERENCE_FILE)?,
        &version.artifact_uri,
        REFERENCE_FILE,
    )?;
    let df = ctx.lake.read(input, ctx.ds)?;
    let rows = df.height();
    if rows == 0 {
        return Err(OpsError::Invalid(format!("{input} has no rows for {}: nothing to compare", ctx.ds)));
    }
    let labels = match &config.label {
        Some(column) => Some(label_texts(&df, column)?),
        None => None,
    };
    let features = served.frame_features(df).map_err(predict_error)?;
    let thresholds = config.thresholds;
    let mut checks = Vec::new();
    for (c, name) in served.signature().features.iter().enumerate() {
        let Some(expected) = reference.features.get(name) else { continue };
        let current: Vec<f64> = features.column(c).to_vec();
        let psi = drift::psi(expected, &current, PSI_BINS);
        let ks = drift::ks(expected, &current);
        checks.push(check(name, "psi", psi, thresholds.psi, psi > thresholds.psi));
        checks.push(check(name, "ks_p_value", ks.p_value, thresholds.ks_p_value, ks.p_value < thresholds.ks_p_value));
    }
    let prediction = served.predict_features(&features).map_err(predict_error)?;
    let predicted = texts(&prediction);
    let expected: Vec<&str> = reference.predictions.iter().map(String::as_str).collect();
    let current: Vec<&str> = predicted.iter().map(String::as_str).collect();
    let prediction_psi = drift::psi_categorical(&expected, &current);
    let prediction_drifted = prediction_psi > thresholds.prediction_psi;
    checks.push(check("prediction", "psi", prediction_psi, thresholds.prediction_psi, prediction_drifted));
    if let Some(labels) = labels {
        let accuracy = labels.iter().zip(&predicted).filter(|(l, p)| l == p).count() as f64 / rows as f64;
        let below = thresholds.min_accuracy.is_some_and(|min| accuracy < min);
        checks.push(DriftCheck {
            feature: "label".into(),
            statistic: "accuracy".into(),
            value: accuracy,
            threshold: thresholds.min_accuracy,
            drifted: below,
        });
        checks.push(DriftCheck {
            feature: "label".into(),
            statistic: "f1".into(),
            value: macro_f1(&labels, &predicted),
            threshold: None,
            drifted: false,
        });
    }
    let feedback = match ctx.feedback {
        Some(view) => {
            let (found, summary) =
                feedback_checks(ctx.lake, &config.model, view, thresholds.min_accuracy, ctx.now.date_naive())?;
            (ctx.log)(&format!(
                "{} labels fed back since the last report, {} matched with logged predictions",
                summary.labels, summary.matched
            ));
            checks.extend(found);
            Some(summary)
        }
        None => None,
    };
    let mut drifted_features: Vec<String> = checks
        .iter()
        .filter(|c| c.drifted && !["prediction", "label", "feedback"].contains(&c.feature.as_str()))
        .map(|c| c.feature.clone())
        .collect();
    drifted_features.dedup();
    for line in checks.iter().map(|c| {
        let verdict = if c.drifted { "DRIFT" } else { "ok" };
        format!("{verdict} {} {} {:.4} (threshold {:?})", c.feature, c.statistic, c.value, c.threshold)
    }) {
        (ctx.log)(&line);
    }
    let report = MonitorReport {
        model: config.model.clone(),
        version: version.version,
        input_uri: input.clone(),
        rows,
        drifted: checks.iter().any(|c| c.drifted),
        checks,
        drifted_features,
        feedback,
    };
    if let Some(webhook) = config.on_drift.as_ref().and_then(|d| d.webhook.as_ref())
        && report.drifted
    {
        tell_webhook(webhook, &report, ctx, RetryPolicy::default());
    }
    Ok(report)
}

/// Posts the drift to the webhook. A failure, retried first, is logged and does not fail the report: the drift is
/// recorded, and its retraining run triggered, whether or not the message got through.
fn tell_webhook(webhook: &Webhook, report: &MonitorReport, ctx: &OpContext<'_>, policy: RetryPolicy) {
    let drift: Vec<Value> = report
        .checks
        .iter()
        .filter(|c| c.drifted)
        .map(|c| json!({"feature": c.feature, "statistic": c.statistic, "value": c.value, "threshold": c.threshold}))
        .collect();
    let run = ctx.run;
    let message = json!({
        "event": "drift",
        "model": report.model,
        "version": report.version,
        "dag_id": run.map(|r| r.dag_id.as_str()),
        "run_id": run.map(|r| r.run_id.as_str()),
        "task_id": run.map(|r| r.task_id.as_str()),
        "input_uri": report.input_uri,
        "rows": report.rows,
        "drifted_features": report.drifted_features,
        "drift": drift,
    });
    let endpoint = webhook.endpoint.as_deref().unwrap_or("/");
    let posted = ctx
        .connection(&webhook.connection)
        .and_then(|connection| post_json(endpoint, connection, &message, policy, ctx.log));
    match posted {
        Ok(()) => (ctx.log)(&format!("drift posted to the webhook of connection {:?}", webhook.connection)),
        Err(e) => (ctx.log)(&format!(
            "WARNING: the drift could not be posted to the webhook of connection {:?}: {e}",
            webhook.connection
        )),
    }
}

fn check(feature: &str, statistic: &str, value: f64, threshold: f64, drifted: bool) -> DriftCheck {
    DriftCheck { feature: feature.into(), statistic: statistic.into(), value, threshold: Some(threshold), drifted }
}

fn label_texts(df: &DataFrame, column: &str) -> Result<Vec<String>> {
    let present = || df.get_column_names().iter().map(|c| c.to_string()).collect();
    let labels = df
        .column(column)
        .map_err(|_| OpsError::MissingColumn { column: column.to_owned(), present: present() })?
        .cast(&DataType::String)?;
    Ok(labels.str()?.iter().map(|v| v.unwrap_or_default().to_owned()).collect())
}

/// F1 averaged over the classes seen in the labels or the predictions.
pub(super) fn macro_f1(labels: &[String], predicted: &[String]) -> f64 {
    let mut classes: Vec<&String> = labels.iter().chain(predicted).collect();
    classes.sort();
    classes.dedup();
    let index = |v: &String| classes.binary_search(&v).unwrap_or(0);
    let truth: Vec<usize> = labels.iter().map(index).collect();
    let guess: Vec<usize> = predicted.iter().map(index).collect();
    sluice_ml::metrics::f1_macro(&truth, &guess)
}

/// `kind: score`: every row of the input with the prediction of the chosen version (`prediction`, the
/// `probability_<class>` of a classifier) and the version's number (`model_version`), written to the outputs.
pub fn run_score(
    spec: &sluice_core::ops_spec::ScoreSpec,
    ctx: &OpContext<'_>,
    registry: &RegistryView,
) -> Result<(Vec<WrittenPartition>, Vec<crate::ingest::ColumnInfo>, i64)> {
    let [input] = spec.inputs.as_slice() else {
        return Err(OpsError::Invalid("a score task reads exactly one input asset".into()));
    };
    let version = chosen(registry, &spec.score)?;
    let served = ServedVersion::load(ctx.lake, &version.artifact_uri)?;
    let mut df = ctx.lake.read(input, ctx.ds)?;
    let features = served.frame_features(df.clone()).map_err(predict_error)?;
    let prediction = served.predict_features(&features).map_err(predict_error)?;
    let rows = df.height();
    let column = match prediction.predictions.first() {
        Some(Value::Number(_)) => {
            Column::new("prediction".into(), prediction.predictions.iter().map(Value::as_f64).collect::<Vec<_>>())
        }
        _ => Column::new("prediction".into(), texts(&prediction)),
    };
    df.with_column(column)?;
    if let (Some(probabilities), Some(classes)) = (&prediction.probabilities, &prediction.classes) {
        for (c, class) in classes.iter().enumerate() {
            let values: Vec<f64> = probabilities.iter().map(|p| p.get(c).copied().unwrap_or(f64::NAN)).collect();
            df.with_column(Column::new(format!("probability_{class}").into(), values))?;
        }
    }
    df.with_column(Column::new("model_version".into(), vec![version.version; rows]))?;
    (ctx.log)(&format!("scored {rows} rows of {input} with {} version {}", spec.score.model, version.version));
    let written = spec.outputs.iter().map(|uri| ctx.lake.write(uri, ctx.ds, &mut df)).collect::<Result<_>>()?;
    Ok((written, crate::ingest::ColumnInfo::of(&df), version.version))
}
