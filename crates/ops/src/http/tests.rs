//! The HTTP source against a real local server that answers from a script: retries, credentials, pagination and
//! the errors of unexpected bodies.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;

use super::*;

/// One answer of the scripted server.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply { status, headers: Vec::new(), body: body.to_string() }
}

/// A server on a free local port; `answer` gets each request's head (request line and headers, lower-cased) and
/// its index. It serves until the test process ends.
struct Server {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(answer: impl Fn(&str, usize) -> Reply + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = String::new();
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    head.push_str(&line.to_ascii_lowercase());
                    line.clear();
                }
                let index = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(head.clone());
                    seen.len() - 1
                };
                let Reply { status, headers, body } = answer(&head, index);
                let mut out = format!(
                    "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                let _ = stream.write_all(format!("{out}\r\n{body}").as_bytes());
            }
        });
        Server { url, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn source(spec: Value) -> HttpSource {
    serde_json::from_value(spec).unwrap()
}

fn connection(spec: Value) -> Connection {
    serde_json::from_value(spec).unwrap()
}

/// Short waits, so that retries take milliseconds.
fn fast() -> RetryPolicy {
    RetryPolicy { attempts: 4, first_delay: Duration::from_millis(10), max_delay: Duration::from_secs(5) }
}

/// Reads `source` and returns the frame (or error) and the log lines.
fn read(source: &HttpSource, conn: Option<NamedConnection<'_>>) -> (Result<DataFrame>, Vec<String>) {
    let lines = Mutex::new(Vec::new());
    let log = |line: &str| lines.lock().unwrap().push(line.to_owned());
    let result = read_http(source, conn, fast(), &log);
    (result, lines.into_inner().unwrap())
}

#[test]
fn a_server_error_is_retried_then_the_records_load() {
    let server = Server::start(|_, i| match i {
        0 => reply(500, json!({"error": "boom"})),
        _ => reply(200, json!([{"id": 1, "name": "a"}, {"id": 2, "name": null}])),
    });
    let (df, log) = read(&source(json!({"url": format!("{}/items", server.url)})), None);
    let df = df.unwrap();
    assert_eq!((df.height(), df.width()), (2, 2));
    assert_eq!(df.column("name").unwrap().null_count(), 1);
    assert_eq!(server.requests().len(), 2);
    let expected =
        format!("HTTP 500 Internal Server Error from {}/items: retrying in 10ms (attempt 1 of 4)", server.url);
    assert_eq!(log[0], expected, "{log:?}");
}

#[test]
fn a_rate_limit_waits_as_retry_after_says() {
    let server = Server::start(|_, i| match i {
        0 => Reply { headers: vec![("retry-after", "1".to_owned())], ..reply(429, json!({})) },
        _ => reply(200, json!([{"id": 1}])),
    });
    let started = Instant::now();
    let (df, log) = read(&source(json!({"url": server.url})), None);
    assert_eq!(df.unwrap().height(), 1);
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert!(log[0].starts_with("HTTP 429 Too Many Requests from") && log[0].contains("retrying in 1.0s"), "{log:?}");
}

#[test]
fn bad_credentials_fail_at_once_naming_the_connection() {
    let server = Server::start(|_, _| reply(401, json!({"error": "bad token"})));
    let conn = connection(json!({"conn_type": "http", "host": server.url, "password": "s3cret-token"}));
    let src = source(json!({"url": "/v1/items", "connection": "shop", "params": {"api_key": "k"}}));
    let (result, log) = read(&src, Some(("shop", &conn)));
    let err = result.unwrap_err().to_string();
    assert_eq!(
        err,
        format!("HTTP 401 Unauthorized from {}/v1/items: check the credentials of connection \"shop\"", server.url)
    );
    assert!(log.is_empty(), "no retry: {log:?}");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].starts_with("get /v1/items?api_key=k "), "{requests:?}");
    assert!(requests[0].contains("authorization: bearer s3cret-token"), "{requests:?}");
}

