//! The configuration of the machine-learning task kinds: `train` (a model from a lake asset, cross-validated over a
//! grid, registered as a new model version) and `deploy` (a version moved to a stage behind a gate, or a rollback).
//!
//! As with the data tasks, these are plain serde types checked when the DAG file loads; `crates/ops` runs them. The
//! algorithm and metric names are checked here by name only, so the core needs no ML library.
//!
//! ```yaml
//! - id: train
//!   kind: train
//!   inputs: [lake://features/penguins]
//!   model:
//!     name: penguins_species
//!     target: species
//!     candidates:
//!       - {algorithm: logistic_regression, grid: {alpha: [0.01, 0.1]}}
//!       - {algorithm: decision_tree, grid: {max_depth: [3, 5]}}
//!     metric: accuracy
//! - id: deploy
//!   kind: deploy
//!   deploy: {model: penguins_species, stage: production, gate: {metric: accuracy, min: "{{ params.min_accuracy }}"}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The algorithms `train` knows, by the names users write.
pub const ALGORITHMS: [&str; 5] =
    ["logistic_regression", "decision_tree", "random_forest", "linear_regression", "elastic_net"];

/// The metrics a model can be selected and gated by.
pub const METRICS: [&str; 9] = ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2"];

/// Whether a larger value of `metric` is better (errors and losses are smaller when better).
pub fn higher_is_better(metric: &str) -> bool {
    !matches!(metric, "log_loss" | "rmse" | "mae")
}

/// The stages a model version can be in; a version starts in `none`.
pub const STAGES: [&str; 4] = ["none", "staging", "production", "archived"];

/// Model names are path segments of the lake (`lake://models/<name>/<version>/`) and of URLs.
pub fn check_model_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 200
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !name.starts_with('.');
    if valid {
        Ok(())
    } else {
        Err(format!("model name {name:?} must be 1–200 letters, digits, '_', '-' or '.', not starting with '.'"))
    }
}

/// `kind: train` as a worker runs it: the task's one input asset and its `model:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// The lake asset the features and target are read from (the task's `inputs`).
    pub inputs: Vec<String>,
    pub model: ModelSpec,
}

/// The `model:` block of a `train` task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    /// The column to predict: strings (or integers) mean classification, floats regression.
    pub target: String,
    /// The feature columns; absent: every column but the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// `classification` or `regression`; absent: decided by the target column's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    pub candidates: Vec<CandidateGrid>,
    #[serde(default)]
    pub cv: CrossValidation,
    /// The metric the best candidate is chosen by; absent: `accuracy` for classification, `r2` for regression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    Classification,
    Regression,
}

/// One algorithm and the grid of its hyper-parameters: every combination is a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateGrid {
    pub algorithm: String,
    /// Parameter → the values to try.
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<serde_json::Value>>,
}

/// k-fold cross-validation, stratified for classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossValidation {
    #[serde(default = "default_folds")]
    pub folds: u32,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl Default for CrossValidation {
    fn default() -> Self {
        CrossValidation { folds: default_folds(), seed: default_seed() }
    }
}

fn default_folds() -> u32 {
    5
}

fn default_seed() -> u64 {
    42
}

/// Which version of a model a task uses: the one in `stage` (default production), or `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    pub model: String,
    #[serde(default = "default_stage")]
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Number>,
}

/// The `registers:` block of a `command` task: the task trains a model with its own code, and each success is
/// registered as a new version of `model`.
///
/// ```yaml
/// - id: train
///   command: [python, penguins_sklearn.py]
///   inputs: [lake://features/penguins_species]
///   registers: {model: penguins_sklearn, target: species, algorithm: sklearn.RandomForestClassifier}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistersSpec {
    pub model: String,
    /// The column the model predicts: a request carries the training asset's columns but this one.
    pub target: String,
    /// What the code trains, in words (`sklearn.RandomForestClassifier`); absent: `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A `command` task with `registers:` as a worker runs it: `sluice run-op` starts `argv` with its inputs and an
/// empty model folder in its environment, and registers what the folder holds when the command succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The rendered command (`command:`, or `bash -c` with `script:`).
    #[serde(default)]
    pub argv: Vec<String>,
    /// The assets the command reads; the first is the training asset the version's lineage names.
    pub inputs: Vec<String>,
    pub registers: RegistersSpec,
}

