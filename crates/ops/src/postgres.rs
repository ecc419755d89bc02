//! PostgreSQL through a connection: the `postgres` ingest source, `kind: sql` and SQL sensors.
//!
//! A source query is read with `COPY (query) TO STDOUT (FORMAT csv, HEADER)` — PostgreSQL's fastest way out, and
//! polars' fastest way in — and typed from the query's own result columns (prepared first), so that a text column
//! of digits stays text: integers become `i64`, `real`/`double precision`/`numeric` `f64`, `boolean` `bool`, and
//! everything else (dates and timestamps included, in PostgreSQL's ISO output) text.
//!
//! An incremental load pushes its watermark into the query: the query becomes
//! `SELECT * FROM (query) AS source WHERE "column" > 'previous mark'`, so the database reads only the new rows
//! (the mark is also applied after the read, like for every source).
//!
//! `kind: sql` runs its statements in one transaction, logging the rows each affected; any error rolls all of them
//! back and fails the task with PostgreSQL's message.

use std::io::Cursor;
use std::str::FromStr;
use std::time::Duration;

use futures::TryStreamExt;
use polars::prelude::*;
use sluice_core::connection::Connection;
use sluice_core::ops_spec::{PostgresSource, SqlSpec};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{Column, Connection as _, Executor, Statement, TypeInfo};

use crate::error::{OpsError, Result};
use crate::runtime::block_on;
use crate::task::NamedConnection;

/// A database that does not answer within this time fails the task instead of holding it until its timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// An incremental load's filter: rows whose `column` is above `mark`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Above<'a> {
    pub column: &'a str,
    pub mark: &'a str,
}

/// Run `source.query` (with `above` pushed down) and return its rows.
pub(crate) fn read_postgres(
    source: &PostgresSource,
    (conn_id, conn): NamedConnection<'_>,
    above: Option<Above<'_>>,
    log: &dyn Fn(&str),
) -> Result<DataFrame> {
    let query = match above {
        Some(above) => pushed_down(&source.query, above),
        None => trimmed(&source.query).to_owned(),
    };
    let db_error = |e: sqlx::Error| OpsError::Database { connection: conn_id.to_owned(), message: e.to_string() };
    let (columns, csv) = block_on(async {
        let mut db = connect(conn_id, conn).await?;
        let statement = db.prepare(query.as_str()).await.map_err(db_error)?;
        let columns: Vec<(String, ColumnKind)> =
            statement.columns().iter().map(|c| (c.name().to_owned(), ColumnKind::of(c.type_info().name()))).collect();
        let copy = format!("COPY ({query}) TO STDOUT (FORMAT csv, HEADER)");
        let chunks: Vec<_> = db.copy_out_raw(&copy).await.map_err(db_error)?.try_collect().await.map_err(db_error)?;
        Ok::<_, OpsError>((columns, chunks.concat()))
    })??;
    let df = typed_frame(&columns, csv)?;
    log(&format!("{} rows from connection {conn_id:?}", df.height()));
    Ok(df)
}

/// Run a `kind: sql` task's statements in one transaction; the rows affected in all.
pub(crate) fn run_sql(spec: &SqlSpec, conn: &Connection, log: &dyn Fn(&str)) -> Result<u64> {
    let conn_id = spec.connection.as_str();
    let db_error = |e: sqlx::Error| OpsError::Database { connection: conn_id.to_owned(), message: e.to_string() };
    block_on(async {
        let mut db = connect(conn_id, conn).await?;
        let mut tx = db.begin().await.map_err(db_error)?;
        let mut total = 0;
        {
            let mut results = sqlx::raw_sql(&spec.sql).execute_many(&mut *tx);
            let mut n = 0;
            while let Some(done) = results.try_next().await.map_err(db_error)? {
                n += 1;
                total += done.rows_affected();
                log(&format!("statement {n}: {} rows affected", done.rows_affected()));
            }
        }
        tx.commit().await.map_err(db_error)?;
        log(&format!("committed on connection {conn_id:?}: {total} rows affected in all"));
        Ok::<u64, OpsError>(total)
    })?
}

