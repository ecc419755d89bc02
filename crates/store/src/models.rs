//! The model registry: models, their versions and the history of their stages.
//!
//! A `train` try gets its version number when it is leased ([`Tx::reserve_model_version`]) and writes the model to
//! `lake://models/<name>/<version>/`; the version is registered only in the transaction that records the try's
//! success ([`Tx::register_model_version`]), so a try that fails or whose worker dies leaves no version behind
//! (only an unused number). Stage changes lock the model's row, so two promotions of one model are decided one after
//! the other, and each change is kept in `model_stage_changes` with who made it and why.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Error, Result};
use crate::rows::{json, time};
use crate::time::to_ms;
use crate::{Store, Tx};

/// A model with its newest version and the version in production.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    pub name: String,
    pub description: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub latest_version: Option<i64>,
    pub production_version: Option<i64>,
}

impl ModelRow {
    const SELECT: &'static str = "SELECT m.name, m.description, m.created_ms, m.updated_ms,
            (SELECT MAX(v.version) FROM model_versions v WHERE v.model_name = m.name) AS latest_version,
            (SELECT MAX(v.version) FROM model_versions v WHERE v.model_name = m.name AND v.stage = 'production')
                AS production_version
         FROM models m";

    fn decode(row: &AnyRow) -> Result<ModelRow> {
        Ok(ModelRow {
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            created: time(row, "created_ms")?,
            updated: time(row, "updated_ms")?,
            latest_version: row.try_get("latest_version")?,
            production_version: row.try_get("production_version")?,
        })
    }
}

/// One registered version of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersionRow {
    pub model: String,
    pub version: i64,
    pub stage: String,
    pub algorithm: String,
    pub params: Value,
    pub metrics: BTreeMap<String, f64>,
    pub details: Value,
    pub artifact_uri: String,
    pub input_uri: String,
    pub input_event_id: Option<i64>,
    pub description: Option<String>,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_id: String,
    pub dag_version_id: Option<String>,
    pub created: DateTime<Utc>,
}

impl ModelVersionRow {
    const COLUMNS: &'static str = "model_name, version, stage, algorithm, params, metrics, details, artifact_uri,
        input_uri, input_event_id, description, dag_id, run_id, task_id, try_id, dag_version_id, created_ms";

    fn decode(row: &AnyRow) -> Result<ModelVersionRow> {
        let metrics =
            serde_json::from_value(json(row, "metrics")?).map_err(|e| Error::corrupt("model_versions.metrics", e))?;
        Ok(ModelVersionRow {
            model: row.try_get("model_name")?,
            version: row.try_get("version")?,
            stage: row.try_get("stage")?,
            algorithm: row.try_get("algorithm")?,
            params: json(row, "params")?,
            metrics,
            details: json(row, "details")?,
            artifact_uri: row.try_get("artifact_uri")?,
            input_uri: row.try_get("input_uri")?,
            input_event_id: row.try_get("input_event_id")?,
            description: row.try_get("description")?,
            dag_id: row.try_get("dag_id")?,
            run_id: row.try_get("run_id")?,
            task_id: row.try_get("task_id")?,
            try_id: row.try_get("try_id")?,
            dag_version_id: row.try_get("dag_version_id")?,
            created: time(row, "created_ms")?,
        })
    }
}

/// A version to register: what the train try wrote, and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModelVersion<'a> {
    pub model: &'a str,
    pub version: i64,
    pub algorithm: &'a str,
    pub params: &'a Value,
    pub metrics: &'a BTreeMap<String, f64>,
    pub details: &'a Value,
    pub artifact_uri: &'a str,
    pub input_uri: &'a str,
    pub input_content_hash: Option<&'a str>,
    pub description: Option<&'a str>,
    pub dag_id: &'a str,
    pub run_id: &'a str,
    pub task_id: &'a str,
    pub try_id: &'a str,
    pub dag_version_id: Option<&'a str>,
}

/// One change of a version's stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StageChangeRow {
    pub id: i64,
    pub model: String,
    pub version: i64,
    pub from_stage: String,
    pub to_stage: String,
    pub changed_by: String,
    pub reason: Option<String>,
    pub timestamp: DateTime<Utc>,
}

