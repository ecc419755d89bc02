//! `sluice`: one binary for every Sluice process and the command line.
//!
//! Settings come from flags, then `SLUICE_*` environment variables, then `sluice.toml`, then defaults.

mod commands;
mod config;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{assets, bench, dags, db, run_op, server, standalone, worker};

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
    /// Database administration.
    #[command(subcommand)]
    Db(db::Command),
    /// Validate, list, trigger and test DAGs.
    #[command(subcommand)]
    Dags(dags::Command),
    /// The data catalog: assets, their events and lineage.
    #[command(subcommand)]
    Assets(assets::Command),
    /// Measure latency and throughput on a fresh database with real worker processes.
    Bench(bench::Args),
    /// Run one built-in data task; workers start this for ingest, quality and transform tasks.
    #[command(name = "run-op", hide = true)]
    RunOp(run_op::Args),
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
    let quiet = matches!(cli.command, Command::Bench(_) | Command::Dags(_) | Command::Assets(_) | Command::RunOp(_));
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
            Command::Db(cmd) => db::run(cmd).await,
            Command::Dags(cmd) => dags::run(cmd).await,
            Command::Assets(cmd) => assets::run(cmd).await,
            Command::Bench(args) => bench::run(args).await,
            Command::RunOp(args) => run_op::run(args).await,
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
            ExitCode::FAILURE
        }
    }
}
