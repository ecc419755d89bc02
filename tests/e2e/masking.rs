//! Secrets that tasks are given never come back: connection passwords and variables with a secret key are masked
//! in logs, outputs, errors and rendered fields for every role, and what came from any variable or connection is
//! masked in rendered fields for the roles that may not read variables and connections.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice};

const PASSWORD: &str = "pg-pass-7f3a9c";
const API_KEY: &str = "k-live-0123456789abcdef";
const BUCKET: &str = "s3://landing-zone";

const DAG: &str = r#"dag_id: masked
schedule: null
is_paused_upon_creation: false
tasks:
  - id: leaky
    env:
      PW: "{{ conn.warehouse.password }}"
      KEY: "{{ var.value.api_key }}"
      BUCKET: "{{ var.value.bucket }}"
    script: |
      echo "whole: $PW $KEY $BUCKET"
      printf 'split: %s' "${KEY:0:9}"; sleep 1; printf '%s\n' "${KEY:9}"
      printf 'pw: %s' "${PW:0:4}"; sleep 1; printf '%s\n' "${PW:4}"
      echo "::output::{\"key\": \"$KEY\", \"pw\": \"$PW\", \"bucket\": \"$BUCKET\"}"
  - id: missing
    command: ["/no/such/{{ var.value.api_key }}"]
    retries: 0
"#;

