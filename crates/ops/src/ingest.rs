//! `kind: ingest`: read a source (a file, an HTTP JSON API, a PostgreSQL query) and write it to the lake as each
//! output asset's partition for the run's logical date.
//!
//! With a `watermark` column the load is incremental: rows at or below the previous high-water mark (kept by the
//! caller per asset, e.g. from the last asset event) are skipped, and the report carries the new mark — the
//! previous one again when nothing new came, so that the next load does not start over. Numeric columns compare
//! as numbers; anything else compares as text, which orders ISO dates and timestamps correctly.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{NaiveDate, Utc};
use polars::prelude::*;
use sluice_core::ops_spec::IngestSpec;

use crate::error::{OpsError, Result};
use crate::frame;
use crate::lake::{Lake, WrittenPartition};
use crate::read::read_source;
use crate::task::OpContext;

/// What an ingest produced: the asset event's payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IngestReport {
    pub rows: usize,
    pub schema: Vec<ColumnInfo>,
    pub outputs: Vec<WrittenPartition>,
    /// The new high-water mark, when the spec has a `watermark` column and rows were loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnInfo {
    pub name: String,
    /// The engine's type name, e.g. `i64`, `f64`, `str`.
    pub dtype: String,
}

impl ColumnInfo {
    pub fn of(df: &DataFrame) -> Vec<ColumnInfo> {
        df.schema()
            .iter()
            .map(|(name, dtype)| ColumnInfo { name: name.to_string(), dtype: dtype.to_string() })
            .collect()
    }
}

/// Run an ingest task that needs no connection. `base_dir` resolves relative source paths; `previous_watermark`
/// is the mark of the last load.
pub fn ingest(
    spec: &IngestSpec,
    base_dir: &Path,
    lake: &Lake,
    ds: NaiveDate,
    previous_watermark: Option<&str>,
) -> Result<IngestReport> {
    let ctx = OpContext {
        lake,
        base_dir,
        ds,
        now: Utc::now(),
        previous_watermark,
        connections: &BTreeMap::new(),
        log: &|_: &str| {},
        model_version: None,
        registry: None,
        feedback: None,
        run: None,
        sensor: None,
    };
    run_ingest(spec, &ctx)
}

/// Run an ingest task into `ctx.lake`, for `ctx.ds`, above `ctx.previous_watermark`, with `ctx`'s connections.
pub fn run_ingest(spec: &IngestSpec, ctx: &OpContext<'_>) -> Result<IngestReport> {
    let previous = ctx.previous_watermark;
    let mut df = read_source(&spec.source, ctx, spec.watermark.as_deref())?;
    let mut watermark = None;
    // A source that returned nothing at all (an API's empty page) has no columns to look for the mark in.
    if let Some(column) = spec.watermark.as_deref().filter(|_| df.width() > 0) {
        df = above_watermark(df, column, previous)?;
        watermark = high_water_mark(&df, column)?;
    }
    if spec.watermark.is_some() && watermark.is_none() {
        watermark = previous.map(str::to_owned);
    }
    let outputs = spec.outputs.iter().map(|uri| ctx.lake.write(uri, ctx.ds, &mut df)).collect::<Result<Vec<_>>>()?;
    Ok(IngestReport { rows: df.height(), schema: ColumnInfo::of(&df), outputs, watermark })
}

fn above_watermark(df: DataFrame, column: &str, previous: Option<&str>) -> Result<DataFrame> {
    let numeric = frame::column(&df, column)?.dtype().is_primitive_numeric();
    let Some(previous) = previous else { return Ok(df) };
    let filter = if numeric {
        let mark: f64 = previous.parse().map_err(|_| {
            OpsError::Invalid(format!("watermark {previous:?} is not a number, but column {column:?} is numeric"))
        })?;
        col(column).cast(DataType::Float64).gt(lit(mark))
    } else {
        col(column).cast(DataType::String).gt(lit(previous.to_owned()))
    };
    Ok(df.lazy().filter(filter).collect()?)
}

fn high_water_mark(df: &DataFrame, column: &str) -> Result<Option<String>> {
    let values = frame::column(df, column)?;
    // Integers keep every digit; through f64 a large id would round, and the next load repeat or skip rows.
    if values.dtype().is_integer() {
        return Ok(values.cast(&DataType::Int64)?.i64()?.max().map(|m| m.to_string()));
    }
    if values.dtype().is_primitive_numeric() {
        let max = frame::numbers(df, column, "a watermark")?.into_iter().reduce(f64::max);
        return Ok(max.map(|m| m.to_string()));
    }
    Ok(frame::strings(df, column)?.iter().flatten().max().map(str::to_owned))
}

#[cfg(test)]
mod tests;
