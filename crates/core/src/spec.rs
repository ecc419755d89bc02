//! The DAG file model: what a user writes in YAML, field for field.
//!
//! These types are plain data with serde on both sides. [`crate::load`] reads them from YAML (with locations for
//! errors), and the server stores a DAG version as JSON and reads it back with serde_json, so every type here must
//! round-trip through JSON unchanged: durations are written in their human form, dates keep the text the user
//! wrote. Every struct denies unknown fields so that a typo is an error, not a silently ignored setting. Task groups
//! are the one place where the spec differs from the file: the loader flattens the file's nested `groups:` into
//! `tasks` (full ids, resolved dependencies, merged settings) and [`DagSpec::groups`].
//!
//! Defaults follow Airflow's: `max_active_runs` 16, `max_active_tasks` 16, `is_paused_upon_creation` true,
//! `catchup` false, timezone UTC, `retries` 0, `retry_delay` 300s, queue `default`, pool `default_pool`,
//! `priority_weight` 1 with `weight_rule` downstream, `pool_slots` 1.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::access::AccessControl;
use crate::mapping::{MapArgs, MapSource};
use crate::notify::{DeadlineAlert, Notifier, TaskCallbacks};
use crate::ops_spec::{
    Check, CommandSpec, DeploySpec, IngestSpec, ModelRef, ModelSpec, MonitorConfig, MonitorSpec, OpSpec, QualitySpec,
    RegistersSpec, ScoreSpec, SensorCondition, SensorMode, SensorSpec, Source, SqlSpec, Step, TrainSpec, TransformSpec,
};
use crate::schedule::AssetCondition;
use crate::trigger::TriggerRule;

mod date;
pub(crate) mod param;

pub use self::date::{DateError, DateSpec};
pub use self::param::ParamSpec;

pub const DEFAULT_MAX_ACTIVE_RUNS: u32 = 16;
pub const DEFAULT_MAX_ACTIVE_TASKS: u32 = 16;
pub const DEFAULT_TIMEZONE: &str = "UTC";
pub const DEFAULT_QUEUE: &str = "default";
pub const DEFAULT_POOL: &str = "default_pool";
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(300);
/// Airflow's `max_retry_delay` default when exponential backoff is on.
pub const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_TASK_KIND: &str = "command";
/// A task the scheduler itself decides (Airflow's LatestOnlyOperator): its direct downstream tasks are skipped
/// unless the run is the latest one due, or was triggered by hand.
pub const LATEST_ONLY_KIND: &str = "latest_only";
/// Every task kind: `command` runs a process, `python` a Python function, the others are Sluice's built-in data
/// tasks.
pub const TASK_KINDS: [&str; 12] = [
    DEFAULT_TASK_KIND,
    "ingest",
    "quality",
    "transform",
    "sql",
    "train",
    "deploy",
    "score",
    "monitor",
    crate::ops_spec::SENSOR_KIND,
    crate::python::PYTHON_KIND,
    LATEST_ONLY_KIND,
];

/// One DAG file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DagSpec {
    pub dag_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `None` (or `null` in the file) means runs are only triggered by hand.
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
    /// IANA name; `UTC` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<DateSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<DateSpec>,
    #[serde(default)]
    pub catchup: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_runs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_tasks: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_paused_upon_creation: Option<bool>,
    #[serde(default, with = "crate::duration::serde_opt", skip_serializing_if = "Option::is_none")]
    pub dagrun_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, ParamSpec>,
    #[serde(default)]
    pub default_args: TaskArgs,
    /// Told when a run succeeds (Airflow's DAG-level `on_success_callback`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_success: Vec<Notifier>,
    /// Told when a run fails, its timeout included (the DAG-level `on_failure_callback`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<Notifier>,
    /// Runs still unfinished at these times fire their callbacks once (Airflow 3.1's `DeadlineAlert`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deadline: Vec<DeadlineAlert>,
    /// Roles allowed to read, edit or delete this DAG; absent: every role, within its rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control: Option<AccessControl>,
    /// The task groups, parents before their children. A file nests them (`groups:` with their own `tasks`); the
    /// loader lists them here and moves their tasks into `tasks`, so a stored spec only has this flat form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<TaskGroup>,
    pub tasks: Vec<TaskSpec>,
}

