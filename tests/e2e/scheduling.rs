//! Scheduling end to end: catchup, several schedulers on one database, DAG files that break.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use chrono::{Days, Utc};
use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice};

async fn runs_of(sluice: &Sluice, dag_id: &str) -> Vec<Value> {
    let (status, body) = sluice.get(&format!("/dags/{dag_id}/dagRuns?limit=1000")).await;
    assert_eq!(status, 200, "{body}");
    body["dag_runs"].as_array().unwrap().clone()
}

fn logical_dates(runs: &[Value]) -> Vec<String> {
    let mut dates: Vec<String> = runs.iter().map(|r| r["logical_date"].as_str().unwrap().to_string()).collect();
    dates.sort();
    dates
}

const CATCHUP: &str = r#"
dag_id: daily_catchup
schedule: "@daily"
start_date: 2026-01-01
end_date: 2026-01-05
catchup: true
max_active_runs: 2
is_paused_upon_creation: false
tasks:
  - id: work
    script: echo "{{ ds }} {{ data_interval_start }} {{ data_interval_end }}"
"#;

const NO_CATCHUP: &str = r#"
dag_id: daily_latest
schedule: "0 0 * * *"
start_date: 2026-01-01
catchup: false
is_paused_upon_creation: false
tasks:
  - id: work
    script: echo "{{ ds }}"
"#;

