//! The PostgreSQL source and `kind: sql` against a real PostgreSQL: a fresh database per test, found from
//! `SLUICE_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`) and dropped afterwards.

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::Url;
use sluice_core::ops_spec::{IngestSpec, OpSpec, Source};
use sqlx::{Connection as _, Row};

use super::*;
use crate::test_util::{TempDir, context};
use crate::{Lake, OpContext, run_ingest, run_op};

fn admin_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database and the connection to it.
struct TestDb {
    name: String,
    conn: Connection,
}

impl TestDb {
    fn new() -> TestDb {
        let name = format!("sluice_test_{}", uuid::Uuid::now_v7().simple());
        admin(&format!("CREATE DATABASE {name}"));
        let url = Url::parse(&admin_url()).unwrap();
        let conn = Connection {
            conn_type: "postgres".into(),
            host: url.host_str().map(str::to_owned),
            port: url.port(),
            login: Some(url.username().to_owned()).filter(|u| !u.is_empty()),
            password: url.password().map(str::to_owned),
            schema: Some(name.clone()),
            extra: None,
        };
        TestDb { name, conn }
    }

    fn execute(&self, sql: &str) {
        let options = connect_options("test", &self.conn).unwrap();
        block_on(async {
            let mut db = PgConnection::connect_with(&options).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut db).await.unwrap();
        })
        .unwrap();
    }

    fn count(&self, table: &str) -> i64 {
        let options = connect_options("test", &self.conn).unwrap();
        block_on(async {
            let mut db = PgConnection::connect_with(&options).await.unwrap();
            let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}")).fetch_one(&mut db).await.unwrap();
            row.get::<i64, _>("n")
        })
        .unwrap()
    }

    fn connections(&self) -> BTreeMap<String, Connection> {
        BTreeMap::from([("wh".to_owned(), self.conn.clone())])
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn admin(sql: &str) {
    block_on(async {
        let mut db = PgConnection::connect(&admin_url()).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut db).await.unwrap();
    })
    .unwrap();
}

fn source(query: &str) -> PostgresSource {
    PostgresSource { connection: "wh".into(), query: query.into() }
}

fn ignore(_: &str) {}

#[test]
fn a_query_loads_typed_by_its_columns() {
    let db = TestDb::new();
    db.execute(
        "CREATE TABLE t (id int8, code text, price numeric, ratio float8, active bool, at timestamptz, note text);
         INSERT INTO t VALUES (1, '007', 9.5, 0.25, true, '2026-01-02 03:04:05+00', ''),
                              (2, '010', NULL, NULL, false, NULL, NULL),
                              (3, 'a,\"b\"', 1, 1, NULL, '2026-01-03 00:00:00+00', 'multi\nline');",
    );
    let df = read_postgres(&source("SELECT * FROM t ORDER BY id;\n"), ("wh", &db.conn), None, &ignore).unwrap();
    let dtypes: Vec<String> = df.dtypes().iter().map(ToString::to_string).collect();
    assert_eq!(dtypes, ["i64", "str", "f64", "f64", "bool", "str", "str"]);
    let text =
        |name: &str| crate::frame::strings(&df, name).unwrap().iter().map(|v| v.map(str::to_owned)).collect::<Vec<_>>();
    assert_eq!(text("code"), [Some("007".into()), Some("010".into()), Some("a,\"b\"".into())], "digits stay text");
    assert_eq!(text("note"), [Some(String::new()), None, Some("multi\nline".into())], "empty text is not missing");
    assert_eq!(text("active"), [Some("true".into()), Some("false".into()), None]);
    assert_eq!(df.column("price").unwrap().null_count(), 1);
    assert!(text("at")[0].as_deref().is_some_and(|t| t.starts_with("2026-01-02 03:04:05")), "{:?}", text("at"));

    let err = read_postgres(&source("SELECT nope FROM t"), ("wh", &db.conn), None, &ignore).unwrap_err();
    assert!(
        err.to_string().contains("connection \"wh\"") && err.to_string().contains("\"nope\" does not exist"),
        "{err}"
    );
}

