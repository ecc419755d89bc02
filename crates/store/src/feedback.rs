//! What serving adds to the registry: true labels fed back for predictions, the events of the prediction log
//! asset, and the origin of each model version for the lineage graph.
//!
//! Labels are kept with a growing id. A monitor report notes the newest id it saw (`feedback_through`), and the next
//! monitor try of the model is given the labels above the newest such mark, read in its claim's transaction.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::error::Result;
use crate::time::to_ms;
use crate::{NewAssetEvent, Reads, Store, TryRef};

/// A true label for one record of a prediction request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFeedback {
    pub request_id: String,
    pub record: i64,
    pub label: String,
}

/// One stored label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackRow {
    pub id: i64,
    pub request_id: String,
    pub record: i64,
    pub label: String,
}

/// The labels a monitor try is given: the newest of those above the mark of the model's last report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedbackSince {
    /// The mark of the model's last report, if one noted any.
    pub after: Option<i64>,
    /// How many labels are above the mark.
    pub total: i64,
    /// At most the number asked for, newest first.
    pub rows: Vec<FeedbackRow>,
}

/// Where a model version comes from, for the lineage graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersionOrigin {
    pub model: String,
    pub version: i64,
    pub stage: String,
    pub dag_id: String,
    pub task_id: String,
}

impl Store {
    /// Stores labels fed back for `model`'s predictions, in one transaction; how many.
    pub async fn record_feedback(
        &self,
        model: &str,
        labels: &[NewFeedback],
        given_by: &str,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let mut tx = self.begin().await?;
        for label in labels {
            sqlx::query(
                "INSERT INTO model_feedback (model_name, request_id, record, label, given_by, ts_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(model)
            .bind(&label.request_id)
            .bind(label.record)
            .bind(&label.label)
            .bind(given_by)
            .bind(to_ms(now))
            .execute(&mut *tx.inner)
            .await?;
        }
        tx.commit().await?;
        Ok(labels.len())
    }

    /// Every registered version with the task that trained it.
    pub async fn model_version_origins(&self) -> Result<Vec<ModelVersionOrigin>> {
        let rows = sqlx::query(
            "SELECT model_name, version, stage, dag_id, task_id FROM model_versions ORDER BY model_name, version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ModelVersionOrigin {
                    model: row.try_get("model_name")?,
                    version: row.try_get("version")?,
                    stage: row.try_get("stage")?,
                    dag_id: row.try_get("dag_id")?,
                    task_id: row.try_get("task_id")?,
                })
            })
            .collect()
    }

    /// Records an event of an asset that a server wrote, not a task (the prediction log): it names no DAG, run or
    /// task.
    pub async fn record_server_asset_event(&self, event: &NewAssetEvent, now: DateTime<Utc>) -> Result<()> {
        let from = TryRef {
            try_id: String::new(),
            dag_id: String::new(),
            run_id: String::new(),
            task_id: String::new(),
            try_number: 0,
        };
        let mut tx = self.begin().await?;
        tx.record_asset_events(&from, None, std::slice::from_ref(event), now).await?;
        tx.commit().await
    }
}

impl Reads<'_> {
    /// The newest `limit` labels of `model` above the mark of its last monitor report.
    pub async fn feedback_since(&mut self, model: &str, limit: i64) -> Result<FeedbackSince> {
        let after: Option<i64> =
            sqlx::query("SELECT MAX(feedback_through) AS mark FROM monitor_reports WHERE model_name = $1")
                .bind(model)
                .fetch_one(&mut *self.tx.inner)
                .await?
                .try_get("mark")?;
        let mark = after.unwrap_or(0);
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM model_feedback WHERE model_name = $1 AND id > $2")
            .bind(model)
            .bind(mark)
            .fetch_one(&mut *self.tx.inner)
            .await?
            .try_get("n")?;
        if total == 0 {
            return Ok(FeedbackSince { after, total, rows: Vec::new() });
        }
        let rows = sqlx::query(
            "SELECT id, request_id, record, label FROM model_feedback WHERE model_name = $1 AND id > $2
              ORDER BY id DESC LIMIT $3",
        )
        .bind(model)
        .bind(mark)
        .bind(limit)
        .fetch_all(&mut *self.tx.inner)
        .await?
        .iter()
        .map(|row| {
            Ok(FeedbackRow {
                id: row.try_get("id")?,
                request_id: row.try_get("request_id")?,
                record: row.try_get("record")?,
                label: row.try_get("label")?,
            })
        })
        .collect::<Result<_>>()?;
        Ok(FeedbackSince { after, total, rows })
    }
}
