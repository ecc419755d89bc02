//! What a user asks to train: the algorithms, their parameters (checked by name and type, with defaults),
//! the metrics that rank candidates, and the expansion of a parameter grid into candidates.
//!
//! Parameters arrive as JSON values from a DAG file, so every check names the offending key. Defaults follow
//! scikit-learn where the underlying library allows it; the few departures are documented on [`Algorithm`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::MlError;

/// A learning algorithm. Classification: `logistic_regression`, `decision_tree`, `random_forest`.
/// Regression: `linear_regression`, `elastic_net`, `decision_tree`, `random_forest`.
///
/// Parameters (all optional):
/// - `logistic_regression`: `alpha` (L2 penalty on the weights, not on the intercept; default 1.0). The
///   objective is `sum(log_loss) + alpha/2 * |w|^2`, so `alpha = 1/C` of scikit-learn's `LogisticRegression`
///   and the default matches scikit-learn's `C=1`. `max_iterations` (L-BFGS iterations, default 100),
///   `fit_intercept` (default true). Two classes fit a binary model, more a multinomial (softmax) one.
/// - `decision_tree` (CART, as scikit-learn's): `max_depth` (integer or null for unlimited, default null),
///   `min_samples_split` (default 2; `min_weight_split` is accepted as a synonym), `min_samples_leaf`
///   (default 1), `split_quality` (`gini` or `entropy` for classes, default `gini`; `squared_error` for
///   values, the default and only choice there).
/// - `random_forest`: `n_trees` (default 100), `max_features` (features drawn at each split: a fraction in
///   (0, 1], or `"sqrt"` / `"log2"` of the feature count; default `"sqrt"` for classes and 1.0 for values, as
///   scikit-learn), `seed` (default: the training seed), plus the tree parameters. Each tree is grown on a
///   bootstrap sample of the rows.
/// - `linear_regression`: `fit_intercept` (default true); ordinary least squares.
/// - `elastic_net`: `alpha` (overall penalty, default 1.0), `l1_ratio` (in [0, 1], default 0.5),
///   `fit_intercept` (default true), `max_iterations` (default 1000), `tolerance` (default 1e-4): the same
///   objective as scikit-learn's `ElasticNet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    LogisticRegression,
    DecisionTree,
    RandomForest,
    LinearRegression,
    ElasticNet,
}

impl Algorithm {
    /// The name used in DAG files and in models (`logistic_regression`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::LogisticRegression => "logistic_regression",
            Algorithm::DecisionTree => "decision_tree",
            Algorithm::RandomForest => "random_forest",
            Algorithm::LinearRegression => "linear_regression",
            Algorithm::ElasticNet => "elastic_net",
        }
    }

    /// Whether the algorithm learns a class target (`classes`) or a numeric one (`!classes`).
    pub fn fits(self, classes: bool) -> bool {
        match self {
            Algorithm::LogisticRegression => classes,
            Algorithm::LinearRegression | Algorithm::ElasticNet => !classes,
            Algorithm::DecisionTree | Algorithm::RandomForest => true,
        }
    }

    /// The parameter names the algorithm accepts.
    pub fn param_names(self) -> &'static [&'static str] {
        const TREE: &[&str] =
            &["max_depth", "min_samples_split", "min_weight_split", "min_samples_leaf", "split_quality"];
        match self {
            Algorithm::LogisticRegression => &["alpha", "max_iterations", "fit_intercept"],
            Algorithm::DecisionTree => TREE,
            Algorithm::RandomForest => &[
                "n_trees",
                "max_features",
                "seed",
                "max_depth",
                "min_samples_split",
                "min_weight_split",
                "min_samples_leaf",
                "split_quality",
            ],
            Algorithm::LinearRegression => &["fit_intercept"],
            Algorithm::ElasticNet => &["alpha", "l1_ratio", "fit_intercept", "max_iterations", "tolerance"],
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = MlError;
    fn from_str(s: &str) -> Result<Self, MlError> {
        serde_json::from_value(Value::String(s.to_string())).map_err(|_| {
            MlError::InvalidSpec(format!(
                "unknown algorithm {s:?}: expected one of logistic_regression, decision_tree, \
                 random_forest, linear_regression, elastic_net"
            ))
        })
    }
}

/// One algorithm with one setting of its parameters: a point of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub algorithm: Algorithm,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
}

/// A score computed on held-out rows. Classification: `accuracy`, `precision`, `recall`, `f1` (the last three
/// macro-averaged over classes), `roc_auc` (two classes only), `log_loss`. Regression: `rmse`, `mae`, `r2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Accuracy,
    Precision,
    Recall,
    F1,
    RocAuc,
    LogLoss,
    Rmse,
    Mae,
    R2,
}

