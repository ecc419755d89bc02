//! Creating runs — from the schedule, from a trigger — and the scheduler loop's pass over active runs.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sluice_core::schedule::AssetCondition;
use sluice_core::{Dag, DataInterval, RunState, Schedule, TaskState};
use sluice_store::{DagRow, DagRunRow, NewRun, NewTaskInstance, RunTx, TaskInstanceRow};

use super::Engine;
use super::evaluate::Scope;
use crate::EngineError;

/// A manual run, as `POST /api/v2/dags/{dag_id}/dagRuns` asks for it.
#[derive(Debug, Clone, Default)]
pub struct TriggerRequest {
    pub dag_run_id: Option<String>,
    pub logical_date: Option<DateTime<Utc>>,
    pub data_interval: Option<DataInterval>,
    pub conf: Option<Value>,
    pub note: Option<String>,
    pub triggered_by: String,
}

/// Runs examined per scheduler pass and transaction batch.
const RUNS_PER_PASS: i64 = 50;

pub(super) fn new_task_instances(dag: &Dag) -> Vec<NewTaskInstance> {
    dag.topological_order()
        .into_iter()
        .filter_map(|task_id| {
            let task = dag.resolved_task(task_id)?;
            Some(NewTaskInstance {
                task_id: task_id.to_string(),
                max_tries: i64::from(task.retries),
                priority_weight: dag.priority_weight_total(task_id),
                queue: task.queue.clone(),
                pool: task.pool.clone(),
                pool_slots: i64::from(task.pool_slots),
            })
        })
        .collect()
}

pub(super) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

