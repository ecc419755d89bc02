//! `sluice bench`: starts a real server (in this process) and real worker processes on a fresh database, runs
//! the scenarios and prints one JSON object per line. Times come from what the database recorded.
//!
//! - `chain`: 200 no-op tasks in a chain, 1 worker: task-to-task latency (one task's end to the next's start).
//! - `fanout`: 2,000 independent no-op tasks, 4 workers × 4 slots: tasks per second.
//! - `map`: one task mapped over a list of 10,000 elements, 4 workers × 4 slots: seconds from the upstream task's
//!   end to the first and the last mapped start, and tasks per second.
//! - `sensors`: 1,000 reschedule-mode sensors true 5 s after the trigger, 2 workers × 2 slots: seconds from the
//!   run's start to the last sensor's end.
//! - `trigger`: REST trigger → first task running, one run after the other.
//! - `many_dags` (only when named): 2,000 DAG files, read by this process and by a `sluice server` of their own:
//!   seconds to load them, to re-read the unchanged folder, and the server's memory (see [`many_dags`]).
//! - `multi` (only when named): `chain` and `fanout` with a second server and scheduler loop on the same database,
//!   the workers spread over both servers.
//! - `dag10k` (only when named): one DAG of 10,000 tasks in 10 layers, each task after two of the layer before,
//!   4 workers × 4 slots: seconds to parse it, to create its run over the API, and tasks per second.
//! - `transform`: ingest and transform of a generated 1,000,000-row CSV in this process: rows per second, peak
//!   memory, and the ratio to the same steps written on polars alone (see [`transform`]). It runs first, before
//!   the server starts, and needs no database.
//! - `train`: the model selection of the example `penguins_train` DAG, in this process (see [`train`]). It runs
//!   before the server starts too.
//! - `predict`: `penguins_train` runs on real workers, then single-record predictions over HTTP from the server and
//!   from a `sluice serve` process: latency and requests per second (see [`predict`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::server::{AuthArgs, DatabaseArgs, LakeArgs, PredictionLogArgs, SchedulingArgs, ServerArgs, connect, serve};
use crate::https::TlsArgs;

mod many_dags;
mod monitor;
mod predict;
mod score;
mod scratch;
mod train;
mod transform;

/// The example DAG that trains and deploys the penguins model, and its data, for `train` and `predict`.
const PENGUINS_DAG: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dags/penguins_train.yaml"));
const PENGUINS_CSV: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dags/data/penguins.csv"));

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// PostgreSQL server to create the benchmark database on (dropped afterwards).
    #[arg(long, env = "SLUICE_BENCH_POSTGRES", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres: String,
    /// Use a temporary SQLite file instead of PostgreSQL.
    #[arg(long)]
    pub sqlite: bool,
    /// Scenarios to run (default: all).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "chain,fanout,map,trigger,transform,train,score,monitor,predict"
    )]
    pub scenarios: Vec<String>,
    #[arg(long, default_value_t = 200)]
    pub chain_tasks: usize,
    #[arg(long, default_value_t = 2000)]
    pub fanout_tasks: usize,
    /// Instances the `map` scenario expands one task into.
    #[arg(long, default_value_t = 10_000)]
    pub map_tasks: usize,
    /// Reschedule-mode sensors of the `sensors` scenario.
    #[arg(long, default_value_t = 1000)]
    pub sensor_tasks: usize,
    #[arg(long, default_value_t = 30)]
    pub triggers: usize,
    /// DAG files of the `many_dags` scenario.
    #[arg(long, default_value_t = 2000)]
    pub many_dags: usize,
    /// Tasks of the `dag10k` scenario's DAG, in 10 layers.
    #[arg(long, default_value_t = 10_000)]
    pub dag10k_tasks: usize,
    /// DAGs the `api` scenario lists (it also reads a run of `api_tasks` task instances).
    #[arg(long, default_value_t = 2000)]
    pub api_dags: usize,
    #[arg(long, default_value_t = 1000)]
    pub api_tasks: usize,
    /// Requests per timed API call.
    #[arg(long, default_value_t = 100)]
    pub api_requests: usize,
    /// Rows of the CSV the `transform` scenario generates.
    #[arg(long, default_value_t = 1_000_000)]
    pub transform_rows: usize,
    /// Rows the `score` scenario predicts in one batch.
    #[arg(long, default_value_t = 1_000_000)]
    pub score_rows: usize,
    /// Rows of the batch the `monitor` scenario checks for drift.
    #[arg(long, default_value_t = 1_000_000)]
    pub monitor_rows: usize,
    /// Predict requests the `predict` scenario sends to each target.
    #[arg(long, default_value_t = 20_000)]
    pub predict_requests: usize,
    /// Concurrent keep-alive connections the `predict` scenario sends them over.
    #[arg(long, default_value_t = 16)]
    pub predict_connections: usize,
}

