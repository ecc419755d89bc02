//! The `score` scenario: batch predictions of the penguins model for a large batch, in this process.
//!
//! The example DAG `penguins_train` trains the model first, and a batch of `rows` raw penguins, drawn with
//! replacement from the data set (seeded), is ingested into the lake (neither is measured). Then a `score` task reads
//! the batch, applies the version's transform and model, and writes every row with its prediction, probabilities
//! and version, as `sluice run-op` does on a worker. Peak memory is measured as in the `transform` scenario.

use std::time::Instant;

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sluice_ops::run_op;

use super::scratch::{Scratch, in_production, load_dag, memory_kib, op, reset_peak_memory};
use super::{PENGUINS_CSV, round};

const SCORE_DAG: &str = r#"
dag_id: bench_score
schedule: null
tasks:
  - id: ingest
    kind: ingest
    source: {type: csv, path: data/batch.csv}
    outputs: [lake://bench/batch]
  - id: score
    kind: score
    depends_on: [ingest]
    inputs: [lake://bench/batch]
    outputs: [lake://bench/scored]
    score: {model: penguins_species, stage: production}
"#;

pub async fn run(rows: usize) -> anyhow::Result<Value> {
    // polars and the model work on threads of their own; this keeps the async runtime's free.
    tokio::task::spawn_blocking(move || measure(rows)).await?
}

fn measure(rows: usize) -> anyhow::Result<Value> {
    let scratch = Scratch::new("score")?;
    let penguins = scratch.penguins()?;
    let train_ctx = scratch.context(Some(1), None);
    for task in ["ingest", "features"] {
        run_op(&op(&penguins, task)?, &train_ctx)?;
    }
    let model = run_op(&op(&penguins, "train")?, &train_ctx)?.model.context("the train task wrote no model")?;
    let registry = in_production(&model);
    let batch = scratch.dags.join("data/batch.csv");
    resample(&batch, rows).with_context(|| format!("cannot write {}", batch.display()))?;
    let dag = load_dag("bench_score.yaml", SCORE_DAG)?;
    let ctx = scratch.context(None, Some(&registry));
    run_op(&op(&dag, "ingest")?, &ctx)?;
    let score = op(&dag, "score")?;
    reset_peak_memory()?;
    let rss_before = memory_kib("VmRSS")?;
    let start = Instant::now();
    let output = run_op(&score, &ctx)?;
    let seconds = start.elapsed().as_secs_f64();
    let peak = memory_kib("VmHWM")?;
    let scored = output.assets.first().and_then(|a| a.rows).unwrap_or(0);
    Ok(json!({
        "scenario": "score",
        "model": format!("{} version {} ({})", model.name, model.version, model.algorithm),
        "rows": scored,
        "seconds": round(seconds),
        "rows_per_s": (scored as f64 / seconds.max(0.001)).round(),
        "peak_rss_mib": round(peak as f64 / 1024.0),
        "rss_before_mib": round(rss_before as f64 / 1024.0),
    }))
}

/// A CSV of `rows` rows of the penguins data set drawn with replacement; the same `rows` always give the same file.
fn resample(path: &Path, rows: usize) -> std::io::Result<()> {
    let mut lines = PENGUINS_CSV.lines();
    let header = lines.next().unwrap_or_default();
    let penguins: Vec<&str> = lines.collect();
    let mut rng = SmallRng::seed_from_u64(7);
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "{header}")?;
    for _ in 0..rows {
        writeln!(out, "{}", penguins[rng.random_range(0..penguins.len())])?;
    }
    out.flush()
}
