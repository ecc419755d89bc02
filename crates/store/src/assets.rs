//! Assets and their events, quality reports, and the marks of data-aware scheduling.
//!
//! An event is one successful write of an asset by a task try; it is recorded in the transaction that records the
//! try's success, so an asset never has an event for a try that did not succeed. Event ids only grow, which is how
//! data-aware scheduling tells new events from consumed ones (`asset_consumers`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::dags::{Bind, bind_all};
use crate::error::Result;
use crate::rows::{opt_json, time};
use crate::time::to_ms;
use crate::{Reads, Store, Tx};

/// An event to record: what a try wrote to one asset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewAssetEvent {
    pub uri: String,
    pub row_count: Option<i64>,
    pub schema: Option<Value>,
    pub content_hash: Option<String>,
    pub watermark: Option<String>,
}

/// Which try an event or report comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryRef {
    /// The try's id (its lease id).
    pub try_id: String,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AssetEventRow {
    pub id: i64,
    pub asset_id: i64,
    pub uri: String,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: i64,
    pub timestamp: DateTime<Utc>,
    pub row_count: Option<i64>,
    pub schema: Option<Value>,
    pub content_hash: Option<String>,
    pub quality_status: Option<String>,
    pub watermark: Option<String>,
}

impl AssetEventRow {
    const COLUMNS: &'static str = "e.id, a.id AS asset_id, e.asset_uri, e.dag_id, e.run_id, e.task_id, e.try_number, e.ts_ms, \
        e.row_count, e.schema_json, e.content_hash, e.quality_status, e.watermark";

    fn decode(row: &AnyRow) -> Result<AssetEventRow> {
        Ok(AssetEventRow {
            id: row.try_get("id")?,
            asset_id: row.try_get("asset_id")?,
            uri: row.try_get("asset_uri")?,
            dag_id: row.try_get("dag_id")?,
            run_id: row.try_get("run_id")?,
            task_id: row.try_get("task_id")?,
            try_number: row.try_get("try_number")?,
            timestamp: time(row, "ts_ms")?,
            row_count: row.try_get("row_count")?,
            schema: opt_json(row, "schema_json")?,
            content_hash: row.try_get("content_hash")?,
            quality_status: row.try_get("quality_status")?,
            watermark: row.try_get("watermark")?,
        })
    }
}

/// An asset with a summary of its newest event.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetRow {
    pub id: i64,
    pub uri: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub last_event: Option<AssetEventRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QualityReportRow {
    pub id: i64,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: i64,
    pub uri: String,
    pub status: String,
    pub report: Value,
    pub timestamp: DateTime<Utc>,
}

const QUALITY_COLUMNS: &str = "id, dag_id, run_id, task_id, try_number, asset_uri, status, report, ts_ms";

impl QualityReportRow {
    fn decode(r: &AnyRow) -> Result<QualityReportRow> {
        Ok(QualityReportRow {
            id: r.try_get("id")?,
            dag_id: r.try_get("dag_id")?,
            run_id: r.try_get("run_id")?,
            task_id: r.try_get("task_id")?,
            try_number: r.try_get("try_number")?,
            uri: r.try_get("asset_uri")?,
            status: r.try_get("status")?,
            report: crate::rows::json(r, "report")?,
            timestamp: time(r, "ts_ms")?,
        })
    }
}

/// Which events to list; `None` fields do not filter. Newest first.
#[derive(Debug, Clone, Default)]
pub struct AssetEventFilter {
    pub uri: Option<String>,
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub limit: i64,
    pub offset: i64,
    /// DAGs whose events are left out: those the caller may not read (an event belongs to the DAG that wrote it).
    pub hidden_dag_ids: Vec<String>,
}

