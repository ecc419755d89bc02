//! Branching, short-circuiting and skipping by exit code, end to end on real workers.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice};

const BRANCHING: &str = include_str!("../../dags/examples/branching.yaml");
const DAG: &str = "example_branching";

fn expected(rows: &[(&str, &str)]) -> BTreeMap<String, String> {
    rows.iter().map(|(task, state)| (task.to_string(), state.to_string())).collect()
}

async fn run_to_end(sluice: &Sluice, dag_id: &str, conf: Value) -> (String, Value) {
    let run_id = sluice.trigger(dag_id, conf).await;
    let run = sluice.wait_run_done(dag_id, &run_id, Duration::from_secs(60)).await;
    (run_id, run)
}

async fn branches_skip_the_side_not_taken(backend: Backend) {
    let sluice = Sluice::start(backend, &[("branching.yaml", BRANCHING)], 1).await;
    sluice.wait_dag(DAG).await;

    let (run_id, run) = run_to_end(&sluice, DAG, json!({})).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let states = sluice.task_states(DAG, &run_id).await;
    let want = expected(&[
        ("choose", "success"),
        ("left", "success"),
        ("right", "skipped"),
        ("right_report", "skipped"),
        ("join", "success"),
        ("should_publish", "success"),
        ("publish", "skipped"),
        ("optional_cleanup", "skipped"),
        ("after_cleanup", "success"),
    ]);
    assert_eq!(states, want, "{}", sluice.all_output());
    let (_, choose) = sluice.get(&format!("/dags/{DAG}/dagRuns/{run_id}/taskInstances/choose")).await;
    assert_eq!(choose["output"], json!("left"));
    let cleanup = sluice.tries(DAG, &run_id, "optional_cleanup").await;
    assert_eq!(cleanup.len(), 1, "a skip is not retried: {cleanup:?}");
    assert_eq!(cleanup[0]["state"], "skipped");
    assert!(cleanup[0]["error"].as_str().unwrap().contains("code 99"), "{cleanup:?}");
    assert!(sluice.log(DAG, &run_id, "optional_cleanup", 1).await.contains("nothing to clean up"));
    assert!(sluice.log(DAG, &run_id, "join", 1).await.contains("joined after left"));

    let (run_id, run) = run_to_end(&sluice, DAG, json!({"side": "right", "publish": true})).await;
    assert_eq!(run["state"], "success", "{run}");
    let states = sluice.task_states(DAG, &run_id).await;
    for (task, state) in
        [("left", "skipped"), ("right", "success"), ("right_report", "success"), ("publish", "success")]
    {
        assert_eq!(states[task], state, "{task}: {states:?}");
    }
    assert!(sluice.log(DAG, &run_id, "join", 1).await.contains("joined after right"));
}

#[tokio::test]
async fn branches_skip_the_side_not_taken_on_postgres() {
    branches_skip_the_side_not_taken(Backend::Postgres).await;
}

#[tokio::test]
async fn branches_skip_the_side_not_taken_on_sqlite() {
    branches_skip_the_side_not_taken(Backend::Sqlite).await;
}

/// Upstream tasks that succeed, fail and skip themselves, and one task per trigger rule that each reaches.
const EVERY_RULE: &str = r#"
dag_id: every_trigger_rule
schedule: null
is_paused_upon_creation: false
tasks:
  - {id: ok, script: "true"}
  - {id: bad, script: "exit 1"}
  - {id: skip, script: "exit 99"}
  - {id: all_success, depends_on: [ok], trigger_rule: all_success, script: "true"}
  - {id: all_failed, depends_on: [bad], trigger_rule: all_failed, script: "true"}
  - {id: all_done, depends_on: [ok, bad, skip], trigger_rule: all_done, script: "true"}
  - {id: all_skipped, depends_on: [skip], trigger_rule: all_skipped, script: "true"}
  - {id: one_success, depends_on: [ok, bad], trigger_rule: one_success, script: "true"}
  - {id: one_failed, depends_on: [ok, bad], trigger_rule: one_failed, script: "true"}
  - {id: one_done, depends_on: [skip, bad], trigger_rule: one_done, script: "true"}
  - {id: none_failed, depends_on: [ok, skip], trigger_rule: none_failed, script: "true"}
  - {id: none_failed_min_one_success, depends_on: [ok, skip], trigger_rule: none_failed_min_one_success, script: "true"}
  - {id: none_skipped, depends_on: [ok, bad], trigger_rule: none_skipped, script: "true"}
  - {id: always, depends_on: [bad, skip], trigger_rule: always, script: "true"}
"#;

