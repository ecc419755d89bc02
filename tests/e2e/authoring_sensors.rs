//! Sensors end to end on real workers, on PostgreSQL and SQLite: a reschedule-mode file sensor that frees the only
//! worker slot while it waits (another task runs meanwhile) and whose wait survives a server restart, a poke-mode
//! time sensor, and timeouts that skip with `soft_fail` and fail without a retry otherwise.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Json, State};
use axum::http::StatusCode;
use axum::routing::get;

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice, TestDb};
use sqlx::Connection as _;

const EXAMPLE: &str = include_str!("../../dags/examples/sensors.yaml");
const DAG: &str = "example_sensors";

const TIMEOUTS: &str = r#"dag_id: sensor_timeouts
schedule: null
is_paused_upon_creation: false
tasks:
  - id: soft
    kind: sensor
    sensor: {type: file, path: never/there.csv}
    mode: reschedule
    poke_interval: 1s
    timeout: 2s
    soft_fail: true
  - id: after_soft
    depends_on: [soft]
    script: echo "never runs"
  # A sensor's timeout fails it at once: its retries are not used, as in Airflow.
  - id: hard
    kind: sensor
    sensor: {type: file, path: never/there.csv}
    poke_interval: 1s
    timeout: 2s
    retries: 2
    retry_delay: 1s
"#;

const PRODUCER: &str = r#"dag_id: producer
schedule: null
is_paused_upon_creation: false
tasks:
  - id: produce
    script: sleep 2; echo produced
"#;

// Waits for the producer's task, and for its whole run, of the same logical date.
const CONSUMER: &str = r#"dag_id: consumer
schedule: null
is_paused_upon_creation: false
tasks:
  - id: wait_for_task
    kind: sensor
    sensor: {type: external_task, external_dag_id: producer, external_task_id: produce}
    poke_interval: 1s
    timeout: 1m
  - id: wait_for_run
    kind: sensor
    sensor: {type: external_task, external_dag_id: producer, allowed_states: [success]}
    poke_interval: 1s
    timeout: 1m
  - id: consume
    depends_on: [wait_for_task, wait_for_run]
    script: echo consumed
"#;

const SQL: &str = r#"dag_id: sql_sensor
schedule: null
is_paused_upon_creation: false
tasks:
  - id: wait_for_flag
    kind: sensor
    sensor: {type: sql, connection: warehouse, sql: "SELECT ready FROM flags WHERE day = '{{ ds }}'"}
    mode: reschedule
    poke_interval: 1s
    timeout: 1m
"#;

/// A job API: 404 on the first call, then the job running, then done.
async fn job(State(calls): State<Arc<AtomicUsize>>) -> (StatusCode, Json<Value>) {
    match calls.fetch_add(1, Ordering::SeqCst) {
        0 => (StatusCode::NOT_FOUND, Json(json!({"detail": "no such job yet"}))),
        1 => (StatusCode::OK, Json(json!({"job": {"state": "running"}}))),
        _ => (StatusCode::OK, Json(json!({"job": {"state": "done"}}))),
    }
}

fn http_dag(url: &str) -> String {
    format!(
        "dag_id: http_sensor
schedule: null
is_paused_upon_creation: false
tasks:
  - id: wait_for_job
    kind: sensor
    sensor: {{type: http, url: '{url}/jobs/{{{{ ds }}}}', field: job.state, equals: done}}
    mode: reschedule
    poke_interval: 1s
    timeout: 1m
"
    )
}

fn time(ti: &Value, field: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(ti[field].as_str().unwrap_or_else(|| panic!("{field} of {ti}"))).unwrap()
}

fn expected(rows: &[(&str, &str)]) -> BTreeMap<String, String> {
    rows.iter().map(|(task, state)| (task.to_string(), state.to_string())).collect()
}

async fn task_instance(sluice: &Sluice, run_id: &str, task_id: &str) -> Value {
    let (status, ti) = sluice.get(&format!("/dags/{DAG}/dagRuns/{run_id}/taskInstances/{task_id}")).await;
    assert_eq!(status, 200, "{ti}");
    ti
}