impl StageChangeRow {
    fn decode(row: &AnyRow) -> Result<StageChangeRow> {
        Ok(StageChangeRow {
            id: row.try_get("id")?,
            model: row.try_get("model_name")?,
            version: row.try_get("version")?,
            from_stage: row.try_get("from_stage")?,
            to_stage: row.try_get("to_stage")?,
            changed_by: row.try_get("changed_by")?,
            reason: row.try_get("reason")?,
            timestamp: time(row, "ts_ms")?,
        })
    }
}

/// A stage change to make; `expected_production` (when `Some`) must still be the production version.
#[derive(Debug, Clone, PartialEq)]
pub struct SetStage<'a> {
    pub model: &'a str,
    pub version: i64,
    pub stage: &'a str,
    pub changed_by: &'a str,
    pub reason: Option<&'a str>,
    pub expected_production: Option<Option<i64>>,
}

/// Why a stage change was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageRefusal {
    #[error("model {0:?} has no version {1}")]
    NoSuchVersion(String, i64),
    #[error("the production version of {model:?} changed to {now:?} since the decision (made against {expected:?})")]
    ProductionMoved { model: String, expected: Option<i64>, now: Option<i64> },
}

impl Tx {
    /// The next version number of model `name` (created on first use), for a train try about to start.
    pub async fn reserve_model_version(&mut self, name: &str, now: DateTime<Utc>) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO models (name, created_ms, updated_ms, last_version) VALUES ($1, $2, $2, 1)
             ON CONFLICT (name) DO UPDATE SET last_version = models.last_version + 1, updated_ms = $2
             RETURNING last_version",
        )
        .bind(name)
        .bind(to_ms(now))
        .fetch_one(&mut *self.inner)
        .await?;
        Ok(row.try_get("last_version")?)
    }

    /// Registers the version a successful train try wrote, tied to the newest event of its input asset with the
    /// content it read.
    pub async fn register_model_version(&mut self, new: &NewModelVersion<'_>, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO models (name, description, created_ms, updated_ms, last_version) VALUES ($1, $2, $3, $3, $4)
             ON CONFLICT (name) DO UPDATE SET updated_ms = $3, description = COALESCE($2, models.description)",
        )
        .bind(new.model)
        .bind(new.description)
        .bind(to_ms(now))
        .bind(new.version)
        .execute(&mut *self.inner)
        .await?;
        sqlx::query(
            "INSERT INTO model_versions (model_name, version, algorithm, params, metrics, details, artifact_uri,
                 input_uri, input_event_id, description, dag_id, run_id, task_id, try_id, dag_version_id, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                 (SELECT MAX(id) FROM asset_events WHERE asset_uri = $8 AND ($9 IS NULL OR content_hash = $9)),
                 $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(new.model)
        .bind(new.version)
        .bind(new.algorithm)
        .bind(new.params.to_string())
        .bind(serde_json::to_string(new.metrics).map_err(|e| Error::corrupt("model metrics", e))?)
        .bind(new.details.to_string())
        .bind(new.artifact_uri)
        .bind(new.input_uri)
        .bind(new.input_content_hash)
        .bind(new.description)
        .bind(new.dag_id)
        .bind(new.run_id)
        .bind(new.task_id)
        .bind(new.try_id)
        .bind(new.dag_version_id)
        .bind(to_ms(now))
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Every version of a model, oldest first, and the version that was in production before the current one.
    pub async fn model_versions_for_deploy(&mut self, name: &str) -> Result<(Vec<ModelVersionRow>, Option<i64>)> {
        let versions = sqlx::query(&format!(
            "SELECT {} FROM model_versions WHERE model_name = $1 ORDER BY version",
            ModelVersionRow::COLUMNS
        ))
        .bind(name)
        .fetch_all(&mut *self.inner)
        .await?
        .iter()
        .map(ModelVersionRow::decode)
        .collect::<Result<Vec<_>>>()?;
        let current = versions.iter().find(|v| v.stage == "production").map(|v| v.version);
        let previous: Option<i64> = sqlx::query(
            "SELECT version FROM model_stage_changes
              WHERE model_name = $1 AND to_stage = 'production' AND ($2 IS NULL OR version <> $2)
              ORDER BY id DESC LIMIT 1",
        )
        .bind(name)
        .bind(current)
        .fetch_optional(&mut *self.inner)
        .await?
        .map(|row| row.try_get("version"))
        .transpose()?;
        Ok((versions, previous))
    }

    /// Moves a version to a stage. The version that held the stage before is archived (one version per stage), and
    /// both changes are recorded. Refused, changing nothing, if the version does not exist or production moved
    /// since `expected_production` was read.
    pub async fn set_model_stage(
        &mut self,
        change: &SetStage<'_>,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(), StageRefusal>> {
        let lock = format!("SELECT name FROM models WHERE name = $1{}", self.dialect.lock_wait());
        sqlx::query(&lock).bind(change.model).fetch_optional(&mut *self.inner).await?;
        let rows = sqlx::query("SELECT version, stage FROM model_versions WHERE model_name = $1")
            .bind(change.model)
            .fetch_all(&mut *self.inner)
            .await?;
        let stages: Vec<(i64, String)> =
            rows.iter().map(|r| Ok((r.try_get("version")?, r.try_get("stage")?))).collect::<Result<_>>()?;
        let Some((_, from)) = stages.iter().find(|(v, _)| *v == change.version) else {
            return Ok(Err(StageRefusal::NoSuchVersion(change.model.to_owned(), change.version)));
        };
        let production = stages.iter().find(|(_, s)| s == "production").map(|(v, _)| *v);
        if let Some(expected) = change.expected_production
            && expected != production
        {
            return Ok(Err(StageRefusal::ProductionMoved {
                model: change.model.to_owned(),
                expected,
                now: production,
            }));
        }
        let from = from.clone();
        let holders: Vec<i64> = stages
            .iter()
            .filter(|(v, s)| *v != change.version && s == change.stage && change.stage != "none")
            .map(|(v, _)| *v)
            .collect();
        for holder in holders {
            self.record_stage(change, holder, change.stage, "archived", now).await?;
        }
        self.record_stage(change, change.version, &from, change.stage, now).await?;
        Ok(Ok(()))
    }

    async fn record_stage(
        &mut self,
        change: &SetStage<'_>,
        version: i64,
        from: &str,
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("UPDATE model_versions SET stage = $1 WHERE model_name = $2 AND version = $3")
            .bind(to)
            .bind(change.model)
            .bind(version)
            .execute(&mut *self.inner)
            .await?;
        sqlx::query(
            "INSERT INTO model_stage_changes (model_name, version, from_stage, to_stage, changed_by, reason, ts_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(change.model)
        .bind(version)
        .bind(from)
        .bind(to)
        .bind(change.changed_by)
        .bind(change.reason)
        .bind(to_ms(now))
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }
}

impl Store {
    /// Models by name, and how many there are.
    pub async fn list_models(&self, limit: i64, offset: i64) -> Result<(Vec<ModelRow>, i64)> {
        let rows = sqlx::query(&format!("{} ORDER BY m.name LIMIT $1 OFFSET $2", ModelRow::SELECT))
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM models").fetch_one(&self.pool).await?.try_get("n")?;
        Ok((rows.iter().map(ModelRow::decode).collect::<Result<_>>()?, total))
    }

    pub async fn get_model(&self, name: &str) -> Result<Option<ModelRow>> {
        let row = sqlx::query(&format!("{} WHERE m.name = $1", ModelRow::SELECT))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ModelRow::decode).transpose()
    }

    /// A model's versions, newest first.
    pub async fn list_model_versions(&self, name: &str) -> Result<Vec<ModelVersionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM model_versions WHERE model_name = $1 ORDER BY version DESC",
            ModelVersionRow::COLUMNS
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ModelVersionRow::decode).collect()
    }

    pub async fn get_model_version(&self, name: &str, version: i64) -> Result<Option<ModelVersionRow>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM model_versions WHERE model_name = $1 AND version = $2",
            ModelVersionRow::COLUMNS
        ))
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ModelVersionRow::decode).transpose()
    }

    /// The version of a model in `stage` (the newest, should there be several).
    pub async fn model_version_in_stage(&self, name: &str, stage: &str) -> Result<Option<ModelVersionRow>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM model_versions WHERE model_name = $1 AND stage = $2 ORDER BY version DESC LIMIT 1",
            ModelVersionRow::COLUMNS
        ))
        .bind(name)
        .bind(stage)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ModelVersionRow::decode).transpose()
    }

    /// Every stage change of a model, oldest first.
    pub async fn model_stage_history(&self, name: &str) -> Result<Vec<StageChangeRow>> {
        let rows = sqlx::query(
            "SELECT id, model_name, version, from_stage, to_stage, changed_by, reason, ts_ms
               FROM model_stage_changes WHERE model_name = $1 ORDER BY id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(StageChangeRow::decode).collect()
    }

    /// Moves a version to a stage in a transaction of its own: see [`Tx::set_model_stage`].
    pub async fn set_model_stage(
        &self,
        change: &SetStage<'_>,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(), StageRefusal>> {
        let mut tx = self.begin().await?;
        let outcome = tx.set_model_stage(change, now).await?;
        if outcome.is_ok() {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(outcome)
    }
}

impl crate::Claim<'_> {
    /// Reserves the next version of model `name` for a train try being claimed (see [`Tx::reserve_model_version`]):
    /// the one write a claim makes besides starting tries. It locks only the model's row, which no transaction
    /// holds while waiting for a run or a task instance.
    pub async fn reserve_model_version(&mut self, name: &str, now: DateTime<Utc>) -> Result<i64> {
        self.tx_mut().reserve_model_version(name, now).await
    }
}

