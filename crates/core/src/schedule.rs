//! When a DAG runs: schedules, and Airflow's data-interval semantics.
//!
//! A scheduled run covers a data interval `[start, end)` and is created once the interval is over, at `end`; its
//! `logical_date` is `start` (Airflow's `CronDataIntervalTimetable`). So a `@daily` DAG's run for 2026-01-01 starts
//! just after midnight on 2026-01-02. Cron expressions are matched in the DAG's timezone, so `0 3 * * *` in
//! Europe/Paris stays at 03:00 local across DST changes (its UTC time shifts by an hour), while an hourly cron
//! neither repeats nor skips an hour in UTC. Other crons follow Airflow exactly at a change (see `Ticks`): a local
//! time skipped by DST moves forward by the gap, and a repeated one fires once, at its second occurrence.
//!
//! With `catchup`, every interval from the first cron tick at or after `start_date` is run, one after another;
//! without it only the latest complete interval is (Airflow's `_skip_to_latest`), and never one before the interval
//! following the last run. No run starts (has a logical date) after `end_date`.

mod assets;
mod cron;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use self::assets::AssetCondition;
pub use self::cron::CronExpr;

/// A DAG's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `schedule: null`: runs are only triggered by hand (or the API).
    Manual,
    /// `@once`: one run, at `start_date`.
    Once,
    /// A cron expression or preset; [`CronExpr::source`] keeps the expression and `preset` the preset name if any.
    Cron(Cron),
    /// `{every: 30m}`: back-to-back intervals of this length from `start_date` (Airflow's `timedelta` schedule).
    Every(std::time::Duration),
    /// `{event_dates: [...]}`: one run at each listed time (Airflow's `EventsTimetable`).
    Events(Events),
    /// Runs are triggered when the condition on asset updates holds (outside the timetable) and, with a cron, also
    /// on the cron (Airflow's `AssetOrTimeSchedule`).
    Assets { condition: AssetCondition, or_cron: Option<Cron> },
}

/// A cron schedule, with the preset it was written as (`@daily`), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    pub expr: CronExpr,
    pub preset: Option<String>,
}

impl Cron {
    /// The preset, or else the expression.
    fn summary(&self) -> String {
        self.preset.clone().unwrap_or_else(|| self.expr.source().to_owned())
    }
}

/// Runs at listed times, as Airflow's `EventsTimetable`: each run's logical date and data interval are its event
/// (`[event, event]`), and it is created when the event comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    dates: Vec<DateTime<Utc>>,
    description: Option<String>,
}

impl Events {
    /// The dates are sorted and a date listed twice runs once.
    pub fn new(mut dates: Vec<DateTime<Utc>>, description: Option<String>) -> Events {
        dates.sort();
        dates.dedup();
        Events { dates, description }
    }

    /// The first event after the last run's (`after`) that is not before `earliest`.
    fn first(&self, earliest: Option<DateTime<Utc>>, after: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        self.dates.iter().copied().find(|d| earliest.is_none_or(|e| *d >= e) && after.is_none_or(|a| *d > a))
    }

    /// The latest event at or before `t`.
    fn latest(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.dates.iter().rev().copied().find(|d| *d <= t)
    }
}

/// Airflow's `cron_presets`.
pub const PRESETS: [(&str, &str); 6] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@quarterly", "0 0 1 */3 *"),
    ("@yearly", "0 0 1 1 *"),
];

/// Parse a schedule expression: `@once`, a preset, or a 5-field cron.
pub fn parse_schedule(expr: &str) -> Result<Schedule, String> {
    let expr = expr.trim();
    if expr == "@once" {
        return Ok(Schedule::Once);
    }
    if expr.starts_with('@') {
        let cron = PRESETS.iter().find(|(name, _)| *name == expr).map(|(_, cron)| *cron).ok_or_else(|| {
            let names = PRESETS.iter().map(|(n, _)| *n).chain(["@once"]);
            format!(
                "unknown schedule preset {expr:?}{} (expected @once, @hourly, @daily, @weekly, @monthly, \
                     @quarterly, @yearly or a cron expression)",
                crate::load::suggest_hint(expr, names)
            )
        })?;
        return Ok(Schedule::Cron(Cron { expr: CronExpr::parse(cron)?, preset: Some(expr.to_owned()) }));
    }
    Ok(Schedule::Cron(Cron { expr: CronExpr::parse(expr)?, preset: None }))
}

