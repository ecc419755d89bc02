//! Sluice's persistence: every DAG, DAG run, task instance, try, log line, asset event and quality report lives
//! here, and the users and API keys that may see them.
//!
//! One implementation serves both databases: PostgreSQL for production and SQLite for the embedded standalone
//! mode. They share every query through sqlx's `Any` driver; the schema stores times as UTC epoch milliseconds
//! and ids as UUID text so that the same SQL means the same thing on both. The few places where the databases
//! differ (row locks with `FOR UPDATE SKIP LOCKED`, the connection pool) are decided by [`Dialect`].
//!
//! Reads for the API are plain methods on [`Store`]; changes that must happen together (claiming a task,
//! recording a try's end and scheduling what follows) go through a [`Tx`].

mod assets;
mod audit;
mod auth;
mod availability;
pub mod backends;
mod backfills;
mod claim;
mod connections;
mod dags;
mod error;
mod feedback;
mod logs;
mod models;
pub mod notifications;
mod retention;
mod rows;
mod runs;
mod secrets;
mod stats;
mod tasks;
mod time;
mod tx;
mod ui;
mod worker_tokens;
mod xcom;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{AnyPool, ConnectOptions, Executor};
use tokio::sync::Notify;

pub use assets::{AssetEventFilter, AssetEventRow, AssetRow, NewAssetEvent, QualityReportRow, TryRef};
pub use audit::{EventFilter, EventRow, NewEvent};
pub use auth::{ApiKeyRow, NewApiKey, UserRow};
pub use availability::Outage;
pub use backends::SecretsBackends;
pub use backfills::{BackfillRow, NewBackfill};
pub use claim::{Claim, QueuedTi};
pub use connections::{ConnectionRow, PoolRow, PoolSettings, SecretsCheck};
pub use dags::{
    DagDeletion, DagFilter, DagOrder, DagUpsert, ImportErrorFilter, ImportErrorRow, VariableRow, VersionSummary,
};
pub use error::{Error, Result};
pub use feedback::{FeedbackRow, FeedbackSince, ModelVersionOrigin, NewFeedback};
pub use logs::{LogEntry, LogRow, LogsToMove};
pub use models::{
    FeedbackCounts, ModelRow, ModelVersionRow, MonitorReportRow, NewModelVersion, NewMonitorReport, SetStage,
    StageChangeRow, StageRefusal,
};
pub use notifications::{NewNotification, NotificationFilter, NotificationRow};
pub use retention::History;
pub use rows::{DagRow, DagRunRow, DagVersionRow, TaskInstanceRow, TaskTryRow, WorkerRow};
pub use runs::{Compare, NewRun, NewTaskInstance, RunFilter, RunOrder, RunTime, TiFilter, TimeBound};
pub use secrets::{Secrets, SecretsError};
pub use stats::{Counts, PoolUse, Stats};
pub use tasks::{ClaimedTask, LeafTry, QualityEntry, TaskLimit, TryEnd, TryRecord};
pub use time::{from_ms, now_ms, to_ms};
pub use tx::{LockedRuns, Reads, RunTx, Tx};
pub use ui::{Changes, GridCell, RunChange, TiChange, TryTimes};
pub use worker_tokens::WorkerTokenRow;
pub use xcom::XComRow;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    pub fn from_url(url: &str) -> Result<Dialect> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else {
            Err(Error::Config(format!("unsupported database URL {url:?}: use postgres://… or sqlite://…")))
        }
    }

    /// Row-lock suffix for a `SELECT` whose rows this transaction will change. SQLite needs none: it has one
    /// writer at a time, and Sluice's SQLite pool has a single connection.
    pub(crate) fn lock_skip_locked(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }

    pub(crate) fn lock_wait(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    /// The lock of a decision about a run: exclusive among decisions, but claims ([`Dialect::lock_share_skip_locked`])
    /// go on beside it. [`Dialect::lock_wait`] excludes claims too.
    pub(crate) fn lock_decide(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR NO KEY UPDATE",
            Dialect::Sqlite => "",
        }
    }

    pub(crate) fn lock_decide_skip_locked(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR NO KEY UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }

    /// A shared lock on rows that other claims may share but an exclusive [`Dialect::lock_wait`] holder excludes;
    /// rows held that way are skipped.
    pub(crate) fn lock_share_skip_locked(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR KEY SHARE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }

    /// Makes a `WITH` query run once, on its own, before the statement that reads it (PostgreSQL; SQLite has one
    /// writer and needs no such care).
    pub(crate) fn materialized(self) -> &'static str {
        match self {
            Dialect::Postgres => "MATERIALIZED ",
            Dialect::Sqlite => "",
        }
    }
}

