//! `sluice db clean`: history older than a cutoff deleted in small batches, as `airflow db clean` does, so that the
//! tables a long-lived deployment grows stay small and no batch holds locks for long.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::Store;
use crate::error::Result;
use crate::time::to_ms;

/// What `db clean` can delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum History {
    /// Finished runs, with their task instances, tries and logs. The latest scheduled run of each DAG is kept,
    /// as Airflow keeps it: the next scheduled run is reckoned from it.
    DagRuns,
    /// Log lines of tries that ended before the cutoff (their runs are kept).
    TaskLogs,
    /// Audit log events.
    EventLog,
    /// Alerts and lineage events delivered or given up on (pending ones are kept).
    Notifications,
}

impl History {
    pub const ALL: [History; 4] = [History::DagRuns, History::TaskLogs, History::EventLog, History::Notifications];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            History::DagRuns => "dag_runs",
            History::TaskLogs => "task_logs",
            History::EventLog => "event_log",
            History::Notifications => "notifications",
        }
    }

    /// The table and the condition (on `$1`, the cutoff in ms) of the rows to delete.
    fn rows(self) -> (&'static str, &'static str) {
        match self {
            History::DagRuns => (
                "dag_runs",
                "state IN ('success', 'failed') AND COALESCE(end_ms, run_after_ms) < $1
                 AND NOT (run_type <> 'manual' AND NOT EXISTS (
                     SELECT 1 FROM dag_runs later WHERE later.dag_id = dag_runs.dag_id
                        AND later.run_type <> 'manual' AND later.run_after_ms > dag_runs.run_after_ms))",
            ),
            History::TaskLogs => {
                ("task_logs", "try_id IN (SELECT id FROM task_tries WHERE end_ms IS NOT NULL AND end_ms < $1)")
            }
            History::EventLog => ("event_log", "when_ms < $1"),
            History::Notifications => ("notifications", "state <> 'pending' AND created_ms < $1"),
        }
    }
}

impl Store {
    /// How many rows of `history` are older than `before`.
    pub async fn count_history(&self, history: History, before: DateTime<Utc>) -> Result<i64> {
        let (table, condition) = history.rows();
        let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {condition}");
        Ok(sqlx::query(&sql).bind(to_ms(before)).fetch_one(self.pool()).await?.try_get("n")?)
    }

    /// Deletes at most `batch` rows of `history` older than `before`; how many it deleted (0: none are left).
    pub async fn delete_history(&self, history: History, before: DateTime<Utc>, batch: i64) -> Result<u64> {
        let (table, condition) = history.rows();
        let sql = format!(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {condition} LIMIT {})",
            batch.max(1)
        );
        Ok(sqlx::query(&sql).bind(to_ms(before)).execute(self.pool()).await?.rows_affected())
    }
}
