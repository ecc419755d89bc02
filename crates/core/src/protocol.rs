//! The worker protocol: the messages that workers and the server exchange over `/worker/v1`.
//!
//! Workers never touch the database. They lease task tries over HTTP, stream their logs, heartbeat to keep the
//! lease, and report the outcome. Every call after the lease carries the `lease_id`; the server fences on it, so a
//! worker that lost its lease (it stopped heartbeating and the try was failed as lost) cannot change anything.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ops_spec::OpSpec;
use crate::xcom::XComValue;

/// Path prefix of the worker protocol on the server.
pub const WORKER_API_PREFIX: &str = "/worker/v1";

/// A header of the server's 503 answers, with the value `database`, when it cannot reach its database: no
/// decision can be recorded through it then, a lease's expiry included, so a worker keeps its running tries
/// (a 503 of a proxy in front of the servers, without it, is only a server that cannot be reached).
pub const UNAVAILABLE_HEADER: &str = "sluice-unavailable";

/// The hidden `sluice` subcommand that runs one built-in data task; workers start it for [`LeasedTask::op`].
pub const RUN_OP_COMMAND: &str = "run-op";

/// The environment variable that hands [`LeasedTask::op`], as JSON, to the `run-op` child.
pub const OP_SPEC_ENV: &str = "SLUICE_OP_SPEC";

/// The variables of a try's environment whose value can be longer than a process's environment takes (Linux
/// refuses a value above 128 KiB): a Python task's context with large upstream outputs, a data task's configuration.
/// Above [`MAX_ENV_VALUE`] bytes the worker writes the value to a file of the try's and hands its path as
/// `<NAME>_FILE` instead ([`file_env_var`]); their readers look there first.
pub const FILE_BACKED_ENV: [&str; 2] = [crate::python::CONTEXT_ENV, OP_SPEC_ENV];

/// The longest value of a [`FILE_BACKED_ENV`] variable handed in the environment itself.
pub const MAX_ENV_VALUE: usize = 64 * 1024;

/// The variable that names the file holding the value of `name`.
pub fn file_env_var(name: &str) -> String {
    format!("{name}_FILE")
}

/// The environment variable that hands an incremental `ingest` the high-water mark of its previous load: the newest
/// one recorded with an event of its (first) output asset.
pub const PREVIOUS_WATERMARK_ENV: &str = "SLUICE_PREVIOUS_WATERMARK";

/// The environment variable that hands a `train` task (or a `command` task with `registers:`) the model version the
/// server reserved for its try: the model is written to `lake://models/<name>/<version>/` and registered under that
/// number if the try succeeds.
pub const MODEL_VERSION_ENV: &str = "SLUICE_MODEL_VERSION";

/// The environment variable that hands a `deploy` task the model's versions as the server saw them at lease time
/// ([`RegistryView`], JSON).
pub const MODEL_REGISTRY_ENV: &str = "SLUICE_MODEL_REGISTRY";

/// The environment variable that hands a `monitor` task the true labels fed back for the model's predictions since
/// its last report ([`FeedbackView`], JSON).
pub const MODEL_FEEDBACK_ENV: &str = "SLUICE_MODEL_FEEDBACK";

/// The environment variable that hands a `sensor` try its [`SensorContext`] (JSON).
pub const SENSOR_CONTEXT_ENV: &str = "SLUICE_SENSOR_CONTEXT";

/// What a sensor's poke needs to know beyond its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorContext {
    /// When the try's first poke started: the timeout counts from here, across the pokes of `reschedule` mode.
    pub first_poke: DateTime<Utc>,
    /// The run's data interval end (its `run_after` without one): where a time sensor's `delta` counts from.
    pub interval_end: DateTime<Utc>,
    /// The DAG's timezone (IANA name): the day of a time sensor's `target_time`.
    pub timezone: String,
    /// An external-task sensor's answer, read by the server when it handed the poke out: the states of the other
    /// DAG's task instances (or its run's state) for the run's logical date; empty when there are none yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_states: Vec<crate::state::TaskState>,
}

impl SensorContext {
    /// The DAG's timezone.
    pub fn tz(&self) -> Result<chrono_tz::Tz, String> {
        self.timezone.parse().map_err(|_| format!("unknown timezone {:?}", self.timezone))
    }
}

/// How a sensor's try ended without its condition holding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum SensorEnd {
    /// `reschedule` mode: the condition is false; poke again at `at`. The task instance waits in
    /// `up_for_reschedule` without a worker slot, and the poke does not count as a try.
    Reschedule { at: DateTime<Utc> },
    /// The timeout passed with `soft_fail`: the task is skipped.
    Skipped { reason: String },
    /// The timeout passed: the task fails without a retry, as Airflow's `AirflowSensorTimeout`.
    TimedOut { reason: String },
}