#[test]
fn client_errors_are_not_retried_and_server_errors_give_up() {
    let missing = Server::start(|_, _| reply(404, json!({"detail": "no such endpoint"})));
    let (result, _) = read(&source(json!({"url": missing.url})), None);
    let err = result.unwrap_err().to_string();
    assert!(err.starts_with("HTTP 404 Not Found from") && err.contains("no such endpoint"), "{err}");
    assert_eq!(missing.requests().len(), 1);

    let down = Server::start(|_, _| reply(503, json!({"detail": "maintenance"})));
    let (result, log) = read(&source(json!({"url": down.url})), None);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("HTTP 503 Service Unavailable") && err.contains("after 4 attempts"), "{err}");
    assert_eq!((down.requests().len(), log.len()), (4, 3));
}

/// The value of query parameter `name` in a request head.
fn query_param(head: &str, name: &str) -> Option<String> {
    let target = head.split(' ').nth(1)?;
    let url = Url::parse(&format!("http://x{target}")).ok()?;
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[test]
fn page_numbers_until_an_empty_page_with_basic_auth() {
    let server = Server::start(|head, _| {
        let page: u64 = query_param(head, "page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let records: Vec<Value> = if page <= 2 { vec![json!({"page": page}), json!({"page": page})] } else { vec![] };
        reply(200, json!({"data": records}))
    });
    let conn = connection(json!({"conn_type": "http", "host": server.url, "login": "ann", "password": "pw"}));
    let src = source(json!({
        "url": "/items", "connection": "api", "records": "data", "params": {"per_page": "2"},
        "pagination": {"type": "page_number"}
    }));
    let (df, _) = read(&src, Some(("api", &conn)));
    assert_eq!(df.unwrap().height(), 4);
    let requests = server.requests();
    let pages: Vec<Option<String>> = requests.iter().map(|r| query_param(r, "page")).collect();
    assert_eq!(pages, [Some("1".into()), Some("2".into()), Some("3".into())]);
    assert!(requests.iter().all(|r| query_param(r, "per_page").as_deref() == Some("2")), "{requests:?}");
    // ann:pw in base64.
    assert!(requests[0].contains("authorization: basic yw5uonb3"), "{requests:?}");
}

#[test]
fn next_urls_and_cursors_with_an_api_key_header() {
    let linked = Server::start(|head, _| match query_param(head, "after") {
        None => reply(200, json!({"items": [{"n": 1}], "links": {"next": "/items?after=1"}})),
        Some(_) => reply(200, json!({"items": [{"n": 2}], "links": {"next": null}})),
    });
    let src = source(json!({
        "url": format!("{}/items", linked.url), "records": "/items",
        "pagination": {"type": "next_url", "next": "/links/next"}
    }));
    let (df, _) = read(&src, None);
    assert_eq!(df.unwrap().height(), 2);
    assert_eq!(linked.requests().len(), 2);

    let cursored = Server::start(|head, _| match query_param(head, "cursor").as_deref() {
        None => reply(200, json!({"results": [{"n": 1}, {"n": 2}], "meta": {"next": "c2"}})),
        Some("c2") => reply(200, json!({"results": [{"n": 3}], "meta": {"next": ""}})),
        Some(other) => reply(400, json!({"detail": format!("bad cursor {other}")})),
    });
    let conn = connection(json!({"conn_type": "http", "password": "k3y", "extra": {"header": "X-Api-Key"}}));
    let src = source(json!({
        "url": cursored.url, "connection": "api", "records": "results", "params": {"limit": "2"},
        "pagination": {"type": "cursor", "cursor": "meta.next", "param": "cursor"}
    }));
    let (df, _) = read(&src, Some(("api", &conn)));
    assert_eq!(df.unwrap().height(), 3);
    let requests = cursored.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (query_param(&requests[1], "limit").as_deref(), query_param(&requests[1], "cursor").as_deref()),
        (Some("2"), Some("c2"))
    );
    assert!(requests.iter().all(|r| r.contains("x-api-key: k3y")), "{requests:?}");
}

#[test]
fn credentials_stay_with_their_origin() {
    let elsewhere = Server::start(|_, _| reply(200, json!({"items": [{"n": 2}]})));
    let next = format!("{}/more", elsewhere.url);
    let home = Server::start(move |_, _| reply(200, json!({"items": [{"n": 1}], "next": next})));
    let conn = connection(json!({"conn_type": "http", "host": home.url, "password": "t0ken"}));
    let src = source(json!({
        "url": "/items", "connection": "api", "records": "items", "pagination": {"type": "next_url", "next": "/next"}
    }));
    let (df, _) = read(&src, Some(("api", &conn)));
    assert_eq!(df.unwrap().height(), 2);
    assert!(home.requests()[0].contains("authorization: bearer t0ken"));
    assert!(!elsewhere.requests()[0].contains("authorization"), "{:?}", elsewhere.requests());
}

#[test]
fn max_pages_ends_an_endless_api() {
    let server = Server::start(|_, i| reply(200, json!({"items": [{"n": i}], "next": format!("/items?p={}", i + 1)})));
    let src = source(json!({
        "url": format!("{}/items", server.url), "records": "items",
        "pagination": {"type": "next_url", "next": "/next", "max_pages": 3}
    }));
    let (result, _) = read(&src, None);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("still has pages after 3 requests") && err.contains("max_pages"), "{err}");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn records_must_be_an_array_of_objects() {
    let server = Server::start(|head, _| match head.split(' ').nth(1) {
        Some("/object") => reply(200, json!({"data": [], "meta": {}})),
        Some("/numbers") => reply(200, json!([1, 2])),
        _ => reply(200, json!("not json")),
    });
    let url = |path: &str| format!("{}{path}", server.url);
    let (result, _) = read(&source(json!({"url": url("/object")})), None);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("is an object, not an array of records") && err.contains("data, meta"), "{err}");
    let (result, _) = read(&source(json!({"url": url("/object"), "records": "/items"})), None);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("no records at /items") && err.contains("data, meta"), "{err}");
    let (result, _) = read(&source(json!({"url": url("/numbers")})), None);
    assert!(result.unwrap_err().to_string().contains("record 1 from"), "a number is not a record");
    let (df, _) = read(&source(json!({"url": url("/object"), "records": "data"})), None);
    assert_eq!(df.unwrap().shape(), (0, 0), "an empty page is an empty frame");
}

