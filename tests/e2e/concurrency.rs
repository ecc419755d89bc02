//! Scheduling and concurrency settings of tasks on real workers, with Airflow's semantics: `pool_slots`,
//! `max_active_tis_per_dag`, `max_active_tis_per_dagrun`, `weight_rule`, `depends_on_past` and
//! `wait_for_downstream`. Limits are checked from the recorded start and end times of every try.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice, max_overlapping};

const LIMITS: &str = r#"
dag_id: limits
schedule: null
is_paused_upon_creation: false
max_active_runs: 3
tasks:
  - id: heavy
    pool: small
    pool_slots: 2
    script: sleep 1
  - id: light_a
    pool: small
    script: sleep 1
  - id: light_b
    pool: small
    script: sleep 1
  - id: light_c
    pool: small
    script: sleep 1
  - id: fan
    expand: {n: [1, 2, 3, 4, 5, 6]}
    max_active_tis_per_dagrun: 2
    script: sleep 0.5
  - id: solo
    max_active_tis_per_dag: 1
    script: sleep 1
"#;

fn time(v: &Value) -> Option<DateTime<FixedOffset>> {
    v.as_str().map(|s| DateTime::parse_from_rfc3339(s).unwrap())
}

/// The most pool slots taken at one moment by `tis` (start and end times, and the slots each takes).
fn most_slots_at_once(tis: &[(Value, i64)]) -> i64 {
    let spans: Vec<_> =
        tis.iter().map(|(ti, slots)| (time(&ti["start_date"]).unwrap(), time(&ti["end_date"]), *slots)).collect();
    spans
        .iter()
        .map(|(at, _, _)| {
            spans.iter().filter(|(s, e, _)| s <= at && e.is_none_or(|e| *at < e)).map(|(_, _, n)| n).sum()
        })
        .max()
        .unwrap_or(0)
}

async fn limits(backend: Backend) {
    let sluice = Sluice::new(backend, &[("limits.yaml", LIMITS)]).await;
    let mut sluice = sluice;
    sluice.start_server(&[]).await;
    for _ in 0..2 {
        sluice.spawn_worker(&["--slots", "8"]);
    }
    let (status, pool) = sluice.post("/pools", json!({"name": "small", "slots": 3})).await;
    assert_eq!(status, 201, "{pool}");
    sluice.wait_dag("limits").await;

    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(sluice.trigger("limits", json!({})).await);
    }
    for run_id in &runs {
        let run = sluice.wait_run_done("limits", run_id, Duration::from_secs(90)).await;
        assert_eq!(run["state"], "success", "{run}\n{}", sluice.run_logs("limits", run_id).await);
    }

    // The pool's 3 slots hold the 2-slot task and one 1-slot task, or three 1-slot tasks, across the three runs.
    let mut pooled = Vec::new();
    let mut solo = Vec::new();
    for run_id in &runs {
        let tis = sluice.task_instances("limits", run_id).await;
        for ti in &tis {
            let task = ti["task_id"].as_str().unwrap();
            if task == "heavy" || task.starts_with("light_") {
                assert_eq!(ti["pool_slots"], if task == "heavy" { 2 } else { 1 }, "{ti}");
                pooled.push((ti.clone(), ti["pool_slots"].as_i64().unwrap()));
            }
            if task == "solo" {
                solo.push(ti.clone());
            }
        }
        let (_, mapped) = sluice.get(&format!("/dags/limits/dagRuns/{run_id}/taskInstances/fan/listMapped")).await;
        let fan = mapped["task_instances"].as_array().unwrap();
        assert_eq!(fan.len(), 6, "{mapped}");
        assert!(max_overlapping(fan) <= 2, "at most 2 instances of `fan` at once in a run: {mapped}");
    }
    assert_eq!(most_slots_at_once(&pooled), 3, "the pool is used up to, and never beyond, its 3 slots");
    assert_eq!(max_overlapping(&solo), 1, "one `solo` at a time across the runs: {solo:?}");
}

#[tokio::test]
async fn pool_slots_and_task_limits_hold_across_runs_on_postgres() {
    limits(Backend::Postgres).await;
}

#[tokio::test]
async fn pool_slots_and_task_limits_hold_across_runs_on_sqlite() {
    limits(Backend::Sqlite).await;
}

const WEIGHTS: &str = r#"
dag_id: weights
schedule: null
tasks:
  - {id: extract, script: "true", priority_weight: 2}
  - {id: clean, depends_on: [extract], script: "true"}
  - {id: load, depends_on: [clean], script: "true", priority_weight: 5}
  - {id: audit, depends_on: [load], script: "true", weight_rule: upstream}
  - {id: notify, depends_on: [load], script: "true", weight_rule: absolute, priority_weight: 7}
"#;