async fn a_reschedule_sensor_frees_the_only_slot_while_it_waits(backend: Backend) {
    let mut sluice = Sluice::new(backend, &[("sensors.yaml", EXAMPLE)]).await;
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "1"]);
    let run_id = sluice.trigger(DAG, json!({})).await;
    let file_due = tokio::time::Instant::now() + Duration::from_secs(3);

    // The sensor waits without its slot: the API shows it up for reschedule, and the other task runs to its end on
    // that one slot before the file exists.
    let waiting = sluice.wait_task_state(DAG, &run_id, "wait_for_file", "up_for_reschedule").await;
    assert_eq!(waiting["try_number"], 1, "{waiting}");
    sluice.wait_task_state(DAG, &run_id, "other_work", "success").await;
    let sensor = task_instance(&sluice, &run_id, "wait_for_file").await;
    assert_ne!(sensor["state"], "success", "{sensor}");

    // The file the sensor waits for comes 3 seconds after the trigger.
    tokio::time::sleep_until(file_due).await;
    let incoming = sluice.dags.path().join("data/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::write(incoming.join("ready.csv"), "a,b\n1,2\n").unwrap();
    let file_written = Utc::now();

    let run = sluice.wait_run_done(DAG, &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let want = expected(&[
        ("wait_for_file", "success"),
        ("other_work", "success"),
        ("process", "success"),
        ("settle", "success"),
    ]);
    assert_eq!(sluice.task_states(DAG, &run_id).await, want);

    let sensor = task_instance(&sluice, &run_id, "wait_for_file").await;
    let other = task_instance(&sluice, &run_id, "other_work").await;
    // The sensor took the slot first, then let the other task have it, and ended only after the file came.
    assert!(time(&other, "start_date") > time(&sensor, "start_date"), "{other}\n{sensor}");
    assert!(time(&other, "end_date") < file_written, "{other}");
    assert!(time(&sensor, "end_date") > file_written, "{sensor}");

    // The pokes are one try: Airflow keeps try_number across reschedules, and the log goes on.
    assert_eq!(sensor["try_number"], 1, "{sensor}");
    let tries = sluice.tries(DAG, &run_id, "wait_for_file").await;
    assert_eq!(tries.len(), 1, "{tries:?}");
    assert_eq!(tries[0]["state"], "success", "{tries:?}");
    let log = sluice.log(DAG, &run_id, "wait_for_file", 1).await;
    assert!(log.matches("not yet: rescheduled").count() >= 2, "{log}");
    assert!(log.contains("the condition holds"), "{log}");

    // The time sensor pokes in its try, holding the slot, until 8 s after the run's data interval end (its
    // `run_after` for a run triggered without a logical date).
    let settle = task_instance(&sluice, &run_id, "settle").await;
    let base = if run["data_interval_end"].is_string() { "data_interval_end" } else { "run_after" };
    assert!(time(&settle, "end_date") >= time(&run, base) + Duration::from_secs(8), "{settle}\n{run}");
    let log = sluice.log(DAG, &run_id, "settle", 1).await;
    assert!(log.contains("not yet: next poke in 1s"), "{log}");
}

async fn a_waiting_sensor_survives_a_server_restart(backend: Backend) {
    let mut sluice = Sluice::new(backend, &[("sensors.yaml", EXAMPLE)]).await;
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "1"]);
    let run_id = sluice.trigger(DAG, json!({"file": "data/late.csv"})).await;
    sluice.wait_task_state(DAG, &run_id, "wait_for_file", "up_for_reschedule").await;

    // The wait is in the database: a new server pokes again where the killed one left off.
    if let Some(server) = sluice.server.as_mut() {
        server.kill_9();
    }
    sluice.start_server(&[]).await;
    sluice.add_data("late.csv", "a\n1\n");

    let run = sluice.wait_run_done(DAG, &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let tries = sluice.tries(DAG, &run_id, "wait_for_file").await;
    assert_eq!(tries.len(), 1, "{tries:?}");
    let log = sluice.log(DAG, &run_id, "wait_for_file", 1).await;
    assert!(log.contains("late.csv") && log.contains("the condition holds"), "{log}");
}

async fn trigger_at(sluice: &Sluice, dag_id: &str, logical_date: &str) -> String {
    sluice.wait_dag(dag_id).await;
    let body = json!({"logical_date": logical_date, "conf": {}});
    let (status, run) = sluice.post(&format!("/dags/{dag_id}/dagRuns"), body).await;
    assert_eq!(status, 200, "{run}");
    run["dag_run_id"].as_str().unwrap().to_owned()
}

