//! `/metrics` of a real server scraped as Prometheus does: the text parses, and the figures move when a run
//! happens (runs and task instances by state, task durations, API latency, scheduler passes, workers and pools).

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value as Metric};
use reqwest::Method;
use serde_json::json;
use sluice_tests::{Backend, Sluice, WebhookReceiver};

const CHAIN: &str = r#"
dag_id: measured
schedule: null
is_paused_upon_creation: false
tasks:
  - {id: extract, script: "sleep 0.2"}
  - {id: transform, depends_on: [extract], script: "sleep 0.2"}
  - {id: load, depends_on: [transform], script: "exit 3"}
"#;

async fn scrape(sluice: &Sluice) -> Vec<Sample> {
    let response = sluice
        .http
        .get(format!("{}/metrics", sluice.url))
        .bearer_auth(sluice.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap().samples
}

/// The value of the gauge `name` whose labels include `labels`.
fn gauge(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    find(samples, name, labels).and_then(|s| match s.value {
        Metric::Gauge(v) | Metric::Untyped(v) | Metric::Counter(v) => Some(v),
        _ => None,
    })
}

/// How many observations the histogram `name` with `labels` holds (0 when it has none yet).
fn observations(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match &s.value {
            Metric::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            _ => 0.0,
        })
        .sum()
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_with_a_run() {
    let mut sluice = Sluice::start(Backend::Postgres, &[("measured.yaml", CHAIN)], 0).await;
    sluice.spawn_worker(&["--slots", "3"]);
    sluice.wait_dag("measured").await;
    let before = scrape(&sluice).await;
    assert_eq!(gauge(&before, "sluice_dag_runs", &[("state", "failed")]), Some(0.0), "every state is reported");
    assert_eq!(observations(&before, "sluice_task_duration_seconds", &[("dag_id", "measured")]), 0.0);

    let run_id = sluice.trigger("measured", json!({})).await;
    let run = sluice.wait_run_done("measured", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed", "{run}");
    let after = sluice
        .eventually("the worker to be idle again", Duration::from_secs(30), || async {
            let samples = scrape(&sluice).await;
            (gauge(&samples, "sluice_worker_slots", &[("use", "free")]) == Some(3.0)).then_some(samples)
        })
        .await;

    assert_eq!(gauge(&after, "sluice_dag_runs", &[("state", "failed")]), Some(1.0));
    assert_eq!(gauge(&after, "sluice_task_instances", &[("state", "success")]), Some(2.0));
    assert_eq!(gauge(&after, "sluice_task_instances", &[("state", "failed")]), Some(1.0));
    assert_eq!(gauge(&after, "sluice_workers", &[]), Some(1.0));
    assert_eq!(gauge(&after, "sluice_worker_slots", &[("use", "used")]), Some(0.0));
    assert_eq!(gauge(&after, "sluice_pool_slots", &[("pool", "default_pool"), ("use", "open")]), Some(128.0));
    assert_eq!(
        gauge(&after, "sluice_queued_task_instances", &[("queue", "default")]),
        Some(0.0),
        "a served queue reads 0 when empty"
    );
    let ended =
        |state| observations(&after, "sluice_task_duration_seconds", &[("dag_id", "measured"), ("state", state)]);
    assert_eq!((ended("success"), ended("failed")), (2.0, 1.0));
    assert!(observations(&after, "sluice_task_start_latency_seconds", &[]) >= 3.0);
    let triggers = [("method", "POST"), ("route", "/api/v2/dags/:dag_id/dagRuns")];
    let routes: Vec<String> = after
        .iter()
        .filter(|s| s.metric == "sluice_api_request_duration_seconds")
        .map(|s| {
            format!("{} {}", s.labels.get("method").unwrap_or_default(), s.labels.get("route").unwrap_or_default())
        })
        .collect();
    assert!(
        observations(&after, "sluice_api_request_duration_seconds", &triggers) >= 1.0,
        "the trigger, by route: {routes:?}"
    );
    assert!(
        observations(&after, "sluice_scheduler_loop_duration_seconds", &[])
            > observations(&before, "sluice_scheduler_loop_duration_seconds", &[])
    );
    assert!(observations(&after, "sluice_dag_folder_parse_duration_seconds", &[]) >= 1.0);
    assert!(gauge(&after, "sluice_db_connections", &[("use", "idle")]).is_some());

    // Every series the Grafana dashboard in docs/ draws is exported.
    let dashboard: serde_json::Value = serde_json::from_str(include_str!("../../docs/grafana/sluice.json")).unwrap();
    let exported: std::collections::BTreeSet<&str> = after.iter().map(|s| s.metric.as_str()).collect();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in
                expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("sluice_"))
            {
                let series = word.trim_end_matches("_bucket").trim_end_matches("_count").trim_end_matches("_sum");
                assert!(
                    exported.contains(series),
                    "{:?} draws {series}, which /metrics does not export",
                    panel["title"]
                );
            }
        }
    }

    // The labels name DAGs, pools and workers: a Viewer may not read them.
    sluice.create_user("watcher", "Viewer", "watcher-password-1").await;
    let token = sluice.login("watcher", "watcher-password-1").await;
    let (status, body) = sluice.request_as(Some(&token), Method::GET, "/metrics", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("Op"), "{body}");
    let (status, _) = sluice.request_as(None, Method::GET, "/metrics", None).await;
    assert_eq!(status, 401);
}

