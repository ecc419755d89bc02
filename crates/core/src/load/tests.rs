use super::*;

fn errors(source: &str) -> Vec<String> {
    match load_dag("dag.yaml", source) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

const GOOD: &str = r#"dag_id: good
schedule: "@daily"
start_date: 2026-01-01
tasks:
  - id: a
    command: [echo, "{{ ds }}"]
"#;

#[test]
fn a_good_file_loads() {
    let dag = load_dag("good.yaml", GOOD).expect("loads");
    assert_eq!(dag.dag_id(), "good");
    assert_eq!(dag.timetable().summary(), "@daily");
}

#[test]
fn every_error_of_a_file_is_reported() {
    let source = r#"dag_id: demo
schedule: "0 3 * * *"
timezone: Europe/Pari
retires: 3
catchup: maybe
tasks:
  - id: a
    comand: [echo]
    retries: -1
  - id: b
    depends_on: [a, c]
    command: [echo, "{{ ds }"]
    trigger_rule: all_sucess
  - id: b
    script: echo
"#;
    assert_eq!(
        errors(source),
        [
            "dag.yaml:2:11: schedule \"0 3 * * *\" needs a `start_date`: runs cover the data intervals from start_date on",
            "dag.yaml:3:11: unknown timezone \"Europe/Pari\", did you mean `Europe/Paris`? (expected an IANA name like \"Europe/Paris\")",
            "dag.yaml:4:1: unknown field `retires`; `retries` is a task setting: put it under `default_args` or on a task",
            "dag.yaml:5:10: invalid type: string \"maybe\", expected a boolean",
            "dag.yaml:8:5: unknown field `comand`, did you mean `command`?",
            "dag.yaml:9:14: invalid value: integer `-1`, expected u32",
            "dag.yaml:11:21: task `b` depends on `c`, which is not a task or task group of this DAG",
            "dag.yaml:12:21: template error in task `b` command[1]: syntax error: unexpected `}`, expected end of variable block",
            "dag.yaml:13:19: unknown value `all_sucess`, did you mean `all_success`? (expected one of all_success, all_failed, all_done, all_skipped, one_success, one_failed, one_done, none_failed, none_failed_min_one_success, none_skipped, always)",
            "dag.yaml:14:9: duplicate task id `b` (first defined on line 10)",
        ]
    );
}

/// Each row: a file and the one error expected, with its location.
#[test]
fn error_table() {
    let rows: &[(&str, &str)] = &[
        (
            "dag_id: x\nschedule: @daily\ntasks: []\n",
            "2:11: invalid YAML: unexpected character: `@' (values starting with @ must be quoted, e.g. schedule: \"@daily\")",
        ),
        ("dag_id: [\n", "1:9: invalid YAML: unclosed bracket '['"),
        ("- a\n", "1:1: a DAG file must be a mapping with at least `dag_id` and `tasks`"),
        ("dag_id: x\ntasks: []\n", "2:1: a DAG needs at least one task"),
        ("dag_id: x\ntasks: 3\n", "2:8: `tasks` must be a list of tasks"),
        ("dag_id: x\n", "1:1: missing field `tasks`"),
        (
            "dag_id: x y\ntasks:\n  - id: a\n    command: [x]\n",
            "1:9: invalid dag_id \"x y\": use letters, digits, `_`, `-` and `.`, at most 250 characters",
        ),
        (
            "dag_id: x\ntasks:\n  - id: a\n    command: [x]\n    depends_on: [c]\n  - id: b\n    command: [x]\n    depends_on: [a]\n  - id: c\n    command: [x]\n    depends_on: [b]\n",
            "5:17: cycle: a -> b -> c -> a",
        ),
        ("dag_id: x\ntasks:\n  - id: a\n    command: [x]\n    depends_on: [a]\n", "5:17: cycle: a -> a"),
        (
            "dag_id: x\ntasks:\n  - id: load\n    command: [x]\n    depends_on: [lod]\n",
            "5:18: task `load` depends on `lod`, which is not a task or task group of this DAG, did you mean `load`?",
        ),
        (
            "dag_id: x\nschedule: '0 25 * * *'\nstart_date: 2026-01-01\ntasks:\n  - id: a\n    command: [x]\n",
            "2:11: invalid cron expression \"0 25 * * *\": hour field \"25\": 25 is out of range 0-23",
        ),
        (
            "dag_id: x\nschedule: '@dayly'\nstart_date: 2026-01-01\ntasks:\n  - id: a\n    command: [x]\n",
            "2:11: unknown schedule preset \"@dayly\", did you mean `@daily`? (expected @once, @hourly, @daily, @weekly, @monthly, @quarterly, @yearly or a cron expression)",
        ),
        (
            "dag_id: x\nschedule: '@once'\ntasks:\n  - id: a\n    command: [x]\n",
            "2:11: schedule \"@once\" needs a `start_date`: runs cover the data intervals from start_date on",
        ),
        (
            "dag_id: x\nschedule: {asets: [a]}\ntasks:\n  - id: a\n    command: [x]\n",
            "2:12: unknown field `asets`, did you mean `assets`?",
        ),
        (
            "dag_id: x\nstart_date: 2026-02-30\ntasks:\n  - id: a\n    command: [x]\n",
            "2:13: invalid date \"2026-02-30\" (expected \"2026-01-01\", \"2026-01-01T03:00:00\" or RFC 3339 like \"2026-01-01T03:00:00+02:00\")",
        ),
        (
            "dag_id: x\nstart_date: 2026-02-01\nend_date: 2026-01-01\ntasks:\n  - id: a\n    command: [x]\n",
            "3:11: end_date 2026-01-01 00:00:00 UTC is before start_date 2026-02-01 00:00:00 UTC",
        ),
        (
            "dag_id: x\ndagrun_timeout: 10y\ntasks:\n  - id: a\n    command: [x]\n",
            "2:17: invalid duration \"10y\": unknown unit \"y\" (expected e.g. \"30s\", \"10m\", \"1h30m\", \"2d\", \"500ms\")",
        ),
        (
            "dag_id: x\ntasks:\n  - id: a\n",
            "3:9: task `a` needs either `command` (a list of arguments) or `script` (a bash script)",
        ),
        (
            "dag_id: x\ntasks:\n  - id: a\n    command: [x]\n    script: y\n",
            "5:13: task `a` has both `command` and `script`; keep one",
        ),
        ("dag_id: x\ntasks:\n  - id: a\n    command: []\n", "4:14: task `a`: `command` must not be empty"),
        (
            "dag_id: x\ntasks:\n  - id: a\n    script: |\n      echo a\n      echo {% if %}\n",
            "5:7: template error in task `a` script: syntax error: unexpected end of block (template line 2)",
        ),
        (
            "dag_id: x\ntasks:\n  - id: a\n    command: [x]\n    env: {A: '{{ x'}\n",
            "5:14: template error in task `a` env.A: syntax error: unexpected end of input, expected end of variable block",
        ),
        (
            "dag_id: x\ntasks:\n  - id: a\n    command: [x]\n    cwd: '{{'\n",
            "5:10: template error in task `a` cwd: syntax error: unexpected end of input, expected expression",
        ),
        (
            "dag_id: x\nparams:\n  n: {type: integer, default: 1.5}\ntasks:\n  - id: a\n    command: [x]\n",
            "3:6: default of param `n`: 1.5 is not of type \"integer\"",
        ),
        (
            "dag_id: x\nparams:\n  n: {type: int}\ntasks:\n  - id: a\n    command: [x]\n",
            "3:6: param `n`: unknown type \"int\" (expected one of string, number, integer, boolean, array, object, null)",
        ),
        (
            "dag_id: x\nparams:\n  n: {type: integer, minimun: 1}\ntasks:\n  - id: a\n    command: [x]\n",
            "3:6: unknown key `minimun` in a param, did you mean `minimum`? (`default`, `description`, or a JSON Schema keyword)",
        ),
        (
            "dag_id: x\nparams:\n  n: {type: integer, minimum: one}\ntasks:\n  - id: a\n    command: [x]\n",
            "3:6: param `n`: invalid schema: \"one\" is not of type \"number\"",
        ),
        (
            "dag_id: x\nmax_active_runs: 0\ntasks:\n  - id: a\n    command: [x]\n",
            "2:18: `max_active_runs` must be at least 1",
        ),
        (
            "dag_id: x\ntasks:\n  - id: a\n    kind: ingest\n    source: {type: csv, path: 'gs://b/a.csv'}\n    outputs: ['lake://a']\n",
            "5:13: task `a`: file sources read local paths and s3:// URLs, not gs://",
        ),
        (
            "dag_id: x\ntasks:\n  - id: a\n    command: [x]\n    depends_on: b\n",
            "5:17: invalid type: string \"b\", expected a sequence",
        ),
    ];
    let mismatches: Vec<String> = rows
        .iter()
        .filter_map(|(source, expected)| {
            let got = errors(source);
            (got != [format!("dag.yaml:{expected}")]).then(|| format!("{source}\n  got {got:?}\n  want {expected:?}"))
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn scalars_are_read_as_strings_where_strings_are_wanted() {
    let dag = load_dag(
        "dag.yaml",
        "dag_id: 123\ntasks:\n  - id: a\n    command: [python3.10, 3.10, 0755, 1e3, yes, n, 5]\n    env: {PORT: 8080, DEBUG: true}\n",
    )
    .expect("loads");
    let task = dag.task("a").expect("task");
    let argv = ["python3.10", "3.10", "0755", "1e3", "yes", "n", "5"].map(String::from);
    assert_eq!(task.command.as_deref(), Some(&argv[..]));
    assert_eq!(task.env.get("PORT").map(String::as_str), Some("8080"));
    assert_eq!(task.env.get("DEBUG").map(String::as_str), Some("true"));
    assert_eq!(dag.dag_id(), "123");
}

#[test]
fn params_shorthand_and_anchors() {
    let source = r#"dag_id: x
params:
  n: 3
  names: [a, b]
  explicit_null: {default: null}
default_args: &defaults
  retries: 2
tasks:
  - id: a
    command: [x]
    <<: *defaults
"#;
    let dag = load_dag("dag.yaml", source).expect("loads");
    assert_eq!(dag.spec.params["n"].default, Some(serde_json::json!(3)));
    assert_eq!(dag.spec.params["names"].default, Some(serde_json::json!(["a", "b"])));
    assert_eq!(dag.spec.params["explicit_null"].default, Some(serde_json::Value::Null));
    assert_eq!(dag.task("a").and_then(|t| t.retries), Some(2));
}

#[test]
fn error_display() {
    let e = DagError::new("f.yaml", (3, 7), "boom");
    assert_eq!(e.to_string(), "f.yaml:3:7: boom");
}

const DATA_TASKS: &str = r#"dag_id: etl
tasks:
  - id: ingest
    kind: ingest
    source: {type: csv, path: "data/{{ ds }}.csv"}
    outputs: [lake://raw/penguins]
  - id: quality
    kind: quality
    depends_on: [ingest]
    inputs: [lake://raw/penguins]
    checks: [{column: species, not_null: true}, {max_missing_rate: 0.05, severity: warn}]
  - id: features
    kind: transform
    depends_on: [quality]
    inputs: [lake://raw/penguins]
    outputs: [lake://features/penguins]
    steps:
      - fill_missing: {columns: [bill_length_mm], strategy: median}
      - one_hot: {columns: [species]}
"#;

#[test]
fn data_tasks_load_with_their_configuration() {
    let dag = load_dag("etl.yaml", DATA_TASKS).expect("loads");
    let ingest = dag.task("ingest").unwrap().op_spec().unwrap();
    let crate::ops_spec::OpSpec::Ingest(ingest) = ingest else { panic!("{ingest:?}") };
    assert_eq!(ingest.source.path(), Some("data/{{ ds }}.csv"));
    let features = dag.task("features").unwrap().op_spec().unwrap();
    let crate::ops_spec::OpSpec::Transform(features) = features else { panic!("{features:?}") };
    assert_eq!(features.steps.len(), 2);
    assert!(dag.task("quality").unwrap().op_spec().is_some());
    // The server stores the spec as JSON and reads it back.
    let json = serde_json::to_string(&dag.spec).unwrap();
    assert_eq!(serde_json::from_str::<DagSpec>(&json).unwrap(), dag.spec);
}

#[test]
fn derive_and_join_steps_are_checked_where_written() {
    let source = r#"dag_id: etl
tasks:
  - id: features
    kind: transform
    inputs: [lake://raw/penguins]
    outputs: [lake://features/penguins]
    steps:
      - derive:
          bill_ratio: bill_length_mm / bill_depth_mm
          heavy: (body_mass_g > 4500
          day: "'{{ ds }}'"
      - join: {asset: 'ref/islands', on: [island]}
      - join: {asset: 'lake://ref/islands', on: []}
      - join: {asset: 'lake://ref/islands', on: [island], how: inner, suffix: _island}
"#;
    let errors = errors(source);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let derive =
        "dag.yaml:10:18: task `features`: derived column \"heavy\": invalid SQL expression \"(body_mass_g > 4500\"";
    assert!(errors[0].starts_with(derive), "{errors:#?}");
    assert_eq!(
        errors[1],
        "dag.yaml:12:23: task `features`: invalid asset URI \"ref/islands\" to join: it must start with lake://"
    );
    assert_eq!(errors[2], "dag.yaml:13:49: task `features`: a join needs key columns in `on`");
    let fixed = source.replace("(body_mass_g", "body_mass_g").replace("'ref/islands'", "'lake://ref/islands'");
    let dag = load_dag("dag.yaml", &fixed.replace("on: []", "on: [island]")).expect("loads");
    let inputs: Vec<&str> = dag.task("features").unwrap().input_assets().collect();
    assert_eq!(inputs, ["lake://raw/penguins", "lake://ref/islands", "lake://ref/islands", "lake://ref/islands"]);
}

#[test]
fn data_task_errors_point_at_the_field() {
    let source = r#"dag_id: etl
tasks:
  - id: ingest
    kind: ingest
    source: {type: csv, pth: a.csv}
    outputs: [raw/penguins]
  - id: quality
    kind: qualty
  - id: check
    kind: quality
    inputs: [lake://raw/penguins]
    checks: [{max_mising_rate: 0.1}]
  - id: features
    kind: transform
    inputs: [lake://raw/penguins]
    command: [echo]
    steps:
      - one_hott: {columns: [a]}
  - id: shell
    command: [echo]
    checks: [{row_count: {min: 1}}]
  - id: nothing
    kind: transform
    inputs: ['lake://raw/{{ ds }}']
    steps: []
"#;
    // `ingest` has no "needs `source`": its source was reported as malformed already.
    assert_eq!(
        errors(source),
        [
            "dag.yaml:5:13: unknown field `pth`, did you mean `path`?",
            "dag.yaml:6:15: task `ingest`: invalid asset URI \"raw/penguins\": it must start with lake://",
            "dag.yaml:8:11: task `quality`: unknown kind `qualty`, did you mean `quality`? (expected one of command, ingest, quality, transform, sql, train, deploy, score, monitor, sensor, python, latest_only)",
            "dag.yaml:12:15: unknown field `max_mising_rate`, did you mean `max_missing_rate`?",
            "dag.yaml:13:9: task `features` of kind transform needs `outputs`",
            "dag.yaml:16:5: task `features`: `command` is not read by tasks of kind transform",
            "dag.yaml:18:9: unknown value `one_hott`, did you mean `one_hot`? (expected one of select, rename, cast, drop_duplicates, drop_missing, fill_missing, clip_outliers, drop_outliers, standardize, min_max_scale, text_clean, one_hot, ordinal_encode, hash_pii, mask_pii, derive, join)",
            "dag.yaml:21:5: task `shell`: `checks` is not read by tasks of kind command",
            "dag.yaml:22:9: task `nothing` of kind transform needs `outputs`",
            "dag.yaml:24:14: task `nothing`: invalid asset URI \"lake://raw/{{ ds }}\": asset URIs are fixed names, not templates: lineage and data-aware scheduling match them as written",
        ]
    );
}

const REMOTE_TASKS: &str = r#"dag_id: warehouse
tasks:
  - id: orders
    kind: ingest
    source:
      type: http
      url: /v1/orders
      connection: shop_api
      records: /data
      params: {since: "{{ ds }}", per_page: 100}
      pagination: {type: cursor, cursor: /meta/next, param: after, max_pages: 50}
    outputs: [lake://raw/orders]
  - id: customers
    kind: ingest
    source: {type: postgres, connection: crm, query: "SELECT * FROM customers"}
    outputs: [lake://raw/customers]
    watermark: updated_at
  - id: products
    kind: ingest
    source: {type: sql, connection: shop_file, query: "SELECT * FROM products"}
    outputs: [lake://raw/products]
  - id: rollup
    kind: sql
    depends_on: [orders, customers]
    connection: warehouse
    sql: "DELETE FROM daily WHERE day = '{{ ds }}'; INSERT INTO daily SELECT 1"
"#;

#[test]
fn remote_sources_and_sql_tasks_load() {
    use crate::ops_spec::{OpSpec, Pagination, Source};
    let dag = load_dag("warehouse.yaml", REMOTE_TASKS).expect("loads");
    let Some(OpSpec::Ingest(orders)) = dag.task("orders").unwrap().op_spec() else { panic!() };
    let Source::Http(http) = &orders.source else { panic!("{orders:?}") };
    assert_eq!(http.params["per_page"], "100");
    assert_eq!(
        http.pagination,
        Some(Pagination::Cursor { cursor: "/meta/next".into(), param: "after".into(), max_pages: 50 })
    );
    let customers = dag.task("customers").unwrap().op_spec().unwrap();
    assert_eq!(customers.connections(), ["crm"]);
    let Some(OpSpec::Ingest(products)) = dag.task("products").unwrap().op_spec() else { panic!() };
    let Source::Sql(query) = &products.source else { panic!("{products:?}") };
    assert_eq!((query.connection.as_str(), query.query.as_str()), ("shop_file", "SELECT * FROM products"));
    let Some(OpSpec::Sql(rollup)) = dag.task("rollup").unwrap().op_spec() else { panic!() };
    assert_eq!(rollup.connection, "warehouse");
    let json = serde_json::to_string(&dag.spec).unwrap();
    assert_eq!(serde_json::from_str::<DagSpec>(&json).unwrap(), dag.spec);
}

#[test]
fn remote_task_errors_point_at_the_field() {
    let source = r#"dag_id: warehouse
tasks:
  - id: orders
    kind: ingest
    source: {type: http, url: /v1/orders, pagination: {type: pages}}
    outputs: [lake://raw/orders]
  - id: customers
    kind: ingest
    source: {type: postgres, query: "SELECT 1"}
    outputs: [lake://raw/customers]
  - id: rollup
    kind: sql
    sql: "SELECT 1"
  - id: typo
    kind: sql
    connection: warehouse
    sql: "SELECT 1"
    sql_file: a.sql
  - id: shell
    command: [echo]
    connection: warehouse
  - id: broken
    kind: sql
    connection: warehouse
    sql: "SELECT {{ ds"
"#;
    let found = errors(source);
    let expected = [
        "dag.yaml:5:13: unknown value `pages` (expected one of page_number, next_url, cursor)",
        "dag.yaml:9:13: missing field `connection`",
        "dag.yaml:11:9: task `rollup` of kind sql needs `connection`",
        "dag.yaml:18:5: unknown field `sql_file`",
        "dag.yaml:21:5: task `shell`: `connection` is not read by tasks of kind command",
        "dag.yaml:22:9: template error in task `broken` configuration: syntax error",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (found, expected) in found.iter().zip(expected) {
        assert!(found.starts_with(expected), "{found:?} should start with {expected:?}");
    }
}

#[test]
fn train_and_deploy_tasks_load_and_their_mistakes_are_located() {
    let dag = load_dag("penguins_train.yaml", include_str!("../../../../dags/penguins_train.yaml")).expect("loads");
    let Some(crate::ops_spec::OpSpec::Train(train)) = dag.task("train").unwrap().op_spec() else {
        panic!("a train task")
    };
    assert_eq!((train.inputs.len(), train.model.candidates.len(), train.model.cv.folds), (1, 3, 5));
    let Some(crate::ops_spec::OpSpec::Deploy(deploy)) = dag.task("deploy").unwrap().op_spec() else {
        panic!("a deploy task")
    };
    assert_eq!(deploy.stage, "production");

    let broken = "dag_id: m
tasks:
  - id: train
    kind: train
    inputs: [lake://f]
    model:
      name: m
      target: y
      candidates: [{algorithm: svm}]
  - id: deploy
    kind: deploy
    deploy: {model: m, stage: prod}
  - id: lost
    kind: train
    inputs: [lake://f]
";
    assert_eq!(
        errors(broken),
        [
            "dag.yaml:7:7: task `train`: unknown algorithm `svm` (expected one of logistic_regression, decision_tree, \
             random_forest, linear_regression, elastic_net)",
            "dag.yaml:12:13: task `deploy`: `stage` must be staging or production, got \"prod\"",
            "dag.yaml:13:9: task `lost` of kind train needs `model`",
        ]
    );
}

#[test]
fn a_command_that_registers_a_model_loads_and_its_mistakes_are_located() {
    let dag = load_dag("penguins_sklearn.yaml", include_str!("../../../../dags/penguins_sklearn.yaml")).expect("loads");
    let Some(crate::ops_spec::OpSpec::Command(command)) = dag.task("train").unwrap().op_spec() else {
        panic!("a command that registers a model")
    };
    assert_eq!((command.registers.model.as_str(), command.inputs.len()), ("penguins_sklearn", 1));
    assert!(dag.task("ingest").unwrap().op_spec().is_some_and(|op| op.trained_model().is_none()));

    let broken = "dag_id: m
tasks:
  - id: fit
    command: [python3, fit.py]
    registers: {model: bad name, target: y}
  - id: ingest
    kind: ingest
    source: {type: csv, path: a.csv}
    outputs: [lake://raw/a]
    registers: {model: m, target: y}
";
    assert_eq!(
        errors(broken),
        [
            "dag.yaml:5:16: task `fit`: model name \"bad name\" must be 1–200 letters, digits, '_', '-' or '.', not \
             starting with '.'",
            "dag.yaml:5:16: task `fit`: a command task that registers a model needs `inputs`: the first is the asset \
             it trains on",
            "dag.yaml:10:5: task `ingest`: `registers` is not read by tasks of kind ingest",
        ]
    );
}

#[test]
fn every_shipped_dag_file_loads() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dags");
    let mut folders = vec![root];
    let mut loaded = 0;
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("the dags folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let source = std::fs::read_to_string(&path).expect("a readable DAG file");
                let name = path.display().to_string();
                if let Err(errors) = load_dag(&name, &source) {
                    panic!("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
                }
                loaded += 1;
            }
        }
    }
    assert!(loaded >= 8, "{loaded} DAG files");
}

#[test]
fn python_tasks_load_and_their_mistakes_are_located() {
    for (file, source) in [
        ("python_taskflow.yaml", include_str!("../../../../dags/examples/python_taskflow.yaml")),
        ("python_requirements.yaml", include_str!("../../../../dags/examples/python_requirements.yaml")),
        ("xcom.yaml", include_str!("../../../../dags/examples/xcom.yaml")),
    ] {
        let dag = load_dag(file, source).unwrap_or_else(|e| panic!("{file}: {e:?}"));
        assert!(dag.spec.tasks.iter().any(|t| t.kind == "python" && t.callable.is_some()), "{file}");
    }

    let broken = r#"dag_id: p
tasks:
  - id: dotted
    kind: python
    callable: etl.extract
  - id: nothing
    kind: python
    op_kwargs: {day: "{{ ds }"}
  - id: mixed
    kind: python
    callable: etl:extract
    command: [echo]
    interpreter: ""
    requirements: [six, " "]
  - id: stray
    kind: python
    callable: etl:extract
    system_site_packages: false
  - id: shell
    command: [echo]
    callable: etl:extract
    requirements: [six]
    multiple_outputs: true
"#;
    assert_eq!(
        errors(broken),
        [
            "dag.yaml:5:15: task `dotted`: `callable` must be `module:function` (a module importable from the DAG \
             folder, a function in it), got \"etl.extract\", did you mean `etl:extract`?",
            "dag.yaml:6:9: task `nothing` of kind python needs `callable`",
            "dag.yaml:8:22: template error in task `nothing` op_kwargs.day: syntax error: unexpected `}`, expected end \
             of variable block",
            "dag.yaml:12:5: task `mixed`: `command` is not read by tasks of kind python",
            "dag.yaml:13:18: task `mixed`: `interpreter` must not be empty",
            "dag.yaml:14:25: task `mixed`: a requirement must not be empty",
            "dag.yaml:18:5: task `stray`: `system_site_packages` is read only with `requirements` (it shapes their \
             virtualenv)",
            "dag.yaml:21:5: task `shell`: `callable` is not read by tasks of kind command",
            "dag.yaml:22:5: task `shell`: `requirements` is not read by tasks of kind command",
            "dag.yaml:23:5: task `shell`: `multiple_outputs` is not read by tasks of kind command",
        ]
    );
}

mod groups;

#[test]
fn sensors_load_and_their_mistakes_are_located() {
    let dag = load_dag("sensors.yaml", include_str!("../../../../dags/examples/sensors.yaml")).expect("loads");
    let Some(crate::ops_spec::OpSpec::Sensor(sensor)) = dag.task("wait_for_file").and_then(crate::TaskSpec::op_spec)
    else {
        panic!("a sensor")
    };
    assert_eq!(sensor.mode, crate::ops_spec::SensorMode::Reschedule);
    assert_eq!(sensor.poke_interval, std::time::Duration::from_secs(1));
    let Some(crate::ops_spec::OpSpec::Sensor(settle)) = dag.task("settle").and_then(crate::TaskSpec::op_spec) else {
        panic!("a sensor")
    };
    // Airflow's defaults.
    assert_eq!(settle.mode, crate::ops_spec::SensorMode::Poke);
    assert_eq!(settle.timeout, std::time::Duration::from_secs(7 * 24 * 3600));
    assert!(!settle.soft_fail && !settle.exponential_backoff);

    let broken = r#"dag_id: s
tasks:
  - id: unknown
    kind: sensor
    sensor: {type: s4, path: x}
  - id: both
    kind: sensor
    sensor: {type: time, target_time: "10:00", delta: 1h}
    poke_interval: 0s
  - id: bad_mode
    kind: sensor
    sensor: {type: file, path: "{{ ds }"}
    mode: sometimes
  - id: shell
    command: [echo]
    soft_fail: true
  - id: nothing
    kind: sensor
"#;
    assert_eq!(
        errors(broken),
        [
            "dag.yaml:5:20: unknown value `s4` (expected one of file, time, sql, http, external_task)",
            "dag.yaml:8:13: task `both`: `poke_interval` must be longer than zero",
            "dag.yaml:8:13: task `both`: a time sensor needs exactly one of `target_time` (a time of day) and \
             `delta` (a duration)",
            "dag.yaml:10:9: template error in task `bad_mode` configuration: syntax error: unexpected `}`, expected \
             end of variable block",
            "dag.yaml:13:11: unknown value `sometimes` (expected one of poke, reschedule)",
            "dag.yaml:16:5: task `shell`: `soft_fail` is not read by tasks of kind command",
            "dag.yaml:17:9: task `nothing` of kind sensor needs `sensor`",
        ]
    );
}

#[test]
fn nesting_deeper_than_the_stack_allows_is_an_error() {
    let mappings: String = (0..40).map(|i| format!("{}a:\n", " ".repeat(i + 1))).collect();
    let lists = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    for source in [format!("dag_id: x\ntasks:\n{mappings}"), format!("dag_id: x\ntasks: {lists}\n")] {
        let errors = errors(&source);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].ends_with(": invalid YAML: mappings and lists nest deeper than 32 levels"), "{errors:?}");
    }
}

#[test]
fn a_template_chain_deeper_than_the_stack_allows_is_an_error() {
    let source = format!("dag_id: x\ntasks:\n  - id: a\n    command: [\"{{{{ ds{} }}}}\"]\n", " | upper".repeat(2000));
    assert_eq!(
        errors(&source),
        ["dag.yaml:4:15: template error in task `a` command[0]: the tag on template line 1 chains more than 1000 \
             operators, filters, attributes or calls; split it with `{% set %}`"]
    );
}
