//! SQL databases through a connection: the `sql` and `postgres` ingest sources, `kind: sql` and SQL sensors, on
//! PostgreSQL, MySQL (and MariaDB) and SQLite.
//!
//! The connection's `conn_type` picks the database, as in Airflow's `SQLExecuteQueryOperator`: `postgres` (or
//! `postgresql`), `mysql` or `sqlite`. Each database's module maps Airflow's fields of its type to the driver's
//! options and says how its SQL quotes and casts ([`Driver`]); what they share is written once here:
//!
//! - `kind: sql` runs its statements in one transaction, logging the rows each affected; any error rolls all of them
//!   back and fails the task with the database's message.
//! - A source query becomes a frame typed by the query's result columns: integers `i64`, floating-point and decimal
//!   numbers `f64`, booleans `bool`, anything else text. PostgreSQL reads it with `COPY` ([`postgres`]); MySQL and
//!   SQLite row by row ([`rows`]).
//! - An incremental load pushes its watermark into the query: the query becomes
//!   `SELECT * FROM (query) AS source WHERE "column" > 'previous mark'`, quoted as the database quotes, so the
//!   database reads only the new rows (the mark is also applied after the read, like for every source).
//! - A SQL sensor's poke reads the first cell of the query's first row, cast to text by the database.

mod mysql;
mod postgres;
mod rows;
mod sqlite;

use std::time::Duration;

use futures::TryStreamExt;
use polars::prelude::*;
use sluice_core::connection::Connection;
use sluice_core::ops_spec::{QuerySource, SqlSpec};
use sqlx::mysql::MySql;
use sqlx::postgres::Postgres;
use sqlx::sqlite::Sqlite;
use sqlx::{Column, ConnectOptions, Connection as _, Executor, Statement, TypeInfo};

use crate::error::{OpsError, Result};
use crate::runtime::block_on;
use crate::task::NamedConnection;

/// A database that does not answer within this time fails the task instead of holding it until its timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The databases a connection may lead to, by Airflow's `conn_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

impl Dialect {
    fn of((conn_id, conn): NamedConnection<'_>) -> Result<Dialect> {
        match conn.conn_type.as_str() {
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            "mysql" => Ok(Dialect::MySql),
            "sqlite" => Ok(Dialect::Sqlite),
            other => Err(OpsError::Database {
                connection: conn_id.to_owned(),
                message: format!(
                    "conn_type {other:?} is not a SQL database Sluice reads; use postgres (or postgresql), mysql \
                     (MySQL and MariaDB) or sqlite"
                ),
            }),
        }
    }
}

/// An incremental load's filter: rows whose `column` is above `mark`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Above<'a> {
    pub column: &'a str,
    pub mark: &'a str,
}

/// Run `source.query` (with `above` pushed down) and return its rows.
pub(crate) fn read_query(
    source: &QuerySource,
    conn: NamedConnection<'_>,
    above: Option<Above<'_>>,
    log: &dyn Fn(&str),
) -> Result<DataFrame> {
    let make_frame = on_connection(conn, ReadQuery { query: &source.query, above })?;
    let df = make_frame()?;
    log(&format!("{} rows from connection {:?}", df.height(), conn.0));
    Ok(df)
}

/// A `postgres` source's check that its connection is one: other databases are read with `type: sql`.
pub(crate) fn expect_postgres(conn: NamedConnection<'_>) -> Result<()> {
    match Dialect::of(conn)? {
        Dialect::Postgres => Ok(()),
        Dialect::MySql | Dialect::Sqlite => Err(OpsError::Database {
            connection: conn.0.to_owned(),
            message: format!(
                "a `postgres` source reads PostgreSQL connections, and this one is {:?}: use `type: sql`",
                conn.1.conn_type
            ),
        }),
    }
}

/// Run a `kind: sql` task's statements in one transaction; the rows affected in all.
pub(crate) fn run_sql(spec: &SqlSpec, conn: &Connection, log: &dyn Fn(&str)) -> Result<u64> {
    let conn_id = spec.connection.as_str();
    let total = on_connection((conn_id, conn), Statements { sql: &spec.sql, log })?;
    log(&format!("committed on connection {conn_id:?}: {total} rows affected in all"));
    Ok(total)
}

