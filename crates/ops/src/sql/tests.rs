//! SQL sources, `kind: sql` and the sensor's first cell against real databases, each scenario on PostgreSQL, MySQL
//! (MariaDB) and SQLite: a fresh database per test — on the servers of `SLUICE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `SLUICE_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306`),
//! dropped afterwards — or a SQLite file in a scratch folder.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sluice_core::ops_spec::{IngestSpec, OpSpec, Source, first_cell_holds};
use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;

use super::*;
use crate::test_util::{TempDir, context};
use crate::{Lake, OpContext, run_ingest, run_op};

const DIALECTS: [Dialect; 3] = [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite];

fn postgres_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn mysql_url() -> String {
    std::env::var("SLUICE_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// What differs between the databases' SQL in these tests.
struct Spelling {
    int: &'static str,
    text: &'static str,
    decimal: &'static str,
    float: &'static str,
    boolean: &'static str,
    timestamp: &'static str,
    /// Part of the error for a `SELECT` from `missing_table`.
    no_table: &'static str,
    /// Part of the error for a `SELECT nope`.
    no_column: &'static str,
    quote_literal: fn(&str) -> String,
}

const POSTGRES: Spelling = Spelling {
    int: "int8",
    text: "text",
    decimal: "numeric",
    float: "float8",
    boolean: "bool",
    timestamp: "timestamp",
    no_table: "relation \"missing_table\" does not exist",
    no_column: "column \"nope\" does not exist",
    quote_literal: Postgres::quote_literal,
};

const MYSQL: Spelling = Spelling {
    int: "BIGINT",
    text: "VARCHAR(20)",
    decimal: "DECIMAL(10,2)",
    float: "DOUBLE",
    boolean: "BOOLEAN",
    timestamp: "DATETIME",
    no_table: "missing_table' doesn't exist",
    no_column: "Unknown column 'nope'",
    quote_literal: MySql::quote_literal,
};

const SQLITE: Spelling = Spelling {
    int: "INTEGER",
    text: "TEXT",
    decimal: "NUMERIC",
    float: "REAL",
    boolean: "BOOLEAN",
    timestamp: "DATETIME",
    no_table: "no such table: missing_table",
    no_column: "no such column: nope",
    quote_literal: Sqlite::quote_literal,
};

/// A fresh database, and the connection `wh` to it.
struct TestDb {
    dialect: Dialect,
    sql: &'static Spelling,
    conn: Connection,
    name: String,
    _dir: TempDir,
}

impl TestDb {
    fn new(dialect: Dialect) -> TestDb {
        eprintln!("on {dialect:?}");
        let name = format!("sluice_test_{}", uuid::Uuid::now_v7().simple());
        let dir = TempDir::new();
        let on_server = |url: String| Connection { schema: Some(name.clone()), ..Connection::parse(&url).unwrap() };
        let (sql, conn) = match dialect {
            Dialect::Postgres => {
                admin::<PgConnection>(&postgres_url(), &format!("CREATE DATABASE {name}"));
                (&POSTGRES, on_server(postgres_url()))
            }
            Dialect::MySql => {
                admin::<MySqlConnection>(&mysql_url(), &format!("CREATE DATABASE {name}"));
                (&MYSQL, on_server(mysql_url()))
            }
            Dialect::Sqlite => {
                let file = dir.path().join(format!("{name}.db")).display().to_string();
                (&SQLITE, Connection { conn_type: "sqlite".into(), host: Some(file), ..Connection::default() })
            }
        };
        TestDb { dialect, sql, conn, name, _dir: dir }
    }

    fn named(&self) -> NamedConnection<'_> {
        ("wh", &self.conn)
    }

    fn execute(&self, sql: &str) {
        run_sql(&SqlSpec { connection: "wh".into(), sql: sql.into() }, &self.conn, &ignore).unwrap();
    }

    fn count(&self, table: &str) -> i64 {
        first_cell(self.named(), &format!("SELECT COUNT(*) FROM {table}")).unwrap().unwrap().parse().unwrap()
    }

    fn connections(&self) -> BTreeMap<String, Connection> {
        BTreeMap::from([("wh".to_owned(), self.conn.clone())])
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self.dialect {
            Dialect::Postgres => {
                admin::<PgConnection>(&postgres_url(), &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            }
            Dialect::MySql => admin::<MySqlConnection>(&mysql_url(), &format!("DROP DATABASE IF EXISTS {}", self.name)),
            Dialect::Sqlite => {}
        }
    }
}

/// Runs `sql` on the server at `url`.
fn admin<C: sqlx::Connection>(url: &str, sql: &str)
where
    for<'c> &'c mut C: Executor<'c>,
{
    block_on(async {
        let mut db = C::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut db).await.unwrap();
    })
    .unwrap();
}

fn query(sql: &str) -> QuerySource {
    QuerySource { connection: "wh".into(), query: sql.into() }
}

fn ignore(_: &str) {}

#[test]
fn a_query_loads_typed_by_its_columns() {
    for dialect in DIALECTS {
        let db = TestDb::new(dialect);
        let Spelling { int, text, decimal, float, boolean, timestamp, .. } = db.sql;
        db.execute(&format!(
            "CREATE TABLE t (id {int}, code {text}, price {decimal}, ratio {float}, active {boolean}, at {timestamp},
                             note {text});
             INSERT INTO t VALUES (1, '007', 9.5, 0.25, TRUE, '2026-01-02 03:04:05', ''),
                                  (2, '010', NULL, NULL, FALSE, NULL, NULL),
                                  (3, 'a,\"b\"', 1, 1, NULL, '2026-01-03 00:00:00', 'multi\nline');"
        ));
        let df = read_query(&query("SELECT * FROM t ORDER BY id;\n"), db.named(), None, &ignore).unwrap();
        let dtypes: Vec<String> = df.dtypes().iter().map(ToString::to_string).collect();
        assert_eq!(dtypes, ["i64", "str", "f64", "f64", "bool", "str", "str"]);
        let text = |name: &str| {
            crate::frame::strings(&df, name).unwrap().iter().map(|v| v.map(str::to_owned)).collect::<Vec<_>>()
        };
        assert_eq!(text("code"), [Some("007".into()), Some("010".into()), Some("a,\"b\"".into())], "digits stay text");
        assert_eq!(text("note"), [Some(String::new()), None, Some("multi\nline".into())], "empty text is not missing");
        assert_eq!(text("active"), [Some("true".into()), Some("false".into()), None]);
        assert_eq!(text("at")[0].as_deref(), Some("2026-01-02 03:04:05"));
        let prices: Vec<Option<f64>> = df.column("price").unwrap().f64().unwrap().iter().collect();
        assert_eq!(prices, [Some(9.5), None, Some(1.0)]);

        let err = read_query(&query("SELECT nope FROM t"), db.named(), None, &ignore).unwrap_err().to_string();
        assert!(err.contains("connection \"wh\"") && err.contains(db.sql.no_column), "{err}");
    }
}

