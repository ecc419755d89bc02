//! Training end to end: model selection on synthetic and real data, folds, errors, models.
#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

mod common {
    pub mod penguins;
}

use std::collections::BTreeMap;

use ndarray::{Array2, array};
use serde_json::{Value, json};
use sluice_ml::{Algorithm, Candidate, Dataset, Metric, MlError, Model, Target, TrainSpec, expand_grid, train};

fn candidate(algorithm: Algorithm, params: Value) -> Candidate {
    Candidate { algorithm, params: serde_json::from_value(params).unwrap() }
}

fn spec(candidates: Vec<Candidate>, metric: Metric) -> TrainSpec {
    TrainSpec { candidates, folds: 5, seed: 7, metric }
}

/// Two well separated blobs in two dimensions, 20 rows each.
fn separable(n_per_class: usize) -> Dataset {
    let mut x = Array2::zeros((2 * n_per_class, 2));
    let mut labels = Vec::new();
    for i in 0..2 * n_per_class {
        let class = i % 2;
        let offset = if class == 0 { -5.0 } else { 5.0 };
        x[[i, 0]] = offset + ((i * 7) % 10) as f64 / 10.0;
        x[[i, 1]] = offset - ((i * 3) % 10) as f64 / 10.0;
        labels.push(class);
    }
    Dataset {
        features: x,
        feature_names: vec!["a".into(), "b".into()],
        target: Target::Classes { labels, classes: vec!["left".into(), "right".into()] },
    }
}

fn all_classifiers() -> Vec<Candidate> {
    vec![
        candidate(Algorithm::LogisticRegression, json!({})),
        candidate(Algorithm::DecisionTree, json!({"max_depth": 3})),
        candidate(Algorithm::RandomForest, json!({"n_trees": 10})),
    ]
}

#[test]
fn separable_data_is_learned_perfectly_by_every_classifier() {
    let data = separable(20);
    let outcome = train(&data, &spec(all_classifiers(), Metric::Accuracy)).unwrap();
    for result in &outcome.candidates {
        assert_eq!(result.cv.mean["accuracy"], 1.0, "{:?}", result.candidate);
        assert_eq!(result.cv.mean["roc_auc"], 1.0, "{:?}", result.candidate);
        assert_eq!(result.cv.per_fold.len(), 5);
        // Every row is held out exactly once: the summed confusion matrix counts all 40.
        let matrix = result.cv.confusion_matrix.as_ref().unwrap();
        assert_eq!(matrix, &vec![vec![20, 0], vec![0, 20]]);
    }
    // All equal: the first candidate wins.
    assert_eq!(outcome.best, outcome.candidates[0].candidate);
    let p = outcome.model.predict(array![[-5.0, -5.0], [5.0, 5.0]].view()).unwrap();
    assert_eq!(p.labels.unwrap(), vec!["left", "right"]);
    let probabilities = p.probabilities.unwrap();
    assert_eq!(probabilities.dim(), (2, 2));
    assert!(probabilities[[0, 0]] > 0.9 && probabilities[[1, 1]] > 0.9);
}

#[test]
fn penguins_cross_validate_above_095() {
    let data = common::penguins::penguins();
    assert_eq!(data.features.dim(), (333, 9));
    let spec = common::penguins::penguins_spec();
    let outcome = train(&data, &spec).unwrap();
    let best = outcome.candidates.iter().find(|c| c.candidate == outcome.best).unwrap();
    // scikit-learn's best on the same features: 0.994 (LogisticRegression, C=1).
    assert!(best.cv.mean["accuracy"] >= 0.95, "{:?}", best.cv.mean);
    assert_eq!(outcome.best.algorithm, Algorithm::LogisticRegression);
    for metric in ["accuracy", "precision", "recall", "f1", "log_loss"] {
        assert!(best.cv.mean.contains_key(metric), "{metric}");
    }
    // Three classes: no ROC AUC.
    assert!(!best.cv.mean.contains_key("roc_auc"));
    let total: u64 = best.cv.confusion_matrix.as_ref().unwrap().iter().flatten().sum();
    assert_eq!(total, 333);

    // The refitted model round-trips through JSON and predicts the same.
    let again = Model::from_json(&outcome.model.to_json().unwrap()).unwrap();
    let x = data.features.view();
    assert_eq!(outcome.model.predict(x).unwrap(), again.predict(x).unwrap());
    assert_eq!(again.classes.as_deref(), Some(&["Adelie".to_string(), "Chinstrap".into(), "Gentoo".into()][..]));
}

