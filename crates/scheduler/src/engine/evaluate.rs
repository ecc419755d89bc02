//! Deciding a run's next steps: which task instances are ready, skipped or upstream-failed under their trigger
//! rules, which scheduled ones to queue, and whether the run is over.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sluice_core::{Dag, Readiness, RunState, TaskState, run_outcome, trigger_satisfied};
use sluice_store::{RunTx, TaskInstanceRow};
use uuid::Uuid;

use super::Engine;
use crate::EngineError;

/// Which task instances of a run to examine.
pub(crate) enum Scope<'a> {
    /// Every task that waits for a decision (new runs and the scheduler loop).
    All,
    /// The tasks downstream of one that just finished (a worker's report): the cheap path of every task end.
    DownstreamOf(&'a str),
}

impl Engine {
    /// The DAG version a locked run is pinned to.
    pub(crate) async fn dag_of(&self, run: &mut RunTx<'_>) -> Result<Arc<Dag>, EngineError> {
        let version_id = run.run().version_id;
        self.dags.get_in(&mut run.reads(), version_id).await
    }

    /// Moves a locked run forward; the caller commits, which wakes the workers if anything was queued.
    pub(crate) async fn evaluate_run(
        &self,
        tx: &mut RunTx<'_>,
        dag: &Dag,
        scope: Scope<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let (run_pk, dag_id, state) = (tx.run().id, tx.run().dag_id.clone(), tx.run().state);
        let Some(dag_row) = tx.get_dag(&dag_id).await? else { return Ok(()) };
        if state.is_finished() {
            return Ok(());
        }
        if state == RunState::Queued {
            if dag_row.is_paused || !self.may_start(tx, dag).await? {
                return Ok(());
            }
            tx.set_run_state(RunState::Running, now).await?;
        }

        // Only the candidates and their upstream tasks are read: a wide run that is under way has thousands of task
        // instances, and few or none of them wait for a decision.
        let candidates: Vec<String> = match scope {
            Scope::All => tx.waiting_task_ids(run_pk).await?,
            Scope::DownstreamOf(task_id) => dag.downstream(task_id).into_iter().map(String::from).collect(),
        };
        let mut needed: HashSet<String> = candidates.iter().cloned().collect();
        for c in &candidates {
            needed.extend(dag.upstream(c).into_iter().map(String::from));
        }
        let needed: Vec<String> = needed.into_iter().collect();
        let tis = tx.run_task_instances(run_pk, Some(&needed)).await?;
        self.decide_readiness(tx, dag, &tis, &candidates, now).await?;

        let mut queued = 0;
        if !dag_row.is_paused {
            let limit = i64::from(dag.max_active_tasks());
            let room = limit - tx.count_active_tis_of_dag(&dag_id, limit).await?;
            queued = tx.queue_scheduled(room, now).await?.len();
        }

        // Tasks just queued are unfinished: the run cannot be over, and the question costs a round trip.
        if queued == 0 && !tx.has_unfinished_tis(run_pk).await? {
            let leaves: Vec<String> = dag.leaves().into_iter().map(String::from).collect();
            let leaf_states: Vec<TaskState> =
                tx.run_task_instances(run_pk, Some(&leaves)).await?.iter().map(|ti| ti.state).collect();
            let state = run_outcome(&leaf_states);
            tx.set_run_state(state, now).await?;
            tracing::info!(dag_id, run_id = %tx.run().run_id, state = %state, "DAG run finished");
        }
        tx.touch_run(now).await?;
        Ok(())
    }

    /// Whether a queued run may start: below the DAG's `max_active_runs`, or for a backfill's run, below the
    /// backfill's own limit and only while the backfill is not paused.
    async fn may_start(&self, tx: &mut RunTx<'_>, dag: &Dag) -> Result<bool, EngineError> {
        let (backfill_id, dag_id) = (tx.run().backfill_id, tx.run().dag_id.clone());
        let limit = match backfill_id {
            None => i64::from(dag.max_active_runs()),
            Some(id) => match tx.lock_backfill(id).await? {
                Some(backfill) if backfill.is_paused => return Ok(false),
                Some(backfill) => backfill.max_active_runs,
                None => i64::from(dag.max_active_runs()),
            },
        };
        Ok(tx.count_running_runs(&dag_id, backfill_id).await? < limit)
    }

    /// Applies the trigger rules to the candidate tasks in topological order, so that a skip or an upstream
    /// failure propagates down a whole chain in one pass.
    async fn decide_readiness(
        &self,
        tx: &mut RunTx<'_>,
        dag: &Dag,
        tis: &[TaskInstanceRow],
        candidates: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let mut states: HashMap<&str, TaskState> = tis.iter().map(|ti| (ti.task_id.as_str(), ti.state)).collect();
        let by_task: HashMap<&str, &TaskInstanceRow> = tis.iter().map(|ti| (ti.task_id.as_str(), ti)).collect();
        let candidates: HashSet<&str> = candidates.iter().map(String::as_str).collect();
        let (mut ready, mut skip, mut upstream_failed, mut retry) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());

        for task_id in dag.topological_order() {
            if !candidates.contains(task_id) {
                continue;
            }
            let Some(ti) = by_task.get(task_id) else { continue };
            match states.get(task_id).copied() {
                Some(TaskState::None) => {}
                Some(TaskState::UpForRetry) if ti.next_retry_at.is_none_or(|at| at <= now) => {
                    retry.push(ti.id);
                    continue;
                }
                _ => continue,
            }
            let Some(spec) = dag.task(task_id) else { continue };
            let upstream: Vec<TaskState> =
                dag.upstream(task_id).iter().map(|u| states.get(u).copied().unwrap_or(TaskState::None)).collect();
            let (list, new_state): (&mut Vec<Uuid>, TaskState) = match trigger_satisfied(spec.trigger_rule, &upstream) {
                Readiness::Ready => (&mut ready, TaskState::Scheduled),
                Readiness::Skip => (&mut skip, TaskState::Skipped),
                Readiness::UpstreamFailed => (&mut upstream_failed, TaskState::UpstreamFailed),
                Readiness::Waiting => continue,
            };
            list.push(ti.id);
            states.insert(task_id, new_state);
        }
        tx.set_ti_states(&ready, &[TaskState::None], TaskState::Scheduled, now).await?;
        tx.set_ti_states(&retry, &[TaskState::UpForRetry], TaskState::Scheduled, now).await?;
        tx.set_ti_states(&skip, &[TaskState::None], TaskState::Skipped, now).await?;
        tx.set_ti_states(&upstream_failed, &[TaskState::None], TaskState::UpstreamFailed, now).await?;
        Ok(())
    }
}
