//! `kind: sensor` on a worker: pokes the condition until it holds or the timeout passes, sleeping between pokes in
//! `poke` mode; in `reschedule` mode it pokes once and, when the condition is false, says when to poke again, so
//! that the worker's slot is free meanwhile.
//!
//! The timeout counts from the try's first poke ([`SensorContext::first_poke`]), which the server keeps across the
//! pokes of `reschedule` mode.

use std::path::Path;

use chrono::{DateTime, Utc};
use sluice_core::format_duration;
use sluice_core::ops_spec::{
    SensorCondition, SensorMode, SensorSpec, external_states_hold, first_cell_holds, response_holds, time_target,
};
use sluice_core::protocol::{SensorContext, SensorEnd};

use crate::error::{OpsError, Result};
use crate::task::OpContext;

/// Runs the sensor: `None` when its condition holds, else how the try ends without it.
pub(crate) fn run_sensor(spec: &SensorSpec, ctx: &OpContext<'_>) -> Result<Option<SensorEnd>> {
    let sensor = ctx.sensor.ok_or_else(|| {
        OpsError::Invalid("the sensor's context did not come with this try ($SLUICE_SENSOR_CONTEXT)".into())
    })?;
    loop {
        let now = Utc::now();
        if poke(&spec.sensor, ctx, sensor, now)? {
            (ctx.log)("the condition holds");
            return Ok(None);
        }
        let elapsed = (now - sensor.first_poke).to_std().unwrap_or_default();
        if spec.timed_out(elapsed) {
            let reason =
                format!("the sensor's condition did not hold within its timeout ({})", format_duration(spec.timeout));
            (ctx.log)(&reason);
            return Ok(Some(if spec.soft_fail {
                SensorEnd::Skipped { reason }
            } else {
                SensorEnd::TimedOut { reason }
            }));
        }
        let wait = spec.next_poke_in(elapsed);
        match spec.mode {
            SensorMode::Reschedule => {
                let at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                (ctx.log)(&format!("not yet: rescheduled, next poke at {}", at.to_rfc3339()));
                return Ok(Some(SensorEnd::Reschedule { at }));
            }
            SensorMode::Poke => {
                (ctx.log)(&format!("not yet: next poke in {}", format_duration(wait)));
                std::thread::sleep(wait);
            }
        }
    }
}

