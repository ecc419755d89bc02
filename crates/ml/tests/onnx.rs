//! ONNX models as users' code exports them, against the answers of the library that trained them (printed by
//! `tests/data/make_onnx.py`), and the errors that say how to export a model Sluice can serve.
#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use ndarray::array;
use sluice_ml::OnnxModel;

const FOREST: &[u8] = include_bytes!("data/forest.onnx");
const LINEAR: &[u8] = include_bytes!("data/linear.onnx");

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn a_scikit_learn_forest_predicts_as_scikit_learn() {
    let features = names(&["x0", "x1", "x2"]);
    let model = OnnxModel::from_bytes(FOREST, Some(&features)).unwrap();
    assert_eq!(model.feature_names(), features.as_slice());
    assert_eq!(model.classes(), Some(names(&["high", "low", "mid"]).as_slice()));
    let out = model.predict(array![[0.9, 0.8, 0.1], [0.1, 0.2, 0.9], [0.2, 0.1, 0.1]].view()).unwrap();
    assert_eq!(out.labels.unwrap(), names(&["high", "mid", "low"]));
    // scikit-learn's predict_proba, rounded to 6 digits.
    let expected = array![[0.833333, 0.166667, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]];
    let probabilities = out.probabilities.unwrap();
    assert!((probabilities - expected).iter().all(|d| d.abs() < 1e-5));
    assert!(out.values.is_none());
}

#[test]
fn a_model_with_one_input_per_feature_names_its_features_and_regresses() {
    let model = OnnxModel::from_bytes(LINEAR, None).unwrap();
    assert_eq!(model.feature_names(), names(&["a", "b"]).as_slice());
    assert_eq!(model.classes(), None);
    let out = model.predict(array![[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]].view()).unwrap();
    assert_eq!(out.values.unwrap(), vec![2.5, -2.5, -1.5]);
    assert!(out.labels.is_none() && out.probabilities.is_none());
}

#[test]
fn errors_say_how_to_export_a_servable_model() {
    let err = OnnxModel::from_bytes(FOREST, None).err().unwrap().to_string();
    assert!(err.contains("features.json") && err.contains("\"features\""), "{err}");
    let err = OnnxModel::from_bytes(FOREST, Some(&names(&["x0", "x1"]))).err().unwrap().to_string();
    assert!(err.contains("names 2 columns") && err.contains("has 3"), "{err}");
    let err = OnnxModel::from_bytes(LINEAR, Some(&names(&["b", "a"]))).err().unwrap().to_string();
    assert!(err.contains("inputs are a, b"), "{err}");
    let err = OnnxModel::from_bytes(b"not a model", None).err().unwrap().to_string();
    assert!(err.contains("not an ONNX model"), "{err}");
    let model = OnnxModel::from_bytes(LINEAR, None).unwrap();
    let err = model.predict(array![[1.0, 2.0, 3.0]].view()).err().unwrap().to_string();
    assert!(err.contains("expects 2 feature columns"), "{err}");
}
