//! The metric functions against scikit-learn 1.9 on small tables (the Python expressions are in the comments).

use ndarray::array;
use sluice_ml::metrics;

fn close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-12, "got {got}, want {want}");
}

// yt = [0, 1, 2, 2, 1, 0, 1, 2, 0, 1]; yp = [0, 2, 2, 2, 1, 0, 0, 1, 0, 1]
const YT: [usize; 10] = [0, 1, 2, 2, 1, 0, 1, 2, 0, 1];
const YP: [usize; 10] = [0, 2, 2, 2, 1, 0, 0, 1, 0, 1];

#[test]
fn classification_scores_match_sklearn() {
    // accuracy_score(yt, yp) == 0.7
    close(metrics::accuracy(&YT, &YP), 0.7);
    // precision_score(yt, yp, average='macro') == 0.6944444444444443
    close(metrics::precision_macro(&YT, &YP), 0.6944444444444443);
    // recall_score(yt, yp, average='macro') == 0.7222222222222222
    close(metrics::recall_macro(&YT, &YP), 0.7222222222222222);
    // f1_score(yt, yp, average='macro') == 0.6984126984126983
    close(metrics::f1_macro(&YT, &YP), 0.6984126984126983);
    // confusion_matrix(yt, yp) == [[3, 0, 0], [1, 2, 1], [0, 1, 2]]
    assert_eq!(metrics::confusion_matrix(&YT, &YP, 3), vec![vec![3, 0, 0], vec![1, 2, 1], vec![0, 1, 2]]);
}

#[test]
fn a_class_never_predicted_scores_zero_precision() {
    // yt2 = [0, 0, 1, 1, 2, 2]; yp2 = [0, 0, 1, 1, 1, 1]
    // precision_score(yt2, yp2, average='macro', zero_division=0) == 0.5
    // f1_score(yt2, yp2, average='macro', zero_division=0) == 0.5555555555555555
    let (yt, yp) = ([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 1]);
    close(metrics::precision_macro(&yt, &yp), 0.5);
    close(metrics::f1_macro(&yt, &yp), 0.5555555555555555);
}

#[test]
fn log_loss_clips_like_sklearn() {
    // log_loss(yt, P) == 4.1074719988085935 with P below: row 3 gives the true class probability 0, which
    // is clipped to the f64 epsilon.
    let p = array![
        [0.7, 0.2, 0.1],
        [0.1, 0.3, 0.6],
        [0.0, 0.0, 1.0],
        [0.2, 0.2, 0.6],
        [0.1, 0.8, 0.1],
        [0.9, 0.05, 0.05],
        [0.5, 0.4, 0.1],
        [0.1, 0.6, 0.3],
        [0.6, 0.3, 0.1],
        [1.0, 0.0, 0.0]
    ];
    close(metrics::log_loss(&YT, p.view()), 4.1074719988085935);
}

#[test]
fn roc_auc_counts_ties_as_half() {
    // roc_auc_score([0, 0, 1, 1, 0, 1, 1, 0], [0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.4, 0.2]) == 0.8125
    let y = [0, 0, 1, 1, 0, 1, 1, 0].map(|v| v == 1);
    let s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.4, 0.2];
    close(metrics::roc_auc(&y, &s).unwrap(), 0.8125);
    assert_eq!(metrics::roc_auc(&[true, true], &[0.1, 0.2]), None);
}

#[test]
fn regression_scores_match_sklearn() {
    // yr = [3.0, -0.5, 2.0, 7.0, 4.2]; pr = [2.5, 0.0, 2.0, 8.0, 3.9]
    // root_mean_squared_error == 0.5639148871948674, mean_absolute_error == 0.4600000000000001,
    // r2_score == 0.9480256276150627
    let (yr, pr) = ([3.0, -0.5, 2.0, 7.0, 4.2], [2.5, 0.0, 2.0, 8.0, 3.9]);
    close(metrics::rmse(&yr, &pr), 0.5639148871948674);
    close(metrics::mae(&yr, &pr), 0.4600000000000001);
    close(metrics::r2(&yr, &pr), 0.9480256276150627);
    // r2_score([1, 1], [1, 1]) == 1.0, r2_score([1, 1], [1, 2]) == 0.0 (force_finite)
    close(metrics::r2(&[1.0, 1.0], &[1.0, 1.0]), 1.0);
    close(metrics::r2(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
}
