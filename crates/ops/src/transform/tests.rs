//! Each step on a small frame with a known answer, the fitted parameters, and exact replay on new data.

use polars::df;
use polars::prelude::*;
use serde_json::json;
use sluice_core::ops_spec::Literal;

use super::*;

/// Steps written as in a DAG file.
fn steps(v: serde_json::Value) -> Vec<Step> {
    serde_json::from_value(v).unwrap()
}

/// Fit steps that read nothing but the frame.
fn try_run(frame: DataFrame, v: serde_json::Value) -> crate::error::Result<(DataFrame, FittedTransform)> {
    fit(frame, &steps(v), &Lake::new("/no/lake/needed"), crate::test_util::ds())
}

fn run(frame: DataFrame, v: serde_json::Value) -> (DataFrame, FittedTransform) {
    try_run(frame, v).unwrap()
}

fn floats(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().iter().collect()
}

fn texts(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    df.column(name).unwrap().str().unwrap().iter().map(|v| v.map(str::to_owned)).collect()
}

fn names(df: &DataFrame) -> Vec<String> {
    df.get_column_names().iter().map(|c| c.to_string()).collect()
}

#[test]
fn select_rename_cast() {
    let frame = df!("a" => [1i64, 2], "b" => ["x", "y"], "c" => [true, false]).unwrap();
    let (out, _) = run(frame, json!([{"select": ["b", "a"]}, {"rename": {"a": "n"}}, {"cast": {"n": "float"}}]));
    assert_eq!(names(&out), ["b", "n"]);
    assert_eq!(out.column("n").unwrap().dtype(), &DataType::Float64);
    let bad = try_run(df!("s" => ["1", "x"]).unwrap(), json!([{"cast": {"s": "int"}}]));
    assert!(bad.is_err(), "a strict cast fails on text that is not a number");
}

#[test]
fn drop_duplicates_and_missing() {
    let frame = df!("a" => [1i64, 1, 2, 1], "b" => ["x", "x", "y", "z"]).unwrap();
    let (all, _) = run(frame.clone(), json!([{"drop_duplicates": {}}]));
    assert_eq!(texts(&all, "b"), [Some("x".into()), Some("y".into()), Some("z".into())]);
    let (by_a, _) = run(frame, json!([{"drop_duplicates": {"columns": ["a"]}}]));
    assert_eq!(texts(&by_a, "b"), [Some("x".into()), Some("y".into())]);

    let frame = df!("a" => [Some(1i64), None, Some(3)], "b" => [None, Some("y"), Some("z")]).unwrap();
    assert_eq!(run(frame.clone(), json!([{"drop_missing": {"columns": ["a"]}}])).0.height(), 2);
    assert_eq!(run(frame, json!([{"drop_missing": {}}])).0.height(), 1);
}

#[test]
fn fill_missing_strategies() {
    let frame = df!(
        "x" => [Some(1.0), None, Some(3.0), Some(10.0)],
        "n" => [Some(3i64), None, Some(1), Some(3)],
        "t" => [Some("b"), Some("a"), None, Some("a")],
    )
    .unwrap();
    let (out, fitted) = run(
        frame.clone(),
        json!([{"fill_missing": {"columns": ["x"], "strategy": "mean"}},
               {"fill_missing": {"columns": ["n", "t"], "strategy": "mode"}}]),
    );
    assert_eq!(floats(&out, "x"), [Some(1.0), Some(14.0 / 3.0), Some(3.0), Some(10.0)]);
    assert_eq!(floats(&out, "n"), [Some(3.0), Some(3.0), Some(1.0), Some(3.0)]);
    assert_eq!(out.column("n").unwrap().dtype(), &DataType::Int64, "the mode keeps the column's type");
    assert_eq!(texts(&out, "t")[2].as_deref(), Some("a"));
    let FittedStep::FillMissing(values) = &fitted.steps[1] else { panic!("{fitted:?}") };
    assert_eq!(values["n"], Literal::Int(3));

    let (out, _) = run(frame.clone(), json!([{"fill_missing": {"columns": ["x"], "strategy": "median"}}]));
    assert_eq!(floats(&out, "x")[1], Some(3.0));
    let (out, _) =
        run(frame.clone(), json!([{"fill_missing": {"columns": ["t"], "strategy": "constant", "value": "?"}}]));
    assert_eq!(texts(&out, "t")[2].as_deref(), Some("?"));
    let (out, _) = run(frame.clone(), json!([{"fill_missing": {"columns": ["x", "t"], "strategy": "forward"}}]));
    assert_eq!(floats(&out, "x")[1], Some(1.0));
    assert_eq!(texts(&out, "t")[2].as_deref(), Some("a"));

    let err = try_run(frame, json!([{"fill_missing": {"columns": ["x"], "strategy": "constant"}}])).unwrap_err();
    assert!(err.to_string().contains("needs a value"), "{err}");
}

