//! One data-quality check: `{column: species, not_null: true, severity: warn}`.
//!
//! A check is written as a flat mapping — an optional `column`, an optional `severity`, and exactly one rule key —
//! because that is how the DAG file reads best. serde cannot flatten an enum into a struct that denies unknown fields,
//! so the mapping is read as [`CheckForm`] (every rule an optional field) and converted, which is also where "exactly
//! one rule" and "this rule needs a column" are enforced with messages that name the check.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ColumnType, Literal};

/// A check and whether its failure fails the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CheckForm", into = "CheckForm")]
pub struct Check {
    /// The column the rule looks at; `None` for whole-table rules (or, for rates, "the worst column").
    pub column: Option<String>,
    pub severity: Severity,
    pub rule: CheckRule,
}

/// `error` fails the task; `warn` is reported only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[default]
    Error,
    Warn,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckRule {
    /// The schema: these columns exist with these types (other columns are allowed).
    Columns(BTreeMap<String, ColumnType>),
    NotNull,
    /// No value repeats in the column (or no row repeats, without a column).
    Unique,
    /// Fraction of missing values, in [0, 1].
    MaxMissingRate(f64),
    /// Fraction of rows that repeat an earlier one, in [0, 1].
    MaxDuplicateRate(f64),
    Range(Bounds),
    AllowedValues(Vec<Literal>),
    /// Every non-missing value matches this regular expression (anywhere in the value unless anchored).
    Regex(String),
    RowCount(RowCountBounds),
    Freshness(Freshness),
}

/// Inclusive numeric bounds; an absent side is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowCountBounds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

/// The newest value of a date or timestamp column is at most `max_age` old.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    pub column: String,
    #[serde(with = "crate::duration::serde")]
    pub max_age: Duration,
}

/// The mapping as written; see the module doc.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckForm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    column: Option<String>,
    #[serde(default)]
    severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    columns: Option<BTreeMap<String, ColumnType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_null: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unique: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_missing_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_duplicate_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    range: Option<Bounds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowed_values: Option<Vec<Literal>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    row_count: Option<RowCountBounds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    freshness: Option<Freshness>,
}

/// Whether a rule reads the check's `column`.
enum ColumnUse {
    Required,
    Optional,
    Forbidden,
}

impl CheckRule {
    /// The rule's key in the DAG file.
    pub fn name(&self) -> &'static str {
        match self {
            CheckRule::Columns(_) => "columns",
            CheckRule::NotNull => "not_null",
            CheckRule::Unique => "unique",
            CheckRule::MaxMissingRate(_) => "max_missing_rate",
            CheckRule::MaxDuplicateRate(_) => "max_duplicate_rate",
            CheckRule::Range(_) => "range",
            CheckRule::AllowedValues(_) => "allowed_values",
            CheckRule::Regex(_) => "regex",
            CheckRule::RowCount(_) => "row_count",
            CheckRule::Freshness(_) => "freshness",
        }
    }

    fn column_use(&self) -> ColumnUse {
        match self {
            CheckRule::NotNull | CheckRule::Range(_) | CheckRule::AllowedValues(_) | CheckRule::Regex(_) => {
                ColumnUse::Required
            }
            CheckRule::Unique | CheckRule::MaxMissingRate(_) | CheckRule::MaxDuplicateRate(_) => ColumnUse::Optional,
            // Freshness names its column inside its own mapping.
            CheckRule::Columns(_) | CheckRule::RowCount(_) | CheckRule::Freshness(_) => ColumnUse::Forbidden,
        }
    }
}

impl TryFrom<CheckForm> for Check {
    type Error = String;

    fn try_from(f: CheckForm) -> Result<Check, String> {
        // `not_null: false` and `unique: false` switch the rule off, so they do not count as a rule.
        let candidates = [
            f.columns.map(CheckRule::Columns),
            f.not_null.filter(|on| *on).map(|_| CheckRule::NotNull),
            f.unique.filter(|on| *on).map(|_| CheckRule::Unique),
            f.max_missing_rate.map(CheckRule::MaxMissingRate),
            f.max_duplicate_rate.map(CheckRule::MaxDuplicateRate),
            f.range.map(CheckRule::Range),
            f.allowed_values.map(CheckRule::AllowedValues),
            f.regex.map(CheckRule::Regex),
            f.row_count.map(CheckRule::RowCount),
            f.freshness.map(CheckRule::Freshness),
        ];
        let mut rules: Vec<CheckRule> = candidates.into_iter().flatten().collect();
        let rule = match rules.len() {
            1 => rules.remove(0),
            0 => return Err("a check needs one rule (not_null, unique, max_missing_rate, max_duplicate_rate, range, allowed_values, regex, row_count, freshness or columns)".into()),
            _ => {
                let names: Vec<&str> = rules.iter().map(CheckRule::name).collect();
                return Err(format!("a check has one rule, found {}: write one check per rule", names.join(", ")));
            }
        };
        if let CheckRule::MaxMissingRate(r) | CheckRule::MaxDuplicateRate(r) = rule
            && !(0.0..=1.0).contains(&r)
        {
            return Err(format!("{} is a fraction between 0 and 1, got {r}", rule.name()));
        }
        match (rule.column_use(), &f.column) {
            (ColumnUse::Required, None) => Err(format!("check {} needs a column", rule.name())),
            (ColumnUse::Forbidden, Some(c)) => Err(format!("check {} takes no column (got {c:?})", rule.name())),
            _ => Ok(Check { column: f.column, severity: f.severity, rule }),
        }
    }
}

impl From<Check> for CheckForm {
    fn from(c: Check) -> CheckForm {
        let mut f = CheckForm { column: c.column, severity: c.severity, ..CheckForm::default() };
        match c.rule {
            CheckRule::Columns(m) => f.columns = Some(m),
            CheckRule::NotNull => f.not_null = Some(true),
            CheckRule::Unique => f.unique = Some(true),
            CheckRule::MaxMissingRate(r) => f.max_missing_rate = Some(r),
            CheckRule::MaxDuplicateRate(r) => f.max_duplicate_rate = Some(r),
            CheckRule::Range(b) => f.range = Some(b),
            CheckRule::AllowedValues(v) => f.allowed_values = Some(v),
            CheckRule::Regex(r) => f.regex = Some(r),
            CheckRule::RowCount(b) => f.row_count = Some(b),
            CheckRule::Freshness(fr) => f.freshness = Some(fr),
        }
        f
    }
}
