//! Standard 5-field cron expressions (`minute hour day-of-month month day-of-week`), matched in local wall time.
//!
//! The `cron` crate parses and validates the fields, but its semantics differ from the Unix/croniter ones Airflow
//! users know: it wants a seconds field, numbers days of week 1 (Sunday) to 7 (Saturday), and when both day fields
//! are restricted it requires both to match, whereas Unix cron fires when either does (`0 0 1 * 1` is "the 1st of the
//! month and every Monday"); its own iteration also mishandles DST. So we translate a Unix expression into the
//! crate's syntax (see `translate_day_of_week`), read the crate's per-field sets, and match and iterate over wall
//! times ourselves. Day of week is 0-7 with 0 and 7 both Sunday, names `MON`..`SUN` and `JAN`..`DEC` are accepted,
//! and fields take lists, ranges and steps. As the crate parses them, a range is either numbers or names (`1-5`,
//! `MON-FRI`), and a step follows `*`, a range or a number (`*/15`, `MON-FRI/2`, `5/10`), not a name.

use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use cron::TimeUnitSpec;

/// A parsed cron expression: the `cron` crate's sets of allowed values, read with Unix rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
    /// The translated expression; its days of week are numbered from 1 (Sunday). Boxed as it is large (~300 bytes)
    /// and [`super::Schedule`] holds it inline.
    schedule: Box<cron::Schedule>,
    /// Whether the day fields are `*` (or `?`): unrestricted, unlike `*/2` or `1-5`.
    dom_any: bool,
    dow_any: bool,
}

/// A field of a Unix cron expression: its name in errors and the range of its numbers.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
}

const FIELDS: [Field; 5] = [
    Field { name: "minute", min: 0, max: 59 },
    Field { name: "hour", min: 0, max: 23 },
    Field { name: "day-of-month", min: 1, max: 31 },
    Field { name: "month", min: 1, max: 12 },
    Field { name: "day-of-week", min: 0, max: 7 },
];
const DAY_OF_MONTH: usize = 2;
const DAY_OF_WEEK: usize = 4;

/// How far to search for a matching time before deciding there is none (e.g. `0 0 30 2 *`).
const SEARCH_YEARS: i32 = 30;

impl CronExpr {
    /// Parse a 5-field expression. Errors say which field is wrong and why.
    pub fn parse(expr: &str) -> Result<CronExpr, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != FIELDS.len() {
            return Err(format!(
                "invalid cron expression {expr:?}: expected 5 fields (minute hour day-of-month month day-of-week), \
                 found {}",
                fields.len()
            ));
        }
        let invalid = |i: usize, why: String| {
            format!("invalid cron expression {expr:?}: {} field {:?}: {why}", FIELDS[i].name, fields[i])
        };
        // The crate's expression starts with a seconds field; we fire at second 0.
        let mut translated = vec!["0".to_owned()];
        for (i, (text, field)) in fields.iter().zip(&FIELDS).enumerate() {
            field.check_numbers(text).map_err(|why| invalid(i, why))?;
            let text = if i == DAY_OF_WEEK { translate_day_of_week(text) } else { (*text).to_owned() };
            // Parse the field alone first, so that the crate's error can be pinned on it.
            let mut alone = ["0", "*", "*", "*", "*", "*"];
            alone[i + 1] = &text;
            cron::Schedule::from_str(&alone.join(" ")).map_err(|e| invalid(i, crate_reason(&e)))?;
            translated.push(text);
        }
        let schedule = cron::Schedule::from_str(&translated.join(" "))
            .map_err(|e| format!("invalid cron expression {expr:?}: {}", crate_reason(&e)))?;
        let is_any = |i: usize| fields[i] == "*" || fields[i] == "?";
        let cron = CronExpr {
            source: fields.join(" "),
            schedule: Box::new(schedule),
            dom_any: is_any(DAY_OF_MONTH),
            dow_any: is_any(DAY_OF_WEEK),
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
        self.schedule.hours().is_all()
    }

    pub fn matches(&self, t: NaiveDateTime) -> bool {
        self.month_ok(t)
            && self.day_ok(t)
            && self.hour_ok(t)
            && self.minute_ok(t)
            && self.schedule.seconds().includes(t.second())
    }

    fn month_ok(&self, t: NaiveDateTime) -> bool {
        self.schedule.months().includes(t.month())
    }

    fn day_ok(&self, t: NaiveDateTime) -> bool {
        let dom = self.schedule.days_of_month().includes(t.day());
        let dow = self.schedule.days_of_week().includes(t.weekday().number_from_sunday());
        // As croniter: when both day fields are restricted, a day matching either will do; otherwise it must match
        // both, which an unrestricted field always does.
        if self.dom_any || self.dow_any { dom && dow } else { dom || dow }
    }