#[test]
fn an_incremental_load_reads_only_new_rows() {
    for dialect in DIALECTS {
        let db = TestDb::new(dialect);
        db.execute(&format!(
            "CREATE TABLE events (id {}, at {});
             INSERT INTO events VALUES (1, '2026-01-01 00:00:00'), (2, '2026-01-02 00:00:00'),
                                       (3, '2026-01-03 00:00:00');",
            db.sql.int, db.sql.timestamp
        ));
        let dir = TempDir::new();
        let lake = Lake::new(dir.path());
        let connections = db.connections();
        let lines = Mutex::new(Vec::new());
        let log = |line: &str| lines.lock().unwrap().push(line.to_owned());
        let load = |column: &str, previous: Option<&str>| {
            let spec = IngestSpec {
                source: Source::Sql(query("SELECT id, at FROM events")),
                outputs: vec!["lake://raw/events".into()],
                watermark: Some(column.into()),
            };
            let ctx = OpContext {
                previous_watermark: previous,
                connections: &connections,
                log: &log,
                ..context(&lake, dir.path())
            };
            let report = run_ingest(&spec, &ctx).unwrap();
            (report.rows, report.watermark.unwrap_or_default())
        };
        assert_eq!(load("id", None), (3, "3".into()));
        db.execute("INSERT INTO events VALUES (4, '2026-01-04 00:00:00'), (5, '2026-01-05 00:00:00');");
        assert_eq!(load("id", Some("3")), (2, "5".into()));
        assert_eq!(load("id", Some("5")), (0, "5".into()), "nothing new keeps the mark");
        assert_eq!(load("at", Some("2026-01-03 00:00:00")), (2, "2026-01-05 00:00:00".into()));
        let read: Vec<String> = lines.lock().unwrap().clone();
        assert_eq!(
            read,
            ["3 rows", "2 rows", "0 rows", "2 rows"].map(|n| format!("{n} from connection \"wh\"")),
            "the database read only the new rows"
        );
    }
}

#[test]
fn the_watermark_is_quoted_into_the_query() {
    let above = Above { column: "odd\"name", mark: "it's" };
    let standard = "SELECT * FROM (SELECT 1) AS source WHERE \"odd\"\"name\" > 'it''s'";
    assert_eq!(pushed_down::<Postgres>(" SELECT 1 ;; ", above), standard);
    assert_eq!(pushed_down::<Sqlite>(" SELECT 1 ;; ", above), standard);
    let above = Above { column: "odd`name", mark: "it's" };
    assert_eq!(
        pushed_down::<MySql>("SELECT 1;", above),
        "SELECT * FROM (SELECT 1) AS source WHERE `odd``name` > 'it''s'"
    );

    assert_eq!(Postgres::quote_literal("a\\'b"), "E'a\\\\''b'");
    assert_eq!(MySql::quote_literal("a\\'b"), "_utf8mb4 X'615c2762'");
    let sqlite: Vec<String> = ["42", "-7", "2.5", "007", "1e3", "2026-01-05", "a\\b"].map(Sqlite::quote_literal).into();
    assert_eq!(sqlite, ["42", "-7", "2.5", "'007'", "'1e3'", "'2026-01-05'", "'a\\b'"]);
}

