//! One built-in data task from its rendered configuration to the output a worker reports: what `sluice run-op`
//! executes in the worker's child process.
//!
//! The output lists every asset written (the asset events: rows, schema, content hash) and, for `quality`, each
//! input's report and status. A quality task whose `error` checks fail still produces its output, so that the
//! failed report is kept; [`OpOutput`]'s statuses say whether the task failed.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use sluice_core::connection::Connection;
use sluice_core::ops_spec::{OpSpec, Severity};
use sluice_core::protocol::{
    AssetQuality, AssetWrite, FeedbackView, OpOutput, QualityStatus, RegistryView, SensorContext,
};

use crate::error::{OpsError, Result};
use crate::ingest::{ColumnInfo, run_ingest};
use crate::lake::{Lake, WrittenPartition};
use crate::model::{run_command, run_deploy, run_monitor, run_score, run_train};
use crate::quality::{QualityReport, run_quality};
use crate::sensor::run_sensor;
use crate::sql::run_sql;
use crate::transform::run_transform;

/// Where and when a data task runs.
#[derive(Clone, Copy)]
pub struct OpContext<'a> {
    pub lake: &'a Lake,
    /// Relative source paths are read from here: the DAGs folder.
    pub base_dir: &'a Path,
    /// The run's logical date: the partition read and written.
    pub ds: NaiveDate,
    /// The reference time of freshness checks.
    pub now: DateTime<Utc>,
    /// `ingest` with a `watermark`: the mark of the previous load.
    pub previous_watermark: Option<&'a str>,
    /// The connections the task names, by id.
    pub connections: &'a BTreeMap<String, Connection>,
    /// The task's log, for what happens along the way (a retried request, the rows a statement changed).
    pub log: &'a dyn Fn(&str),
    /// `train`: the version number the server reserved for this try.
    pub model_version: Option<i64>,
    /// `deploy`: the model's versions as the server saw them at lease time.
    pub registry: Option<&'a RegistryView>,
    /// `monitor`: the labels fed back since the model's last report.
    pub feedback: Option<&'a FeedbackView>,
    /// The try's task and run, for what it tells others (a drift webhook).
    pub run: Option<&'a TaskRun>,
    /// `sensor`: when its first poke started, and what a time sensor counts from.
    pub sensor: Option<&'a SensorContext>,
}

/// Which task of which run a try belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRun {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
}

/// A connection with its id, for messages.
pub(crate) type NamedConnection<'a> = (&'a str, &'a Connection);

impl<'a> OpContext<'a> {
    pub(crate) fn connection<'b>(&self, conn_id: &'b str) -> Result<NamedConnection<'b>>
    where
        'a: 'b,
    {
        let conn = self.connections.get(conn_id).ok_or_else(|| OpsError::MissingConnection(conn_id.to_owned()))?;
        Ok((conn_id, conn))
    }
}

/// The model's versions that came with a deploy, score or monitor try.
fn registry<'a>(ctx: &OpContext<'a>) -> Result<&'a RegistryView> {
    ctx.registry
        .ok_or_else(|| OpsError::Invalid("the registry did not come with this try ($SLUICE_MODEL_REGISTRY)".into()))
}

/// The version number the server reserved for a try that registers one.
fn reserved_version(ctx: &OpContext<'_>) -> Result<i64> {
    ctx.model_version
        .ok_or_else(|| OpsError::Invalid("no model version was reserved for this try ($SLUICE_MODEL_VERSION)".into()))
}

/// Runs `op`.
pub fn run_op(op: &OpSpec, ctx: &OpContext<'_>) -> Result<OpOutput> {
    match op {
        OpSpec::Ingest(spec) => {
            let report = run_ingest(spec, ctx)?;
            let mut assets = asset_writes(&report.outputs, &report.schema)?;
            for asset in &mut assets {
                asset.watermark.clone_from(&report.watermark);
            }
            Ok(OpOutput { assets, ..OpOutput::default() })
        }
        OpSpec::Quality(spec) => {
            let reports = run_quality(spec, ctx.lake, ctx.ds, ctx.now)?;
            let quality =
                reports.into_iter().map(|(uri, report)| asset_quality(uri, &report)).collect::<Result<_>>()?;
            Ok(OpOutput { quality, ..OpOutput::default() })
        }
        OpSpec::Transform(spec) => {
            let output = run_transform(spec, ctx.lake, ctx.ds)?;
            let assets = asset_writes(&output.outputs, &output.schema)?;
            Ok(OpOutput { assets, ..OpOutput::default() })
        }
        OpSpec::Sql(spec) => {
            let (_, conn) = ctx.connection(&spec.connection)?;
            run_sql(spec, conn, ctx.log)?;
            Ok(OpOutput::default())
        }
        OpSpec::Train(spec) => {
            Ok(OpOutput { model: Some(run_train(spec, ctx, reserved_version(ctx)?)?), ..OpOutput::default() })
        }
        OpSpec::Command(spec) => {
            Ok(OpOutput { model: Some(run_command(spec, ctx, reserved_version(ctx)?)?), ..OpOutput::default() })
        }
        OpSpec::Deploy(spec) => {
            Ok(OpOutput { stage_change: Some(run_deploy(spec, ctx, registry(ctx)?)?), ..OpOutput::default() })
        }
        OpSpec::Score(spec) => {
            let (written, schema, _) = run_score(spec, ctx, registry(ctx)?)?;
            Ok(OpOutput { assets: asset_writes(&written, &schema)?, ..OpOutput::default() })
        }
        OpSpec::Monitor(spec) => {
            Ok(OpOutput { monitor: Some(run_monitor(spec, ctx, registry(ctx)?)?), ..OpOutput::default() })
        }
        OpSpec::Sensor(spec) => Ok(OpOutput { sensor: run_sensor(spec, ctx)?, ..OpOutput::default() }),
    }
}

fn asset_writes(written: &[WrittenPartition], schema: &[ColumnInfo]) -> Result<Vec<AssetWrite>> {
    let schema = to_json(schema)?;
    Ok(written
        .iter()
        .map(|w| AssetWrite {
            uri: w.uri.clone(),
            rows: i64::try_from(w.rows).ok(),
            schema: Some(schema.clone()),
            content_hash: Some(w.content_hash.clone()),
            watermark: None,
        })
        .collect())
}

fn asset_quality(uri: String, report: &QualityReport) -> Result<AssetQuality> {
    let status = if report.failed() {
        QualityStatus::Failed
    } else if report.failures().any(|r| r.severity == Severity::Warn) {
        QualityStatus::Warn
    } else {
        QualityStatus::Passed
    };
    Ok(AssetQuality { uri, status, report: to_json(report)? })
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| OpsError::Invalid(format!("cannot encode the task's output: {e}")))
}

#[cfg(test)]
mod tests;