#[test]
fn outliers_by_iqr_and_zscore() {
    let frame = df!("x" => [Some(1i64), Some(2), Some(3), Some(4), Some(100), None]).unwrap();
    // q1 = 2, q3 = 4: the fence is [2 - 1.5·2, 4 + 1.5·2] = [-1, 7].
    let (clipped, fitted) = run(frame.clone(), json!([{"clip_outliers": {"columns": ["x"], "method": "iqr"}}]));
    assert_eq!(fitted.steps[0], FittedStep::ClipOutliers([("x".into(), Fence { low: -1.0, high: 7.0 })].into()));
    assert_eq!(floats(&clipped, "x"), [Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(7.0), None]);
    let (dropped, _) = run(frame, json!([{"drop_outliers": {"columns": ["x"], "method": "iqr"}}]));
    assert_eq!(dropped.height(), 5, "the outlier row goes, the missing value stays");

    // mean 2, sample std sqrt(20): with factor 1 the fence is 2 ± 4.47, so only 10 is out.
    let frame = df!("x" => [0.0, 0.0, 0.0, 0.0, 10.0]).unwrap();
    let (dropped, _) = run(frame, json!([{"drop_outliers": {"columns": ["x"], "method": "zscore", "factor": 1}}]));
    assert_eq!(floats(&dropped, "x"), [Some(0.0); 4]);
}

#[test]
fn standardize_and_min_max_scale() {
    let frame = df!("x" => [1i64, 2, 3], "y" => [2.0, 4.0, 6.0], "k" => [5.0, 5.0, 5.0]).unwrap();
    let (out, fitted) =
        run(frame, json!([{"standardize": {"columns": ["x", "k"]}}, {"min_max_scale": {"columns": ["y"]}}]));
    assert_eq!(floats(&out, "x"), [Some(-1.0), Some(0.0), Some(1.0)]);
    assert_eq!(floats(&out, "y"), [Some(0.0), Some(0.5), Some(1.0)]);
    assert_eq!(floats(&out, "k"), [Some(0.0); 3], "a constant column is only centred");
    assert_eq!(fitted.steps[1], FittedStep::Scale([("y".into(), Affine { center: 2.0, scale: 4.0 })].into()));
    let err = try_run(df!("s" => ["a"]).unwrap(), json!([{"standardize": {"columns": ["s"]}}])).unwrap_err();
    assert!(err.to_string().contains("numeric"), "{err}");
}

#[test]
fn text_clean_and_pii() {
    let frame = df!("t" => [Some("  Dream - Island!! "), None], "email" => ["bob@x.org", "al@y.net"]).unwrap();
    let (out, _) = run(
        frame,
        json!([{"text_clean": {"columns": ["t"], "trim": true, "case": "lower", "punctuation": true, "whitespace": true}},
               {"hash_pii": {"columns": ["email"], "salt": "pepper"}}]),
    );
    assert_eq!(texts(&out, "t"), [Some("dream island".into()), None]);
    assert_eq!(texts(&out, "email")[0], Some(text::hash_value("bob@x.org", "pepper")));
    let (masked, _) =
        run(df!("p" => ["0612345678"]).unwrap(), json!([{"mask_pii": {"columns": ["p"], "keep_last": 3}}]));
    assert_eq!(texts(&masked, "p"), [Some("*******678".into())]);
}