/// The first cell of a query's first row, as text; `None` for no row or null (a SQL sensor's poke).
pub(crate) fn first_cell(conn: NamedConnection<'_>, query: &str) -> Result<Option<String>> {
    on_connection(conn, FirstCell { query })
}

/// A result column of a query, as the database describes it.
#[derive(Debug, Clone)]
struct ResultColumn {
    name: String,
    /// The driver's name of its type, e.g. `INT8` (PostgreSQL), `BIGINT` (MySQL), `INTEGER` (SQLite).
    type_name: String,
}

/// How a result column is typed in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    Int,
    Float,
    Bool,
    Text,
}

/// What makes the frame of a query's rows once they are read and the connection is closed: polars must not block
/// the connection's runtime.
type MakeFrame = Box<dyn FnOnce() -> Result<DataFrame>>;

/// What this module needs of a database beyond sqlx's common traits.
trait Driver: sqlx::Database {
    /// The type that `CAST(… AS type)` turns a value into text with.
    const TEXT_TYPE: &'static str;

    /// The character that quotes names: `"` in standard SQL, `` ` `` in MySQL's.
    const NAME_QUOTE: char;

    /// Airflow's fields of this connection type as the driver's options, or what is wrong with them.
    fn options(conn: &Connection) -> Result<<Self::Connection as sqlx::Connection>::Options, String>;

    /// The connection as something that runs queries.
    fn exec<'c>(db: &'c mut Self::Connection) -> impl Executor<'c, Database = Self>;

    fn rows_affected(done: &Self::QueryResult) -> u64;

    fn quote_literal(value: &str) -> String;

    /// The first cell of `row`, a text or null.
    fn first_text(row: &Self::Row) -> Result<Option<String>, sqlx::Error>;

    /// The rows of `query`, whose result columns are `columns`, to be made into a typed frame.
    async fn read(db: &mut Self::Connection, query: &str, columns: Vec<ResultColumn>) -> Result<MakeFrame, Failure>;
}

/// Why something done on a connection failed.
#[derive(Debug)]
enum Failure {
    /// The database's error, which the task's error gives with the connection's id.
    Database(sqlx::Error),
    Ops(OpsError),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Failure {
        Failure::Database(e)
    }
}

/// Something done on one connection, written once for every [`Driver`].
trait Work {
    type Output;

    async fn on<D: Driver>(self, db: &mut D::Connection) -> Result<Self::Output, Failure>;
}

/// Connects to `conn`'s database, does `work` and closes the connection.
fn on_connection<W: Work>(conn: NamedConnection<'_>, work: W) -> Result<W::Output> {
    match Dialect::of(conn)? {
        Dialect::Postgres => on_driver::<Postgres, W>(conn, work),
        Dialect::MySql => on_driver::<MySql, W>(conn, work),
        Dialect::Sqlite => on_driver::<Sqlite, W>(conn, work),
    }
}

fn on_driver<D: Driver, W: Work>((conn_id, conn): NamedConnection<'_>, work: W) -> Result<W::Output> {
    let done = block_on(async {
        let mut db = connect::<D>(conn_id, conn).await?;
        let output = work.on::<D>(&mut db).await;
        // Closed after a failure too, so that the server ends the session (and its transaction) at once.
        let closed = db.close().await;
        let output = output?;
        closed?;
        Ok::<_, Failure>(output)
    })?;
    done.map_err(|failure| match failure {
        Failure::Database(e) => OpsError::Database { connection: conn_id.to_owned(), message: e.to_string() },
        Failure::Ops(e) => e,
    })
}

async fn connect<D: Driver>(conn_id: &str, conn: &Connection) -> Result<D::Connection, Failure> {
    let failed = |message: String| Failure::Ops(OpsError::Database { connection: conn_id.to_owned(), message });
    let options = D::options(conn).map_err(failed)?;
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(failed(format!("cannot connect: {e}"))),
        Err(_) => Err(failed(format!("no answer from the database within {}s", CONNECT_TIMEOUT.as_secs()))),
    }
}

