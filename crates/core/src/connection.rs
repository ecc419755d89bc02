//! A connection as a data task receives it: Airflow's JSON connection format, in an environment variable.
//!
//! Airflow hands connections to tasks as `AIRFLOW_CONN_{CONN_ID}`; Sluice does the same with
//! `SLUICE_CONN_{CONN_ID}` (the id upper-cased), holding
//! `{"conn_type": …, "host": …, "port": …, "login": …, "password": …, "schema": …, "extra": {…}}`. The server adds
//! the variables of the connections a data task names when a worker leases it; they are never part of the rendered
//! command stored with the try, and [`Connection`]'s `Debug` hides the password.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The prefix of the environment variables that hold connections.
pub const CONNECTION_ENV_PREFIX: &str = "SLUICE_CONN_";

/// The environment variable that holds connection `conn_id`.
pub fn connection_env_var(conn_id: &str) -> String {
    format!("{CONNECTION_ENV_PREFIX}{}", conn_id.to_uppercase())
}

/// Airflow's JSON connection format.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub conn_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The database, for database connections; the URL scheme (`http`, `https`) for HTTP ones, as in Airflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// A JSON object; Airflow also accepts the object as a JSON string, and so does Sluice.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "extra_object")]
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Connection {
    /// A text field of `extra`; numbers and booleans are given in their JSON form.
    pub fn extra_str(&self, key: &str) -> Option<String> {
        match self.extra.as_ref()?.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// `extra` as stored (a JSON text), or why it is not a JSON object.
    pub fn parse_extra(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err("`extra` must be a JSON object".to_owned()),
            Err(e) => Err(format!("`extra` is not JSON: {e}")),
        }
    }
}

fn extra_object<'de, D>(deserializer: D) -> Result<Option<serde_json::Map<String, serde_json::Value>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Object(map)) => Ok(Some(map)),
        Some(serde_json::Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(text)) => {
            Connection::parse_extra(&text).map(Some).map_err(serde::de::Error::custom)
        }
        Some(_) => Err(serde::de::Error::custom("`extra` must be a JSON object")),
    }
}

/// Leaves the password (and `extra`, which may hold tokens) out, so that a connection can be logged.
impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("conn_type", &self.conn_type)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("login", &self.login)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("schema", &self.schema)
            .field("extra", &self.extra.as_ref().map(|e| e.keys().collect::<Vec<_>>()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_follow_airflow() {
        assert_eq!(connection_env_var("warehouse"), "SLUICE_CONN_WAREHOUSE");
        assert_eq!(connection_env_var("orders_api"), "SLUICE_CONN_ORDERS_API");
    }

    #[test]
    fn extra_as_object_or_as_json_text() {
        let a: Connection = serde_json::from_str(r#"{"conn_type": "http", "extra": {"header": "X-Key"}}"#).unwrap();
        let b: Connection =
            serde_json::from_str(r#"{"conn_type": "http", "extra": "{\"header\": \"X-Key\"}"}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.extra_str("header").as_deref(), Some("X-Key"));
        let err = serde_json::from_str::<Connection>(r#"{"conn_type": "http", "extra": "[1]"}"#).unwrap_err();
        assert!(err.to_string().contains("JSON object"), "{err}");
    }

    #[test]
    fn debug_hides_secrets() {
        let conn = Connection {
            conn_type: "postgres".into(),
            password: Some("hunter2".into()),
            extra: Connection::parse_extra(r#"{"token": "t0ps3cret"}"#).ok(),
            ..Connection::default()
        };
        let shown = format!("{conn:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("t0ps3cret"), "{shown}");
        assert!(shown.contains("token"), "{shown}");
    }
}