/// How long a statement waits for a PostgreSQL connection unless told otherwise ([`Store::connect_waiting`]):
/// long enough for a busy pool to free one, short enough that a request fails quickly (503) while the database
/// is down rather than holding its client.
pub const CONNECTION_WAIT: Duration = Duration::from_secs(5);

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// Raised when a transaction that queued task instances commits (see [`Tx::commit`]).
    work: Arc<Notify>,
    /// Seals and opens connection secrets and variable values (see [`secrets`]).
    secrets: Arc<Secrets>,
    /// Where connections and variables are looked up before the database (see [`backends`]).
    backends: Arc<SecretsBackends>,
}

impl Store {
    /// Connects to `url` (`postgres://…` or `sqlite://path`); a SQLite file is created if missing. A PostgreSQL URL
    /// takes libpq's TLS settings (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`, or the `PGSSL*` variables): see
    /// [`postgres_tls`].
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_waiting(url, CONNECTION_WAIT).await
    }

    /// [`Store::connect`], where a statement waits at most `wait` for a PostgreSQL connection before failing with
    /// an error that [`Error::is_unavailable`]. While the database is down every wait lasts that long, so it is
    /// what a request takes to be answered 503.
    pub async fn connect_waiting(url: &str, wait: Duration) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        let url = match dialect {
            Dialect::Sqlite => sqlite_url_creating_parent(url)?,
            Dialect::Postgres => url.to_string(),
        };
        let mut options = AnyConnectOptions::from_str(&url)?;
        let pool = match dialect {
            Dialect::Postgres => {
                let ssl_mode = postgres_tls(&mut options)?;
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(wait)
                    .connect_with(options)
                    .await
                    .map_err(|e| tls_failure(e, ssl_mode))?
            }
            // One connection: SQLite allows one writer at a time, and queueing writers in the pool is both
            // faster and simpler than retrying on SQLITE_BUSY.
            Dialect::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(60))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
        };
        Ok(Store { pool, dialect, work: Arc::new(Notify::new()), secrets: Arc::default(), backends: Arc::default() })
    }

    /// This store with the keys that seal and open secrets at rest; without them values are stored as they are.
    pub fn with_secrets(self, secrets: Secrets) -> Store {
        Store { secrets: Arc::new(secrets), ..self }
    }

    /// This store with the secrets backends that tasks' connections and variables are read from first.
    pub fn with_backends(self, backends: SecretsBackends) -> Store {
        Store { backends: Arc::new(backends), ..self }
    }

    /// Whether secrets written now are sealed (a key is configured).
    pub fn seals_secrets(&self) -> bool {
        self.secrets.is_configured()
    }

    pub(crate) fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Brings the schema up to date. Safe to run from several processes at once on PostgreSQL (sqlx takes an
    /// advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        match self.dialect {
            Dialect::Postgres => sqlx::migrate!("../../migrations/postgres").run(&self.pool).await?,
            Dialect::Sqlite => sqlx::migrate!("../../migrations/sqlite").run(&self.pool).await?,
        }
        Ok(())
    }

    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx::new(
            self.pool.begin().await?,
            self.dialect,
            self.work.clone(),
            self.secrets.clone(),
            self.backends.clone(),
        ))
    }

    /// Notified whenever a transaction of this store (or of a clone) that queued task instances commits: what
    /// long-polling workers wait on.
    pub fn work_signal(&self) -> Arc<Notify> {
        self.work.clone()
    }

    /// A trivial query, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Checks a PostgreSQL URL's TLS settings, so that what cannot be honoured stops the process at start with a
/// message that says so, and returns its `sslmode`:
/// - `sslmode=allow` (plain text, then TLS if the server insists) is refused: the driver would only try plain text;
/// - a certificate or key named by a path must be readable: the driver's error would not name the file;
/// - `sslmode=require` with `sslrootcert` becomes `verify-ca`, as libpq does, rather than trusting any certificate.
fn postgres_tls(options: &mut AnyConnectOptions) -> Result<PgSslMode> {
    let mode = PgConnectOptions::from_url(&options.database_url)?.get_ssl_mode();
    if matches!(mode, PgSslMode::Allow) {
        return Err(Error::Config(
            "sslmode=allow is not supported: use disable, prefer (the default), require, verify-ca or verify-full"
                .into(),
        ));
    }
    // Each file as the driver reads it: the URL's last value under any of its names, else the libpq variable.
    let files: [(&str, &[&str], &str); 3] = [
        ("sslrootcert", &["sslrootcert", "ssl-root-cert", "ssl-ca"], "PGSSLROOTCERT"),
        ("sslcert", &["sslcert", "ssl-cert"], "PGSSLCERT"),
        ("sslkey", &["sslkey", "ssl-key"], "PGSSLKEY"),
    ];
    let mut root_cert = false;
    for (name, keys, variable) in files {
        let from_url = options.database_url.query_pairs().filter(|(k, _)| keys.contains(&k.as_ref())).last();
        let Some(value) = from_url.map(|(_, v)| v.into_owned()).or_else(|| std::env::var(variable).ok()) else {
            continue;
        };
        root_cert |= name == "sslrootcert";
        // The driver takes PEM text in place of a path too.
        if !value.trim_start().starts_with("-----BEGIN")
            && let Err(e) = std::fs::File::open(&value)
        {
            return Err(Error::Config(format!("cannot read {name} {value}: {e}")));
        }
    }
    if root_cert && matches!(mode, PgSslMode::Require) {
        options.database_url.query_pairs_mut().append_pair("sslmode", "verify-ca");
        return Ok(PgSslMode::VerifyCa);
    }
    Ok(mode)
}

