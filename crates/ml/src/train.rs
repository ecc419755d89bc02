//! Model selection: every candidate is scored by k-fold cross-validation on the same folds, the best by the
//! chosen metric's mean is refitted on all rows.
//!
//! The (candidate, fold) fits are independent, so they run on scoped threads, one per core; each fit is
//! deterministic for the seed, so the outcome does not depend on the number of threads.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::model::{Fitted, Output, TargetRef, argmax_rows, tree_params, wrong_target};
use crate::params::{Candidate, Metric, Params};
use crate::{Dataset, MlError, Model, Target, folds, metrics};

/// What to train: the candidates, how many folds, the seed of the folds (and of forests that give none), and
/// the metric that picks the best candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    pub candidates: Vec<Candidate>,
    #[serde(default = "default_folds")]
    pub folds: usize,
    #[serde(default)]
    pub seed: u64,
    pub metric: Metric,
}

fn default_folds() -> usize {
    5
}

/// The result of [`train`].
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The candidate with the best mean of the chosen metric (the first of equals).
    pub best: Candidate,
    /// Every candidate with its cross-validation scores, in the order of the spec.
    pub candidates: Vec<CandidateResult>,
    /// The fold of each row; every candidate used this assignment.
    pub folds: Vec<usize>,
    /// The best candidate refitted on all rows.
    pub model: Model,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CandidateResult {
    pub candidate: Candidate,
    pub cv: CvMetrics,
}

/// Cross-validation scores of one candidate, keyed by metric name (see [`Metric::name`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CvMetrics {
    /// Mean over folds of each metric that every fold has.
    pub mean: BTreeMap<String, f64>,
    pub per_fold: Vec<BTreeMap<String, f64>>,
    /// `matrix[true][predicted]` summed over the held-out folds (classification only).
    pub confusion_matrix: Option<Vec<Vec<u64>>>,
}

/// Scores each candidate by cross-validation and refits the best on all rows.
pub fn train(data: &Dataset, spec: &TrainSpec) -> Result<TrainOutcome, MlError> {
    let target = check_data(data)?;
    if spec.candidates.is_empty() {
        return Err(MlError::InvalidSpec("no candidates to train".into()));
    }
    let (kind, binary) = match target {
        TargetRef::Classes(_, n) => ("classes", n == 2),
        TargetRef::Values(_) => ("numeric values", false),
    };
    let classification = matches!(target, TargetRef::Classes(..));
    if spec.metric.is_classification() != classification || (spec.metric == Metric::RocAuc && !binary) {
        return Err(MlError::MetricNotApplicable {
            metric: spec.metric.name(),
            target: if spec.metric == Metric::RocAuc && classification {
                "more than two classes (roc_auc is for two)"
            } else {
                kind
            },
        });
    }
    let params: Vec<Params> = spec
        .candidates
        .iter()
        .map(|c| {
            let p = Params::parse(c)?;
            check_target(c, &p, target)?;
            Ok(p)
        })
        .collect::<Result<_, MlError>>()?;
    let classes: &[String] = match &data.target {
        Target::Classes { classes, .. } => classes,
        Target::Values(_) => &[],
    };
    let fold_of = folds::assign(target, classes, spec.folds, spec.seed)?;

    // Held-out scores of every (candidate, fold), computed in parallel.
    let jobs: Vec<(usize, usize)> =
        (0..spec.candidates.len()).flat_map(|c| (0..spec.folds).map(move |f| (c, f))).collect();
    let results: Mutex<Vec<Option<Result<FoldScore, MlError>>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(jobs.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(c, f)) = jobs.get(i) else { break };
                    let score = score_fold(data, target, &spec.candidates[c], &params[c], &fold_of, f, spec.seed);
                    if let Ok(mut results) = results.lock() {
                        results[i] = Some(score);
                    }
                }
            });
        }
    });
    let results = results.into_inner().map_err(|_| MlError::InvalidSpec("a training thread failed".into()))?;

    let mut scored = Vec::with_capacity(spec.candidates.len());
    let mut results = results.into_iter();
    for candidate in &spec.candidates {
        let mut cv = CvMetrics::default();
        for _ in 0..spec.folds {
            let fold =
                results.next().flatten().ok_or_else(|| MlError::InvalidSpec("a training thread failed".into()))??;
            if let Some(matrix) = fold.confusion {
                let sum = cv.confusion_matrix.get_or_insert_with(|| vec![vec![0; matrix.len()]; matrix.len()]);
                for (s, m) in sum.iter_mut().flatten().zip(matrix.iter().flatten()) {
                    *s += m;
                }
            }
            cv.per_fold.push(fold.metrics);
        }
        for key in cv.per_fold[0].keys() {
            let values: Option<Vec<f64>> = cv.per_fold.iter().map(|m| m.get(key).copied()).collect();
            if let Some(values) = values {
                cv.mean.insert(key.clone(), values.iter().sum::<f64>() / values.len() as f64);
            }
        }
        scored.push(CandidateResult { candidate: candidate.clone(), cv });
    }

    let best = best_index(&scored, spec.metric);
    let fitted = Fitted::fit(spec.candidates[best].algorithm, &params[best], data.features.view(), target, spec.seed)?;
    let model = Model::new(
        spec.candidates[best].algorithm,
        spec.candidates[best].params.clone(),
        data.feature_names.clone(),
        matches!(data.target, Target::Classes { .. }).then(|| classes.to_vec()),
        fitted,
    );
    Ok(TrainOutcome { best: spec.candidates[best].clone(), candidates: scored, folds: fold_of, model })
}

