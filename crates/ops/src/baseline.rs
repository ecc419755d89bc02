//! The yardstick of `sluice bench --scenarios transform`: the benchmark's preparation of a CSV written directly on
//! polars, as a user of polars alone would write it — read the CSV, drop duplicate rows, fill missing values with
//! the mean or the most frequent value, one-hot encode, standardise, write a Parquet file with the lake's
//! compression. No lake, no content hash, no fitted parameters, no atomic write: what Sluice's `ingest` and
//! `transform` add is measured against this. No task runs it.

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use crate::error::{OpsError, Result};
use crate::lake::PARQUET_COMPRESSION;

/// The columns each step works on, in the order the steps run (after dropping duplicates over all columns).
#[derive(Debug, Clone, Default)]
pub struct BaselineSteps {
    /// Missing values replaced by the column's mean.
    pub fill_mean: Vec<String>,
    /// Missing values replaced by the column's most frequent value.
    pub fill_mode: Vec<String>,
    /// Replaced by one 0/1 column per value.
    pub one_hot: Vec<String>,
    /// `(x - mean) / std`, sample standard deviation.
    pub standardize: Vec<String>,
}

/// Prepare `csv` into the Parquet file `out`; returns the rows and columns written.
pub fn transform_with_polars(csv: &Path, out: &Path, steps: &BaselineSteps) -> Result<(usize, usize)> {
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(csv.to_owned()))?
        .finish()?
        .unique_stable(None, UniqueKeepStrategy::First, None)?;

    // Learned after dropping duplicates, as the steps see the frame in turn.
    let mut fills: Vec<Expr> =
        steps.fill_mean.iter().map(|c| col(c.as_str()).fill_null(col(c.as_str()).mean())).collect();
    for c in &steps.fill_mode {
        fills.push(col(c.as_str()).fill_null(lit(most_frequent(&df, c)?)));
    }
    let mut dummies = Vec::new();
    for c in &steps.one_hot {
        let distinct = df.column(c)?.unique()?;
        let mut values: Vec<&str> = distinct.str()?.iter().flatten().collect();
        values.sort_unstable();
        for value in values {
            dummies.push(
                col(c.as_str())
                    .eq(lit(value))
                    .fill_null(lit(false))
                    .cast(DataType::Int32)
                    .alias(format!("{c}_{value}")),
            );
        }
    }
    let z = |c: &String| ((col(c.as_str()) - col(c.as_str()).mean()) / col(c.as_str()).std(1)).alias(c.as_str());
    let mut df = df
        .lazy()
        .with_columns(fills)
        .with_columns(dummies)
        .drop(cols(steps.one_hot.iter().map(String::as_str)))
        .with_columns(steps.standardize.iter().map(z).collect::<Vec<_>>())
        .collect()?;

    let file = File::create(out).map_err(OpsError::io("cannot write", out))?;
    ParquetWriter::new(file).with_compression(PARQUET_COMPRESSION).finish(&mut df)?;
    Ok((df.height(), df.width()))
}

/// The most frequent non-missing value of a text column.
fn most_frequent(df: &DataFrame, column: &str) -> Result<String> {
    let counts = df
        .clone()
        .lazy()
        .group_by([col(column)])
        .agg([len().alias("n")])
        .drop_nulls(None)
        // Ties go to the smallest value, as Sluice's `mode` does.
        .sort(["n", column], SortMultipleOptions::default().with_order_descending_multi([true, false]))
        .limit(1)
        .collect()?;
    let value = counts.column(column)?.str()?.get(0).map(str::to_owned);
    value.ok_or_else(|| OpsError::Invalid(format!("column {column:?} has no values")))
}
