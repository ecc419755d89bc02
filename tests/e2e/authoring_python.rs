//! `kind: python` tasks on real workers, on PostgreSQL and SQLite: functions of the DAG folder called with the
//! run's context, their return values as outputs feeding a templated command, tracebacks and clear errors in the
//! log when they fail, secrets of `op_kwargs` masked, an interpreter named by the task, and `requirements`
//! installed once per host in a cached virtualenv.
//!
//! The examples are `dags/examples/python_*.yaml`, with their code beside them. The `requirements` test installs
//! `inflection` from PyPI; the interpreter test runs `SLUICE_TEST_PYTHON` (see `python.rs`).

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice};

const EXAMPLES: [(&str, &str); 5] = [
    ("__init__.py", include_str!("../../dags/examples/__init__.py")),
    ("python_taskflow.yaml", include_str!("../../dags/examples/python_taskflow.yaml")),
    ("python_taskflow.py", include_str!("../../dags/examples/python_taskflow.py")),
    ("python_requirements.yaml", include_str!("../../dags/examples/python_requirements.yaml")),
    ("python_requirements.py", include_str!("../../dags/examples/python_requirements.py")),
];

/// A deployment whose DAG folder holds the examples in `examples/`, as in the repository, and `extra` files at its
/// root; one worker of 4 slots.
async fn start(backend: Backend, extra: &[(&str, &str)], env: &[(&str, &str)]) -> Sluice {
    let mut sluice = Sluice::new(backend, extra).await;
    let examples = sluice.dags.path().join("examples");
    std::fs::create_dir(&examples).unwrap();
    for (name, text) in EXAMPLES {
        std::fs::write(examples.join(name), text).unwrap();
    }
    sluice.env.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "4"]);
    sluice
}

async fn ti(sluice: &Sluice, dag_id: &str, run_id: &str, task_id: &str) -> Value {
    let (status, ti) = sluice.get(&format!("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")).await;
    assert_eq!(status, 200, "{ti}");
    ti
}

async fn run_to_end(sluice: &Sluice, dag_id: &str, conf: Value, timeout: Duration) -> (String, Value) {
    let run_id = sluice.trigger(dag_id, conf).await;
    let run = sluice.wait_run_done(dag_id, &run_id, timeout).await;
    (run_id, run)
}

async fn taskflow(backend: Backend) {
    let sluice = start(backend, &[], &[]).await;
    let (run_id, run) =
        run_to_end(&sluice, "python_taskflow", json!({"station": "Biscoe"}), Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.run_logs("python_taskflow", &run_id).await);
    let states = sluice.task_states("python_taskflow", &run_id).await;
    assert!(states.values().all(|s| s == "success"), "{states:?}");

    let extract = ti(&sluice, "python_taskflow", &run_id, "extract").await;
    let day = extract["output"]["day"].as_str().unwrap().to_owned();
    assert_eq!(
        extract["output"],
        json!({"day": day, "station": "Biscoe", "counts": {"Adelie": 152, "Chinstrap": 68, "Gentoo": 124}})
    );
    let log = sluice.log("python_taskflow", &run_id, "extract", 1).await;
    assert!(log.contains(&format!("counted 344 penguins on {day} at Biscoe")), "{log}");
    assert!(log.contains("Done. Returned value was: {'day'"), "{log}");

    // The upstream output arrives as the argument named after its task; op_kwargs are rendered; ti and dag_run work.
    let summarize = ti(&sluice, "python_taskflow", &run_id, "summarize").await;
    assert_eq!(
        summarize["output"],
        json!({
            "day": day, "total": 344, "common": ["Adelie", "Gentoo"], "same_as_pulled": true, "run_id": run_id,
            "try_number": 1,
        })
    );
    let call: Value = serde_json::from_str(summarize["rendered_fields"]["argv"][4].as_str().unwrap()).unwrap();
    assert_eq!(call["callable"], "examples.python_taskflow:summarize");
    assert_eq!(call["op_kwargs"], json!({"min_share": "0.25"}), "{summarize}");

    // A function taking **kwargs receives Airflow's context, and every output of the run.
    let audit = ti(&sluice, "python_taskflow", &run_id, "audit").await;
    let context: Vec<&str> =
        audit["output"]["context"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let expected = [
        "dag",
        "dag_run",
        "data_interval_end",
        "data_interval_start",
        "ds",
        "ds_nodash",
        "logical_date",
        "outputs",
        "params",
        "run_id",
        "task",
        "task_instance",
        "ti",
        "ts",
        "ts_nodash",
    ];
    assert_eq!(context, expected, "{audit}");
    assert_eq!(audit["output"]["upstream"], json!(["extract", "summarize"]));

    // The command downstream reads the function's return value in its template.
    let report = sluice.log("python_taskflow", &run_id, "report", 1).await;
    assert!(report.contains(&format!("344 penguins on {day}, mostly Adelie and Gentoo")), "{report}");
}

const CHECKS_PY: &str = r#"import asyncio
import sys


def interpreter():
    return sys.prefix


def lookup(species):
    return {"Adelie": 152, "Gentoo": 124}[species]


def count(species):
    try:
        return lookup(species)
    except KeyError:
        raise ValueError(f"no count for {species}") from None


async def later(ds):
    await asyncio.sleep(0.01)
    return f"awaited on {ds}"


def species():
    return {"Adelie", "Gentoo"}


def nothing():
    print("nothing to return")


def secret(token):
    print(f"using token {token}")
    return {"token": token, "length": len(token)}
"#;

const TOKEN: &str = "tok-3b9d0c7e55aa";

fn checks_dag(interpreter: &str) -> String {
    format!(
        r#"dag_id: python_checks
schedule: null
is_paused_upon_creation: false
default_args: {{retries: 0}}
tasks:
  - id: interpreter
    kind: python
    interpreter: {interpreter}
    callable: checks:interpreter
  - id: raises
    kind: python
    callable: checks:count
    op_kwargs: {{species: Emperor}}
  - id: no_function
    kind: python
    callable: checks:nope
  - id: no_module
    kind: python
    callable: no_such.module:run
  - id: awaited
    kind: python
    callable: checks:later
  - id: not_json
    kind: python
    callable: checks:species
  - id: nothing
    kind: python
    callable: checks:nothing
  - id: secret
    kind: python
    callable: checks:secret
    op_kwargs: {{token: "{{{{ var.value.api_token }}}}"}}
"#
    )
}

/// A callable that is not `module:function`, found when the file is read.
const BAD_CALLABLE: &str = "dag_id: python_bad
tasks:
  - id: extract
    kind: python
    callable: checks.count
";

fn test_python() -> String {
    std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SLUICE_TEST_PYTHON is not set: run the tests with scripts/test.sh, which installs the Python tools")
    })
}

