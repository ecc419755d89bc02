//! Transactions, and the lock order as types.
//!
//! The scheduler's decisions (start a run, queue what is ready, end a try and schedule what follows) read a run's
//! task instances and write new states; doing so inside one [`Tx`] with the run's row locked is what keeps two
//! schedulers, or a scheduler and a worker's report, from deciding about the same run at once.
//!
//! Locks are taken run first, then task instance (then the run's backfill row, its DAG's row and its pools' rows),
//! on every path, so that no two transactions wait for each other in a circle. The types make that the only order that
//! compiles: a [`RunTx`] is what locking a run's row gives, and the methods that change or lock a run's task
//! instances exist only on it, restricted in SQL to that run. Two narrower guards cover the paths that do not
//! take a run's exclusive lock: a worker's claim ([`crate::Claim`]) share-locks the runs of what it claims, then
//! the task instances, and can only start tries; the end of a leaf task's try ([`crate::LeafTry`]) locks that one
//! task instance and can only end its try.
//!
//! A run's row is locked in one of two strengths. A decision that moves the run forward (a report, settling, the
//! scheduler's pass, a clear) takes `FOR NO KEY UPDATE`: decisions about one run take turns, and claims of its
//! queued tasks go on meanwhile, since none of these decisions takes a queued task back. A decision that does
//! (a manual mark, a run's timeout) takes `FOR UPDATE`, which claims skip ([`Tx::lock_run_excluding_claims`],
//! [`RunTx::exclude_claims`]); [`RunTx::set_ti_states`] refuses to move queued task instances without it.
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
    /// Raised on commit when this transaction queued task instances, or held a run that claims skipped.
    work: Arc<Notify>,
    pub(crate) secrets: Arc<crate::Secrets>,
    pub(crate) backends: Arc<crate::SecretsBackends>,
    queued_work: bool,
    excluded_claims: bool,
}

impl Tx {
    pub(crate) fn new(
        inner: Transaction<'static, Any>,
        dialect: Dialect,
        work: Arc<Notify>,
        secrets: Arc<crate::Secrets>,
        backends: Arc<crate::SecretsBackends>,
    ) -> Tx {
        Tx { inner, dialect, work, secrets, backends, queued_work: false, excluded_claims: false }
    }

    /// Commits, then wakes the workers waiting in this process if task instances were queued (other processes
    /// learn from the `NOTIFY` sent with the queueing), or if claims skipped a run this transaction held.
    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await?;
        if self.queued_work || self.excluded_claims {
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

    /// Locks one run to decide about it, waiting for another decision that holds it: the only way to change its
    /// task instances. Claims of its queued tasks go on meanwhile.
    pub async fn lock_run(&mut self, run_pk: Uuid) -> Result<Option<RunTx<'_>>> {
        self.lock_run_as(run_pk, false).await
    }

    /// Locks one run to take its queued tasks back (a manual mark): claims skip it until this transaction ends.
    pub async fn lock_run_excluding_claims(&mut self, run_pk: Uuid) -> Result<Option<RunTx<'_>>> {
        self.lock_run_as(run_pk, true).await
    }

    async fn lock_run_as(&mut self, run_pk: Uuid, exclude_claims: bool) -> Result<Option<RunTx<'_>>> {
        let lock = if exclude_claims { self.dialect.lock_wait() } else { self.dialect.lock_decide() };
        let sql = format!("SELECT {} FROM dag_runs WHERE id = $1{lock}", DagRunRow::COLUMNS);
        let row = sqlx::query(&sql).bind(run_pk.to_string()).fetch_optional(&mut *self.inner).await?;
        let Some(run) = row.as_ref().map(DagRunRow::decode).transpose()? else { return Ok(None) };
        self.excluded_claims |= exclude_claims;
        Ok(Some(RunTx::new(self, run, exclude_claims)))
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
/// It is obtained by locking the run ([`Tx::lock_run`], [`Tx::lock_run_excluding_claims`],
/// [`Tx::lock_runs_to_schedule`], [`Tx::lock_run_at`]) or
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
    /// Whether the lock excludes claims too (`FOR UPDATE`), as taking queued tasks back needs.
    pub(crate) excludes_claims: bool,
}

impl<'t> RunTx<'t> {
    pub(crate) fn new(tx: &'t mut Tx, run: DagRunRow, excludes_claims: bool) -> RunTx<'t> {
        RunTx { tx, run, excludes_claims }
    }

    /// Strengthens the lock so that claims skip the run from now on, waiting for those under way (they never wait
    /// themselves, so this cannot deadlock). Read the task instances to take back after this, not before: a
    /// claim may start one of them in between.
    pub async fn exclude_claims(&mut self) -> Result<()> {
        if !self.excludes_claims {
            let sql = format!("SELECT id FROM dag_runs WHERE id = $1{}", self.tx.dialect.lock_wait());
            sqlx::query(&sql).bind(self.run.id.to_string()).execute(&mut *self.tx.inner).await?;
            self.excludes_claims = true;
            self.tx.excluded_claims = true;
        }
        Ok(())
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
        Some(RunTx::new(self.tx, run, false))
    }

    /// How many runs are left.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.len() == 0
    }
}
