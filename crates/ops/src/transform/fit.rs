//! Learning a step's parameters from the frame it will be applied to.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::*;
use sluice_core::ops_spec::{Columns, FillMissing, FillStrategy, Literal, OutlierMethod, Outliers, Step};

use super::{Affine, Fence, FittedJoin, FittedStep, stats};
use crate::error::{OpsError, Result};
use crate::frame;
use crate::lake::Lake;

pub(super) fn fit_step(df: &DataFrame, step: &Step, lake: &Lake, ds: NaiveDate) -> Result<FittedStep> {
    Ok(match step {
        Step::Select(c) => FittedStep::Select(c.clone()),
        Step::Rename(m) => FittedStep::Rename(m.clone()),
        Step::Cast(m) => FittedStep::Cast(m.clone()),
        Step::DropDuplicates(s) => FittedStep::DropDuplicates(s.clone()),
        Step::DropMissing(s) => FittedStep::DropMissing(s.clone()),
        Step::FillMissing(f) if f.strategy == FillStrategy::Forward => {
            FittedStep::ForwardFill(Columns { columns: f.columns.clone() })
        }
        Step::FillMissing(f) => FittedStep::FillMissing(per_column(&f.columns, |c| fill_value(df, c, f))?),
        Step::ClipOutliers(o) => FittedStep::ClipOutliers(per_column(&o.columns, |c| fence(df, c, o))?),
        Step::DropOutliers(o) => FittedStep::DropOutliers(per_column(&o.columns, |c| fence(df, c, o))?),
        Step::Standardize(c) => FittedStep::Scale(per_column(&c.columns, |c| z_score(df, c))?),
        Step::MinMaxScale(c) => FittedStep::Scale(per_column(&c.columns, |c| min_max(df, c))?),
        Step::TextClean(t) => FittedStep::TextClean(t.clone()),
        Step::OneHot(c) => FittedStep::OneHot(per_column(&c.columns, |c| categories(df, c))?),
        Step::OrdinalEncode(c) => FittedStep::OrdinalEncode(per_column(&c.columns, |c| categories(df, c))?),
        Step::HashPii(h) => FittedStep::HashPii(h.clone()),
        Step::MaskPii(m) => FittedStep::MaskPii(m.clone()),
        Step::Derive(columns) => FittedStep::Derive(columns.clone()),
        Step::Join(spec) => FittedStep::Join(FittedJoin::fit(spec, lake, ds)?),
    })
}

fn per_column<T>(columns: &[String], fit: impl Fn(&str) -> Result<T>) -> Result<BTreeMap<String, T>> {
    columns.iter().map(|c| Ok((c.clone(), fit(c)?))).collect()
}

fn no_values(what: &str, column: &str) -> OpsError {
    OpsError::Invalid(format!("cannot fit {what} of column {column:?}: it has no values"))
}

fn fill_value(df: &DataFrame, column: &str, spec: &FillMissing) -> Result<Literal> {
    let numeric = |what: &str, f: fn(&[f64]) -> Option<f64>| {
        f(&frame::numbers(df, column, &format!("fill_missing {what}"))?)
            .map(Literal::Float)
            .ok_or_else(|| no_values(what, column))
    };
    match spec.strategy {
        FillStrategy::Mean => numeric("mean", stats::mean),
        FillStrategy::Median => numeric("median", |v| stats::quantile(v, 0.5)),
        FillStrategy::Mode => mode(df, column),
        FillStrategy::Constant => spec.value.clone().ok_or_else(|| {
            OpsError::Invalid(format!("fill_missing of {column:?} with strategy constant needs a value"))
        }),
        // Handled before: forward fill learns nothing.
        FillStrategy::Forward => Err(OpsError::Invalid("forward fill has no fitted value".into())),
    }
}

/// The most frequent value, typed like the column so that filling does not change its type. Numbers are compared
/// as numbers (ties go to the smallest), everything else as text.
fn mode(df: &DataFrame, column: &str) -> Result<Literal> {
    let dtype = frame::column(df, column)?.dtype().clone();
    if dtype.is_primitive_numeric() {
        let mut values = frame::numbers(df, column, "fill_missing mode")?;
        values.sort_by(f64::total_cmp);
        let m = stats::mode_of_sorted(values).ok_or_else(|| no_values("the mode", column))?;
        return Ok(if dtype.is_integer() { Literal::Int(m as i64) } else { Literal::Float(m) });
    }
    let text = frame::strings(df, column)?;
    let m = stats::most_frequent(text.iter().flatten()).ok_or_else(|| no_values("the mode", column))?;
    Ok(if dtype == DataType::Boolean { Literal::Bool(m == "true") } else { Literal::String(m.to_owned()) })
}

fn fence(df: &DataFrame, column: &str, spec: &Outliers) -> Result<Fence> {
    let values = frame::numbers(df, column, "outlier handling")?;
    let factor = spec.factor.unwrap_or(spec.method.default_factor());
    let (center_low, center_high, width) = match spec.method {
        OutlierMethod::Iqr => {
            let q1 = stats::quantile(&values, 0.25).ok_or_else(|| no_values("quartiles", column))?;
            let q3 = stats::quantile(&values, 0.75).ok_or_else(|| no_values("quartiles", column))?;
            (q1, q3, q3 - q1)
        }
        OutlierMethod::Zscore => {
            let mean = stats::mean(&values).ok_or_else(|| no_values("the mean", column))?;
            (mean, mean, stats::std_dev(&values).ok_or_else(|| no_values("the standard deviation", column))?)
        }
    };
    Ok(Fence { low: center_low - factor * width, high: center_high + factor * width })
}

/// A scale of 0 (a constant column) would divide by zero; like scikit-learn, such a column is only centred.
fn nonzero(scale: f64) -> f64 {
    if scale == 0.0 || !scale.is_finite() { 1.0 } else { scale }
}

fn z_score(df: &DataFrame, column: &str) -> Result<Affine> {
    let values = frame::numbers(df, column, "standardize")?;
    let center = stats::mean(&values).ok_or_else(|| no_values("the mean", column))?;
    Ok(Affine { center, scale: nonzero(stats::std_dev(&values).unwrap_or(0.0)) })
}

fn min_max(df: &DataFrame, column: &str) -> Result<Affine> {
    let (min, max) = stats::min_max(&frame::numbers(df, column, "min_max_scale")?)
        .ok_or_else(|| no_values("min and max", column))?;
    Ok(Affine { center: min, scale: nonzero(max - min) })
}

/// The distinct values, as text, sorted: a stable order for output columns and codes.
fn categories(df: &DataFrame, column: &str) -> Result<Vec<String>> {
    let distinct = frame::strings(df, column)?.unique()?;
    let mut values: Vec<String> = distinct.iter().flatten().map(str::to_owned).collect();
    values.sort_unstable();
    Ok(values)
}
