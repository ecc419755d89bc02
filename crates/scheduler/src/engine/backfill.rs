//! Backfills: runs for the past logical dates of a DAG's schedule, created on request.
//!
//! As in Airflow, the dates come from the DAG's cron between `from_date` and `to_date`, and an existing run at a
//! date is left alone unless the reprocess behaviour says otherwise: `failed` reruns failed runs, `completed` reruns
//! finished ones, a queued or running run is never touched. Sluice keeps one run per logical date, so rerunning one
//! clears its task instances instead of adding a second run. Backfill runs wait for room under the DAG's
//! `max_active_runs` like any run, and like any run they wait while the DAG is paused.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::RunState;
use sluice_store::{BackfillRow, NewBackfill, NewRun};

use super::Engine;
use super::manage::CLEARABLE;
use super::runs::{iso, new_task_instances};
use crate::EngineError;

/// At most this many runs per backfill, so that a typo in a date cannot create millions.
pub const MAX_BACKFILL_RUNS: usize = 10_000;

/// Airflow's `ReprocessBehavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reprocess {
    None,
    Failed,
    Completed,
}

impl Reprocess {
    pub fn as_str(self) -> &'static str {
        match self {
            Reprocess::None => "none",
            Reprocess::Failed => "failed",
            Reprocess::Completed => "completed",
        }
    }

    fn reruns(self, state: RunState) -> bool {
        match self {
            Reprocess::None => false,
            Reprocess::Failed => state == RunState::Failed,
            Reprocess::Completed => state.is_finished(),
        }
    }
}

/// Airflow's `BackfillPostBody`, checked.
#[derive(Debug, Clone)]
pub struct BackfillRequest {
    pub dag_id: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub run_backwards: bool,
    pub dag_run_conf: Value,
    pub reprocess: Reprocess,
    pub max_active_runs: i64,
}

/// What a backfill did at each date.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillOutcome {
    pub created: usize,
    pub rerun: usize,
    pub skipped: usize,
}

impl Engine {
    pub async fn backfill(&self, request: &BackfillRequest) -> Result<(BackfillRow, BackfillOutcome), EngineError> {
        let dag_id = request.dag_id.as_str();
        if request.from_date > request.to_date {
            return Err(EngineError::Invalid("from_date must not be after to_date".into()));
        }
        let dag_row = self
            .store
            .get_dag(dag_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("Could not find Dag {dag_id}")))?;
        let version_id = dag_row
            .latest_version_id
            .ok_or_else(|| EngineError::Conflict(format!("DAG {dag_id:?} has no parsed version yet")))?;
        let dag = self.dags.get(&self.store, version_id).await?;
        if !dag.timetable().is_periodic() {
            return Err(EngineError::Conflict(format!(
                "{dag_id} has no cron schedule, so there is nothing to backfill"
            )));
        }
        if !request.dag_run_conf.is_object() {
            return Err(EngineError::Invalid("dag_run_conf must be a JSON object".into()));
        }
        sluice_core::template::resolve_params(&dag.spec.params, &request.dag_run_conf).map_err(EngineError::Invalid)?;
        let mut intervals =
            dag.timetable().intervals_between(request.from_date, request.to_date, MAX_BACKFILL_RUNS + 1);
        if intervals.len() > MAX_BACKFILL_RUNS {
            return Err(EngineError::Invalid(format!(
                "the range holds more than {MAX_BACKFILL_RUNS} runs of {dag_id}: backfill it in parts"
            )));
        }
        if request.run_backwards {
            intervals.reverse();
        }

        let now = Utc::now();
        let mut outcome = BackfillOutcome::default();
        let mut tx = self.store.begin().await?;
        let backfill = NewBackfill {
            dag_id: dag_id.to_owned(),
            from_date: request.from_date,
            to_date: request.to_date,
            dag_run_conf: request.dag_run_conf.clone(),
            reprocess_behavior: request.reprocess.as_str().to_owned(),
            max_active_runs: request.max_active_runs,
        };
        let row = tx.insert_backfill(&backfill, now).await?;
        let tasks = new_task_instances(&dag);
        for interval in intervals {
            match tx.lock_run_at(dag_id, interval.start).await? {
                None => {
                    let run = NewRun {
                        dag_id: dag_id.to_owned(),
                        run_id: format!("backfill__{}", iso(interval.start)),
                        version_id,
                        run_type: "backfill".into(),
                        logical_date: Some(interval.start),
                        data_interval_start: Some(interval.start),
                        data_interval_end: Some(interval.end),
                        run_after: interval.end,
                        conf: request.dag_run_conf.clone(),
                        note: None,
                        triggered_by: "backfill".into(),
                    };
                    tx.create_run(&run, &tasks, None, now).await?;
                    outcome.created += 1;
                }
                Some(run) if request.reprocess.reruns(run.state) => {
                    let run_dag = self.dags.get_in(&mut tx, run.version_id).await?;
                    let tis = tx.run_task_instances(run.id, None).await?;
                    let clearable: Vec<_> = tis.into_iter().filter(|ti| CLEARABLE.contains(&ti.state)).collect();
                    self.reset(&mut tx, &run, &run_dag, &clearable).await?;
                    outcome.rerun += 1;
                }
                Some(_) => outcome.skipped += 1,
            }
        }
        tx.commit().await?;
        tracing::info!(dag_id, backfill_id = row.id, ?outcome, "backfill created");
        Ok((row, outcome))
    }
}
