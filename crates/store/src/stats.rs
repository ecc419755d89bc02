//! What monitoring reads from the database on each scrape of `/metrics`: how many runs and task instances are in
//! each state, what waits in each queue, and how the connection pool is used.

use sqlx::Row;

use crate::Store;
use crate::error::Result;
use crate::rows::int;

/// Counts by label (a state or a queue name), in the label's order.
pub type Counts = Vec<(String, i64)>;

/// The database's side of `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub runs_by_state: Counts,
    pub task_instances_by_state: Counts,
    /// Queued task instances (waiting for a worker) per queue.
    pub queued_by_queue: Counts,
}

/// Connections of the pool: open ones, and those idle among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    pub open: u32,
    pub idle: usize,
}

impl Store {
    pub async fn stats(&self) -> Result<Stats> {
        Ok(Stats {
            runs_by_state: self.counts("SELECT state AS label, COUNT(*) AS n FROM dag_runs GROUP BY state").await?,
            task_instances_by_state: self
                .counts("SELECT state AS label, COUNT(*) AS n FROM task_instances GROUP BY state")
                .await?,
            queued_by_queue: self
                .counts(
                    "SELECT queue AS label, COUNT(*) AS n FROM task_instances WHERE state = 'queued' GROUP BY queue",
                )
                .await?,
        })
    }

    async fn counts(&self, sql: &str) -> Result<Counts> {
        let rows = sqlx::query(sql).fetch_all(self.pool()).await?;
        let mut counts = rows.iter().map(|r| Ok((r.try_get("label")?, int(r, "n")?))).collect::<Result<Counts>>()?;
        counts.sort();
        Ok(counts)
    }

    pub fn pool_use(&self) -> PoolUse {
        PoolUse { open: self.pool().size(), idle: self.pool().num_idle() }
    }
}
