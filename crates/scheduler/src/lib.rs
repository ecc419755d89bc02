//! Sluice's scheduler: turns DAG files, time and finished tasks into runs and queued task instances.
//!
//! - [`sync`] reads the DAG folder into DAG versions and import errors.
//! - [`Engine`] holds every scheduling decision: creating runs (cron ticks, catchup, manual triggers), deciding
//!   which task instances are ready under their trigger rules, queueing them, handing them to workers, ending
//!   tries with retries, and failing lost leases and overlong runs. The API calls it for triggers and for the
//!   worker protocol, so a task's downstream tasks are queued in the same transaction that records its end.
//! - [`run_scheduler`] is the loop: sync the folder, create due runs, expire leases, re-examine active runs.
//!   Several loops may run against one PostgreSQL: runs and task instances are locked with `SKIP LOCKED`, and
//!   unique keys stop a run from being created twice.
//! - [`run_log_mover`] moves the logs of ended tries to the lake, when logs are kept there.

mod cache;
mod engine;
mod error;
mod log_mover;
mod scheduler_loop;
pub mod sync;

pub use cache::DagCache;
pub use engine::{
    BackfillOutcome, BackfillRequest, EndedSpan, Engine, EngineConfig, MAX_BACKFILL_RUNS, MovePass, Reprocess,
    TaskSelection, TraceSink, TriggerRequest,
};
pub use error::EngineError;
pub use log_mover::{LogMoverConfig, run_log_mover};
pub use scheduler_loop::{SchedulerConfig, run_scheduler};
