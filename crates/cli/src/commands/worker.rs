//! `sluice worker`: lease tasks from a server over HTTP and run them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sluice_ops::Lake;
use sluice_worker::{DEFAULT_MAX_LOG_BYTES, WorkerConfig, run_worker};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// The server to lease tasks from.
    #[arg(long, env = "SLUICE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// A PEM file of the CA that signed an `https://` server's certificate, trusted besides the public web's CAs.
    #[arg(long, env = "SLUICE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Shared secret, the same as the server's.
    #[arg(long, env = "SLUICE_WORKER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Queues to take tasks from, comma-separated.
    #[arg(long, env = "SLUICE_WORKER_QUEUES", value_delimiter = ',', default_value = "default")]
    pub queues: Vec<String>,
    /// Tasks run at the same time.
    #[arg(long, env = "SLUICE_WORKER_SLOTS", default_value_t = 4)]
    pub slots: u32,
    /// Name shown in the API and logs (default: host name and process id).
    #[arg(long, env = "SLUICE_WORKER_NAME")]
    pub name: Option<String>,
    /// Seconds running tasks may take to finish after SIGTERM before they are killed.
    #[arg(long, env = "SLUICE_WORKER_GRACE", default_value_t = 30)]
    pub grace: u64,
    /// Seconds between SIGTERM and SIGKILL when a task's process group is killed (e.g. on execution_timeout).
    #[arg(long, env = "SLUICE_WORKER_KILL_GRACE", default_value_t = 5)]
    pub kill_grace: u64,
    /// The most bytes of a task's output one try's log keeps; the rest is cut, with a note.
    #[arg(long, env = "SLUICE_MAX_LOG_BYTES", default_value_t = DEFAULT_MAX_LOG_BYTES)]
    pub max_log_bytes: u64,
    /// The server's lake (a folder or `s3://bucket/prefix`): task outputs above 64 KiB are written there. Data
    /// tasks read it from the same variable.
    #[arg(long, env = "SLUICE_LAKE")]
    pub lake: Option<String>,
}

impl Args {
    pub fn config(&self) -> anyhow::Result<WorkerConfig> {
        let token =
            self.token.clone().context("no worker token: set SLUICE_WORKER_TOKEN to the server's worker token")?;
        if self.slots == 0 {
            anyhow::bail!("--slots must be at least 1");
        }
        Ok(WorkerConfig {
            server: self.server.trim_end_matches('/').to_string(),
            ca_cert: self.ca_cert.clone(),
            token,
            name: self.name.clone().unwrap_or_else(|| format!("{}-{}", super::server::hostname(), std::process::id())),
            queues: self.queues.clone(),
            slots: self.slots,
            grace: Duration::from_secs(self.grace),
            kill_grace: Duration::from_secs(self.kill_grace),
            poll_wait: Duration::from_secs(20),
            task_env: Default::default(),
            max_log_bytes: self.max_log_bytes,
            lake: match &self.lake {
                Some(location) => Some(Arc::new(Lake::open(location)?)),
                None => None,
            },
        })
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    tracing::info!(name = %config.name, server = %config.server, queues = ?config.queues, slots = config.slots, "worker starting");
    run_worker(config, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Clone, Debug)]
pub struct GuardArgs {
    /// The mark (`SLUICE_WORKER_INSTANCE`) of the worker's tasks.
    #[arg(long)]
    pub instance: String,
}

/// `sluice task-guard` (hidden): started by each worker; waits until the worker is gone, then kills what is left
/// of its tasks.
pub fn guard(args: &GuardArgs) -> ExitCode {
    let killed = sluice_worker::run_guard(&args.instance);
    if killed > 0 {
        tracing::warn!("the worker is gone: killed {killed} task process group(s) it left behind");
    }
    ExitCode::SUCCESS
}
