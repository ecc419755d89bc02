//! The Palmer penguins as a training set, built with plain Rust: rows with a missing value dropped, the
//! four measurements standardized (population standard deviation), island and sex one-hot; the target is
//! the species. 333 rows × 9 features.

use std::collections::BTreeSet;

use ndarray::Array2;
use sluice_ml::{Dataset, Target};

pub fn penguins() -> Dataset {
    let text = include_str!("../data/penguins.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or(usize::MAX);
    let numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"];
    let rows: Vec<Vec<&str>> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|r| r.len() == header.len() && r.iter().all(|v| *v != "NA" && !v.is_empty()))
        .collect();
    let levels = |c: usize| -> Vec<String> {
        rows.iter().map(|r| r[c].to_string()).collect::<BTreeSet<_>>().into_iter().collect()
    };
    let (species, island, sex) = (col("species"), col("island"), col("sex"));
    let (classes, islands, sexes) = (levels(species), levels(island), levels(sex));

    let mut names: Vec<String> = numeric.iter().map(|s| s.to_string()).collect();
    names.extend(islands.iter().map(|i| format!("island_{i}")));
    names.extend(sexes.iter().map(|s| format!("sex_{s}")));
    let mut x = Array2::zeros((rows.len(), names.len()));
    for (i, r) in rows.iter().enumerate() {
        for (j, name) in numeric.iter().enumerate() {
            x[[i, j]] = r[col(name)].parse::<f64>().unwrap_or(f64::NAN);
        }
        let island_at = islands.iter().position(|v| v == r[island]).unwrap_or(0);
        x[[i, numeric.len() + island_at]] = 1.0;
        let sex_at = sexes.iter().position(|v| v == r[sex]).unwrap_or(0);
        x[[i, numeric.len() + islands.len() + sex_at]] = 1.0;
    }
    for j in 0..numeric.len() {
        let mut column = x.column_mut(j);
        let mean = column.mean().unwrap_or(0.0);
        let std = column.std(0.0);
        column.mapv_inplace(|v| (v - mean) / std);
    }
    let labels = rows.iter().map(|r| classes.iter().position(|c| c == r[species]).unwrap_or(0)).collect();
    Dataset { features: x, feature_names: names, target: Target::Classes { labels, classes } }
}

/// The grid of the benchmark: logistic regression, decision tree and random forest, four settings each.
pub fn penguins_spec() -> sluice_ml::TrainSpec {
    use serde_json::json;
    use std::collections::BTreeMap;
    let grid = |pairs: Vec<(&str, Vec<serde_json::Value>)>| -> BTreeMap<String, Vec<serde_json::Value>> {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    };
    let mut candidates = sluice_ml::expand_grid(
        sluice_ml::Algorithm::LogisticRegression,
        &grid(vec![("alpha", vec![json!(0.01), json!(0.1), json!(1.0), json!(10.0)])]),
    )
    .unwrap_or_default();
    candidates.extend(
        sluice_ml::expand_grid(
            sluice_ml::Algorithm::DecisionTree,
            &grid(vec![("max_depth", vec![json!(2), json!(3), json!(5), json!(null)])]),
        )
        .unwrap_or_default(),
    );
    candidates.extend(
        sluice_ml::expand_grid(
            sluice_ml::Algorithm::RandomForest,
            &grid(vec![("n_trees", vec![json!(50), json!(100)]), ("max_depth", vec![json!(5), json!(null)])]),
        )
        .unwrap_or_default(),
    );
    sluice_ml::TrainSpec { candidates, folds: 5, seed: 42, metric: sluice_ml::Metric::Accuracy }
}