async fn failures(backend: Backend) {
    let python = test_python();
    let dag = checks_dag(&python);
    let files = [("checks.py", CHECKS_PY), ("python_checks.yaml", dag.as_str()), ("python_bad.yaml", BAD_CALLABLE)];
    let sluice = start(backend, &files, &[]).await;
    assert_eq!(sluice.post("/variables", json!({"key": "api_token", "value": TOKEN})).await.0, 201);
    let (run_id, run) = run_to_end(&sluice, "python_checks", json!({}), Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed", "{run}");
    let states = sluice.task_states("python_checks", &run_id).await;
    let expected = [
        ("awaited", "success"),
        ("interpreter", "success"),
        ("no_function", "failed"),
        ("no_module", "failed"),
        ("not_json", "failed"),
        ("nothing", "success"),
        ("raises", "failed"),
        ("secret", "success"),
    ];
    assert_eq!(states, expected.map(|(t, s)| (t.to_owned(), s.to_owned())).into(), "{}", sluice.all_output());
    let log = |task: &'static str| sluice.log("python_checks", &run_id, task, 1);

    // The interpreter the task names runs it.
    let venv = Path::new(&python).parent().and_then(Path::parent).unwrap();
    let interpreter = ti(&sluice, "python_checks", &run_id, "interpreter").await;
    let prefix = Path::new(interpreter["output"].as_str().unwrap()).canonicalize().unwrap();
    assert_eq!(prefix, venv.canonicalize().unwrap());

    // An exception: the traceback from the user's function down, none of the runner's frames.
    let raises = log("raises").await;
    for part in
        ["Traceback (most recent call last):", "checks.py\", line", "in count", "ValueError: no count for Emperor"]
    {
        assert!(raises.contains(part), "{part:?} not in:\n{raises}");
    }
    assert!(!raises.contains("sluice python runner"), "{raises}");
    let tries = sluice.tries("python_checks", &run_id, "raises").await;
    assert_eq!(tries.len(), 1, "{tries:?}");

    // A callable that is not there, and a value that cannot be an output: one clear line each.
    let no_function = log("no_function").await;
    assert!(
        no_function.contains("error: cannot find checks:nope: module 'checks' has no attribute 'nope'"),
        "{no_function}"
    );
    let no_module = log("no_module").await;
    assert!(no_module.contains("error: cannot import no_such.module:run: No module named 'no_such'"), "{no_module}");
    assert!(!no_module.contains("Traceback"), "{no_module}");
    let not_json = log("not_json").await;
    assert!(not_json.contains("which is JSON: Object of type set is not JSON serializable"), "{not_json}");
    assert!(ti(&sluice, "python_checks", &run_id, "not_json").await["output"].is_null());

    // An `async def` function is awaited.
    let awaited = ti(&sluice, "python_checks", &run_id, "awaited").await;
    assert!(awaited["output"].as_str().unwrap().starts_with("awaited on 20"), "{awaited}");

    // None is no output; the task succeeds.
    assert!(log("nothing").await.contains("nothing to return"));
    assert!(ti(&sluice, "python_checks", &run_id, "nothing").await["output"].is_null());

    // A variable read by an op_kwargs template: masked in the log, the output and the rendered call.
    let secret = ti(&sluice, "python_checks", &run_id, "secret").await;
    assert_eq!(secret["output"], json!({"token": "***", "length": TOKEN.len()}));
    let secret_log = log("secret").await;
    assert!(secret_log.contains("using token ***"), "{secret_log}");
    for shown in [secret.to_string(), secret_log] {
        assert!(!shown.contains(TOKEN), "{shown}");
    }

    // The file with a malformed callable is an import error at its line, its DAG never loaded.
    let errors = sluice
        .eventually("the import error of python_bad.yaml", Duration::from_secs(30), || async {
            let (_, errors) = sluice.get("/importErrors").await;
            errors["import_errors"].as_array().and_then(|all| all.first().cloned())
        })
        .await;
    assert!(errors["filename"].as_str().unwrap().ends_with("python_bad.yaml"), "{errors}");
    assert!(
        errors["stack_trace"]
            .as_str()
            .unwrap()
            .contains("python_bad.yaml:5:15: task `extract`: `callable` must be `module:function`"),
        "{errors}"
    );
    assert_eq!(sluice.get("/dags/python_bad").await.0, 404);
}

async fn requirements(backend: Backend) {
    let missing = std::process::Command::new("python3").args(["-c", "import inflection"]).output().unwrap();
    assert!(!missing.status.success(), "the worker's python3 must not have inflection for this test to mean anything");
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let sluice = start(backend, &[], &[("SLUICE_VENV_CACHE", cache_dir)]).await;
    let tasks = ["camelize", "titleize"];

    // The first run builds the virtualenv once: the task that did not build it waited for it, or found it built.
    let (run_id, run) = run_to_end(&sluice, "python_requirements", json!({}), Duration::from_secs(180)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let mut logs = Vec::new();
    for task in tasks {
        logs.push(sluice.log("python_requirements", &run_id, task, 1).await);
    }
    let built: Vec<&String> =
        logs.iter().filter(|log| log.contains("Successfully installed inflection-0.5.1")).collect();
    assert_eq!(built.len(), 1, "{logs:#?}");
    let reused = logs.iter().find(|log| !log.contains("Successfully installed")).unwrap();
    assert!(reused.contains("using the"), "{reused}");
    let camelize = ti(&sluice, "python_requirements", &run_id, "camelize").await;
    let titleize = ti(&sluice, "python_requirements", &run_id, "titleize").await;
    assert_eq!(camelize["output"]["camelized"], "PythonRequirements");
    assert_eq!(titleize["output"]["titleized"], "Python Requirements");
    let prefix = camelize["output"]["prefix"].as_str().unwrap().to_owned();
    assert!(Path::new(&prefix).starts_with(cache.path()), "{prefix} is not in the cache {cache_dir}");
    assert_eq!(titleize["output"]["prefix"], prefix.as_str(), "one virtualenv for the same requirements");

    // The next run uses the cached virtualenv: no pip at all.
    let (run_id, run) = run_to_end(&sluice, "python_requirements", json!({}), Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}");
    for task in tasks {
        let log = sluice.log("python_requirements", &run_id, task, 1).await;
        assert!(log.contains(&format!("using the cached virtualenv {prefix}")), "{log}");
        assert!(!log.contains("Collecting"), "{log}");
    }
}

#[tokio::test]
async fn a_function_feeds_a_templated_command_on_postgres() {
    taskflow(Backend::Postgres).await;
}

#[tokio::test]
async fn a_function_feeds_a_templated_command_on_sqlite() {
    taskflow(Backend::Sqlite).await;
}

#[tokio::test]
async fn failing_functions_show_why_on_postgres() {
    failures(Backend::Postgres).await;
}

#[tokio::test]
async fn failing_functions_show_why_on_sqlite() {
    failures(Backend::Sqlite).await;
}

#[tokio::test]
async fn requirements_are_installed_once_in_a_cached_virtualenv_on_postgres() {
    requirements(Backend::Postgres).await;
}

#[tokio::test]
async fn requirements_are_installed_once_in_a_cached_virtualenv_on_sqlite() {
    requirements(Backend::Sqlite).await;
}

const BIG_PY: &str = r#"
def make():
    return "x" * 300000


def measure(make):
    return len(make)
"#;

const BIG: &str = r#"
dag_id: python_big
schedule: null
is_paused_upon_creation: false
tasks:
  - {id: make, kind: python, callable: "big:make"}
  - {id: measure, kind: python, callable: "big:measure", depends_on: [make]}
"#;

/// An upstream output of 300 KB makes a context longer than a process's environment takes: it reaches the function
/// through a file.
#[tokio::test]
async fn a_function_receives_an_upstream_output_too_long_for_the_environment() {
    let sluice = start(Backend::Sqlite, &[("big.py", BIG_PY), ("python_big.yaml", BIG)], &[]).await;
    sluice.wait_dag("python_big").await;
    let (run_id, run) = run_to_end(&sluice, "python_big", json!({}), Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.run_logs("python_big", &run_id).await);
    assert_eq!(ti(&sluice, "python_big", &run_id, "measure").await["output"], 300000);
}