#[test]
fn one_hot_and_ordinal_encoding() {
    let frame =
        df!("island" => [Some("b"), Some("a"), None, Some("b")], "size" => [Some("m"), Some("s"), Some("l"), None])
            .unwrap();
    let (out, fitted) =
        run(frame, json!([{"one_hot": {"columns": ["island"]}}, {"ordinal_encode": {"columns": ["size"]}}]));
    assert_eq!(names(&out), ["size", "island_a", "island_b"]);
    assert_eq!(floats(&out, "island_a"), [Some(0.0), Some(1.0), Some(0.0), Some(0.0)]);
    assert_eq!(floats(&out, "island_b"), [Some(1.0), Some(0.0), Some(0.0), Some(1.0)]);
    assert_eq!(floats(&out, "size"), [Some(1.0), Some(2.0), Some(0.0), None]);
    assert_eq!(
        fitted.steps[1],
        FittedStep::OrdinalEncode([("size".into(), vec!["l".into(), "m".into(), "s".into()])].into())
    );
}

#[test]
fn fitted_parameters_replay_exactly_on_new_data() {
    let train = df!("x" => [Some(1.0), Some(2.0), Some(3.0), None], "species" => ["a", "b", "a", "b"]).unwrap();
    let spec = json!([
        {"fill_missing": {"columns": ["x"], "strategy": "mean"}},
        {"standardize": {"columns": ["x"]}},
        {"one_hot": {"columns": ["species"]}},
    ]);
    let (train_out, fitted) = run(train.clone(), spec);
    // Persisted as JSON and read back, as the artifact store will.
    let artifact: FittedTransform = serde_json::from_str(&serde_json::to_string(&fitted).unwrap()).unwrap();
    assert_eq!(artifact, fitted);
    assert_eq!(artifact.apply(train).unwrap(), train_out, "applying to the training data gives the training output");

    // New data with other statistics: the training mean (2) and std (0.8165) are used, not the new ones.
    let new = df!("x" => [None, Some(5.0)], "species" => ["b", "c"]).unwrap();
    let out = artifact.apply(new).unwrap();
    let FittedStep::Scale(params) = &artifact.steps[1] else { panic!("{artifact:?}") };
    let Affine { center, scale } = params["x"];
    assert_eq!(center, 2.0);
    assert!((scale - (2.0f64 / 3.0).sqrt()).abs() < 1e-12, "{scale}");
    let x = floats(&out, "x");
    assert_eq!(x[0], Some(0.0));
    // polars may multiply by the reciprocal instead of dividing: equal up to the last bit.
    assert!(x[1].is_some_and(|v| (v - (5.0 - center) / scale).abs() < 1e-12), "{x:?}");
    assert_eq!(floats(&out, "species_a"), [Some(0.0), Some(0.0)]);
    assert_eq!(floats(&out, "species_b"), [Some(1.0), Some(0.0)], "an unseen category is all zeros");
}

#[test]
fn replay_on_drifted_schema_names_the_column() {
    let (_, fitted) = run(df!("x" => [1.0, 2.0]).unwrap(), json!([{"standardize": {"columns": ["x"]}}]));
    let err = fitted.apply(df!("x_renamed" => [1.0], "y" => [2.0]).unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "column \"x\" not found; the data has columns: x_renamed, y");
    let old = FittedTransform { format_version: 0, ..fitted };
    assert!(old.apply(df!("x" => [1.0]).unwrap()).unwrap_err().to_string().contains("format version 0"));
}