#[test]
fn urls_pointers_and_retry_after() {
    let conn = |host: &str| connection(json!({"conn_type": "http", "host": host, "schema": "https", "port": 8443}));
    let table = [
        ("https://api.example.com/v1", None, "https://api.example.com/v1"),
        ("/v1/items", Some(conn("api.example.com")), "https://api.example.com:8443/v1/items"),
        ("v1/items", Some(conn("http://api.example.com/")), "http://api.example.com/v1/items"),
    ];
    for (url, conn, want) in table {
        let resolved = resolve_url(url, conn.as_ref().map(|c| ("api", c))).unwrap();
        assert_eq!(resolved.as_str(), want);
    }
    assert!(resolve_url("/v1", None).unwrap_err().to_string().contains("is relative"));

    assert_eq!(json_pointer("data.items"), "/data/items");
    assert_eq!(json_pointer("/data/0"), "/data/0");
    assert_eq!(json_pointer("a/b.c"), "/a~1b/c");

    let secret = Url::parse("https://user:pw@api.example.com/v1/items?api_key=k").unwrap();
    assert_eq!(shown(&secret), "https://api.example.com/v1/items");

    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
    assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    headers.insert(reqwest::header::RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
    assert_eq!(retry_after(&headers), Some(Duration::ZERO), "a date in the past: at once");

    let policy = RetryPolicy { attempts: 9, first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(5) };
    let waits: Vec<u64> = (1..=5).map(|a| policy.backoff(a).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 5, 5]);
}
