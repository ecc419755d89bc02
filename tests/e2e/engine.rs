//! The engine end to end: real server and worker processes run DAGs on PostgreSQL and SQLite.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use serde_json::json;
use sluice_tests::{Backend, Sluice, WORKER_TOKEN};

const EXAMPLE: &str = include_str!("../../dags/example_pipeline.yaml");

async fn example_pipeline_succeeds(backend: Backend) {
    let sluice = Sluice::start(backend, &[("example_pipeline.yaml", EXAMPLE)], 2).await;
    let run_id = sluice.trigger("example_pipeline", json!({"rows": 7})).await;
    let run = sluice.wait_run_done("example_pipeline", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    assert_eq!(run["run_type"], "manual");
    assert_eq!(run["conf"], json!({"rows": 7}));

    let states = sluice.task_states("example_pipeline", &run_id).await;
    let expected: Vec<_> = ["clean", "enrich", "extract", "load", "report"]
        .iter()
        .map(|t| (t.to_string(), "success".to_string()))
        .collect();
    assert_eq!(states.into_iter().collect::<Vec<_>>(), expected);

    // Outputs flow downstream through templates, and rendered values are kept with the try.
    let (_, extract) = sluice.get(&format!("/dags/example_pipeline/dagRuns/{run_id}/taskInstances/extract")).await;
    assert_eq!(extract["output"], json!({"rows": 7}));
    let clean_log = sluice.log("example_pipeline", &run_id, "clean", 1).await;
    assert!(clean_log.contains("cleaning 7 rows"), "{clean_log}");
    let (_, load) = sluice.get(&format!("/dags/example_pipeline/dagRuns/{run_id}/taskInstances/load")).await;
    assert_eq!(load["output"], json!({"loaded": true}), "the $SLUICE_OUTPUT file is the output");
    let tries = sluice.tries("example_pipeline", &run_id, "extract").await;
    let argv = tries[0]["rendered_fields"]["argv"].to_string();
    assert!(argv.contains("extracting 7 rows"), "rendered argv kept with the try: {argv}");
}

#[tokio::test]
async fn example_pipeline_succeeds_on_postgres() {
    example_pipeline_succeeds(Backend::Postgres).await;
}

#[tokio::test]
async fn example_pipeline_succeeds_on_sqlite() {
    example_pipeline_succeeds(Backend::Sqlite).await;
}

const FLAKY: &str = r#"
dag_id: flaky
schedule: null
is_paused_upon_creation: false
tasks:
  - id: fail
    script: echo "try {{ ti.try_number }} fails"; exit 3
    retries: 2
    retry_delay: 1s
    retry_exponential_backoff: true
  - id: after
    depends_on: [fail]
    script: echo never
  - id: cleanup
    depends_on: [fail]
    trigger_rule: all_done
    script: echo cleaning up
"#;

fn seconds_between(earlier: &serde_json::Value, later: &serde_json::Value) -> f64 {
    let parse = |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    (parse(later) - parse(earlier)).num_milliseconds() as f64 / 1000.0
}

#[tokio::test]
async fn failing_task_retries_with_backoff_then_fails_the_run() {
    let sluice = Sluice::start(Backend::Postgres, &[("flaky.yaml", FLAKY)], 1).await;
    let run_id = sluice.trigger("flaky", json!({})).await;
    let run = sluice.wait_run_done("flaky", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed");

    let states = sluice.task_states("flaky", &run_id).await;
    assert_eq!(states["fail"], "failed");
    assert_eq!(states["after"], "upstream_failed");
    assert_eq!(states["cleanup"], "success", "all_done runs after a failure");

    let tries = sluice.tries("flaky", &run_id, "fail").await;
    assert_eq!(tries.len(), 3, "1 try + 2 retries: {tries:?}");
    for (i, t) in tries.iter().enumerate() {
        assert_eq!(t["try_number"], i as i64 + 1);
        assert_eq!(t["state"], "failed");
        assert_eq!(t["exit_code"], 3);
    }
    // retry_delay 1s, doubled for the second retry.
    let first_gap = seconds_between(&tries[0]["end_date"], &tries[1]["start_date"]);
    let second_gap = seconds_between(&tries[1]["end_date"], &tries[2]["start_date"]);
    assert!(first_gap >= 1.0, "first retry after {first_gap}s");
    assert!(second_gap >= 2.0, "second retry after {second_gap}s");
    assert!(sluice.log("flaky", &run_id, "fail", 2).await.contains("try 2 fails"));
}

#[tokio::test]
async fn invalid_requests_get_json_errors() {
    let sluice = Sluice::start(Backend::Sqlite, &[("example_pipeline.yaml", EXAMPLE)], 0).await;
    sluice.wait_dag("example_pipeline").await;

    let (status, body) = sluice.post("/dags/nope/dagRuns", json!({"logical_date": null})).await;
    assert_eq!(status, 404);
    assert!(body["detail"].as_str().unwrap().contains("nope"), "{body}");

    let (status, body) =
        sluice.post("/dags/example_pipeline/dagRuns", json!({"logical_date": null, "conf": "x"})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].is_string());

    let (status, body) =
        sluice.post("/dags/example_pipeline/dagRuns", json!({"logical_date": null, "conf": {"rows": 5000}})).await;
    assert_eq!(status, 400, "param above its maximum: {body}");
    assert!(body["detail"].as_str().unwrap().contains("rows"), "{body}");

    let (status, body) =
        sluice.post("/dags/example_pipeline/dagRuns", json!({"logical_date": null, "colour": 1})).await;
    assert_eq!(status, 422, "unknown field: {body}");
    assert!(body["detail"].as_str().unwrap().contains("colour"), "{body}");

    let run = json!({"dag_run_id": "mine", "logical_date": null});
    assert_eq!(sluice.post("/dags/example_pipeline/dagRuns", run.clone()).await.0, 200);
    let (status, body) = sluice.post("/dags/example_pipeline/dagRuns", run).await;
    assert_eq!(status, 409, "{body}");

    let (status, body) = sluice.get("/dags?limit=-1").await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = sluice.get("/dags/example_pipeline/dagRuns/mine/taskInstances/nope").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn workers_need_the_token_and_stale_leases_change_nothing() {
    let sluice = Sluice::start(Backend::Postgres, &[("example_pipeline.yaml", EXAMPLE)], 0).await;
    let lease_url = format!("{}/worker/v1/lease", sluice.url);
    let request = json!({"worker": "w", "hostname": "h", "queues": ["default"], "slots": 1, "wait_ms": 5000});

    let anonymous = sluice.http.post(&lease_url).json(&request).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let forged = sluice.http.post(&lease_url).bearer_auth("guess").json(&request).send().await.unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    assert!(forged.json::<serde_json::Value>().await.unwrap()["detail"].is_string());

    // Speak the worker protocol by hand: lease the first task of a run.
    sluice.trigger("example_pipeline", json!({})).await;
    let leased: serde_json::Value = sluice
        .http
        .post(&lease_url)
        .bearer_auth(WORKER_TOKEN)
        .json(&request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = &leased["tasks"][0];
    assert_eq!(task["task_id"], "extract", "{leased}");
    let ti_id = task["ti_id"].as_str().unwrap();
    // The DAG is scheduled too, so the leased task may belong to its scheduled run.
    let run_id = task["dag_run_id"].as_str().unwrap();
    let report_url = format!("{}/worker/v1/tasks/{ti_id}/report", sluice.url);
    let report = |lease_id: String| json!({"lease_id": lease_id, "outcome": "success", "exit_code": 0, "error": null, "output": null, "pid": null});

    let stale = sluice
        .http
        .post(&report_url)
        .bearer_auth(WORKER_TOKEN)
        .json(&report(uuid::Uuid::now_v7().to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 409);
    let states = sluice.task_states("example_pipeline", run_id).await;
    assert_eq!(states["extract"], "running", "a stale report changes nothing");

    let lease_id = task["lease_id"].as_str().unwrap().to_string();
    let ok =
        sluice.http.post(&report_url).bearer_auth(WORKER_TOKEN).json(&report(lease_id.clone())).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 204);
    let again = sluice.http.post(&report_url).bearer_auth(WORKER_TOKEN).json(&report(lease_id)).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 409, "a second report of the same try is stale");
    let states = sluice.task_states("example_pipeline", run_id).await;
    assert_eq!(states["extract"], "success");
    assert_eq!(states["clean"], "queued", "downstream queued in the same transaction as the report");
}

const WIDE: &str = r#"
dag_id: wide
schedule: null
is_paused_upon_creation: false
max_active_tasks: 2
tasks:
  - {id: a, script: sleep 0.5}
  - {id: b, script: sleep 0.5}
  - {id: c, script: sleep 0.5}
  - {id: d, script: sleep 0.5}
  - {id: e, script: sleep 0.5}
  - {id: f, script: sleep 0.5}
"#;

#[tokio::test]
async fn max_active_tasks_bounds_what_runs_at_once() {
    let sluice = Sluice::start(Backend::Postgres, &[("wide.yaml", WIDE)], 2).await;
    let run_id = sluice.trigger("wide", json!({})).await;
    let run = sluice.wait_run_done("wide", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success");
    let tis = sluice.task_instances("wide", &run_id).await;
    assert_eq!(tis.len(), 6);
    assert_eq!(sluice_tests::max_overlapping(&tis), 2, "8 free slots, but at most 2 tasks at once: {tis:?}");
}

const DATED: &str = r#"
dag_id: dated
schedule: null
is_paused_upon_creation: false
tasks:
  - id: show
    script: echo "ds={{ ds }} start={{ data_interval_start }}"
"#;

#[tokio::test]
async fn a_manual_run_may_carry_a_logical_date() {
    let sluice = Sluice::start(Backend::Sqlite, &[("dated.yaml", DATED)], 1).await;
    sluice.wait_dag("dated").await;
    let body = json!({"dag_run_id": "march", "logical_date": "2026-03-01T00:00:00Z", "conf": {}});
    let (status, run) = sluice.post("/dags/dated/dagRuns", body).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["logical_date"], "2026-03-01T00:00:00Z");
    let run = sluice.wait_run_done("dated", "march", Duration::from_secs(30)).await;
    assert_eq!(run["state"], "success");
    let log = sluice.log("dated", "march", "show", 1).await;
    assert!(log.contains("ds=2026-03-01 start=2026-03-01T00:00:00+00:00"), "{log}");
}

const GREETER: &str = r#"
dag_id: greeter
schedule: null
is_paused_upon_creation: false
tasks:
  - id: greet
    script: echo "{{ var.value.greeting }}, {{ var.json.target.name }}"
"#;

#[tokio::test]
async fn variables_set_over_the_api_reach_templates() {
    let sluice = Sluice::start(Backend::Postgres, &[("greeter.yaml", GREETER)], 1).await;
    let (status, created) = sluice.post("/variables", json!({"key": "greeting", "value": "hello"})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created, json!({"key": "greeting", "value": "hello", "description": null, "is_encrypted": false}));
    let (status, body) = sluice.post("/variables", json!({"key": "greeting", "value": "again"})).await;
    assert_eq!(status, 409, "{body}");
    let target = json!({"key": "target", "value": "{\"name\": \"world\"}", "description": "JSON"});
    assert_eq!(sluice.post("/variables", target).await.0, 201);
    let patched = json!({"key": "greeting", "value": "bonjour", "description": "changed"});
    let (status, body) = sluice.request(reqwest::Method::PATCH, "/api/v2/variables/greeting", Some(patched)).await;
    assert_eq!((status, body["value"].as_str()), (200, Some("bonjour")), "{body}");
    let (_, list) = sluice.get("/variables").await;
    assert_eq!(list["total_entries"], 2);

    let run_id = sluice.trigger("greeter", json!({})).await;
    let run = sluice.wait_run_done("greeter", &run_id, Duration::from_secs(30)).await;
    assert_eq!(run["state"], "success");
    assert!(sluice.log("greeter", &run_id, "greet", 1).await.contains("bonjour, world"));

    let (status, _) = sluice.request(reqwest::Method::DELETE, "/api/v2/variables/target", None).await;
    assert_eq!(status, 204);
    assert_eq!(sluice.get("/variables/target").await.0, 404);
    // A template reading a missing variable fails the try with a message naming it.
    let run_id = sluice.trigger("greeter", json!({})).await;
    let run = sluice.wait_run_done("greeter", &run_id, Duration::from_secs(30)).await;
    assert_eq!(run["state"], "failed");
    let tries = sluice.tries("greeter", &run_id, "greet").await;
    assert!(tries[0]["error"].as_str().unwrap().contains("target"), "{tries:?}");
}

#[tokio::test]
async fn the_dashboard_is_served_from_the_binary() {
    let sluice = Sluice::start(Backend::Sqlite, &[], 0).await;
    let page = sluice.http.get(format!("{}/", sluice.url)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("<script type=\"module\" src=\"js/app.js\">"));
    let script = sluice.http.get(format!("{}/js/api.js", sluice.url)).send().await.unwrap();
    assert_eq!(script.status().as_u16(), 200);
    assert!(script.headers()["content-type"].to_str().unwrap().contains("javascript"));
    assert!(script.text().await.unwrap().contains("/api/v2"));
    let (status, body) = sluice.request(reqwest::Method::GET, "/nothing-here.css", None).await;
    assert_eq!(status, 404, "{body}");
}