/// The fed-back labels a monitor try sees: the newest ones with an id above `after` (the mark of the model's last
/// report), as many as fit in an environment variable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackView {
    /// The mark of the last report: labels at or below it were reported on.
    pub after: Option<i64>,
    /// The newest label's id: the mark this try's report moves to.
    pub through: i64,
    /// How many labels arrived since `after`, `labels` being the newest of them.
    pub total: i64,
    pub labels: Vec<FedBackLabel>,
}

/// A true label for one record of one prediction request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FedBackLabel {
    pub request_id: String,
    /// The record of the request, 0 for the first.
    pub record: i64,
    /// The label as text: what the model would have predicted, had it been right.
    pub label: String,
}

/// `POST /worker/v1/lease`: ask for up to `slots` queued tasks of `queues`, waiting up to `wait_ms` for one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub worker: String,
    pub hostname: String,
    pub queues: Vec<String>,
    /// Free slots now: how many tasks the worker asks for.
    pub slots: u32,
    pub wait_ms: u64,
    /// All of the worker's slots, busy or not, for the list of workers (older workers do not send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaseResponse {
    pub tasks: Vec<LeasedTask>,
}

/// One task try handed to a worker, rendered and ready to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeasedTask {
    pub ti_id: Uuid,
    /// Identifies this try and fences every later call about it.
    pub lease_id: Uuid,
    pub dag_id: String,
    pub dag_run_id: String,
    pub task_id: String,
    pub map_index: i32,
    pub try_number: u32,
    /// The program and its arguments, templates already rendered; empty for a built-in data task.
    pub argv: Vec<String>,
    /// A built-in data task (`ingest`, `quality`, `transform`), templates already rendered. The worker runs it in a
    /// child process of its own executable, so that it is supervised exactly like a command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<OpSpec>,
    /// Environment for the child, including the `SLUICE_*` context variables and, for a data task, the connections
    /// it names (`SLUICE_CONN_*`, see [`crate::connection`]) and its previous watermark.
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub execution_timeout_ms: Option<u64>,
    /// The worker must heartbeat at least this often to keep the lease.
    pub heartbeat_interval_ms: u64,
    /// How long the lease lasts after each heartbeat.
    pub lease_ms: u64,
    /// The secrets this try was given (connection passwords, variables with a secret key, ...): the worker
    /// replaces them with `***` in every log line, output and error it sends back (see [`crate::masking`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask: Vec<String>,
}

/// `POST /worker/v1/tasks/{ti_id}/heartbeat`. A 409 answer means the lease is lost: kill the task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub lease_id: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The server wants the task stopped (run failed or timed out, task cleared or marked by a user).
    pub cancel: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Lines written by the worker itself (start, timeout, kill).
    System,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    pub timestamp: DateTime<Utc>,
    pub stream: LogStream,
    pub line: String,
}

/// `POST /worker/v1/tasks/{ti_id}/logs`: a batch of log lines of the leased try.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogBatch {
    pub lease_id: Uuid,
    pub lines: Vec<LogLine>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskOutcome {
    Success,
    Failed,
}

/// `POST /worker/v1/tasks/{ti_id}/report`: the try ended. 409 when the lease is stale; nothing changes then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportRequest {
    pub lease_id: Uuid,
    pub outcome: TaskOutcome,
    pub exit_code: Option<i32>,
    /// Why the try failed, in words (exit code, timeout, killed on shutdown).
    pub error: Option<String>,
    /// The small JSON value the task produced (`::output::` line or `$SLUICE_OUTPUT` file): its return value.
    pub output: Option<serde_json::Value>,
    /// The values it pushed under other keys (see [`crate::xcom`]), and its return value when that was too big for
    /// `output` and the worker wrote it to the lake.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xcom: BTreeMap<String, XComValue>,
    pub pid: Option<u32>,
    /// The try's last log lines, stored with the outcome: a short task needs no separate log request.
    #[serde(default)]
    pub logs: Vec<LogLine>,
    /// What a data task wrote: recorded as asset events of the task's declared outputs when the try succeeded.
    #[serde(default)]
    pub assets: Vec<AssetWrite>,
    /// A quality task's reports, stored whatever the outcome.
    #[serde(default)]
    pub quality: Vec<AssetQuality>,
    /// A `train` task's model (or a registering `command` task's): registered as a new version when the try
    /// succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelWrite>,
    /// A `deploy` task's decision: applied when the try succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_change: Option<StageChange>,
    /// A `monitor` task's drift report: stored when the try succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorReport>,
    /// A sensor's end without its condition: reschedule, skip or time out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<SensorEnd>,
}

