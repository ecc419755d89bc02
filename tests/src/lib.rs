//! The harness of Sluice's black-box tests: it starts the real `sluice` binary (server, scheduler, workers) on
//! random ports against a fresh PostgreSQL database or a fresh SQLite file, and talks to it over HTTP only.
//!
//! PostgreSQL is found at `SLUICE_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`); each
//! [`Sluice`] creates its own database and drops it when dropped. Data tasks' own MySQL databases
//! ([`TestDb::mysql`]) are made on the server at `SLUICE_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306`).
//!
//! The REST API wants a token: before its first server starts, a [`Sluice`] creates the user `admin` (role Admin,
//! password [`ADMIN_PASSWORD`]) with `sluice users create`, then signs in with `POST /auth/token` and sends that
//! token with every [`Sluice::request`]. Every process gets the same [`SECRET_KEY`], so the token outlives server
//! restarts.
//!
//! A test that needs a PostgreSQL server of its own (its own TLS settings, or stopping it) starts a
//! [`PrivatePostgres`].
//!
//! A worker cut off from its server talks to it through a [`TcpProxy`] that the test cuts.
//!
//! A server started with `--tls-cert` serves HTTPS: [`Sluice::use_https`] points the harness at `https://` and makes
//! its client trust the test's CA.

#![allow(clippy::unwrap_used)] // a failed test setup should panic with its message

mod postgres;
mod proxy;

pub use postgres::PrivatePostgres;
pub use proxy::TcpProxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use sqlx::Connection;

pub const WORKER_TOKEN: &str = "test-worker-token";
/// `SLUICE_SECRET_KEY` of every process: tests sign their own tokens with it to test expiry.
pub const SECRET_KEY: &str = "test-secret-key";
/// `SLUICE_ENCRYPTION_KEY` of every process: connection secrets and variables are sealed in every test.
pub const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// The database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The `sluice` binary next to this test binary (`target/debug/sluice`), or `SLUICE_BIN`.
pub fn sluice_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SLUICE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("sluice");
    assert!(bin.exists(), "{} not found: run `cargo build --bin sluice` first", bin.display());
    bin
}