/// The interval of data a run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DataInterval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A DAG's schedule with the settings that bound it: when runs are due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timetable {
    schedule: Schedule,
    tz: Tz,
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
    catchup: bool,
}

impl Timetable {
    pub fn new(
        schedule: Schedule,
        tz: Tz,
        start_date: Option<DateTime<Utc>>,
        end_date: Option<DateTime<Utc>>,
        catchup: bool,
    ) -> Timetable {
        Timetable { schedule, tz, start_date, end_date, catchup }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    pub fn start_date(&self) -> Option<DateTime<Utc>> {
        self.start_date
    }

    pub fn end_date(&self) -> Option<DateTime<Utc>> {
        self.end_date
    }

    pub fn catchup(&self) -> bool {
        self.catchup
    }

    /// Whether runs are created by time (cron or `@once`), as opposed to by hand or by assets.
    pub fn is_time_based(&self) -> bool {
        matches!(
            self.schedule,
            Schedule::Once
                | Schedule::Cron(_)
                | Schedule::Every(_)
                | Schedule::Events(_)
                | Schedule::Assets { or_cron: Some(_), .. }
        )
    }

    /// How a periodic schedule steps through time; None for the others.
    fn steps(&self) -> Option<Steps<'_>> {
        match &self.schedule {
            Schedule::Cron(cron) | Schedule::Assets { or_cron: Some(cron), .. } => {
                Some(Steps::Cron(Ticks { cron: &cron.expr, tz: self.tz }))
            }
            Schedule::Every(every) => Duration::from_std(*every).ok().map(Steps::Every),
            Schedule::Manual | Schedule::Once | Schedule::Events(_) | Schedule::Assets { or_cron: None, .. } => None,
        }
    }

    /// The data interval of the next scheduled run to create, given the interval of the latest scheduled run (None if
    /// none yet), if it is due at `now` (its end <= now; for @once: start_date <= now). None if nothing is due.
    pub fn next_due(&self, last: Option<&DataInterval>, now: DateTime<Utc>) -> Option<DataInterval> {
        self.next_interval(last, now).filter(|i| i.end <= now)
    }

    /// The next run's interval whether or not it is due yet (for display: next_dagrun fields). None for
    /// manual/assets or past end_date.
    pub fn next_interval(&self, last: Option<&DataInterval>, now: DateTime<Utc>) -> Option<DataInterval> {
        if let Schedule::Events(events) = &self.schedule {
            return self.next_event(events, last, now);
        }
        let start_date = self.start_date?;
        let start = match &self.schedule {
            Schedule::Manual | Schedule::Events(_) | Schedule::Assets { or_cron: None, .. } => return None,
            Schedule::Once if last.is_some() => return None,
            Schedule::Once => {
                return self.within_end_date(start_date).then_some(DataInterval { start: start_date, end: start_date });
            }
            Schedule::Cron(_) | Schedule::Every(_) | Schedule::Assets { or_cron: Some(_), .. } => {
                let steps = self.steps()?;
                let mut earliest = steps.align_to_next(start_date)?;
                if !self.catchup {
                    // Airflow's _skip_to_latest: the start of the latest complete interval.
                    if let Some(latest) = steps.latest_end(now).and_then(|end| steps.prev(end)) {
                        earliest = earliest.max(latest);
                    }
                }
                match last {
                    None => earliest,
                    Some(last) => {
                        let start = steps.align_to_prev(last.end)?.max(earliest);
                        // A new cron can align the last end onto or before the last run's start; a run for that
                        // logical date exists, so step once past it, as Airflow does.
                        if start <= last.start { steps.next(start)? } else { start }
                    }
                }
            }
        };
        if !self.within_end_date(start) {
            return None;
        }
        let end = self.steps()?.next(start)?;
        Some(DataInterval { start, end })
    }

