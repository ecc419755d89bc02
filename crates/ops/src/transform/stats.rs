//! The statistics transforms fit, computed in plain Rust over a column's non-missing values so that the definitions
//! are ours and written down: sample standard deviation (n − 1, as pandas and R), and quantiles by linear
//! interpolation between order statistics (pandas' and numpy's default).

/// Arithmetic mean; `None` without values.
pub(super) fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Sample standard deviation; `None` with fewer than two values.
pub(super) fn std_dev(values: &[f64]) -> Option<f64> {
    let m = mean(values)?;
    if values.len() < 2 {
        return None;
    }
    let squares: f64 = values.iter().map(|v| (v - m).powi(2)).sum();
    Some((squares / (values.len() - 1) as f64).sqrt())
}

/// The `q` quantile (0 ≤ q ≤ 1) by linear interpolation; `None` without values.
pub(super) fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

pub(super) fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let min = values.iter().copied().reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

/// The most frequent value of an ascending sequence; ties go to the first, i.e. the smallest, so fitting is
/// deterministic.
pub(super) fn mode_of_sorted<T: PartialEq>(sorted: impl IntoIterator<Item = T>) -> Option<T> {
    let mut best: Option<(T, usize)> = None;
    let mut run: Option<(T, usize)> = None;
    for v in sorted {
        match &mut run {
            Some((current, n)) if *current == v => *n += 1,
            _ => {
                best = longer(best, run.take());
                run = Some((v, 1));
            }
        }
    }
    longer(best, run).map(|(v, _)| v)
}

/// The most frequent of `values`; on a tie the first in sorted order, as [`mode_of_sorted`] gives. Counting
/// rather than sorting: text columns have few distinct values and many rows.
pub(super) fn most_frequent<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for value in values {
        *counts.entry(value).or_default() += 1;
    }
    counts.into_iter().max_by(|(a, n), (b, m)| n.cmp(m).then_with(|| b.cmp(a))).map(|(value, _)| value)
}

/// The longer run; the earlier one on a tie.
fn longer<T>(best: Option<(T, usize)>, run: Option<(T, usize)>) -> Option<(T, usize)> {
    match (best, run) {
        (Some(b), Some(r)) => Some(if r.1 > b.1 { r } else { b }),
        (b, r) => b.or(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        let v = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&v), Some(5.0));
        assert!((std_dev(&v).unwrap() - 2.138_089_935).abs() < 1e-9);
        assert_eq!(quantile(&v, 0.5), Some(4.5));
        assert_eq!(quantile(&v, 0.25), Some(4.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.75), Some(3.25));
        assert_eq!(min_max(&v), Some((2.0, 9.0)));
        assert_eq!(mode_of_sorted(["a", "a", "b", "b", "c"]), Some("a"));
        assert_eq!(most_frequent(["b", "c", "a", "b", "a", "c", "c"]), Some("c"));
        assert_eq!(most_frequent(["b", "a", "b", "a"]), Some("a"));
        assert_eq!(most_frequent([]), None);
        assert_eq!(mode_of_sorted([1, 3, 3]), Some(3));
        assert_eq!(mode_of_sorted([1.5, 2.0, 2.0, 7.0, 7.0, 7.0]), Some(7.0));
    }

    #[test]
    fn empty_and_single() {
        assert_eq!(mean(&[]), None);
        assert_eq!(std_dev(&[1.0]), None);
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        assert_eq!(min_max(&[]), None);
        assert_eq!(mode_of_sorted(Vec::<i64>::new()), None);
    }
}