/// `kind: score` as a worker runs it: predictions for every row of the one input, written to the outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreSpec {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub score: ModelRef,
}

/// `kind: monitor` as a worker runs it: the one input compared with the model's training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    pub inputs: Vec<String>,
    pub monitor: MonitorConfig,
}

/// The `monitor:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    pub model: String,
    #[serde(default = "default_stage")]
    pub stage: String,
    /// A column of the input holding true labels: accuracy and F1 of the model on them are reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default)]
    pub thresholds: DriftThresholds,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_drift: Option<OnDrift>,
}

/// When a check reports drift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftThresholds {
    /// A feature drifted when its population stability index is above this (0.2 is the usual "significant").
    #[serde(default = "default_psi")]
    pub psi: f64,
    /// ... or when the Kolmogorov–Smirnov test's p-value is below this (numeric features).
    #[serde(default = "default_ks_p_value")]
    pub ks_p_value: f64,
    /// The predictions drifted when the PSI of the predicted classes (or values) is above this.
    #[serde(default = "default_psi")]
    pub prediction_psi: f64,
    /// With `label`: the accuracy on the labels must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_accuracy: Option<f64>,
}

impl Default for DriftThresholds {
    fn default() -> Self {
        DriftThresholds {
            psi: default_psi(),
            ks_p_value: default_ks_p_value(),
            prediction_psi: default_psi(),
            min_accuracy: None,
        }
    }
}

fn default_psi() -> f64 {
    0.2
}

fn default_ks_p_value() -> f64 {
    0.01
}

/// What happens when a report finds drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDrift {
    /// A DAG to trigger (the retraining DAG), with the report's findings in its `conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// An HTTP endpoint told of the drift: a JSON message is posted to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

/// Where a drift message is posted: an HTTP connection's host (with its credentials) and a path on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub connection: String,
    /// Joined to the connection's host; absent: the host itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// `kind: deploy` — the `deploy:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    pub model: String,
    /// `promote` (default) moves a version to `stage`; `rollback` puts the previous production version back.
    #[serde(default)]
    pub action: DeployAction,
    /// The version to promote (a template, e.g. `"{{ outputs.train.model.version }}"`); absent: the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Number>,
    /// `staging` or `production`.
    #[serde(default = "default_stage")]
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
}

fn default_stage() -> String {
    "production".to_owned()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployAction {
    #[default]
    Promote,
    Rollback,
}

/// The condition a promotion must meet: the version's cross-validated `metric` at least `min` (at most, for a
/// loss) and, for production, better than the current production version by at least `margin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<Number>,
}

/// A number written as such or as a template that renders to one (`"{{ params.min_accuracy }}"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Number {
    Value(f64),
    Template(String),
}

impl Number {
    /// The value, once templates are rendered; `what` names the field in the error.
    pub fn value(&self, what: &str) -> Result<f64, String> {
        match self {
            Number::Value(v) => Ok(*v),
            Number::Template(text) => {
                text.trim().parse().map_err(|_| format!("{what} must be a number, got {text:?} after rendering"))
            }
        }
    }
}

impl TrainSpec {
    /// What is wrong with the configuration, found before any run.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.inputs.len() != 1 {
            problems.push(format!("a train task reads exactly one input asset, got {}", self.inputs.len()));
        }
        problems.extend(self.model.problems());
        problems
    }
}

impl ModelSpec {
    /// What is wrong with the `model:` block.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = check_model_name(&self.name) {
            problems.push(e);
        }
        if self.candidates.is_empty() {
            problems.push("`candidates` must list at least one algorithm".to_owned());
        }
        for candidate in &self.candidates {
            if !ALGORITHMS.contains(&candidate.algorithm.as_str()) {
                problems.push(format!(
                    "unknown algorithm `{}` (expected one of {})",
                    candidate.algorithm,
                    ALGORITHMS.join(", ")
                ));
            }
            if let Some((param, _)) = candidate.grid.iter().find(|(_, values)| values.is_empty()) {
                problems.push(format!("the grid of `{}` lists no value for `{param}`", candidate.algorithm));
            }
        }
        if self.cv.folds < 2 {
            problems.push(format!("cross-validation needs at least 2 folds, got {}", self.cv.folds));
        }
        if let Some(metric) = &self.metric {
            check_metric(metric, &mut problems);
        }
        if self.features.as_ref().is_some_and(|f| f.contains(&self.target)) {
            problems.push(format!("the target `{}` cannot also be a feature", self.target));
        }
        problems
    }
}

