"""Prints the run times Airflow computes around the daylight-saving changes of 2026, as the Rust table that
`airflow_dst.rs` beside it checks Sluice against.

Run it with Airflow's own timetable code, outside the repository:

    python3 -m venv /tmp/af && /tmp/af/bin/pip install apache-airflow-core
    AIRFLOW_HOME=/tmp/af-home /tmp/af/bin/python crates/core/src/schedule/tests/airflow_dst.py

The table was made with apache-airflow-core 3.3.2, croniter 7.0.0, pendulum 3.3.0 and tzdata 2026.6.
"""

import datetime
from importlib.metadata import version

import airflow.timetables.interval as interval_module
import airflow.timetables.trigger as trigger_module
from airflow._shared.timezones.timezone import coerce_datetime, parse_timezone
from airflow.timetables.base import TimeRestriction
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.timetables.trigger import CronTriggerTimetable

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"

# (timezone, cron, start_date, how many intervals): with catchup, from start_date on. Paris changes on 29 March
# (02:00 CET to 03:00 CEST) and 25 October (03:00 CEST to 02:00 CET); New York on 8 March (02:00 EST to 03:00 EDT)
# and 1 November (02:00 EDT to 01:00 EST).
CATCHUP = [
    (PARIS, "30 2 * * *", "2026-03-27T00:00:00Z", 4),
    (PARIS, "30 2 * * *", "2026-10-23T00:00:00Z", 4),
    (PARIS, "30 2 * * *", "2026-10-25T00:30:00Z", 2),
    (PARIS, "30 2 * * *", "2026-10-25T00:45:00Z", 2),
    (PARIS, "0 * * * *", "2026-03-28T23:00:00Z", 5),
    (PARIS, "0 * * * *", "2026-10-24T23:00:00Z", 5),
    (PARIS, "0 */2 * * *", "2026-03-28T20:00:00Z", 4),
    (PARIS, "0 */2 * * *", "2026-10-24T20:00:00Z", 4),
    (NEW_YORK, "30 1 * * *", "2026-03-06T00:00:00Z", 4),
    (NEW_YORK, "30 1 * * *", "2026-10-30T00:00:00Z", 4),
    (NEW_YORK, "30 2 * * *", "2026-03-06T00:00:00Z", 4),
    (NEW_YORK, "30 2 * * *", "2026-10-30T00:00:00Z", 4),
    (NEW_YORK, "30 * * * *", "2026-03-08T05:00:00Z", 4),
    (NEW_YORK, "30 * * * *", "2026-11-01T03:00:00Z", 5),
]

# (timezone, cron, now): without catchup (start_date a week before), the first run's interval; and a manual run
# triggered at `now`.
AT_NOW = [
    (PARIS, "30 2 * * *", "2026-03-29T01:45:00Z"),
    (PARIS, "30 2 * * *", "2026-10-25T00:45:00Z"),
    (PARIS, "30 2 * * *", "2026-10-25T01:45:00Z"),
    (PARIS, "0 * * * *", "2026-10-25T00:30:00Z"),
    (PARIS, "0 * * * *", "2026-10-25T01:30:00Z"),
    (NEW_YORK, "30 1 * * *", "2026-11-01T05:45:00Z"),
    (NEW_YORK, "30 1 * * *", "2026-11-01T06:45:00Z"),
    (NEW_YORK, "30 2 * * *", "2026-03-08T07:45:00Z"),
]


def utc(text):
    # Airflow hands its timetables pendulum datetimes.
    return coerce_datetime(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")))


def show(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def freeze(now):
    for module in (interval_module, trigger_module):
        module.utcnow = lambda: now


def data_interval(tz, cron):
    return CronDataIntervalTimetable(cron, parse_timezone(tz))


def trigger(tz, cron):
    return CronTriggerTimetable(cron, timezone=parse_timezone(tz))


def main():
    print(f"// apache-airflow-core {version('apache-airflow-core')}, croniter {version('croniter')}, ", end="")
    print(f"pendulum {version('pendulum')}, tzdata {version('tzdata')}")
    print("const CATCHUP: &[Catchup] = &[")
    for tz, cron, start, n in CATCHUP:
        restriction = TimeRestriction(earliest=utc(start), latest=None, catchup=True)
        intervals, last = [], None
        for _ in range(n):
            info = data_interval(tz, cron).next_dagrun_info(
                last_automated_data_interval=last, restriction=restriction
            )
            last = info.data_interval
            intervals.append(f'("{show(last.start)}", "{show(last.end)}")')
        ticks, last = [], None
        for _ in range(n + 1):
            info = trigger(tz, cron).next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
            last = info.data_interval
            ticks.append(f'"{show(info.logical_date)}"')
        print(f'    Catchup {{ tz: "{tz}", cron: "{cron}", start: "{start}",')
        print(f"        intervals: &[{', '.join(intervals)}],")
        print(f"        trigger: &[{', '.join(ticks)}] }},")
    print("];")
    print("const AT_NOW: &[AtNow] = &[")
    for tz, cron, now in AT_NOW:
        freeze(utc(now))
        restriction = TimeRestriction(earliest=utc(now) - datetime.timedelta(days=7), latest=None, catchup=False)
        first = data_interval(tz, cron).next_dagrun_info(
            last_automated_data_interval=None, restriction=restriction
        ).data_interval
        manual = data_interval(tz, cron).infer_manual_data_interval(run_after=utc(now))
        tick = trigger(tz, cron).next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
        print(f'    AtNow {{ tz: "{tz}", cron: "{cron}", now: "{now}",')
        print(f'        first: ("{show(first.start)}", "{show(first.end)}"),')
        print(f'        manual: ("{show(manual.start)}", "{show(manual.end)}"),')
        print(f'        trigger: "{show(tick.logical_date)}" }},')
    print("];")


main()
