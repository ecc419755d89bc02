//! The `predict` scenario: real-time predictions over HTTP, from the server and from `sluice serve`.
//!
//! The model is trained as a deployment trains it: the example DAG `penguins_train` runs on a real worker and its
//! `deploy` task promotes the new version to production. Then a `sluice serve` process is started on the same
//! database and lake. Each of the two targets gets a few untimed requests first (the model is loaded, the
//! connections opened), then `requests` single-record `POST /api/v2/models/penguins_species/predict` requests
//! over `connections` keep-alive connections, each connection sending its next request as soon as it has read
//! the answer to the last one. The client runs on a thread and runtime of its own, so that it does not queue behind
//! the in-process server's tasks. A request's latency is from sending it to having read its whole answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use super::{Bench, percentile, round, stop_processes};

const MODEL: &str = "penguins_species";
/// Row 1 of the penguins data, an Adelie penguin.
const RECORD: &str = r#"{"records": [{"island": "Torgersen", "bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181, "body_mass_g": 3750, "sex": "male"}]}"#;
const EXPECTED: &str = "Adelie";
/// Untimed requests sent to each target before the measured ones.
const WARM_UP: usize = 200;
/// A target still busy after this long is reported with the requests it answered.
const TIME_LIMIT: Duration = Duration::from_secs(120);

impl Bench {
    pub(super) async fn predict(&self, requests: usize, connections: usize) -> anyhow::Result<Vec<Value>> {
        self.wait_for_dag("penguins_train").await?;
        self.run_with_workers("penguins_train", 1, 1).await?;
        let model = self.api(reqwest::Method::GET, &format!("/models/{MODEL}"), None).await?;
        if model["production_version"].as_i64().is_none() {
            bail!("penguins_train put no version of {MODEL} in production: {model}");
        }
        let (serve, serve_url) = self.spawn_sibling("serve")?;
        let outcome = self.predict_targets(&serve_url, requests, connections).await;
        stop_processes(vec![serve]).await;
        outcome
    }

    async fn predict_targets(
        &self,
        serve_url: &str,
        requests: usize,
        connections: usize,
    ) -> anyhow::Result<Vec<Value>> {
        self.wait_until_ready(serve_url).await?;
        let mut lines = Vec::new();
        for (target, base) in [("server", self.url.as_str()), ("serve", serve_url)] {
            let url = format!("{base}/api/v2/models/{MODEL}/predict");
            let token = self.token.clone();
            let progress = indicatif::ProgressBar::new_spinner().with_message(format!("predict: {target}"));
            progress.enable_steady_tick(Duration::from_millis(200));
            let (latencies, seconds) =
                tokio::task::spawn_blocking(move || load(&url, &token, requests, connections)).await??;
            progress.finish_and_clear();
            lines.push(json!({
                "scenario": "predict",
                "target": target,
                "requests": latencies.len(),
                "connections": connections,
                "requests_per_s": (latencies.len() as f64 / seconds.max(0.001)).round(),
                "latency_ms_p50": percentile(&latencies, 0.50),
                "latency_ms_p99": percentile(&latencies, 0.99),
                "seconds": round(seconds),
            }));
        }
        Ok(lines)
    }

    pub(super) async fn wait_until_ready(&self, base: &str) -> anyhow::Result<()> {
        for _ in 0..300 {
            let response = self.http.get(format!("{base}/v2/health/ready")).send().await;
            if response.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{base} did not become ready")
    }
}

/// Sends the warm-up requests, then `requests` timed ones over `connections` connections: the latency of each
/// answered request in milliseconds, and the seconds they took together.
fn load(url: &str, token: &str, requests: usize, connections: usize) -> anyhow::Result<(Vec<f64>, f64)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build()?;
        let client = Client { http, url: Arc::from(url), authorization: Arc::from(format!("Bearer {token}")) };
        let answer: Value = serde_json::from_slice(&client.send().await?)?;
        if answer["predictions"] != json!([EXPECTED]) {
            bail!("the model predicted {answer} for a penguin of the training data, an {EXPECTED}");
        }
        client.run(WARM_UP, connections).await?;
        let start = Instant::now();
        let latencies = client.run(requests, connections).await?;
        Ok((latencies, start.elapsed().as_secs_f64()))
    })
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: Arc<str>,
    authorization: Arc<str>,
}

impl Client {
    /// One predict request: the answer's body, or why it was not a success.
    async fn send(&self) -> anyhow::Result<Vec<u8>> {
        let response = self
            .http
            .post(&*self.url)
            .header(reqwest::header::AUTHORIZATION, &*self.authorization)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(RECORD)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!("{}: {status} {}", self.url, String::from_utf8_lossy(&body));
        }
        Ok(body.to_vec())
    }

    /// `requests` requests, `connections` at a time, within [`TIME_LIMIT`]: the latencies of those answered.
    async fn run(&self, requests: usize, connections: usize) -> anyhow::Result<Vec<f64>> {
        let deadline = Instant::now() + TIME_LIMIT;
        let sent = Arc::new(AtomicUsize::new(0));
        let mut connections: tokio::task::JoinSet<anyhow::Result<Vec<f64>>> = (0..connections.max(1))
            .map(|_| {
                let (client, sent) = (self.clone(), sent.clone());
                async move {
                    let mut latencies = Vec::with_capacity(requests / 8);
                    while sent.fetch_add(1, Ordering::Relaxed) < requests && Instant::now() < deadline {
                        let start = Instant::now();
                        client.send().await?;
                        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(latencies)
                }
            })
            .collect();
        let mut all = Vec::with_capacity(requests);
        while let Some(latencies) = connections.join_next().await {
            all.extend(latencies??);
        }
        Ok(all)
    }
}
