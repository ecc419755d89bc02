use super::*;
use chrono_tz::Europe::Paris;
use proptest::prelude::*;

mod airflow_dst;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn timetable(expr: &str, tz: Tz, start: &str, end: Option<&str>, catchup: bool) -> Timetable {
    let schedule = parse_schedule(expr).expect(expr);
    Timetable::new(schedule, tz, Some(utc(start)), end.map(utc), catchup)
}

/// The intervals a scheduler would create, one after another, while they are due at `now` (at most `max`).
fn due_sequence(tt: &Timetable, now: &str, max: usize) -> Vec<String> {
    let now = utc(now);
    let mut last: Option<DataInterval> = None;
    let mut out = Vec::new();
    while let Some(next) = tt.next_due(last.as_ref(), now) {
        out.push(format!("{} {}", next.start.to_rfc3339(), next.end.to_rfc3339()));
        last = Some(next);
        if out.len() == max {
            break;
        }
    }
    out
}

/// The next `n` intervals, due or not.
fn intervals(tt: &Timetable, n: usize) -> Vec<DataInterval> {
    let now = utc("2100-01-01T00:00:00Z");
    let mut last: Option<DataInterval> = None;
    (0..n)
        .map_while(|_| {
            let next = tt.next_interval(last.as_ref(), now)?;
            last = Some(next);
            Some(next)
        })
        .collect()
}

fn ends(tt: &Timetable, n: usize) -> Vec<String> {
    intervals(tt, n).iter().map(|i| i.end.to_rfc3339()).collect()
}

#[test]
fn daily_at_3_in_paris_shifts_in_utc_across_dst() {
    let tt = timetable("0 3 * * *", Paris, "2026-03-27T00:00:00Z", None, true);
    assert_eq!(ends(&tt, 3), ["2026-03-28T02:00:00+00:00", "2026-03-29T01:00:00+00:00", "2026-03-30T01:00:00+00:00"]);
    let tt = timetable("0 3 * * *", Paris, "2026-10-23T00:00:00Z", None, true);
    assert_eq!(ends(&tt, 3), ["2026-10-24T01:00:00+00:00", "2026-10-25T02:00:00+00:00", "2026-10-26T02:00:00+00:00"]);
}

#[test]
fn hourly_neither_repeats_nor_skips_across_dst() {
    for start in ["2026-10-24T21:00:00Z", "2026-03-28T21:00:00Z"] {
        let tt = timetable("0 * * * *", Paris, start, None, true);
        let list = intervals(&tt, 12);
        assert_eq!(list.len(), 12);
        assert_eq!(list[0].start, utc(start));
        for i in &list {
            assert_eq!(i.end - i.start, Duration::hours(1), "{i:?}");
        }
    }
}

#[test]
fn wall_times_skipped_or_repeated_by_dst() {
    // 02:30 does not exist on 2026-03-29 in Paris: the run moves forward by the gap, to 03:30 CEST.
    let tt = timetable("30 2 * * *", Paris, "2026-03-28T00:00:00Z", None, true);
    assert_eq!(ends(&tt, 2), ["2026-03-29T01:30:00+00:00", "2026-03-30T00:30:00+00:00"]);
    // 02:30 happens twice on 2026-10-25: a daily cron runs once, at the second, after the clocks went back.
    let tt = timetable("30 2 * * *", Paris, "2026-10-24T00:00:00Z", None, true);
    assert_eq!(ends(&tt, 2), ["2026-10-25T01:30:00+00:00", "2026-10-26T01:30:00+00:00"]);
}

#[test]
fn catchup_runs_every_interval_in_turn() {
    let tt = timetable("@daily", Tz::UTC, "2026-01-01T00:00:00Z", None, true);
    assert_eq!(
        due_sequence(&tt, "2026-01-04T12:00:00Z", 10),
        [
            "2026-01-01T00:00:00+00:00 2026-01-02T00:00:00+00:00",
            "2026-01-02T00:00:00+00:00 2026-01-03T00:00:00+00:00",
            "2026-01-03T00:00:00+00:00 2026-01-04T00:00:00+00:00",
        ]
    );
    // A start_date between ticks starts at the next tick.
    let tt = timetable("@daily", Tz::UTC, "2026-01-01T10:00:00Z", None, true);
    assert_eq!(due_sequence(&tt, "2026-01-03T00:00:00Z", 10), ["2026-01-02T00:00:00+00:00 2026-01-03T00:00:00+00:00"]);
}

