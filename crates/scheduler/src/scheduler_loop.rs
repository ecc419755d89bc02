//! The scheduler loop: sync the DAG folder, create due runs, expire lost leases, move active runs forward.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::Engine;
use crate::sync::DagFolder;

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
/// not stop scheduling.
pub async fn run_scheduler(engine: Engine, config: SchedulerConfig, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut folder = DagFolder::new(config.dags_folder.clone());
    let mut ticker = tokio::time::interval(config.tick);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next_sync = Instant::now();
    tracing::info!(dags_folder = %config.dags_folder.display(), "scheduler started");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        if Instant::now() >= next_sync {
            let parse = Instant::now();
            if let Err(e) = folder.sync(engine.store()).await {
                tracing::error!(error = %e, "DAG folder sync failed");
            }
            metrics::histogram!("sluice_dag_folder_parse_duration_seconds").record(parse.elapsed().as_secs_f64());
            // Rare (a server stopped right after a drifted report's commit): as often as the DAG folder is read.
            if let Err(e) = engine.start_pending_retraining().await {
                tracing::error!(error = %e, "starting pending retraining runs failed");
            }
            next_sync = Instant::now() + config.dag_sync_interval;
        }
        let pass = Instant::now();
        one_pass(&engine, &config).await;
        metrics::histogram!("sluice_scheduler_loop_duration_seconds").record(pass.elapsed().as_secs_f64());
    }
    tracing::info!("scheduler stopped");
}

async fn one_pass(engine: &Engine, config: &SchedulerConfig) {
    let now = Utc::now();
    if let Err(e) = engine.store().scheduler_heartbeat(&config.scheduler_id, &config.hostname).await {
        tracing::error!(error = %e, "scheduler heartbeat failed");
    }
    if let Err(e) = engine.create_scheduled_runs(now).await {
        tracing::error!(error = %e, "creating scheduled runs failed");
    }
    if let Err(e) = engine.expire_leases(now).await {
        tracing::error!(error = %e, "expiring leases failed");
    }
    if let Err(e) = engine.schedule_active_runs(now).await {
        tracing::error!(error = %e, "scheduling active runs failed");
    }
}
