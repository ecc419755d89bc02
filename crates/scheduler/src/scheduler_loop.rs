//! The scheduler loop: sync the DAG folder, create due runs, expire lost leases, move active runs forward.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use tokio::time::{Instant, MissedTickBehavior};

use sluice_store::Outage;

use crate::sync::DagFolder;
use crate::{Engine, EngineError};

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub dags_folder: PathBuf,
    /// How often the loop runs.
    pub tick: Duration,
    /// How often the DAG folder is read again.
    pub dag_sync_interval: Duration,
    /// Names this scheduler in heartbeats (health checks).
    pub scheduler_id: String,
    pub hostname: String,
}

/// Runs until `shutdown` resolves. Errors of one pass are logged and the loop goes on: a database hiccup must
/// not stop scheduling. While the database cannot be reached the loop waits with growing pauses (see
/// [`Outage`]), and once it is back it expires no lease for one lease period (see [`Database::reached`]).
pub async fn run_scheduler(engine: Engine, config: SchedulerConfig, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut folder = DagFolder::new(config.dags_folder.clone());
    let mut ticker = tokio::time::interval(config.tick);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next_sync = Instant::now();
    let mut db =
        Database { outage: Outage::new("scheduler"), expire_from: Instant::now(), lease: engine.config().lease };
    tracing::info!(dags_folder = %config.dags_folder.display(), "scheduler started");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let pass = Instant::now();
        let pause = match one_pass(&engine, &config, &mut folder, &mut next_sync, &mut db).await {
            Ok(()) => None,
            Err(e) => Some(db.outage.down(&e)),
        };
        metrics::histogram!("sluice_scheduler_loop_duration_seconds").record(pass.elapsed().as_secs_f64());
        if let Some(pause) = pause {
            tokio::select! {
                _ = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
    tracing::info!("scheduler stopped");
}

/// The loop's view of its database.
struct Database {
    outage: Outage,
    /// Leases are expired from this instant on.
    expire_from: Instant,
    lease: Duration,
}

impl Database {
    /// The database answered. If it was away, workers could not extend their leases meanwhile (their server
    /// answered 503), though their tasks ran on: they get one lease period to heartbeat again before any lease
    /// is expired, so that an outage longer than a lease does not fail every running try as lost.
    fn reached(&mut self) {
        if self.outage.reached().is_some() {
            self.expire_from = Instant::now() + self.lease;
        }
    }

    /// Logs `error` of `step`, unless it is the database being away: that one ends the pass (`Err`), and the loop
    /// logs it once.
    fn failed(&self, step: &str, error: EngineError) -> Result<(), EngineError> {
        if error.is_unavailable() {
            return Err(error);
        }
        tracing::error!(error = %error, "{step} failed");
        Ok(())
    }
}

/// One pass; `Err` when the database could not be reached, which ends it early.
async fn one_pass(
    engine: &Engine,
    config: &SchedulerConfig,
    folder: &mut DagFolder,
    next_sync: &mut Instant,
    db: &mut Database,
) -> Result<(), EngineError> {
    let now = Utc::now();
    // The first statement of the pass, so that a database just back is noticed before any lease is expired.
    match engine.store().scheduler_heartbeat(&config.scheduler_id, &config.hostname).await {
        Ok(()) => db.reached(),
        Err(e) => db.failed("scheduler heartbeat", e.into())?,
    }
    if Instant::now() >= *next_sync {
        let parse = Instant::now();
        if let Err(e) = folder.sync(engine.store()).await {
            db.failed("DAG folder sync", e)?;
        }
        metrics::histogram!("sluice_dag_folder_parse_duration_seconds").record(parse.elapsed().as_secs_f64());
        // Rare (a server stopped right after a drifted report's commit): as often as the DAG folder is read.
        if let Err(e) = engine.start_pending_retraining().await {
            db.failed("starting pending retraining runs", e)?;
        }
        *next_sync = Instant::now() + config.dag_sync_interval;
    }
    if let Err(e) = engine.create_scheduled_runs(now).await {
        db.failed("creating scheduled runs", e)?;
    }
    if Instant::now() >= db.expire_from
        && let Err(e) = engine.expire_leases(now).await
    {
        db.failed("expiring leases", e)?;
    }
    if let Err(e) = engine.schedule_active_runs(now).await {
        db.failed("scheduling active runs", e)?;
    }
    Ok(())
}
