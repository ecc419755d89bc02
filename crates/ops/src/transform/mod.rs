//! `kind: transform`: ordered steps from input to output, with the parameters learned from the data kept.
//!
//! [`fit`] runs the steps in order; each step first learns what it needs from the frame as it is at that point
//! (means, standard deviations, fences, categories, fill values) and is then applied. What was learned is returned
//! as a [`FittedTransform`], a serialisable artifact: [`FittedTransform::apply`] replays exactly the same operations
//! on new data — at inference time, say — without learning anything from it. Fitting is "learn, then apply the
//! fitted step", so a fitted transform applied to the training frame gives the training output, by construction.

use std::collections::BTreeMap;

use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};
use sluice_core::ops_spec::{ColumnType, Columns, HashPii, Literal, MaskPii, Step, Subset, TextClean};

use crate::error::{OpsError, Result};

mod apply;
mod fit;
mod stats;
mod task;
mod text;

pub use self::task::{FITTED_FILE, TransformOutput, run_transform};

/// The artifact format; bumped when [`FittedStep`] changes incompatibly.
pub const FITTED_FORMAT_VERSION: u32 = 1;

/// A transform with its learned parameters, ready to replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedTransform {
    pub format_version: u32,
    pub steps: Vec<FittedStep>,
}

/// One step with what it learned; steps that learn nothing carry their configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FittedStep {
    Select(Vec<String>),
    Rename(BTreeMap<String, String>),
    Cast(BTreeMap<String, ColumnType>),
    DropDuplicates(Subset),
    DropMissing(Subset),
    /// Column → the value that replaces its missing values (the fitted mean, median or mode, or the constant).
    FillMissing(BTreeMap<String, Literal>),
    ForwardFill(Columns),
    /// Column → fence; values beyond it are set to the fence.
    ClipOutliers(BTreeMap<String, Fence>),
    /// Column → fence; rows with a value beyond it are dropped (missing values are kept).
    DropOutliers(BTreeMap<String, Fence>),
    /// Column → `(x - center) / scale`: standardisation and min-max scaling are both this.
    Scale(BTreeMap<String, Affine>),
    TextClean(TextClean),
    /// Column → its categories, in output-column order.
    OneHot(BTreeMap<String, Vec<String>>),
    /// Column → its categories; a value's code is its index.
    OrdinalEncode(BTreeMap<String, Vec<String>>),
    HashPii(HashPii),
    MaskPii(MaskPii),
}

/// Inclusive bounds of the values considered normal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fence {
    pub low: f64,
    pub high: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Affine {
    pub center: f64,
    pub scale: f64,
}

/// Learn each step's parameters on `df` and apply it, in order. Returns the transformed frame and the artifact.
pub fn fit(mut df: DataFrame, steps: &[Step]) -> Result<(DataFrame, FittedTransform)> {
    let mut fitted = Vec::with_capacity(steps.len());
    for step in steps {
        let f = fit::fit_step(&df, step)?;
        df = apply::apply_step(df, &f)?;
        fitted.push(f);
    }
    Ok((df, FittedTransform { format_version: FITTED_FORMAT_VERSION, steps: fitted }))
}

impl FittedTransform {
    /// Replay the fitted steps on `df`, learning nothing from it.
    pub fn apply(&self, df: DataFrame) -> Result<DataFrame> {
        if self.format_version != FITTED_FORMAT_VERSION {
            return Err(OpsError::Invalid(format!(
                "fitted transform has format version {}, this Sluice reads version {FITTED_FORMAT_VERSION}: fit it again",
                self.format_version
            )));
        }
        self.steps.iter().try_fold(df, apply::apply_step)
    }
}

#[cfg(test)]
mod tests;
