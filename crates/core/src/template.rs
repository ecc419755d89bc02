//! Rendering task commands with Jinja templates, and resolving run params.
//!
//! Commands, scripts, `env` values, `cwd`, a python task's `op_kwargs` and every text of a data task's configuration
//! are minijinja templates rendered just before a try is handed to a worker. The context uses Airflow's names
//! (`ds`, `ts`, `logical_date`, `data_interval_start`, `dag_run`, `ti`, `params`, `var.value.x`, ...) plus
//! `outputs.<task_id>`, the JSON outputs of upstream tasks, and `xcom.<task_id>.<key>`, the values they pushed
//! under other keys; Airflow's `ti.xcom_pull(task_ids=…, key=…)` reads both (see [`crate::xcom`]). Undefined names
//! are errors, not empty strings, so a typo fails the try with a message instead of running a wrong command.
//!
//! `var` and `conn` (connections, as Airflow's `{{ conn.my_db.password }}`) record what a rendering reads from
//! them ([`Reads`]): those values are masked in what is shown of the try (see [`crate::masking`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::connection::Connection;
use crate::dag::Dag;
use crate::masking::{Confidential, SensitiveKeys};
use crate::ops_spec::OpSpec;
use crate::spec::ParamSpec;

pub(crate) mod chain;

/// Everything a template can refer to for one task try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateContext {
    pub dag_id: String,
    pub task_id: String,
    pub run_id: String,
    /// None for runs without a data interval (manual runs of unscheduled DAGs, as in Airflow 3).
    pub logical_date: Option<DateTime<Utc>>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub conf: serde_json::Value,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub try_number: u32,
    pub variables: BTreeMap<String, String>,
    /// The connections templates may read as `conn.<conn_id>`; never serialized, as they hold passwords.
    #[serde(skip)]
    pub connections: BTreeMap<String, Connection>,
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// The values upstream tasks pushed under keys other than `return_value`: task id → key → value (a mapped
    /// task's as one list in `map_index` order, as its outputs).
    #[serde(default)]
    pub xcom: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// The instance of a mapped task (0, 1, ...); -1 for a task that is not mapped, as in Airflow.
    pub map_index: i64,
    /// A mapped task's arguments for this instance (`partial` and one element of each list), as `args`.
    pub args: BTreeMap<String, serde_json::Value>,
}

/// The variables (by key) and connections (by id) a rendering read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    pub variables: BTreeSet<String>,
    pub connections: BTreeSet<String>,
}

/// A rendering, and what it read, also when it failed (its error message may quote what it read).
#[derive(Debug)]
pub struct Rendering {
    pub command: Result<RenderedCommand, TemplateError>,
    pub reads: Reads,
}

/// A task ready to run: a process (`argv`), or a built-in data task (`op`, with an empty `argv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedCommand {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<OpSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("task {0:?} is not in the DAG")]
    UnknownTask(String),
    #[error("task {0:?} has neither `command` nor `script` to run")]
    NoCommand(String),
    #[error("cannot render {field} of task {task_id:?}: {message}")]
    Render { task_id: String, field: String, message: String },
}

/// The steps one template may take. Templates render while a worker waits for its task, so a loop that would
/// run for hours (`range` allows 100,000 elements, nested loops their product) must stop with an error instead.
/// Far above what a real template needs: a loop over 10,000 upstream outputs takes about 50,000 steps.
pub const RENDER_STEPS: u64 = 20_000_000;

/// The longest text one template may render, for the same reason as [`RENDER_STEPS`]: memory instead of time.
pub const RENDER_BYTES: usize = 16 << 20;

/// The template environment: strict about undefined names; no HTML escaping (these are shell arguments); limited
/// to [`RENDER_STEPS`].
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_fuel(Some(RENDER_STEPS));
    env
}

