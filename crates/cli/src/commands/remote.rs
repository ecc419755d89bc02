//! The commands that manage a running Sluice over its REST API: `sluice login`, `runs`, `tasks`, and `variables`,
//! `connections`, `pools`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{ApiArgs, UsageError, json_object, save_token, segment};

#[derive(clap::Args)]
pub struct LoginArgs {
    #[arg(long)]
    username: String,
    /// Read from standard input when absent.
    #[arg(long, env = "SLUICE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Gets a token from `POST /auth/token` and keeps it for later commands against the same server.
pub async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let password = match args.password {
        Some(p) => p,
        None => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("cannot read the password from standard input")?;
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
    };
    let url = format!("{}/auth/token", args.api.server.trim_end_matches('/'));
    let body = json!({"username": args.username, "password": password});
    let answer = args.api.call_url(Method::POST, &url, Some(body)).await?;
    let token = answer["access_token"].as_str().context("the server answered no access_token")?;
    let path = save_token(&args.api.server, token)?;
    println!("signed in to {} as {}; token kept in {}", args.api.server, args.username, path.display());
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Subcommand)]
pub enum RunsCommand {
    /// The runs of a DAG (`~` for every DAG), newest first.
    List {
        dag_id: String,
        /// Only runs in this state (queued, running, success, failed).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One run.
    Show {
        dag_id: String,
        run_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Clear a run's tasks so that they run again.
    Clear {
        dag_id: String,
        run_id: String,
        /// Only the failed and upstream-failed tasks.
        #[arg(long)]
        only_failed: bool,
        /// Print what would be cleared, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Mark a run success, failed or queued.
    Mark {
        dag_id: String,
        run_id: String,
        #[arg(long)]
        state: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

const RUN_COLUMNS: [&str; 6] = ["dag_id", "dag_run_id", "run_type", "state", "logical_date", "start_date"];
const TI_COLUMNS: [&str; 6] = ["task_id", "map_index", "state", "try_number", "start_date", "end_date"];

fn run_path(dag_id: &str, run_id: &str) -> String {
    format!("/dags/{}/dagRuns/{}", segment(dag_id), segment(run_id))
}

pub async fn runs(command: RunsCommand) -> anyhow::Result<ExitCode> {
    match command {
        RunsCommand::List { dag_id, state, limit, api } => {
            let mut path = format!("/dags/{}/dagRuns?order_by=-run_after&limit={limit}", segment(&dag_id));
            if let Some(state) = state {
                path += &format!("&state={}", segment(&state));
            }
            api.print(&api.call(Method::GET, &path, None).await?, Some("dag_runs"), &RUN_COLUMNS);
        }
        RunsCommand::Show { dag_id, run_id, api } => {
            api.print(&api.call(Method::GET, &run_path(&dag_id, &run_id), None).await?, None, &RUN_COLUMNS);
        }
        RunsCommand::Clear { dag_id, run_id, only_failed, dry_run, api } => {
            let body = json!({"dry_run": dry_run, "only_failed": only_failed});
            let answer = api.call(Method::POST, &format!("{}/clear", run_path(&dag_id, &run_id)), Some(body)).await?;
            if dry_run {
                api.print(&answer, Some("task_instances"), &TI_COLUMNS);
            } else {
                api.print(&answer, None, &RUN_COLUMNS);
            }
        }
        RunsCommand::Mark { dag_id, run_id, state, api } => {
            if !["success", "failed", "queued"].contains(&state.as_str()) {
                return Err(UsageError(format!("--state {state:?} must be success, failed or queued")).into());
            }
            let run = api.call(Method::PATCH, &run_path(&dag_id, &run_id), Some(json!({"state": state}))).await?;
            api.print(&run, None, &RUN_COLUMNS);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Subcommand)]
pub enum TasksCommand {
    /// The task instances of a run.
    List {
        dag_id: String,
        run_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A task's log; with --follow, keeps printing new lines until the try ends.
    Logs {
        dag_id: String,
        run_id: String,
        task_id: String,
        /// Which try (default: the latest).
        #[arg(long = "try")]
        try_number: Option<u32>,
        /// Which instance of a mapped task.
        #[arg(long)]
        map_index: Option<i64>,
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Clear a task (and optionally its downstream or upstream tasks) so that it runs again.
    Clear {
        dag_id: String,
        run_id: String,
        task_id: String,
        /// Only this instance of a mapped task.
        #[arg(long)]
        map_index: Option<i64>,
        #[arg(long)]
        downstream: bool,
        #[arg(long)]
        upstream: bool,
        /// Clear it whatever its state, not only when it failed.
        #[arg(long)]
        all_states: bool,
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn tasks(command: TasksCommand) -> anyhow::Result<ExitCode> {
    match command {
        TasksCommand::List { dag_id, run_id, api } => {
            let page = api
                .call(Method::GET, &format!("{}/taskInstances?limit=1000", run_path(&dag_id, &run_id)), None)
                .await?;
            api.print(&page, Some("task_instances"), &TI_COLUMNS);
        }
        TasksCommand::Logs { dag_id, run_id, task_id, try_number, map_index, follow, api } => {
            let task = Instance { dag_id: &dag_id, run_id: &run_id, task_id: &task_id, map_index };
            logs(&api, &task, try_number, follow).await?;
        }
        TasksCommand::Clear { dag_id, run_id, task_id, map_index, downstream, upstream, all_states, dry_run, api } => {
            let task = map_index.map_or_else(|| json!(task_id), |index| json!([task_id, index]));
            let body = json!({
                "dag_run_id": run_id, "task_ids": [task], "include_downstream": downstream,
                "include_upstream": upstream, "only_failed": !all_states, "dry_run": dry_run,
            });
            let answer =
                api.call(Method::POST, &format!("/dags/{}/clearTaskInstances", segment(&dag_id)), Some(body)).await?;
            api.print(&answer, Some("task_instances"), &TI_COLUMNS);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How often `--follow` asks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// One task instance: a task of a run, and which instance of it if it is mapped.
struct Instance<'a> {
    dag_id: &'a str,
    run_id: &'a str,
    task_id: &'a str,
    map_index: Option<i64>,
}

async fn logs(api: &ApiArgs, task: &Instance<'_>, try_number: Option<u32>, follow: bool) -> anyhow::Result<()> {
    let task_path = format!("{}/taskInstances/{}", run_path(task.dag_id, task.run_id), segment(task.task_id));
    let ti_path = match task.map_index {
        Some(index) => format!("{task_path}/{index}"),
        None => task_path.clone(),
    };
    let try_number = match try_number {
        Some(n) => n,
        None => {
            let ti = api.call(Method::GET, &ti_path, None).await?;
            u32::try_from(ti["try_number"].as_u64().unwrap_or(0)).unwrap_or(u32::MAX).max(1)
        }
    };
    let mut token: Option<String> = None;
    loop {
        // Whether the try had ended is read before the lines, so that the last read holds every line.
        let ended = follow
            && !api.call(Method::GET, &format!("{ti_path}/tries/{try_number}"), None).await?["end_date"].is_null();
        token = print_log_page(api, &task_path, task.map_index, try_number, token).await?;
        if !follow || ended {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// Prints the log lines after `token` and answers the token to continue from.
async fn print_log_page(
    api: &ApiArgs,
    task_path: &str,
    map_index: Option<i64>,
    try_number: u32,
    token: Option<String>,
) -> anyhow::Result<Option<String>> {
    let mut path = format!("{task_path}/logs/{try_number}?full_content=true");
    if let Some(index) = map_index {
        path += &format!("&map_index={index}");
    }
    if let Some(t) = &token {
        path += &format!("&token={}", segment(t));
    }
    let page = api.call(Method::GET, &path, None).await?;
    for line in page["content"].as_array().into_iter().flatten() {
        println!("{}", line["event"].as_str().unwrap_or_default());
    }
    Ok(page["continuation_token"].as_str().map(String::from).or(token))
}

/// One of the configuration collections that `variables`, `connections` and `pools` manage alike.
struct Collection {
    path: &'static str,
    list_key: &'static str,
    id_field: &'static str,
    columns: &'static [&'static str],
}

const VARIABLES: Collection = Collection {
    path: "/variables",
    list_key: "variables",
    id_field: "key",
    columns: &["key", "value", "description"],
};
const CONNECTIONS: Collection = Collection {
    path: "/connections",
    list_key: "connections",
    id_field: "connection_id",
    columns: &["connection_id", "conn_type", "host", "port", "login"],
};
const POOLS: Collection = Collection {
    path: "/pools",
    list_key: "pools",
    id_field: "name",
    columns: &["name", "slots", "occupied_slots", "open_slots", "description"],
};

#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    Get {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Create or replace one: for variables `set KEY VALUE`, for connections and pools `set ID --json BODY` (the
    /// API's body, without the id).
    Set {
        id: String,
        value: Option<String>,
        #[arg(long)]
        json: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    Delete {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Create or replace every entry of a JSON file (a list of API bodies, as `export` writes).
    Import {
        file: std::path::PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Write every entry to a JSON file (`-` for standard output). Connection secrets are written as `***`, which
    /// an import into the same server keeps as they are.
    Export {
        file: std::path::PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn variables(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    manage(&VARIABLES, command).await
}

pub async fn connections(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    manage(&CONNECTIONS, command).await
}

pub async fn pools(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    manage(&POOLS, command).await
}

async fn manage(collection: &Collection, command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::List { api } => {
            let page = api.call(Method::GET, &format!("{}?limit=1000", collection.path), None).await?;
            api.print(&page, Some(collection.list_key), collection.columns);
        }
        ConfigCommand::Get { id, api } => {
            let one = api.call(Method::GET, &format!("{}/{}", collection.path, segment(&id)), None).await?;
            api.print(&one, None, collection.columns);
        }
        ConfigCommand::Set { id, value, json, api } => {
            let mut body = match (collection.list_key, value) {
                ("variables", Some(value)) if json.is_none() => json!({"value": value}),
                (_, None) => json_object("--json", json.as_deref())?,
                _ => return Err(UsageError("give either a VALUE (variables) or --json BODY".into()).into()),
            };
            body[collection.id_field] = Value::from(id);
            let saved = upsert(&api, collection, body).await?;
            api.print(&saved, None, collection.columns);
        }
        ConfigCommand::Delete { id, api } => {
            api.call(Method::DELETE, &format!("{}/{}", collection.path, segment(&id)), None).await?;
            println!("deleted {id}");
        }
        ConfigCommand::Import { file, api } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let entries: Vec<Value> = serde_json::from_str(&text)
                .map_err(|e| UsageError(format!("{} is not a JSON list of entries: {e}", file.display())))?;
            let bar = indicatif::ProgressBar::new(entries.len() as u64);
            for entry in entries {
                upsert(&api, collection, entry).await?;
                bar.inc(1);
            }
            bar.finish_and_clear();
            println!("imported {} entries from {}", bar.position(), file.display());
        }
        ConfigCommand::Export { file, api } => {
            let page = api.call(Method::GET, &format!("{}?limit=1000", collection.path), None).await?;
            let text = serde_json::to_string_pretty(&page[collection.list_key])?;
            if file.as_os_str() == "-" {
                println!("{text}");
            } else {
                std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

const READ_ONLY: [&str; 8] = [
    "occupied_slots",
    "running_slots",
    "queued_slots",
    "scheduled_slots",
    "open_slots",
    "deferred_slots",
    "is_encrypted",
    "team_name",
];

/// Creates an entry, or replaces it when it exists.
async fn upsert(api: &ApiArgs, collection: &Collection, mut body: Value) -> anyhow::Result<Value> {
    let id = body[collection.id_field]
        .as_str()
        .map(String::from)
        .ok_or_else(|| UsageError(format!("an entry lacks its {:?}: {body}", collection.id_field)))?;
    // Exported entries carry fields the server computes (slot counts, is_encrypted); bodies must not.
    if let Some(fields) = body.as_object_mut() {
        fields.retain(|name, _| !READ_ONLY.contains(&name.as_str()));
    }
    let item = format!("{}/{}", collection.path, segment(&id));
    if api.call(Method::GET, &item, None).await.is_ok() {
        api.call(Method::PATCH, &item, Some(body)).await
    } else {
        api.call(Method::POST, collection.path, Some(body)).await
    }
}