impl crate::Reads<'_> {
    /// See [`Tx::model_versions_for_deploy`].
    pub async fn model_versions_for_deploy(&mut self, name: &str) -> Result<(Vec<ModelVersionRow>, Option<i64>)> {
        self.tx.model_versions_for_deploy(name).await
    }
}

impl crate::LeafTry {
    /// Registers the model version a leaf's train try reports (see [`Tx::register_model_version`]): a write to the
    /// model's rows only, which no transaction holds while waiting for a task instance.
    pub async fn register_model_version(&mut self, new: &NewModelVersion<'_>, now: DateTime<Utc>) -> Result<()> {
        self.tx_mut().register_model_version(new, now).await
    }

    /// Applies the stage change a leaf's deploy try reports (see [`Tx::set_model_stage`]).
    pub async fn set_model_stage(
        &mut self,
        change: &SetStage<'_>,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(), StageRefusal>> {
        self.tx_mut().set_model_stage(change, now).await
    }
}

/// A monitor try's report, to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMonitorReport<'a> {
    pub model: &'a str,
    pub version: i64,
    pub input_uri: &'a str,
    pub rows: i64,
    pub drifted: bool,
    pub checks: &'a Value,
    pub dag_id: &'a str,
    pub run_id: &'a str,
    pub task_id: &'a str,
    pub try_id: &'a str,
    /// The fed-back labels the report used: given, matched with a logged prediction, and the newest one's id.
    pub feedback: Option<FeedbackCounts>,
}