/// A branch choosing a task that is not directly downstream, and one whose output names no task.
const BAD_BRANCH: &str = r#"
dag_id: bad_branch
schedule: null
is_paused_upon_creation: false
params:
  choice: {default: far}
tasks:
  - id: choose
    branch: true
    script: echo '::output::{{ params.choice | tojson }}'
  - {id: near, depends_on: [choose], script: "true"}
  - {id: far, depends_on: [near], script: "true"}
"#;

#[tokio::test]
async fn every_trigger_rule_is_reached_without_a_manual_mark_and_bad_branches_fail() {
    let dags = [("every_trigger_rule.yaml", EVERY_RULE), ("bad_branch.yaml", BAD_BRANCH)];
    let sluice = Sluice::start(Backend::Postgres, &dags, 1).await;
    sluice.wait_dag("every_trigger_rule").await;
    let (run_id, run) = run_to_end(&sluice, "every_trigger_rule", json!({})).await;
    // Every leaf ran, so the failure of `bad` was absorbed and the run succeeds, as in Airflow.
    assert_eq!(run["state"], "success", "{run}");
    let states = sluice.task_states("every_trigger_rule", &run_id).await;
    assert_eq!(states.len(), 14);
    for (task, state) in &states {
        let want = match task.as_str() {
            "bad" => "failed",
            "skip" => "skipped",
            _ => "success",
        };
        assert_eq!(state, want, "{task}: {states:?}");
    }

    sluice.wait_dag("bad_branch").await;
    let (run_id, run) = run_to_end(&sluice, "bad_branch", json!({})).await;
    assert_eq!(run["state"], "failed", "{run}");
    let states = sluice.task_states("bad_branch", &run_id).await;
    assert_eq!(states, expected(&[("choose", "failed"), ("near", "upstream_failed"), ("far", "upstream_failed")]));
    let tries = sluice.tries("bad_branch", &run_id, "choose").await;
    let error = tries[0]["error"].as_str().unwrap();
    assert!(error.contains("chose `far`, which is not directly downstream"), "{error}");

    let (run_id, _) = run_to_end(&sluice, "bad_branch", json!({"choice": {"near": true}})).await;
    let tries = sluice.tries("bad_branch", &run_id, "choose").await;
    let error = tries[0]["error"].as_str().unwrap();
    assert!(error.contains("must output a task id, a list of task ids or null"), "{error}");
}

/// Three catch-up runs of a daily DAG: only the latest one due goes past its `latest_only` task.
fn latest_only(start: &str) -> String {
    format!(
        r#"
dag_id: latest
schedule: "@daily"
start_date: {start}
catchup: true
is_paused_upon_creation: false
tasks:
  - {{id: gate, kind: latest_only}}
  - {{id: publish, depends_on: [gate], script: "echo publishing {{{{ ds }}}}"}}
  - {{id: notify, depends_on: [publish], script: "echo notified"}}
  - {{id: archive, script: "echo archived"}}
"#
    )
}

async fn latest_only_runs(backend: Backend) {
    let start = (chrono::Utc::now() - chrono::Duration::days(3)).format("%Y-%m-%d").to_string();
    let sluice = Sluice::start(backend, &[("latest.yaml", &latest_only(&start))], 1).await;
    let runs = sluice.wait_runs("latest", 3).await;
    let (manual, _) = run_to_end(&sluice, "latest", json!({})).await;
    for run_id in &runs {
        let run = sluice.wait_run_done("latest", run_id, Duration::from_secs(30)).await;
        assert_eq!(run["state"], "success", "{run}");
    }
    let states = |want: [&str; 4]| -> BTreeMap<String, String> {
        ["archive", "gate", "notify", "publish"]
            .into_iter()
            .zip(want)
            .map(|(t, s)| (t.to_owned(), s.to_owned()))
            .collect()
    };
    for old in &runs[..2] {
        let got = sluice.task_states("latest", old).await;
        assert_eq!(got, states(["success", "success", "skipped", "skipped"]), "{old}: not the latest run");
    }
    let got = sluice.task_states("latest", &runs[2]).await;
    assert_eq!(got, states(["success"; 4]), "the latest run due goes on");
    let got = sluice.task_states("latest", &manual).await;
    assert_eq!(got, states(["success"; 4]), "a run triggered by hand goes on");
}

#[tokio::test]
async fn latest_only_skips_all_but_the_latest_run_on_postgres() {
    latest_only_runs(Backend::Postgres).await;
}

#[tokio::test]
async fn latest_only_skips_all_but_the_latest_run_on_sqlite() {
    latest_only_runs(Backend::Sqlite).await;
}
