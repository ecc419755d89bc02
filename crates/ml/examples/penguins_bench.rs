//! Times the penguins model selection (logistic regression, decision tree and random forest, four settings
//! each, 5 folds, 333 rows × 9 features) and one-row predictions. Run with
//! `cargo run --release -p sluice-ml --example penguins_bench`.

#[path = "../tests/common/penguins.rs"]
mod penguins;

use std::time::Instant;

fn main() -> Result<(), sluice_ml::MlError> {
    let data = penguins::penguins();
    let spec = penguins::penguins_spec();
    let start = Instant::now();
    let outcome = sluice_ml::train(&data, &spec)?;
    let train_time = start.elapsed();
    let best = outcome
        .candidates
        .iter()
        .find(|c| c.candidate == outcome.best)
        .and_then(|c| c.cv.mean.get("accuracy").copied())
        .unwrap_or(f64::NAN);
    println!(
        "train: {} candidates x {} folds in {:.3} s; best {} {:?} accuracy {best:.4}",
        spec.candidates.len(),
        spec.folds,
        train_time.as_secs_f64(),
        outcome.best.algorithm,
        outcome.best.params
    );
    for c in &outcome.candidates {
        println!(
            "  {:<20} {:<40} accuracy {:.4}",
            c.candidate.algorithm.name(),
            serde_json::to_string(&c.candidate.params).unwrap_or_default(),
            c.cv.mean.get("accuracy").copied().unwrap_or(f64::NAN)
        );
    }
    // One-row predictions, as serving makes them: the best model, and a 100-tree forest.
    let forest_spec = sluice_ml::TrainSpec {
        candidates: spec
            .candidates
            .into_iter()
            .filter(|c| c.params.get("n_trees") == Some(&100.into()))
            .take(1)
            .collect(),
        ..penguins::penguins_spec()
    };
    let forest = sluice_ml::train(&data, &forest_spec)?.model;
    let row = data.features.slice(ndarray::s![0..1, ..]);
    for (name, model) in [("best", &outcome.model), ("random forest", &forest)] {
        let n = 10_000;
        let start = Instant::now();
        for _ in 0..n {
            model.predict(row)?;
        }
        println!("predict one row ({name}): {:.1} µs", start.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    Ok(())
}
