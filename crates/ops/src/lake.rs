//! The lake: where assets live, and the only place data tasks write.
//!
//! `lake://raw/penguins` maps to `<root>/raw/penguins/`, and the run for logical date 2026-01-05 writes
//! `<root>/raw/penguins/ds=2026-01-05/part-0.parquet` (Hive-style partitions, so other tools read the folder as one
//! table). The root is a local folder or a prefix in an S3 bucket (`s3://bucket/prefix`). In a folder, a write goes
//! to a temporary file in the partition folder and is renamed into place only once complete and synced; in a
//! bucket, each object is put whole, which S3 makes atomic. Either way readers see the old partition or the new one,
//! never half of one, and a failed task leaves nothing behind. Re-running a date replaces its partition (idempotent
//! retries and backfills).
//!
//! A log written a batch at a time (the prediction log of a model) adds files to a partition instead
//! ([`Lake::append`]: `part-<ms>-<pid>-<n>.parquet`, each written the same way); reading such a partition reads
//! all of its files.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDate;
use futures::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use polars::prelude::*;
use sha2::{Digest, Sha256};
use sluice_core::ops_spec::lake_path;
use sluice_core::xcom::LakeObjects;

use crate::error::{OpsError, Result};
use crate::object::{self, S3_SCHEME, s3_store};
use crate::runtime::block_on;

const PART_FILE: &str = "part-0.parquet";

/// A lake rooted at a local folder or at a prefix of an S3 bucket.
#[derive(Debug, Clone)]
pub struct Lake {
    /// The folder, or the bucket's URL (`s3://bucket/prefix`): every location below is a path under it.
    root: PathBuf,
    /// The bucket, for a lake in one; credentials and endpoint come from the `AWS_*` environment variables.
    bucket: Option<Arc<AmazonS3>>,
}

/// What a write produced: for the asset event and the task's outputs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrittenPartition {
    pub uri: String,
    /// The file or, in a bucket, the object's URL.
    pub path: PathBuf,
    pub rows: usize,
    /// SHA-256 of the Parquet file, hex: equal data written by the same engine gives the same hash.
    pub content_hash: String,
}

impl Lake {
    /// A lake in a local folder.
    pub fn new(root: impl Into<PathBuf>) -> Lake {
        Lake { root: root.into(), bucket: None }
    }

    /// A lake at `location`: `s3://bucket/prefix`, or a local folder.
    pub fn open(location: &str) -> Result<Lake> {
        let Some(rest) = location.strip_prefix(S3_SCHEME) else { return Ok(Lake::new(location)) };
        let bucket = rest.split('/').next().unwrap_or_default();
        let store = s3_store(bucket, None)
            .map_err(|message| OpsError::Invalid(format!("cannot open the lake at {location}: {message}")))?;
        Ok(Lake { root: PathBuf::from(location.trim_end_matches('/')), bucket: Some(Arc::new(store)) })
    }

    /// Whether the lake is a local folder (not a bucket).
    pub(crate) fn is_local(&self) -> bool {
        self.bucket.is_none()
    }

