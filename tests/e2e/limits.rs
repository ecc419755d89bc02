//! The limits a server puts on its clients: failed sign-ins per username and per address, and the size of a
//! request body.

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
