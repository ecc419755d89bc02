//! The limits a server puts on its clients: failed sign-ins per username and per address, and the size of a
//! request body; and the one a worker puts on a try's log.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `POST /auth/token`: the status, the body, and `Retry-After` in seconds.
async fn sign_in(sluice: &Sluice, username: &str, password: &str) -> (u16, Value, Option<u64>) {
    let body = json!({"username": username, "password": password});
    let response = sluice.http.post(format!("{}/auth/token", sluice.url)).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
    (status, response.json().await.unwrap(), retry_after)
}

#[tokio::test]
async fn failed_sign_ins_lock_the_username_then_the_address() {
    let mut sluice = Sluice::new(Backend::Sqlite, &[]).await;
    for (var, value) in [
        ("SLUICE_LOGIN_MAX_FAILURES_PER_USER", "3"),
        ("SLUICE_LOGIN_MAX_FAILURES_PER_ADDRESS", "5"),
        ("SLUICE_LOGIN_FAILURE_WINDOW", "10m"),
    ] {
        sluice.env.push((var.into(), value.into()));
    }
    sluice.start_server(&[]).await;
    sluice.create_user("alice", "Viewer", "alice-password").await;
    sluice.create_user("bob", "Viewer", "bob-password").await;

    for attempt in 1..=3 {
        let (status, body, _) = sign_in(&sluice, "alice", "guess").await;
        assert_eq!(status, 401, "failure {attempt}: {body}");
    }
    // Locked: even the right password waits for the window to pass.
    let (status, body, retry_after) = sign_in(&sluice, "alice", "alice-password").await;
    assert_eq!(status, 429, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("user") && detail.contains("try again in"), "{detail}");
    assert!(retry_after.is_some_and(|s| (1..=600).contains(&s)), "Retry-After: {retry_after:?}");

    // Another username from the same address: its own failures are few, but the address's reach 5.
    for attempt in 4..=5 {
        let (status, body, _) = sign_in(&sluice, "bob", "guess").await;
        assert_eq!(status, 401, "address failure {attempt}: {body}");
    }
    let (status, body, retry_after) = sign_in(&sluice, "bob", "bob-password").await;
    assert_eq!(status, 429, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("address"), "{body}");
    assert!(retry_after.is_some());
    assert!(sluice.server_output().contains("too many failures"), "refusals are logged");
}

/// Sends `head` and then `body` on a connection of its own, and reads the answer to its end: the status and the
/// body. A raw connection, because the server answers a body over the limit without reading the rest, and an HTTP
/// client still writing it would see the connection closed under it instead of the answer.
async fn raw_request(sluice: &Sluice, head: &str, body: &[u8]) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", sluice.port)).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::String(body.to_string())))
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_as_json() {
    let sluice = Sluice::start(Backend::Sqlite, &[], 0).await;
    let limit = 8 << 20;
    let token = sluice.token.clone().unwrap();
    let head = |framing: &str| {
        format!(
            "POST /api/v2/variables HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nConnection: close\r\n{framing}\r\n"
        )
    };
    // Announced by `Content-Length`: refused before a byte of the body is read.
    let (status, body) = raw_request(&sluice, &head(&format!("Content-Length: {}\r\n", limit + 1)), b"").await;
    assert_eq!(status, 413, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("8 MiB"), "{body}");
    // Streamed in chunks: refused when the byte past the limit arrives (the last one sent).
    let chunk = [format!("{:x}\r\n", limit + 1).into_bytes(), vec![b' '; limit + 1]].concat();
    let (status, body) = raw_request(&sluice, &head("Transfer-Encoding: chunked\r\n"), &chunk).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("8 MiB"), "{body}");

    let (status, body) = sluice.post("/variables", json!({"key": "big", "value": "x".repeat(limit - 1000)})).await;
    assert_eq!(status, 201, "a body just under the limit is fine: {body}");
}

const CHATTY: &str = r#"
dag_id: chatty
schedule: null
is_paused_upon_creation: false
tasks:
  - id: flood
    script: |
      seq 1 500000
      echo '::output::{"done": true}'
