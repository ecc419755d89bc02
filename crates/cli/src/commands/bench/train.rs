//! The `train` scenario: the `train` task of the example DAG `penguins_train`, in this process.
//!
//! The DAG file and its data are the ones in the repository's `dags/`. Its `ingest` and `features` tasks prepare the
//! data in a temporary lake first (not measured); then its `train` task runs through `sluice_ops::run_op`, as
//! `sluice run-op` runs it on a worker: it reads the features from the lake, cross-validates every candidate of the
//! grid (logistic regression, decision tree and random forest, four settings each, 5 folds), refits the best on all
//! rows and writes the version's files. `seconds` is that task; `cv_accuracy` is the best candidate's accuracy, the
//! mean over the folds.

use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};
use sluice_ops::run_op;

use super::scratch::{Scratch, op};

pub async fn run() -> anyhow::Result<Value> {
    // The fits run on threads of their own; this keeps the async runtime's free.
    tokio::task::spawn_blocking(measure).await?
}

fn measure() -> anyhow::Result<Value> {
    let scratch = Scratch::new("train")?;
    let dag = scratch.penguins()?;
    let ctx = scratch.context(Some(1), None);
    run_op(&op(&dag, "ingest")?, &ctx)?;
    run_op(&op(&dag, "features")?, &ctx)?;
    let train = op(&dag, "train")?;
    let start = Instant::now();
    let output = run_op(&train, &ctx)?;
    let seconds = start.elapsed().as_secs_f64();

    let model = output.model.context("the train task wrote no model")?;
    Ok(json!({
        "scenario": "train",
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "cv_accuracy": model.metrics.get("accuracy").map(|a| (a * 10_000.0).round() / 10_000.0),
        "best": model.algorithm,
        "params": model.params,
        "candidates": model.details["candidates"].as_array().map_or(0, Vec::len),
        "folds": model.details["cv"]["folds"],
        "rows": model.details["rows"],
    }))
}