    fn hour_ok(&self, t: NaiveDateTime) -> bool {
        self.schedule.hours().includes(t.hour())
    }

    fn minute_ok(&self, t: NaiveDateTime) -> bool {
        self.schedule.minutes().includes(t.minute())
    }

    /// The first matching wall time strictly after `t`.
    pub fn next_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let limit = t.year().checked_add(SEARCH_YEARS)?;
        let mut c = truncate_to_minute(t).checked_add_signed(Duration::minutes(1))?;
        // Each step jumps to the start of the next month, day, hour or minute that could match.
        while c.year() <= limit {
            c = if !self.month_ok(c) {
                let (y, m) = if c.month() == 12 { (c.year() + 1, 1) } else { (c.year(), c.month() + 1) };
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
        let mut c = if truncated < t { truncated } else { truncated.checked_sub_signed(Duration::minutes(1))? };
        let minute = Duration::minutes(1);
        // Mirror of next_after: each step jumps to the last minute of the previous month, day or hour.
        while c.year() >= limit {
            c = if !self.month_ok(c) {
                NaiveDate::from_ymd_opt(c.year(), c.month(), 1)?.and_time(NaiveTime::MIN).checked_sub_signed(minute)?
            } else if !self.day_ok(c) {
                c.date().and_time(NaiveTime::MIN).checked_sub_signed(minute)?
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

impl Field {
    /// Check a field's numbers against its range. We do this, not the crate, because the crate's messages for it are
    /// off by one ("less than 59") and, for days of week, in its own numbering. All else (syntax, names, steps) the
    /// crate checks.
    fn check_numbers(&self, text: &str) -> Result<(), String> {
        for item in text.split(',') {
            let (lo, hi, _) = split_item(item);
            let lo = lo.parse::<u32>().ok();
            let hi = hi.and_then(|h| h.parse::<u32>().ok());
            if let Some(v) = lo.into_iter().chain(hi).find(|v| *v < self.min || *v > self.max) {
                return Err(format!("{v} is out of range {}-{}", self.min, self.max));
            }
            if let (Some(lo), Some(hi)) = (lo, hi)
                && lo > hi
            {
                return Err(format!("range {lo}-{hi} goes backwards"));
            }
        }
        Ok(())
    }
}

/// Split a list item `lo[-hi][/step]` into its parts, uninterpreted.
fn split_item(item: &str) -> (&str, Option<&str>, Option<&str>) {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (item, None),
    };
    match range.split_once('-') {
        Some((lo, hi)) => (lo, Some(hi), step),
        None => (range, None, step),
    }
}

/// Translate a Unix day-of-week field (0-7, 0 and 7 Sunday) into the crate's numbering (1-7, 1 Sunday), item by item.
///
/// Numbers 0-6 become 1-7, which keeps ranges and steps meaning the same days (`*/2` is Sunday, Tuesday, Thursday and
/// Saturday in both). The crate has no number for a Sunday after Saturday, so a range ending on 7 stops at Saturday
/// and Sunday is added on its own if the step reaches it; `a/step` runs to 7 as `a-7/step` does. `*`, `?` and names
/// mean the same days in both and are kept, as is anything not understood here, for the crate to judge. Expects the
/// numbers already checked to be 0-7 and ranges ascending.
fn translate_day_of_week(field: &str) -> String {
    field.split(',').map(translate_day_of_week_item).collect::<Vec<_>>().join(",")
}

fn translate_day_of_week_item(item: &str) -> String {
    let (lo, hi, step) = split_item(item);
    let Ok(lo) = lo.parse::<u32>() else {
        return item.to_owned();
    };
    let hi = match (hi.map(str::parse::<u32>), step) {
        (Some(Ok(hi)), _) => hi,
        (Some(Err(_)), _) => return item.to_owned(),
        (None, Some(_)) => 7,
        (None, None) => return (lo % 7 + 1).to_string(),
    };
    let step_suffix = step.map(|s| format!("/{s}")).unwrap_or_default();
    if hi < 7 {
        return format!("{}-{}{step_suffix}", lo + 1, hi + 1);
    }
    let mut parts = Vec::new();
    if lo < 7 {
        parts.push(format!("{}-7{step_suffix}", lo + 1));
    }
    let step = step.map_or(Some(1), |s| s.parse::<u32>().ok().filter(|s| *s > 0));
    if step.is_some_and(|s| (7 - lo) % s == 0) {
        parts.push("1".to_owned());
    }
    if parts.is_empty() {
        // `7/0` and the like: a step that is not a positive number, kept for the crate to reject.
        return item.to_owned();
    }
    parts.join(",")
}

/// Why the crate rejected an expression. Its message repeats the expression with a caret under the error and then
/// says why on a third line, which is missing or empty for a syntax error.
fn crate_reason(err: &cron::error::Error) -> String {
    match err.to_string().lines().nth(2).map(str::trim) {
        Some(reason) if !reason.is_empty() => reason.to_owned(),
        _ => "not understood: expected `*`, a number or name, a range `a-b`, a step `/n` after `*`, a range or a \
              number, or a comma-separated list of these"
            .to_owned(),
    }
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
            ["Fri 2026-01-02 00:00", "Sat 2026-01-03 00:00", "Sun 2026-01-04 00:00", "Fri 2026-01-09 00:00"]
        );
    }

    #[test]
    fn fields_table() {
        let rows: &[(&str, &str, &[&str])] = &[
            ("*/15 * * * *", "2026-01-01 00:07", &["Thu 2026-01-01 00:15", "Thu 2026-01-01 00:30"]),
            ("0 3 * * *", "2026-01-01 03:00", &["Fri 2026-01-02 03:00", "Sat 2026-01-03 03:00"]),
            ("30 8,17 * * *", "2026-01-01 09:00", &["Thu 2026-01-01 17:30", "Fri 2026-01-02 08:30"]),
            ("0 0 1 */3 *", "2026-01-15 00:00", &["Wed 2026-04-01 00:00", "Wed 2026-07-01 00:00"]),
            ("0 0 1 jan,JUL *", "2026-01-15 00:00", &["Wed 2026-07-01 00:00", "Fri 2027-01-01 00:00"]),
            ("0 0 29 2 *", "2026-01-01 00:00", &["Tue 2028-02-29 00:00", "Sun 2032-02-29 00:00"]),
            ("10-20/5 1 * * *", "2026-01-01 00:00", &["Thu 2026-01-01 01:10", "Thu 2026-01-01 01:15"]),
            // Both day fields restricted: either matches (Unix cron). 2026-01-05 is a Monday.
            ("0 0 1 * 1", "2026-01-01 00:00", &["Mon 2026-01-05 00:00", "Mon 2026-01-12 00:00"]),
            ("0 0 13 * 5", "2026-04-10 00:00", &["Mon 2026-04-13 00:00", "Fri 2026-04-17 00:00"]),
        ];
        for (expr, from, expected) in rows {
            assert_eq!(fire_times(expr, from, expected.len()), *expected, "{expr}");
        }
    }

    #[test]
    fn prev_mirrors_next() {
        for expr in ["0 9 * * 1-5", "*/7 * * * *", "0 0 1 * 1", "0 0 29 2 *", "15 3 * * 0"] {
            let cron = CronExpr::parse(expr).expect(expr);
            let mut t = at("2026-03-01 00:00");
            for _ in 0..20 {
                let next = cron.next_after(t).expect("next");
                assert_eq!(cron.prev_before(next + Duration::seconds(30)), Some(next), "{expr}");
                assert!(cron.prev_before(next).is_some_and(|p| p <= t), "{expr}");
                t = next;
            }
        }
    }

    #[test]
    fn day_of_week_translates_to_the_crates_numbering() {
        let rows = [
            ("*", "*"),
            ("*/2", "*/2"),
            ("?", "?"),
            ("0", "1"),
            ("7", "1"),
            ("6", "7"),
            ("0,3,7", "1,4,1"),
            ("1-5", "2-6"),
            ("0-6/2", "1-7/2"),
            ("5-7", "6-7,1"),
            ("7-7", "1"),
            ("0-7/2", "1-7/2"),
            ("1-7/3", "2-7/3,1"),
            ("2-7/2", "3-7/2"),
            ("1/2", "2-7/2,1"),
            ("MON-FRI", "MON-FRI"),
            ("sun,1", "sun,2"),
            ("1/0", "2-7/0"),
            ("7/2", "1"),
            ("7/0", "7/0"),
        ];
        for (unix, translated) in rows {
            assert_eq!(translate_day_of_week(unix), translated, "{unix}");
        }
    }

    #[test]
    fn day_of_week_fields_pick_the_unix_days() {
        // 2026-01-04 is a Sunday: fire times from then to the next Sunday show which weekdays a field selects.
        let rows: &[(&str, &[&str])] = &[
            ("*", &["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
            ("*/2", &["Sun", "Tue", "Thu", "Sat"]),
            ("1/2", &["Sun", "Mon", "Wed", "Fri"]),
            ("0,7", &["Sun"]),
            ("5-7", &["Sun", "Fri", "Sat"]),
            ("0-7/2", &["Sun", "Tue", "Thu", "Sat"]),
            ("1-7/3", &["Sun", "Mon", "Thu"]),
            ("MON-FRI/2", &["Mon", "Wed", "Fri"]),
            ("sat,SUN", &["Sun", "Sat"]),
            ("Monday,thurs", &["Mon", "Thu"]),
        ];
        for (field, days) in rows {
            let cron = CronExpr::parse(&format!("0 0 * * {field}")).expect(field);
            let fired: Vec<String> = (0..7)
                .map(|d| at("2026-01-04 00:00") + Duration::days(d))
                .filter(|t| cron.matches(*t))
                .map(|t| t.format("%a").to_string())
                .collect();
            assert_eq!(fired, *days, "{field}");
        }
    }

    #[test]
    fn restricted_day_fields_fire_on_either() {
        // 2026-02-01 is a Sunday.
        let either = ["Sun 2026-02-01 00:00", "Mon 2026-02-02 00:00", "Mon 2026-02-09 00:00"];
        assert_eq!(fire_times("0 0 1 * MON", "2026-01-27 00:00", 3), either);
        assert_eq!(fire_times("0 0 1 * 1", "2026-01-27 00:00", 3), either);
        // A step over `*` restricts its field too, as in croniter (2026-01-31 is a Saturday).
        assert_eq!(
            fire_times("0 0 */10 * MON", "2026-01-27 00:00", 3),
            ["Sat 2026-01-31 00:00", "Sun 2026-02-01 00:00", "Mon 2026-02-02 00:00"]
        );
        // With the other day field `*`, a restricted one decides alone.
        assert_eq!(fire_times("0 0 1 * *", "2026-01-27 00:00", 2), ["Sun 2026-02-01 00:00", "Sun 2026-03-01 00:00"]);
        assert_eq!(
            fire_times("0 0 */2 * *", "2026-01-28 00:00", 3),
            ["Thu 2026-01-29 00:00", "Sat 2026-01-31 00:00", "Sun 2026-02-01 00:00"]
        );
        assert_eq!(
            fire_times("0 0 ? * */3", "2026-01-01 00:00", 3),
            ["Sat 2026-01-03 00:00", "Sun 2026-01-04 00:00", "Wed 2026-01-07 00:00"]
        );
    }

    #[test]
    fn month_names_and_steps() {
        assert_eq!(
            fire_times("0 0 1 JAN-JUN/2 *", "2026-01-01 00:00", 3),
            ["Sun 2026-03-01 00:00", "Fri 2026-05-01 00:00", "Fri 2027-01-01 00:00"]
        );
        assert_eq!(
            fire_times("5/20 */12 * * *", "2026-01-01 00:00", 4),
            ["Thu 2026-01-01 00:05", "Thu 2026-01-01 00:25", "Thu 2026-01-01 00:45", "Thu 2026-01-01 12:05"]
        );
    }

    #[test]
    fn fires_on_the_minute() {
        let cron = CronExpr::parse("*/15 * * * *").expect("valid");
        assert!(cron.matches(at("2026-01-01 00:15")));
        assert!(!cron.matches(at("2026-01-01 00:15") + Duration::seconds(1)));
        assert!(!cron.matches(at("2026-01-01 00:16")));
    }

    #[test]
    fn every_hour_means_all_24() {
        for (expr, every_hour) in [
            ("*/15 * * * *", true),
            ("0 0-23 * * *", true),
            ("0 */1 * * 1", true),
            ("0 */2 * * *", false),
            ("0 0 * * *", false),
        ] {
            let cron = CronExpr::parse(expr).expect(expr);
            assert_eq!(cron.covers_every_hour(), every_hour, "{expr}");
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
            ("0 0 * * FOO", "day-of-week field \"FOO\": 'FOO' is not a valid day of the week"),
            ("0 0 * FOO *", "month field \"FOO\": 'FOO' is not a valid month name"),
            ("*/0 * * * *", "minute field \"*/0\": range step cannot be zero"),
            ("5-1 * * * *", "goes backwards"),
            ("0 0 * * 6-0", "day-of-week field \"6-0\": range 6-0 goes backwards"),
            ("0 0 * * FRI-MON", "day-of-week field \"FRI-MON\": Invalid named range"),
            ("0 0 30 2 *", "never fires"),
            ("0 0 L * *", "day-of-month field"),
            ("0 0 * * 1#2", "day-of-week field \"1#2\": not understood"),
            ("1,,2 * * * *", "minute field \"1,,2\": not understood"),
            ("0 0 * * MON-5", "day-of-week field \"MON-5\": not understood"),
            ("0 0 * * 7/0", "day-of-week field \"7/0\": range step cannot be zero"),
            ("*/60 * * * *", "minute field \"*/60\": Minutes must be between 1 and 59"),
        ];
        for (expr, needle) in rows {
            let err = CronExpr::parse(expr).expect_err(expr);
            assert!(err.contains(needle), "{expr}: {err}");
        }
    }
}
