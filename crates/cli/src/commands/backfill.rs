//! `sluice backfill DAG --from DATE --to DATE`: asks the server for a backfill, then follows its runs with a
//! progress bar until every one has finished.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{ApiArgs, Output, UsageError, json_object, segment};

#[derive(clap::Args)]
pub struct Args {
    dag_id: String,
    /// First logical date: `2026-01-01` (midnight UTC) or an RFC 3339 time.
    #[arg(long)]
    from: String,
    /// Last logical date, included.
    #[arg(long)]
    to: String,
    /// Run again the dates whose run failed (by default, dates that have a run are left alone).
    #[arg(long)]
    rerun_failed: bool,
    /// Newest dates first.
    #[arg(long)]
    run_backwards: bool,
    /// Run configuration for the new runs, a JSON object.
    #[arg(long)]
    conf: Option<String>,
    /// How many of the backfill's runs may run at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    max_active_runs: u32,
    /// Only list the logical dates the backfill would run.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    api: ApiArgs,
}

fn parse_date(flag: &str, text: &str) -> Result<DateTime<Utc>, UsageError> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| UsageError(format!("{flag} {text:?} is neither YYYY-MM-DD nor an RFC 3339 time")))
}

/// How often the progress is read.
const POLL_EVERY: Duration = Duration::from_millis(500);

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let from = parse_date("--from", &args.from)?;
    let to = parse_date("--to", &args.to)?;
    let conf = json_object("--conf", args.conf.as_deref())?;
    let api = &args.api;
    let dag = api.call(Method::GET, &format!("/dags/{}", segment(&args.dag_id)), None).await?;
    if dag["is_paused"] == true && !args.dry_run {
        anyhow::bail!(
            "{} is paused, so its backfill runs would wait: unpause it first (sluice dags unpause {})",
            args.dag_id,
            args.dag_id
        );
    }
    let body = json!({
        "dag_id": args.dag_id, "from_date": from, "to_date": to, "run_backwards": args.run_backwards,
        "dag_run_conf": conf, "reprocess_behavior": if args.rerun_failed { "failed" } else { "none" },
        "max_active_runs": args.max_active_runs,
    });
    if args.dry_run {
        let plan = api.call(Method::POST, "/backfills/dry_run", Some(body)).await?;
        if api.output == Output::Json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            for entry in plan["backfills"].as_array().into_iter().flatten() {
                println!("{}", entry["logical_date"].as_str().unwrap_or_default());
            }
            println!("{} runs", plan["total_entries"]);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let backfill = api.call(Method::POST, "/backfills", Some(body)).await?;

    let runs_path = format!(
        "/dags/{}/dagRuns?logical_date_gte={}&logical_date_lte={}&limit=1000",
        segment(&args.dag_id),
        segment(&from.to_rfc3339()),
        segment(&to.to_rfc3339())
    );
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs finished {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if api.output == Output::Json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let runs = loop {
        let page = api.call(Method::GET, &runs_path, None).await?;
        let runs: Vec<Value> = page["dag_runs"].as_array().cloned().unwrap_or_default();
        let finished = runs.iter().filter(|r| r["state"] == "success" || r["state"] == "failed").count();
        bar.set_length(runs.len() as u64);
        bar.set_position(finished as u64);
        if finished == runs.len() {
            break runs;
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    bar.finish_and_clear();
    let failed: Vec<&str> =
        runs.iter().filter(|r| r["state"] == "failed").filter_map(|r| r["dag_run_id"].as_str()).collect();
    if api.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&json!({"backfill": backfill, "dag_runs": runs}))?);
    } else {
        println!(
            "backfill {} of {}: {} runs, {} succeeded, {} failed{}",
            backfill["id"],
            args.dag_id,
            runs.len(),
            runs.len() - failed.len(),
            failed.len(),
            if failed.is_empty() { String::new() } else { format!(" ({})", failed.join(", ")) }
        );
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