#[tokio::test]
async fn catchup_creates_exactly_the_missed_intervals() {
    let sluice = Sluice::start(Backend::Sqlite, &[("catchup.yaml", CATCHUP), ("latest.yaml", NO_CATCHUP)], 1).await;
    let runs = sluice
        .eventually("five finished catchup runs", Duration::from_secs(60), || async {
            let runs = runs_of(&sluice, "daily_catchup").await;
            (runs.len() == 5 && runs.iter().all(|r| r["state"] == "success")).then_some(runs)
        })
        .await;
    let expected: Vec<String> = (1..=5).map(|d| format!("2026-01-0{d}T00:00:00Z")).collect();
    assert_eq!(logical_dates(&runs), expected);
    for run in &runs {
        assert_eq!(run["run_type"], "scheduled");
        let start = chrono::DateTime::parse_from_rfc3339(run["data_interval_start"].as_str().unwrap()).unwrap();
        let end = chrono::DateTime::parse_from_rfc3339(run["data_interval_end"].as_str().unwrap()).unwrap();
        assert_eq!(end - start, chrono::Duration::days(1), "a daily interval: {run}");
    }
    let log = sluice.log("daily_catchup", "scheduled__2026-01-03T00:00:00+00:00", "work", 1).await;
    assert!(log.contains("2026-01-03 2026-01-03T00:00:00+00:00 2026-01-04T00:00:00+00:00"), "{log}");

    // Without catchup only the latest complete interval runs: the one that ended at midnight today.
    let latest = sluice
        .eventually("the latest daily run", Duration::from_secs(30), || async {
            let runs = runs_of(&sluice, "daily_latest").await;
            (!runs.is_empty()).then_some(runs)
        })
        .await;
    let yesterday = Utc::now().date_naive().checked_sub_days(Days::new(1)).unwrap();
    assert_eq!(logical_dates(&latest), vec![format!("{yesterday}T00:00:00Z")]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(runs_of(&sluice, "daily_catchup").await.len(), 5, "end_date stops the schedule");
    assert_eq!(runs_of(&sluice, "daily_latest").await.len(), 1);
}

const MANY_RUNS: &str = r#"
dag_id: busy
schedule: "@daily"
start_date: 2026-01-01
end_date: 2026-01-20
catchup: true
max_active_runs: 25
is_paused_upon_creation: false
tasks:
  - id: a
    script: echo a
  - id: b
    depends_on: [a]
    script: echo b
  - id: c
    depends_on: [a]
    script: echo c
"#;

#[tokio::test]
async fn two_schedulers_never_duplicate_runs_or_tries() {
    let mut sluice = Sluice::new(Backend::Postgres, &[("busy.yaml", MANY_RUNS)]).await;
    sluice.start_server(&["--no-scheduler"]).await;
    for name in ["scheduler-1", "scheduler-2"] {
        let scheduler = sluice.spawn(name, &["scheduler"]);
        sluice.extra.push(scheduler);
    }
    sluice.spawn_worker(&["--slots", "4"]);
    sluice.spawn_worker(&["--slots", "4"]);
    sluice.wait_dag("busy").await;

    let runs = sluice
        .eventually("20 finished runs", Duration::from_secs(120), || async {
            let runs = runs_of(&sluice, "busy").await;
            (runs.len() >= 20 && runs.iter().all(|r| r["state"] == "success")).then_some(runs)
        })
        .await;
    let dates = logical_dates(&runs);
    let mut unique = dates.clone();
    unique.dedup();
    assert_eq!(dates.len(), 20, "{dates:?}");
    assert_eq!(unique.len(), 20, "no logical date twice");
    for run in &runs {
        let run_id = run["dag_run_id"].as_str().unwrap();
        for task in ["a", "b", "c"] {
            let tries = sluice.tries("busy", run_id, task).await;
            assert_eq!(tries.len(), 1, "{run_id}/{task} ran once: {tries:?}");
        }
    }
    // Both schedulers really were at work.
    for scheduler in &sluice.extra {
        assert!(scheduler.output().contains("scheduler started"), "{}", scheduler.output());
    }
}

const GOOD: &str = r#"
dag_id: good
schedule: null
is_paused_upon_creation: false
tasks:
  - id: hello
    script: echo hello
"#;

const BROKEN: &str = r#"
dag_id: broken
schedule: null
tasks:
  - id: a
    depends_on: [b]
    script: echo a
  - id: b
    depends_on: [a]
    scirpt: echo b
"#;

#[tokio::test]
async fn a_broken_dag_file_is_an_import_error_and_the_others_still_run() {
    let sluice = Sluice::start(Backend::Postgres, &[("good.yaml", GOOD), ("broken.yaml", BROKEN)], 1).await;
    let errors = sluice
        .eventually("an import error", Duration::from_secs(30), || async {
            let (_, body) = sluice.get("/importErrors").await;
            (body["total_entries"] == 1).then_some(body)
        })
        .await;
    let error = &errors["import_errors"][0];
    assert!(error["filename"].as_str().unwrap().ends_with("broken.yaml"), "{error}");
    let trace = error["stack_trace"].as_str().unwrap();
    assert!(trace.contains("broken.yaml:10:"), "unknown field located: {trace}");
    assert!(trace.contains("script"), "did you mean: {trace}");
    assert!(trace.contains("cycle"), "{trace}");

    let run_id = sluice.trigger("good", json!({})).await;
    let run = sluice.wait_run_done("good", &run_id, Duration::from_secs(30)).await;
    assert_eq!(run["state"], "success");

    // Breaking a good file keeps its last good version; fixing the broken one clears its error.
    sluice.add_dag("good.yaml", "dag_id: good\ntasks: [");
    sluice.add_dag("broken.yaml", GOOD.replace("dag_id: good", "dag_id: mended").as_str());
    sluice
        .eventually("good.yaml's import error", Duration::from_secs(30), || async {
            let (_, body) = sluice.get("/importErrors").await;
            let files: Vec<String> = body["import_errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["filename"].as_str().unwrap().to_string())
                .collect();
            (files.len() == 1 && files[0].ends_with("good.yaml")).then_some(())
        })
        .await;
    sluice.wait_dag("mended").await;
    let (_, good) = sluice.get("/dags/good").await;
    assert_eq!(good["has_import_errors"], true, "{good}");
    let run_id = sluice.trigger("good", json!({})).await;
    let run = sluice.wait_run_done("good", &run_id, Duration::from_secs(30)).await;
    assert_eq!(run["state"], "success", "the last good version still runs");

    std::fs::remove_file(sluice.dags.path().join("broken.yaml")).unwrap();
    sluice
        .eventually("mended to become stale", Duration::from_secs(30), || async {
            let (_, dag) = sluice.get("/dags/mended").await;
            (dag["is_stale"] == true).then_some(())
        })
        .await;
}

const OVERLONG: &str = r#"
dag_id: overlong
schedule: null
is_paused_upon_creation: false
dagrun_timeout: 2s
tasks:
  - id: long
    script: sleep 60
  - id: after
    depends_on: [long]
    script: echo never
"#;

#[tokio::test]
async fn dagrun_timeout_fails_the_run_and_stops_its_tasks() {
    let sluice = Sluice::start(Backend::Postgres, &[("overlong.yaml", OVERLONG)], 1).await;
    let run_id = sluice.trigger("overlong", json!({})).await;
    sluice.wait_task_state("overlong", &run_id, "long", "running").await;
    let run = sluice.wait_run_done("overlong", &run_id, Duration::from_secs(30)).await;
    assert_eq!(run["state"], "failed");
    let states = sluice.task_states("overlong", &run_id).await;
    assert_eq!(states["long"], "skipped", "{states:?}");
    assert_eq!(states["after"], "skipped", "{states:?}");
    let tries = sluice.tries("overlong", &run_id, "long").await;
    assert!(tries[0]["error"].as_str().unwrap().contains("dagrun_timeout"), "{tries:?}");
    // The worker learns on its next heartbeat that the lease is gone and kills the task.
    sluice
        .eventually("the worker to drop the task", Duration::from_secs(20), || async {
            sluice.workers[0].output().contains("lease is lost").then_some(())
        })
        .await;
}

const PAUSED: &str = r#"
dag_id: paused_daily
schedule: "@daily"
start_date: 2026-01-01
catchup: true
tasks:
  - id: work
    script: echo work
"#;

#[tokio::test]
async fn a_paused_dag_creates_and_starts_nothing_until_unpaused() {
    let sluice = Sluice::start(Backend::Sqlite, &[("paused.yaml", PAUSED)], 1).await;
    let dag = sluice.wait_dag("paused_daily").await;
    assert_eq!(dag["is_paused"], true, "DAGs start paused by default");
    let manual = sluice.trigger("paused_daily", json!({})).await;
    // Let the scheduler make several passes after the DAG appeared.
    a_few_scheduler_passes(&sluice).await;
    let runs = runs_of(&sluice, "paused_daily").await;
    assert_eq!(runs.len(), 1, "only the manual run: {runs:?}");
    assert_eq!(runs[0]["state"], "queued", "a paused DAG's run waits");

    sluice.unpause("paused_daily").await;
    let run = sluice.wait_run_done("paused_daily", &manual, Duration::from_secs(30)).await;
    assert_eq!(run["state"], "success");
    sluice
        .eventually("catchup runs after unpausing", Duration::from_secs(30), || async {
            let runs = runs_of(&sluice, "paused_daily").await;
            runs.iter().any(|r| r["run_type"] == "scheduled").then_some(())
        })
        .await;
}

const VERSIONED_V1: &str = r#"
dag_id: versioned
schedule: null
is_paused_upon_creation: false
tasks:
  - id: slow
    script: sleep 2
  - id: say
    depends_on: [slow]
    script: echo "version one"
"#;

#[tokio::test]
async fn a_run_keeps_the_dag_version_it_started_with() {
    let sluice = Sluice::start(Backend::Postgres, &[("versioned.yaml", VERSIONED_V1)], 1).await;
    let first = sluice.trigger("versioned", json!({})).await;
    sluice.wait_task_state("versioned", &first, "slow", "running").await;
    sluice.add_dag("versioned.yaml", &VERSIONED_V1.replace("version one", "version two"));
    sluice
        .eventually("the new version to be read", Duration::from_secs(20), || async {
            let (_, dag) = sluice.get("/dags/versioned").await;
            let parsed = chrono::DateTime::parse_from_rfc3339(dag["last_parsed_time"].as_str()?).ok()?;
            let (_, run) = sluice.get(&format!("/dags/versioned/dagRuns/{first}")).await;
            let started = chrono::DateTime::parse_from_rfc3339(run["start_date"].as_str()?).ok()?;
            (parsed > started).then_some(())
        })
        .await;
    let second = sluice.trigger("versioned", json!({})).await;
    for (run_id, expected) in [(&first, "version one"), (&second, "version two")] {
        let run = sluice.wait_run_done("versioned", run_id, Duration::from_secs(30)).await;
        assert_eq!(run["state"], "success");
        let log = sluice.log("versioned", run_id, "say", 1).await;
        assert!(log.contains(expected), "{run_id}: {log}");
    }
}

const EVERY: &str = r#"
dag_id: every_two_seconds
schedule: {every: 2s}
start_date: 2026-01-01
is_paused_upon_creation: false
tasks:
  - id: work
    script: echo "{{ data_interval_start }} {{ data_interval_end }}"
"#;

#[tokio::test]
async fn an_every_schedule_runs_back_to_back_intervals() {
    let sluice = Sluice::start(Backend::Sqlite, &[("every.yaml", EVERY)], 1).await;
    let runs = sluice
        .eventually("three scheduled runs", Duration::from_secs(30), || async {
            let runs = runs_of(&sluice, "every_two_seconds").await;
            (runs.len() >= 3).then_some(runs)
        })
        .await;
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let mut intervals: Vec<_> =
        runs.iter().map(|r| (time(&r["data_interval_start"]), time(&r["data_interval_end"]))).collect();
    intervals.sort();
    for (start, end) in &intervals {
        assert_eq!(*end - *start, chrono::Duration::seconds(2), "{runs:?}");
    }
    for pair in intervals.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "back to back, each from the previous one's end: {runs:?}");
    }
    assert!(runs.iter().all(|r| r["run_type"] == "scheduled"), "{runs:?}");
    let (_, dag) = sluice.get("/dags/every_two_seconds").await;
    assert_eq!(dag["timetable_summary"], "every 2s", "{dag}");
}