struct Statements<'a> {
    sql: &'a str,
    log: &'a dyn Fn(&str),
}

impl Work for Statements<'_> {
    type Output = u64;

    async fn on<D: Driver>(self, db: &mut D::Connection) -> Result<u64, Failure> {
        let mut tx = db.begin().await?;
        let mut total = 0;
        {
            let mut results = sqlx::raw_sql(self.sql).execute_many(D::exec(&mut *tx));
            let mut n = 0;
            while let Some(done) = results.try_next().await? {
                n += 1;
                let rows = D::rows_affected(&done);
                total += rows;
                (self.log)(&format!("statement {n}: {rows} rows affected"));
            }
        }
        tx.commit().await?;
        Ok(total)
    }
}

struct ReadQuery<'a> {
    query: &'a str,
    above: Option<Above<'a>>,
}

impl Work for ReadQuery<'_> {
    type Output = MakeFrame;

    async fn on<D: Driver>(self, db: &mut D::Connection) -> Result<MakeFrame, Failure> {
        let query = match self.above {
            Some(above) => pushed_down::<D>(self.query, above),
            None => trimmed(self.query).to_owned(),
        };
        let columns = result_columns::<D>(db, &query).await?;
        D::read(db, &query, columns).await
    }
}

struct FirstCell<'a> {
    query: &'a str,
}

impl Work for FirstCell<'_> {
    type Output = Option<String>;

    async fn on<D: Driver>(self, db: &mut D::Connection) -> Result<Option<String>, Failure> {
        let query = trimmed(self.query);
        let columns = result_columns::<D>(db, query).await?;
        let Some(first) = columns.first() else { return Ok(None) };
        // Cast in the database: the column may be of any type, and its text is what is judged.
        let sql = format!(
            "SELECT CAST({} AS {}) AS cell FROM ({query}) AS sensor LIMIT 1",
            quote_identifier::<D>(&first.name),
            D::TEXT_TYPE
        );
        let row = D::exec(db).fetch_optional(sqlx::raw_sql(&sql)).await?;
        Ok(row.map(|row| D::first_text(&row)).transpose()?.flatten())
    }
}

/// The result columns of `query`, from the database's description of it.
async fn result_columns<D: Driver>(db: &mut D::Connection, query: &str) -> Result<Vec<ResultColumn>, Failure> {
    let statement = D::exec(db).prepare(query).await?;
    Ok(statement
        .columns()
        .iter()
        .map(|c| ResultColumn { name: c.name().to_owned(), type_name: c.type_info().name().to_owned() })
        .collect())
}

/// The query without the trailing `;` that a subquery (or PostgreSQL's `COPY (…)`) would choke on.
fn trimmed(query: &str) -> &str {
    query.trim().trim_end_matches(';').trim_end()
}

fn pushed_down<D: Driver>(query: &str, above: Above<'_>) -> String {
    format!(
        "SELECT * FROM ({}) AS source WHERE {} > {}",
        trimmed(query),
        quote_identifier::<D>(above.column),
        D::quote_literal(above.mark)
    )
}

/// The options of a database server's connection (PostgreSQL, MySQL), whose setters sqlx names alike, from Airflow's
/// fields: `host` (default `localhost`), `port` (default `$port`), `login`, `password`, and the database in `schema`.
macro_rules! server_options {
    ($options:expr, $conn:expr, $port:expr) => {{
        let conn: &Connection = $conn;
        let mut options = $options.host(conn.host.as_deref().unwrap_or("localhost")).port(conn.port.unwrap_or($port));
        if let Some(login) = &conn.login {
            options = options.username(login);
        }
        if let Some(password) = &conn.password {
            options = options.password(password);
        }
        if let Some(database) = conn.schema.as_deref().filter(|s| !s.is_empty()) {
            options = options.database(database);
        }
        options
    }};
}
use server_options;

fn quote_identifier<D: Driver>(name: &str) -> String {
    let quote = D::NAME_QUOTE;
    format!("{quote}{}{quote}", name.replace(quote, &format!("{quote}{quote}")))
}

/// A text in standard SQL's quotes, without backslash escapes.
fn single_quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests;
