//! `source: {type: http}`: the records of a JSON API, page after page, into a data frame.
//!
//! Each page is one `GET`. Rate limits (429) and server errors (5xx), and requests that never got an answer, are
//! retried with exponential backoff, honouring `Retry-After`; any other 4xx fails at once, because asking again
//! cannot fix a bad request or bad credentials. Messages show URLs without their query, where API keys sometimes
//! travel, and never a credential.
//!
//! The connection gives the host (for a relative `url`) and the credentials, chosen by which fields it has:
//! `extra.header` → that header, carrying the password (or `extra.token`); else `login` → basic auth; else a
//! password or `extra.token` → `Authorization: Bearer`. Credentials go only to the connection's own origin: a
//! next-page URL pointing elsewhere is fetched without them.

use std::io::Cursor;
use std::time::Duration;

use polars::prelude::*;
use reqwest::{StatusCode, Url};
use serde_json::Value;
use sluice_core::connection::Connection;
use sluice_core::ops_spec::{HttpSource, Pagination, json_pointer};

use crate::error::{OpsError, Result};
use crate::runtime::block_on;
use crate::task::NamedConnection;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The start of an error body quoted in a message.
const BODY_EXCERPT: usize = 300;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The wait before the first retry; it doubles each time.
    pub first_delay: Duration,
    /// No wait is longer, whatever `Retry-After` asks for.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 5, first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(60) }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        self.first_delay.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1))).min(self.max_delay)
    }
}

/// Fetch every page of `source` and return its records as a frame.
pub(crate) fn read_http(
    source: &HttpSource,
    connection: Option<NamedConnection<'_>>,
    policy: RetryPolicy,
    log: &dyn Fn(&str),
) -> Result<DataFrame> {
    let client = Client::new(source, connection, policy, log)?;
    let records = block_on(client.fetch_all(source))??;
    log(&format!("{} records from {}", records.len(), shown(&client.first_url)));
    records_frame(records)
}

/// `POST`s `body` as JSON to `endpoint` (joined to the connection's host, as a source's `url`), with the
/// connection's credentials, retried as the module doc says.
pub(crate) fn post_json(
    endpoint: &str,
    connection: NamedConnection<'_>,
    body: &Value,
    policy: RetryPolicy,
    log: &dyn Fn(&str),
) -> Result<()> {
    let target = HttpSource {
        url: endpoint.to_owned(),
        connection: Some(connection.0.to_owned()),
        records: None,
        params: Default::default(),
        headers: Default::default(),
        pagination: None,
    };
    let client = Client::new(&target, Some(connection), policy, log)?;
    block_on(client.send(&client.first_url, Some(body)))??;
    Ok(())
}

/// One `GET` of `url` (joined to the connection's host, with its credentials), not retried: an HTTP sensor's
/// poke, which pokes again anyway. The status, and the body when it is JSON.
pub(crate) fn get_once(
    url: &str,
    connection: Option<NamedConnection<'_>>,
    log: &dyn Fn(&str),
) -> Result<(StatusCode, Option<Value>)> {
    let target = HttpSource {
        url: url.to_owned(),
        connection: connection.map(|(id, _)| id.to_owned()),
        records: None,
        params: Default::default(),
        headers: Default::default(),
        pagination: None,
    };
    let client = Client::new(&target, connection, RetryPolicy::default(), log)?;
    let url = client.first_url.clone();
    block_on(async {
        let response = client
            .auth
            .apply(client.http.get(url.clone()))
            .send()
            .await
            .map_err(|e| OpsError::Http(format!("cannot reach {}: {}", shown(&url), describe(e))))?;
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        log(&format!("HTTP {status} from {}", shown(&url)));
        Ok::<_, OpsError>((status, serde_json::from_slice(&bytes).ok()))
    })?
}

enum Auth {
    None,
    Bearer(String),
    Basic { login: String, password: Option<String> },
    Header { name: reqwest::header::HeaderName, value: reqwest::header::HeaderValue },
}

