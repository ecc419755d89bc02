//! Task logs kept in the lake (`SLUICE_LOG_STORE=lake`): once a try has ended, its lines leave the `task_logs`
//! table for one object of the lake, and every way of reading a log — the REST endpoint whole, paged by
//! continuation token and as text, the dashboard's event stream, `sluice tasks logs --follow` — gives the same
//! lines, with the same ids, as before the move. On PostgreSQL and SQLite, with the lake in a folder and in an
//! S3-compatible bucket.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use reqwest::header::ACCEPT;
use serde_json::{Value, json};
use sluice_tests::{Backend, ObjectStore, Sluice, sluice_bin};
use sqlx::{Connection, Row};

const LINES: usize = 3000;

/// `count` prints 3,000 numbered lines; `flaky` fails its first try and succeeds on its second, each printing lines
/// that name the try.
const NUMBERED: &str = "dag_id: numbered
schedule: null
is_paused_upon_creation: false
tasks:
  - id: count
    script: seq 1 3000 | sed 's/^/line /'
  - id: flaky
    script: seq 1 40 | sed 's/^/try {{ ti.try_number }} line /'; test {{ ti.try_number }} -ge 2
    retries: 1
    retry_delay: 1s
";

/// Where a test's lake is.
enum TestLake {
    Folder,
    Bucket(Box<ObjectStore>),
}

impl TestLake {
    /// The object at a `lake://` URI: `Some(None)` when the lake is a bucket, whose listing says only that it is
    /// there (the test's own client cannot fetch keys that hold `%`).
    async fn object(&self, sluice: &Sluice, uri: &str) -> Option<Option<String>> {
        let path = uri.strip_prefix("lake://").unwrap();
        match self {
            TestLake::Folder => std::fs::read_to_string(sluice.lake.path().join(path)).ok().map(Some),
            TestLake::Bucket(store) => store.keys("lake").await.contains(&format!("prod/{path}")).then_some(None),
        }
    }
}

async fn start(backend: Backend, lake: &TestLake) -> Sluice {
    let mut sluice = Sluice::new(backend, &[("numbered.yaml", NUMBERED)]).await;
    if let TestLake::Bucket(store) = lake {
        store.create_bucket("lake").await;
        sluice.env = store.lake_env("s3://lake/prod");
    }
    sluice.env.push(("SLUICE_LOG_STORE".into(), "lake".into()));
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "2"]);
    sluice
}

/// The database of the deployment, as the test reads it behind the server's back.
async fn database(sluice: &Sluice) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&sluice.db.url).await.unwrap()
}

/// `(task_id, try_number) → log_uri` of the DAG's tries, and how many of their lines are still in `task_logs`.
async fn stored(db: &mut sqlx::AnyConnection) -> (Vec<(String, i64, Option<String>)>, i64) {
    let tries = sqlx::query(
        "SELECT ti.task_id, t.try_number, t.log_uri FROM task_tries t JOIN task_instances ti ON ti.id = t.ti_id
          WHERE ti.dag_id = 'numbered' ORDER BY ti.task_id, t.try_number",
    )
    .fetch_all(&mut *db)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("task_id"), r.get("try_number"), r.get("log_uri")))
    .collect();
    let rows: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM task_logs WHERE try_id IN (SELECT t.id FROM task_tries t
            JOIN task_instances ti ON ti.id = t.ti_id WHERE ti.dag_id = 'numbered')",
    )
    .fetch_one(&mut *db)
    .await
    .unwrap()
    .get("n");
    (tries, rows)
}

fn log_path(run_id: &str, task_id: &str, try_number: i64) -> String {
    format!("/dags/numbered/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}")
}

/// The whole log of a try from the REST endpoint: its lines as JSON objects.
async fn full_log(sluice: &Sluice, path: &str) -> Vec<Value> {
    let (status, body) = sluice.get(&format!("{path}?full_content=true")).await;
    assert_eq!(status, 200, "{body}");
    body["content"].as_array().unwrap().clone()
}

/// The text the task printed (its stdout), in the order the log gives it.
fn printed(lines: &[Value]) -> Vec<String> {
    lines.iter().filter(|l| l["stream"] == "stdout").map(|l| l["event"].as_str().unwrap().to_owned()).collect()
}

/// The log read page by page, `limit` lines each, from `token` on.
async fn paged_log(sluice: &Sluice, path: &str, limit: usize, mut token: Option<String>) -> (Vec<Value>, usize) {
    let (mut lines, mut pages) = (Vec::new(), 0);
    loop {
        let query = match &token {
            Some(t) => format!("{path}?limit={limit}&token={t}"),
            None => format!("{path}?limit={limit}"),
        };
        let (status, page) = sluice.get(&query).await;
        assert_eq!(status, 200, "{page}");
        let content = page["content"].as_array().unwrap();
        if content.is_empty() {
            return (lines, pages);
        }
        assert!(content.len() <= limit);
        pages += 1;
        lines.extend(content.iter().cloned());
        token = Some(page["continuation_token"].as_str().unwrap().to_owned());
    }
}

