//! DAG folder sync: every `.yaml`/`.yml` file under the folder (subfolders too) is one DAG.
//!
//! A file that parses becomes (or refreshes) its DAG; a changed file becomes a new DAG version (runs keep the
//! version they started with). A file that does not parse becomes an import error and its DAG keeps its last
//! good version, schedule included. A DAG whose file is gone is marked inactive; its history stays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sluice_core::{Dag, load_dag};
use sluice_store::{DagUpsert, Store};

use crate::EngineError;

/// What the last sync made of one file, kept to skip unchanged files.
#[derive(Debug, Clone)]
struct Parsed {
    hash: String,
    result: Result<String, String>,
}

/// The DAG folder and what this process last read from it.
pub struct DagFolder {
    root: PathBuf,
    files: HashMap<PathBuf, Parsed>,
}

/// What one sync found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub dags: Vec<String>,
    pub import_errors: Vec<String>,
    pub deactivated: Vec<String>,
}

impl DagFolder {
    pub fn new(root: PathBuf) -> DagFolder {
        DagFolder { root, files: HashMap::new() }
    }

    /// Reads the folder and brings the database in line with it.
    pub async fn sync(&mut self, store: &Store) -> Result<SyncReport, EngineError> {
        let mut paths = Vec::new();
        collect_dag_files(&self.root, &mut paths);
        paths.sort();
        let mut report = SyncReport::default();
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut current = HashMap::new();
        for path in paths {
            let fileloc = path.display().to_string();
            let parsed = match self.read_file(store, &path, &fileloc).await {
                Ok(parsed) => parsed,
                Err(e) => {
                    tracing::error!(file = %fileloc, error = %e, "cannot record DAG file");
                    continue;
                }
            };
            let outcome = match &parsed.result {
                Ok(dag_id) => match seen.get(dag_id) {
                    Some(first) => Err(format!("{fileloc}: DAG id {dag_id:?} is already defined in {first}")),
                    None => {
                        seen.insert(dag_id.clone(), fileloc.clone());
                        Ok(dag_id.clone())
                    }
                },
                Err(message) => Err(message.clone()),
            };
            match outcome {
                Ok(dag_id) => report.dags.push(dag_id),
                Err(message) => {
                    store.record_import_error(&fileloc, &message).await?;
                    report.import_errors.push(fileloc);
                }
            }
            current.insert(path, parsed);
        }
        self.files = current;
        store.clear_import_errors_except(&report.import_errors).await?;
        report.deactivated = store.deactivate_missing_dags(&report.dags, &report.import_errors).await?;
        for dag_id in &report.deactivated {
            tracing::info!(dag_id, "DAG file removed: DAG marked inactive");
        }
        Ok(report)
    }

    /// Parses one file unless it is unchanged since the last sync, recording a good DAG in the store.
    async fn read_file(&self, store: &Store, path: &Path, fileloc: &str) -> Result<Parsed, EngineError> {
        let source = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => return Ok(Parsed { hash: String::new(), result: Err(format!("{fileloc}: cannot read: {e}")) }),
        };
        let hash = hex::encode(Sha256::digest(source.as_bytes()));
        if let Some(previous) = self.files.get(path)
            && previous.hash == hash
        {
            return Ok(previous.clone());
        }
        let result = match load_dag(fileloc, &source) {
            Ok(dag) => {
                // A file whose time cannot be read counts as just changed, as a file without a history would.
                let modified =
                    std::fs::metadata(path).and_then(|m| m.modified()).map_or_else(|_| Utc::now(), Into::into);
                store.upsert_dag(&upsert_of(&dag, fileloc, &hash, &source, modified)).await?;
                tracing::info!(dag_id = dag.dag_id(), file = fileloc, "DAG file parsed");
                Ok(dag.dag_id().to_string())
            }
            Err(errors) => {
                let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
                tracing::warn!(file = fileloc, "DAG file has errors:\n{message}");
                Err(message)
            }
        };
        Ok(Parsed { hash, result })
    }
}

fn upsert_of(dag: &Dag, fileloc: &str, hash: &str, source: &str, modified: DateTime<Utc>) -> DagUpsert {
    let spec = &dag.spec;
    DagUpsert {
        dag_id: dag.dag_id().to_string(),
        fileloc: fileloc.to_string(),
        hash: hash.to_string(),
        spec: serde_json::to_value(spec).unwrap_or_default(),
        source: source.to_string(),
        description: spec.description.clone(),
        owners: vec![spec.owner.clone().unwrap_or_else(|| "sluice".into())],
        tags: spec.tags.clone(),
        timetable_summary: dag.timetable().summary(),
        max_active_runs: i64::from(dag.max_active_runs()),
        max_active_tasks: i64::from(dag.max_active_tasks()),
        is_paused_upon_creation: dag.is_paused_upon_creation(),
        access_control: spec.access_control.clone(),
        modified,
    }
}

fn collect_dag_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        tracing::warn!(folder = %dir.display(), "DAG folder cannot be read");
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_dag_files(&path, out);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(path);
        }
    }
}
