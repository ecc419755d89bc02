//! Keyed task outputs (Airflow's XCom): the rules every part of Sluice applies to them.
//!
//! A task instance holds one value per key. What it returns (`::output::`, `$SLUICE_OUTPUT`, a python function's
//! return value) is the key [`RETURN_VALUE`]; it pushes others by key (`::output name=<key>::`, a file
//! `$SLUICE_OUTPUT_DIR/<key>.json`, a python task's `ti.xcom_push` or `multiple_outputs`), and users create and
//! change entries through the API. A value whose JSON is at most [`MAX_INLINE_BYTES`] is kept in the database; a
//! larger one, up to [`MAX_VALUE_BYTES`], is written to the lake at [`lake_uri`] and the database keeps where it is
//! ([`XComValue::Lake`]). The worker writes a task's large values before it reports, so that the report stays small
//! and the server never holds them; the API writes those it is given. Templates, mapping and the API read them back
//! through the same [`LakeObjects`].

use std::fmt::Debug;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ops_spec::lake_segment;

/// The key of what a task returns, as Airflow names it.
pub const RETURN_VALUE: &str = "return_value";
/// The largest value the database keeps itself (its JSON text).
pub const MAX_INLINE_BYTES: usize = 64 * 1024;
/// The largest value at all: past it, data belongs in an asset.
pub const MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;
/// The longest key, in characters (Airflow's column holds 512; 250 leaves room in file names and URLs).
pub const MAX_KEY_CHARS: usize = 250;
/// The lake's zone reserved for values above the database's limit.
pub const LAKE_ZONE: &str = "_xcom";

/// A value as it is stored: itself, or where the lake keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XComValue {
    Inline(Value),
    /// A `lake://_xcom/…` URI.
    Lake(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XComError {
    #[error("invalid output key {key:?}: {reason}")]
    BadKey { key: String, reason: &'static str },
    #[error(
        "the output `{key}` is {size} bytes, more than the limit of {MAX_VALUE_BYTES} bytes (64 MiB); \
         write large data to a file or an asset and output its path instead"
    )]
    TooBig { key: String, size: usize },
    #[error(
        "the output `{key}` is {size} bytes, above the database's limit of {MAX_INLINE_BYTES} bytes, and the \
         {place} has no lake to keep it in: set SLUICE_LAKE on the {place} (the server's lake)"
    )]
    NoLake { key: String, size: usize, place: &'static str },
    #[error("cannot write the output `{key}` to {uri}: {message}")]
    Write { key: String, uri: String, message: String },
    #[error("cannot read the output kept at {uri}: {message}")]
    Read { uri: String, message: String },
}

/// Objects of the lake, by `lake://` URI: where values above the database's limit go. Both methods block (a bucket
/// is reached over the network): async callers run them on a blocking thread.
pub trait LakeObjects: Send + Sync + Debug {
    /// Writes `bytes` at `uri` whole (readers see the old object or the new one), replacing what was there.
    fn put(&self, uri: &str, bytes: Vec<u8>) -> Result<(), String>;
    /// The bytes at `uri`; `None` when nothing is there.
    fn get(&self, uri: &str) -> Result<Option<Vec<u8>>, String>;
}

/// Checks a key: 1 to [`MAX_KEY_CHARS`] characters, no `/` (a key is one segment of the API's paths and of the
/// lake's), no control characters (a key travels on one line of output and names a file).
pub fn check_key(key: &str) -> Result<(), XComError> {
    let reason = if key.is_empty() {
        "it is empty"
    } else if key.chars().count() > MAX_KEY_CHARS {
        "it is longer than 250 characters"
    } else if key.contains('/') {
        "it contains '/'"
    } else if key.chars().any(char::is_control) {
        "it contains a control character"
    } else {
        return Ok(());
    };
    Err(XComError::BadKey { key: key.to_owned(), reason })
}

/// Where the lake keeps a task instance's value of `key`:
/// `lake://_xcom/<dag_id>/<run_id>/<task_id>/<map_index>/<key>.json`, each id one segment ([`lake_segment`]).
pub fn lake_uri(dag_id: &str, run_id: &str, task_id: &str, map_index: i64, key: &str) -> String {
    format!(
        "lake://{LAKE_ZONE}/{}/{}/{}/{map_index}/{}.json",
        lake_segment(dag_id),
        lake_segment(run_id),
        lake_segment(task_id),
        lake_segment(key)
    )
}

/// Keeps `value` as its size asks: itself up to [`MAX_INLINE_BYTES`], else written to `lake` at `uri`. `place` says
/// where a missing lake should be configured ("worker", "server"). Blocks while it writes to the lake.
pub fn store_value(
    key: &str,
    value: Value,
    uri: impl FnOnce() -> String,
    lake: Option<&dyn LakeObjects>,
    place: &'static str,
) -> Result<XComValue, XComError> {
    let text = value.to_string();
    let size = text.len();
    if size <= MAX_INLINE_BYTES {
        return Ok(XComValue::Inline(value));
    }
    if size > MAX_VALUE_BYTES {
        return Err(XComError::TooBig { key: key.to_owned(), size });
    }
    let lake = lake.ok_or_else(|| XComError::NoLake { key: key.to_owned(), size, place })?;
    let uri = uri();
    lake.put(&uri, text.into_bytes()).map_err(|message| XComError::Write {
        key: key.to_owned(),
        uri: uri.clone(),
        message,
    })?;
    Ok(XComValue::Lake(uri))
}

