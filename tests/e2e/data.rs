//! Data tasks end to end: the penguins ETL runs ingest → quality → transform on real worker processes against
//! PostgreSQL, records its asset events and quality report, and triggers the DAG scheduled on its output asset.
//! Bad input fails the task with a clear error in its log and leaves nothing in the lake. Remote sources: an HTTP
//! API served by the test, retried on a server error and not on bad credentials; a PostgreSQL connection loaded
//! incrementally by its watermark, and `kind: sql` in the same warehouse; `kind: sql` on MySQL (MariaDB) and an
//! ingest from a SQLite file.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Json, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};
use sluice_tests::{Backend, ObjectStore, Sluice, TestDb};
use sqlx::Connection;

const ETL: &str = include_str!("../../dags/penguins_etl.yaml");
const CONSUMER: &str = include_str!("../../dags/penguins_features_consumer.yaml");
const PENGUINS: &str = include_str!("../../dags/data/penguins.csv");

/// A server and one worker, with `dags` and the penguins data in the DAGs folder.
async fn start(dags: &[(&str, &str)]) -> Sluice {
    let mut sluice = Sluice::new(Backend::Postgres, dags).await;
    sluice.add_data("penguins.csv", PENGUINS);
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "2"]);
    sluice
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

async fn events(sluice: &Sluice, query: &str) -> Vec<Value> {
    let (status, body) = sluice.get(&format!("/assets/events?{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["asset_events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn penguins_etl_records_assets_and_triggers_its_consumer() {
    let sluice = start(&[("penguins_etl.yaml", ETL), ("penguins_features_consumer.yaml", CONSUMER)]).await;
    sluice.wait_dag("penguins_features_consumer").await;
    let run_id = sluice.trigger("penguins_etl", json!({})).await;
    let run = sluice.wait_run_done("penguins_etl", &run_id, Duration::from_secs(120)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());

    // One event per written asset, with the row count, schema and hash of what was written.
    let written = events(&sluice, "source_dag_id=penguins_etl").await;
    let by_uri = |uri: &str| written.iter().find(|e| e["uri"] == uri).unwrap_or_else(|| panic!("{written:?}")).clone();
    let raw = by_uri("lake://raw/penguins");
    assert_eq!((raw["row_count"].as_i64(), raw["source_task_id"].as_str()), (Some(344), Some("ingest")));
    assert_eq!(raw["source_run_id"], run_id.as_str());
    let raw_columns: Vec<&str> =
        raw["schema"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(raw_columns.len(), 8, "{raw_columns:?}");
    assert!(raw_columns.contains(&"sex"), "{raw_columns:?}");
    assert_eq!(raw["content_hash"].as_str().map(str::len), Some(64));
    let features = by_uri("lake://features/penguins");
    assert_eq!(features["row_count"], 344);
    let feature_columns = features["schema"].to_string();
    for column in ["species_Adelie", "island_Biscoe", "sex_female", "body_mass_g"] {
        assert!(feature_columns.contains(column), "{feature_columns}");
    }
    assert!(!feature_columns.contains("\"species\""), "one-hot drops the source column: {feature_columns}");
    assert_eq!(written.len(), 2, "{written:?}");

    // The quality report has the real missing values: a warning, so the run went on.
    let (status, report) =
        sluice.get(&format!("/dags/penguins_etl/dagRuns/{run_id}/taskInstances/quality/tries/1/quality")).await;
    assert_eq!(status, 200, "{report}");
    let report = &report["reports"][0];
    assert_eq!((report["uri"].as_str(), report["status"].as_str()), (Some("lake://raw/penguins"), Some("warn")));
    assert_eq!(report["rows"], 344);
    let missing = report["results"].as_array().unwrap().iter().find(|r| r["check"] == "max_missing_rate").unwrap();
    assert_eq!((missing["column"].as_str(), missing["passed"].as_bool()), (Some("sex"), Some(false)), "{missing}");
    let rate = missing["observed"].as_f64().unwrap();
    assert!((rate - 11.0 / 344.0).abs() < 1e-9, "sex is missing in 11 of 344 rows: {rate}");
    let log = sluice.log("penguins_etl", &run_id, "quality", 1).await;
    assert!(log.contains("WARN max_missing_rate on sex"), "{log}");

    // The catalog shows the raw asset with its quality status, and who produces and consumes the features.
    let (_, assets) = sluice.get("/assets").await;
    let raw_asset = assets["assets"].as_array().unwrap().iter().find(|a| a["uri"] == "lake://raw/penguins").unwrap();
    assert_eq!(raw_asset["quality_status"], "warn", "{raw_asset}");
    assert_eq!(raw_asset["owner"], "data-team");
    // The report behind that status, found from the asset: the quality task's try wrote it, not the producer's.
    let (status, judged) = sluice.get(&format!("/assets/{}/quality", raw_asset["id"])).await;
    assert_eq!(status, 200, "{judged}");
    assert_eq!((judged["task_id"].as_str(), judged["try_number"].as_i64()), (Some("quality"), Some(1)), "{judged}");
    assert_eq!(judged["dag_run_id"], run_id.as_str());
    assert_eq!((judged["report"]["status"].as_str(), judged["report"]["rows"].as_i64()), (Some("warn"), Some(344)));
    let feature_id = features["asset_id"].as_i64().unwrap();
    let (_, asset) = sluice.get(&format!("/assets/{feature_id}")).await;
    assert_eq!(asset["producing_tasks"], json!([{"dag_id": "penguins_etl", "task_id": "features"}]), "{asset}");
    assert_eq!(asset["scheduled_dags"], json!([{"dag_id": "penguins_features_consumer"}]), "{asset}");

    // The features asset triggered its consumer, once.
    let consumer = sluice
        .eventually("the consumer's asset-triggered run", Duration::from_secs(60), || async {
            let (_, runs) = sluice.get("/dags/penguins_features_consumer/dagRuns").await;
            runs["dag_runs"].as_array().and_then(|r| r.first().cloned())
        })
        .await;
    assert_eq!(consumer["run_type"], "asset_triggered", "{consumer}");
    let consumer_run = consumer["dag_run_id"].as_str().unwrap();
    let done = sluice.wait_run_done("penguins_features_consumer", consumer_run, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "success", "{done}\n{}", sluice.all_output());
    let (_, runs) = sluice.get("/dags/penguins_features_consumer/dagRuns").await;
    assert_eq!(runs["total_entries"], 1, "{runs}");

    // Lineage crosses the two DAGs.
    let (status, lineage) = sluice.get("/assets/lineage?uri=lake://features/penguins").await;
    assert_eq!(status, 200, "{lineage}");
    let upstream = lineage["upstream"].to_string();
    assert!(upstream.contains("\"ingest\"") && upstream.contains("lake://raw/penguins"), "{lineage}");
    assert!(lineage["downstream"].to_string().contains("ready_for_training"), "{lineage}");

    // The same from the command line.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(sluice_tests::sluice_bin())
            .args(args)
            .args(["--server", &sluice.url])
            .env("SLUICE_TOKEN", sluice.token.as_deref().unwrap_or_default())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let lineage = cli(&["assets", "lineage", "lake://features/penguins"]);
    assert!(lineage.contains("penguins_etl.ingest -> lake://raw/penguins"), "{lineage}");
    assert!(lineage.contains("penguins_features_consumer.ready_for_training"), "{lineage}");
    let listed = cli(&["assets", "list"]);
    let raw_line = listed.lines().find(|l| l.starts_with("lake://raw/penguins"));
    assert!(raw_line.is_some_and(|l| l.contains(" 344 ") && l.contains("warn")), "{listed}");
}

/// A DAG of one ingest task, reading the CSV file at `path` (in the DAGs folder) into `uri`.
fn ingest_only(dag_id: &str, path: &str, uri: &str) -> String {
    format!(
        "dag_id: {dag_id}\nis_paused_upon_creation: false\ntasks:\n  - id: ingest\n    kind: ingest\n    \
         source: {{type: csv, path: {path}}}\n    outputs: ['{uri}']\n"
    )
}

/// Reads the penguins data, but expects `bill_length` where upstream now writes `bill_length_mm`.
const DRIFT: &str = "dag_id: drift
is_paused_upon_creation: false
tasks:
  - id: ingest
    kind: ingest
    source: {type: csv, path: data/penguins.csv}
    outputs: ['lake://raw/drift']
  - id: features
    kind: transform
    depends_on: [ingest]
    inputs: ['lake://raw/drift']
    outputs: ['lake://features/drift']
    steps:
      - fill_missing: {columns: [bill_length], strategy: median}
";

#[tokio::test]
async fn bad_input_fails_the_task_clearly_and_writes_nothing() {
    let missing_file = ingest_only("missing_file", "data/no_such_file.csv", "lake://raw/missing");
    let malformed = ingest_only("malformed", "data/malformed.csv", "lake://raw/malformed");
    let sluice =
        start(&[("missing_file.yaml", &missing_file), ("drift.yaml", DRIFT), ("malformed.yaml", &malformed)]).await;

    let run_id = sluice.trigger("missing_file", json!({})).await;
    let run = sluice.wait_run_done("missing_file", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed", "{run}");
    let log = sluice.log("missing_file", &run_id, "ingest", 1).await;
    assert!(log.contains("input file") && log.contains("no_such_file.csv") && log.contains("does not exist"), "{log}");

    let run_id = sluice.trigger("drift", json!({})).await;
    let run = sluice.wait_run_done("drift", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed", "{run}");
    let states = sluice.task_states("drift", &run_id).await;
    assert_eq!((states["ingest"].as_str(), states["features"].as_str()), ("success", "failed"));
    let log = sluice.log("drift", &run_id, "features", 1).await;
    assert!(log.contains("column \"bill_length\" not found") && log.contains("bill_length_mm"), "{log}");

    // The penguins data with a stray comma on line 100: one field more than the header.
    let mut lines: Vec<String> = PENGUINS.lines().map(str::to_owned).collect();
    lines[99].push_str(",extra");
    std::fs::write(sluice.dags.path().join("data/malformed.csv"), lines.join("\n") + "\n").unwrap();
    let run_id = sluice.trigger("malformed", json!({})).await;
    let run = sluice.wait_run_done("malformed", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed", "{run}");
    let log = sluice.log("malformed", &run_id, "ingest", 1).await;
    assert!(log.contains("malformed.csv: line 100:"), "{log}");

    // Only the successful ingest wrote to the lake and has an event.
    let files = files_under(sluice.lake.path());
    assert!(files.iter().all(|f| f.starts_with("raw/drift/")), "{files:?}");
    assert_eq!(files.len(), 1, "{files:?}");
    let recorded: Vec<String> =
        events(&sluice, "").await.iter().map(|e| e["uri"].as_str().unwrap().to_owned()).collect();
    assert_eq!(recorded, ["lake://raw/drift"]);
}

/// A JSON API for the HTTP source: `/orders` answers 401 unless it gets the right bearer token, and with the right
/// one fails once with 500 before answering with two records.
#[derive(Default)]
struct ShopApi {
    authorized: AtomicUsize,
    unauthorized: AtomicUsize,
}

const GOOD_TOKEN: &str = "good-token-1234";

async fn orders(State(api): State<Arc<ShopApi>>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let bearer = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {GOOD_TOKEN}")) {
        api.unauthorized.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::UNAUTHORIZED, Json(json!({"detail": "bad token"})));
    }
    if api.authorized.fetch_add(1, Ordering::SeqCst) == 0 {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"detail": "database is waking up"})));
    }
    (StatusCode::OK, Json(json!({"data": [{"id": 1, "amount": 9.5}, {"id": 2, "amount": 3.25}]})))
}

/// Serves [`ShopApi`] on a free port, for as long as the test's runtime runs; its base URL.
async fn start_shop_api(api: Arc<ShopApi>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/orders", get(orders)).with_state(api);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn api_dag(dag_id: &str, connection: &str) -> String {
    format!(
        "dag_id: {dag_id}
is_paused_upon_creation: false
tasks:
  - id: orders
    kind: ingest
    source: {{type: http, url: /orders, connection: {connection}, records: data}}
    outputs: ['lake://raw/{dag_id}']
"
    )
}

async fn create_connection(sluice: &Sluice, body: Value) {
    let (status, created) = sluice.post("/connections", body).await;
    assert_eq!(status, 201, "{created}");
}

/// Runs a DAG once to its end; the run's state and the first try of `task_id`, with its log.
async fn run_once(sluice: &Sluice, dag_id: &str, task_id: &str) -> (String, Value, String) {
    let run_id = sluice.trigger(dag_id, json!({})).await;
    let run = sluice.wait_run_done(dag_id, &run_id, Duration::from_secs(60)).await;
    let tries = sluice.tries(dag_id, &run_id, task_id).await;
    assert_eq!(tries.len(), 1, "{tries:?}");
    let log = sluice.log(dag_id, &run_id, task_id, 1).await;
    (run["state"].as_str().unwrap().to_owned(), tries[0].clone(), log)
}

#[tokio::test]
async fn http_source_retries_server_errors_and_stops_at_bad_credentials() {
    let api = Arc::new(ShopApi::default());
    let api_url = start_shop_api(Arc::clone(&api)).await;
    let sluice = start(&[
        ("shop.yaml", &api_dag("shop", "shop_api")),
        ("shop_bad.yaml", &api_dag("shop_bad", "shop_api_bad")),
        ("shop_nowhere.yaml", &api_dag("shop_nowhere", "no_such_connection")),
    ])
    .await;
    create_connection(
        &sluice,
        json!({"connection_id": "shop_api", "conn_type": "http", "host": api_url, "password": GOOD_TOKEN}),
    )
    .await;
    create_connection(
        &sluice,
        json!({"connection_id": "shop_api_bad", "conn_type": "http", "host": api_url, "password": "expired"}),
    )
    .await;

    let (state, try_, log) = run_once(&sluice, "shop", "orders").await;
    assert_eq!(state, "success", "{try_}\n{log}");
    assert!(log.contains(&format!("HTTP 500 Internal Server Error from {api_url}/orders: retrying in 1.0s")), "{log}");
    assert!(log.contains("wrote 2 rows to lake://raw/shop"), "{log}");
    assert_eq!(api.authorized.load(Ordering::SeqCst), 2);
    let written = events(&sluice, "source_dag_id=shop").await;
    assert_eq!(written[0]["row_count"], 2, "{written:?}");
    // The token reaches the API, and nothing a user can read.
    assert!(!log.contains(GOOD_TOKEN) && !try_.to_string().contains(GOOD_TOKEN), "{try_}\n{log}");

    let (state, try_, log) = run_once(&sluice, "shop_bad", "orders").await;
    assert_eq!(state, "failed", "{try_}");
    let expected =
        format!("HTTP 401 Unauthorized from {api_url}/orders: check the credentials of connection \"shop_api_bad\"");
    assert!(log.contains(&expected), "{log}");
    assert!(!log.contains("retrying"), "{log}");
    assert_eq!(api.unauthorized.load(Ordering::SeqCst), 1, "a 401 is not retried");

    let (state, try_, _) = run_once(&sluice, "shop_nowhere", "orders").await;
    assert_eq!(state, "failed", "{try_}");
    let error = try_["error"].as_str().unwrap_or_default();
    assert!(error.contains("connection \"no_such_connection\" does not exist"), "{try_}");
}

const WAREHOUSE: &str = "dag_id: warehouse
is_paused_upon_creation: false
tasks:
  - id: load
    kind: ingest
    source: {type: postgres, connection: warehouse, query: 'SELECT id, amount FROM orders ORDER BY id'}
    outputs: ['lake://raw/warehouse_orders']
    watermark: id
  - id: totals
    kind: sql
    depends_on: [load]
    connection: warehouse
    sql: |
      DELETE FROM order_totals WHERE run_id = '{{ run_id }}';
      INSERT INTO order_totals SELECT '{{ run_id }}', COUNT(*), SUM(amount) FROM orders;
";

const WAREHOUSE_BROKEN: &str = "dag_id: warehouse_broken
is_paused_upon_creation: false
tasks:
  - id: totals
    kind: sql
    connection: warehouse
    sql: 'INSERT INTO order_totals VALUES (1, 1, 1); SELECT * FROM no_such_table'
";

#[tokio::test]
async fn postgres_ingest_loads_incrementally_and_sql_runs_in_the_warehouse() {
    let warehouse = TestDb::new(Backend::Postgres).await;
    let mut db = sqlx::PgConnection::connect(&warehouse.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE orders (id int8 PRIMARY KEY, amount numeric);
         CREATE TABLE order_totals (run_id text, orders int8, total numeric);
         INSERT INTO orders VALUES (1, 10), (2, 20), (3, 30);",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let sluice = start(&[("warehouse.yaml", WAREHOUSE), ("warehouse_broken.yaml", WAREHOUSE_BROKEN)]).await;
    let url = reqwest::Url::parse(&warehouse.url).unwrap();
    create_connection(
        &sluice,
        json!({
            "connection_id": "warehouse", "conn_type": "postgres", "host": url.host_str(), "port": url.port(),
            "login": url.username(), "password": url.password(), "schema": url.path().trim_start_matches('/')
        }),
    )
    .await;

    let (state, try_, log) = run_once(&sluice, "warehouse", "load").await;
    assert_eq!(state, "success", "{try_}\n{log}\n{}", sluice.all_output());
    assert!(log.contains("no previous mark, loading every row") && log.contains("wrote 3 rows"), "{log}");
    let newest = &events(&sluice, "source_dag_id=warehouse").await[0];
    assert_eq!((newest["row_count"].as_i64(), newest["watermark"].as_str()), (Some(3), Some("3")), "{newest}");
    let first_run = newest["source_run_id"].as_str().unwrap().to_owned();
    let log = sluice.log("warehouse", &first_run, "totals", 1).await;
    assert!(log.contains("statement 2: 1 rows affected"), "{log}");

    sqlx::raw_sql("INSERT INTO orders VALUES (4, 40), (5, 50)").execute(&mut db).await.unwrap();
    let (state, try_, log) = run_once(&sluice, "warehouse", "load").await;
    assert_eq!(state, "success", "{try_}\n{log}");
    assert!(log.contains("rows with id above 3") && log.contains("wrote 2 rows"), "{log}");
    let newest = &events(&sluice, "source_dag_id=warehouse").await[0];
    assert_eq!((newest["row_count"].as_i64(), newest["watermark"].as_str()), (Some(2), Some("5")), "{newest}");
    let totals: Vec<(i64, f64)> = sqlx::query_as("SELECT orders, total::float8 FROM order_totals ORDER BY orders")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(totals, [(3, 60.0), (5, 150.0)]);

    let (state, _, log) = run_once(&sluice, "warehouse_broken", "totals").await;
    assert_eq!(state, "failed");
    assert!(log.contains("relation \"no_such_table\" does not exist"), "{log}");
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_totals").fetch_one(&mut db).await.unwrap();
    assert_eq!(kept, 2, "the failed task's insert was rolled back");
}

/// A `sql` task on a MySQL connection after an ingest from a SQLite file.
const OTHER_DATABASES: &str = "dag_id: other_databases
is_paused_upon_creation: false
tasks:
  - {id: load, kind: ingest, source: {type: sql, connection: shop_file, query: 'SELECT * FROM products ORDER BY id'},
     outputs: ['lake://raw/products']}
  - id: record
    kind: sql
    depends_on: [load]
    connection: shop_mysql
    sql: |
      CREATE TABLE IF NOT EXISTS loads (run_id VARCHAR(250) PRIMARY KEY, loaded_at DATETIME);
      INSERT INTO loads VALUES ('{{ run_id }}', NOW());
";

#[tokio::test]
async fn sql_runs_on_mysql_and_ingest_reads_a_sqlite_file() {
    let shop = tempfile::tempdir().unwrap();
    let file = shop.path().join("shop.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&file).create_if_missing(true);
    let mut lite = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL);
         INSERT INTO products VALUES (1, 'tea', 2.5), (2, 'cake', NULL), (3, NULL, 4);",
    )
    .execute(&mut lite)
    .await
    .unwrap();
    lite.close().await.unwrap();
    let mysql = TestDb::mysql().await;
    let sluice = start(&[("other_databases.yaml", OTHER_DATABASES)]).await;
    create_connection(
        &sluice,
        json!({"connection_id": "shop_file", "conn_type": "sqlite", "host": file.display().to_string()}),
    )
    .await;
    let url = reqwest::Url::parse(&mysql.url).unwrap();
    create_connection(
        &sluice,
        json!({
            "connection_id": "shop_mysql", "conn_type": "mysql", "host": url.host_str(), "port": url.port(),
            "login": url.username(), "schema": url.path().trim_start_matches('/')
        }),
    )
    .await;

    let run_id = sluice.trigger("other_databases", json!({})).await;
    let run = sluice.wait_run_done("other_databases", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let written = events(&sluice, "source_dag_id=other_databases").await;
    assert_eq!(written[0]["row_count"], 3, "{written:?}");
    let schema: Vec<(&str, &str)> = written[0]["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["dtype"].as_str().unwrap()))
        .collect();
    assert_eq!(schema, [("id", "i64"), ("name", "str"), ("price", "f64")]);
    let log = sluice.log("other_databases", &run_id, "record", 1).await;
    assert!(log.contains("statement 2: 1 rows affected"), "{log}");
    let mut db = sqlx::MySqlConnection::connect(&mysql.url).await.unwrap();
    let recorded: Vec<String> = sqlx::query_scalar("SELECT run_id FROM loads").fetch_all(&mut db).await.unwrap();
    assert_eq!(recorded, [run_id]);
}

/// Penguins joined with reference data about their islands, plus derived columns.
const ENRICH: &str = "dag_id: enrich
is_paused_upon_creation: false
tasks:
  - {id: islands, kind: ingest, source: {type: csv, path: data/islands.csv}, outputs: ['lake://ref/islands']}
  - {id: penguins, kind: ingest, source: {type: csv, path: data/penguins.csv}, outputs: ['lake://raw/enrich']}
  - id: features
    kind: transform
    depends_on: [islands, penguins]
    inputs: ['lake://raw/enrich']
    outputs: ['lake://features/enrich']
    steps:
      - join: {asset: 'lake://ref/islands', on: [island], how: inner}
      - derive: {bill_ratio: bill_length_mm / bill_depth_mm, heavy: body_mass_g > 4500}
";

/// Runs [`ENRICH`] to success; the run's asset events and the one of its features.
async fn run_enrich(sluice: &Sluice) -> (Vec<Value>, Value) {
    // No Torgersen: the inner join keeps the 168 + 124 penguins of Biscoe and Dream.
    std::fs::write(sluice.dags.path().join("data/islands.csv"), "island,zone\nBiscoe,south\nDream,north\n").unwrap();
    let run_id = sluice.trigger("enrich", json!({})).await;
    let run = sluice.wait_run_done("enrich", &run_id, Duration::from_secs(120)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let written = events(sluice, "source_dag_id=enrich").await;
    let features = written.iter().find(|e| e["uri"] == "lake://features/enrich").unwrap().clone();
    assert_eq!(features["row_count"], 292, "{features}");
    (written, features)
}

#[tokio::test]
async fn join_and_derive_run_on_workers_and_the_joined_asset_is_an_input() {
    let sluice = start(&[("enrich.yaml", ENRICH)]).await;
    let (written, features) = run_enrich(&sluice).await;
    let columns = features["schema"].to_string();
    for column in ["\"zone\"", "\"bill_ratio\"", "\"heavy\""] {
        assert!(columns.contains(column), "{columns}");
    }

    let (status, lineage) = sluice.get("/assets/lineage?uri=lake://features/enrich").await;
    assert_eq!(status, 200, "{lineage}");
    let upstream = lineage["upstream"].to_string();
    assert!(upstream.contains("lake://ref/islands") && upstream.contains("\"islands\""), "{lineage}");
    let islands = written.iter().find(|e| e["uri"] == "lake://ref/islands").unwrap();
    let (_, asset) = sluice.get(&format!("/assets/{}", islands["asset_id"])).await;
    assert_eq!(asset["consuming_tasks"], json!([{"dag_id": "enrich", "task_id": "features"}]), "{asset}");
}

fn s3_dag(dag_id: &str, path: &str) -> String {
    format!(
        "dag_id: {dag_id}
is_paused_upon_creation: false
tasks:
  - id: ingest
    kind: ingest
    source: {{type: csv, path: '{path}', connection: store}}
    outputs: ['lake://raw/{dag_id}']
"
    )
}

#[tokio::test]
async fn files_are_ingested_from_an_s3_compatible_object_store() {
    let store = ObjectStore::start().await;
    store.put("landing", "2026/penguins.csv", PENGUINS).await;
    let mut lines: Vec<&str> = PENGUINS.lines().collect();
    let ragged = format!("{},extra", lines[9]);
    lines[9] = &ragged;
    store.put("landing", "2026/ragged.csv", &(lines.join("\n") + "\n")).await;
    let sluice = start(&[
        ("from_s3.yaml", &s3_dag("from_s3", "s3://landing/2026/penguins.csv")),
        ("s3_missing.yaml", &s3_dag("s3_missing", "s3://landing/2026/nothing.csv")),
        ("s3_ragged.yaml", &s3_dag("s3_ragged", "s3://landing/2026/ragged.csv")),
    ])
    .await;
    create_connection(
        &sluice,
        json!({"connection_id": "store", "conn_type": "aws", "login": "sluice", "password": "secret-key",
               "extra": json!({"endpoint_url": store.url, "region_name": "us-east-1"}).to_string()}),
    )
    .await;

    let (state, try_, log) = run_once(&sluice, "from_s3", "ingest").await;
    assert_eq!(state, "success", "{try_}\n{log}\n{}", sluice.all_output());
    let written = &events(&sluice, "source_dag_id=from_s3").await[0];
    assert_eq!(written["row_count"], 344, "{written}");
    assert!(!log.contains("secret-key"), "{log}");

    let (state, _, log) = run_once(&sluice, "s3_missing", "ingest").await;
    assert_eq!(state, "failed");
    assert!(log.contains("input file s3://landing/2026/nothing.csv does not exist"), "{log}");

    let (state, _, log) = run_once(&sluice, "s3_ragged", "ingest").await;
    assert_eq!(state, "failed");
    assert!(log.contains("cannot read s3://landing/2026/ragged.csv: line 10:"), "{log}");
    let files = files_under(sluice.lake.path());
    assert!(files.iter().all(|f| f.starts_with("raw/from_s3/")), "{files:?}");
}

#[tokio::test]
async fn a_lake_in_an_s3_bucket_holds_the_partitions_and_the_fitted_transform() {
    let store = ObjectStore::start().await;
    store.create_bucket("lake").await;
    let mut sluice = Sluice::new(Backend::Postgres, &[("enrich.yaml", ENRICH)]).await;
    sluice.env = store.lake_env("s3://lake/prod");
    sluice.add_data("penguins.csv", PENGUINS);
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "2"]);
    run_enrich(&sluice).await;
    let mut keys = store.keys("lake").await;
    keys.sort();
    let raw = keys.iter().find_map(|k| k.strip_prefix("prod/raw/enrich/ds=")).unwrap_or_else(|| panic!("{keys:?}"));
    let day = raw.get(..10).unwrap().to_owned();
    let expected = [
        format!("prod/features/enrich/ds={day}/fitted_transform.json"),
        format!("prod/features/enrich/ds={day}/part-0.parquet"),
        format!("prod/raw/enrich/ds={day}/part-0.parquet"),
        format!("prod/ref/islands/ds={day}/part-0.parquet"),
    ];
    assert_eq!(keys, expected, "{}", sluice.all_output());
    assert!(files_under(sluice.lake.path()).is_empty(), "nothing in the local folder");
}
