//! Alerts end to end: task and run callbacks and a missed deadline delivered by a real server to a local webhook
//! receiver (which refuses the first request, so one alert is retried) and a local SMTP server; an alert that cannot
//! be delivered is failed after its attempts and shows why over the API. OpenLineage events of a data pipeline reach
//! a local receiver in order, with their datasets and quality facets.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice, SmtpReceiver, WebhookReceiver};

const ALERTING: &str = r#"
dag_id: alerting
schedule: null
is_paused_upon_creation: false
on_failure:
  - {type: webhook, connection: hooks, endpoint: /runs, text: "run {{ run_id }} of {{ dag_id }} {{ state }}"}
deadline:
  - reference: dagrun_queued_at
    interval: 1s
    callback: [{type: webhook, connection: hooks, endpoint: /deadline}]
default_args:
  retries: 1
  retry_delay: 1s
tasks:
  - id: slow
    script: "sleep 3"
    on_success: [{type: webhook, connection: hooks, endpoint: /success}]
  - id: broken
    depends_on: [slow]
    script: "echo boom; exit 1"
    on_execute: [{type: webhook, connection: hooks, endpoint: /execute}]
    on_retry: [{type: webhook, connection: hooks, endpoint: /retry}]
    on_failure:
      - type: webhook
        connection: hooks
        endpoint: /failure
        body: '{"task": "{{ task_id }}", "try": {{ try_number }}, "error": {{ error | tojson }}}'
      - {type: email, connection: smtp, to: [oncall@example.com], subject: "Sluice: {{ task_id }} failed"}
      - {type: webhook, connection: missing}
"#;

const BAD_NOTIFIER: &str = r#"
dag_id: bad_alerts
schedule: null
tasks:
  - id: t
    script: "true"
    on_failure: [{type: email, connection: smtp, to: []}]
"#;

async fn notifications(sluice: &Sluice, query: &str) -> Vec<Value> {
    let (status, list) = sluice.get(&format!("/notifications?dag_id=alerting&limit=100{query}")).await;
    assert_eq!(status, 200, "{list}");
    list["notifications"].as_array().unwrap().clone()
}

