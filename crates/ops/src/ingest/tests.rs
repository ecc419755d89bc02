//! Ingesting the penguins demo data and each source format, and the errors of bad input.

use sluice_core::ops_spec::Source;

use super::*;
use crate::test_util::{TempDir, dags_dir, ds};

fn csv(path: &str) -> Source {
    serde_json::from_value(serde_json::json!({"type": "csv", "path": path})).unwrap()
}

fn spec(source: Source, watermark: Option<&str>) -> IngestSpec {
    IngestSpec { source, outputs: vec!["lake://raw/t".into()], watermark: watermark.map(str::to_owned) }
}

#[test]
fn penguins_land_in_the_lake() {
    let lake_dir = TempDir::new();
    let lake = Lake::new(lake_dir.path());
    let spec =
        IngestSpec { source: csv("data/penguins.csv"), outputs: vec!["lake://raw/penguins".into()], watermark: None };
    let report = ingest(&spec, &dags_dir(), &lake, ds(), None).unwrap();
    assert_eq!(report.rows, 344);
    let dtype = |name: &str| report.schema.iter().find(|c| c.name == name).map(|c| c.dtype.as_str());
    assert_eq!(report.schema.len(), 8);
    assert_eq!(dtype("bill_length_mm"), Some("f64"));
    assert_eq!(dtype("body_mass_g"), Some("i64"), "NA is missing, not text");
    assert_eq!(dtype("sex"), Some("str"));
    let [out] = report.outputs.as_slice() else { panic!("{report:?}") };
    assert!(out.path.ends_with("raw/penguins/ds=2026-01-05/part-0.parquet"));
    let back = lake.read("lake://raw/penguins", ds()).unwrap();
    assert_eq!(back.height(), 344);
    assert_eq!(back.column("sex").unwrap().null_count(), 11);
}

#[test]
fn jsonl_and_parquet_sources() {
    let dir = TempDir::new();
    let jsonl = dir.write("a.jsonl", "{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2, \"name\": null}\n");
    let lake = Lake::new(dir.path().join("lake"));
    let report =
        ingest(&spec(Source::Jsonl { path: jsonl, connection: None }, None), dir.path(), &lake, ds(), None).unwrap();
    assert_eq!(report.rows, 2);
    // The lake's own Parquet output is a valid Parquet source.
    let parquet = report.outputs[0].path.to_string_lossy().into_owned();
    let again = ingest(&spec(Source::Parquet { path: parquet, connection: None }, None), dir.path(), &lake, ds(), None)
        .unwrap();
    assert_eq!(again.rows, 2);
    assert_eq!(again.schema, report.schema);
}

#[test]
fn watermark_loads_only_new_rows() {
    let dir = TempDir::new();
    let file = dir.write("w.csv", "id,day\n1,2026-01-01\n2,2026-01-02\n3,2026-01-03\n");
    let lake = Lake::new(dir.path().join("lake"));
    let by_id = ingest(&spec(csv(&file), Some("id")), dir.path(), &lake, ds(), Some("1")).unwrap();
    assert_eq!((by_id.rows, by_id.watermark.as_deref()), (2, Some("3")));
    let by_day = ingest(&spec(csv(&file), Some("day")), dir.path(), &lake, ds(), Some("2026-01-02")).unwrap();
    assert_eq!((by_day.rows, by_day.watermark.as_deref()), (1, Some("2026-01-03")));
    let first = ingest(&spec(csv(&file), Some("id")), dir.path(), &lake, ds(), None).unwrap();
    assert_eq!((first.rows, first.watermark.as_deref()), (3, Some("3")));
    let err = ingest(&spec(csv(&file), Some("id")), dir.path(), &lake, ds(), Some("yesterday")).unwrap_err();
    assert!(err.to_string().contains("not a number"), "{err}");
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let dir = TempDir::new();
    let lake = Lake::new(dir.path().join("lake"));
    let err = ingest(&spec(csv("nope.csv"), None), dir.path(), &lake, ds(), None).unwrap_err();
    assert!(matches!(err, OpsError::FileNotFound(_)), "{err}");
    assert!(err.to_string().contains("nope.csv"), "{err}");

    let bad = dir.write("bad.csv", "a,b\n1,2\n3,4,5,6\n");
    let err = ingest(&spec(csv(&bad), None), dir.path(), &lake, ds(), None).unwrap_err();
    assert!(matches!(err, OpsError::Read { .. }), "{err}");
    assert!(err.to_string().contains("bad.csv: line 3: found more fields"), "{err}");

    let drift = dir.write("drift.csv", "ident,day\n1,2026-01-01\n");
    let err = ingest(&spec(csv(&drift), Some("id")), dir.path(), &lake, ds(), None).unwrap_err();
    assert_eq!(err.to_string(), "column \"id\" not found; the data has columns: ident, day");
    assert!(!lake.root().exists(), "no output for a failed ingest");
}
