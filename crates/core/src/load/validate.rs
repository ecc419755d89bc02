//! Semantic checks of a DAG spec, shared by [`crate::load_dag`] (with locations from the file) and
//! [`crate::Dag::from_spec`] (without), and the construction of the [`Dag`] once they pass.

use std::collections::HashMap;

use chrono_tz::Tz;
use petgraph::graph::{DiGraph, NodeIndex};

mod groups;
mod steps;

use super::DagError;
use super::groups::Path;
use super::node::{Loc, Node, Seg};
use super::suggest;
use crate::dag::Dag;
use crate::mapping::{DEFAULT_MAX_MAP_LENGTH, MapSource};
use crate::ops_spec::SENSOR_KIND;
use crate::python::PYTHON_KIND;
use crate::schedule::{Events, Schedule, Timetable, parse_schedule};
use crate::spec::{DEFAULT_TASK_KIND, DagSpec, LATEST_ONLY_KIND, ScheduleSpec, TASK_KINDS, TaskArgs, TaskSpec};

/// Turns paths in the spec into locations in the file.
pub(crate) struct Locator<'a> {
    root: Option<&'a Node>,
    /// For each task of the spec, where it is in the file (in a `tasks` list at the top or in a group).
    task_paths: Vec<Path>,
    /// For each group of the spec, where it is in the file.
    group_paths: Vec<Path>,
    /// Fields left out of the header and of each task because they had errors: checks about them are skipped.
    header_dropped: Vec<String>,
    task_dropped: Vec<Vec<String>>,
}

impl<'a> Locator<'a> {
    pub fn new(root: Option<&'a Node>, task_paths: Vec<Path>, group_paths: Vec<Path>) -> Locator<'a> {
        Locator { root, task_paths, group_paths, header_dropped: Vec::new(), task_dropped: Vec::new() }
    }

    pub fn with_dropped(mut self, header: Vec<String>, tasks: Vec<Vec<String>>) -> Locator<'a> {
        self.header_dropped = header;
        self.task_dropped = tasks;
        self
    }

    fn header_dropped(&self, field: &str) -> bool {
        self.header_dropped.iter().any(|f| f == field)
    }

    /// Whether a task field named like one of `fields` (or a near miss of one) was dropped.
    fn task_dropped_like(&self, i: usize, fields: &[&str]) -> bool {
        self.task_dropped.get(i).is_some_and(|dropped| {
            dropped
                .iter()
                .any(|d| fields.contains(&d.as_str()) || suggest::closest(d, fields.iter().copied()).is_some())
        })
    }

    /// The node at `path`, or the nearest existing node above it; (0, 0) without a file.
    fn at(&self, path: &[Seg<'_>]) -> Loc {
        self.root.map_or((0, 0), |root| root.find(path).loc)
    }

    /// Like `at`, but the location of the key of the last segment (for "this field" errors).
    fn key(&self, path: &[Seg<'_>]) -> Loc {
        let Some((Seg::Key(last), parent)) = path.split_last() else {
            return self.at(path);
        };
        self.root.and_then(|root| root.find(parent).entry(last)).map_or_else(|| self.at(path), |(key, _)| key.loc)
    }

    /// The path of `rest` under the spec's task `i`.
    fn task_path<'p>(&self, i: usize, rest: &[Seg<'p>]) -> Vec<Seg<'p>> {
        let mut path: Vec<Seg<'p>> =
            self.task_paths.get(i).cloned().unwrap_or_else(|| vec![Seg::Key("tasks"), Seg::Index(i)]);
        path.extend_from_slice(rest);
        path
    }

    fn task(&self, i: usize, rest: &[Seg<'_>]) -> Loc {
        self.at(&self.task_path(i, rest))
    }

    /// The location of the key `field` of the spec's task `i`.
    fn task_key(&self, i: usize, field: &str) -> Loc {
        self.key(&self.task_path(i, &[Seg::Key(field)]))
    }

    fn group(&self, g: usize, rest: &[Seg<'_>]) -> Loc {
        let mut path: Vec<Seg<'_>> =
            self.group_paths.get(g).cloned().unwrap_or_else(|| vec![Seg::Key("groups"), Seg::Index(g)]);
        path.extend_from_slice(rest);
        self.at(&path)
    }
}

struct Errors<'a> {
    file: &'a str,
    list: Vec<DagError>,
}

impl Errors<'_> {
    fn push(&mut self, loc: Loc, message: impl Into<String>) {
        self.list.push(DagError::new(self.file, loc, message));
    }
}

