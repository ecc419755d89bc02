//! Task groups end to end: the example DAG, with a group holding a nested group and a task that depends on the whole
//! group, run by real workers on PostgreSQL and SQLite; its grouping as the API shows it.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice};

const EXAMPLE: &str = include_str!("../../dags/examples/task_group.yaml");
const IN_GROUP: [&str; 4] = ["transform.clean", "transform.enrich", "transform.checks.rows", "transform.checks.schema"];

fn time(ti: &Value, field: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(ti[field].as_str().unwrap_or_else(|| panic!("{field} of {ti}"))).unwrap()
}

fn states(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(t, s)| ((*t).to_owned(), (*s).to_owned())).collect()
}

async fn by_task(sluice: &Sluice, run_id: &str) -> BTreeMap<String, Value> {
    let tis = sluice.task_instances("task_group", run_id).await;
    tis.into_iter().map(|ti| (ti["task_id"].as_str().unwrap().to_owned(), ti)).collect()
}

async fn a_group_runs_and_what_depends_on_it_waits_for_all_of_it(backend: Backend) {
    let sluice = Sluice::start(backend, &[("task_group.yaml", EXAMPLE)], 2).await;
    let run_id = sluice.trigger("task_group", json!({})).await;
    let run = sluice.wait_run_done("task_group", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let all_success: Vec<(&str, &str)> =
        ["start", "report"].into_iter().chain(IN_GROUP).map(|t| (t, "success")).collect();
    assert_eq!(sluice.task_states("task_group", &run_id).await, states(&all_success));

    // The group's roots waited for `start`; `report` waited for every task of the group, not only one.
    let tis = by_task(&sluice, &run_id).await;
    assert!(time(&tis["transform.clean"], "start_date") >= time(&tis["start"], "end_date"));
    for task in IN_GROUP {
        assert!(time(&tis["report"], "start_date") >= time(&tis[task], "end_date"), "report before {task} ended");
    }
    assert!(time(&tis["transform.checks.rows"], "start_date") >= time(&tis["transform.clean"], "end_date"));

    // default_args merge: the group's env over the DAG's, a nested group's over its parent's.
    let clean = sluice.log("task_group", &run_id, "transform.clean", 1).await;
    assert!(clean.contains("clean transform in eu"), "{clean}");
    let rows = sluice.log("task_group", &run_id, "transform.checks.rows", 1).await;
    assert!(rows.contains("rows checked in checks, eu"), "{rows}");
    // The output of a task in a group is read by its full id.
    let report = sluice.log("task_group", &run_id, "report", 1).await;
    assert!(report.contains("report for eu: 42 rows enriched"), "{report}");

    api_shows_the_grouping(&sluice, &run_id).await;

    // A failing task in the group: what depends on the group does not run.
    let failing = sluice.trigger("task_group", json!({"fail_schema": true})).await;
    let run = sluice.wait_run_done("task_group", &failing, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed", "{run}");
    let mut expected = all_success.clone();
    expected.retain(|(t, _)| !matches!(*t, "report" | "transform.checks.schema"));
    expected.extend([("report", "upstream_failed"), ("transform.checks.schema", "failed")]);
    assert_eq!(sluice.task_states("task_group", &failing).await, states(&expected));
    // The task's own `retries: 0` wins over the group's `retries: 1`.
    assert_eq!(sluice.tries("task_group", &failing, "transform.checks.schema").await.len(), 1);
    let schema = sluice.log("task_group", &failing, "transform.checks.schema", 1).await;
    assert!(schema.contains("schema check failed"), "{schema}");
}

async fn api_shows_the_grouping(sluice: &Sluice, run_id: &str) {
    let (status, tasks) = sluice.get("/dags/task_group/tasks").await;
    assert_eq!(status, 200, "{tasks}");
    assert_eq!(tasks["total_entries"], 6);
    let tasks: BTreeMap<String, Value> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["task_id"].as_str().unwrap().to_owned(), t.clone()))
        .collect();
    assert_eq!(tasks["start"]["group_id"], Value::Null);
    assert_eq!(tasks["transform.clean"]["group_id"], "transform");
    assert_eq!(tasks["transform.checks.rows"]["group_id"], "transform.checks");
    assert_eq!(tasks["transform.clean"]["retries"], 1);
    assert_eq!(tasks["transform.checks.schema"]["retries"], 0);
    assert_eq!(tasks["start"]["downstream_task_ids"], json!(["transform.clean"]));
    assert_eq!(tasks["transform.enrich"]["downstream_task_ids"], json!(["report"]));
    assert_eq!(tasks["transform.checks.schema"]["downstream_task_ids"], json!(["report"]));
    let (status, one) = sluice.get("/dags/task_group/tasks/transform.checks.rows").await;
    assert_eq!((status, &one["group_id"]), (200, &json!("transform.checks")), "{one}");
    assert_eq!(sluice.get("/dags/task_group/tasks/transform").await.0, 404);
    let (_, doc) = sluice.request(reqwest::Method::GET, "/api/v2/openapi.json", None).await;
    assert!(doc["paths"]["/api/v2/dags/{dag_id}/tasks/{task_id}"]["get"].is_object());
    assert!(doc["components"]["schemas"]["TaskResponse"]["properties"]["group_id"].is_object());
    assert!(doc["components"]["schemas"]["Structure"]["properties"]["groups"].is_object());

    let run_id = run_id.replace('+', "%2B");
    let (status, structure) = sluice.get(&format!("/ui/structure/task_group?run_id={run_id}")).await;
    assert_eq!(status, 200, "{structure}");
    assert_eq!(
        structure["groups"],
        json!([
            {"id": "transform", "label": "transform", "parent": null,
             "description": "Clean and enrich the day's data, and check it"},
            {"id": "transform.checks", "label": "checks", "parent": "transform", "description": null},
        ])
    );
    let node = |s: &Value, id: &str| s["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id).cloned();
    let rows = node(&structure, "transform.checks.rows").unwrap();
    assert_eq!((&rows["label"], &rows["group_id"]), (&json!("rows"), &json!("transform.checks")));

    // A collapsed group is drawn as one node, joined to what is around it.
    let (status, collapsed) =
        sluice.get(&format!("/ui/structure/task_group?run_id={run_id}&collapsed=transform")).await;
    assert_eq!(status, 200, "{collapsed}");
    let ids: Vec<&str> = collapsed["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["start", "report", "transform"]);
    let group = node(&collapsed, "transform").unwrap();
    assert_eq!((&group["kind"], &group["state"]), (&json!("group"), &json!("success")));
    let mut edges: Vec<(&str, &str)> = collapsed["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["source"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    edges.sort_unstable();
    assert_eq!(edges, [("start", "transform"), ("transform", "report")]);
    let (status, body) = sluice.get("/ui/structure/task_group?collapsed=transform,nope").await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn a_task_group_runs_on_postgres() {
    a_group_runs_and_what_depends_on_it_waits_for_all_of_it(Backend::Postgres).await;
}

#[tokio::test]
async fn a_task_group_runs_on_sqlite() {
    a_group_runs_and_what_depends_on_it_waits_for_all_of_it(Backend::Sqlite).await;
}
