//! What the engine's callers (the API, the loop) can be told.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// A worker's lease is no longer valid: the try was ended (lost, timed out, marked) or belongs to another try.
    #[error("the lease is no longer held: the task was taken away from this worker")]
    StaleLease,
    /// A stored DAG version that no longer parses (a bug, or a version from a newer Sluice).
    #[error("stored DAG version {version} of {dag_id:?} cannot be read: {message}")]
    BadVersion { dag_id: String, version: uuid::Uuid, message: String },
    /// A try's log moved to the lake cannot be read back, or written there.
    #[error("the log kept at {uri}: {message}")]
    Log { uri: String, message: String },
    #[error(transparent)]
    Store(#[from] sluice_store::Error),
}

impl EngineError {
    /// Whether the database could not be reached (see [`sluice_store::Error::is_unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, EngineError::Store(e) if e.is_unavailable())
    }
}
