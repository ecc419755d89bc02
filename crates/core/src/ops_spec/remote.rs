//! Data tasks that reach outside systems through a connection: the HTTP JSON and SQL database ingest sources, and
//! `kind: sql`.
//!
//! ```yaml
//! source: {type: http, url: /v1/orders, connection: shop_api, records: /data, pagination: {type: page_number}}
//! source: {type: sql, connection: warehouse, query: "SELECT * FROM orders WHERE day = '{{ ds }}'"}
//! ```
//!
//! A connection is named by its `conn_id`; the server hands it to the task when a worker leases it (see
//! [`crate::connection`]).

use std::collections::BTreeMap;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// Pages an HTTP source reads at most unless it says otherwise: enough for real APIs, and an end to a loop over an
/// API that always answers with a next page.
pub const DEFAULT_MAX_PAGES: u32 = 1000;

/// `source: {type: http, …}`: records from a JSON API, fetched with `GET`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSource {
    /// An absolute URL, or a path joined to the connection's host.
    pub url: String,
    /// The connection that gives the host and the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Where the array of records is in the body: a JSON pointer (`/data/items`) or a dotted path (`data.items`).
    /// The body itself when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    /// Query parameters; numbers and booleans are sent as written (`per_page: 100`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "texts")]
    pub params: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "texts")]
    pub headers: BTreeMap<String, String>,
    /// One request when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

/// How an HTTP source finds its next page, tagged by `type`. Reading more than `max_pages` pages fails the task
/// rather than loading part of the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// `?page=1`, `?page=2`, … until a page has no records.
    PageNumber {
        #[serde(default = "default_page_param")]
        param: String,
        #[serde(default = "default_first_page")]
        start: u64,
        #[serde(default = "default_max_pages")]
        max_pages: u32,
    },
    /// The body holds the next page's URL (absolute or relative) at the pointer `next`; the last page has none.
    NextUrl {
        next: String,
        #[serde(default = "default_max_pages")]
        max_pages: u32,
    },
    /// The body holds a token at the pointer `cursor`, sent back as query parameter `param`; the last page has none.
    Cursor {
        cursor: String,
        param: String,
        #[serde(default = "default_max_pages")]
        max_pages: u32,
    },
}

impl Pagination {
    pub fn max_pages(&self) -> u32 {
        match self {
            Pagination::PageNumber { max_pages, .. }
            | Pagination::NextUrl { max_pages, .. }
            | Pagination::Cursor { max_pages, .. } => *max_pages,
        }
    }
}

/// A mapping of scalars, each as its text: YAML users write `per_page: 100`, and the URL wants `100`.
fn texts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    BTreeMap::<String, serde_json::Value>::deserialize(deserializer)?
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => Ok((key, text)),
            serde_json::Value::Number(n) => Ok((key, n.to_string())),
            serde_json::Value::Bool(b) => Ok((key, b.to_string())),
            other => Err(de::Error::custom(format!("{key:?} must be a text, a number or a boolean, not {other}"))),
        })
        .collect()
}

fn default_page_param() -> String {
    "page".to_owned()
}

fn default_first_page() -> u64 {
    1
}

fn default_max_pages() -> u32 {
    DEFAULT_MAX_PAGES
}

/// `source: {type: sql, …}` (or `type: postgres`, for PostgreSQL connections only): the rows of a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySource {
    /// A PostgreSQL, MySQL or SQLite connection; its `conn_type` says which.
    pub connection: String,
    /// One `SELECT`.
    pub query: String,
}

/// `kind: sql` — statements run on a PostgreSQL, MySQL or SQLite connection in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSpec {
    pub connection: String,
    /// One or more statements separated by `;`.
    pub sql: String,
}

/// A JSON pointer (`/data/items`) as it is, or a dotted path (`data.items`) as one.
pub fn json_pointer(path: &str) -> String {
    if path.is_empty() || path.starts_with('/') {
        return path.to_owned();
    }
    path.split('.').map(|key| format!("/{}", key.replace('~', "~0").replace('/', "~1"))).collect()
}