#[test]
fn without_catchup_only_the_latest_complete_interval() {
    let tt = timetable("@daily", Tz::UTC, "2026-01-01T00:00:00Z", None, false);
    let now = utc("2026-01-04T12:00:00Z");
    let latest = DataInterval { start: utc("2026-01-03T00:00:00Z"), end: utc("2026-01-04T00:00:00Z") };
    assert_eq!(tt.next_due(None, now), Some(latest));
    // After a long pause, skip ahead to the latest.
    let old = DataInterval { start: utc("2026-01-01T00:00:00Z"), end: utc("2026-01-02T00:00:00Z") };
    assert_eq!(tt.next_due(Some(&old), now), Some(latest));
    // Never again or before the one after the last run.
    assert_eq!(tt.next_due(Some(&latest), now), None);
    assert_eq!(tt.next_interval(Some(&latest), now).map(|i| i.start), Some(utc("2026-01-04T00:00:00Z")));
    // Exactly on a boundary: the interval ending now is due.
    assert_eq!(tt.next_due(None, utc("2026-01-04T00:00:00Z")), Some(latest));
}

#[test]
fn start_date_in_the_future() {
    for catchup in [true, false] {
        let tt = timetable("@daily", Tz::UTC, "2026-06-01T00:00:00Z", None, catchup);
        let now = utc("2026-01-04T12:00:00Z");
        assert_eq!(tt.next_due(None, now), None);
        assert_eq!(
            tt.next_interval(None, now),
            Some(DataInterval { start: utc("2026-06-01T00:00:00Z"), end: utc("2026-06-02T00:00:00Z") })
        );
    }
}

#[test]
fn end_date_bounds_the_logical_date() {
    let tt = timetable("@daily", Tz::UTC, "2026-01-01T00:00:00Z", Some("2026-01-02T00:00:00Z"), true);
    assert_eq!(
        due_sequence(&tt, "2026-02-01T00:00:00Z", 10),
        ["2026-01-01T00:00:00+00:00 2026-01-02T00:00:00+00:00", "2026-01-02T00:00:00+00:00 2026-01-03T00:00:00+00:00",]
    );
    let last = DataInterval { start: utc("2026-01-02T00:00:00Z"), end: utc("2026-01-03T00:00:00Z") };
    assert_eq!(tt.next_interval(Some(&last), utc("2026-02-01T00:00:00Z")), None);
}

#[test]
fn once_runs_once_at_start_date() {
    let tt = timetable("@once", Tz::UTC, "2026-01-01T10:00:00Z", None, false);
    let start = utc("2026-01-01T10:00:00Z");
    let once = DataInterval { start, end: start };
    assert_eq!(tt.next_due(None, utc("2026-01-01T09:59:59Z")), None);
    assert_eq!(tt.next_interval(None, utc("2026-01-01T09:59:59Z")), Some(once));
    assert_eq!(tt.next_due(None, start), Some(once));
    assert_eq!(tt.next_due(Some(&once), utc("2027-01-01T00:00:00Z")), None);
    assert_eq!(tt.summary(), "@once");
}

#[test]
fn manual_and_assets_are_never_due() {
    let now = utc("2027-01-01T00:00:00Z");
    let assets = Schedule::Assets { condition: AssetCondition::Uri("s3://bucket/x".into()), or_cron: None };
    for schedule in [Schedule::Manual, assets] {
        let tt = Timetable::new(schedule, Tz::UTC, Some(utc("2026-01-01T00:00:00Z")), None, true);
        assert_eq!(tt.next_due(None, now), None);
        assert_eq!(tt.next_interval(None, now), None);
        assert!(!tt.is_time_based());
    }
    let manual = Timetable::new(Schedule::Manual, Tz::UTC, None, None, false);
    assert_eq!(manual.summary(), "None");
}