impl DagSpec {
    /// A spec with Airflow's defaults, for tests and programmatic DAGs.
    pub fn new(dag_id: impl Into<String>, tasks: Vec<TaskSpec>) -> DagSpec {
        DagSpec {
            dag_id: dag_id.into(),
            description: None,
            owner: None,
            tags: Vec::new(),
            schedule: None,
            timezone: None,
            start_date: None,
            end_date: None,
            catchup: false,
            max_active_runs: None,
            max_active_tasks: None,
            is_paused_upon_creation: None,
            dagrun_timeout: None,
            params: BTreeMap::new(),
            default_args: TaskArgs::default(),
            on_success: Vec::new(),
            on_failure: Vec::new(),
            deadline: Vec::new(),
            access_control: None,
            groups: Vec::new(),
            tasks,
        }
    }
}

/// A task group as stored: Airflow's TaskGroup, which prefixes the ids of what it holds with its own and lets a
/// dependency name all of it at once. Its tasks carry its id in [`TaskSpec::group`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskGroup {
    /// The full id, prefixed with the enclosing groups' (`outer.inner`).
    pub id: String,
    /// The full id of the enclosing group, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Shown with the group in the dashboard (Airflow's `tooltip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl TaskGroup {
    /// The id within the enclosing group, as written in the file.
    pub fn label(&self) -> &str {
        self.parent.as_deref().and_then(|p| self.id.strip_prefix(p)?.strip_prefix('.')).unwrap_or(&self.id)
    }
}

/// `schedule:` — a cron expression or preset (`"0 3 * * *"`, `"@daily"`, `"@once"`), `{every: 30m}` for runs at a
/// fixed interval from `start_date` (Airflow's `timedelta` schedule), `{event_dates: [...]}` for runs at listed
/// times (Airflow's `EventsTimetable`), or `{assets: [...]}` for a DAG triggered when assets are updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ScheduleSpec {
    Expr(String),
    Every {
        #[serde(with = "crate::duration::serde")]
        every: Duration,
    },
    Events(EventsSpec),
    Assets {
        assets: AssetCondition,
        /// Runs on this cron as well (Airflow's `AssetOrTimeSchedule`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cron: Option<String>,
    },
}

/// `{event_dates: [...]}`: Airflow's `EventsTimetable`, with its settings under their names there. Its
/// `restrict_to_events` is not offered, as a run triggered by hand takes the logical date it is given, and
/// `presorted` is not needed, as the dates are always sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventsSpec {
    /// When to run, in any order; dates without an offset are read in the DAG's timezone.
    pub event_dates: Vec<DateSpec>,
    /// Shown as the schedule in place of "N events".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The mapping forms of [`ScheduleSpec`], read on their own so that unknown keys are reported by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingForm {
    #[serde(default, with = "crate::duration::serde_opt")]
    every: Option<Duration>,
    assets: Option<AssetCondition>,
    cron: Option<String>,
    event_dates: Option<Vec<DateSpec>>,
    #[serde(default)]
    description: Option<String>,
}

