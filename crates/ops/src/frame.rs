//! Small helpers over polars frames shared by quality checks and transform steps.

use polars::prelude::*;

use crate::error::{OpsError, Result};

/// Fail with the column name and the columns present when `name` is missing (schema drift upstream).
pub(crate) fn column<'a>(df: &'a DataFrame, name: &str) -> Result<&'a Column> {
    df.column(name).map_err(|_| OpsError::MissingColumn { column: name.to_owned(), present: names(df) })
}

/// [`column`] for every name, for steps that only need them to exist.
pub(crate) fn require(df: &DataFrame, names: &[String]) -> Result<()> {
    names.iter().try_for_each(|n| column(df, n).map(|_| ()))
}

/// The column's non-missing values as `f64`; NaN counts as missing. Fails on a non-numeric column.
pub(crate) fn numbers(df: &DataFrame, name: &str, purpose: &str) -> Result<Vec<f64>> {
    let col = column(df, name)?;
    if !col.dtype().is_primitive_numeric() {
        return Err(OpsError::Invalid(format!("{purpose} needs a numeric column; {name:?} is {}", col.dtype())));
    }
    let floats = col.cast(&DataType::Float64)?;
    Ok(floats.f64()?.iter().flatten().filter(|v| !v.is_nan()).collect())
}

/// The column as text (numbers in their usual decimal form), missing values kept as `None`.
pub(crate) fn strings(df: &DataFrame, name: &str) -> Result<StringChunked> {
    Ok(column(df, name)?.cast(&DataType::String)?.str()?.clone())
}

/// The column names, owned, for messages and reports.
pub(crate) fn names(df: &DataFrame) -> Vec<String> {
    df.get_column_names().iter().map(|c| c.to_string()).collect()
}
