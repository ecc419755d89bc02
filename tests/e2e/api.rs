//! The REST API beyond running DAGs: connections, pools, clearing and marking runs and tasks, XCom entries, DAG
//! details, sources, filters and deletion, against a real server.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice};

async fn patch(sluice: &Sluice, path: &str, body: Value) -> (u16, Value) {
    sluice.request(Method::PATCH, &format!("/api/v2{path}"), Some(body)).await
}

async fn delete(sluice: &Sluice, path: &str) -> (u16, Value) {
    sluice.request(Method::DELETE, &format!("/api/v2{path}"), None).await
}

fn task_ids(collection: &Value) -> BTreeSet<String> {
    collection["task_instances"].as_array().unwrap().iter().map(|t| t["task_id"].as_str().unwrap().into()).collect()
}

#[tokio::test]
async fn connections_and_pools_have_full_crud_and_never_show_secrets() {
    let sluice = Sluice::start(Backend::Sqlite, &[], 0).await;
    let warehouse = json!({
        "connection_id": "warehouse", "conn_type": "postgres", "host": "db.internal", "login": "etl",
        "password": "s3cret", "port": 5432, "extra": r#"{"sslmode": "require", "api_key": "k-123"}"#,
    });
    let (status, created) = sluice.post("/connections", warehouse.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["password"], "***");
    let extra: Value = serde_json::from_str(created["extra"].as_str().unwrap()).unwrap();
    assert_eq!((extra["sslmode"].as_str(), extra["api_key"].as_str()), (Some("require"), Some("***")));
    assert!(!created.to_string().contains("s3cret") && !created.to_string().contains("k-123"));

    assert_eq!(sluice.post("/connections", warehouse.clone()).await.0, 409);
    let (status, body) = sluice.post("/connections", json!({"connection_id": "bad id!", "conn_type": "http"})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("connection_id"), "{body}");
    let (status, body) =
        sluice.post("/connections", json!({"connection_id": "x", "conn_type": "http", "extra": "[1]"})).await;
    assert_eq!(status, 422, "{body}");

    let mut changed = warehouse.clone();
    changed["host"] = json!("db2.internal");
    changed["password"] = json!("***");
    let (status, patched) = patch(&sluice, "/connections/warehouse?update_mask=host", changed).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((patched["host"].as_str(), patched["login"].as_str()), (Some("db2.internal"), Some("etl")));
    assert_eq!(patched["password"], "***", "the stored password is kept, and still hidden");
    let (status, body) = patch(&sluice, "/connections/warehouse?update_mask=colour", warehouse.clone()).await;
    assert_eq!(status, 400, "{body}");

    let (_, list) = sluice.get("/connections").await;
    assert_eq!(list["total_entries"], 1);
    assert_eq!(delete(&sluice, "/connections/warehouse").await.0, 204);
    let (status, body) = sluice.get("/connections/warehouse").await;
    assert_eq!(status, 404, "{body}");

    let (_, pools) = sluice.get("/pools").await;
    let default = &pools["pools"][0];
    assert_eq!((default["name"].as_str(), default["slots"].as_i64()), (Some("default_pool"), Some(128)));
    let (status, gpu) = sluice.post("/pools", json!({"name": "gpu", "slots": 2, "description": "GPUs"})).await;
    assert_eq!(status, 201, "{gpu}");
    assert_eq!((gpu["open_slots"].as_i64(), gpu["occupied_slots"].as_i64()), (Some(2), Some(0)));
    assert_eq!(sluice.post("/pools", json!({"name": "gpu", "slots": 1})).await.0, 409);
    assert_eq!(sluice.post("/pools", json!({"name": "neg", "slots": -2})).await.0, 422);
    let (status, gpu) = patch(&sluice, "/pools/gpu?update_mask=slots", json!({"slots": 5, "description": "x"})).await;
    assert_eq!(status, 200, "{gpu}");
    assert_eq!((gpu["slots"].as_i64(), gpu["description"].as_str()), (Some(5), Some("GPUs")));
    let (status, body) = delete(&sluice, "/pools/default_pool").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(delete(&sluice, "/pools/gpu").await.0, 204);
    assert_eq!(sluice.get("/pools/gpu").await.0, 404);
}

