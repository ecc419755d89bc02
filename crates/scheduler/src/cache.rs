//! What never changes once written, kept in memory: parsed DAG versions, and the parts of a DAG run that are fixed
//! at its creation (ids, dates, conf, version). Both are read on every claim and report.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sluice_core::Dag;
use sluice_core::spec::DagSpec;
use sluice_store::{DagRunRow, DagVersionRow, Reads, Store};
use uuid::Uuid;

use crate::EngineError;

#[derive(Clone, Default)]
pub struct DagCache {
    versions: Arc<RwLock<HashMap<Uuid, Arc<Dag>>>>,
}

impl DagCache {
    fn cached(&self, id: Uuid) -> Option<Arc<Dag>> {
        self.versions.read().ok().and_then(|m| m.get(&id).cloned())
    }

    fn insert(&self, row: DagVersionRow) -> Result<Arc<Dag>, EngineError> {
        let bad = |message: String| EngineError::BadVersion { dag_id: row.dag_id.clone(), version: row.id, message };
        let spec: DagSpec = serde_json::from_value(row.spec.clone()).map_err(|e| bad(e.to_string()))?;
        let dag = Dag::from_spec(spec)
            .map_err(|errors| bad(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))?;
        let dag = Arc::new(dag);
        if let Ok(mut map) = self.versions.write() {
            map.insert(row.id, dag.clone());
        }
        Ok(dag)
    }

    /// A DAG version, read inside the caller's transaction when not cached.
    pub async fn get_in(&self, tx: &mut Reads<'_>, id: Uuid) -> Result<Arc<Dag>, EngineError> {
        if let Some(dag) = self.cached(id) {
            return Ok(dag);
        }
        let row = tx.get_dag_version(id).await?;
        self.insert(row.ok_or_else(|| EngineError::NotFound(format!("DAG version {id} not found")))?)
    }

    /// A DAG version, read with its own connection when not cached. Never call while holding a `Tx`: the SQLite
    /// pool has a single connection.
    pub async fn get(&self, store: &Store, id: Uuid) -> Result<Arc<Dag>, EngineError> {
        if let Some(dag) = self.cached(id) {
            return Ok(dag);
        }
        let row = store.get_dag_version(id).await?;
        self.insert(row.ok_or_else(|| EngineError::NotFound(format!("DAG version {id} not found")))?)
    }
}

/// Runs by internal id. Only the fields fixed at creation may be read from a cached run (never its state or
/// times): `run_id`, `dag_id`, `version_id`, `logical_date`, the data interval, `run_after`, `conf`.
#[derive(Clone, Default)]
pub struct RunCache {
    runs: Arc<RwLock<HashMap<Uuid, Arc<DagRunRow>>>>,
}

/// Beyond this many runs the cache starts over: finished runs would otherwise pile up.
const MAX_CACHED_RUNS: usize = 10_000;

impl RunCache {
    fn cached(&self, id: Uuid) -> Option<Arc<DagRunRow>> {
        self.runs.read().ok().and_then(|m| m.get(&id).cloned())
    }

    fn insert(&self, run: DagRunRow) -> Arc<DagRunRow> {
        let run = Arc::new(run);
        if let Ok(mut map) = self.runs.write() {
            if map.len() >= MAX_CACHED_RUNS {
                map.clear();
            }
            map.insert(run.id, run.clone());
        }
        run
    }

    /// A run, read inside the caller's transaction when not cached.
    pub async fn get_in(&self, tx: &mut Reads<'_>, id: Uuid) -> Result<Option<Arc<DagRunRow>>, EngineError> {
        if let Some(run) = self.cached(id) {
            return Ok(Some(run));
        }
        Ok(tx.get_run_by_pk(id).await?.map(|run| self.insert(run)))
    }

    /// A run, read with its own connection when not cached (never while holding a `Tx`, see [`DagCache::get`]).
    pub async fn get(&self, store: &Store, id: Uuid) -> Result<Option<Arc<DagRunRow>>, EngineError> {
        if let Some(run) = self.cached(id) {
            return Ok(Some(run));
        }
        Ok(store.get_run_by_pk(id).await?.map(|run| self.insert(run)))
    }
}
