//! `kind: deploy`: decide a stage change from the registry as the server saw it at lease time. The version to
//! promote must load (a corrupt or missing artifact fails the deploy, and the serving version stays), and pass the
//! gate; the server applies the change only if production has not moved since.

use sluice_core::ops_spec::{DeployAction, DeploySpec, higher_is_better};
use sluice_core::protocol::{RegistryView, StageChange, VersionView};

use super::{ServedVersion, registered};
use crate::error::{OpsError, Result};
use crate::task::OpContext;

pub fn run_deploy(spec: &DeploySpec, ctx: &OpContext<'_>, registry: &RegistryView) -> Result<StageChange> {
    let production = registry.production();
    let (target, reason) = match spec.action {
        DeployAction::Rollback => {
            let previous = registry.previous_production.ok_or_else(|| {
                OpsError::Invalid(format!("{} has had no production version before the current one", spec.model))
            })?;
            let version = registered(registry, previous)?;
            let from = production.map_or_else(|| "none".to_owned(), |p| format!("version {}", p.version));
            (version, format!("rollback from {from} to version {previous}"))
        }
        DeployAction::Promote => {
            let version = match &spec.version {
                Some(number) => {
                    let value = number.value("version").map_err(OpsError::Invalid)?;
                    registered(registry, value as i64)?
                }
                None => registry.versions.last().ok_or_else(|| {
                    OpsError::Invalid(format!("model {} has no version yet: train one first", spec.model))
                })?,
            };
            let reason =
                gate(spec, version, production.filter(|p| spec.stage == "production" && p.version != version.version))?;
            (version, reason)
        }
    };
    // Fails on a missing or corrupt artifact before anything changes.
    ServedVersion::load(ctx.lake, &target.artifact_uri)?;
    (ctx.log)(&format!("{} version {} → {}: {reason}", spec.model, target.version, spec.stage));
    Ok(StageChange {
        model: spec.model.clone(),
        version: target.version,
        stage: spec.stage.clone(),
        reason,
        expected_production: production.map(|p| p.version),
    })
}

/// The gate's verdict: `Ok(why it passed)` or the error that fails the task, with the figures compared.
fn gate(spec: &DeploySpec, candidate: &VersionView, current: Option<&VersionView>) -> Result<String> {
    let Some(gate) = &spec.gate else { return Ok("no gate".to_owned()) };
    let metric = &gate.metric;
    let higher = higher_is_better(metric);
    let value = |v: &VersionView| {
        v.metrics.get(metric).copied().ok_or_else(|| {
            OpsError::Invalid(format!("version {} of {} has no metric {metric:?}", v.version, spec.model))
        })
    };
    let score = value(candidate)?;
    let mut reasons = Vec::new();
    if let Some(min) = &gate.min {
        let min = min.value("gate.min").map_err(OpsError::Invalid)?;
        let passes = if higher { score >= min } else { score <= min };
        let bound = if higher { "at least" } else { "at most" };
        if !passes {
            return Err(OpsError::Invalid(format!(
                "gate failed: version {} has {metric} {score:.4}, it must be {bound} {min:.4}",
                candidate.version
            )));
        }
        reasons.push(format!("{metric} {score:.4} is {bound} {min:.4}"));
    }
    if let Some(current) = current {
        let margin = gate.margin.as_ref().map(|m| m.value("gate.margin")).transpose().map_err(OpsError::Invalid)?;
        let margin = margin.unwrap_or(0.0);
        let theirs = value(current)?;
        let improvement = if higher { score - theirs } else { theirs - score };
        // Better means better: a version that only equals production (a retrain on the same data) stays out.
        if improvement < margin || improvement <= 0.0 {
            return Err(OpsError::Invalid(format!(
                "gate failed: version {} has {metric} {score:.4}, production version {} has {theirs:.4}; it must be \
                 better, by at least {margin:.4}",
                candidate.version, current.version
            )));
        }
        reasons.push(format!(
            "{metric} {score:.4} beats production version {} ({theirs:.4}) by {improvement:.4} (margin {margin:.4})",
            current.version
        ));
    }
    Ok(if reasons.is_empty() { "no threshold".to_owned() } else { reasons.join("; ") })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_core::ops_spec::{Gate, Number};

    use super::*;

    fn version(version: i64, accuracy: f64, stage: &str) -> VersionView {
        VersionView {
            version,
            stage: stage.into(),
            metrics: BTreeMap::from([("accuracy".into(), accuracy)]),
            artifact_uri: format!("lake://models/m/{version}"),
        }
    }

    fn spec(min: Option<f64>, margin: Option<f64>) -> DeploySpec {
        DeploySpec {
            model: "m".into(),
            action: DeployAction::Promote,
            version: None,
            stage: "production".into(),
            gate: Some(Gate {
                metric: "accuracy".into(),
                min: min.map(Number::Value),
                margin: margin.map(|m| Number::Template(m.to_string())),
            }),
        }
    }

    #[test]
    fn the_gate_names_both_figures_when_it_fails() {
        let err = gate(&spec(Some(0.95), None), &version(2, 0.9, "none"), None).unwrap_err().to_string();
        assert!(err.contains("0.9000") && err.contains("at least 0.9500"), "{err}");
        let err = gate(&spec(None, Some(0.01)), &version(2, 0.955, "none"), Some(&version(1, 0.95, "production")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("0.9550") && err.contains("production version 1 has 0.9500"), "{err}");
        let ok = gate(&spec(Some(0.9), Some(0.01)), &version(2, 0.97, "none"), Some(&version(1, 0.95, "production")));
        assert!(ok.unwrap().contains("beats production version 1"));
        let equal = gate(&spec(None, None), &version(2, 0.95, "none"), Some(&version(1, 0.95, "production")));
        assert!(equal.unwrap_err().to_string().contains("must be better"), "equal is not better");
    }
}
