//! `sluice`: one binary for every Sluice process and the command line.
//!
//! Settings come from flags, then `SLUICE_*` environment variables, then `sluice.toml`, then defaults.

mod commands;
mod config;
mod https;
mod telemetry;
mod traces;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{
    assets, backfill, bench, dags, db, models, remote, run_op, server, standalone, users, worker, worker_tokens,
};

#[derive(Parser)]
#[command(name = "sluice", version, about = "Sluice: a fast, simple DAG workflow orchestrator")]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "SLUICE_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one command: SQLite, server, scheduler and worker processes; the dashboard on localhost.
    Standalone(standalone::Args),
    /// The REST API, worker API and dashboard; runs the scheduler loop too unless --no-scheduler.
    Server(server::ServerArgs),
    /// The scheduler loop alone (several may run against one PostgreSQL).
    Scheduler(server::SchedulerArgs),
    /// A worker: leases tasks from the server over HTTP and runs them.
    Worker(worker::Args),
    /// Real-time predictions from the model registry, apart from the server (scale it out behind a load balancer).
    Serve(server::ServeArgs),
    /// Database administration.
    #[command(subcommand)]
    Db(db::Command),
    /// Seal every secret in the database again with the first key of SLUICE_ENCRYPTION_KEY (`new,old`).
    RotateKey(db::RotateKeyArgs),
    /// Create, list and delete the users who sign in to the REST API.
    #[command(subcommand)]
    Users(users::Command),
    /// Create, list and revoke named worker tokens (each worker, or group, with its own).
    #[command(subcommand)]
    WorkerTokens(worker_tokens::Command),
    /// Validate, list, trigger and test DAGs.
    #[command(subcommand)]
    Dags(dags::Command),
    /// Run a DAG for past dates of its schedule, with a progress bar until every run has finished.
    Backfill(backfill::Args),
    /// Sign in to a server; later commands against it send the token.
    Login(remote::LoginArgs),
    /// List, show, clear and mark DAG runs.
    #[command(subcommand)]
    Runs(remote::RunsCommand),
    /// List task instances, read or follow their logs, clear them.
    #[command(subcommand)]
    Tasks(remote::TasksCommand),
    /// Variables that templates read as `var.value.<key>`.
    #[command(subcommand)]
    Variables(remote::ConfigCommand),
    /// Connections to outside systems.
    #[command(subcommand)]
    Connections(remote::ConfigCommand),
    /// Pools of slots shared by tasks.
    #[command(subcommand)]
    Pools(remote::ConfigCommand),
    /// The data catalog: assets, their events and lineage.
    #[command(subcommand)]
    Assets(assets::Command),
    /// The model registry: versions, stages, predictions.
    #[command(subcommand)]
    Models(models::Command),
    /// Measure latency and throughput on a fresh database with real worker processes.
    Bench(bench::Args),
    /// Run one built-in data task; workers start this for ingest, quality and transform tasks.
    #[command(name = "run-op", hide = true)]
    RunOp(run_op::Args),
    /// Kill a worker's tasks should the worker die; each worker starts one.
    #[command(name = sluice_worker::TASK_GUARD_COMMAND, hide = true)]
    TaskGuard(worker::GuardArgs),
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    if let Err(e) = config::load_config_file() {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    // A benchmark prints its figures on stdout; per-task log lines would drown them.
    let quiet = !matches!(
        cli.command,
        Command::Standalone(_) | Command::Server(_) | Command::Scheduler(_) | Command::Worker(_) | Command::Serve(_)
    );
    telemetry::init(cli.log_json, if quiet { "warn" } else { "info" });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Standalone(args) => standalone::run(args).await,
            Command::Server(args) => server::run_server(args).await,
            Command::Scheduler(args) => server::run_scheduler_only(args).await,
            Command::Worker(args) => worker::run(args).await,
            Command::Serve(args) => server::run_serve(args).await,
            Command::Db(cmd) => db::run(cmd).await,
            Command::RotateKey(args) => db::rotate_key(args).await,
            Command::Dags(cmd) => dags::run(cmd).await,
            Command::Backfill(args) => backfill::run(args).await,
            Command::Login(args) => remote::login(args).await,
            Command::Runs(cmd) => remote::runs(cmd).await,
            Command::Tasks(cmd) => remote::tasks(cmd).await,
            Command::Variables(cmd) => remote::variables(cmd).await,
            Command::Connections(cmd) => remote::connections(cmd).await,
            Command::Pools(cmd) => remote::pools(cmd).await,
            Command::Users(cmd) => users::run(cmd).await,
            Command::WorkerTokens(cmd) => worker_tokens::run(cmd).await,
            Command::Assets(cmd) => assets::run(cmd).await,
            Command::Models(cmd) => models::run(cmd).await,
            Command::Bench(args) => bench::run(args).await,
            Command::RunOp(args) => run_op::run(args).await,
            Command::TaskGuard(args) => Ok(worker::guard(&args)),
            Command::Version => {
                println!("sluice {}", env!("CARGO_PKG_VERSION"));
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            // Usage errors exit 2, like clap's own; an operation that failed exits 1.
            if e.downcast_ref::<commands::client::UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
