//! A database outage mid-run: PostgreSQL stops for longer than a lease while a task runs, then starts again on the
//! same port and data folder. The server answers 503 meanwhile and stays up, the worker keeps its task running and
//! its report until the server takes it, and the run ends as if nothing had happened: every task once.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use serde_json::{Value, json};
use sluice_tests::{PrivatePostgres, Sluice, TestDb};

/// `long` runs about 10 s; `first` before it and `after` behind it.
const DAG: &str = r#"dag_id: outage
schedule: null
tasks:
  - id: first
    script: echo first
  - id: long
    script: for i in $(seq 1 10); do echo "tick $i"; sleep 1; done
    depends_on: [first]
  - id: beside
    script: echo beside
    depends_on: [first]
  - id: after
    script: echo after
    depends_on: [long, beside]
"#;

/// How long PostgreSQL is away: more than three leases (the harness's `SLUICE_LEASE_SECS` is 3).
const OUTAGE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_run_survives_postgresql_stopping_for_longer_than_a_lease() {
    let mut postgres = PrivatePostgres::init("local all all trust\nhost all all 127.0.0.1/32 trust\n");
    postgres.start().await;
    let mut sluice = Sluice::on(TestDb::existing(postgres.url()), &[("outage.yaml", DAG)]);
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "2"]);
    sluice.unpause("outage").await;
    let run_id = sluice.trigger("outage", json!({})).await;
    sluice.wait_task_state("outage", &run_id, "long", "running").await;

    postgres.stop();
    let stopped = tokio::time::Instant::now();
    let (retry_after, detail) = sluice
        .eventually("the API to answer 503", Duration::from_secs(10), || async {
            let response = sluice
                .http
                .get(format!("{}/api/v2/dags/outage/dagRuns/{run_id}", sluice.url))
                .bearer_auth(sluice.token.as_deref().unwrap())
                .send()
                .await
                .unwrap();
            if response.status() != 503 {
                return None;
            }
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            Some((retry_after, body["detail"].as_str().map(str::to_owned)))
        })
        .await;
    assert!(retry_after.is_some_and(|secs| secs.parse::<u64>().is_ok()));
    assert!(detail.is_some_and(|d| d.contains("database cannot be reached")));
    // The outage itself is what is waited for here.
    tokio::time::sleep(OUTAGE.saturating_sub(stopped.elapsed())).await;
    postgres.start().await;

    let run = sluice.wait_run_done("outage", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{}", sluice.all_output());
    for task in ["first", "long", "beside", "after"] {
        let tries = sluice.tries("outage", &run_id, task).await;
        assert_eq!(tries.len(), 1, "{task}: {tries:?}");
        assert_eq!(tries[0]["state"], "success", "{task}: {tries:?}");
    }
    // What `long` printed while the database was away reached it afterwards.
    let log = sluice.log("outage", &run_id, "long", 1).await;
    for i in 1..=10 {
        assert!(log.contains(&format!("tick {i}\n")), "tick {i} missing:\n{log}");
    }
    let server = sluice.server.as_mut().unwrap();
    assert_eq!(server.wait_exit(Duration::ZERO).await, None, "the server exited:\n{}", server.output());
    // The scheduler loop said once that the database went, and says once that it is back (it may notice after
    // the run ended: it pauses up to 5 s between its attempts).
    let output = sluice
        .eventually("the scheduler to see the database again", Duration::from_secs(10), || async {
            let output = sluice.server_output();
            output.contains("scheduler: the database is back").then_some(output)
        })
        .await;
    assert_eq!(output.matches("scheduler: the database cannot be reached").count(), 1, "{output}");
    assert!(!output.contains("ERROR"), "an outage is not an error of every request:\n{output}");
    assert!(!output.contains("lost: no heartbeat"), "{output}");
}
