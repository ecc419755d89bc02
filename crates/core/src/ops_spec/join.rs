//! The `join` transform step: `{join: {asset: lake://ref/islands, on: [island], how: left}}`.

use serde::{Deserialize, Serialize};

use super::Step;

/// Add the columns of another lake asset to each row, matched on key columns present in both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// A `lake://` asset; its newest partition at or before the run's logical date is joined.
    pub asset: String,
    /// Key columns, named alike in both frames.
    pub on: Vec<String>,
    #[serde(default)]
    pub how: JoinHow,
    /// Appended to the name of a joined column that the frame already has; `_right` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinHow {
    /// Every row is kept; a row without a match gets missing values in the joined columns.
    #[default]
    Left,
    /// Only rows with a match are kept.
    Inner,
}

impl Join {
    pub const DEFAULT_SUFFIX: &'static str = "_right";

    pub fn suffix(&self) -> &str {
        self.suffix.as_deref().unwrap_or(Join::DEFAULT_SUFFIX)
    }
}

/// The assets that the `join` steps among `steps` read, in step order: they are inputs of the task as much as its
/// `inputs` are (for lineage and the catalog).
pub fn joined_assets(steps: &[Step]) -> impl Iterator<Item = &str> {
    steps.iter().filter_map(|s| match s {
        Step::Join(j) => Some(j.asset.as_str()),
        _ => None,
    })
}