#[test]
fn an_incremental_load_reads_only_new_rows() {
    let db = TestDb::new();
    db.execute(
        "CREATE TABLE events (id int8, at timestamptz);
         INSERT INTO events VALUES (1, '2026-01-01 00:00:00+00'), (2, '2026-01-02 00:00:00+00'), (3, '2026-01-03 00:00:00+00');",
    );
    let dir = TempDir::new();
    let lake = Lake::new(dir.path());
    let connections = db.connections();
    let load = |column: &str, previous: Option<&str>| {
        let spec = IngestSpec {
            source: Source::Postgres(source("SELECT id, at FROM events")),
            outputs: vec!["lake://raw/events".into()],
            watermark: Some(column.into()),
        };
        let ctx = OpContext { previous_watermark: previous, connections: &connections, ..context(&lake, dir.path()) };
        let report = run_ingest(&spec, &ctx).unwrap();
        (report.rows, report.watermark.unwrap_or_default())
    };
    assert_eq!(load("id", None), (3, "3".into()));
    db.execute("INSERT INTO events VALUES (4, '2026-01-04 00:00:00+00'), (5, '2026-01-05 00:00:00+00');");
    assert_eq!(load("id", Some("3")), (2, "5".into()));
    assert_eq!(load("id", Some("5")), (0, "5".into()), "nothing new keeps the mark");
    let (rows, mark) = load("at", Some("2026-01-03 00:00:00+00"));
    assert_eq!(rows, 2);
    assert!(mark.starts_with("2026-01-05 00:00:00"), "{mark}");
}

#[test]
fn the_watermark_is_quoted_into_the_query() {
    let above = Above { column: "odd\"name", mark: "it's" };
    assert_eq!(
        pushed_down(" SELECT 1 ;; ", above),
        "SELECT * FROM (SELECT 1) AS source WHERE \"odd\"\"name\" > 'it''s'"
    );
    assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
}

#[test]
fn sql_statements_run_in_one_transaction() {
    let db = TestDb::new();
    let dir = TempDir::new();
    let lake = Lake::new(dir.path());
    let connections = db.connections();
    let lines = Mutex::new(Vec::new());
    let log = |line: &str| lines.lock().unwrap().push(line.to_owned());
    let ctx = OpContext { connections: &connections, log: &log, ..context(&lake, dir.path()) };
    let sql = |text: &str| OpSpec::Sql(SqlSpec { connection: "wh".into(), sql: text.into() });

    let out =
        run_op(&sql("CREATE TABLE s (n int); INSERT INTO s VALUES (1), (2); UPDATE s SET n = n + 1;"), &ctx).unwrap();
    assert!(out.assets.is_empty());
    assert_eq!(
        lines.lock().unwrap().clone(),
        [
            "statement 1: 0 rows affected",
            "statement 2: 2 rows affected",
            "statement 3: 2 rows affected",
            "committed on connection \"wh\": 4 rows affected in all"
        ]
    );

    let err = run_op(&sql("INSERT INTO s VALUES (3); SELECT * FROM missing_table"), &ctx).unwrap_err().to_string();
    assert!(err.contains("connection \"wh\"") && err.contains("relation \"missing_table\" does not exist"), "{err}");
    assert_eq!(db.count("s"), 2, "the failed statement rolled the first one back");

    let err = run_op(&OpSpec::Sql(SqlSpec { connection: "other".into(), sql: "SELECT 1".into() }), &ctx).unwrap_err();
    assert_eq!(err.to_string(), "connection \"other\" is not available to this task");
}

#[test]
fn a_wrong_database_names_the_connection() {
    let db = TestDb::new();
    let wrong = Connection { schema: Some("sluice_no_such_database".into()), ..db.conn.clone() };
    let err = read_postgres(&source("SELECT 1"), ("wh", &wrong), None, &ignore).unwrap_err().to_string();
    assert!(err.starts_with("connection \"wh\": cannot connect:") && err.contains("sluice_no_such_database"), "{err}");
}
