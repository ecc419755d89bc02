//! Secrets backends: connections and variables kept outside the database and read before it, as Airflow's
//! secrets backends are searched before its metastore.
//!
//! Two come with Sluice, searched in this order, then the database:
//! - a file (`SLUICE_SECRETS_FILE`): YAML or JSON with `connections:` (id → URI or Airflow's JSON form) and
//!   `variables:` (key → value; values that are not text are kept as JSON text). It is read at each lookup, so an
//!   edit needs no restart; an unreadable or malformed file is an error that names it.
//! - the environment of the server process: `SLUICE_CONN_<ID>` (a URI or JSON) and `SLUICE_VAR_<KEY>`, as
//!   Airflow's `AIRFLOW_CONN_*` and `AIRFLOW_VAR_*`. Their ids and keys are the lower-cased names.
//!
//! Another store of secrets (Vault, a cloud secrets manager) is one more implementation of [`SecretsBackend`]
//! added to [`SecretsBackends::new`]'s list: it answers a connection by id, a variable by key, and the variables it
//! holds (templates read them all at once). Backends are consulted when a task is leased, so a remote one should
//! keep what it fetched for a while rather than ask for every task.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use sluice_core::connection::{CONNECTION_ENV_PREFIX, Connection};

use crate::ConnectionRow;

/// The prefix of the environment variables that hold variables.
pub const VARIABLE_ENV_PREFIX: &str = "SLUICE_VAR_";

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("secrets file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("connection `{conn_id}` of {source_name}: {message}")]
    Connection { conn_id: String, source_name: String, message: String },
}

/// One place connections and variables may come from before the database.
pub trait SecretsBackend: Send + Sync {
    /// Connections by id.
    fn connections(&self) -> Result<BTreeMap<String, ConnectionRow>, BackendError>;
    /// One connection; a backend that can look one up alone overrides this.
    fn connection(&self, conn_id: &str) -> Result<Option<ConnectionRow>, BackendError> {
        Ok(self.connections()?.remove(conn_id))
    }
    /// Variables by key.
    fn variables(&self) -> Result<BTreeMap<String, String>, BackendError>;
}

/// The backends in the order they are searched; the database comes after them.
#[derive(Default)]
pub struct SecretsBackends(Vec<Box<dyn SecretsBackend>>);

impl std::fmt::Debug for SecretsBackends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretsBackends({})", self.0.len())
    }
}

impl SecretsBackends {
    pub fn new(backends: Vec<Box<dyn SecretsBackend>>) -> SecretsBackends {
        SecretsBackends(backends)
    }

    /// Sluice's own: the file, if one is configured, then the variables of `env` (the process's environment).
    pub fn standard(file: Option<PathBuf>, env: impl IntoIterator<Item = (String, String)>) -> SecretsBackends {
        let mut backends: Vec<Box<dyn SecretsBackend>> = Vec::new();
        if let Some(path) = file {
            backends.push(Box::new(FileBackend { path }));
        }
        backends.push(Box::new(EnvBackend::new(env)));
        SecretsBackends(backends)
    }

    /// A connection by id from the first backend that has it.
    pub fn connection(&self, conn_id: &str) -> Result<Option<ConnectionRow>, BackendError> {
        for backend in &self.0 {
            if let Some(conn) = backend.connection(conn_id)? {
                return Ok(Some(conn));
            }
        }
        Ok(None)
    }

    /// Every backend's connections, the first backend winning for an id.
    pub fn connections(&self) -> Result<BTreeMap<String, ConnectionRow>, BackendError> {
        let mut all = BTreeMap::new();
        for backend in self.0.iter().rev() {
            all.extend(backend.connections()?);
        }
        Ok(all)
    }

    /// Every backend's variables, the first backend winning for a key.
    pub fn variables(&self) -> Result<BTreeMap<String, String>, BackendError> {
        let mut all = BTreeMap::new();
        for backend in self.0.iter().rev() {
            all.extend(backend.variables()?);
        }
        Ok(all)
    }
}

fn row(conn_id: &str, conn: Connection) -> ConnectionRow {
    ConnectionRow {
        conn_id: conn_id.to_owned(),
        conn_type: conn.conn_type,
        description: None,
        host: conn.host,
        login: conn.login,
        password: conn.password,
        schema: conn.schema,
        port: conn.port.map(i64::from),
        extra: conn.extra.map(|extra| serde_json::Value::Object(extra).to_string()),
    }
}

/// `SLUICE_CONN_<ID>` and `SLUICE_VAR_<KEY>`, taken from the environment when the process started (it cannot change
/// from outside afterwards).
struct EnvBackend {
    connections: BTreeMap<String, String>,
    variables: BTreeMap<String, String>,
}

impl EnvBackend {
    fn new(env: impl IntoIterator<Item = (String, String)>) -> EnvBackend {
        let (mut connections, mut variables) = (BTreeMap::new(), BTreeMap::new());
        for (name, value) in env {
            if let Some(id) = name.strip_prefix(CONNECTION_ENV_PREFIX) {
                connections.insert(id.to_lowercase(), value);
            } else if let Some(key) = name.strip_prefix(VARIABLE_ENV_PREFIX) {
                variables.insert(key.to_lowercase(), value);
            }
        }
        EnvBackend { connections, variables }
    }
}

