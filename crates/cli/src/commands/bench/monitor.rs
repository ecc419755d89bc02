//! The `monitor` scenario: a drift report on a large recent batch, in this process.
//!
//! A binary classifier (logistic regression) is trained on 20,000 generated rows of `FEATURES` numeric features;
//! then a batch of `rows` rows from the same generator, with the first two features shifted by half a standard
//! deviation, is ingested into the lake (neither is measured). `seconds` is the `monitor` task comparing that batch
//! with the version's training reference: PSI and Kolmogorov–Smirnov per feature, the prediction distribution, and
//! accuracy and F1 on the batch's labels. The report must find the two shifted features and only them.

use std::time::Instant;

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, ensure};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sluice_ops::run_op;

use super::round;
use super::scratch::{Scratch, in_production, load_dag, memory_kib, op, reset_peak_memory};

const FEATURES: usize = 20;
const TRAINING_ROWS: usize = 20_000;
const SHIFTED: [&str; 2] = ["f00", "f01"];

const MONITOR_DAG: &str = r#"
dag_id: bench_monitor
schedule: null
tasks:
  - id: ingest_training
    kind: ingest
    source: {type: csv, path: data/training.csv}
    outputs: [lake://bench/training]
  - id: ingest_recent
    kind: ingest
    source: {type: csv, path: data/recent.csv}
    outputs: [lake://bench/recent]
  - id: train
    kind: train
    depends_on: [ingest_training]
    inputs: [lake://bench/training]
    model:
      name: bench_drift
      target: label
      candidates: [{algorithm: logistic_regression}]
      cv: {folds: 2, seed: 1}
  - id: monitor
    kind: monitor
    depends_on: [train, ingest_recent]
    inputs: [lake://bench/recent]
    monitor: {model: bench_drift, label: label}
"#;

pub async fn run(rows: usize) -> anyhow::Result<Value> {
    // polars and the statistics work on threads of their own; this keeps the async runtime's free.
    tokio::task::spawn_blocking(move || measure(rows)).await?
}

fn measure(rows: usize) -> anyhow::Result<Value> {
    let scratch = Scratch::new("monitor")?;
    let dag = load_dag("bench_monitor.yaml", MONITOR_DAG)?;
    for (file, rows, shift, seed) in [("training.csv", TRAINING_ROWS, 0.0, 1), ("recent.csv", rows, 0.5, 2)] {
        let path = scratch.dags.join("data").join(file);
        generate(&path, rows, shift, seed).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let train_ctx = scratch.context(Some(1), None);
    for task in ["ingest_training", "ingest_recent"] {
        run_op(&op(&dag, task)?, &train_ctx)?;
    }
    let model = run_op(&op(&dag, "train")?, &train_ctx)?.model.context("the train task wrote no model")?;
    let registry = in_production(&model);

    let monitor = op(&dag, "monitor")?;
    let ctx = scratch.context(None, Some(&registry));
    reset_peak_memory()?;
    let start = Instant::now();
    let output = run_op(&monitor, &ctx)?;
    let seconds = start.elapsed().as_secs_f64();
    let peak = memory_kib("VmHWM")?;
    let report = output.monitor.context("the monitor task wrote no report")?;
    ensure!(
        report.drifted_features == SHIFTED,
        "the report should find {SHIFTED:?} drifted, found {:?}",
        report.drifted_features
    );
    Ok(json!({
        "scenario": "monitor",
        "rows": report.rows,
        "features": FEATURES,
        "checks": report.checks.len(),
        "drifted_features": report.drifted_features,
        "seconds": round(seconds),
        "peak_rss_mib": round(peak as f64 / 1024.0),
    }))
}

/// A CSV of `rows` rows of features `f00`…`f19` (standard normal, centred at `shift` for the `SHIFTED` ones) and a
/// `label` that a linear model can mostly learn; the same arguments always give the same file.
fn generate(path: &Path, rows: usize, shift: f64, seed: u64) -> std::io::Result<()> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let header: Vec<String> = (0..FEATURES).map(|f| format!("f{f:02}")).collect();
    writeln!(out, "{},label", header.join(","))?;
    let mut row = String::with_capacity(FEATURES * 8 + 8);
    for _ in 0..rows {
        row.clear();
        let mut score = 0.0;
        for f in 0..FEATURES {
            let centre = if f < SHIFTED.len() { shift } else { 0.0 };
            let value = centre + normal(&mut rng);
            score += value * if f % 2 == 0 { 1.0 } else { -0.5 };
            let _ = write!(row, "{value:.4},");
        }
        row.push_str(if score + normal(&mut rng) > 0.0 { "yes" } else { "no" });
        writeln!(out, "{row}")?;
    }
    out.flush()
}

/// A standard normal draw (Box–Muller), so that PSI and KS see the shapes real features have.
fn normal(rng: &mut SmallRng) -> f64 {
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}