    /// The next event's run: with catchup, each event from `start_date` on in turn; without it, none before the
    /// latest event already past. Airflow plans a DAG's next event when it reads the DAG and after each run, so it
    /// runs no event that was past then and, after a pause, only the event it had planned; Sluice, which plans
    /// nothing ahead, runs the latest past event instead, as a cron without catchup runs the latest complete interval.
    fn next_event(&self, events: &Events, last: Option<&DataInterval>, now: DateTime<Utc>) -> Option<DataInterval> {
        let mut earliest = self.start_date;
        if !self.catchup {
            earliest = earliest.max(events.latest(now));
        }
        let at = events.first(earliest, last.map(|l| l.end)).filter(|at| self.within_end_date(*at))?;
        Some(DataInterval { start: at, end: at })
    }

    /// The data interval of a run triggered by hand at `run_after`: for a cron, the latest complete interval (as
    /// Airflow's `infer_manual_data_interval`); otherwise the empty interval at `run_after`.
    /// The interval right after `interval`, whatever `catchup` says (Airflow's `next_dagrun_info` with an
    /// unrestricted catchup): what a `latest_only` task compares the time with.
    pub fn following(&self, interval: &DataInterval) -> Option<DataInterval> {
        let every = Timetable { catchup: true, ..self.clone() };
        every.next_interval(Some(interval), interval.end)
    }

    pub fn infer_manual_data_interval(&self, run_after: DateTime<Utc>) -> DataInterval {
        if let Some(steps) = self.steps()
            && let Some(end) = steps.align_to_prev(run_after)
            && let Some(start) = steps.prev(end)
        {
            return DataInterval { start, end };
        }
        DataInterval { start: run_after, end: run_after }
    }

    /// The data intervals whose logical date (their start) lies in `[from, to]`, oldest first and at most `limit`, as
    /// a backfill creates them: by the cron alone, whatever `start_date`, `end_date` and `catchup` say. Empty for
    /// schedules that are not a cron.
    pub fn intervals_between(&self, from: DateTime<Utc>, to: DateTime<Utc>, limit: usize) -> Vec<DataInterval> {
        let Some(ticks) = self.steps() else { return Vec::new() };
        let mut intervals = Vec::new();
        let mut start = ticks.align_to_next(from);
        while let Some(at) = start.filter(|at| *at <= to && intervals.len() < limit) {
            let Some(end) = ticks.next(at) else { break };
            intervals.push(DataInterval { start: at, end });
            start = Some(end);
        }
        intervals
    }

    /// Whether runs follow a cron (Airflow's `timetable.periodic`, which is also what makes a DAG backfillable).
    pub fn is_periodic(&self) -> bool {
        self.steps().is_some()
    }

    /// The schedule as Airflow shows it: `"0 3 * * *"`, `"@daily"`, `"@once"`, `"None"`, or the assets.
    pub fn summary(&self) -> String {
        match &self.schedule {
            Schedule::Manual => "None".to_owned(),
            Schedule::Once => "@once".to_owned(),
            Schedule::Cron(cron) => cron.summary(),
            Schedule::Every(every) => format!("every {}", crate::format_duration(*every)),
            Schedule::Events(events) => {
                events.description.clone().unwrap_or_else(|| format!("{} events", events.dates.len()))
            }
            Schedule::Assets { condition, or_cron: None } => format!("assets: {condition}"),
            Schedule::Assets { condition, or_cron: Some(cron) } => format!("{} or assets: {condition}", cron.summary()),
        }
    }

    fn within_end_date(&self, logical_date: DateTime<Utc>) -> bool {
        self.end_date.is_none_or(|end| logical_date <= end)
    }
}

/// How a periodic schedule steps through time: a cron's ticks, or a fixed interval (which, as Airflow's
/// `DeltaDataIntervalTimetable`, aligns to nothing: its intervals start at `start_date`).
enum Steps<'a> {
    Cron(Ticks<'a>),
    Every(Duration),
}