const TOKEN: &str = "bench-worker-token";

/// Scenarios measured before the server starts, without it.
const WITHOUT_SERVER: [&str; 5] = ["transform", "train", "score", "monitor", "many_dags"];

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.scenarios.iter().any(|s| s == "transform") {
        println!("{}", transform::run(args.transform_rows).await?);
    }
    if args.scenarios.iter().any(|s| s == "train") {
        println!("{}", train::run().await?);
    }
    if args.scenarios.iter().any(|s| s == "score") {
        println!("{}", score::run(args.score_rows).await?);
    }
    if args.scenarios.iter().any(|s| s == "monitor") {
        println!("{}", monitor::run(args.monitor_rows).await?);
    }
    if args.scenarios.iter().any(|s| s == "many_dags") {
        println!("{}", many_dags::run(&args).await?);
    }
    if args.scenarios.iter().all(|s| WITHOUT_SERVER.contains(&s.as_str())) {
        return Ok(ExitCode::SUCCESS);
    }
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}", uuid::Uuid::now_v7().simple()));
    let dags = dir.join("dags");
    std::fs::create_dir_all(&dags)?;
    write_dags(&dags, &args)?;
    let database = Database::create(&args, &dir, "bench").await?;
    let result = run_on(&args, &database.url, &dags, &dir.join("lake")).await;
    database.remove().await;
    std::fs::remove_dir_all(&dir).ok();
    result
}

/// A database of a benchmark's own: a SQLite file, or a new PostgreSQL database dropped afterwards.
struct Database {
    url: String,
    /// The PostgreSQL server and the database's name on it.
    postgres: Option<(String, String)>,
}

impl Database {
    async fn create(args: &Args, dir: &Path, name: &str) -> anyhow::Result<Database> {
        if args.sqlite {
            let url = format!("sqlite://{}", dir.join(format!("{name}.db")).display());
            return Ok(Database { url, postgres: None });
        }
        let db_name = format!("sluice_{name}_{}", uuid::Uuid::now_v7().simple());
        let url = sluice_store::create_postgres_database(&args.postgres, &db_name)
            .await
            .with_context(|| format!("cannot create a database on {}", args.postgres))?;
        Ok(Database { url, postgres: Some((args.postgres.clone(), db_name)) })
    }

    async fn remove(self) {
        if let Some((server, name)) = &self.postgres {
            sluice_store::drop_postgres_database(server, name).await.ok();
        }
    }
}

