//! The model registry's part in a task's path: what a `train` or `deploy` try receives at lease time, and what its
//! report changes in the registry, in the transaction that records the try's end.
//!
//! A train try (or a command task's with `registers:`) gets a version number reserved for it and registers that version only if it succeeds; a deploy try
//! sees the model's versions as they were at lease time and its stage change is applied only if production has not
//! moved since, so two deploys deciding against the same production version cannot both win. A monitor try gets the
//! labels fed back since the model's last report; its report is stored with the try's end, and the retraining run a
//! drift asks for is requested in the same transaction, then created right after the commit (or, if the server
//! stopped in between, by a scheduler pass: [`super::Engine::start_pending_retraining`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sluice_core::Dag;
use sluice_core::ops_spec::OpSpec;
use sluice_core::protocol::{
    DriftCheck, FedBackLabel, FeedbackView, MODEL_FEEDBACK_ENV, MODEL_REGISTRY_ENV, MonitorReport, RegistryView,
    ReportRequest, TaskOutcome, VersionView,
};
use sluice_store::{
    Claim, FeedbackCounts, FeedbackSince, LeafTry, NewModelVersion, NewMonitorReport, RunTx, SetStage, StageRefusal,
    TaskInstanceRow,
};

use crate::EngineError;

/// Labels read for a monitor try at most; the newest are kept.
const FEEDBACK_ROWS: i64 = 2_000;

/// The bytes of labels a monitor try is given at most: they travel in one environment variable, and Linux refuses
/// to start a process with a variable over 128 KiB.
const FEEDBACK_BYTES: usize = 100_000;

/// Reserves the version numbers of a claim's `train` tries, one per `(model, index of the try)`, in the order of the
/// models' names: each reservation locks its model's row until the claim commits, and two claims taking two models'
/// rows in different orders would deadlock.
pub(super) async fn reserve_versions(
    tx: &mut Claim<'_>,
    mut trains: Vec<(String, usize)>,
    now: DateTime<Utc>,
) -> Result<Vec<(usize, i64)>, EngineError> {
    trains.sort();
    let mut reserved = Vec::with_capacity(trains.len());
    for (model, index) in trains {
        reserved.push((index, tx.reserve_model_version(&model, now).await?));
    }
    Ok(reserved)
}

/// The registry variables of a `deploy`, `score` or `monitor` try (none for other kinds; a `train` try's version is
/// reserved by [`reserve_versions`]), and a monitor try's fed-back labels.
pub(super) async fn model_env(tx: &mut Claim<'_>, op: &OpSpec) -> Result<BTreeMap<String, String>, EngineError> {
    let mut env = BTreeMap::new();
    if let OpSpec::Monitor(spec) = op {
        let since = tx.reads().feedback_since(&spec.monitor.model, FEEDBACK_ROWS).await?;
        if let Some(view) = feedback_view(since) {
            let json = serde_json::to_string(&view).map_err(|e| EngineError::Invalid(format!("feedback: {e}")))?;
            env.insert(MODEL_FEEDBACK_ENV.to_owned(), json);
        }
    }
    if let Some(model) = op.registry_model() {
        let (versions, previous_production) = tx.reads().model_versions_for_deploy(model).await?;
        let view = RegistryView {
            model: model.to_owned(),
            versions: versions
                .into_iter()
                .map(|v| VersionView {
                    version: v.version,
                    stage: v.stage,
                    metrics: v.metrics,
                    artifact_uri: v.artifact_uri,
                })
                .collect(),
            previous_production,
        };
        let json = serde_json::to_string(&view).map_err(|e| EngineError::Invalid(format!("registry view: {e}")))?;
        env.insert(MODEL_REGISTRY_ENV.to_owned(), json);
    }
    Ok(env)
}