/// The candidate with the best mean (NaN or missing counts as worst); the first of equals.
fn best_index(scored: &[CandidateResult], metric: Metric) -> usize {
    let value = |r: &CandidateResult| {
        let v = r.cv.mean.get(metric.name()).copied().unwrap_or(f64::NAN);
        match (v.is_nan(), metric.higher_is_better()) {
            (true, _) => f64::NEG_INFINITY,
            (false, true) => v,
            (false, false) => -v,
        }
    };
    let mut best = 0;
    for (i, r) in scored.iter().enumerate() {
        if value(r) > value(&scored[best]) {
            best = i;
        }
    }
    best
}

struct FoldScore {
    metrics: BTreeMap<String, f64>,
    confusion: Option<Vec<Vec<u64>>>,
}

/// Fits on every fold but `fold` and scores the held-out rows of `fold`.
fn score_fold(
    data: &Dataset,
    target: TargetRef<'_>,
    candidate: &Candidate,
    params: &Params,
    fold_of: &[usize],
    fold: usize,
    seed: u64,
) -> Result<FoldScore, MlError> {
    let (test, train): (Vec<usize>, Vec<usize>) = (0..fold_of.len()).partition(|&r| fold_of[r] == fold);
    let x_train = data.features.select(Axis(0), &train);
    let x_test = data.features.select(Axis(0), &test);
    match target {
        TargetRef::Classes(labels, n_classes) => {
            let y_train = pick(&train, labels);
            let y_test = pick(&test, labels);
            let fitted = Fitted::fit(
                candidate.algorithm,
                params,
                x_train.view(),
                TargetRef::Classes(&y_train, n_classes),
                seed,
            )?;
            let p = probabilities(&fitted, x_test.view(), n_classes);
            let y_pred = argmax_rows(&p);
            let mut m = BTreeMap::new();
            m.insert("accuracy".into(), metrics::accuracy(&y_test, &y_pred));
            m.insert("precision".into(), metrics::precision_macro(&y_test, &y_pred));
            m.insert("recall".into(), metrics::recall_macro(&y_test, &y_pred));
            m.insert("f1".into(), metrics::f1_macro(&y_test, &y_pred));
            m.insert("log_loss".into(), metrics::log_loss(&y_test, p.view()));
            if n_classes == 2 {
                let positive: Vec<bool> = y_test.iter().map(|&y| y == 1).collect();
                let scores: Vec<f64> = p.column(1).to_vec();
                if let Some(auc) = metrics::roc_auc(&positive, &scores) {
                    m.insert("roc_auc".into(), auc);
                }
            }
            Ok(FoldScore { metrics: m, confusion: Some(metrics::confusion_matrix(&y_test, &y_pred, n_classes)) })
        }
        TargetRef::Values(values) => {
            let y_train = pick(&train, values);
            let y_test = pick(&test, values);
            let fitted = Fitted::fit(candidate.algorithm, params, x_train.view(), TargetRef::Values(&y_train), seed)?;
            let y_pred = match fitted.output(x_test.view(), 0) {
                Output::Values(v) => v,
                Output::Probabilities(_) => Vec::new(),
            };
            let mut m = BTreeMap::new();
            m.insert("rmse".into(), metrics::rmse(&y_test, &y_pred));
            m.insert("mae".into(), metrics::mae(&y_test, &y_pred));
            m.insert("r2".into(), metrics::r2(&y_test, &y_pred));
            Ok(FoldScore { metrics: m, confusion: None })
        }
    }
}