/// How much feedback a monitor report used (see `sluice_core::protocol::FeedbackSummary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedbackCounts {
    pub labels: i64,
    pub matched: i64,
    pub through: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MonitorReportRow {
    pub id: i64,
    pub model: String,
    pub version: i64,
    pub input_uri: String,
    pub rows: i64,
    pub drifted: bool,
    pub checks: Value,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_id: String,
    pub retrain_dag_id: Option<String>,
    pub retrain_run_id: Option<String>,
    /// Asked for and not created yet: the run's `conf`.
    pub retrain_conf: Option<Value>,
    pub feedback: Option<FeedbackCounts>,
    pub timestamp: DateTime<Utc>,
}

impl MonitorReportRow {
    const COLUMNS: &'static str = "id, model_name, version, input_uri, row_count, drifted, checks, dag_id, run_id,
        task_id, try_id, retrain_dag_id, retrain_run_id, retrain_conf, feedback_labels, feedback_matched,
        feedback_through, ts_ms";

    fn decode(row: &AnyRow) -> Result<MonitorReportRow> {
        Ok(MonitorReportRow {
            id: row.try_get("id")?,
            model: row.try_get("model_name")?,
            version: row.try_get("version")?,
            input_uri: row.try_get("input_uri")?,
            rows: row.try_get("row_count")?,
            drifted: crate::rows::flag(row, "drifted")?,
            checks: json(row, "checks")?,
            dag_id: row.try_get("dag_id")?,
            run_id: row.try_get("run_id")?,
            task_id: row.try_get("task_id")?,
            try_id: row.try_get("try_id")?,
            retrain_dag_id: row.try_get("retrain_dag_id")?,
            retrain_run_id: row.try_get("retrain_run_id")?,
            retrain_conf: crate::rows::opt_json(row, "retrain_conf")?,
            feedback: match (
                row.try_get::<Option<i64>, _>("feedback_labels")?,
                row.try_get::<Option<i64>, _>("feedback_matched")?,
                row.try_get::<Option<i64>, _>("feedback_through")?,
            ) {
                (Some(labels), Some(matched), Some(through)) => Some(FeedbackCounts { labels, matched, through }),
                _ => None,
            },
            timestamp: time(row, "ts_ms")?,
        })
    }
}

