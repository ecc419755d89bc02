//! DAGs, their versions, import errors and variables.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use crate::Store;
use crate::error::Result;
use crate::rows::{DagRow, DagVersionRow};
use crate::time::{from_ms, now_ms, to_ms};

/// What the DAG folder sync knows about one successfully parsed file.
#[derive(Debug, Clone)]
pub struct DagUpsert {
    pub dag_id: String,
    pub fileloc: String,
    /// Hash of the file's content: a new hash is a new DAG version.
    pub hash: String,
    pub spec: Value,
    pub source: String,
    pub description: Option<String>,
    pub owners: Vec<String>,
    pub tags: Vec<String>,
    pub timetable_summary: String,
    pub max_active_runs: i64,
    pub max_active_tasks: i64,
    pub is_paused_upon_creation: bool,
    pub access_control: Option<sluice_core::AccessControl>,
    /// When the file was last modified: content that an earlier version already had becomes the latest again only
    /// if the file changed after the latest version was recorded (see [`Store::upsert_dag`]).
    pub modified: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct DagFilter {
    pub limit: i64,
    pub offset: i64,
    pub paused: Option<bool>,
    pub only_active: bool,
    /// SQL `LIKE` pattern on `dag_id`, e.g. `%etl%`.
    pub dag_id_pattern: Option<String>,
    /// DAGs with any of these tags (all of them when `all_tags`).
    pub tags: Vec<String>,
    pub all_tags: bool,
    /// DAGs with any of these owners.
    pub owners: Vec<String>,
    pub order: DagOrder,
    pub descending: bool,
    /// DAGs left out, whatever else matches: those the caller may not read.
    pub hidden_dag_ids: Vec<String>,
    /// Only DAGs whose newest run (by `run_after`) failed.
    pub failing: bool,
}

/// The orders a DAG list can be sorted in (ties broken by `dag_id`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DagOrder {
    #[default]
    DagId,
    LastParsed,
    IsPaused,
}

impl DagOrder {
    fn column(self) -> &'static str {
        match self {
            DagOrder::DagId => "dag_id",
            DagOrder::LastParsed => "last_parsed_ms",
            DagOrder::IsPaused => "is_paused",
        }
    }
}

/// A DAG version without its spec and source: what run listings show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSummary {
    pub id: Uuid,
    pub dag_id: String,
    pub version_number: i64,
    pub created_at: DateTime<Utc>,
}

/// Whether a DAG was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DagDeletion {
    Deleted,
    NotFound,
    /// Some of its task instances are queued or running; nothing was deleted.
    TasksActive,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportErrorRow {
    pub id: i64,
    pub filename: String,
    pub message: String,
    pub timestamp: DateTime<Utc>,
}

