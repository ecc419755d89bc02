//! `sluice server` and `sluice scheduler`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use sluice_api::AppState;
use sluice_api::auth::{AuthConfig, SignInLimits, SignInThrottle, WorkerAuth};
use sluice_api::prediction_log::{LogSettings, LogWriter, PredictionLog};
use sluice_api::serving::Serving;
use sluice_core::Role;
use sluice_core::masking::SensitiveKeys;
use sluice_notify::{LineageTarget, NotifierConfig, run_notifier};
use sluice_ops::Lake;
use sluice_ops::model::{LakeModelLoader, LakePredictionLog};
use sluice_scheduler::{Engine, EngineConfig, LogMoverConfig, SchedulerConfig, run_log_mover, run_scheduler};
use sluice_store::{Secrets, SecretsBackends, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::https::{TlsArgs, serve_http};

/// Settings shared by every process that talks to the database.
#[derive(clap::Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// `postgres://…` or `sqlite://path`.
    #[arg(long, env = "SLUICE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Keys that seal connection secrets and variables in the database: comma-separated, the first one seals,
    /// every one opens (see `sluice rotate-key`). Without one, they are stored as they are.
    #[arg(long, env = "SLUICE_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
    /// A YAML or JSON file of `connections:` and `variables:` that tasks read before the database's (after it, the
    /// `SLUICE_CONN_<ID>` and `SLUICE_VAR_<KEY>` environment variables).
    #[arg(long, env = "SLUICE_SECRETS_FILE")]
    pub secrets_file: Option<std::path::PathBuf>,
}

impl DatabaseArgs {
    pub fn url(url: String) -> DatabaseArgs {
        DatabaseArgs { database_url: Some(url), encryption_key: None, secrets_file: None }
    }
}

/// Settings of the scheduler loop.
#[derive(clap::Args, Clone, Debug)]
pub struct SchedulingArgs {
    /// Folder of DAG files.
    #[arg(long, env = "SLUICE_DAGS_FOLDER", default_value = "./dags")]
    pub dags_folder: PathBuf,
    /// Milliseconds between two passes of the scheduler loop.
    #[arg(long, env = "SLUICE_SCHEDULER_TICK_MS", default_value_t = 1000)]
    pub scheduler_tick_ms: u64,
    /// Seconds between two reads of the DAG folder.
    #[arg(long, env = "SLUICE_DAG_SYNC_SECS", default_value_t = 5)]
    pub dag_sync_secs: u64,
    /// Seconds a task stays leased to its worker without a heartbeat; then it is failed as lost and retried.
    #[arg(long, env = "SLUICE_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// Words that make a variable's key or a connection's `extra` key secret, besides Airflow's (`password`,
    /// `token`, `api_key`, …), comma-separated: the values are masked in task logs, outputs and rendered fields.
    #[arg(long, env = "SLUICE_SENSITIVE_FIELDS", value_delimiter = ',')]
    pub sensitive_fields: Vec<String>,
    /// Attempts at delivering one alert (a callback's webhook or e-mail, a missed deadline) before it is failed.
    #[arg(long, env = "SLUICE_ALERT_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub alert_attempts: u32,
    /// The wait after an alert's first failed attempt, doubled after each next one (with jitter), e.g. `10s`.
    #[arg(long, env = "SLUICE_ALERT_RETRY_DELAY", default_value = "10s", value_parser = parse_retry_delay)]
    pub alert_retry_delay: Duration,
    /// Where OpenLineage run events of DAG runs and tries are posted, e.g. Marquez's
    /// `http://marquez:5000/api/v1/lineage`; none are made without it.
    #[arg(long, env = "SLUICE_OPENLINEAGE_URL")]
    pub openlineage_url: Option<String>,
    /// The OpenLineage namespace of this deployment's jobs.
    #[arg(long, env = "SLUICE_OPENLINEAGE_NAMESPACE", default_value = "sluice")]
    pub openlineage_namespace: String,
    /// Sent to the lineage server as `Authorization: Bearer`.
    #[arg(long, env = "SLUICE_OPENLINEAGE_API_KEY", hide_env_values = true)]
    pub openlineage_api_key: Option<String>,
    /// Where the logs of ended tries are kept: `database` (the `task_logs` table), or `lake`, one object per try
    /// that this process moves there once the try has ended (a running try's lines are in the database).
    #[arg(long, env = "SLUICE_LOG_STORE", value_enum, default_value_t = LogStore::Database)]
    pub log_store: LogStore,
}