/// Whether the condition holds now.
fn poke(condition: &SensorCondition, ctx: &OpContext<'_>, sensor: &SensorContext, now: DateTime<Utc>) -> Result<bool> {
    match condition {
        SensorCondition::File { path, connection } if path.starts_with(crate::object::S3_SCHEME) => {
            let connection = connection.as_deref().map(|id| ctx.connection(id)).transpose()?;
            (ctx.log)(&format!("poking for {path}"));
            crate::object::exists(path, connection)
        }
        SensorCondition::File { path, .. } => {
            // A relative path is read from the DAGs folder, as data sources are.
            let full = ctx.base_dir.join(Path::new(path));
            (ctx.log)(&format!("poking for {}", full.display()));
            Ok(full.exists())
        }
        SensorCondition::Time { target_time, delta } => {
            let tz = sensor.tz().map_err(OpsError::Invalid)?;
            let target = time_target(target_time.as_deref(), *delta, sensor.first_poke, sensor.interval_end, tz)
                .map_err(OpsError::Invalid)?;
            (ctx.log)(&format!("waiting until {}", target.to_rfc3339()));
            Ok(now >= target)
        }
        SensorCondition::Sql { connection, sql } => {
            let (conn_id, conn) = ctx.connection(connection)?;
            let cell = crate::sql::first_cell((conn_id, conn), sql)?;
            (ctx.log)(&format!(
                "the query on connection {conn_id:?} returned {}",
                cell.as_deref().unwrap_or("no value")
            ));
            Ok(first_cell_holds(cell.as_deref()))
        }
        SensorCondition::Http { url, connection, field, equals } => {
            let connection = connection.as_deref().map(|id| ctx.connection(id)).transpose()?;
            let (status, body) = crate::http::get_once(url, connection, ctx.log)?;
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(false);
            }
            if !status.is_success() {
                return Err(OpsError::Http(format!("the sensor's request answered HTTP {status}")));
            }
            Ok(response_holds(body.as_ref(), field.as_deref(), equals.as_ref()))
        }
        SensorCondition::ExternalTask { external_dag_id, external_task_id, allowed_states, failed_states } => {
            let what = match external_task_id {
                Some(task_id) => format!("task {task_id} of DAG {external_dag_id}"),
                None => format!("the run of DAG {external_dag_id}"),
            };
            let states: Vec<&str> = sensor.external_states.iter().map(|s| s.as_str()).collect();
            (ctx.log)(&format!(
                "poking {what} for the same logical date: {}",
                if states.is_empty() { "none yet".to_owned() } else { states.join(", ") }
            ));
            external_states_hold(allowed_states, failed_states, &sensor.external_states)
                .map_err(|state| OpsError::Invalid(format!("{what} is {state}, one of the sensor's failed_states")))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lake::Lake;
    use crate::test_util::{TempDir, context};

    fn spec(sensor: SensorCondition, mode: SensorMode, timeout_ms: u64, soft_fail: bool) -> SensorSpec {
        SensorSpec {
            sensor,
            mode,
            poke_interval: Duration::from_millis(20),
            timeout: Duration::from_millis(timeout_ms),
            soft_fail,
            exponential_backoff: false,
            max_wait: None,
        }
    }

    fn sensor_context(first_poke: DateTime<Utc>) -> SensorContext {
        SensorContext { first_poke, interval_end: first_poke, timezone: "UTC".into(), external_states: Vec::new() }
    }

    #[test]
    fn a_file_sensor_sees_its_file_and_reschedules_or_times_out_without_it() {
        let dir = TempDir::new();
        let lake = Lake::open(&dir.path().display().to_string()).expect("a lake in a folder");
        let file = SensorCondition::File { path: "ready.flag".into(), connection: None };
        let started = sensor_context(Utc::now());
        let ctx = OpContext { sensor: Some(&started), ..context(&lake, dir.path()) };

        let reschedule = spec(file.clone(), SensorMode::Reschedule, 60_000, false);
        match run_sensor(&reschedule, &ctx).expect("a poke") {
            Some(SensorEnd::Reschedule { at }) => assert!(at > Utc::now() - chrono::Duration::seconds(1)),
            other => panic!("{other:?}"),
        }
        // Poke mode keeps poking until the timeout: a time-out, or a skip with soft_fail.
        let poke = spec(file.clone(), SensorMode::Poke, 100, false);
        assert!(matches!(run_sensor(&poke, &ctx).expect("a poke"), Some(SensorEnd::TimedOut { .. })));
        let soft = spec(file.clone(), SensorMode::Poke, 100, true);
        assert!(matches!(run_sensor(&soft, &ctx).expect("a poke"), Some(SensorEnd::Skipped { .. })));

        dir.write("ready.flag", "");
        assert_eq!(run_sensor(&reschedule, &ctx).expect("a poke"), None);
    }

    #[test]
    fn a_time_sensor_waits_for_its_delta_after_the_interval_end() {
        let dir = TempDir::new();
        let lake = Lake::open(&dir.path().display().to_string()).expect("a lake in a folder");
        let started = sensor_context(Utc::now());
        let ctx = OpContext { sensor: Some(&started), ..context(&lake, dir.path()) };
        let delta = SensorCondition::Time { target_time: None, delta: Some(Duration::from_millis(150)) };
        let poke = spec(delta.clone(), SensorMode::Poke, 60_000, false);
        assert_eq!(run_sensor(&poke, &ctx).expect("a poke"), None);
        assert!(Utc::now() >= started.first_poke + chrono::Duration::milliseconds(150));
        // Without its context, a sensor cannot know when it started.
        let bare = context(&lake, dir.path());
        assert!(run_sensor(&poke, &bare).is_err());
    }
}