#[test]
fn weekday_cron_skips_the_weekend() {
    // 2026-01-02 is a Friday.
    let tt = timetable("0 9 * * 1-5", Tz::UTC, "2026-01-02T00:00:00Z", None, true);
    let list = intervals(&tt, 3);
    let fmt = |t: DateTime<Utc>| t.format("%a %d %H:%M").to_string();
    let got: Vec<(String, String)> = list.iter().map(|i| (fmt(i.start), fmt(i.end))).collect();
    assert_eq!(
        got,
        [
            ("Fri 02 09:00".to_owned(), "Mon 05 09:00".to_owned()),
            ("Mon 05 09:00".to_owned(), "Tue 06 09:00".to_owned()),
            ("Tue 06 09:00".to_owned(), "Wed 07 09:00".to_owned()),
        ]
    );
}

#[test]
fn presets_and_summary() {
    let rows = [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
    ];
    for (preset, cron) in rows {
        let Ok(Schedule::Cron(parsed)) = parse_schedule(preset) else {
            panic!("{preset}");
        };
        assert_eq!(parsed.expr.source(), cron);
        let tt = Timetable::new(Schedule::Cron(parsed), Tz::UTC, None, None, false);
        assert_eq!(tt.summary(), preset);
    }
    let tt = timetable("0  3 * * *", Tz::UTC, "2026-01-01T00:00:00Z", None, false);
    assert_eq!(tt.summary(), "0 3 * * *");
    let err = parse_schedule("@dayly").expect_err("unknown preset");
    assert!(err.contains("did you mean `@daily`?"), "{err}");
    assert!(parse_schedule("0 3 * *").is_err());
}

#[test]
fn manual_runs_cover_the_latest_complete_interval() {
    let tt = timetable("@daily", Tz::UTC, "2026-01-01T00:00:00Z", None, false);
    let i = tt.infer_manual_data_interval(utc("2026-01-05T01:00:00Z"));
    assert_eq!((i.start, i.end), (utc("2026-01-04T00:00:00Z"), utc("2026-01-05T00:00:00Z")));
    let manual = Timetable::new(Schedule::Manual, Tz::UTC, None, None, false);
    let at = utc("2026-01-05T01:00:00Z");
    assert_eq!(manual.infer_manual_data_interval(at), DataInterval { start: at, end: at });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn catchup_intervals_are_contiguous(
        minutes in 0i64..(2 * 366 * 24 * 60),
        expr in prop::sample::select(vec!["0 * * * *", "*/20 * * * *", "30 2 * * *", "0 3 * * 1-5", "0 0 1 * *", "15 */3 * * *"]),
        tz in prop::sample::select(vec![Tz::UTC, Paris, chrono_tz::America::New_York, chrono_tz::Australia::Lord_Howe]),
    ) {
        let start = utc("2025-01-01T00:00:00Z") + Duration::minutes(minutes);
        let tt = Timetable::new(parse_schedule(expr).expect("cron"), tz, Some(start), None, true);
        let list = intervals(&tt, 30);
        prop_assert_eq!(list.len(), 30);
        prop_assert!(list[0].start >= start);
        for pair in list.windows(2) {
            prop_assert_eq!(pair[1].start, pair[0].end);
        }
        for i in &list {
            prop_assert!(i.start < i.end, "{:?}", i);
        }
    }
}

#[test]
fn backfill_intervals_follow_the_cron_between_the_dates_in_the_dags_timezone() {
    // start_date and catchup do not limit a backfill.
    let tt = timetable("@daily", Paris, "2026-06-01T00:00:00Z", None, false);
    let starts: Vec<String> = tt
        .intervals_between(utc("2026-03-27T12:00:00Z"), utc("2026-03-30T00:00:00Z"), 100)
        .iter()
        .map(|i| format!("{} {}", i.start.to_rfc3339(), i.end.to_rfc3339()))
        .collect();
    // Paris midnights; the night of 29 March is one hour shorter (DST starts).
    assert_eq!(
        starts,
        [
            "2026-03-27T23:00:00+00:00 2026-03-28T23:00:00+00:00",
            "2026-03-28T23:00:00+00:00 2026-03-29T22:00:00+00:00",
            "2026-03-29T22:00:00+00:00 2026-03-30T22:00:00+00:00",
        ]
    );
    assert_eq!(tt.intervals_between(utc("2026-01-01T00:00:00Z"), utc("2026-12-31T00:00:00Z"), 5).len(), 5);
    let manual = Timetable::new(Schedule::Manual, Tz::UTC, None, None, false);
    assert!(manual.intervals_between(utc("2026-01-01T00:00:00Z"), utc("2026-02-01T00:00:00Z"), 10).is_empty());
}