/// The labels above the last report's mark that fit in [`FEEDBACK_BYTES`], newest first; none when there are none.
fn feedback_view(since: FeedbackSince) -> Option<FeedbackView> {
    let through = since.rows.first()?.id;
    let mut bytes = 0;
    let labels = since
        .rows
        .into_iter()
        .take_while(|row| {
            // The JSON of one label: its texts, escaped at worst to twice their length, and the field names.
            bytes += 2 * (row.request_id.len() + row.label.len()) + 64;
            bytes <= FEEDBACK_BYTES
        })
        .map(|row| FedBackLabel { request_id: row.request_id, record: row.record, label: row.label })
        .collect();
    Some(FeedbackView { after: since.after, through, total: since.total, labels })
}

/// The transaction that records a try's end: under its run's lock, or a leaf's own (see `Engine::report`).
pub(super) enum EndTx<'a, 't> {
    Run(&'a mut RunTx<'t>),
    Leaf(&'a mut LeafTry),
}

impl EndTx<'_, '_> {
    async fn register_model_version(
        &mut self,
        new: &NewModelVersion<'_>,
        now: DateTime<Utc>,
    ) -> sluice_store::Result<()> {
        match self {
            EndTx::Run(run) => run.register_model_version(new, now).await,
            EndTx::Leaf(leaf) => leaf.register_model_version(new, now).await,
        }
    }

    async fn set_model_stage(
        &mut self,
        change: &SetStage<'_>,
        now: DateTime<Utc>,
    ) -> sluice_store::Result<Result<(), StageRefusal>> {
        match self {
            EndTx::Run(run) => run.set_model_stage(change, now).await,
            EndTx::Leaf(leaf) => leaf.set_model_stage(change, now).await,
        }
    }

    async fn record_monitor_report(
        &mut self,
        new: &NewMonitorReport<'_>,
        now: DateTime<Utc>,
    ) -> sluice_store::Result<i64> {
        match self {
            EndTx::Run(run) => run.record_monitor_report(new, now).await,
            EndTx::Leaf(leaf) => leaf.record_monitor_report(new, now).await,
        }
    }