/// Where the logs of ended tries are kept.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStore {
    Database,
    Lake,
}

impl SchedulingArgs {
    /// The settings the command line defaults to, for the commands that start a server of their own.
    pub fn defaults(dags_folder: PathBuf) -> SchedulingArgs {
        SchedulingArgs {
            dags_folder,
            scheduler_tick_ms: 1000,
            dag_sync_secs: 5,
            lease_secs: 30,
            sensitive_fields: Vec::new(),
            alert_attempts: 5,
            alert_retry_delay: Duration::from_secs(10),
            openlineage_url: None,
            openlineage_namespace: "sluice".to_owned(),
            openlineage_api_key: None,
            log_store: LogStore::Database,
        }
    }
}

fn parse_retry_delay(text: &str) -> Result<Duration, String> {
    sluice_core::parse_duration(text).map_err(|e| e.to_string())
}

/// How users sign in to the REST API.
#[derive(clap::Args, Clone, Debug)]
pub struct AuthArgs {
    /// Secret that signs users' tokens; give every server of a deployment the same one (default: a random one,
    /// so tokens last only as long as this process).
    #[arg(long, env = "SLUICE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// How long a token from `POST /auth/token` stays valid, e.g. `24h`, `30m`.
    #[arg(long, env = "SLUICE_TOKEN_TTL", default_value = "24h", value_parser = parse_ttl)]
    pub token_ttl: Duration,
    /// Failed sign-ins of one username within the failure window before it is locked until the window ends
    /// (0: no limit).
    #[arg(long, env = "SLUICE_LOGIN_MAX_FAILURES_PER_USER", default_value_t = 5)]
    pub login_max_failures_per_user: u32,
    /// Failed sign-ins from one client address within the failure window before it is locked until the window
    /// ends (0: no limit).
    #[arg(long, env = "SLUICE_LOGIN_MAX_FAILURES_PER_ADDRESS", default_value_t = 20)]
    pub login_max_failures_per_address: u32,
    /// The window failed sign-ins are counted in, from the first failure, e.g. `5m`.
    #[arg(long, env = "SLUICE_LOGIN_FAILURE_WINDOW", default_value = "5m", value_parser = parse_window)]
    pub login_failure_window: Duration,
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    at_least_a_second(text, "a token lifetime")
}

fn parse_window(text: &str) -> Result<Duration, String> {
    at_least_a_second(text, "the sign-in failure window")
}

fn at_least_a_second(text: &str, what: &str) -> Result<Duration, String> {
    match sluice_core::parse_duration(text) {
        Ok(duration) if duration >= Duration::from_secs(1) => Ok(duration),
        Ok(_) => Err(format!("{what} must be at least 1s")),
        Err(e) => Err(e.to_string()),
    }
}

impl AuthArgs {
    /// Settings for a server started inside this process (tests, benchmarks) with a fresh secret.
    pub fn private() -> AuthArgs {
        let limits = SignInLimits::default();
        AuthArgs {
            secret_key: Some(random_secret()),
            token_ttl: Duration::from_secs(24 * 3600),
            login_max_failures_per_user: limits.per_user,
            login_max_failures_per_address: limits.per_address,
            login_failure_window: limits.window,
        }
    }

    fn sign_in_limits(&self) -> SignInLimits {
        SignInLimits {
            per_user: self.login_max_failures_per_user,
            per_address: self.login_max_failures_per_address,
            window: self.login_failure_window,
        }
    }

    fn config(&self) -> AuthConfig {
        let secret = self.secret_key.clone().unwrap_or_else(|| {
            tracing::warn!(
                "no SLUICE_SECRET_KEY: tokens are signed with a random key, valid only on this server until it stops"
            );
            random_secret()
        });
        AuthConfig::new(&secret, self.token_ttl)
    }

    /// A token for an `admin` user of `store`, created if missing, for a server started inside this process.
    pub async fn local_admin_token(&self, store: &Store) -> anyhow::Result<String> {
        let admin = match store.get_user_by_name("admin").await? {
            Some(user) => user,
            None => {
                let hash = sluice_api::auth::hash_password(&sluice_api::auth::generate_password())?;
                store.create_user("admin", &hash, Role::Admin).await?.context("cannot create the admin user")?
            }
        };
        Ok(self.config().issue(&admin)?)
    }
}

