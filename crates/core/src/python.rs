//! `kind: python` tasks: a function of the DAG folder, called with the run's context under Airflow's names, whose
//! return value is the task's output — Airflow's `PythonOperator` and TaskFlow `@task`, and with `requirements`
//! its `PythonVirtualenvOperator`.
//!
//! The server renders a python task into an ordinary process, so that workers supervise it like any command:
//! `<interpreter> -u -c <bootstrap> <call>`. `<call>` is the JSON of what to call (the callable, the rendered
//! `op_kwargs`, the requirements); it is stored with the try as its rendered command, masked like any other. The
//! bootstrap executes the runner (`python/runner.py`), which comes with the lease in `$SLUICE_PYTHON_RUNNER`,
//! beside the run's context in `$SLUICE_PYTHON_CONTEXT` ([`lease_env`]). Neither is stored: the runner is the same
//! for every try, and the context repeats what the run already keeps (its dates, params and outputs).
//!
//! Variables and connections are not in the context: a function reads them through `op_kwargs` templates, whose
//! reads are recorded and masked like those of a command's templates.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::dag::Dag;
use crate::spec::TaskSpec;
use crate::template::TemplateContext;

pub const PYTHON_KIND: &str = "python";
pub const DEFAULT_INTERPRETER: &str = "python3";
/// The environment variable carrying the runner's source.
pub const RUNNER_ENV: &str = "SLUICE_PYTHON_RUNNER";
/// The environment variable carrying the run's context, as JSON.
pub const CONTEXT_ENV: &str = "SLUICE_PYTHON_CONTEXT";

const RUNNER: &str = include_str!("python/runner.py");
const BOOTSTRAP: &str =
    "import os; exec(compile(os.environ['SLUICE_PYTHON_RUNNER'], '<sluice python runner>', 'exec'))";

/// The names of the template context a function receives (see [`TemplateContext::to_value`]); never `var`.
const CONTEXT_NAMES: [&str; 13] = [
    "ds",
    "ds_nodash",
    "ts",
    "ts_nodash",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "run_after",
    "run_id",
    "dag_run",
    "params",
    "outputs",
    "xcom",
];

/// Checks the form `module:function`, where both sides are dotted Python names (`pkg.mod:Class.method`).
pub(crate) fn check_callable(callable: &str) -> Result<(), String> {
    let dotted = |text: &str| !text.is_empty() && text.split('.').all(is_identifier);
    match callable.split_once(':') {
        Some((module, function)) if dotted(module) && dotted(function) => Ok(()),
        _ => {
            let hint = match callable.rsplit_once('.') {
                Some((module, function)) if !callable.contains(':') && dotted(module) && dotted(function) => {
                    format!(", did you mean `{module}:{function}`?")
                }
                _ => String::new(),
            };
            Err(format!(
                "`callable` must be `module:function` (a module importable from the DAG folder, a function in it), \
                 got {callable:?}{hint}"
            ))
        }
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_') && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// The process of a try: the interpreter running the bootstrap, with the call as its one argument.
pub(crate) fn argv(task: &TaskSpec, op_kwargs: serde_json::Map<String, Value>) -> Vec<String> {
    let mut call = json!({
        "callable": task.callable,
        "op_kwargs": op_kwargs,
        "requirements": task.requirements,
        "system_site_packages": task.system_site_packages.unwrap_or(true),
    });
    if task.multiple_outputs == Some(true) {
        call["multiple_outputs"] = json!(true);
    }
    let interpreter = task.interpreter.clone().unwrap_or_else(|| DEFAULT_INTERPRETER.to_owned());
    vec![interpreter, "-u".to_owned(), "-c".to_owned(), BOOTSTRAP.to_owned(), call.to_string()]
}

/// What a try of a python task receives with its lease besides its rendered command: the runner, and the context
/// its function is called with. Empty for the other kinds.
pub fn lease_env(dag: &Dag, task_id: &str, ctx: &TemplateContext) -> BTreeMap<String, String> {
    if dag.task(task_id).is_none_or(|task| task.kind != PYTHON_KIND) {
        return BTreeMap::new();
    }
    let mut all = match ctx.to_value() {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let mut context: serde_json::Map<String, Value> =
        CONTEXT_NAMES.iter().filter_map(|name| all.remove_entry(*name)).collect();
    context.insert("dag_id".to_owned(), json!(ctx.dag_id));
    context.insert("task_id".to_owned(), json!(ctx.task_id));
    context.insert("try_number".to_owned(), json!(ctx.try_number));
    context.insert("map_index".to_owned(), json!(ctx.map_index));
    context.insert("upstream".to_owned(), json!(dag.upstream(task_id)));
    BTreeMap::from([
        (RUNNER_ENV.to_owned(), RUNNER.to_owned()),
        (CONTEXT_ENV.to_owned(), Value::Object(context).to_string()),
    ])
}

#[cfg(test)]
mod tests;
