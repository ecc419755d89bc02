//! Deserialising the data-task configuration from the YAML users write, and back through JSON (how the server
//! stores a DAG version).

use std::time::Duration;

use super::*;

fn yaml<T: serde::de::DeserializeOwned>(src: &str) -> Result<T, String> {
    serde_saphyr::from_str(src).map_err(|e| e.to_string())
}

fn json_round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, value, "{text}");
}

#[test]
fn ingest_csv_with_defaults() {
    let spec: IngestSpec =
        yaml("source: {type: csv, path: data/penguins.csv}\noutputs: [lake://raw/penguins]\n").unwrap();
    assert_eq!(spec.source.path(), Some("data/penguins.csv"));
    let Source::Csv { delimiter, null_values, .. } = &spec.source else { panic!("{spec:?}") };
    assert_eq!(*delimiter, None);
    assert!(null_values.contains(&"NA".to_owned()));
    assert_eq!(spec.outputs, ["lake://raw/penguins"]);
    assert_eq!(spec.watermark, None);
    json_round_trip(&spec);
}

#[test]
fn ingest_sources_and_typos() {
    let spec: IngestSpec =
        yaml("source: {type: jsonl, path: a.jsonl}\noutputs: [lake://raw/a]\nwatermark: updated_at\n").unwrap();
    assert_eq!(spec.source, Source::Jsonl { path: "a.jsonl".into(), connection: None });
    assert_eq!(spec.watermark.as_deref(), Some("updated_at"));
    let spec: IngestSpec = yaml("source: {type: parquet, path: a.parquet}\noutputs: []\n").unwrap();
    json_round_trip(&spec);
    let err = yaml::<IngestSpec>("source: {type: excel, path: a.xlsx}\noutputs: []\n").unwrap_err();
    assert!(err.contains("excel"), "{err}");
    let err = yaml::<IngestSpec>("source: {type: csv, path: a.csv, delimeter: ';'}\noutputs: []\n").unwrap_err();
    assert!(err.contains("delimeter"), "{err}");
}

#[test]
fn file_sources_read_local_paths_and_s3_urls() {
    let spec: IngestSpec =
        yaml("source: {type: parquet, path: 's3://lake/raw/a.parquet', connection: minio}\noutputs: []\n").unwrap();
    assert_eq!(spec.source.connection(), Some("minio"));
    assert_eq!(spec.source.check_location(), Ok(()));
    json_round_trip(&spec);
    let located = |path: &str, connection: Option<&str>| {
        let connection = connection.map(str::to_owned);
        Source::Csv { path: path.into(), delimiter: None, null_values: Vec::new(), connection }.check_location()
    };
    assert_eq!(located("data/{{ ds }}.csv", None), Ok(()));
    assert_eq!(located("s3://bucket/{{ ds }}/a.csv", None), Ok(()));
    let err = located("gs://bucket/a.csv", None).unwrap_err();
    assert!(err.contains("s3://") && err.contains("not gs://"), "{err}");
    let err = located("data/a.csv", Some("minio")).unwrap_err();
    assert!(err.contains("`connection`"), "{err}");
    assert_eq!(url_scheme("C:/data://x"), None);
}

