//! The `derive` step: new columns from SQL expressions, evaluated by polars' SQL engine on each row of the frame.

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::error::{OpsError, Result};

/// Add (or replace) each column with the value of its expression. Every expression sees the frame as it was before
/// the step, so their order does not matter; a later `derive` step can use the columns of an earlier one.
pub(super) fn derive(mut df: DataFrame, columns: &BTreeMap<String, String>) -> Result<DataFrame> {
    let mut derived = Vec::with_capacity(columns.len());
    // One expression at a time, so that an error names the column and the expression at fault.
    for (name, sql) in columns {
        let bad = |e: PolarsError| OpsError::Invalid(format!("derived column {name:?} = {sql:?}: {e}"));
        let expr = polars::sql::sql_expr(sql).map_err(bad)?;
        let out = df.clone().lazy().with_column(expr.alias(name.as_str())).select([col(name.as_str())]).collect();
        derived.push(out.map_err(bad)?);
    }
    for out in derived {
        for column in out.into_columns() {
            df.with_column(column)?;
        }
    }
    Ok(df)
}
