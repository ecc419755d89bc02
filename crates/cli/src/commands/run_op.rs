//! `sluice run-op` (hidden): runs one built-in data task (`ingest`, `quality`, `transform`) as a worker's child.
//!
//! A worker starts this for a leased data task instead of a command, with the rendered configuration in
//! `$SLUICE_OP_SPEC` and the run's context in the `SLUICE_*` variables, so that the task is supervised exactly like a
//! command: timeouts and kills reach its process group, its stdout and stderr are the task's log, its exit code is
//! the outcome, and the JSON it writes to `$SLUICE_OUTPUT` (assets written, quality reports) is the task's output.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use sluice_core::ops_spec::OpSpec;
use sluice_core::protocol::{OP_SPEC_ENV, OpOutput, QualityStatus};
use sluice_ops::{Lake, OpContext, run_op};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Root folder of the lake, where `lake://` assets live (default: $SLUICE_HOME/lake).
    #[arg(long, env = "SLUICE_LAKE")]
    pub lake: Option<PathBuf>,
    #[arg(long, env = "SLUICE_HOME", default_value = "./.sluice")]
    pub home: PathBuf,
    /// Relative source paths are read from this folder.
    #[arg(long, env = "SLUICE_DAGS_FOLDER", default_value = "./dags")]
    pub dags_folder: PathBuf,
}

impl Args {
    /// The lake root: `--lake`, else `$SLUICE_HOME/lake`.
    pub fn lake_root(&self) -> PathBuf {
        self.lake.clone().unwrap_or_else(|| self.home.join("lake"))
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = std::env::var(OP_SPEC_ENV).with_context(|| format!("${OP_SPEC_ENV} is not set"))?;
    let op: OpSpec = serde_json::from_str(&spec).with_context(|| format!("${OP_SPEC_ENV} is not a data task"))?;
    let ds = match std::env::var("SLUICE_DS") {
        Ok(ds) => NaiveDate::parse_from_str(&ds, "%Y-%m-%d").with_context(|| format!("$SLUICE_DS {ds:?}"))?,
        Err(_) => Utc::now().date_naive(),
    };
    let lake = Lake::new(args.lake_root());
    println!("lake {}, logical date {ds}", lake.root().display());
    // polars works on its own threads; keep the runtime's free for the signal handling of the process.
    let dags = args.dags_folder.clone();
    let output = tokio::task::spawn_blocking(move || {
        let ctx = OpContext { lake: &lake, base_dir: &dags, ds, now: Utc::now(), previous_watermark: None };
        run_op(&op, &ctx)
    })
    .await??;
    print_summary(&output);
    write_output(&output)?;
    let failed: Vec<&str> =
        output.quality.iter().filter(|q| q.status == QualityStatus::Failed).map(|q| q.uri.as_str()).collect();
    if !failed.is_empty() {
        eprintln!("error: data quality checks of severity error failed for {}", failed.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(output: &OpOutput) {
    for asset in &output.assets {
        println!("wrote {} rows to {}", asset.rows.unwrap_or_default(), asset.uri);
    }
    for quality in &output.quality {
        println!("quality of {}: {:?}", quality.uri, quality.status);
        for result in quality.report["results"].as_array().into_iter().flatten() {
            let verdict = match (result["passed"].as_bool(), result["severity"].as_str()) {
                (Some(true), _) => "pass",
                (_, Some("warn")) => "WARN",
                _ => "FAIL",
            };
            let column = result["column"].as_str().map(|c| format!(" on {c}")).unwrap_or_default();
            println!(
                "  {verdict} {}{column}: observed {}, threshold {}",
                result["check"].as_str().unwrap_or("?"),
                result["observed"],
                result["threshold"]
            );
        }
    }
}

/// Writes the output where the worker reads it (`$SLUICE_OUTPUT`), or prints it when run by hand.
fn write_output(output: &OpOutput) -> anyhow::Result<()> {
    let json = serde_json::to_string(output)?;
    match std::env::var_os("SLUICE_OUTPUT") {
        Some(path) => std::fs::write(Path::new(&path), json).with_context(|| "cannot write $SLUICE_OUTPUT"),
        None => {
            println!("{json}");
            Ok(())
        }
    }
}
