//! The model registry's part in a task's path: what a `train` or `deploy` try receives at lease time, and what its
//! report changes in the registry, in the transaction that records the try's end.
//!
//! A train try gets a version number reserved for it and registers that version only if it succeeds; a deploy try
//! sees the model's versions as they were at lease time and its stage change is applied only if production has not
//! moved since, so two deploys deciding against the same production version cannot both win.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sluice_core::Dag;
use sluice_core::ops_spec::OpSpec;
use sluice_core::protocol::{
    MODEL_REGISTRY_ENV, MODEL_VERSION_ENV, RegistryView, ReportRequest, TaskOutcome, VersionView,
};
use sluice_store::{Claim, LeafTry, NewModelVersion, RunTx, SetStage, StageRefusal, TaskInstanceRow};

use crate::EngineError;

/// The registry variables of a `train` or `deploy` try (none for other kinds).
pub(super) async fn model_env(
    tx: &mut Claim<'_>,
    op: &OpSpec,
    now: DateTime<Utc>,
) -> Result<BTreeMap<String, String>, EngineError> {
    let mut env = BTreeMap::new();
    match op {
        OpSpec::Train(train) => {
            let version = tx.reserve_model_version(&train.model.name, now).await?;
            env.insert(MODEL_VERSION_ENV.to_owned(), version.to_string());
        }
        OpSpec::Deploy(deploy) => {
            let (versions, previous_production) = tx.reads().model_versions_for_deploy(&deploy.model).await?;
            let view = RegistryView {
                model: deploy.model.clone(),
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
        _ => {}
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
}

/// Applies what a successful train or deploy try reports: registers its model version or changes a stage. Returns
/// why the try must fail instead, changing nothing (a report about another model than the task's, or a promotion
/// decided against a production version that has changed since).
pub(super) async fn record_model(
    mut tx: EndTx<'_, '_>,
    dag: &Dag,
    ti: &TaskInstanceRow,
    report: &ReportRequest,
    dag_version_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, EngineError> {
    if report.outcome != TaskOutcome::Success {
        return Ok(None);
    }
    let op = dag.task(&ti.task_id).and_then(|t| t.op_spec());
    if let Some(model) = &report.model {
        let Some(OpSpec::Train(train)) = &op else {
            return Ok(Some("only a train task registers model versions".to_owned()));
        };
        if train.model.name != model.name {
            return Ok(Some(format!("the task trains {:?}, not {:?}", train.model.name, model.name)));
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
            return Ok(Some("only a deploy task changes a model's stage".to_owned()));
        };
        if deploy.model != change.model {
            return Ok(Some(format!("the task deploys {:?}, not {:?}", deploy.model, change.model)));
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
            return Ok(Some(format!("the stage change was refused: {refusal}")));
        }
    }
    Ok(None)
}
