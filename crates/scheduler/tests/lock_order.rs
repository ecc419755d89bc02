//! The lock order under real interleavings, and what survives a stop, on PostgreSQL: a worker's claim running while a
//! decision about the same run (a manual mark, a timeout pass) holds the run's lock and then changes its task
//! instances; a claim of several train tries while another transaction locks the same models; a retraining run asked
//! for by a report whose server stopped before creating it.
//!
//! The decision is written in SQL here, as the store issues it, so that the test reads the same against any
//! version of the engine: lock the run's row, then update its task instances.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sluice_core::protocol::LeaseRequest;
use sluice_scheduler::sync::DagFolder;
use sluice_scheduler::{Engine, EngineConfig, TriggerRequest};
use sluice_store::Store;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// Task `a` cannot render (the variable does not exist), which fails its try inside the engine's lease; `b` can.
const TWO_TASKS: &str = r#"
dag_id: two_tasks
schedule: null
is_paused_upon_creation: false
tasks:
  - id: a
    script: echo "{{ var.value.missing }}"
  - id: b
    script: echo b
"#;

const WAIT: Duration = Duration::from_secs(10);

fn admin_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Database {
        let name = format!("sluice_lock_order_{}", Uuid::now_v7().simple());
        let url = sluice_store::create_postgres_database(&admin_url(), &name).await.unwrap();
        Database { name, url }
    }

    async fn drop(self) {
        sluice_store::drop_postgres_database(&admin_url(), &self.name).await.unwrap();
    }
}

/// How many sessions of the database wait for a row lock right now.
async fn waiting_for_locks(observer: &mut PgConnection, database: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'")
        .bind(database)
        .fetch_one(observer)
        .await
        .unwrap()
}

/// Two slots, no waiting: the claim's answer is whatever it could take at once.
fn lease_request() -> LeaseRequest {
    LeaseRequest {
        worker: "w1".into(),
        hostname: "host".into(),
        queues: vec!["default".into()],
        slots: 2,
        wait_ms: 0,
        capacity: None,
    }
}

async fn state_of(conn: &mut PgConnection, run_pk: &str, task_id: &str) -> String {
    sqlx::query_scalar("SELECT state FROM task_instances WHERE run_pk = $1 AND task_id = $2")
        .bind(run_pk)
        .bind(task_id)
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_claim_and_a_decision_about_the_same_run_never_deadlock() {
    let db = Database::create().await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let dags = tempfile::tempdir().unwrap();
    std::fs::write(dags.path().join("two_tasks.yaml"), TWO_TASKS).unwrap();
    let synced = DagFolder::new(dags.path().to_path_buf()).sync(&store).await.unwrap();
    assert_eq!(synced.dags, ["two_tasks"], "{synced:?}");
    let engine = Engine::new(store.clone(), EngineConfig::default());
    let request = TriggerRequest { triggered_by: "test".into(), ..TriggerRequest::default() };
    let run_pk = engine.trigger_run("two_tasks", request).await.unwrap().id.to_string();
    let mut observer = PgConnection::connect(&db.url).await.unwrap();
    assert_eq!(state_of(&mut observer, &run_pk, "a").await, "queued");
    assert_eq!(state_of(&mut observer, &run_pk, "b").await, "queued");

    // A decision about the run, as a manual mark makes it: the run's row first.
    let mut decision = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut decision).await.unwrap();
    sqlx::query("SELECT id FROM dag_runs WHERE id = $1 FOR UPDATE").bind(&run_pk).execute(&mut decision).await.unwrap();

    // Meanwhile a worker asks for work.
    let claimer = engine.clone();
    let claim = tokio::spawn(async move { claimer.lease(&lease_request()).await });

    // Until the claim is done or waits for a lock (a deadline, not a guess at how long it takes).
    let deadline = tokio::time::Instant::now() + WAIT;
    while !claim.is_finished() && waiting_for_locks(&mut observer, &db.name).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the claim neither finished nor waited");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The decision goes on with the run's task instances: `b` is skipped, as marking it would.
    let skipped = tokio::time::timeout(
        WAIT,
        sqlx::query(
            "UPDATE task_instances SET state = 'skipped' WHERE run_pk = $1 AND task_id = 'b' AND state = 'queued'",
        )
        .bind(&run_pk)
        .execute(&mut decision),
    )
    .await
    .expect("the decision waits for nothing but the run it holds");
    let skipped = skipped.expect("no deadlock (SQLSTATE 40P01) between the decision and the claim");
    assert_eq!(skipped.rows_affected(), 1, "the claim took nothing from under the decision");
    sqlx::query("COMMIT").execute(&mut decision).await.unwrap();
    let leased = tokio::time::timeout(WAIT, claim).await.expect("the claim ends").unwrap();
    assert!(leased.expect("the claim is not the victim of a deadlock").is_empty(), "a decision held the run");

    // Once the decision committed, the next claim takes `a`, whose template fails its try (no retries).
    assert!(engine.lease(&lease_request()).await.unwrap().is_empty(), "a cannot render, b is skipped");
    assert_eq!(state_of(&mut observer, &run_pk, "a").await, "failed");
    assert_eq!(state_of(&mut observer, &run_pk, "b").await, "skipped");
    let error: Option<String> = sqlx::query_scalar(
        "SELECT t.error FROM task_tries t JOIN task_instances ti ON ti.id = t.ti_id WHERE ti.run_pk = $1",
    )
    .bind(&run_pk)
    .fetch_one(&mut observer)
    .await
    .unwrap();
    assert!(error.is_some_and(|e| e.contains("missing")), "the try ended with the template's error");

    observer.close().await.unwrap();
    decision.close().await.unwrap();
    store.close().await;
    db.drop().await;
}

