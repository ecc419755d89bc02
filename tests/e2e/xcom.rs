//! Keyed task outputs (Airflow's XCom) on real workers and PostgreSQL: a command pushes two keys, a return value and
//! a 200 KiB value that the worker writes to the lake; a Python function pushes with `multiple_outputs` and
//! `ti.xcom_push`; downstream templates read them all; the API lists and reads every entry, creates and changes
//! entries as Airflow 3's does (with its status codes and roles), and clearing a task instance removes its entries.
//!
//! The DAG is `dags/examples/xcom.yaml`, with its function beside it.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice};

const DAG: &str = "example_xcom";
const EXAMPLES: [(&str, &str); 3] = [
    ("__init__.py", include_str!("../../dags/examples/__init__.py")),
    ("xcom.yaml", include_str!("../../dags/examples/xcom.yaml")),
    ("xcom_functions.py", include_str!("../../dags/examples/xcom_functions.py")),
];
const BIG: usize = 200 * 1024;

/// What `lake_uri` makes of an id: one path segment.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn entries_path(run_id: &str, task_id: &str) -> String {
    format!("/dags/{DAG}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries")
}

async fn keys(sluice: &Sluice, path: &str) -> (Vec<String>, i64) {
    let (status, body) = sluice.get(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    let keys = body["xcom_entries"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap().to_owned());
    (keys.collect(), body["total_entries"].as_i64().unwrap())
}

async fn value(sluice: &Sluice, run_id: &str, task_id: &str, key: &str) -> Value {
    let (status, body) = sluice.get(&format!("{}/{key}", entries_path(run_id, task_id))).await;
    assert_eq!(status, 200, "{key}: {body}");
    assert_eq!(body["key"], key, "{body}");
    body["value"].clone()
}

#[tokio::test]
async fn keyed_outputs_are_pushed_read_downstream_and_served_as_xcom_entries() {
    let mut sluice = Sluice::new(Backend::Postgres, &[]).await;
    let examples = sluice.dags.path().join("examples");
    std::fs::create_dir(&examples).unwrap();
    for (name, text) in EXAMPLES {
        std::fs::write(examples.join(name), text).unwrap();
    }
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "4"]);
    let run_id = sluice.trigger(DAG, json!({})).await;
    let run = sluice.wait_run_done(DAG, &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.run_logs(DAG, &run_id).await);

    // Downstream templates read the keys, the return value, and the value the lake keeps.
    let consumed = sluice.log(DAG, &run_id, "consume", 1).await;
    let want = format!("rows=42 path=s3://bucket/2026-01-01.csv big={BIG} ok=True missing=none");
    assert!(consumed.contains(&want), "{consumed}");
    let reported = sluice.log(DAG, &run_id, "report", 1).await;
    assert!(reported.contains("total=344 species=Adelie,Chinstrap,Gentoo checked_by=split"), "{reported}");

    // The 200 KiB value is in the lake, where the report said; the database keeps where.
    let file = sluice.lake.path().join(format!("_xcom/{DAG}/{}/produce/-1/big.json", segment(&run_id)));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(text.len(), BIG + 2, "a JSON string of {BIG} characters");

    // The API lists every key, in key order, filtered and paged; and reads each one, the large one too.
    let produce = entries_path(&run_id, "produce");
    assert_eq!(
        keys(&sluice, &produce).await,
        (vec!["big".into(), "meta".into(), "return_value".into(), "rows".into()], 4)
    );
    assert_eq!(keys(&sluice, &format!("{produce}?xcom_key=rows")).await, (vec!["rows".into()], 1));
    assert_eq!(keys(&sluice, &format!("{produce}?limit=1&offset=1")).await, (vec!["meta".into()], 4));
    assert_eq!(value(&sluice, &run_id, "produce", "rows").await, json!(42));
    assert_eq!(value(&sluice, &run_id, "produce", "meta").await, json!({"path": "s3://bucket/2026-01-01.csv"}));
    assert_eq!(value(&sluice, &run_id, "produce", "return_value").await, json!({"ok": true}));
    assert_eq!(value(&sluice, &run_id, "produce", "big").await, json!("x".repeat(BIG)));
    let (status, body) = sluice.get(&format!("{produce}/nope")).await;
    assert_eq!(status, 404, "{body}");
    let split = entries_path(&run_id, "split");
    let want_split = vec!["checked_by".into(), "return_value".into(), "species".into(), "total".into()];
    assert_eq!(keys(&sluice, &split).await, (want_split, 4));
    assert_eq!(value(&sluice, &run_id, "split", "return_value").await["total"], 344, "the whole dict too");
    assert_eq!(value(&sluice, &run_id, "split", "total").await, json!(344));

    // POST creates an entry (201) once (409 after), as Airflow 3's create_xcom_entry.
    let note = json!({"key": "note", "value": {"by": "api"}});
    let (status, body) = sluice.post(&produce, note.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["key"].as_str(), &body["value"], &body["task_id"]),
        (Some("note"), &json!({"by": "api"}), &json!("produce"))
    );
    let (status, body) = sluice.post(&produce, note).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = sluice.post(&produce, json!({"key": "return_value", "value": 1})).await;
    assert_eq!(status, 409, "the return value exists too: {body}");
    let (status, body) = sluice.post(&produce, json!({"key": "a/b", "value": 1})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = sluice.post(&produce, json!({"key": "k", "value": 1, "extra": true})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = sluice.post(&produce, json!({"key": "k", "value": 1, "map_index": 3})).await;
    assert_eq!(status, 404, "no such task instance: {body}");
    let (status, body) = sluice.post(&entries_path(&run_id, "nope"), json!({"key": "k", "value": 1})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(value(&sluice, &run_id, "produce", "note").await, json!({"by": "api"}));

    // A Viewer may read entries, not create or change them.
    sluice.create_user("viewer", "Viewer", "viewer-password-1").await;
    let viewer = sluice.login("viewer", "viewer-password-1").await;
    let path = format!("/api/v2{produce}");
    let (status, body) =
        sluice.request_as(Some(&viewer), Method::POST, &path, Some(json!({"key": "v", "value": 1}))).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        sluice.request_as(Some(&viewer), Method::PATCH, &format!("{path}/rows"), Some(json!({"value": 0}))).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = sluice.request_as(Some(&viewer), Method::GET, &format!("{path}/rows"), None).await;
    assert_eq!(status, 200);

    // PATCH replaces a value (200), a large one into the lake too; a key without an entry is 404.
    let (status, body) = sluice.request(Method::PATCH, &format!("{path}/rows"), Some(json!({"value": 43}))).await;
    assert_eq!((status, &body["value"]), (200, &json!(43)), "{body}");
    assert_eq!(value(&sluice, &run_id, "produce", "rows").await, json!(43));
    let large = json!({"lines": vec!["y".repeat(1000); 100]});
    let (status, body) = sluice.request(Method::PATCH, &format!("{path}/note"), Some(json!({"value": large}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&sluice, &run_id, "produce", "note").await, large);
    assert!(file.with_file_name("note.json").exists(), "the large value went to the lake");
    let (status, body) = sluice.request(Method::PATCH, &format!("{path}/nope"), Some(json!({"value": 1}))).await;
    assert_eq!(status, 404, "{body}");

    // Clearing `consume` removes its entries; its next try reads the patched value.
    let consume = entries_path(&run_id, "consume");
    let (status, body) = sluice.post(&consume, json!({"key": "note", "value": "before the clear"})).await;
    assert_eq!(status, 201, "{body}");
    let clear = json!({"dry_run": false, "dag_run_id": run_id, "task_ids": ["consume"], "only_failed": false});
    let (status, body) = sluice.post(&format!("/dags/{DAG}/clearTaskInstances"), clear).await;
    assert_eq!(status, 200, "{body}");
    sluice
        .eventually("consume to run again", Duration::from_secs(60), || async {
            let (_, tries) = sluice.get(&format!("/dags/{DAG}/dagRuns/{run_id}/taskInstances/consume/tries")).await;
            let (_, run) = sluice.get(&format!("/dags/{DAG}/dagRuns/{run_id}")).await;
            (tries["total_entries"] == 2 && run["state"] == "success").then_some(())
        })
        .await;
    assert_eq!(keys(&sluice, &consume).await, (Vec::new(), 0), "the cleared entry is gone");
    let consumed = sluice.log(DAG, &run_id, "consume", 2).await;
    assert!(consumed.contains("rows=43 "), "{consumed}");
}
