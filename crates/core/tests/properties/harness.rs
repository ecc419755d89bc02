//! One input of each fuzz target, checked. The fuzz targets in `fuzz/` include this file, and the property tests
//! run the same checks on stable, so what a fuzzer finds and what CI replays is the same code.
//!
//! The property is that nothing panics: a bad DAG file or template comes back as an error value. A DAG that does
//! load is also used as the server uses it (stored as JSON and read back, ordered, scheduled, rendered), so that
//! a file the loader lets through cannot break the server further on.

use sluice_core::connection::Connection;
use sluice_core::spec::{DagSpec, TaskSpec};
use sluice_core::{Dag, TemplateContext, load_dag, render_command};

/// Parses `bytes` (as UTF-8, lossily) as a DAG file, and uses the DAG if it loads.
pub fn dag_file(bytes: &[u8]) {
    let source = String::from_utf8_lossy(bytes);
    match load_dag("fuzz.yaml", &source) {
        Ok(dag) => use_loaded(&dag),
        Err(errors) => assert!(!errors.is_empty(), "a file that does not load must say why"),
    }
}

/// Renders `bytes` (as UTF-8, lossily) as the command of a task, if it passes the syntax check of the loader.
pub fn template(bytes: &[u8]) {
    let mut task = TaskSpec::new("t");
    task.command = Some(vec![String::from_utf8_lossy(bytes).into_owned()]);
    match Dag::from_spec(DagSpec::new("fuzz", vec![task])) {
        // Ok or an error: either is an answer.
        Ok(dag) => {
            let _answer = render_command(&dag, "t", &context());
        }
        Err(errors) => assert!(!errors.is_empty(), "a template that does not load must say why"),
    }
}

/// What the server does with a DAG it has loaded: it keeps the spec as JSON (a DAG version) and reads it back for
/// every run, orders and weighs the tasks, asks the timetable for the next run, and renders each task.
fn use_loaded(dag: &Dag) {
    let stored = serde_json::to_value(&dag.spec).unwrap_or_else(|e| panic!("a loaded spec serialises: {e}"));
    let spec: DagSpec = serde_json::from_value(stored).unwrap_or_else(|e| panic!("a stored spec reads back: {e}"));
    if let Err(errors) = Dag::from_spec(spec) {
        panic!("a DAG that loads must load again from its stored JSON: {errors:?}");
    }
    let context = context();
    let now = context.run_after;
    if let Some(interval) = dag.timetable().next_interval(None, now) {
        let _following = dag.timetable().following(&interval);
    }
    let _manual = dag.timetable().infer_manual_data_interval(now);
    for task_id in dag.topological_order() {
        let _weight = dag.priority_weight_total(task_id);
        let _rendered = render_command(dag, task_id, &context);
    }
}

/// A try's template context with a value behind each kind of name: dates, params, conf, variables (one of them
/// JSON), a connection, an upstream output and a pushed value, mapped arguments.
pub fn context() -> TemplateContext {
    let mut context: TemplateContext = serde_json::from_value(serde_json::json!({
        "dag_id": "etl",
        "task_id": "load",
        "run_id": "scheduled__2026-01-01T00:00:00+00:00",
        "logical_date": "2026-01-01T00:00:00Z",
        "data_interval_start": "2026-01-01T00:00:00Z",
        "data_interval_end": "2026-01-02T00:00:00Z",
        "run_after": "2026-01-02T00:00:05Z",
        "conf": {"full": true, "items": [1, 2, 3]},
        "params": {"n": 3, "name": "x", "nested": {"list": [1, "two", null]}},
        "try_number": 2,
        "variables": {"bucket": "s3://b", "cfg": "{\"depth\": 4}"},
        "outputs": {"extract": {"rows": 42}, "count": [1, 2, 3]},
        "xcom": {"extract": {"path": "/tmp/x"}},
        "map_index": 1,
        "args": {"path": "/data/part_1.txt"},
    }))
    .unwrap_or_else(|e| panic!("the context is valid JSON for TemplateContext: {e}"));
    let db = Connection::parse("postgres://user:pg-secret@db.internal:5432/sales?sslmode=require")
        .unwrap_or_else(|e| panic!("the connection URI parses: {e}"));
    context.connections.insert("db".to_owned(), db);
    context
}