async fn get_as(sluice: &Sluice, token: &str, path: &str) -> Value {
    let (status, body) = sluice.request_as(Some(token), Method::GET, &format!("/api/v2{path}"), None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [PASSWORD, API_KEY] {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

#[tokio::test]
async fn secrets_are_masked_in_logs_outputs_errors_and_rendered_fields() {
    let sluice = Sluice::start(Backend::Postgres, &[("masked.yaml", DAG)], 1).await;
    let conn =
        json!({"connection_id": "warehouse", "conn_type": "postgres", "host": "db.internal", "password": PASSWORD});
    assert_eq!(sluice.post("/connections", conn).await.0, 201);
    for (key, value) in [("api_key", API_KEY), ("bucket", BUCKET)] {
        assert_eq!(sluice.post("/variables", json!({"key": key, "value": value})).await.0, 201);
    }
    for (name, role) in [("viewer", "Viewer"), ("op", "Op")] {
        sluice.create_user(name, role, &format!("{name}-password")).await;
    }
    let viewer = sluice.login("viewer", "viewer-password").await;
    let op = sluice.login("op", "op-password").await;
    let admin = sluice.token.clone().unwrap();

    sluice.wait_dag("masked").await;
    let run_id = sluice.trigger("masked", json!({})).await;
    let run = sluice.wait_run_done("masked", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed", "the missing program fails its task");

    let log = sluice.log("masked", &run_id, "leaky", 1).await;
    assert_no_secret("the log", &log);
    assert!(log.contains(&format!("whole: *** *** {BUCKET}")), "{log}");
    assert!(log.contains("split: ***") && log.contains("pw: ***"), "{log}");

    let leaky = format!("/dags/masked/dagRuns/{run_id}/taskInstances/leaky");
    let ti = get_as(&sluice, &admin, &leaky).await;
    assert_eq!(ti["state"], "success", "{ti}");
    assert_eq!(ti["output"], json!({"key": "***", "pw": "***", "bucket": BUCKET}));
    let xcom = get_as(&sluice, &admin, &format!("{leaky}/xcomEntries/return_value")).await;
    assert_no_secret("the XCom entry", &xcom.to_string());

    // Rendered fields: secrets masked for every role; the other variable's value only for Op and above.
    for (token, bucket) in [(&admin, BUCKET), (&op, BUCKET), (&viewer, "***")] {
        let ti = get_as(&sluice, token, &leaky).await;
        let tries = get_as(&sluice, token, &format!("{leaky}/tries")).await;
        let one = get_as(&sluice, token, &format!("{leaky}/tries/1")).await;
        let listed = get_as(&sluice, token, &format!("/dags/masked/dagRuns/{run_id}/taskInstances")).await;
        for (what, body) in [("TI", &ti), ("tries", &tries), ("try", &one), ("list", &listed)] {
            assert_no_secret(what, &body.to_string());
        }
        let env = &one["rendered_fields"]["env"];
        assert_eq!((&env["PW"], &env["KEY"], &env["BUCKET"]), (&json!("***"), &json!("***"), &json!(bucket)), "{one}");
        assert_eq!(ti["rendered_fields"]["env"]["BUCKET"], bucket, "{ti}");
        assert!(ti["rendered_fields"].get("restricted").is_none(), "{ti}");
    }
    let viewer_ti = get_as(&sluice, &viewer, &leaky).await;
    assert!(!viewer_ti["rendered_fields"].to_string().contains(BUCKET), "{viewer_ti}");

    // The error of a try names the program it could not start: masked too.
    let missing =
        get_as(&sluice, &admin, &format!("/dags/masked/dagRuns/{run_id}/taskInstances/missing/tries/1")).await;
    let error = missing["error"].as_str().unwrap_or_default();
    assert!(error.contains("/no/such/***"), "{missing}");
    assert_no_secret("the error", &missing.to_string());
    let log = sluice.log("masked", &run_id, "missing", 1).await;
    assert_no_secret("the failed try's log", &log);
}

/// The sealed secrets of the database: connection passwords and extras, variable values.
async fn stored_secrets(database_url: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
    let sql = "SELECT password AS v FROM connections UNION ALL SELECT extra FROM connections
               UNION ALL SELECT val FROM variables";
    let rows = sqlx::query(sql).fetch_all(&mut db).await.unwrap();
    rows.iter().filter_map(|r| r.try_get::<Option<String>, _>("v").unwrap()).collect()
}

/// The id of the key a sealed value names (`sluice:v1:<key id>:…`).
fn key_id(sealed: &str) -> &str {
    sealed.strip_prefix("sluice:v1:").and_then(|rest| rest.split(':').next()).unwrap_or_else(|| panic!("{sealed}"))
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_a_wrong_key_stops_the_server_and_keys_rotate() {
    let mut sluice = Sluice::new(Backend::Postgres, &[]).await;
    sluice.start_server(&[]).await;
    let conn = json!({"connection_id": "warehouse", "conn_type": "postgres", "password": PASSWORD,
                      "extra": format!(r#"{{"api_key": "{API_KEY}"}}"#)});
    assert_eq!(sluice.post("/connections", conn).await.0, 201);
    assert_eq!(sluice.post("/variables", json!({"key": "bucket", "value": BUCKET})).await.0, 201);
    let stored = stored_secrets(&sluice.db.url).await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    for value in &stored {
        assert!(!value.contains(PASSWORD) && !value.contains(API_KEY) && !value.contains(BUCKET), "{value}");
    }
    let first_key = key_id(&stored[0]).to_owned();
    assert!(stored.iter().all(|v| key_id(v) == first_key), "{stored:?}");
    sluice.server.take().unwrap().kill_9();

    // Another key: the server stops at once and says which key the database needs.
    let other = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM=";
    let mut wrong = sluice.spawn("wrong-key", &["server", "--bind", "127.0.0.1:0", "--encryption-key", other]);
    assert!(wrong.wait_exit(Duration::from_secs(30)).await.is_some_and(|code| code != 0), "{}", wrong.output());
    let said = wrong.output();
    assert!(said.contains(&first_key) && said.contains("SLUICE_ENCRYPTION_KEY"), "{said}");

    // Rotation: the new key first, the old one after it; then the new key alone opens everything.
    let both = format!("{other},{}", sluice_tests::ENCRYPTION_KEY);
    let (code, said) = sluice.run_cli(&["rotate-key", "--encryption-key", &both]).await;
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("3 secrets sealed"), "{said}");
    let stored = stored_secrets(&sluice.db.url).await;
    assert!(stored.iter().all(|v| key_id(v) != first_key && !v.contains(BUCKET)), "{stored:?}");
    sluice.start_server(&["--encryption-key", other]).await;
    let (status, variable) = sluice.get("/variables/bucket").await;
    assert_eq!((status, variable["value"].as_str()), (200, Some(BUCKET)), "{variable}");
}

/// Connections and variables from a secrets file and the server's environment, searched before the database's.
const BACKENDS_DAG: &str = r#"
dag_id: backends
schedule: null
is_paused_upon_creation: false
tasks:
  - id: show
    script: |
      echo "region={{ var.value.region }} bucket={{ var.value.bucket }} host={{ conn.warehouse.host }} login={{ conn.api.login }}"
      echo "key={{ var.value.api_key }}"
"#;

#[tokio::test]
async fn secrets_backends_are_read_before_the_database() {
    let mut sluice = Sluice::new(Backend::Postgres, &[("backends.yaml", BACKENDS_DAG)]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.yaml");
    std::fs::write(&file, "connections:\n  api: {conn_type: http, host: api.example.com, login: bot}\nvariables:\n  bucket: s3://from-file\n").unwrap();
    let env = [
        ("SLUICE_SECRETS_FILE", file.display().to_string()),
        ("SLUICE_VAR_REGION", "eu".to_owned()),
        ("SLUICE_VAR_API_KEY", "k-123-from-env".to_owned()),
        ("SLUICE_CONN_WAREHOUSE", "postgres://ana:pw-from-env@db.internal:5432/sales".to_owned()),
    ];
    sluice.env.extend(env.map(|(k, v)| (k.to_owned(), v)));
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "1"]);
    for (key, value) in [("region", "from-the-database"), ("bucket", "s3://from-the-database")] {
        let (status, body) = sluice.post("/variables", json!({"key": key, "value": value})).await;
        assert_eq!(status, 201, "{body}");
    }
    sluice.wait_dag("backends").await;
    let run_id = sluice.trigger("backends", json!({})).await;
    let run = sluice.wait_run_done("backends", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let log = sluice.log("backends", &run_id, "show", 1).await;
    assert!(log.contains("region=eu bucket=s3://from-file host=db.internal login=bot"), "{log}");
    assert!(log.contains("key=***") && !log.contains("k-123-from-env"), "a secret-looking variable is masked: {log}");
    // The API lists what the database holds, as Airflow's does.
    let (_, variables) = sluice.get("/variables").await;
    assert_eq!(variables["total_entries"], 2, "{variables}");
}