const AUDITED: &str = r#"
dag_id: audited
schedule: null
tasks:
  - {id: only, script: "true"}
"#;

#[tokio::test]
async fn the_audit_log_records_who_changed_what_and_from_where() {
    let sluice = Sluice::start(Backend::Sqlite, &[("audited.yaml", AUDITED)], 1).await;
    sluice.wait_dag("audited").await;
    let (status, _) = sluice.request(Method::PATCH, "/api/v2/dags/audited", Some(json!({"is_paused": false}))).await;
    assert_eq!(status, 200);
    let run_id = sluice.trigger("audited", json!({"size": 3})).await;
    sluice.wait_run_done("audited", &run_id, Duration::from_secs(60)).await;
    let clear = json!({"dry_run": false, "dag_run_id": run_id, "task_ids": ["only"], "only_failed": false});
    assert_eq!(sluice.post("/dags/audited/clearTaskInstances", clear).await.0, 200);
    assert_eq!(sluice.post("/variables", json!({"key": "region", "value": "eu-west"})).await.0, 201);
    assert_eq!(sluice.post("/variables", json!({"key": "warehouse_password", "value": "hunter22"})).await.0, 201);
    let (status, _) = sluice
        .request(Method::PATCH, "/api/v2/variables/region", Some(json!({"key": "region", "value": "us-east"})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = sluice.post("/variables", json!({"key": "region", "value": "again"})).await;
    assert_eq!(status, 409, "a refused change is recorded with its status too");

    let (status, log) = sluice.get("/eventLogs?dag_id=audited&order_by=id").await;
    assert_eq!(status, 200, "{log}");
    let events: Vec<&str> =
        log["event_logs"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["PATCH dags/:dag_id", "POST dags/:dag_id/dagRuns", "POST dags/:dag_id/clearTaskInstances"],
        "{log}"
    );
    // A change of one resource keeps it as it was before and after.
    let pause: serde_json::Value = serde_json::from_str(log["event_logs"][0]["extra"].as_str().unwrap()).unwrap();
    assert_eq!((&pause["before"]["is_paused"], &pause["after"]["is_paused"]), (&json!(true), &json!(false)), "{pause}");
    assert_eq!(pause["before"]["dag_id"], "audited");
    let trigger = &log["event_logs"][1];
    assert_eq!(trigger["owner"], "admin");
    let extra: serde_json::Value = serde_json::from_str(trigger["extra"].as_str().unwrap()).unwrap();
    assert_eq!((extra["status"].as_u64(), extra["from"].as_str()), (Some(200), Some("127.0.0.1")), "{extra}");
    assert_eq!(extra["body"]["conf"], json!({"size": 3}), "{extra}");
    assert_eq!((&extra["before"], &extra["after"]), (&json!(null), &json!(null)), "a creation has no before: {extra}");
    let clear = &log["event_logs"][2];
    assert_eq!(clear["dag_id"], "audited");

    let (_, variables) =
        sluice.get("/eventLogs?included_events=POST%20variables,PATCH%20variables/:variable_key").await;
    let bodies: Vec<(String, serde_json::Value)> = variables["event_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let extra: serde_json::Value = serde_json::from_str(e["extra"].as_str().unwrap()).unwrap();
            (
                e["event"].as_str().unwrap().to_owned(),
                json!([extra["status"], extra["body"]["key"], extra["body"]["value"], extra["before"]["value"]]),
            )
        })
        .collect();
    assert_eq!(
        bodies,
        [
            ("POST variables".to_owned(), json!([409, "region", "again", null])),
            ("PATCH variables/:variable_key".to_owned(), json!([200, "region", "us-east", "eu-west"])),
            ("POST variables".to_owned(), json!([201, "warehouse_password", "***", null])),
            ("POST variables".to_owned(), json!([201, "region", "eu-west", null])),
        ],
        "newest first; a secret variable's value masked"
    );
    // A secret variable's value stays masked before and after its change too.
    let patch = json!({"key": "warehouse_password", "value": "hunter23"});
    let (status, _) = sluice.request(Method::PATCH, "/api/v2/variables/warehouse_password", Some(patch)).await;
    assert_eq!(status, 200);
    let (_, changed) = sluice.get("/eventLogs?event=PATCH%20variables/:variable_key&limit=1").await;
    let extra: serde_json::Value = serde_json::from_str(changed["event_logs"][0]["extra"].as_str().unwrap()).unwrap();
    assert_eq!((&extra["before"]["value"], &extra["after"]["value"]), (&json!("***"), &json!("***")), "{extra}");
    let (_, everything) = sluice.get("/eventLogs?limit=100").await;
    assert!(!everything.to_string().contains("hunter2"), "{everything}");
    let first = variables["event_logs"][3]["event_log_id"].as_i64().unwrap();
    let (status, one) = sluice.get(&format!("/eventLogs/{first}")).await;
    assert_eq!((status, one["event"].as_str()), (200, Some("POST variables")), "{one}");

    // What changes carried is an operator's to read, as variables are.
    sluice.create_user("watcher", "Viewer", "watcher-password-1").await;
    let token = sluice.login("watcher", "watcher-password-1").await;
    let (status, body) = sluice.request_as(Some(&token), Method::GET, "/api/v2/eventLogs", None).await;
    assert_eq!(status, 403, "{body}");
}

const TRACED: &str = r#"
dag_id: traced
schedule: null
is_paused_upon_creation: false
tasks:
  - {id: first, script: "sleep 0.2"}
  - {id: second, depends_on: [first], script: "exit 1"}
"#;

/// Every span of the OTLP/JSON bodies received, flattened.
fn spans(bodies: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let mut spans = Vec::new();
    for body in bodies {
        for resource in body["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                spans.extend(scope["spans"].as_array().into_iter().flatten().cloned());
            }
        }
    }
    spans
}

