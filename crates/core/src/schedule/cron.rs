//! Standard 5-field cron expressions (`minute hour day-of-month month day-of-week`), matched in local wall time.
//!
//! We parse and match crons ourselves instead of through the `cron` crate because its semantics differ from the
//! Unix/croniter ones Airflow users know: it wants a seconds field, numbers days of week 1 (Sunday) to 7 (Saturday),
//! and when both day fields are restricted it requires both to match, whereas Unix cron fires when either does
//! (`0 0 1 * 1` is "the 1st of the month and every Monday"). Here day of week is 0-7 with 0 and 7 both Sunday,
//! names `MON`..`SUN` and `JAN`..`DEC` are accepted, and fields take lists, ranges and steps.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// A parsed cron expression: the set of allowed values of each field, as bitsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    /// Bit 0 is Sunday.
    days_of_week: u64,
    /// Whether the day fields start with `*`: Unix cron then matches on the other day field alone.
    dom_any: bool,
    dow_any: bool,
}

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// How far to search for a matching time before deciding there is none (e.g. `0 0 30 2 *`).
const SEARCH_YEARS: i32 = 30;

impl CronExpr {
    /// Parse a 5-field expression. Errors say which field is wrong and why.
    pub fn parse(expr: &str) -> Result<CronExpr, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "invalid cron expression {expr:?}: expected 5 fields (minute hour day-of-month month day-of-week), \
                 found {}",
                fields.len()
            ));
        }
        let field = |i: usize, name: &str, min: u32, max: u32, names: &[&str], name_base: u32| {
            parse_field(fields[i], min, max, names, name_base).map_err(|e| {
                format!(
                    "invalid cron expression {expr:?}: {name} field {:?}: {e}",
                    fields[i]
                )
            })
        };
        let mut days_of_week = field(4, "day-of-week", 0, 7, &DAY_NAMES, 0)?;
        // 7 is another name for Sunday.
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        let cron = CronExpr {
            source: fields.join(" "),
            minutes: field(0, "minute", 0, 59, &[], 0)?,
            hours: field(1, "hour", 0, 23, &[], 0)?,
            days_of_month: field(2, "day-of-month", 1, 31, &[], 0)?,
            months: field(3, "month", 1, 12, &MONTH_NAMES, 1)?,
            days_of_week,
            dom_any: fields[2].starts_with('*') || fields[2] == "?",
            dow_any: fields[4].starts_with('*') || fields[4] == "?",
        };
        let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).map(|d| d.and_time(NaiveTime::MIN));
        if epoch.and_then(|e| cron.next_after(e)).is_none() {
            return Err(format!("cron expression {expr:?} never fires"));
        }
        Ok(cron)
    }

    /// The expression, fields separated by single spaces.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression fires in every hour (its hour field allows all 24). Such crons run in both copies of
    /// the hour repeated when DST ends, as Airflow does; others run only in the first.
    pub fn covers_every_hour(&self) -> bool {
        self.hours == (1 << 24) - 1
    }

    pub fn matches(&self, t: NaiveDateTime) -> bool {
        self.month_ok(t)
            && self.day_ok(t)
            && self.hour_ok(t)
            && self.minute_ok(t)
            && t.second() == 0
    }

    fn month_ok(&self, t: NaiveDateTime) -> bool {
        self.months & (1 << t.month()) != 0
    }

    fn day_ok(&self, t: NaiveDateTime) -> bool {
        let dom = self.days_of_month & (1 << t.day()) != 0;
        let dow = self.days_of_week & (1 << t.weekday().num_days_from_sunday()) != 0;
        match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    fn hour_ok(&self, t: NaiveDateTime) -> bool {
        self.hours & (1 << t.hour()) != 0
    }

    fn minute_ok(&self, t: NaiveDateTime) -> bool {
        self.minutes & (1 << t.minute()) != 0
    }

    /// The first matching wall time strictly after `t`.
    pub fn next_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let limit = t.year().checked_add(SEARCH_YEARS)?;
        let mut c = truncate_to_minute(t).checked_add_signed(Duration::minutes(1))?;
        // Each step jumps to the start of the next month, day, hour or minute that could match.
        while c.year() <= limit {
            c = if !self.month_ok(c) {
                let (y, m) = if c.month() == 12 {
                    (c.year() + 1, 1)
                } else {
                    (c.year(), c.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1)?.and_time(NaiveTime::MIN)
            } else if !self.day_ok(c) {
                c.date().succ_opt()?.and_time(NaiveTime::MIN)
            } else if !self.hour_ok(c) {
                truncate_to_hour(c).checked_add_signed(Duration::hours(1))?
            } else if !self.minute_ok(c) {
                c.checked_add_signed(Duration::minutes(1))?
            } else {
                return Some(c);
            };
        }
        None
    }

    /// The last matching wall time strictly before `t`.
    pub fn prev_before(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let limit = t.year().checked_sub(SEARCH_YEARS)?;
        let truncated = truncate_to_minute(t);
        let mut c = if truncated < t {
            truncated
        } else {
            truncated.checked_sub_signed(Duration::minutes(1))?
        };
        let minute = Duration::minutes(1);
        // Mirror of next_after: each step jumps to the last minute of the previous month, day or hour.
        while c.year() >= limit {
            c = if !self.month_ok(c) {
                NaiveDate::from_ymd_opt(c.year(), c.month(), 1)?
                    .and_time(NaiveTime::MIN)
                    .checked_sub_signed(minute)?
            } else if !self.day_ok(c) {
                c.date()
                    .and_time(NaiveTime::MIN)
                    .checked_sub_signed(minute)?
            } else if !self.hour_ok(c) {
                truncate_to_hour(c).checked_sub_signed(minute)?
            } else if !self.minute_ok(c) {
                c.checked_sub_signed(minute)?
            } else {
                return Some(c);
            };
        }
        None
    }
}