    /// The folder or bucket URL.
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
        let content_hash = if self.bucket.is_some() {
            let mut bytes = Vec::new();
            encode_parquet(&mut bytes, df)?;
            let hash = hex::encode(Sha256::digest(&bytes));
            self.put(&path, bytes)?;
            hash
        } else {
            // Streamed into the file, hashed on the way, rather than built in memory first: no second copy of a
            // partition that may be as large as the frame.
            write_atomic(&path, |file| {
                let mut out = Hashed { inner: BufWriter::with_capacity(1 << 20, file), hasher: Sha256::new() };
                encode_parquet(&mut out, df)?;
                out.inner.flush().map_err(OpsError::io("cannot write", &path))?;
                Ok(hex::encode(out.hasher.finalize()))
            })?
        };
        Ok(WrittenPartition { uri: uri.to_owned(), path, rows: df.height(), content_hash })
    }

    /// Adds `df` to the partition of `ds` as a file of its own, atomically: the partition grows by one batch.
    pub fn append(&self, uri: &str, ds: NaiveDate, df: &mut DataFrame) -> Result<WrittenPartition> {
        static APPENDS: AtomicU64 = AtomicU64::new(0);
        let n = APPENDS.fetch_add(1, Ordering::Relaxed);
        let ms = chrono::Utc::now().timestamp_millis();
        let name = format!("part-{ms:013}-{}-{n}.parquet", std::process::id());
        let path = self.partition_dir(uri, ds)?.join(name);
        let mut bytes = Vec::new();
        encode_parquet(&mut bytes, df)?;
        let content_hash = hex::encode(Sha256::digest(&bytes));
        self.put(&path, bytes)?;
        Ok(WrittenPartition { uri: uri.to_owned(), path, rows: df.height(), content_hash })
    }

    /// Read the partition of `ds`: its one file or, for a partition written by [`Lake::append`], all of them in
    /// the order they were written.
    pub fn read(&self, uri: &str, ds: NaiveDate) -> Result<DataFrame> {
        let path = self.partition_file(uri, ds)?;
        let read = match &self.bucket {
            // In place: polars maps the file rather than holding a second copy of it.
            None => match open_in_partition(uri, ds, &path) {
                Ok(file) => ParquetReader::new(file).finish(),
                Err(OpsError::NoPartition { .. }) => return self.read_appended(uri, ds),
                Err(e) => return Err(e),
            },
            Some(_) => match self.get(uri, ds, &path) {
                Ok(bytes) => ParquetReader::new(std::io::Cursor::new(bytes)).finish(),
                Err(OpsError::NoPartition { .. }) => return self.read_appended(uri, ds),
                Err(e) => return Err(e),
            },
        };
        read.map_err(|e| OpsError::Read { path, message: e.to_string() })
    }

    fn read_appended(&self, uri: &str, ds: NaiveDate) -> Result<DataFrame> {
        let mut parts = self.read_parts(uri, ds)?.into_iter();
        let Some(mut all) = parts.next() else {
            return Err(no_partition(uri, ds, &self.partition_file(uri, ds)?));
        };
        for part in parts {
            all.vstack_mut(&part).map_err(|e| OpsError::Read {
                path: self.partition_dir(uri, ds).unwrap_or_default(),
                message: format!("the files of the partition do not have the same columns: {e}"),
            })?;
        }
        Ok(all)
    }

    /// Every file of the partition of `ds`, each as written, in the order they were written; none if there is no
    /// such partition.
    pub fn read_parts(&self, uri: &str, ds: NaiveDate) -> Result<Vec<DataFrame>> {
        let dir = self.partition_dir(uri, ds)?;
        let is_part = |name: &str| name.starts_with("part-") && name.ends_with(".parquet");
        let mut names: Vec<String> = match &self.bucket {
            Some(bucket) => {
                let prefix = self.key(&dir)?;
                let listed = block_on(bucket.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect::<Vec<_>>())?;
                let keys = listed.map_err(|e| OpsError::Read { path: dir.clone(), message: e.to_string() })?;
                keys.iter().filter_map(|k| k.filename().map(str::to_owned)).filter(|n| is_part(n)).collect()
            }
            None => match fs::read_dir(&dir) {
                Ok(entries) => {
                    entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| is_part(n)).collect()
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(OpsError::io("cannot list", dir)(e)),
            },
        };
        names.sort();
        names
            .iter()
            .map(|name| {
                let path = dir.join(name);
                let bytes = self.get(uri, ds, &path)?;
                ParquetReader::new(std::io::Cursor::new(bytes))
                    .finish()
                    .map_err(|e| OpsError::Read { path, message: e.to_string() })
            })
            .collect()
    }

    /// Read the partition of `ds` with its content hash, computed as [`Lake::write`] does.
    pub fn read_hashed(&self, uri: &str, ds: NaiveDate) -> Result<(DataFrame, String)> {
        let path = self.partition_file(uri, ds)?;
        let bytes = self.get(uri, ds, &path)?;
        let hash = hex::encode(Sha256::digest(&bytes));
        let df = ParquetReader::new(std::io::Cursor::new(bytes))
            .finish()
            .map_err(|e| OpsError::Read { path, message: e.to_string() })?;
        Ok((df, hash))
    }

    /// The newest logical date at or before `ds` for which `uri` has a partition; `None` if it has none.
    pub fn latest_partition(&self, uri: &str, ds: NaiveDate) -> Result<Option<NaiveDate>> {
        let partitions = self.partitions(uri)?;
        Ok(partitions.into_iter().filter(|d| *d <= ds).max())
    }

    /// The logical dates of the partitions of `uri` that can be read: a folder without its part file is a
    /// partition being written for the first time.
    fn partitions(&self, uri: &str) -> Result<Vec<NaiveDate>> {
        let dir = self.asset_dir(uri)?;
        let date = |name: &str| name.strip_prefix("ds=").and_then(|d| d.parse::<NaiveDate>().ok());
        if let Some(bucket) = &self.bucket {
            let prefix = self.key(&dir)?;
            let listed = block_on(bucket.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect::<Vec<_>>())?;
            let keys = listed.map_err(|e| OpsError::Read { path: dir.clone(), message: e.to_string() })?;
            let prefix_parts = prefix.parts().count();
            return Ok(keys
                .iter()
                .filter_map(|key| match key.parts().skip(prefix_parts).collect::<Vec<_>>().as_slice() {
                    [partition, file] if is_part_file(file.as_ref()) => date(partition.as_ref()),
                    _ => None,
                })
                .collect());
        }
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(OpsError::io("cannot list", dir)(e)),
        };
        let mut dates = Vec::new();
        for entry in entries {
            let entry = entry.map_err(OpsError::io("cannot list", &dir))?;
            if let Some(d) = entry.file_name().to_str().and_then(date)
                && has_part_file(&entry.path())
            {
                dates.push(d);
            }
        }
        Ok(dates)
    }

    /// Store `bytes` at `path`, a location under the root, atomically.
    pub(crate) fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        let Some(bucket) = &self.bucket else {
            return write_atomic(path, |file| file.write_all(&bytes).map_err(OpsError::io("cannot write", path)));
        };
        let key = self.key(path)?;
        block_on(bucket.put(&key, bytes.into()))?
            .map(drop)
            .map_err(|e| OpsError::Invalid(format!("cannot write {}: {e}", path.display())))
    }

    /// The content of `path`, a file of the partition `ds` of `uri`; a missing file means the partition was never
    /// written.
    pub(crate) fn get(&self, uri: &str, ds: NaiveDate, path: &Path) -> Result<Vec<u8>> {
        let Some(bucket) = &self.bucket else {
            return fs::read(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => no_partition(uri, ds, path),
                _ => OpsError::io("cannot read", path)(e),
            });
        };
        match object::get(bucket, &self.key(path)?)? {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(no_partition(uri, ds, path)),
            Err(e) => Err(OpsError::Read { path: path.to_owned(), message: e.to_string() }),
        }
    }

    /// The content of `path`, a location under the root; `None` if nothing is there.
    pub(crate) fn get_object(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        let Some(bucket) = &self.bucket else {
            return match fs::read(path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(OpsError::io("cannot read", path)(e)),
            };
        };
        object::get(bucket, &self.key(path)?)?
            .map_err(|e| OpsError::Read { path: path.to_owned(), message: e.to_string() })
    }

    /// The object key of a location under a bucket's root.
    fn key(&self, path: &Path) -> Result<ObjectPath> {
        let text = path.to_str().unwrap_or_default();
        let key = text.strip_prefix(S3_SCHEME).and_then(|rest| rest.split_once('/')).map(|(_, key)| key);
        key.and_then(|k| ObjectPath::parse(k).ok())
            .ok_or_else(|| OpsError::Invalid(format!("{text} is not an object of the lake at {}", self.root.display())))
    }
}

