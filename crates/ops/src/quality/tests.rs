//! Each check rule on small frames with known answers, and the penguins data's real missing values.

use chrono::TimeZone;
use polars::df;
use polars::prelude::{Column, DataType, TimeUnit};
use serde_json::json;

use super::*;
use crate::OpsError;
use crate::test_util::dags_dir;

fn frame() -> DataFrame {
    df!(
        "id" => [1i64, 2, 2, 4],
        "score" => [Some(0.5), None, Some(1.5), Some(9.0)],
        "team" => [Some("red"), Some("blue"), Some("blue"), None],
        "email" => ["a@x.org", "b@x.org", "b@x.org", "nope"],
        "day" => ["2026-01-01", "2026-01-03", "2026-01-03", "2026-01-02"],
    )
    .unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 4, 12, 0, 0).unwrap()
}

/// Run one check written as in a DAG file.
fn run(check: serde_json::Value) -> CheckResult {
    let check: Check = serde_json::from_value(check).unwrap();
    run_checks(&frame(), &[check], now()).unwrap().results.remove(0)
}

fn outcome(r: &CheckResult) -> (serde_json::Value, bool) {
    (r.observed.clone(), r.passed)
}

#[test]
fn not_null_and_missing_rates() {
    assert_eq!(outcome(&run(json!({"column": "id", "not_null": true}))), (json!(0), true));
    assert_eq!(outcome(&run(json!({"column": "score", "not_null": true}))), (json!(1), false));
    assert_eq!(outcome(&run(json!({"column": "score", "max_missing_rate": 0.25}))), (json!(0.25), true));
    assert_eq!(outcome(&run(json!({"column": "score", "max_missing_rate": 0.2}))), (json!(0.25), false));
    // Without a column, the worst column is reported (the first of equals).
    let worst = run(json!({"max_missing_rate": 0.1}));
    assert_eq!((worst.column.as_deref(), outcome(&worst)), (Some("score"), (json!(0.25), false)));
}

#[test]
fn unique_and_duplicate_rates() {
    assert_eq!(outcome(&run(json!({"column": "id", "unique": true}))), (json!(1), false));
    // A missing value is not a value: one "blue" repeat only.
    assert_eq!(outcome(&run(json!({"column": "team", "unique": true}))), (json!(1), false));
    assert_eq!(outcome(&run(json!({"column": "score", "unique": true}))), (json!(0), true));
    assert_eq!(outcome(&run(json!({"unique": true}))), (json!(0), true));
    assert_eq!(outcome(&run(json!({"column": "email", "max_duplicate_rate": 0.25}))), (json!(0.25), true));
    assert_eq!(outcome(&run(json!({"column": "email", "max_duplicate_rate": 0.1}))), (json!(0.25), false));
}

#[test]
fn ranges_values_and_patterns() {
    let r = run(json!({"column": "score", "range": {"min": 0, "max": 5}}));
    assert_eq!(outcome(&r), (json!({"min": 0.5, "max": 9.0, "outside": 1}), false));
    assert_eq!(r.threshold, json!({"min": 0.0, "max": 5.0}));
    assert!(run(json!({"column": "id", "range": {"min": 1}})).passed);
    let r = run(json!({"column": "team", "allowed_values": ["red", "green"]}));
    assert_eq!(outcome(&r), (json!({"outside": 2, "examples": ["blue"]}), false));
    assert!(run(json!({"column": "id", "allowed_values": [1, 2, 4]})).passed, "numbers compare as text");
    let r = run(json!({"column": "email", "regex": "^[^@]+@[^@]+$"}));
    assert_eq!(outcome(&r), (json!({"not_matching": 1}), false));
    assert!(run(json!({"column": "email", "regex": "."})).passed);
}

#[test]
fn row_count_schema_and_freshness() {
    assert_eq!(outcome(&run(json!({"row_count": {"min": 1, "max": 4}}))), (json!(4), true));
    assert!(!run(json!({"row_count": {"min": 5}})).passed);
    let r = run(json!({"columns": {"id": "int", "score": "float", "team": "int", "gone": "string"}}));
    let observed = json!({"id": "int", "score": "float", "team": "string", "gone": "missing"});
    assert_eq!(outcome(&r), (observed, false));
    assert!(run(json!({"columns": {"id": "int", "email": "string"}})).passed);
    // The newest day is 2026-01-03 00:00, 36 hours before `now`.
    let r = run(json!({"freshness": {"column": "day", "max_age": "2d"}}));
    assert_eq!(outcome(&r), (json!({"newest": "2026-01-03T00:00:00+00:00", "age": "1d12h"}), true));
    assert!(!run(json!({"freshness": {"column": "day", "max_age": "1d"}})).passed);
}

