//! Which model version answers a prediction, and the loaded versions kept in memory.
//!
//! A request names a model and, optionally, a stage (default `production`) or a version. The stage's version is read
//! from the registry at most once per [`RESOLVE_TTL`] per model and stage, so a promotion made anywhere (a deploy
//! task, another server) is served within that time, and at once when made through this server. Loaded versions are
//! shared (`Arc`): a request that started with the old version finishes with it while new requests get the new one,
//! so a promotion swaps the model without failing a request in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sluice_core::serving::{LoadError, LoggedPrediction, ModelLoader, ServedModel};
use sluice_store::Store;

use crate::ApiError;
use crate::prediction_log::PredictionLog;

/// How long a stage's version is trusted before the registry is asked again.
pub const RESOLVE_TTL: Duration = Duration::from_secs(1);

/// Loaded versions kept at most; past that the cache starts over (versions are reloaded on demand).
const MAX_LOADED: usize = 64;

/// Which version of a model a request wants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    Stage(String),
    Version(i64),
}

/// A version that answers, with its number.
#[derive(Clone)]
pub struct Resolved {
    pub version: i64,
    pub model: Arc<dyn ServedModel>,
}

type StageKey = (String, String);
/// When a stage's version was read, and that version with its artifact (none: the stage is empty).
type StageEntry = (Instant, Option<(i64, String)>);

/// The serving side of the registry: resolves and loads versions, and logs what they answer.
pub struct Serving {
    loader: Arc<dyn ModelLoader>,
    stages: Mutex<HashMap<StageKey, StageEntry>>,
    loaded: Mutex<HashMap<(String, i64), Arc<dyn ServedModel>>>,
    log: Option<PredictionLog>,
}

/// The header that carries a prediction's request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Request ids given by callers are kept if at most this long.
const MAX_REQUEST_ID: usize = 200;

/// The id of a prediction request: the caller's own (`x-request-id`, or the Open Inference Protocol's `id`) when it is
/// short printable text, else a new UUIDv7, whose time says when it was made.
pub fn request_id(given: Option<&str>) -> String {
    given
        .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.chars().all(|c| c.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

impl Serving {
    pub fn new(loader: Arc<dyn ModelLoader>) -> Serving {
        Serving { loader, stages: Mutex::new(HashMap::new()), loaded: Mutex::new(HashMap::new()), log: None }
    }

    /// Logs a sample of the predictions answered (see [`crate::prediction_log`]).
    pub fn with_log(mut self, log: PredictionLog) -> Serving {
        self.log = Some(log);
        self
    }

    /// Whether the prediction about to be answered is to be logged: then the caller hands it to [`Serving::log`].
    pub fn logs_next(&self) -> bool {
        self.log.as_ref().is_some_and(PredictionLog::sampled)
    }

    /// Hands an answered prediction to the log, which writes it in the background.
    pub fn log(&self, model: &str, prediction: LoggedPrediction) {
        if let Some(log) = &self.log {
            log.offer(model, prediction);
        }
    }

    /// The version that answers for `name` and `selector`, loaded; 404 with what to do when there is none.
    pub async fn resolve(&self, store: &Store, name: &str, selector: &Selector) -> Result<Resolved, ApiError> {
        // A version's artifact never changes once registered: a loaded version needs no registry read.
        if let Selector::Version(version) = selector
            && let Some(model) = self.loaded(name, *version)
        {
            return Ok(Resolved { version: *version, model });
        }
        let (version, artifact_uri) = match selector {
            Selector::Version(version) => {
                let row = store.get_model_version(name, *version).await?;
                let row = row.ok_or_else(|| ApiError::NotFound(format!("model {name:?} has no version {version}")))?;
                (row.version, row.artifact_uri)
            }
            Selector::Stage(stage) => self.stage_version(store, name, stage).await?,
        };
        if let Some(model) = self.loaded(name, version) {
            return Ok(Resolved { version, model });
        }
        let loader = self.loader.clone();
        let model = tokio::task::spawn_blocking(move || loader.load(&artifact_uri))
            .await
            .map_err(|e| ApiError::Internal(format!("loading the model failed: {e}")))?
            .map_err(|e| match e {
                LoadError::NotServed(why) => ApiError::Conflict(format!("version {version} of model {name:?}: {why}")),
                LoadError::Broken(why) => {
                    ApiError::Internal(format!("version {version} of model {name:?} cannot be loaded: {why}"))
                }
            })?;
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if loaded.len() >= MAX_LOADED {
            loaded.clear();
        }
        loaded.insert((name.to_owned(), version), model.clone());
        Ok(Resolved { version, model })
    }

    /// Forget what is known of a model's stages: its next request asks the registry.
    pub fn forget_stages(&self, name: &str) {
        self.stages.lock().unwrap_or_else(PoisonError::into_inner).retain(|(model, _), _| model != name);
    }

    async fn stage_version(&self, store: &Store, name: &str, stage: &str) -> Result<(i64, String), ApiError> {
        let key = (name.to_owned(), stage.to_owned());
        let cached = self.stages.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
        let current = match cached {
            Some((at, current)) if at.elapsed() < RESOLVE_TTL => current,
            _ => {
                let row = store.model_version_in_stage(name, stage).await?;
                let current = row.map(|r| (r.version, r.artifact_uri));
                self.stages
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key, (Instant::now(), current.clone()));
                current
            }
        };
        match current {
            Some(found) => Ok(found),
            None if store.get_model(name).await?.is_none() => {
                Err(ApiError::NotFound(format!("model {name:?} not found")))
            }
            None => Err(ApiError::NotFound(format!(
                "model {name:?} has no version in {stage}: promote one (a deploy task, \
                 `sluice models promote {name} VERSION --stage {stage}` or POST /api/v2/models/{name}/versions/VERSION/stage)"
            ))),
        }
    }

    fn loaded(&self, name: &str, version: i64) -> Option<Arc<dyn ServedModel>> {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner).get(&(name.to_owned(), version)).cloned()
    }
}

/// A prediction that could not be made, as the caller reads it: their request (422) or the model (500).
pub fn predict_error(e: sluice_core::serving::PredictError) -> ApiError {
    match e {
        sluice_core::serving::PredictError::Broken(_) => ApiError::Internal(e.to_string()),
        _ => ApiError::Unprocessable(e.to_string()),
    }
}
