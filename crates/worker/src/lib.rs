//! Sluice's worker: lease → run → report, over HTTP only.
//!
//! [`run_worker`] is the whole loop: long-poll the server for as many tasks as there are free slots, run each leased
//! try in its own tokio task (see `task.rs`), and repeat. Workers never touch the database; everything goes through
//! the `/worker/v1` protocol of `sluice_core::protocol`.
//!
//! Code map:
//! - `lib.rs` (here): configuration, the lease loop, shutdown.
//! - `task.rs`: one try from spawn to report: heartbeats, timeout, cancel, kill.
//! - `process.rs`: spawning the child in its own process group and killing that group.
//! - `guard.rs`: the guard process that kills the tasks' groups should the worker die.
//! - `logs.rs`: reading stdout/stderr and posting log batches.
//! - `output.rs`: the task's outputs (`$SLUICE_OUTPUT` file, `::output::` lines, `$SLUICE_OUTPUT_DIR`), and the
//!   lake for those too big for the database.
//! - `client.rs`: the HTTP calls.
//! - `ca.rs`: trusting a private CA's certificate for an HTTPS server.
//!
//! Shutdown: when the `shutdown` future resolves, the worker stops leasing at once (an in-flight long poll is
//! dropped), lets running tries finish for up to `grace`, then kills the rest and reports them failed.

mod ca;
mod client;
mod guard;
mod logs;
mod output;
mod process;
mod task;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::protocol::LeaseRequest;
use sluice_core::xcom::LakeObjects;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::client::{Backoff, Client, ClientError};
use crate::task::{TryContext, run_try};

pub use crate::ca::{CaCertError, trust_ca_cert};
pub use crate::guard::{TASK_GUARD_COMMAND, run_guard};
pub use crate::output::{MAX_OUTPUT_BYTES, OUTPUT_MARKER};

/// How a worker runs; the `sluice worker` flags map onto these fields.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080` or `https://sluice.internal`.
    pub server: String,
    /// A PEM file of CA certificates trusted for an `https://` server besides the public web's CAs: a private CA's.
    pub ca_cert: Option<PathBuf>,
    /// The shared secret of `SLUICE_WORKER_TOKEN`.
    pub token: String,
    /// The name the worker announces in leases (shown in the dashboard).
    pub name: String,
    pub queues: Vec<String>,
    /// How many tries may run at once.
    pub slots: u32,
    /// On shutdown, how long running tries may go on before they are killed.
    pub grace: Duration,
    /// When killing a try, the delay between SIGTERM and SIGKILL to its process group.
    pub kill_grace: Duration,
    /// How long a lease request may wait on the server for a task to come (`wait_ms`).
    pub poll_wait: Duration,
    /// Environment variables every task gets beneath what its lease gives it: how a worker that is not a process of
    /// its own (`sluice dags test`) passes its DAG folder and lake to its tasks.
    pub task_env: BTreeMap<String, String>,
    /// The most bytes of a try's own output (stdout and stderr) kept in its log; the rest is cut, with a note.
    pub max_log_bytes: u64,
    /// The lake (the server's), where a try's outputs too big for the database are written before the report;
    /// without it such an output fails the try.
    pub lake: Option<Arc<dyn LakeObjects>>,
}

/// `WorkerConfig::max_log_bytes` unless configured: enough for any log a person reads, far from what fills a disk.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 100 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the server at {server} rejected the worker token (401): check SLUICE_WORKER_TOKEN")]
    WrongToken { server: String },
    #[error("invalid worker configuration: {0}")]
    Config(String),
    #[error("could not set up the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    CaCert(#[from] CaCertError),
    #[error("could not start the task guard (`sluice {TASK_GUARD_COMMAND}`): {0}")]
    Guard(std::io::Error),
    #[error("could not create the folder for task outputs: {0}")]
    OutputDir(std::io::Error),
}

/// Runs until `shutdown` resolves, then stops taking work, lets running tasks finish within `grace`, kills the rest
/// (and reports them failed), and returns `Ok`. Returns an error at once when the server rejects the token.
pub async fn run_worker(config: WorkerConfig, shutdown: impl Future<Output = ()> + Send) -> Result<(), WorkerError> {
    check(&config)?;
    let mut http = reqwest::Client::builder();
    if let Some(path) = &config.ca_cert {
        http = trust_ca_cert(http, path)?;
    }
    let client = Client::new(&config.server, &config.token, http)?;
    let guard = std::env::current_exe().and_then(guard::start_guard).map_err(WorkerError::Guard)?;
    let output_dir = output::create_output_dir(&guard.instance).map_err(WorkerError::OutputDir)?;
    let (kill_all, kill_rx) = watch::channel(false);
    let ctx = TryContext {
        client: client.clone(),
        kill_grace: config.kill_grace,
        kill_all: kill_rx,
        guard,
        output_dir: output_dir.clone(),
        task_env: Arc::new(config.task_env.clone()),
        max_log_bytes: config.max_log_bytes,
        lake: config.lake.clone(),
    };
    let mut tries = JoinSet::new();
    tracing::info!(server = %config.server, queues = ?config.queues, slots = config.slots, "worker started");

    let result = lease_loop(&config, &client, &ctx, &mut tries, shutdown).await;
    let grace = if result.is_ok() { config.grace } else { Duration::ZERO };
    drain(&mut tries, grace, &kill_all).await;
    if let Err(e) = std::fs::remove_dir_all(&output_dir) {
        tracing::warn!("could not remove {}: {e}", output_dir.display());
    }
    tracing::info!("worker stopped");
    result
}