/// A failed connection to PostgreSQL, said as a TLS failure when it is one: the driver reports a certificate it does
/// not trust as an I/O error, without the setting that asked for the check.
fn tls_failure(error: sqlx::Error, mode: PgSslMode) -> Error {
    let reason = match &error {
        sqlx::Error::Tls(reason) => reason.to_string(),
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => io.to_string(),
        _ => return error.into(),
    };
    let (name, hint) = match mode {
        PgSslMode::Disable => ("disable", ""),
        PgSslMode::Allow => ("allow", ""),
        PgSslMode::Prefer => ("prefer", ""),
        PgSslMode::Require => ("require", ""),
        PgSslMode::VerifyCa => ("verify-ca", "; the server's certificate must be signed by the CA of sslrootcert"),
        PgSslMode::VerifyFull => (
            "verify-full",
            "; the server's certificate must be signed by the CA of sslrootcert (a public CA without it) and name the \
             URL's host",
        ),
    };
    Error::Config(format!("TLS connection to PostgreSQL failed (sslmode={name}): {reason}{hint}"))
}

/// `sqlite://.sluice/sluice.db` → the same URL with `mode=rwc`, after creating `.sluice/`.
fn sqlite_url_creating_parent(url: &str) -> Result<String> {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(Error::Config("a SQLite database needs a file path, e.g. sqlite://.sluice/sluice.db".into()));
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::Config(format!("cannot create the folder of {path:?}: {e}")))?;
    }
    let sep = if rest.contains('?') { '&' } else { '?' };
    Ok(if rest.contains("mode=") { format!("sqlite://{rest}") } else { format!("sqlite://{rest}{sep}mode=rwc") })
}

/// Creates database `name` on the PostgreSQL server of `admin_url` and returns its URL (for benchmarks and
/// throw-away deployments).
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<String> {
    use sqlx::Connection;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::Config(format!("invalid database name {name:?}")));
    }
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
    let base = admin_url.split('?').next().unwrap_or(admin_url);
    let server = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |s| s + 2) => &base[..i],
        _ => base,
    };
    Ok(format!("{server}/{name}"))
}

/// Drops database `name` on the PostgreSQL server of `admin_url`, disconnecting its sessions.
pub async fn drop_postgres_database(admin_url: &str, name: &str) -> Result<()> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_of(url: &str) -> (Result<PgSslMode>, String) {
        let mut options = AnyConnectOptions::from_str(url).expect("URL");
        let mode = postgres_tls(&mut options);
        (mode, options.database_url.to_string())
    }

    #[test]
    fn sslmode_allow_is_refused_with_the_modes_that_work() {
        let (mode, _) = tls_of("postgres://u@db:5432/d?sslmode=allow");
        let err = mode.expect_err("allow");
        assert!(err.to_string().contains("sslmode=allow is not supported"), "{err}");
    }

    #[test]
    fn an_unreadable_root_certificate_is_named() {
        let (mode, _) = tls_of("postgres://u@db/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        let err = mode.expect_err("missing file");
        assert!(err.to_string().contains("cannot read sslrootcert /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn require_with_a_root_certificate_verifies_it_as_libpq_does() {
        let ca = std::env::current_exe().expect("a readable file").display().to_string();
        let (mode, url) = tls_of(&format!("postgres://u@db/d?sslmode=require&sslrootcert={ca}"));
        assert!(matches!(mode, Ok(PgSslMode::VerifyCa)), "{mode:?}");
        assert!(url.ends_with("&sslmode=verify-ca"), "{url}");
        let (mode, _) = tls_of("postgres://u@db/d?sslmode=require");
        assert!(matches!(mode, Ok(PgSslMode::Require)), "{mode:?}");
    }
}
