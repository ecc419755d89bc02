//! Decision trees and random forests (CART, as scikit-learn grows them), for classes and for values.
//!
//! Sluice grows its own trees rather than linfa-trees': linfa's trees are not reproducible (its impurity sums
//! and majority votes iterate over hash maps, so the same data and seed can give different trees from one fit
//! to the next), keep only the majority class in a leaf (no probabilities for log loss or ROC AUC), grow
//! classification trees only, and cannot draw features per split, which a random forest needs.
//!
//! A tree is a flat node list whose leaves hold class probabilities (the share of each class among the
//! training rows reaching the leaf) or a value (their mean): what a model stores, and what serving walks
//! without recursion or allocation. A forest bags trees: each tree sees a bootstrap sample of the rows and,
//! at each split, a random subset of the features; one seeded generator draws both, so a seed gives the same
//! forest every time.

use ndarray::{ArrayView1, ArrayView2};
use rand::seq::index;
use rand::{Rng, RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::model::TargetRef;
use crate::params::{Criterion, MaxFeatures, TreeParams};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Node {
    /// Rows with `x[feature] <= threshold` go to `left`, the others to `right`.
    Split { feature: usize, threshold: f64, left: usize, right: usize },
    /// Class probabilities, or the single predicted value.
    Leaf { value: Vec<f64> },
}

/// One fitted tree; node 0 is the root, and children come after their parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn leaf(&self, row: ArrayView1<f64>) -> &[f64] {
        let mut at = 0;
        loop {
            match &self.nodes[at] {
                Node::Split { feature, threshold, left, right } => {
                    at = if row[*feature] <= *threshold { *left } else { *right }
                }
                Node::Leaf { value } => return value,
            }
        }
    }
}

/// Values closer than this count as equal and are never split apart (scikit-learn's `FEATURE_THRESHOLD`).
const SAME_VALUE: f64 = 1e-7;

/// What a node knows about its rows' targets.
#[derive(Clone)]
enum Stats {
    Classes(Vec<f64>),
    /// Sum and sum of squares of the values.
    Values(f64, f64),
}

struct Grower<'x, 'a> {
    x: ArrayView2<'x, f64>,
    target: TargetRef<'a>,
    params: &'a TreeParams,
    /// Features drawn at each split; all when `None`.
    max_features: Option<usize>,
    rng: Xoshiro256PlusPlus,
    nodes: Vec<Node>,
}

impl Grower<'_, '_> {
    fn stats(&self, rows: &[usize]) -> Stats {
        match self.target {
            TargetRef::Classes(labels, n_classes) => {
                let mut counts = vec![0.0; n_classes];
                for &r in rows {
                    counts[labels[r]] += 1.0;
                }
                Stats::Classes(counts)
            }
            TargetRef::Values(values) => {
                let (s, q) = rows.iter().fold((0.0, 0.0), |(s, q), &r| (s + values[r], q + values[r] * values[r]));
                Stats::Values(s, q)
            }
        }
    }

    /// Impurity times row count: the quantity a split minimises over its two sides.
    fn weighted_impurity(&self, stats: &Stats, n: f64) -> f64 {
        match stats {
            Stats::Classes(counts) => match self.params.split_quality {
                Some(Criterion::Entropy) => {
                    -counts.iter().filter(|c| **c > 0.0).map(|c| c * (c / n).log2()).sum::<f64>()
                }
                _ => n - counts.iter().map(|c| c * c).sum::<f64>() / n,
            },
            Stats::Values(s, q) => (q - s * s / n).max(0.0),
        }
    }

    fn leaf(&mut self, stats: &Stats, n: f64) -> usize {
        let value = match stats {
            Stats::Classes(counts) => counts.iter().map(|c| c / n).collect(),
            Stats::Values(s, _) => vec![s / n],
        };
        self.nodes.push(Node::Leaf { value });
        self.nodes.len() - 1
    }

    /// Grows the subtree of `rows` (reordered in place); returns its node index.
    fn grow(&mut self, rows: &mut [usize], depth: usize) -> usize {
        let n = rows.len() as f64;
        let stats = self.stats(rows);
        let impurity = self.weighted_impurity(&stats, n);
        let stop = self.params.max_depth.is_some_and(|d| depth >= d)
            || n < self.params.min_samples_split
            || n < 2.0 * self.params.min_samples_leaf
            || impurity <= 1e-12 * n;
        let best = if stop { None } else { self.best_split(rows) };
        let Some((feature, threshold)) = best else {
            return self.leaf(&stats, n);
        };
        let at = self.nodes.len();
        self.nodes.push(Node::Leaf { value: Vec::new() });
        let x = self.x;
        let mut cut = 0;
        for i in 0..rows.len() {
            if x[[rows[i], feature]] <= threshold {
                rows.swap(i, cut);
                cut += 1;
            }
        }
        let (left_rows, right_rows) = rows.split_at_mut(cut);
        let left = self.grow(left_rows, depth + 1);
        let right = self.grow(right_rows, depth + 1);
        self.nodes[at] = Node::Split { feature, threshold, left, right };
        at
    }

