//! How each check rule is measured. One function per rule, each returning what was observed and the threshold it
//! was held to, in the shapes the stored report shows.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use polars::prelude::*;
use serde_json::{Value, json};
use sluice_core::format_duration;
use sluice_core::ops_spec::{Bounds, Check, CheckRule, ColumnType, Freshness, Literal, RowCountBounds};

use crate::error::{OpsError, Result};
use crate::frame;

/// How many offending values a report lists: enough to see the problem, small enough to store per run.
const MAX_EXAMPLES: usize = 5;

pub(super) struct Outcome {
    /// Set when the rule picked the column itself (the worst one of a table-wide rate).
    pub column: Option<String>,
    pub observed: Value,
    pub threshold: Value,
    pub passed: bool,
}

impl Outcome {
    fn new(observed: Value, threshold: Value, passed: bool) -> Outcome {
        Outcome { column: None, observed, threshold, passed }
    }
}

pub(super) fn evaluate(df: &DataFrame, check: &Check, now: DateTime<Utc>) -> Result<Outcome> {
    let column = check.column.as_deref();
    // Table-wide rules and those with their own column have no `column` (the spec enforces it).
    let named = || column.ok_or_else(|| OpsError::Invalid(format!("check {} needs a column", check.rule.name())));
    match &check.rule {
        CheckRule::Columns(expected) => Ok(schema(df, expected)),
        CheckRule::NotNull => {
            let nulls = frame::column(df, named()?)?.null_count();
            Ok(Outcome::new(json!(nulls), json!(0), nulls == 0))
        }
        CheckRule::Unique => {
            let dups = duplicates(df, column)?;
            Ok(Outcome::new(json!(dups), json!(0), dups == 0))
        }
        CheckRule::MaxMissingRate(max) => missing_rate(df, column, *max),
        CheckRule::MaxDuplicateRate(max) => {
            let rate = rate(duplicates(df, column)?, df.height());
            Ok(Outcome::new(json!(rate), json!(max), rate <= *max))
        }
        CheckRule::Range(bounds) => range(df, named()?, bounds),
        CheckRule::AllowedValues(allowed) => allowed_values(df, named()?, allowed),
        CheckRule::Regex(pattern) => regex(df, named()?, pattern),
        CheckRule::RowCount(bounds) => Ok(row_count(df.height(), bounds)),
        CheckRule::Freshness(freshness) => fresh(df, freshness, now),
    }
}

fn rate(count: usize, rows: usize) -> f64 {
    if rows == 0 { 0.0 } else { count as f64 / rows as f64 }
}

/// The user-facing type of a column, when it has one.
pub(crate) fn column_type(dtype: &DataType) -> Option<ColumnType> {
    match dtype {
        d if d.is_integer() => Some(ColumnType::Int),
        d if d.is_float() => Some(ColumnType::Float),
        DataType::String => Some(ColumnType::String),
        DataType::Boolean => Some(ColumnType::Bool),
        DataType::Date => Some(ColumnType::Date),
        DataType::Datetime(..) => Some(ColumnType::Datetime),
        _ => None,
    }
}

fn schema(df: &DataFrame, expected: &BTreeMap<String, ColumnType>) -> Outcome {
    let mut observed = serde_json::Map::new();
    let mut passed = true;
    for (name, want) in expected {
        let found = df.column(name).ok().map(|c| c.dtype().clone());
        passed &= found.as_ref().and_then(column_type) == Some(*want);
        let shown = found.map_or_else(|| "missing".to_owned(), |d| column_type(&d).map_or(d.to_string(), type_name));
        observed.insert(name.clone(), json!(shown));
    }
    Outcome::new(Value::Object(observed), json!(expected), passed)
}

fn type_name(t: ColumnType) -> String {
    serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Rows repeating an earlier row (no column), or non-missing values repeating an earlier value (a column).
fn duplicates(df: &DataFrame, column: Option<&str>) -> Result<usize> {
    let Some(name) = column else {
        return Ok(df.height() - df.unique_stable(None, UniqueKeepStrategy::First, None)?.height());
    };
    let col = frame::column(df, name)?;
    let nulls = col.null_count();
    // n_unique counts "missing" as one value when present; it is not a value here.
    let distinct = col.n_unique()? - usize::from(nulls > 0);
    Ok(col.len() - nulls - distinct)
}

fn missing_rate(df: &DataFrame, column: Option<&str>, max: f64) -> Result<Outcome> {
    let (worst, nulls) = match column {
        Some(name) => (name.to_owned(), frame::column(df, name)?.null_count()),
        None => df
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.null_count()))
            // max_by_key keeps the last of equals; the first declared column reads better in a report.
            .rev()
            .max_by_key(|(_, n)| *n)
            .unwrap_or_default(),
    };
    let observed = rate(nulls, df.height());
    let mut outcome = Outcome::new(json!(observed), json!(max), observed <= max);
    outcome.column = (!worst.is_empty()).then_some(worst);
    Ok(outcome)
}

