//! Applying a fitted step: pure replay, nothing is learned here. Every step first checks that its columns exist, so
//! a column renamed upstream fails with its name and the columns present.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;
use sluice_core::ops_spec::{ColumnType, Literal, Subset};

use super::{Affine, Fence, FittedStep, derive, text};
use crate::error::Result;
use crate::frame;

pub(super) fn apply_step(df: DataFrame, step: &FittedStep) -> Result<DataFrame> {
    match step {
        FittedStep::Select(columns) => {
            frame::require(&df, columns)?;
            Ok(df.select(columns.iter().map(String::as_str))?)
        }
        FittedStep::Rename(mapping) => {
            let (old, new): (Vec<&String>, Vec<&String>) = mapping.iter().unzip();
            with_exprs(df, mapping.keys(), |lf| lf.rename(old, new, true))
        }
        FittedStep::Cast(types) => with_exprs(df, types.keys(), |lf| {
            lf.with_columns(types.iter().map(|(c, t)| col(c.as_str()).strict_cast(data_type(*t))).collect::<Vec<_>>())
        }),
        FittedStep::DropDuplicates(subset) => {
            let columns = subset_or_all(&df, subset)?;
            Ok(df.unique_stable(Some(&columns), UniqueKeepStrategy::First, None)?)
        }
        FittedStep::DropMissing(subset) => {
            let columns = subset_or_all(&df, subset)?;
            with_exprs(df, &columns, |lf| lf.filter(all_of(columns.iter().map(|c| col(c.as_str()).is_not_null()))))
        }
        FittedStep::FillMissing(values) => with_exprs(df, values.keys(), |lf| {
            lf.with_columns(values.iter().map(|(c, v)| col(c.as_str()).fill_null(literal(v))).collect::<Vec<_>>())
        }),
        FittedStep::ForwardFill(c) => with_exprs(df, &c.columns, |lf| {
            let forward = |c: &String| col(c.as_str()).fill_null_with_strategy(FillNullStrategy::Forward(None));
            lf.with_columns(c.columns.iter().map(forward).collect::<Vec<_>>())
        }),
        FittedStep::ClipOutliers(fences) => with_exprs(df, fences.keys(), |lf| {
            lf.with_columns(fences.iter().map(|(c, f)| clip(c, f)).collect::<Vec<_>>())
        }),
        FittedStep::DropOutliers(fences) => with_exprs(df, fences.keys(), |lf| {
            lf.filter(all_of(fences.iter().map(|(c, f)| {
                let x = col(c.as_str()).cast(DataType::Float64);
                x.clone().is_null().or(x.clone().gt_eq(lit(f.low)).and(x.lt_eq(lit(f.high))))
            })))
        }),
        FittedStep::Scale(params) => with_exprs(df, params.keys(), |lf| {
            lf.with_columns(params.iter().map(|(c, a)| scale(c, a)).collect::<Vec<_>>())
        }),
        FittedStep::TextClean(spec) => map_each(df, &spec.columns, |v| text::clean_text(v, spec)),
        FittedStep::HashPii(h) => map_each(df, &h.columns, |v| text::hash_value(v, &h.salt)),
        FittedStep::MaskPii(m) => map_each(df, &m.columns, |v| text::mask_value(v, m.keep_last)),
        FittedStep::OneHot(categories) => one_hot(df, categories),
        FittedStep::OrdinalEncode(categories) => ordinal(df, categories),
        FittedStep::Derive(columns) => derive::derive(df, columns),
        FittedStep::Join(join) => join.apply(df),
    }
}

/// Check the columns exist, then run a lazy plan over the frame.
fn with_exprs<'a>(
    df: DataFrame,
    columns: impl IntoIterator<Item = &'a String>,
    plan: impl FnOnce(LazyFrame) -> LazyFrame,
) -> Result<DataFrame> {
    columns.into_iter().try_for_each(|c| frame::column(&df, c).map(|_| ()))?;
    Ok(plan(df.lazy()).collect()?)
}

fn subset_or_all(df: &DataFrame, subset: &Subset) -> Result<Vec<String>> {
    frame::require(df, &subset.columns)?;
    Ok(if subset.columns.is_empty() { frame::names(df) } else { subset.columns.clone() })
}

/// The conjunction of `predicates`; true when there are none.
fn all_of(predicates: impl Iterator<Item = Expr>) -> Expr {
    predicates.reduce(Expr::and).unwrap_or(lit(true))
}

fn data_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::Int => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::String => DataType::String,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date,
        ColumnType::Datetime => DataType::Datetime(TimeUnit::Microseconds, None),
    }
}

fn literal(v: &Literal) -> Expr {
    match v {
        Literal::Bool(b) => lit(*b),
        Literal::Int(i) => lit(*i),
        Literal::Float(f) => lit(*f),
        Literal::String(s) => lit(s.clone()),
    }
}

fn clip(column: &str, f: &Fence) -> Expr {
    let x = col(column).cast(DataType::Float64);
    when(x.clone().lt(lit(f.low)))
        .then(lit(f.low))
        .when(x.clone().gt(lit(f.high)))
        .then(lit(f.high))
        .otherwise(x)
        .alias(column)
}

fn scale(column: &str, a: &Affine) -> Expr {
    ((col(column).cast(DataType::Float64) - lit(a.center)) / lit(a.scale)).alias(column)
}

fn map_each(mut df: DataFrame, columns: &[String], f: impl Fn(&str) -> String) -> Result<DataFrame> {
    for c in columns {
        text::map_strings(&mut df, c, &f)?;
    }
    Ok(df)
}

/// One 0/1 column `<column>_<category>` per fitted category, appended; the source column is dropped. A value not
/// seen when fitting (or missing) gets 0 everywhere.
fn one_hot(df: DataFrame, categories: &BTreeMap<String, Vec<String>>) -> Result<DataFrame> {
    let indicators: Vec<Expr> = categories
        .iter()
        .flat_map(|(c, cats)| {
            cats.iter().map(move |cat| {
                let hit = col(c.as_str()).cast(DataType::String).eq(lit(cat.clone())).fill_null(lit(false));
                hit.cast(DataType::Int32).alias(format!("{c}_{cat}"))
            })
        })
        .collect();
    let out = with_exprs(df, categories.keys(), |lf| lf.with_columns(indicators))?;
    Ok(out.drop_many(categories.keys().map(String::as_str)))
}

/// Each value becomes the index of its fitted category; values not seen when fitting become missing.
fn ordinal(mut df: DataFrame, categories: &BTreeMap<String, Vec<String>>) -> Result<DataFrame> {
    for (c, cats) in categories {
        let codes: HashMap<&str, u32> = cats.iter().zip(0u32..).map(|(cat, i)| (cat.as_str(), i)).collect();
        let encoded: UInt32Chunked =
            frame::strings(&df, c)?.iter().map(|v| v.and_then(|v| codes.get(v).copied())).collect();
        df.with_column(encoded.with_name(c.as_str().into()).into_series().into())?;
    }
    Ok(df)
}