const EVENTS: &str = r#"
dag_id: race_days
schedule:
  event_dates: ["2026-01-02T06:00:00", "2026-01-01T06:00:00", "2100-01-01T06:00:00"]
  description: Race days
timezone: Europe/Paris
catchup: true
is_paused_upon_creation: false
tasks:
  - id: work
    script: echo "{{ logical_date }} {{ data_interval_start }} {{ data_interval_end }}"
"#;

#[tokio::test]
async fn an_events_schedule_runs_once_at_each_past_event_and_plans_the_next() {
    let sluice = Sluice::start(Backend::Sqlite, &[("events.yaml", EVENTS)], 1).await;
    let runs = sluice
        .eventually("two finished event runs", Duration::from_secs(30), || async {
            let runs = runs_of(&sluice, "race_days").await;
            (runs.len() == 2 && runs.iter().all(|r| r["state"] == "success")).then_some(runs)
        })
        .await;
    // Local times in Paris (UTC+1 in January), sorted; each run's data interval is its event.
    assert_eq!(logical_dates(&runs), ["2026-01-01T05:00:00Z", "2026-01-02T05:00:00Z"]);
    for run in &runs {
        assert_eq!(run["run_type"], "scheduled", "{run}");
        assert_eq!(run["data_interval_start"], run["logical_date"], "{run}");
        assert_eq!(run["data_interval_end"], run["logical_date"], "{run}");
    }
    let log = sluice.log("race_days", "scheduled__2026-01-02T05:00:00+00:00", "work", 1).await;
    assert!(log.contains("2026-01-02T05:00:00+00:00 2026-01-02T05:00:00+00:00 2026-01-02T05:00:00+00:00"), "{log}");
    let (_, dag) = sluice.get("/dags/race_days").await;
    assert_eq!(dag["timetable_summary"], "Race days", "{dag}");
    assert_eq!(dag["next_dagrun_logical_date"], "2100-01-01T05:00:00Z", "{dag}");
    assert_eq!(dag["is_backfillable"], false, "{dag}");
}