fn write_dags(dags: &Path, args: &Args) -> anyhow::Result<()> {
    let chain: String = (0..args.chain_tasks)
        .map(|i| match i {
            0 => "  - {id: t0, command: [\"true\"]}\n".to_string(),
            _ => format!("  - {{id: t{i}, command: [\"true\"], depends_on: [t{}]}}\n", i - 1),
        })
        .collect();
    std::fs::write(
        dags.join("chain.yaml"),
        format!("dag_id: bench_chain\nis_paused_upon_creation: false\ntasks:\n{chain}"),
    )?;
    let fanout: String = (0..args.fanout_tasks).map(|i| format!("  - {{id: t{i}, command: [\"true\"]}}\n")).collect();
    std::fs::write(
        dags.join("fanout.yaml"),
        format!(
            "dag_id: bench_fanout\nis_paused_upon_creation: false\nmax_active_tasks: {}\ntasks:\n{fanout}",
            args.fanout_tasks
        ),
    )?;
    // One upstream task outputs the list 0..n; the mapped task has one no-op instance per element.
    std::fs::write(
        dags.join("map.yaml"),
        format!(
            "dag_id: bench_map\nis_paused_upon_creation: false\nmax_active_tasks: {n}\ntasks:\n\
             - {{id: list, script: 'echo \"::output::[$(seq -s, 0 {last})]\"'}}\n\
             - {{id: each, expand: {{n: {{output: list}}}}, max_map_length: {n}, command: [\"true\"]}}\n",
            n = args.map_tasks.max(1),
            last = args.map_tasks.max(1) - 1,
        ),
    )?;
    // Sensors whose condition holds 5 s after the run was triggered, each poking once a second without holding a
    // slot in between.
    let sensors: String = (0..args.sensor_tasks)
        .map(|i| {
            format!(
                "  - {{id: s{i}, kind: sensor, sensor: {{type: time, delta: 5s}}, mode: reschedule, poke_interval: 1s}}\n"
            )
        })
        .collect();
    std::fs::write(
        dags.join("sensors.yaml"),
        format!(
            "dag_id: bench_sensors\nis_paused_upon_creation: false\nmax_active_tasks: {}\ntasks:\n{sensors}",
            args.sensor_tasks.max(1)
        ),
    )?;
    if args.scenarios.iter().any(|s| s == "api") {
        // Many small DAGs for the list, and one wide DAG whose run has many task instances.
        many_dags::write_small_dags(&dags.join("many"), args.api_dags)?;
        let wide: String = (0..args.api_tasks).map(|i| format!("  - {{id: t{i}, command: [\"true\"]}}\n")).collect();
        std::fs::write(dags.join("wide.yaml"), format!("dag_id: bench_wide\ntasks:\n{wide}"))?;
    }
    if args.scenarios.iter().any(|s| s == "dag10k") {
        std::fs::write(dags.join("dag10k.yaml"), layered_dag(args.dag10k_tasks))?;
    }
    if args.scenarios.iter().any(|s| s == "predict") {
        std::fs::create_dir_all(dags.join("data"))?;
        std::fs::write(dags.join("penguins_train.yaml"), PENGUINS_DAG)?;
        std::fs::write(dags.join("data/penguins.csv"), PENGUINS_CSV)?;
    }
    std::fs::write(
        dags.join("trigger.yaml"),
        "dag_id: bench_trigger\nis_paused_upon_creation: false\ntasks:\n  - {id: only, command: [\"true\"]}\n",
    )?;
    Ok(())
}

/// The `dag10k` DAG: `tasks` no-op tasks in 10 layers, each task after two neighbours of the layer before, so the
/// scheduler settles many upstream tasks per decision, as wide real DAGs make it.
fn layered_dag(tasks: usize) -> String {
    const LAYERS: usize = 10;
    let width = tasks.div_ceil(LAYERS).max(1);
    let mut yaml = format!("dag_id: bench_dag10k\nis_paused_upon_creation: false\nmax_active_tasks: {tasks}\ntasks:\n");
    for i in 0..tasks {
        let (layer, at) = (i / width, i % width);
        yaml.push_str(&match layer {
            0 => format!("  - {{id: l0_{at}, command: [\"true\"]}}\n"),
            _ => format!(
                "  - {{id: l{layer}_{at}, command: [\"true\"], depends_on: [l{up}_{at}, l{up}_{next}]}}\n",
                up = layer - 1,
                next = (at + 1) % width,
            ),
        });
    }
    yaml
}

async fn run_on(args: &Args, database_url: &str, dags: &Path, lake: &Path) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let auth = AuthArgs::private();
    // A `sluice serve` started by the benchmark signs tokens with the same key, so the admin's token works there.
    let secret_key = auth.secret_key.clone().context("no secret key")?;
    let server_args = ServerArgs {
        database: DatabaseArgs::url(database_url.to_string()),
        scheduling: SchedulingArgs { dag_sync_secs: 3600, ..SchedulingArgs::defaults(dags.to_path_buf()) },
        bind: listener.local_addr()?,
        tls: TlsArgs::default(),
        worker_token: Some(TOKEN.into()),
        no_scheduler: false,
        auth,
        lake: LakeArgs { lake: Some(lake.display().to_string()), home: dags.to_path_buf() },
        prediction_log: PredictionLogArgs::default(),
    };
    let store = connect(&server_args.database).await?;
    let token = server_args.auth.local_admin_token(&store).await?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { serve(&server_args, store, Some(TOKEN.into()), listener, None, shutdown).await }
    });
    let bench = Bench {
        http: reqwest::Client::new(),
        url: url.clone(),
        token,
        deployment: Deployment {
            database_url: database_url.to_string(),
            dags: dags.to_path_buf(),
            lake: lake.to_path_buf(),
            secret_key,
        },
        worker_servers: vec![url],
    };
    let outcome = bench.all(args).await;
    shutdown.cancel();
    server.await.ok();
    outcome?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone)]