    /// The split with the lowest weighted impurity over the features drawn (the first on ties), or `None`
    /// when no feature separates the rows with enough on each side.
    fn best_split(&mut self, rows: &[usize]) -> Option<(usize, f64)> {
        let p = self.x.ncols();
        let features: Vec<usize> = match self.max_features {
            Some(k) if k < p => index::sample(&mut self.rng, p, k).into_vec(),
            _ => (0..p).collect(),
        };
        let n = rows.len();
        let min_leaf = self.params.min_samples_leaf.max(1.0) as usize;
        let total = self.stats(rows);
        let mut best: Option<(f64, usize, f64)> = None;
        let mut sorted: Vec<(f64, usize)> = Vec::with_capacity(n);
        for feature in features {
            sorted.clear();
            sorted.extend(rows.iter().map(|&r| (self.x[[r, feature]], r)));
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            if sorted[n - 1].0 <= sorted[0].0 + SAME_VALUE {
                continue;
            }
            // Rows move one by one from the right side to the left; both sides' statistics follow.
            let mut left = match &total {
                Stats::Classes(c) => Stats::Classes(vec![0.0; c.len()]),
                Stats::Values(..) => Stats::Values(0.0, 0.0),
            };
            let mut right = total.clone();
            for i in 0..n - 1 {
                let row = sorted[i].1;
                match (&mut left, &mut right, self.target) {
                    (Stats::Classes(l), Stats::Classes(r), TargetRef::Classes(labels, _)) => {
                        l[labels[row]] += 1.0;
                        r[labels[row]] -= 1.0;
                    }
                    (Stats::Values(ls, lq), Stats::Values(rs, rq), TargetRef::Values(values)) => {
                        let v = values[row];
                        (*ls, *lq, *rs, *rq) = (*ls + v, *lq + v * v, *rs - v, *rq - v * v);
                    }
                    _ => {}
                }
                let (n_left, n_right) = (i + 1, n - i - 1);
                if sorted[i + 1].0 <= sorted[i].0 + SAME_VALUE || n_left < min_leaf || n_right < min_leaf {
                    continue;
                }
                let score =
                    self.weighted_impurity(&left, n_left as f64) + self.weighted_impurity(&right, n_right as f64);
                if best.is_none_or(|(b, _, _)| score < b) {
                    let (lo, hi) = (sorted[i].0, sorted[i + 1].0);
                    let mid = lo + (hi - lo) / 2.0;
                    // Rounding can land the midpoint on the upper value, which would send it left.
                    let threshold = if mid >= hi { lo } else { mid };
                    best = Some((score, feature, threshold));
                }
            }
        }
        best.map(|(_, feature, threshold)| (feature, threshold))
    }
}

/// One tree (`decision_tree`) or many (`random_forest`); the prediction is the mean over trees.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Forest {
    trees: Vec<Tree>,
}

impl Forest {
    pub(crate) fn fit_tree(x: ArrayView2<f64>, target: TargetRef<'_>, params: &TreeParams) -> Forest {
        let mut rows: Vec<usize> = (0..x.nrows()).collect();
        let tree = grow(x, target, params, None, 0, &mut rows);
        Forest { trees: vec![tree] }
    }

    pub(crate) fn fit_forest(
        x: ArrayView2<f64>,
        target: TargetRef<'_>,
        params: &TreeParams,
        n_trees: usize,
        max_features: MaxFeatures,
        seed: u64,
    ) -> Forest {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let n = x.nrows();
        let k = max_features.count(x.ncols());
        let trees = (0..n_trees)
            .map(|_| {
                let mut rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
                grow(x, target, params, Some(k), rng.next_u64(), &mut rows)
            })
            .collect();
        Forest { trees }
    }

    /// Writes the mean of the trees' leaf values for `row` into `out` (one slot per class, or one value).
    pub(crate) fn predict_into(&self, row: ArrayView1<f64>, out: &mut [f64]) {
        out.fill(0.0);
        for tree in &self.trees {
            for (o, v) in out.iter_mut().zip(tree.leaf(row)) {
                *o += v;
            }
        }
        let n = self.trees.len() as f64;
        out.iter_mut().for_each(|o| *o /= n);
    }

    /// Whether a stored forest is well formed for `n_features` columns and leaves of `width` values: every
    /// split reads an existing column and points forward (so a walk ends), every leaf has `width` values.
    pub(crate) fn is_valid(&self, n_features: usize, width: usize) -> bool {
        !self.trees.is_empty()
            && self.trees.iter().all(|tree| {
                !tree.nodes.is_empty()
                    && tree.nodes.iter().enumerate().all(|(at, node)| match node {
                        Node::Split { feature, left, right, .. } => {
                            *feature < n_features
                                && (at + 1..tree.nodes.len()).contains(left)
                                && (at + 1..tree.nodes.len()).contains(right)
                        }
                        Node::Leaf { value } => value.len() == width,
                    })
            })
    }
}

fn grow<'x, 'a>(
    x: ArrayView2<'x, f64>,
    target: TargetRef<'a>,
    params: &'a TreeParams,
    max_features: Option<usize>,
    seed: u64,
    rows: &mut [usize],
) -> Tree {
    let mut grower =
        Grower { x, target, params, max_features, rng: Xoshiro256PlusPlus::seed_from_u64(seed), nodes: Vec::new() };
    grower.grow(rows, 0);
    Tree { nodes: grower.nodes }
}
