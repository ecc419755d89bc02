//! A full filesystem: a data task writing to a lake on a small filesystem of the test's own (a tmpfs) fails with a
//! clear error, and neither a partial file nor a temporary one is left in the lake.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sluice_tests::{Backend, Sluice};

const INGEST: &str = r#"
dag_id: fills_the_lake
schedule: null
is_paused_upon_creation: false
tasks:
  - id: load
    kind: ingest
    source: {type: csv, path: data/big.csv}
    outputs: [lake://raw/big]
"#;

/// A tmpfs of `size` mounted at a folder, unmounted when dropped.
struct SmallFilesystem(PathBuf);

impl SmallFilesystem {
    fn mount(at: &Path, size: &str) -> SmallFilesystem {
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).status();
        assert!(status.unwrap().success(), "mount a tmpfs at {}", at.display());
        SmallFilesystem(at.to_owned())
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn a_full_lake_fails_its_task_clearly_and_keeps_no_partial_file() {
    // /proc/self belongs to this process's user.
    if !std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0) {
        eprintln!("skipped: mounting a small filesystem needs root (CI runs as root)");
        return;
    }
    let lake = tempfile::tempdir().unwrap();
    let _mounted = SmallFilesystem::mount(lake.path(), "64k");
    let mut sluice = Sluice::new(Backend::Sqlite, &[("fills_the_lake.yaml", INGEST)]).await;
    // Distinct values compress badly: the Parquet file is far above 64 KiB.
    let rows: Vec<String> = (0..20_000).map(|i| format!("{i},{}", uuid::Uuid::now_v7())).collect();
    sluice.add_data("big.csv", &format!("id,token\n{}\n", rows.join("\n")));
    sluice.env.push(("SLUICE_LAKE".into(), lake.path().display().to_string()));
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "1"]);
    sluice.wait_dag("fills_the_lake").await;

    let run_id = sluice.trigger("fills_the_lake", json!({})).await;
    let run = sluice.wait_run_done("fills_the_lake", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed", "{run}");
    let tries = sluice.tries("fills_the_lake", &run_id, "load").await;
    let error = tries[0]["error"].as_str().unwrap_or_default().to_owned();
    let log = sluice.log("fills_the_lake", &run_id, "load", 1).await;
    assert!(log.contains("No space left on device"), "the reason, in the log: {log}\nerror: {error}");
    assert_eq!(files_under(lake.path()), Vec::<PathBuf>::new(), "no partial or temporary file");
    let (_, events) = sluice.get("/assets/events?source_dag_id=fills_the_lake").await;
    assert_eq!(events["total_entries"], 0, "no asset event for data that was not written: {events}");
}
