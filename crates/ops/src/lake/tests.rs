//! The lake's layout, URI checks and atomic writes.

use polars::df;

use super::*;
use crate::test_util::{TempDir, ds};

#[test]
fn uris_map_to_folders_and_partitions() {
    let lake = Lake::new("/lake");
    assert_eq!(lake.asset_dir("lake://raw/penguins").unwrap(), Path::new("/lake/raw/penguins"));
    assert_eq!(lake.asset_dir("lake://raw/penguins/").unwrap(), Path::new("/lake/raw/penguins"));
    assert_eq!(
        lake.partition_file("lake://raw/penguins", ds()).unwrap(),
        Path::new("/lake/raw/penguins/ds=2026-01-05/part-0.parquet")
    );
}

#[test]
fn bad_uris_are_rejected() {
    let lake = Lake::new("/lake");
    for uri in
        ["s3://b/k", "lake://", "lake://raw//x", "lake://../etc", "lake://raw/./x", "lake://a\\b", "lake://a/ds=x"]
    {
        let err = lake.asset_dir(uri).unwrap_err();
        assert!(matches!(err, OpsError::BadUri { .. }), "{uri}: {err}");
    }
}

#[test]
fn write_then_read_round_trips_with_a_stable_hash() {
    let dir = TempDir::new();
    let lake = Lake::new(dir.path());
    let mut frame = df!("a" => [1i64, 2, 3], "b" => ["x", "y", "z"]).unwrap();
    let first = lake.write("lake://raw/t", ds(), &mut frame).unwrap();
    assert_eq!(first.rows, 3);
    assert_eq!(first.content_hash.len(), 64);
    assert_eq!(lake.read("lake://raw/t", ds()).unwrap(), frame);
    // Re-running the date replaces the partition with the same bytes.
    let second = lake.write("lake://raw/t", ds(), &mut frame).unwrap();
    assert_eq!(second, first);
    let files: Vec<_> = fs::read_dir(first.path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["part-0.parquet"]);
}

#[test]
fn a_failed_write_leaves_no_partial_output() {
    let dir = TempDir::new();
    let lake = Lake::new(dir.path());
    let target = lake.partition_file("lake://raw/t", ds()).unwrap();
    // A folder where the file should go makes the final rename fail after the data was written.
    fs::create_dir_all(target.join("blocker")).unwrap();
    let err = lake.write("lake://raw/t", ds(), &mut df!("a" => [1i64]).unwrap()).unwrap_err();
    assert!(matches!(err, OpsError::Io { .. }), "{err}");
    let files: Vec<_> = fs::read_dir(target.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["part-0.parquet"], "only the blocking folder, no temporary file");
    assert!(target.is_dir());
}

#[test]
fn reading_a_missing_partition_names_it() {
    let dir = TempDir::new();
    let err = Lake::new(dir.path()).read("lake://raw/none", ds()).unwrap_err();
    assert!(matches!(err, OpsError::NoPartition { .. }), "{err}");
    assert!(err.to_string().contains("2026-01-05"), "{err}");
}

#[test]
fn latest_partition_at_or_before_a_date() {
    let dir = TempDir::new();
    let lake = Lake::new(dir.path());
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 1, d).unwrap();
    assert_eq!(lake.latest_partition("lake://ref/t", day(5)).unwrap(), None, "no folder at all");
    let mut frame = df!("a" => [1i64]).unwrap();
    for d in [2, 4, 9] {
        lake.write("lake://ref/t", day(d), &mut frame).unwrap();
    }
    // Neither an empty partition folder nor a stray file counts.
    fs::create_dir_all(lake.partition_dir("lake://ref/t", day(5)).unwrap()).unwrap();
    fs::write(lake.asset_dir("lake://ref/t").unwrap().join("notes.txt"), "x").unwrap();
    assert_eq!(lake.latest_partition("lake://ref/t", day(5)).unwrap(), Some(day(4)));
    assert_eq!(lake.latest_partition("lake://ref/t", day(9)).unwrap(), Some(day(9)));
    assert_eq!(lake.latest_partition("lake://ref/t", day(1)).unwrap(), None);

    let written = lake.write("lake://ref/t", day(4), &mut frame).unwrap();
    let (back, hash) = lake.read_hashed("lake://ref/t", day(4)).unwrap();
    assert_eq!((back, hash), (frame, written.content_hash));
    let err = lake.read_hashed("lake://ref/t", day(3)).unwrap_err();
    assert!(matches!(err, OpsError::NoPartition { .. }), "{err}");
}

#[test]
fn appended_batches_are_files_of_one_partition_read_together() {
    let dir = TempDir::new();
    let lake = Lake::new(dir.path());
    let uri = "lake://predictions/m";
    assert!(lake.read_parts(uri, ds()).unwrap().is_empty(), "no partition yet: no part");
    let mut first = df!("a" => [1i64, 2]).unwrap();
    let mut second = df!("a" => [3i64]).unwrap();
    let written = lake.append(uri, ds(), &mut first).unwrap();
    lake.append(uri, ds(), &mut second).unwrap();
    assert_eq!((written.rows, written.content_hash.len()), (2, 64));
    assert!(written.path.file_name().unwrap().to_string_lossy().starts_with("part-"), "{}", written.path.display());
    assert_eq!(lake.read_parts(uri, ds()).unwrap(), [first.clone(), second.clone()], "in the order written");
    assert_eq!(lake.read(uri, ds()).unwrap(), df!("a" => [1i64, 2, 3]).unwrap());
    assert_eq!(lake.latest_partition(uri, ds()).unwrap(), Some(ds()));
    let temporary = lake
        .partition_dir(uri, ds())
        .unwrap()
        .read_dir()
        .unwrap()
        .any(|f| f.unwrap().file_name().to_string_lossy().starts_with('.'));
    assert!(!temporary, "no temporary file is left behind");
}