/// Validate `spec` and build the [`Dag`]. `header_ok` is false when the file's header failed to read (its checks are
/// then skipped: they would only repeat those errors); `unread_ids` are ids of tasks that failed to read.
pub(crate) fn check(
    spec: DagSpec,
    file: &str,
    loc: &Locator<'_>,
    header_ok: bool,
    unread_ids: &[String],
) -> Result<Dag, Vec<DagError>> {
    let mut errors = Errors { file, list: Vec::new() };
    let timetable = if header_ok { check_header(&spec, loc, &mut errors) } else { None };
    check_tasks(&spec, loc, header_ok, unread_ids, &mut errors);
    check_callbacks(&spec, loc, &mut errors);
    groups::check_groups(&spec, loc, &mut errors);
    let (graph, index) = build_graph(&spec, loc, &mut errors);
    match timetable {
        Some(timetable) if errors.list.is_empty() => Ok(Dag::new(spec, graph, index, timetable)),
        _ => Err(errors.list),
    }
}

/// Airflow's KEY_REGEX for dag and task ids: they appear in URLs, run ids and file names.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 250 && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

const ID_RULE: &str = "use letters, digits, `_`, `-` and `.`, at most 250 characters";

fn check_header(spec: &DagSpec, loc: &Locator<'_>, errors: &mut Errors<'_>) -> Option<Timetable> {
    if !valid_id(&spec.dag_id) {
        errors.push(loc.at(&[Seg::Key("dag_id")]), format!("invalid dag_id {:?}: {ID_RULE}", spec.dag_id));
    }
    let tz = check_timezone(spec, loc, errors);
    let schedule = match &spec.schedule {
        None => Some(Schedule::Manual),
        Some(ScheduleSpec::Expr(expr)) => match parse_schedule(expr) {
            Ok(schedule) => Some(schedule),
            Err(message) => {
                errors.push(loc.at(&[Seg::Key("schedule")]), message);
                None
            }
        },
        Some(ScheduleSpec::Every { every }) if every.is_zero() => {
            errors.push(loc.at(&[Seg::Key("schedule"), Seg::Key("every")]), "`schedule.every` must be above 0");
            None
        }
        Some(ScheduleSpec::Every { every }) => Some(Schedule::Every(*every)),
        Some(ScheduleSpec::Events(events)) => {
            if events.event_dates.is_empty() {
                errors.push(
                    loc.at(&[Seg::Key("schedule"), Seg::Key("event_dates")]),
                    "`schedule.event_dates` must list at least one date",
                );
            }
            let dates = events.event_dates.iter().map(|d| d.resolve(tz.unwrap_or(Tz::UTC))).collect();
            Some(Schedule::Events(Events::new(dates, events.description.clone())))
        }
        Some(ScheduleSpec::Assets { assets, cron }) => {
            if let Err(problem) = assets.check() {
                errors
                    .push(loc.at(&[Seg::Key("schedule"), Seg::Key("assets")]), format!("`schedule.assets`: {problem}"));
            }
            let or_cron = match cron.as_deref().map(parse_schedule) {
                None => Ok(None),
                Some(Ok(Schedule::Cron(cron))) => Ok(Some(cron)),
                Some(Ok(_)) => Err("`schedule.cron` must be a cron expression or a preset other than @once".to_owned()),
                Some(Err(message)) => Err(message),
            };
            match or_cron {
                Ok(or_cron) => Some(Schedule::Assets { condition: assets.clone(), or_cron }),
                Err(message) => {
                    errors.push(loc.at(&[Seg::Key("schedule"), Seg::Key("cron")]), message);
                    None
                }
            }
        }
    };
    let start = spec.start_date.as_ref().map(|d| d.resolve(tz.unwrap_or(Tz::UTC)));
    let end = spec.end_date.as_ref().map(|d| d.resolve(tz.unwrap_or(Tz::UTC)));
    let start_missing = start.is_none() && !loc.header_dropped("start_date");
    let timed = matches!(
        schedule,
        Some(Schedule::Cron(_) | Schedule::Once | Schedule::Every(_) | Schedule::Assets { or_cron: Some(_), .. })
    );
    if timed && start_missing {
        let written = match &spec.schedule {
            Some(ScheduleSpec::Expr(e) | ScheduleSpec::Assets { cron: Some(e), .. }) => format!("{e:?}"),
            Some(ScheduleSpec::Every { every }) => format!("every {}", crate::format_duration(*every)),
            _ => String::new(),
        };
        errors.push(
            loc.at(&[Seg::Key("schedule")]),
            format!("schedule {written} needs a `start_date`: runs cover the data intervals from start_date on"),
        );
    }
    if let (Some(start), Some(end)) = (start, end)
        && end < start
    {
        errors.push(loc.at(&[Seg::Key("end_date")]), format!("end_date {end} is before start_date {start}"));
    }
    for (field, value) in [("max_active_runs", spec.max_active_runs), ("max_active_tasks", spec.max_active_tasks)] {
        if value == Some(0) {
            errors.push(loc.at(&[Seg::Key(field)]), format!("`{field}` must be at least 1"));
        }
    }
    for (name, param) in &spec.params {
        let at = loc.at(&[Seg::Key("params"), Seg::Key(name)]);
        let validator = match param.validator() {
            Ok(validator) => validator,
            Err(e) => {
                errors.push(at, format!("param `{name}`: {e}"));
                continue;
            }
        };
        if param.schema.get("enum").and_then(serde_json::Value::as_array).is_some_and(Vec::is_empty) {
            errors.push(at, format!("param `{name}`: `enum` must not be empty"));
        }
        if let Some(default) = &param.default
            && let Err(e) = crate::spec::param::check_with(&validator, name, default)
        {
            errors.push(at, format!("default of {e}"));
        }
    }
    for (key, value) in &spec.default_args.env {
        check_template(
            value,
            &format!("default_args.env.{key}"),
            loc.at(&[Seg::Key("default_args"), Seg::Key("env"), Seg::Key(key)]),
            errors,
        );
    }
    let tz = tz?;
    Some(Timetable::new(schedule?, tz, start, end, spec.catchup))
}

