//! What users do to runs and task instances by hand: mark a run, mark tasks, clear tasks so that they run again.
//!
//! Each follows Airflow: marking a run failed fails its running tasks and skips the ones that had not started;
//! marking a task resumes the run by clearing the failed tasks downstream of it; clearing puts task instances back
//! to no state with fresh retries and re-queues their run. A running task is never cleared (it would run twice at
//! once while its worker notices); marking it takes its lease away, so its worker kills it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use sluice_core::{Dag, RunState, TaskState};
use sluice_store::{DagRunRow, RunTx, TaskInstanceRow};

use super::Engine;
use crate::EngineError;

/// Which task instances of a run an action touches.
#[derive(Debug, Clone, Default)]
pub struct TaskSelection {
    /// `None` selects every task of the run.
    pub task_ids: Option<Vec<String>>,
    /// Mapped tasks of `task_ids` of which only these instances are selected (by `map_index`), not all.
    pub map_indexes: BTreeMap<String, Vec<i64>>,
    pub include_upstream: bool,
    pub include_downstream: bool,
}

impl TaskSelection {
    fn resolve(&self, dag: &Dag) -> Result<Vec<String>, EngineError> {
        let Some(ids) = &self.task_ids else {
            return Ok(dag.task_ids().into_iter().map(String::from).collect());
        };
        let mut chosen = BTreeSet::new();
        for id in ids {
            if dag.task(id).is_none() {
                return Err(EngineError::NotFound(format!("Task with id `{id}` not found in DAG `{}`", dag.dag_id())));
            }
            chosen.insert(id.clone());
            if self.include_upstream {
                chosen.extend(dag.ancestors(id).into_iter().map(String::from));
            }
            if self.include_downstream {
                chosen.extend(dag.descendants(id).into_iter().map(String::from));
            }
        }
        Ok(chosen.into_iter().collect())
    }

    /// Whether a task instance of a selected task is selected: all of them, unless only some instances were named.
    fn keeps(&self, ti: &TaskInstanceRow) -> bool {
        self.map_indexes.get(&ti.task_id).is_none_or(|indexes| indexes.contains(&ti.map_index))
    }
}

/// States a clear resets: finished ones and those waiting for a retry or a sensor's next poke.
pub(super) const CLEARABLE: [TaskState; 7] = [
    TaskState::Success,
    TaskState::Failed,
    TaskState::UpForRetry,
    TaskState::UpForReschedule,
    TaskState::UpstreamFailed,
    TaskState::Skipped,
    TaskState::Removed,
];
const FAILED: [TaskState; 2] = [TaskState::Failed, TaskState::UpstreamFailed];
const UNFINISHED: [TaskState; 6] = [
    TaskState::None,
    TaskState::Scheduled,
    TaskState::Queued,
    TaskState::Running,
    TaskState::UpForRetry,
    TaskState::UpForReschedule,
];

impl Engine {
    async fn locate(&self, dag_id: &str, run_id: &str) -> Result<(DagRunRow, std::sync::Arc<Dag>), EngineError> {
        let run = self.store.get_run(dag_id, run_id).await?.ok_or_else(|| {
            EngineError::NotFound(format!("The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"))
        })?;
        let dag = self.dags.get(&self.store, run.version_id).await?;
        Ok((run, dag))
    }

    /// Clears the selected task instances (only failed ones with `only_failed`) so that they run again, and
    /// re-queues the run. Returns the task instances cleared, or that would be with `dry_run`.
    pub async fn clear_tasks(
        &self,
        dag_id: &str,
        run_id: &str,
        selection: &TaskSelection,
        only_failed: bool,
        dry_run: bool,
    ) -> Result<Vec<TaskInstanceRow>, EngineError> {
        let (run, dag) = self.locate(dag_id, run_id).await?;
        let task_ids = selection.resolve(&dag)?;
        let states: &[TaskState] = if only_failed { &FAILED } else { &CLEARABLE };
        let mut tx = self.store.begin().await?;
        let mut locked = tx.lock_run(run.id).await?.ok_or_else(|| run_gone(dag_id, run_id))?;
        let cleared: Vec<TaskInstanceRow> = locked
            .run_task_instances(run.id, Some(&task_ids))
            .await?
            .into_iter()
            .filter(|ti| states.contains(&ti.state) && selection.keeps(ti))
            .collect();
        if dry_run {
            tx.rollback().await?;
            return Ok(cleared);
        }
        self.reset(&mut locked, &dag, &cleared).await?;
        tx.commit().await?;
        tracing::info!(dag_id, run_id, cleared = cleared.len(), "task instances cleared");
        Ok(cleared)
    }

