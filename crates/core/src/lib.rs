//! Sluice's domain core: everything about DAGs that needs no IO.
//!
//! A DAG file (YAML) is parsed and validated by [`load_dag`] into a [`Dag`]: the [`spec`] it was written as, the
//! task graph, and its [`Timetable`]. The rest of the crate holds the rules the scheduler and workers share: task and
//! run [`state`]s, [`trigger`] rules, retry delays, the data-interval [`schedule`] semantics, and the [`template`]
//! context used to render commands. The [`protocol`] module defines the messages between workers and the server.
//!
//! Names follow Airflow's (`dag_id`, `run_id`, `logical_date`, `try_number`, `trigger_rule`, `upstream_failed`) so
//! that users can carry over what they know.

pub mod access;
pub mod connection;
pub mod dag;
pub mod duration;
pub mod layout;
pub mod lineage;
pub mod load;
pub mod mapping;
pub mod masking;
pub mod notify;
pub mod openlineage;
pub mod ops_spec;
pub mod protocol;
pub mod python;
pub mod schedule;
pub mod serving;
pub mod skip;
pub mod spec;
pub mod state;
pub mod template;
pub mod trigger;
pub mod xcom;

pub use access::{AccessControl, DagAction, Role, dag_allows};
pub use dag::Dag;
pub use duration::{DurationError, format_duration, parse_duration};
pub use load::{DagError, load_dag};
pub use schedule::{DataInterval, Schedule, Timetable, parse_schedule};
pub use spec::{DagSpec, DateSpec, EventsSpec, ParamSpec, ResolvedTask, ScheduleSpec, TaskArgs, TaskGroup, TaskSpec};
pub use state::{RunState, TaskState, run_outcome};
pub use template::{RenderedCommand, TemplateContext, TemplateError, render_command, render_reading, resolve_params};
pub use trigger::{Readiness, TriggerRule, trigger_satisfied};