fn every(minutes: u64, start: &str, catchup: bool) -> Timetable {
    let schedule = Schedule::Every(std::time::Duration::from_secs(minutes * 60));
    Timetable::new(schedule, Paris, Some(utc(start)), None, catchup)
}

#[test]
fn an_every_schedule_steps_from_start_date_as_airflows_delta_timetable() {
    // With catchup: back-to-back intervals from start_date itself, not aligned to the clock or the timezone.
    let tt = every(30, "2026-03-01T00:10:00Z", true);
    assert_eq!(
        due_sequence(&tt, "2026-03-01T01:20:00Z", 10),
        ["2026-03-01T00:10:00+00:00 2026-03-01T00:40:00+00:00", "2026-03-01T00:40:00+00:00 2026-03-01T01:10:00+00:00",]
    );
    // Across a DST change the interval keeps its length in real time.
    let tt = every(60, "2026-03-29T00:30:00Z", true);
    let got = intervals(&tt, 3);
    assert!(got.iter().all(|i| i.end - i.start == Duration::hours(1)), "{got:?}");
    // Without catchup: the latest interval that ended at a multiple of `every` since the epoch (Airflow's
    // _skip_to_latest with _round), then on from there.
    let tt = every(30, "2026-03-01T00:10:00Z", false);
    assert_eq!(due_sequence(&tt, "2026-03-05T12:07:00Z", 10), ["2026-03-05T11:30:00+00:00 2026-03-05T12:00:00+00:00"]);
    // A late pass does not shift the next interval: it starts where the last one ended.
    let last = DataInterval { start: utc("2026-03-05T11:29:00Z"), end: utc("2026-03-05T11:59:00Z") };
    let next = tt.next_interval(Some(&last), utc("2026-03-05T12:29:30Z")).expect("the next one");
    assert_eq!(next.start, utc("2026-03-05T11:59:00Z"));
    let last = DataInterval { start: utc("2026-03-05T11:30:00Z"), end: utc("2026-03-05T12:00:00Z") };
    let next = tt.next_interval(Some(&last), utc("2026-03-05T12:10:00Z")).expect("the next one");
    assert_eq!((next.start, next.end), (utc("2026-03-05T12:00:00Z"), utc("2026-03-05T12:30:00Z")));
    assert!(tt.next_due(Some(&last), utc("2026-03-05T12:10:00Z")).is_none(), "not over yet");
    // A manual run covers the interval that ends at its run_after; a backfill steps from its start.
    let manual = tt.infer_manual_data_interval(utc("2026-03-05T12:07:00Z"));
    assert_eq!((manual.start, manual.end), (utc("2026-03-05T11:37:00Z"), utc("2026-03-05T12:07:00Z")));
    let backfill = tt.intervals_between(utc("2026-03-02T00:00:00Z"), utc("2026-03-02T01:00:00Z"), 10);
    assert_eq!(backfill.len(), 3);
    assert!(tt.is_periodic() && tt.is_time_based());
    assert_eq!(tt.summary(), "every 30m");
}

/// Loads `e.yaml`, a one-task DAG whose second line is `schedule: <schedule>`, followed by the header lines `more`;
/// its errors are joined.
fn load_schedule(schedule: &str, more: &str) -> Result<crate::Dag, String> {
    let source = format!("dag_id: e\nschedule: {schedule}\n{more}tasks:\n  - {{id: t, script: \"true\"}}\n");
    crate::load_dag("e.yaml", &source).map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
}