/// Objects by `lake://` URI, for the outputs too big for the database (`lake://_xcom/…`, see `sluice_core::xcom`):
/// written and read whole, as the partitions' files are.
impl LakeObjects for Lake {
    fn put(&self, uri: &str, bytes: Vec<u8>) -> std::result::Result<(), String> {
        let path = self.asset_dir(uri).map_err(|e| e.to_string())?;
        Lake::put(self, &path, bytes).map_err(|e| e.to_string())
    }

    fn get(&self, uri: &str) -> std::result::Result<Option<Vec<u8>>, String> {
        let path = self.asset_dir(uri).map_err(|e| e.to_string())?;
        self.get_object(&path).map_err(|e| e.to_string())
    }
}

/// A file of a partition: the one a task writes, or one of those [`Lake::append`] adds (a write in progress is
/// hidden behind a leading dot).
fn is_part_file(name: &str) -> bool {
    name == PART_FILE || (name.starts_with("part-") && name.ends_with(".parquet"))
}

fn has_part_file(dir: &Path) -> bool {
    dir.join(PART_FILE).is_file()
        || fs::read_dir(dir).is_ok_and(|entries| {
            entries.filter_map(|e| e.ok()).any(|e| e.file_name().to_str().is_some_and(is_part_file))
        })
}

fn no_partition(uri: &str, ds: NaiveDate, path: &Path) -> OpsError {
    OpsError::NoPartition { uri: uri.to_owned(), ds, path: path.to_owned() }
}

/// Open a file of a local partition; a missing file means the partition was never written.
fn open_in_partition(uri: &str, ds: NaiveDate, path: &Path) -> Result<fs::File> {
    fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => no_partition(uri, ds, path),
        _ => OpsError::io("cannot open", path)(e),
    })
}

/// Write `bytes` to `path` through a synced temporary file and a rename (see the module doc).
fn write_atomic<T>(path: &Path, write: impl FnOnce(&mut fs::File) -> Result<T>) -> Result<T> {
    let dir = path.parent().ok_or_else(|| OpsError::Invalid(format!("{} has no folder", path.display())))?;
    fs::create_dir_all(dir).map_err(OpsError::io("cannot create", dir))?;
    // Dot-prefixed so that readers globbing `*.parquet` never pick up a write in progress; unique per process and
    // write so that two task slots writing the same partition never share a temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let failed = OpsError::io("cannot write", path);
    let written = fs::File::create(&tmp).map_err(OpsError::io("cannot write", path)).and_then(|mut file| {
        let value = write(&mut file)?;
        file.sync_all().and_then(|()| fs::rename(&tmp, path)).map_err(failed)?;
        Ok(value)
    });
    if written.is_err() {
        // Best effort: the temporary file is invisible to readers either way.
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Snappy rather than polars' default zstd: several times less CPU to write for somewhat larger files, the
/// trade-off of a lake written on every run and read by the next task; every Parquet reader knows it.
pub(crate) const PARQUET_COMPRESSION: ParquetCompression = ParquetCompression::Snappy;

fn encode_parquet(out: impl Write, df: &mut DataFrame) -> Result<()> {
    ParquetWriter::new(out).with_compression(PARQUET_COMPRESSION).finish(df)?;
    Ok(())
}

/// A writer that hashes what passes through it.
struct Hashed<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