/// One asset a successful try wrote: an asset event. Data tasks fill every field; a command task declaring
/// `outputs` reports only the URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetWrite {
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// The columns as `[{"name": …, "dtype": …}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// SHA-256 of the data written, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// `ingest` with a `watermark` column: the high-water mark after this load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
}

/// How a quality task judged one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QualityStatus {
    /// Every check passed.
    Passed,
    /// Only `warn` checks failed.
    Warn,
    /// An `error` check failed: the task fails.
    Failed,
}

impl QualityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QualityStatus::Passed => "passed",
            QualityStatus::Warn => "warn",
            QualityStatus::Failed => "failed",
        }
    }
}

/// The quality report of one asset, as a quality task outputs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetQuality {
    pub uri: String,
    pub status: QualityStatus,
    /// Rows and the outcome of each check (`check`, `column`, `observed`, `threshold`, `passed`, `severity`).
    pub report: serde_json::Value,
}

/// The output (`$SLUICE_OUTPUT`) of a built-in data task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpOutput {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assets: Vec<AssetWrite>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<AssetQuality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelWrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_change: Option<StageChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<SensorEnd>,
}

/// A `monitor` try's comparison of recent data with a model version's training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorReport {
    pub model: String,
    pub version: i64,
    /// The asset compared, and its rows.
    pub input_uri: String,
    pub rows: usize,
    /// Whether any check found drift (or accuracy under its minimum).
    pub drifted: bool,
    pub checks: Vec<DriftCheck>,
    /// The features that drifted, for the retraining run's `conf`.
    pub drifted_features: Vec<String>,
    /// The fed-back labels the report judged the model on, when there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackSummary>,
}

/// How much feedback a monitor report used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackSummary {
    /// Labels given since the last report.
    pub labels: i64,
    /// Those whose prediction was found in the model's prediction log: the accuracy and F1 are computed on them.
    pub matched: i64,
    /// The id of the newest label seen: the next report starts after it.
    pub through: i64,
}

/// One statistic of a drift report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftCheck {
    /// A feature, `prediction`, `label` (accuracy on a label column of the input) or `feedback` (accuracy on labels
    /// fed back through the API).
    pub feature: String,
    /// `psi`, `ks_p_value`, `ks_statistic`, `accuracy` or `f1`.
    pub statistic: String,
    pub value: f64,
    pub threshold: Option<f64>,
    pub drifted: bool,
}

/// A model version a `train` try wrote to the lake, with what the registry keeps about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelWrite {
    pub name: String,
    /// The number reserved for the try ([`MODEL_VERSION_ENV`]).
    pub version: i64,
    pub algorithm: String,
    pub params: serde_json::Value,
    /// The chosen candidate's cross-validated metrics, mean over the folds.
    pub metrics: BTreeMap<String, f64>,
    /// Per-fold metrics, every candidate's results, the fold of each row, the confusion matrix, features, classes
    /// and the columns a prediction request must carry.
    pub details: serde_json::Value,
    /// `lake://models/<name>/<version>`.
    pub artifact_uri: String,
    /// The asset trained on, and the content hash of the partition read: the asset event it came from.
    pub input_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_content_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A `deploy` try's decision: move `version` of `model` to `stage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageChange {
    pub model: String,
    pub version: i64,
    pub stage: String,
    /// Why, in words: the gate's figures, or "rollback".
    pub reason: String,
    /// The production version the decision was made against: the change is refused if production moved since.
    pub expected_production: Option<i64>,
}

/// What a `deploy` task sees of a model in the registry ([`MODEL_REGISTRY_ENV`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryView {
    pub model: String,
    /// Every version, oldest first.
    pub versions: Vec<VersionView>,
    /// The version in production before the current one: where a rollback goes.
    pub previous_production: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    pub version: i64,
    pub stage: String,
    pub metrics: BTreeMap<String, f64>,
    pub artifact_uri: String,
}

impl RegistryView {
    pub fn production(&self) -> Option<&VersionView> {
        self.versions.iter().find(|v| v.stage == "production")
    }

    pub fn version(&self, version: i64) -> Option<&VersionView> {
        self.versions.iter().find(|v| v.version == version)
    }
}
