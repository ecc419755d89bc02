//! A task's small JSON output (XCom-like): where it comes from and how big it may be.
//!
//! A task hands a value to its downstream tasks in one of two ways:
//! - it writes the file named by `$SLUICE_OUTPUT` (the file wins when it is not empty), or
//! - it prints a stdout line `::output::<json>`; the last such line counts.
//!
//! Text that is not valid JSON is kept as a JSON string, so `::output::done` works without quoting. Outputs travel in
//! the report and are stored in the database, so they are capped at [`MAX_OUTPUT_BYTES`]: larger data belongs in a
//! file or an asset, and the try fails with an error that says so.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::io::AsyncReadExt;

/// The largest output a task may produce.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// The prefix of a stdout line that carries the task's output.
pub const OUTPUT_MARKER: &str = "::output::";

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "the task's output is {size} bytes, more than the limit of {MAX_OUTPUT_BYTES} bytes; \
         write large data to a file or an asset and output its path instead"
    )]
    TooBig { size: u64 },
    #[error("could not read the output file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// The JSON text after the marker, if `line` is an output line.
pub fn marker_payload(line: &str) -> Option<&str> {
    line.strip_prefix(OUTPUT_MARKER)
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
pub fn parse_output(text: &str) -> Result<Value, OutputError> {
    let text = text.trim();
    if text.len() > MAX_OUTPUT_BYTES {
        return Err(OutputError::TooBig { size: text.len() as u64 });
    }
    Ok(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())))
}

/// The task's output: the `$SLUICE_OUTPUT` file if the task wrote it, else the last `::output::` payload.
pub async fn read_output(file: &Path, last_marker: Option<&str>) -> Result<Option<Value>, OutputError> {
    if let Some(text) = read_capped(file).await? {
        return parse_output(&text).map(Some);
    }
    last_marker.map(parse_output).transpose()
}

/// The file's text, `None` when it is missing or empty. Reads at most one byte past the cap, so that a task that
/// wrote gigabytes cannot make the worker load them.
async fn read_capped(path: &Path) -> Result<Option<String>, OutputError> {
    let read_err = |source| OutputError::Read { path: path.to_owned(), source };
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let size = file.metadata().await.map_err(read_err)?.len();
    if size > MAX_OUTPUT_BYTES as u64 {
        return Err(OutputError::TooBig { size });
    }
    let mut bytes = Vec::new();
    let limit = MAX_OUTPUT_BYTES as u64 + 1;
    file.take(limit).read_to_end(&mut bytes).await.map_err(read_err)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
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
    }
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[tokio::test]
    async fn the_file_wins_over_the_marker_line() {
        let file = TempPath::new(Some(br#"{"rows": 3}"#));
        let out = read_output(&file.0, Some(r#"{"rows": 1}"#)).await.expect("output");
        assert_eq!(out, Some(json!({"rows": 3})));
    }

    #[tokio::test]
    async fn an_empty_or_missing_file_falls_back_to_the_marker_line() {
        let empty = TempPath::new(Some(b"\n"));
        let out = read_output(&empty.0, Some("[1, 2]")).await.expect("output");
        assert_eq!(out, Some(json!([1, 2])));
        let missing = TempPath::new(None);
        let out = read_output(&missing.0, Some("42")).await.expect("output");
        assert_eq!(out, Some(json!(42)));
        assert_eq!(read_output(&missing.0, None).await.expect("output"), None);
    }

    #[test]
    fn the_marker_is_recognised_only_at_the_start_of_a_line() {
        assert_eq!(marker_payload(r#"::output::{"a":1}"#), Some(r#"{"a":1}"#));
        assert_eq!(marker_payload(r#"log ::output::{"a":1}"#), None);
        assert_eq!(marker_payload("plain line"), None);
    }

    #[test]
    fn invalid_json_is_kept_as_a_string() {
        assert_eq!(parse_output("done").expect("output"), json!("done"));
        assert_eq!(parse_output(" {\"a\": 1 \r").expect("output"), json!("{\"a\": 1"));
        assert_eq!(parse_output("\"quoted\"").expect("output"), json!("quoted"));
    }

    #[tokio::test]
    async fn too_big_an_output_fails() {
        let big = "x".repeat(MAX_OUTPUT_BYTES + 1);
        assert!(matches!(parse_output(&big), Err(OutputError::TooBig { .. })));
        let file = TempPath::new(Some(big.as_bytes()));
        let err = read_output(&file.0, None).await.expect_err("too big");
        assert!(err.to_string().contains("more than the limit"), "{err}");
        let just_fits = "y".repeat(MAX_OUTPUT_BYTES);
        assert_eq!(parse_output(&just_fits).expect("output"), json!(just_fits));
    }
}