    async fn request_retraining(
        &mut self,
        id: i64,
        dag_id: &str,
        run_id: &str,
        conf: &serde_json::Value,
    ) -> sluice_store::Result<()> {
        match self {
            EndTx::Run(run) => run.request_retraining(id, dag_id, run_id, conf).await,
            EndTx::Leaf(leaf) => leaf.request_retraining(id, dag_id, run_id, conf).await,
        }
    }
}

/// A retraining run asked for by a drifted report, to create after the report's commit.
#[derive(Debug)]
pub(super) struct Retraining {
    pub report_id: i64,
    pub dag_id: String,
    pub run_id: String,
    pub conf: serde_json::Value,
}

/// What a try's report changed in the registry.
#[derive(Debug, Default)]
pub(super) struct ModelOutcome {
    /// Why the try must fail instead, having changed nothing: a report about another model than the task's, or a
    /// promotion decided against a production version that has changed since.
    pub refused: Option<String>,
    /// A drifted monitor report whose task asks for a retraining run: asked for in the report's transaction.
    pub retrain: Option<Retraining>,
}

/// Applies what a successful train (or registering command), deploy or monitor try reports: registers its model version, changes a stage or
/// stores its drift report.
pub(super) async fn record_model(
    mut tx: EndTx<'_, '_>,
    dag: &Dag,
    ti: &TaskInstanceRow,
    report: &ReportRequest,
    dag_version_id: &str,
    now: DateTime<Utc>,
) -> Result<ModelOutcome, EngineError> {
    // Every report passes here; only those of model tasks carry anything, and only they pay for the task's spec.
    let carries_model = report.model.is_some() || report.stage_change.is_some() || report.monitor.is_some();
    if report.outcome != TaskOutcome::Success || !carries_model {
        return Ok(ModelOutcome::default());
    }
    let refuse = |why: String| Ok(ModelOutcome { refused: Some(why), retrain: None });
    let op = dag.task(&ti.task_id).and_then(|t| t.op_spec());
    if let Some(model) = &report.model {
        let Some(trained) = op.as_ref().and_then(OpSpec::trained_model) else {
            return refuse("only a train task, or a command task with `registers`, registers model versions".into());
        };
        if trained != model.name {
            return refuse(format!("the task trains {trained:?}, not {:?}", model.name));
        }
        let new = NewModelVersion {
            model: &model.name,
            version: model.version,
            algorithm: &model.algorithm,
            params: &model.params,
            metrics: &model.metrics,
            details: &model.details,
            artifact_uri: &model.artifact_uri,
            input_uri: &model.input_uri,
            input_content_hash: model.input_content_hash.as_deref(),
            description: model.description.as_deref(),
            dag_id: &ti.dag_id,
            run_id: &ti.run_id,
            task_id: &ti.task_id,
            try_id: &report.lease_id.to_string(),
            dag_version_id: Some(dag_version_id),
        };
        tx.register_model_version(&new, now).await?;
    }
    if let Some(change) = &report.stage_change {
        let Some(OpSpec::Deploy(deploy)) = &op else {
            return refuse("only a deploy task changes a model's stage".to_owned());
        };
        if deploy.model != change.model {
            return refuse(format!("the task deploys {:?}, not {:?}", deploy.model, change.model));
        }
        let changed_by = format!("run:{}/{}/{}", ti.dag_id, ti.run_id, ti.task_id);
        let set = SetStage {
            model: &change.model,
            version: change.version,
            stage: &change.stage,
            changed_by: &changed_by,
            reason: Some(&change.reason),
            expected_production: Some(change.expected_production),
        };
        if let Err(refusal) = tx.set_model_stage(&set, now).await? {
            return refuse(format!("the stage change was refused: {refusal}"));
        }
    }
    let mut outcome = ModelOutcome::default();
    if let Some(monitor) = &report.monitor {
        let Some(OpSpec::Monitor(spec)) = &op else {
            return refuse("only a monitor task reports drift".to_owned());
        };
        let checks = serde_json::to_value(&monitor.checks).map_err(|e| EngineError::Invalid(e.to_string()))?;
        let new = NewMonitorReport {
            model: &monitor.model,
            version: monitor.version,
            input_uri: &monitor.input_uri,
            rows: i64::try_from(monitor.rows).unwrap_or(i64::MAX),
            drifted: monitor.drifted,
            checks: &checks,
            dag_id: &ti.dag_id,
            run_id: &ti.run_id,
            task_id: &ti.task_id,
            try_id: &report.lease_id.to_string(),
            feedback: monitor.feedback.map(|f| FeedbackCounts {
                labels: f.labels,
                matched: f.matched,
                through: f.through,
            }),
        };
        let id = tx.record_monitor_report(&new, now).await?;
        if monitor.drifted
            && let Some(dag_id) = spec.monitor.on_drift.as_ref().and_then(|d| d.trigger.clone())
        {
            // Named after the report, so that creating it twice (after the commit, and by a scheduler that finds it
            // still pending) creates it once.
            let retraining = Retraining {
                report_id: id,
                dag_id,
                run_id: format!("retrain__report_{id}"),
                conf: retrain_conf(monitor, id),
            };
            tx.request_retraining(id, &retraining.dag_id, &retraining.run_id, &retraining.conf).await?;
            outcome.retrain = Some(retraining);
        }
    }
    Ok(outcome)
}

/// The `conf` of the retraining run a drifted report starts: why, in words and as data.
fn retrain_conf(monitor: &MonitorReport, report_id: i64) -> serde_json::Value {
    let drifted: Vec<&DriftCheck> = monitor.checks.iter().filter(|c| c.drifted).collect();
    let reason = drifted
        .iter()
        .map(|c| {
            format!("{} {} {:.4} (threshold {})", c.feature, c.statistic, c.value, c.threshold.unwrap_or(f64::NAN))
        })
        .collect::<Vec<_>>()
        .join("; ");
    serde_json::json!({
        "reason": format!("drift of {} version {}: {reason}", monitor.model, monitor.version),
        "drifted_features": monitor.drifted_features,
        "drift": drifted,
        "model": monitor.model,
        "version": monitor.version,
        "monitor_report_id": report_id,
    })
}

/// Reports whose retraining runs a scheduler pass creates at most.
const PENDING_RETRAINING: i64 = 20;

impl super::Engine {
    /// Creates the retraining run a drifted monitor report asked for. A failure is logged, not returned: the report
    /// is recorded either way, and the run stays asked for (until its DAG is found gone), so that a later scheduler
    /// pass creates it.
    pub(super) async fn start_retraining(&self, retraining: Retraining) {
        let Retraining { report_id, dag_id, run_id, conf } = retraining;
        let request = super::runs::TriggerRequest {
            dag_run_id: Some(run_id.clone()),
            logical_date: None,
            data_interval: None,
            conf: Some(conf),
            note: Some(format!("retraining after drift (monitor report {report_id})")),
            // Airflow names a run started by another DAG's task (TriggerDagRunOperator) so.
            triggered_by: "operator".to_owned(),
        };
        let started = match self.trigger_run(&dag_id, request).await {
            Ok(_) => true,
            // Created already: by this process before a crash, or by another scheduler.
            Err(EngineError::Conflict(_)) if self.store.get_run(&dag_id, &run_id).await.ok().flatten().is_some() => {
                true
            }
            Err(e @ (EngineError::NotFound(_) | EngineError::Invalid(_))) => {
                tracing::error!(report_id, dag_id, "the retraining DAG cannot be triggered: {e}");
                false
            }
            Err(e) => {
                tracing::error!(report_id, dag_id, "cannot trigger the retraining run yet, will retry: {e}");
                return;
            }
        };
        if let Err(e) = self.store.retraining_done(report_id, started).await {
            tracing::warn!(report_id, "cannot note the retraining run with its report: {e}");
        }
    }