impl Metric {
    /// The key of the metric in [`crate::CvMetrics`] maps.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
            Metric::RocAuc => "roc_auc",
            Metric::LogLoss => "log_loss",
            Metric::Rmse => "rmse",
            Metric::Mae => "mae",
            Metric::R2 => "r2",
        }
    }

    /// Whether a larger value is better (false for the losses and errors).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::LogLoss | Metric::Rmse | Metric::Mae)
    }

    /// Whether the metric scores class predictions (as opposed to values).
    pub fn is_classification(self) -> bool {
        !matches!(self, Metric::Rmse | Metric::Mae | Metric::R2)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = MlError;
    fn from_str(s: &str) -> Result<Self, MlError> {
        serde_json::from_value(Value::String(s.to_string())).map_err(|_| MlError::UnknownMetric(s.to_string()))
    }
}

/// Expands a grid (parameter name → values to try) into one candidate per combination, in the order of
/// scikit-learn's `ParameterGrid`: keys sorted, the last key varying fastest. An empty grid gives one
/// candidate with the defaults. Every combination is checked, so an unknown key or a bad value fails here,
/// naming the key.
pub fn expand_grid(algorithm: Algorithm, grid: &BTreeMap<String, Vec<Value>>) -> Result<Vec<Candidate>, MlError> {
    if let Some((key, _)) = grid.iter().find(|(_, values)| values.is_empty()) {
        return Err(MlError::InvalidParam {
            algorithm: algorithm.name(),
            key: key.clone(),
            message: "the grid lists no values to try".into(),
        });
    }
    let mut combos = vec![BTreeMap::new()];
    for (key, values) in grid {
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                values.iter().map(move |value| {
                    let mut next = combo.clone();
                    next.insert(key.clone(), value.clone());
                    next
                })
            })
            .collect();
    }
    combos
        .into_iter()
        .map(|params| {
            let candidate = Candidate { algorithm, params };
            Params::parse(&candidate)?;
            Ok(candidate)
        })
        .collect()
}

/// How many features each tree of a forest sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum MaxFeatures {
    Sqrt,
    Log2,
    Fraction(f64),
}

impl MaxFeatures {
    /// The number of features out of `n` (at least one).
    pub(crate) fn count(self, n: usize) -> usize {
        let k = match self {
            MaxFeatures::Sqrt => (n as f64).sqrt().floor(),
            MaxFeatures::Log2 => (n as f64).log2().floor(),
            MaxFeatures::Fraction(f) => (f * n as f64).round(),
        };
        (k as usize).clamp(1, n.max(1))
    }
}

/// What a tree split minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Criterion {
    Gini,
    Entropy,
    SquaredError,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TreeParams {
    pub max_depth: Option<usize>,
    pub min_samples_split: f64,
    pub min_samples_leaf: f64,
    /// `None`: the default for the target (gini for classes, squared error for values).
    pub split_quality: Option<Criterion>,
}

impl TreeParams {
    /// The criterion for a class target (`classes`) or a numeric one; `None` if the one given does not fit.
    pub(crate) fn criterion(&self, classes: bool) -> Option<Criterion> {
        match (self.split_quality, classes) {
            (None, true) => Some(Criterion::Gini),
            (None, false) => Some(Criterion::SquaredError),
            (Some(Criterion::SquaredError), true) | (Some(Criterion::Gini | Criterion::Entropy), false) => None,
            (Some(c), _) => Some(c),
        }
    }
}

/// A candidate's parameters, checked and completed with defaults.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Params {
    Logistic {
        alpha: f64,
        max_iterations: u64,
        fit_intercept: bool,
    },
    Tree(TreeParams),
    /// `max_features`: `None` for the target's default.
    Forest {
        tree: TreeParams,
        n_trees: usize,
        max_features: Option<MaxFeatures>,
        seed: Option<u64>,
    },
    Linear {
        fit_intercept: bool,
    },
    ElasticNet {
        alpha: f64,
        l1_ratio: f64,
        fit_intercept: bool,
        max_iterations: u32,
        tolerance: f64,
    },
}

impl Params {
    pub(crate) fn parse(candidate: &Candidate) -> Result<Params, MlError> {
        let r = Reader { algorithm: candidate.algorithm, params: &candidate.params };
        r.check_names()?;
        Ok(match candidate.algorithm {
            Algorithm::LogisticRegression => Params::Logistic {
                alpha: r.number("alpha", 1.0, 0.0, f64::INFINITY)?,
                max_iterations: r.integer("max_iterations", 100, 1)?,
                fit_intercept: r.boolean("fit_intercept", true)?,
            },
            Algorithm::DecisionTree => Params::Tree(r.tree()?),
            Algorithm::RandomForest => Params::Forest {
                tree: r.tree()?,
                n_trees: r.integer("n_trees", 100, 1)? as usize,
                max_features: r.max_features()?,
                seed: match r.params.get("seed") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(r.integer("seed", 0, 0)?),
                },
            },
            Algorithm::LinearRegression => Params::Linear { fit_intercept: r.boolean("fit_intercept", true)? },
            Algorithm::ElasticNet => Params::ElasticNet {
                alpha: r.number("alpha", 1.0, 0.0, f64::INFINITY)?,
                l1_ratio: r.number("l1_ratio", 0.5, 0.0, 1.0)?,
                fit_intercept: r.boolean("fit_intercept", true)?,
                max_iterations: u32::try_from(r.integer("max_iterations", 1000, 1)?).unwrap_or(u32::MAX),
                tolerance: r.number("tolerance", 1e-4, f64::MIN_POSITIVE, f64::INFINITY)?,
            },
        })
    }
}