/// 32 random bytes in hex: a secret for signing tokens or a worker token.
pub fn random_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Where `lake://` assets and model versions live.
#[derive(clap::Args, Clone, Debug)]
pub struct LakeArgs {
    /// A folder, or `s3://bucket/prefix` with the credentials and endpoint in the usual `AWS_*` variables
    /// (default: $SLUICE_HOME/lake).
    #[arg(long, env = "SLUICE_LAKE")]
    pub lake: Option<String>,
    #[arg(long, env = "SLUICE_HOME", default_value = "./.sluice")]
    pub home: PathBuf,
}

impl LakeArgs {
    /// The lake's location: `--lake`, else `$SLUICE_HOME/lake`.
    pub fn location(&self) -> String {
        self.lake.clone().unwrap_or_else(|| self.home.join("lake").display().to_string())
    }

    /// What answers predictions: versions loaded from this lake, and the writer of their log in it, which the
    /// caller finishes after the last request.
    fn serving(&self, store: &Store, log: &PredictionLogArgs) -> anyhow::Result<(Arc<Serving>, Option<LogWriter>)> {
        let lake = Lake::open(&self.location())?;
        let serving = Serving::new(Arc::new(LakeModelLoader { lake: lake.clone() }));
        if log.prediction_log_sample <= 0.0 {
            return Ok((Arc::new(serving), None));
        }
        let settings = LogSettings {
            sample: log.prediction_log_sample,
            flush_rows: log.prediction_log_flush_rows.max(1),
            flush_every: Duration::from_secs(log.prediction_log_flush_secs.max(1)),
            ..LogSettings::default()
        };
        let (log, writer) = PredictionLog::start(Arc::new(LakePredictionLog { lake }), store.clone(), settings);
        Ok((Arc::new(serving.with_log(log)), Some(writer)))
    }
}

/// How predictions are logged to `lake://predictions/<model>` for monitoring.
#[derive(clap::Args, Clone, Debug)]
pub struct PredictionLogArgs {
    /// The share of prediction requests logged with their inputs, from 0 (none) to 1 (all).
    #[arg(long, env = "SLUICE_PREDICTION_LOG_SAMPLE", default_value_t = 1.0, value_parser = parse_share)]
    pub prediction_log_sample: f64,
    /// A model's logged rows are written once this many wait...
    #[arg(long, env = "SLUICE_PREDICTION_LOG_FLUSH_ROWS", default_value_t = 10_000)]
    pub prediction_log_flush_rows: usize,
    /// ... or every this many seconds.
    #[arg(long, env = "SLUICE_PREDICTION_LOG_FLUSH_SECS", default_value_t = 5)]
    pub prediction_log_flush_secs: u64,
}

impl Default for PredictionLogArgs {
    fn default() -> Self {
        PredictionLogArgs {
            prediction_log_sample: 1.0,
            prediction_log_flush_rows: 10_000,
            prediction_log_flush_secs: 5,
        }
    }
}

fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{text:?} is not a number from 0 to 1")),
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub scheduling: SchedulingArgs,
    /// Address to listen on.
    #[arg(long, env = "SLUICE_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Shared secret that workers may present; without it, only named worker tokens let workers in.
    #[arg(long, env = "SLUICE_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,
    /// Serve only; leave scheduling to `sluice scheduler` processes.
    #[arg(long)]
    pub no_scheduler: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub prediction_log: PredictionLogArgs,
}

/// `sluice serve`: predictions only.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, env = "SLUICE_SERVE_BIND", default_value = "127.0.0.1:8081")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub prediction_log: PredictionLogArgs,
}

#[derive(clap::Args, Clone, Debug)]
pub struct SchedulerArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub scheduling: SchedulingArgs,
    /// Mapping over an upstream output above the database's limit reads it from the lake.
    #[command(flatten)]
    pub lake: LakeArgs,
}

pub async fn connect(database: &DatabaseArgs) -> anyhow::Result<Store> {
    open(database, sluice_store::CONNECTION_WAIT).await
}

