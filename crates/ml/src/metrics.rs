//! Scores of predictions against the truth, computed as scikit-learn computes them (the tests hold the
//! values scikit-learn gives on the same inputs). Classes are indices `0..n_classes`.
//!
//! Conventions: the macro averages (precision, recall, F1) run over the classes present in the truth or in
//! the predictions, and a class with no predicted (or no true) rows scores 0 — scikit-learn's
//! `zero_division` default, without its warning. `log_loss` clips probabilities to `[eps, 1 - eps]` with
//! `eps` the f64 machine epsilon, as scikit-learn does. `r2` of a constant truth is 1.0 for a perfect
//! prediction and 0.0 otherwise (scikit-learn's `force_finite`).

use ndarray::ArrayView2;

/// Fraction of rows whose predicted class is the true class (NaN for no rows).
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> f64 {
    let hits = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    hits as f64 / y_true.len() as f64
}

/// `matrix[true][predicted]`: how many rows of each true class got each predicted class.
pub fn confusion_matrix(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Vec<Vec<u64>> {
    let mut matrix = vec![vec![0u64; n_classes]; n_classes];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        if t < n_classes && p < n_classes {
            matrix[t][p] += 1;
        }
    }
    matrix
}

/// Per class present in truth or prediction: (true positives, predicted count, true count).
fn per_class(y_true: &[usize], y_pred: &[usize]) -> Vec<(f64, f64, f64)> {
    let n = y_true.iter().chain(y_pred).max().map_or(0, |m| m + 1);
    let mut counts = vec![(0.0, 0.0, 0.0); n];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        if t == p {
            counts[t].0 += 1.0;
        }
        counts[p].1 += 1.0;
        counts[t].2 += 1.0;
    }
    counts.into_iter().filter(|(_, predicted, actual)| *predicted > 0.0 || *actual > 0.0).collect()
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

fn macro_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n as f64
}

/// Precision averaged over classes with equal weight (scikit-learn `average="macro"`).
pub fn precision_macro(y_true: &[usize], y_pred: &[usize]) -> f64 {
    macro_mean(per_class(y_true, y_pred).into_iter().map(|(tp, p, _)| ratio(tp, p)))
}

/// Recall averaged over classes with equal weight.
pub fn recall_macro(y_true: &[usize], y_pred: &[usize]) -> f64 {
    macro_mean(per_class(y_true, y_pred).into_iter().map(|(tp, _, t)| ratio(tp, t)))
}

/// F1 averaged over classes with equal weight (the mean of per-class F1, as scikit-learn).
pub fn f1_macro(y_true: &[usize], y_pred: &[usize]) -> f64 {
    macro_mean(per_class(y_true, y_pred).into_iter().map(|(tp, p, t)| ratio(2.0 * tp, p + t)))
}

/// Area under the ROC curve for two classes: `positive[i]` tells whether row `i` is of the positive class,
/// `scores[i]` how strongly the model believes so. Ties count one half (the Mann–Whitney statistic). `None`
/// when only one class is present, where the area is undefined.
pub fn roc_auc(positive: &[bool], scores: &[f64]) -> Option<f64> {
    let n_pos = positive.iter().filter(|p| **p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (tie-averaged, 1-based) ranks of the positive rows.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mean_rank * order[i..=j].iter().filter(|&&r| positive[r]).count() as f64;
        i = j + 1;
    }
    let (n_pos, n_neg) = (n_pos as f64, n_neg as f64);
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// Mean negative log-likelihood of the true classes under `probabilities` (rows × classes).
pub fn log_loss(y_true: &[usize], probabilities: ArrayView2<f64>) -> f64 {
    let eps = f64::EPSILON;
    let total: f64 = y_true
        .iter()
        .zip(probabilities.rows())
        .map(|(&t, row)| -row.get(t).copied().unwrap_or(0.0).clamp(eps, 1.0 - eps).ln())
        .sum();
    total / y_true.len() as f64
}

/// Root mean squared error.
pub fn rmse(y_true: &[f64], y_pred: &[f64]) -> f64 {
    let sq: f64 = y_true.iter().zip(y_pred).map(|(t, p)| (t - p).powi(2)).sum();
    (sq / y_true.len() as f64).sqrt()
}

/// Mean absolute error.
pub fn mae(y_true: &[f64], y_pred: &[f64]) -> f64 {
    let abs: f64 = y_true.iter().zip(y_pred).map(|(t, p)| (t - p).abs()).sum();
    abs / y_true.len() as f64
}

/// Coefficient of determination, `1 - SS_res / SS_tot`.
pub fn r2(y_true: &[f64], y_pred: &[f64]) -> f64 {
    let mean = y_true.iter().sum::<f64>() / y_true.len() as f64;
    let ss_res: f64 = y_true.iter().zip(y_pred).map(|(t, p)| (t - p).powi(2)).sum();
    let ss_tot: f64 = y_true.iter().map(|t| (t - mean).powi(2)).sum();
    if ss_tot == 0.0 {
        return if ss_res == 0.0 { 1.0 } else { 0.0 };
    }
    1.0 - ss_res / ss_tot
}
