//! The change feed: one poller per server process reads the runs and task instances whose `updated_ms` moved and
//! broadcasts them to every event stream of this process ([`super::events`]).
//!
//! Why polling rather than PostgreSQL `NOTIFY` from a trigger: a notification per changed row would add work to
//! every claim and report (the hot path) and queue up in PostgreSQL while nobody listens, and SQLite has no
//! equivalent. The poll reads one small index range twice a second, and only while a dashboard streams.
//!
//! `updated_ms` is stamped when a statement changes the row, not when its transaction commits, so a row may
//! become visible with a stamp older than changes already read. Each poll therefore reads from [`OVERLAP_MS`]
//! before the newest stamp seen, and drops what it has already sent (same row, state, try and stamp). A
//! transaction that commits later than that after its change is missed by the feed; the dashboard reloads its
//! views whenever it (re)connects. The cursor only follows stamps read from the database, so servers' clocks
//! play no part.
//!
//! The poller starts with the first subscriber and stops at the first poll after the last one left, or when the
//! server shuts down (its subscribers' streams then end, so graceful shutdown is not held up by open streams).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_scheduler::Engine;
use sluice_store::{Changes, RunChange, TiChange};
use tokio::sync::broadcast;
use uuid::Uuid;

/// How often the database is asked for changes while someone listens.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How far before the newest stamp seen each poll reads again, for changes that committed late.
pub const OVERLAP_MS: i64 = 3_000;
/// Changes a slow stream may fall behind by before it is told to reload (`resync`).
const CAPACITY: usize = 4096;

/// One change, shared by every stream.
#[derive(Debug, Clone)]
pub enum Change {
    Run(Arc<RunChange>),
    TaskInstance(Arc<TiChange>),
}

impl Change {
    pub fn dag_id(&self) -> &str {
        match self {
            Change::Run(r) => &r.dag_id,
            Change::TaskInstance(t) => &t.dag_id,
        }
    }

    pub fn run_id(&self) -> &str {
        match self {
            Change::Run(r) => &r.run_id,
            Change::TaskInstance(t) => &t.run_id,
        }
    }
}

/// Subscriptions to this process's poller; starts it when needed.
#[derive(Debug, Default)]
pub struct ChangeFeed {
    sender: Mutex<Option<broadcast::Sender<Change>>>,
}

impl ChangeFeed {
    /// Changes from now on; starts the poller if none runs.
    pub fn subscribe(self: &Arc<Self>, engine: &Engine) -> broadcast::Receiver<Change> {
        let mut slot = self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = slot.as_ref() {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(CAPACITY);
        *slot = Some(sender.clone());
        tokio::spawn(poll(self.clone(), engine.clone(), sender));
        receiver
    }

    /// Whether the poller should stop (no subscriber left, or shutting down); if so, forgets it, under the lock
    /// that [`ChangeFeed::subscribe`] takes, so that a new subscriber starts a new poller.
    fn retire(&self, sender: &broadcast::Sender<Change>, stopping: bool) -> bool {
        let mut slot = self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if sender.receiver_count() > 0 && !stopping {
            return false;
        }
        *slot = None;
        true
    }
}

async fn poll(feed: Arc<ChangeFeed>, engine: Engine, sender: broadcast::Sender<Change>) {
    let store = engine.store();
    let mut reader: Option<Reader> = None;
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::debug!("change feed started");
    loop {
        tick.tick().await;
        if feed.retire(&sender, engine.is_stopping()) {
            tracing::debug!("change feed stopped");
            return;
        }
        let Some(r) = reader.as_mut() else {
            match store.latest_change_ms().await {
                Ok(start) => reader = Some(Reader::new(start)),
                Err(e) => tracing::warn!(error = %e, "change feed cannot start; retrying"),
            }
            continue;
        };
        match store.changes_since(r.since()).await {
            Ok(changes) => {
                for change in r.fresh(changes) {
                    // An error only means every subscriber left meanwhile: the next tick retires the poller.
                    let _ = sender.send(change);
                }
            }
            Err(e) => tracing::warn!(error = %e, "change feed cannot read changes; retrying"),
        }
    }
}

/// What the feed has sent: the newest stamp, and the changes still inside the overlap window.
#[derive(Debug)]
struct Reader {
    newest: i64,
    sent: HashSet<(Uuid, &'static str, i64, i64)>,
}

impl Reader {
    fn new(start_ms: i64) -> Reader {
        Reader { newest: start_ms, sent: HashSet::new() }
    }