/// The penguins ETL of issue 3 as a library call chain: ingest → quality → transform, then the stored parameters
/// replayed on the next day's load.
#[test]
fn penguins_pipeline_through_the_lake() {
    use crate::test_util::{TempDir, dags_dir, ds};
    use crate::{Lake, ingest, run_quality};
    use sluice_core::ops_spec::{IngestSpec, QualitySpec, TransformSpec};

    let dir = TempDir::new();
    let lake = Lake::new(dir.path());
    let next_day = ds().succ_opt().unwrap();
    let ingest_spec: IngestSpec = serde_json::from_value(json!({
        "source": {"type": "csv", "path": "data/penguins.csv"}, "outputs": ["lake://raw/penguins"]
    }))
    .unwrap();
    for day in [ds(), next_day] {
        ingest(&ingest_spec, &dags_dir(), &lake, day, None).unwrap();
    }
    let quality: QualitySpec = serde_json::from_value(json!({
        "inputs": ["lake://raw/penguins"], "checks": [{"max_missing_rate": 0.05}, {"column": "sex", "not_null": true}]
    }))
    .unwrap();
    let reports = run_quality(&quality, &lake, ds(), chrono::Utc::now()).unwrap();
    assert!(reports["lake://raw/penguins"].failed(), "sex has 11 missing values");

    let spec: TransformSpec = serde_json::from_value(json!({
        "inputs": ["lake://raw/penguins"],
        "outputs": ["lake://features/penguins"],
        "steps": [
            {"fill_missing": {"columns": ["bill_length_mm", "body_mass_g"], "strategy": "median"}},
            {"fill_missing": {"columns": ["sex"], "strategy": "mode"}},
            {"one_hot": {"columns": ["island", "sex"]}},
            {"ordinal_encode": {"columns": ["species"]}},
            {"standardize": {"columns": ["bill_length_mm", "body_mass_g"]}},
        ]
    }))
    .unwrap();
    let out = run_transform(&spec, &lake, ds()).unwrap();
    assert_eq!(out.outputs[0].rows, 344);
    let features = lake.read("lake://features/penguins", ds()).unwrap();
    assert_eq!(features.column("sex_female").unwrap().null_count(), 0);
    assert_eq!(features.column("bill_length_mm").unwrap().null_count(), 0);

    let stored = FittedTransform::load(&lake, "lake://features/penguins", ds()).unwrap();
    assert_eq!(stored, out.fitted);
    let replayed = stored.apply(lake.read("lake://raw/penguins", next_day).unwrap()).unwrap();
    assert_eq!(replayed, features, "the same data through the stored parameters gives the same features");
    let err = FittedTransform::load(&lake, "lake://features/penguins", next_day).unwrap_err();
    assert!(matches!(err, crate::OpsError::NoPartition { .. }), "{err}");
}

#[test]
fn derive_columns_from_sql_expressions() {
    let frame = df!("a" => [1.0, 3.0, 8.0], "b" => [2.0, 4.0, 0.5], "name" => ["x", "y", "z"]).unwrap();
    let (out, fitted) = run(
        frame,
        json!([{"derive": {
            "ratio": "a / b",
            "big": "a > 2",
            "label": "CASE WHEN a > 2 THEN upper(name) ELSE 'small' END",
            "a": "a * 10",
        }}]),
    );
    assert_eq!(
        names(&out),
        ["a", "b", "name", "big", "label", "ratio"],
        "a is replaced in place, new columns appended"
    );
    assert_eq!(floats(&out, "ratio"), [Some(0.5), Some(0.75), Some(16.0)], "every expression sees `a` before the step");
    assert_eq!(floats(&out, "a"), [Some(10.0), Some(30.0), Some(80.0)]);
    assert_eq!(out.column("big").unwrap().dtype(), &DataType::Boolean);
    assert_eq!(floats(&out, "big"), [Some(0.0), Some(1.0), Some(1.0)]);
    assert_eq!(texts(&out, "label"), [Some("small".into()), Some("Y".into()), Some("Z".into())]);
    let FittedStep::Derive(columns) = &fitted.steps[0] else { panic!("{fitted:?}") };
    assert_eq!(columns["ratio"], "a / b", "nothing is learned: the expression replays as written");

    // A later step reads the derived columns; missing values propagate.
    let (out, _) =
        run(df!("x" => [Some(2i64), None]).unwrap(), json!([{"derive": {"y": "x * 2"}}, {"derive": {"z": "y + x"}}]));
    assert_eq!(floats(&out, "z"), [Some(6.0), None]);
}

