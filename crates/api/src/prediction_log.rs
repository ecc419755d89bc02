//! The prediction log: a sample of the predictions answered, with their inputs and request ids, written to a lake
//! asset per model (`lake://predictions/<model>`) for monitoring and for matching fed-back labels.
//!
//! A request does no IO for it: a sampled prediction is handed to a bounded channel ([`PredictionLog::offer`]), and
//! when the channel is full it is dropped and counted rather than making the request wait. One background task
//! ([`PredictionLog::start`]) gathers them per model and writes a batch every [`LogSettings::flush_rows`] rows or
//! [`LogSettings::flush_every`], and what is left when the server stops ([`LogWriter::finish`]). Each batch is a new
//! partition file, written atomically by the [`PredictionSink`], and an asset event of the model's log.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use sluice_core::serving::{LoggedPrediction, PredictionSink};
use sluice_store::{NewAssetEvent, Store};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How the log samples and writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogSettings {
    /// The share of requests logged, 0 to 1.
    pub sample: f64,
    /// Requests waiting to be written at most; more are dropped.
    pub capacity: usize,
    /// A model's rows are written once this many are waiting...
    pub flush_rows: usize,
    /// ... or this long after the last write.
    pub flush_every: Duration,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { sample: 1.0, capacity: 10_000, flush_rows: 10_000, flush_every: Duration::from_secs(5) }
    }
}

/// The request side of the log.
pub struct PredictionLog {
    sample: f64,
    queue: mpsc::Sender<(String, LoggedPrediction)>,
    dropped: Arc<AtomicU64>,
}

/// The writing side: stop it with [`LogWriter::finish`] so that nothing waiting is lost.
pub struct LogWriter {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl PredictionLog {
    /// The log, and its writer running on the current runtime.
    pub fn start(sink: Arc<dyn PredictionSink>, store: Store, settings: LogSettings) -> (PredictionLog, LogWriter) {
        let (queue, received) = mpsc::channel(settings.capacity.max(1));
        let (stop, stopped) = oneshot::channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer { sink, store, settings, dropped: dropped.clone(), waiting: HashMap::new() };
        let task = tokio::spawn(writer.run(received, stopped));
        (PredictionLog { sample: settings.sample, queue, dropped }, LogWriter { stop, task })
    }

    /// Whether this request is one of the sample.
    pub fn sampled(&self) -> bool {
        self.sample >= 1.0 || (self.sample > 0.0 && rand::random::<f64>() < self.sample)
    }

