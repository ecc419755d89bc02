//! The worker protocol's decisions: claiming queued tasks, heartbeats, logs, and the end of a try.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{counter, histogram};
use serde_json::Value;
use sluice_core::mapping::{check_mapped_outputs, mapped_args};
use sluice_core::masking::{Masker, stored_rendering};
use sluice_core::ops_spec::{OpSpec, SensorCondition};
use sluice_core::protocol::{
    HeartbeatResponse, LeaseRequest, LeasedTask, LogBatch, LogLine, LogStream, MODEL_VERSION_ENV, ReportRequest,
    SENSOR_CONTEXT_ENV, SensorContext, SensorEnd, TaskOutcome,
};
use sluice_core::skip::skipped_after;
use sluice_core::template::{RenderedCommand, TemplateContext, render_reading};
use sluice_core::xcom::{RETURN_VALUE, XComError, XComValue, check_key};
use sluice_core::{Dag, TaskSpec, TaskState};
use sluice_store::{
    Claim, ClaimedTask, DagRunRow, LogEntry, NewAssetEvent, QualityEntry, Reads, RunTx, TaskInstanceRow, TryEnd,
    TryRecord, TryRef,
};
use uuid::Uuid;

use super::alerts::task_alerts;
use super::data_env::data_task_env;
use super::evaluate::Scope;
use super::masking::{Mentions, add_received_connections, masked, template_connections};
use super::models::{EndTx, model_env, record_model, reserve_versions};
use super::xcom::{Lake, load_values, upstream_outputs, upstream_xcom};
use super::{EndedSpan, Engine};
use crate::EngineError;

/// Leases remembered for their reports at most (see `Engine::remember_leases`).
const MAX_REMEMBERED_LEASES: usize = 100_000;

/// A task rendered for its next try.
struct Prepared {
    command: RenderedCommand,
    /// What is stored with the try as its rendered fields: `command` masked (see `sluice_core::masking`).
    stored: Value,
    /// The secrets the worker masks in what it sends back.
    mask: Vec<String>,
    /// The `SLUICE_*` context variables, and a data task's connections and previous watermark: kept apart from
    /// `command`, which is stored with the try.
    env: BTreeMap<String, String>,
    execution_timeout: Option<Duration>,
    /// A sensor's context, its first poke's start filled in once the try has started or resumed.
    sensor: Option<SensorContext>,
    /// For the alerts and the lineage event of the try's start.
    dag: Arc<Dag>,
    run: Arc<DagRunRow>,
}

/// How a try ended, from a worker's report or from the server itself (lost lease, template error).
struct Ending {
    succeeded: bool,
    exit_code: Option<i64>,
    error: Option<String>,
    /// The return value as it is stored.
    output: Option<XComValue>,
    /// The return value itself, read back when the lake keeps it: what branching and mapping decide on.
    value: Option<Value>,
    /// The values pushed under other keys.
    xcom: Vec<(String, XComValue)>,
    /// A sensor's end without its condition (read only from the reports of sensor tasks).
    sensor: Option<SensorEnd>,
}

impl Ending {
    fn failed(error: String) -> Ending {
        Ending {
            succeeded: false,
            exit_code: None,
            error: Some(error),
            output: None,
            value: None,
            xcom: Vec::new(),
            sensor: None,
        }
    }

    /// What a worker reported. A key no entry may have fails the try.
    fn reported(report: &ReportRequest, is_sensor: bool) -> Ending {
        let mut xcom = report.xcom.clone();
        let output = report.output.clone().map(XComValue::Inline).or_else(|| xcom.remove(RETURN_VALUE));
        let mut ending = Ending {
            succeeded: report.outcome == TaskOutcome::Success,
            exit_code: report.exit_code.map(i64::from),
            error: report.error.clone(),
            value: match &output {
                Some(XComValue::Inline(value)) => Some(value.clone()),
                _ => None,
            },
            output,
            xcom: xcom.into_iter().collect(),
            sensor: report.sensor.clone().filter(|_| is_sensor),
        };
        if ending.succeeded {
            let bad_key = ending.xcom.iter().find_map(|(key, _)| check_key(key).err());
            refuse_if(&mut ending, bad_key.map(|e| e.to_string()));
        }
        ending
    }

