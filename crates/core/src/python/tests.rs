use super::*;
use crate::load_dag;
use crate::template::{RenderedCommand, TemplateError, render_command, render_reading};

const DAG: &str = r#"dag_id: etl
tasks:
  - id: extract
    kind: python
    callable: etl.steps:extract
  - id: load
    kind: python
    depends_on: [extract]
    callable: etl.steps:Loader.run
    interpreter: /opt/py/bin/python
    requirements: [six==1.16.0]
    system_site_packages: false
    op_kwargs:
      day: "{{ ds }}"
      limit: 10
      nested: {bucket: "{{ var.value.bucket }}", tags: ["{{ params.name }}", 2]}
  - id: report
    depends_on: [load]
    command: [echo, "{{ outputs.load.total }}"]
"#;

fn context() -> TemplateContext {
    let logical_date = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").map(|t| t.to_utc()).ok();
    TemplateContext {
        dag_id: "etl".into(),
        task_id: "load".into(),
        run_id: "manual__1".into(),
        logical_date,
        data_interval_start: logical_date,
        data_interval_end: logical_date,
        run_after: logical_date.unwrap_or_default(),
        conf: json!({"full": true}),
        params: json!({"name": "x"}).as_object().cloned().unwrap_or_default(),
        try_number: 2,
        variables: BTreeMap::from([("bucket".into(), "s3://b".into()), ("api_key".into(), "k-secret-123".into())]),
        connections: BTreeMap::new(),
        outputs: BTreeMap::from([("extract".into(), json!([1, 2, 3]))]),
        xcom: BTreeMap::new(),
        map_index: 3,
        args: BTreeMap::new(),
    }
}

/// The call a rendered python task passes its runner.
fn call(rendered: &RenderedCommand) -> Value {
    serde_json::from_str(rendered.argv.last().expect("an argument")).expect("JSON")
}

#[test]
fn callable_forms_table() {
    let rows: &[(&str, Option<&str>)] = &[
        ("etl:extract", None),
        ("etl.steps:extract", None),
        ("etl.steps:Loader.run", None),
        ("_private:_f", None),
        ("étape:calculer", None),
        ("etl.extract", Some(", did you mean `etl:extract`?")),
        ("etl", Some("got \"etl\"")),
        ("etl:", Some("got \"etl:\"")),
        (":extract", Some("got \":extract\"")),
        ("etl:extract:x", Some("got \"etl:extract:x\"")),
        ("etl-tools:extract", Some("got \"etl-tools:extract\"")),
        ("1etl:extract", Some("got \"1etl:extract\"")),
        ("etl:{{ params.f }}", Some("got \"etl:{{ params.f }}\"")),
        ("etl..steps:extract", Some("got \"etl..steps:extract\"")),
    ];
    for (callable, problem) in rows {
        match (check_callable(callable), problem) {
            (Ok(()), None) => {}
            (Err(message), Some(part)) if message.contains(part) => {}
            (got, _) => panic!("{callable:?}: got {got:?}, want {problem:?}"),
        }
    }
}

#[test]
fn a_python_task_renders_into_its_interpreter_running_the_call() {
    let dag = load_dag("etl.yaml", DAG).expect("loads");
    let load = render_command(&dag, "load", &context()).expect("renders");
    assert_eq!(load.argv[..4], ["/opt/py/bin/python", "-u", "-c", BOOTSTRAP]);
    assert_eq!(
        call(&load),
        json!({
            "callable": "etl.steps:Loader.run",
            "op_kwargs": {"day": "2026-01-01", "limit": 10, "nested": {"bucket": "s3://b", "tags": ["x", 2]}},
            "requirements": ["six==1.16.0"],
            "system_site_packages": false,
        })
    );
    assert_eq!(load.op, None);
    let extract = render_command(&dag, "extract", &context()).expect("renders");
    assert_eq!(extract.argv[0], DEFAULT_INTERPRETER);
    assert_eq!(call(&extract)["system_site_packages"], json!(true), "Airflow's default");
    assert_eq!(call(&extract)["op_kwargs"], json!({}));
}

#[test]
fn op_kwargs_templates_record_what_they_read_and_name_the_key_that_failed() {
    let dag = load_dag("etl.yaml", DAG).expect("loads");
    let rendering = render_reading(&dag, "load", &context());
    assert!(rendering.command.is_ok());
    assert_eq!(rendering.reads.variables, ["bucket".to_owned()].into());

    let broken = DAG.replace("{{ ds }}", "{{ params.missing.x }}");
    let dag = load_dag("etl.yaml", &broken).expect("loads");
    let err = render_command(&dag, "load", &context()).expect_err("undefined");
    assert!(matches!(&err, TemplateError::Render { field, .. } if field == "op_kwargs.day"), "{err}");
}

#[test]
fn the_lease_brings_the_runner_and_the_context_without_variables() {
    let dag = load_dag("etl.yaml", DAG).expect("loads");
    let env = lease_env(&dag, "load", &context());
    assert_eq!(env[RUNNER_ENV], RUNNER);
    let sent: Value = serde_json::from_str(&env[CONTEXT_ENV]).expect("JSON");
    assert_eq!(sent["ds"], "2026-01-01");
    assert_eq!(sent["logical_date"], "2026-01-01T00:00:00+00:00");
    assert_eq!(sent["params"], json!({"name": "x"}));
    assert_eq!(sent["dag_run"]["conf"], json!({"full": true}));
    assert_eq!(sent["outputs"], json!({"extract": [1, 2, 3]}));
    assert_eq!(sent["upstream"], json!(["extract"]));
    assert_eq!((sent["try_number"].as_u64(), sent["map_index"].as_i64()), (Some(2), Some(3)));
    assert_eq!((sent["dag_id"].as_str(), sent["task_id"].as_str()), (Some("etl"), Some("load")));
    assert!(sent.get("var").is_none(), "variables reach a function through op_kwargs only: {sent}");
    assert!(!env[CONTEXT_ENV].contains("k-secret-123"));

    assert!(lease_env(&dag, "report", &context()).is_empty(), "a command task gets neither");
    assert!(lease_env(&dag, "nope", &context()).is_empty());
}

#[test]
fn a_mapped_instance_gets_its_arguments_as_keyword_arguments() {
    let mapped = "dag_id: m\ntasks:\n  - id: each\n    kind: python\n    callable: etl:each\n    expand: {path: [a, b]}\n    partial: {unit: cm}\n    op_kwargs: {unit: mm}\n";
    let dag = load_dag("m.yaml", mapped).expect("loads");
    let mut ctx = context();
    ctx.args = BTreeMap::from([("path".into(), json!("b")), ("unit".into(), json!("cm"))]);
    let rendered = render_command(&dag, "each", &ctx).expect("renders");
    assert_eq!(call(&rendered)["op_kwargs"], json!({"path": "b", "unit": "mm"}), "op_kwargs win over partial");
}

#[test]
fn the_runner_reads_the_names_the_server_sends() {
    for name in [RUNNER_ENV, CONTEXT_ENV] {
        assert!(RUNNER.contains(&format!("\"{name}\"")), "{name}");
    }
    assert!(BOOTSTRAP.contains(RUNNER_ENV));
}
