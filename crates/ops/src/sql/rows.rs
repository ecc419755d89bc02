//! A query read row by row through sqlx (MySQL, SQLite): each row's cells are collected per column as the database
//! gave them, and each column is then built in the type its kind says. A cell that does not fit its column's type
//! (text in an SQLite `INTEGER` column) fails the read with the column and the value.

use std::fmt;

use futures::TryStreamExt;
use polars::prelude::*;

use super::{ColumnKind, Driver, Failure, MakeFrame, ResultColumn};
use crate::error::OpsError;

/// A value as a row gave it, before its column's type is settled.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

impl Cell {
    /// Bytes as text; invalid UTF-8 (a blob) is replaced, not refused.
    pub(super) fn text(bytes: Vec<u8>) -> Cell {
        Cell::Text(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Null => f.write_str("null"),
            Cell::Int(n) => write!(f, "{n}"),
            Cell::Float(x) => write!(f, "{x}"),
            Cell::Text(text) => write!(f, "{text:?}"),
        }
    }
}

/// How a database reads the cell of a row, and settles a column's kind from its description and its cells.
pub(super) struct RowReader<D: Driver> {
    pub cell: fn(&D::Row, usize) -> Result<Cell, sqlx::Error>,
    pub kind: fn(&ResultColumn, &[Cell]) -> ColumnKind,
}

impl<D: Driver> RowReader<D> {
    pub(super) async fn read(
        &self,
        db: &mut D::Connection,
        query: &str,
        columns: Vec<ResultColumn>,
    ) -> Result<MakeFrame, Failure> {
        let mut cells = vec![Vec::new(); columns.len()];
        let mut height = 0;
        {
            let mut rows = sqlx::raw_sql(query).fetch(D::exec(db));
            while let Some(row) = rows.try_next().await? {
                for (i, column) in cells.iter_mut().enumerate() {
                    column.push((self.cell)(&row, i)?);
                }
                height += 1;
            }
        }
        let kind = self.kind;
        Ok(Box::new(move || {
            let columns = columns
                .iter()
                .zip(cells)
                .map(|(column, cells)| typed_column(&column.name, kind(column, &cells), &cells))
                .collect::<Result<Vec<_>, OpsError>>()?;
            Ok(DataFrame::new(height, columns)?)
        }))
    }
}

fn typed_column(name: &str, kind: ColumnKind, cells: &[Cell]) -> Result<Column, OpsError> {
    Ok(match kind {
        ColumnKind::Int => Column::new(
            name.into(),
            values(name, cells, "an integer", |cell| match cell {
                Cell::Int(n) => Some(*n),
                Cell::Text(text) => text.trim().parse().ok(),
                Cell::Float(_) | Cell::Null => None,
            })?,
        ),
        ColumnKind::Float => Column::new(
            name.into(),
            values(name, cells, "a number", |cell| match cell {
                Cell::Int(n) => Some(*n as f64),
                Cell::Float(x) => Some(*x),
                Cell::Text(text) => text.trim().parse().ok(),
                Cell::Null => None,
            })?,
        ),
        // MySQL's booleans are integers, and so are SQLite's: any but 0 is true, as in their own SQL.
        ColumnKind::Bool => Column::new(
            name.into(),
            values(name, cells, "a boolean", |cell| match cell {
                Cell::Int(n) => Some(*n != 0),
                Cell::Text(text) => text.trim().parse::<i64>().ok().map(|n| n != 0),
                Cell::Float(_) | Cell::Null => None,
            })?,
        ),
        ColumnKind::Text => Column::new(
            name.into(),
            values(name, cells, "text", |cell| match cell {
                Cell::Int(n) => Some(n.to_string()),
                Cell::Float(x) => Some(x.to_string()),
                Cell::Text(text) => Some(text.clone()),
                Cell::Null => None,
            })?,
        ),
    })
}

/// The cells' values, nulls as missing; a cell that `convert` refuses is an error naming the column.
fn values<T>(
    name: &str,
    cells: &[Cell],
    what: &str,
    convert: impl Fn(&Cell) -> Option<T>,
) -> Result<Vec<Option<T>>, OpsError> {
    cells
        .iter()
        .map(|cell| match cell {
            Cell::Null => Ok(None),
            cell => convert(cell)
                .map(Some)
                .ok_or_else(|| OpsError::Invalid(format!("column {name:?}: {cell} is not {what}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(kind: ColumnKind, cells: &[Cell]) -> Result<Column, OpsError> {
        typed_column("c", kind, cells)
    }

    #[test]
    fn cells_become_the_columns_type() {
        let ints = column(ColumnKind::Int, &[Cell::Int(3), Cell::Null, Cell::Text(" 4 ".into())]).unwrap();
        assert_eq!(ints.i64().unwrap().iter().collect::<Vec<_>>(), [Some(3), None, Some(4)]);
        let floats = column(ColumnKind::Float, &[Cell::Int(3), Cell::Float(0.1), Cell::Text("9.50".into())]).unwrap();
        assert_eq!(floats.f64().unwrap().iter().collect::<Vec<_>>(), [Some(3.0), Some(0.1), Some(9.5)]);
        let cells = [Cell::Int(0), Cell::Int(2), Cell::Text("1".into()), Cell::Null];
        let bools = column(ColumnKind::Bool, &cells).unwrap();
        assert_eq!(bools.bool().unwrap().iter().collect::<Vec<_>>(), [Some(false), Some(true), Some(true), None]);
        let cells = [Cell::Int(7), Cell::Float(1.5), Cell::Text("007".into()), Cell::Null];
        let text = column(ColumnKind::Text, &cells).unwrap();
        assert_eq!(text.str().unwrap().iter().collect::<Vec<_>>(), [Some("7"), Some("1.5"), Some("007"), None]);
    }

    #[test]
    fn a_cell_that_does_not_fit_names_the_column_and_the_value() {
        let err = column(ColumnKind::Int, &[Cell::Int(1), Cell::Text("abc".into())]).unwrap_err();
        assert_eq!(err.to_string(), "column \"c\": \"abc\" is not an integer");
        let err = column(ColumnKind::Int, &[Cell::Float(1.5)]).unwrap_err();
        assert_eq!(err.to_string(), "column \"c\": 1.5 is not an integer");
        let err = column(ColumnKind::Bool, &[Cell::Text("yes".into())]).unwrap_err();
        assert_eq!(err.to_string(), "column \"c\": \"yes\" is not a boolean");
        assert_eq!(Cell::text(vec![b'a', 0xff]), Cell::Text("a\u{fffd}".into()));
    }
}
