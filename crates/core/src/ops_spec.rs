//! The configuration of Sluice's built-in tasks — `ingest`, `quality`, `transform`, `sql`, `train`, `deploy` and
//! `sensor` among them — as users write it.
//!
//! Plain serde data like [`crate::spec`]: no polars here, so the core (and the DAG validator) builds fast and can
//! check a task's configuration without the data engine. `crates/ops` executes these specs. Every struct denies
//! unknown fields so that a typo (`max_mising_rate`) is an error rather than a check that silently never runs.
//!
//! Shapes follow the DAG file's YAML:
//! ```yaml
//! source: {type: csv, path: data/penguins.csv}
//! checks: [{column: species, not_null: true}, {max_missing_rate: 0.05, severity: warn}]
//! steps: [{fill_missing: {columns: [bill_length_mm], strategy: mean}}, {one_hot: {columns: [island]}}]
//! ```

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

mod check;
mod derive;
mod join;
mod model;
mod remote;
mod sensor;

pub use self::check::{Bounds, Check, CheckRule, Freshness, RowCountBounds, Severity};
pub use self::derive::check_sql_expression;
pub use self::join::{Join, JoinHow, joined_assets};
pub use self::model::{
    ALGORITHMS, CandidateGrid, CommandSpec, CrossValidation, DeployAction, DeploySpec, DriftThresholds, Gate, METRICS,
    ModelRef, ModelSpec, MonitorConfig, MonitorSpec, Number, OnDrift, Problem, RegistersSpec, STAGES, ScoreSpec,
    TrainSpec, Webhook, check_model_name, higher_is_better,
};
pub use self::remote::{DEFAULT_MAX_PAGES, HttpSource, Pagination, QuerySource, SqlSpec, json_pointer};
pub use self::sensor::{
    DEFAULT_POKE_INTERVAL, DEFAULT_SENSOR_TIMEOUT, SENSOR_KIND, SensorCondition, SensorMode, SensorSpec,
    external_states_hold, first_cell_holds, parse_time_of_day, response_holds, time_target,
};

/// The scheme of assets stored in Sluice's lake.
pub const LAKE_SCHEME: &str = "lake://";

/// The folder segments of a `lake://` URI, or why it is not a valid one. No URI may escape the lake's root, and
/// `ds=` names the partitions inside an asset's folder.
pub fn lake_path(uri: &str) -> Result<Vec<&str>, &'static str> {
    let rest = uri.strip_prefix(LAKE_SCHEME).ok_or("it must start with lake://")?;
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err("it must name a path like lake://zone/name, without empty segments");
    }
    if segments.iter().any(|s| *s == "." || *s == ".." || s.contains('\\') || s.starts_with("ds=")) {
        return Err("segments may not be '.', '..', contain '\\' or start with 'ds='");
    }
    Ok(segments)
}

/// What [`lake_segment`] leaves as is; the rest is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// `text` (an id) as one segment of a `lake://` URI, whatever it holds (run ids hold `:` and `+`): percent-encoded,
/// and never `.` or `..`, so that [`lake_path`] accepts it and it cannot climb out of its folder.
pub fn lake_segment(text: &str) -> String {
    match text {
        "." | ".." => text.replace('.', "%2E"),
        _ => utf8_percent_encode(text, SEGMENT).to_string(),
    }
}

/// A built-in data task as a worker runs it: the kind and its configuration, templates rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpSpec {
    Ingest(IngestSpec),
    Quality(QualitySpec),
    Transform(TransformSpec),
    Sql(SqlSpec),
    Train(TrainSpec),
    Deploy(DeploySpec),
    Score(ScoreSpec),
    Monitor(MonitorSpec),
    /// A `command` task that registers the model its own code trains.
    Command(CommandSpec),
    /// `kind: sensor`: waits for a condition.
    Sensor(SensorSpec),
}

impl OpSpec {
    /// The model a `deploy`, `score` or `monitor` task works with, whose versions it receives at lease time.
    pub fn registry_model(&self) -> Option<&str> {
        match self {
            OpSpec::Deploy(spec) => Some(&spec.model),
            OpSpec::Score(spec) => Some(&spec.score.model),
            OpSpec::Monitor(spec) => Some(&spec.monitor.model),
            _ => None,
        }
    }

