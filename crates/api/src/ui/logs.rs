//! `GET /api/v2/ui/logs/{dag_id}/{run_id}/{task_id}/{try_number}?after=`: a try's log lines as Server-Sent
//! Events, the stored ones after line `after` first, then new ones as the worker sends them, then `end` once the
//! try has ended and every line was sent.
//!
//! Lines arrive in batches from the worker (about once a second while the task writes), so the stream reads
//! what is new a few times a second. The lines of a try that has ended are all stored: the worker's last batch
//! travels in the report that ends the try, in its transaction. So "the try had ended before a read that found
//! nothing new" means the log is complete, whether it was read from the database or, moved there after the end,
//! from the lake (`Engine::read_logs`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use sluice_core::TaskState;
use sluice_scheduler::Engine;
use uuid::Uuid;

use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// How often a running try's new lines are looked for.
const READ_EVERY: Duration = Duration::from_millis(300);
/// Lines read at once.
const BATCH: i64 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogStreamQuery {
    map_index: Option<i64>,
    /// The id of the last line already shown (from the logs endpoint's `continuation_token` or a line's `id`);
    /// 0 or absent for the whole log.
    after: Option<i64>,
}

/// `event: line`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogLineEvent {
    /// Increasing within the try: what `after` takes.
    pub id: i64,
    pub ts: DateTime<Utc>,
    /// `stdout`, `stderr`, or `sluice` for the worker's own lines.
    pub stream: String,
    pub line: String,
}

/// `event: end`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogEndEvent {
    pub state: TaskState,
}

struct Tail {
    engine: Engine,
    ti_id: Uuid,
    try_id: Uuid,
    try_number: i64,
    after: i64,
    ready: VecDeque<Event>,
    done: bool,
}

impl Tail {
    /// The next event; `None` after `end`, or when the server shuts down.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            if self.done || self.engine.is_stopping() {
                return None;
            }
            if let Err(e) = self.read().await {
                tracing::warn!(error = %e, "cannot read log lines for a stream");
            }
            if self.ready.is_empty() && !self.done {
                tokio::time::sleep(READ_EVERY).await;
            }
        }
    }

    /// Queues the lines stored since the last read, or `end` if there are none and the try had ended before.
    async fn read(&mut self) -> Result<(), ApiError> {
        let ended = self.engine.store().get_try(self.ti_id, self.try_number).await?.filter(|t| t.end_date.is_some());
        let lines = self.engine.read_logs(self.try_id, self.after, BATCH).await?;
        if let Some(last) = lines.last() {
            self.after = last.id;
        }
        for l in lines {
            let data = LogLineEvent { id: l.id, ts: l.timestamp, stream: l.stream, line: l.line };
            self.ready.push_back(Event::default().event("line").data(serde_json::to_string(&data).unwrap_or_default()));
        }
        if let (Some(ended), true) = (ended, self.ready.is_empty()) {
            let data = LogEndEvent { state: ended.state };
            self.ready.push_back(Event::default().event("end").data(serde_json::to_string(&data).unwrap_or_default()));
            self.done = true;
        }
        Ok(())
    }
}

/// A try's log as Server-Sent Events: `event: line` for each line after `after`, while the try runs too, then
/// `event: end` with the try's state.
#[utoipa::path(get, path = "/ui/logs/{dag_id}/{run_id}/{task_id}/{try_number}", tag = "Dashboard", params(("dag_id" = String, Path), ("run_id" = String, Path), ("task_id" = String, Path), ("try_number" = i64, Path), LogStreamQuery), responses((status = 200, description = "`event: line` (data: LogLineEvent) for every line, then `event: end` (data: LogEndEvent) once the try has ended; `: keep-alive` comments every 15 s", content_type = "text/event-stream", body = crate::openapi::ServerSentEvent), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<(String, String, String, i64)>,
    ApiQuery(q): ApiQuery<LogStreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::Unprocessable("after must not be negative".into()));
    }
    let (ti, t) = crate::public::tasks::find_try(&state, &key, q.map_index.unwrap_or(-1)).await?;
    let tail = Tail {
        engine: state.engine.clone(),
        ti_id: ti.id,
        try_id: t.id,
        try_number: t.try_number,
        after,
        ready: VecDeque::new(),
        done: false,
    };
    let stream = futures::stream::unfold(tail, |mut tail| async move { tail.next().await.map(|e| (Ok(e), tail)) });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(super::events::KEEP_ALIVE).text("keep-alive")))
}