    /// Creates the retraining runs that drifted reports asked for and that do not exist yet: those whose server
    /// stopped between the report's commit and the run's creation. Returns how many reports were pending.
    pub async fn start_pending_retraining(&self) -> Result<usize, EngineError> {
        let pending = self.store.pending_retraining(PENDING_RETRAINING).await?;
        let count = pending.len();
        for report in pending {
            let (Some(dag_id), Some(run_id), Some(conf)) =
                (report.retrain_dag_id, report.retrain_run_id, report.retrain_conf)
            else {
                continue;
            };
            self.start_retraining(Retraining { report_id: report.id, dag_id, run_id, conf }).await;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use sluice_store::FeedbackRow;

    use super::*;

    fn row(id: i64, label: &str) -> FeedbackRow {
        FeedbackRow { id, request_id: format!("r{id}"), record: 0, label: label.to_owned() }
    }

    #[test]
    fn a_monitor_try_gets_the_newest_labels_that_fit_in_its_environment() {
        assert_eq!(feedback_view(FeedbackSince { after: Some(3), total: 0, rows: Vec::new() }), None);
        let long = "x".repeat(10_000);
        let rows: Vec<FeedbackRow> = (1..=20).rev().map(|id| row(id, &long)).collect();
        let view = feedback_view(FeedbackSince { after: Some(0), total: 20, rows }).unwrap();
        assert_eq!((view.after, view.through, view.total), (Some(0), 20, 20));
        let ids: Vec<&str> = view.labels.iter().map(|l| l.request_id.as_str()).collect();
        assert_eq!(ids, ["r20", "r19", "r18", "r17"], "the newest, as many as fit");
        let json = serde_json::to_string(&view).unwrap();
        assert!(json.len() <= FEEDBACK_BYTES, "{}", json.len());
    }
}