/// Renders `source`, refusing output longer than [`RENDER_BYTES`].
pub(crate) fn render_limited(env: &Environment<'_>, source: &str, context: &Value) -> Result<String, minijinja::Error> {
    let mut out = LimitedText(Vec::new());
    env.template_from_str(source)?.render_captured_to(context, &mut out)?;
    // minijinja writes whole `str`s, so the text is UTF-8.
    Ok(String::from_utf8(out.0).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// A buffer that refuses to grow past [`RENDER_BYTES`].
struct LimitedText(Vec<u8>);

impl std::io::Write for LimitedText {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > RENDER_BYTES {
            return Err(std::io::Error::new(std::io::ErrorKind::OutOfMemory, "rendered text too long"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Describe a minijinja error in one line, with the template line when the template has several.
/// A rendering error, naming the expression at fault (e.g. `var.value.missing`): what a user needs to fix it.
fn describe_render(e: &minijinja::Error, source: &str) -> String {
    let what = match e.kind() {
        minijinja::ErrorKind::OutOfFuel => {
            format!("the template took more than {RENDER_STEPS} steps to render (a loop too long?)")
        }
        // The only writer that fails is [`LimitedText`].
        minijinja::ErrorKind::WriteFailure => {
            format!("the rendered text is longer than {} MiB", RENDER_BYTES >> 20)
        }
        _ => describe(e, source),
    };
    match e.range().and_then(|range| source.get(range)) {
        Some(expr) => format!("{what} in `{expr}`"),
        None => what,
    }
}

fn describe(e: &minijinja::Error, source: &str) -> String {
    let what = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    match e.line() {
        Some(line) if source.contains('\n') => format!("{what} (template line {line})"),
        _ => what,
    }
}

/// Compile a template to check its syntax (at load time). Every template a task renders passes here first, as
/// every [`Dag`] is validated, so the guard of [`chain`] runs before minijinja parses any of them.
pub(crate) fn check_syntax(source: &str) -> Result<(), String> {
    chain::check(source)?;
    environment().template_from_str(source).map(|_| ()).map_err(|e| describe(&e, source))
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

impl TemplateContext {
    /// The template variables, as Airflow names them.
    pub fn to_value(&self) -> serde_json::Value {
        let date = self.logical_date.unwrap_or(self.run_after);
        let logical_date = self.logical_date.map(iso);
        let var_json: serde_json::Map<String, serde_json::Value> = self
            .variables
            .iter()
            // A variable that is not JSON is simply absent from var.json; reading it there is an undefined error.
            .filter_map(|(k, v)| serde_json::from_str(v).ok().map(|v| (k.clone(), v)))
            .collect();
        let ti = json!({
            "try_number": self.try_number,
            "task_id": self.task_id,
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "map_index": self.map_index,
        });
        json!({
            "ds": date.format("%Y-%m-%d").to_string(),
            "ds_nodash": date.format("%Y%m%d").to_string(),
            "ts": iso(date),
            "ts_nodash": date.format("%Y%m%dT%H%M%S").to_string(),
            "logical_date": logical_date,
            "data_interval_start": self.data_interval_start.map(iso),
            "data_interval_end": self.data_interval_end.map(iso),
            "run_after": iso(self.run_after),
            "run_id": self.run_id,
            "dag_run": {
                "conf": self.conf,
                "run_id": self.run_id,
                "dag_id": self.dag_id,
                "logical_date": logical_date,
                "run_after": iso(self.run_after),
                "data_interval_start": self.data_interval_start.map(iso),
                "data_interval_end": self.data_interval_end.map(iso),
            },
            "params": self.params,
            "ti": ti,
            "task_instance": ti,
            "task": { "task_id": self.task_id },
            "dag": { "dag_id": self.dag_id },
            "var": { "value": self.variables, "json": var_json },
            "outputs": self.outputs,
            "xcom": self.xcom,
            "args": self.args,
        })
    }

    /// The template context, with `var` and `conn` noting each variable and connection read into `variables`
    /// and `connections`.
    fn recording_context(
        &self,
        variables: &Arc<Mutex<BTreeSet<String>>>,
        connections: &Arc<Mutex<BTreeSet<String>>>,
    ) -> Value {
        let mut context: BTreeMap<String, Value> = match self.to_value() {
            serde_json::Value::Object(map) => map.into_iter().map(|(k, v)| (k, Value::from_serialize(v))).collect(),
            _ => BTreeMap::new(),
        };
        let values = self.variables.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        let json = self
            .variables
            .iter()
            .filter_map(|(k, v)| serde_json::from_str::<serde_json::Value>(v).ok().map(|v| (k.clone(), v)))
            .map(|(k, v)| (k, Value::from_serialize(v)))
            .collect();
        let var = BTreeMap::from([
            ("value".to_owned(), Recorded::value(values, variables)),
            ("json".to_owned(), Recorded::value(json, variables)),
        ]);
        context.insert("var".to_owned(), Value::from(var));
        let ti = TaskInstance::value(self, &context);
        context.insert("ti".to_owned(), ti.clone());
        context.insert("task_instance".to_owned(), ti);
        let conns = self.connections.iter().map(|(id, conn)| (id.clone(), connection_value(conn))).collect();
        context.insert("conn".to_owned(), Recorded::value(conns, connections));
        Value::from(context)
    }

    /// What of the values a rendering read must be masked: see [`Confidential`].
    pub fn confidential(&self, reads: &Reads, keys: &SensitiveKeys) -> Confidential {
        let mut confidential = Confidential::default();
        for (key, text) in reads.variables.iter().filter_map(|k| self.variables.get_key_value(k)) {
            confidential.add_variable(key, text, keys);
        }
        for conn in reads.connections.iter().filter_map(|id| self.connections.get(id)) {
            confidential.add_connection(conn, keys);
        }
        confidential
    }

    /// `SLUICE_*` environment variables describing the try, for the child process (as Airflow's `AIRFLOW_CTX_*`).
    pub fn sluice_env(&self) -> BTreeMap<String, String> {
        let date = self.logical_date.unwrap_or(self.run_after);
        let mut env = BTreeMap::from([
            ("SLUICE_DAG_ID".to_owned(), self.dag_id.clone()),
            ("SLUICE_TASK_ID".to_owned(), self.task_id.clone()),
            ("SLUICE_RUN_ID".to_owned(), self.run_id.clone()),
            ("SLUICE_TRY_NUMBER".to_owned(), self.try_number.to_string()),
            ("SLUICE_DS".to_owned(), date.format("%Y-%m-%d").to_string()),
            ("SLUICE_TS".to_owned(), iso(date)),
        ]);
        if let Some(logical_date) = self.logical_date {
            env.insert("SLUICE_LOGICAL_DATE".to_owned(), iso(logical_date));
        }
        if self.map_index >= 0 {
            env.insert("SLUICE_MAP_INDEX".to_owned(), self.map_index.to_string());
        }
        env
    }
}

/// A connection as templates see it: Airflow's fields, with `extra` as text and `extra_dejson` as an object.
fn connection_value(conn: &Connection) -> Value {
    let extra = conn.extra.clone().unwrap_or_default();
    Value::from_serialize(json!({
        "conn_type": conn.conn_type,
        "host": conn.host,
        "port": conn.port,
        "login": conn.login,
        "password": conn.password,
        "schema": conn.schema,
        "extra": serde_json::Value::Object(extra.clone()).to_string(),
        "extra_dejson": extra,
    }))
}

/// A map of the template context that notes the names read from it.
#[derive(Debug)]
struct Recorded {
    entries: BTreeMap<String, Value>,
    read: Arc<Mutex<BTreeSet<String>>>,
}

impl Recorded {
    fn value(entries: BTreeMap<String, Value>, read: &Arc<Mutex<BTreeSet<String>>>) -> Value {
        Value::from_object(Recorded { entries, read: Arc::clone(read) })
    }
}

impl Object for Recorded {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        let value = self.entries.get(name)?.clone();
        self.read.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned());
        Some(value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.entries.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

/// `ti` (and `task_instance`) of the template context: the try's fields, and Airflow's `xcom_pull`.
#[derive(Debug)]
struct TaskInstance {
    fields: Value,
    task_id: String,
    dag_id: String,
    run_id: String,
    outputs: Value,
    xcom: Value,
}

impl TaskInstance {
    /// Built from the context's own values (shared, not copied): the outputs are read once per rendering.
    fn value(ctx: &TemplateContext, context: &BTreeMap<String, Value>) -> Value {
        let get = |name: &str| context.get(name).cloned().unwrap_or_default();
        Value::from_object(TaskInstance {
            fields: get("ti"),
            task_id: ctx.task_id.clone(),
            dag_id: ctx.dag_id.clone(),
            run_id: ctx.run_id.clone(),
            outputs: get("outputs"),
            xcom: get("xcom"),
        })
    }

    /// Airflow's `xcom_pull(task_ids=None, key='return_value', default=None)` over this run: one task's value for
    /// one task id (this task's without one), a list for a list of them, `default` where there is none.
    fn xcom_pull(&self, args: &[Value]) -> Result<Value, minijinja::Error> {
        use minijinja::value::{Kwargs, from_args};
        let (task_ids, kwargs): (Option<Value>, Kwargs) = from_args(args)?;
        let task_ids = match task_ids {
            Some(ids) => Some(ids),
            None => kwargs.get::<Option<Value>>("task_ids")?,
        };
        let key = kwargs.get::<Option<String>>("key")?.unwrap_or_else(|| crate::xcom::RETURN_VALUE.to_owned());
        let default = kwargs.get::<Option<Value>>("default")?.unwrap_or(Value::from(()));
        for (name, own) in [("dag_id", &self.dag_id), ("run_id", &self.run_id)] {
            if kwargs.get::<Option<String>>(name)?.is_some_and(|given| given != *own) {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("xcom_pull reads the outputs of this run only, not of another {name}"),
                ));
            }
        }
        kwargs.assert_all_used()?;
        let pull = |task_id: &str| {
            let found = if key == crate::xcom::RETURN_VALUE {
                self.outputs.get_attr(task_id)
            } else {
                self.xcom.get_attr(task_id).and_then(|keys| keys.get_attr(&key))
            };
            found.ok().filter(|v| !v.is_undefined()).unwrap_or_else(|| default.clone())
        };
        match task_ids {
            None => Ok(pull(&self.task_id)),
            Some(ids) if ids.as_str().is_some() => Ok(pull(ids.as_str().unwrap_or_default())),
            Some(ids) => {
                Ok(Value::from(ids.try_iter()?.map(|id| pull(id.as_str().unwrap_or_default())).collect::<Vec<_>>()))
            }
        }
    }
}

impl Object for TaskInstance {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.fields.get_item(key).ok().filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.fields.try_iter() {
            Ok(keys) => Enumerator::Values(keys.collect()),
            Err(_) => Enumerator::Empty,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &minijinja::State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, minijinja::Error> {
        match method {
            "xcom_pull" => self.xcom_pull(args),
            _ => Err(minijinja::Error::from(minijinja::ErrorKind::UnknownMethod)),
        }
    }
}

/// Render a command task: `command` argv elements, or `script` as ["bash", "-c", script]; env = resolved env
/// (defaults + task) rendered; cwd rendered.
pub fn render_command(dag: &Dag, task_id: &str, ctx: &TemplateContext) -> Result<RenderedCommand, TemplateError> {
    render_reading(dag, task_id, ctx).command
}

/// [`render_command`], also telling which variables and connections the templates read.
pub fn render_reading(dag: &Dag, task_id: &str, ctx: &TemplateContext) -> Rendering {
    let variables = Arc::new(Mutex::new(BTreeSet::new()));
    let connections = Arc::new(Mutex::new(BTreeSet::new()));
    let context = ctx.recording_context(&variables, &connections);
    let command = render_in(dag, task_id, &context);
    let taken =
        |read: Arc<Mutex<BTreeSet<String>>>| std::mem::take(&mut *read.lock().unwrap_or_else(PoisonError::into_inner));
    Rendering { command, reads: Reads { variables: taken(variables), connections: taken(connections) } }
}

fn render_in(dag: &Dag, task_id: &str, context: &Value) -> Result<RenderedCommand, TemplateError> {
    let task = dag.task(task_id).ok_or_else(|| TemplateError::UnknownTask(task_id.to_owned()))?;
    let resolved = task.resolved(&dag.spec.default_args);
    let env = environment();
    let render = |field: String, source: &str| {
        render_limited(&env, source, context).map_err(|e| TemplateError::Render {
            task_id: task_id.to_owned(),
            field,
            message: describe_render(&e, source),
        })
    };
    let argv = match (&task.command, &task.script) {
        (Some(command), _) => command
            .iter()
            .enumerate()
            .map(|(i, arg)| render(format!("command[{i}]"), arg))
            .collect::<Result<Vec<_>, _>>()?,
        (None, Some(script)) => vec!["bash".to_owned(), "-c".to_owned(), render("script".to_owned(), script)?],
        (None, None) if task.kind == crate::python::PYTHON_KIND => {
            // A mapped instance's arguments are keyword arguments too, as `expand` passes them to a TaskFlow
            // function; `op_kwargs` of the same name win.
            let mut kwargs = match context.get_attr("args").ok().map(|args| serde_json::to_value(&args)) {
                Some(Ok(serde_json::Value::Object(args))) => args,
                _ => serde_json::Map::new(),
            };
            for (k, v) in &task.op_kwargs {
                kwargs.insert(k.clone(), render_strings(v.clone(), &|text| render(format!("op_kwargs.{k}"), text))?);
            }
            crate::python::argv(task, kwargs)
        }
        (None, None) if task.kind != crate::spec::DEFAULT_TASK_KIND => Vec::new(),
        (None, None) => return Err(TemplateError::NoCommand(task_id.to_owned())),
    };
    let mut op = match task.op_spec() {
        Some(op) => {
            let value = serde_json::to_value(&op).unwrap_or_default();
            let rendered = render_strings(value, &|text| render("configuration".to_owned(), text))?;
            let op = serde_json::from_value(rendered).map_err(|e| TemplateError::Render {
                task_id: task_id.to_owned(),
                field: "configuration".to_owned(),
                message: e.to_string(),
            })?;
            Some(op)
        }
        None => None,
    };
    // A command that registers a model runs inside `sluice run-op`, which needs the command itself.
    let mut argv = argv;
    if let Some(OpSpec::Command(command)) = &mut op {
        command.argv = std::mem::take(&mut argv);
    }
    let env = resolved
        .env
        .iter()
        .map(|(k, v)| Ok((k.clone(), render(format!("env.{k}"), v)?)))
        .collect::<Result<BTreeMap<_, _>, TemplateError>>()?;
    let cwd = task.cwd.as_deref().map(|cwd| render("cwd".to_owned(), cwd)).transpose()?;
    Ok(RenderedCommand { argv, env, cwd, op })
}

/// `value` with every string rendered by `render`.
fn render_strings(
    value: serde_json::Value,
    render: &impl Fn(&str) -> Result<String, TemplateError>,
) -> Result<serde_json::Value, TemplateError> {
    use serde_json::Value as J;
    Ok(match value {
        J::String(text) => J::String(render(&text)?),
        J::Array(items) => J::Array(items.into_iter().map(|v| render_strings(v, render)).collect::<Result<_, _>>()?),
        J::Object(map) => {
            J::Object(map.into_iter().map(|(k, v)| Ok((k, render_strings(v, render)?))).collect::<Result<_, _>>()?)
        }
        other => other,
    })
}

/// Every string inside a JSON value, for checking the templates of a data task's configuration.
pub(crate) fn json_strings(value: &serde_json::Value) -> Vec<&str> {
    match value {
        serde_json::Value::String(text) => vec![text.as_str()],
        serde_json::Value::Array(items) => items.iter().flat_map(json_strings).collect(),
        serde_json::Value::Object(map) => map.values().flat_map(json_strings).collect(),
        _ => Vec::new(),
    }
}

/// Resolve params for a run: spec defaults overridden by keys of `conf` that name params, each checked against its
/// param's JSON Schema; a param without default and not in conf is an error. Returns the params map.
pub fn resolve_params(
    spec: &BTreeMap<String, ParamSpec>,
    conf: &serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let given = match conf {
        serde_json::Value::Null => None,
        serde_json::Value::Object(map) => Some(map),
        other => return Err(format!("conf must be a JSON object, not {other}")),
    };
    let mut params = serde_json::Map::new();
    let mut errors = Vec::new();
    for (name, param) in spec {
        let value = given.and_then(|g| g.get(name)).or(param.default.as_ref());
        match value {
            None => errors.push(format!("param `{name}` has no default and is not given in conf")),
            Some(value) => match param.check(name, value) {
                Ok(()) => {
                    params.insert(name.clone(), value.clone());
                }
                Err(e) => errors.push(e),
            },
        }
    }
    if errors.is_empty() { Ok(params) } else { Err(errors.join("; ")) }
}

#[cfg(test)]
mod tests;