struct Bench {
    http: reqwest::Client,
    url: String,
    token: String,
    deployment: Deployment,
    /// The servers workers long-poll, taken in turn: this process's, and a second one's in `multi`.
    worker_servers: Vec<String>,
}

/// What the processes the benchmark starts share with its server.
#[derive(Clone)]
struct Deployment {
    database_url: String,
    dags: PathBuf,
    lake: PathBuf,
    secret_key: String,
}

impl Bench {
    async fn all(&self, args: &Args) -> anyhow::Result<()> {
        for dag in ["bench_chain", "bench_fanout", "bench_map", "bench_sensors", "bench_trigger"] {
            self.wait_for_dag(dag).await?;
        }
        for scenario in &args.scenarios {
            let line = match scenario.as_str() {
                "chain" => self.chain().await?,
                "fanout" => self.fanout().await?,
                "map" => self.map().await?,
                "sensors" => self.sensors().await?,
                "trigger" => self.trigger(args.triggers).await?,
                "dag10k" => self.dag10k().await?,
                "api" => self.api_reads(args).await?,
                "multi" => {
                    for line in self.multi().await? {
                        println!("{line}");
                    }
                    continue;
                }
                "predict" => {
                    for line in self.predict(args.predict_requests, args.predict_connections).await? {
                        println!("{line}");
                    }
                    continue;
                }
                // Measured before the server started (see `run`).
                "transform" | "train" | "score" | "monitor" | "many_dags" => continue,
                other => {
                    bail!(
                        "unknown scenario {other:?}: use chain, fanout, map, sensors, trigger, transform, train, score, monitor, predict, api, many_dags, dag10k or multi"
                    )
                }
            };
            println!("{line}");
        }
        Ok(())
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}/api/v2{path}", self.url)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let value: Value = response.json().await?;
        if !status.is_success() {
            bail!("{path}: {status} {value}");
        }
        Ok(value)
    }

    async fn wait_for_dag(&self, dag_id: &str) -> anyhow::Result<()> {
        for _ in 0..600 {
            if self.api(reqwest::Method::GET, &format!("/dags/{dag_id}"), None).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("DAG {dag_id} was not loaded")
    }

    async fn trigger_run(&self, dag_id: &str) -> anyhow::Result<String> {
        let run = self
            .api(reqwest::Method::POST, &format!("/dags/{dag_id}/dagRuns"), Some(json!({"logical_date": null})))
            .await?;
        Ok(run["dag_run_id"].as_str().unwrap_or_default().to_string())
    }

    async fn wait_run(&self, dag_id: &str, run_id: &str, progress: &indicatif::ProgressBar) -> anyhow::Result<Value> {
        // Listing every task instance costs the server; counting progress once a second keeps the measurement clean.
        let mut last_count = tokio::time::Instant::now();
        loop {
            let run = self.api(reqwest::Method::GET, &format!("/dags/{dag_id}/dagRuns/{run_id}"), None).await?;
            match run["state"].as_str() {
                Some("success") => return Ok(run),
                Some("failed") => bail!("benchmark run {run_id} of {dag_id} failed"),
                _ => {}
            }
            if !progress.is_hidden() && last_count.elapsed() >= Duration::from_secs(1) {
                let tis = self.task_instances(dag_id, run_id).await?;
                let done = tis.iter().filter(|t| t["state"] == "success").count();
                progress.set_length(tis.len() as u64);
                progress.set_position(done as u64);
                last_count = tokio::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every task instance of a run, page by page (the API answers 1,000 at most per request).
    async fn task_instances(&self, dag_id: &str, run_id: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        loop {
            let path = format!("/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000&offset={}", all.len());
            let body = self.api(reqwest::Method::GET, &path, None).await?;
            let page = body["task_instances"].as_array().cloned().unwrap_or_default();
            let total = body["total_entries"].as_u64().and_then(|n| usize::try_from(n).ok()).unwrap_or_default();
            let last = page.is_empty();
            all.extend(page);
            if last || all.len() >= total {
                return Ok(all);
            }
        }
    }

    fn spawn_workers(&self, count: usize, slots: u32) -> anyhow::Result<Vec<Child>> {
        let exe = std::env::current_exe()?;
        (0..count)
            .map(|i| {
                Command::new(&exe)
                    .args([
                        "worker",
                        "--server",
                        &self.worker_servers[i % self.worker_servers.len()],
                        "--slots",
                        &slots.to_string(),
                        "--name",
                        &format!("bench-{i}"),
                    ])
                    .env("SLUICE_WORKER_TOKEN", TOKEN)
                    .env("SLUICE_LAKE", &self.deployment.lake)
                    .env("SLUICE_DAGS_FOLDER", &self.deployment.dags)
                    .env("RUST_LOG", "warn")
                    .kill_on_drop(true)
                    .spawn()
                    .context("cannot start a worker")
            })
            .collect()
    }

    /// `sluice <subcommand>` (`server` or `serve`) on the benchmark's database, DAG folder and lake, on a free
    /// loopback port; its URL.
    fn spawn_sibling(&self, subcommand: &str) -> anyhow::Result<(Child, String)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let bind = format!("127.0.0.1:{port}");
        let deployment = &self.deployment;
        let child = Command::new(std::env::current_exe()?)
            .args([subcommand, "--bind", &bind])
            .env("SLUICE_DATABASE_URL", &deployment.database_url)
            .env("SLUICE_DAGS_FOLDER", &deployment.dags)
            .env("SLUICE_LAKE", &deployment.lake)
            .env("SLUICE_SECRET_KEY", &deployment.secret_key)
            .env("SLUICE_WORKER_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start sluice {subcommand}"))?;
        Ok((child, format!("http://{bind}")))
    }

    /// `chain` and `fanout` again with a second server, with its own scheduler loop, on the same database: the
    /// workers long-poll the two servers in turn, so a task queued by one server's decision often runs on a
    /// worker of the other, woken by the database's notification.
    async fn multi(&self) -> anyhow::Result<Vec<Value>> {
        let (second, url) = self.spawn_sibling("server")?;
        self.wait_until_ready(&url).await?;
        let both = Bench { worker_servers: vec![self.url.clone(), url], ..self.clone() };
        let outcome = async {
            let mut lines = Vec::new();
            for mut line in [both.chain().await?, both.fanout().await?] {
                line["of"] = line["scenario"].clone();
                line["scenario"] = json!("multi");
                line["servers"] = json!(2);
                line["schedulers"] = json!(2);
                lines.push(line);
            }
            Ok(lines)
        }
        .await;
        stop_processes(vec![second]).await;
        outcome
    }

    async fn run_with_workers(&self, dag_id: &str, workers: usize, slots: u32) -> anyhow::Result<(Value, Vec<Value>)> {
        let ran = self.measured_run(dag_id, workers, slots).await?;
        Ok((ran.run, ran.task_instances))
    }

    /// A run of `dag_id` on fresh workers, with what it cost besides the database's times.
    async fn measured_run(&self, dag_id: &str, workers: usize, slots: u32) -> anyhow::Result<MeasuredRun> {
        let children = self.spawn_workers(workers, slots)?;
        let progress = indicatif::ProgressBar::new(0).with_message(dag_id.to_string());
        progress.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} tasks")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let sent = std::time::Instant::now();
        let run_id = self.trigger_run(dag_id).await?;
        let trigger_s = sent.elapsed().as_secs_f64();
        let run = self.wait_run(dag_id, &run_id, &progress).await?;
        progress.finish_and_clear();
        let worker_peak_rss_kib = children
            .iter()
            .filter_map(|c| c.id())
            .filter_map(|pid| scratch::process_memory_kib(&pid.to_string(), "VmHWM").ok())
            .max()
            .unwrap_or_default();
        stop_processes(children).await;
        let task_instances = self.task_instances(dag_id, &run_id).await?;
        Ok(MeasuredRun { run, task_instances, trigger_s, worker_peak_rss_kib })
    }

    async fn chain(&self) -> anyhow::Result<Value> {
        let (_, tis) = self.run_with_workers("bench_chain", 1, 1).await?;
        let mut spans: Vec<(u64, DateTime<Utc>, DateTime<Utc>)> = tis
            .iter()
            .filter_map(|t| {
                let index = t["task_id"].as_str()?.trim_start_matches('t').parse().ok()?;
                Some((index, time(&t["start_date"])?, time(&t["end_date"])?))
            })
            .collect();
        spans.sort_by_key(|s| s.0);
        let gaps: Vec<f64> = spans.windows(2).map(|w| millis(w[1].1 - w[0].2)).collect();
        Ok(json!({
            "scenario": "chain",
            "tasks": spans.len(),
            "task_to_task_ms_p50": percentile(&gaps, 0.50),
            "task_to_task_ms_p95": percentile(&gaps, 0.95),
            "task_to_task_ms_max": percentile(&gaps, 1.0),
        }))
    }

    async fn fanout(&self) -> anyhow::Result<Value> {
        let (_, tis) = self.run_with_workers("bench_fanout", 4, 4).await?;
        let starts = tis.iter().filter_map(|t| time(&t["start_date"]));
        let ends = tis.iter().filter_map(|t| time(&t["end_date"]));
        let (Some(first), Some(last)) = (starts.min(), ends.max()) else { bail!("fanout recorded no task times") };
        let seconds = millis(last - first) / 1000.0;
        Ok(json!({
            "scenario": "fanout",
            "tasks": tis.len(),
            "workers": 4,
            "slots_per_worker": 4,
            "seconds": round(seconds),
            "tasks_per_s": round(tis.len() as f64 / seconds.max(0.001)),
        }))
    }

    /// One task expanded into many instances on 4 workers × 4 slots: how long after its upstream task ended the
    /// first and the last instance started, and the instances' throughput (comparable with `fanout`'s).
    async fn map(&self) -> anyhow::Result<Value> {
        let (_, tis) = self.run_with_workers("bench_map", 4, 4).await?;
        let upstream_end = tis.iter().find(|t| t["task_id"] == "list").and_then(|t| time(&t["end_date"]));
        let mapped: Vec<&Value> = tis.iter().filter(|t| t["task_id"] == "each").collect();
        let starts: Vec<DateTime<Utc>> = mapped.iter().filter_map(|t| time(&t["start_date"])).collect();
        let ends = mapped.iter().filter_map(|t| time(&t["end_date"]));
        let (Some(upstream_end), Some(first), Some(last_start), Some(last_end)) =
            (upstream_end, starts.iter().min(), starts.iter().max(), ends.max())
        else {
            bail!("map recorded no task times")
        };
        let seconds = millis(last_end - *first) / 1000.0;
        Ok(json!({
            "scenario": "map",
            "tasks": mapped.len(),
            "workers": 4,
            "slots_per_worker": 4,
            "upstream_end_to_first_start_s": round(millis(*first - upstream_end) / 1000.0),
            "upstream_end_to_last_start_s": round(millis(*last_start - upstream_end) / 1000.0),
            "seconds": round(seconds),
            "tasks_per_s": round(mapped.len() as f64 / seconds.max(0.001)),
        }))
    }

    /// Many reschedule-mode sensors on 2 workers × 2 slots, true 5 s after the trigger: seconds from the run's
    /// start to the last sensor's end (Airflow's poke mode would hold one slot per sensor).
    async fn sensors(&self) -> anyhow::Result<Value> {
        let (run, tis) = self.run_with_workers("bench_sensors", 2, 2).await?;
        let Some(started) = time(&run["start_date"]) else { bail!("the sensors' run recorded no start") };
        let ends: Vec<DateTime<Utc>> = tis.iter().filter_map(|t| time(&t["end_date"])).collect();
        let succeeded = tis.iter().filter(|t| t["state"] == "success").count();
        let Some(last) = ends.iter().max() else { bail!("sensors recorded no task times") };
        Ok(json!({
            "scenario": "sensors",
            "sensors": tis.len(),
            "succeeded": succeeded,
            "workers": 2,
            "slots_per_worker": 2,
            "condition_true_after_s": 5,
            "run_start_to_last_end_s": round(millis(*last - started) / 1000.0),
        }))
    }

    /// A DAG of 10,000 tasks: parsed as the DAG folder's reader parses it, its run (and its 10,000 task
    /// instances, the first layer queued) created by the trigger's one transaction, then run.
    async fn dag10k(&self) -> anyhow::Result<Value> {
        let path = self.deployment.dags.join("dag10k.yaml");
        let source = std::fs::read_to_string(&path)?;
        let parsing = std::time::Instant::now();
        let dag = sluice_core::load_dag("dag10k.yaml", &source)
            .map_err(|errors| anyhow::anyhow!("the dag10k DAG does not load: {errors:?}"))?;
        let parse_s = parsing.elapsed().as_secs_f64();
        let edges: usize = dag.spec.tasks.iter().map(|t| t.depends_on.len()).sum();
        self.wait_for_dag("bench_dag10k").await?;
        let ran = self.measured_run("bench_dag10k", 4, 4).await?;
        let tis = &ran.task_instances;
        let starts = tis.iter().filter_map(|t| time(&t["start_date"]));
        let ends = tis.iter().filter_map(|t| time(&t["end_date"]));
        let (Some(first), Some(last)) = (starts.min(), ends.max()) else { bail!("dag10k recorded no task times") };
        let seconds = millis(last - first) / 1000.0;
        Ok(json!({
            "scenario": "dag10k",
            "tasks": tis.len(),
            "edges": edges,
            "parse_s": round3(parse_s),
            "create_run_s": round3(ran.trigger_s),
            "workers": 4,
            "slots_per_worker": 4,
            "seconds": round(seconds),
            "tasks_per_s": round(tis.len() as f64 / seconds.max(0.001)),
            "server_peak_rss_mib": round(scratch::memory_kib("VmHWM")? as f64 / 1024.0),
            "worker_peak_rss_mib": round(ran.worker_peak_rss_kib as f64 / 1024.0),
        }))
    }

    async fn trigger(&self, count: usize) -> anyhow::Result<Value> {
        let children = self.spawn_workers(1, 4)?;
        // Let the worker connect and start long-polling, as a deployed fleet would be.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let progress = indicatif::ProgressBar::new(count as u64).with_message("trigger");
        let mut latencies = Vec::with_capacity(count);
        for _ in 0..count {
            let sent = Utc::now();
            let run_id = self.trigger_run("bench_trigger").await?;
            self.wait_run("bench_trigger", &run_id, &indicatif::ProgressBar::hidden()).await?;
            let tis = self.task_instances("bench_trigger", &run_id).await?;
            if let Some(start) = tis.first().and_then(|t| time(&t["start_date"])) {
                latencies.push(millis(start - sent));
            }
            progress.inc(1);
        }
        progress.finish_and_clear();
        stop_processes(children).await;
        Ok(json!({
            "scenario": "trigger",
            "runs": latencies.len(),
            "trigger_to_start_ms_p50": percentile(&latencies, 0.50),
            "trigger_to_start_ms_p95": percentile(&latencies, 0.95),
        }))
    }
}

