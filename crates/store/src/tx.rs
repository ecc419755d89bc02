//! A transaction for changes that must happen together.
//!
//! The scheduler's decisions (start a run, queue what is ready, end a try and schedule what follows) read a run's
//! task instances and write new states; doing so inside one [`Tx`] with the run's row locked is what keeps two
//! schedulers, or a scheduler and a worker's report, from deciding about the same run at once.

use sqlx::{Any, Transaction};

use crate::Dialect;
use crate::error::Result;

pub struct Tx {
    pub(crate) inner: Transaction<'static, Any>,
    pub(crate) dialect: Dialect,
}

impl Tx {
    pub(crate) fn new(inner: Transaction<'static, Any>, dialect: Dialect) -> Tx {
        Tx { inner, dialect }
    }

    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.inner.rollback().await?;
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}