#[test]
fn every_algorithm_round_trips_through_json() {
    let data = common::penguins::penguins();
    for c in all_classifiers() {
        let outcome = train(&data, &spec(vec![c.clone()], Metric::LogLoss)).unwrap();
        let again = Model::from_json(&outcome.model.to_json().unwrap()).unwrap();
        let x = data.features.view();
        assert_eq!(outcome.model.predict(x).unwrap(), again.predict(x).unwrap(), "{c:?}");
    }
    let regression = regression_data();
    for algorithm in [Algorithm::LinearRegression, Algorithm::ElasticNet] {
        let c = candidate(algorithm, json!({}));
        let outcome = train(&regression, &spec(vec![c], Metric::Rmse)).unwrap();
        let again = Model::from_json(&outcome.model.to_json().unwrap()).unwrap();
        let x = regression.features.view();
        assert_eq!(outcome.model.predict(x).unwrap(), again.predict(x).unwrap());
    }
}

#[test]
fn folds_are_stratified_and_deterministic_for_a_seed() {
    let data = common::penguins::penguins();
    let run = |seed| {
        let mut s = spec(vec![candidate(Algorithm::DecisionTree, json!({"max_depth": 1}))], Metric::Accuracy);
        s.seed = seed;
        train(&data, &s).unwrap().folds
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let Target::Classes { labels, .. } = &data.target else { unreachable!() };
    for class in 0..3 {
        let members = labels.iter().filter(|&&l| l == class).count();
        for fold in 0..5 {
            let in_fold = (0..labels.len()).filter(|&r| labels[r] == class && a[r] == fold).count();
            // Round-robin: each fold holds a fifth of the class, give or take one row.
            assert!(in_fold.abs_diff(members / 5) <= 1, "class {class} fold {fold}: {in_fold} of {members}");
        }
    }
    let sizes: Vec<usize> = (0..5).map(|f| a.iter().filter(|&&x| x == f).count()).collect();
    assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
}

fn regression_data() -> Dataset {
    // y = 3·a − 2·b + 1 + a small wobble, a and b far from centred (so an intercept matters).
    let n = 60;
    let mut x = Array2::zeros((n, 2));
    let mut y = Vec::new();
    for i in 0..n {
        let (a, b) = (10.0 + (i % 7) as f64, 20.0 + ((i * 5) % 11) as f64);
        x[[i, 0]] = a;
        x[[i, 1]] = b;
        y.push(3.0 * a - 2.0 * b + 1.0 + ((i * 13) % 5) as f64 * 0.01);
    }
    Dataset { features: x, feature_names: vec!["a".into(), "b".into()], target: Target::Values(y) }
}

#[test]
fn regression_fits_a_linear_relation() {
    let data = regression_data();
    let candidates = vec![
        candidate(Algorithm::LinearRegression, json!({})),
        candidate(Algorithm::ElasticNet, json!({"alpha": 0.001, "l1_ratio": 0.5})),
    ];
    let outcome = train(&data, &spec(candidates, Metric::Rmse)).unwrap();
    for result in &outcome.candidates {
        assert!(result.cv.mean["r2"] > 0.999, "{:?}", result.cv.mean);
        assert!(result.cv.mean["rmse"] < 0.1, "{:?}", result.cv.mean);
        assert!(result.cv.confusion_matrix.is_none());
    }
    // rmse is lower-is-better: the best has the smallest mean.
    let rmse: Vec<f64> = outcome.candidates.iter().map(|c| c.cv.mean["rmse"]).collect();
    let best = if rmse[0] <= rmse[1] { 0 } else { 1 };
    assert_eq!(outcome.best, outcome.candidates[best].candidate, "{rmse:?}");
    let p = outcome.model.predict(array![[12.0, 25.0]].view()).unwrap();
    let value = p.values.unwrap()[0];
    assert!((value - (36.0 - 50.0 + 1.0)).abs() < 0.05, "{value}");
    assert!(p.labels.is_none() && p.probabilities.is_none());
}

#[test]
fn elastic_net_intercept_is_right_for_uncentred_features() {
    // With a tiny penalty, elastic net must agree with least squares even though the features sit far
    // from zero (linfa alone centres only the target).
    let data = regression_data();
    let c = candidate(Algorithm::ElasticNet, json!({"alpha": 1e-6, "tolerance": 1e-10, "max_iterations": 100000}));
    let outcome = train(&data, &spec(vec![c], Metric::R2)).unwrap();
    let value = outcome.model.predict(array![[12.0, 25.0]].view()).unwrap().values.unwrap()[0];
    assert!((value - (36.0 - 50.0 + 1.0)).abs() < 0.05, "{value}");
}

fn message(result: Result<impl std::fmt::Debug, MlError>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn wrong_algorithm_for_the_target_is_a_clear_error() {
    let classes = separable(10);
    let m = message(train(&classes, &spec(vec![candidate(Algorithm::LinearRegression, json!({}))], Metric::Accuracy)));
    assert!(m.contains("linear_regression cannot be trained on a class target"), "{m}");
    let values = regression_data();
    let m = message(train(&values, &spec(vec![candidate(Algorithm::LogisticRegression, json!({}))], Metric::Rmse)));
    assert!(m.contains("logistic_regression cannot be trained on a numeric target"), "{m}");
    let gini = candidate(Algorithm::DecisionTree, json!({"split_quality": "gini"}));
    let m = message(train(&values, &spec(vec![gini], Metric::Rmse)));
    let want = "invalid parameter \"split_quality\" for decision_tree: gini and entropy are for class targets";
    assert!(m.contains(want), "{m}");
    let squared = candidate(Algorithm::RandomForest, json!({"split_quality": "squared_error"}));
    let m = message(train(&classes, &spec(vec![squared], Metric::Accuracy)));
    assert!(m.contains("\"split_quality\" for random_forest: squared_error is for numeric targets"), "{m}");
    let m = message(train(&values, &spec(vec![candidate(Algorithm::LinearRegression, json!({}))], Metric::Accuracy)));
    assert!(m.contains("metric accuracy does not apply"), "{m}");
    let penguins = common::penguins::penguins();
    let m = message(train(&penguins, &spec(vec![candidate(Algorithm::DecisionTree, json!({}))], Metric::RocAuc)));
    assert!(m.contains("roc_auc"), "{m}");
}

#[test]
fn unusable_data_is_a_clear_error() {
    let lr = || vec![candidate(Algorithm::LogisticRegression, json!({}))];
    // A class with fewer rows than folds names the class and its count.
    let mut data = separable(10);
    if let Target::Classes { labels, classes } = &mut data.target {
        classes.push("rare".into());
        labels[0] = 2;
        labels[2] = 2;
    }
    let m = message(train(&data, &spec(lr(), Metric::Accuracy)));
    assert!(m.contains("class \"rare\" has 2 rows, fewer than the 5 folds"), "{m}");
    // Fewer rows than folds.
    let tiny = separable(2);
    let m = message(train(&tiny, &spec(lr(), Metric::Accuracy)));
    assert!(m.contains("4 rows are fewer than the 5 folds"), "{m}");
    // No rows.
    let empty = Dataset {
        features: Array2::zeros((0, 2)),
        feature_names: vec!["a".into(), "b".into()],
        target: Target::Classes { labels: vec![], classes: vec!["x".into()] },
    };
    assert!(message(train(&empty, &spec(lr(), Metric::Accuracy))).contains("no rows"));
    // One class.
    let mut one = separable(10);
    if let Target::Classes { labels, .. } = &mut one.target {
        labels.iter_mut().for_each(|l| *l = 1);
    }
    let m = message(train(&one, &spec(lr(), Metric::Accuracy)));
    assert!(m.contains("constant: every row is of class \"right\""), "{m}");
    // Zero variance.
    let mut flat = regression_data();
    flat.target = Target::Values(vec![2.5; 60]);
    let m = message(train(&flat, &spec(vec![candidate(Algorithm::LinearRegression, json!({}))], Metric::Rmse)));
    assert!(m.contains("the target is constant (2.5)"), "{m}");
}

#[test]
fn predict_checks_the_column_count() {
    let outcome = train(&separable(10), &spec(all_classifiers(), Metric::Accuracy)).unwrap();
    let m = message(outcome.model.predict(array![[1.0, 2.0, 3.0]].view()));
    assert!(m.contains("expects 2 feature columns (a, b), got 3"), "{m}");
}

#[test]
fn a_damaged_model_is_refused_when_read() {
    let data = separable(10);
    let damaged = |algorithm, change: &dyn Fn(&mut Value)| {
        let outcome = train(&data, &spec(vec![candidate(algorithm, json!({}))], Metric::Accuracy)).unwrap();
        let mut json: Value = serde_json::from_slice(&outcome.model.to_json().unwrap()).unwrap();
        change(&mut json);
        message(Model::from_json(&serde_json::to_vec(&json).unwrap()))
    };
    // Weights for two columns, one feature name.
    let m = damaged(Algorithm::LogisticRegression, &|j| j["feature_names"] = json!(["a"]));
    assert!(m.contains("inconsistent"), "{m}");
    // Leaves with two probabilities, three classes.
    let m = damaged(Algorithm::DecisionTree, &|j| j["classes"] = json!(["x", "y", "z"]));
    assert!(m.contains("inconsistent"), "{m}");
    // A split reading a column the model does not have.
    let m = damaged(Algorithm::DecisionTree, &|j| j["feature_names"] = json!([]));
    assert!(m.contains("inconsistent"), "{m}");
    assert!(Model::from_json(b"{").is_err());
}

#[test]
fn grid_expands_to_the_cross_product_in_sklearn_order() {
    let grid: BTreeMap<String, Vec<Value>> = [
        ("max_depth".to_string(), vec![json!(2), json!(null)]),
        ("split_quality".to_string(), vec![json!("gini"), json!("entropy")]),
    ]
    .into();
    let candidates = expand_grid(Algorithm::DecisionTree, &grid).unwrap();
    let params: Vec<Value> = candidates.iter().map(|c| serde_json::to_value(&c.params).unwrap()).collect();
    assert_eq!(
        params,
        vec![
            json!({"max_depth": 2, "split_quality": "gini"}),
            json!({"max_depth": 2, "split_quality": "entropy"}),
            json!({"max_depth": null, "split_quality": "gini"}),
            json!({"max_depth": null, "split_quality": "entropy"}),
        ]
    );
    assert_eq!(expand_grid(Algorithm::LinearRegression, &BTreeMap::new()).unwrap().len(), 1);
}

#[test]
fn grid_errors_name_the_bad_key() {
    let one = |key: &str, value: Value| -> BTreeMap<String, Vec<Value>> { [(key.to_string(), vec![value])].into() };
    let cases = [
        (
            Algorithm::LogisticRegression,
            one("C", json!(1.0)),
            "invalid parameter \"C\" for logistic_regression: unknown parameter",
        ),
        (
            Algorithm::LogisticRegression,
            one("alpha", json!("big")),
            "invalid parameter \"alpha\" for logistic_regression: expected a number",
        ),
        (Algorithm::LogisticRegression, one("alpha", json!(-1.0)), "\"alpha\""),
        (Algorithm::DecisionTree, one("split_quality", json!("mse")), "\"split_quality\""),
        (Algorithm::DecisionTree, one("max_depth", json!(2.5)), "\"max_depth\""),
        (Algorithm::RandomForest, one("max_features", json!(1.5)), "\"max_features\""),
        (Algorithm::RandomForest, one("n_trees", json!(0)), "\"n_trees\""),
        (Algorithm::ElasticNet, one("l1_ratio", json!(2)), "\"l1_ratio\""),
        (Algorithm::LinearRegression, one("fit_intercept", json!("yes")), "\"fit_intercept\""),
        (Algorithm::LinearRegression, one("fit_intercept", json!([])), "\"fit_intercept\""),
    ];
    for (algorithm, grid, want) in cases {
        let m = message(expand_grid(algorithm, &grid));
        assert!(m.contains(want), "{m}");
    }
    let empty: BTreeMap<String, Vec<Value>> = [("alpha".to_string(), vec![])].into();
    assert!(message(expand_grid(Algorithm::ElasticNet, &empty)).contains("no values"));
}

#[test]
fn metric_names_parse_and_rank() {
    assert_eq!("roc_auc".parse::<Metric>().unwrap(), Metric::RocAuc);
    assert_eq!(serde_json::to_value(Metric::LogLoss).unwrap(), json!("log_loss"));
    let m = message("auc".parse::<Metric>());
    assert!(m.contains("unknown metric \"auc\""), "{m}");
    assert!(Metric::Accuracy.higher_is_better() && Metric::R2.higher_is_better());
    assert!(!Metric::LogLoss.higher_is_better() && !Metric::Rmse.higher_is_better() && !Metric::Mae.higher_is_better());
    let spec: TrainSpec = serde_json::from_value(json!({
        "candidates": [{"algorithm": "random_forest", "params": {"n_trees": 5}}],
        "metric": "f1"
    }))
    .unwrap();
    assert_eq!((spec.folds, spec.seed, spec.metric), (5, 0, Metric::F1));
}

#[test]
fn the_best_candidate_follows_the_metric_direction() {
    // Log loss is lower-is-better: a deep forest is more confident on separable data than a depth-1 tree
    // with probabilities from leaf shares... both perfect; the log loss decides and must pick the minimum.
    let data = common::penguins::penguins();
    let candidates = vec![
        candidate(Algorithm::LogisticRegression, json!({"alpha": 100.0})),
        candidate(Algorithm::LogisticRegression, json!({"alpha": 1.0})),
    ];
    let outcome = train(&data, &spec(candidates, Metric::LogLoss)).unwrap();
    let losses: Vec<f64> = outcome.candidates.iter().map(|c| c.cv.mean["log_loss"]).collect();
    let best = if losses[0] <= losses[1] { 0 } else { 1 };
    assert_eq!(outcome.best, outcome.candidates[best].candidate, "{losses:?}");
    assert_eq!(best, 1, "the weaker penalty fits separable classes more sharply: {losses:?}");
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let data = common::penguins::penguins();
    let candidates = vec![
        candidate(Algorithm::RandomForest, json!({"n_trees": 30})),
        candidate(Algorithm::DecisionTree, json!({"split_quality": "entropy"})),
    ];
    let run = |seed| {
        let mut s = spec(candidates.clone(), Metric::LogLoss);
        s.seed = seed;
        let outcome = train(&data, &s).unwrap();
        let scores: Vec<_> = outcome.candidates.iter().map(|c| c.cv.per_fold.clone()).collect();
        (outcome.model.to_json().unwrap(), scores)
    };
    let first = run(3);
    for _ in 0..3 {
        assert!(run(3) == first, "same seed, different result");
    }
    assert!(run(4).0 != first.0, "another seed grows another forest");
}

#[test]
fn trees_and_forests_learn_values_too() {
    let data = regression_data();
    let candidates =
        vec![candidate(Algorithm::DecisionTree, json!({})), candidate(Algorithm::RandomForest, json!({"n_trees": 20}))];
    let outcome = train(&data, &spec(candidates, Metric::R2)).unwrap();
    for result in &outcome.candidates {
        assert!(result.cv.mean["r2"] > 0.8, "{:?}: {:?}", result.candidate, result.cv.mean);
    }
    let p = outcome.model.predict(data.features.view()).unwrap();
    let Target::Values(y) = &data.target else { unreachable!() };
    let fitted_r2 = sluice_ml::metrics::r2(y, p.values.as_ref().unwrap());
    assert!(fitted_r2 > 0.95, "{fitted_r2}");
}

#[test]
fn a_tree_splits_at_the_midpoint_and_sends_equal_values_left() {
    // Classes change between 1.2 and 2.0 on one feature: one split at their midpoint, 1.6, separates them.
    let data = Dataset {
        features: array![[0.0], [1.0], [2.0], [3.0], [0.1], [1.1], [2.1], [3.1], [0.2], [1.2], [2.2], [3.2]],
        feature_names: vec!["x".into()],
        target: Target::Classes {
            labels: vec![0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1],
            classes: vec!["a".into(), "b".into()],
        },
    };
    let mut s = spec(vec![candidate(Algorithm::DecisionTree, json!({}))], Metric::Accuracy);
    s.folds = 2;
    let outcome = train(&data, &s).unwrap();
    assert_eq!(outcome.candidates[0].cv.mean["accuracy"], 1.0);
    let p = outcome.model.predict(array![[1.6], [1.6000001]].view()).unwrap();
    assert_eq!(p.labels.unwrap(), vec!["a", "b"]);
    assert_eq!(p.probabilities.unwrap(), array![[1.0, 0.0], [0.0, 1.0]]);
}