impl Bench {
    /// Latency of the two heaviest reads: a page of 100 DAGs out of many, and every task instance of a wide run.
    async fn api_reads(&self, args: &Args) -> anyhow::Result<Value> {
        self.wait_for_dag("bench_wide").await?;
        let expected = args.api_dags + 4;
        loop {
            let page = self.api(reqwest::Method::GET, "/dags?limit=1", None).await?;
            if page["total_entries"].as_u64().is_some_and(|n| n as usize >= expected) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The DAG stays paused, so the run keeps all its task instances without any worker.
        let run_id = self.trigger_run("bench_wide").await?;
        let tis_path = format!("/dags/bench_wide/dagRuns/{run_id}/taskInstances?limit={}", args.api_tasks);
        let mut figures = serde_json::Map::new();
        figures.insert("scenario".into(), json!("api"));
        for (name, path) in [("dags_limit_100", "/dags?limit=100".to_string()), ("task_instances", tis_path)] {
            let mut latencies = Vec::with_capacity(args.api_requests);
            for _ in 0..args.api_requests {
                let sent = std::time::Instant::now();
                self.api(reqwest::Method::GET, &path, None).await?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            figures.insert(format!("{name}_ms_p50"), json!(percentile(&latencies, 0.50)));
            figures.insert(format!("{name}_ms_p95"), json!(percentile(&latencies, 0.95)));
        }
        figures.insert("dags".into(), json!(args.api_dags));
        figures.insert("task_instances".into(), json!(args.api_tasks));
        Ok(Value::Object(figures))
    }
}

/// A benchmark run, its task instances, and what the database's times do not tell.
struct MeasuredRun {
    run: Value,
    task_instances: Vec<Value>,
    /// The trigger request, from sending it to its answer: the run and its task instances are created by then.
    trigger_s: f64,
    /// The largest peak resident set of the run's workers.
    worker_peak_rss_kib: u64,
}

async fn stop_processes(children: Vec<Child>) {
    for mut child in children {
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

fn millis(d: chrono::Duration) -> f64 {
    d.num_microseconds().map_or(f64::MAX, |us| us as f64 / 1000.0)
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Nearest-rank percentile.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(round(sorted[rank - 1]))
}
