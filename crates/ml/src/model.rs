//! A fitted model: what it was trained as (algorithm, parameters, feature names, classes), how to predict
//! with it, and its JSON form for the model registry.
//!
//! The fitted internals are Sluice's own small structures, not linfa's: linear models keep a weight matrix
//! and intercepts, tree models a flat node list. That keeps the stored JSON independent of linfa's private
//! field layout, gives every classifier probabilities in the order of `classes`, and makes predicting one
//! row a few multiply-adds or node hops with no allocation beyond the answer.

use std::collections::BTreeMap;

use linfa::DatasetBase;
use linfa::prelude::Fit;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::MlError;
use crate::forest::Forest;
use crate::params::{Algorithm, MaxFeatures, Params, TreeParams};

/// A trained model, ready to predict and to be stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub algorithm: Algorithm,
    /// The parameters as the candidate gave them (defaults not filled in).
    pub params: BTreeMap<String, Value>,
    /// The feature columns, in the order `predict` expects them.
    pub feature_names: Vec<String>,
    /// Class names for a classifier (probability columns are in this order); `None` for regression.
    pub classes: Option<Vec<String>>,
    fitted: Fitted,
}

/// What `predict` returns: labels and probabilities for a classifier, values for a regressor.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    pub labels: Option<Vec<String>>,
    pub values: Option<Vec<f64>>,
    /// Rows × classes, columns in the order of [`Model::classes`].
    pub probabilities: Option<Array2<f64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Fitted {
    /// `x · weights + intercept`, then the link.
    Linear {
        weights: Array2<f64>,
        intercept: Array1<f64>,
        link: Link,
    },
    Trees(Forest),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Link {
    /// Regression: the score is the value.
    Identity,
    /// Two classes: one score, the log-odds of the second class.
    Logistic,
    /// One score per class, normalised with softmax.
    Softmax,
}

/// The target of a fit: class indices with the number of classes, or values.
#[derive(Clone, Copy)]
pub(crate) enum TargetRef<'a> {
    Classes(&'a [usize], usize),
    Values(&'a [f64]),
}

/// Raw output of a fitted model on a batch of rows.
pub(crate) enum Output {
    Probabilities(Array2<f64>),
    Values(Vec<f64>),
}

fn fit_error(algorithm: Algorithm) -> impl Fn(String) -> MlError {
    move |message| MlError::Fit { algorithm: algorithm.name(), message }
}

impl Fitted {
    /// Fits `params` on `x` and `target`; `seed` is the forest seed when the candidate gives none.
    pub(crate) fn fit(
        algorithm: Algorithm,
        params: &Params,
        x: ArrayView2<f64>,
        target: TargetRef<'_>,
        seed: u64,
    ) -> Result<Fitted, MlError> {
        let err = fit_error(algorithm);
        match (params, target) {
            (Params::Logistic { alpha, max_iterations, fit_intercept }, TargetRef::Classes(labels, n_classes)) => {
                let dataset = DatasetBase::new(x, Array1::from(labels.to_vec()));
                if n_classes == 2 {
                    let fitted = linfa_logistic::LogisticRegression::default()
                        .alpha(*alpha)
                        .max_iterations(*max_iterations)
                        .with_intercept(*fit_intercept)
                        .fit(&dataset)
                        .map_err(|e| err(e.to_string()))?;
                    // linfa's "positive" class is the more frequent one; Sluice's score is class 1's log-odds.
                    let sign = if fitted.labels().pos.class == 1 { 1.0 } else { -1.0 };
                    Ok(Fitted::Linear {
                        weights: (fitted.params() * sign).insert_axis(Axis(1)),
                        intercept: Array1::from(vec![fitted.intercept() * sign]),
                        link: Link::Logistic,
                    })
                } else {
                    let fitted = linfa_logistic::MultiLogisticRegression::default()
                        .alpha(*alpha)
                        .max_iterations(*max_iterations)
                        .with_intercept(*fit_intercept)
                        .fit(&dataset)
                        .map_err(|e| err(e.to_string()))?;
                    // linfa keeps only the classes present in the training rows: widen to all classes, an
                    // absent class getting a score so low that its probability is zero.
                    let mut weights = Array2::zeros((x.ncols(), n_classes));
                    let mut intercept = Array1::from(vec![-1e30; n_classes]);
                    for (column, &class) in fitted.classes().iter().enumerate() {
                        weights.column_mut(class).assign(&fitted.params().column(column));
                        intercept[class] = fitted.intercept()[column];
                    }
                    Ok(Fitted::Linear { weights, intercept, link: Link::Softmax })
                }
            }
            (Params::Tree(tree), target) => {
                Ok(Fitted::Trees(Forest::fit_tree(x, target, &tree_params(algorithm, tree, target)?)))
            }
            (Params::Forest { tree, n_trees, max_features, seed: own_seed }, target) => {
                let default = match target {
                    TargetRef::Classes(..) => MaxFeatures::Sqrt,
                    TargetRef::Values(_) => MaxFeatures::Fraction(1.0),
                };
                Ok(Fitted::Trees(Forest::fit_forest(
                    x,
                    target,
                    &tree_params(algorithm, tree, target)?,
                    *n_trees,
                    max_features.unwrap_or(default),
                    own_seed.unwrap_or(seed),
                )))
            }
            (Params::Linear { fit_intercept }, TargetRef::Values(values)) => {
                let dataset = DatasetBase::new(x, Array1::from(values.to_vec()));
                let fitted = linfa_linear::LinearRegression::new()
                    .with_intercept(*fit_intercept)
                    .fit(&dataset)
                    .map_err(|e| err(e.to_string()))?;
                Ok(Fitted::Linear {
                    weights: fitted.params().clone().insert_axis(Axis(1)),
                    intercept: Array1::from(vec![fitted.intercept()]),
                    link: Link::Identity,
                })
            }
            (
                Params::ElasticNet { alpha, l1_ratio, fit_intercept, max_iterations, tolerance },
                TargetRef::Values(values),
            ) => {
                // linfa centres the target but not the features, so its intercept is only right for
                // centred features: centre them here, as scikit-learn does, and move the means into the
                // intercept afterwards.
                let means = if *fit_intercept {
                    x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(x.ncols()))
                } else {
                    Array1::zeros(x.ncols())
                };
                let centred = &x - &means;
                let dataset = DatasetBase::new(centred, Array1::from(values.to_vec()));
                let fitted = linfa_elasticnet::ElasticNet::params()
                    .penalty(*alpha)
                    .l1_ratio(*l1_ratio)
                    .with_intercept(*fit_intercept)
                    .max_iterations(*max_iterations)
                    .tolerance(*tolerance)
                    .fit(&dataset)
                    .map_err(|e| err(e.to_string()))?;
                let w = fitted.hyperplane().clone();
                let intercept = fitted.intercept() - means.dot(&w);
                Ok(Fitted::Linear {
                    weights: w.insert_axis(Axis(1)),
                    intercept: Array1::from(vec![intercept]),
                    link: Link::Identity,
                })
            }
            (_, target) => Err(wrong_target(algorithm, matches!(target, TargetRef::Classes(..)))),
        }
    }

    /// Scores of `x` (columns already checked): probabilities for classifiers, values for regressors.
    pub(crate) fn output(&self, x: ArrayView2<f64>, n_classes: usize) -> Output {
        match self {
            Fitted::Linear { weights, intercept, link } => {
                let mut scores = x.dot(weights);
                scores += intercept;
                match link {
                    Link::Identity => Output::Values(scores.column(0).to_vec()),
                    Link::Logistic => {
                        let mut p = Array2::zeros((x.nrows(), 2));
                        for (mut row, s) in p.rows_mut().into_iter().zip(scores.column(0)) {
                            let p1 = 1.0 / (1.0 + (-s).exp());
                            row[0] = 1.0 - p1;
                            row[1] = p1;
                        }
                        Output::Probabilities(p)
                    }
                    Link::Softmax => {
                        for mut row in scores.rows_mut() {
                            let max = row.fold(f64::NEG_INFINITY, |m, v| m.max(*v));
                            row.mapv_inplace(|v| (v - max).exp());
                            let sum = row.sum();
                            row /= sum;
                        }
                        Output::Probabilities(scores)
                    }
                }
            }
            // A regression forest's leaves hold one value: the same walk with one output column.
            Fitted::Trees(forest) => {
                let mut p = Array2::zeros((x.nrows(), n_classes.max(1)));
                for (row, mut out) in x.rows().into_iter().zip(p.rows_mut()) {
                    if let Some(out) = out.as_slice_mut() {
                        forest.predict_into(row, out);
                    }
                }
                if n_classes == 0 { Output::Values(p.column(0).to_vec()) } else { Output::Probabilities(p) }
            }
        }
    }
}

/// The tree parameters with the split criterion for the target filled in, or an error naming
/// `split_quality` when the one given does not fit the target.
pub(crate) fn tree_params(
    algorithm: Algorithm,
    tree: &TreeParams,
    target: TargetRef<'_>,
) -> Result<TreeParams, MlError> {
    let classes = matches!(target, TargetRef::Classes(..));
    match tree.criterion(classes) {
        Some(criterion) => Ok(TreeParams { split_quality: Some(criterion), ..*tree }),
        None => Err(MlError::InvalidParam {
            algorithm: algorithm.name(),
            key: "split_quality".into(),
            message: if classes {
                "squared_error is for numeric targets; classes split by gini or entropy".into()
            } else {
                "gini and entropy are for class targets; numeric targets split by squared_error".into()
            },
        }),
    }
}

/// The error for an algorithm that cannot learn a class target (`classes`) or a numeric one.
pub(crate) fn wrong_target(algorithm: Algorithm, classes: bool) -> MlError {
    if classes {
        MlError::WrongTarget {
            algorithm: algorithm.name(),
            target: "class",
            hint: "it is a regression algorithm; use logistic_regression, decision_tree or random_forest",
        }
    } else {
        MlError::WrongTarget {
            algorithm: algorithm.name(),
            target: "numeric",
            hint: "it is a classification algorithm; use linear_regression, elastic_net, decision_tree or random_forest",
        }
    }
}

/// The index of the largest probability in each row (the first on ties).
pub(crate) fn argmax_rows(p: &Array2<f64>) -> Vec<usize> {
    p.rows()
        .into_iter()
        .map(|row| {
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = i;
                }
            }
            best
        })
        .collect()
}

