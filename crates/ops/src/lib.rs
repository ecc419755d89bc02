//! Sluice's built-in data task kinds, on polars: `ingest`, `quality`, `transform`, and `sql`.
//!
//! The task configuration lives in [`sluice_core::ops_spec`] (pure serde, so DAG files validate without this crate);
//! this crate executes it. Data moves through the [`Lake`]: an asset URI such as `lake://raw/penguins` names a folder,
//! each run writes one partition `ds=YYYY-MM-DD/part-0.parquet` for its logical date, and every write is atomic.
//!
//! Each task kind has a lake-level entry point over a frame-level core (tested on small frames):
//!
//! - [`ingest()`] / [`run_ingest`] read a CSV, JSON-lines or Parquet file (local or in S3), an HTTP JSON API or a
//!   query on a SQL database (PostgreSQL, MySQL, SQLite) and write it to the lake, reporting rows, schema and a
//!   content hash (for the asset event).
//! - [`run_quality`] / [`run_checks`] evaluate the data SLA into a [`QualityReport`]; the task fails when an
//!   `error`-severity check fails.
//! - [`run_transform`] / [`fit`] run the ordered steps and return the learned parameters as a [`FittedTransform`],
//!   stored next to the output, which [`FittedTransform::apply`] replays exactly on new data (inference-time
//!   feature preparation).
//!
//! `kind: sql` runs statements on a PostgreSQL, MySQL or SQLite connection.
//!
//! [`run_op`] runs any of them from its rendered configuration and returns the output a worker reports.
//!
//! Only this crate depends on polars (see STACK.md): it compiles slowly, and the rest of Sluice must not wait for it.

pub mod baseline;
pub mod error;
mod frame;
mod http;
pub mod ingest;
pub mod lake;
pub mod model;
mod object;
pub mod quality;
pub mod read;
mod runtime;
mod sensor;
mod sql;
pub mod task;
#[cfg(test)]
mod test_util;
pub mod transform;

pub use error::OpsError;
pub use ingest::{ColumnInfo, IngestReport, ingest, run_ingest};
pub use lake::{Lake, WrittenPartition};
pub use quality::{CheckResult, QualityReport, run_checks, run_quality};
pub use task::{OpContext, TaskRun, run_op};
pub use transform::{FittedStep, FittedTransform, TransformOutput, fit, run_transform};

/// The data frame type this crate reads and writes.
pub use polars::prelude::DataFrame;