fn truncate_to_minute(t: NaiveDateTime) -> NaiveDateTime {
    t.date().and_hms_opt(t.hour(), t.minute(), 0).unwrap_or(t)
}

fn truncate_to_hour(t: NaiveDateTime) -> NaiveDateTime {
    t.date().and_hms_opt(t.hour(), 0, 0).unwrap_or(t)
}

/// Parse one field into a bitset of allowed values. `names[i]` stands for `name_base + i`.
fn parse_field(
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<u64, String> {
    let mut set = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .map_err(|_| format!("step {step:?} is not a number"))?;
                if step == 0 {
                    return Err("step must be at least 1".to_owned());
                }
                (range, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, name_base)?, value(b, names, name_base)?)
        } else {
            let v = value(range, names, name_base)?;
            // `a/step` means from a to the end, as in croniter.
            (v, if step > 1 { max } else { v })
        };
        for v in [lo, hi] {
            if v < min || v > max {
                return Err(format!("{v} is out of range {min}-{max}"));
            }
        }
        if lo > hi {
            return Err(format!("range {lo}-{hi} goes backwards"));
        }
        for v in (lo..=hi).step_by(step as usize) {
            set |= 1 << v;
        }
    }
    Ok(set)
}

fn value(text: &str, names: &[&str], name_base: u32) -> Result<u32, String> {
    if let Ok(v) = text.parse::<u32>() {
        return Ok(v);
    }
    let lower = text.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .map(|i| name_base + i as u32)
        .ok_or_else(|| {
            if text.is_empty() {
                "empty value".to_owned()
            } else {
                format!(
                    "{text:?} is not a number{}",
                    if names.is_empty() { "" } else { " or a name" }
                )
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect(s)
    }

    fn fire_times(expr: &str, from: &str, n: usize) -> Vec<String> {
        let cron = CronExpr::parse(expr).expect(expr);
        let mut t = at(from);
        (0..n)
            .map(|_| {
                t = cron.next_after(t).expect("fires");
                t.format("%a %Y-%m-%d %H:%M").to_string()
            })
            .collect()
    }

    #[test]
    fn weekdays_fire_monday_to_friday() {
        // 2026-01-02 is a Friday.
        let times = fire_times("0 9 * * 1-5", "2026-01-02 10:00", 6);
        assert_eq!(
            times,
            [
                "Mon 2026-01-05 09:00",
                "Tue 2026-01-06 09:00",
                "Wed 2026-01-07 09:00",
                "Thu 2026-01-08 09:00",
                "Fri 2026-01-09 09:00",
                "Mon 2026-01-12 09:00"
            ]
        );
        assert_eq!(fire_times("0 9 * * MON-FRI", "2026-01-02 10:00", 6), times);
    }

    #[test]
    fn sunday_is_0_and_7() {
        for expr in ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "0 0 * * SUN"] {
            assert_eq!(
                fire_times(expr, "2026-01-01 00:00", 2),
                ["Sun 2026-01-04 00:00", "Sun 2026-01-11 00:00"],
                "{expr}"
            );
        }
        assert_eq!(
            fire_times("0 0 * * 5-7", "2026-01-01 00:00", 4),
            [
                "Fri 2026-01-02 00:00",
                "Sat 2026-01-03 00:00",
                "Sun 2026-01-04 00:00",
                "Fri 2026-01-09 00:00"
            ]
        );
    }

    #[test]
    fn fields_table() {
        let rows: &[(&str, &str, &[&str])] = &[
            (
                "*/15 * * * *",
                "2026-01-01 00:07",
                &["Thu 2026-01-01 00:15", "Thu 2026-01-01 00:30"],
            ),
            (
                "0 3 * * *",
                "2026-01-01 03:00",
                &["Fri 2026-01-02 03:00", "Sat 2026-01-03 03:00"],
            ),
            (
                "30 8,17 * * *",
                "2026-01-01 09:00",
                &["Thu 2026-01-01 17:30", "Fri 2026-01-02 08:30"],
            ),
            (
                "0 0 1 */3 *",
                "2026-01-15 00:00",
                &["Wed 2026-04-01 00:00", "Wed 2026-07-01 00:00"],
            ),
            (
                "0 0 1 jan,JUL *",
                "2026-01-15 00:00",
                &["Wed 2026-07-01 00:00", "Fri 2027-01-01 00:00"],
            ),
            (
                "0 0 29 2 *",
                "2026-01-01 00:00",
                &["Tue 2028-02-29 00:00", "Sun 2032-02-29 00:00"],
            ),
            (
                "10-20/5 1 * * *",
                "2026-01-01 00:00",
                &["Thu 2026-01-01 01:10", "Thu 2026-01-01 01:15"],
            ),
            // Both day fields restricted: either matches (Unix cron). 2026-01-05 is a Monday.
            (
                "0 0 1 * 1",
                "2026-01-01 00:00",
                &["Mon 2026-01-05 00:00", "Mon 2026-01-12 00:00"],
            ),
            (
                "0 0 13 * 5",
                "2026-04-10 00:00",
                &["Mon 2026-04-13 00:00", "Fri 2026-04-17 00:00"],
            ),
        ];
        for (expr, from, expected) in rows {
            assert_eq!(fire_times(expr, from, expected.len()), *expected, "{expr}");
        }
    }

    #[test]
    fn prev_mirrors_next() {
        for expr in [
            "0 9 * * 1-5",
            "*/7 * * * *",
            "0 0 1 * 1",
            "0 0 29 2 *",
            "15 3 * * 0",
        ] {
            let cron = CronExpr::parse(expr).expect(expr);
            let mut t = at("2026-03-01 00:00");
            for _ in 0..20 {
                let next = cron.next_after(t).expect("next");
                assert_eq!(
                    cron.prev_before(next + Duration::seconds(30)),
                    Some(next),
                    "{expr}"
                );
                assert!(cron.prev_before(next).is_some_and(|p| p <= t), "{expr}");
                t = next;
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        let rows = [
            ("0 9 * *", "expected 5 fields"),
            ("0 0 9 * * *", "expected 5 fields"),
            ("60 * * * *", "minute field \"60\": 60 is out of range 0-59"),
            ("0 24 * * *", "hour field"),
            ("0 0 0 * *", "day-of-month field"),
            ("0 0 * 13 *", "month field"),
            ("0 0 * * 8", "day-of-week field"),
            ("0 0 * * FOO", "\"FOO\" is not a number or a name"),
            ("*/0 * * * *", "step must be at least 1"),
            ("5-1 * * * *", "goes backwards"),
            ("0 0 30 2 *", "never fires"),
            ("0 0 L * *", "day-of-month field"),
        ];
        for (expr, needle) in rows {
            let err = CronExpr::parse(expr).expect_err(expr);
            assert!(err.contains(needle), "{expr}: {err}");
        }
    }
}