impl Model {
    pub(crate) fn new(
        algorithm: Algorithm,
        params: BTreeMap<String, Value>,
        feature_names: Vec<String>,
        classes: Option<Vec<String>>,
        fitted: Fitted,
    ) -> Model {
        Model { algorithm, params, feature_names, classes, fitted }
    }

    /// Predicts each row of `x`, whose columns must be the model's `feature_names` in order.
    pub fn predict(&self, x: ArrayView2<f64>) -> Result<Predictions, MlError> {
        if x.ncols() != self.feature_names.len() {
            return Err(MlError::ColumnCount {
                expected: self.feature_names.len(),
                got: x.ncols(),
                names: self.feature_names.join(", "),
            });
        }
        let n_classes = self.classes.as_ref().map_or(0, Vec::len);
        Ok(match (self.fitted.output(x, n_classes), &self.classes) {
            (Output::Probabilities(p), Some(classes)) => Predictions {
                labels: Some(argmax_rows(&p).into_iter().map(|i| classes[i].clone()).collect()),
                values: None,
                probabilities: Some(p),
            },
            (Output::Probabilities(p), None) => Predictions { labels: None, values: None, probabilities: Some(p) },
            (Output::Values(v), _) => Predictions { labels: None, values: Some(v), probabilities: None },
        })
    }