/// Two train tasks of two models, the second model's first in the claim's order (its priority is higher).
const TWO_MODELS: &str = r#"
dag_id: two_models
schedule: null
is_paused_upon_creation: false
tasks:
  - id: train_b
    kind: train
    priority_weight: 10
    inputs: [lake://features/x]
    model: {name: m_b, target: y, candidates: [{algorithm: decision_tree}]}
  - id: train_a
    kind: train
    inputs: [lake://features/x]
    model: {name: m_a, target: y, candidates: [{algorithm: decision_tree}]}
"#;

/// A claim of several train tries reserves their versions in the order of the models' names, whatever the order of
/// the tries: another transaction that locks the same models' rows in that order (as two claims would) waits for it
/// or makes it wait, and neither is ever chosen as a deadlock's victim.
#[tokio::test]
async fn a_claim_reserves_the_versions_of_several_models_in_name_order() {
    let db = Database::create().await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let dags = tempfile::tempdir().unwrap();
    std::fs::write(dags.path().join("two_models.yaml"), TWO_MODELS).unwrap();
    let synced = DagFolder::new(dags.path().to_path_buf()).sync(&store).await.unwrap();
    assert_eq!(synced.dags, ["two_models"], "{synced:?}");
    let engine = Engine::new(store.clone(), EngineConfig::default());
    let request = TriggerRequest { triggered_by: "test".into(), ..TriggerRequest::default() };
    engine.trigger_run("two_models", request).await.unwrap();
    let mut observer = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("INSERT INTO models (name, created_ms, updated_ms) VALUES ('m_a', 0, 0), ('m_b', 0, 0)")
        .execute(&mut observer)
        .await
        .unwrap();

    // Another claim, as it were, holds the first model by name.
    let mut other = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT name FROM models WHERE name = 'm_a' FOR UPDATE").execute(&mut other).await.unwrap();

    let claimer = engine.clone();
    let claim = tokio::spawn(async move { claimer.lease(&lease_request()).await });
    let deadline = tokio::time::Instant::now() + WAIT;
    while waiting_for_locks(&mut observer, &db.name).await == 0 {
        assert!(!claim.is_finished(), "the claim waits for m_a, which the other transaction holds");
        assert!(tokio::time::Instant::now() < deadline, "the claim never waited");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The other one goes on with the second model: the claim, waiting for the first, holds neither.
    let locked = tokio::time::timeout(
        WAIT,
        sqlx::query("SELECT name FROM models WHERE name = 'm_b' FOR UPDATE").execute(&mut other),
    )
    .await
    .expect("m_b is free while the claim waits for m_a");
    locked.expect("no deadlock (SQLSTATE 40P01) between the claim and the other transaction");
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();

    let leased = tokio::time::timeout(WAIT, claim).await.expect("the claim ends").unwrap().unwrap();
    let mut versions: Vec<(String, String)> = leased
        .iter()
        .map(|t| (t.task_id.clone(), t.env.get(sluice_core::protocol::MODEL_VERSION_ENV).cloned().unwrap_or_default()))
        .collect();
    versions.sort();
    assert_eq!(versions, [("train_a".to_owned(), "1".to_owned()), ("train_b".to_owned(), "1".to_owned())]);

    observer.close().await.unwrap();
    other.close().await.unwrap();
    store.close().await;
    db.drop().await;
}

const RETRAIN: &str = r#"
dag_id: retrain
schedule: null
is_paused_upon_creation: false
tasks:
  - id: train
    script: echo train
"#;

/// A drifted report asks for its retraining run in its own transaction: if the server stops before creating the
/// run, a scheduler pass creates it, once, and a run asked of a DAG that is gone is given up.
#[tokio::test]
async fn a_retraining_run_asked_for_by_a_report_survives_a_stop_before_its_creation() {
    let db = Database::create().await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let dags = tempfile::tempdir().unwrap();
    std::fs::write(dags.path().join("retrain.yaml"), RETRAIN).unwrap();
    DagFolder::new(dags.path().to_path_buf()).sync(&store).await.unwrap();
    let engine = Engine::new(store.clone(), EngineConfig::default());
    let checks = serde_json::json!([]);
    let report = sluice_store::NewMonitorReport {
        model: "m",
        version: 1,
        input_uri: "lake://batch",
        rows: 10,
        drifted: true,
        checks: &checks,
        dag_id: "watch",
        run_id: "r",
        task_id: "monitor",
        try_id: "t",
        feedback: None,
    };
    let mut tx = store.begin().await.unwrap();
    tx.reserve_model_version("m", chrono::Utc::now()).await.unwrap();
    let asked = tx.record_monitor_report(&report, chrono::Utc::now()).await.unwrap();
    tx.request_retraining(asked, "retrain", "retrain__report_1", &serde_json::json!({"reason": "drift"}))
        .await
        .unwrap();
    let gone = tx.record_monitor_report(&report, chrono::Utc::now()).await.unwrap();
    tx.request_retraining(gone, "no_such_dag", "retrain__report_2", &serde_json::json!({})).await.unwrap();
    tx.commit().await.unwrap();
    // The server stops here, before creating the runs.

    assert_eq!(engine.start_pending_retraining().await.unwrap(), 2);
    let run = store.get_run("retrain", "retrain__report_1").await.unwrap().expect("the run was created");
    assert_eq!(run.conf["reason"], "drift");
    assert_eq!(engine.start_pending_retraining().await.unwrap(), 0, "nothing is pending any more");
    let (reports, _) = store.list_monitor_reports("m", 10, 0).await.unwrap();
    let named: Vec<Option<&str>> = reports.iter().map(|r| r.retrain_run_id.as_deref()).collect();
    assert_eq!(named, [None, Some("retrain__report_1")], "the run of a DAG that is gone is given up");

    store.close().await;
    db.drop().await;
}
