//! PostgreSQL: Airflow's `postgres` connection, and queries read with `COPY (query) TO STDOUT (FORMAT csv,
//! HEADER)` — PostgreSQL's fastest way out, and polars' fastest way in — typed from the query's result columns, so
//! that a text column of digits stays text: integers become `i64`, `real`/`double precision`/`numeric` `f64`,
//! `boolean` `bool`, and everything else (dates and timestamps included, in PostgreSQL's ISO output) text.

use std::io::Cursor;
use std::str::FromStr;

use futures::TryStreamExt;
use polars::prelude::*;
use sluice_core::connection::Connection;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgQueryResult, PgRow, PgSslMode, Postgres};

use super::{ColumnKind, Driver, Failure, MakeFrame, ResultColumn, server_options, single_quoted};

impl Driver for Postgres {
    const TEXT_TYPE: &'static str = "TEXT";
    const NAME_QUOTE: char = '"';

    /// Airflow's postgres connection: `host`, `port`, `login`, `password`, and the database in `schema`;
    /// `extra.sslmode` as libpq spells it.
    fn options(conn: &Connection) -> Result<PgConnectOptions, String> {
        let mut options =
            server_options!(PgConnectOptions::new_without_pgpass(), conn, 5432).application_name("sluice");
        if let Some(mode) = conn.extra_str("sslmode") {
            let mode = PgSslMode::from_str(&mode).map_err(|e| format!("extra.sslmode {mode:?}: {e}"))?;
            options = options.ssl_mode(mode);
        }
        Ok(options)
    }

    fn exec<'c>(db: &'c mut PgConnection) -> impl sqlx::Executor<'c, Database = Postgres> {
        db
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    /// PostgreSQL's `quote_literal`: quotes doubled, and an `E''` string when there are backslashes (whatever
    /// `standard_conforming_strings` says).
    fn quote_literal(value: &str) -> String {
        if value.contains('\\') {
            format!("E{}", single_quoted(&value.replace('\\', "\\\\")))
        } else {
            single_quoted(value)
        }
    }

    fn first_text(row: &PgRow) -> Result<Option<String>, sqlx::Error> {
        row.try_get(0)
    }

    async fn read(db: &mut PgConnection, query: &str, columns: Vec<ResultColumn>) -> Result<MakeFrame, Failure> {
        let copy = format!("COPY ({query}) TO STDOUT (FORMAT csv, HEADER)");
        let chunks: Vec<_> = db.copy_out_raw(&copy).await?.try_collect().await?;
        Ok(Box::new(move || Ok(typed_frame(&columns, chunks.concat())?)))
    }
}

fn kind(type_name: &str) -> ColumnKind {
    match type_name {
        "INT2" | "INT4" | "INT8" | "OID" => ColumnKind::Int,
        "FLOAT4" | "FLOAT8" | "NUMERIC" => ColumnKind::Float,
        "BOOL" => ColumnKind::Bool,
        _ => ColumnKind::Text,
    }
}

/// The CSV that `COPY` wrote, typed by the query's columns.
fn typed_frame(columns: &[ResultColumn], csv: Vec<u8>) -> PolarsResult<DataFrame> {
    // Read everything as text first: CSV type inference would turn a text column of digits into numbers.
    let schema: Schema = columns.iter().map(|c| Field::new(c.name.as_str().into(), DataType::String)).collect();
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_schema(Some(Arc::new(schema)))
        .into_reader_with_file_handle(Cursor::new(csv))
        .finish()?;
    let typed: Vec<Expr> = columns
        .iter()
        .map(|column| {
            let c = col(column.name.as_str());
            match kind(&column.type_name) {
                ColumnKind::Int => c.strict_cast(DataType::Int64),
                ColumnKind::Float => c.strict_cast(DataType::Float64),
                ColumnKind::Bool => c.eq(lit("t")),
                ColumnKind::Text => c,
            }
        })
        .collect();
    df.lazy().select(typed).collect()
}
