use super::*;
use crate::load_dag;
use serde_json::json;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn ctx() -> TemplateContext {
    TemplateContext {
        dag_id: "etl".into(),
        task_id: "load".into(),
        run_id: "scheduled__2026-01-01T00:00:00+00:00".into(),
        logical_date: Some(utc("2026-01-01T00:00:00Z")),
        data_interval_start: Some(utc("2026-01-01T00:00:00Z")),
        data_interval_end: Some(utc("2026-01-02T00:00:00Z")),
        run_after: utc("2026-01-02T00:00:05Z"),
        conf: json!({"full": true}),
        params: json!({"n": 3, "name": "x"}).as_object().cloned().unwrap_or_default(),
        try_number: 2,
        variables: BTreeMap::from([("bucket".into(), "s3://b".into()), ("cfg".into(), r#"{"depth": 4}"#.into())]),
        connections: BTreeMap::from([(
            "db".into(),
            crate::connection::Connection {
                conn_type: "postgres".into(),
                host: Some("db.internal".into()),
                password: Some("pg-secret-1".into()),
                extra: crate::connection::Connection::parse_extra(r#"{"sslmode": "require"}"#).ok(),
                ..Default::default()
            },
        )]),
        outputs: BTreeMap::from([("extract".into(), json!({"rows": 42}))]),
        xcom: BTreeMap::new(),
        map_index: -1,
        args: BTreeMap::new(),
    }
}

fn render(template: &str, ctx: &TemplateContext) -> Result<String, String> {
    render_limited(&environment(), template, &Value::from_serialize(ctx.to_value())).map_err(|e| describe(&e, template))
}

#[test]
fn context_names_table() {
    let rows = [
        ("{{ ds }}", "2026-01-01"),
        ("{{ ds_nodash }}", "20260101"),
        ("{{ ts }}", "2026-01-01T00:00:00+00:00"),
        ("{{ ts_nodash }}", "20260101T000000"),
        ("{{ logical_date }}", "2026-01-01T00:00:00+00:00"),
        ("{{ data_interval_start }}", "2026-01-01T00:00:00+00:00"),
        ("{{ data_interval_end }}", "2026-01-02T00:00:00+00:00"),
        ("{{ run_after }}", "2026-01-02T00:00:05+00:00"),
        ("{{ run_id }}", "scheduled__2026-01-01T00:00:00+00:00"),
        ("{{ dag_run.run_id }}", "scheduled__2026-01-01T00:00:00+00:00"),
        // Booleans render as Jinja2 (and so Airflow) renders them.
        ("{{ dag_run.conf.full }}", "True"),
        ("{{ dag_run.logical_date }}", "2026-01-01T00:00:00+00:00"),
        ("{{ params.n * 2 }}", "6"),
        ("{{ params['name'] }}", "x"),
        ("{{ ti.try_number }}", "2"),
        ("{{ ti.task_id }}/{{ ti.dag_id }}/{{ ti.run_id }}", "load/etl/scheduled__2026-01-01T00:00:00+00:00"),
        ("{{ task_instance.try_number }}", "2"),
        ("{{ task.task_id }}", "load"),
        ("{{ dag.dag_id }}", "etl"),
        ("{{ var.value.bucket }}", "s3://b"),
        ("{{ var.json.cfg.depth }}", "4"),
        ("{{ outputs.extract.rows }}", "42"),
        ("{{ params.missing | default('d') }}", "d"),
        ("<{{ 'a&b' }}>", "<a&b>"),
    ];
    let ctx = ctx();
    for (template, expected) in rows {
        assert_eq!(render(template, &ctx).as_deref(), Ok(expected), "{template}");
    }
}

#[test]
fn ds_falls_back_to_run_after_without_logical_date() {
    let mut ctx = ctx();
    ctx.logical_date = None;
    assert_eq!(render("{{ ds }} {{ ts }}", &ctx).as_deref(), Ok("2026-01-02 2026-01-02T00:00:05+00:00"));
    assert_eq!(render("{{ logical_date is none }}", &ctx).as_deref(), Ok("True"));
}

#[test]
fn undefined_names_are_errors() {
    let ctx = ctx();
    for template in ["{{ dss }}", "{{ params.nope }}", "{{ var.value.nope }}", "{{ outputs.nope.rows }}"] {
        let err = render(template, &ctx).expect_err(template);
        assert!(err.contains("undefined"), "{template}: {err}");
    }
    // A variable that is not JSON is not in var.json.
    let mut ctx = ctx;
    ctx.variables.insert("plain".into(), "not json".into());
    assert!(render("{{ var.json.plain }}", &ctx).is_err());
    assert_eq!(render("{{ var.value.plain }}", &ctx).as_deref(), Ok("not json"));
}

const DAG: &str = r#"dag_id: etl
params:
  n: 3
default_args:
  env: {BASE: "/data/{{ ds }}", SHARED: default}
tasks:
  - id: extract
    command: [echo, "{{ ds }}", "n={{ params.n }}"]
    env: {SHARED: "task-{{ ti.try_number }}"}
    cwd: "/tmp/{{ dag.dag_id }}"
  - id: load
    script: |
      echo {{ outputs.extract.rows }}
  - id: typo
    command: ["{{ params.m }}"]
"#;

#[test]
fn render_command_argv_script_env_cwd() {
    let dag = load_dag("etl.yaml", DAG).expect("loads");
    let rendered = render_command(&dag, "extract", &ctx()).expect("renders");
    assert_eq!(rendered.argv, ["echo", "2026-01-01", "n=3"]);
    assert_eq!(
        rendered.env,
        BTreeMap::from([
            ("BASE".to_owned(), "/data/2026-01-01".to_owned()),
            ("SHARED".to_owned(), "task-2".to_owned()),
        ])
    );
    assert_eq!(rendered.cwd.as_deref(), Some("/tmp/etl"));

    let rendered = render_command(&dag, "load", &ctx()).expect("renders");
    assert_eq!(rendered.argv, ["bash", "-c", "echo 42\n"]);
    assert_eq!(rendered.cwd, None);

    let err = render_command(&dag, "typo", &ctx()).expect_err("undefined");
    assert!(matches!(&err, TemplateError::Render { field, .. } if field == "command[0]"), "{err:?}");
    assert!(err.to_string().starts_with("cannot render command[0] of task \"typo\": undefined value"), "{err}");
    assert_eq!(render_command(&dag, "nope", &ctx()), Err(TemplateError::UnknownTask("nope".into())));
}

const RUNAWAY_DAG: &str = r#"dag_id: runaway
tasks:
  - id: forever
    command: ["{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"]
  - id: huge
    script: "{% for i in range(1000) %}{{ 'x' * 100000 }}{% endfor %}"
  - id: fine
    script: "{% for i in range(1000) %}{{ i }}{% endfor %}"
"#;

#[test]
fn a_template_that_would_run_for_hours_or_fill_memory_fails_with_what_it_did() {
    let dag = load_dag("runaway.yaml", RUNAWAY_DAG).expect("loads");
    let err = render_command(&dag, "forever", &ctx()).expect_err("too many steps");
    assert!(err.to_string().contains(&format!("took more than {RENDER_STEPS} steps")), "{err}");
    let err = render_command(&dag, "huge", &ctx()).expect_err("too long");
    assert!(err.to_string().contains("rendered text is longer than 16 MiB"), "{err}");
    let fine = render_command(&dag, "fine", &ctx()).expect("renders");
    assert!(fine.argv[2].starts_with("0123") && fine.argv[2].ends_with("999"), "{:?}", fine.argv);
}

#[test]
fn sluice_env_names_the_try() {
    let env = ctx().sluice_env();
    assert_eq!(env["SLUICE_DAG_ID"], "etl");
    assert_eq!(env["SLUICE_TRY_NUMBER"], "2");
    assert_eq!(env["SLUICE_LOGICAL_DATE"], "2026-01-01T00:00:00+00:00");
}

fn param(v: serde_json::Value) -> ParamSpec {
    serde_json::from_value(v).expect("param spec")
}

#[test]
fn resolve_params_table() {
    let spec = BTreeMap::from([
        ("n".to_owned(), param(json!({"type": "integer", "default": 3, "minimum": 1, "maximum": 10}))),
        ("mode".to_owned(), param(json!({"type": "string", "enum": ["fast", "slow"], "default": "fast"}))),
        ("flag".to_owned(), param(json!(false))),
    ]);
    let rows: &[(serde_json::Value, Result<serde_json::Value, &str>)] = &[
        (json!(null), Ok(json!({"n": 3, "mode": "fast", "flag": false}))),
        (json!({"n": 5, "other": 1}), Ok(json!({"n": 5, "mode": "fast", "flag": false}))),
        (json!({"mode": "slow", "flag": true}), Ok(json!({"n": 3, "mode": "slow", "flag": true}))),
        (json!({"n": 11}), Err("param `n`: 11 is greater than the maximum of 10")),
        (json!({"n": 0}), Err("param `n`: 0 is less than the minimum of 1")),
        (json!({"n": "3"}), Err("param `n`: \"3\" is not of type \"integer\"")),
        (json!({"n": 4.0}), Ok(json!({"n": 4.0, "mode": "fast", "flag": false}))),
        (json!({"mode": "medium"}), Err("param `mode`: \"medium\" is not one of \"fast\" or \"slow\"")),
        (
            json!({"n": 0, "mode": "x"}),
            Err("param `mode`: \"x\" is not one of \"fast\" or \"slow\"; param `n`: 0 is less than the minimum of 1"),
        ),
        (json!([1]), Err("conf must be a JSON object, not [1]")),
    ];
    for (conf, expected) in rows {
        let got = resolve_params(&spec, conf).map(serde_json::Value::Object);
        assert_eq!(got.as_ref().map_err(String::as_str), expected.as_ref().map_err(|e| *e), "{conf}");
    }
    let required = BTreeMap::from([("who".to_owned(), param(json!({"type": "string"})))]);
    assert_eq!(
        resolve_params(&required, &json!({})),
        Err("param `who` has no default and is not given in conf".to_owned())
    );
    assert!(resolve_params(&required, &json!({"who": "me"})).is_ok());
}

#[test]
fn params_are_checked_against_their_whole_json_schema() {
    let cfg = param(json!({
        "type": ["object", "null"],
        "properties": {
            "depth": {"type": "integer", "multipleOf": 2},
            "bucket": {"type": "string", "pattern": "^s3://", "minLength": 6},
            "when": {"type": "string", "format": "date-time"},
        },
        "required": ["bucket"],
        "additionalProperties": false,
        "default": null,
    }));
    let spec = BTreeMap::from([("cfg".to_owned(), cfg)]);
    let rows: &[(serde_json::Value, Result<(), &str>)] = &[
        (json!({}), Ok(())),
        (json!({"cfg": {"bucket": "s3://data", "depth": 4, "when": "2026-01-02T03:04:05Z"}}), Ok(())),
        (json!({"cfg": {"depth": 4}}), Err("param `cfg`: \"bucket\" is a required property")),
        (
            json!({"cfg": {"bucket": "gs://data"}}),
            Err("param `cfg` at /bucket: \"gs://data\" does not match \"^s3://\""),
        ),
        (json!({"cfg": {"bucket": "s3://d", "depth": 3}}), Err("param `cfg` at /depth: 3 is not a multiple of 2")),
        (
            json!({"cfg": {"bucket": "s3://d", "when": "tomorrow"}}),
            Err("param `cfg` at /when: \"tomorrow\" is not a \"date-time\""),
        ),
        (
            json!({"cfg": {"bucket": "s3://d", "x": 1}}),
            Err("param `cfg`: Additional properties are not allowed ('x' was unexpected)"),
        ),
    ];
    for (conf, expected) in rows {
        let got = resolve_params(&spec, conf).map(|_| ());
        assert_eq!(got.as_ref().map_err(String::as_str), expected.as_ref().map_err(|e| *e), "{conf}");
    }
    // The schema travels as written, beside the default and the description.
    let dumped = serde_json::to_value(&spec["cfg"]).expect("serialises");
    assert_eq!(dumped["required"], json!(["bucket"]));
    assert_eq!(dumped["default"], json!(null));
}

const READING: &str = r#"dag_id: reading
tasks:
  - id: plain
    command: [echo, "{{ ds }}"]
  - id: reads
    command: [echo, "{{ var.value.bucket }}", "{{ var.json.cfg.depth }}", "{{ conn.db.password }}"]
    env: {SSL: "{{ conn.db.extra_dejson.sslmode }}"}
  - id: all
    script: "echo {{ var.value }}"
  - id: fails
    script: "echo {{ conn.db.host }} {{ var.value.nope }}"
"#;

#[test]
fn renderings_tell_which_variables_and_connections_they_read() {
    let dag = load_dag("reading.yaml", READING).expect("loads");
    let ctx = ctx();
    let plain = render_reading(&dag, "plain", &ctx);
    assert_eq!(plain.reads, Reads::default());

    let reads = render_reading(&dag, "reads", &ctx);
    let command = reads.command.expect("renders");
    assert_eq!(command.argv, ["echo", "s3://b", "4", "pg-secret-1"]);
    assert_eq!(command.env["SSL"], "require");
    assert_eq!(reads.reads.variables, BTreeSet::from(["bucket".to_owned(), "cfg".to_owned()]));
    assert_eq!(reads.reads.connections, BTreeSet::from(["db".to_owned()]));

    let all = render_reading(&dag, "all", &ctx);
    assert!(all.command.is_ok());
    assert_eq!(all.reads.variables, BTreeSet::from(["bucket".to_owned(), "cfg".to_owned()]));

    let fails = render_reading(&dag, "fails", &ctx);
    assert!(fails.command.is_err());
    assert_eq!(fails.reads.connections, BTreeSet::from(["db".to_owned()]));
}

#[test]
fn confidential_values_are_those_read() {
    let dag = load_dag("reading.yaml", READING).expect("loads");
    let mut ctx = ctx();
    ctx.variables.insert("api_key".into(), "k-0123456789".into());
    let rendering = render_reading(&dag, "reads", &ctx);
    let seen = ctx.confidential(&rendering.reads, &crate::masking::SensitiveKeys::default());
    // The connection's password is secret; the variables read are not, and `api_key` was not read.
    assert_eq!(seen.secrets, BTreeSet::from(["pg-secret-1".to_owned()]));
    for value in ["s3://b", "4", "pg-secret-1", "db.internal", "require"] {
        assert!(seen.restricted.contains(value), "{value}");
    }
    assert!(!seen.restricted.contains("k-0123456789"));
}

#[test]
fn a_registering_command_runs_its_rendered_argv_inside_run_op() {
    let dag = load_dag(
        "d.yaml",
        "dag_id: d\ntasks:\n  - id: fit\n    command: [python3, \"{{ ds }}.py\"]\n    inputs: [lake://f/a]\n    \
         registers: {model: m, target: y}\n",
    )
    .unwrap();
    let rendered = render_command(&dag, "fit", &ctx()).unwrap();
    assert!(rendered.argv.is_empty(), "the worker starts run-op: {rendered:?}");
    let Some(OpSpec::Command(command)) = rendered.op else { panic!("{rendered:?}") };
    assert_eq!(command.argv, ["python3", "2026-01-01.py"]);
}

/// `template` rendered as a command of a task `reader`, with `ti` able to pull.
fn render_pulling(template: &str, ctx: &TemplateContext) -> Result<String, String> {
    let yaml = format!(
        "dag_id: etl\ntasks:\n  - id: reader\n    command: [{}]\n",
        serde_json::to_string(template).unwrap_or_default()
    );
    let dag = load_dag("pull.yaml", &yaml).map_err(|e| format!("{e:?}"))?;
    let mut ctx = ctx.clone();
    ctx.task_id = "reader".into();
    render_command(&dag, "reader", &ctx).map(|r| r.argv.concat()).map_err(|e| e.to_string())
}

#[test]
fn keyed_outputs_read_as_xcom_and_with_airflows_xcom_pull() {
    let mut ctx = ctx();
    ctx.outputs.insert("group.t".into(), json!(7));
    ctx.xcom = BTreeMap::from([
        ("extract".into(), BTreeMap::from([("path".into(), json!("s3://b/k")), ("meta".into(), json!({"n": 2}))])),
        ("each".into(), BTreeMap::from([("part".into(), json!(["a", "b"]))])),
    ]);
    let rows = [
        ("{{ xcom.extract.path }}", "s3://b/k"),
        ("{{ xcom['extract'].meta.n }}", "2"),
        ("{{ ti.xcom_pull(task_ids='extract', key='path') }}", "s3://b/k"),
        ("{{ ti.xcom_pull('extract', key='meta').n }}", "2"),
        ("{{ ti.xcom_pull(task_ids='extract') }}", "{\"rows\": 42}"),
        ("{{ ti.xcom_pull(task_ids='extract', key='return_value').rows }}", "42"),
        ("{{ ti.xcom_pull(task_ids='group.t') }}", "7"),
        ("{{ ti.xcom_pull(task_ids=['extract', 'group.t'], key='path') | tojson }}", "[\"s3://b/k\",null]"),
        ("{{ ti.xcom_pull(task_ids='each', key='part') | join(',') }}", "a,b"),
        ("{{ ti.xcom_pull(task_ids='extract', key='nope', default='d') }}", "d"),
        ("{{ ti.xcom_pull(task_ids='extract', key='nope') is none }}", "True"),
        ("{{ ti.xcom_pull(key='path') is none }}", "True"),
        ("{{ ti.xcom_pull(task_ids='extract', key='path', dag_id='etl', run_id=run_id) }}", "s3://b/k"),
        ("{{ task_instance.try_number }}-{{ ti.map_index }}", "2--1"),
    ];
    for (template, expected) in rows {
        assert_eq!(render_pulling(template, &ctx).as_deref(), Ok(expected), "{template}");
    }
    for (template, problem) in [
        ("{{ xcom.extract.nope }}", "undefined value"),
        ("{{ ti.xcom_pull(task_ids='extract', dag_id='other') }}", "this run only, not of another dag_id"),
        ("{{ ti.xcom_pull(task_ids='extract', include_prior_dates=true) }}", "include_prior_dates"),
        ("{{ ti.xcom_push('k', 1) }}", "unknown method"),
    ] {
        let err = render_pulling(template, &ctx).expect_err(template);
        assert!(err.contains(problem), "{template}: {err}");
    }
}