/// Which import errors to list.
#[derive(Debug, Clone, Default)]
pub struct ImportErrorFilter {
    pub id: Option<i64>,
    /// DAGs the caller may not read. An error belongs to the DAGs whose file it is, and is left out when one of
    /// them is hidden. A caller with hidden DAGs does not read every DAG, so the errors of files with no known DAG
    /// are left out too: they may be a DAG the caller must not see (Airflow 3 shows them only to whoever may read
    /// every DAG).
    pub hidden_dag_ids: Vec<String>,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VariableRow {
    pub key: String,
    pub value: String,
    pub description: Option<String>,
}

/// `$start, $start+1, …` for `n` bound values.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

impl Store {
    /// Records a parsed DAG file: creates or refreshes the DAG and returns the id of the version with this
    /// content, creating that version if it is new. A DAG keeps its paused flag across versions.
    ///
    /// Which version is the latest when schedulers read different files for a while (a deploy reaching hosts one
    /// after the other): new content always becomes the latest version. Content an older version already had
    /// becomes the latest again only if its file was modified after the latest version was recorded — a file
    /// edited back to what it was; a scheduler still reading the file from before the deploy (or starting on it)
    /// changes nothing but the parse time, so the DAG's version does not flap between the two.
    pub async fn upsert_dag(&self, dag: &DagUpsert) -> Result<Uuid> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let latest = sqlx::query(
            "SELECT v.id, v.hash, v.created_ms FROM dags d JOIN dag_versions v ON v.id = d.latest_version_id
              WHERE d.dag_id = $1",
        )
        .bind(&dag.dag_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(latest) = latest {
            let (hash, created): (String, i64) = (latest.try_get("hash")?, latest.try_get("created_ms")?);
            let known = sqlx::query("SELECT 1 AS known FROM dag_versions WHERE dag_id = $1 AND hash = $2")
                .bind(&dag.dag_id)
                .bind(&dag.hash)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if hash != dag.hash && known && to_ms(dag.modified) <= created {
                sqlx::query("UPDATE dags SET last_parsed_ms = $1, is_active = $2 WHERE dag_id = $3")
                    .bind(now)
                    .bind(true)
                    .bind(&dag.dag_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return crate::rows::uuid(&latest, "id");
            }
        }
        sqlx::query(
            "INSERT INTO dags (dag_id, fileloc, is_paused, is_active, description, owners, tags, \
                               timetable_summary, max_active_runs, max_active_tasks, last_parsed_ms, \
                               access_control)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (dag_id) DO UPDATE SET
                fileloc = excluded.fileloc, is_active = excluded.is_active,
                description = excluded.description, owners = excluded.owners, tags = excluded.tags,
                timetable_summary = excluded.timetable_summary, max_active_runs = excluded.max_active_runs,
                max_active_tasks = excluded.max_active_tasks, last_parsed_ms = excluded.last_parsed_ms,
                access_control = excluded.access_control",
        )
        .bind(&dag.dag_id)
        .bind(&dag.fileloc)
        .bind(dag.is_paused_upon_creation)
        .bind(true)
        .bind(&dag.description)
        .bind(json_text(&dag.owners))
        .bind(json_text(&dag.tags))
        .bind(&dag.timetable_summary)
        .bind(dag.max_active_runs)
        .bind(dag.max_active_tasks)
        .bind(now)
        .bind(dag.access_control.as_ref().map(json_text))
        .execute(&mut *tx)
        .await?;

        let existing = sqlx::query("SELECT id FROM dag_versions WHERE dag_id = $1 AND hash = $2")
            .bind(&dag.dag_id)
            .bind(&dag.hash)
            .fetch_optional(&mut *tx)
            .await?;
        let version_id = match existing {
            Some(row) => crate::rows::uuid(&row, "id")?,
            None => {
                let id = Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO dag_versions (id, dag_id, version_number, hash, spec, source, fileloc, created_ms)
                     SELECT $1, $2, COALESCE(MAX(version_number), 0) + 1, $3, $4, $5, $6, $7
                       FROM dag_versions WHERE dag_id = $2",
                )
                .bind(id.to_string())
                .bind(&dag.dag_id)
                .bind(&dag.hash)
                .bind(dag.spec.to_string())
                .bind(&dag.source)
                .bind(&dag.fileloc)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        sqlx::query("UPDATE dags SET latest_version_id = $1 WHERE dag_id = $2")
            .bind(version_id.to_string())
            .bind(&dag.dag_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(version_id)
    }

    /// Marks inactive every active DAG that is not in `present` and whose file is not among `broken_files`
    /// (a broken file keeps its last good version scheduled). Returns the DAG ids made inactive.
    pub async fn deactivate_missing_dags(&self, present: &[String], broken_files: &[String]) -> Result<Vec<String>> {
        let mut sql = String::from("UPDATE dags SET is_active = $1 WHERE is_active = $2");
        if !present.is_empty() {
            sql += &format!(" AND dag_id NOT IN ({})", placeholders(3, present.len()));
        }
        if !broken_files.is_empty() {
            let start = 3 + present.len();
            sql += &format!(" AND fileloc NOT IN ({})", placeholders(start, broken_files.len()));
        }
        sql += " RETURNING dag_id";
        let mut query = sqlx::query(&sql).bind(false).bind(true);
        for value in present.iter().chain(broken_files) {
            query = query.bind(value);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok(r.try_get("dag_id")?)).collect()
    }

    pub async fn get_dag(&self, dag_id: &str) -> Result<Option<DagRow>> {
        let sql = format!("SELECT {} FROM dags WHERE dag_id = $1", DagRow::COLUMNS);
        let row = sqlx::query(&sql).bind(dag_id).fetch_optional(self.pool()).await?;
        row.as_ref().map(DagRow::decode).transpose()
    }

    /// A page of DAGs in `dag_id` order, and the number of DAGs that match the filter.
    pub async fn list_dags(&self, filter: &DagFilter) -> Result<(Vec<DagRow>, i64)> {
        let mut conditions = vec!["1 = 1".to_string()];
        let mut binds: Vec<Bind> = Vec::new();
        if let Some(paused) = filter.paused {
            binds.push(Bind::Bool(paused));
            conditions.push(format!("is_paused = ${}", binds.len()));
        }
        if filter.only_active {
            binds.push(Bind::Bool(true));
            conditions.push(format!("is_active = ${}", binds.len()));
        }
        if let Some(pattern) = &filter.dag_id_pattern {
            binds.push(Bind::Text(pattern.clone()));
            conditions.push(format!("dag_id LIKE ${}", binds.len()));
        }
        // Tags and owners are JSON string lists; a quoted LIKE matches one whole element on both databases.
        let mut tag_conditions = Vec::new();
        for tag in &filter.tags {
            binds.push(Bind::Text(format!("%{}%", serde_json::Value::from(tag.as_str()))));
            tag_conditions.push(format!("tags LIKE ${}", binds.len()));
        }
        if !tag_conditions.is_empty() {
            let joiner = if filter.all_tags { " AND " } else { " OR " };
            conditions.push(format!("({})", tag_conditions.join(joiner)));
        }
        let mut owner_conditions = Vec::new();
        for owner in &filter.owners {
            binds.push(Bind::Text(format!("%{}%", serde_json::Value::from(owner.as_str()))));
            owner_conditions.push(format!("owners LIKE ${}", binds.len()));
        }
        if !owner_conditions.is_empty() {
            conditions.push(format!("({})", owner_conditions.join(" OR ")));
        }
        if filter.failing {
            conditions.push(
                "(SELECT r.state FROM dag_runs r WHERE r.dag_id = dags.dag_id
                   ORDER BY r.run_after_ms DESC, r.id DESC LIMIT 1) = 'failed'"
                    .into(),
            );
        }
        push_hidden("dag_id", &filter.hidden_dag_ids, &mut conditions, &mut binds);
        let where_clause = conditions.join(" AND ");
        let direction = if filter.descending { "DESC" } else { "ASC" };
        let count_sql = format!("SELECT COUNT(*) AS n FROM dags WHERE {where_clause}");
        let total: i64 = bind_all(sqlx::query(&count_sql), &binds).fetch_one(self.pool()).await?.try_get("n")?;
        let page_sql = format!(
            "SELECT {} FROM dags WHERE {where_clause} ORDER BY {} {direction}, dag_id {direction} LIMIT {} OFFSET {}",
            DagRow::COLUMNS,
            filter.order.column(),
            filter.limit.max(0),
            filter.offset.max(0)
        );
        let rows = bind_all(sqlx::query(&page_sql), &binds).fetch_all(self.pool()).await?;
        let dags = rows.iter().map(DagRow::decode).collect::<Result<Vec<_>>>()?;
        Ok((dags, total))
    }

    /// Sets a DAG's paused flag; `None` when there is no such DAG.
    pub async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<Option<DagRow>> {
        sqlx::query("UPDATE dags SET is_paused = $1 WHERE dag_id = $2")
            .bind(paused)
            .bind(dag_id)
            .execute(self.pool())
            .await?;
        self.get_dag(dag_id).await
    }

    /// Deletes a DAG with its versions, runs, task instances, tries and logs, unless some of its tasks are queued
    /// or running. Its file, if still there, brings it back at the next parse, as in Airflow.
    pub async fn delete_dag(&self, dag_id: &str) -> Result<DagDeletion> {
        let mut tx = self.pool().begin().await?;
        let lock = format!("SELECT dag_id FROM dags WHERE dag_id = $1{}", self.dialect().lock_wait());
        if sqlx::query(&lock).bind(dag_id).fetch_optional(&mut *tx).await?.is_none() {
            return Ok(DagDeletion::NotFound);
        }
        let active: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM task_instances WHERE dag_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(dag_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if active > 0 {
            return Ok(DagDeletion::TasksActive);
        }
        // Runs first: they reference versions, which the DAG row's cascade removes.
        sqlx::query("DELETE FROM dag_runs WHERE dag_id = $1").bind(dag_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM dags WHERE dag_id = $1").bind(dag_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(DagDeletion::Deleted)
    }

    /// The versions with these ids (unknown ids are skipped).
    pub async fn version_summaries(&self, ids: &[Uuid]) -> Result<Vec<VersionSummary>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id, dag_id, version_number, created_ms FROM dag_versions WHERE id IN ({})",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id.to_string());
        }
        query
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(VersionSummary {
                    id: crate::rows::uuid(r, "id")?,
                    dag_id: r.try_get("dag_id")?,
                    version_number: r.try_get("version_number")?,
                    created_at: from_ms(r.try_get("created_ms")?),
                })
            })
            .collect()
    }