impl CommandSpec {
    /// What is wrong with the configuration, found before any run.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = check_model_name(&self.registers.model).err().into_iter().collect();
        if self.inputs.is_empty() {
            problems.push(
                "a command task that registers a model needs `inputs`: the first is the asset it trains on".into(),
            );
        }
        problems
    }
}

impl DeploySpec {
    /// What is wrong with the configuration, found before any run.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = check_model_name(&self.model) {
            problems.push(e);
        }
        if !["staging", "production"].contains(&self.stage.as_str()) {
            problems.push(format!("`stage` must be staging or production, got {:?}", self.stage));
        }
        if self.action == DeployAction::Rollback && (self.gate.is_some() || self.version.is_some()) {
            problems.push(
                "a rollback takes neither `version` nor `gate`: it restores the previous production version".into(),
            );
        }
        if self.action == DeployAction::Rollback && self.stage != "production" {
            problems.push("a rollback restores the previous production version: `stage` must be production".into());
        }
        if let Some(gate) = &self.gate {
            check_metric(&gate.metric, &mut problems);
        }
        problems
    }
}

impl ModelRef {
    pub fn problems(&self) -> Vec<String> {
        model_and_stage_problems(&self.model, &self.stage)
    }
}

impl MonitorConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = model_and_stage_problems(&self.model, &self.stage);
        let t = &self.thresholds;
        if !(t.psi > 0.0 && t.prediction_psi > 0.0 && t.ks_p_value > 0.0 && t.ks_p_value < 1.0) {
            problems.push("drift thresholds must be positive, and ks_p_value below 1".to_owned());
        }
        if let Some(webhook) = self.on_drift.as_ref().and_then(|d| d.webhook.as_ref())
            && webhook.connection.trim().is_empty()
        {
            problems.push("`on_drift.webhook.connection` must name an HTTP connection".to_owned());
        }
        problems
    }
}

fn model_and_stage_problems(model: &str, stage: &str) -> Vec<String> {
    let mut problems: Vec<String> = check_model_name(model).err().into_iter().collect();
    if !["staging", "production"].contains(&stage) {
        problems.push(format!("`stage` must be staging or production, got {stage:?}"));
    }
    problems
}

fn check_metric(metric: &str, problems: &mut Vec<String>) {
    if !METRICS.contains(&metric) {
        problems.push(format!("unknown metric `{metric}` (expected one of {})", METRICS.join(", ")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templated_numbers_parse_after_rendering() {
        assert_eq!(Number::Value(0.9).value("min"), Ok(0.9));
        assert_eq!(Number::Template(" 0.95 ".into()).value("min"), Ok(0.95));
        let err = Number::Template("high".into()).value("gate.min").unwrap_err();
        assert!(err.contains("gate.min") && err.contains("\"high\""), "{err}");
    }

    #[test]
    fn problems_name_what_is_wrong() {
        let spec: TrainSpec = serde_json::from_value(serde_json::json!({"inputs": [], "model": {
            "name": "bad name", "target": "y", "features": ["y"],
            "candidates": [{"algorithm": "svm"}, {"algorithm": "decision_tree", "grid": {"max_depth": []}}],
            "cv": {"folds": 1}, "metric": "precision_at_k",
        }}))
        .unwrap();
        let problems = spec.problems().join("\n");
        for expected in [
            "model name \"bad name\"",
            "exactly one input",
            "unknown algorithm `svm`",
            "`max_depth`",
            "at least 2 folds",
            "unknown metric `precision_at_k`",
            "target `y` cannot also be a feature",
        ] {
            assert!(problems.contains(expected), "{expected} in {problems}");
        }
        let deploy: DeploySpec =
            serde_json::from_value(serde_json::json!({"model": "m", "stage": "prod", "action": "rollback",
                "gate": {"metric": "accuracy"}}))
            .unwrap();
        let problems = deploy.problems().join("\n");
        assert!(problems.contains("staging or production") && problems.contains("neither"), "{problems}");
    }

    #[test]
    fn losses_are_better_when_smaller() {
        assert!(higher_is_better("accuracy") && higher_is_better("r2"));
        assert!(!higher_is_better("rmse") && !higher_is_better("log_loss"));
    }
}