    /// Where the next read starts (exclusive).
    fn since(&self) -> i64 {
        self.newest - OVERLAP_MS
    }

    /// The changes of a read not sent before, oldest first; remembers them.
    fn fresh(&mut self, changes: Changes) -> Vec<Change> {
        let mut fresh = Vec::new();
        for run in changes.runs {
            if self.first_time((run.id, run.state.as_str(), 0, run.updated_ms)) {
                fresh.push((run.updated_ms, Change::Run(Arc::new(run))));
            }
        }
        for ti in changes.task_instances {
            if self.first_time((ti.id, ti.state.as_str(), ti.try_number, ti.updated_ms)) {
                fresh.push((ti.updated_ms, Change::TaskInstance(Arc::new(ti))));
            }
        }
        fresh.sort_by_key(|(stamp, _)| *stamp);
        let since = self.since();
        self.sent.retain(|key| key.3 > since);
        fresh.into_iter().map(|(_, change)| change).collect()
    }

    fn first_time(&mut self, key: (Uuid, &'static str, i64, i64)) -> bool {
        self.newest = self.newest.max(key.3);
        self.sent.insert(key)
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::{RunState, TaskState};

    use super::*;

    fn ti(id: u128, state: TaskState, try_number: i64, updated_ms: i64) -> TiChange {
        TiChange {
            id: Uuid::from_u128(id),
            dag_id: "d".into(),
            run_id: "r".into(),
            task_id: format!("t{id}"),
            map_index: -1,
            state,
            try_number,
            queued_at: None,
            start_date: None,
            end_date: None,
            updated_ms,
        }
    }

    fn run(id: u128, state: RunState, updated_ms: i64) -> RunChange {
        RunChange {
            id: Uuid::from_u128(id),
            dag_id: "d".into(),
            run_id: "r".into(),
            state,
            run_type: "manual".into(),
            logical_date: None,
            queued_at: None,
            start_date: None,
            end_date: None,
            updated_ms,
        }
    }

    fn stamps(changes: &[Change]) -> Vec<(String, i64)> {
        changes
            .iter()
            .map(|c| match c {
                Change::Run(r) => (format!("run {}", r.state.as_str()), r.updated_ms),
                Change::TaskInstance(t) => (format!("{} {}", t.task_id, t.state.as_str()), t.updated_ms),
            })
            .collect()
    }

    #[test]
    fn each_change_is_sent_once_and_late_commits_are_caught() {
        let mut reader = Reader::new(10_000);
        assert_eq!(reader.since(), 10_000 - OVERLAP_MS);
        let first = Changes {
            runs: vec![run(9, RunState::Running, 10_200)],
            task_instances: vec![ti(1, TaskState::Queued, 0, 10_100), ti(2, TaskState::Running, 1, 10_300)],
        };
        let sent = reader.fresh(first.clone());
        assert_eq!(
            stamps(&sent),
            [("t1 queued".into(), 10_100), ("run running".into(), 10_200), ("t2 running".into(), 10_300)]
        );
        assert_eq!(reader.since(), 10_300 - OVERLAP_MS);
        // The same rows read again (the overlap) are not sent again; a change stamped before the newest one but
        // committed since is, and so is a row's next change.
        let mut second = first;
        second.task_instances.push(ti(3, TaskState::Success, 1, 10_250));
        second.task_instances[0] = ti(1, TaskState::Running, 1, 10_400);
        assert_eq!(stamps(&reader.fresh(second)), [("t3 success".into(), 10_250), ("t1 running".into(), 10_400)]);
    }

    #[test]
    fn what_left_the_overlap_window_is_forgotten() {
        let mut reader = Reader::new(0);
        reader.fresh(Changes { runs: vec![], task_instances: vec![ti(1, TaskState::Queued, 0, 1_000)] });
        reader
            .fresh(Changes { runs: vec![], task_instances: vec![ti(2, TaskState::Queued, 0, 1_000 + 2 * OVERLAP_MS)] });
        assert_eq!(reader.sent.len(), 1);
    }
}