    pub async fn get_dag_version_by_number(&self, dag_id: &str, number: i64) -> Result<Option<DagVersionRow>> {
        let sql =
            format!("SELECT {} FROM dag_versions WHERE dag_id = $1 AND version_number = $2", DagVersionRow::COLUMNS);
        let row = sqlx::query(&sql).bind(dag_id).bind(number).fetch_optional(self.pool()).await?;
        row.as_ref().map(DagVersionRow::decode).transpose()
    }

    pub async fn get_dag_version(&self, id: Uuid) -> Result<Option<DagVersionRow>> {
        let sql = format!("SELECT {} FROM dag_versions WHERE id = $1", DagVersionRow::COLUMNS);
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(self.pool()).await?;
        row.as_ref().map(DagVersionRow::decode).transpose()
    }

    /// Records (or refreshes) the import error of a file.
    pub async fn record_import_error(&self, filename: &str, message: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO import_errors (filename, message, timestamp_ms) VALUES ($1, $2, $3)
             ON CONFLICT (filename) DO UPDATE SET message = excluded.message, timestamp_ms = excluded.timestamp_ms",
        )
        .bind(filename)
        .bind(message)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets the import errors of every file not in `still_broken`.
    pub async fn clear_import_errors_except(&self, still_broken: &[String]) -> Result<()> {
        let mut sql = String::from("DELETE FROM import_errors");
        if !still_broken.is_empty() {
            sql += &format!(" WHERE filename NOT IN ({})", placeholders(1, still_broken.len()));
        }
        let mut query = sqlx::query(&sql);
        for file in still_broken {
            query = query.bind(file);
        }
        query.execute(self.pool()).await?;
        Ok(())
    }

