//! `kind: sensor` — a task that waits for a condition (a file, a time), poking it every `poke_interval` until it
//! holds or `timeout` passes, as Airflow's sensors do.
//!
//! In `poke` mode the try holds its worker slot and sleeps between pokes. In `reschedule` mode each poke is a short
//! try: when the condition is false it ends with the time of the next poke, the task instance waits in
//! `up_for_reschedule` without a slot, and the scheduler queues it again when that time comes. The timeout counts
//! from the first poke in both modes.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::state::{RunState, TaskState};

/// The `kind` of sensor tasks.
pub const SENSOR_KIND: &str = "sensor";
/// Airflow's default `poke_interval`.
pub const DEFAULT_POKE_INTERVAL: Duration = Duration::from_secs(60);
/// Airflow's default sensor `timeout`: 7 days.
pub const DEFAULT_SENSOR_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How a sensor waits between pokes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorMode {
    /// The try sleeps between pokes, holding its worker slot.
    #[default]
    Poke,
    /// Each poke is a try of its own; the slot is free between them.
    Reschedule,
}

/// What a sensor waits for, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SensorCondition {
    /// A file or folder exists (Airflow's FileSensor); a relative path is read from the DAGs folder. Or an object in
    /// a bucket, `s3://bucket/key` (Airflow's S3KeySensor), read with the `aws` connection `connection` or else the
    /// worker's `AWS_*` settings; a key ending in `/` waits for any object under that prefix. `path` is a template.
    File {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connection: Option<String>,
    },
    /// A time has come: `target_time` of the day the sensor first poked, in the DAG's timezone (Airflow's
    /// TimeSensor), or `delta` after the run's data interval end (its `run_after` without one; Airflow's
    /// TimeDeltaSensor). Exactly one of the two.
    Time {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_time: Option<String>,
        #[serde(default, with = "crate::duration::serde_opt", skip_serializing_if = "Option::is_none")]
        delta: Option<Duration>,
    },
    /// A query on a PostgreSQL, MySQL or SQLite connection returns a first cell that is true in Python's sense (not
    /// null, `0`, `false` or empty; Airflow's SqlSensor). `sql` is a template.
    Sql { connection: String, sql: String },
    /// A `GET` of `url` (a template; a path is joined to the connection's host, which also gives the credentials)
    /// answers with a success status and, with `field` (a JSON pointer or dotted path into the body), that field
    /// equal to `equals`, or true in Python's sense without it (Airflow's HttpSensor with a response check). A 404
    /// means "not yet"; another error status fails the poke.
    Http {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connection: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        equals: Option<serde_json::Value>,
    },
    /// Another DAG's task (every instance of it), or its whole run without `external_task_id`, for the same logical
    /// date is in one of `allowed_states` (Airflow's ExternalTaskSensor). One in `failed_states` fails the poke.
    /// The server reads the states when it hands each poke to a worker, so this type always pokes in `reschedule`
    /// mode.
    ExternalTask {
        external_dag_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_task_id: Option<String>,
        #[serde(default = "default_allowed_states")]
        allowed_states: Vec<TaskState>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failed_states: Vec<TaskState>,
    },
}

fn default_allowed_states() -> Vec<TaskState> {
    vec![TaskState::Success]
}

impl SensorCondition {
    /// The mode a sensor of this condition takes when the file does not say.
    pub fn default_mode(&self) -> SensorMode {
        match self {
            SensorCondition::ExternalTask { .. } => SensorMode::Reschedule,
            SensorCondition::File { .. }
            | SensorCondition::Time { .. }
            | SensorCondition::Sql { .. }
            | SensorCondition::Http { .. } => SensorMode::Poke,
        }
    }
}

/// Whether an external-task sensor's condition holds for the `states` found (one per task instance, or the run's):
/// `Ok(true)` when there are some and all are allowed, `Err` naming the state when one is a failed state.
pub fn external_states_hold(
    allowed: &[TaskState],
    failed: &[TaskState],
    states: &[TaskState],
) -> Result<bool, TaskState> {
    if let Some(state) = states.iter().find(|s| failed.contains(s)) {
        return Err(*state);
    }
    Ok(!states.is_empty() && states.iter().all(|s| allowed.contains(s)))
}