#[test]
fn every_is_written_as_a_mapping_and_checked() {
    let load = |schedule: &str| load_schedule(schedule, "start_date: 2026-01-01\n");
    let dag = load("{every: 1h30m}").expect("valid");
    assert_eq!(dag.timetable().schedule(), &Schedule::Every(std::time::Duration::from_secs(5400)));
    let json = serde_json::to_value(&dag.spec).expect("JSON");
    assert_eq!(json["schedule"], serde_json::json!({"every": "1h30m"}));
    let back: crate::DagSpec = serde_json::from_value(json).expect("read back");
    assert_eq!(back, dag.spec);
    let zero = load("{every: 0s}").expect_err("zero");
    assert!(zero.contains("e.yaml:2:19: `schedule.every` must be above 0"), "{zero}");
    assert!(load("{every: 1h, assets: [x]}").expect_err("both").contains("one of `every`, `event_dates` or `assets`"));
    assert!(load("{evry: 1h}").expect_err("typo").contains("unknown field `evry`"));
    let source = "dag_id: e\nschedule: {every: 1h}\ntasks:\n  - {id: t, script: \"true\"}\n";
    let err = crate::load_dag("e.yaml", source).expect_err("no start_date")[0].to_string();
    assert!(err.contains("schedule every 1h needs a `start_date`"), "{err}");
}

fn events(dates: &[&str], start: Option<&str>, catchup: bool) -> Timetable {
    let schedule = Schedule::Events(Events::new(dates.iter().map(|d| utc(d)).collect(), None));
    Timetable::new(schedule, Paris, start.map(utc), None, catchup)
}

#[test]
fn events_run_at_each_listed_time_as_airflows_events_timetable() {
    // Unsorted, with a duplicate: sorted and run once each.
    let dates = ["2026-03-03T06:00:00Z", "2026-03-01T06:00:00Z", "2026-03-02T06:00:00Z", "2026-03-01T06:00:00Z"];
    let tt = events(&dates, None, true);
    // Each run's logical date and data interval are its event; nothing is due before it.
    assert_eq!(
        due_sequence(&tt, "2026-03-02T12:00:00Z", 10),
        ["2026-03-01T06:00:00+00:00 2026-03-01T06:00:00+00:00", "2026-03-02T06:00:00+00:00 2026-03-02T06:00:00+00:00"]
    );
    let last = DataInterval { start: utc("2026-03-02T06:00:00Z"), end: utc("2026-03-02T06:00:00Z") };
    let next = tt.next_interval(Some(&last), utc("2026-03-02T12:00:00Z")).expect("the third");
    assert_eq!(next.start, utc("2026-03-03T06:00:00Z"));
    let last = DataInterval { start: next.start, end: next.end };
    assert_eq!(tt.next_interval(Some(&last), utc("2027-01-01T00:00:00Z")), None, "no event left");
    assert!(tt.is_time_based() && !tt.is_periodic());
    assert_eq!(tt.summary(), "3 events");
    // start_date drops the events before it, end_date the ones after it.
    let tt = events(&dates, Some("2026-03-01T07:00:00Z"), true);
    assert_eq!(tt.next_due(None, utc("2026-03-05T00:00:00Z")).map(|i| i.start), Some(utc("2026-03-02T06:00:00Z")));
    let schedule = tt.schedule().clone();
    let tt = Timetable::new(schedule, Paris, None, Some(utc("2026-03-02T00:00:00Z")), true);
    assert_eq!(due_sequence(&tt, "2026-03-05T00:00:00Z", 10).len(), 1);
}

#[test]
fn without_catchup_events_start_from_the_latest_past_one() {
    let dates = ["2026-03-01T06:00:00Z", "2026-03-02T06:00:00Z", "2026-03-03T06:00:00Z"];
    let tt = events(&dates, None, false);
    assert_eq!(
        due_sequence(&tt, "2026-03-02T12:00:00Z", 10),
        ["2026-03-02T06:00:00+00:00 2026-03-02T06:00:00+00:00"],
        "the 1st is skipped"
    );
    // After a run, the next event runs when it comes, however late the pass.
    let last = DataInterval { start: utc("2026-03-02T06:00:00Z"), end: utc("2026-03-02T06:00:00Z") };
    assert_eq!(tt.next_due(Some(&last), utc("2026-03-03T05:59:00Z")), None);
    assert_eq!(
        tt.next_due(Some(&last), utc("2026-03-03T06:00:30Z")).map(|i| i.start),
        Some(utc("2026-03-03T06:00:00Z"))
    );
    // Before the first event, it is the next one.
    assert_eq!(tt.next_interval(None, utc("2026-02-01T00:00:00Z")).map(|i| i.start), Some(utc(dates[0])));
}

