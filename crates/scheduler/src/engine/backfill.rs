//! Backfills: runs for the past logical dates of a DAG's schedule, created on request.
//!
//! As in Airflow, the dates come from the DAG's cron between `from_date` and `to_date`, and an existing run at a
//! date is left alone unless the reprocess behaviour says otherwise: `failed` reruns failed runs, `completed` reruns
//! finished ones, a queued or running run is never touched. Sluice keeps one run per logical date, so rerunning one
//! clears its task instances instead of adding a second run, and the run then belongs to the backfill.
//!
//! A backfill's runs start under its own `max_active_runs`, not the DAG's (which counts the other runs only), and
//! not while the backfill is paused; like any run they also wait while the DAG is paused. A DAG has at most one
//! unfinished backfill; cancelling one fails its queued runs.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::schedule::DataInterval;
use sluice_core::{Dag, RunState};
use sluice_store::{BackfillRow, DagRunRow, NewBackfill, NewRun, RunFilter, Tx};
use uuid::Uuid;

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

/// What a backfill does at one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Create,
    Rerun,
    Skip,
}

fn action(existing: Option<&DagRunRow>, reprocess: Reprocess) -> Action {
    match existing {
        None => Action::Create,
        Some(run) if reprocess.reruns(run.state) => Action::Rerun,
        Some(_) => Action::Skip,
    }
}

impl Engine {
    /// The DAG's version and the intervals a request covers, in the order their runs are made.
    async fn backfill_plan(
        &self,
        request: &BackfillRequest,
    ) -> Result<(Arc<Dag>, Uuid, Vec<DataInterval>), EngineError> {
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
        Ok((dag, version_id, intervals))
    }

    /// The logical dates a backfill would run (create or rerun), changing nothing: Airflow's dry run.
    pub async fn backfill_dry_run(&self, request: &BackfillRequest) -> Result<Vec<DateTime<Utc>>, EngineError> {
        let (_, _, intervals) = self.backfill_plan(request).await?;
        let mut tx = self.store.begin().await?;
        let mut dates = Vec::new();
        for interval in intervals {
            let existing = tx.lock_run_at(&request.dag_id, interval.start).await?;
            if action(existing.as_ref().map(|run| run.run()), request.reprocess) != Action::Skip {
                dates.push(interval.start);
            }
        }
        tx.rollback().await?;
        Ok(dates)
    }

    /// Creates a backfill and its runs. As in Airflow, a DAG has one unfinished backfill at a time (409 otherwise).
    pub async fn backfill(&self, request: &BackfillRequest) -> Result<(BackfillRow, BackfillOutcome), EngineError> {
        let dag_id = request.dag_id.as_str();
        let (dag, version_id, intervals) = self.backfill_plan(request).await?;
        let now = Utc::now();
        let mut outcome = BackfillOutcome::default();
        let mut tx = self.store.begin().await?;
        // Serialises concurrent requests for the same DAG, so that two cannot both see no unfinished backfill.
        tx.lock_dag(dag_id).await?;
        if tx.unfinished_backfill(dag_id).await?.is_some() {
            return Err(EngineError::Conflict(format!("There is already a running backfill for dag {dag_id}")));
        }
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
            let existing = tx.lock_run_at(dag_id, interval.start).await?;
            match (action(existing.as_ref().map(|run| run.run()), request.reprocess), existing) {
                (Action::Create, _) => {
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
                        backfill_id: Some(row.id),
                    };
                    tx.create_run(&run, &tasks, None, now).await?;
                    outcome.created += 1;
                }
                (Action::Rerun, Some(mut run)) => {
                    let run_dag = self.dag_of(&mut run).await?;
                    let run_pk = run.run().id;
                    let tis = run.run_task_instances(run_pk, None).await?;
                    let clearable: Vec<_> = tis.into_iter().filter(|ti| CLEARABLE.contains(&ti.state)).collect();
                    self.reset(&mut run, &run_dag, &clearable).await?;
                    run.set_run_backfill(row.id).await?;
                    outcome.rerun += 1;
                }
                _ => outcome.skipped += 1,
            }
        }
        tx.commit().await?;
        tracing::info!(dag_id, backfill_id = row.id, ?outcome, "backfill created");
        Ok((row, outcome))
    }

    /// Pauses (`true`) or resumes a backfill: a paused one starts none of its queued runs; running ones go on.
    pub async fn pause_backfill(&self, id: i64, paused: bool) -> Result<BackfillRow, EngineError> {
        let mut tx = self.store.begin().await?;
        self.unfinished_backfill_in(&mut tx, id).await?;
        tx.set_backfill_paused(id, paused).await?;
        tx.commit().await?;
        tracing::info!(backfill_id = id, paused, "backfill paused or resumed");
        self.backfill_row(id).await
    }

    /// Cancels a backfill as Airflow does: it is paused, its queued runs are failed (their tasks skipped), and it
    /// is complete; runs already running finish on their own.
    pub async fn cancel_backfill(&self, id: i64) -> Result<BackfillRow, EngineError> {
        let now = Utc::now();
        let mut tx = self.store.begin().await?;
        let backfill = self.unfinished_backfill_in(&mut tx, id).await?;
        tx.cancel_backfill(id, now).await?;
        tx.commit().await?;
        let queued = RunFilter {
            dag_id: Some(backfill.dag_id.clone()),
            backfill_id: Some(id),
            states: vec![RunState::Queued],
            limit: i64::MAX,
            ..RunFilter::default()
        };
        let (runs, _) = self.store.list_runs(&queued).await?;
        for run in &runs {
            self.mark_run(&run.dag_id, &run.run_id, Some(RunState::Failed), None).await?;
        }
        tracing::info!(backfill_id = id, failed_runs = runs.len(), "backfill cancelled");
        self.backfill_row(id).await
    }

    /// The backfill, locked, or 404 when missing and 409 when it is complete (cancelled or all runs finished).
    async fn unfinished_backfill_in(&self, tx: &mut Tx, id: i64) -> Result<BackfillRow, EngineError> {
        let backfill = tx.lock_backfill(id).await?.ok_or_else(|| backfill_missing(id))?;
        if !tx.backfill_is_unfinished(id).await? {
            return Err(EngineError::Conflict("Backfill is already completed.".into()));
        }
        Ok(backfill)
    }

    async fn backfill_row(&self, id: i64) -> Result<BackfillRow, EngineError> {
        self.store.get_backfill(id).await?.ok_or_else(|| backfill_missing(id))
    }
}

fn backfill_missing(id: i64) -> EngineError {
    EngineError::NotFound(format!("Could not find backfill with id {id}"))
}