impl Tx {
    /// Records the events of a successful try, creating the assets it writes for the first time (owned by
    /// `owner`, the DAG's).
    pub async fn record_asset_events(
        &mut self,
        from: &TryRef,
        owner: Option<&str>,
        events: &[NewAssetEvent],
        now: DateTime<Utc>,
    ) -> Result<()> {
        for event in events {
            sqlx::query(
                "INSERT INTO assets (uri, owner, created_ms, updated_ms) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (uri) DO UPDATE SET updated_ms = $3",
            )
            .bind(&event.uri)
            .bind(owner)
            .bind(to_ms(now))
            .execute(&mut *self.inner)
            .await?;
            sqlx::query(
                "INSERT INTO asset_events (asset_uri, dag_id, run_id, task_id, try_number, ts_ms, row_count,
                     schema_json, content_hash, watermark)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&event.uri)
            .bind(&from.dag_id)
            .bind(&from.run_id)
            .bind(&from.task_id)
            .bind(from.try_number)
            .bind(to_ms(now))
            .bind(event.row_count)
            .bind(event.schema.as_ref().map(Value::to_string))
            .bind(&event.content_hash)
            .bind(&event.watermark)
            .execute(&mut *self.inner)
            .await?;
        }
        Ok(())
    }

    /// Stores a quality task's report on `uri`, and marks the asset's newest event (the data it judged) with the
    /// status.
    pub async fn record_quality_report(
        &mut self,
        from: &TryRef,
        uri: &str,
        status: &str,
        report: &Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO quality_reports (try_id, dag_id, run_id, task_id, try_number, asset_uri, status, report, ts_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&from.try_id)
        .bind(&from.dag_id)
        .bind(&from.run_id)
        .bind(&from.task_id)
        .bind(from.try_number)
        .bind(uri)
        .bind(status)
        .bind(report.to_string())
        .bind(to_ms(now))
        .execute(&mut *self.inner)
        .await?;
        sqlx::query(
            "UPDATE asset_events SET quality_status = $1
              WHERE id = (SELECT MAX(id) FROM asset_events WHERE asset_uri = $2)",
        )
        .bind(status)
        .bind(uri)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// For a DAG scheduled on `uris`: the newest event id of each asset that has an event newer than what the DAG's
    /// last asset-triggered run consumed, in the order of `uris`. Lock the DAG first ([`Tx::lock_dag`]) so that two
    /// schedulers decide one after the other.
    pub async fn assets_updated(&mut self, dag_id: &str, uris: &[&str]) -> Result<Vec<(String, i64)>> {
        let mut updated = Vec::with_capacity(uris.len());
        for uri in uris {
            let row = sqlx::query(
                "SELECT (SELECT MAX(id) FROM asset_events WHERE asset_uri = $1) AS newest,
                        (SELECT last_event_id FROM asset_consumers WHERE dag_id = $2 AND asset_uri = $1) AS consumed",
            )
            .bind(uri)
            .bind(dag_id)
            .fetch_one(&mut *self.inner)
            .await?;
            let newest: Option<i64> = row.try_get("newest")?;
            let consumed: Option<i64> = row.try_get("consumed")?;
            if let Some(newest) = newest.filter(|n| *n > consumed.unwrap_or(0)) {
                updated.push(((*uri).to_owned(), newest));
            }
        }
        Ok(updated)
    }

    /// Marks the events up to these ids as consumed by the DAG's newest asset-triggered run.
    pub async fn consume_asset_events(&mut self, dag_id: &str, consumed: &[(String, i64)]) -> Result<()> {
        for (uri, id) in consumed {
            sqlx::query(
                "INSERT INTO asset_consumers (dag_id, asset_uri, last_event_id) VALUES ($1, $2, $3)
                 ON CONFLICT (dag_id, asset_uri) DO UPDATE SET last_event_id = $3",
            )
            .bind(dag_id)
            .bind(uri)
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        }
        Ok(())
    }

    /// Locks a DAG's row until the transaction ends (PostgreSQL; SQLite has one writer anyway).
    pub async fn lock_dag(&mut self, dag_id: &str) -> Result<bool> {
        let sql = format!("SELECT dag_id FROM dags WHERE dag_id = $1{}", self.dialect.lock_wait());
        Ok(sqlx::query(&sql).bind(dag_id).fetch_optional(&mut *self.inner).await?.is_some())
    }
}

impl Reads<'_> {
    /// The newest high-water mark recorded for `uri`: where an incremental load goes on from.
    pub async fn latest_watermark(&mut self, uri: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT watermark FROM asset_events WHERE asset_uri = $1 AND watermark IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(uri)
        .fetch_optional(&mut *self.tx.inner)
        .await?;
        Ok(row.map(|r| r.try_get("watermark")).transpose()?)
    }
}

impl Store {
    /// Assets by URI, each with its newest event not written by one of `hidden_dag_ids`.
    pub async fn list_assets(
        &self,
        limit: i64,
        offset: i64,
        hidden_dag_ids: &[String],
    ) -> Result<(Vec<AssetRow>, i64)> {
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM assets").fetch_one(self.pool()).await?.try_get("n")?;
        let rows = sqlx::query("SELECT uri FROM assets ORDER BY uri LIMIT $1 OFFSET $2")
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?;
        let mut assets = Vec::with_capacity(rows.len());
        for row in rows {
            let uri: String = row.try_get("uri")?;
            if let Some(asset) = self.get_asset(&uri, hidden_dag_ids).await? {
                assets.push(asset);
            }
        }
        Ok((assets, total))
    }

