//! The `train` scenario: the `train` task of the example DAG `penguins_train`, in this process.
//!
//! The DAG file and its data are the ones in the repository's `dags/`. Its `ingest` and `features` tasks prepare the
//! data in a temporary lake first (not measured); then its `train` task runs through `sluice_ops::run_op`, as
//! `sluice run-op` runs it on a worker: it reads the features from the lake, cross-validates every candidate of the
//! grid (logistic regression, decision tree and random forest, four settings each, 5 folds), refits the best on all
//! rows and writes the version's files. `seconds` is that task; `cv_accuracy` is the best candidate's accuracy, the
//! mean over the folds.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use sluice_core::ops_spec::OpSpec;
use sluice_ops::{Lake, OpContext, run_op};

use super::{PENGUINS_CSV, PENGUINS_DAG};

pub async fn run() -> anyhow::Result<Value> {
    // The fits run on threads of their own; this keeps the async runtime's free.
    tokio::task::spawn_blocking(|| {
        let dir = std::env::temp_dir().join(format!("sluice-bench-train-{}", uuid::Uuid::now_v7().simple()));
        let result = measure(&dir);
        std::fs::remove_dir_all(&dir).ok();
        result
    })
    .await?
}

fn measure(dir: &Path) -> anyhow::Result<Value> {
    let dags = dir.join("dags");
    std::fs::create_dir_all(dags.join("data"))?;
    std::fs::write(dags.join("data/penguins.csv"), PENGUINS_CSV)?;
    let dag = sluice_core::load_dag("penguins_train.yaml", PENGUINS_DAG).map_err(|errors| {
        anyhow!("penguins_train.yaml: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    })?;
    let op = |task_id: &str| -> anyhow::Result<OpSpec> {
        dag.task(task_id)
            .and_then(|t| t.op_spec())
            .with_context(|| format!("penguins_train has no data task {task_id}"))
    };
    let lake = Lake::new(dir.join("lake"));
    let connections = BTreeMap::new();
    let log = |_: &str| {};
    let ctx = OpContext {
        lake: &lake,
        base_dir: &dags,
        ds: chrono::Utc::now().date_naive(),
        now: chrono::Utc::now(),
        previous_watermark: None,
        connections: &connections,
        log: &log,
        model_version: Some(1),
        registry: None,
    };
    run_op(&op("ingest")?, &ctx)?;
    run_op(&op("features")?, &ctx)?;
    let train = op("train")?;
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
