//! Dynamic task mapping end to end on real workers: expansion over upstream outputs and literal lists, the reduce,
//! map_index in the API and the logs, clearing one instance, and the errors of lists that cannot be mapped.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice};

const MAPPING: &str = include_str!("../../dags/examples/mapping.yaml");
const DAG: &str = "example_mapping";

/// `(map_index, state)` of each instance of `task_id`, in map_index order.
async fn instances(sluice: &Sluice, run_id: &str, task_id: &str) -> Vec<(i64, String)> {
    let (status, body) =
        sluice.get(&format!("/dags/{DAG}/dagRuns/{run_id}/taskInstances/{task_id}/listMapped?limit=1000")).await;
    assert_eq!(status, 200, "{body}");
    body["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ti| (ti["map_index"].as_i64().unwrap(), ti["state"].as_str().unwrap_or("none").to_owned()))
        .collect()
}

async fn output_of(sluice: &Sluice, run_id: &str, task_id: &str, map_index: i64) -> Value {
    let path = format!("/dags/{DAG}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}");
    let (status, ti) = sluice.get(&path).await;
    assert_eq!(status, 200, "{ti}");
    assert_eq!(ti["map_index"], map_index);
    ti["output"].clone()
}

async fn a_map_over_fifty_files_is_reduced(backend: Backend) {
    let sluice = Sluice::start(backend, &[("mapping.yaml", MAPPING)], 2).await;
    sluice.wait_dag(DAG).await;
    let run_id = sluice.trigger(DAG, json!({})).await;
    let run = sluice.wait_run_done(DAG, &run_id, Duration::from_secs(120)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());

    let counted = instances(&sluice, &run_id, "count_lines").await;
    assert_eq!(counted.len(), 50);
    for (i, (map_index, state)) in counted.iter().enumerate() {
        assert_eq!((*map_index, state.as_str()), (i as i64, "success"));
    }
    // part_(i+1) has i+1 lines: each instance got its own element of the list.
    assert_eq!(output_of(&sluice, &run_id, "count_lines", 0).await, json!(1));
    assert_eq!(output_of(&sluice, &run_id, "count_lines", 49).await, json!(50));
    let path = format!("/dags/{DAG}/dagRuns/{run_id}/taskInstances/count_lines/logs/1?full_content=true&map_index=7");
    let (status, log) = sluice.get(&path).await;
    assert_eq!(status, 200, "{log}");
    let text = log["content"].to_string();
    assert!(text.contains("instance 7: ") && text.contains("part_8.txt has 8 lines"), "{text}");

    // The CLI reads one instance's log too.
    let output = std::process::Command::new(sluice_tests::sluice_bin())
        .args(["tasks", "logs", DAG, &run_id, "count_lines", "--map-index", "9"])
        .env("SLUICE_SERVER", &sluice.url)
        .env("SLUICE_TOKEN", sluice.token.as_deref().unwrap())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && printed.contains("instance 9: ") && printed.contains("has 10 lines"),
        "{printed}"
    );

    // The reduce sees the 50 outputs as one list in map_index order; mapping over a mapped task's outputs works.
    assert!(sluice.log(DAG, &run_id, "total", 1).await.contains("50 files, 1275 lines in all"));
    let doubled = instances(&sluice, &run_id, "double").await;
    assert_eq!(doubled.len(), 50);
    assert_eq!(output_of(&sluice, &run_id, "double", 49).await, json!(100));

    // A cross product, the last list varying fastest, and one instance per set of arguments.
    let mut combinations = Vec::new();
    for i in 0..6 {
        combinations.push(output_of(&sluice, &run_id, "combinations", i).await);
    }
    let want = ["small red", "small green", "small blue", "large red", "large green", "large blue"];
    assert_eq!(combinations, want.map(|c| json!(c)).to_vec());
    let path = format!("/dags/{DAG}/dagRuns/{run_id}/taskInstances/greet/logs/1?full_content=true&map_index=1");
    assert!(sluice.get(&path).await.1["content"].to_string().contains("Hi, Grace!"));

    // A mapped task asked for as if it were not mapped gets Airflow's answer.
    let (status, body) = sluice.get(&format!("/dags/{DAG}/dagRuns/{run_id}/taskInstances/count_lines")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("is mapped"), "{body}");

    // Clearing one instance reruns just it.
    let body = json!({"dry_run": false, "dag_run_id": run_id, "task_ids": [["count_lines", 3]], "only_failed": false});
    let (status, cleared) = sluice.post(&format!("/dags/{DAG}/clearTaskInstances"), body).await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["total_entries"], 1, "{cleared}");
    let run = sluice
        .eventually("instance 3 to run again", Duration::from_secs(60), || async {
            let (_, tries) =
                sluice.get(&format!("/dags/{DAG}/dagRuns/{run_id}/taskInstances/count_lines/3/tries")).await;
            let (_, run) = sluice.get(&format!("/dags/{DAG}/dagRuns/{run_id}")).await;
            (tries["total_entries"] == 2 && run["state"] == "success").then_some(run)
        })
        .await;
    assert_eq!(run["state"], "success");
    let (_, other) = sluice.get(&format!("/dags/{DAG}/dagRuns/{run_id}/taskInstances/count_lines/4/tries")).await;
    assert_eq!(other["total_entries"], 1, "the other instances did not run again: {other}");
}