    /// The URI of the asset with this id.
    pub async fn asset_uri(&self, id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT uri FROM assets WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(row.map(|r| r.try_get("uri")).transpose()?)
    }

    /// An asset with its newest event not written by one of `hidden_dag_ids`.
    pub async fn get_asset(&self, uri: &str, hidden_dag_ids: &[String]) -> Result<Option<AssetRow>> {
        let Some(row) =
            sqlx::query("SELECT id, uri, description, owner, created_ms, updated_ms FROM assets WHERE uri = $1")
                .bind(uri)
                .fetch_optional(self.pool())
                .await?
        else {
            return Ok(None);
        };
        let filter = AssetEventFilter {
            uri: Some(uri.to_owned()),
            limit: 1,
            hidden_dag_ids: hidden_dag_ids.to_vec(),
            ..AssetEventFilter::default()
        };
        let last_event = self.asset_events(&filter).await?.0.into_iter().next();
        Ok(Some(AssetRow {
            id: row.try_get("id")?,
            uri: row.try_get("uri")?,
            description: row.try_get("description")?,
            owner: row.try_get("owner")?,
            created: time(&row, "created_ms")?,
            updated: time(&row, "updated_ms")?,
            last_event,
        }))
    }

    /// Events matching `filter`, newest first, and how many match in all.
    pub async fn asset_events(&self, filter: &AssetEventFilter) -> Result<(Vec<AssetEventRow>, i64)> {
        let fields = [
            ("e.asset_uri", &filter.uri),
            ("e.dag_id", &filter.dag_id),
            ("e.run_id", &filter.run_id),
            ("e.task_id", &filter.task_id),
        ];
        let mut conditions = vec!["1 = 1".to_string()];
        let mut binds = Vec::new();
        for (column, value) in fields {
            if let Some(value) = value {
                binds.push(Bind::Text(value.clone()));
                conditions.push(format!("{column} = ${}", binds.len()));
            }
        }
        crate::dags::push_hidden("e.dag_id", &filter.hidden_dag_ids, &mut conditions, &mut binds);
        let where_clause = conditions.join(" AND ");
        let count_sql = format!("SELECT COUNT(*) AS n FROM asset_events e WHERE {where_clause}");
        let total: i64 = bind_all(sqlx::query(&count_sql), &binds).fetch_one(self.pool()).await?.try_get("n")?;
        let sql = format!(
            "SELECT {} FROM asset_events e JOIN assets a ON a.uri = e.asset_uri WHERE {where_clause}
              ORDER BY e.id DESC LIMIT {} OFFSET {}",
            AssetEventRow::COLUMNS,
            filter.limit.max(0),
            filter.offset.max(0)
        );
        let query = bind_all(sqlx::query(&sql), &binds);
        let rows = query.fetch_all(self.pool()).await?;
        Ok((rows.iter().map(AssetEventRow::decode).collect::<Result<_>>()?, total))
    }

    /// The quality reports of one try, one per input asset.
    pub async fn quality_reports(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        try_number: i64,
    ) -> Result<Vec<QualityReportRow>> {
        let sql = format!(
            "SELECT {QUALITY_COLUMNS} FROM quality_reports
              WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND try_number = $4 ORDER BY id"
        );
        let rows =
            sqlx::query(&sql).bind(dag_id).bind(run_id).bind(task_id).bind(try_number).fetch_all(self.pool()).await?;
        rows.iter().map(QualityReportRow::decode).collect()
    }

    /// The newest quality report on `uri` by a task of a DAG not in `hidden_dag_ids`.
    pub async fn latest_quality_report(
        &self,
        uri: &str,
        hidden_dag_ids: &[String],
    ) -> Result<Option<QualityReportRow>> {
        let mut conditions = vec!["asset_uri = $1".to_string()];
        let mut binds = vec![Bind::Text(uri.to_owned())];
        crate::dags::push_hidden("dag_id", hidden_dag_ids, &mut conditions, &mut binds);
        let sql = format!(
            "SELECT {QUALITY_COLUMNS} FROM quality_reports WHERE {} ORDER BY id DESC LIMIT 1",
            conditions.join(" AND ")
        );
        let row = bind_all(sqlx::query(&sql), &binds).fetch_optional(self.pool()).await?;
        row.as_ref().map(QualityReportRow::decode).transpose()
    }
}