    /// Reads the return value back from the lake if it is kept there; a value that cannot be read fails the try.
    async fn load_value(&mut self, lake: &Lake) {
        let Some(kept @ XComValue::Lake(_)) = &self.output else { return };
        match load_values(lake, vec![kept.clone()]).await {
            Ok(values) => self.value = values.into_iter().next(),
            Err(e) => refuse_if(self, Some(e.to_string())),
        }
    }
}

impl Engine {
    /// Hands up to `slots` queued tasks to a worker, waiting up to `wait_ms` for one to be queued.
    pub async fn lease(&self, request: &LeaseRequest) -> Result<Vec<LeasedTask>, EngineError> {
        if self.worker_due_for_touch(&request.worker) {
            let slots = i64::from(request.capacity.unwrap_or(request.slots));
            self.store.touch_worker(&request.worker, &request.hostname, &request.queues, slots).await?;
        }
        let wait = Duration::from_millis(request.wait_ms).min(self.config.max_poll_wait);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so that a task queued in between still wakes us.
            let notified = self.work_queued.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let leased = self.claim(request).await?;
            if !leased.is_empty() || self.is_stopping() || tokio::time::Instant::now() >= deadline {
                return Ok(leased);
            }
            // Wake at least every second: another process (a separate scheduler) may have queued work.
            let recheck = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(recheck) => {}
            }
        }
    }

    async fn claim(&self, request: &LeaseRequest) -> Result<Vec<LeasedTask>, EngineError> {
        let mut tx = self.store.begin().await?;
        let mut claim = tx.claim_queued(&request.queues, i64::from(request.slots)).await?;
        // Read after the claim: a task queued while it waited for a connection or a lock then never seems to start
        // before it was queued.
        let now = Utc::now();
        let lease_until = now + chrono::Duration::from_std(self.config.lease).unwrap_or_default();
        let queued = claim.take_queued();
        let mut leased = Vec::with_capacity(queued.len());
        let mut started = Vec::with_capacity(queued.len());
        let mut unrenderable = Vec::new();
        let mut trains = Vec::new();
        let mut waits = Vec::with_capacity(queued.len());
        for ti in queued {
            waits.extend(ti.queued_at.map(|queued| (now - queued).as_seconds_f64()));
            let prepared = self.prepare(&mut claim, &ti).await?;
            let rendered = prepared.as_ref().map_or(Value::Null, |p| p.stored.clone());
            let (worker, host) = (&request.worker, &request.hostname);
            // Only a sensor's try can be waiting for its next poke: other tasks never pay for the question.
            let resumed = match &prepared {
                Ok(p) if p.sensor.is_some() => claim.resume_try(&ti, worker, host, lease_until).await?,
                _ => None,
            };
            let task = match resumed {
                Some(task) => task,
                None => match claim.start_try(ti, &rendered, worker, host, lease_until, now).await? {
                    Some(task) => {
                        if let Ok(p) = &prepared {
                            let (dag, run, ti) = (&p.dag, &p.run, &task.ti);
                            let mut alerts = task_alerts(dag, ti, TaskState::Running, None, run.logical_date);
                            alerts.extend(self.task_lineage(dag, run, ti, TaskState::Running, None, None));
                            claim.enqueue_notifications(&alerts, now).await?;
                        }
                        task
                    }
                    None => continue,
                },
            };
            match prepared {
                Ok(prepared) => {
                    if let Some(model) = prepared.command.op.as_ref().and_then(OpSpec::trained_model) {
                        trains.push((model.to_owned(), leased.len()));
                    }
                    started.push((task.lease_id, task.ti.run_pk, task.ti.task_id.clone()));
                    leased.push(self.leased_task(&task, prepared));
                }
                Err(message) => unrenderable.push((task, message)),
            }
        }
        for (index, version) in reserve_versions(&mut claim, trains, now).await? {
            leased[index].env.insert(MODEL_VERSION_ENV.to_owned(), version.to_string());
        }
        tx.commit().await?;
        for wait in waits {
            histogram!("sluice_task_start_latency_seconds").record(wait);
        }
        for task in &leased {
            tracing::info!(dag_id = %task.dag_id, run_id = %task.dag_run_id, task_id = %task.task_id,
                try_number = task.try_number, worker = %request.worker, "task leased");
        }
        self.remember_leases(&started);
        // A template that cannot render fails the try like a task error, retries included. That is a decision
        // about the run, made under its lock in a transaction of its own: the claim holds task instances, and
        // locking a run after them is the order that deadlocks.
        for (task, message) in unrenderable {
            self.end_leased_try(&task.ti, Ending::failed(message), now, |_| true).await?;
        }
        Ok(leased)
    }

    /// Renders the next try of a queued task into what its worker runs; `Err(message)` when its templates fail.
    async fn prepare(
        &self,
        claim: &mut Claim<'_>,
        ti: &TaskInstanceRow,
    ) -> Result<Result<Prepared, String>, EngineError> {
        let tx = &mut claim.reads();
        let Some(run) = self.runs.get_in(tx, ti.run_pk).await? else {
            return Ok(Err(format!("DAG run of task {} is gone", ti.task_id)));
        };
        let dag = self.dags.get_in(tx, run.version_id).await?;
        let Some(resolved) = dag.resolved_task(&ti.task_id) else {
            return Ok(Err(format!("task {:?} is not in the DAG version of this run", ti.task_id)));
        };
        let mentions = Mentions::of(&dag, &ti.task_id);
        let mut context = match self.template_context(tx, &dag, &run, ti, ti.try_number + 1, mentions).await? {
            Ok(context) => context,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if let Some(task) = dag.task(&ti.task_id).filter(|t| t.is_mapped())
            && let Ok(map_index) = usize::try_from(ti.map_index)
        {
            let args = if mentions.outputs {
                mapped_args(task, &context.outputs, map_index).map_err(|e| e.to_string())
            } else {
                upstream_outputs(tx, &self.lake, &dag, run.id, &ti.task_id)
                    .await?
                    .map_err(|e| e.to_string())
                    .and_then(|outputs| mapped_args(task, &outputs, map_index).map_err(|e| e.to_string()))
            };
            match args {
                Ok(args) => context.args = args,
                Err(message) => return Ok(Err(message)),
            }
        }
        let rendering = render_reading(&dag, &ti.task_id, &context);
        let keys = &self.config.sensitive;
        let mut confidential = context.confidential(&rendering.reads, keys);
        let command = match rendering.command {
            Ok(command) => command,
            Err(e) => return Ok(Err(masked(&confidential, &e.to_string()))),
        };
        let mut env = context.sluice_env();
        env.extend(sluice_core::python::lease_env(&dag, &ti.task_id, &context));
        if let Some(op) = &command.op {
            match data_task_env(tx, op).await? {
                Ok(data_env) => {
                    add_received_connections(&mut confidential, &data_env, keys);
                    env.extend(data_env);
                }
                Err(message) => return Ok(Err(message)),
            }
            env.extend(model_env(claim, op).await?);
        }
        let sensor = match &command.op {
            Some(OpSpec::Sensor(spec)) => Some(SensorContext {
                first_poke: Utc::now(),
                interval_end: run.data_interval_end.unwrap_or(run.run_after),
                timezone: dag.timezone().name().to_owned(),
                external_states: external_states(&mut claim.reads(), &spec.sensor, run.logical_date).await?,
            }),
            _ => None,
        };
        let stored = stored_rendering(&serde_json::to_value(&command).unwrap_or_default(), &confidential);
        let mask = Masker::new(confidential.secrets).secrets().to_vec();
        let execution_timeout = resolved.execution_timeout;
        Ok(Ok(Prepared { command, stored, mask, env, execution_timeout, sensor, dag, run }))
    }

    fn leased_task(&self, task: &ClaimedTask, prepared: Prepared) -> LeasedTask {
        let ti = &task.ti;
        let Prepared { command, env: context_env, execution_timeout, mask, sensor, .. } = prepared;
        let mut env = command.env;
        env.extend(context_env);
        if let Some(mut sensor) = sensor {
            // The start of the try's first poke: the timeout counts from there across reschedules.
            sensor.first_poke = ti.start_date.unwrap_or(sensor.first_poke);
            env.insert(SENSOR_CONTEXT_ENV.to_owned(), serde_json::to_string(&sensor).unwrap_or_default());
        }
        LeasedTask {
            ti_id: ti.id,
            lease_id: task.lease_id,
            dag_id: ti.dag_id.clone(),
            dag_run_id: ti.run_id.clone(),
            task_id: ti.task_id.clone(),
            map_index: i32::try_from(ti.map_index).unwrap_or(-1),
            try_number: u32::try_from(ti.try_number).unwrap_or(1),
            argv: command.argv,
            op: command.op,
            env,
            cwd: command.cwd,
            execution_timeout_ms: execution_timeout.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            heartbeat_interval_ms: u64::try_from(self.config.lease.as_millis() / 3).unwrap_or(1000).max(100),
            lease_ms: u64::try_from(self.config.lease.as_millis()).unwrap_or(30_000),
            mask,
        }
    }

    /// The context of a try's templates; `Err` when an upstream output kept in the lake cannot be read.
    async fn template_context(
        &self,
        tx: &mut Reads<'_>,
        dag: &Dag,
        run: &DagRunRow,
        ti: &TaskInstanceRow,
        try_number: i64,
        mentions: Mentions,
    ) -> Result<Result<TemplateContext, XComError>, EngineError> {
        let params = sluice_core::template::resolve_params(&dag.spec.params, &run.conf).unwrap_or_default();
        // Read only for the tasks that use them: the instances of a wide map would each read the whole list.
        let outputs = match mentions.outputs {
            true => upstream_outputs(tx, &self.lake, dag, run.id, &ti.task_id).await?,
            false => Ok(BTreeMap::new()),
        };
        let xcom = match mentions.xcom {
            true => upstream_xcom(tx, &self.lake, dag, run.id, &ti.task_id).await?,
            false => Ok(BTreeMap::new()),
        };
        let (outputs, xcom) = match (outputs, xcom) {
            (Ok(outputs), Ok(xcom)) => (outputs, xcom),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        Ok(Ok(TemplateContext {
            dag_id: run.dag_id.clone(),
            task_id: ti.task_id.clone(),
            run_id: run.run_id.clone(),
            logical_date: run.logical_date,
            data_interval_start: run.data_interval_start,
            data_interval_end: run.data_interval_end,
            run_after: run.run_after,
            conf: run.conf.clone(),
            params,
            try_number: u32::try_from(try_number).unwrap_or(1),
            variables: if mentions.variables { tx.variables().await?.into_iter().collect() } else { BTreeMap::new() },
            connections: if mentions.connections { template_connections(tx).await? } else { BTreeMap::new() },
            outputs,
            xcom,
            map_index: ti.map_index,
            args: BTreeMap::new(),
        }))
    }

    /// Keeps a lease alive. [`EngineError::StaleLease`] tells the worker to kill the task.
    pub async fn heartbeat(&self, ti_id: Uuid, lease_id: Uuid) -> Result<HeartbeatResponse, EngineError> {
        let until = Utc::now() + chrono::Duration::from_std(self.config.lease).unwrap_or_default();
        if self.store.extend_lease(ti_id, lease_id, until).await? {
            Ok(HeartbeatResponse { cancel: false })
        } else {
            Err(EngineError::StaleLease)
        }
    }

    pub async fn append_logs(&self, ti_id: Uuid, batch: &LogBatch) -> Result<(), EngineError> {
        if self.store.append_logs(ti_id, batch.lease_id, &log_entries(&batch.lines)).await? {
            Ok(())
        } else {
            Err(EngineError::StaleLease)
        }
    }

    /// Records a worker's report of a try's end and, in the same transaction, schedules its downstream tasks.
    pub async fn report(&self, ti_id: Uuid, report: &ReportRequest) -> Result<(), EngineError> {
        let now = Utc::now();
        let (run_pk, task_id) = match self.take_lease(report.lease_id) {
            Some(known) => known,
            None => {
                let ti = self
                    .store
                    .get_task_instance_by_id(ti_id)
                    .await?
                    .ok_or_else(|| EngineError::NotFound(format!("task instance {ti_id} not found")))?;
                (ti.run_pk, ti.task_id)
            }
        };
        let run = self.runs.get(&self.store, run_pk).await?.ok_or(EngineError::StaleLease)?;
        let dag = self.dags.get(&self.store, run.version_id).await?;
        let is_sensor = dag.task(&task_id).is_some_and(|t| t.kind == sluice_core::ops_spec::SENSOR_KIND);
        let mut ending = Ending::reported(report, is_sensor);
        let is_leaf = dag.downstream(&task_id).is_empty();
        if ending.succeeded && !is_leaf {
            // Branching and mapping decide on the value itself: read back before anything is locked.
            ending.load_value(&self.lake).await;
        }
        // A leaf makes nothing ready, so its end is recorded without holding the run's lock, which would make
        // every report of a wide run wait for the others; the run is settled after the commit. Otherwise the run
        // is locked before the task instance, the order every path uses, so reports never deadlock with the loop.
        let version = run.version_id.to_string();
        let mut tx = self.store.begin().await?;
        if is_leaf {
            let mut leaf = tx.lock_leaf_try(ti_id, report.lease_id).await?.ok_or(EngineError::StaleLease)?;
            let record = try_record(&dag, leaf.ti(), report);
            leaf.record_try(&record, now).await?;
            let ti = leaf.ti().clone();
            let models = record_model(EndTx::Leaf(&mut leaf), &dag, &ti, report, &version, now).await?;
            refuse_if(&mut ending, models.refused);
            let end = self.try_end(&dag, &run, &ti, ending, Some(&record), now);
            let ti = leaf.end_and_commit(&end, now).await?;
            self.log_end(&ti, &end, now);
            if let Some(retraining) = models.retrain {
                self.start_retraining(retraining).await;
            }
            return self.settle_run(ti.run_pk, &ti.task_id).await;
        }
        let mut run = tx.lock_run(run_pk).await?.ok_or(EngineError::StaleLease)?;
        let ti = run.lock_leased_ti(ti_id, report.lease_id).await?.ok_or(EngineError::StaleLease)?;
        let record = try_record(&dag, &ti, report);
        run.record_try(&record, now).await?;
        let models = record_model(EndTx::Run(&mut run), &dag, &ti, report, &version, now).await?;
        refuse_if(&mut ending, models.refused);
        self.end_try(&mut run, &ti, ending, Some(&record), now).await?;
        tx.commit().await?;
        if let Some(retraining) = models.retrain {
            self.start_retraining(retraining).await;
        }
        Ok(())
    }

    /// After a leaf task ended: queue what its end made room for, and finish the run if nothing is left. Each
    /// report checks after its own commit, so the last one to commit always sees the run complete.
    ///
    /// One pass per run at a time in this process: a leaf that ends while a pass runs asks for one more pass
    /// instead of waiting for the run's lock, so that the many ends of a wide run make a few passes, each queueing
    /// as much as there is room for, rather than one pass each, in turn. The passes run on a task of their own, so a
    /// report whose request is dropped cannot leave the run marked as being settled.
    async fn settle_run(&self, run_pk: Uuid, task_id: &str) -> Result<(), EngineError> {
        if self.join_pass(run_pk, false) {
            return Ok(());
        }
        let (unfinished, waiting) = self.store.run_progress(run_pk).await?;
        if unfinished && !waiting {
            return Ok(());
        }
        if self.join_pass(run_pk, true) {
            return Ok(());
        }
        let engine = self.clone();
        // Any leaf will do for the passes: a leaf has nothing downstream, so the pass only queues and finishes.
        let leaf = task_id.to_owned();
        tokio::spawn(async move { engine.settle_passes(run_pk, &leaf).await });
        Ok(())
    }

    /// Whether a pass is settling the run right now; if so, it is asked to go round once more. Otherwise, with
    /// `start`, the run is marked as being settled, in the same critical section, and the caller starts the pass.
    fn join_pass(&self, run_pk: Uuid, start: bool) -> bool {
        let mut settling = self.settling.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(again) = settling.get_mut(&run_pk) {
            *again = true;
            return true;
        }
        if start {
            settling.insert(run_pk, false);
        }
        false
    }

    fn remember_leases(&self, started: &[(Uuid, Uuid, String)]) {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        // Leases that end without a report here (lost, cleared, reported to another server) stay behind: forget
        // them all now and then rather than track every other way a try can end. A forgotten lease is looked up.
        if leases.len() >= MAX_REMEMBERED_LEASES {
            leases.clear();
        }
        leases.extend(started.iter().map(|(lease_id, run_pk, task_id)| (*lease_id, (*run_pk, task_id.clone()))));
    }

    fn take_lease(&self, lease_id: Uuid) -> Option<(Uuid, String)> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner).remove(&lease_id)
    }

    async fn settle_passes(&self, run_pk: Uuid, leaf: &str) {
        loop {
            if let Err(e) = self.settle_pass(run_pk, leaf).await {
                // The scheduler loop's next pass over active runs does the same.
                tracing::warn!(%run_pk, "cannot settle the run after a task's end: {e}");
            }
            let mut settling = self.settling.lock().unwrap_or_else(PoisonError::into_inner);
            if settling.get(&run_pk) == Some(&true) {
                settling.insert(run_pk, false);
            } else {
                settling.remove(&run_pk);
                return;
            }
        }
    }

    async fn settle_pass(&self, run_pk: Uuid, leaf: &str) -> Result<(), EngineError> {
        let mut tx = self.store.begin().await?;
        let Some(mut run) = tx.lock_run(run_pk).await? else { return Ok(()) };
        let dag = self.dag_of(&mut run).await?;
        self.evaluate_run(&mut run, &dag, Scope::DownstreamOf(&[leaf]), Utc::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Fails the tries whose worker stopped heartbeating; their retry rules apply. Returns how many.
    pub async fn expire_leases(&self, now: DateTime<Utc>) -> Result<usize, EngineError> {
        let expired = self.store.expired_leases(now, 100).await?;
        let mut count = 0;
        for stale in expired {
            let error = format!(
                "lost: no heartbeat from worker {} since its lease ended",
                stale.worker.as_deref().unwrap_or("?")
            );
            let ending = Ending::failed(error.clone());
            // A heartbeat that arrived in between keeps the lease.
            let still_expired = |ti: &TaskInstanceRow| ti.lease_until.is_none_or(|until| until < now);
            if self.end_leased_try(&stale, ending, now, still_expired).await? {
                counter!("sluice_lease_expiries_total").increment(1);
                tracing::warn!(dag_id = %stale.dag_id, run_id = %stale.run_id, task_id = %stale.task_id, "{error}");
                count += 1;
            }
        }
        Ok(count)
    }

    /// Ends the try that holds `held` (as its lease was known) in a transaction of its own, run locked first, if
    /// that lease still holds the task instance and `still` agrees. Returns whether it ended the try.
    async fn end_leased_try(
        &self,
        held: &TaskInstanceRow,
        ending: Ending,
        now: DateTime<Utc>,
        still: impl Fn(&TaskInstanceRow) -> bool,
    ) -> Result<bool, EngineError> {
        let Some(lease_id) = held.lease_id else { return Ok(false) };
        let mut tx = self.store.begin().await?;
        let Some(mut run) = tx.lock_run(held.run_pk).await? else { return Ok(false) };
        let Some(ti) = run.lock_leased_ti(held.id, lease_id).await? else { return Ok(false) };
        if !still(&ti) {
            return Ok(false);
        }
        self.end_try(&mut run, &ti, ending, None, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends the try holding `ti`, skips what a branch or short-circuit task chose to skip, and schedules the
    /// downstream tasks; what is queued wakes the workers when the transaction commits.
    async fn end_try(
        &self,
        run: &mut RunTx<'_>,
        ti: &TaskInstanceRow,
        mut ending: Ending,
        record: Option<&TryRecord>,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let dag = self.dag_of(run).await?;
        let mut skipped = Vec::new();
        if ending.succeeded {
            let output = ending.value.as_ref();
            let decided = check_mapped_outputs(&dag, &ti.task_id, output)
                .map_err(|e| e.to_string())
                .and_then(|()| skipped_after(&dag, &ti.task_id, output).map_err(|e| e.to_string()));
            match decided {
                Ok(chosen) => skipped = chosen,
                // Nothing is skipped or expanded: the try fails as if the task had raised, and its retries decide.
                Err(message) => refuse_if(&mut ending, Some(message)),
            }
        }
        let end = self.try_end(&dag, run.run(), ti, ending, record, now);
        run.end_try(ti, &end, now).await?;
        self.log_end(ti, &end, now);
        if matches!(end.ti_state, TaskState::UpForRetry | TaskState::UpForReschedule) {
            return Ok(());
        }
        if !skipped.is_empty() {
            let tis = run.run_task_instances(ti.run_pk, Some(&skipped)).await?;
            let ids: Vec<Uuid> = tis.iter().map(|t| t.id).collect();
            run.set_ti_states(&ids, &[TaskState::None], TaskState::Skipped, now).await?;
            tracing::info!(dag_id = %ti.dag_id, run_id = %ti.run_id, task_id = %ti.task_id, ?skipped,
                "downstream tasks skipped");
        }
        // Until the last instance of a mapped task ends, its downstream tasks are decided by the scheduler loop:
        // reading thousands of instances at each end would make a wide map quadratic.
        if dag.task(&ti.task_id).is_some_and(TaskSpec::is_mapped)
            && run.has_unfinished_tis(ti.run_pk, Some(&ti.task_id)).await?
        {
            return Ok(());
        }
        let finished: Vec<&str> =
            std::iter::once(ti.task_id.as_str()).chain(skipped.iter().map(String::as_str)).collect();
        self.evaluate_run(run, &dag, Scope::DownstreamOf(&finished), now).await
    }
}

/// What an external-task sensor's poke finds: the other DAG's states at the run's logical date (none for a run
/// without one, whose sensor then waits until its timeout).
async fn external_states(
    tx: &mut Reads<'_>,
    condition: &SensorCondition,
    logical_date: Option<DateTime<Utc>>,
) -> Result<Vec<TaskState>, EngineError> {
    match (condition, logical_date) {
        (SensorCondition::ExternalTask { external_dag_id, external_task_id, .. }, Some(date)) => {
            Ok(tx.external_states(external_dag_id, external_task_id.as_deref(), date).await?)
        }
        _ => Ok(Vec::new()),
    }
}

/// Fails a successful try whose report the registry refused (see `record_model`).
fn refuse_if(ending: &mut Ending, refused: Option<String>) {
    if let Some(refused) = refused {
        ending.succeeded = false;
        ending.error = Some(refused);
    }
}

/// What a report says about the try beyond its outcome, stored in the transaction that records its end: its
/// last log lines, the quality reports whatever the outcome, and on success one asset event per output the task
/// declares (with the stats the worker reported for it, if any: a command task's events have none).
fn try_record(dag: &Dag, ti: &TaskInstanceRow, report: &ReportRequest) -> TryRecord {
    let outputs = dag.task(&ti.task_id).map(|t| t.outputs.as_slice()).unwrap_or_default();
    let events = if report.outcome == TaskOutcome::Success {
        outputs
            .iter()
            .map(|uri| {
                let written = report.assets.iter().find(|a| &a.uri == uri);
                NewAssetEvent {
                    uri: uri.clone(),
                    row_count: written.and_then(|w| w.rows),
                    schema: written.and_then(|w| w.schema.clone()),
                    content_hash: written.and_then(|w| w.content_hash.clone()),
                    watermark: written.and_then(|w| w.watermark.clone()),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    TryRecord {
        lease_id: report.lease_id,
        from: TryRef {
            try_id: report.lease_id.to_string(),
            dag_id: ti.dag_id.clone(),
            run_id: ti.run_id.clone(),
            task_id: ti.task_id.clone(),
            try_number: ti.try_number,
        },
        owner: dag.spec.owner.clone(),
        logs: log_entries(&report.logs),
        quality: report
            .quality
            .iter()
            .map(|q| QualityEntry {
                uri: q.uri.clone(),
                status: q.status.as_str().to_owned(),
                report: q.report.clone(),
            })
            .collect(),
        events,
    }
}

fn log_entries(lines: &[LogLine]) -> Vec<LogEntry> {
    lines
        .iter()
        .map(|l| {
            let stream = match l.stream {
                LogStream::Stdout => "stdout",
                LogStream::Stderr => "stderr",
                LogStream::System => "system",
            };
            (l.timestamp, stream.to_string(), l.line.clone())
        })
        .collect()
}

impl Engine {
    /// How a try's end moves its task instance on: success, a retry after the task's delay, or failure; for a
    /// sensor also its next poke, a skip at its timeout with `soft_fail`, or a failure without retry at its
    /// timeout. With it go the alerts and the lineage event the end fires.
    fn try_end(
        &self,
        dag: &Dag,
        run: &DagRunRow,
        ti: &TaskInstanceRow,
        mut ending: Ending,
        record: Option<&TryRecord>,
        now: DateTime<Utc>,
    ) -> TryEnd {
        let sensor = ending.sensor.take();
        let can_retry = ti.try_number <= ti.max_tries && !matches!(sensor, Some(SensorEnd::TimedOut { .. }));
        let skip_code = ending
            .exit_code
            .filter(|code| !ending.succeeded && dag.task(&ti.task_id).is_some_and(|t| t.skips_on_exit_code(*code)));
        let (ti_state, next_retry_at) = if ending.succeeded {
            match sensor {
                Some(SensorEnd::Reschedule { at }) => (TaskState::UpForReschedule, Some(at)),
                Some(SensorEnd::Skipped { reason }) => {
                    ending.error = Some(reason);
                    (TaskState::Skipped, None)
                }
                Some(SensorEnd::TimedOut { .. }) | None => (TaskState::Success, None),
            }
        } else if let Some(code) = skip_code {
            ending.error = Some(format!("skipped: the command exited with code {code}, one of its skip_on_exit_code"));
            (TaskState::Skipped, None)
        } else if can_retry {
            let delay = dag
                .resolved_task(&ti.task_id)
                .map(|t| t.retry_delay_after(u32::try_from(ti.try_number).unwrap_or(1)))
                .unwrap_or_default();
            (TaskState::UpForRetry, Some(now + chrono::Duration::from_std(delay).unwrap_or_default()))
        } else {
            (TaskState::Failed, None)
        };
        let mut alerts = task_alerts(dag, ti, ti_state, ending.error.as_deref(), run.logical_date);
        alerts.extend(self.task_lineage(dag, run, ti, ti_state, ending.error.as_deref(), record));
        TryEnd {
            try_state: match ti_state {
                TaskState::Success | TaskState::Skipped | TaskState::UpForReschedule => ti_state,
                _ => TaskState::Failed,
            },
            ti_state,
            exit_code: ending.exit_code,
            error: ending.error,
            output: ending.output,
            xcom: ending.xcom,
            next_retry_at,
            alerts,
        }
    }

    /// Logs a try's end, and records its duration and its span.
    fn log_end(&self, ti: &TaskInstanceRow, end: &TryEnd, now: DateTime<Utc>) {
        tracing::info!(dag_id = %ti.dag_id, run_id = %ti.run_id, task_id = %ti.task_id, try_number = ti.try_number,
            state = %end.ti_state, error = end.error.as_deref().unwrap_or(""), "task try ended");
        let Some(start) = ti.start_date else { return };
        histogram!("sluice_task_duration_seconds", "dag_id" => ti.dag_id.clone(), "state" => end.try_state.as_str())
            .record((now - start).as_seconds_f64());
        if let (Some(traces), Some(try_id)) = (&self.config.traces, ti.lease_id) {
            traces.ended(&EndedSpan {
                dag_id: &ti.dag_id,
                run_id: &ti.run_id,
                run_pk: ti.run_pk,
                task: Some((&ti.task_id, ti.map_index, ti.try_number, try_id)),
                state: end.try_state.as_str(),
                error: end.error.as_deref(),
                start,
                end: now,
            });
        }
    }
}
