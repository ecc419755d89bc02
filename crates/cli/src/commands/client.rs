//! The CLI's side of the REST API: where the server is, which token to send, and how answers are printed.
//!
//! The token comes from `--token`/`SLUICE_TOKEN`, else from the file `sluice login` wrote. Answers print as a table
//! by default, or as the server's JSON with `--output json` for scripts. Exit codes: 0 success, 1 the operation
//! failed (the server refused it or cannot be reached), 2 a usage error (clap's own, or [`UsageError`]).

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

#[derive(clap::Args, Clone, Debug)]
pub struct ApiArgs {
    #[arg(long, env = "SLUICE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// A PEM file of the CA that signed an `https://` server's certificate, trusted besides the public web's CAs.
    #[arg(long, env = "SLUICE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// API token or key; without one, the token saved by `sluice login` is used.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// A mistake in how a command was called (exit code 2), as opposed to an operation that failed (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Where `sluice login` keeps tokens, one per server.
fn token_file() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("sluice").join("tokens.json")
}

fn saved_tokens() -> serde_json::Map<String, Value> {
    std::fs::read_to_string(token_file())
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// Keeps `token` for `server`, readable by the user only.
pub fn save_token(server: &str, token: &str) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = token_file();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut tokens = saved_tokens();
    tokens.insert(server.trim_end_matches('/').to_owned(), Value::from(token));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(Value::Object(tokens).to_string().as_bytes())?;
    Ok(path)
}

impl ApiArgs {
    fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| saved_tokens().get(self.server.trim_end_matches('/')).and_then(Value::as_str).map(String::from))
    }

    /// Sends a request to `/api/v2{path}` and answers its JSON body; a non-2xx answer is an error with the
    /// server's `detail`.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.call_url(method, &format!("{}/api/v2{path}", self.server.trim_end_matches('/')), body).await
    }

    pub async fn call_url(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut http = reqwest::Client::builder();
        if let Some(path) = &self.ca_cert {
            http = sluice_worker::trust_ca_cert(http, path)?;
        }
        let mut req = http.build().context("cannot set up the HTTP client")?.request(method, url);
        if let Some(token) = self.token() {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let detail =
                value.get("detail").map_or_else(|| text.clone(), |d| d.as_str().map_or(d.to_string(), String::from));
            let hint = if status == reqwest::StatusCode::UNAUTHORIZED { " (sign in with `sluice login`)" } else { "" };
            anyhow::bail!("{status}: {detail}{hint}");
        }
        Ok(value)
    }

    /// Prints an answer: its JSON with `--output json`, else the rows of `list_key` (or the object itself) as a
    /// table of `columns`.
    pub fn print(&self, value: &Value, list_key: Option<&str>, columns: &[&str]) {
        if self.output == Output::Json {
            println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
            return;
        }
        let rows: Vec<&Value> = match list_key {
            Some(key) => value[key].as_array().map(|a| a.iter().collect()).unwrap_or_default(),
            None => vec![value],
        };
        print_table(&rows, columns);
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_table(rows: &[&Value], columns: &[&str]) {
    let cells: Vec<Vec<String>> = rows.iter().map(|row| columns.iter().map(|c| cell(&row[*c])).collect()).collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(c.len()))
        .collect();
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_string()).collect());
    for row in cells {
        line(row);
    }
}

/// Parses a JSON object given on the command line (`--conf`, `--json`); anything else is a usage error.
pub fn json_object(flag: &str, text: Option<&str>) -> anyhow::Result<Value> {
    let value: Value = match text {
        Some(text) => serde_json::from_str(text).map_err(|e| UsageError(format!("{flag} is not valid JSON: {e}")))?,
        None => Value::Object(Default::default()),
    };
    if !value.is_object() {
        return Err(UsageError(format!("{flag} must be a JSON object")).into());
    }
    Ok(value)
}

/// Percent-encodes one path segment (run ids hold `:` and `+`).
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
