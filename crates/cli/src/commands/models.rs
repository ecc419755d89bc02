//! `sluice models list|show|promote|rollback|predict`: the model registry from the command line, over the REST API.

use std::process::ExitCode;

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::ApiArgs;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Every model with its newest and production versions.
    List(ApiArgs),
    /// A model's versions with their stage and metrics, and its stage history.
    Show {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Move a version to a stage (the version that held it is archived).
    Promote {
        name: String,
        version: i64,
        #[arg(long, default_value = "production")]
        stage: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Put the previous production version back into production.
    Rollback {
        name: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Predict records given as JSON: one object, or a list of objects.
    Predict {
        name: String,
        /// e.g. '{"island": "Biscoe", "bill_length_mm": 46.1, ...}'
        #[arg(long)]
        json: String,
        /// Ask a version of this stage (default production).
        #[arg(long, conflicts_with = "version")]
        stage: Option<String>,
        #[arg(long)]
        version: Option<i64>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List(api) => list(&api).await,
        Command::Show { name, api } => show(&api, &name).await,
        Command::Promote { name, version, stage, reason, api } => {
            let body = json!({"stage": stage, "reason": reason});
            let path = format!("/models/{name}/versions/{version}/stage");
            let version = api.call(Method::POST, &path, Some(body)).await?;
            println!("{name} version {} is now in {}", text(&version["version"]), text(&version["stage"]));
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback { name, reason, api } => {
            let version =
                api.call(Method::POST, &format!("/models/{name}/rollback"), Some(json!({"reason": reason}))).await?;
            println!("{name} version {} is back in production", text(&version["version"]));
            Ok(ExitCode::SUCCESS)
        }
        Command::Predict { name, json: records, stage, version, api } => {
            let parsed: Value = serde_json::from_str(&records).context("--json is not JSON")?;
            let records = if parsed.is_array() { parsed } else { json!([parsed]) };
            let query = match (stage, version) {
                (_, Some(v)) => format!("?version={v}"),
                (Some(s), None) => format!("?stage={s}"),
                (None, None) => String::new(),
            };
            let answer = api
                .call(Method::POST, &format!("/models/{name}/predict{query}"), Some(json!({"records": records})))
                .await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn list(api: &ApiArgs) -> anyhow::Result<ExitCode> {
    let page = api.call(Method::GET, "/models?limit=1000", None).await?;
    println!("{:<32} {:>7} {:>10} updated", "model", "latest", "production");
    for model in page["models"].as_array().into_iter().flatten() {
        println!(
            "{:<32} {:>7} {:>10} {}",
            text(&model["name"]),
            text(&model["latest_version"]),
            text(&model["production_version"]),
            text(&model["updated_at"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(api: &ApiArgs, name: &str) -> anyhow::Result<ExitCode> {
    let versions = api.call(Method::GET, &format!("/models/{name}/versions"), None).await?;
    println!("{:>7} {:<11} {:<20} metrics", "version", "stage", "algorithm");
    for v in versions["versions"].as_array().into_iter().flatten() {
        let metrics: Vec<String> = v["metrics"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, m)| format!("{k} {:.4}", m.as_f64().unwrap_or(f64::NAN)))
            .collect();
        println!(
            "{:>7} {:<11} {:<20} {}",
            text(&v["version"]),
            text(&v["stage"]),
            text(&v["algorithm"]),
            metrics.join(", ")
        );
    }
    let history = api.call(Method::GET, &format!("/models/{name}/stageHistory"), None).await?;
    println!("stage history:");
    for change in history["stage_changes"].as_array().into_iter().flatten() {
        println!(
            "  {} version {} {} → {} by {}: {}",
            text(&change["timestamp"]),
            text(&change["version"]),
            text(&change["from_stage"]),
            text(&change["to_stage"]),
            text(&change["changed_by"]),
            text(&change["reason"])
        );
    }
    Ok(ExitCode::SUCCESS)
}