    /// A page of import errors in id order, and how many match.
    pub async fn list_import_errors(&self, filter: &ImportErrorFilter) -> Result<(Vec<ImportErrorRow>, i64)> {
        let mut conditions = vec!["1 = 1".to_string()];
        let mut binds = Vec::new();
        if let Some(id) = filter.id {
            binds.push(Bind::Int(id));
            conditions.push(format!("id = ${}", binds.len()));
        }
        if !filter.hidden_dag_ids.is_empty() {
            let start = binds.len() + 1;
            binds.extend(filter.hidden_dag_ids.iter().cloned().map(Bind::Text));
            let hidden = placeholders(start, filter.hidden_dag_ids.len());
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM dags d WHERE d.fileloc = import_errors.filename)
                 AND NOT EXISTS (SELECT 1 FROM dags d WHERE d.fileloc = import_errors.filename AND d.dag_id IN ({hidden}))"
            ));
        }
        let where_clause = conditions.join(" AND ");
        let count_sql = format!("SELECT COUNT(*) AS n FROM import_errors WHERE {where_clause}");
        let total: i64 = bind_all(sqlx::query(&count_sql), &binds).fetch_one(self.pool()).await?.try_get("n")?;
        let sql = format!(
            "SELECT id, filename, message, timestamp_ms FROM import_errors WHERE {where_clause}
              ORDER BY id LIMIT {} OFFSET {}",
            filter.limit.max(0),
            filter.offset.max(0)
        );
        let rows = bind_all(sqlx::query(&sql), &binds).fetch_all(self.pool()).await?;
        let errors = rows
            .iter()
            .map(|r| {
                Ok(ImportErrorRow {
                    id: r.try_get("id")?,
                    filename: r.try_get("filename")?,
                    message: r.try_get("message")?,
                    timestamp: from_ms(r.try_get("timestamp_ms")?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((errors, total))
    }

    pub async fn set_variable(&self, key: &str, value: &str, description: Option<&str>) -> Result<()> {
        sqlx::query(
            "INSERT INTO variables (key, val, description) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET val = excluded.val, description = excluded.description",
        )
        .bind(key)
        .bind(self.secrets().seal(value)?)
        .bind(description)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Creates a variable; `false`, changing nothing, when the key exists already.
    pub async fn create_variable(&self, key: &str, value: &str, description: Option<&str>) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO variables (key, val, description) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(self.secrets().seal(value)?)
        .bind(description)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn get_variable(&self, key: &str) -> Result<Option<VariableRow>> {
        let row = sqlx::query("SELECT key, val, description FROM variables WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| self.decode_variable(&r)).transpose()
    }

    /// Deletes a variable; `false` when there was none.
    pub async fn delete_variable(&self, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM variables WHERE key = $1").bind(key).execute(self.pool()).await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn list_variables(&self) -> Result<Vec<VariableRow>> {
        let rows =
            sqlx::query("SELECT key, val, description FROM variables ORDER BY key").fetch_all(self.pool()).await?;
        rows.iter().map(|r| self.decode_variable(r)).collect()
    }

    fn decode_variable(&self, r: &sqlx::any::AnyRow) -> Result<VariableRow> {
        let stored: String = r.try_get("val")?;
        Ok(VariableRow {
            key: r.try_get("key")?,
            value: self.secrets().open(&stored)?,
            description: r.try_get("description")?,
        })
    }
}

/// Adds `<column> NOT IN (…)` for the DAGs a caller may not see; `column` holds a DAG id.
pub(crate) fn push_hidden(column: &str, hidden: &[String], conditions: &mut Vec<String>, binds: &mut Vec<Bind>) {
    if hidden.is_empty() {
        return;
    }
    let start = binds.len() + 1;
    binds.extend(hidden.iter().cloned().map(Bind::Text));
    conditions.push(format!("{column} NOT IN ({})", placeholders(start, hidden.len())));
}

/// A value bound to a dynamically built query.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Bool(bool),
    Int(i64),
    Text(String),
}

pub(crate) fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for bind in binds {
        query = match bind {
            Bind::Bool(b) => query.bind(*b),
            Bind::Int(i) => query.bind(*i),
            Bind::Text(t) => query.bind(t.as_str()),
        };
    }
    query
}