#[tokio::test]
async fn a_map_over_fifty_files_is_reduced_on_postgres() {
    a_map_over_fifty_files_is_reduced(Backend::Postgres).await;
}

#[tokio::test]
async fn a_map_over_fifty_files_is_reduced_on_sqlite() {
    a_map_over_fifty_files_is_reduced(Backend::Sqlite).await;
}

/// Upstream outputs that cannot be mapped over: not a list, and longer than max_map_length.
const UNMAPPABLE: &str = r#"
dag_id: unmappable
schedule: null
is_paused_upon_creation: false
params:
  items: {default: {"not": "a list"}}
tasks:
  - id: make
    script: echo '::output::{{ params["items"] | tojson }}'
  - id: each
    expand:
      item: {output: make}
    max_map_length: 3
    script: echo "{{ args.item }}"
  - id: after
    depends_on: [each]
    script: "true"
"#;

#[tokio::test]
async fn lists_that_cannot_be_mapped_fail_the_task_that_made_them_and_empty_ones_skip() {
    let sluice =
        Sluice::start(Backend::Postgres, &[("unmappable.yaml", UNMAPPABLE), ("mapping.yaml", MAPPING)], 1).await;
    sluice.wait_dag("unmappable").await;
    for (items, message) in [
        (
            json!({"not": "a list"}),
            "task `each` expands over the output of `make`, which must be a list; got {\"not\":\"a list\"}",
        ),
        (json!([1, 2, 3, 4]), "task `each` would be expanded into 4 instances, more than its max_map_length of 3"),
    ] {
        let run_id = sluice.trigger("unmappable", json!({"items": items})).await;
        let run = sluice.wait_run_done("unmappable", &run_id, Duration::from_secs(60)).await;
        assert_eq!(run["state"], "failed", "{run}");
        let tries = sluice.tries("unmappable", &run_id, "make").await;
        assert!(tries[0]["error"].as_str().unwrap().contains(message), "{tries:?}");
        let states = sluice.task_states("unmappable", &run_id).await;
        assert_eq!(states["each"], "upstream_failed", "nothing was expanded: {states:?}");
    }

    // An empty list skips the mapped task, and the skip follows the trigger rules downstream.
    let run_id = sluice.trigger("unmappable", json!({"items": []})).await;
    let run = sluice.wait_run_done("unmappable", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}");
    let states = sluice.task_states("unmappable", &run_id).await;
    assert_eq!((states["each"].as_str(), states["after"].as_str()), ("skipped", "skipped"), "{states:?}");
    let (_, each) = sluice.get(&format!("/dags/unmappable/dagRuns/{run_id}/taskInstances/each")).await;
    assert_eq!(each["map_index"], -1, "an unexpanded task keeps its placeholder: {each}");
}

#[tokio::test]
async fn a_mapping_over_an_unknown_task_is_an_import_error_with_its_line() {
    let bad = "dag_id: bad_map\nschedule: null\ntasks:\n  - id: each\n    expand:\n      x: {output: nope}\n    script: \"true\"\n";
    let sluice = Sluice::start(Backend::Sqlite, &[("bad_map.yaml", bad)], 0).await;
    let errors = sluice
        .eventually("the import error", Duration::from_secs(30), || async {
            let (_, body) = sluice.get("/importErrors").await;
            (body["total_entries"] == 1).then_some(body)
        })
        .await;
    let text = errors["import_errors"][0]["stack_trace"].as_str().unwrap();
    assert!(text.contains("bad_map.yaml:6:") && text.contains("reads the output of `nope`"), "{text}");
}
