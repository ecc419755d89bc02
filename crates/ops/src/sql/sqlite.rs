//! SQLite: Airflow's `sqlite` connection (the database file in `host`), and queries read row by row. SQLite types
//! values, not columns: a column declared `INTEGER`, `REAL` or `BOOLEAN` becomes `i64`, `f64` or `bool`, one
//! declared as text, a date or a blob becomes text, and an expression (or a `NUMERIC`/`DECIMAL` column) takes
//! the type of its values: `i64` when they are all integers, `f64` when some are real, text when some are text.

use sluice_core::connection::Connection;
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteConnection, SqliteQueryResult, SqliteRow};
use sqlx::{Row, TypeInfo, ValueRef};

use super::rows::{Cell, RowReader};
use super::{ColumnKind, Driver, Failure, MakeFrame, ResultColumn, single_quoted};

impl Driver for Sqlite {
    const TEXT_TYPE: &'static str = "TEXT";
    const NAME_QUOTE: char = '"';

    /// Airflow's sqlite connection: the database file's path in `host`, created if missing as Python's `sqlite3`
    /// does; a relative path is taken from the worker's working directory.
    fn options(conn: &Connection) -> Result<SqliteConnectOptions, String> {
        let path = conn.host.as_deref().filter(|h| !h.trim().is_empty());
        let path = path.ok_or("a sqlite connection needs the database file's path in `host`")?;
        Ok(SqliteConnectOptions::new().filename(path).create_if_missing(true))
    }

    fn exec<'c>(db: &'c mut SqliteConnection) -> impl sqlx::Executor<'c, Database = Sqlite> {
        db
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    /// SQLite orders every number below every text, and an expression's values have no type to convert the mark
    /// to: a mark that is a number is written as one.
    fn quote_literal(value: &str) -> String {
        let number = value.parse::<i64>().is_ok_and(|n| n.to_string() == value)
            || value.parse::<f64>().is_ok_and(|x| x.is_finite() && x.to_string() == value);
        if number { value.to_owned() } else { single_quoted(value) }
    }

    fn first_text(row: &SqliteRow) -> Result<Option<String>, sqlx::Error> {
        row.try_get(0)
    }

    async fn read(db: &mut SqliteConnection, query: &str, columns: Vec<ResultColumn>) -> Result<MakeFrame, Failure> {
        RowReader::<Sqlite> { cell, kind }.read(db, query, columns).await
    }
}

/// A value by its own storage class.
fn cell(row: &SqliteRow, i: usize) -> Result<Cell, sqlx::Error> {
    let value = row.try_get_raw(i)?;
    if value.is_null() {
        return Ok(Cell::Null);
    }
    Ok(match value.type_info().name() {
        "INTEGER" => Cell::Int(row.try_get_unchecked(i)?),
        "REAL" => Cell::Float(row.try_get_unchecked(i)?),
        _ => Cell::text(row.try_get_unchecked(i)?),
    })
}

fn kind(column: &ResultColumn, cells: &[Cell]) -> ColumnKind {
    match column.type_name.as_str() {
        "INTEGER" => ColumnKind::Int,
        "REAL" => ColumnKind::Float,
        "BOOLEAN" => ColumnKind::Bool,
        // An expression, or a declared type that sqlx does not name.
        "NULL" | "NUMERIC" => {
            if cells.iter().any(|c| matches!(c, Cell::Text(_))) {
                ColumnKind::Text
            } else if cells.iter().any(|c| matches!(c, Cell::Float(_))) {
                ColumnKind::Float
            } else if cells.iter().any(|c| matches!(c, Cell::Int(_))) {
                ColumnKind::Int
            } else {
                ColumnKind::Text
            }
        }
        _ => ColumnKind::Text,
    }
}