    /// The model a `train` task, or a `command` task with `registers`, adds a version to: a version number is
    /// reserved for each of its tries.
    pub fn trained_model(&self) -> Option<&str> {
        match self {
            OpSpec::Train(spec) => Some(&spec.model.name),
            OpSpec::Command(spec) => Some(&spec.registers.model),
            _ => None,
        }
    }

    /// The asset URIs the task writes.
    pub fn outputs(&self) -> &[String] {
        match self {
            OpSpec::Ingest(spec) => &spec.outputs,
            OpSpec::Transform(spec) => &spec.outputs,
            OpSpec::Score(spec) => &spec.outputs,
            OpSpec::Quality(_)
            | OpSpec::Sql(_)
            | OpSpec::Train(_)
            | OpSpec::Deploy(_)
            | OpSpec::Monitor(_)
            | OpSpec::Command(_)
            | OpSpec::Sensor(_) => &[],
        }
    }

    /// The ids of the connections the task uses.
    pub fn connections(&self) -> Vec<&str> {
        match self {
            OpSpec::Ingest(spec) => spec.source.connection().into_iter().collect(),
            OpSpec::Sql(spec) => vec![spec.connection.as_str()],
            OpSpec::Sensor(SensorSpec { sensor: SensorCondition::Sql { connection, .. }, .. }) => {
                vec![connection.as_str()]
            }
            OpSpec::Sensor(SensorSpec {
                sensor: SensorCondition::File { connection: Some(connection), .. }, ..
            }) => {
                vec![connection.as_str()]
            }
            OpSpec::Monitor(spec) => {
                spec.monitor.on_drift.iter().flat_map(|d| &d.webhook).map(|w| w.connection.as_str()).collect()
            }
            OpSpec::Quality(_)
            | OpSpec::Transform(_)
            | OpSpec::Train(_)
            | OpSpec::Deploy(_)
            | OpSpec::Score(_)
            | OpSpec::Command(_)
            | OpSpec::Sensor(_) => Vec::new(),
        }
    }
}

/// `kind: ingest` — read a source and write it to the lake as the task's output assets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSpec {
    pub source: Source,
    /// Asset URIs such as `lake://raw/penguins`.
    pub outputs: Vec<String>,
    /// A column whose high-water mark makes loads incremental: only rows above the previous mark are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
}

/// Where ingested data comes from, tagged by `type`: a file (a local path, relative to the DAGs folder, or an
/// object-store URL), an HTTP JSON API or a query on a SQL database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    Csv {
        path: String,
        /// One ASCII character; `,` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delimiter: Option<char>,
        /// Cells equal to one of these are missing values (pandas' and R's `NA` by default, as in the penguins data).
        #[serde(default = "default_null_values")]
        null_values: Vec<String>,
        /// The credentials for an object-store `path`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connection: Option<String>,
    },
    Jsonl {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connection: Option<String>,
    },
    Parquet {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connection: Option<String>,
    },
    Http(HttpSource),
    /// A query on a PostgreSQL connection (the first database Sluice read; `sql` reads any).
    Postgres(QuerySource),
    /// A query on a PostgreSQL, MySQL or SQLite connection.
    Sql(QuerySource),
}

fn default_null_values() -> Vec<String> {
    ["", "NA", "N/A", "NaN", "null"].map(String::from).to_vec()
}

/// The URL schemes a file source reads besides local paths: S3 and the stores that speak its API (MinIO, Ceph,
/// Cloudflare R2, Google Cloud Storage's interoperability endpoint), with the endpoint in the connection.
pub const OBJECT_STORE_SCHEMES: [&str; 1] = ["s3"];

/// The scheme of a URL such as `s3://bucket/key`; `None` for a local path.
pub fn url_scheme(path: &str) -> Option<&str> {
    let (scheme, _) = path.split_once("://")?;
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then_some(scheme)
}

impl Source {
    /// The file this source reads, for file sources.
    pub fn path(&self) -> Option<&str> {
        match self {
            Source::Csv { path, .. } | Source::Jsonl { path, .. } | Source::Parquet { path, .. } => Some(path),
            Source::Http(_) | Source::Postgres(_) | Source::Sql(_) => None,
        }
    }

    /// The connection this source reads through.
    pub fn connection(&self) -> Option<&str> {
        match self {
            Source::Http(http) => http.connection.as_deref(),
            Source::Postgres(query) | Source::Sql(query) => Some(&query.connection),
            Source::Csv { connection, .. } | Source::Jsonl { connection, .. } | Source::Parquet { connection, .. } => {
                connection.as_deref()
            }
        }
    }

