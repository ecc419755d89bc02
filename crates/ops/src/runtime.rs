//! A runtime for the async clients of remote sources (reqwest, sqlx).
//!
//! Data tasks run synchronously — polars is synchronous, and `sluice run-op` calls them on a blocking thread — so
//! the sources that talk to a server drive their requests on a current-thread runtime of their own, for the length
//! of the read. That keeps the crate's entry points plain functions that any caller (the worker's child process, a
//! test, a benchmark) can call without a runtime of its own.

use std::future::Future;

use crate::error::{OpsError, Result};

/// Runs `future` to completion on a fresh current-thread runtime.
pub(crate) fn block_on<F: Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OpsError::Invalid(format!("cannot start the runtime for network access: {e}")))?;
    Ok(runtime.block_on(future))
}