async fn an_external_task_sensor_waits_for_another_dags_task_and_run(backend: Backend) {
    let sluice = Sluice::start(backend, &[("producer.yaml", PRODUCER), ("consumer.yaml", CONSUMER)], 1).await;
    let date = "2026-05-01T00:00:00Z";
    let consumer = trigger_at(&sluice, "consumer", date).await;
    // Nothing of the producer exists yet at that date: the sensors wait, without a slot.
    sluice.wait_task_state("consumer", &consumer, "wait_for_task", "up_for_reschedule").await;
    let producer = trigger_at(&sluice, "producer", date).await;

    let run = sluice.wait_run_done("consumer", &consumer, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let (_, produced) = sluice.get(&format!("/dags/producer/dagRuns/{producer}")).await;
    assert_eq!(produced["state"], "success", "{produced}");
    let tis = sluice.task_instances("producer", &producer).await;
    let consumed = sluice.task_instances("consumer", &consumer).await;
    let end = |tis: &[Value], task: &str| time(tis.iter().find(|t| t["task_id"] == task).unwrap(), "end_date");
    // Each sensor ended after what it waited for.
    assert!(end(&consumed, "wait_for_task") > end(&tis, "produce"));
    assert!(end(&consumed, "wait_for_run") > time(&produced, "end_date"));
    let log = sluice.log("consumer", &consumer, "wait_for_run", 1).await;
    assert!(log.contains("poking the run of DAG producer for the same logical date: none yet"), "{log}");
    assert!(log.contains("the condition holds"), "{log}");
}

async fn a_sql_sensor_waits_for_a_true_first_cell(backend: Backend) {
    let warehouse = TestDb::new(Backend::Postgres).await;
    let mut db = sqlx::PgConnection::connect(&warehouse.url).await.unwrap();
    sqlx::raw_sql("CREATE TABLE flags (day text, ready boolean)").execute(&mut db).await.unwrap();
    let sluice = Sluice::start(backend, &[("sql.yaml", SQL)], 1).await;
    let url = reqwest::Url::parse(&warehouse.url).unwrap();
    let connection = json!({
        "connection_id": "warehouse", "conn_type": "postgres", "host": url.host_str(), "port": url.port(),
        "login": url.username(), "password": url.password(), "schema": url.path().trim_start_matches('/')
    });
    let (status, created) = sluice.post("/connections", connection).await;
    assert_eq!(status, 201, "{created}");

    let run_id = sluice.trigger("sql_sensor", json!({})).await;
    sluice.wait_task_state("sql_sensor", &run_id, "wait_for_flag", "up_for_reschedule").await;
    let day = Utc::now().format("%Y-%m-%d").to_string();
    // A false first cell is not enough; a true one is.
    sqlx::query("INSERT INTO flags VALUES ($1, false)").bind(&day).execute(&mut db).await.unwrap();
    let log = sluice
        .eventually("a poke that sees the false flag", Duration::from_secs(30), || async {
            let log = sluice.log("sql_sensor", &run_id, "wait_for_flag", 1).await;
            log.contains("returned false").then_some(log)
        })
        .await;
    assert!(!log.contains("the condition holds"), "{log}");
    sqlx::query("UPDATE flags SET ready = true WHERE day = $1").bind(&day).execute(&mut db).await.unwrap();
    let run = sluice.wait_run_done("sql_sensor", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let log = sluice.log("sql_sensor", &run_id, "wait_for_flag", 1).await;
    assert!(log.contains("returned true") && log.contains("the condition holds"), "{log}");
}

async fn an_http_sensor_waits_for_a_field_of_the_response(backend: Backend) {
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/jobs/{day}", get(job)).with_state(calls.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sluice = Sluice::start(backend, &[("http.yaml", &http_dag(&url))], 1).await;

    let run_id = sluice.trigger("http_sensor", json!({})).await;
    let run = sluice.wait_run_done("http_sensor", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    // A 404 and a job still running were pokes that did not hold; the third holds.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let log = sluice.log("http_sensor", &run_id, "wait_for_job", 1).await;
    assert!(log.contains("HTTP 404 Not Found from") && log.contains("the condition holds"), "{log}");
    assert_eq!(log.matches("not yet: rescheduled").count(), 2, "{log}");
}

async fn a_sensor_timeout_skips_with_soft_fail_and_fails_without_retry_otherwise(backend: Backend) {
    let sluice = Sluice::start(backend, &[("timeouts.yaml", TIMEOUTS)], 1).await;
    let run_id = sluice.trigger("sensor_timeouts", json!({})).await;
    let run = sluice.wait_run_done("sensor_timeouts", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed", "{run}\n{}", sluice.all_output());
    let want = expected(&[("soft", "skipped"), ("after_soft", "skipped"), ("hard", "failed")]);
    assert_eq!(sluice.task_states("sensor_timeouts", &run_id).await, want);

    let tries = sluice.tries("sensor_timeouts", &run_id, "hard").await;
    assert_eq!(tries.len(), 1, "a sensor's timeout is not retried: {tries:?}");
    let log = sluice.log("sensor_timeouts", &run_id, "hard", 1).await;
    assert!(log.contains("did not hold within its timeout (2s)"), "{log}");
    let soft = sluice.log("sensor_timeouts", &run_id, "soft", 1).await;
    assert!(soft.contains("not yet: rescheduled"), "{soft}");
}

#[tokio::test]
async fn a_reschedule_sensor_frees_the_only_slot_while_it_waits_on_postgres() {
    a_reschedule_sensor_frees_the_only_slot_while_it_waits(Backend::Postgres).await;
}

#[tokio::test]
async fn a_reschedule_sensor_frees_the_only_slot_while_it_waits_on_sqlite() {
    a_reschedule_sensor_frees_the_only_slot_while_it_waits(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_sensor_timeout_skips_with_soft_fail_and_fails_without_retry_otherwise_on_postgres() {
    a_sensor_timeout_skips_with_soft_fail_and_fails_without_retry_otherwise(Backend::Postgres).await;
}

#[tokio::test]
async fn a_sensor_timeout_skips_with_soft_fail_and_fails_without_retry_otherwise_on_sqlite() {
    a_sensor_timeout_skips_with_soft_fail_and_fails_without_retry_otherwise(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_waiting_sensor_survives_a_server_restart_on_postgres() {
    a_waiting_sensor_survives_a_server_restart(Backend::Postgres).await;
}

#[tokio::test]
async fn a_waiting_sensor_survives_a_server_restart_on_sqlite() {
    a_waiting_sensor_survives_a_server_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_external_task_sensor_waits_for_another_dags_task_and_run_on_postgres() {
    an_external_task_sensor_waits_for_another_dags_task_and_run(Backend::Postgres).await;
}

#[tokio::test]
async fn an_external_task_sensor_waits_for_another_dags_task_and_run_on_sqlite() {
    an_external_task_sensor_waits_for_another_dags_task_and_run(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_sql_sensor_waits_for_a_true_first_cell_on_postgres() {
    a_sql_sensor_waits_for_a_true_first_cell(Backend::Postgres).await;
}

#[tokio::test]
async fn a_sql_sensor_waits_for_a_true_first_cell_on_sqlite() {
    a_sql_sensor_waits_for_a_true_first_cell(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_http_sensor_waits_for_a_field_of_the_response_on_postgres() {
    an_http_sensor_waits_for_a_field_of_the_response(Backend::Postgres).await;
}

#[tokio::test]
async fn an_http_sensor_waits_for_a_field_of_the_response_on_sqlite() {
    an_http_sensor_waits_for_a_field_of_the_response(Backend::Sqlite).await;
}

const S3: &str = r#"dag_id: s3_sensor
schedule: null
is_paused_upon_creation: false
tasks:
  - id: wait_for_object
    kind: sensor
    sensor: {type: file, path: "s3://landing/{{ ds }}/ready.flag", connection: store}
    mode: reschedule
    poke_interval: 1s
    timeout: 1m
  - id: wait_for_prefix
    kind: sensor
    sensor: {type: file, path: "s3://landing/{{ ds }}/parts/", connection: store}
    poke_interval: 1s
    timeout: 1m
"#;

/// A file sensor on an object store waits for an object, or for any object under a prefix, through its connection.
#[tokio::test]
async fn a_file_sensor_waits_for_an_object_in_a_bucket() {
    let store = sluice_tests::ObjectStore::start().await;
    store.create_bucket("landing").await;
    let sluice = Sluice::start(Backend::Postgres, &[("s3.yaml", S3)], 1).await;
    let connection = json!({"connection_id": "store", "conn_type": "aws", "login": "sluice", "password": "secret-key",
                            "extra": json!({"endpoint_url": store.url, "region_name": "us-east-1"}).to_string()});
    assert_eq!(sluice.post("/connections", connection).await.0, 201);

    let run_id = sluice.trigger("s3_sensor", json!({})).await;
    sluice.wait_task_state("s3_sensor", &run_id, "wait_for_object", "up_for_reschedule").await;
    let day = Utc::now().format("%Y-%m-%d").to_string();
    // An object beside the prefix, whose name only starts like it, does not count.
    store.put("landing", &format!("{day}/parts.txt"), "no").await;
    store.put("landing", &format!("{day}/ready.flag"), "").await;
    sluice.wait_task_state("s3_sensor", &run_id, "wait_for_object", "success").await;
    sluice.wait_task_state("s3_sensor", &run_id, "wait_for_prefix", "running").await;
    let log = sluice.log("s3_sensor", &run_id, "wait_for_prefix", 1).await;
    assert!(!log.contains("the condition holds"), "{log}");
    store.put("landing", &format!("{day}/parts/part-0.csv"), "a\n1\n").await;

    let run = sluice.wait_run_done("s3_sensor", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let log = sluice.log("s3_sensor", &run_id, "wait_for_object", 1).await;
    assert!(log.contains(&format!("poking for s3://landing/{day}/ready.flag")), "{log}");
    assert!(log.contains("not yet: rescheduled") && log.contains("the condition holds"), "{log}");
    assert!(!log.contains("secret-key"), "{log}");
}