impl Engine {
    /// Creates a manual run and starts it at once (its first tasks are queued before this returns).
    pub async fn trigger_run(&self, dag_id: &str, request: TriggerRequest) -> Result<DagRunRow, EngineError> {
        let now = Utc::now();
        let dag_row = self
            .store
            .get_dag(dag_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("DAG {dag_id:?} not found")))?;
        let version_id = dag_row
            .latest_version_id
            .ok_or_else(|| EngineError::Conflict(format!("DAG {dag_id:?} has no parsed version yet")))?;
        let dag = self.dags.get(&self.store, version_id).await?;
        let conf = request.conf.unwrap_or_else(|| Value::Object(Default::default()));
        if !conf.is_object() {
            return Err(EngineError::Invalid("conf must be a JSON object".into()));
        }
        sluice_core::template::resolve_params(&dag.spec.params, &conf).map_err(EngineError::Invalid)?;
        // Microseconds, as Airflow writes them, so that runs triggered within one second get distinct ids.
        let run_id = request.dag_run_id.unwrap_or_else(|| {
            format!("manual__{}", request.logical_date.unwrap_or(now).to_rfc3339_opts(SecondsFormat::Micros, false))
        });
        let interval =
            request.data_interval.or_else(|| request.logical_date.map(|at| DataInterval { start: at, end: at }));
        let new_run = NewRun {
            dag_id: dag_id.to_string(),
            run_id: run_id.clone(),
            version_id,
            run_type: "manual".into(),
            logical_date: request.logical_date,
            data_interval_start: interval.as_ref().map(|i| i.start),
            data_interval_end: interval.as_ref().map(|i| i.end),
            run_after: request.logical_date.unwrap_or(now),
            conf,
            note: request.note,
            triggered_by: request.triggered_by,
            backfill_id: None,
        };
        let mut tx = self.store.begin().await?;
        let mut created = tx.create_run(&new_run, &new_task_instances(&dag), None, now).await?.ok_or_else(|| {
            EngineError::Conflict(format!(
                "DAG run {run_id:?} of {dag_id:?} already exists (same dag_run_id or logical_date)"
            ))
        })?;
        self.evaluate_run(&mut created, &dag, Scope::All, now).await?;
        let run = created.run().clone();
        tx.commit().await?;
        tracing::info!(dag_id, run_id = %run.run_id, "DAG run triggered");
        Ok(self.store.get_run(dag_id, &run.run_id).await?.unwrap_or(run))
    }

    /// Creates the runs whose data interval has ended, for every active unpaused DAG. Returns how many.
    pub async fn create_scheduled_runs(&self, now: DateTime<Utc>) -> Result<usize, EngineError> {
        let mut created = 0;
        for dag_row in self.store.schedulable_dags().await? {
            match self.create_due_runs_of(&dag_row, now).await {
                Ok(n) => created += n,
                // The database gone is the whole pass's failure, which the scheduler loop reports once.
                Err(e) if e.is_unavailable() => return Err(e),
                Err(e) => tracing::error!(dag_id = %dag_row.dag_id, error = %e, "cannot create scheduled runs"),
            }
        }
        Ok(created)
    }

    async fn create_due_runs_of(&self, dag_row: &DagRow, now: DateTime<Utc>) -> Result<usize, EngineError> {
        let Some(version_id) = dag_row.latest_version_id else { return Ok(0) };
        let dag = self.dags.get(&self.store, version_id).await?;
        let mut created = 0;
        if let Schedule::Assets { condition, or_cron } = dag.timetable().schedule() {
            created += self.create_asset_triggered_run(&dag, version_id, condition, now).await?;
            if or_cron.is_none() {
                return Ok(created);
            }
        }
        loop {
            let last = self
                .store
                .last_scheduled_interval(&dag_row.dag_id)
                .await?
                .map(|(start, end)| DataInterval { start, end });
            let Some(interval) = dag.timetable().next_due(last.as_ref(), now) else { break };
            let new_run = NewRun {
                dag_id: dag_row.dag_id.clone(),
                run_id: format!("scheduled__{}", iso(interval.start)),
                version_id,
                run_type: "scheduled".into(),
                logical_date: Some(interval.start),
                data_interval_start: Some(interval.start),
                data_interval_end: Some(interval.end),
                run_after: interval.end,
                conf: Value::Object(Default::default()),
                note: None,
                triggered_by: "scheduler".into(),
                backfill_id: None,
            };
            let mut tx = self.store.begin().await?;
            let max_active = i64::from(dag.max_active_runs());
            let Some(mut run) = tx.create_run(&new_run, &new_task_instances(&dag), Some(max_active), now).await? else {
                // Another scheduler created it, or max_active_runs is reached: the next pass goes on.
                tx.rollback().await?;
                break;
            };
            self.evaluate_run(&mut run, &dag, Scope::All, now).await?;
            tx.commit().await?;
            tracing::info!(dag_id = %new_run.dag_id, run_id = %new_run.run_id, "scheduled DAG run created");
            created += 1;
        }
        Ok(created)
    }

    /// Creates a run of a DAG scheduled on assets when its condition holds on the assets that have an event its
    /// previous asset-triggered run did not consume. As in Airflow 3, the run consumes the new events of every asset
    /// the condition names, needed or not (with `any: [a, b]`, a run started by `a` also takes `b`'s pending
    /// update). The DAG's row is locked while deciding, and the run and the consumed marks commit together, so
    /// several schedulers never create two runs for the same events.
    async fn create_asset_triggered_run(
        &self,
        dag: &Dag,
        version_id: uuid::Uuid,
        condition: &AssetCondition,
        now: DateTime<Utc>,
    ) -> Result<usize, EngineError> {
        let dag_id = dag.dag_id();
        let mut tx = self.store.begin().await?;
        tx.lock_dag(dag_id).await?;
        let due = tx.assets_updated(dag_id, &condition.uris()).await?;
        if !condition.holds(&|uri| due.iter().any(|(u, _)| u == uri)) {
            tx.rollback().await?;
            return Ok(0);
        }
        let new_run = NewRun {
            dag_id: dag_id.to_string(),
            run_id: format!("asset_triggered__{}", now.to_rfc3339_opts(SecondsFormat::Micros, false)),
            version_id,
            run_type: "asset_triggered".into(),
            // Airflow 3: a run triggered by assets has no logical date or data interval.
            logical_date: None,
            data_interval_start: None,
            data_interval_end: None,
            run_after: now,
            conf: Value::Object(Default::default()),
            note: None,
            triggered_by: "asset".into(),
            backfill_id: None,
        };
        let max_active = i64::from(dag.max_active_runs());
        let Some(mut run) = tx.create_run(&new_run, &new_task_instances(dag), Some(max_active), now).await? else {
            // max_active_runs is reached: the events stay unconsumed and trigger a run on a later pass.
            tx.rollback().await?;
            return Ok(0);
        };
        run.consume_asset_events(dag_id, &due).await?;
        self.evaluate_run(&mut run, dag, Scope::All, now).await?;
        tx.commit().await?;
        tracing::info!(dag_id, run_id = %new_run.run_id, assets = ?due, "asset-triggered DAG run created");
        Ok(1)
    }

    /// One pass over unfinished runs: fail overlong ones, queue what became ready (retries whose delay passed,
    /// room freed under `max_active_tasks`), finish the ones that are done. Returns how many runs it examined.
    pub async fn schedule_active_runs(&self, now: DateTime<Utc>) -> Result<usize, EngineError> {
        let mut tx = self.store.begin().await?;
        let mut runs = tx.lock_runs_to_schedule(RUNS_PER_PASS).await?;
        let examined = runs.len();
        while let Some(mut run) = runs.next_run() {
            let dag = self.dag_of(&mut run).await?;
            if self.timed_out(&mut run, &dag, now).await? {
                continue;
            }
            self.check_deadlines(&mut run, &dag, now).await?;
            self.evaluate_run(&mut run, &dag, Scope::All, now).await?;
        }
        tx.commit().await?;
        Ok(examined)
    }

    /// Fails a run that exceeded `dagrun_timeout`: its unfinished tasks are skipped (running ones lose their
    /// lease, so their workers kill them), as Airflow does.
    async fn timed_out(&self, tx: &mut RunTx<'_>, dag: &Dag, now: DateTime<Utc>) -> Result<bool, EngineError> {
        let run = tx.run().clone();
        let (Some(timeout), Some(started)) = (dag.spec.dagrun_timeout, run.start_date) else { return Ok(false) };
        let Ok(timeout) = chrono::Duration::from_std(timeout) else { return Ok(false) };
        if run.state != RunState::Running || started + timeout > now {
            return Ok(false);
        }
        // Its queued tasks are taken back: no claim may start one between the read and the change.
        tx.exclude_claims().await?;
        let tis = tx.run_task_instances(run.id, None).await?;
        let unfinished: Vec<_> = tis.iter().filter(|ti| !ti.state.is_finished()).collect();
        let (running, waiting): (Vec<&TaskInstanceRow>, Vec<_>) =
            unfinished.into_iter().partition(|ti| ti.state == TaskState::Running);
        let running: Vec<_> = running.iter().map(|ti| ti.id).collect();
        tx.end_running(&running, TaskState::Skipped, "the DAG run exceeded its dagrun_timeout", now).await?;
        let waiting: Vec<_> = waiting.iter().map(|ti| ti.id).collect();
        let from = [
            TaskState::None,
            TaskState::Scheduled,
            TaskState::Queued,
            TaskState::UpForRetry,
            TaskState::UpForReschedule,
        ];
        tx.set_ti_states(&waiting, &from, TaskState::Skipped, now).await?;
        self.finish_run(tx, dag, RunState::Failed, Some("the DAG run exceeded its dagrun_timeout"), now).await?;
        tracing::warn!(dag_id = %run.dag_id, run_id = %run.run_id, "DAG run failed: dagrun_timeout exceeded");
        Ok(true)
    }
}