fn check_timezone(spec: &DagSpec, loc: &Locator<'_>, errors: &mut Errors<'_>) -> Option<Tz> {
    let Some(name) = &spec.timezone else {
        return Some(Tz::UTC);
    };
    match name.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
            errors.push(
                loc.at(&[Seg::Key("timezone")]),
                format!(
                    "unknown timezone {name:?}{} (expected an IANA name like \"Europe/Paris\")",
                    suggest::hint(name, names)
                ),
            );
            None
        }
    }
}

fn check_tasks(spec: &DagSpec, loc: &Locator<'_>, header_ok: bool, unread_ids: &[String], errors: &mut Errors<'_>) {
    if header_ok && spec.tasks.is_empty() && unread_ids.is_empty() && !loc.header_dropped("tasks") {
        errors.push(loc.key(&[Seg::Key("tasks")]), "a DAG needs at least one task");
    }
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, task) in spec.tasks.iter().enumerate() {
        let id_at = loc.task(i, &[Seg::Key("id")]);
        if !valid_id(&task.id) {
            errors.push(id_at, format!("invalid task id {:?}: {ID_RULE}", task.id));
        }
        if let Some(&first) = first_seen.get(task.id.as_str()) {
            let (line, _) = loc.task(first, &[Seg::Key("id")]);
            let where_ = if line > 0 { format!(" (first defined on line {line})") } else { String::new() };
            errors.push(id_at, format!("duplicate task id `{}`{where_}", task.id));
        } else if unread_ids.contains(&task.id) {
            errors.push(id_at, format!("duplicate task id `{}`", task.id));
        } else {
            first_seen.insert(&task.id, i);
        }
        check_task_body(i, task, loc, errors);
    }
    let known: Vec<&str> =
        spec.tasks.iter().map(|t| t.id.as_str()).chain(unread_ids.iter().map(String::as_str)).collect();
    for (i, task) in spec.tasks.iter().enumerate() {
        for (j, dep) in task.depends_on.iter().enumerate() {
            if !known.contains(&dep.as_str()) {
                errors.push(
                    loc.task(i, &[Seg::Key("depends_on"), Seg::Index(j)]),
                    format!(
                        "task `{}` depends on `{dep}`, which is not a task or task group of this DAG{}",
                        task.id,
                        suggest::hint(dep, known.iter().copied())
                    ),
                );
            }
        }
        check_skipping(i, task, spec, loc, errors);
        check_mapping(i, task, &known, loc, errors);
        check_limits(i, task, loc, errors);
    }
}

