//! `sluice standalone`: the embedded default. A SQLite file under `SLUICE_HOME`, the server with its scheduler
//! loop in this process, and worker processes beside it; one command, dashboard on localhost.
//!
//! On its first start it creates the user `admin`, prints the password once and keeps it in
//! `$SLUICE_HOME/passwords.json.generated` (as Airflow's simple auth manager does); the key that signs tokens is
//! generated once too and kept in `$SLUICE_HOME/secret_key`, so tokens survive restarts, and so is the key that
//! seals connection secrets and variables in the database, in `$SLUICE_HOME/encryption_key`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use sluice_core::Role;
use sluice_store::{Secrets, Store};

use crate::https::TlsArgs;

use super::server::{
    AuthArgs, DatabaseArgs, LakeArgs, PredictionLogArgs, SchedulingArgs, ServerArgs, connect, random_secret, serve,
};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Folder for the SQLite file and other state.
    #[arg(long, env = "SLUICE_HOME", default_value = "./.sluice")]
    pub home: PathBuf,
    /// Database (default: sqlite://$SLUICE_HOME/sluice.db).
    #[arg(long, env = "SLUICE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Where `lake://` assets and model versions live: a folder or `s3://bucket/prefix` (default:
    /// $SLUICE_HOME/lake). The server and the worker processes use the same one.
    #[arg(long, env = "SLUICE_LAKE")]
    pub lake: Option<String>,
    /// Keys that seal secrets in the database (default: one generated once and kept in
    /// $SLUICE_HOME/encryption_key).
    #[arg(long, env = "SLUICE_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
    /// A YAML or JSON file of `connections:` and `variables:` that tasks read before the database's.
    #[arg(long, env = "SLUICE_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,
    #[command(flatten)]
    pub scheduling: SchedulingArgs,
    #[arg(long, env = "SLUICE_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// With --tls-cert signed by a private CA: that CA's certificate (PEM), which the worker processes trust.
    #[arg(long, env = "SLUICE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Shared secret between server and workers (default: a fresh random one).
    #[arg(long, env = "SLUICE_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,
    /// Worker processes to start.
    #[arg(long, env = "SLUICE_STANDALONE_WORKERS", default_value_t = 2)]
    pub workers: u32,
    /// Slots of each worker.
    #[arg(long, env = "SLUICE_WORKER_SLOTS", default_value_t = 4)]
    pub worker_slots: u32,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub prediction_log: PredictionLogArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tls = args.tls.load().await?;
    std::fs::create_dir_all(&args.home).with_context(|| format!("cannot create {}", args.home.display()))?;
    let database_url =
        args.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", args.home.join("sluice.db").display()));
    let worker_token = args.worker_token.clone().unwrap_or_else(random_secret);
    let mut auth = args.auth.clone();
    if auth.secret_key.is_none() {
        auth.secret_key = Some(kept_secret(&args.home.join("secret_key"), random_secret)?);
    }
    let encryption_key = match &args.encryption_key {
        Some(key) => key.clone(),
        None => kept_secret(&args.home.join("encryption_key"), Secrets::generate_key)?,
    };
    let server_args = ServerArgs {
        database: DatabaseArgs {
            database_url: Some(database_url.clone()),
            encryption_key: Some(encryption_key),
            secrets_file: args.secrets_file.clone(),
        },
        scheduling: args.scheduling.clone(),
        bind: args.bind,
        tls: args.tls.clone(),
        worker_token: Some(worker_token.clone()),
        no_scheduler: false,
        auth,
        lake: LakeArgs { lake: args.lake.clone(), home: args.home.clone() },
        prediction_log: args.prediction_log.clone(),
    };
    let store = connect(&server_args.database).await?;
    create_first_admin(&store, &args.home).await?;
    let listener = TcpListener::bind(args.bind).await.with_context(|| format!("cannot listen on {}", args.bind))?;
    let url = local_url(args.tls.scheme(), listener.local_addr()?);
    let shutdown = CancellationToken::new();

    let mut supervisors = Vec::new();
    for i in 1..=args.workers {
        let worker = WorkerProcess {
            name: format!("standalone-worker-{i}"),
            server: url.clone(),
            ca_cert: args.ca_cert.clone(),
            token: worker_token.clone(),
            slots: args.worker_slots,
            lake: server_args.lake.location(),
            dags_folder: args.scheduling.dags_folder.clone(),
        };
        supervisors.push(tokio::spawn(worker.supervise(shutdown.clone())));
    }
    println!(
        "Sluice is running: dashboard {url}/  API {url}/api/v2  (database {database_url}, DAGs in {})",
        args.scheduling.dags_folder.display()
    );
    println!("Press Ctrl-C to stop.");

    let trigger = shutdown.clone();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        trigger.cancel();
    });
    let served = serve(&server_args, store, Some(worker_token), listener, tls, shutdown.clone()).await;
    shutdown.cancel();
    for supervisor in supervisors {
        supervisor.await.ok();
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

/// The URL of this process's own server: the workers beside it and the user on this machine reach it over
/// loopback when it listens on every address, so a certificate for `127.0.0.1` or `localhost` fits.
fn local_url(scheme: &str, mut address: SocketAddr) -> String {
    if address.ip().is_unspecified() {
        address.set_ip(if address.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() });
    }
    format!("{scheme}://{address}")
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(content.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

/// The token-signing secret kept in `path`, created on first use.
fn kept_secret(path: &Path, generate: fn() -> String) -> anyhow::Result<String> {
    if let Ok(secret) = std::fs::read_to_string(path)
        && !secret.trim().is_empty()
    {
        return Ok(secret.trim().to_string());
    }
    let secret = generate();
    write_private(path, &secret)?;
    Ok(secret)
}

/// On a database without users: creates `admin` with a generated password, printed once and kept in
/// `home/passwords.json.generated`.
async fn create_first_admin(store: &Store, home: &Path) -> anyhow::Result<()> {
    if !store.list_users().await?.is_empty() {
        return Ok(());
    }
    let password = sluice_api::auth::generate_password();
    let hash = sluice_api::auth::hash_password(&password)?;
    if store.create_user("admin", &hash, Role::Admin).await?.is_none() {
        return Ok(());
    }
    let file = home.join("passwords.json.generated");
    write_private(&file, &format!("{}\n", serde_json::json!({ "admin": password })))?;
    println!("Created user 'admin' (role Admin) with password: {password}");
    println!("The password is also in {}. Sign in with POST /auth/token.", file.display());
    Ok(())
}

/// One worker process of the standalone mode, restarted if it dies.
struct WorkerProcess {
    name: String,
    server: String,
    /// The CA of the server's certificate, for an `https://` server whose CA is a private one.
    ca_cert: Option<PathBuf>,
    token: String,
    slots: u32,
    /// Data tasks run in the worker's child processes: they must read and write the server's lake, and read
    /// relative source paths from the same DAG folder, whatever flags or variables gave them.
    lake: String,
    dags_folder: PathBuf,
}

impl WorkerProcess {
    fn spawn(&self) -> anyhow::Result<Child> {
        let exe = std::env::current_exe().context("cannot find the sluice executable")?;
        let mut command = Command::new(exe);
        command.args(["worker", "--server", &self.server, "--name", &self.name, "--slots", &self.slots.to_string()]);
        if let Some(ca_cert) = &self.ca_cert {
            command.arg("--ca-cert").arg(ca_cert);
        }
        command
            .env("SLUICE_WORKER_TOKEN", &self.token)
            .env("SLUICE_LAKE", &self.lake)
            .env("SLUICE_DAGS_FOLDER", &self.dags_folder)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a worker process")
    }

    async fn supervise(self, shutdown: CancellationToken) {
        loop {
            let mut child = match self.spawn() {
                Ok(child) => child,
                Err(e) => {
                    tracing::error!(worker = %self.name, error = %e, "cannot start worker");
                    return;
                }
            };
            tokio::select! {
                status = child.wait() => {
                    tracing::warn!(worker = %self.name, status = ?status.ok(), "worker exited; restarting it");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ = shutdown.cancelled() => {
                    stop(&mut child).await;
                    return;
                }
            }
        }
    }
}

/// SIGTERM, so the worker finishes or reports its tasks, then SIGKILL if it takes too long.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    if tokio::time::timeout(Duration::from_secs(35), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}
