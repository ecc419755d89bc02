//! The dashboard's API end to end: the DAG list, the grid, the laid-out structure, the Gantt tries, the event
//! and log streams (read as a browser's `fetch` reads them), and what a Viewer restricted by `access_control`
//! sees of them.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice};
use tokio::sync::mpsc;

/// extract → left, right → join → report, and extract → report: a long edge across two columns.
const DIAMOND: &str = "dag_id: diamond
schedule: null
is_paused_upon_creation: false
tags: [etl, nightly]
owner: data-team
tasks:
  - id: extract
    script: echo extracted
  - id: left
    depends_on: [extract]
    script: echo left
  - id: right
    depends_on: [extract]
    script: echo right
  - id: join
    depends_on: [left, right]
    script: echo join
  - id: report
    depends_on: [join, extract]
    script: echo report
";

const FAILING: &str = "dag_id: failing
schedule: null
is_paused_upon_creation: false
tasks:
  - id: boom
    script: exit 3
";

/// Writes a line every 300 ms for about 2 seconds.
const CHATTY: &str = "dag_id: chatty
schedule: null
is_paused_upon_creation: false
tasks:
  - id: talk
    script: for i in 1 2 3 4 5 6 7; do echo line-$i; sleep 0.3; done
";

const LONG_LOG: &str = "dag_id: long_log
schedule: null
is_paused_upon_creation: false
tasks:
  - id: print
    script: seq 1 50000
";

const OPEN: &str =
    "dag_id: open\nschedule: null\nis_paused_upon_creation: false\ntasks:\n  - id: a\n    script: echo a\n";
/// Readable by Op only.
const PRIVATE: &str =
    "dag_id: private\nschedule: null\naccess_control:\n  Op: [can_read]\ntasks:\n  - id: a\n    script: echo a\n";

const PARAMS: &str = "dag_id: with_params
schedule: null
params:
  rows:
    type: integer
    default: 10
    minimum: 1
    maximum: 100
    description: How many rows to load
  mode:
    type: string
    enum: [fast, slow]
    default: fast
  region: {type: string, pattern: '^[a-z]{2}-[a-z]+-[0-9]$', default: eu-west-1}
  tags: {type: array, items: {type: string}, minItems: 1, uniqueItems: true, default: [daily]}
  window:
    type: object
    properties: {start: {type: string, format: date}, days: {type: integer, exclusiveMinimum: 0}}
    required: [start]
    default: {start: '2026-01-01', days: 7}
tasks:
  - id: a
    script: echo {{ params.rows }}
";

/// One Server-Sent Event as received: when, its name, its data.
#[derive(Debug, Clone)]
struct Received {
    at: DateTime<Utc>,
    event: String,
    data: Value,
}

/// Opens a Server-Sent Events stream as the dashboard does (`fetch` with the token), and passes its events on as
/// they arrive; the status if it is not a stream.
async fn open_stream(base: &str, token: &str, path: &str) -> Result<mpsc::UnboundedReceiver<Received>, u16> {
    // No overall timeout: the stream stays open for the whole test.
    let client = reqwest::Client::new();
    let request = client.get(format!("{base}{path}")).bearer_auth(token).send();
    let mut response = tokio::time::timeout(Duration::from_secs(30), request)
        .await
        .unwrap_or_else(|_| panic!("no answer to {path} within 30 s"))
        .unwrap();
    if response.status() != 200 {
        return Err(response.status().as_u16());
    }
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(text) = line.strip_prefix("data:") {
                        data += text.strip_prefix(' ').unwrap_or(text);
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                if sender.send(Received { at: Utc::now(), event, data }).is_err() {
                    return;
                }
            }
        }
    });
    Ok(receiver)
}

/// The next event for which `matches` holds (others are skipped), within `timeout`.
async fn next_matching(
    events: &mut mpsc::UnboundedReceiver<Received>,
    timeout: Duration,
    what: &str,
    matches: impl Fn(&Received) -> bool,
) -> Received {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) if matches(&event) => return event,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended before {what}"),
            Err(_) => panic!("no event {what} within {timeout:?}"),
        }
    }
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap().with_timezone(&Utc)
}

