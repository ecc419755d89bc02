//! `sluice dags validate|list|show|pause|unpause|trigger|test`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use serde_json::{Value, json};

use super::client::{ApiArgs, json_object, segment};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check DAG files offline and print every error as file:line:column: message.
    Validate {
        /// Files or folders (default: the DAG folder).
        paths: Vec<PathBuf>,
        #[arg(long, env = "SLUICE_DAGS_FOLDER", default_value = "./dags")]
        dags_folder: PathBuf,
    },
    /// List the DAGs the server knows.
    List(ApiArgs),
    /// Show one DAG with its settings.
    Show {
        dag_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Stop creating runs of a DAG.
    Pause {
        dag_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Start creating runs of a DAG again.
    Unpause {
        dag_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Trigger a DAG run.
    Trigger {
        dag_id: String,
        /// Run configuration, a JSON object.
        #[arg(long)]
        conf: Option<String>,
        #[arg(long)]
        run_id: Option<String>,
        /// RFC 3339 logical date.
        #[arg(long)]
        logical_date: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Run one DAG once, here and now, with a throw-away database and an in-process worker; print each task.
    Test {
        dag_id: String,
        #[arg(long)]
        conf: Option<String>,
        #[arg(long, env = "SLUICE_DAGS_FOLDER", default_value = "./dags")]
        dags_folder: PathBuf,
    },
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate { paths, dags_folder } => validate(if paths.is_empty() { vec![dags_folder] } else { paths }),
        Command::List(api) => list(&api).await,
        Command::Show { dag_id, api } => {
            let dag = api.call(reqwest::Method::GET, &format!("/dags/{}/details", segment(&dag_id)), None).await?;
            let columns = ["dag_id", "timetable_summary", "timezone", "is_paused", "catchup", "max_active_runs"];
            api.print(&dag, None, &columns);
            Ok(ExitCode::SUCCESS)
        }
        Command::Pause { dag_id, api } => set_paused(&api, &dag_id, true).await,
        Command::Unpause { dag_id, api } => set_paused(&api, &dag_id, false).await,
        Command::Trigger { dag_id, conf, run_id, logical_date, api } => {
            let body = json!({"dag_run_id": run_id, "logical_date": logical_date, "conf": json_object("--conf", conf.as_deref())?});
            let run =
                api.call(reqwest::Method::POST, &format!("/dags/{}/dagRuns", segment(&dag_id)), Some(body)).await?;
            api.print(&run, None, &["dag_id", "dag_run_id", "state", "logical_date"]);
            Ok(ExitCode::SUCCESS)
        }
        Command::Test { dag_id, conf, dags_folder } => {
            test(&dag_id, json_object("--conf", conf.as_deref())?, dags_folder).await
        }
    }
}

fn dag_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path).into_iter().flatten().flatten().map(|e| e.path()).collect();
        entries.sort();
        for entry in entries {
            let hidden = entry.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if !hidden && (entry.is_dir() || matches!(entry.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            {
                dag_files(&entry, out);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
}

fn validate(paths: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in &paths {
        if !path.exists() {
            bail!("{} does not exist", path.display());
        }
        dag_files(path, &mut files);
    }
    let mut failed = 0;
    let mut seen = std::collections::HashMap::new();
    for file in &files {
        let name = file.display().to_string();
        let source = match std::fs::read_to_string(file) {
            Ok(s) => s,
            Err(e) => {
                println!("{name}: cannot read: {e}");
                failed += 1;
                continue;
            }
        };
        match sluice_core::load_dag(&name, &source) {
            Ok(dag) => {
                if let Some(first) = seen.insert(dag.dag_id().to_string(), name.clone()) {
                    println!("{name}: DAG id {:?} is already defined in {first}", dag.dag_id());
                    failed += 1;
                }
            }
            Err(errors) => {
                failed += 1;
                for error in errors {
                    println!("{error}");
                }
            }
        }
    }
    let ok = files.len() - failed;
    println!("{} file(s) checked: {ok} valid, {failed} with errors", files.len());
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn list(api: &ApiArgs) -> anyhow::Result<ExitCode> {
    let page = api.call(reqwest::Method::GET, "/dags?limit=1000", None).await?;
    api.print(&page, Some("dags"), &["dag_id", "timetable_summary", "is_paused", "next_dagrun_run_after"]);
    Ok(ExitCode::SUCCESS)
}

async fn set_paused(api: &ApiArgs, dag_id: &str, paused: bool) -> anyhow::Result<ExitCode> {
    let dag = api
        .call(reqwest::Method::PATCH, &format!("/dags/{}", segment(dag_id)), Some(json!({"is_paused": paused})))
        .await?;
    api.print(&dag, None, &["dag_id", "is_paused"]);
    Ok(ExitCode::SUCCESS)
}

/// Starts a private server (temporary SQLite, random port) and one in-process worker, runs the DAG once, and
/// prints every task with its state and log.
async fn test(dag_id: &str, conf: Value, dags_folder: PathBuf) -> anyhow::Result<ExitCode> {
    let home = std::env::temp_dir().join(format!("sluice-test-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&home)?;
    let result = test_in(dag_id, conf, dags_folder, &home).await;
    let _ = std::fs::remove_dir_all(&home);
    result
}

async fn test_in(dag_id: &str, conf: Value, dags_folder: PathBuf, home: &Path) -> anyhow::Result<ExitCode> {
    use super::server::{
        AuthArgs, DatabaseArgs, LakeArgs, PredictionLogArgs, SchedulingArgs, ServerArgs, connect, serve,
    };
    use crate::https::TlsArgs;
    let token = uuid::Uuid::now_v7().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let args = ServerArgs {
        database: DatabaseArgs::url(format!("sqlite://{}", home.join("test.db").display())),
        scheduling: SchedulingArgs {
            scheduler_tick_ms: 200,
            dag_sync_secs: 3600,
            ..SchedulingArgs::defaults(dags_folder.clone())
        },
        bind: listener.local_addr()?,
        tls: TlsArgs::default(),
        worker_token: Some(token.clone()),
        no_scheduler: false,
        auth: AuthArgs::private(),
        lake: LakeArgs { lake: None, home: home.to_path_buf() },
        prediction_log: PredictionLogArgs::default(),
    };
    let store = connect(&args.database).await?;
    let api_token = args.auth.local_admin_token(&store).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let (store, token, shutdown) = (store.clone(), token.clone(), shutdown.clone());
        async move { serve(&args, store, Some(token), listener, None, shutdown).await }
    });
    let worker_args = super::worker::Args {
        server: url.clone(),
        ca_cert: None,
        token: Some(token),
        queues: vec!["default".into()],
        slots: 4,
        name: Some("test-worker".into()),
        grace: 5,
        kill_grace: 5,
        max_log_bytes: sluice_worker::DEFAULT_MAX_LOG_BYTES,
        lake: Some(home.join("lake").display().to_string()),
    };
    // The tasks read the same DAG folder and lake as this private server, as a standalone's workers do.
    let mut config = worker_args.config()?;
    config.task_env = BTreeMap::from([
        ("SLUICE_DAGS_FOLDER".to_owned(), dags_folder.display().to_string()),
        ("SLUICE_LAKE".to_owned(), home.join("lake").display().to_string()),
    ]);
    let worker = tokio::spawn(sluice_worker::run_worker(config, shutdown.clone().cancelled_owned()));
    let api = ApiArgs { server: url, ca_cert: None, token: Some(api_token), output: super::client::Output::Table };
    let outcome = run_once(&api, dag_id, conf).await;
    shutdown.cancel();
    let _ = worker.await;
    let _ = server.await;
    outcome
}

async fn run_once(api: &ApiArgs, dag_id: &str, conf: Value) -> anyhow::Result<ExitCode> {
    // The first scheduler pass reads the DAG folder.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while api.call(reqwest::Method::GET, &format!("/dags/{dag_id}"), None).await.is_err() {
        if tokio::time::Instant::now() > deadline {
            let errors = api.call(reqwest::Method::GET, "/importErrors", None).await?;
            for e in errors["import_errors"].as_array().into_iter().flatten() {
                eprintln!("{}", e["stack_trace"].as_str().unwrap_or_default());
            }
            bail!("DAG {dag_id:?} not found in the DAG folder");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.call(reqwest::Method::PATCH, &format!("/dags/{dag_id}"), Some(json!({"is_paused": false}))).await?;
    let run = api
        .call(
            reqwest::Method::POST,
            &format!("/dags/{dag_id}/dagRuns"),
            Some(json!({"logical_date": null, "conf": conf})),
        )
        .await?;
    let run_id = run["dag_run_id"].as_str().unwrap_or_default().to_string();
    let progress = indicatif::ProgressBar::new_spinner();
    progress.enable_steady_tick(Duration::from_millis(120));
    let state = loop {
        let run = api.call(reqwest::Method::GET, &format!("/dags/{dag_id}/dagRuns/{run_id}"), None).await?;
        let state = run["state"].as_str().unwrap_or_default().to_string();
        progress.set_message(format!("{dag_id} {run_id}: {state}"));
        if state == "success" || state == "failed" {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    progress.finish_and_clear();
    let tis = api.call(reqwest::Method::GET, &format!("/dags/{dag_id}/dagRuns/{run_id}/taskInstances"), None).await?;
    for ti in tis["task_instances"].as_array().into_iter().flatten() {
        let task_id = ti["task_id"].as_str().unwrap_or_default();
        println!("── {task_id}: {} (try {})", ti["state"].as_str().unwrap_or("none"), ti["try_number"]);
        let tries = ti["try_number"].as_i64().unwrap_or(0);
        for try_number in 1..=tries {
            let path =
                format!("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}?full_content=true");
            let log = api.call(reqwest::Method::GET, &path, None).await?;
            for line in log["content"].as_array().into_iter().flatten() {
                println!("   {}", line["event"].as_str().unwrap_or_default());
            }
        }
    }
    println!("DAG run {run_id}: {state}");
    Ok(if state == "success" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
