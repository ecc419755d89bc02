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

    /// `path` joined to the connection's host, as Airflow's HTTP connections do: `host` may carry the scheme,
    /// otherwise it is `schema` (`http` or `https`), `http` when absent; `port` is added when set.
    pub fn http_url(&self, path: &str) -> Result<url::Url, String> {
        let host = self.host.as_deref().filter(|h| !h.trim().is_empty()).ok_or("the connection has no host")?;
        let base = if host.contains("://") {
            host.trim_end_matches('/').to_owned()
        } else {
            let scheme = self.schema.as_deref().filter(|s| !s.is_empty()).unwrap_or("http");
            let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}://{}{port}", host.trim_end_matches('/'))
        };
        let full = format!("{base}/{}", path.trim_start_matches('/'));
        url::Url::parse(&full).map_err(|e| format!("invalid URL {full:?}: {e}"))
    }

    /// A connection written as Airflow's URI form, `postgres://login:password@host:5432/schema?key=value`, or as
    /// its JSON form (text starting with `{`). In the URI the scheme is the type (`-` read as `_`), the path the
    /// schema, query parameters the `extra`, and percent-escapes are decoded, as Airflow's `Connection(uri=…)`.
    pub fn parse(text: &str) -> Result<Connection, String> {
        let text = text.trim();
        if text.starts_with('{') {
            return serde_json::from_str(text).map_err(|e| format!("not a JSON connection: {e}"));
        }
        let url = url::Url::parse(text).map_err(|e| format!("not a connection URI: {e}"))?;
        // As Python's `unquote`: a `+` stays a `+`.
        let decoded = |s: &str| -> Option<String> {
            let text = percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            (!text.is_empty()).then_some(text)
        };
        let path = url.path().trim_start_matches('/');
        let extra: serde_json::Map<String, serde_json::Value> =
            url.query_pairs().map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned()))).collect();
        Ok(Connection {
            conn_type: url.scheme().replace('-', "_"),
            host: url.host_str().map(str::to_owned).filter(|h| !h.is_empty()),
            port: url.port(),
            login: decoded(url.username()),
            password: url.password().and_then(decoded),
            schema: decoded(path),
            extra: (!extra.is_empty()).then_some(extra),
        })
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
    #[test]
    fn uri_and_json_forms_are_read_as_airflow_reads_them() {
        let conn =
            super::Connection::parse("postgres-x://ana%40corp:p%2Bss+w%2Fd@db.internal:5433/sales?sslmode=require&x=1")
                .expect("a URI");
        assert_eq!(conn.conn_type, "postgres_x");
        assert_eq!((conn.host.as_deref(), conn.port), (Some("db.internal"), Some(5433)));
        assert_eq!((conn.login.as_deref(), conn.password.as_deref()), (Some("ana@corp"), Some("p+ss+w/d")));
        assert_eq!(conn.schema.as_deref(), Some("sales"));
        assert_eq!(conn.extra_str("sslmode").as_deref(), Some("require"));
        let bare = super::Connection::parse("http://api.example.com").expect("a URI");
        assert_eq!((bare.login, bare.password, bare.schema, bare.extra), (None, None, None, None));
        let json = super::Connection::parse(r#" {"conn_type": "http", "host": "h", "extra": {"token": "t"}} "#);
        assert_eq!(json.expect("JSON").extra_str("token").as_deref(), Some("t"));
        assert!(super::Connection::parse("not a uri").expect_err("neither").contains("not a connection URI"));
        assert!(super::Connection::parse("{nope").expect_err("bad JSON").contains("not a JSON connection"));
    }

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
