//! Transactions, and the lock order as types.
//!
//! The scheduler's decisions (start a run, queue what is ready, end a try and schedule what follows) read a run's
//! task instances and write new states; doing so inside one [`Tx`] with the run's row locked is what keeps two
//! schedulers, or a scheduler and a worker's report, from deciding about the same run at once.
//!
//! Locks are taken run first, then task instance (then the run's backfill row and its pools' rows), on every
//! path, so that no two transactions wait for each other in a circle. The types make that the only order that
//! compiles: a [`RunTx`] is what locking a run's row gives, and the methods that change or lock a run's task
//! instances exist only on it, restricted in SQL to that run. Two narrower guards cover the paths that do not
//! take a run's exclusive lock: a worker's claim ([`crate::Claim`]) share-locks the runs of what it claims, then
//! the task instances, and can only start tries; the end of a leaf task's try ([`crate::LeafTry`]) locks that one
//! task instance and can only end its try.
//!
//! Queueing work is announced by the transaction itself: on PostgreSQL a `NOTIFY` that is delivered when it
//! commits, and in this process a signal raised by [`Tx::commit`], so no caller has to remember to wake workers.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::{Any, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::Result;
use crate::{DagRunRow, Dialect};

pub struct Tx {
    pub(crate) inner: Transaction<'static, Any>,
    pub(crate) dialect: Dialect,
    /// Raised on commit when this transaction queued task instances.
    work: Arc<Notify>,
    queued_work: bool,
}

impl Tx {
    pub(crate) fn new(inner: Transaction<'static, Any>, dialect: Dialect, work: Arc<Notify>) -> Tx {
        Tx { inner, dialect, work, queued_work: false }
    }

    /// Commits, then wakes the workers waiting in this process if task instances were queued (other processes
    /// learn from the `NOTIFY` sent with the queueing).
    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await?;
        if self.queued_work {
            self.work.notify_waiters();
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.inner.rollback().await?;
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Records that task instances were queued: every server listening on the database learns when this
    /// transaction commits (PostgreSQL), and [`Tx::commit`] wakes this process's workers.
    pub(crate) async fn announce_work(&mut self) -> Result<()> {
        if self.queued_work {
            return Ok(());
        }
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_notify($1, '')").bind(crate::logs::WORK_CHANNEL).execute(&mut *self.inner).await?;
        }
        self.queued_work = true;
        Ok(())
    }

    /// Locks one run, waiting for whoever holds it: the only way to change its task instances.
    pub async fn lock_run(&mut self, run_pk: Uuid) -> Result<Option<RunTx<'_>>> {
        let sql = format!("SELECT {} FROM dag_runs WHERE id = $1{}", DagRunRow::COLUMNS, self.dialect.lock_wait());
        let row = sqlx::query(&sql).bind(run_pk.to_string()).fetch_optional(&mut *self.inner).await?;
        match row.as_ref().map(DagRunRow::decode).transpose()? {
            Some(run) => Ok(Some(RunTx { tx: self, run })),
            None => Ok(None),
        }
    }
}

/// Reads inside a transaction, and nothing else: what a [`crate::Claim`] may do between locking its task instances
/// and starting their tries (render what each runs) without being able to lock anything more.
pub struct Reads<'a> {
    pub(crate) tx: &'a mut Tx,
}

impl Tx {
    pub fn reads(&mut self) -> Reads<'_> {
        Reads { tx: self }
    }
}

/// A transaction holding one run's row lock: the only way to change, or lock, that run's task instances.
///
/// It is obtained by locking the run ([`Tx::lock_run`], [`Tx::lock_runs_to_schedule`], [`Tx::lock_run_at`]) or
/// by creating it ([`Tx::create_run`]: a new row is invisible to others until the commit). Everything else a
/// [`Tx`] does stays available through it:
///
/// ```no_run
/// # async fn f(tx: &mut sluice_store::Tx, run_pk: uuid::Uuid, ids: &[uuid::Uuid]) -> sluice_store::Result<()> {
/// use sluice_core::TaskState;
/// if let Some(mut run) = tx.lock_run(run_pk).await? {
///     run.set_ti_states(ids, &[TaskState::Queued], TaskState::Skipped, chrono::Utc::now()).await?;
/// }
/// # Ok(())
/// # }
/// ```
///
/// Code that would update task instances without their run's lock does not compile:
///
/// ```compile_fail
/// # async fn f(tx: &mut sluice_store::Tx, ids: &[uuid::Uuid]) -> sluice_store::Result<()> {
/// use sluice_core::TaskState;
/// tx.set_ti_states(ids, &[TaskState::Queued], TaskState::Skipped, chrono::Utc::now()).await?;
/// # Ok(())
/// # }
/// ```
pub struct RunTx<'t> {
    pub(crate) tx: &'t mut Tx,
    pub(crate) run: DagRunRow,
}

impl<'t> RunTx<'t> {
    pub(crate) fn new(tx: &'t mut Tx, run: DagRunRow) -> RunTx<'t> {
        RunTx { tx, run }
    }

    /// The run as it was when locked, with the state changes made through this guard since.
    pub fn run(&self) -> &DagRunRow {
        &self.run
    }
}

impl Deref for RunTx<'_> {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        self.tx
    }
}

impl DerefMut for RunTx<'_> {
    fn deref_mut(&mut self) -> &mut Tx {
        self.tx
    }
}

/// Runs locked together by one scheduler pass, handed out one [`RunTx`] at a time.
pub struct LockedRuns<'t> {
    pub(crate) tx: &'t mut Tx,
    pub(crate) runs: std::vec::IntoIter<DagRunRow>,
}

impl LockedRuns<'_> {
    /// The next locked run; the one before must be done with, as both borrow the transaction.
    pub fn next_run(&mut self) -> Option<RunTx<'_>> {
        let run = self.runs.next()?;
        Some(RunTx { tx: self.tx, run })
    }

    /// How many runs are left.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.len() == 0
    }
}