    /// Sets the selected task instances to `state` (success, failed or skipped), then clears the failed tasks
    /// downstream of them so the run can go on. Returns the task instances marked (or that would be).
    pub async fn mark_tasks(
        &self,
        dag_id: &str,
        run_id: &str,
        selection: &TaskSelection,
        state: TaskState,
        dry_run: bool,
    ) -> Result<Vec<TaskInstanceRow>, EngineError> {
        if !matches!(state, TaskState::Success | TaskState::Failed | TaskState::Skipped) {
            return Err(EngineError::Invalid(format!(
                "a task instance can be marked success, failed or skipped, not {}",
                state.as_str()
            )));
        }
        let (run, dag) = self.locate(dag_id, run_id).await?;
        let task_ids = selection.resolve(&dag)?;
        let now = Utc::now();
        let mut tx = self.store.begin().await?;
        let mut locked = tx.lock_run_excluding_claims(run.id).await?.ok_or_else(|| run_gone(dag_id, run_id))?;
        let marked: Vec<TaskInstanceRow> = locked
            .run_task_instances(run.id, Some(&task_ids))
            .await?
            .into_iter()
            .filter(|ti| ti.state != state && selection.keeps(ti))
            .collect();
        if dry_run {
            tx.rollback().await?;
            return Ok(marked);
        }
        let reason = format!("marked {} by a user", state.as_str());
        let (running, others): (Vec<_>, Vec<_>) = marked.iter().partition(|ti| ti.state == TaskState::Running);
        let running: Vec<_> = running.iter().map(|ti| ti.id).collect();
        locked.end_running(&running, state, &reason, now).await?;
        let others: Vec<_> = others.iter().map(|ti| ti.id).collect();
        let from: Vec<TaskState> =
            TaskState::ALL.into_iter().filter(|s| *s != state && *s != TaskState::Running).collect();
        locked.set_ti_states(&others, &from, state, now).await?;

        let mut downstream = BTreeSet::new();
        for ti in &marked {
            downstream.extend(dag.descendants(&ti.task_id).into_iter().map(String::from));
        }
        let downstream: Vec<String> = downstream.into_iter().filter(|id| !task_ids.contains(id)).collect();
        let resumed: Vec<TaskInstanceRow> = locked
            .run_task_instances(run.id, Some(&downstream))
            .await?
            .into_iter()
            .filter(|ti| FAILED.contains(&ti.state))
            .collect();
        self.reset(&mut locked, &dag, &resumed).await?;
        tx.commit().await?;
        tracing::info!(dag_id, run_id, state = state.as_str(), marked = marked.len(), "task instances marked");
        Ok(marked)
    }

    /// Marks a run: `success` or `failed` finish its unfinished tasks the same way (failed: running tasks fail,
    /// the others are skipped); `queued` sends it back to the scheduler.
    pub async fn mark_run(
        &self,
        dag_id: &str,
        run_id: &str,
        state: Option<RunState>,
        note: Option<Option<String>>,
    ) -> Result<DagRunRow, EngineError> {
        let (run, _) = self.locate(dag_id, run_id).await?;
        let now = Utc::now();
        let mut tx = self.store.begin().await?;
        let mut locked = tx.lock_run_excluding_claims(run.id).await?.ok_or_else(|| run_gone(dag_id, run_id))?;
        if let Some(note) = &note {
            locked.set_run_note(note.as_deref()).await?;
        }
        match state {
            Some(RunState::Queued) => locked.requeue_run(now).await?,
            Some(RunState::Running) => {
                return Err(EngineError::Invalid("a DAG run can be marked queued, success or failed".into()));
            }
            Some(target @ (RunState::Success | RunState::Failed)) => {
                self.finish_unfinished(&mut locked, target, now).await?;
                locked.set_run_state(target, now).await?;
            }
            None => {}
        }
        tx.commit().await?;
        if let Some(state) = state {
            tracing::info!(dag_id, run_id, state = state.as_str(), "DAG run marked");
        }
        self.store.get_run(dag_id, run_id).await?.ok_or_else(|| run_gone(dag_id, run_id))
    }

    async fn finish_unfinished(
        &self,
        tx: &mut RunTx<'_>,
        target: RunState,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let run_pk = tx.run().id;
        let unfinished: Vec<TaskInstanceRow> = tx
            .run_task_instances(run_pk, None)
            .await?
            .into_iter()
            .filter(|ti| UNFINISHED.contains(&ti.state))
            .collect();
        let reason = format!("the DAG run was marked {} by a user", target.as_str());
        let (running_state, waiting_state) = match target {
            RunState::Failed => (TaskState::Failed, TaskState::Skipped),
            _ => (TaskState::Success, TaskState::Success),
        };
        let running: Vec<_> = unfinished.iter().filter(|ti| ti.state == TaskState::Running).map(|ti| ti.id).collect();
        tx.end_running(&running, running_state, &reason, now).await?;
        let waiting: Vec<_> = unfinished.iter().filter(|ti| ti.state != TaskState::Running).map(|ti| ti.id).collect();
        let from: Vec<TaskState> = UNFINISHED.into_iter().filter(|s| *s != TaskState::Running).collect();
        tx.set_ti_states(&waiting, &from, waiting_state, now).await?;
        Ok(())
    }

    /// Resets task instances to run again with their retries counted afresh, and re-queues the run when any was
    /// reset.
    pub(super) async fn reset(
        &self,
        tx: &mut RunTx<'_>,
        dag: &Dag,
        tis: &[TaskInstanceRow],
    ) -> Result<(), EngineError> {
        let mut any = false;
        for ti in tis {
            let retries = dag.resolved_task(&ti.task_id).map_or(0, |t| i64::from(t.retries));
            any |= tx.reset_task_instance(ti.id, ti.try_number + retries, &CLEARABLE).await?;
        }
        if any {
            tx.requeue_run(Utc::now()).await?;
        }
        Ok(())
    }
}

fn run_gone(dag_id: &str, run_id: &str) -> EngineError {
    EngineError::NotFound(format!("The DagRun `{run_id}` of `{dag_id}` was deleted"))
}