const ASSET_CONDITIONS: &str = include_str!("../../dags/examples/asset_conditions.yaml");

const ON_EITHER_PRICE_LIST: &str = r#"
dag_id: on_either_price_list
schedule: {assets: {any: [lake://example/prices_eu, lake://example/prices_us]}}
is_paused_upon_creation: false
tasks:
  - id: work
    script: echo work
"#;

fn producer(dag_id: &str, uri: &str) -> String {
    format!(
        "dag_id: {dag_id}\nschedule: null\nis_paused_upon_creation: false\ntasks:\n  - id: write\n    script: echo \
         wrote\n    outputs: ['{uri}']\n"
    )
}

/// The runs of a DAG of this type.
async fn runs_of_type(sluice: &Sluice, dag_id: &str, run_type: &str) -> Vec<Value> {
    runs_of(sluice, dag_id).await.into_iter().filter(|r| r["run_type"] == run_type).collect()
}

/// Waits until the scheduler has made a few passes from now.
async fn a_few_scheduler_passes(sluice: &Sluice) {
    let from = Utc::now();
    sluice
        .eventually("a few scheduler passes", Duration::from_secs(20), || async {
            let (_, health) = sluice.get("/monitor/health").await;
            let beat = health["scheduler"]["latest_scheduler_heartbeat"].as_str()?;
            let beat = chrono::DateTime::parse_from_rfc3339(beat).ok()?;
            (beat > from + chrono::Duration::seconds(2)).then_some(())
        })
        .await;
}

async fn asset_conditions_start_runs_as_airflow_3(backend: Backend) {
    let (orders, eu, us) = (
        producer("orders", "lake://example/orders"),
        producer("prices_eu", "lake://example/prices_eu"),
        producer("prices_us", "lake://example/prices_us"),
    );
    let files = [
        ("asset_conditions.yaml", ASSET_CONDITIONS),
        ("either.yaml", ON_EITHER_PRICE_LIST),
        ("orders.yaml", orders.as_str()),
        ("eu.yaml", eu.as_str()),
        ("us.yaml", us.as_str()),
    ];
    let sluice = Sluice::start(backend, &files, 1).await;
    let produce = |dag_id: &'static str| {
        let sluice = &sluice;
        async move {
            let run = sluice.trigger(dag_id, json!({})).await;
            assert_eq!(sluice.wait_run_done(dag_id, &run, Duration::from_secs(30)).await["state"], "success");
        }
    };
    let wait_runs = |dag_id: &'static str, n: usize| {
        let sluice = &sluice;
        async move {
            sluice
                .eventually(&format!("{n} asset-triggered runs of {dag_id}"), Duration::from_secs(30), || async {
                    let runs = runs_of_type(sluice, dag_id, "asset_triggered").await;
                    (runs.len() == n && runs.iter().all(|r| r["state"] == "success")).then_some(())
                })
                .await;
        }
    };

    // `any`: each price list starts a run on its own.
    produce("prices_eu").await;
    wait_runs("on_either_price_list", 1).await;
    produce("prices_us").await;
    wait_runs("on_either_price_list", 2).await;

    // The example waits paused while all three assets are updated; unpaused, one run takes all three events, and
    // its cron gives it the latest day's run as well.
    produce("orders").await;
    let example = "example_asset_conditions";
    assert!(runs_of(&sluice, example).await.is_empty());
    sluice.unpause(example).await;
    wait_runs(example, 1).await;
    sluice
        .eventually("the cron's run", Duration::from_secs(30), || async {
            (runs_of_type(&sluice, example, "scheduled").await.len() == 1).then_some(())
        })
        .await;

    // New orders alone do not satisfy `all: [orders, any: [eu, us]]`: the first run consumed both price lists'
    // events, though one was enough.
    produce("orders").await;
    a_few_scheduler_passes(&sluice).await;
    assert_eq!(runs_of_type(&sluice, example, "asset_triggered").await.len(), 1);
    produce("prices_us").await;
    wait_runs(example, 2).await;
    wait_runs("on_either_price_list", 3).await;
    let (_, dag) = sluice.get(&format!("/dags/{example}")).await;
    assert_eq!(
        dag["timetable_summary"],
        "0 6 * * * or assets: lake://example/orders & (lake://example/prices_eu | lake://example/prices_us)"
    );
}

#[tokio::test]
async fn asset_conditions_start_runs_as_airflow_3_on_sqlite() {
    asset_conditions_start_runs_as_airflow_3(Backend::Sqlite).await;
}

#[tokio::test]
async fn asset_conditions_start_runs_as_airflow_3_on_postgres() {
    asset_conditions_start_runs_as_airflow_3(Backend::Postgres).await;
}
