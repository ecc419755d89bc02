//! A task's outputs (Airflow's XCom): where they come from, how big they may be, and where the large ones go.
//!
//! A task hands its return value to its downstream tasks in one of two ways:
//! - it writes the file named by `$SLUICE_OUTPUT` (the file wins when it is not empty), or
//! - it prints a stdout line `::output::<json>`; the last such line counts.
//!
//! It pushes a value under another key with a stdout line `::output name=<key>::<json>` (the last of each key counts;
//! the key ends at the first `::`) or a file `$SLUICE_OUTPUT_DIR/<key>.json`, which wins over the lines of its key.
//! Other files in that folder are ignored. The key `return_value` is the return value, with the file
//! `$SLUICE_OUTPUT` first. Keys follow [`sluice_core::xcom::check_key`].
//!
//! Text that is not valid JSON is kept as a JSON string, so `::output::done` works without quoting. A line holds at
//! most [`MAX_OUTPUT_BYTES`] of value, a file up to [`MAX_VALUE_BYTES`]. Values travel in the report and the database
//! keeps those up to [`MAX_OUTPUT_BYTES`]; [`keep`] writes a larger one to the lake before the report, which then
//! says where it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_core::xcom::{LakeObjects, MAX_VALUE_BYTES, RETURN_VALUE, XComError, XComValue, check_key, store_value};
use tokio::io::AsyncReadExt;

/// The largest value the database keeps, and so the largest an output line may carry.
pub const MAX_OUTPUT_BYTES: usize = sluice_core::xcom::MAX_INLINE_BYTES;

/// The prefix of a stdout line that carries the task's return value.
pub const OUTPUT_MARKER: &str = "::output::";
/// The prefix of a stdout line that carries a value under a key, before the key.
const NAMED_MARKER: &str = "::output name=";

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "the output line of `{key}` is {size} bytes or more, above the limit of {MAX_OUTPUT_BYTES} bytes for a line; \
         write a larger value to $SLUICE_OUTPUT or $SLUICE_OUTPUT_DIR/<key>.json instead"
    )]
    LineTooBig { key: String, size: usize },
    #[error("could not read the output file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the output file {path} is not named <key>.json with a valid key: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error(transparent)]
    Value(#[from] XComError),
}

/// The last output lines of each key that a task printed (the return value's under `return_value`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Markers(BTreeMap<String, String>);

impl Markers {
    /// Notes `line` if it is an output line.
    pub fn push(&mut self, line: &str) {
        if let Some(payload) = line.strip_prefix(OUTPUT_MARKER) {
            self.0.insert(RETURN_VALUE.to_owned(), payload.to_owned());
        } else if let Some((key, payload)) = line.strip_prefix(NAMED_MARKER).and_then(|rest| rest.split_once("::")) {
            self.0.insert(key.to_owned(), payload.to_owned());
        }
    }

    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// A try's values: its return value and the others by key.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outputs {
    pub value: Option<Value>,
    pub keyed: BTreeMap<String, Value>,
}

/// The folder, private to one worker process, where its tasks' `$SLUICE_OUTPUT` files go. Only the worker's user
/// may enter it, so a task's output path cannot be a link someone else planted, and the file need not be created
/// (and deleted) for the many tasks that never write it.
pub fn output_dir(instance: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sluice-worker-{instance}"))
}