/// The first cell of a query's first row, as text; `None` for no row or null (a SQL sensor's poke).
pub(crate) fn first_cell(conn_id: &str, conn: &Connection, query: &str) -> Result<Option<String>> {
    let db_error = |e: sqlx::Error| OpsError::Database { connection: conn_id.to_owned(), message: e.to_string() };
    let query = trimmed(query);
    block_on(async {
        let mut db = connect(conn_id, conn).await?;
        let statement = db.prepare(query).await.map_err(db_error)?;
        let Some(first) = statement.columns().first() else { return Ok(None) };
        // Cast in the database: the column may be of any type, and its text is what is judged.
        let sql = format!("SELECT {}::text AS cell FROM ({query}) AS sensor LIMIT 1", quote_identifier(first.name()));
        let row: Option<(Option<String>,)> = sqlx::query_as(&sql).fetch_optional(&mut db).await.map_err(db_error)?;
        Ok::<_, OpsError>(row.and_then(|(cell,)| cell))
    })?
}

async fn connect(conn_id: &str, conn: &Connection) -> Result<PgConnection> {
    let options = connect_options(conn_id, conn)?;
    let failed = |message: String| OpsError::Database { connection: conn_id.to_owned(), message };
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(failed(format!("cannot connect: {e}"))),
        Err(_) => Err(failed(format!("no answer from the database within {}s", CONNECT_TIMEOUT.as_secs()))),
    }
}

/// Airflow's postgres connection: `host`, `port`, `login`, `password`, and the database in `schema`;
/// `extra.sslmode` as libpq spells it.
fn connect_options(conn_id: &str, conn: &Connection) -> Result<PgConnectOptions> {
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(conn.host.as_deref().unwrap_or("localhost"))
        .port(conn.port.unwrap_or(5432))
        .application_name("sluice");
    if let Some(login) = &conn.login {
        options = options.username(login);
    }
    if let Some(password) = &conn.password {
        options = options.password(password);
    }
    if let Some(database) = conn.schema.as_deref().filter(|s| !s.is_empty()) {
        options = options.database(database);
    }
    if let Some(mode) = conn.extra_str("sslmode") {
        let mode = PgSslMode::from_str(&mode).map_err(|e| OpsError::Database {
            connection: conn_id.to_owned(),
            message: format!("extra.sslmode {mode:?}: {e}"),
        })?;
        options = options.ssl_mode(mode);
    }
    Ok(options)
}

/// How a result column is typed in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    Int,
    Float,
    Bool,
    Text,
}

impl ColumnKind {
    fn of(type_name: &str) -> ColumnKind {
        match type_name {
            "INT2" | "INT4" | "INT8" | "OID" => ColumnKind::Int,
            "FLOAT4" | "FLOAT8" | "NUMERIC" => ColumnKind::Float,
            "BOOL" => ColumnKind::Bool,
            _ => ColumnKind::Text,
        }
    }
}

/// The CSV that `COPY` wrote, typed by the query's columns.
fn typed_frame(columns: &[(String, ColumnKind)], csv: Vec<u8>) -> Result<DataFrame> {
    // Read everything as text first: CSV type inference would turn a text column of digits into numbers.
    let schema: Schema = columns.iter().map(|(name, _)| Field::new(name.as_str().into(), DataType::String)).collect();
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_schema(Some(Arc::new(schema)))
        .into_reader_with_file_handle(Cursor::new(csv))
        .finish()?;
    let typed: Vec<Expr> = columns
        .iter()
        .map(|(name, kind)| {
            let c = col(name.as_str());
            match kind {
                ColumnKind::Int => c.strict_cast(DataType::Int64),
                ColumnKind::Float => c.strict_cast(DataType::Float64),
                ColumnKind::Bool => c.eq(lit("t")),
                ColumnKind::Text => c,
            }
        })
        .collect();
    Ok(df.lazy().select(typed).collect()?)
}

/// The query without the trailing `;` that `COPY (…)` and a subquery would choke on.
fn trimmed(query: &str) -> &str {
    query.trim().trim_end_matches(';').trim_end()
}

fn pushed_down(query: &str, above: Above<'_>) -> String {
    format!(
        "SELECT * FROM ({}) AS source WHERE {} > {}",
        trimmed(query),
        quote_identifier(above.column),
        quote_literal(above.mark)
    )
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// PostgreSQL's `quote_literal`: quotes doubled, and an `E''` string when there are backslashes (whatever
/// `standard_conforming_strings` says).
fn quote_literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if value.contains('\\') { format!("E'{}'", quoted.replace('\\', "\\\\")) } else { format!("'{quoted}'") }
}

#[cfg(test)]
mod tests;