impl Steps<'_> {
    fn next(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Steps::Cron(ticks) => ticks.next(t),
            Steps::Every(every) => t.checked_add_signed(*every),
        }
    }

    fn prev(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Steps::Cron(ticks) => ticks.prev(t),
            Steps::Every(every) => t.checked_sub_signed(*every),
        }
    }

    fn align_to_next(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Steps::Cron(ticks) => ticks.align_to_next(t),
            Steps::Every(_) => Some(t),
        }
    }

    fn align_to_prev(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Steps::Cron(ticks) => ticks.align_to_prev(t),
            Steps::Every(_) => Some(t),
        }
    }

    /// The end of the latest complete interval at `now`, for a DAG without catchup: a fixed interval rounds `now`
    /// down to a multiple of itself since the epoch, as Airflow's `_round` does, so that a late scheduler pass does
    /// not shift every later interval.
    fn latest_end(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Steps::Cron(ticks) => ticks.align_to_prev(now),
            Steps::Every(every) => {
                let length = every.num_milliseconds().max(1);
                now.checked_sub_signed(Duration::milliseconds(now.timestamp_millis().rem_euclid(length)))
            }
        }
    }
}

/// The instants at which a cron fires in a timezone, computed as Airflow's `CronMixin` does, so that runs around
/// daylight-saving changes get the logical dates an Airflow deployment would give them. The cron is matched in wall
/// time; the wall time found is then placed in the timezone in one of two ways (Airflow's `_get_next`/`_get_prev`):
///
/// - a cron that fires in every hour moves the given instant by the wall-clock distance to the match, so it steps
///   in real time across a change: both copies of a repeated hour run, and an hour skipped costs no run;
/// - any other cron reads the matched wall time as pendulum does with `fold=1` ([`local_to_utc`]): a repeated time
///   is its second occurrence, after the clocks went back, and a skipped one moves forward by the gap.
///
/// The second way makes some steps depend on where they start: from the first occurrence of a repeated time, the
/// next tick of a daily cron is the next day's, as the wall time it starts from has already matched.
struct Ticks<'a> {
    cron: &'a CronExpr,
    tz: Tz,
}

impl Ticks<'_> {
    fn naive(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.tz).naive_local()
    }

    /// The instant of `wall`, a match of the cron found from `t`, whose wall time is `from`.
    fn place(&self, t: DateTime<Utc>, from: NaiveDateTime, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        if self.cron.covers_every_hour() {
            t.checked_add_signed(wall - from)
        } else {
            Some(local_to_utc(self.tz, wall))
        }
    }

    /// The first tick after `t` (Airflow's `_get_next`).
    fn next(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let from = self.naive(t);
        self.place(t, from, self.cron.next_after(from)?)
    }

    /// The last tick before `t` (Airflow's `_get_prev`).
    fn prev(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let from = self.naive(t);
        self.place(t, from, self.cron.prev_before(from)?)
    }

    /// `t` if it is a tick, else the next tick (Airflow's `_align_to_next`: `t` is a tick when the tick before the
    /// next one is `t`).
    fn align_to_next(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = self.next(t)?;
        Some(if self.prev(next) == Some(t) { t } else { next })
    }

    /// `t` if it is a tick, else the previous tick (Airflow's `_align_to_prev`).
    fn align_to_prev(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let prev = self.prev(t)?;
        Some(if self.next(prev) == Some(t) { t } else { prev })
    }
}

/// The instant of a wall time in `tz`, as Airflow's `make_aware` and pendulum read it (with `fold=1`): a wall time
/// skipped by DST is moved forward by the gap (02:30 becomes 03:30 when clocks jump from 02:00 to 03:00); a
/// repeated one is its second occurrence, after the clocks went back.
pub fn local_to_utc(tz: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) | LocalResult::Ambiguous(_, t) => t.with_timezone(&Utc),
        LocalResult::None => {
            // Read the wall time with the offset in force before the gap, which no DST change exceeds 3 hours.
            let before = tz.offset_from_utc_datetime(&(wall - Duration::hours(3))).fix();
            Utc.from_utc_datetime(&(wall - Duration::seconds(i64::from(before.local_minus_utc()))))
        }
    }
}

#[cfg(test)]
mod tests;
