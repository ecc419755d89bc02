//! Optional OpenTelemetry traces of runs and tries, exported over OTLP/HTTP when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, in the protocol that
//! `OTEL_EXPORTER_OTLP_PROTOCOL` names (`http/protobuf` by default, or `http/json`).
//!
//! A run and its tries are not spans any one process holds open: they start and end in different requests, on
//! different servers. Each is made whole when it ends, with its recorded start. Their ids come from the run's and the
//! try's UUIDs, so every try of a run lands in the run's trace, under the run's span, whichever server saw it end.

use std::cell::Cell;
use std::sync::Arc;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider};
use sluice_scheduler::{EndedSpan, TraceSink};
use uuid::Uuid;

/// The variables that turn the traces on, as every OpenTelemetry SDK reads them.
const ENDPOINT_VARIABLES: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// The trace sink of this process, when traces are on; spans are sent in batches from the SDK's own thread.
pub fn from_environment() -> anyhow::Result<Option<Arc<dyn TraceSink>>> {
    if ENDPOINT_VARIABLES.iter().all(|name| std::env::var_os(name).is_none_or(|v| v.is_empty())) {
        return Ok(None);
    }
    let client = TokioHttpClient { http: reqwest::Client::new(), runtime: tokio::runtime::Handle::current() };
    let exporter = SpanExporter::builder().with_http().with_http_client(client).build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(UuidIds::default())
        .with_resource(Resource::builder().with_service_name("sluice").build())
        .build();
    let tracer = provider.tracer("sluice");
    tracing::info!("tracing runs and tries to the OTLP endpoint of the environment");
    Ok(Some(Arc::new(OtlpTraces { tracer, _provider: provider })))
}

#[derive(Debug)]
struct OtlpTraces {
    tracer: SdkTracer,
    /// Kept for as long as spans are made: dropping it flushes and stops the exporter.
    _provider: SdkTracerProvider,
}

fn trace_id(run_pk: Uuid) -> TraceId {
    TraceId::from_bytes(*run_pk.as_bytes())
}

/// A span id from the last 8 bytes of a UUID: the random ones of a v7 UUID.
fn span_id(id: Uuid) -> SpanId {
    let bytes = id.as_bytes();
    let mut last = [0u8; 8];
    last.copy_from_slice(&bytes[8..]);
    SpanId::from_bytes(last)
}

impl TraceSink for OtlpTraces {
    fn ended(&self, span: &EndedSpan<'_>) {
        let trace = trace_id(span.run_pk);
        let run_span = span_id(span.run_pk);
        let mut attributes = vec![
            KeyValue::new("sluice.dag_id", span.dag_id.to_owned()),
            KeyValue::new("sluice.run_id", span.run_id.to_owned()),
            KeyValue::new("sluice.state", span.state.to_owned()),
        ];
        let (name, own_id, parent) = match span.task {
            Some((task_id, map_index, try_number, try_id)) => {
                attributes.extend([
                    KeyValue::new("sluice.task_id", task_id.to_owned()),
                    KeyValue::new("sluice.map_index", map_index),
                    KeyValue::new("sluice.try_number", try_number),
                ]);
                let parent = SpanContext::new(trace, run_span, TraceFlags::SAMPLED, true, TraceState::default());
                (format!("task {task_id}"), span_id(try_id), Context::new().with_remote_span_context(parent))
            }
            None => (format!("dag_run {}", span.dag_id), run_span, Context::new()),
        };
        let builder = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(std::time::SystemTime::from(span.start))
            .with_attributes(attributes);
        let mut otel_span = UuidIds::with_next(trace, own_id, || self.tracer.build_with_context(builder, &parent));
        if let Some(error) = span.error.filter(|_| matches!(span.state, "failed" | "upstream_failed")) {
            otel_span.set_status(Status::error(error.to_owned()));
        }
        otel_span.end_with_timestamp(std::time::SystemTime::from(span.end));
    }
}

thread_local! {
    /// The ids the next span built on this thread takes (see [`UuidIds`]).
    static NEXT_IDS: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// The SDK draws a span's ids itself; this generator hands out the ones made from UUIDs while such a span is built,
/// and random ones otherwise.
#[derive(Debug, Default)]
struct UuidIds(RandomIdGenerator);

impl UuidIds {
    fn with_next<T>(trace: TraceId, span: SpanId, build: impl FnOnce() -> T) -> T {
        NEXT_IDS.with(|next| next.set(Some((trace, span))));
        let built = build();
        NEXT_IDS.with(|next| next.set(None));
        built
    }
}

impl IdGenerator for UuidIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_IDS.with(Cell::get).map_or_else(|| self.0.new_trace_id(), |(trace, _)| trace)
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_IDS.with(Cell::get).map_or_else(|| self.0.new_span_id(), |(_, span)| span)
    }
}

/// The exporter's HTTP transport: the workspace's reqwest, on this process's runtime (the SDK exports from a thread
/// of its own, outside it).
#[derive(Debug)]
struct TokioHttpClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for TokioHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut outgoing = self.http.request(parts.method, parts.uri.to_string()).body(body.to_vec());
        for (name, value) in &parts.headers {
            outgoing = outgoing.header(name, value);
        }
        let sent = self.runtime.spawn(async move {
            let response = outgoing.timeout(std::time::Duration::from_secs(10)).send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = sent.await??;
        let mut response = Response::new(body);
        *response.status_mut() = status;
        Ok(response)
    }
}