impl Tx {
    /// Stores a monitor try's report; its id.
    pub async fn record_monitor_report(&mut self, new: &NewMonitorReport<'_>, now: DateTime<Utc>) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO monitor_reports (model_name, version, input_uri, row_count, drifted, checks, dag_id, run_id,
                 task_id, try_id, ts_ms, feedback_labels, feedback_matched, feedback_through)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(new.model)
        .bind(new.version)
        .bind(new.input_uri)
        .bind(new.rows)
        .bind(new.drifted)
        .bind(new.checks.to_string())
        .bind(new.dag_id)
        .bind(new.run_id)
        .bind(new.task_id)
        .bind(new.try_id)
        .bind(to_ms(now))
        .bind(new.feedback.map(|f| f.labels))
        .bind(new.feedback.map(|f| f.matched))
        .bind(new.feedback.map(|f| f.through))
        .fetch_one(&mut *self.inner)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Asks for the retraining run of report `id`, in the transaction that stores the report, so that a crash
    /// before the run is created cannot lose it: [`Store::pending_retraining`] finds it until
    /// [`Store::retraining_done`].
    pub async fn request_retraining(&mut self, id: i64, dag_id: &str, run_id: &str, conf: &Value) -> Result<()> {
        sqlx::query(
            "UPDATE monitor_reports SET retrain_dag_id = $1, retrain_run_id = $2, retrain_conf = $3 WHERE id = $4",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(conf.to_string())
        .bind(id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }
}

impl Store {
    /// A model's monitor reports, newest first, and how many there are.
    pub async fn list_monitor_reports(
        &self,
        model: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<MonitorReportRow>, i64)> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM monitor_reports WHERE model_name = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
            MonitorReportRow::COLUMNS
        ))
        .bind(model)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM monitor_reports WHERE model_name = $1")
            .bind(model)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok((rows.iter().map(MonitorReportRow::decode).collect::<Result<_>>()?, total))
    }

    /// Reports whose retraining run is asked for and not created yet, oldest first.
    pub async fn pending_retraining(&self, limit: i64) -> Result<Vec<MonitorReportRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM monitor_reports WHERE retrain_conf IS NOT NULL ORDER BY id LIMIT $1",
            MonitorReportRow::COLUMNS
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(MonitorReportRow::decode).collect()
    }

    /// The retraining run of a report was created (`started`), or cannot be (its DAG is gone): either way it is no
    /// longer pending, and only a started run stays named with the report.
    pub async fn retraining_done(&self, report_id: i64, started: bool) -> Result<()> {
        let sql = if started {
            "UPDATE monitor_reports SET retrain_conf = NULL WHERE id = $1"
        } else {
            "UPDATE monitor_reports SET retrain_conf = NULL, retrain_run_id = NULL WHERE id = $1"
        };
        sqlx::query(sql).bind(report_id).execute(&self.pool).await?;
        Ok(())
    }
}

impl crate::LeafTry {
    /// Stores the drift report a leaf's monitor try reports (see [`Tx::record_monitor_report`]).
    pub async fn record_monitor_report(&mut self, new: &NewMonitorReport<'_>, now: DateTime<Utc>) -> Result<i64> {
        self.tx_mut().record_monitor_report(new, now).await
    }

    /// See [`Tx::request_retraining`].
    pub async fn request_retraining(&mut self, id: i64, dag_id: &str, run_id: &str, conf: &Value) -> Result<()> {
        self.tx_mut().request_retraining(id, dag_id, run_id, conf).await
    }
}