#[test]
fn a_bad_derive_expression_names_the_column_and_the_expression() {
    let frame = df!("a" => [1.0]).unwrap();
    let err = try_run(frame.clone(), json!([{"derive": {"r": "a / "}}])).unwrap_err().to_string();
    assert!(err.starts_with("derived column \"r\" = \"a / \": "), "{err}");
    let err = try_run(frame.clone(), json!([{"derive": {"ok": "a + 1", "r": "a / bee"}}])).unwrap_err().to_string();
    assert!(err.starts_with("derived column \"r\" = \"a / bee\": ") && err.contains("bee"), "{err}");
    let err = try_run(frame, json!([{"derive": {"r": "no_such_function(a)"}}])).unwrap_err().to_string();
    assert!(err.starts_with("derived column \"r\" = \"no_such_function(a)\": "), "{err}");
}

/// Islands reference data written on the 3rd, rewritten on the 7th; the runs' logical date is the 5th.
fn islands_lake(dir: &crate::test_util::TempDir) -> (Lake, String) {
    let lake = Lake::new(dir.path());
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 1, d).unwrap();
    let mut v1 = df!("island" => ["Biscoe", "Dream"], "area" => [10.0, 20.0], "name" => ["B", "D"]).unwrap();
    let written = lake.write("lake://ref/islands", day(3), &mut v1).unwrap();
    let mut v2 =
        df!("island" => ["Biscoe", "Dream", "Torgersen"], "area" => [11.0, 21.0, 31.0], "name" => ["B", "D", "T"])
            .unwrap();
    lake.write("lake://ref/islands", day(7), &mut v2).unwrap();
    (lake, written.content_hash)
}

fn penguins_by_island() -> DataFrame {
    df!("island" => [Some("Dream"), Some("Torgersen"), None, Some("Biscoe")], "name" => ["p1", "p2", "p3", "p4"])
        .unwrap()
}

#[test]
fn join_takes_the_newest_partition_up_to_the_logical_date() {
    use crate::test_util::{TempDir, ds};
    let dir = TempDir::new();
    let (lake, hash_of_the_3rd) = islands_lake(&dir);
    let spec = steps(json!([{"join": {"asset": "lake://ref/islands", "on": ["island"]}}]));
    let (out, fitted) = fit(penguins_by_island(), &spec, &lake, ds()).unwrap();
    assert_eq!(names(&out), ["island", "name", "area", "name_right"]);
    assert_eq!(texts(&out, "name"), [Some("p1".into()), Some("p2".into()), Some("p3".into()), Some("p4".into())]);
    assert_eq!(floats(&out, "area"), [Some(20.0), None, None, Some(10.0)], "the 3rd's data: no Torgersen yet");
    let FittedStep::Join(join) = &fitted.steps[0] else { panic!("{fitted:?}") };
    assert_eq!((join.partition.to_string(), &join.content_hash), ("2026-01-03".into(), &hash_of_the_3rd));

    let inner = steps(
        json!([{"join": {"asset": "lake://ref/islands", "on": ["island"], "how": "inner", "suffix": "_island"}}]),
    );
    let (out, _) = fit(penguins_by_island(), &inner, &lake, ds().succ_opt().unwrap().succ_opt().unwrap()).unwrap();
    assert_eq!(texts(&out, "name_island"), [Some("D".into()), Some("T".into()), Some("B".into())], "the 7th's data");

    let before = chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
    let err = fit(penguins_by_island(), &spec, &lake, before).unwrap_err().to_string();
    assert_eq!(err, "cannot join lake://ref/islands: it has no partition on or before 2026-01-02");
    let by_size = steps(json!([{"join": {"asset": "lake://ref/islands", "on": ["size"]}}]));
    let frame = df!("size" => [1i64]).unwrap();
    let err = fit(frame, &by_size, &lake, ds()).unwrap_err().to_string();
    assert!(err.starts_with("cannot join lake://ref/islands: column \"size\" not found"), "{err}");
}

