//! `kind: quality`: the data SLA. Each declared check is evaluated against a frame and recorded in a
//! [`QualityReport`] — the check, its column, what was observed, the threshold, pass/fail and severity — which the
//! server stores per run. The task fails when an `error`-severity check fails; `warn` checks are reported only.
//!
//! A check on a column that does not exist is an error (schema drift upstream), not a failed check: the report
//! could not say anything true about it. The `columns` check is the exception, since reporting missing columns is
//! its job.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};
use sluice_core::ops_spec::{Check, QualitySpec, Severity};

use crate::error::Result;
use crate::lake::Lake;

mod rules;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The rule's name as written in the DAG file, e.g. `max_missing_rate`.
    pub check: String,
    /// The column looked at; for a table-wide rate, the worst column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub observed: serde_json::Value,
    pub threshold: serde_json::Value,
    pub passed: bool,
    pub severity: Severity,
}

/// Every check's outcome, in the order the checks were declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    pub rows: usize,
    pub results: Vec<CheckResult>,
}

impl QualityReport {
    /// Whether the task fails: some `error`-severity check did not pass.
    pub fn failed(&self) -> bool {
        self.results.iter().any(|r| !r.passed && r.severity == Severity::Error)
    }

    /// The checks that did not pass, warnings included.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| !r.passed)
    }
}

/// Evaluate `checks` on `df`. `now` is the reference time of freshness checks (the run's clock, so tests and
/// backfills are deterministic).
pub fn run_checks(df: &DataFrame, checks: &[Check], now: DateTime<Utc>) -> Result<QualityReport> {
    let results = checks
        .iter()
        .map(|check| {
            let outcome = rules::evaluate(df, check, now)?;
            Ok(CheckResult {
                check: check.rule.name().to_owned(),
                column: outcome.column.or_else(|| check.column.clone()),
                observed: outcome.observed,
                threshold: outcome.threshold,
                passed: outcome.passed,
                severity: check.severity,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(QualityReport { rows: df.height(), results })
}

/// Run a quality task: the checks on each input asset's partition for `ds`, one report per asset URI.
pub fn run_quality(
    spec: &QualitySpec,
    lake: &Lake,
    ds: NaiveDate,
    now: DateTime<Utc>,
) -> Result<BTreeMap<String, QualityReport>> {
    spec.inputs.iter().map(|uri| Ok((uri.clone(), run_checks(&lake.read(uri, ds)?, &spec.checks, now)?))).collect()
}

#[cfg(test)]
mod tests;