impl Auth {
    fn of(conn_id: &str, conn: &Connection) -> Result<Auth> {
        let secret = conn.password.clone().filter(|p| !p.is_empty()).or_else(|| conn.extra_str("token"));
        if let Some(name) = conn.extra_str("header") {
            let value = secret.ok_or_else(|| {
                OpsError::Http(format!(
                    "connection {conn_id:?} names the header {name:?} but has no password or extra.token to send in it"
                ))
            })?;
            let invalid =
                |what: &str| OpsError::Http(format!("connection {conn_id:?}: {what} is not valid in an HTTP header"));
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("extra.header"))?;
            let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| invalid("the secret"))?;
            value.set_sensitive(true);
            return Ok(Auth::Header { name, value });
        }
        Ok(match (&conn.login, secret) {
            (Some(login), _) if !login.is_empty() => {
                Auth::Basic { login: login.clone(), password: conn.password.clone() }
            }
            (_, Some(token)) => Auth::Bearer(token),
            _ => Auth::None,
        })
    }

    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { login, password } => request.basic_auth(login, password.as_ref()),
            Auth::Header { name, value } => request.header(name, value),
        }
    }
}

struct Client<'a> {
    http: reqwest::Client,
    auth: Auth,
    conn_id: Option<&'a str>,
    /// The URL with the source's query parameters: the first page.
    first_url: Url,
    policy: RetryPolicy,
    log: &'a dyn Fn(&str),
}