/// Creates [`output_dir`], readable and writable by its owner only.
pub fn create_output_dir(instance: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = output_dir(instance);
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// Parses output text as JSON, or keeps it as a JSON string when it is not valid JSON.
fn parse_output(text: &str) -> Value {
    let text = text.trim();
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// A try's values: the files `$SLUICE_OUTPUT` (`file`) and `$SLUICE_OUTPUT_DIR` (`dir`) hold, else the last output
/// lines of each key.
pub async fn read_outputs(file: &Path, dir: &Path, markers: Markers) -> Result<Outputs, OutputError> {
    let mut texts = markers.0;
    for (key, text) in &texts {
        // Longer lines were cut (see `logs::MAX_LINE_BYTES`): their value is not whole.
        if text.len() > MAX_OUTPUT_BYTES {
            return Err(OutputError::LineTooBig { key: key.clone(), size: text.len() });
        }
    }
    texts.extend(read_dir(dir).await?);
    if let Some(text) = read_capped(file, RETURN_VALUE).await? {
        texts.insert(RETURN_VALUE.to_owned(), text);
    }
    let mut keyed: BTreeMap<String, Value> = BTreeMap::new();
    for (key, text) in texts {
        check_key(&key)?;
        keyed.insert(key, parse_output(&text));
    }
    Ok(Outputs { value: keyed.remove(RETURN_VALUE), keyed })
}

/// The values of the `<key>.json` files in `dir` (a missing folder has none).
async fn read_dir(dir: &Path) -> Result<BTreeMap<String, String>, OutputError> {
    let read_err = |source| OutputError::Read { path: dir.to_owned(), source };
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(read_err(e)),
    };
    let mut texts = BTreeMap::new();
    while let Some(entry) = entries.next_entry().await.map_err(read_err)? {
        let path = entry.path();
        let name = entry.file_name();
        let Some(key) = name.to_str().and_then(|name| name.strip_suffix(".json")) else { continue };
        if !entry.file_type().await.map_err(read_err)?.is_file() {
            continue;
        }
        if let Err(e) = check_key(key) {
            return Err(OutputError::BadFile { path, reason: e.to_string() });
        }
        if let Some(text) = read_capped(&path, key).await? {
            texts.insert(key.to_owned(), text);
        }
    }
    Ok(texts)
}

/// The text of the file of `key`'s value, `None` when it is missing or empty. Reads at most one byte past the limit,
/// so that a task that wrote gigabytes cannot make the worker load them.
async fn read_capped(path: &Path, key: &str) -> Result<Option<String>, OutputError> {
    let read_err = |source| OutputError::Read { path: path.to_owned(), source };
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let size = file.metadata().await.map_err(read_err)?.len();
    let too_big =
        |size: u64| XComError::TooBig { key: key.to_owned(), size: usize::try_from(size).unwrap_or(usize::MAX) };
    if size > MAX_VALUE_BYTES as u64 {
        return Err(too_big(size).into());
    }
    let mut bytes = Vec::new();
    let limit = MAX_VALUE_BYTES as u64 + 1;
    file.take(limit).read_to_end(&mut bytes).await.map_err(read_err)?;
    if bytes.len() as u64 > MAX_VALUE_BYTES as u64 {
        return Err(too_big(bytes.len() as u64).into());
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The values as the report carries them: the return value itself when the database can keep it (`output`), and
/// the others by key, each written to `lake` at the URI `uri_of(key)` gives when it is too big for the database
/// (the return value among them then). Blocks while it writes to the lake.
pub fn keep(
    outputs: Outputs,
    lake: Option<&dyn LakeObjects>,
    uri_of: impl Fn(&str) -> String,
) -> Result<(Option<Value>, BTreeMap<String, XComValue>), XComError> {
    let mut kept = BTreeMap::new();
    for (key, value) in outputs.keyed {
        let value = store_value(&key, value, || uri_of(&key), lake, "worker")?;
        kept.insert(key, value);
    }
    let output = match outputs.value.map(|v| store_value(RETURN_VALUE, v, || uri_of(RETURN_VALUE), lake, "worker")) {
        Some(Ok(XComValue::Inline(value))) => Some(value),
        Some(Ok(in_lake)) => {
            kept.insert(RETURN_VALUE.to_owned(), in_lake);
            None
        }
        Some(Err(e)) => return Err(e),
        None => None,
    };
    Ok((output, kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A fresh path in the temp dir, removed when dropped.
    struct TempPath(PathBuf);
    impl TempPath {
        fn new(contents: Option<&[u8]>) -> Self {
            let path = std::env::temp_dir().join(format!("sluice-output-test-{}", uuid::Uuid::now_v7()));
            if let Some(contents) = contents {
                std::fs::write(&path, contents).expect("write temp file");
            }
            TempPath(path)
        }

        fn dir(files: &[(&str, &str)]) -> Self {
            let path = TempPath::new(None);
            std::fs::create_dir(&path.0).expect("create temp dir");
            for (name, text) in files {
                std::fs::write(path.0.join(name), text).expect("write temp file");
            }
            path
        }
    }
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn markers(lines: &[&str]) -> Markers {
        let mut markers = Markers::default();
        for line in lines {
            markers.push(line);
        }
        markers
    }

    fn none() -> TempPath {
        TempPath::new(None)
    }

    #[tokio::test]
    async fn the_file_wins_over_the_marker_line() {
        let file = TempPath::new(Some(br#"{"rows": 3}"#));
        let out = read_outputs(&file.0, &none().0, markers(&[r#"::output::{"rows": 1}"#])).await.expect("output");
        assert_eq!(out.value, Some(json!({"rows": 3})));
    }

    #[tokio::test]
    async fn an_empty_or_missing_file_falls_back_to_the_marker_line() {
        let empty = TempPath::new(Some(b"\n"));
        let out = read_outputs(&empty.0, &none().0, markers(&["::output::[1, 2]"])).await.expect("output");
        assert_eq!(out.value, Some(json!([1, 2])));
        let missing = TempPath::new(None);
        let out = read_outputs(&missing.0, &none().0, markers(&["::output::42"])).await.expect("output");
        assert_eq!(out.value, Some(json!(42)));
        assert_eq!(read_outputs(&missing.0, &none().0, Markers::default()).await.expect("output"), Outputs::default());
    }

    #[test]
    fn output_lines_are_recognised_only_at_the_start_of_a_line() {
        let seen = markers(&[
            r#"::output::{"a":1}"#,
            r#"log ::output::{"a":2}"#,
            "plain line",
            "::output name=rows::3",
            "::output name=rows::4",
            "::output name=path::s3://b/k::v",
            "::output name=no-payload",
            "::outputs::5",
        ]);
        assert_eq!(seen.get(RETURN_VALUE), Some(r#"{"a":1}"#));
        assert_eq!(seen.get("rows"), Some("4"), "the last line of a key counts");
        assert_eq!(seen.get("path"), Some("s3://b/k::v"), "the key ends at the first ::");
        assert_eq!(seen.0.len(), 3, "{seen:?}");
        let named = markers(&["::output::1", "::output name=return_value::2"]);
        assert_eq!(named.get(RETURN_VALUE), Some("2"), "return_value is the return value");
    }

    #[tokio::test]
    async fn keyed_values_come_from_lines_and_files_the_files_first() {
        let dir = TempPath::dir(&[("rows.json", "7"), ("model path.json", "\"/m\""), ("notes.txt", "ignored")]);
        std::fs::create_dir(dir.0.join("sub.json")).expect("a folder is no value");
        let lines = markers(&["::output name=rows::1", "::output name=status::done", "::output::{\"ok\": true}"]);
        let out = read_outputs(&none().0, &dir.0, lines).await.expect("outputs");
        assert_eq!(out.value, Some(json!({"ok": true})));
        assert_eq!(
            out.keyed,
            BTreeMap::from([
                ("model path".to_owned(), json!("/m")),
                ("rows".to_owned(), json!(7)),
                ("status".to_owned(), json!("done")),
            ])
        );
        let returned = TempPath::dir(&[("return_value.json", "[1]")]);
        let out = read_outputs(&none().0, &returned.0, markers(&["::output::2"])).await.expect("outputs");
        assert_eq!((out.value, out.keyed.len()), (Some(json!([1])), 0));
    }

    #[tokio::test]
    async fn bad_keys_fail() {
        let err = read_outputs(&none().0, &none().0, markers(&["::output name=::1"])).await.expect_err("empty key");
        assert!(err.to_string().contains("it is empty"), "{err}");
        let dir = TempPath::dir(&[("a\tb.json", "1")]);
        let err = read_outputs(&none().0, &dir.0, Markers::default()).await.expect_err("a tab in the key");
        assert!(matches!(err, OutputError::BadFile { .. }), "{err}");
    }

    #[test]
    fn invalid_json_is_kept_as_a_string() {
        assert_eq!(parse_output("done"), json!("done"));
        assert_eq!(parse_output(" {\"a\": 1 \r"), json!("{\"a\": 1"));
        assert_eq!(parse_output("\"quoted\""), json!("quoted"));
    }

    #[tokio::test]
    async fn too_big_a_line_or_file_fails() {
        let big = "x".repeat(MAX_OUTPUT_BYTES + 1);
        let err = read_outputs(&none().0, &none().0, markers(&[&format!("::output name=k::{big}")])).await;
        assert!(matches!(err, Err(OutputError::LineTooBig { .. })), "{err:?}");
        let just_fits = "y".repeat(MAX_OUTPUT_BYTES);
        let out = read_outputs(&none().0, &none().0, markers(&[&format!("::output::{just_fits}")])).await;
        assert_eq!(out.expect("fits").value, Some(json!(just_fits)));
        let file = TempPath::new(Some(big.as_bytes()));
        let out = read_outputs(&file.0, &none().0, Markers::default()).await.expect("a file may hold more");
        assert_eq!(out.value, Some(json!(big)));
        let huge = TempPath::new(Some(&vec![b'z'; MAX_VALUE_BYTES + 1]));
        let err = read_outputs(&huge.0, &none().0, Markers::default()).await.expect_err("too big");
        assert!(err.to_string().contains("more than the limit"), "{err}");
    }

    /// A lake that notes where it was written to.
    #[derive(Debug, Default)]
    struct Written(std::sync::Mutex<Vec<String>>);

    impl LakeObjects for Written {
        fn put(&self, uri: &str, _: Vec<u8>) -> Result<(), String> {
            self.0.lock().map_err(|e| e.to_string())?.push(uri.to_owned());
            Ok(())
        }
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>, String> {
            Err("not read here".into())
        }
    }

    #[test]
    fn large_values_go_to_the_lake_and_the_report_says_where() {
        let big = json!("b".repeat(MAX_OUTPUT_BYTES + 10));
        let outputs = Outputs {
            value: Some(big.clone()),
            keyed: BTreeMap::from([("small".to_owned(), json!(1)), ("large".to_owned(), big.clone())]),
        };
        let lake = Written::default();
        let uri_of = |key: &str| format!("lake://_xcom/d/r/t/-1/{key}.json");
        let (output, kept) = keep(outputs.clone(), Some(&lake), uri_of).expect("kept");
        assert_eq!(output, None);
        assert_eq!(kept["small"], XComValue::Inline(json!(1)));
        assert_eq!(kept["large"], XComValue::Lake(uri_of("large")));
        assert_eq!(kept[RETURN_VALUE], XComValue::Lake(uri_of(RETURN_VALUE)));
        assert_eq!(*lake.0.lock().expect("written"), [uri_of("large"), uri_of(RETURN_VALUE)]);

        let err = keep(outputs, None, uri_of).expect_err("no lake");
        assert!(err.to_string().contains("set SLUICE_LAKE on the worker"), "{err}");
        let small = Outputs { value: Some(json!({"a": 1})), keyed: BTreeMap::new() };
        assert_eq!(keep(small, None, uri_of), Ok((Some(json!({"a": 1})), BTreeMap::new())));
    }
}