#[tokio::test]
async fn priority_weights_add_up_by_weight_rule() {
    let sluice = Sluice::start(Backend::Postgres, &[("weights.yaml", WEIGHTS)], 0).await;
    sluice.wait_dag("weights").await;
    let run_id = sluice.trigger("weights", json!({})).await;
    let weights: std::collections::BTreeMap<String, i64> = sluice
        .task_instances("weights", &run_id)
        .await
        .iter()
        .map(|ti| (ti["task_id"].as_str().unwrap().to_owned(), ti["priority_weight"].as_i64().unwrap()))
        .collect();
    // downstream (the default): own + every task after it; upstream: own + every task before it; absolute: own.
    let want = [
        ("extract", 2 + 1 + 5 + 1 + 7),
        ("clean", 1 + 5 + 1 + 7),
        ("load", 5 + 1 + 7),
        ("audit", 1 + 2 + 1 + 5),
        ("notify", 7),
    ];
    assert_eq!(weights, want.iter().map(|(t, w)| ((*t).to_owned(), *w)).collect(), "{weights:?}");
    let (_, task) = sluice.get("/dags/weights/tasks/audit").await;
    assert_eq!((task["weight_rule"].as_str(), task["priority_weight"].as_i64()), (Some("upstream"), Some(1)), "{task}");
}

#[tokio::test]
async fn a_zero_limit_is_a_load_error() {
    let broken = "dag_id: zero\ntasks:\n  - id: a\n    script: \"true\"\n    pool_slots: 0\n";
    let sluice = Sluice::start(Backend::Postgres, &[("zero.yaml", broken)], 0).await;
    let errors = sluice
        .eventually("an import error", Duration::from_secs(30), || async {
            let (_, body) = sluice.get("/importErrors").await;
            (body["total_entries"] == 1).then_some(body)
        })
        .await;
    let trace = errors["import_errors"][0]["stack_trace"].as_str().unwrap();
    assert!(trace.contains("zero.yaml:5:") && trace.contains("`pool_slots` must be at least 1"), "{trace}");
}

/// Three daily runs at once (catchup) of a DAG whose `extract` waits for the previous run's `extract` and its
/// direct downstream `load`; the first run's `load` fails until the test creates its marker file.
fn past(start: &str, marker: &str) -> String {
    format!(
        r#"
dag_id: past
schedule: "@daily"
start_date: {start}
catchup: true
max_active_runs: 3
is_paused_upon_creation: false
tasks:
  - id: extract
    wait_for_downstream: true
    script: sleep 0.3
  - id: load
    depends_on: [extract]
    depends_on_past: true
    script: test -f {marker} && sleep 0.3
  - id: side
    script: echo independent of the past
"#
    )
}

async fn depends_on_past(backend: Backend) {
    let marker = tempfile::NamedTempFile::new().unwrap().path().to_owned();
    let start = (chrono::Utc::now() - chrono::Duration::days(3)).format("%Y-%m-%d").to_string();
    let sluice = Sluice::start(backend, &[("past.yaml", &past(&start, &marker.display().to_string()))], 1).await;
    let runs = sluice.wait_runs("past", 3).await;
    let first = sluice.wait_run_done("past", &runs[0], Duration::from_secs(30)).await;
    assert_eq!(first["state"], "failed", "the first run's load fails without its marker");

    // The second run's `side` ends; its `extract` does not start, as the first run's `load` failed.
    sluice.wait_task_state("past", &runs[1], "side", "success").await;
    sluice.wait_task_state("past", &runs[2], "side", "success").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for run_id in &runs[1..] {
        let states = sluice.task_states("past", run_id).await;
        assert_eq!(states["extract"], "none", "{run_id}: {states:?}");
        assert_eq!(states["load"], "none", "{run_id}: {states:?}");
    }

    std::fs::write(&marker, "").unwrap();
    let body = json!({"dry_run": false, "dag_run_id": runs[0], "task_ids": ["load"], "only_failed": true});
    let (status, cleared) = sluice.post("/dags/past/clearTaskInstances", body).await;
    assert_eq!(status, 200, "{cleared}");
    for run_id in &runs {
        let run = sluice.wait_run_done("past", run_id, Duration::from_secs(60)).await;
        assert_eq!(run["state"], "success", "{run}\n{}", sluice.run_logs("past", run_id).await);
    }
    // Run after run: each `extract` started after the previous run's `load` ended.
    for pair in runs.windows(2) {
        let load = sluice.tries("past", &pair[0], "load").await;
        let extract = sluice.tries("past", &pair[1], "extract").await;
        let ended = load.iter().filter_map(|t| time(&t["end_date"])).max().unwrap();
        let started = time(&extract[0]["start_date"]).unwrap();
        assert!(started >= ended, "{} extract started at {started}, before {} load ended at {ended}", pair[1], pair[0]);
    }
}

#[tokio::test]
async fn depends_on_past_and_wait_for_downstream_hold_runs_back_on_postgres() {
    depends_on_past(Backend::Postgres).await;
}

#[tokio::test]
async fn depends_on_past_and_wait_for_downstream_hold_runs_back_on_sqlite() {
    depends_on_past(Backend::Sqlite).await;
}