fn range(df: &DataFrame, name: &str, bounds: &Bounds) -> Result<Outcome> {
    let values = frame::numbers(df, name, "a range check")?;
    let outside = values
        .iter()
        .filter(|v| bounds.min.is_some_and(|min| **v < min) || bounds.max.is_some_and(|max| **v > max))
        .count();
    let min = values.iter().copied().reduce(f64::min);
    let max = values.iter().copied().reduce(f64::max);
    Ok(Outcome::new(json!({"min": min, "max": max, "outside": outside}), json!(bounds), outside == 0))
}

/// Values compare as text, so `[2007, 2008]` matches an integer year column.
fn allowed_values(df: &DataFrame, name: &str, allowed: &[Literal]) -> Result<Outcome> {
    let allowed: BTreeSet<String> = allowed.iter().map(literal_text).collect();
    let values = frame::strings(df, name)?;
    let bad: Vec<&str> = values.iter().flatten().filter(|v| !allowed.contains(*v)).collect();
    let examples: BTreeSet<&str> = bad.iter().copied().take(MAX_EXAMPLES).collect();
    let observed = json!({"outside": bad.len(), "examples": examples});
    Ok(Outcome::new(observed, json!(allowed), bad.is_empty()))
}

pub(crate) fn literal_text(l: &Literal) -> String {
    match l {
        Literal::Bool(b) => b.to_string(),
        Literal::Int(i) => i.to_string(),
        Literal::Float(f) => f.to_string(),
        Literal::String(s) => s.clone(),
    }
}

fn regex(df: &DataFrame, name: &str, pattern: &str) -> Result<Outcome> {
    frame::column(df, name)?;
    let matches = df
        .clone()
        .lazy()
        .select([col(name).cast(DataType::String).str().contains(lit(pattern.to_owned()), true).alias("m")])
        .collect()
        .map_err(|e| OpsError::Invalid(format!("regex check on {name:?}: {e}")))?;
    let bad = matches.column("m")?.bool()?.iter().filter(|m| *m == Some(false)).count();
    Ok(Outcome::new(json!({"not_matching": bad}), json!(pattern), bad == 0))
}

fn row_count(rows: usize, bounds: &RowCountBounds) -> Outcome {
    let n = rows as u64;
    let passed = bounds.min.is_none_or(|min| n >= min) && bounds.max.is_none_or(|max| n <= max);
    Outcome::new(json!(rows), json!(bounds), passed)
}

fn fresh(df: &DataFrame, freshness: &Freshness, now: DateTime<Utc>) -> Result<Outcome> {
    let newest = newest_time(df, &freshness.column)?;
    let max_age = TimeDelta::from_std(freshness.max_age).unwrap_or(TimeDelta::MAX);
    let age = newest.map(|t| now - t);
    let passed = age.is_some_and(|a| a <= max_age);
    let observed = json!({
        "newest": newest.map(|t| t.to_rfc3339()),
        "age": age.and_then(|a| a.to_std().ok()).map(format_duration),
    });
    Ok(Outcome::new(observed, json!(format_duration(freshness.max_age)), passed))
}

/// The newest value of a date, timestamp, or ISO-text column, as UTC (naive timestamps are taken as UTC).
fn newest_time(df: &DataFrame, name: &str) -> Result<Option<DateTime<Utc>>> {
    let col = frame::column(df, name)?;
    let times: Vec<DateTime<Utc>> = match col.dtype() {
        DataType::Date => {
            let days = col.cast(&DataType::Int32)?;
            days.i32()?.iter().flatten().filter_map(|d| DateTime::from_timestamp(i64::from(d) * 86_400, 0)).collect()
        }
        DataType::Datetime(unit, _) => {
            let to_utc: fn(i64) -> Option<DateTime<Utc>> = match unit {
                TimeUnit::Milliseconds => DateTime::from_timestamp_millis,
                TimeUnit::Microseconds => DateTime::from_timestamp_micros,
                TimeUnit::Nanoseconds => |v| Some(DateTime::from_timestamp_nanos(v)),
            };
            col.cast(&DataType::Int64)?.i64()?.iter().flatten().filter_map(to_utc).collect()
        }
        DataType::String => col.str()?.iter().flatten().map(|s| parse_time(name, s)).collect::<Result<_>>()?,
        other => {
            return Err(OpsError::Invalid(format!("freshness needs a date or timestamp column; {name:?} is {other}")));
        }
    };
    Ok(times.into_iter().max())
}

fn parse_time(column: &str, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").map(|t| t.and_utc()))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").map(|t| t.and_utc()))
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_time(Default::default()).and_utc()))
        .map_err(|_| OpsError::Invalid(format!("freshness: {s:?} in column {column:?} is not a date or timestamp")))
}