impl<'de> Deserialize<'de> for ScheduleSpec {
    // Hand-written rather than `untagged` so that a wrong shape gets a message naming the accepted forms instead of
    // serde's "data did not match any variant".
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScheduleSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a cron expression, a preset like \"@daily\", {every: <duration>}, {event_dates: [...]} or \
                     {assets: [...]}",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScheduleSpec, E> {
                Ok(ScheduleSpec::Expr(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ScheduleSpec, A::Error> {
                let form = MappingForm::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (form.every, form.assets, form.event_dates) {
                    (None, None, Some(event_dates)) => {
                        Ok(ScheduleSpec::Events(EventsSpec { event_dates, description: form.description }))
                    }
                    _ if form.description.is_some() => {
                        Err(de::Error::custom("`description` goes with `event_dates` alone"))
                    }
                    (None, Some(assets), None) => Ok(ScheduleSpec::Assets { assets, cron: form.cron }),
                    _ if form.cron.is_some() => Err(de::Error::custom("`cron` goes with `assets` alone")),
                    (Some(every), None, None) => Ok(ScheduleSpec::Every { every }),
                    _ => Err(de::Error::custom("a schedule mapping has one of `every`, `event_dates` or `assets`")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Airflow's BashOperator skips a task that exits with this code.
pub const DEFAULT_SKIP_EXIT_CODE: i64 = 99;

/// `skip_on_exit_code:` — one exit code or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExitCodes {
    One(i64),
    Many(Vec<i64>),
}

impl ExitCodes {
    pub fn contains(&self, code: i64) -> bool {
        match self {
            ExitCodes::One(one) => *one == code,
            ExitCodes::Many(many) => many.contains(&code),
        }
    }
}

/// How a task's priority adds up along the graph (Airflow's `weight_rule`): when slots are scarce, the queued task
/// with the highest total goes first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightRule {
    /// Its own weight plus that of every task downstream of it: what leads to the most work starts first.
    #[default]
    Downstream,
    /// Its own weight plus that of every task upstream of it: runs that are further along finish first.
    Upstream,
    /// Its own weight alone.
    Absolute,
}

impl WeightRule {
    pub fn as_str(self) -> &'static str {
        match self {
            WeightRule::Downstream => "downstream",
            WeightRule::Upstream => "upstream",
            WeightRule::Absolute => "absolute",
        }
    }
}

/// Settings shared by tasks: `default_args` in the DAG, and the same fields on each task (the task wins).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, with = "crate::duration::serde_opt", skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_exponential_backoff: Option<bool>,
    #[serde(default, with = "crate::duration::serde_opt", skip_serializing_if = "Option::is_none")]
    pub max_retry_delay: Option<Duration>,
    #[serde(default, with = "crate::duration::serde_opt", skip_serializing_if = "Option::is_none")]
    pub execution_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_weight: Option<i32>,
    /// How `priority_weight` adds up along the graph; `downstream` when absent, as in Airflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_rule: Option<WeightRule>,
    /// Slots of its pool the task takes while queued or running; 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_slots: Option<u32>,
    /// The task starts only once its instance in the previous run succeeded or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on_past: Option<bool>,
    /// With the previous run's instance, its direct downstream tasks must have succeeded or been skipped too
    /// (implies `depends_on_past`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_downstream: Option<bool>,
    /// The most instances of the task queued or running at once across the DAG's runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_tis_per_dag: Option<u32>,
    /// The most instances of the task queued or running at once in one run (a mapped task's instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_tis_per_dagrun: Option<u32>,
    /// Told when a try starts (Airflow's `on_execute_callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_execute: Option<Vec<Notifier>>,
    /// Told when a try failed and the task will be retried (`on_retry_callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_retry: Option<Vec<Notifier>>,
    /// Told when the task succeeded (`on_success_callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Vec<Notifier>>,
    /// Told when the task failed for good (`on_failure_callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Vec<Notifier>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

impl TaskArgs {
    /// These settings where set, else `fallback`'s; `env` merges both maps, these entries winning.
    pub fn or(&self, fallback: &TaskArgs) -> TaskArgs {
        let mut env = fallback.env.clone();
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        TaskArgs {
            retries: self.retries.or(fallback.retries),
            retry_delay: self.retry_delay.or(fallback.retry_delay),
            retry_exponential_backoff: self.retry_exponential_backoff.or(fallback.retry_exponential_backoff),
            max_retry_delay: self.max_retry_delay.or(fallback.max_retry_delay),
            execution_timeout: self.execution_timeout.or(fallback.execution_timeout),
            queue: self.queue.clone().or_else(|| fallback.queue.clone()),
            pool: self.pool.clone().or_else(|| fallback.pool.clone()),
            priority_weight: self.priority_weight.or(fallback.priority_weight),
            weight_rule: self.weight_rule.or(fallback.weight_rule),
            pool_slots: self.pool_slots.or(fallback.pool_slots),
            depends_on_past: self.depends_on_past.or(fallback.depends_on_past),
            wait_for_downstream: self.wait_for_downstream.or(fallback.wait_for_downstream),
            max_active_tis_per_dag: self.max_active_tis_per_dag.or(fallback.max_active_tis_per_dag),
            max_active_tis_per_dagrun: self.max_active_tis_per_dagrun.or(fallback.max_active_tis_per_dagrun),
            on_execute: self.on_execute.clone().or_else(|| fallback.on_execute.clone()),
            on_retry: self.on_retry.clone().or_else(|| fallback.on_retry.clone()),
            on_success: self.on_success.clone().or_else(|| fallback.on_success.clone()),
            on_failure: self.on_failure.clone().or_else(|| fallback.on_failure.clone()),
            env,
        }
    }
}

/// One task of a DAG file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub id: String,
    /// What runs the task: `command` (a process) or a built-in operator kind.
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub trigger_rule: TriggerRule,
    /// The task's output names the downstream tasks to follow (a task id, a list of them, or null for none); the
    /// other tasks directly downstream are skipped, as Airflow's branch operators do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub branch: bool,
    /// A false output (Python's falsiness: false, null, 0, "", [], {}) skips the tasks downstream, as Airflow's
    /// ShortCircuitOperator does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub short_circuit: bool,
    /// With `short_circuit`: `true` (the default) skips every task downstream whatever its trigger rule; `false`
    /// skips only the direct downstream tasks and lets the trigger rules decide the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_downstream_trigger_rules: Option<bool>,
    /// Exit codes that end a `command` task as skipped instead of failed; 99 when absent, as Airflow's BashOperator,
    /// and `[]` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_on_exit_code: Option<ExitCodes>,
    /// One task instance per element (Airflow's dynamic task mapping): argument name → a list, or `{output:
    /// <task id>}` for an upstream task's output that is one; several arguments map over their cross product.
    /// Templates read an instance's arguments as `{{ args.<name> }}`.
    #[serde(default, skip_serializing_if = "MapArgs::is_empty")]
    pub expand: MapArgs,
    /// One task instance per set of arguments (Airflow's `expand_kwargs`): a list of objects, or an upstream output
    /// that is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expand_kwargs: Option<MapSource>,
    /// Fixed arguments beside the mapped ones (Airflow's `partial`), in `args` too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partial: BTreeMap<String, serde_json::Value>,
    /// The most instances the task may be expanded into; 1024 when absent (Airflow's `max_map_length`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_map_length: Option<u32>,
    // The TaskArgs fields, repeated because serde's flatten does not combine with deny_unknown_fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, with = "crate::duration::serde_opt", skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_exponential_backoff: Option<bool>,
    #[serde(default, with = "crate::duration::serde_opt", skip_serializing_if = "Option::is_none")]
    pub max_retry_delay: Option<Duration>,
    #[serde(default, with = "crate::duration::serde_opt", skip_serializing_if = "Option::is_none")]
    pub execution_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_weight: Option<i32>,
    /// How `priority_weight` adds up along the graph; `downstream` when absent, as in Airflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_rule: Option<WeightRule>,
    /// Slots of its pool the task takes while queued or running; 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_slots: Option<u32>,
    /// The task starts only once its instance in the previous run succeeded or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on_past: Option<bool>,
    /// With the previous run's instance, its direct downstream tasks must have succeeded or been skipped too
    /// (implies `depends_on_past`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_downstream: Option<bool>,
    /// The most instances of the task queued or running at once across the DAG's runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_tis_per_dag: Option<u32>,
    /// The most instances of the task queued or running at once in one run (a mapped task's instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_tis_per_dagrun: Option<u32>,
    /// Told when a try starts (Airflow's `on_execute_callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_execute: Option<Vec<Notifier>>,
    /// Told when a try failed and the task will be retried (`on_retry_callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_retry: Option<Vec<Notifier>>,
    /// Told when the task succeeded (`on_success_callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Vec<Notifier>>,
    /// Told when the task failed for good (`on_failure_callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Vec<Notifier>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The full id of the task group the task is in; set by the loader from where the task is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The program and its arguments (each element is a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// A bash script (a template), run as `bash -c <script>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Asset URIs the task reads: the data of `quality` and `transform`; lineage only for `command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// Asset URIs the task writes; each success records an event per output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// `kind: ingest`: where the data comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// `kind: ingest`: the column whose high-water mark makes loads incremental.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// `kind: quality`: the data SLA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<Check>>,
    /// `kind: transform`: the ordered steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Step>>,
    /// `kind: sql`: the id of the connection (PostgreSQL, MySQL or SQLite) the statements run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// `kind: sql`: the statements (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// `kind: train`: the model to train from the one input asset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    /// `kind: deploy`: the stage change and its gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeploySpec>,
    /// `kind: score`: the model version that predicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<ModelRef>,
    /// `kind: monitor`: the model watched, and the thresholds of drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorConfig>,
    /// `kind: command`: the model the command trains, registered as a new version when it succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registers: Option<RegistersSpec>,
    /// `kind: python`: the function to call, `module:function`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callable: Option<String>,
    /// `kind: python`: keyword arguments of the function; every string in them is a template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub op_kwargs: BTreeMap<String, serde_json::Value>,
    /// `kind: python`: the interpreter (a name on the worker's `PATH` or a path); `python3` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// `kind: python`: what pip installs in the virtualenv the function runs in (lines of a requirements file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<String>,
    /// `kind: python` with `requirements`: whether the virtualenv sees the interpreter's own packages (default true,
    /// as Airflow's `PythonVirtualenvOperator`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_site_packages: Option<bool>,
    /// `kind: python`: the function returns a mapping whose keys become outputs of their own, beside the return
    /// value (Airflow's `multiple_outputs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple_outputs: Option<bool>,
    /// `kind: sensor`: what it waits for (`{type: file, path: …}`, `{type: time, …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<SensorCondition>,
    /// `kind: sensor`: `poke` (default) or `reschedule` (always, for `external_task`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SensorMode>,
    /// `kind: sensor`: the wait between pokes; 60s when absent, as in Airflow.
    #[serde(default, with = "crate::duration::serde_opt", skip_serializing_if = "Option::is_none")]
    pub poke_interval: Option<Duration>,
    /// `kind: sensor`: how long it may wait from its first poke; 7 days when absent, as in Airflow.
    #[serde(default, with = "crate::duration::serde_opt", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// `kind: sensor`: skip instead of failing at the timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_fail: Option<bool>,
    /// `kind: sensor`: double the wait after each poke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_backoff: Option<bool>,
    /// `kind: sensor` with `exponential_backoff`: the longest wait between pokes.
    #[serde(default, with = "crate::duration::serde_opt", skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<Duration>,
}

fn default_kind() -> String {
    DEFAULT_TASK_KIND.to_owned()
}

impl TaskSpec {
    /// A command task with default settings, for tests and programmatic DAGs.
    pub fn new(id: impl Into<String>) -> TaskSpec {
        TaskSpec {
            id: id.into(),
            kind: default_kind(),
            depends_on: Vec::new(),
            trigger_rule: TriggerRule::default(),
            branch: false,
            short_circuit: false,
            ignore_downstream_trigger_rules: None,
            skip_on_exit_code: None,
            expand: MapArgs::default(),
            expand_kwargs: None,
            partial: BTreeMap::new(),
            max_map_length: None,
            retries: None,
            retry_delay: None,
            retry_exponential_backoff: None,
            max_retry_delay: None,
            execution_timeout: None,
            queue: None,
            pool: None,
            priority_weight: None,
            weight_rule: None,
            pool_slots: None,
            depends_on_past: None,
            wait_for_downstream: None,
            max_active_tis_per_dag: None,
            max_active_tis_per_dagrun: None,
            on_execute: None,
            on_retry: None,
            on_success: None,
            on_failure: None,
            env: BTreeMap::new(),
            group: None,
            command: None,
            script: None,
            cwd: None,
            description: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            source: None,
            watermark: None,
            checks: None,
            steps: None,
            connection: None,
            sql: None,
            model: None,
            deploy: None,
            score: None,
            monitor: None,
            registers: None,
            callable: None,
            op_kwargs: BTreeMap::new(),
            interpreter: None,
            requirements: Vec::new(),
            system_site_packages: None,
            multiple_outputs: None,
            sensor: None,
            mode: None,
            poke_interval: None,
            timeout: None,
            soft_fail: None,
            exponential_backoff: None,
            max_wait: None,
        }
    }

    /// The configuration of a built-in data task, or of a `command` task that registers a model (its `argv` is
    /// filled in when the command is rendered); `None` for other `command` tasks (and for a data task missing a
    /// required field, which validation reports).
    pub fn op_spec(&self) -> Option<OpSpec> {
        match self.kind.as_str() {
            "ingest" => Some(OpSpec::Ingest(IngestSpec {
                source: self.source.clone()?,
                outputs: self.outputs.clone(),
                watermark: self.watermark.clone(),
            })),
            "quality" => {
                Some(OpSpec::Quality(QualitySpec { inputs: self.inputs.clone(), checks: self.checks.clone()? }))
            }
            "transform" => Some(OpSpec::Transform(TransformSpec {
                inputs: self.inputs.clone(),
                outputs: self.outputs.clone(),
                steps: self.steps.clone()?,
            })),
            "sql" => Some(OpSpec::Sql(SqlSpec { connection: self.connection.clone()?, sql: self.sql.clone()? })),
            "train" => Some(OpSpec::Train(TrainSpec { inputs: self.inputs.clone(), model: self.model.clone()? })),
            "deploy" => Some(OpSpec::Deploy(self.deploy.clone()?)),
            "score" => Some(OpSpec::Score(ScoreSpec {
                inputs: self.inputs.clone(),
                outputs: self.outputs.clone(),
                score: self.score.clone()?,
            })),
            "monitor" => {
                Some(OpSpec::Monitor(MonitorSpec { inputs: self.inputs.clone(), monitor: self.monitor.clone()? }))
            }
            crate::ops_spec::SENSOR_KIND => Some(OpSpec::Sensor(SensorSpec {
                mode: self.mode.unwrap_or(self.sensor.as_ref()?.default_mode()),
                sensor: self.sensor.clone()?,
                poke_interval: self.poke_interval.unwrap_or(crate::ops_spec::DEFAULT_POKE_INTERVAL),
                timeout: self.timeout.unwrap_or(crate::ops_spec::DEFAULT_SENSOR_TIMEOUT),
                soft_fail: self.soft_fail.unwrap_or(false),
                exponential_backoff: self.exponential_backoff.unwrap_or(false),
                max_wait: self.max_wait,
            })),
            DEFAULT_TASK_KIND => Some(OpSpec::Command(CommandSpec {
                argv: Vec::new(),
                inputs: self.inputs.clone(),
                registers: self.registers.clone()?,
            })),
            _ => None,
        }
    }

    /// Whether a try that exited with `code` ends the task as skipped rather than failed. Only `command` tasks
    /// choose their exit codes: a data task's come from Sluice.
    pub fn skips_on_exit_code(&self, code: i64) -> bool {
        self.kind == DEFAULT_TASK_KIND
            && self.skip_on_exit_code.as_ref().map_or(code == DEFAULT_SKIP_EXIT_CODE, |codes| codes.contains(code))
    }

    /// Every asset the task reads: its `inputs`, and the assets its transform steps join.
    pub fn input_assets(&self) -> impl Iterator<Item = &str> {
        let joined = self.steps.as_deref().map(crate::ops_spec::joined_assets).into_iter().flatten();
        self.inputs.iter().map(String::as_str).chain(joined)
    }

    /// The task-level settings, as a [`TaskArgs`].
    pub fn task_args(&self) -> TaskArgs {
        TaskArgs {
            retries: self.retries,
            retry_delay: self.retry_delay,
            retry_exponential_backoff: self.retry_exponential_backoff,
            max_retry_delay: self.max_retry_delay,
            execution_timeout: self.execution_timeout,
            queue: self.queue.clone(),
            pool: self.pool.clone(),
            priority_weight: self.priority_weight,
            weight_rule: self.weight_rule,
            pool_slots: self.pool_slots,
            depends_on_past: self.depends_on_past,
            wait_for_downstream: self.wait_for_downstream,
            max_active_tis_per_dag: self.max_active_tis_per_dag,
            max_active_tis_per_dagrun: self.max_active_tis_per_dagrun,
            on_execute: self.on_execute.clone(),
            on_retry: self.on_retry.clone(),
            on_success: self.on_success.clone(),
            on_failure: self.on_failure.clone(),
            env: self.env.clone(),
        }
    }

    /// Replaces the task-level settings with `args`.
    pub fn set_task_args(&mut self, args: TaskArgs) {
        self.retries = args.retries;
        self.retry_delay = args.retry_delay;
        self.retry_exponential_backoff = args.retry_exponential_backoff;
        self.max_retry_delay = args.max_retry_delay;
        self.execution_timeout = args.execution_timeout;
        self.queue = args.queue;
        self.pool = args.pool;
        self.priority_weight = args.priority_weight;
        self.weight_rule = args.weight_rule;
        self.pool_slots = args.pool_slots;
        self.depends_on_past = args.depends_on_past;
        self.wait_for_downstream = args.wait_for_downstream;
        self.max_active_tis_per_dag = args.max_active_tis_per_dag;
        self.max_active_tis_per_dagrun = args.max_active_tis_per_dagrun;
        self.on_execute = args.on_execute;
        self.on_retry = args.on_retry;
        self.on_success = args.on_success;
        self.on_failure = args.on_failure;
        self.env = args.env;
    }

    /// The effective settings: the task's own, else the DAG's `default_args`, else Airflow's defaults. `env` merges
    /// both maps, the task's entries winning.
    pub fn resolved(&self, defaults: &TaskArgs) -> ResolvedTask {
        let args = self.task_args().or(defaults);
        ResolvedTask {
            retries: args.retries.unwrap_or(0),
            retry_delay: args.retry_delay.unwrap_or(DEFAULT_RETRY_DELAY),
            retry_exponential_backoff: args.retry_exponential_backoff.unwrap_or(false),
            max_retry_delay: args.max_retry_delay,
            execution_timeout: args.execution_timeout,
            queue: args.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned()),
            pool: args.pool.unwrap_or_else(|| DEFAULT_POOL.to_owned()),
            priority_weight: args.priority_weight.unwrap_or(1),
            weight_rule: args.weight_rule.unwrap_or_default(),
            pool_slots: args.pool_slots.unwrap_or(1),
            depends_on_past: args.depends_on_past.unwrap_or(false) || args.wait_for_downstream.unwrap_or(false),
            wait_for_downstream: args.wait_for_downstream.unwrap_or(false),
            max_active_tis_per_dag: args.max_active_tis_per_dag,
            max_active_tis_per_dagrun: args.max_active_tis_per_dagrun,
            callbacks: TaskCallbacks {
                on_execute: args.on_execute.unwrap_or_default(),
                on_retry: args.on_retry.unwrap_or_default(),
                on_success: args.on_success.unwrap_or_default(),
                on_failure: args.on_failure.unwrap_or_default(),
            },
            env: args.env,
        }
    }
}

/// A task's effective settings after defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedTask {
    pub retries: u32,
    #[serde(with = "crate::duration::serde")]
    pub retry_delay: Duration,
    pub retry_exponential_backoff: bool,
    #[serde(default, with = "crate::duration::serde_opt")]
    pub max_retry_delay: Option<Duration>,
    #[serde(default, with = "crate::duration::serde_opt")]
    pub execution_timeout: Option<Duration>,
    pub queue: String,
    pub pool: String,
    pub priority_weight: i32,
    pub weight_rule: WeightRule,
    pub pool_slots: u32,
    pub depends_on_past: bool,
    pub wait_for_downstream: bool,
    pub max_active_tis_per_dag: Option<u32>,
    pub max_active_tis_per_dagrun: Option<u32>,
    #[serde(default, skip_serializing_if = "TaskCallbacks::is_empty")]
    pub callbacks: TaskCallbacks,
    pub env: BTreeMap<String, String>,
}

impl ResolvedTask {
    /// Delay before try `try_number + 1` after try `try_number` failed (Airflow: retry_delay, or
    /// retry_delay * 2^(try_number-1) capped by max_retry_delay (default 24h) with exponential backoff; no jitter).
    pub fn retry_delay_after(&self, try_number: u32) -> Duration {
        if !self.retry_exponential_backoff {
            return self.retry_delay;
        }
        let cap = self.max_retry_delay.unwrap_or(DEFAULT_MAX_RETRY_DELAY);
        // Saturate instead of overflowing: past 2^63 the cap applies anyway.
        let factor = 1u32.checked_shl(try_number.saturating_sub(1)).unwrap_or(u32::MAX);
        self.retry_delay.checked_mul(factor).map_or(cap, |d| d.min(cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_after_table() {
        let mut task = TaskSpec::new("t").resolved(&TaskArgs::default());
        assert_eq!(task.retry_delay, Duration::from_secs(300));
        assert_eq!(task.retry_delay_after(3), Duration::from_secs(300));
        task.retry_exponential_backoff = true;
        task.retry_delay = Duration::from_secs(10);
        let rows = [(1, 10), (2, 20), (3, 40), (4, 80), (20, 86_400), (200, 86_400)];
        for (try_number, secs) in rows {
            assert_eq!(task.retry_delay_after(try_number), Duration::from_secs(secs), "{try_number}");
        }
        task.max_retry_delay = Some(Duration::from_secs(30));
        assert_eq!(task.retry_delay_after(3), Duration::from_secs(30));
    }

    #[test]
    fn resolved_merges_defaults() {
        let defaults = TaskArgs {
            retries: Some(2),
            queue: Some("gpu".into()),
            env: BTreeMap::from([("A".into(), "1".into()), ("B".into(), "1".into())]),
            ..TaskArgs::default()
        };
        let mut task = TaskSpec::new("t");
        task.retries = Some(5);
        task.env.insert("B".into(), "2".into());
        let r = task.resolved(&defaults);
        assert_eq!(r.retries, 5);
        assert_eq!(r.queue, "gpu");
        assert_eq!(r.pool, "default_pool");
        assert_eq!(r.priority_weight, 1);
        assert_eq!(r.env, BTreeMap::from([("A".into(), "1".into()), ("B".into(), "2".into())]));
        assert_eq!(task.task_args().retries, Some(5));
    }
}
