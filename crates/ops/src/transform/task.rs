//! The transform task over the lake: read the input partition, fit, write the outputs, and keep the fitted
//! parameters next to each output partition so that the same transform can be replayed later (at inference time,
//! or on the next day's data) with [`FittedTransform::load`] and [`FittedTransform::apply`].

use std::path::PathBuf;

use chrono::NaiveDate;
use sluice_core::ops_spec::TransformSpec;

use super::{FittedTransform, fit};
use crate::error::{OpsError, Result};
use crate::ingest::ColumnInfo;
use crate::lake::{Lake, WrittenPartition};

/// The file, in an output's partition folder, holding the fitted parameters that produced it.
pub const FITTED_FILE: &str = "fitted_transform.json";

/// What a transform task produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformOutput {
    pub outputs: Vec<WrittenPartition>,
    /// The columns written.
    pub schema: Vec<ColumnInfo>,
    pub fitted: FittedTransform,
}

/// Run a transform task for logical date `ds`.
pub fn run_transform(spec: &TransformSpec, lake: &Lake, ds: NaiveDate) -> Result<TransformOutput> {
    let [input] = spec.inputs.as_slice() else {
        return Err(OpsError::Invalid(format!(
            "a transform reads exactly one input asset (others are added by join steps), got {}",
            spec.inputs.len()
        )));
    };
    let (mut df, fitted) = fit(lake.read(input, ds)?, &spec.steps, lake, ds)?;
    // Parameters first: whoever finds an output partition also finds how it was made.
    for uri in &spec.outputs {
        fitted.save(lake, uri, ds)?;
    }
    let outputs = spec.outputs.iter().map(|uri| lake.write(uri, ds, &mut df)).collect::<Result<_>>()?;
    Ok(TransformOutput { outputs, schema: ColumnInfo::of(&df), fitted })
}

impl FittedTransform {
    /// Store the parameters in the partition of asset `uri` for `ds`, atomically.
    pub fn save(&self, lake: &Lake, uri: &str, ds: NaiveDate) -> Result<PathBuf> {
        let path = lake.partition_dir(uri, ds)?.join(FITTED_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|e| OpsError::Invalid(format!("fitted transform: {e}")))?;
        lake.put(&path, json)?;
        Ok(path)
    }

    /// The parameters stored with asset `uri`'s partition for `ds`, with the partitions its joins joined.
    pub fn load(lake: &Lake, uri: &str, ds: NaiveDate) -> Result<FittedTransform> {
        let path = lake.partition_dir(uri, ds)?.join(FITTED_FILE);
        let mut fitted: FittedTransform = serde_json::from_slice(&lake.get(uri, ds, &path)?)
            .map_err(|e| OpsError::Read { path, message: e.to_string() })?;
        fitted.read_joined(lake)?;
        Ok(fitted)
    }
}
