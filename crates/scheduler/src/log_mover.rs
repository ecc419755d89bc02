//! The log mover: with task logs kept in the lake, it moves the lines of tries that have ended from the database
//! to the lake (see [`Engine::move_ended_logs`]), so that the `task_logs` table holds only what running tries write.
//!
//! It runs beside the scheduler loop in every server and scheduler process started with `SLUICE_LOG_STORE=lake`,
//! on its own task. Tries are taken with a hold (see `Store::take_logs_to_move`), so several movers share the work;
//! a mover that stops half-way leaves its tries to another once their hold ends, and nothing is lost meanwhile:
//! the lines stay in the database until the commit that records their object. While the database cannot be
//! reached the mover waits for it with growing pauses, saying so once.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use sluice_store::Outage;

use crate::Engine;

#[derive(Debug, Clone)]
pub struct LogMoverConfig {
    /// How long after a try's end its lines are moved: a worker's last batch of lines that raced the end still
    /// lands in the database first.
    pub after: Duration,
    /// How often ended tries are looked for.
    pub poll: Duration,
    /// Tries taken at once, moved side by side.
    pub batch: i64,
    /// How long a taken try is left to its mover before another may take it over.
    pub hold: Duration,
}

impl Default for LogMoverConfig {
    fn default() -> Self {
        LogMoverConfig {
            after: Duration::from_secs(2),
            poll: Duration::from_secs(1),
            batch: 16,
            hold: Duration::from_secs(300),
        }
    }
}

/// Moves the logs of ended tries to the lake until `shutdown` completes.
pub async fn run_log_mover(engine: Engine, config: LogMoverConfig, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut outage = Outage::new("log mover");
    let mut pause = config.poll;
    tracing::info!("moving the logs of ended tries to the lake");
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(pause) => {}
        }
        let ended_before = Utc::now() - chrono::Duration::from_std(config.after).unwrap_or_default();
        pause = match engine.move_ended_logs(ended_before, config.hold, config.batch).await {
            Ok(pass) => {
                outage.reached();
                metrics::counter!("sluice_task_logs_moved_total").increment(u64::try_from(pass.moved).unwrap_or(0));
                // A full batch leaves more behind it: the next is taken at once.
                if i64::try_from(pass.taken).is_ok_and(|taken| taken >= config.batch) {
                    Duration::ZERO
                } else {
                    config.poll
                }
            }
            Err(e) if e.is_unavailable() => outage.down(&e),
            Err(e) => {
                tracing::warn!(error = %e, "the log mover cannot take ended tries; trying again");
                config.poll
            }
        };
    }
}
