//! The HTTP calls a worker makes to the server: lease, heartbeat, logs, report (`/worker/v1`).
//!
//! Every call carries `Authorization: Bearer <worker token>`. Status codes the worker acts on become their own error
//! variants: 401 (wrong token, fatal), 409 (the lease is stale: stop, change nothing) and 503 from a server that
//! cannot reach its database (try again; no lease can expire meanwhile). Everything else is either transient
//! (network, 5xx, 429: try again later) or a bug to log.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_core::protocol::{
    HeartbeatRequest, HeartbeatResponse, LeaseRequest, LeaseResponse, LogBatch, ReportRequest, UNAVAILABLE_HEADER,
    WORKER_API_PREFIX,
};
use uuid::Uuid;

/// Time allowed for a call that is not a long poll.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a lease on top of the long-poll wait, for the server to answer once the wait is over.
const LEASE_SLACK: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the server rejected the worker token (401)")]
    Unauthorized,
    #[error("the lease is stale (409): the server no longer lets this worker run the try")]
    Conflict,
    /// The server is up but cannot reach its database ([`UNAVAILABLE_HEADER`]).
    #[error("the server cannot reach its database (503): {0}")]
    DatabaseUnavailable(String),
    #[error("the server answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    /// Shown with its causes: reqwest's own message names only the URL, while the reason (a refused connection, a
    /// certificate the worker does not trust) is in its sources.
    #[error("request failed: {}", with_causes(.0))]
    Http(reqwest::Error),
}

impl From<reqwest::Error> for ClientError {
    fn from(error: reqwest::Error) -> Self {
        ClientError::Http(error)
    }
}

/// `error` and each of its sources, joined by `: `.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

impl ClientError {
    /// Whether the same request may succeed later (server restarting or overloaded, network down).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Http(e) => !e.is_builder() && !e.is_decode(),
            ClientError::Status { status, .. } => status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS,
            ClientError::DatabaseUnavailable(_) => true,
            ClientError::Unauthorized | ClientError::Conflict => false,
        }
    }
}

/// The worker's connection to the server; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `{server}/worker/v1`, without a trailing slash.
    base: String,
    token: String,
}

impl Client {
    /// A client of `server` whose HTTP connections `http` sets up (which CAs it trusts).
    pub fn new(server: &str, token: &str, http: reqwest::ClientBuilder) -> Result<Self, reqwest::Error> {
        let http = http.connect_timeout(Duration::from_secs(5)).build()?;
        let base = format!("{}{WORKER_API_PREFIX}", server.trim_end_matches('/'));
        Ok(Client { http, base, token: token.to_owned() })
    }

    /// Long-polls for up to `request.slots` tasks.
    pub async fn lease(&self, request: &LeaseRequest) -> Result<LeaseResponse, ClientError> {
        let timeout = Duration::from_millis(request.wait_ms) + LEASE_SLACK;
        self.post("lease", request, timeout).await
    }

    pub async fn heartbeat(&self, ti_id: Uuid, lease_id: Uuid) -> Result<HeartbeatResponse, ClientError> {
        let body = HeartbeatRequest { lease_id };
        self.post(&format!("tasks/{ti_id}/heartbeat"), &body, CALL_TIMEOUT).await
    }

    pub async fn logs(&self, ti_id: Uuid, batch: &LogBatch) -> Result<(), ClientError> {
        self.post_ignoring_body(&format!("tasks/{ti_id}/logs"), batch).await
    }

    pub async fn report(&self, ti_id: Uuid, report: &ReportRequest) -> Result<(), ClientError> {
        self.post_ignoring_body(&format!("tasks/{ti_id}/report"), report).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        Ok(self.send(path, body, timeout).await?.json().await?)
    }

    async fn post_ignoring_body(&self, path: &str, body: &impl Serialize) -> Result<(), ClientError> {
        self.send(path, body, CALL_TIMEOUT).await.map(drop)
    }