#[test]
fn freshness_of_date_and_timestamp_columns() {
    // 2026-01-03 is day 20456 since 1970-01-01.
    let days = Column::new("d".into(), [Some(20_456i32), None, Some(20_450)]).cast(&DataType::Date).unwrap();
    let millis = 20_456i64 * 86_400_000 + 6 * 3_600_000;
    let stamps = Column::new("t".into(), [millis]).cast(&DataType::Datetime(TimeUnit::Milliseconds, None)).unwrap();
    let frame = DataFrame::new_infer_height(vec![days]).unwrap();
    let check = |column: &str, max_age: &str| -> Check {
        serde_json::from_value(json!({"freshness": {"column": column, "max_age": max_age}})).unwrap()
    };
    let report = run_checks(&frame, &[check("d", "36h"), check("d", "35h")], now()).unwrap();
    assert_eq!(report.results.iter().map(|r| r.passed).collect::<Vec<_>>(), [true, false]);
    let frame = DataFrame::new_infer_height(vec![stamps]).unwrap();
    let r = run_checks(&frame, &[check("t", "1d")], now()).unwrap().results.remove(0);
    assert_eq!(outcome(&r), (json!({"newest": "2026-01-03T06:00:00+00:00", "age": "1d6h"}), false));
}

#[test]
fn severity_decides_whether_the_task_fails() {
    let checks: Vec<Check> = serde_json::from_value(json!([
        {"column": "id", "not_null": true},
        {"column": "score", "not_null": true, "severity": "warn"},
    ]))
    .unwrap();
    let report = run_checks(&frame(), &checks, now()).unwrap();
    assert!(!report.failed(), "only a warning failed");
    assert_eq!(report.failures().count(), 1);
    let strict: Vec<Check> = serde_json::from_value(json!([{"column": "score", "not_null": true}])).unwrap();
    assert!(run_checks(&frame(), &strict, now()).unwrap().failed());
}

#[test]
fn checks_on_missing_or_unsuitable_columns_are_errors() {
    let check: Check = serde_json::from_value(json!({"column": "scroe", "not_null": true})).unwrap();
    let err = run_checks(&frame(), &[check], now()).unwrap_err();
    assert!(matches!(&err, OpsError::MissingColumn { column, .. } if column == "scroe"), "{err}");
    assert!(err.to_string().contains("id, score, team, email, day"), "{err}");
    let check: Check = serde_json::from_value(json!({"column": "team", "range": {"max": 1}})).unwrap();
    let err = run_checks(&frame(), &[check], now()).unwrap_err();
    assert!(err.to_string().contains("numeric"), "{err}");
}

#[test]
fn penguins_missing_values_are_reported() {
    let source = serde_json::from_value(json!({"type": "csv", "path": "data/penguins.csv"})).unwrap();
    let (lake, dags) = (crate::Lake::new("unused"), dags_dir());
    let penguins = crate::read::read_source(&source, &crate::test_util::context(&lake, &dags), None).unwrap();
    let checks: Vec<Check> = serde_json::from_value(json!([
        {"column": "species", "not_null": true},
        {"column": "bill_length_mm", "not_null": true},
        {"column": "sex", "max_missing_rate": 0.05},
        {"max_missing_rate": 0.01, "severity": "warn"},
    ]))
    .unwrap();
    let report = run_checks(&penguins, &checks, now()).unwrap();
    assert_eq!(report.rows, 344);
    let observed: Vec<_> = report.results.iter().map(|r| (r.column.as_deref(), outcome(r))).collect();
    assert_eq!(
        observed,
        [
            (Some("species"), (json!(0), true)),
            (Some("bill_length_mm"), (json!(2), false)),
            (Some("sex"), (json!(11.0 / 344.0), true)),
            (Some("sex"), (json!(11.0 / 344.0), false)),
        ]
    );
    assert!(report.failed(), "bill_length_mm has missing values");
}
