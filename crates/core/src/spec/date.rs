//! `start_date` / `end_date`: dates as users write them, resolved to instants in the DAG's timezone.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// A point in time as written in the file: `"2026-01-01"`, `"2026-01-01T03:00:00"` (both local time in the DAG's
/// timezone) or RFC 3339 with an offset. The original text is kept for serialisation; [`DateSpec::resolve`] gives
/// the instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateSpec {
    text: String,
    value: DateValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateValue {
    Local(NaiveDateTime),
    Fixed(DateTime<FixedOffset>),
}

/// A date string in none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid date {0:?} (expected \"2026-01-01\", \"2026-01-01T03:00:00\" or RFC 3339 like \"2026-01-01T03:00:00+02:00\")"
)]
pub struct DateError(String);

impl DateSpec {
    /// The text as written in the file.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The instant this date names, reading local forms in `tz`. A local time that does not exist (skipped by a DST
    /// change) is moved forward by the gap; a repeated one is its second occurrence (as Airflow/pendulum do).
    pub fn resolve(&self, tz: chrono_tz::Tz) -> DateTime<Utc> {
        match self.value {
            DateValue::Local(naive) => crate::schedule::local_to_utc(tz, naive),
            DateValue::Fixed(dt) => dt.with_timezone(&Utc),
        }
    }
}

impl FromStr for DateSpec {
    type Err = DateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let value = if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
            DateValue::Fixed(dt)
        } else if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
            DateValue::Local(naive)
        } else if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
            DateValue::Local(naive)
        } else if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M") {
            DateValue::Local(naive)
        } else if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            DateValue::Local(date.and_time(chrono::NaiveTime::MIN))
        } else {
            return Err(DateError(s.to_owned()));
        };
        Ok(DateSpec { text: s.to_owned(), value })
    }
}

impl fmt::Display for DateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for DateSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for DateSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_each_form() {
        let paris = chrono_tz::Europe::Paris;
        let rows: &[(&str, &str)] = &[
            ("2026-01-01", "2025-12-31T23:00:00+00:00"),
            ("2026-07-01T03:00:00", "2026-07-01T01:00:00+00:00"),
            ("2026-07-01 03:00:00", "2026-07-01T01:00:00+00:00"),
            ("2026-07-01T03:00:00Z", "2026-07-01T03:00:00+00:00"),
            ("2026-07-01T03:00:00+05:00", "2026-06-30T22:00:00+00:00"),
            // Skipped by the spring DST change: moved forward by the gap (03:30 CEST).
            ("2026-03-29T02:30:00", "2026-03-29T01:30:00+00:00"),
            // Repeated in autumn: the second occurrence (CET), as pendulum reads it for Airflow.
            ("2026-10-25T02:30:00", "2026-10-25T01:30:00+00:00"),
        ];
        for (text, utc) in rows {
            let date: DateSpec = text.parse().expect(text);
            assert_eq!(date.resolve(paris).to_rfc3339(), *utc, "{text}");
            assert_eq!(date.as_str(), *text);
        }
        for bad in ["2026-13-01", "tomorrow", "2026-02-30", "01/02/2026"] {
            assert!(bad.parse::<DateSpec>().is_err(), "{bad}");
        }
    }
}