    /// Sends the request and turns every non-2xx answer into an error.
    async fn send(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let response = self
            .http
            .post(format!("{}/{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .json(body)
            .send()
            .await?;
        match response.status() {
            status if status.is_success() => Ok(response),
            StatusCode::UNAUTHORIZED => Err(ClientError::Unauthorized),
            StatusCode::CONFLICT => Err(ClientError::Conflict),
            status => {
                let database_down = status == StatusCode::SERVICE_UNAVAILABLE
                    && response.headers().get(UNAVAILABLE_HEADER).is_some_and(|value| value == "database");
                // The body is the server's `{"detail": ...}`; keep it short in our logs.
                let body: String = response.text().await.unwrap_or_default().chars().take(500).collect();
                Err(if database_down {
                    ClientError::DatabaseUnavailable(body)
                } else {
                    ClientError::Status { status, body }
                })
            }
        }
    }
}

/// Exponential backoff with jitter between retries: 0.2 s, 0.4 s, ... up to half a longest pause, each plus a
/// random part up to itself, so that the workers of a fleet do not all come back at the same instant.
#[derive(Debug)]
pub struct Backoff {
    longest: Duration,
    delays: ExponentialBackoff,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(5);

    pub fn new() -> Self {
        Backoff::up_to(Self::MAX)
    }

    /// Pauses of at most `longest` (jitter included; at least twice the first pause).
    pub fn up_to(longest: Duration) -> Self {
        let longest = longest.max(Self::FIRST * 2);
        Backoff { longest, delays: delays(longest) }
    }

    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.longest).min(self.longest)
    }

    pub fn reset(&mut self) {
        self.delays = delays(self.longest);
    }
}

/// Jitter adds up to the delay itself, so the delays without it stop at half the longest pause.
fn delays(longest: Duration) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Backoff::FIRST)
        .with_max_delay(longest / 2)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_up_to_its_longest_pause_and_resets() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..10).map(|_| backoff.next_delay()).collect();
        // Jitter adds up to the delay itself.
        assert!(delays[0] >= Duration::from_millis(200) && delays[0] <= Duration::from_millis(400), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(5)), "{delays:?}");
        assert!(delays[9] >= Duration::from_millis(2500), "{delays:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(400));
        let mut short = Backoff::up_to(Duration::from_secs(1));
        assert!((0..10).all(|_| short.next_delay() <= Duration::from_secs(1)));
    }

    #[test]
    fn urls_do_not_depend_on_a_trailing_slash() {
        let a = Client::new("http://127.0.0.1:8080/", "t", reqwest::Client::builder()).expect("client");
        let b = Client::new("http://127.0.0.1:8080", "t", reqwest::Client::builder()).expect("client");
        assert_eq!(a.base, "http://127.0.0.1:8080/worker/v1");
        assert_eq!(a.base, b.base);
    }

    #[tokio::test]
    async fn a_failed_request_says_why() {
        // Port 9 (discard) is closed: the reason is in reqwest's sources, not in its own message.
        let client = Client::new("http://127.0.0.1:9", "t", reqwest::Client::builder()).expect("client");
        let batch = LogBatch { lease_id: Uuid::nil(), lines: Vec::new() };
        let err = client.logs(Uuid::nil(), &batch).await.expect_err("closed port");
        assert!(err.to_string().contains("Connection refused"), "{err}");
    }

    #[test]
    fn only_transient_errors_are_retried() {
        let status = |status| ClientError::Status { status, body: String::new() };
        assert!(status(StatusCode::SERVICE_UNAVAILABLE).is_transient());
        assert!(status(StatusCode::TOO_MANY_REQUESTS).is_transient());
        assert!(ClientError::DatabaseUnavailable(String::new()).is_transient());
        assert!(!status(StatusCode::BAD_REQUEST).is_transient());
        assert!(!ClientError::Conflict.is_transient());
        assert!(!ClientError::Unauthorized.is_transient());
    }
}