/// Reads typed parameters out of a candidate's JSON map, naming the key in every error.
struct Reader<'a> {
    algorithm: Algorithm,
    params: &'a BTreeMap<String, Value>,
}

impl Reader<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> MlError {
        MlError::InvalidParam { algorithm: self.algorithm.name(), key: key.to_string(), message: message.into() }
    }

    fn check_names(&self) -> Result<(), MlError> {
        let known = self.algorithm.param_names();
        if let Some(key) = self.params.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(self.err(key, format!("unknown parameter; expected one of {}", known.join(", "))));
        }
        if self.params.contains_key("min_samples_split") && self.params.contains_key("min_weight_split") {
            return Err(self.err("min_weight_split", "give either min_samples_split or min_weight_split, not both"));
        }
        Ok(())
    }

    fn number(&self, key: &str, default: f64, min: f64, max: f64) -> Result<f64, MlError> {
        let Some(value) = self.params.get(key) else {
            return Ok(default);
        };
        let n = value.as_f64().ok_or_else(|| self.err(key, format!("expected a number, got {value}")))?;
        if !(n.is_finite() && n >= min && n <= max) {
            let range = if max.is_infinite() { format!("at least {min}") } else { format!("between {min} and {max}") };
            return Err(self.err(key, format!("expected a number {range}, got {n}")));
        }
        Ok(n)
    }

    fn integer(&self, key: &str, default: u64, min: u64) -> Result<u64, MlError> {
        let Some(value) = self.params.get(key) else {
            return Ok(default);
        };
        let n = value
            .as_u64()
            .or_else(|| {
                // 3.0 is a fine way to write 3 in YAML.
                value.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 2f64.powi(53)).map(|f| f as u64)
            })
            .ok_or_else(|| self.err(key, format!("expected a non-negative integer, got {value}")))?;
        if n < min {
            return Err(self.err(key, format!("expected an integer of at least {min}, got {n}")));
        }
        Ok(n)
    }

    fn boolean(&self, key: &str, default: bool) -> Result<bool, MlError> {
        match self.params.get(key) {
            None => Ok(default),
            Some(value) => value.as_bool().ok_or_else(|| self.err(key, format!("expected true or false, got {value}"))),
        }
    }

    fn tree(&self) -> Result<TreeParams, MlError> {
        let max_depth = match self.params.get("max_depth") {
            None | Some(Value::Null) => None,
            Some(_) => Some(self.integer("max_depth", 0, 1)? as usize),
        };
        let min_samples_split = if self.params.contains_key("min_weight_split") {
            self.number("min_weight_split", 2.0, 0.0, f64::INFINITY)?
        } else {
            self.integer("min_samples_split", 2, 2)? as f64
        };
        let split_quality = match self.params.get("split_quality") {
            None => None,
            Some(Value::String(s)) if s == "gini" => Some(Criterion::Gini),
            Some(Value::String(s)) if s == "entropy" => Some(Criterion::Entropy),
            Some(Value::String(s)) if s == "squared_error" => Some(Criterion::SquaredError),
            Some(other) => {
                let expected = "expected \"gini\" or \"entropy\" (classes) or \"squared_error\" (values)";
                return Err(self.err("split_quality", format!("{expected}, got {other}")));
            }
        };
        Ok(TreeParams {
            max_depth,
            min_samples_split,
            min_samples_leaf: self.integer("min_samples_leaf", 1, 1)? as f64,
            split_quality,
        })
    }

    fn max_features(&self) -> Result<Option<MaxFeatures>, MlError> {
        match self.params.get("max_features") {
            None => Ok(None),
            Some(Value::String(s)) if s == "sqrt" => Ok(Some(MaxFeatures::Sqrt)),
            Some(Value::String(s)) if s == "log2" => Ok(Some(MaxFeatures::Log2)),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f > 0.0 && f <= 1.0 => Ok(Some(MaxFeatures::Fraction(f))),
                _ => Err(self.err("max_features", format!("a fraction must be in (0, 1], got {n}"))),
            },
            Some(other) => {
                Err(self
                    .err("max_features", format!("expected \"sqrt\", \"log2\" or a fraction in (0, 1], got {other}")))
            }
        }
    }
}