impl<'a> Client<'a> {
    fn new(
        source: &HttpSource,
        connection: Option<NamedConnection<'a>>,
        policy: RetryPolicy,
        log: &'a dyn Fn(&str),
    ) -> Result<Client<'a>> {
        let mut first_url = resolve_url(&source.url, connection)?;
        // Even an empty extension would leave a bare `?` behind.
        if !source.params.is_empty() {
            first_url.query_pairs_mut().extend_pairs(&source.params);
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &source.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| OpsError::Invalid(format!("invalid HTTP header name {name:?}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| OpsError::Invalid(format!("invalid value of HTTP header {name}")))?;
            headers.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .default_headers(headers)
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OpsError::Http(format!("cannot build the HTTP client: {e}")))?;
        let auth = match connection {
            Some((id, conn)) => Auth::of(id, conn)?,
            None => Auth::None,
        };
        Ok(Client { http, auth, conn_id: connection.map(|(id, _)| id), first_url, policy, log })
    }

    async fn fetch_all(&self, source: &HttpSource) -> Result<Vec<Value>> {
        let records_at = source.records.as_deref().map(json_pointer);
        let Some(pagination) = &source.pagination else {
            let body = self.get_json(&self.first_url).await?;
            return page_records(body, records_at.as_deref(), &self.first_url);
        };
        let mut all = Vec::new();
        let mut url = self.first_url.clone();
        let mut page_number = match pagination {
            Pagination::PageNumber { start, .. } => *start,
            _ => 0,
        };
        for _ in 0..pagination.max_pages() {
            if let Pagination::PageNumber { param, .. } = pagination {
                url = with_param(&self.first_url, param, &page_number.to_string());
                page_number += 1;
            }
            let body = self.get_json(&url).await?;
            let next = next_page(&body, pagination, &self.first_url, &url)?;
            let records = page_records(body, records_at.as_deref(), &url)?;
            let empty = records.is_empty();
            all.extend(records);
            match (pagination, next) {
                (Pagination::PageNumber { .. }, _) if empty => return Ok(all),
                (Pagination::PageNumber { .. }, _) => {}
                (_, Some(next)) => url = next,
                (_, None) => return Ok(all),
            }
        }
        Err(OpsError::Http(format!(
            "{} still has pages after {} requests: raise `max_pages` of the source's pagination if that is expected",
            shown(&self.first_url),
            pagination.max_pages()
        )))
    }

    /// One `GET`, retried as the module doc says; the body as JSON.
    async fn get_json(&self, url: &Url) -> Result<Value> {
        let response = self.send(url, None).await?;
        self.json_body(response, url).await
    }

    /// One `GET`, or a `POST` of `body`, retried as the module doc says, until it succeeds.
    async fn send(&self, url: &Url, body: Option<&Value>) -> Result<reqwest::Response> {
        let attempts = self.policy.attempts.max(1);
        let mut attempt = 1;
        loop {
            let mut request = match body {
                Some(body) => self.http.post(url.clone()).json(body),
                None => self.http.get(url.clone()),
            };
            if url.origin() == self.first_url.origin() {
                request = self.auth.apply(request);
            }
            let retry_in = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !retryable || attempt == attempts {
                        let excerpt = excerpt(&response.text().await.unwrap_or_default());
                        return Err(self.status_error(status, url, attempt, &excerpt));
                    }
                    let wait = retry_after(response.headers()).unwrap_or_else(|| self.policy.backoff(attempt));
                    let wait = wait.min(self.policy.max_delay);
                    (self.log)(&format!(
                        "HTTP {status} from {}: retrying in {} (attempt {attempt} of {attempts})",
                        shown(url),
                        seconds(wait)
                    ));
                    wait
                }
                // A request that could not even be built (a token with a line break) fails the same way each time.
                Err(e) if e.is_builder() => {
                    return Err(OpsError::Http(format!("cannot make a request to {}: {}", shown(url), describe(e))));
                }
                Err(e) if attempt == attempts => {
                    return Err(OpsError::Http(format!(
                        "cannot reach {} after {attempt} attempts: {}",
                        shown(url),
                        describe(e)
                    )));
                }
                Err(e) => {
                    let wait = self.policy.backoff(attempt);
                    (self.log)(&format!(
                        "cannot reach {}: {}; retrying in {} (attempt {attempt} of {attempts})",
                        shown(url),
                        describe(e),
                        seconds(wait)
                    ));
                    wait
                }
            };
            tokio::time::sleep(retry_in).await;
            attempt += 1;
        }
    }

    async fn json_body(&self, response: reqwest::Response, url: &Url) -> Result<Value> {
        let bytes = response
            .bytes()
            .await
            .map_err(|e| OpsError::Http(format!("cannot read the response from {}: {}", shown(url), describe(e))))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            OpsError::Http(format!("the response from {} is not JSON ({e}): {}", shown(url), excerpt_bytes(&bytes)))
        })
    }

    fn status_error(&self, status: StatusCode, url: &Url, attempt: u32, excerpt: &str) -> OpsError {
        let from = format!("HTTP {status} from {}", shown(url));
        OpsError::Http(match (status, self.conn_id) {
            (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, Some(id)) => {
                format!("{from}: check the credentials of connection {id:?}")
            }
            (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, None) => {
                format!("{from}: the source names no connection to take credentials from")
            }
            _ if attempt > 1 => format!("{from} after {attempt} attempts: {excerpt}"),
            _ => format!("{from}: {excerpt}"),
        })
    }
}

/// `url` as given when absolute, else joined to the connection's host (`host` may carry the scheme; otherwise
/// the connection's `schema` or `http`, as Airflow's HTTP connections do).
fn resolve_url(url: &str, connection: Option<NamedConnection<'_>>) -> Result<Url> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Url::parse(url).map_err(|e| invalid_url(url, e));
    }
    let Some((_, conn)) = connection.filter(|(_, c)| c.host.is_some()) else {
        return Err(OpsError::Invalid(format!(
            "URL {url:?} is relative: give an absolute URL, or a connection whose host it is joined to"
        )));
    };
    conn.http_url(url).map_err(OpsError::Invalid)
}

fn invalid_url(url: &str, e: impl std::fmt::Display) -> OpsError {
    OpsError::Invalid(format!("invalid URL {url:?}: {e}"))
}

/// `url` with query parameter `name` set to `value` (replacing an earlier value).
fn with_param(url: &Url, name: &str, value: &str) -> Url {
    let mut next = url.clone();
    let kept: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| k != name).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    next.query_pairs_mut().clear().extend_pairs(kept).append_pair(name, value);
    next
}