#[test]
fn quality_checks_of_every_rule() {
    let src = r#"
inputs: [lake://raw/penguins]
checks:
  - {column: species, not_null: true}
  - {max_missing_rate: 0.05, severity: warn}
  - {column: sex, max_missing_rate: 0.1}
  - {unique: true}
  - {column: id, max_duplicate_rate: 0}
  - {column: bill_length_mm, range: {min: 30, max: 60}}
  - {column: year, allowed_values: [2007, 2008, 2009]}
  - {column: island, allowed_values: [Biscoe, Dream, Torgersen]}
  - {column: email, regex: '^[^@]+@[^@]+$'}
  - {row_count: {min: 1}}
  - {freshness: {column: updated_at, max_age: 1d}}
  - columns: {species: string, body_mass_g: int, bill_length_mm: float}
"#;
    let spec: QualitySpec = yaml(src).unwrap();
    let rules: Vec<&str> = spec.checks.iter().map(|c| c.rule.name()).collect();
    assert_eq!(
        rules,
        [
            "not_null",
            "max_missing_rate",
            "max_missing_rate",
            "unique",
            "max_duplicate_rate",
            "range",
            "allowed_values",
            "allowed_values",
            "regex",
            "row_count",
            "freshness",
            "columns"
        ]
    );
    assert_eq!(spec.checks[0].column.as_deref(), Some("species"));
    assert_eq!(spec.checks[0].severity, Severity::Error);
    assert_eq!(spec.checks[1].severity, Severity::Warn);
    assert_eq!(spec.checks[5].rule, CheckRule::Range(Bounds { min: Some(30.0), max: Some(60.0) }));
    assert_eq!(
        spec.checks[6].rule,
        CheckRule::AllowedValues(vec![Literal::Int(2007), Literal::Int(2008), Literal::Int(2009)])
    );
    let CheckRule::Freshness(f) = &spec.checks[10].rule else { panic!() };
    assert_eq!(f.max_age, Duration::from_secs(86_400));
    let CheckRule::Columns(cols) = &spec.checks[11].rule else { panic!() };
    assert_eq!(cols["body_mass_g"], ColumnType::Int);
    json_round_trip(&spec);
}

#[test]
fn malformed_checks_are_named() {
    let rows = [
        ("{column: a}", "needs one rule"),
        ("{column: a, not_null: true, unique: true}", "found not_null, unique"),
        ("{not_null: true}", "not_null needs a column"),
        ("{column: a, row_count: {min: 1}}", "row_count takes no column"),
        ("{max_missing_rate: 5}", "between 0 and 1"),
        ("{column: a, not_nul: true}", "not_nul"),
        ("{column: a, not_null: true, severity: fatal}", "fatal"),
    ];
    for (check, needle) in rows {
        let err = yaml::<Check>(check).unwrap_err();
        assert!(err.contains(needle), "{check}: {err}");
    }
}

#[test]
fn transform_steps_in_order() {
    let src = r#"
inputs: [lake://raw/penguins]
outputs: [lake://features/penguins]
steps:
  - select: [species, island, bill_length_mm, sex]
  - rename: {bill_length_mm: bill}
  - cast: {bill: float}
  - drop_duplicates: {}
  - drop_missing: {columns: [species]}
  - fill_missing: {columns: [bill], strategy: median}
  - fill_missing: {columns: [sex], strategy: constant, value: unknown}
  - clip_outliers: {columns: [bill], method: iqr}
  - drop_outliers: {columns: [bill], method: zscore, factor: 2.5}
  - standardize: {columns: [bill]}
  - min_max_scale: {columns: [bill]}
  - text_clean: {columns: [island], trim: true, case: lower, punctuation: true, whitespace: true}
  - one_hot: {columns: [island]}
  - ordinal_encode: {columns: [species]}
  - hash_pii: {columns: [email], salt: pepper}
  - mask_pii: {columns: [phone], keep_last: 4}
"#;
    let spec: TransformSpec = yaml(src).unwrap();
    assert_eq!(spec.steps.len(), 16);
    assert_eq!(spec.steps[3], Step::DropDuplicates(Subset::default()));
    assert_eq!(
        spec.steps[6],
        Step::FillMissing(FillMissing {
            columns: vec!["sex".into()],
            strategy: FillStrategy::Constant,
            value: Some(Literal::String("unknown".into())),
        })
    );
    assert_eq!(
        spec.steps[8],
        Step::DropOutliers(Outliers { columns: vec!["bill".into()], method: OutlierMethod::Zscore, factor: Some(2.5) })
    );
    assert_eq!(spec.steps[15], Step::MaskPii(MaskPii { columns: vec!["phone".into()], keep_last: 4 }));
    json_round_trip(&spec);
}

#[test]
fn derive_and_join_steps() {
    let src = r#"
- derive: {bill_ratio: "bill_length_mm / bill_depth_mm", heavy: "body_mass_g > 4500"}
- join: {asset: "lake://ref/islands", on: [island]}
- join: {asset: "lake://ref/islands", on: [island, year], how: inner, suffix: _ref}
"#;
    let steps: Vec<Step> = yaml(src).unwrap();
    let Step::Derive(columns) = &steps[0] else { panic!("{steps:?}") };
    assert_eq!(columns["heavy"], "body_mass_g > 4500");
    let Step::Join(left) = &steps[1] else { panic!("{steps:?}") };
    assert_eq!((left.how, left.suffix()), (JoinHow::Left, "_right"));
    assert_eq!(
        steps[2],
        Step::Join(Join {
            asset: "lake://ref/islands".into(),
            on: vec!["island".into(), "year".into()],
            how: JoinHow::Inner,
            suffix: Some("_ref".into()),
        })
    );
    assert_eq!(joined_assets(&steps).collect::<Vec<_>>(), ["lake://ref/islands", "lake://ref/islands"]);
    json_round_trip(&steps);
    let err = yaml::<Step>("{join: {asset: lake://a/b, on: [k], how: outer}}").unwrap_err();
    assert!(err.contains("outer"), "{err}");
    let err = yaml::<Step>("{join: {asset: lake://a/b, key: [k]}}").unwrap_err();
    assert!(err.contains("key"), "{err}");
}

#[test]
fn unknown_steps_and_fields_are_errors() {
    let err = yaml::<Step>("{normalize: {columns: [a]}}").unwrap_err();
    assert!(err.contains("normalize"), "{err}");
    let err = yaml::<Step>("{standardize: {columns: [a], with_mean: true}}").unwrap_err();
    assert!(err.contains("with_mean"), "{err}");
    let err = yaml::<Step>("{fill_missing: {columns: [a], strategy: average}}").unwrap_err();
    assert!(err.contains("average"), "{err}");
}
