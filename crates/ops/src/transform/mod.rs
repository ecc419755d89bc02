//! `kind: transform`: ordered steps from input to output, with the parameters learned from the data kept.
//!
//! [`fit`] runs the steps in order; each step first learns what it needs from the frame as it is at that point
//! (means, standard deviations, fences, categories, fill values) and is then applied. What was learned is returned
//! as a [`FittedTransform`], a serialisable artifact: [`FittedTransform::apply`] replays exactly the same operations
//! on new data — at inference time, say — without learning anything from it. Fitting is "learn, then apply the
//! fitted step", so a fitted transform applied to the training frame gives the training output, by construction.
//!
//! Two steps read more than the frame: `derive` evaluates SQL expressions (polars SQL), which replay as written, and
//! `join` reads another lake asset; see [`FittedJoin`] for which partition, and why replay joins the same one.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};
use sluice_core::ops_spec::{ColumnType, Columns, HashPii, Literal, MaskPii, Step, Subset, TextClean};

use crate::error::{OpsError, Result};
use crate::ingest::ColumnInfo;
use crate::lake::Lake;

mod apply;
mod derive;
mod fit;
mod join;
mod stats;
mod task;
mod text;

pub use self::join::FittedJoin;
pub use self::task::{FITTED_FILE, TransformOutput, run_transform};

/// The artifact format; bumped when [`FittedStep`] changes incompatibly.
pub const FITTED_FORMAT_VERSION: u32 = 1;

/// A transform with its learned parameters, ready to replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedTransform {
    pub format_version: u32,
    pub steps: Vec<FittedStep>,
    /// The columns of the frame it was fitted on: what a record must carry for the transform to replay on it
    /// (absent from artifacts written before it was recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_schema: Vec<ColumnInfo>,
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
    /// New column → its SQL expression: nothing is learned, the expressions replay as written.
    Derive(BTreeMap<String, String>),
    Join(FittedJoin),
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
/// `join` steps read their assets from `lake`, as of the logical date `ds`.
pub fn fit(mut df: DataFrame, steps: &[Step], lake: &Lake, ds: NaiveDate) -> Result<(DataFrame, FittedTransform)> {
    let input_schema = ColumnInfo::of(&df);
    let mut fitted = Vec::with_capacity(steps.len());
    for step in steps {
        let f = fit::fit_step(&df, step, lake, ds)?;
        df = apply::apply_step(df, &f)?;
        fitted.push(f);
    }
    Ok((df, FittedTransform { format_version: FITTED_FORMAT_VERSION, steps: fitted, input_schema }))
}

impl FittedTransform {
    /// Replay the fitted steps on `df`, learning nothing from it. A transform with `join` steps needs the joined
    /// partitions read first: [`fit`] and [`FittedTransform::load`] do that, or see [`FittedTransform::read_joined`].
    pub fn apply(&self, df: DataFrame) -> Result<DataFrame> {
        if self.format_version != FITTED_FORMAT_VERSION {
            return Err(OpsError::Invalid(format!(
                "fitted transform has format version {}, this Sluice reads version {FITTED_FORMAT_VERSION}: fit it again",
                self.format_version
            )));
        }
        self.steps.iter().try_fold(df, apply::apply_step)
    }

    /// The input columns a record must carry: those the transform was fitted on, less those a leading `select`
    /// drops (they never reach the output) and less `except` (a model's target).
    pub fn required_inputs(&self, except: &str) -> Vec<ColumnInfo> {
        let kept = |name: &str| match self.steps.first() {
            Some(FittedStep::Select(columns)) => columns.iter().any(|c| c == name),
            _ => true,
        };
        self.input_schema.iter().filter(|c| c.name != except && kept(&c.name)).cloned().collect()
    }

    /// Read the partitions that the `join` steps joined when fitting, for [`FittedTransform::apply`]; fails if one
    /// was rewritten since. [`FittedTransform::load`] calls this.
    pub fn read_joined(&mut self, lake: &Lake) -> Result<()> {
        self.steps.iter_mut().try_for_each(|step| match step {
            FittedStep::Join(join) => join.read(lake),
            _ => Ok(()),
        })
    }
}

#[cfg(test)]
mod tests;
