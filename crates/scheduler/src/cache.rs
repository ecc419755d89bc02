//! Parsed DAG versions, kept in memory: a version never changes, so it is parsed once per process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sluice_core::Dag;
use sluice_core::spec::DagSpec;
use sluice_store::{DagVersionRow, Store, Tx};
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
    pub async fn get_in(&self, tx: &mut Tx, id: Uuid) -> Result<Arc<Dag>, EngineError> {
        if let Some(dag) = self.cached(id) {
            return Ok(dag);
        }
        let row = tx.get_dag_version(id).await?;
        self.insert(row.ok_or_else(|| EngineError::NotFound(format!("DAG version {id} not found")))?)
    }

    /// A DAG version, read with its own connection when not cached. Never call while holding a [`Tx`]: the SQLite
    /// pool has a single connection.
    pub async fn get(&self, store: &Store, id: Uuid) -> Result<Arc<Dag>, EngineError> {
        if let Some(dag) = self.cached(id) {
            return Ok(dag);
        }
        let row = store.get_dag_version(id).await?;
        self.insert(row.ok_or_else(|| EngineError::NotFound(format!("DAG version {id} not found")))?)
    }
}