    /// The model as JSON, for the model registry.
    pub fn to_json(&self) -> Result<Vec<u8>, MlError> {
        Ok(serde_json::to_vec(self)?)
    }

    /// Reads a model written by [`Model::to_json`].
    pub fn from_json(bytes: &[u8]) -> Result<Model, MlError> {
        let model: Model = serde_json::from_slice(bytes)?;
        let n_features = model.feature_names.len();
        let n_classes = model.classes.as_ref().map_or(0, Vec::len);
        let consistent = match (&model.fitted, &model.classes) {
            (Fitted::Linear { weights, intercept, link }, classes) => {
                let outputs = match (link, classes) {
                    (Link::Identity, None) | (Link::Logistic, Some(_)) => 1,
                    (Link::Softmax, Some(_)) => n_classes,
                    _ => usize::MAX,
                };
                (*link != Link::Logistic || n_classes == 2)
                    && weights.dim() == (n_features, outputs)
                    && intercept.len() == outputs
            }
            (Fitted::Trees(forest), classes) => {
                forest.is_valid(n_features, if classes.is_some() { n_classes } else { 1 })
            }
        };
        if !consistent {
            return Err(MlError::InvalidData(
                "stored model is inconsistent: its fitted parameters do not match its features or classes".into(),
            ));
        }
        Ok(model)
    }
}
