//! `/metrics`: Prometheus text for the process's own measurements (scheduler loop, DAG parsing, task durations,
//! API latency, lease expiries) and, read at each scrape, what the database holds (runs and task instances by
//! state, queues, pools, workers, connection pool).
//!
//! The measurements go through the `metrics` facade, so a crate records them without knowing who exports them;
//! [`install`] makes this process's exporter the Prometheus one. A process that did not install it (a test, a
//! worker) records into nothing.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use sluice_core::{RunState, TaskState};
use sluice_store::Counts;

use crate::ui::workers::{WorkerState, workers};
use crate::{ApiError, AppState};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Buckets of the duration histograms, in seconds: from a millisecond API answer to an hour-long task.
const SECONDS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0, 3600.0];

/// Makes this process's measurements the ones `/metrics` answers with; a second call changes nothing.
pub fn install() -> Result<(), BuildError> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)?
        .install_recorder()?;
    describe();
    // A counter is exported from its first increment; this one should read 0 until a lease expires.
    metrics::counter!("sluice_lease_expiries_total").increment(0);
    let _ = HANDLE.set(handle);
    Ok(())
}

fn describe() {
    metrics::describe_histogram!("sluice_api_request_duration_seconds", "API answers by method, route and status");
    metrics::describe_histogram!("sluice_scheduler_loop_duration_seconds", "One pass of the scheduler loop");
    metrics::describe_histogram!("sluice_dag_folder_parse_duration_seconds", "One read of the DAG folder");
    metrics::describe_histogram!("sluice_task_duration_seconds", "Tries from start to end, by DAG and state");
    metrics::describe_histogram!(
        "sluice_task_start_latency_seconds",
        "From a task instance being queued to its try starting on a worker"
    );
    metrics::describe_counter!("sluice_lease_expiries_total", "Tries whose worker stopped extending its lease");
    metrics::describe_gauge!("sluice_dag_runs", "DAG runs by state");
    metrics::describe_gauge!("sluice_task_instances", "Task instances by state");
    metrics::describe_gauge!("sluice_queued_task_instances", "Task instances waiting for a worker, by queue");
    metrics::describe_gauge!("sluice_pool_slots", "Slots of each pool by use: open, queued, running, scheduled");
    metrics::describe_gauge!("sluice_workers", "Workers seen lately or running tasks");
    metrics::describe_gauge!("sluice_worker_slots", "Slots of the active workers, used and free");
    metrics::describe_gauge!("sluice_db_connections", "Database connections of this process, in use and idle");
}

/// A route's pattern with its parameters written `:dag_id` (`/api/v2/dags/:dag_id`), as metrics and the audit log
/// name routes: braces in label values trip up some Prometheus text parsers.
pub(crate) fn route_pattern(path: &MatchedPath) -> String {
    path.as_str().replace('{', ":").replace('}', "")
}

/// Times every request by its route pattern, not its path, so that the series stay few.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), route_pattern);
    let method = request.method().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    histogram!("sluice_api_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(start.elapsed().as_secs_f64());
    response
}

/// `GET /metrics` (Op and above: the labels name DAGs, pools and workers).
pub async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(handle) = HANDLE.get() else {
        return Err(ApiError::NotFound("this process does not export metrics".into()));
    };
    record_database(&state).await?;
    handle.run_upkeep();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response())
}

/// Sets `name{label=value}` for every value of `all`, from `counts` or else 0.
fn set_counts(name: &'static str, label: &'static str, all: impl Iterator<Item = String>, counts: &Counts) {
    for value in all {
        let n = counts.iter().find(|(v, _)| *v == value).map_or(0, |(_, n)| *n);
        gauge!(name, label => value).set(n as f64);
    }
}

async fn record_database(state: &AppState) -> Result<(), ApiError> {
    let store = state.engine.store();
    let stats = store.stats().await?;
    // Every state gets a value, so that a state that emptied reads 0.
    let run_states = RunState::ALL.iter().map(|state| state.as_str().to_owned());
    set_counts("sluice_dag_runs", "state", run_states, &stats.runs_by_state);
    let ti_states = TaskState::ALL.iter().map(|state| state.as_str().to_owned());
    set_counts("sluice_task_instances", "state", ti_states, &stats.task_instances_by_state);
    // A queue a worker serves reads 0 when nothing waits in it, as does one seen before.
    let all_workers = workers(store).await?;
    let queues = {
        static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        let mut seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.extend(stats.queued_by_queue.iter().map(|(queue, _)| queue.clone()));
        seen.extend(all_workers.iter().flat_map(|w| w.queues.iter().cloned()));
        seen.clone()
    };
    set_counts("sluice_queued_task_instances", "queue", queues.into_iter(), &stats.queued_by_queue);
    let (pools, _) = store.list_pools(i64::MAX, 0).await?;
    for pool in &pools {
        for (use_, n) in [
            ("open", pool.open_slots()),
            ("queued", pool.queued_slots),
            ("running", pool.running_slots),
            ("scheduled", pool.scheduled_slots),
        ] {
            gauge!("sluice_pool_slots", "pool" => pool.name.clone(), "use" => use_).set(n as f64);
        }
    }
    let active: Vec<_> = all_workers.into_iter().filter(|w| w.state == WorkerState::Active).collect();
    gauge!("sluice_workers").set(active.len() as f64);
    let used: i64 = active.iter().map(|w| w.slots_used).sum();
    let slots: i64 = active.iter().map(|w| w.slots).sum();
    gauge!("sluice_worker_slots", "use" => "used").set(used as f64);
    gauge!("sluice_worker_slots", "use" => "free").set((slots - used) as f64);
    let pool = store.pool_use();
    gauge!("sluice_db_connections", "use" => "idle").set(pool.idle as f64);
    gauge!("sluice_db_connections", "use" => "in_use").set(f64::from(pool.open) - pool.idle as f64);
    Ok(())
}