fn ids(list: &Value, key: &str, field: &str) -> Vec<String> {
    list[key].as_array().unwrap().iter().map(|v| v[field].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_grid_structure_gantt_and_dag_list_show_finished_runs_postgres() {
    finished_runs_in_every_view(Backend::Postgres).await;
}

#[tokio::test]
async fn the_grid_structure_gantt_and_dag_list_show_finished_runs_sqlite() {
    finished_runs_in_every_view(Backend::Sqlite).await;
}

async fn finished_runs_in_every_view(backend: Backend) {
    let sluice = Sluice::start(backend, &[("diamond.yaml", DIAMOND), ("failing.yaml", FAILING)], 1).await;
    let first = sluice.trigger("diamond", json!({})).await;
    sluice.wait_run_done("diamond", &first, Duration::from_secs(60)).await;
    let second = sluice.trigger("diamond", json!({})).await;
    assert_eq!(sluice.wait_run_done("diamond", &second, Duration::from_secs(60)).await["state"], "success");
    let failed = sluice.trigger("failing", json!({})).await;
    assert_eq!(sluice.wait_run_done("failing", &failed, Duration::from_secs(60)).await["state"], "failed");

    let (status, grid) = sluice.get("/ui/grid/diamond").await;
    assert_eq!(status, 200, "{grid}");
    assert_eq!(ids(&grid, "runs", "run_id"), [second.clone(), first.clone()], "newest run first");
    assert_eq!(ids(&grid, "tasks", "task_id"), ["extract", "left", "right", "join", "report"]);
    let cells = grid["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    for row in cells {
        let states: Vec<_> =
            row.as_array().unwrap().iter().map(|c| (c["state"].clone(), c["try_number"].clone())).collect();
        assert_eq!(states, vec![(json!("success"), json!(1)); 5]);
        assert!(row[0]["start_date"].is_string() && row[0]["map_count"] == 1, "{row}");
    }
    assert_eq!(grid["total_runs"], 2);
    let (_, page) = sluice.get("/ui/grid/diamond?limit=1&offset=1").await;
    assert_eq!(ids(&page, "runs", "run_id"), [first.as_str()]);
    assert_eq!(sluice.get("/ui/grid/nope").await.0, 404);

    // Laid out left to right: every edge goes from a column to a later one, and the long edge bends around join.
    let (status, structure) = sluice.get(&format!("/ui/structure/diamond?run_id={}", second.replace('+', "%2B"))).await;
    assert_eq!(status, 200, "{structure}");
    let nodes = structure["nodes"].as_array().unwrap();
    let node = |id: &str| nodes.iter().find(|n| n["id"] == id).unwrap().clone();
    let x = |id: &str| node(id)["x"].as_f64().unwrap();
    assert!(x("extract") < x("left") && x("left") == x("right") && x("right") < x("join") && x("join") < x("report"));
    assert!(nodes.iter().all(|n| n["state"] == "success" && n["width"].as_f64().unwrap() > 0.0), "{structure}");
    let edges = structure["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 6);
    for edge in edges {
        let points = edge["points"].as_array().unwrap();
        let xs: Vec<f64> = points.iter().map(|p| p[0].as_f64().unwrap()).collect();
        assert!(xs.windows(2).all(|w| w[0] <= w[1]), "{edge}");
        let (source, target) = (node(edge["source"].as_str().unwrap()), node(edge["target"].as_str().unwrap()));
        assert_eq!(xs[0], source["x"].as_f64().unwrap() + source["width"].as_f64().unwrap());
        assert_eq!(xs[xs.len() - 1], target["x"].as_f64().unwrap());
    }
    let long = edges.iter().find(|e| e["source"] == "extract" && e["target"] == "report").unwrap();
    assert_eq!(long["points"].as_array().unwrap().len(), 2 + 2 * 2, "through the two columns between: {long}");
    let (_, latest) = sluice.get("/ui/structure/diamond").await;
    assert!(latest["nodes"].as_array().unwrap().iter().all(|n| n["state"].is_null()));
    assert!(latest["width"].as_f64().unwrap() > x("report"));

    let (status, gantt) = sluice.get(&format!("/ui/gantt/diamond/{second}")).await;
    assert_eq!(status, 200, "{gantt}");
    assert_eq!(gantt["run"]["run_id"], second);
    let tries = gantt["tries"].as_array().unwrap();
    assert_eq!(tries.len(), 5);
    for t in tries {
        assert_eq!((&t["state"], &t["try_number"]), (&json!("success"), &json!(1)), "{t}");
        assert!(t["duration"].as_f64().unwrap() >= 0.0 && t["queued_at"].is_string(), "{t}");
        assert!(time(&t["queued_at"]) <= time(&t["start_date"]), "{t}");
    }

    let (status, list) = sluice.get("/ui/dags?runs=1").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total_entries"], 2);
    let diamond = &list["dags"][0];
    assert_eq!(
        (&diamond["dag_id"], &diamond["tags"], &diamond["owners"]),
        (&json!("diamond"), &json!(["etl", "nightly"]), &json!(["data-team"]))
    );
    assert_eq!(ids(diamond, "latest_dag_runs", "run_id"), [second.as_str()]);
    let (_, list) = sluice.get("/ui/dags?runs=5&filter=failing").await;
    assert_eq!(ids(&list, "dags", "dag_id"), ["failing"]);
    assert_eq!(list["dags"][0]["latest_dag_runs"][0]["state"], "failed");
    let (_, list) = sluice.get("/ui/dags?tags=nightly&dag_id_pattern=amon").await;
    assert_eq!(ids(&list, "dags", "dag_id"), ["diamond"]);
    assert_eq!(list["dags"][0]["latest_dag_runs"].as_array().unwrap().len(), 2);
    let (_, list) = sluice.get("/ui/dags?filter=paused").await;
    assert_eq!(list["total_entries"], 0, "{list}");
    let (_, list) = sluice.get("/ui/dags?filter=active").await;
    assert_eq!(list["total_entries"], 2, "{list}");
    assert_eq!(sluice.get("/ui/dags?filter=sleepy").await.0, 422);

    let (status, workers) = sluice.get("/ui/workers").await;
    assert_eq!(status, 200, "{workers}");
    let worker = &workers["workers"][0];
    assert_eq!(
        (&worker["name"], &worker["slots"], &worker["state"]),
        (&json!("worker-1"), &json!(4), &json!("active"))
    );
    assert_eq!(worker["queues"], json!(["default"]));
}

#[tokio::test]
async fn the_event_stream_brings_changes_within_two_seconds() {
    let sluice = Sluice::start(Backend::Postgres, &[("chatty.yaml", CHATTY), ("open.yaml", OPEN)], 1).await;
    sluice.wait_dag("chatty").await;
    let token = sluice.token.clone().unwrap();
    let mut events = open_stream(&sluice.url, &token, "/api/v2/ui/events?dag_id=chatty").await.unwrap();
    let run_id = sluice.trigger("chatty", json!({})).await;
    sluice.trigger("open", json!({})).await;

    let running = next_matching(&mut events, Duration::from_secs(30), "talk running", |e| {
        e.event == "task_instance" && e.data["state"] == "running"
    })
    .await;
    assert_eq!((&running.data["run_id"], &running.data["task_id"]), (&json!(run_id), &json!("talk")));
    assert_eq!(running.data["try_number"], 1);
    let late = running.at - time(&running.data["start_date"]);
    assert!(late < chrono::Duration::seconds(2), "task_instance event {late} after the change");

    let done = next_matching(&mut events, Duration::from_secs(30), "the run's success", |e| {
        e.event == "dag_run" && e.data["state"] == "success"
    })
    .await;
    assert_eq!(done.data["run_id"], json!(run_id));
    let late = done.at - time(&done.data["end_date"]);
    assert!(late < chrono::Duration::seconds(2), "dag_run event {late} after the change");
    // Filtered by DAG: the other DAG's run never shows.
    sluice.wait_run_done("open", &sluice_open_run(&sluice).await, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while let Ok(event) = events.try_recv() {
        assert_eq!(event.data["dag_id"], "chatty", "{event:?}");
    }
}

#[tokio::test]
async fn a_stream_from_one_server_brings_changes_made_through_another() {
    let mut sluice = Sluice::start(Backend::Postgres, &[("chatty.yaml", CHATTY)], 1).await;
    sluice.wait_dag("chatty").await;
    // Server B only serves: the run is triggered on A, scheduled by A's scheduler and run by A's worker, so B
    // learns of it through the database alone.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (bind, b) = (format!("127.0.0.1:{port}"), format!("http://127.0.0.1:{port}"));
    let server_b = sluice.spawn("server-b", &["server", "--bind", &bind, "--no-scheduler"]);
    sluice.extra.push(server_b);
    sluice
        .eventually("server B to answer", Duration::from_secs(60), || async {
            let response = sluice.http.get(format!("{b}/health")).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
    let token = sluice.token.clone().unwrap();
    let mut events = open_stream(&b, &token, "/api/v2/ui/events?dag_id=chatty").await.unwrap();
    let run_id = sluice.trigger("chatty", json!({})).await;

    let mut task_states = Vec::new();
    let done = loop {
        let event = next_matching(&mut events, Duration::from_secs(30), "the run's changes on B", |e| {
            e.data["run_id"] == json!(run_id)
        })
        .await;
        match (event.event.as_str(), event.data["state"].as_str().unwrap()) {
            ("task_instance", state) => {
                if state == "running" {
                    let late = event.at - time(&event.data["start_date"]);
                    assert!(late < chrono::Duration::seconds(3), "B saw the task start {late} after A");
                }
                task_states.push(state.to_owned());
            }
            ("dag_run", "success") => break event,
            _ => {}
        }
    };
    let late = done.at - time(&done.data["end_date"]);
    assert!(late < chrono::Duration::seconds(3), "B saw the run end {late} after A");
    let running = task_states.iter().position(|s| s == "running").unwrap_or_else(|| panic!("{task_states:?}"));
    assert!(task_states[running..].contains(&"success".to_owned()), "{task_states:?}");
    let (_, run) = sluice.get(&format!("/dags/chatty/dagRuns/{run_id}")).await;
    assert_eq!(run["state"], "success", "A agrees");
}

/// The one run of the DAG `open`.
async fn sluice_open_run(sluice: &Sluice) -> String {
    let (_, runs) = sluice.get("/dags/open/dagRuns").await;
    runs["dag_runs"][0]["dag_run_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_log_stream_brings_a_running_tries_lines_then_its_end() {
    let sluice = Sluice::start(Backend::Postgres, &[("chatty.yaml", CHATTY), ("long_log.yaml", LONG_LOG)], 1).await;
    let token = sluice.token.clone().unwrap();
    let run_id = sluice.trigger("chatty", json!({})).await;
    sluice.wait_task_state("chatty", &run_id, "talk", "running").await;
    let path = format!("/api/v2/ui/logs/chatty/{run_id}/talk/1");
    let mut events = open_stream(&sluice.url, &token, &path).await.unwrap();
    let first = next_matching(&mut events, Duration::from_secs(10), "a line", |e| e.event == "line").await;
    let (_, ti) = sluice.get(&format!("/dags/chatty/dagRuns/{run_id}/taskInstances/talk")).await;
    assert_eq!(ti["state"], "running", "the first line arrived while the task ran");
    let mut lines = vec![first.data.clone()];
    let end = loop {
        let event = next_matching(&mut events, Duration::from_secs(20), "the end", |_| true).await;
        match event.event.as_str() {
            "line" => lines.push(event.data),
            "end" => break event.data,
            other => panic!("unexpected event {other}"),
        }
    };
    assert_eq!(end, json!({"state": "success"}));
    let task_lines: Vec<&str> =
        lines.iter().filter(|l| l["stream"] == "stdout").map(|l| l["line"].as_str().unwrap()).collect();
    assert_eq!(task_lines, (1..=7).map(|i| format!("line-{i}")).collect::<Vec<_>>());
    assert!(lines.windows(2).all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64()));
    assert!(events.recv().await.is_none(), "the stream ends after `end`");

    // After a line: only what follows it, then the end at once for a finished try.
    let third = lines.iter().find(|l| l["line"] == "line-3").unwrap()["id"].as_i64().unwrap();
    let mut rest = open_stream(&sluice.url, &token, &format!("{path}?after={third}")).await.unwrap();
    let mut after = Vec::new();
    while let Some(event) = rest.recv().await {
        after.push((event.event, event.data["line"].as_str().unwrap_or_default().to_owned()));
    }
    let expected: Vec<(String, String)> = lines
        .iter()
        .filter(|l| l["id"].as_i64().unwrap() > third)
        .map(|l| ("line".into(), l["line"].as_str().unwrap().to_owned()))
        .chain([("end".into(), String::new())])
        .collect();
    assert_eq!(after, expected);
    assert_eq!(
        open_stream(&sluice.url, &token, &format!("/api/v2/ui/logs/chatty/{run_id}/talk/2")).await.err(),
        Some(404)
    );

    // A 50,000-line log pages through the JSON endpoint by continuation token.
    let run_id = sluice.trigger("long_log", json!({})).await;
    sluice.wait_run_done("long_log", &run_id, Duration::from_secs(120)).await;
    let base = format!("/dags/long_log/dagRuns/{run_id}/taskInstances/print/logs/1?limit=8000");
    let (mut numbers, mut token_, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let path = match &token_ {
            Some(t) => format!("{base}&token={t}"),
            None => base.clone(),
        };
        let (status, page) = sluice.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let content = page["content"].as_array().unwrap();
        if content.is_empty() {
            break;
        }
        assert!(content.len() <= 8000);
        pages += 1;
        numbers.extend(
            content
                .iter()
                .filter(|l| l["stream"] == "stdout")
                .map(|l| l["event"].as_str().unwrap().parse::<u32>().unwrap()),
        );
        token_ = page["continuation_token"].as_str().map(String::from);
        assert_eq!(token_, Some(content.last().unwrap()["id"].to_string()));
    }
    assert_eq!(numbers, (1..=50_000).collect::<Vec<_>>());
    assert!(pages >= 7, "{pages} pages");
    assert_eq!(sluice.get(&format!("{base}0000")).await.0, 422, "a page over 10,000 lines is refused");
}

#[tokio::test]
async fn a_viewer_sees_nothing_of_a_dag_it_may_not_read() {
    let sluice = Sluice::start(Backend::Sqlite, &[("open.yaml", OPEN), ("private.yaml", PRIVATE)], 0).await;
    sluice.wait_dag("open").await;
    sluice.wait_dag("private").await;
    sluice.create_user("viewer", "Viewer", "viewer-password").await;
    let viewer = sluice.login("viewer", "viewer-password").await;
    let admin = sluice.token.clone().unwrap();

    let (status, list) = sluice.request_as(Some(&viewer), Method::GET, "/api/v2/ui/dags", None).await;
    assert_eq!(
        (status, ids(&list, "dags", "dag_id"), &list["total_entries"]),
        (200, vec!["open".to_owned()], &json!(1))
    );
    let (_, list) = sluice.request_as(Some(&admin), Method::GET, "/api/v2/ui/dags", None).await;
    assert_eq!(ids(&list, "dags", "dag_id"), ["open", "private"]);

    let run_id = sluice.trigger("private", json!({})).await;
    for path in [
        "/api/v2/ui/grid/private".to_owned(),
        "/api/v2/ui/structure/private".to_owned(),
        format!("/api/v2/ui/gantt/private/{run_id}"),
        "/api/v2/ui/events?dag_id=private".to_owned(),
    ] {
        let (status, body) = sluice.request_as(Some(&viewer), Method::GET, &path, None).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    assert_eq!(sluice.request_as(Some(&viewer), Method::GET, "/api/v2/ui/grid/open", None).await.0, 200);

    // Unfiltered streams: the admin's sees both DAGs' new runs, the viewer's only the open one's.
    let mut seen_by_viewer = open_stream(&sluice.url, &viewer, "/api/v2/ui/events").await.unwrap();
    let mut seen_by_admin = open_stream(&sluice.url, &admin, "/api/v2/ui/events").await.unwrap();
    let private_run = sluice.trigger("private", json!({})).await;
    let open_run = sluice.trigger("open", json!({})).await;
    next_matching(&mut seen_by_admin, Duration::from_secs(10), "the private run", |e| e.data["run_id"] == private_run)
        .await;
    next_matching(&mut seen_by_admin, Duration::from_secs(10), "the open run", |e| e.data["run_id"] == open_run).await;
    next_matching(&mut seen_by_viewer, Duration::from_secs(10), "the open run", |e| e.data["run_id"] == open_run).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while let Ok(event) = seen_by_viewer.try_recv() {
        assert_eq!(event.data["dag_id"], "open", "{event:?}");
    }
}

#[tokio::test]
async fn params_have_airflows_shape_and_a_bad_value_names_its_param() {
    let sluice = Sluice::start(Backend::Sqlite, &[("with_params.yaml", PARAMS)], 0).await;
    sluice.wait_dag("with_params").await;
    let (status, details) = sluice.get("/dags/with_params/details").await;
    assert_eq!(status, 200, "{details}");
    let rows = &details["params"]["rows"];
    assert_eq!(rows["value"], 10);
    assert_eq!(rows["description"], "How many rows to load");
    assert_eq!(rows["schema"], json!({"type": "integer", "minimum": 1, "maximum": 100}));
    assert_eq!(details["params"]["mode"]["schema"], json!({"type": "string", "enum": ["fast", "slow"]}));
    assert_eq!(details["params"]["mode"]["value"], "fast");

    assert_eq!(details["params"]["tags"]["schema"]["items"], json!({"type": "string"}), "the whole JSON Schema");
    // Every keyword of the schema is checked, nested ones too, and the error says which param and where.
    let refused = [
        (json!({"rows": 1000}), "param `rows`: 1000 is greater than the maximum of 100"),
        (json!({"mode": "medium"}), "param `mode`: \"medium\" is not one of \"fast\" or \"slow\""),
        (json!({"rows": "ten"}), "param `rows`: \"ten\" is not of type \"integer\""),
        (json!({"region": "EU"}), "param `region`: \"EU\" does not match"),
        (json!({"tags": []}), "param `tags`: [] has less than 1 item"),
        (json!({"tags": ["a", "a"]}), "param `tags`: [\"a\",\"a\"] has non-unique elements"),
        (json!({"window": {"days": 3}}), "param `window`: \"start\" is a required property"),
        (json!({"window": {"start": "2026-02-30"}}), "param `window` at /start: \"2026-02-30\" is not a \"date\""),
        (json!({"window": {"start": "2026-02-03", "days": 0}}), "param `window` at /days: 0 is less than or equal to"),
    ];
    for (conf, expected) in refused {
        let body = json!({"logical_date": null, "conf": conf});
        let (status, answer) = sluice.post("/dags/with_params/dagRuns", body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["detail"].as_str().unwrap().contains(expected), "{expected}: {answer}");
    }
    let (status, run) =
        sluice.post("/dags/with_params/dagRuns", json!({"logical_date": null, "conf": {"rows": 50}})).await;
    assert_eq!(status, 200, "{run}");
}
