//! The `transform` scenario: the data tasks of a feature pipeline on a generated file, in this process.
//!
//! A CSV of `rows` rows and 20 columns is generated first (not measured): 16 numeric columns, half of them with 5%
//! of their values missing, and 4 categorical columns of 3 to 12 values, with every 50th row a copy of the one
//! before. Then an `ingest` writes it to a lake and a `transform` deduplicates, imputes, one-hot encodes and
//! standardises it, through `sluice_ops` as `sluice run-op` runs them on a worker.
//!
//! The same steps are then written directly on polars ([`sluice_ops::baseline`]) and timed on the same file:
//! `ratio` is Sluice's seconds over polars' alone, what the lake, content hashes and fitted parameters cost.
//!
//! Peak memory is the process's peak resident set (`VmHWM`), reset just before the ingest through
//! `/proc/self/clear_refs`, so it is what the two tasks held at their worst on top of the process's own baseline
//! (reported as `rss_before_mib`). The scenario runs before the benchmark's server starts, so that nothing else in
//! the process holds memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::round;
use super::scratch::{memory_kib, reset_peak_memory};
use sluice_core::ops_spec::{IngestSpec, TransformSpec};
use sluice_ops::Lake;
use sluice_ops::baseline::BaselineSteps;

const NUMERIC: usize = 16;
/// The first `WITH_MISSING` numeric columns have missing values.
const WITH_MISSING: usize = 8;
const CATEGORIES: [usize; 4] = [3, 5, 8, 12];
const DUPLICATE_EVERY: usize = 50;

pub async fn run(rows: usize) -> anyhow::Result<Value> {
    // polars works on its own threads; this keeps the async runtime's free.
    tokio::task::spawn_blocking(move || {
        let dir = std::env::temp_dir().join(format!("sluice-bench-transform-{}", uuid::Uuid::now_v7().simple()));
        let result = measure(&dir, rows);
        std::fs::remove_dir_all(&dir).ok();
        result
    })
    .await?
}

fn measure(dir: &Path, rows: usize) -> anyhow::Result<Value> {
    std::fs::create_dir_all(dir)?;
    let csv = dir.join("bench.csv");
    generate(&csv, rows).with_context(|| format!("cannot write {}", csv.display()))?;
    let (ingest, transform) = specs(&csv)?;
    let lake = Lake::new(dir.join("lake"));
    let ds = chrono::Utc::now().date_naive();

    let progress = indicatif::ProgressBar::new_spinner().with_message("transform: ingest and transform");
    progress.enable_steady_tick(std::time::Duration::from_millis(200));
    reset_peak_memory()?;
    let rss_before = memory_kib("VmRSS")?;
    let start = Instant::now();
    let ingested = sluice_ops::ingest(&ingest, dir, &lake, ds, None)?;
    let ingest_s = start.elapsed().as_secs_f64();
    let transformed = sluice_ops::run_transform(&transform, &lake, ds)?;
    let seconds = start.elapsed().as_secs_f64();
    let peak = memory_kib("VmHWM")?;

    // After Sluice's tasks, so that their peak memory is theirs alone.
    progress.set_message("transform: the same steps on polars alone");
    let start = Instant::now();
    let polars_shape =
        sluice_ops::baseline::transform_with_polars(&csv, &dir.join("polars.parquet"), &baseline_steps())?;
    let polars_alone_s = start.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let rows_out = transformed.outputs.first().map_or(0, |o| o.rows);
    let shape = (rows_out, transformed.schema.len());
    anyhow::ensure!(polars_shape == shape, "polars alone wrote {polars_shape:?} rows and columns, Sluice {shape:?}");
    Ok(json!({
        "scenario": "transform",
        "rows": ingested.rows,
        "columns": ingested.schema.len(),
        "rows_out": rows_out,
        "columns_out": transformed.schema.len(),
        "ingest_s": round(ingest_s),
        "transform_s": round(seconds - ingest_s),
        "seconds": round(seconds),
        "polars_alone_s": round(polars_alone_s),
        "ratio": round(seconds / polars_alone_s.max(0.001)),
        "rows_per_s": (ingested.rows as f64 / seconds.max(0.001)).round(),
        "peak_rss_mib": round(peak as f64 / 1024.0),
        "rss_before_mib": round(rss_before as f64 / 1024.0),
    }))
}

/// The tasks as a DAG file would configure them: impute + one-hot + scale + dedupe.
fn specs(csv: &Path) -> anyhow::Result<(IngestSpec, TransformSpec)> {
    let (numeric, categorical) = (numeric(), categorical());
    let ingest = serde_json::from_value(json!({
        "source": {"type": "csv", "path": csv},
        "outputs": ["lake://bench/raw"],
    }))?;
    let transform = serde_json::from_value(json!({
        "inputs": ["lake://bench/raw"],
        "outputs": ["lake://bench/features"],
        "steps": [
            {"drop_duplicates": {}},
            {"fill_missing": {"columns": numeric[..WITH_MISSING], "strategy": "mean"}},
            {"fill_missing": {"columns": ["c0"], "strategy": "mode"}},
            {"one_hot": {"columns": categorical}},
            {"standardize": {"columns": numeric}},
        ],
    }))?;
    Ok((ingest, transform))
}

/// The steps of [`specs`]' transform, for the yardstick written on polars alone.
fn baseline_steps() -> BaselineSteps {
    BaselineSteps {
        fill_mean: numeric()[..WITH_MISSING].to_vec(),
        fill_mode: vec!["c0".into()],
        one_hot: categorical(),
        standardize: numeric(),
    }
}

fn numeric() -> Vec<String> {
    (0..NUMERIC).map(|i| format!("x{i:02}")).collect()
}

fn categorical() -> Vec<String> {
    (0..CATEGORIES.len()).map(|i| format!("c{i}")).collect()
}

/// Write the benchmark's CSV (see the module doc); the same `rows` always give the same file.
fn generate(path: &Path, rows: usize) -> std::io::Result<()> {
    let progress = indicatif::ProgressBar::new(rows as u64).with_message("transform: generating the CSV");
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let header: Vec<String> = numeric().into_iter().chain(categorical()).collect();
    writeln!(out, "{}", header.join(","))?;
    let mut rng = SmallRng::seed_from_u64(3);
    let mut row = String::new();
    for i in 0..rows {
        if i % DUPLICATE_EVERY != DUPLICATE_EVERY - 1 || row.is_empty() {
            row = random_row(&mut rng);
        }
        out.write_all(row.as_bytes())?;
        if i % 10_000 == 0 {
            progress.set_position(i as u64);
        }
    }
    out.flush()?;
    progress.finish_and_clear();
    Ok(())
}

fn random_row(rng: &mut SmallRng) -> String {
    use std::fmt::Write as _;
    let mut row = String::with_capacity(160);
    for column in 0..NUMERIC {
        if column < WITH_MISSING && rng.random_bool(0.05) {
            row.push(',');
            continue;
        }
        // Columns of different centres and spreads, as real features have.
        let value = (rng.random::<f64>() - 0.5) * (column as f64 + 1.0) * 10.0 + column as f64 * 100.0;
        let _ = write!(row, "{value:.3},");
    }
    for (i, n) in CATEGORIES.iter().enumerate() {
        if i == 0 && rng.random_bool(0.02) {
            row.push(',');
            continue;
        }
        let _ = write!(row, "{}{},", (b'a' + i as u8) as char, rng.random_range(0..*n));
    }
    row.pop();
    row.push('\n');
    row
}
