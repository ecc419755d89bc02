//! Decision trees and random forests for classification. linfa-trees grows each tree; Sluice then copies it
//! into a flat node list whose leaves hold class probabilities (the share of each class among the training
//! rows that reach the leaf, as scikit-learn's `predict_proba`): linfa's trees only keep the majority class,
//! which is not enough for log loss or ROC AUC. The flat form is also what a model stores and what serving
//! walks: no recursion, no allocation per node.
//!
//! A forest is bagging by hand (linfa-ensemble's forest keeps neither probabilities nor a serialisable form):
//! each tree sees a bootstrap sample of the rows and a random subset of the features, drawn from one
//! seeded generator, so a seed gives the same forest every time.

use linfa::DatasetBase;
use linfa::prelude::Fit;
use linfa_trees::{DecisionTree, SplitQuality, TreeNode};
use ndarray::{Array1, ArrayView1, ArrayView2, Axis};
use rand::seq::index;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::MlError;
use crate::params::{MaxFeatures, TreeParams};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Node {
    /// Rows with `x[feature] < threshold` go to `left`, the others to `right` (linfa's rule).
    Split { feature: usize, threshold: f64, left: usize, right: usize },
    /// Probability of each class.
    Leaf { probabilities: Vec<f64> },
}

/// One fitted classification tree; node 0 is the root.
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
                    at = if row[*feature] < *threshold { *left } else { *right }
                }
                Node::Leaf { probabilities } => return probabilities,
            }
        }
    }

    fn leaf_index(&self, row: ArrayView1<f64>) -> usize {
        let mut at = 0;
        while let Node::Split { feature, threshold, left, right } = &self.nodes[at] {
            at = if row[*feature] < *threshold { *left } else { *right };
        }
        at
    }

    /// Grows a tree on `x` (columns `features` of the original data) and sets each leaf's probabilities
    /// from the rows that reach it.
    fn fit(
        x: ArrayView2<f64>,
        labels: &[usize],
        n_classes: usize,
        features: &[usize],
        params: &TreeParams,
    ) -> Result<Tree, MlError> {
        let quality = if params.entropy { SplitQuality::Entropy } else { SplitQuality::Gini };
        let dataset = DatasetBase::new(x, Array1::from(labels.to_vec()));
        let fitted: DecisionTree<f64, usize> = DecisionTree::params()
            .split_quality(quality)
            .max_depth(params.max_depth)
            .min_weight_split(params.min_samples_split as f32)
            .min_weight_leaf(params.min_samples_leaf as f32)
            .fit(&dataset)
            .map_err(|e| MlError::Fit { algorithm: "decision_tree", message: e.to_string() })?;
        let mut tree = Tree { nodes: Vec::new() };
        tree.copy(fitted.root_node(), features, n_classes);
        // Leaf probabilities: class shares of the training rows, routed with the original column indices.
        let mut counts = vec![vec![0.0; n_classes]; tree.nodes.len()];
        let mut local = vec![0.0; features.iter().max().map_or(0, |m| m + 1)];
        for (row, &label) in x.rows().into_iter().zip(labels) {
            for (&f, v) in features.iter().zip(row) {
                local[f] = *v;
            }
            counts[tree.leaf_index(ArrayView1::from(&local[..]))][label] += 1.0;
        }
        for (node, counts) in tree.nodes.iter_mut().zip(counts) {
            let total: f64 = counts.iter().sum();
            if let Node::Leaf { probabilities } = node
                && total > 0.0
            {
                *probabilities = counts.into_iter().map(|c| c / total).collect();
            }
        }
        Ok(tree)
    }

    /// Appends `node` and its subtree in pre-order; returns its index.
    fn copy(&mut self, node: &TreeNode<f64, usize>, features: &[usize], n_classes: usize) -> usize {
        let at = self.nodes.len();
        let children = node.children();
        match (node.is_leaf(), children[0], children[1]) {
            (false, Some(left), Some(right)) => {
                let (feature, threshold, _) = node.split();
                self.nodes.push(Node::Leaf { probabilities: Vec::new() });
                let left = self.copy(left, features, n_classes);
                let right = self.copy(right, features, n_classes);
                self.nodes[at] = Node::Split { feature: features[feature], threshold, left, right };
            }
            _ => {
                // A leaf no training row reaches keeps linfa's majority class with certainty.
                let mut probabilities = vec![0.0; n_classes];
                if let Some(p) = node.prediction().filter(|p| *p < n_classes) {
                    probabilities[p] = 1.0;
                }
                self.nodes.push(Node::Leaf { probabilities });
            }
        }
        at
    }
}

/// One tree (`decision_tree`) or many (`random_forest`); probabilities are the mean over trees.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Forest {
    trees: Vec<Tree>,
}

impl Forest {
    pub(crate) fn fit_tree(
        x: ArrayView2<f64>,
        labels: &[usize],
        n_classes: usize,
        params: &TreeParams,
    ) -> Result<Forest, MlError> {
        let features: Vec<usize> = (0..x.ncols()).collect();
        let tree = Tree::fit(x, labels, n_classes, &features, params)?;
        Ok(Forest { trees: vec![tree] })
    }

    pub(crate) fn fit_forest(
        x: ArrayView2<f64>,
        labels: &[usize],
        n_classes: usize,
        params: &TreeParams,
        n_trees: usize,
        max_features: MaxFeatures,
        seed: u64,
    ) -> Result<Forest, MlError> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let (n_rows, n_features) = x.dim();
        let k = max_features.count(n_features);
        let mut trees = Vec::with_capacity(n_trees);
        for _ in 0..n_trees {
            let rows: Vec<usize> = (0..n_rows).map(|_| rng.random_range(0..n_rows)).collect();
            let mut features = index::sample(&mut rng, n_features, k).into_vec();
            features.sort_unstable();
            let sample = x.select(Axis(0), &rows).select(Axis(1), &features);
            let sample_labels: Vec<usize> = rows.iter().map(|&r| labels[r]).collect();
            trees.push(Tree::fit(sample.view(), &sample_labels, n_classes, &features, params)?);
        }
        Ok(Forest { trees })
    }

    /// Adds the probabilities of `row` into `out` (length: the number of classes).
    pub(crate) fn probabilities_into(&self, row: ArrayView1<f64>, out: &mut [f64]) {
        out.fill(0.0);
        for tree in &self.trees {
            for (o, p) in out.iter_mut().zip(tree.leaf(row)) {
                *o += p;
            }
        }
        let n = self.trees.len() as f64;
        out.iter_mut().for_each(|o| *o /= n);
    }
}

impl Forest {
    /// Whether a stored forest is well formed for `n_features` columns and `n_classes` classes: every split
    /// reads an existing column and points forward (so a walk ends), every leaf has one probability per class.
    pub(crate) fn is_valid(&self, n_features: usize, n_classes: usize) -> bool {
        !self.trees.is_empty()
            && self.trees.iter().all(|tree| {
                !tree.nodes.is_empty()
                    && tree.nodes.iter().enumerate().all(|(at, node)| match node {
                        Node::Split { feature, left, right, .. } => {
                            *feature < n_features
                                && (at + 1..tree.nodes.len()).contains(left)
                                && (at + 1..tree.nodes.len()).contains(right)
                        }
                        Node::Leaf { probabilities } => probabilities.len() == n_classes,
                    })
            })
    }
}