/// A sensor as a worker runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorSpec {
    pub sensor: SensorCondition,
    #[serde(default)]
    pub mode: SensorMode,
    #[serde(with = "crate::duration::serde")]
    pub poke_interval: Duration,
    #[serde(with = "crate::duration::serde")]
    pub timeout: Duration,
    /// Skip instead of failing when the timeout passes.
    #[serde(default)]
    pub soft_fail: bool,
    /// Double the wait after each poke (capped by `max_wait` and by the time left before the timeout).
    #[serde(default)]
    pub exponential_backoff: bool,
    #[serde(default, with = "crate::duration::serde_opt", skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<Duration>,
}

impl SensorSpec {
    /// What is wrong with the sensor's settings, in words.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.poke_interval.is_zero() {
            problems.push("`poke_interval` must be longer than zero".to_owned());
        }
        if self.timeout.is_zero() {
            problems.push("`timeout` must be longer than zero".to_owned());
        }
        if let SensorCondition::Time { target_time, delta } = &self.sensor {
            match (target_time, delta) {
                (Some(_), Some(_)) | (None, None) => problems.push(
                    "a time sensor needs exactly one of `target_time` (a time of day) and `delta` (a duration)"
                        .to_owned(),
                ),
                (Some(time), None) => {
                    if let Err(e) = parse_time_of_day(time) {
                        problems.push(e);
                    }
                }
                (None, Some(_)) => {}
            }
        }
        if let SensorCondition::File { path, connection } = &self.sensor {
            if path.trim().is_empty() {
                problems.push("a file sensor's `path` must not be empty".to_owned());
            }
            // A template may render to an s3:// URL; a literal local path has no use for a connection.
            if connection.is_some() && !path.starts_with("s3://") && !path.contains("{{") {
                problems.push("a file sensor's `connection` is for s3:// paths (an aws connection)".to_owned());
            }
        }
        if let SensorCondition::Sql { connection, sql } = &self.sensor
            && (connection.trim().is_empty() || sql.trim().is_empty())
        {
            problems.push("a sql sensor needs a `connection` and a query in `sql`".to_owned());
        }
        if let SensorCondition::Http { url, field, equals, .. } = &self.sensor {
            if url.trim().is_empty() {
                problems.push("an http sensor needs a `url`".to_owned());
            }
            if equals.is_some() && field.is_none() {
                problems.push("`equals` compares a `field` of the response: name the field".to_owned());
            }
        }
        if let SensorCondition::ExternalTask { external_task_id, allowed_states, failed_states, .. } = &self.sensor {
            if self.mode == SensorMode::Poke {
                problems.push(
                    "an external_task sensor pokes in `reschedule` mode: the server answers each poke when it \
                     hands it to a worker"
                        .to_owned(),
                );
            }
            let run_states = RunState::ALL.map(|s| s.as_str());
            let not_run_state = allowed_states.iter().chain(failed_states).find(|s| !run_states.contains(&s.as_str()));
            if let (None, Some(state)) = (external_task_id, not_run_state) {
                problems.push(format!(
                    "without `external_task_id` the sensor waits for a DAG run, which is never {state} (run states: {})",
                    run_states.join(", ")
                ));
            }
            if allowed_states.is_empty() {
                problems.push("`allowed_states` must name at least one state".to_owned());
            }
        }
        problems
    }

    /// How long to wait before the next poke, after pokes that found the condition false for `elapsed` since the
    /// first one: `poke_interval`, or with exponential backoff `poke_interval × 2^(n-1)` after the n-th poke, never
    /// past `max_wait` nor past the timeout. The number of pokes is inferred from `elapsed`, so a reschedule-mode
    /// poke, which remembers nothing of the previous ones, waits as long as a poke-mode loop would.
    pub fn next_poke_in(&self, elapsed: Duration) -> Duration {
        if !self.exponential_backoff {
            return self.poke_interval;
        }
        // Pokes so far: the largest n with interval × (2^n − 1) ≤ elapsed (the waits of the pokes before).
        let mut pokes = 1u32;
        while pokes < 63
            && self.poke_interval.checked_mul((1u32 << pokes.min(31)).saturating_sub(1)).is_some_and(|d| d <= elapsed)
        {
            pokes += 1;
        }
        let factor = 1u32.checked_shl(pokes.saturating_sub(1)).unwrap_or(u32::MAX);
        let mut wait = self.poke_interval.checked_mul(factor).unwrap_or(Duration::MAX);
        if let Some(max_wait) = self.max_wait {
            wait = wait.min(max_wait);
        }
        let left = self.timeout.saturating_sub(elapsed);
        wait.min(left).max(Duration::from_secs(1).min(self.poke_interval))
    }

    /// Whether the sensor has waited for longer than its timeout.
    pub fn timed_out(&self, elapsed: Duration) -> bool {
        elapsed > self.timeout
    }
}