fn admin_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database, dropped with this value.
pub struct TestDb {
    pub url: String,
    /// For a database on a server: the server's URL and the statement that drops the database there.
    drop: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => {
                TestDb { url: format!("sqlite://{}", dir.path().join("sluice.db").display()), drop: None, _dir: dir }
            }
            Backend::Postgres => {
                let name = format!("sluice_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
                let base = admin_url();
                let url = match base.rfind('/') {
                    Some(i) if i > "postgres://".len() => format!("{}/{name}", &base[..i]),
                    _ => format!("{base}/{name}"),
                };
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                TestDb { url, drop: Some((admin_url(), drop)), _dir: dir }
            }
        }
    }

    /// A database this value does not own, on a server the test started for itself: nothing is dropped.
    pub fn existing(url: String) -> TestDb {
        TestDb { url, drop: None, _dir: tempfile::tempdir().unwrap() }
    }

    /// A fresh database on the MySQL (or MariaDB) server at `SLUICE_TEST_MYSQL` (default
    /// `mysql://root@127.0.0.1:3306`), for the connections of data tasks.
    pub async fn mysql() -> TestDb {
        let server = std::env::var("SLUICE_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let server = server.trim_end_matches('/').to_owned();
        let name = format!("sluice_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::MySqlConnection::connect(&server).await.unwrap();
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
        let drop = format!("DROP DATABASE IF EXISTS {name}");
        TestDb { url: format!("{server}/{name}"), drop: Some((server, drop)), _dir: tempfile::tempdir().unwrap() }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, drop)) = self.drop.take() else { return };
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                sqlx::any::install_default_drivers();
                if let Ok(mut conn) = sqlx::AnyConnection::connect(&server).await {
                    let _ = sqlx::raw_sql(&drop).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// A running process of the `sluice` binary, killed when dropped.
pub struct Proc {
    child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn kill_9(&mut self) {
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) {
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
    }

    /// Waits for the process to exit; its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Sluice deployment under test: one database, a DAG folder, a server, workers.
pub struct Sluice {
    pub db: TestDb,
    pub dags: tempfile::TempDir,
    pub url: String,
    pub port: u16,
    pub http: reqwest::Client,
    pub server: Option<Proc>,
    pub workers: Vec<Proc>,
    pub extra: Vec<Proc>,
    /// Sent as `Authorization: Bearer` by [`Sluice::request`]: the admin's token once a server started.
    pub token: Option<String>,
    /// The lake of data tasks (`SLUICE_LAKE` of every process).
    pub lake: tempfile::TempDir,
    logs: tempfile::TempDir,
    /// More environment variables of the processes started from now on; they override the ones above.
    pub env: Vec<(String, String)>,
}

/// A port no other deployment of this test binary was given. The OS may hand a port it just released out again, and
/// the servers of two tests run side by side on one port would answer each other's requests (the second one's bind
/// fails, while its test talks to the first until that test ends).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// The client of a deployment's API: `builder` with the time a request may take.
fn http_client(builder: reqwest::ClientBuilder) -> reqwest::Client {
    builder.timeout(Duration::from_secs(30)).build().unwrap()
}

impl Sluice {
    /// A database and a DAG folder holding `dags` (file name, YAML); no process yet.
    pub async fn new(backend: Backend, dags: &[(&str, &str)]) -> Sluice {
        Sluice::on(TestDb::new(backend).await, dags)
    }

    /// [`Sluice::new`] on a database the test made itself.
    pub fn on(db: TestDb, dags: &[(&str, &str)]) -> Sluice {
        let dir = tempfile::tempdir().unwrap();
        for (name, yaml) in dags {
            std::fs::write(dir.path().join(name), yaml).unwrap();
        }
        let port = free_port();
        Sluice {
            db,
            dags: dir,
            url: format!("http://127.0.0.1:{port}"),
            port,
            http: http_client(reqwest::Client::builder()),
            server: None,
            workers: Vec::new(),
            extra: Vec::new(),
            token: None,
            lake: tempfile::tempdir().unwrap(),
            logs: tempfile::tempdir().unwrap(),
            env: Vec::new(),
        }
    }

    /// A database, DAGs, a server with its scheduler, and `workers` workers of 4 slots.
    pub async fn start(backend: Backend, dags: &[(&str, &str)], workers: usize) -> Sluice {
        let mut sluice = Sluice::new(backend, dags).await;
        sluice.start_server(&[]).await;
        for _ in 0..workers {
            sluice.spawn_worker(&["--slots", "4"]);
        }
        sluice
    }

    /// Talks to this deployment's server over HTTPS from now on, trusting the CA certificate `ca_pem` (PEM) as well
    /// as the public web's: for a server started with `--tls-cert` and `--tls-key`.
    pub fn use_https(&mut self, ca_pem: &str) {
        self.url = format!("https://127.0.0.1:{}", self.port);
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
        self.http = http_client(reqwest::Client::builder().add_root_certificate(ca));
    }

    pub fn add_dag(&self, name: &str, yaml: &str) {
        std::fs::write(self.dags.path().join(name), yaml).unwrap();
    }

    /// Writes a data file where DAGs read `data/<name>` (relative paths are read from the DAGs folder).
    pub fn add_data(&self, name: &str, content: &str) {
        let data = self.dags.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join(name), content).unwrap();
    }

    /// Starts `sluice ARGS` with the test's environment; output goes to a log file.
    pub fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        let log = self.logs.path().join(format!("{name}-{}.log", uuid::Uuid::now_v7().simple()));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(sluice_bin())
            .args(args)
            .env("SLUICE_DATABASE_URL", &self.db.url)
            .env("SLUICE_DAGS_FOLDER", self.dags.path())
            .env("SLUICE_LAKE", self.lake.path())
            .env("SLUICE_WORKER_TOKEN", WORKER_TOKEN)
            .env("SLUICE_SECRET_KEY", SECRET_KEY)
            .env("SLUICE_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .env("SLUICE_SCHEDULER_TICK_MS", "100")
            .env("SLUICE_DAG_SYNC_SECS", "1")
            .env("SLUICE_LEASE_SECS", "3")
            .env("RUST_LOG", "info,sqlx=warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Proc { child, name: name.to_string(), log }
    }

    pub async fn start_server(&mut self, extra: &[&str]) {
        if self.token.is_none() {
            self.create_user("admin", "Admin", ADMIN_PASSWORD).await;
        }
        let bind = format!("127.0.0.1:{}", self.port);
        let mut args = vec!["server", "--bind", &bind];
        args.extend_from_slice(extra);
        self.server = Some(self.spawn("server", &args));
        self.wait_healthy().await;
        if self.token.is_none() {
            self.token = Some(self.login("admin", ADMIN_PASSWORD).await);
        }
    }

    /// Runs `sluice ARGS` against this test's database to its end; its exit code and output (stdout then stderr).
    pub async fn run_cli(&self, args: &[&str]) -> (Option<i32>, String) {
        let output = tokio::process::Command::new(sluice_bin())
            .args(args)
            .env("SLUICE_DATABASE_URL", &self.db.url)
            .env("SLUICE_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.code(), text)
    }

    /// Creates a user with `sluice users create`.
    pub async fn create_user(&self, username: &str, role: &str, password: &str) {
        let (code, output) =
            self.run_cli(&["users", "create", "--username", username, "--role", role, "--password", password]).await;
        assert_eq!(code, Some(0), "users create {username}: {output}");
    }

    /// Signs in with `POST /auth/token`; the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let body = json!({"username": username, "password": password});
        let response = self.http.post(format!("{}/auth/token", self.url)).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "login {username}: {body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    pub fn spawn_worker(&mut self, extra: &[&str]) -> usize {
        let url = self.url.clone();
        self.spawn_worker_at(&url, extra)
    }

    /// A worker like [`Sluice::spawn_worker`]'s that talks to `server`: another server of the deployment, or a
    /// proxy in front of one.
    pub fn spawn_worker_at(&mut self, server: &str, extra: &[&str]) -> usize {
        let name = format!("worker-{}", self.workers.len() + 1);
        let proc = self.start_worker(&name, server, extra);
        self.workers.push(proc);
        self.workers.len() - 1
    }

    /// Starts a worker named `name` that talks to `server`, and leaves its process to the caller.
    pub fn start_worker(&self, name: &str, server: &str, extra: &[&str]) -> Proc {
        let mut args = vec!["worker", "--server", server, "--name", name, "--grace", "5", "--kill-grace", "1"];
        args.extend_from_slice(extra);
        self.spawn(name, &args)
    }

    pub async fn wait_healthy(&self) {
        self.wait_answering(&self.url, self.server.as_ref()).await;
    }

    /// Starts one more `sluice server ARGS` on this deployment's database and DAG folder, listening on `port`, as a
    /// second server behind a load balancer would be; its process, once it answers.
    pub async fn spawn_server(&self, name: &str, port: u16, extra: &[&str]) -> Proc {
        let bind = format!("127.0.0.1:{port}");
        let mut args = vec!["server", "--bind", &bind];
        args.extend_from_slice(extra);
        let server = self.spawn(name, &args);
        self.wait_answering(&format!("http://{bind}"), Some(&server)).await;
        server
    }

    /// Waits until the server at `url` answers `/health`; `server`'s log is the failure message.
    async fn wait_answering(&self, url: &str, server: Option<&Proc>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(format!("{url}/health")).send().await
                && r.status().is_success()
            {
                return;
            }
            let output = server.map(Proc::output).unwrap_or_default();
            assert!(tokio::time::Instant::now() < deadline, "server did not become healthy:\n{output}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts `sluice standalone` with its state in `home` on this deployment's port, and signs in as the `admin`
    /// its first start creates; the process and the admin's generated password.
    pub async fn start_standalone(&mut self, home: &std::path::Path) -> (Proc, String) {
        let bind = format!("127.0.0.1:{}", self.port);
        let home_arg = home.display().to_string();
        let standalone = self.spawn("standalone", &["standalone", "--bind", &bind, "--home", &home_arg]);
        self.wait_healthy().await;
        let saved = std::fs::read_to_string(home.join("passwords.json.generated")).unwrap();
        let password = serde_json::from_str::<Value>(&saved).unwrap()["admin"].as_str().unwrap().to_string();
        self.token = Some(self.login("admin", &password).await);
        (standalone, password)
    }

    /// Starts `sluice serve` on a free port, kept with this deployment's processes; its base URL.
    pub fn start_serve(&mut self) -> String {
        let bind = format!("127.0.0.1:{}", free_port());
        let serve = self.spawn("serve", &["serve", "--bind", &bind]);
        self.extra.push(serve);
        format!("http://{bind}")
    }

    /// The answer of `POST {base}/api/v2/models/{model}/predict` with `body`, asked again until the server at `base`
    /// is up and serves the model.
    pub async fn predict_eventually(&self, base: &str, model: &str, body: Value) -> Value {
        self.eventually("a prediction", Duration::from_secs(30), || {
            let request = self
                .http
                .post(format!("{base}/api/v2/models/{model}/predict"))
                .bearer_auth(self.token.clone().unwrap_or_default())
                .json(&body);
            async move {
                let response = request.send().await.ok()?;
                (response.status() == 200).then_some(response.json::<Value>().await.ok()?)
            }
        })
        .await
    }

    pub fn server_output(&self) -> String {
        self.server.as_ref().map(Proc::output).unwrap_or_default()
    }

    /// Every process's log, for failure messages.
    pub fn all_output(&self) -> String {
        let mut out = String::new();
        for p in self.server.iter().chain(&self.workers).chain(&self.extra) {
            out += &format!("===== {} =====\n{}\n", p.name, p.output());
        }
        out
    }

    /// A request with this deployment's admin token.
    pub async fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.request_as(self.token.as_deref(), method, path, body).await
    }

    /// A request with `token` (none: anonymous); the status and the body (JSON, or the text as a JSON string).
    pub async fn request_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, &format!("/api/v2{path}"), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, &format!("/api/v2{path}"), Some(body)).await
    }

    /// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout` with every process's log.
    pub async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.all_output());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the DAG is known to the server (its file was read).
    pub async fn wait_dag(&self, dag_id: &str) -> Value {
        self.eventually(&format!("DAG {dag_id}"), Duration::from_secs(30), || async {
            let (status, dag) = self.get(&format!("/dags/{dag_id}")).await;
            (status == 200).then_some(dag)
        })
        .await
    }

    pub async fn unpause(&self, dag_id: &str) {
        let (status, body) = self
            .request(reqwest::Method::PATCH, &format!("/api/v2/dags/{dag_id}"), Some(json!({"is_paused": false})))
            .await;
        assert_eq!(status, 200, "unpause {dag_id}: {body}");
    }

    /// Triggers a run of a known DAG; its `dag_run_id`.
    pub async fn trigger(&self, dag_id: &str, conf: Value) -> String {
        self.wait_dag(dag_id).await;
        let (status, run) = self
            .request(
                reqwest::Method::POST,
                &format!("/api/v2/dags/{dag_id}/dagRuns"),
                Some(json!({"logical_date": null, "conf": conf})),
            )
            .await;
        assert_eq!(status, 200, "trigger {dag_id}: {run}");
        run["dag_run_id"].as_str().unwrap().to_string()
    }

    /// Waits for a run to finish (success or failed); the run.
    /// The ids of a DAG's first `n` runs by logical date, once it has `n` (scheduled ones take a scheduler pass).
    pub async fn wait_runs(&self, dag_id: &str, n: usize) -> Vec<String> {
        let path = format!("/dags/{dag_id}/dagRuns?order_by=logical_date");
        self.eventually(&format!("{n} runs of {dag_id}"), Duration::from_secs(30), || async {
            let (_, body) = self.get(&path).await;
            let runs: Vec<String> =
                body["dag_runs"].as_array()?.iter().map(|r| r["dag_run_id"].as_str().unwrap().to_owned()).collect();
            (runs.len() == n).then_some(runs)
        })
        .await
    }

    pub async fn wait_run_done(&self, dag_id: &str, run_id: &str, timeout: Duration) -> Value {
        self.eventually(&format!("run {run_id} of {dag_id} to finish"), timeout, || async {
            let (_, run) = self.get(&format!("/dags/{dag_id}/dagRuns/{run_id}")).await;
            matches!(run["state"].as_str(), Some("success" | "failed")).then_some(run)
        })
        .await
    }

    pub async fn task_instances(&self, dag_id: &str, run_id: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/dags/{dag_id}/dagRuns/{run_id}/taskInstances")).await;
        assert_eq!(status, 200, "{body}");
        body["task_instances"].as_array().unwrap().clone()
    }

    /// `task_id → state` of a run's task instances (`null` states as "none").
    pub async fn task_states(&self, dag_id: &str, run_id: &str) -> std::collections::BTreeMap<String, String> {
        self.task_instances(dag_id, run_id)
            .await
            .iter()
            .map(|ti| (ti["task_id"].as_str().unwrap().to_string(), ti["state"].as_str().unwrap_or("none").to_string()))
            .collect()
    }

    pub async fn wait_task_state(&self, dag_id: &str, run_id: &str, task_id: &str, state: &str) -> Value {
        let path = format!("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}");
        self.eventually(&format!("{task_id} to be {state}"), Duration::from_secs(60), || async {
            let (_, ti) = self.get(&path).await;
            (ti["state"].as_str() == Some(state)).then_some(ti)
        })
        .await
    }

    pub async fn tries(&self, dag_id: &str, run_id: &str, task_id: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")).await;
        assert_eq!(status, 200, "{body}");
        body["task_instances"].as_array().unwrap().clone()
    }

    /// The log text of one try.
    pub async fn log(&self, dag_id: &str, run_id: &str, task_id: &str, try_number: i64) -> String {
        let path =
            format!("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}?full_content=true");
        let (status, body) = self.get(&path).await;
        assert_eq!(status, 200, "{body}");
        body["content"].as_array().unwrap().iter().map(|l| format!("{}\n", l["event"].as_str().unwrap())).collect()
    }

    /// Every task instance of a run with its state and the log of its last try, for failure messages.
    pub async fn run_logs(&self, dag_id: &str, run_id: &str) -> String {
        let mut out = String::new();
        for ti in self.task_instances(dag_id, run_id).await {
            let task_id = ti["task_id"].as_str().unwrap_or_default();
            out += &format!("===== {task_id}: {} =====\n", ti["state"]);
            if let Some(try_number) = ti["try_number"].as_i64().filter(|n| *n > 0) {
                let path = format!(
                    "/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
                );
                let (_, body) = self.get(&path).await;
                for line in body["content"].as_array().into_iter().flatten() {
                    out += &format!("{}\n", line["event"].as_str().unwrap_or_default());
                }
            }
        }
        out
    }
}

/// An S3-compatible object store on a free local port (moto's server, from the Python test tools), stopped when
/// dropped.
pub struct ObjectStore {
    pub url: String,
    _server: tokio::process::Child,
}

impl ObjectStore {
    pub async fn start() -> ObjectStore {
        let python = std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| {
            panic!("SLUICE_TEST_PYTHON is not set: run the tests with scripts/test.sh, which installs the Python tools")
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = tokio::process::Command::new(Path::new(&python).with_file_name("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client.get(&url).send().await.is_ok() {
                return ObjectStore { url, _server: server };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the object store did not start on {url}");
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new().put(format!("{}/{bucket}", self.url)).send().await.unwrap();
        assert!(response.status().is_success(), "{response:?}");
    }

    /// Creates `bucket` and stores `body` under `key` in it.
    pub async fn put(&self, bucket: &str, key: &str, body: &str) {
        self.create_bucket(bucket).await;
        let url = format!("{}/{bucket}/{key}", self.url);
        let response = reqwest::Client::new().put(url).body(body.to_owned()).send().await.unwrap();
        assert!(response.status().is_success(), "{response:?}");
    }

    /// The environment that makes Sluice's processes keep their lake at `lake` (`s3://bucket/prefix`) in this store.
    pub fn lake_env(&self, lake: &str) -> Vec<(String, String)> {
        [
            ("SLUICE_LAKE", lake),
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "sluice"),
            ("AWS_SECRET_ACCESS_KEY", "secret-key"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The keys in `bucket`, from its listing.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let url = format!("{}/{bucket}?list-type=2", self.url);
        let listing = reqwest::get(url).await.unwrap().text().await.unwrap();
        listing.split("<Key>").skip(1).filter_map(|k| k.split_once("</Key>")).map(|(k, _)| k.to_owned()).collect()
    }
}

/// A local HTTP endpoint that answers `503` to its first `failures` requests and `200` to the others, and keeps
/// the body of each request it accepted (JSON when it parses, else the text) with its request line under
/// `_request_line`.
pub struct WebhookReceiver {
    pub port: u16,
    received: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl WebhookReceiver {
    pub async fn start(failures: usize) -> WebhookReceiver {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = WebhookReceiver { port, received: Default::default(), refused: Default::default() };
        let (kept, refused) = (receiver.received.clone(), receiver.refused.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then as many body bytes as Content-Length says.
                let body = loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    request.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    let Some(end) = text.find("\r\n\r\n") else { continue };
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break Some((text[..end].to_owned(), request[end + 4..end + 4 + length].to_vec()));
                    }
                };
                let Some((head, body)) = body else { continue };
                let refuse =
                    refused.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < failures).then_some(n + 1));
                let status = if refuse.is_ok() { "503 Service Unavailable" } else { "200 OK" };
                if refuse.is_err() {
                    let mut message: Value = serde_json::from_slice(&body)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
                    if message.is_object() {
                        message["_request_line"] = json!(head.lines().next().unwrap_or_default());
                    }
                    kept.lock().unwrap().push(message);
                }
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        receiver
    }

    /// The bodies accepted so far, in order.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// How many requests were answered 503.
    pub fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An SMTP server on a free local port (aiosmtpd, from the Python test tools) that keeps what it receives in a
/// Maildir; stopped when dropped.
pub struct SmtpReceiver {
    pub port: u16,
    maildir: tempfile::TempDir,
    _server: tokio::process::Child,
}

impl SmtpReceiver {
    pub async fn start() -> SmtpReceiver {
        let python = std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| {
            panic!("SLUICE_TEST_PYTHON is not set: run the tests with scripts/test.sh, which installs the Python tools")
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let maildir = tempfile::tempdir().unwrap();
        let listen = format!("127.0.0.1:{port}");
        let server = tokio::process::Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &listen, "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&listen).await.is_ok() {
                return SmtpReceiver { port, maildir, _server: server };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the SMTP server did not start on {listen}");
    }

    /// Every message received so far, as its raw text.
    pub fn messages(&self) -> Vec<String> {
        let mut messages = Vec::new();
        for folder in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.path().join("mail").join(folder)) else { continue };
            for entry in entries.flatten() {
                messages.extend(std::fs::read_to_string(entry.path()).ok());
            }
        }
        messages
    }
}

/// Whether process `pid` runs: a zombie, killed and waiting to be reaped, counts as gone.
pub fn process_alive(pid: i32) -> bool {
    // Signal 0 checks existence only.
    kill(Pid::from_raw(pid), None).is_ok()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// The largest number of tries of one task that were running at the same moment, from their recorded times.
pub fn max_overlapping(tries: &[Value]) -> usize {
    let time = |v: &Value| v.as_str().map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap());
    let spans: Vec<_> = tries.iter().map(|t| (time(&t["start_date"]).unwrap(), time(&t["end_date"]))).collect();
    spans
        .iter()
        .map(|(start, _)| spans.iter().filter(|(s, e)| s <= start && e.is_none_or(|e| *start < e)).count())
        .max()
        .unwrap_or(0)
}
