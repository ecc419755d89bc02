//! The engine: every decision about runs and task instances, each made inside one store transaction.

mod alerts;
mod backfill;
mod data_env;
mod evaluate;
mod logs;
mod manage;
mod masking;
mod models;
mod runs;
mod tasks;
mod xcom;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_core::masking::SensitiveKeys;
use sluice_core::xcom::LakeObjects;
use sluice_store::Store;
use tokio::sync::Notify;
use uuid::Uuid;

pub use backfill::{BackfillOutcome, BackfillRequest, MAX_BACKFILL_RUNS, Reprocess};
pub use logs::MovePass;
pub use manage::TaskSelection;
pub use runs::TriggerRequest;

use crate::cache::{DagCache, RunCache};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a claimed task stays leased without a heartbeat.
    pub lease: Duration,
    /// How long a lease request waits for work at most (the worker asks for less or equal).
    pub max_poll_wait: Duration,
    /// Which variable and `extra` keys hold secrets, masked in what tasks log, output and show.
    pub sensitive: SensitiveKeys,
    /// The OpenLineage namespace of this deployment's jobs; the engine records lineage events only when it is set.
    pub lineage_namespace: Option<String>,
    /// Where ended runs and tries go as trace spans (OpenTelemetry), if anywhere.
    pub traces: Option<Arc<dyn TraceSink>>,
}

/// A run or a try that ended, as a span from its start to its end.
#[derive(Debug, Clone)]
pub struct EndedSpan<'a> {
    pub dag_id: &'a str,
    pub run_id: &'a str,
    /// The run's id: every span of a run shares it.
    pub run_pk: Uuid,
    /// For a try: its task, map index, number and id (its lease's).
    pub task: Option<(&'a str, i64, i64, Uuid)>,
    pub state: &'a str,
    pub error: Option<&'a str>,
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
}

/// Receives the spans of ended runs and tries; it must not block, as it is told inside the decision.
pub trait TraceSink: std::fmt::Debug + Send + Sync {
    fn ended(&self, span: &EndedSpan<'_>);
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lease: Duration::from_secs(30),
            max_poll_wait: Duration::from_secs(30),
            sensitive: SensitiveKeys::default(),
            lineage_namespace: None,
            traces: None,
        }
    }
}

/// Shared by the scheduler loop and the API; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    dags: DagCache,
    runs: RunCache,
    config: EngineConfig,
    /// Signalled whenever a transaction that queued task instances commits (the store raises it), to wake
    /// long-polling workers at once.
    work_queued: Arc<Notify>,
    /// Set when the server shuts down, so long-polls answer at once instead of holding the shutdown up.
    stopping: Arc<AtomicBool>,
    /// When each worker was last recorded as seen, so that a busy worker's leases do not write it every time.
    workers_seen: Arc<Mutex<HashMap<String, Instant>>>,
    /// The runs this process is settling after a leaf task's end, and whether another end asked for one more pass
    /// meanwhile (see `Engine::settle_run`).
    settling: Arc<Mutex<HashMap<Uuid, bool>>>,
    /// The run and task of each lease this process handed out and not yet seen reported, so that a report needs
    /// no lookup before its transaction. A report to another server, or after a restart, looks them up instead.
    leases: Arc<Mutex<HashMap<Uuid, (Uuid, String)>>>,
    /// Where outputs above the database's limit are kept, read back for templates, mapping and branching.
    lake: xcom::Lake,
}

/// A worker is recorded as seen at most this often (health checks allow 30 s).
const WORKER_SEEN_EVERY: Duration = Duration::from_secs(5);

impl Engine {
    pub fn new(store: Store, config: EngineConfig) -> Engine {
        Engine {
            work_queued: store.work_signal(),
            store,
            dags: DagCache::default(),
            runs: RunCache::default(),
            config,
            stopping: Arc::default(),
            workers_seen: Arc::default(),
            settling: Arc::default(),
            leases: Arc::default(),
            lake: None,
        }
    }

    /// The engine, reading outputs above the database's limit from `lake` (the workers' lake).
    pub fn with_lake(self, lake: Arc<dyn LakeObjects>) -> Engine {
        Engine { lake: Some(lake), ..self }
    }

    /// Where outputs above the database's limit are kept, if this process knows.
    pub fn lake(&self) -> Option<&dyn LakeObjects> {
        self.lake.as_deref()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn dags(&self) -> &DagCache {
        &self.dags
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Whether a worker's visit is worth writing down now.
    fn worker_due_for_touch(&self, worker: &str) -> bool {
        let Ok(mut seen) = self.workers_seen.lock() else { return true };
        let now = Instant::now();
        match seen.get(worker) {
            Some(last) if now.duration_since(*last) < WORKER_SEEN_EVERY => false,
            _ => {
                seen.insert(worker.to_string(), now);
                true
            }
        }
    }

    /// Ends every pending long-poll with an empty answer; called when the server shuts down.
    pub fn stop_waiting(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.work_queued.notify_waiters();
    }

    /// Whether the server is shutting down: long-lived answers (long-polls, event streams) end.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Wakes this process's long-polls whenever another process queues work (PostgreSQL `LISTEN`); runs until
    /// the process ends.
    pub async fn listen_for_work(&self, database_url: &str) {
        let work_queued = self.work_queued.clone();
        self.store.listen_for_work(database_url, move || work_queued.notify_waiters()).await;
    }
}
