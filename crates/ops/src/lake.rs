//! The lake: where assets live on disk, and the only place data tasks write.
//!
//! `lake://raw/penguins` maps to `<root>/raw/penguins/`, and the run for logical date 2026-01-05 writes
//! `<root>/raw/penguins/ds=2026-01-05/part-0.parquet` (Hive-style partitions, so other tools read the folder as one
//! table). A write goes to a temporary file in the partition folder and is renamed into place only once complete and
//! synced, so readers see the old partition or the new one, never half of one, and a failed task leaves nothing
//! behind. Re-running a date replaces its partition (idempotent retries and backfills).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDate;
use polars::prelude::*;
use sha2::{Digest, Sha256};
use sluice_core::ops_spec::lake_path;

use crate::error::{OpsError, Result};

const PART_FILE: &str = "part-0.parquet";

/// A lake rooted at a local folder.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

/// What a write produced: for the asset event and the task's outputs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrittenPartition {
    pub uri: String,
    pub path: PathBuf,
    pub rows: usize,
    /// SHA-256 of the Parquet file, hex: equal data written by the same engine gives the same hash.
    pub content_hash: String,
}

impl Lake {
    pub fn new(root: impl Into<PathBuf>) -> Lake {
        Lake { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of an asset. URIs are checked so that none escapes the root.
    pub fn asset_dir(&self, uri: &str) -> Result<PathBuf> {
        let segments = lake_path(uri).map_err(|reason| OpsError::BadUri { uri: uri.to_owned(), reason })?;
        Ok(segments.iter().fold(self.root.clone(), |dir, s| dir.join(s)))
    }

    /// The folder of one logical date's partition.
    pub fn partition_dir(&self, uri: &str, ds: NaiveDate) -> Result<PathBuf> {
        Ok(self.asset_dir(uri)?.join(format!("ds={}", ds.format("%Y-%m-%d"))))
    }

    /// The Parquet file of one logical date's partition.
    pub fn partition_file(&self, uri: &str, ds: NaiveDate) -> Result<PathBuf> {
        Ok(self.partition_dir(uri, ds)?.join(PART_FILE))
    }

    /// Write `df` as the partition of `ds`, atomically (see the module doc).
    pub fn write(&self, uri: &str, ds: NaiveDate, df: &mut DataFrame) -> Result<WrittenPartition> {
        let path = self.partition_file(uri, ds)?;
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes).finish(df)?;
        write_atomic(&path, &bytes)?;
        let content_hash = hex::encode(Sha256::digest(&bytes));
        Ok(WrittenPartition { uri: uri.to_owned(), path, rows: df.height(), content_hash })
    }

    /// Read the partition of `ds`.
    pub fn read(&self, uri: &str, ds: NaiveDate) -> Result<DataFrame> {
        let path = self.partition_file(uri, ds)?;
        let file = open_in_partition(uri, ds, &path)?;
        ParquetReader::new(file).finish().map_err(|e| OpsError::Read { path, message: e.to_string() })
    }

    /// Read the partition of `ds` with its content hash, computed as [`Lake::write`] does.
    pub fn read_hashed(&self, uri: &str, ds: NaiveDate) -> Result<(DataFrame, String)> {
        let path = self.partition_file(uri, ds)?;
        let mut bytes = Vec::new();
        open_in_partition(uri, ds, &path)?.read_to_end(&mut bytes).map_err(OpsError::io("cannot read", &path))?;
        let hash = hex::encode(Sha256::digest(&bytes));
        let df = ParquetReader::new(std::io::Cursor::new(bytes))
            .finish()
            .map_err(|e| OpsError::Read { path, message: e.to_string() })?;
        Ok((df, hash))
    }

    /// The newest logical date at or before `ds` for which `uri` has a partition; `None` if it has none.
    pub fn latest_partition(&self, uri: &str, ds: NaiveDate) -> Result<Option<NaiveDate>> {
        let dir = self.asset_dir(uri)?;
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(OpsError::io("cannot list", dir)(e)),
        };
        let mut newest = None;
        for entry in entries {
            let entry = entry.map_err(OpsError::io("cannot list", &dir))?;
            let name = entry.file_name();
            let date = name.to_str().and_then(|n| n.strip_prefix("ds=")).and_then(|d| d.parse::<NaiveDate>().ok());
            // A folder without its part file is a partition being written for the first time, not yet readable.
            if let Some(date) = date.filter(|d| *d <= ds && entry.path().join(PART_FILE).is_file()) {
                newest = newest.max(Some(date));
            }
        }
        Ok(newest)
    }
}

/// Open a file of a partition; a missing file means the partition was never written.
pub(crate) fn open_in_partition(uri: &str, ds: NaiveDate, path: &Path) -> Result<fs::File> {
    fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => OpsError::NoPartition { uri: uri.to_owned(), ds, path: path.to_owned() },
        _ => OpsError::io("cannot open", path)(e),
    })
}

/// Write `bytes` to `path` through a synced temporary file and a rename (see the module doc).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().ok_or_else(|| OpsError::Invalid(format!("{} has no folder", path.display())))?;
    fs::create_dir_all(dir).map_err(OpsError::io("cannot create", dir))?;
    // Dot-prefixed so that readers globbing `*.parquet` never pick up a write in progress; unique per process and
    // write so that two task slots writing the same partition never share a temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let written = write_synced(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        // Best effort: the temporary file is invisible to readers either way.
        let _ = fs::remove_file(&tmp);
        return Err(OpsError::io("cannot write", path)(e));
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests;
