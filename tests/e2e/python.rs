//! Outside tools against a running Sluice: Airflow's official Python client (`apache-airflow-client` 3.x) and
//! schemathesis, which fuzzes every operation of `/api/v2/openapi.json` and checks each answer against the document.
//!
//! Both come from PyPI; `scripts/test.sh` installs them in a venv and names its interpreter in
//! `SLUICE_TEST_PYTHON`.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::path::PathBuf;
use std::process::Command;

use sluice_tests::{ADMIN_PASSWORD, Backend, Sluice};

const EXAMPLE: &str = include_str!("../../dags/example_pipeline.yaml");

fn python() -> PathBuf {
    let python = std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SLUICE_TEST_PYTHON is not set: run the tests with scripts/test.sh, which installs the Python tools")
    });
    PathBuf::from(python)
}

fn run(mut command: Command) -> String {
    let output = command.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

#[tokio::test]
async fn the_official_airflow_python_client_works_against_sluice() {
    let sluice = Sluice::start(Backend::Postgres, &[("example_pipeline.yaml", EXAMPLE)], 2).await;
    sluice.wait_dag("example_pipeline").await;
    let mut command = Command::new(python());
    command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python/client_test.py")).args([
        &sluice.url,
        "admin",
        ADMIN_PASSWORD,
        "example_pipeline",
        "extract",
    ]);
    let out = run(command);
    assert!(out.contains("all checks passed"), "{out}\n{}", sluice.all_output());
}

/// schemathesis over the whole API document as the holder of `token`, `examples` cases per operation.
/// It keeps a cache of what it found in its working directory, `scratch`: out of the source tree.
fn schemathesis(url: &str, token: &str, examples: &str, scratch: &std::path::Path) -> Command {
    let mut command = Command::new(python().with_file_name("schemathesis"));
    // One worker: with several, the underlying property-testing library can fail on its own (not on the API)
    // while two threads read the same generator's source.
    command
        .current_dir(scratch)
        .arg("run")
        .arg(format!("{url}/api/v2/openapi.json"))
        .args(["--max-examples", examples, "--seed", "20261125", "--workers", "1"])
        // The dashboard's event streams never end by themselves, so each example would wait for the client's
        // timeout; tests/e2e/ui.rs reads them.
        .args(["--exclude-path-regex", "/ui/(events|logs/)"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .env("NO_COLOR", "1");
    command
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let sluice = Sluice::start(Backend::Postgres, &[("example_pipeline.yaml", EXAMPLE)], 1).await;
    sluice.wait_dag("example_pipeline").await;
    // Give the fuzzer real objects to find: a finished run with tasks, logs and an output.
    let run_id = sluice.trigger("example_pipeline", serde_json::json!({})).await;
    sluice.wait_run_done("example_pipeline", &run_id, std::time::Duration::from_secs(60)).await;

    // As every role: what one may not do must be refused as documented (401/403 with a JSON body), never a 5xx.
    // The Admin goes last, as its cases may delete what the others' would read.
    let mut tokens = Vec::new();
    for role in ["Viewer", "User", "Op"] {
        let username = format!("fuzz_{}", role.to_lowercase());
        sluice.create_user(&username, role, "fuzz-password-1").await;
        tokens.push((role, sluice.login(&username, "fuzz-password-1").await, "5"));
    }
    tokens.push(("Admin", sluice.token.clone().unwrap(), "15"));
    let scratch = tempfile::tempdir().unwrap();
    for (role, token, examples) in tokens {
        let out = run(schemathesis(&sluice.url, &token, examples, scratch.path()));
        assert!(out.contains("generated"), "schemathesis ran test cases as {role}:\n{out}");
    }
    assert!(!sluice.server_output().contains("request failed"), "no 5xx was logged:\n{}", sluice.server_output());
}