/// [`connect`] for a process that workers heartbeat through or that expires their leases: a statement waits for
/// a connection at most a third of the lease (the heartbeat interval), so that while the database is down a
/// heartbeat is answered 503 well before the worker's lease would end, and the worker keeps its task.
pub async fn connect_for_leases(database: &DatabaseArgs, scheduling: &SchedulingArgs) -> anyhow::Result<Store> {
    let heartbeat = Duration::from_secs(scheduling.lease_secs.max(1)) / 3;
    open(database, heartbeat.min(sluice_store::CONNECTION_WAIT)).await
}

async fn open(database: &DatabaseArgs, wait: Duration) -> anyhow::Result<Store> {
    let url = database
        .database_url
        .clone()
        .context("no database: set SLUICE_DATABASE_URL or --database-url (postgres://… or sqlite://…)")?;
    let secrets = Secrets::from_config(database.encryption_key.as_deref().unwrap_or_default())?;
    let store =
        Store::connect_waiting(&url, wait).await.with_context(|| format!("cannot connect to {}", redact(&url)))?;
    store.migrate().await.context("cannot migrate the database")?;
    // Environment variables that are not UTF-8 cannot be connections or variables.
    let env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let store =
        store.with_secrets(secrets).with_backends(SecretsBackends::standard(database.secrets_file.clone(), env));
    let check = store.check_secrets().await?;
    if check.to_reseal > 0 && store.seals_secrets() {
        tracing::warn!(values = check.to_reseal, "secrets not sealed with the first key: run `sluice rotate-key`");
    } else if !store.seals_secrets() {
        tracing::warn!("SLUICE_ENCRYPTION_KEY is not set: connection secrets and variables are stored unencrypted");
    }
    Ok(store)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// The engine, reading the task outputs kept in `lake` (those above the database's limit).
fn engine_of(store: Store, scheduling: &SchedulingArgs, lake: &LakeArgs) -> anyhow::Result<Engine> {
    let config = EngineConfig {
        lease: Duration::from_secs(scheduling.lease_secs.max(1)),
        sensitive: SensitiveKeys::with_extra(&scheduling.sensitive_fields),
        lineage_namespace: scheduling.openlineage_url.as_ref().map(|_| scheduling.openlineage_namespace.clone()),
        traces: crate::traces::from_environment().context("cannot export traces to the OTLP endpoint")?,
        ..EngineConfig::default()
    };
    Ok(Engine::new(store, config).with_lake(Arc::new(Lake::open(&lake.location())?)))
}

fn notifier_config(scheduling: &SchedulingArgs) -> NotifierConfig {
    NotifierConfig {
        attempts: scheduling.alert_attempts,
        first_delay: scheduling.alert_retry_delay,
        lineage: scheduling
            .openlineage_url
            .clone()
            .map(|url| LineageTarget { url, api_key: scheduling.openlineage_api_key.clone() }),
        ..NotifierConfig::default()
    }
}

/// Starts moving the logs of ended tries to the lake, when they are kept there, until `stop` is cancelled.
fn spawn_log_mover(
    engine: &Engine,
    scheduling: &SchedulingArgs,
    stop: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    (scheduling.log_store == LogStore::Lake)
        .then(|| tokio::spawn(run_log_mover(engine.clone(), LogMoverConfig::default(), stop.clone().cancelled_owned())))
}

fn scheduler_config(scheduling: &SchedulingArgs) -> SchedulerConfig {
    let hostname = hostname();
    SchedulerConfig {
        dags_folder: scheduling.dags_folder.clone(),
        tick: Duration::from_millis(scheduling.scheduler_tick_ms.max(10)),
        dag_sync_interval: Duration::from_secs(scheduling.dag_sync_secs),
        scheduler_id: format!("{hostname}-{}", std::process::id()),
        hostname,
    }
}

pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

/// Runs the server (and the scheduler loop unless disabled) until `shutdown` resolves; over HTTPS with `tls`, what
/// `args.tls` loaded.
pub async fn serve(
    args: &ServerArgs,
    store: Store,
    worker_token: Option<String>,
    listener: TcpListener,
    tls: Option<RustlsConfig>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    sluice_api::metrics::install().context("cannot start recording metrics")?;
    let engine = engine_of(store, &args.scheduling, &args.lake)?;
    let scheduler = (!args.no_scheduler).then(|| {
        let alerts = notifier_config(&args.scheduling);
        tokio::spawn(run_notifier(engine.store().clone(), alerts, shutdown.clone().cancelled_owned()));
        spawn_log_mover(&engine, &args.scheduling, &shutdown);
        let config = scheduler_config(&args.scheduling);
        tokio::spawn(run_scheduler(engine.clone(), config, shutdown.clone().cancelled_owned()))
    });
    if let Some(url) = args.database.database_url.clone() {
        let listener = engine.clone();
        tokio::spawn(async move { listener.listen_for_work(&url).await });
    }
    let stopping = engine.clone();
    let stop_signal = shutdown.clone();
    tokio::spawn(async move {
        stop_signal.cancelled().await;
        stopping.stop_waiting();
    });
    let (serving, log_writer) = args.lake.serving(engine.store(), &args.prediction_log)?;
    let state = AppState {
        engine,
        workers: Arc::new(WorkerAuth::new(worker_token)),
        auth: Arc::new(args.auth.config()),
        serving,
        sign_in: Arc::new(SignInThrottle::new(args.auth.sign_in_limits())),
        feed: Arc::default(),
    };
    // The peer address of each connection travels with its requests: sign-in limits count per client address.
    let app = sluice_api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    tracing::info!(address = %listener.local_addr()?, https = tls.is_some(), "server listening");
    serve_http(listener, app, tls, shutdown.clone().cancelled_owned()).await.context("server failed")?;
    if let Some(writer) = log_writer {
        writer.finish().await;
    }
    if let Some(handle) = scheduler {
        handle.await.ok();
    }
    Ok(())
}

pub async fn run_server(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let tls = args.tls.load().await?;
    let token = args.worker_token.clone().filter(|t| !t.is_empty());
    if token.is_none() {
        tracing::warn!(
            "no SLUICE_WORKER_TOKEN: only workers with a named token (`sluice worker-tokens create`) are let in"
        );
    }
    let store = connect_for_leases(&args.database, &args.scheduling).await?;
    let listener = TcpListener::bind(args.bind).await.with_context(|| format!("cannot listen on {}", args.bind))?;
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        trigger.cancel();
    });
    serve(&args, store, token, listener, tls, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `sluice serve`: the model registry's predictions and reads, nothing else, until a shutdown signal.
pub async fn run_serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let tls = args.tls.load().await?;
    let store = connect(&args.database).await?;
    let scheduling = SchedulingArgs::defaults(PathBuf::from("./dags"));
    let (serving, log_writer) = args.lake.serving(&store, &args.prediction_log)?;
    let state = AppState {
        engine: engine_of(store, &scheduling, &args.lake)?,
        // The worker protocol is not served: no worker token is accepted.
        workers: Arc::new(WorkerAuth::new(None)),
        auth: Arc::new(args.auth.config()),
        serving,
        sign_in: Arc::new(SignInThrottle::new(args.auth.sign_in_limits())),
        feed: Arc::default(),
    };
    let listener = TcpListener::bind(args.bind).await.with_context(|| format!("cannot listen on {}", args.bind))?;
    tracing::info!(address = %listener.local_addr()?, https = tls.is_some(), lake = %args.lake.location(), "serving models");
    let app = sluice_api::serving_router(state).into_make_service_with_connect_info::<SocketAddr>();
    serve_http(listener, app, tls, super::shutdown_signal()).await.context("server failed")?;
    if let Some(writer) = log_writer {
        writer.finish().await;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_scheduler_only(args: SchedulerArgs) -> anyhow::Result<ExitCode> {
    let store = connect_for_leases(&args.database, &args.scheduling).await?;
    let engine = engine_of(store, &args.scheduling, &args.lake)?;
    let stop = CancellationToken::new();
    let notifier = tokio::spawn(run_notifier(
        engine.store().clone(),
        notifier_config(&args.scheduling),
        stop.clone().cancelled_owned(),
    ));
    let mover = spawn_log_mover(&engine, &args.scheduling, &stop);
    run_scheduler(engine, scheduler_config(&args.scheduling), super::shutdown_signal()).await;
    stop.cancel();
    let _ = notifier.await;
    if let Some(mover) = mover {
        let _ = mover.await;
    }
    Ok(ExitCode::SUCCESS)
}