#[tokio::test]
async fn callbacks_and_a_missed_deadline_reach_a_webhook_and_a_mailbox() {
    let hooks = WebhookReceiver::start(1).await;
    let mail = SmtpReceiver::start().await;
    let mut sluice = Sluice::new(Backend::Postgres, &[("alerting.yaml", ALERTING), ("bad.yaml", BAD_NOTIFIER)]).await;
    sluice.env.push(("SLUICE_ALERT_ATTEMPTS".into(), "2".into()));
    sluice.env.push(("SLUICE_ALERT_RETRY_DELAY".into(), "1s".into()));
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "2"]);
    let connections = [
        json!({"connection_id": "hooks", "conn_type": "http", "host": "127.0.0.1", "port": hooks.port}),
        json!({"connection_id": "smtp", "conn_type": "smtp", "host": "127.0.0.1", "port": mail.port,
               "extra": "{\"disable_ssl\": true, \"disable_tls\": true, \"from_email\": \"sluice@example.com\"}"}),
    ];
    for connection in connections {
        let (status, body) = sluice.post("/connections", connection).await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, errors) = sluice.get("/importErrors").await;
    assert!(errors.to_string().contains("an e-mail needs at least one address in `to`"), "{errors}");

    sluice.wait_dag("alerting").await;
    let run_id = sluice.trigger("alerting", json!({})).await;
    let run = sluice.wait_run_done("alerting", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed", "{run}");

    // Nine alerts: slow's success, broken's two starts, its retry, its three failure notifiers, the run's failure
    // and the deadline; each ends delivered or failed (the one to a missing connection).
    let alerts = sluice
        .eventually("every alert to be delivered or failed", Duration::from_secs(30), || async {
            let alerts = notifications(&sluice, "").await;
            (alerts.len() == 9 && alerts.iter().all(|a| a["state"] != "pending")).then_some(alerts)
        })
        .await;
    let count = |event: &str| alerts.iter().filter(|a| a["event"] == event).count();
    let counts: BTreeMap<&str, usize> =
        ["on_success", "on_execute", "on_retry", "on_failure", "deadline"].into_iter().map(|e| (e, count(e))).collect();
    assert_eq!(
        counts,
        BTreeMap::from([("on_success", 1), ("on_execute", 2), ("on_retry", 1), ("on_failure", 4), ("deadline", 1)])
    );

    let failed = notifications(&sluice, "&state=failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["attempts"], 2);
    assert_eq!(failed[0]["last_error"], "connection \"missing\" does not exist");
    assert_eq!(failed[0]["task_id"], "broken");
    let retried: Vec<&Value> = alerts.iter().filter(|a| a["state"] == "delivered" && a["attempts"] == 2).collect();
    assert_eq!(retried.len(), 1, "the alert refused once is delivered on its second attempt: {alerts:?}");
    assert!(retried[0]["last_error"].as_str().unwrap().contains("503"), "{retried:?}");
    assert_eq!(hooks.refused(), 1);

    // What the receiver got, by path: seven webhooks.
    let received = hooks.received();
    let path_of = |m: &Value| m["_request_line"].as_str().unwrap().split(' ').nth(1).unwrap().to_owned();
    let mut paths: Vec<String> = received.iter().map(path_of).collect();
    paths.sort();
    assert_eq!(paths, ["/deadline", "/execute", "/execute", "/failure", "/retry", "/runs", "/success"]);
    let find = |path: &str| received.iter().find(|m| path_of(m) == path).unwrap().clone();
    let failure = find("/failure");
    assert_eq!((&failure["task"], &failure["try"]), (&json!("broken"), &json!(2)), "{failure}");
    assert!(failure["error"].as_str().unwrap().contains('1'), "the try's error: {failure}");
    assert_eq!(find("/runs")["text"], format!("run {run_id} of alerting failed"));
    let retry = find("/retry")["text"].as_str().unwrap().to_owned();
    assert!(
        retry.starts_with(&format!("Task alerting.broken of run {run_id} (try 1) failed and will be retried")),
        "{retry}"
    );
    assert!(find("/deadline")["text"].as_str().unwrap().contains("missed its deadline"));

    let messages = mail.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    for expected in ["Subject: Sluice: broken failed", "To: oncall@example.com", "From: sluice@example.com"] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    // The body is quoted-printable: long lines are cut with `=` at their end.
    let body = message.replace("=\n", "");
    assert!(body.contains(&format!("Task alerting.broken of run {run_id} (try 2) failed: exit code 1")), "{message}");

    // A deadline fires once: the scheduler's later passes over the run add nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(notifications(&sluice, "&event=deadline").await.len(), 1);
    let (status, refused) = sluice.get("/notifications?state=lost").await;
    assert_eq!((status, refused["detail"].as_str().unwrap().starts_with("unknown state")), (400, true), "{refused}");
}

const ETL: &str = include_str!("../../dags/penguins_etl.yaml");
const PENGUINS: &str = include_str!("../../dags/data/penguins.csv");

#[tokio::test]
async fn openlineage_events_of_a_pipeline_reach_the_lineage_server_in_order() {
    let lineage = WebhookReceiver::start(0).await;
    let mut sluice = Sluice::new(Backend::Postgres, &[("penguins_etl.yaml", ETL)]).await;
    sluice.add_data("penguins.csv", PENGUINS);
    let url = format!("http://127.0.0.1:{}/api/v1/lineage", lineage.port);
    sluice.env.push(("SLUICE_OPENLINEAGE_URL".into(), url));
    sluice.env.push(("SLUICE_OPENLINEAGE_NAMESPACE".into(), "penguins-prod".into()));
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "2"]);
    sluice.wait_dag("penguins_etl").await;
    let run_id = sluice.trigger("penguins_etl", json!({})).await;
    let run = sluice.wait_run_done("penguins_etl", &run_id, Duration::from_secs(120)).await;
    assert_eq!(run["state"], "success", "{run}");

    let events = sluice
        .eventually("the run's eight lineage events", Duration::from_secs(30), || async {
            let events = lineage.received();
            (events.len() == 8).then_some(events)
        })
        .await;
    for event in &events {
        assert_eq!(event["_request_line"], "POST /api/v1/lineage HTTP/1.1");
        assert_eq!(event["job"]["namespace"], "penguins-prod");
        assert_eq!(event["schemaURL"], "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent");
    }
    let seen: Vec<String> = events
        .iter()
        .map(|e| format!("{} {}", e["job"]["name"].as_str().unwrap(), e["eventType"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            "penguins_etl START",
            "penguins_etl.ingest START",
            "penguins_etl.ingest COMPLETE",
            "penguins_etl.quality START",
            "penguins_etl.quality COMPLETE",
            "penguins_etl.features START",
            "penguins_etl.features COMPLETE",
            "penguins_etl COMPLETE",
        ]
    );
    // A task's run is its try, whose parent is the DAG run; the start and end of one try share its id.
    let dag_run = &events[0]["run"]["runId"];
    assert_eq!(&events[7]["run"]["runId"], dag_run);
    for pair in events[1..7].chunks(2) {
        assert_eq!(pair[0]["run"]["runId"], pair[1]["run"]["runId"]);
        assert_ne!(&pair[0]["run"]["runId"], dag_run);
        assert_eq!(&pair[1]["run"]["facets"]["parent"]["run"]["runId"], dag_run);
        assert_eq!(pair[1]["run"]["facets"]["parent"]["job"]["name"], "penguins_etl");
    }
    let written = &events[2]["outputs"][0];
    assert_eq!((&written["namespace"], &written["name"]), (&json!("lake://raw"), &json!("penguins")));
    assert_eq!(written["outputFacets"]["outputStatistics"]["rowCount"], 344);
    let checked = &events[4]["inputs"][0];
    assert_eq!(checked["name"], "penguins");
    let assertions = checked["inputFacets"]["dataQualityAssertions"]["assertions"].as_array().unwrap();
    assert!(
        assertions.contains(&json!({"assertion": "not_null", "success": true, "column": "species"})),
        "{assertions:?}"
    );
    assert!(assertions.iter().any(|a| a["success"] == false), "the missing-rate warning: {assertions:?}");
    assert_eq!(checked["inputFacets"]["dataQualityMetrics"]["rowCount"], 344);
    assert_eq!(events[6]["outputs"][0]["name"], "penguins", "lake://features/penguins: {}", events[6]);
}