/// Notifiers of the DAG's callbacks and deadlines, of `default_args` and of each task.
fn check_callbacks(spec: &DagSpec, loc: &Locator<'_>, errors: &mut Errors<'_>) {
    let mut report = |at: Loc, problems: Vec<String>, whose: &str| {
        for problem in problems {
            errors.push(at, format!("{whose}{problem}"));
        }
    };
    for (field, list) in [("on_success", &spec.on_success), ("on_failure", &spec.on_failure)] {
        for (j, notifier) in list.iter().enumerate() {
            report(loc.at(&[Seg::Key(field), Seg::Index(j)]), notifier.problems(), "");
        }
    }
    for (j, alert) in spec.deadline.iter().enumerate() {
        report(loc.at(&[Seg::Key("deadline"), Seg::Index(j)]), alert.problems(), "deadline: ");
    }
    let task_lists = |args: TaskArgs| {
        [("on_execute", args.on_execute), ("on_retry", args.on_retry), ("on_success", args.on_success)]
            .into_iter()
            .chain([("on_failure", args.on_failure)])
            .filter_map(|(field, list)| Some((field, list?)))
            .collect::<Vec<_>>()
    };
    for (field, list) in task_lists(spec.default_args.clone()) {
        for (j, notifier) in list.iter().enumerate() {
            report(loc.at(&[Seg::Key("default_args"), Seg::Key(field), Seg::Index(j)]), notifier.problems(), "");
        }
    }
    for (i, task) in spec.tasks.iter().enumerate() {
        for (field, list) in task_lists(task.task_args()) {
            for (j, notifier) in list.iter().enumerate() {
                let whose = format!("task `{}`: ", task.id);
                report(loc.task(i, &[Seg::Key(field), Seg::Index(j)]), notifier.problems(), &whose);
            }
        }
    }
}

/// `pool_slots` and the task's concurrency limits: 0 would keep the task from ever running.
fn check_limits(i: usize, task: &TaskSpec, loc: &Locator<'_>, errors: &mut Errors<'_>) {
    let limits = [
        ("pool_slots", task.pool_slots),
        ("max_active_tis_per_dag", task.max_active_tis_per_dag),
        ("max_active_tis_per_dagrun", task.max_active_tis_per_dagrun),
    ];
    for (field, value) in limits {
        if value == Some(0) {
            let at = loc.task(i, &[Seg::Key(field)]);
            errors.push(at, format!("task `{}`: `{field}` must be at least 1", task.id));
        }
    }
}