fn recoverable(marker: &str) -> String {
    format!(
        r#"
dag_id: recoverable
schedule: null
is_paused_upon_creation: false
tasks:
  - id: flaky
    script: 'test -f "{marker}" && echo ready || {{ echo "input missing"; exit 1; }}'
  - id: after
    depends_on: [flaky]
    script: |
      echo '::output::{{"done": true}}'
"#
    )
}

#[tokio::test]
async fn failed_runs_are_cleared_marked_and_deleted() {
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("input-ready");
    let dag = recoverable(marker.to_str().unwrap());
    let sluice = Sluice::start(Backend::Postgres, &[("recoverable.yaml", &dag)], 1).await;
    let run_id = sluice.trigger("recoverable", json!({})).await;
    let run = sluice.wait_run_done("recoverable", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed");
    assert_eq!(run["dag_versions"][0]["version_number"], 1, "{run}");

    // A dry run lists what a clear would touch and changes nothing.
    let run_path = format!("/dags/recoverable/dagRuns/{run_id}");
    let (status, dry) = sluice.post(&format!("{run_path}/clear"), json!({"dry_run": true})).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(task_ids(&dry), BTreeSet::from(["after".into(), "flaky".into()]));
    assert_eq!(sluice.get(&run_path).await.1["state"], "failed");

    // The input arrives; clearing the failed task and its downstream runs both again, and the run succeeds.
    std::fs::write(&marker, "").unwrap();
    let body = json!({"dry_run": false, "dag_run_id": run_id, "task_ids": ["flaky"], "include_downstream": true});
    let (status, cleared) = sluice.post("/dags/recoverable/clearTaskInstances", body).await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["total_entries"], 2, "{cleared}");
    let run = sluice.wait_run_done("recoverable", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{}", sluice.all_output());
    let tries = sluice.tries("recoverable", &run_id, "flaky").await;
    assert_eq!(tries.len(), 2, "one try before the clear, one after: {tries:?}");

    // The output is an XCom entry with Airflow's key.
    let xcom_path = format!("{run_path}/taskInstances/after/xcomEntries");
    let (_, entries) = sluice.get(&xcom_path).await;
    assert_eq!(entries["total_entries"], 1, "{entries}");
    let (status, entry) = sluice.get(&format!("{xcom_path}/return_value")).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["value"], json!({"done": true}));
    assert_eq!(sluice.get(&format!("{xcom_path}/other_key")).await.0, 404);

    // Marking tasks changes them, not the finished run (as in Airflow)...
    let ti_path = format!("{run_path}/taskInstances/flaky");
    let body = json!({"new_state": "failed", "include_downstream": true});
    let (status, marked) = patch(&sluice, &ti_path, body).await;
    assert_eq!(status, 200, "{marked}");
    assert_eq!(task_ids(&marked), BTreeSet::from(["after".into(), "flaky".into()]));
    assert!(marked["task_instances"].as_array().unwrap().iter().all(|t| t["state"] == "failed"), "{marked}");
    assert_eq!(sluice.get(&run_path).await.1["state"], "success");
    // ...but marking one success resumes the run: the failed task downstream of it runs again.
    let (status, marked) = patch(&sluice, &ti_path, json!({"new_state": "success"})).await;
    assert_eq!(status, 200, "{marked}");
    // Queued again, and started by the scheduler's next pass, which may come before this read.
    let resumed = sluice.get(&run_path).await.1["state"].clone();
    assert!(resumed == "queued" || resumed == "running", "{resumed}");
    let run = sluice.wait_run_done("recoverable", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{}", sluice.all_output());
    assert_eq!(sluice.tries("recoverable", &run_id, "after").await.len(), 2);
    assert_eq!(sluice.tries("recoverable", &run_id, "flaky").await.len(), 2, "flaky was marked, not run");
    let (status, body) = patch(&sluice, &ti_path, json!({"new_state": "running"})).await;
    assert_eq!(status, 400, "{body}");

    // The run is marked failed by hand, with a note.
    let (status, run) = patch(&sluice, &run_path, json!({"state": "failed", "note": "checked by hand"})).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!((run["state"].as_str(), run["note"].as_str()), (Some("failed"), Some("checked by hand")));
    let (status, body) = patch(&sluice, &run_path, json!({"state": "running"})).await;
    assert_eq!(status, 422, "{body}");
    // PostgreSQL cannot store a NUL character: that is the caller's mistake, not a server error.
    let (status, body) = patch(&sluice, &run_path, json!({"note": "nul \u{0} here"})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("NUL"), "{body}");
    let (status, body) = sluice.get("/assets/events?source_dag_id=%00").await;
    assert_eq!(status, 422, "{body}");

    assert_eq!(delete(&sluice, &run_path).await.0, 204);
    assert_eq!(sluice.get(&run_path).await.0, 404);
    assert_eq!(delete(&sluice, &run_path).await.0, 404);
}

const FINANCE: &str = r#"
dag_id: finance_report
description: Monthly numbers
tags: [finance, reports]
owner: alice
schedule: "@daily"
start_date: 2026-01-01
timezone: Europe/Paris
tasks:
  - id: sum
    command: ["true"]
"#;

const OPS: &str = r#"
dag_id: ops_cleanup
tags: [ops]
schedule: null
tasks:
  - id: sweep
    command: ["true"]
"#;

#[tokio::test]
async fn dags_are_filtered_detailed_paused_in_bulk_and_deleted() {
    let sluice = Sluice::start(Backend::Sqlite, &[("finance.yaml", FINANCE), ("ops.yaml", OPS)], 1).await;
    sluice.wait_dag("finance_report").await;
    sluice.wait_dag("ops_cleanup").await;

    let ids = |body: &Value| -> Vec<String> {
        body["dags"].as_array().unwrap().iter().map(|d| d["dag_id"].as_str().unwrap().to_string()).collect()
    };
    let (_, by_tag) = sluice.get("/dags?tags=finance&tags=nothing").await;
    assert_eq!(ids(&by_tag), ["finance_report"]);
    let (_, both_tags) = sluice.get("/dags?tags=finance&tags=ops&tags_match_mode=all").await;
    assert_eq!(both_tags["total_entries"], 0);
    let (_, by_owner) = sluice.get("/dags?owners=alice").await;
    assert_eq!(ids(&by_owner), ["finance_report"]);
    let (_, reversed) = sluice.get("/dags?order_by=-dag_id").await;
    assert_eq!(ids(&reversed), ["ops_cleanup", "finance_report"]);
    let (status, body) = sluice.get("/dags?order_by=colour").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = sluice.get("/dags?limit=-1").await;
    assert_eq!(status, 422, "{body}");

    let dag = &by_tag["dags"][0];
    assert_eq!((dag["timetable_periodic"].as_bool(), dag["is_backfillable"].as_bool()), (Some(true), Some(true)));
    assert_eq!(dag["tags"][0]["dag_display_name"], "finance_report");

    let (status, paused) = patch(&sluice, "/dags?dag_id_pattern=o", json!({"is_paused": false})).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["total_entries"], 2, "both ids contain an o");
    assert!(paused["dags"].as_array().unwrap().iter().all(|d| d["is_paused"] == false), "{paused}");

    let (status, details) = sluice.get("/dags/finance_report/details").await;
    assert_eq!(status, 200, "{details}");
    assert_eq!(details["timezone"], "Europe/Paris");
    assert_eq!(details["start_date"], "2025-12-31T23:00:00Z", "midnight in Paris");
    assert_eq!(details["latest_dag_version"]["version_number"], 1);
    assert_eq!(details["catchup"], false);
    let (status, source) = sluice.get("/dagSources/finance_report").await;
    assert_eq!(status, 200, "{source}");
    assert_eq!(source["content"], FINANCE);
    assert_eq!(sluice.get("/dagSources/finance_report?version_number=7").await.0, 404);

    let run_id = sluice.trigger("ops_cleanup", json!({})).await;
    sluice.wait_run_done("ops_cleanup", &run_id, Duration::from_secs(60)).await;
    let (_, across) = sluice.get("/dags/~/dagRuns/~/taskInstances?task_id=sweep").await;
    assert_eq!(task_ids(&across), BTreeSet::from(["sweep".into()]));
    let (_, batch) = sluice.post("/dags/~/dagRuns/list", json!({"dag_ids": ["ops_cleanup"]})).await;
    assert_eq!(batch["total_entries"], 1, "{batch}");

    assert_eq!(delete(&sluice, "/dags/ops_cleanup").await.0, 204);
    let (status, _) = sluice.get(&format!("/dags/ops_cleanup/dagRuns/{run_id}")).await;
    assert_eq!(status, 404, "the DAG's runs went with it");
    assert_eq!(delete(&sluice, "/dags/no_such_dag").await.0, 404);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_renders_at_docs() {
    let sluice = Sluice::start(Backend::Sqlite, &[], 0).await;
    let (status, doc) = sluice.request(Method::GET, "/api/v2/openapi.json", None).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v2/dags", "patch"),
        ("/api/v2/dags/{dag_id}/dagRuns", "post"),
        ("/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/clear", "post"),
        ("/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}", "get"),
        ("/api/v2/connections/{connection_id}", "delete"),
        ("/api/v2/pools/{pool_name}", "patch"),
        ("/api/v2/variables/{variable_key}", "get"),
        ("/api/v2/backfills/{backfill_id}/cancel", "put"),
        ("/api/v2/assets/events", "get"),
        ("/api/v2/assets/lineage", "get"),
        ("/auth/token", "post"),
        ("/auth/api-keys/{id}", "delete"),
        ("/auth/users/{username}", "patch"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is documented");
    }
    assert_eq!(doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"], "bearer", "{doc}");
    let run_state = &doc["components"]["schemas"]["RunState"]["enum"];
    assert_eq!(run_state, &json!(["queued", "running", "success", "failed"]));

    let page = sluice.http.get(format!("{}/docs", sluice.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("docs.js"));
    let (status, body) = sluice.get("/dags/x/dagRuns/y/taskInstances/z/logs/not-a-number").await;
    assert_eq!(status, 422, "a malformed path parameter is a JSON error: {body}");
}

/// Run states of a DAG's backfill runs, by logical date.
async fn backfill_states(sluice: &Sluice, dag_id: &str) -> Vec<String> {
    let (_, runs) = sluice.get(&format!("/dags/{dag_id}/dagRuns?run_type=backfill&order_by=logical_date")).await;
    runs["dag_runs"].as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap().to_owned()).collect()
}

fn count(states: &[String], state: &str) -> usize {
    states.iter().filter(|s| *s == state).count()
}

#[tokio::test]
async fn a_backfill_keeps_its_own_run_limit_and_can_be_paused_resumed_and_cancelled() {
    let scratch = tempfile::tempdir().unwrap();
    let gate = scratch.path().join("open");
    // The DAG allows one active run; the backfill two of its own. Each task waits until the gate file exists.
    let dag = format!(
        "dag_id: gated\nschedule: \"@daily\"\nstart_date: 2026-01-01\ncatchup: false\nmax_active_runs: 1\n\
         tasks:\n  - id: wait\n    script: 'while [ ! -f \"{}\" ]; do sleep 0.05; done'\n",
        gate.display()
    );
    let sluice = Sluice::start(Backend::Postgres, &[("gated.yaml", &dag)], 2).await;
    sluice.wait_dag("gated").await;
    sluice.unpause("gated").await;
    let body = json!({"dag_id": "gated", "from_date": "2026-01-01T00:00:00Z", "to_date": "2026-01-05T00:00:00Z",
                      "max_active_runs": 2});

    let (status, plan) = sluice.post("/backfills/dry_run", body.clone()).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["total_entries"], 5, "{plan}");
    assert_eq!(plan["backfills"][0]["logical_date"], "2026-01-01T00:00:00Z");
    assert!(backfill_states(&sluice, "gated").await.is_empty(), "a dry run creates nothing");

    let (status, backfill) = sluice.post("/backfills", body.clone()).await;
    assert_eq!(status, 200, "{backfill}");
    let id = backfill["id"].as_i64().unwrap();
    let states = sluice
        .eventually("two backfill runs running", Duration::from_secs(30), || async {
            let states = backfill_states(&sluice, "gated").await;
            (count(&states, "running") == 2).then_some(states)
        })
        .await;
    assert_eq!(count(&states, "queued"), 3, "{states:?}");
    let (status, again) = sluice.post("/backfills", body.clone()).await;
    assert_eq!(status, 409, "one unfinished backfill per DAG: {again}");

    // Paused: the running runs finish, the queued ones wait.
    let (status, paused) = sluice.request(Method::PUT, &format!("/api/v2/backfills/{id}/pause"), None).await;
    assert_eq!((status, paused["is_paused"].as_bool()), (200, Some(true)), "{paused}");
    std::fs::write(&gate, "").unwrap();
    sluice
        .eventually("the two running runs to succeed", Duration::from_secs(30), || async {
            let states = backfill_states(&sluice, "gated").await;
            (count(&states, "success") == 2).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&backfill_states(&sluice, "gated").await, "queued"), 3, "a paused backfill starts nothing");

    // Resumed with the gate shut again: two more start; cancelling fails the last, still queued one.
    std::fs::remove_file(&gate).unwrap();
    let (status, resumed) = sluice.request(Method::PUT, &format!("/api/v2/backfills/{id}/unpause"), None).await;
    assert_eq!((status, resumed["is_paused"].as_bool()), (200, Some(false)), "{resumed}");
    sluice
        .eventually("two more backfill runs running", Duration::from_secs(30), || async {
            let states = backfill_states(&sluice, "gated").await;
            (count(&states, "running") == 2).then_some(())
        })
        .await;
    let (status, cancelled) = sluice.request(Method::PUT, &format!("/api/v2/backfills/{id}/cancel"), None).await;
    assert_eq!(status, 200, "{cancelled}");
    assert!(!cancelled["completed_at"].is_null() && cancelled["is_paused"] == true, "{cancelled}");
    let states = backfill_states(&sluice, "gated").await;
    assert_eq!((count(&states, "success"), count(&states, "running"), count(&states, "failed")), (2, 2, 1));
    std::fs::write(&gate, "").unwrap();
    sluice
        .eventually("the running runs to finish after the cancel", Duration::from_secs(30), || async {
            (count(&backfill_states(&sluice, "gated").await, "success") == 4).then_some(())
        })
        .await;
    let (status, _) = sluice.request(Method::PUT, &format!("/api/v2/backfills/{id}/pause"), None).await;
    assert_eq!(status, 409, "a cancelled backfill is complete");
    let (status, missing) = sluice.request(Method::PUT, "/api/v2/backfills/999999/cancel", None).await;
    assert_eq!(status, 404, "{missing}");

    // Never more than the backfill's two runs at once, although the DAG itself allows one.
    let (_, runs) = sluice.get("/dags/gated/dagRuns?run_type=backfill").await;
    let started: Vec<Value> =
        runs["dag_runs"].as_array().unwrap().iter().filter(|r| !r["start_date"].is_null()).cloned().collect();
    assert_eq!(sluice_tests::max_overlapping(&started), 2);
}

#[tokio::test]
async fn a_pool_runs_no_more_task_instances_at_once_than_its_slots() {
    let dag = "dag_id: pooled\nschedule: null\ndefault_args:\n  pool: single\ntasks:\n\
               - {id: a, script: 'sleep 0.3'}\n- {id: b, script: 'sleep 0.3'}\n- {id: c, script: 'sleep 0.3'}\n\
               - {id: free, script: 'sleep 0.3', pool: default_pool}\n";
    let sluice = Sluice::start(Backend::Postgres, &[("pooled.yaml", dag)], 2).await;
    let (status, pool) = sluice.post("/pools", json!({"name": "single", "slots": 1})).await;
    assert_eq!(status, 201, "{pool}");
    sluice.wait_dag("pooled").await;
    sluice.unpause("pooled").await;
    let run_id = sluice.trigger("pooled", json!({})).await;
    let run = sluice.wait_run_done("pooled", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}");
    let mut pooled = Vec::new();
    for task in ["a", "b", "c"] {
        pooled.extend(sluice.tries("pooled", &run_id, task).await);
    }
    assert_eq!(sluice_tests::max_overlapping(&pooled), 1, "one slot, one task at a time: {pooled:?}");
    let mut all = pooled.clone();
    all.extend(sluice.tries("pooled", &run_id, "free").await);
    assert_eq!(sluice_tests::max_overlapping(&all), 2, "the task in another pool ran alongside");
}