"#;

#[tokio::test]
async fn a_log_over_the_limit_is_cut_with_a_note_and_the_try_goes_on() {
    let mut sluice = Sluice::new(Backend::Sqlite, &[("chatty.yaml", CHATTY)]).await;
    sluice.env.push(("SLUICE_MAX_LOG_BYTES".into(), "100000".into()));
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "1"]);
    let run_id = sluice.trigger("chatty", json!({})).await;
    let run = sluice.wait_run_done("chatty", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}");
    let (_, ti) = sluice.get(&format!("/dags/chatty/dagRuns/{run_id}/taskInstances/flood")).await;
    assert_eq!(ti["output"], json!({"done": true}), "the output after the cut still counts");

    let path = format!("/dags/chatty/dagRuns/{run_id}/taskInstances/flood/logs/1?full_content=true");
    let (_, log) = sluice.get(&path).await;
    let lines = log["content"].as_array().unwrap();
    let kept: usize =
        lines.iter().filter(|l| l["stream"] != "system").map(|l| l["event"].as_str().unwrap().len() + 1).sum();
    assert!(kept <= 100_000 && kept > 90_000, "{kept} bytes of output kept");
    let text: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    let cut = text.iter().position(|l| l.starts_with("the log is cut here")).expect("a note where the log is cut");
    let before_cut: Vec<&str> =
        lines[..cut].iter().filter(|l| l["stream"] != "system").map(|l| l["event"].as_str().unwrap()).collect();
    let counted: Vec<String> = (1..=before_cut.len()).map(|n| n.to_string()).collect();
    assert_eq!(before_cut, counted, "the first lines, whole and in order, up to the cut");
    assert!(
        text.iter().any(|l| l.ends_with("bytes of output were not kept in the log")),
        "{:?}",
        &text[text.len() - 3..]
    );
    assert!(!text.contains(&"500000"), "the end of the flood is not kept");
}

const FLOOD: &str = r#"
dag_id: flood
schedule: null
is_paused_upon_creation: false
tasks:
  - id: gigabyte
    script: |
      yes 'a line of a log nobody will read' | head -c 536870912
      head -c 536870912 /dev/zero | tr '\0' x
      echo
      echo '::output::{"survived": true}'
"#;

/// The peak resident set of a process, from the kernel's own count.
fn peak_rss_mib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap();
    kib / 1024
}

#[tokio::test]
async fn a_task_printing_a_gigabyte_takes_down_neither_its_worker_nor_the_server() {
    let mut sluice = Sluice::new(Backend::Postgres, &[("flood.yaml", FLOOD)]).await;
    sluice.env.push(("SLUICE_MAX_LOG_BYTES".into(), "1000000".into()));
    sluice.start_server(&[]).await;
    let worker = sluice.spawn_worker(&["--slots", "1"]);
    let run_id = sluice.trigger("flood", json!({})).await;
    let run = sluice.wait_run_done("flood", &run_id, Duration::from_secs(240)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let (_, ti) = sluice.get(&format!("/dags/flood/dagRuns/{run_id}/taskInstances/gigabyte")).await;
    assert_eq!(ti["output"], json!({"survived": true}), "the output after a gigabyte of log still counts");

    // Half a gigabyte of lines and half a gigabyte in one line went through the worker in bounded memory.
    let worker_peak = peak_rss_mib(sluice.workers[worker].pid());
    assert!(worker_peak < 256, "the worker's peak resident set: {worker_peak} MiB");
    let log = sluice.log("flood", &run_id, "gigabyte", 1).await;
    assert!(log.len() < 1_500_000, "{} bytes of log kept", log.len());
    assert!(log.contains("the log is cut here"), "a note where the log is cut");
    assert!(log.contains("bytes of output were not kept in the log"), "{}", &log[log.len().saturating_sub(500)..]);
    let (status, _) = sluice.get("/dags/flood").await;
    assert_eq!(status, 200, "the server still answers");
}
