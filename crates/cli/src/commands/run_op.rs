//! `sluice run-op` (hidden): runs one built-in data task (`ingest`, `quality`, `transform`, `sql`, a sensor's
//! pokes, ...) as a worker's child.
//!
//! A worker starts this for a leased data task instead of a command, with the rendered configuration in
//! `$SLUICE_OP_SPEC`, the run's context in the `SLUICE_*` variables, the connections the task names in
//! `$SLUICE_CONN_<ID>` and an incremental ingest's previous mark in `$SLUICE_PREVIOUS_WATERMARK`, so that the task
//! is supervised exactly like a command: timeouts and kills reach its process group, its stdout and stderr are the
//! task's log, its exit code is the outcome, and the JSON it writes to `$SLUICE_OUTPUT` (assets written, quality
//! reports) is the task's output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use sluice_core::connection::{Connection, connection_env_var};
use sluice_core::ops_spec::OpSpec;
use sluice_core::protocol::{
    FeedbackView, MODEL_FEEDBACK_ENV, MODEL_REGISTRY_ENV, MODEL_VERSION_ENV, OP_SPEC_ENV, OpOutput,
    PREVIOUS_WATERMARK_ENV, QualityStatus, RegistryView, SENSOR_CONTEXT_ENV, SensorContext, SensorEnd, file_env_var,
};
use sluice_ops::{Lake, OpContext, TaskRun, run_op};

use super::server::LakeArgs;

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Relative source paths are read from this folder.
    #[arg(long, env = "SLUICE_DAGS_FOLDER", default_value = "./dags")]
    pub dags_folder: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // A long configuration comes in a file (see FILE_BACKED_ENV).
    let spec = match std::env::var_os(file_env_var(OP_SPEC_ENV)) {
        Some(path) => std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?,
        None => std::env::var(OP_SPEC_ENV).with_context(|| format!("${OP_SPEC_ENV} is not set"))?,
    };
    let op: OpSpec = serde_json::from_str(&spec).with_context(|| format!("${OP_SPEC_ENV} is not a data task"))?;
    let ds = match std::env::var("SLUICE_DS") {
        Ok(ds) => NaiveDate::parse_from_str(&ds, "%Y-%m-%d").with_context(|| format!("$SLUICE_DS {ds:?}"))?,
        Err(_) => Utc::now().date_naive(),
    };
    let lake = Lake::open(&args.lake.location())?;
    println!("lake {}, logical date {ds}", lake.root().display());
    let connections = connections(&op)?;
    let previous_watermark = std::env::var(PREVIOUS_WATERMARK_ENV).ok();
    let model_version = match std::env::var(MODEL_VERSION_ENV) {
        Ok(v) => Some(v.parse::<i64>().with_context(|| format!("${MODEL_VERSION_ENV} {v:?}"))?),
        Err(_) => None,
    };
    let registry: Option<RegistryView> = match std::env::var(MODEL_REGISTRY_ENV) {
        Ok(json) => Some(serde_json::from_str(&json).with_context(|| format!("${MODEL_REGISTRY_ENV}"))?),
        Err(_) => None,
    };
    let feedback: Option<FeedbackView> = match std::env::var(MODEL_FEEDBACK_ENV) {
        Ok(json) => Some(serde_json::from_str(&json).with_context(|| format!("${MODEL_FEEDBACK_ENV}"))?),
        Err(_) => None,
    };
    let sensor: Option<SensorContext> = match std::env::var(SENSOR_CONTEXT_ENV) {
        Ok(json) => Some(serde_json::from_str(&json).with_context(|| format!("${SENSOR_CONTEXT_ENV}"))?),
        Err(_) => None,
    };
    let run = match (std::env::var("SLUICE_DAG_ID"), std::env::var("SLUICE_RUN_ID"), std::env::var("SLUICE_TASK_ID")) {
        (Ok(dag_id), Ok(run_id), Ok(task_id)) => Some(TaskRun { dag_id, run_id, task_id }),
        _ => None,
    };
    if let OpSpec::Ingest(spec) = &op
        && let Some(column) = &spec.watermark
    {
        match &previous_watermark {
            Some(mark) => println!("incremental load: rows with {column} above {mark}"),
            None => println!("incremental load by {column}: no previous mark, loading every row"),
        }
    }
    // polars works on its own threads; keep the runtime's free for the signal handling of the process.
    let dags = args.dags_folder.clone();
    let output = tokio::task::spawn_blocking(move || {
        let log = |line: &str| println!("{line}");
        let ctx = OpContext {
            lake: &lake,
            base_dir: &dags,
            ds,
            now: Utc::now(),
            previous_watermark: previous_watermark.as_deref(),
            connections: &connections,
            log: &log,
            model_version,
            registry: registry.as_ref(),
            feedback: feedback.as_ref(),
            run: run.as_ref(),
            sensor: sensor.as_ref(),
        };
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
    if let Some(SensorEnd::TimedOut { reason }) = &output.sensor {
        eprintln!("error: {reason}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The connections the task names, from the environment the server gave it. Only their ids are printed.
fn connections(op: &OpSpec) -> anyhow::Result<BTreeMap<String, Connection>> {
    let mut found = BTreeMap::new();
    for conn_id in op.connections() {
        let var = connection_env_var(conn_id);
        let json =
            std::env::var(&var).with_context(|| format!("connection {conn_id:?} was not given (${var} is not set)"))?;
        // serde's message may quote the value at fault, which may be the password: give the position only.
        let conn: Connection = serde_json::from_str(&json).map_err(|e| {
            anyhow::anyhow!("${var} is not a connection in JSON (line {}, column {})", e.line(), e.column())
        })?;
        println!("connection {conn_id:?} ({})", conn.conn_type);
        found.insert(conn_id.to_owned(), conn);
    }
    Ok(found)
}

fn print_summary(output: &OpOutput) {
    if let Some(model) = &output.model {
        let metrics: Vec<String> = model.metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        println!("model {} version {} ({}): {}", model.name, model.version, model.algorithm, metrics.join(", "));
    }
    if let Some(change) = &output.stage_change {
        println!("model {} version {} → {}: {}", change.model, change.version, change.stage, change.reason);
    }
    for asset in &output.assets {
        let mark = asset.watermark.as_ref().map(|w| format!(", watermark {w}")).unwrap_or_default();
        println!("wrote {} rows to {}{mark}", asset.rows.unwrap_or_default(), asset.uri);
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
