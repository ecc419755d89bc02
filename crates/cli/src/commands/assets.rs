//! `sluice assets list|show|lineage`: the data catalog from the command line, over the REST API.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use super::client::ApiArgs;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Every asset with its last update, row count and quality status.
    List(ApiArgs),
    /// One asset (by URI): producers, consumers and its latest events.
    Show {
        uri: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// What is upstream and downstream of an asset (by URI), across DAGs.
    Lineage {
        uri: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List(api) => list(&api).await,
        Command::Show { uri, api } => show(&api, &uri).await,
        Command::Lineage { uri, api } => lineage(&api, &uri).await,
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn all_assets(api: &ApiArgs) -> anyhow::Result<Vec<Value>> {
    let page = api.call(reqwest::Method::GET, "/assets?limit=1000", None).await?;
    Ok(page["assets"].as_array().cloned().unwrap_or_default())
}

async fn list(api: &ApiArgs) -> anyhow::Result<ExitCode> {
    println!("{:<40} {:<26} {:>9} {:<8} owner", "uri", "last update", "rows", "quality");
    for asset in all_assets(api).await? {
        println!(
            "{:<40} {:<26} {:>9} {:<8} {}",
            text(&asset["uri"]),
            text(&asset["last_asset_event"]["timestamp"]),
            text(&asset["row_count"]),
            text(&asset["quality_status"]),
            text(&asset["owner"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(api: &ApiArgs, uri: &str) -> anyhow::Result<ExitCode> {
    let assets = all_assets(api).await?;
    let asset = assets.iter().find(|a| a["uri"] == uri).with_context(|| format!("no asset {uri:?}"))?;
    println!("{}", serde_json::to_string_pretty(asset)?);
    let id = asset["id"].as_i64().unwrap_or_default();
    let events = api.call(reqwest::Method::GET, &format!("/assets/events?asset_id={id}&limit=10"), None).await?;
    println!("latest events:");
    for e in events["asset_events"].as_array().into_iter().flatten() {
        println!(
            "  {} {}.{} run {} rows {} quality {}",
            text(&e["timestamp"]),
            text(&e["source_dag_id"]),
            text(&e["source_task_id"]),
            text(&e["source_run_id"]),
            text(&e["row_count"]),
            text(&e["quality_status"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn lineage(api: &ApiArgs, uri: &str) -> anyhow::Result<ExitCode> {
    let path = format!("/assets/lineage?uri={}", urlencode(uri));
    let view = api.call(reqwest::Method::GET, &path, None).await?;
    let node = |n: &Value| match n["type"].as_str() {
        Some("asset") => text(&n["uri"]),
        _ => format!("{}.{}", text(&n["dag_id"]), text(&n["task_id"])),
    };
    for (title, key) in [("upstream", "upstream"), ("downstream", "downstream")] {
        println!("{title}:");
        for n in view[key].as_array().into_iter().flatten() {
            println!("  {}", node(n));
        }
    }
    println!("edges:");
    for edge in view["edges"].as_array().into_iter().flatten() {
        println!("  {} -> {}", node(&edge[0]), node(&edge[1]));
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes what a query value must not carry as is.
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
