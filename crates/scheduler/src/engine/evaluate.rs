//! Deciding a run's next steps: which task instances are ready, skipped or upstream-failed under their trigger
//! rules, which scheduled ones to queue, and whether the run is over.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sluice_core::mapping::map_length;
use sluice_core::skip::latest_only_proceeds;
use sluice_core::spec::LATEST_ONLY_KIND;
use sluice_core::{Dag, DataInterval, Readiness, RunState, TaskState, run_outcome, trigger_satisfied};
use sluice_store::{RunTx, TaskInstanceRow, TaskLimit};

use super::Engine;
use super::xcom::upstream_outputs;
use crate::EngineError;

/// Which task instances of a run to examine.
pub(crate) enum Scope<'a> {
    /// Every task that waits for a decision (new runs and the scheduler loop).
    All,
    /// The tasks downstream of those that just finished (a worker's report, and the tasks a branch skipped): the
    /// cheap path of every task end.
    DownstreamOf(&'a [&'a str]),
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
            self.record_run_lineage(tx, RunState::Running, None, now).await?;
        }

        // Only the candidates and their upstream tasks are read: a wide run that is under way has thousands of task
        // instances, and few or none of them wait for a decision.
        let mut candidates: Vec<String> = match scope {
            Scope::All => tx.waiting_task_ids(run_pk).await?,
            Scope::DownstreamOf(finished) => downstream_of(dag, finished.iter().copied()),
        };
        loop {
            let mut needed: HashSet<String> = candidates.iter().cloned().collect();
            for c in &candidates {
                needed.extend(dag.upstream(c).into_iter().map(String::from));
            }
            let needed: Vec<String> = needed.into_iter().collect();
            let tis = tx.run_task_instances(run_pk, Some(&needed)).await?;
            let settled = self.decide_readiness(tx, dag, &tis, &candidates, now).await?;
            // Every waiting task was a candidate of `All`, in topological order: nothing is left to propagate to.
            if matches!(scope, Scope::All) || settled.is_empty() {
                break;
            }
            // A task skipped or upstream-failed is finished too: its own downstream tasks may now be decided.
            candidates = downstream_of(dag, settled.iter().map(String::as_str));
        }

        let mut queued = 0;
        if !dag_row.is_paused {
            let limit = i64::from(dag.max_active_tasks());
            let room = limit - tx.count_active_tis_of_dag(&dag_id, limit).await?;
            let limits: HashMap<String, TaskLimit> = dag
                .limited_tasks()
                .map(|(task_id, task)| {
                    let limit = TaskLimit {
                        per_dag: task.max_active_tis_per_dag.map(i64::from),
                        per_run: task.max_active_tis_per_dagrun.map(i64::from),
                    };
                    (task_id.to_owned(), limit)
                })
                .collect();
            queued = tx.queue_scheduled(room, &limits, now).await?.len();
        }

        // Tasks just queued are unfinished: the run cannot be over, and the question costs a round trip.
        if queued == 0 && !tx.has_unfinished_tis(run_pk, None).await? {
            let leaves: Vec<String> = dag.leaves().into_iter().map(String::from).collect();
            let leaf_states: Vec<TaskState> =
                tx.run_task_instances(run_pk, Some(&leaves)).await?.iter().map(|ti| ti.state).collect();
            let state = run_outcome(&leaf_states);
            self.finish_run(tx, dag, state, None, now).await?;
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
    /// failure propagates down a whole chain of candidates in one pass, and expands the mapped tasks that become
    /// ready. Returns the tasks it skipped or upstream-failed.
    async fn decide_readiness(
        &self,
        tx: &mut RunTx<'_>,
        dag: &Dag,
        tis: &[TaskInstanceRow],
        candidates: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, EngineError> {
        // A mapped task has one instance per map_index: its downstream tasks see every instance's state.
        let mut instances: HashMap<&str, Vec<&TaskInstanceRow>> = HashMap::new();
        for ti in tis {
            instances.entry(ti.task_id.as_str()).or_default().push(ti);
        }
        let mut states: HashMap<&str, Vec<TaskState>> =
            instances.iter().map(|(id, tis)| (*id, tis.iter().map(|ti| ti.state).collect())).collect();
        let candidates: HashSet<&str> = candidates.iter().map(String::as_str).collect();
        let (mut ready, mut skip, mut upstream_failed, mut retry) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut decided, mut skipped_by_latest_only) = (Vec::new(), HashSet::new());
        let mut settled = Vec::new();

        for task_id in dag.topological_order() {
            if !candidates.contains(task_id) {
                continue;
            }
            let Some(tis) = instances.get(task_id) else { continue };
            let due = |ti: &&&TaskInstanceRow| ti.next_retry_at.is_none_or(|at| at <= now);
            let waits_for_a_try =
                |ti: &&&TaskInstanceRow| matches!(ti.state, TaskState::UpForRetry | TaskState::UpForReschedule);
            retry.extend(tis.iter().filter(waits_for_a_try).filter(due).map(|ti| ti.id));
            let waiting: Vec<&TaskInstanceRow> = tis.iter().copied().filter(|ti| ti.state == TaskState::None).collect();
            let Some(spec) = dag.task(task_id).filter(|_| !waiting.is_empty()) else { continue };
            let upstream: Vec<TaskState> = dag
                .upstream(task_id)
                .iter()
                .flat_map(|u| states.get(u).cloned().unwrap_or_else(|| vec![TaskState::None]))
                .collect();
            let readiness = if skipped_by_latest_only.contains(task_id) {
                Readiness::Skip
            } else {
                trigger_satisfied(spec.trigger_rule, &upstream)
            };
            let mut new_states = match readiness {
                Readiness::Ready if !self.past_allows(tx, dag, task_id).await? => continue,
                // Decided here and now, without a worker: the run is the latest one due, or its downstream is skipped.
                Readiness::Ready if spec.kind == LATEST_ONLY_KIND => {
                    if !self.latest_only_proceeds(tx, dag, task_id, now) {
                        skipped_by_latest_only.extend(dag.downstream(task_id));
                    }
                    decided.extend(waiting.iter().map(|ti| ti.id));
                    settled.push(task_id.to_owned());
                    states.insert(task_id, vec![TaskState::Success]);
                    continue;
                }
                Readiness::Ready => vec![TaskState::Scheduled; waiting.len()],
                Readiness::Skip => vec![TaskState::Skipped; waiting.len()],
                Readiness::UpstreamFailed => vec![TaskState::UpstreamFailed; waiting.len()],
                Readiness::Waiting => continue,
            };
            let placeholder = waiting.iter().find(|ti| ti.map_index == -1 && spec.is_mapped());
            if let (Some(placeholder), TaskState::Scheduled) = (placeholder, new_states[0]) {
                new_states = self.expand(tx, dag, placeholder, now).await?;
            } else {
                for (ti, state) in waiting.iter().zip(&new_states) {
                    match state {
                        TaskState::Scheduled => ready.push(ti.id),
                        TaskState::Skipped => skip.push(ti.id),
                        _ => upstream_failed.push(ti.id),
                    }
                }
            }
            if new_states.iter().any(|s| matches!(s, TaskState::Skipped | TaskState::UpstreamFailed)) {
                settled.push(task_id.to_owned());
            }
            let unchanged = tis.iter().filter(|ti| ti.state != TaskState::None).map(|ti| ti.state);
            states.insert(task_id, unchanged.chain(new_states).collect());
        }
        // Downstream tasks of a latest_only task that were not candidates of this pass are skipped here.
        let unseen: Vec<String> =
            skipped_by_latest_only.iter().filter(|id| !candidates.contains(*id)).map(|id| (*id).to_owned()).collect();
        if !unseen.is_empty() {
            let run_pk = tx.run().id;
            skip.extend(tx.run_task_instances(run_pk, Some(&unseen)).await?.iter().map(|ti| ti.id));
            settled.extend(unseen);
        }
        tx.set_ti_states(&decided, &[TaskState::None], TaskState::Success, now).await?;
        tx.set_ti_states(&ready, &[TaskState::None], TaskState::Scheduled, now).await?;
        tx.set_ti_states(&retry, &[TaskState::UpForRetry, TaskState::UpForReschedule], TaskState::Scheduled, now)
            .await?;
        tx.set_ti_states(&skip, &[TaskState::None], TaskState::Skipped, now).await?;
        tx.set_ti_states(&upstream_failed, &[TaskState::None], TaskState::UpstreamFailed, now).await?;
        Ok(settled)
    }

    /// Whether a task's instances in the previous run let it start (`depends_on_past`, `wait_for_downstream`), as
    /// Airflow's PrevDagrunDep decides: the first run, and a task new since the previous run, start freely; else the
    /// task's instances there (and with `wait_for_downstream`, those of its direct downstream tasks) must all have
    /// succeeded or been skipped. Until then the task waits; the scheduler loop asks again.
    async fn past_allows(&self, tx: &mut RunTx<'_>, dag: &Dag, task_id: &str) -> Result<bool, EngineError> {
        let Some(task) = dag.resolved_task(task_id).filter(|task| task.depends_on_past) else { return Ok(true) };
        let (dag_id, logical_date) = (tx.run().dag_id.clone(), tx.run().logical_date);
        let Some(logical_date) = logical_date else { return Ok(true) };
        let mut reads = tx.reads();
        let Some(previous) = reads.previous_run(&dag_id, logical_date, dag.spec.catchup).await? else {
            return Ok(true);
        };
        let (instances, unsuccessful) = reads.count_unsuccessful(previous, &[task_id]).await?;
        if instances == 0 {
            return Ok(!reads.ran_before(&dag_id, task_id, logical_date).await?);
        }
        if unsuccessful > 0 {
            return Ok(false);
        }
        if task.wait_for_downstream {
            let (_, unsuccessful) = reads.count_unsuccessful(previous, &dag.downstream(task_id)).await?;
            return Ok(unsuccessful == 0);
        }
        Ok(true)
    }

    /// Whether a `latest_only` task lets its direct downstream tasks run in this run (see
    /// [`sluice_core::skip::latest_only_proceeds`]).
    fn latest_only_proceeds(&self, tx: &RunTx<'_>, dag: &Dag, task_id: &str, now: DateTime<Utc>) -> bool {
        let run = tx.run();
        let (Some(start), Some(end)) = (run.data_interval_start, run.data_interval_end) else { return true };
        let proceeds =
            latest_only_proceeds(dag.timetable(), run.run_type == "manual", &DataInterval { start, end }, now);
        tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, task_id, proceeds,
            "latest_only: {}", if proceeds { "the latest run, or triggered by hand: downstream tasks proceed" }
                                else { "not the latest run: its direct downstream tasks are skipped" });
        proceeds
    }

    /// Replaces a ready mapped task's placeholder with one scheduled instance per element of its lists; skips it
    /// when they are empty, as Airflow does. Returns the states of its instances.
    async fn expand(
        &self,
        tx: &mut RunTx<'_>,
        dag: &Dag,
        placeholder: &TaskInstanceRow,
        now: DateTime<Utc>,
    ) -> Result<Vec<TaskState>, EngineError> {
        let task_id = placeholder.task_id.as_str();
        let Some(spec) = dag.task(task_id) else { return Ok(vec![TaskState::None]) };
        let outputs = upstream_outputs(&mut tx.reads(), &self.lake, dag, placeholder.run_pk, task_id).await?;
        let (run_id, dag_id) = (&placeholder.run_id, &placeholder.dag_id);
        let length = outputs.map_err(|e| e.to_string()).and_then(|o| map_length(spec, &o).map_err(|e| e.to_string()));
        let state = match length {
            Ok(0) => TaskState::Skipped,
            Ok(length) => {
                let length = i64::try_from(length).unwrap_or(i64::MAX);
                tx.expand_mapped(placeholder, length, now).await?;
                tracing::info!(dag_id, run_id, task_id, length, "mapped task expanded");
                return Ok(vec![TaskState::Scheduled; usize::try_from(length).unwrap_or(0)]);
            }
            // The outputs of a mapped upstream task make a list longer than this task allows: nothing can run.
            Err(e) => {
                tracing::warn!(dag_id, run_id, task_id, "cannot expand the mapped task: {e}");
                TaskState::UpstreamFailed
            }
        };
        tx.set_ti_states(&[placeholder.id], &[TaskState::None], state, now).await?;
        Ok(vec![state])
    }
}

/// The tasks directly downstream of `finished`, each once.
fn downstream_of<'a>(dag: &Dag, finished: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    finished.flat_map(|id| dag.downstream(id)).filter(|id| seen.insert(*id)).map(String::from).collect()
}