/// `expand`, `expand_kwargs`, `partial` and `max_map_length`: what can be known before a run.
fn check_mapping(i: usize, task: &TaskSpec, known: &[&str], loc: &Locator<'_>, errors: &mut Errors<'_>) {
    let id = &task.id;
    if !task.expand.is_empty() && task.expand_kwargs.is_some() {
        let at = loc.task(i, &[Seg::Key("expand_kwargs")]);
        errors.push(at, format!("task `{id}` has both `expand` and `expand_kwargs`; keep one"));
    }
    if !task.is_mapped() {
        for field in ["partial", "max_map_length"] {
            let set = if field == "partial" { !task.partial.is_empty() } else { task.max_map_length.is_some() };
            if set {
                let at = loc.task(i, &[Seg::Key(field)]);
                errors.push(at, format!("task `{id}`: `{field}` needs `expand` or `expand_kwargs`"));
            }
        }
        return;
    }
    let max = task.max_map_length.map_or(DEFAULT_MAX_MAP_LENGTH, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let named = task.expand.0.iter().map(|(name, source)| (Seg::Key("expand"), Some(name.as_str()), source));
    let sources = named.chain(task.expand_kwargs.iter().map(|source| (Seg::Key("expand_kwargs"), None, source)));
    for (field, name, source) in sources {
        let path: Vec<Seg<'_>> = [Some(field), name.map(Seg::Key)].into_iter().flatten().collect();
        let at = loc.task(i, &path);
        let what = name.map_or_else(|| "`expand_kwargs`".to_owned(), |n| format!("`expand.{n}`"));
        if let Some(name) = name.filter(|n| !valid_arg_name(n)) {
            errors.push(at, format!("task `{id}`: invalid argument name {name:?}: use letters, digits and `_`"));
        }
        match source {
            MapSource::Literal(values) if values.len() > max => errors
                .push(at, format!("task `{id}`: {what} has {} values, more than max_map_length {max}", values.len())),
            MapSource::Literal(values) if name.is_none() && !values.iter().all(serde_json::Value::is_object) => {
                errors.push(at, format!("task `{id}`: `expand_kwargs` must list objects (one set of arguments each)"))
            }
            MapSource::Output { output } if !known.contains(&output.as_str()) => errors.push(
                at,
                format!(
                    "task `{id}`: {what} reads the output of `{output}`, which is not a task of this DAG{}",
                    suggest::hint(output, known.iter().copied())
                ),
            ),
            MapSource::Output { output } if output == id => {
                errors.push(at, format!("task `{id}`: {what} cannot read the task's own output"))
            }
            _ => {}
        }
    }
    for name in task.partial.keys().filter(|n| task.expand.0.iter().any(|(e, _)| e == *n)) {
        let at = loc.task(i, &[Seg::Key("partial"), Seg::Key(name)]);
        errors.push(at, format!("task `{id}`: argument `{name}` is both in `partial` and in `expand`"));
    }
}

/// Mapped arguments are template variables (`args.<name>`) and Python keyword arguments.
fn valid_arg_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `branch` and `short_circuit` decide about the tasks downstream, so a task with either needs some, and one task
/// cannot do both.
fn check_skipping(i: usize, task: &TaskSpec, spec: &DagSpec, loc: &Locator<'_>, errors: &mut Errors<'_>) {
    let id = &task.id;
    if task.is_mapped() && (task.branch || task.short_circuit) {
        let field = if task.branch { "branch" } else { "short_circuit" };
        errors.push(loc.task(i, &[Seg::Key(field)]), format!("task `{id}` is mapped: it cannot have `{field}`"));
    }
    if task.branch && task.short_circuit {
        let at = loc.task(i, &[Seg::Key("short_circuit")]);
        errors.push(at, format!("task `{id}` has both `branch` and `short_circuit`; keep one"));
    }
    if task.ignore_downstream_trigger_rules.is_some() && !task.short_circuit {
        let at = loc.task(i, &[Seg::Key("ignore_downstream_trigger_rules")]);
        errors.push(at, format!("task `{id}`: `ignore_downstream_trigger_rules` needs `short_circuit: true`"));
    }
    for (field, set) in [("branch", task.branch), ("short_circuit", task.short_circuit)] {
        if set && !spec.tasks.iter().any(|t| t.depends_on.contains(id) || t.map_upstreams().any(|u| u == id)) {
            let at = loc.task(i, &[Seg::Key(field)]);
            errors.push(at, format!("task `{id}` has `{field}` but no task depends on it: there is nothing to skip"));
        }
    }
}

fn check_task_body(i: usize, task: &TaskSpec, loc: &Locator<'_>, errors: &mut Errors<'_>) {
    let id = &task.id;
    // A misspelt or mistyped command/script was reported already; "needs a command" would only repeat it.
    let unread = loc.task_dropped_like(i, &["command", "script", "kind"]);
    if task.kind != DEFAULT_TASK_KIND {
        check_data_task(i, task, loc, errors);
    } else {
        let other_kinds = KIND_SPECIFIC.into_iter().filter(|f| !COMMAND_FIELDS.contains(f)).collect::<Vec<_>>();
        check_fields_absent(i, task, &other_kinds, loc, errors);
        check_registers(i, task, loc, errors);
    }
    if task.kind == DEFAULT_TASK_KIND && !unread {
        match (&task.command, &task.script) {
            (None, None) => errors.push(
                loc.task(i, &[Seg::Key("id")]),
                format!("task `{id}` needs either `command` (a list of arguments) or `script` (a bash script)"),
            ),
            (Some(_), Some(_)) => errors.push(
                loc.task(i, &[Seg::Key("script")]),
                format!("task `{id}` has both `command` and `script`; keep one"),
            ),
            (Some(argv), None) if argv.is_empty() => {
                errors.push(loc.task(i, &[Seg::Key("command")]), format!("task `{id}`: `command` must not be empty"))
            }
            _ => {}
        }
    }
    for (j, arg) in task.command.iter().flatten().enumerate() {
        let at = loc.task(i, &[Seg::Key("command"), Seg::Index(j)]);
        check_template(arg, &format!("task `{id}` command[{j}]"), at, errors);
    }
    if let Some(script) = &task.script {
        let at = loc.task(i, &[Seg::Key("script")]);
        check_template(script, &format!("task `{id}` script"), at, errors);
    }
    if let Some(cwd) = &task.cwd {
        let at = loc.task(i, &[Seg::Key("cwd")]);
        check_template(cwd, &format!("task `{id}` cwd"), at, errors);
    }
    for (key, value) in &task.env {
        let at = loc.task(i, &[Seg::Key("env"), Seg::Key(key)]);
        check_template(value, &format!("task `{id}` env.{key}"), at, errors);
    }
}

/// The fields each data task kind needs; any other kind-specific field is an error (it would do nothing).
fn kind_fields(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "ingest" => Some(&["source", "outputs"]),
        "quality" => Some(&["inputs", "checks"]),
        "transform" => Some(&["inputs", "outputs", "steps"]),
        "sql" => Some(&["connection", "sql"]),
        "train" => Some(&["inputs", "model"]),
        "deploy" => Some(&["deploy"]),
        "score" => Some(&["inputs", "outputs", "score"]),
        "monitor" => Some(&["inputs", "monitor"]),
        PYTHON_KIND => Some(&["callable"]),
        SENSOR_KIND => Some(&["sensor"]),
        LATEST_ONLY_KIND => Some(&[]),
        _ => None,
    }
}