/// Whether a SQL sensor's first cell, as text (`None` for no row or null), is true in Python's sense.
pub fn first_cell_holds(cell: Option<&str>) -> bool {
    cell.is_some_and(|text| {
        let text = text.trim();
        !(text.is_empty() || text.eq_ignore_ascii_case("false") || text == "f" || text.parse::<f64>() == Ok(0.0))
    })
}

/// Whether an HTTP sensor's response body holds: its `field` equal to `equals`, or true in Python's sense (not
/// null, false, 0, "", [] or {}) without `equals`; any body without `field`.
pub fn response_holds(
    body: Option<&serde_json::Value>,
    field: Option<&str>,
    equals: Option<&serde_json::Value>,
) -> bool {
    use serde_json::Value;
    let Some(field) = field else { return true };
    let Some(value) = body.and_then(|b| b.pointer(&super::json_pointer(field))) else { return false };
    match equals {
        Some(expected) => value == expected,
        None => match value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
        },
    }
}

/// `HH:MM` or `HH:MM:SS`.
pub fn parse_time_of_day(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(text.trim(), "%H:%M"))
        .map_err(|_| format!("invalid `target_time` {text:?}: expected a time of day like \"14:30\" or \"06:00:30\""))
}

/// When a time sensor's condition becomes true: `target_time` on the day of `first_poke` in `tz`, or `delta` after
/// `interval_end`.
pub fn time_target(
    target_time: Option<&str>,
    delta: Option<Duration>,
    first_poke: DateTime<Utc>,
    interval_end: DateTime<Utc>,
    tz: Tz,
) -> Result<DateTime<Utc>, String> {
    if let Some(delta) = delta {
        let delta = chrono::Duration::from_std(delta).map_err(|_| format!("`delta` {delta:?} is too long"))?;
        return Ok(interval_end + delta);
    }
    let time = parse_time_of_day(target_time.unwrap_or_default())?;
    let local = first_poke.with_timezone(&tz).date_naive().and_time(time);
    // A time skipped by a daylight-saving change comes an hour later; a repeated one at its first occurrence.
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(local + chrono::Duration::hours(1))).earliest())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{local} does not exist in {tz}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(backoff: bool) -> SensorSpec {
        SensorSpec {
            sensor: SensorCondition::File { path: "x".into(), connection: None },
            mode: SensorMode::Poke,
            poke_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1000),
            soft_fail: false,
            exponential_backoff: backoff,
            max_wait: None,
        }
    }

    #[test]
    fn poke_interval_without_backoff_is_constant() {
        let s = sensor(false);
        for elapsed in [0, 5, 100, 999] {
            assert_eq!(s.next_poke_in(Duration::from_secs(elapsed)), Duration::from_secs(10));
        }
    }

    #[test]
    fn backoff_doubles_after_each_poke_and_stops_at_max_wait_and_timeout() {
        let mut s = sensor(true);
        // Pokes at 0, 10, 30, 70, 150 s: the waits before the next are 10, 20, 40, 80, 160 s.
        let rows = [(0, 10), (9, 10), (10, 20), (29, 20), (30, 40), (70, 80), (150, 160)];
        for (elapsed, wait) in rows {
            assert_eq!(s.next_poke_in(Duration::from_secs(elapsed)), Duration::from_secs(wait), "{elapsed}");
        }
        // Never past the timeout.
        assert_eq!(s.next_poke_in(Duration::from_secs(950)), Duration::from_secs(50));
        s.max_wait = Some(Duration::from_secs(30));
        assert_eq!(s.next_poke_in(Duration::from_secs(150)), Duration::from_secs(30));
        // Huge elapsed times saturate instead of overflowing.
        s.timeout = Duration::MAX;
        s.max_wait = None;
        assert!(s.next_poke_in(Duration::from_secs(u64::MAX / 4)) > Duration::from_secs(1));
    }

    #[test]
    fn timed_out_after_the_timeout_only() {
        let s = sensor(false);
        assert!(!s.timed_out(Duration::from_secs(1000)));
        assert!(s.timed_out(Duration::from_secs(1001)));
    }

    #[test]
    fn problems_of_bad_settings() {
        let mut s = sensor(false);
        assert!(s.problems().is_empty());
        s.poke_interval = Duration::ZERO;
        s.sensor = SensorCondition::Time { target_time: None, delta: None };
        let problems = s.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        s.sensor = SensorCondition::Time { target_time: Some("25:00".into()), delta: None };
        assert!(s.problems().iter().any(|p| p.contains("\"25:00\"")));
    }

    #[test]
    fn time_targets_follow_time_sensor_and_time_delta_sensor() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)).expect("date");
        let first = at("2026-03-10T20:00:00Z");
        let end = at("2026-03-10T00:00:00Z");
        let paris = chrono_tz::Europe::Paris;
        assert_eq!(time_target(Some("22:30"), None, first, end, paris), Ok(at("2026-03-10T21:30:00Z")));
        assert_eq!(time_target(Some("06:00:30"), None, first, end, Tz::UTC), Ok(at("2026-03-10T06:00:30Z")));
        let delta = Some(Duration::from_secs(5400));
        assert_eq!(time_target(None, delta, first, end, paris), Ok(at("2026-03-10T01:30:00Z")));
        // 02:30 does not exist in Paris on 2026-03-29: an hour later.
        let spring = at("2026-03-29T10:00:00Z");
        assert_eq!(time_target(Some("02:30"), None, spring, end, paris), Ok(at("2026-03-29T01:30:00Z")));
    }

    #[test]
    fn external_states_hold_when_all_are_allowed_and_fail_on_a_failed_one() {
        use TaskState::*;
        let (allowed, failed) = ([Success, Skipped], [Failed]);
        let rows: &[(&[TaskState], Result<bool, TaskState>)] = &[
            (&[], Ok(false)),
            (&[Running], Ok(false)),
            (&[Success, Running], Ok(false)),
            (&[Success, Skipped], Ok(true)),
            (&[Success, Failed], Err(Failed)),
        ];
        for (states, expected) in rows {
            assert_eq!(external_states_hold(&allowed, &failed, states), *expected, "{states:?}");
        }
        let mut s = sensor(false);
        s.sensor = SensorCondition::ExternalTask {
            external_dag_id: "other".into(),
            external_task_id: Option::None,
            allowed_states: vec![UpstreamFailed],
            failed_states: Vec::new(),
        };
        let problems = s.problems();
        assert!(problems.iter().any(|p| p.contains("`reschedule` mode")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("never upstream_failed")), "{problems:?}");
    }

    #[test]
    fn a_first_cell_holds_when_python_would_call_it_true() {
        let rows = [
            (None, false),
            (Some(""), false),
            (Some("0"), false),
            (Some("0.0"), false),
            (Some("false"), false),
            (Some("f"), false),
            (Some("1"), true),
            (Some("t"), true),
            (Some("true"), true),
            (Some("ready"), true),
        ];
        for (cell, holds) in rows {
            assert_eq!(first_cell_holds(cell), holds, "{cell:?}");
        }
    }

    #[test]
    fn a_response_holds_when_its_field_is_as_asked() {
        let body = serde_json::json!({"job": {"state": "done", "rows": 0, "tags": ["a"]}});
        let rows = [
            (None, None, true),
            (Some("job.state"), Some(serde_json::json!("done")), true),
            (Some("/job/state"), Some(serde_json::json!("running")), false),
            (Some("job.rows"), None, false),
            (Some("job.tags"), None, true),
            (Some("job.missing"), None, false),
        ];
        for (field, equals, holds) in rows {
            assert_eq!(response_holds(Some(&body), field, equals.as_ref()), holds, "{field:?} {equals:?}");
        }
        assert!(!response_holds(None, Some("job"), None));
    }

    #[test]
    fn spec_round_trips_through_json() {
        let mut s = sensor(true);
        s.mode = SensorMode::Reschedule;
        s.sensor = SensorCondition::Time { target_time: None, delta: Some(Duration::from_secs(90)) };
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["sensor"], serde_json::json!({"type": "time", "delta": "1m30s"}));
        assert_eq!(json["mode"], "reschedule");
        assert_eq!(serde_json::from_value::<SensorSpec>(json).expect("read"), s);
    }
}