    /// What is wrong with a file source's location, found before any run: a URL of a store Sluice cannot read, or
    /// a connection given for a local file (which would be ignored).
    pub fn check_location(&self) -> Result<(), String> {
        let Some(path) = self.path() else { return Ok(()) };
        match url_scheme(path) {
            Some(scheme) if !OBJECT_STORE_SCHEMES.contains(&scheme) => Err(format!(
                "file sources read local paths and {} URLs, not {scheme}://",
                OBJECT_STORE_SCHEMES.map(|s| format!("{s}://")).join(", ")
            )),
            None if self.connection().is_some() => {
                Err("`connection` is only read for object-store URLs; a local path needs none".to_owned())
            }
            _ => Ok(()),
        }
    }
}

/// `kind: quality` — the data SLA of the input assets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySpec {
    pub inputs: Vec<String>,
    pub checks: Vec<Check>,
}

/// `kind: transform` — ordered steps from the inputs to the outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub steps: Vec<Step>,
}

/// A column type as users name it; integer and float widths are the engine's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    #[serde(alias = "integer")]
    Int,
    #[serde(alias = "double")]
    Float,
    #[serde(alias = "str")]
    String,
    #[serde(alias = "boolean")]
    Bool,
    Date,
    Datetime,
}

/// A scalar written in YAML: `allowed_values` members and `fill_missing` constants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

/// One transform step; the YAML key names the step (`- standardize: {columns: [a, b]}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Keep these columns, in this order.
    Select(Vec<String>),
    /// Old name → new name.
    Rename(BTreeMap<String, String>),
    Cast(BTreeMap<String, ColumnType>),
    DropDuplicates(Subset),
    DropMissing(Subset),
    FillMissing(FillMissing),
    ClipOutliers(Outliers),
    DropOutliers(Outliers),
    /// z-score: `(x - mean) / std`, with mean and std fitted.
    Standardize(Columns),
    /// `(x - min) / (max - min)`, with min and max fitted.
    MinMaxScale(Columns),
    TextClean(TextClean),
    /// One 0/1 column per fitted category, named `<column>_<category>`; the source column is dropped.
    OneHot(Columns),
    /// Fitted categories (sorted) → 0, 1, 2, …; a category unseen when fitting becomes missing.
    OrdinalEncode(Columns),
    /// SHA-256 of salt + value, hex: joins still work, the value is gone.
    HashPii(HashPii),
    /// Every character but the last `keep_last` becomes `*`.
    MaskPii(MaskPii),
    /// New column → a SQL expression over the columns as they are before this step (polars SQL), e.g.
    /// `bill_length_mm / bill_depth_mm`. An existing column of that name is replaced.
    Derive(BTreeMap<String, String>),
    /// The columns of another lake asset, matched on key columns.
    Join(Join),
}

/// The columns a step applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub columns: Vec<String>,
}

/// The columns a row-level step looks at; empty means all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subset {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillMissing {
    pub columns: Vec<String>,
    pub strategy: FillStrategy,
    /// Required by, and only read by, `strategy: constant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Literal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillStrategy {
    Mean,
    Median,
    /// The most frequent value; ties go to the smallest, so fitting is deterministic.
    Mode,
    Constant,
    /// The previous non-missing value in row order (nothing is fitted).
    Forward,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outliers {
    pub columns: Vec<String>,
    pub method: OutlierMethod,
    /// Fence width: 1.5 (IQR) or 3 (z-score) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutlierMethod {
    /// `[q1 - factor·iqr, q3 + factor·iqr]`.
    Iqr,
    /// `[mean - factor·std, mean + factor·std]`.
    Zscore,
}

impl OutlierMethod {
    pub fn default_factor(self) -> f64 {
        match self {
            OutlierMethod::Iqr => 1.5,
            OutlierMethod::Zscore => 3.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextClean {
    pub columns: Vec<String>,
    /// Strip leading and trailing whitespace.
    #[serde(default)]
    pub trim: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<TextCase>,
    /// Remove ASCII punctuation.
    #[serde(default)]
    pub punctuation: bool,
    /// Collapse runs of whitespace to one space.
    #[serde(default)]
    pub whitespace: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextCase {
    Lower,
    Upper,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashPii {
    pub columns: Vec<String>,
    pub salt: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskPii {
    pub columns: Vec<String>,
    #[serde(default)]
    pub keep_last: usize,
}

#[cfg(test)]
mod tests;