fn check(config: &WorkerConfig) -> Result<(), WorkerError> {
    if config.slots == 0 {
        return Err(WorkerError::Config("slots must be at least 1".into()));
    }
    if config.queues.is_empty() {
        return Err(WorkerError::Config("the worker needs at least one queue".into()));
    }
    Ok(())
}

/// Leases and starts tries until `shutdown` resolves (`Ok`) or the token is rejected (`Err`).
async fn lease_loop(
    config: &WorkerConfig,
    client: &Client,
    ctx: &TryContext,
    tries: &mut JoinSet<()>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), WorkerError> {
    tokio::pin!(shutdown);
    let mut backoff = Backoff::new();
    loop {
        reap(tries);
        let free = config.slots.saturating_sub(tries.len() as u32);
        if free == 0 {
            // Every slot is busy: wait for a try to end rather than ask for work we could not take.
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                Some(joined) = tries.join_next() => log_join(joined),
            }
            continue;
        }
        let request = lease_request(config, free);
        let started = tokio::time::Instant::now();
        let answer = tokio::select! {
            () = &mut shutdown => return Ok(()),
            answer = client.lease(&request) => answer,
        };
        let pause = match answer {
            Ok(leased) => {
                backoff.reset();
                let empty = leased.tasks.is_empty();
                for task in leased.tasks {
                    tries.spawn(run_try(ctx.clone(), task));
                }
                // A server that answers "nothing" at once must not make the worker spin.
                (empty && started.elapsed() < MIN_EMPTY_POLL).then_some(MIN_EMPTY_POLL)
            }
            Err(ClientError::Unauthorized) => {
                return Err(WorkerError::WrongToken { server: config.server.clone() });
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!("lease failed, retrying in {delay:?}: {e}");
                Some(delay)
            }
        };
        if let Some(pause) = pause {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// The shortest time between two lease requests that both came back empty.
const MIN_EMPTY_POLL: Duration = Duration::from_millis(50);

fn lease_request(config: &WorkerConfig, slots: u32) -> LeaseRequest {
    LeaseRequest {
        worker: config.name.clone(),
        hostname: hostname(),
        queues: config.queues.clone(),
        slots,
        wait_ms: u64::try_from(config.poll_wait.as_millis()).unwrap_or(u64::MAX),
        capacity: Some(config.slots),
    }
}

fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|name| name.into_string().ok()).unwrap_or_else(|| "unknown".to_owned())
}

/// Collects the tries that ended, so that their slots count as free.
fn reap(tries: &mut JoinSet<()>) {
    while let Some(joined) = tries.try_join_next() {
        log_join(joined);
    }
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        // A panic in one try must not take the worker down; its child died with it (kill_on_drop).
        tracing::error!("a task try crashed: {e}");
    }
}

/// Lets running tries finish for up to `grace`, then tells the rest to kill their process groups and report, and
/// waits for them to have done so.
async fn drain(tries: &mut JoinSet<()>, grace: Duration, kill_all: &watch::Sender<bool>) {
    if tries.is_empty() {
        return;
    }
    tracing::info!("waiting up to {grace:?} for {} running task(s) to finish", tries.len());
    let finish = async {
        while let Some(joined) = tries.join_next().await {
            log_join(joined);
        }
    };
    if tokio::time::timeout(grace, finish).await.is_ok() {
        return;
    }
    tracing::warn!("killing {} task(s) still running after the shutdown grace", tries.len());
    kill_all.send_replace(true);
    while let Some(joined) = tries.join_next().await {
        log_join(joined);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkerConfig {
        WorkerConfig {
            server: "http://127.0.0.1:9".into(),
            ca_cert: None,
            token: "t".into(),
            name: "w1".into(),
            queues: vec!["default".into()],
            slots: 2,
            grace: Duration::from_secs(1),
            kill_grace: Duration::from_secs(1),
            poll_wait: Duration::from_secs(20),
            task_env: BTreeMap::new(),
            max_log_bytes: 1 << 20,
            lake: None,
        }
    }

    #[test]
    fn the_lease_request_asks_for_the_free_slots_only() {
        let request = lease_request(&config(), 1);
        assert_eq!((request.slots, request.wait_ms), (1, 20_000));
        assert_eq!(request.queues, ["default"]);
        assert!(!request.hostname.is_empty());
    }

    #[tokio::test]
    async fn zero_slots_is_a_configuration_error() {
        let err = run_worker(WorkerConfig { slots: 0, ..config() }, async {}).await.expect_err("0 slots");
        assert!(matches!(err, WorkerError::Config(_)), "{err}");
    }

    #[tokio::test]
    async fn shutdown_stops_a_worker_that_cannot_reach_its_server() {
        // Port 9 (discard) is closed: the worker backs off and retries until shutdown, which must end it promptly.
        let shutdown = tokio::time::sleep(Duration::from_millis(300));
        let stopped = tokio::time::timeout(Duration::from_secs(5), run_worker(config(), shutdown)).await;
        assert!(matches!(stopped, Ok(Ok(()))), "{stopped:?}");
    }
}