/// The fields a kind may set besides those it needs.
fn optional_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "ingest" => &["watermark"],
        PYTHON_KIND => &PYTHON_OPTIONAL,
        SENSOR_KIND => &SENSOR_OPTIONAL,
        _ => &[],
    }
}

/// What a `command` task reads of the [`KIND_SPECIFIC`] fields.
const COMMAND_FIELDS: [&str; 6] = ["command", "script", "cwd", "inputs", "outputs", "registers"];

/// What a `python` task may set besides `callable`: like a command, it runs in a working directory and may declare
/// assets for lineage.
const PYTHON_OPTIONAL: [&str; 8] = [
    "op_kwargs",
    "interpreter",
    "requirements",
    "system_site_packages",
    "multiple_outputs",
    "cwd",
    "inputs",
    "outputs",
];

/// What a `sensor` task may set besides `sensor`: Airflow's sensor arguments.
const SENSOR_OPTIONAL: [&str; 6] = ["mode", "poke_interval", "timeout", "soft_fail", "exponential_backoff", "max_wait"];

/// Fields that only some kinds read.
const KIND_SPECIFIC: [&str; 30] = [
    "command",
    "script",
    "cwd",
    "inputs",
    "outputs",
    "source",
    "watermark",
    "checks",
    "steps",
    "connection",
    "sql",
    "model",
    "deploy",
    "score",
    "monitor",
    "registers",
    "skip_on_exit_code",
    "callable",
    "op_kwargs",
    "interpreter",
    "requirements",
    "system_site_packages",
    "multiple_outputs",
    "sensor",
    "mode",
    "poke_interval",
    "timeout",
    "soft_fail",
    "exponential_backoff",
    "max_wait",
];

fn check_data_task(i: usize, task: &TaskSpec, loc: &Locator<'_>, errors: &mut Errors<'_>) {
    let id = &task.id;
    let Some(needed) = kind_fields(&task.kind) else {
        if !loc.task_dropped_like(i, &["kind"]) {
            errors.push(
                loc.task(i, &[Seg::Key("kind")]),
                format!(
                    "task `{id}`: unknown kind `{}`{} (expected one of {})",
                    task.kind,
                    suggest::hint(&task.kind, TASK_KINDS),
                    TASK_KINDS.join(", ")
                ),
            );
        }
        return;
    };
    let kind = &task.kind;
    for field in needed.iter().filter(|f| !field_set(task, f) && !loc.task_dropped_like(i, &[**f])) {
        errors.push(loc.task(i, &[Seg::Key("id")]), format!("task `{id}` of kind {kind} needs `{field}`"));
    }
    let allowed = |f: &str| needed.contains(&f) || optional_fields(kind).contains(&f);
    let unused: Vec<&str> = KIND_SPECIFIC.into_iter().filter(|f| !allowed(f)).collect();
    check_fields_absent(i, task, &unused, loc, errors);
    if kind == "transform" && task.inputs.len() > 1 {
        errors.push(
            loc.task(i, &[Seg::Key("inputs")]),
            format!("task `{id}`: a transform reads exactly one input asset, got {}", task.inputs.len()),
        );
    }
    for (field, uris) in [("inputs", &task.inputs), ("outputs", &task.outputs)] {
        for (j, uri) in uris.iter().enumerate() {
            if let Err(reason) = check_asset_uri(uri) {
                errors.push(
                    loc.task(i, &[Seg::Key(field), Seg::Index(j)]),
                    format!("task `{id}`: invalid asset URI {uri:?}: {reason}"),
                );
            }
        }
    }
    steps::check_steps(i, task, loc, errors);
    if kind == PYTHON_KIND {
        check_python(i, task, loc, errors);
    }
    if let Some(op) = task.op_spec() {
        if let crate::ops_spec::OpSpec::Ingest(ingest) = &op
            && let Err(message) = ingest.source.check_location()
        {
            errors.push(loc.task(i, &[Seg::Key("source")]), format!("task `{id}`: {message}"));
        }
        let (field, problems) = match &op {
            crate::ops_spec::OpSpec::Train(train) => ("model", train.problems()),
            crate::ops_spec::OpSpec::Deploy(deploy) => ("deploy", deploy.problems()),
            crate::ops_spec::OpSpec::Score(score) => ("score", one_input(score.inputs.len(), score.score.problems())),
            crate::ops_spec::OpSpec::Monitor(monitor) => {
                ("monitor", one_input(monitor.inputs.len(), monitor.monitor.problems()))
            }
            crate::ops_spec::OpSpec::Sensor(sensor) => ("sensor", sensor.problems()),
            _ => ("id", Vec::new()),
        };
        for message in problems {
            errors.push(loc.task(i, &[Seg::Key(field)]), format!("task `{id}`: {message}"));
        }
        let at = loc.task(i, &[Seg::Key("id")]);
        for text in crate::template::json_strings(&serde_json::to_value(&op).unwrap_or_default()) {
            check_template(text, &format!("task `{id}` configuration"), at, errors);
        }
    }
}

