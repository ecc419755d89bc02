//! The model registry's part in a task's path: what a `train` or `deploy` try receives at lease time, and what its
//! report changes in the registry, in the transaction that records the try's end.
//!
//! A train try (or a command task's with `registers:`) gets a version number reserved for it and registers that version only if it succeeds; a deploy try
//! sees the model's versions as they were at lease time and its stage change is applied only if production has not
//! moved since, so two deploys deciding against the same production version cannot both win. A monitor try's report
//! is stored with the try's end; the retraining run a drift asks for is triggered right after that commit.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sluice_core::Dag;
use sluice_core::ops_spec::OpSpec;
use sluice_core::protocol::{
    DriftCheck, MODEL_REGISTRY_ENV, MODEL_VERSION_ENV, MonitorReport, RegistryView, ReportRequest, TaskOutcome,
    VersionView,
};
use sluice_store::{Claim, LeafTry, NewModelVersion, NewMonitorReport, RunTx, SetStage, StageRefusal, TaskInstanceRow};

use crate::EngineError;

/// The registry variables of a `train`, `deploy`, `score` or `monitor` try (none for other kinds).
pub(super) async fn model_env(
    tx: &mut Claim<'_>,
    op: &OpSpec,
    now: DateTime<Utc>,
) -> Result<BTreeMap<String, String>, EngineError> {
    let mut env = BTreeMap::new();
    if let Some(model) = op.trained_model() {
        let version = tx.reserve_model_version(model, now).await?;
        env.insert(MODEL_VERSION_ENV.to_owned(), version.to_string());
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
}

/// What a try's report changed in the registry.
#[derive(Debug, Default)]
pub(super) struct ModelOutcome {
    /// Why the try must fail instead, having changed nothing: a report about another model than the task's, or a
    /// promotion decided against a production version that has changed since.
    pub refused: Option<String>,
    /// A drifted monitor report whose task asks for a retraining run: the report's id, the DAG and its `conf`.
    pub retrain: Option<(i64, String, serde_json::Value)>,
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
        };
        let id = tx.record_monitor_report(&new, now).await?;
        if monitor.drifted
            && let Some(dag_id) = spec.monitor.on_drift.as_ref().and_then(|d| d.trigger.clone())
        {
            outcome.retrain = Some((id, dag_id, retrain_conf(monitor, id)));
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

impl super::Engine {
    /// Starts the retraining run a drifted monitor report asks for, and notes it with the report. A failure is
    /// logged, not returned: the report is recorded either way, and says whether a run was started.
    pub(super) async fn trigger_retraining(&self, report_id: i64, dag_id: &str, conf: serde_json::Value) {
        let request = super::runs::TriggerRequest {
            dag_run_id: None,
            logical_date: None,
            data_interval: None,
            conf: Some(conf),
            note: Some(format!("retraining after drift (monitor report {report_id})")),
            // Airflow names a run started by another DAG's task (TriggerDagRunOperator) so.
            triggered_by: "operator".to_owned(),
        };
        match self.trigger_run(dag_id, request).await {
            Ok(run) => {
                if let Err(e) = self.store.set_monitor_retrain_run(report_id, dag_id, &run.run_id).await {
                    tracing::warn!(report_id, "cannot note the retraining run with its report: {e}");
                }
            }
            Err(e) => tracing::error!(report_id, dag_id, "cannot trigger the retraining run: {e}"),
        }
    }
}