#[tokio::test]
async fn runs_and_tries_are_traced_to_an_otlp_endpoint() {
    let collector = WebhookReceiver::start(0).await;
    let mut sluice = Sluice::new(Backend::Sqlite, &[("traced.yaml", TRACED)]).await;
    let endpoint = format!("http://127.0.0.1:{}/v1/traces", collector.port);
    sluice.env.push(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(), endpoint));
    sluice.env.push(("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/json".into()));
    sluice.env.push(("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()));
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "2"]);
    sluice.wait_dag("traced").await;
    let run_id = sluice.trigger("traced", json!({})).await;
    assert_eq!(sluice.wait_run_done("traced", &run_id, Duration::from_secs(60)).await["state"], "failed");

    let spans = sluice
        .eventually("the run's and its tries' spans", Duration::from_secs(30), || async {
            let spans = spans(&collector.received());
            (spans.len() >= 3).then_some(spans)
        })
        .await;
    let named = |name: &str| spans.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("{name}: {spans:?}"));
    let (run, first, second) = (named("dag_run traced"), named("task first"), named("task second"));
    for span in [first, second] {
        assert_eq!(span["traceId"], run["traceId"], "one trace per run: {span}");
        assert_eq!(span["parentSpanId"], run["spanId"], "a try is a child of its run: {span}");
    }
    assert_ne!(first["spanId"], second["spanId"]);
    let attribute = |span: &serde_json::Value, key: &str| {
        span["attributes"].as_array().unwrap().iter().find(|a| a["key"] == key).map(|a| a["value"].clone())
    };
    assert_eq!(attribute(run, "sluice.run_id"), Some(json!({"stringValue": run_id})));
    assert_eq!(attribute(second, "sluice.state"), Some(json!({"stringValue": "failed"})));
    assert_eq!(second["status"]["code"], 2, "an error status: {second}");
    let nanos = |span: &serde_json::Value, key: &str| span[key].as_str().unwrap().parse::<u128>().unwrap();
    assert!(nanos(first, "endTimeUnixNano") - nanos(first, "startTimeUnixNano") >= 200_000_000, "{first}");
    assert!(nanos(run, "startTimeUnixNano") <= nanos(first, "startTimeUnixNano"), "{run}");
}