/// The value kept at `uri`. Blocks while it reads the lake.
pub fn load_value(lake: Option<&dyn LakeObjects>, uri: &str) -> Result<Value, XComError> {
    let read = |message: String| XComError::Read { uri: uri.to_owned(), message };
    let lake = lake.ok_or_else(|| read("no lake is configured here: set SLUICE_LAKE (the workers' lake)".into()))?;
    let bytes = lake.get(uri).map_err(read)?.ok_or_else(|| read("nothing is there".into()))?;
    serde_json::from_slice(&bytes).map_err(|e| read(format!("it is not JSON: {e}")))
}

impl XComValue {
    /// The value, read from `lake` when it is kept there. Blocks while it reads the lake.
    pub fn load(self, lake: Option<&dyn LakeObjects>) -> Result<Value, XComError> {
        match self {
            XComValue::Inline(value) => Ok(value),
            XComValue::Lake(uri) => load_value(lake, &uri),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    #[derive(Debug, Default)]
    struct MemoryLake(Mutex<BTreeMap<String, Vec<u8>>>);

    impl LakeObjects for MemoryLake {
        fn put(&self, uri: &str, bytes: Vec<u8>) -> Result<(), String> {
            self.0.lock().map_err(|e| e.to_string())?.insert(uri.to_owned(), bytes);
            Ok(())
        }
        fn get(&self, uri: &str) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0.lock().map_err(|e| e.to_string())?.get(uri).cloned())
        }
    }

    #[test]
    fn keys_are_checked() {
        for good in ["return_value", "a", "model path", "k:1", &"x".repeat(250), "é".repeat(250).as_str()] {
            assert_eq!(check_key(good), Ok(()), "{good}");
        }
        let reason = |key: &str| match check_key(key) {
            Err(XComError::BadKey { reason, .. }) => reason,
            other => panic!("{key:?}: {other:?}"),
        };
        assert_eq!(reason(""), "it is empty");
        assert_eq!(reason(&"x".repeat(251)), "it is longer than 250 characters");
        assert_eq!(reason("a/b"), "it contains '/'");
        assert_eq!(reason("a\nb"), "it contains a control character");
    }

    #[test]
    fn lake_uris_keep_each_id_one_segment() {
        assert_eq!(
            lake_uri("etl", "manual__2026-01-01T00:00:00+00:00", "group.load", -1, "rows"),
            "lake://_xcom/etl/manual__2026-01-01T00%3A00%3A00%2B00%3A00/group.load/-1/rows.json"
        );
        assert_eq!(lake_uri("d", "..", ".", 3, "a b%"), "lake://_xcom/d/%2E%2E/%2E/3/a%20b%25.json");
        let uri = lake_uri("d", "r", "t", 0, "k/..");
        assert!(crate::ops_spec::lake_path(&uri).is_ok(), "{uri}");
    }

    #[test]
    fn a_value_is_kept_where_its_size_asks() {
        let lake = MemoryLake::default();
        let small = json!({"rows": 3});
        let kept = store_value("k", small.clone(), || unreachable!(), None, "worker").expect("inline");
        assert_eq!(kept, XComValue::Inline(small));

        let fits = Value::String("x".repeat(MAX_INLINE_BYTES - 2));
        assert_eq!(store_value("k", fits.clone(), || unreachable!(), None, "worker"), Ok(XComValue::Inline(fits)));

        let big = Value::String("y".repeat(MAX_INLINE_BYTES));
        let kept = store_value("k", big.clone(), || "lake://_xcom/d/r/t/-1/k.json".into(), Some(&lake), "worker");
        assert_eq!(kept, Ok(XComValue::Lake("lake://_xcom/d/r/t/-1/k.json".into())));
        assert_eq!(kept.expect("kept").load(Some(&lake)), Ok(big.clone()));

        let err = store_value("k", big, || unreachable!(), None, "worker").expect_err("no lake");
        assert!(err.to_string().contains("set SLUICE_LAKE on the worker"), "{err}");
        let huge = Value::String("z".repeat(MAX_VALUE_BYTES));
        let err = store_value("k", huge, || unreachable!(), Some(&lake), "worker").expect_err("too big");
        assert!(matches!(err, XComError::TooBig { .. }), "{err}");
    }

    #[test]
    fn reading_back_says_what_is_wrong() {
        let lake = MemoryLake::default();
        let missing = load_value(Some(&lake), "lake://_xcom/gone.json").expect_err("missing");
        assert!(missing.to_string().ends_with("nothing is there"), "{missing}");
        lake.put("lake://_xcom/bad.json", b"{".to_vec()).expect("put");
        let bad = load_value(Some(&lake), "lake://_xcom/bad.json").expect_err("not JSON");
        assert!(bad.to_string().contains("it is not JSON"), "{bad}");
        let nowhere = XComValue::Lake("lake://_xcom/x.json".into()).load(None).expect_err("no lake");
        assert!(nowhere.to_string().contains("no lake is configured"), "{nowhere}");
    }
}
