//! Sluice's cron schedules around daylight-saving changes, against the run times Airflow's own timetable code gives.

use super::*;

/// A cron schedule with catchup from `start`: the data intervals Airflow's `CronDataIntervalTimetable` creates one after
/// another, and the logical dates of its `CronTriggerTimetable` (what Airflow 3 makes of a cron string by default).
struct Catchup {
    tz: &'static str,
    cron: &'static str,
    start: &'static str,
    intervals: &'static [(&'static str, &'static str)],
    trigger: &'static [&'static str],
}

/// At `now`, without catchup: the first run's data interval, a manual run's, and the trigger timetable's first run.
struct AtNow {
    tz: &'static str,
    cron: &'static str,
    now: &'static str,
    first: (&'static str, &'static str),
    manual: (&'static str, &'static str),
    trigger: &'static str,
}

// Printed by `airflow_dst.py` (beside this file, which says how to run it) with Airflow's own timetable code, then
// formatted by rustfmt:
// apache-airflow-core 3.3.2, croniter 7.0.0, pendulum 3.3.0, tzdata 2026.6
const CATCHUP: &[Catchup] = &[
    Catchup {
        tz: "Europe/Paris",
        cron: "30 2 * * *",
        start: "2026-03-27T00:00:00Z",
        intervals: &[
            ("2026-03-27T01:30:00Z", "2026-03-28T01:30:00Z"),
            ("2026-03-28T01:30:00Z", "2026-03-29T01:30:00Z"),
            ("2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"),
            ("2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"),
        ],
        trigger: &[
            "2026-03-27T01:30:00Z",
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z",
        ],
    },
    Catchup {
        tz: "Europe/Paris",
        cron: "30 2 * * *",
        start: "2026-10-23T00:00:00Z",
        intervals: &[
            ("2026-10-23T00:30:00Z", "2026-10-24T00:30:00Z"),
            ("2026-10-24T00:30:00Z", "2026-10-25T01:30:00Z"),
            ("2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"),
            ("2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"),
        ],
        trigger: &[
            "2026-10-23T00:30:00Z",
            "2026-10-24T00:30:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z",
        ],
    },
    Catchup {
        tz: "Europe/Paris",
        cron: "30 2 * * *",
        start: "2026-10-25T00:30:00Z",
        intervals: &[
            ("2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"),
            ("2026-10-27T01:30:00Z", "2026-10-28T01:30:00Z"),
        ],
        trigger: &["2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z", "2026-10-28T01:30:00Z"],
    },
    Catchup {
        tz: "Europe/Paris",
        cron: "30 2 * * *",
        start: "2026-10-25T00:45:00Z",
        intervals: &[
            ("2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"),
            ("2026-10-27T01:30:00Z", "2026-10-28T01:30:00Z"),
        ],
        trigger: &["2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z", "2026-10-28T01:30:00Z"],
    },
    Catchup {
        tz: "Europe/Paris",
        cron: "0 * * * *",
        start: "2026-03-28T23:00:00Z",
        intervals: &[
            ("2026-03-28T23:00:00Z", "2026-03-29T00:00:00Z"),
            ("2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"),
            ("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"),
            ("2026-03-29T02:00:00Z", "2026-03-29T03:00:00Z"),
            ("2026-03-29T03:00:00Z", "2026-03-29T04:00:00Z"),
        ],
        trigger: &[
            "2026-03-28T23:00:00Z",
            "2026-03-29T00:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T02:00:00Z",
            "2026-03-29T03:00:00Z",
            "2026-03-29T04:00:00Z",
        ],
    },
    Catchup {
        tz: "Europe/Paris",
        cron: "0 * * * *",
        start: "2026-10-24T23:00:00Z",
        intervals: &[
            ("2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z"),
            ("2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z"),
            ("2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"),
            ("2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"),
            ("2026-10-25T03:00:00Z", "2026-10-25T04:00:00Z"),
        ],
        trigger: &[
            "2026-10-24T23:00:00Z",
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T03:00:00Z",
            "2026-10-25T04:00:00Z",
        ],
    },
    Catchup {
        tz: "Europe/Paris",
        cron: "0 */2 * * *",
        start: "2026-03-28T20:00:00Z",
        intervals: &[
            ("2026-03-28T21:00:00Z", "2026-03-28T23:00:00Z"),
            ("2026-03-28T23:00:00Z", "2026-03-29T01:00:00Z"),
            ("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"),
            ("2026-03-29T02:00:00Z", "2026-03-29T04:00:00Z"),
        ],
        trigger: &[
            "2026-03-28T21:00:00Z",
            "2026-03-28T23:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T02:00:00Z",
            "2026-03-29T04:00:00Z",
        ],
    },
    Catchup {
        tz: "Europe/Paris",
        cron: "0 */2 * * *",
        start: "2026-10-24T20:00:00Z",
        intervals: &[
            ("2026-10-24T20:00:00Z", "2026-10-24T22:00:00Z"),
            ("2026-10-24T22:00:00Z", "2026-10-25T01:00:00Z"),
            ("2026-10-25T01:00:00Z", "2026-10-25T03:00:00Z"),
            ("2026-10-25T03:00:00Z", "2026-10-25T05:00:00Z"),
        ],
        trigger: &[
            "2026-10-24T20:00:00Z",
            "2026-10-24T22:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T03:00:00Z",
            "2026-10-25T05:00:00Z",
        ],
    },
    Catchup {
        tz: "America/New_York",
        cron: "30 1 * * *",
        start: "2026-03-06T00:00:00Z",
        intervals: &[
            ("2026-03-06T06:30:00Z", "2026-03-07T06:30:00Z"),
            ("2026-03-07T06:30:00Z", "2026-03-08T06:30:00Z"),
            ("2026-03-08T06:30:00Z", "2026-03-09T05:30:00Z"),
            ("2026-03-09T05:30:00Z", "2026-03-10T05:30:00Z"),
        ],
        trigger: &[
            "2026-03-06T06:30:00Z",
            "2026-03-07T06:30:00Z",
            "2026-03-08T06:30:00Z",
            "2026-03-09T05:30:00Z",
            "2026-03-10T05:30:00Z",
        ],
    },
    Catchup {
        tz: "America/New_York",
        cron: "30 1 * * *",
        start: "2026-10-30T00:00:00Z",
        intervals: &[
            ("2026-10-30T05:30:00Z", "2026-10-31T05:30:00Z"),
            ("2026-10-31T05:30:00Z", "2026-11-01T06:30:00Z"),
            ("2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"),
            ("2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"),
        ],
        trigger: &[
            "2026-10-30T05:30:00Z",
            "2026-10-31T05:30:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-02T06:30:00Z",
            "2026-11-03T06:30:00Z",
        ],
    },
    Catchup {
        tz: "America/New_York",
        cron: "30 2 * * *",
        start: "2026-03-06T00:00:00Z",
        intervals: &[
            ("2026-03-06T07:30:00Z", "2026-03-07T07:30:00Z"),
            ("2026-03-07T07:30:00Z", "2026-03-08T07:30:00Z"),
            ("2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"),
            ("2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"),
        ],
        trigger: &[
            "2026-03-06T07:30:00Z",
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:30:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-10T06:30:00Z",
        ],
    },
    Catchup {
        tz: "America/New_York",
        cron: "30 2 * * *",
        start: "2026-10-30T00:00:00Z",
        intervals: &[
            ("2026-10-30T06:30:00Z", "2026-10-31T06:30:00Z"),
            ("2026-10-31T06:30:00Z", "2026-11-01T07:30:00Z"),
            ("2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"),
            ("2026-11-02T07:30:00Z", "2026-11-03T07:30:00Z"),
        ],
        trigger: &[
            "2026-10-30T06:30:00Z",
            "2026-10-31T06:30:00Z",
            "2026-11-01T07:30:00Z",
            "2026-11-02T07:30:00Z",
            "2026-11-03T07:30:00Z",
        ],
    },
    Catchup {
        tz: "America/New_York",
        cron: "30 * * * *",
        start: "2026-03-08T05:00:00Z",
        intervals: &[
            ("2026-03-08T05:30:00Z", "2026-03-08T06:30:00Z"),
            ("2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z"),
            ("2026-03-08T07:30:00Z", "2026-03-08T08:30:00Z"),
            ("2026-03-08T08:30:00Z", "2026-03-08T09:30:00Z"),
        ],
        trigger: &[
            "2026-03-08T05:30:00Z",
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:30:00Z",
            "2026-03-08T08:30:00Z",
            "2026-03-08T09:30:00Z",
        ],
    },
    Catchup {
        tz: "America/New_York",
        cron: "30 * * * *",
        start: "2026-11-01T03:00:00Z",
        intervals: &[
            ("2026-11-01T03:30:00Z", "2026-11-01T04:30:00Z"),
            ("2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z"),
            ("2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"),
            ("2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"),
            ("2026-11-01T07:30:00Z", "2026-11-01T08:30:00Z"),
        ],
        trigger: &[
            "2026-11-01T03:30:00Z",
            "2026-11-01T04:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:30:00Z",
            "2026-11-01T08:30:00Z",
        ],
    },
];
const AT_NOW: &[AtNow] = &[
    AtNow {
        tz: "Europe/Paris",
        cron: "30 2 * * *",
        now: "2026-03-29T01:45:00Z",
        first: ("2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"),
        manual: ("2026-03-29T01:30:00Z", "2026-03-29T01:30:00Z"),
        trigger: "2026-03-29T01:30:00Z",
    },
    AtNow {
        tz: "Europe/Paris",
        cron: "30 2 * * *",
        now: "2026-10-25T00:45:00Z",
        first: ("2026-10-24T00:30:00Z", "2026-10-25T01:30:00Z"),
        manual: ("2026-10-24T00:30:00Z", "2026-10-25T01:30:00Z"),
        trigger: "2026-10-25T01:30:00Z",
    },
    AtNow {
        tz: "Europe/Paris",
        cron: "30 2 * * *",
        now: "2026-10-25T01:45:00Z",
        first: ("2026-10-24T00:30:00Z", "2026-10-25T01:30:00Z"),
        manual: ("2026-10-24T00:30:00Z", "2026-10-25T01:30:00Z"),
        trigger: "2026-10-25T01:30:00Z",
    },
    AtNow {
        tz: "Europe/Paris",
        cron: "0 * * * *",
        now: "2026-10-25T00:30:00Z",
        first: ("2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z"),
        manual: ("2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z"),
        trigger: "2026-10-25T00:00:00Z",
    },
    AtNow {
        tz: "Europe/Paris",
        cron: "0 * * * *",
        now: "2026-10-25T01:30:00Z",
        first: ("2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z"),
        manual: ("2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z"),
        trigger: "2026-10-25T01:00:00Z",
    },
    AtNow {
        tz: "America/New_York",
        cron: "30 1 * * *",
        now: "2026-11-01T05:45:00Z",
        first: ("2026-10-31T05:30:00Z", "2026-11-01T06:30:00Z"),
        manual: ("2026-10-31T05:30:00Z", "2026-11-01T06:30:00Z"),
        trigger: "2026-11-01T06:30:00Z",
    },
    AtNow {
        tz: "America/New_York",
        cron: "30 1 * * *",
        now: "2026-11-01T06:45:00Z",
        first: ("2026-10-31T05:30:00Z", "2026-11-01T06:30:00Z"),
        manual: ("2026-10-31T05:30:00Z", "2026-11-01T06:30:00Z"),
        trigger: "2026-11-01T06:30:00Z",
    },
    AtNow {
        tz: "America/New_York",
        cron: "30 2 * * *",
        now: "2026-03-08T07:45:00Z",
        first: ("2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"),
        manual: ("2026-03-08T07:30:00Z", "2026-03-08T07:30:00Z"),
        trigger: "2026-03-08T07:30:00Z",
    },
];