#[test]
fn sql_statements_run_in_one_transaction() {
    for dialect in DIALECTS {
        let db = TestDb::new(dialect);
        let dir = TempDir::new();
        let lake = Lake::new(dir.path());
        let connections = db.connections();
        let lines = Mutex::new(Vec::new());
        let log = |line: &str| lines.lock().unwrap().push(line.to_owned());
        let ctx = OpContext { connections: &connections, log: &log, ..context(&lake, dir.path()) };
        let sql = |text: &str| OpSpec::Sql(SqlSpec { connection: "wh".into(), sql: text.into() });

        let statements = "CREATE TABLE s (n int); INSERT INTO s VALUES (1), (2); UPDATE s SET n = n + 1;";
        let out = run_op(&sql(statements), &ctx).unwrap();
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
        assert!(err.contains("connection \"wh\"") && err.contains(db.sql.no_table), "{err}");
        assert_eq!(db.count("s"), 2, "the failed statement rolled the first one back");
    }
}

#[test]
fn the_sensor_reads_the_first_cell_as_text() {
    for dialect in DIALECTS {
        let db = TestDb::new(dialect);
        db.execute(&format!(
            "CREATE TABLE flags (day {}, ready {}, n int);
             INSERT INTO flags VALUES ('a', TRUE, 0), ('b', FALSE, 2);",
            db.sql.text, db.sql.boolean
        ));
        let cell = |sql: &str| first_cell(db.named(), sql).unwrap();
        assert!(first_cell_holds(cell("SELECT ready FROM flags WHERE day = 'a'").as_deref()));
        assert!(!first_cell_holds(cell("SELECT ready FROM flags WHERE day = 'b'").as_deref()));
        assert_eq!(cell("SELECT ready FROM flags WHERE day = 'c'"), None, "no row");
        assert_eq!(cell("SELECT n FROM flags ORDER BY day;"), Some("0".into()), "the first row's cell");
        assert_eq!(cell("SELECT COUNT(*) AS n FROM flags"), Some("2".into()));
        assert_eq!(cell("SELECT NULL AS v"), None);
        // A literal as this module writes it reads back as the text it quoted.
        for text in ["it's", "a \\ path", "a\\'b"] {
            let sql = format!("SELECT {} AS v", (db.sql.quote_literal)(text));
            assert_eq!(cell(&sql).as_deref(), Some(text), "{sql}");
        }
    }
}

#[test]
fn a_wrong_database_names_the_connection() {
    for dialect in DIALECTS {
        let db = TestDb::new(dialect);
        let (wrong, expected) = match dialect {
            Dialect::Sqlite => {
                let host = Some("/sluice-no-such-folder/x.db".into());
                (Connection { host, ..db.conn.clone() }, "unable to open database file")
            }
            Dialect::Postgres | Dialect::MySql => (
                Connection { schema: Some("sluice_no_such_database".into()), ..db.conn.clone() },
                "sluice_no_such_database",
            ),
        };
        let err = read_query(&query("SELECT 1"), ("wh", &wrong), None, &ignore).unwrap_err().to_string();
        assert!(err.starts_with("connection \"wh\": cannot connect:") && err.contains(expected), "{err}");
    }
}

#[test]
fn other_connection_types_are_refused_with_the_supported_ones() {
    let oracle = Connection { conn_type: "oracle".into(), ..Connection::default() };
    let err = run_sql(&SqlSpec { connection: "ora".into(), sql: "SELECT 1".into() }, &oracle, &ignore).unwrap_err();
    assert_eq!(
        err.to_string(),
        "connection \"ora\": conn_type \"oracle\" is not a SQL database Sluice reads; use postgres (or postgresql), \
         mysql (MySQL and MariaDB) or sqlite"
    );

    let dir = TempDir::new();
    let lake = Lake::new(dir.path());
    let sqlite = Connection { conn_type: "sqlite".into(), ..Connection::default() };
    let connections = BTreeMap::from([("lite".to_owned(), sqlite.clone())]);
    let ctx = OpContext { connections: &connections, ..context(&lake, dir.path()) };
    let spec = IngestSpec {
        source: Source::Postgres(QuerySource { connection: "lite".into(), query: "SELECT 1".into() }),
        outputs: vec!["lake://raw/one".into()],
        watermark: None,
    };
    let err = run_ingest(&spec, &ctx).unwrap_err();
    assert_eq!(
        err.to_string(),
        "connection \"lite\": a `postgres` source reads PostgreSQL connections, and this one is \"sqlite\": use \
         `type: sql`"
    );
    let err = first_cell(("lite", &sqlite), "SELECT 1").unwrap_err();
    assert_eq!(err.to_string(), "connection \"lite\": a sqlite connection needs the database file's path in `host`");

    let err = run_op(&OpSpec::Sql(SqlSpec { connection: "other".into(), sql: "SELECT 1".into() }), &ctx).unwrap_err();
    assert_eq!(err.to_string(), "connection \"other\" is not available to this task");
}
