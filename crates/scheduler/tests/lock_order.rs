//! The lock order under real interleavings, on PostgreSQL: a worker's claim running while a decision about the
//! same run (a manual mark, a timeout pass) holds the run's lock and then changes its task instances.
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