fn pair(i: DataInterval) -> (String, String) {
    let show = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    (show(i.start), show(i.end))
}

fn owned(expected: (&str, &str)) -> (String, String) {
    (expected.0.to_owned(), expected.1.to_owned())
}

#[test]
fn daylight_saving_changes_as_airflow_computes_them() {
    for case in CATCHUP {
        let tz: Tz = case.tz.parse().expect(case.tz);
        let tt = timetable(case.cron, tz, case.start, None, true);
        let got: Vec<_> = intervals(&tt, case.intervals.len()).into_iter().map(pair).collect();
        let expected: Vec<_> = case.intervals.iter().copied().map(owned).collect();
        assert_eq!(got, expected, "{} in {} from {}", case.cron, case.tz, case.start);
        // Sluice's runs start at the ticks the trigger timetable fires at: the first interval's start, then every end.
        let ticks: Vec<_> = got.iter().take(1).map(|i| i.0.clone()).chain(got.iter().map(|i| i.1.clone())).collect();
        assert_eq!(ticks, case.trigger, "{} in {} from {}", case.cron, case.tz, case.start);
    }
    for case in AT_NOW {
        let tz: Tz = case.tz.parse().expect(case.tz);
        let now = utc(case.now);
        let start = (now - Duration::days(7)).to_rfc3339();
        let tt = timetable(case.cron, tz, &start, None, false);
        let first = tt.next_interval(None, now).map(pair);
        assert_eq!(first, Some(owned(case.first)), "{} in {} at {}", case.cron, case.tz, case.now);
        let manual = pair(tt.infer_manual_data_interval(now));
        assert_eq!(manual, owned(case.manual), "{} in {} at {}", case.cron, case.tz, case.now);
        // The trigger timetable runs at the latest tick, where a manual run's interval ends.
        assert_eq!(manual.1, case.trigger, "{} in {} at {}", case.cron, case.tz, case.now);
    }
}