#[test]
fn events_are_written_as_airflows_event_dates() {
    let load = |schedule: &str| load_schedule(schedule, "timezone: Europe/Paris\n");
    let dag =
        load("{event_dates: [2026-03-02T06:00:00, \"2026-03-01T06:00:00Z\"]}").expect("valid without a start_date");
    let Schedule::Events(events) = dag.timetable().schedule() else { panic!("events") };
    // Local dates are read in the DAG's timezone.
    assert_eq!(events.dates, [utc("2026-03-01T06:00:00Z"), utc("2026-03-02T05:00:00Z")]);
    // A manual run's interval is not drawn from the events (Airflow's `restrict_to_events` is not offered).
    let manual = dag.timetable().infer_manual_data_interval(utc("2026-03-01T12:00:00Z"));
    assert_eq!(manual.start, utc("2026-03-01T12:00:00Z"));
    let json = serde_json::to_value(&dag.spec).expect("JSON");
    assert_eq!(json["schedule"], serde_json::json!({"event_dates": ["2026-03-02T06:00:00", "2026-03-01T06:00:00Z"]}));
    let back: crate::DagSpec = serde_json::from_value(json).expect("read back");
    assert_eq!(back, dag.spec);
    let dag = load("{event_dates: [2026-03-01], description: Race days}").expect("valid");
    assert_eq!(dag.timetable().summary(), "Race days");
    let empty = load("{event_dates: []}").expect_err("empty");
    assert!(empty.contains("e.yaml:2:25: `schedule.event_dates` must list at least one date"), "{empty}");
    assert!(load("{event_dates: [tomorrow]}").expect_err("bad date").contains("invalid date \"tomorrow\""));
    let stray = load("{every: 1h, description: x}").expect_err("stray");
    assert!(stray.contains("`description` goes with `event_dates` alone"), "{stray}");
    for airflow_only in ["restrict_to_events: true", "presorted: true"] {
        let err = load(&format!("{{event_dates: [2026-03-01], {airflow_only}}}")).expect_err(airflow_only);
        assert!(err.contains("unknown field"), "{err}");
    }
}

#[test]
fn asset_conditions_and_assets_or_cron_are_written_under_assets() {
    let dag = load_schedule("{assets: [a, b]}", "").expect("a plain list");
    assert_eq!(dag.timetable().summary(), "assets: a & b");
    assert!(!dag.timetable().is_time_based());
    let dag = load_schedule("{assets: {all: [a, {any: [b, c]}]}}", "").expect("nested");
    assert_eq!(dag.timetable().summary(), "assets: a & (b | c)");
    let json = serde_json::to_value(&dag.spec).expect("JSON");
    assert_eq!(json["schedule"], serde_json::json!({"assets": {"all": ["a", {"any": ["b", "c"]}]}}));
    let back: crate::DagSpec = serde_json::from_value(json).expect("read back");
    assert_eq!(back, dag.spec);

    // Assets or cron: the cron's runs as any cron's, besides the asset-triggered ones.
    let dag = load_schedule("{assets: {any: [a, b]}, cron: \"@daily\"}", "start_date: 2026-01-01\n").expect("or cron");
    let tt = dag.timetable();
    assert_eq!(tt.summary(), "@daily or assets: a | b");
    assert!(tt.is_time_based() && tt.is_periodic());
    assert_eq!(
        due_sequence(tt, "2026-01-02T12:00:00Z", 10),
        ["2026-01-01T00:00:00+00:00 2026-01-02T00:00:00+00:00"],
        "without catchup, the latest complete day"
    );
    let err = load_schedule("{assets: [a], cron: \"@daily\"}", "").expect_err("no start_date");
    assert!(err.contains("schedule \"@daily\" needs a `start_date`"), "{err}");
    let err = load_schedule("{assets: [a], cron: \"@once\"}", "start_date: 2026-01-01\n").expect_err("once");
    assert!(err.contains("e.yaml:2:31: `schedule.cron` must be a cron expression"), "{err}");
    let err = load_schedule("{assets: {any: []}}", "").expect_err("empty");
    assert!(err.contains("e.yaml:2:20: `schedule.assets`: a list of assets is empty"), "{err}");
    let err = load_schedule("{every: 1h, cron: \"@daily\"}", "start_date: 2026-01-01\n").expect_err("stray cron");
    assert!(err.contains("`cron` goes with `assets` alone"), "{err}");
}