#[test]
fn join_replays_the_partition_it_was_fitted_on() {
    use crate::test_util::{TempDir, ds};
    let dir = TempDir::new();
    let (lake, _) = islands_lake(&dir);
    let spec = steps(json!([
        {"join": {"asset": "lake://ref/islands", "on": ["island"]}},
        {"derive": {"area_per_letter": "area / length(name_right)"}},
    ]));
    let (train_out, fitted) = fit(penguins_by_island(), &spec, &lake, ds()).unwrap();
    assert_eq!(fitted.apply(penguins_by_island()).unwrap(), train_out);

    let mut artifact: FittedTransform = serde_json::from_str(&serde_json::to_string(&fitted).unwrap()).unwrap();
    assert_eq!(artifact, fitted);
    let err = artifact.apply(penguins_by_island()).unwrap_err().to_string();
    assert!(err.contains("needs its partition of 2026-01-03 read first"), "{err}");
    artifact.read_joined(&lake).unwrap();
    // Torgersen exists in the newer reference data, but replay joins what the transform was fitted with.
    let new = df!("island" => ["Torgersen", "Dream"], "name" => ["q1", "q2"]).unwrap();
    let out = artifact.apply(new).unwrap();
    assert_eq!(floats(&out, "area"), [None, Some(20.0)]);
    assert_eq!(floats(&out, "area_per_letter"), [None, Some(20.0)]);

    let day3 = chrono::NaiveDate::from_ymd_opt(2026, 1, 3).unwrap();
    lake.write("lake://ref/islands", day3, &mut df!("island" => ["Dream"], "area" => [99.0]).unwrap()).unwrap();
    let err = artifact.read_joined(&lake).unwrap_err().to_string();
    assert!(err.contains("was rewritten since the transform was fitted"), "{err}");
}

/// A transform task with a join, through the lake: the stored artifact names the joined partition, and loading it
/// reads that partition back for replay.
#[test]
fn transform_task_with_a_join_replays_from_the_lake() {
    use crate::test_util::{TempDir, ds};
    use sluice_core::ops_spec::TransformSpec;
    let dir = TempDir::new();
    let (lake, hash_of_the_3rd) = islands_lake(&dir);
    lake.write("lake://raw/penguins", ds(), &mut penguins_by_island()).unwrap();
    let spec: TransformSpec = serde_json::from_value(json!({
        "inputs": ["lake://raw/penguins"],
        "outputs": ["lake://features/penguins"],
        "steps": [
            {"join": {"asset": "lake://ref/islands", "on": ["island"], "how": "inner"}},
            {"derive": {"big": "area > 15"}},
            {"select": ["name", "big"]},
        ]
    }))
    .unwrap();
    let out = run_transform(&spec, &lake, ds()).unwrap();
    assert_eq!(out.outputs[0].rows, 2);
    let features = lake.read("lake://features/penguins", ds()).unwrap();
    assert_eq!(floats(&features, "big"), [Some(1.0), Some(0.0)]);

    let json = std::fs::read_to_string(lake.partition_dir("lake://features/penguins", ds()).unwrap().join(FITTED_FILE));
    let json: serde_json::Value = serde_json::from_str(&json.unwrap()).unwrap();
    assert_eq!(json["steps"][0]["join"]["partition"], "2026-01-03", "{json:#}");
    assert_eq!(json["steps"][0]["join"]["content_hash"], hash_of_the_3rd.as_str());
    assert_eq!(json["steps"][1]["derive"]["big"], "area > 15");

    let stored = FittedTransform::load(&lake, "lake://features/penguins", ds()).unwrap();
    assert_eq!(stored.apply(penguins_by_island()).unwrap(), features);
}
