//! Helpers for this crate's unit tests: scratch folders and the demo data.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::NaiveDate;

/// A folder under the system temp dir, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sluice-ops-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Write a file in the folder and return its name, for sources read relative to the folder.
    pub(crate) fn write(&self, name: &str, content: &str) -> String {
        std::fs::write(self.0.join(name), content).unwrap();
        name.to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The folder of the example DAGs, where `data/penguins.csv` lives.
pub(crate) fn dags_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dags")
}

pub(crate) fn ds() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()
}
