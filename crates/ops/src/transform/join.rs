//! The `join` step: the columns of another lake asset, matched on key columns.
//!
//! **Which partition.** Fitting joins the asset's newest partition at or before the run's logical date. Reference
//! data (islands, product categories) is usually refreshed less often than the data it enriches, so requiring a
//! partition for the very same date — as the transform's own input does — would fail on most days; and never taking
//! one from after the logical date keeps a backfill of an old date from seeing data that did not exist yet. When
//! both assets are written on the same schedule, this is the same partition as the input's.
//!
//! **Replay.** The joined asset is an input as much as the transform's own input, so the fitted step records which
//! partition it joined and that partition's content hash, and replay joins exactly that partition: features computed
//! at inference time see the reference data the model was trained with. If the partition was rewritten since with
//! other content, replay fails and says so, rather than silently joining different rows: fit the transform again.

use std::fmt;

use chrono::NaiveDate;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sluice_core::ops_spec::{Join, JoinHow};

use crate::error::{OpsError, Result};
use crate::frame;
use crate::lake::Lake;

/// A join with the partition it joined when fitting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedJoin {
    #[serde(flatten)]
    pub spec: Join,
    /// The logical date of the joined partition.
    pub partition: NaiveDate,
    /// The SHA-256 of the joined partition's file, as in its asset event.
    pub content_hash: String,
    #[serde(skip)]
    rows: JoinedRows,
}

/// The joined partition's data, held in memory between fitting (or loading) and applying; not part of the artifact.
#[derive(Clone, Default)]
struct JoinedRows(Option<DataFrame>);

impl fmt::Debug for JoinedRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(df) => write!(f, "{} rows", df.height()),
            None => f.write_str("not read"),
        }
    }
}

/// The partition and its hash identify the rows; whether they are in memory does not change the transform.
impl PartialEq for JoinedRows {
    fn eq(&self, _: &JoinedRows) -> bool {
        true
    }
}

impl FittedJoin {
    /// Pick and read the partition to join for logical date `ds` (see the module doc).
    pub(super) fn fit(spec: &Join, lake: &Lake, ds: NaiveDate) -> Result<FittedJoin> {
        let partition = lake.latest_partition(&spec.asset, ds)?.ok_or_else(|| {
            OpsError::Invalid(format!("cannot join {}: it has no partition on or before {ds}", spec.asset))
        })?;
        let (df, content_hash) = lake.read_hashed(&spec.asset, partition)?;
        Ok(FittedJoin { spec: spec.clone(), partition, content_hash, rows: JoinedRows(Some(df)) })
    }

    /// Read the recorded partition for replay, checking that it still holds the rows that were fitted on.
    pub(super) fn read(&mut self, lake: &Lake) -> Result<()> {
        let (df, hash) = lake.read_hashed(&self.spec.asset, self.partition)?;
        if hash != self.content_hash {
            return Err(OpsError::Invalid(format!(
                "cannot replay the join with {}: its partition of {} was rewritten since the transform was fitted \
                 (content hash {}, now {hash}); fit the transform again",
                self.spec.asset, self.partition, self.content_hash
            )));
        }
        self.rows = JoinedRows(Some(df));
        Ok(())
    }

    pub(super) fn apply(&self, df: DataFrame) -> Result<DataFrame> {
        let Join { asset, on, how, .. } = &self.spec;
        let right = self.rows.0.as_ref().ok_or_else(|| {
            OpsError::Invalid(format!(
                "the join with {asset} needs its partition of {} read first (FittedTransform::read_joined)",
                self.partition
            ))
        })?;
        frame::require(&df, on)?;
        frame::require(right, on).map_err(|e| OpsError::Invalid(format!("cannot join {asset}: {e}")))?;
        let keys: Vec<Expr> = on.iter().map(|c| col(c.as_str())).collect();
        let how = match how {
            JoinHow::Left => JoinType::Left,
            JoinHow::Inner => JoinType::Inner,
        };
        df.lazy()
            .join_builder()
            .with(right.clone().lazy())
            .left_on(keys.clone())
            .right_on(keys)
            .how(how)
            .suffix(self.spec.suffix())
            // Rows keep their order, so that a replay gives the same frame row for row.
            .maintain_order(MaintainOrderJoin::Left)
            .finish()
            .collect()
            .map_err(|e| OpsError::Invalid(format!("cannot join {asset} on {}: {e}", on.join(", "))))
    }
}
