//! The errors of data tasks, worded for the person who wrote the DAG: each names the file, asset or column at fault
//! and, where it helps, what was found instead.

use std::path::PathBuf;

use polars::prelude::PolarsError;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("input file {0} does not exist")]
    FileNotFound(PathBuf),
    /// Malformed content: polars' message says which value, column and (when it knows) row.
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    /// Schema drift: a column the task needs is not in the data.
    #[error("column {column:?} not found; the data has columns: {}", present.join(", "))]
    MissingColumn { column: String, present: Vec<String> },
    #[error("invalid asset URI {uri:?}: {reason}")]
    BadUri { uri: String, reason: &'static str },
    #[error("asset {uri} has no partition for {ds} (expected {path})")]
    NoPartition { uri: String, ds: chrono::NaiveDate, path: PathBuf },
    /// A model version that is registered but not served (no ONNX export): what would make it servable.
    #[error("{0}")]
    NotServed(String),
    /// A step or check that cannot run on this data, e.g. `standardize` on a text column.
    #[error("{0}")]
    Invalid(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The task names a connection that did not come with it (run by hand without `SLUICE_CONN_*`).
    #[error("connection {0:?} is not available to this task")]
    MissingConnection(String),
    /// An HTTP source that could not be read: the message names the URL (without its query) and the status.
    #[error("{0}")]
    Http(String),
    /// PostgreSQL's own message, with the connection it came through.
    #[error("connection {connection:?}: {message}")]
    Database { connection: String, message: String },
    #[error(transparent)]
    Polars(#[from] PolarsError),
}

impl OpsError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> OpsError {
        let path = path.into();
        move |source| OpsError::Io { action, path, source }
    }
}

pub type Result<T, E = OpsError> = std::result::Result<T, E>;
