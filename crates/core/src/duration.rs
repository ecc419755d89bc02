//! Human durations in DAG files: `"30s"`, `"10m"`, `"1h30m"`, `"2d"`, `"500ms"`, or a bare integer of seconds.
//!
//! [`format_duration`] writes the same syntax back (largest units first), so that a spec stored as JSON and read
//! again gives the same durations: `parse_duration(&format_duration(d)) == Ok(d)` for every `d`. The [`serde`] and
//! [`serde_opt`] modules plug this syntax into `#[serde(with = ...)]`.

use std::time::Duration;

/// A duration string that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("invalid duration {input:?}: {reason} (expected e.g. \"30s\", \"10m\", \"1h30m\", \"2d\", \"500ms\")")]
    Invalid { input: String, reason: String },
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Units from largest to smallest, with their length in nanoseconds.
const UNITS: [(&str, u128); 7] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Parse a duration: a sequence of `<integer><unit>` parts (units `d h m s ms us ns`, spaces allowed between parts),
/// or a bare integer meaning seconds.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = |reason: &str| DurationError::Invalid { input: s.to_owned(), reason: reason.to_owned() };
    if let Ok(secs) = input.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u128 = 0;
    let mut rest = input;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid("expected a number"));
        }
        let value: u128 = rest[..digits].parse().map_err(|_| DurationError::Overflow(s.to_owned()))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let nanos = UNITS.iter().find(|(name, _)| *name == unit).map(|(_, nanos)| *nanos).ok_or_else(|| {
            if unit.is_empty() {
                invalid("a number without a unit")
            } else {
                invalid(&format!("unknown unit {unit:?}"))
            }
        })?;
        total = value
            .checked_mul(nanos)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| DurationError::Overflow(s.to_owned()))?;
        rest = rest[unit_len..].trim_start();
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::Overflow(s.to_owned()))?;
    // The remainder is below 1e9, so it fits a u32.
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Write a duration in the syntax [`parse_duration`] reads, largest units first: `5400s` → `"1h30m"`.
pub fn format_duration(d: Duration) -> String {
    let mut left = d.as_nanos();
    if left == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, nanos) in UNITS {
        let n = left / nanos;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(name);
            left -= n * nanos;
        }
    }
    out
}

/// Accepts the duration syntax or a bare integer of seconds.
struct DurationVisitor;

impl ::serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration like \"30s\", \"10m\", \"1h30m\" or a number of seconds")
    }

    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }

    fn visit_u64<E: ::serde::de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: ::serde::de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v).map(Duration::from_secs).map_err(|_| E::custom(format!("a duration cannot be negative ({v})")))
    }
}

/// `#[serde(with = "crate::duration::serde")]` for `Duration` fields.
pub mod serde {
    use std::time::Duration;

    use ::serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(super::DurationVisitor)
    }
}

/// `#[serde(default, with = "crate::duration::serde_opt")]` for `Option<Duration>` fields; null is `None`.
pub mod serde_opt {
    use std::time::Duration;

    use ::serde::{Deserialize, Deserializer, Serializer};

    struct Wrapped(Duration);

    impl<'de> Deserialize<'de> for Wrapped {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::serde::deserialize(d).map(Wrapped)
        }
    }

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serde::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_table() {
        let rows: &[(&str, Duration)] = &[
            ("30s", Duration::from_secs(30)),
            ("10m", Duration::from_secs(600)),
            ("1h30m", Duration::from_secs(5400)),
            ("1h 30m", Duration::from_secs(5400)),
            ("2d", Duration::from_secs(172_800)),
            ("500ms", Duration::from_millis(500)),
            ("1s500ms", Duration::from_millis(1500)),
            ("90", Duration::from_secs(90)),
            (" 0 ", Duration::ZERO),
            ("3us", Duration::from_micros(3)),
        ];
        for (input, expected) in rows {
            assert_eq!(parse_duration(input), Ok(*expected), "{input}");
        }
    }

    #[test]
    fn parse_errors() {
        for input in ["", "s", "10x", "1.5h", "-3s", "h1", "10 m x", "5m3"] {
            assert!(parse_duration(input).is_err(), "{input:?} should not parse");
        }
        let err = parse_duration("10x").expect_err("bad unit").to_string();
        assert!(err.contains("unknown unit \"x\""), "{err}");
        assert!(matches!(parse_duration("99999999999999999999999d"), Err(DurationError::Overflow(_))));
    }

    #[test]
    fn format_table() {
        let rows: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_secs(86_400 + 1), "1d1s"),
            (Duration::from_millis(1500), "1s500ms"),
            (Duration::from_nanos(1_001), "1us1ns"),
        ];
        for (d, expected) in rows {
            assert_eq!(format_duration(*d), *expected);
        }
    }

    #[test]
    fn serde_accepts_strings_and_seconds() {
        #[derive(::serde::Deserialize, ::serde::Serialize, Debug, PartialEq)]
        struct T {
            #[serde(with = "crate::duration::serde")]
            a: Duration,
            #[serde(default, with = "crate::duration::serde_opt")]
            b: Option<Duration>,
        }
        let t: T = serde_json::from_str(r#"{"a": 30, "b": "1h"}"#).expect("parse");
        assert_eq!(t.a, Duration::from_secs(30));
        assert_eq!(t.b, Some(Duration::from_secs(3600)));
        assert_eq!(serde_json::to_string(&t).expect("json"), r#"{"a":"30s","b":"1h"}"#);
        let t: T = serde_json::from_str(r#"{"a": "1m", "b": null}"#).expect("parse");
        assert_eq!(t.b, None);
        assert!(serde_json::from_str::<T>(r#"{"a": -1}"#).is_err());
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in 0u64..=u64::MAX / 2, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