/// The log as text (`Accept: text/plain`).
async fn text_log(sluice: &Sluice, path: &str) -> String {
    let response = sluice
        .http
        .get(format!("{}/api/v2{path}?full_content=true", sluice.url))
        .bearer_auth(sluice.token.as_deref().unwrap())
        .header(ACCEPT, "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The dashboard's event stream of an ended try, read to its end: the `line` events' data, and the `end` event's.
async fn streamed_log(sluice: &Sluice, run_id: &str, task_id: &str, try_number: i64) -> (Vec<Value>, Value) {
    let url = format!("{}/api/v2/ui/logs/numbered/{run_id}/{task_id}/{try_number}", sluice.url);
    let request = sluice.http.get(url).bearer_auth(sluice.token.as_deref().unwrap()).send();
    let body = tokio::time::timeout(Duration::from_secs(30), async { request.await.unwrap().text().await.unwrap() })
        .await
        .expect("an ended try's stream ends by itself");
    let (mut lines, mut end) = (Vec::new(), Value::Null);
    for block in body.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let event = block.lines().find_map(|l| l.strip_prefix("event:")).map(str::trim);
        let data: String = block.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
        match event {
            Some("line") => lines.push(serde_json::from_str(&data).unwrap()),
            Some("end") => end = serde_json::from_str(&data).unwrap(),
            _ => {}
        }
    }
    (lines, end)
}

/// `sluice tasks logs DAG RUN TASK --follow`'s output.
fn followed_log(sluice: &Sluice, run_id: &str, task_id: &str) -> String {
    let output = std::process::Command::new(sluice_bin())
        .args(["tasks", "logs", "numbered", run_id, task_id, "--follow"])
        .env("SLUICE_SERVER", &sluice.url)
        .env("SLUICE_TOKEN", sluice.token.as_deref().unwrap())
        .env("XDG_CONFIG_HOME", sluice.dags.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

async fn logs_move_to_the_lake_and_read_the_same(backend: Backend, lake: TestLake) {
    let sluice = start(backend, &lake).await;
    let run_id = sluice.trigger("numbered", json!({})).await;
    let run = sluice.wait_run_done("numbered", &run_id, Duration::from_secs(90)).await;
    assert_eq!(run["state"], "success", "{}", sluice.run_logs("numbered", &run_id).await);
    let count = log_path(&run_id, "count", 1);
    // Read as soon as the run ends: the lines are most likely still in the database.
    let before = full_log(&sluice, &count).await;
    let expected: Vec<String> = (1..=LINES).map(|i| format!("line {i}")).collect();
    assert_eq!(printed(&before), expected);

    // Every try's lines leave the table; each try records where its object is.
    let tries = sluice
        .eventually("the tries' logs to move to the lake", Duration::from_secs(60), || async {
            let (tries, rows) = stored(&mut database(&sluice).await).await;
            (rows == 0 && tries.len() == 3 && tries.iter().all(|t| t.2.is_some())).then_some(tries)
        })
        .await;
    let names: Vec<(&str, i64)> = tries.iter().map(|(task, n, _)| (task.as_str(), *n)).collect();
    assert_eq!(names, [("count", 1), ("flaky", 1), ("flaky", 2)]);
    let count_uri = tries[0].2.clone().unwrap();
    assert!(count_uri.starts_with("lake://_logs/numbered/") && count_uri.ends_with("/count/-1/1.jsonl"), "{count_uri}");

    // The object holds every line with its id, time, stream and text: what the API served before the move.
    let object = lake.object(&sluice, &count_uri).await.unwrap_or_else(|| panic!("no object at {count_uri}"));
    if let Some(object) = object {
        let kept: Vec<Value> = object.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let as_served: Vec<Value> = kept
            .iter()
            .map(|l| json!({"id": l["id"], "timestamp": l["timestamp"], "event": l["line"], "stream": l["stream"]}))
            .collect();
        assert_eq!(as_served, before);
    }

    // Read from the lake: the same lines, whole, paged with continuation tokens, as text, and streamed.
    let after = full_log(&sluice, &count).await;
    assert_eq!(after, before, "the same lines, ids and times after the move");
    let (paged, pages) = paged_log(&sluice, &count, 700, None).await;
    assert_eq!(paged, before);
    assert!(pages >= LINES / 700, "{pages} pages");
    let middle = before.iter().position(|l| l["event"] == "line 1000").unwrap();
    let token = before[middle]["id"].to_string();
    let (rest, _) = paged_log(&sluice, &count, 999, Some(token)).await;
    assert_eq!(rest, before[middle + 1..], "a token from before the move reads on after it");
    let text = text_log(&sluice, &count).await;
    let lines: Vec<&str> = before.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(text, lines.iter().map(|l| format!("{l}\n")).collect::<String>());
    let (streamed, end) = streamed_log(&sluice, &run_id, "count", 1).await;
    assert_eq!(end, json!({"state": "success"}));
    let streamed: Vec<(i64, &str)> =
        streamed.iter().map(|l| (l["id"].as_i64().unwrap(), l["line"].as_str().unwrap())).collect();
    let served: Vec<(i64, &str)> =
        before.iter().map(|l| (l["id"].as_i64().unwrap(), l["event"].as_str().unwrap())).collect();
    assert_eq!(streamed, served);
    let followed = followed_log(&sluice, &run_id, "count");
    assert_eq!(followed.lines().collect::<Vec<_>>(), lines);

    // Each try of a retried task reads its own log.
    for try_number in [1, 2] {
        let log = full_log(&sluice, &log_path(&run_id, "flaky", try_number)).await;
        let expected: Vec<String> = (1..=40).map(|i| format!("try {try_number} line {i}")).collect();
        assert_eq!(printed(&log), expected, "try {try_number}");
    }
}

#[tokio::test]
async fn logs_move_to_a_lake_folder_on_postgres() {
    logs_move_to_the_lake_and_read_the_same(Backend::Postgres, TestLake::Folder).await;
}

#[tokio::test]
async fn logs_move_to_a_lake_folder_on_sqlite() {
    logs_move_to_the_lake_and_read_the_same(Backend::Sqlite, TestLake::Folder).await;
}

#[tokio::test]
async fn logs_move_to_a_lake_in_an_s3_bucket() {
    logs_move_to_the_lake_and_read_the_same(Backend::Postgres, TestLake::Bucket(Box::new(ObjectStore::start().await)))
        .await;
}