fn pick<T: Copy>(rows: &[usize], all: &[T]) -> Vec<T> {
    rows.iter().map(|&r| all[r]).collect()
}

fn probabilities(fitted: &Fitted, x: ArrayView2<f64>, n_classes: usize) -> Array2<f64> {
    match fitted.output(x, n_classes) {
        Output::Probabilities(p) => p,
        Output::Values(_) => Array2::zeros((x.nrows(), n_classes)),
    }
}

/// Rejects an algorithm or a tree criterion that cannot learn this kind of target, before any fitting.
fn check_target(candidate: &Candidate, params: &Params, target: TargetRef<'_>) -> Result<(), MlError> {
    let classes = matches!(target, TargetRef::Classes(..));
    if !candidate.algorithm.fits(classes) {
        return Err(wrong_target(candidate.algorithm, classes));
    }
    match params {
        Params::Tree(tree) | Params::Forest { tree, .. } => tree_params(candidate.algorithm, tree, target).map(|_| ()),
        _ => Ok(()),
    }
}

/// Checks the shape and content of the data; returns the target as fitting code reads it.
fn check_data(data: &Dataset) -> Result<TargetRef<'_>, MlError> {
    let (rows, cols) = data.features.dim();
    if rows == 0 {
        return Err(MlError::InvalidData("no rows to train on".into()));
    }
    if cols == 0 {
        return Err(MlError::InvalidData("no feature columns".into()));
    }
    if data.feature_names.len() != cols {
        return Err(MlError::InvalidData(format!(
            "{} feature names for {cols} feature columns",
            data.feature_names.len()
        )));
    }
    for (name, column) in data.feature_names.iter().zip(data.features.columns()) {
        if let Some(row) = column.iter().position(|v| !v.is_finite()) {
            return Err(MlError::InvalidData(format!("feature {name:?} is not a finite number in row {row}")));
        }
    }
    match &data.target {
        Target::Classes { labels, classes } => {
            if labels.len() != rows {
                return Err(MlError::InvalidData(format!("{} labels for {rows} rows", labels.len())));
            }
            if let Some(bad) = labels.iter().find(|&&l| l >= classes.len()) {
                return Err(MlError::InvalidData(format!(
                    "label {bad} is not an index into the {} classes",
                    classes.len()
                )));
            }
            if labels.iter().all(|&l| l == labels[0]) {
                let name = classes.get(labels[0]).map_or("?", String::as_str);
                return Err(MlError::InvalidData(format!(
                    "the target is constant: every row is of class {name:?}; a classifier needs two classes"
                )));
            }
            Ok(TargetRef::Classes(labels, classes.len()))
        }
        Target::Values(values) => {
            if values.len() != rows {
                return Err(MlError::InvalidData(format!("{} target values for {rows} rows", values.len())));
            }
            if let Some(row) = values.iter().position(|v| !v.is_finite()) {
                return Err(MlError::InvalidData(format!("the target is not a finite number in row {row}")));
            }
            if values.iter().all(|&v| v == values[0]) {
                return Err(MlError::InvalidData(format!(
                    "the target is constant ({}): a regression needs values that vary",
                    values[0]
                )));
            }
            Ok(TargetRef::Values(values))
        }
    }
}
