//! MySQL and MariaDB: Airflow's `mysql` connection, and queries read row by row in MySQL's text protocol, where
//! every value comes as its text and is typed by its result column: integers become `i64`, `FLOAT`/`DOUBLE`/
//! `DECIMAL` `f64`, `BOOLEAN` (MySQL's name for `TINYINT(1)`) `bool`, and everything else text (dates and times
//! in MySQL's own format, `2026-01-02 03:04:05`).

use sluice_core::connection::Connection;
use sqlx::Row;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlConnection, MySqlQueryResult, MySqlRow, MySqlSslMode};

use super::rows::{Cell, RowReader};
use super::{ColumnKind, Driver, Failure, MakeFrame, ResultColumn, server_options, single_quoted};

impl Driver for MySql {
    const TEXT_TYPE: &'static str = "CHAR";
    const NAME_QUOTE: char = '`';

    /// Airflow's mysql connection: `host`, `port`, `login`, `password`, and the database in `schema`;
    /// `extra.charset`, `extra.ssl_mode` (`disabled`, `preferred`, `required`, `verify_ca`, `verify_identity`) and
    /// `extra.unix_socket`.
    fn options(conn: &Connection) -> Result<MySqlConnectOptions, String> {
        // The session keeps the server's settings, as in the users' own clients: sqlx would otherwise make `||`
        // concatenate and the time zone UTC.
        let mut options = server_options!(MySqlConnectOptions::new(), conn, 3306)
            .pipes_as_concat(false)
            .no_engine_substitution(false)
            .timezone(None);
        if let Some(charset) = conn.extra_str("charset") {
            options = options.charset(&charset);
        }
        if let Some(mode) = conn.extra_str("ssl_mode") {
            let mode: MySqlSslMode = mode.parse().map_err(|e| format!("extra.ssl_mode {mode:?}: {e}"))?;
            options = options.ssl_mode(mode);
        }
        if let Some(socket) = conn.extra_str("unix_socket") {
            options = options.socket(socket);
        }
        Ok(options)
    }

    fn exec<'c>(db: &'c mut MySqlConnection) -> impl sqlx::Executor<'c, Database = MySql> {
        db
    }

    fn rows_affected(done: &MySqlQueryResult) -> u64 {
        done.rows_affected()
    }

    /// A backslash escapes in MySQL's strings unless the server's `sql_mode` has `NO_BACKSLASH_ESCAPES`; a text
    /// with one is written as a hex literal, which reads the same either way.
    fn quote_literal(value: &str) -> String {
        if value.contains('\\') { format!("_utf8mb4 X'{}'", hex::encode(value)) } else { single_quoted(value) }
    }

    fn first_text(row: &MySqlRow) -> Result<Option<String>, sqlx::Error> {
        row.try_get(0)
    }

    async fn read(db: &mut MySqlConnection, query: &str, columns: Vec<ResultColumn>) -> Result<MakeFrame, Failure> {
        RowReader::<MySql> { cell, kind: |column, _| kind(&column.type_name) }.read(db, query, columns).await
    }
}

/// A plain query's rows come in MySQL's text protocol: each value is its text.
fn cell(row: &MySqlRow, i: usize) -> Result<Cell, sqlx::Error> {
    Ok(row.try_get_unchecked::<Option<Vec<u8>>, _>(i)?.map_or(Cell::Null, Cell::text))
}

fn kind(type_name: &str) -> ColumnKind {
    match type_name.trim_end_matches(" UNSIGNED") {
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => ColumnKind::Int,
        "FLOAT" | "DOUBLE" | "DECIMAL" => ColumnKind::Float,
        "BOOLEAN" => ColumnKind::Bool,
        _ => ColumnKind::Text,
    }
}