    /// Hands a prediction to the writer, or drops it if the writer is that far behind.
    pub fn offer(&self, model: &str, prediction: LoggedPrediction) {
        if self.queue.try_send((model.to_owned(), prediction)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Predictions dropped so far because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl LogWriter {
    /// Writes what is waiting, then stops.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!("the prediction log's writer failed: {e}");
        }
    }
}

struct Writer {
    sink: Arc<dyn PredictionSink>,
    store: Store,
    settings: LogSettings,
    dropped: Arc<AtomicU64>,
    /// Model → its predictions waiting to be written.
    waiting: HashMap<String, Vec<LoggedPrediction>>,
}

impl Writer {
    async fn run(
        mut self,
        mut received: mpsc::Receiver<(String, LoggedPrediction)>,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let mut ticker = tokio::time::interval(self.settings.flush_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported_drops = 0;
        loop {
            tokio::select! {
                next = received.recv() => match next {
                    Some((model, prediction)) => self.add(model, prediction).await,
                    None => break,
                },
                _ = ticker.tick() => {
                    self.write_all().await;
                    let dropped = self.dropped.load(Ordering::Relaxed);
                    if dropped > reported_drops {
                        tracing::warn!(dropped = dropped - reported_drops,
                            "predictions left out of the log: its writer was behind");
                        reported_drops = dropped;
                    }
                }
                _ = &mut stopped => {
                    received.close();
                    while let Some((model, prediction)) = received.recv().await {
                        self.add(model, prediction).await;
                    }
                    break;
                }
            }
        }
        self.write_all().await;
    }

    async fn add(&mut self, model: String, prediction: LoggedPrediction) {
        let waiting = self.waiting.entry(model.clone()).or_default();
        waiting.push(prediction);
        let rows: usize = waiting.iter().map(|p| p.records.len()).sum();
        if rows >= self.settings.flush_rows {
            let batch = std::mem::take(waiting);
            self.write(model, batch).await;
        }
    }

    async fn write_all(&mut self) {
        for (model, batch) in std::mem::take(&mut self.waiting) {
            self.write(model, batch).await;
        }
    }

    /// One partition file and its asset event. A batch that cannot be written is logged and dropped: the log is a
    /// sample, and holding on to it would only grow the server's memory while the lake is unreachable.
    async fn write(&self, model: String, batch: Vec<LoggedPrediction>) {
        if batch.is_empty() {
            return;
        }
        let sink = self.sink.clone();
        let name = model.clone();
        let written = tokio::task::spawn_blocking(move || sink.write(&name, &batch)).await;
        let written = match written {
            Ok(Ok(written)) => written,
            Ok(Err(e)) => return tracing::error!(model, "cannot write the prediction log: {e}"),
            Err(e) => return tracing::error!(model, "the prediction log's write failed: {e}"),
        };
        for write in written {
            let event = NewAssetEvent {
                uri: write.uri,
                row_count: Some(write.rows),
                schema: Some(write.schema),
                content_hash: Some(write.content_hash),
                watermark: None,
            };
            if let Err(e) = self.store.record_server_asset_event(&event, Utc::now()).await {
                tracing::error!(model, "cannot record the prediction log's asset event: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::{Map, Value, json};
    use sluice_core::serving::{InputColumn, LogWrite, PredictError, Prediction, ServedModel};
    use sluice_store::AssetEventFilter;

    use super::*;

    struct NoInputs;

    impl ServedModel for NoInputs {
        fn inputs(&self) -> &[InputColumn] {
            &[]
        }

        fn predict(&self, _: &[Map<String, Value>]) -> Result<Prediction, PredictError> {
            Err(PredictError::Invalid("not used".into()))
        }
    }

    /// Keeps the sizes of the batches it is given; each write waits until `gate` lets it through.
    #[derive(Default)]
    struct Batches {
        sizes: Mutex<Vec<(String, usize)>>,
        gate: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    }

    impl PredictionSink for Batches {
        fn write(&self, model: &str, batch: &[LoggedPrediction]) -> Result<Vec<LogWrite>, String> {
            if let Some(gate) = self.gate.lock().map_err(|e| e.to_string())?.as_ref() {
                gate.recv().map_err(|e| e.to_string())?;
            }
            self.sizes.lock().map_err(|e| e.to_string())?.push((model.to_owned(), batch.len()));
            let rows = batch.iter().map(|p| p.records.len() as i64).sum();
            Ok(vec![LogWrite {
                uri: sluice_core::serving::prediction_log_uri(model),
                rows,
                schema: json!([]),
                content_hash: "h".into(),
            }])
        }
    }

    fn prediction(id: &str) -> LoggedPrediction {
        LoggedPrediction {
            request_id: id.into(),
            at: Utc::now(),
            version: 1,
            model: Arc::new(NoInputs),
            records: vec![Map::new()],
            predictions: vec![json!("a")],
        }
    }

    async fn store(dir: &tempfile::TempDir) -> Store {
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("s.db").display())).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    #[tokio::test]
    async fn batches_are_written_when_full_and_what_is_left_when_the_writer_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let sink = Arc::new(Batches::default());
        let settings = LogSettings { flush_rows: 2, flush_every: Duration::from_secs(3600), ..LogSettings::default() };
        let (log, writer) = PredictionLog::start(sink.clone(), store.clone(), settings);
        for id in ["1", "2", "3"] {
            log.offer("m", prediction(id));
        }
        log.offer("other", prediction("4"));
        writer.finish().await;
        let mut sizes = sink.sizes.lock().unwrap().clone();
        sizes.sort();
        assert_eq!(sizes, [("m".to_owned(), 1), ("m".to_owned(), 2), ("other".to_owned(), 1)]);
        let filter = AssetEventFilter { uri: Some("lake://predictions/m".into()), limit: 10, ..Default::default() };
        let (events, total) = store.asset_events(&filter).await.unwrap();
        assert_eq!((total, events.iter().map(|e| e.row_count).sum::<Option<i64>>()), (2, Some(3)));
        assert_eq!(log.dropped(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let (open, gate) = std::sync::mpsc::channel();
        let sink = Arc::new(Batches { gate: Mutex::new(Some(gate)), ..Batches::default() });
        let settings = LogSettings {
            capacity: 2,
            flush_rows: 1,
            flush_every: Duration::from_secs(3600),
            ..LogSettings::default()
        };
        let (log, writer) = PredictionLog::start(sink.clone(), store, settings);
        // The first is taken and its write waits at the gate; two more fill the queue; the rest are dropped.
        log.offer("m", prediction("0"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while log.queue.capacity() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "the writer never took the first");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for id in 1..=5 {
            log.offer("m", prediction(&id.to_string()));
        }
        assert_eq!(log.dropped(), 3);
        for _ in 0..3 {
            open.send(()).unwrap();
        }
        writer.finish().await;
        assert_eq!(sink.sizes.lock().unwrap().len(), 3, "the first and the two queued");
    }
}