impl EnvBackend {
    fn parse(&self, id: &str, text: &str) -> Result<ConnectionRow, BackendError> {
        let conn = Connection::parse(text).map_err(|message| BackendError::Connection {
            conn_id: id.to_owned(),
            source_name: format!("{CONNECTION_ENV_PREFIX}{}", id.to_uppercase()),
            message,
        })?;
        Ok(row(id, conn))
    }
}

impl SecretsBackend for EnvBackend {
    fn connections(&self) -> Result<BTreeMap<String, ConnectionRow>, BackendError> {
        self.connections.iter().map(|(id, text)| Ok((id.clone(), self.parse(id, text)?))).collect()
    }

    /// Only the connection asked for is parsed: a malformed other one does not stop the tasks that do not use it.
    fn connection(&self, conn_id: &str) -> Result<Option<ConnectionRow>, BackendError> {
        self.connections.get(conn_id).map(|text| self.parse(conn_id, text)).transpose()
    }

    fn variables(&self) -> Result<BTreeMap<String, String>, BackendError> {
        Ok(self.variables.clone())
    }
}

/// A YAML or JSON file of connections and variables.
struct FileBackend {
    path: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    #[serde(default)]
    connections: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    variables: BTreeMap<String, serde_json::Value>,
}

impl FileBackend {
    fn read(&self) -> Result<SecretsFile, BackendError> {
        let error = |message: String| BackendError::File { path: self.path.clone(), message };
        let text = std::fs::read_to_string(&self.path).map_err(|e| error(e.to_string()))?;
        if text.trim().is_empty() {
            return Ok(SecretsFile::default());
        }
        // JSON is YAML too.
        serde_saphyr::from_str(&text).map_err(|e| error(e.to_string()))
    }
}

impl SecretsBackend for FileBackend {
    fn connections(&self) -> Result<BTreeMap<String, ConnectionRow>, BackendError> {
        self.read()?
            .connections
            .into_iter()
            .map(|(id, value)| {
                let text = match value {
                    serde_json::Value::String(uri) => uri,
                    other => other.to_string(),
                };
                let conn = Connection::parse(&text).map_err(|message| BackendError::Connection {
                    conn_id: id.clone(),
                    source_name: self.path.display().to_string(),
                    message,
                })?;
                Ok((id.clone(), row(&id, conn)))
            })
            .collect()
    }

    fn variables(&self) -> Result<BTreeMap<String, String>, BackendError> {
        let text = |value: serde_json::Value| match value {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        Ok(self.read()?.variables.into_iter().map(|(k, v)| (k, text(v))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_file_comes_before_the_environment() {
        let dir = tempfile::tempdir().expect("a folder");
        let path = dir.path().join("secrets.yaml");
        std::fs::write(
            &path,
            "connections:\n  warehouse: postgres://ana:s3cret@db:5432/sales\n  api: {conn_type: http, host: api.example.com, password: tok}\nvariables:\n  bucket: s3://from-file\n  config: {depth: 4}\n",
        )
        .expect("written");
        let backends = SecretsBackends::standard(
            Some(path.clone()),
            env(&[
                ("SLUICE_CONN_WAREHOUSE", "postgres://other@elsewhere/db"),
                ("SLUICE_CONN_CACHE", r#"{"conn_type": "redis", "host": "r"}"#),
                ("SLUICE_VAR_BUCKET", "s3://from-env"),
                ("SLUICE_VAR_REGION", "eu"),
                ("PATH", "/bin"),
            ]),
        );
        let warehouse = backends.connection("warehouse").expect("read").expect("found");
        assert_eq!((warehouse.host.as_deref(), warehouse.password.as_deref()), (Some("db"), Some("s3cret")));
        assert_eq!(backends.connection("cache").expect("read").expect("from the environment").conn_type, "redis");
        assert_eq!(backends.connection("api").expect("read").expect("JSON form").password.as_deref(), Some("tok"));
        assert!(backends.connection("nope").expect("read").is_none());
        assert_eq!(backends.connections().expect("read").keys().collect::<Vec<_>>(), ["api", "cache", "warehouse"]);
        let variables = backends.variables().expect("read");
        assert_eq!(variables["bucket"], "s3://from-file");
        assert_eq!(variables["region"], "eu");
        assert_eq!(variables["config"], r#"{"depth":4}"#);

        std::fs::write(&path, "connections: [not, a, mapping]\n").expect("written");
        let err = backends.variables().expect_err("malformed").to_string();
        assert!(err.starts_with(&format!("secrets file {}", path.display())), "{err}");
        let bad = SecretsBackends::standard(None, env(&[("SLUICE_CONN_BROKEN", "::nope")]));
        let err = bad.connection("broken").expect_err("not a URI").to_string();
        assert!(err.contains("connection `broken` of SLUICE_CONN_BROKEN: not a connection URI"), "{err}");
    }
}