/// The next page's URL, or `None` on the last page (page-number pagination decides from the records instead).
fn next_page(body: &Value, pagination: &Pagination, first: &Url, current: &Url) -> Result<Option<Url>> {
    let (pointer, cursor_param) = match pagination {
        Pagination::PageNumber { .. } => return Ok(None),
        Pagination::NextUrl { next, .. } => (next, None),
        Pagination::Cursor { cursor, param, .. } => (cursor, Some(param)),
    };
    let token = match body.pointer(&json_pointer(pointer)) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(other @ Value::Number(_)) => other.to_string(),
        Some(other) => {
            return Err(OpsError::Http(format!(
                "the next page at {pointer} in the response from {} is not a text: {}",
                shown(current),
                excerpt(&other.to_string())
            )));
        }
    };
    match cursor_param {
        Some(param) => Ok(Some(with_param(first, param, &token))),
        None => current.join(&token).map(Some).map_err(|e| {
            OpsError::Http(format!("the next page URL {token:?} from {} is invalid: {e}", shown(current)))
        }),
    }
}

/// The records of one page: the array at `pointer` (the body itself without one). `null` is an empty page.
fn page_records(mut body: Value, pointer: Option<&str>, url: &Url) -> Result<Vec<Value>> {
    let keys = |v: &Value| match v {
        Value::Object(map) => map.keys().map(String::as_str).collect::<Vec<_>>().join(", "),
        _ => String::new(),
    };
    let found = match pointer {
        None | Some("") => Some(body.take()),
        Some(p) => body.pointer_mut(p).map(Value::take),
    };
    let records = match (found, pointer) {
        (Some(Value::Array(records)), _) => records,
        (Some(Value::Null), Some(_)) => Vec::new(),
        (None, p) => {
            return Err(OpsError::Http(format!(
                "no records at {} in the response from {} (its top-level keys: {})",
                p.unwrap_or_default(),
                shown(url),
                keys(&body)
            )));
        }
        (Some(Value::Object(map)), None) => {
            return Err(OpsError::Http(format!(
                "the response from {} is an object, not an array of records: set `records` to where the array is \
                 (its keys: {})",
                shown(url),
                map.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
            )));
        }
        (Some(other), _) => {
            return Err(OpsError::Http(format!(
                "the records in the response from {} are not an array: {}",
                shown(url),
                excerpt(&other.to_string())
            )));
        }
    };
    if let Some((i, record)) = records.iter().enumerate().find(|(_, r)| !r.is_object()) {
        return Err(OpsError::Http(format!(
            "record {} from {} is not a JSON object: {}",
            i + 1,
            shown(url),
            excerpt(&record.to_string())
        )));
    }
    Ok(records)
}

/// JSON objects → a frame, one column per key (missing keys are missing values).
fn records_frame(records: Vec<Value>) -> Result<DataFrame> {
    if records.is_empty() {
        return Ok(DataFrame::empty());
    }
    let json = serde_json::to_vec(&Value::Array(records))
        .map_err(|e| OpsError::Invalid(format!("cannot re-encode the records: {e}")))?;
    // Every record is read to infer the schema: a key that first appears late must not be dropped.
    Ok(JsonReader::new(Cursor::new(json)).with_json_format(JsonFormat::Json).infer_schema_len(None).finish()?)
}

/// How long `Retry-After` asks to wait: seconds, or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or_default())
}

/// The URL for messages: no query (API keys travel there sometimes), no user or password.
fn shown(url: &Url) -> String {
    let mut clean = url.clone();
    clean.set_query(None);
    // Only URLs that cannot have a user (no host) refuse these, and those have none to hide.
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean.to_string()
}

/// reqwest's error with its causes (the top one alone says little: "error sending request"), without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) { format!("{}ms", d.as_millis()) } else { format!("{:.1}s", d.as_secs_f64()) }
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(BODY_EXCERPT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn excerpt_bytes(bytes: &[u8]) -> String {
    excerpt(&String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests;