/// A python task's callable, interpreter, requirements and the templates of its `op_kwargs`.
fn check_python(i: usize, task: &TaskSpec, loc: &Locator<'_>, errors: &mut Errors<'_>) {
    let id = &task.id;
    if let Some(callable) = &task.callable
        && let Err(message) = crate::python::check_callable(callable)
    {
        errors.push(loc.task(i, &[Seg::Key("callable")]), format!("task `{id}`: {message}"));
    }
    if task.interpreter.as_deref().is_some_and(|p| p.trim().is_empty()) {
        errors.push(loc.task(i, &[Seg::Key("interpreter")]), format!("task `{id}`: `interpreter` must not be empty"));
    }
    for (j, line) in task.requirements.iter().enumerate() {
        if line.trim().is_empty() {
            let at = loc.task(i, &[Seg::Key("requirements"), Seg::Index(j)]);
            errors.push(at, format!("task `{id}`: a requirement must not be empty"));
        }
    }
    if task.system_site_packages.is_some() && task.requirements.is_empty() {
        errors.push(
            loc.task_key(i, "system_site_packages"),
            format!(
                "task `{id}`: `system_site_packages` is read only with `requirements` (it shapes their virtualenv)"
            ),
        );
    }
    for (key, value) in &task.op_kwargs {
        let at = loc.task(i, &[Seg::Key("op_kwargs"), Seg::Key(key)]);
        for text in crate::template::json_strings(value) {
            check_template(text, &format!("task `{id}` op_kwargs.{key}"), at, errors);
        }
    }
}

/// A command task's `registers:` block.
fn check_registers(i: usize, task: &TaskSpec, loc: &Locator<'_>, errors: &mut Errors<'_>) {
    if let Some(crate::ops_spec::OpSpec::Command(command)) = task.op_spec() {
        for message in command.problems() {
            errors.push(loc.task(i, &[Seg::Key("registers")]), format!("task `{}`: {message}", task.id));
        }
    }
}

/// `problems`, and one more if a task that reads exactly one input asset has `inputs` other ones.
fn one_input(inputs: usize, mut problems: Vec<String>) -> Vec<String> {
    if inputs != 1 {
        problems.insert(0, format!("this kind reads exactly one input asset, got {inputs}"));
    }
    problems
}

fn check_asset_uri(uri: &str) -> Result<(), &'static str> {
    if is_template(uri) {
        return Err(
            "asset URIs are fixed names, not templates: lineage and data-aware scheduling match them as written",
        );
    }
    crate::ops_spec::lake_path(uri).map(drop)
}

fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Whether the task sets one of the [`KIND_SPECIFIC`] fields (an empty list counts as unset).
fn field_set(task: &TaskSpec, field: &str) -> bool {
    match field {
        "inputs" => !task.inputs.is_empty(),
        "outputs" => !task.outputs.is_empty(),
        "source" => task.source.is_some(),
        "checks" => task.checks.as_ref().is_some_and(|c| !c.is_empty()),
        "steps" => task.steps.is_some(),
        "watermark" => task.watermark.is_some(),
        "connection" => task.connection.is_some(),
        "sql" => task.sql.as_ref().is_some_and(|s| !s.trim().is_empty()),
        "model" => task.model.is_some(),
        "deploy" => task.deploy.is_some(),
        "score" => task.score.is_some(),
        "monitor" => task.monitor.is_some(),
        "command" => task.command.is_some(),
        "script" => task.script.is_some(),
        "cwd" => task.cwd.is_some(),
        "registers" => task.registers.is_some(),
        "skip_on_exit_code" => task.skip_on_exit_code.is_some(),
        "callable" => task.callable.is_some(),
        "op_kwargs" => !task.op_kwargs.is_empty(),
        "interpreter" => task.interpreter.is_some(),
        "requirements" => !task.requirements.is_empty(),
        "system_site_packages" => task.system_site_packages.is_some(),
        "multiple_outputs" => task.multiple_outputs.is_some(),
        "sensor" => task.sensor.is_some(),
        "mode" => task.mode.is_some(),
        "poke_interval" => task.poke_interval.is_some(),
        "timeout" => task.timeout.is_some(),
        "soft_fail" => task.soft_fail.is_some(),
        "exponential_backoff" => task.exponential_backoff.is_some(),
        "max_wait" => task.max_wait.is_some(),
        _ => false,
    }
}

/// Reports each of `fields` that the task sets although its kind does not read it.
fn check_fields_absent(i: usize, task: &TaskSpec, fields: &[&str], loc: &Locator<'_>, errors: &mut Errors<'_>) {
    for field in fields.iter().filter(|f| field_set(task, f)) {
        errors.push(
            loc.task_key(i, field),
            format!("task `{}`: `{field}` is not read by tasks of kind {}", task.id, task.kind),
        );
    }
}

fn check_template(source: &str, what: &str, at: Loc, errors: &mut Errors<'_>) {
    if let Err(message) = crate::template::check_syntax(source) {
        errors.push(at, format!("template error in {what}: {message}"));
    }
}

/// The task graph, edges from upstream to downstream. Reports cycles, one error per strongly connected component.
fn build_graph(
    spec: &DagSpec,
    loc: &Locator<'_>,
    errors: &mut Errors<'_>,
) -> (DiGraph<String, ()>, HashMap<String, NodeIndex>) {
    let mut graph = DiGraph::new();
    let mut index = HashMap::new();
    for task in &spec.tasks {
        index.entry(task.id.clone()).or_insert_with(|| graph.add_node(task.id.clone()));
    }
    for task in &spec.tasks {
        let Some(&down) = index.get(&task.id) else {
            continue;
        };
        // Expanding over a task's output makes it upstream, as in Airflow.
        for dep in task.depends_on.iter().map(String::as_str).chain(task.map_upstreams()) {
            if let Some(&up) = index.get(dep)
                && !graph.contains_edge(up, down)
            {
                graph.add_edge(up, down, ());
            }
        }
    }
    for component in petgraph::algo::tarjan_scc(&graph) {
        let first = component.iter().copied().min_by_key(|n| n.index()).unwrap_or(NodeIndex::new(0));
        let is_cycle = component.len() > 1 || graph.contains_edge(first, first);
        if !is_cycle {
            continue;
        }
        let cycle = cycle_through(&graph, &component, first);
        let names: Vec<&str> = cycle.iter().map(|n| graph[*n].as_str()).collect();
        let task_index = spec.tasks.iter().position(|t| t.id == graph[first]).unwrap_or(0);
        errors.push(loc.task(task_index, &[Seg::Key("depends_on")]), format!("cycle: {}", names.join(" -> ")));
    }
    (graph, index)
}

/// A shortest cycle through `start` within its strongly connected component, as a node list ending at `start` again.
fn cycle_through(graph: &DiGraph<String, ()>, component: &[NodeIndex], start: NodeIndex) -> Vec<NodeIndex> {
    let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for next in graph.neighbors(n) {
            if next == start {
                let mut path = vec![start, n];
                let mut cur = n;
                while let Some(&up) = parent.get(&cur) {
                    path.push(up);
                    cur = up;
                }
                path.reverse();
                return path;
            }
            if component.contains(&next) && !parent.contains_key(&next) {
                parent.insert(next, n);
                queue.push_back(next);
            }
        }
    }
    vec![start, start]
}
