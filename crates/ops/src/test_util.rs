//! Helpers for this crate's unit tests: scratch folders and the demo data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{NaiveDate, Utc};
use sluice_core::connection::Connection;

use crate::{Lake, OpContext};

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

static NO_CONNECTIONS: BTreeMap<String, Connection> = BTreeMap::new();

fn ignore(_: &str) {}

/// The context of a data task on [`ds`] without connections, its log dropped.
pub(crate) fn context<'a>(lake: &'a Lake, base_dir: &'a Path) -> OpContext<'a> {
    OpContext {
        lake,
        base_dir,
        ds: ds(),
        now: Utc::now(),
        previous_watermark: None,
        connections: &NO_CONNECTIONS,
        log: &ignore,
        model_version: None,
        registry: None,
        feedback: None,
        run: None,
        sensor: None,
    }
}
