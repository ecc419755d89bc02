//! A data task end to end on the penguins data: the asset events and the quality statuses it outputs.

use serde_json::json;
use sha2::Digest;
use sluice_core::ops_spec::OpSpec;
use sluice_core::protocol::QualityStatus;

use super::*;
use crate::test_util::{TempDir, context, dags_dir, ds};

fn op(v: serde_json::Value) -> OpSpec {
    serde_json::from_value(v).unwrap()
}

fn quality(checks: serde_json::Value) -> OpSpec {
    op(json!({"kind": "quality", "inputs": ["lake://raw/penguins"], "checks": checks}))
}

#[test]
fn ingest_then_quality_outputs_events_and_statuses() {
    let dir = TempDir::new();
    let lake = Lake::new(dir.path());
    let base = dags_dir();
    let ctx = context(&lake, &base);
    let ingest = op(json!({
        "kind": "ingest", "source": {"type": "csv", "path": "data/penguins.csv"}, "outputs": ["lake://raw/penguins"]
    }));
    let out = run_op(&ingest, &ctx).unwrap();
    let [asset] = out.assets.as_slice() else { panic!("{out:?}") };
    assert_eq!((asset.uri.as_str(), asset.rows), ("lake://raw/penguins", Some(344)));
    let schema = asset.schema.as_ref().unwrap().as_array().unwrap();
    assert!(schema.iter().any(|c| c["name"] == "species"), "{schema:?}");
    let on_disk = std::fs::read(lake.partition_file("lake://raw/penguins", ds()).unwrap()).unwrap();
    assert_eq!(asset.content_hash.as_deref(), Some(hex::encode(sha2::Sha256::digest(on_disk)).as_str()));

    let missing = |severity: &str| quality(json!([{"max_missing_rate": 0.01, "severity": severity}]));
    let warned = run_op(&missing("warn"), &ctx).unwrap();
    assert_eq!(warned.quality[0].status, QualityStatus::Warn, "sex is missing in 11 of 344 rows");
    assert_eq!(warned.quality[0].report["rows"], 344);
    assert_eq!(run_op(&missing("error"), &ctx).unwrap().quality[0].status, QualityStatus::Failed);
    let passed = run_op(&quality(json!([{"row_count": {"min": 300}}])), &ctx).unwrap();
    assert_eq!(passed.quality[0].status, QualityStatus::Passed);
}
