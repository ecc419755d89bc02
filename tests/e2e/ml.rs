//! Machine learning end to end, on real workers and PostgreSQL: the penguins pipeline trains a species classifier
//! with cross-validation over a grid, registers it with its lineage, promotes it behind a gate, and serves it over
//! the records endpoint and the Open Inference Protocol, from `sluice server` and from `sluice serve`. A version that
//! does not beat production is not promoted; a bad request gets 422 naming the column; a train on unusable data
//! fails with a clear message and registers no version.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice, WebhookReceiver};

const TRAIN: &str = include_str!("../../dags/penguins_train.yaml");
const PENGUINS: &str = include_str!("../../dags/data/penguins.csv");
const MODEL: &str = "penguins_species";

/// A server and one worker, with `dags` and the penguins data in the DAGs folder.
async fn start(dags: &[(&str, &str)]) -> Sluice {
    let mut sluice = Sluice::new(Backend::Postgres, dags).await;
    sluice.add_data("penguins.csv", PENGUINS);
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "2"]);
    sluice
}

async fn run_to_end(sluice: &Sluice, dag_id: &str, conf: Value) -> (String, Value) {
    let run_id = sluice.trigger(dag_id, conf).await;
    let run = sluice.wait_run_done(dag_id, &run_id, Duration::from_secs(300)).await;
    (run_id, run)
}

/// Rows of the data set with their species, as prediction records (the raw columns the model reads).
fn known_rows() -> Vec<(Value, &'static str)> {
    let row = |island: &str, bill: f64, depth: f64, flipper: i64, mass: i64, sex: &str| {
        json!({"island": island, "bill_length_mm": bill, "bill_depth_mm": depth, "flipper_length_mm": flipper,
               "body_mass_g": mass, "sex": sex})
    };
    // Rows 1, 153 and 277 of penguins.csv.
    vec![
        (row("Torgersen", 39.1, 18.7, 181, 3750, "male"), "Adelie"),
        (row("Biscoe", 46.1, 13.2, 211, 4500, "female"), "Gentoo"),
        (row("Dream", 46.5, 17.9, 192, 3500, "female"), "Chinstrap"),
    ]
}

/// The same journey in `sluice standalone` (SQLite, and the worker processes it starts): the model is trained,
/// promoted, and predicts known rows.
#[tokio::test]
async fn penguins_model_is_trained_and_served_in_standalone() {
    let mut sluice = Sluice::new(Backend::Sqlite, &[("penguins_train.yaml", TRAIN)]).await;
    sluice.add_data("penguins.csv", PENGUINS);
    let home = tempfile::tempdir().unwrap();
    let (standalone, _) = sluice.start_standalone(home.path()).await;
    sluice.extra.push(standalone);
    let (_, run) = run_to_end(&sluice, "penguins_train", json!({})).await;
    assert_eq!(run["state"], "success", "{}", sluice.all_output());
    let (status, model) = sluice.get(&format!("/models/{MODEL}")).await;
    assert_eq!((status, model["production_version"].as_i64()), (200, Some(1)), "{model}");
    let (records, species): (Vec<Value>, Vec<&str>) = known_rows().into_iter().unzip();
    let (status, answer) = sluice.post(&format!("/models/{MODEL}/predict"), json!({"records": records})).await;
    assert_eq!((status, &answer["predictions"]), (200, &json!(species)), "{answer}");
}

#[tokio::test]
async fn penguins_model_is_trained_promoted_served_and_gated() {
    let mut sluice = start(&[("penguins_train.yaml", TRAIN)]).await;
    let (run_id, run) = run_to_end(&sluice, "penguins_train", json!({})).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());

    // The registry: one version, cross-validated, with its lineage, promoted by the run.
    let (status, model) = sluice.get(&format!("/models/{MODEL}")).await;
    assert_eq!((status, model["production_version"].as_i64()), (200, Some(1)), "{model}");
    let (_, v1) = sluice.get(&format!("/models/{MODEL}/versions/1")).await;
    let accuracy = v1["metrics"]["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.95, "CV accuracy {accuracy}: {v1}");
    assert_eq!(v1["details"]["per_fold"].as_array().unwrap().len(), 5, "{v1}");
    assert_eq!(v1["details"]["cv"]["fold_of_row"].as_array().unwrap().len(), 344);
    assert_eq!(v1["details"]["candidates"].as_array().unwrap().len(), 12, "3 algorithms × 4 settings");
    assert_eq!(v1["lineage"]["input_uri"], "lake://features/penguins_species");
    assert!(v1["lineage"]["input_event_id"].is_i64(), "the asset event it read: {v1}");
    assert_eq!(
        (v1["lineage"]["run_id"].as_str(), v1["lineage"]["task_id"].as_str()),
        (Some(run_id.as_str()), Some("train"))
    );
    assert_eq!(v1["artifact_uri"], "lake://models/penguins_species/1");
    assert!(sluice.lake.path().join("models/penguins_species/1/model.json").is_file());
    let (_, history) = sluice.get(&format!("/models/{MODEL}/stageHistory")).await;
    let change = &history["stage_changes"][0];
    assert_eq!((change["from_stage"].as_str(), change["to_stage"].as_str()), (Some("none"), Some("production")));
    assert_eq!(change["changed_by"], format!("run:penguins_train/{run_id}/deploy"));

    // Known rows are predicted correctly over both protocols, from the server and from `sluice serve`.
    let serve_url = sluice.start_serve();
    let records: Vec<Value> = known_rows().into_iter().map(|(r, _)| r).collect();
    let species: Vec<&str> = known_rows().into_iter().map(|(_, s)| s).collect();
    for base in [sluice.url.clone(), serve_url.clone()] {
        let answer = sluice.predict_eventually(&base, MODEL, json!({"records": records})).await;
        assert_eq!(answer["predictions"], json!(species), "{base}: {answer}");
        assert_eq!(answer["version"], 1);
        assert!(answer["request_id"].is_string());
        for p in answer["probabilities"].as_array().unwrap() {
            let sum: f64 = p.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).sum();
            assert!((sum - 1.0).abs() < 1e-6, "{answer}");
        }
        let tensor = |name: &str, datatype: &str| {
            json!({"name": name, "shape": [3], "datatype": datatype,
                   "data": records.iter().map(|r| r[name].clone()).collect::<Vec<_>>()})
        };
        let infer = json!({"id": "abc", "inputs": [
            tensor("island", "BYTES"), tensor("bill_length_mm", "FP64"), tensor("bill_depth_mm", "FP64"),
            tensor("flipper_length_mm", "INT64"), tensor("body_mass_g", "INT64"), tensor("sex", "BYTES")]});
        let response = sluice
            .http
            .post(format!("{base}/v2/models/{MODEL}/infer"))
            .bearer_auth(sluice.token.clone().unwrap())
            .json(&infer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!((answer["id"].as_str(), answer["model_version"].as_str()), (Some("abc"), Some("1")), "{answer}");
        assert_eq!(answer["outputs"][0]["data"], json!(species), "{answer}");
        let ready = sluice.http.get(format!("{base}/v2/health/ready")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "health is open");
    }
    let (status, metadata) = sluice.request(Method::GET, &format!("/v2/models/{MODEL}"), None).await;
    let inputs: Vec<&str> =
        metadata["inputs"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!((status, inputs.len()), (200, 6), "{metadata}");

    // Bad requests say what is wrong.
    let predict = |body: Value, query: &str| {
        let path = format!("/api/v2/models/{MODEL}/predict{query}");
        let sluice = &sluice;
        async move { sluice.request(Method::POST, &path, Some(body)).await }
    };
    let mut missing = records[0].clone();
    missing.as_object_mut().unwrap().remove("body_mass_g");
    let mut extra = records[0].clone();
    extra["wingspan"] = json!(1.0);
    let mut mistyped = records[0].clone();
    mistyped["bill_length_mm"] = json!("long");
    for (record, column) in [(missing, "body_mass_g"), (extra, "wingspan"), (mistyped, "bill_length_mm")] {
        let (status, body) = predict(json!({"records": [record]}), "").await;
        assert_eq!(status, 422, "{body}");
        assert!(body["detail"].as_str().unwrap().contains(column), "{column}: {body}");
    }
    let (status, body) = sluice.post("/models/no_such_model/predict", json!({"records": records})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = predict(json!({"records": records}), "?stage=staging").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("promote"), "{body}");

    // Roles: a Viewer reads the registry but does not predict; a User predicts but does not promote.
    for (name, role) in [("viewer", "Viewer"), ("user", "User")] {
        sluice.create_user(name, role, &format!("{name}-password")).await;
    }
    let viewer = sluice.login("viewer", "viewer-password").await;
    let user = sluice.login("user", "user-password").await;
    let body = Some(json!({"records": records}));
    let predict_path = format!("/api/v2/models/{MODEL}/predict");
    assert_eq!(sluice.request_as(Some(&viewer), Method::GET, &format!("/api/v2/models/{MODEL}"), None).await.0, 200);
    assert_eq!(sluice.request_as(Some(&viewer), Method::POST, &predict_path, body.clone()).await.0, 403);
    assert_eq!(sluice.request_as(Some(&user), Method::POST, &predict_path, body).await.0, 200);
    let promote = format!("/api/v2/models/{MODEL}/versions/1/stage");
    let staging = Some(json!({"stage": "staging"}));
    assert_eq!(sluice.request_as(Some(&user), Method::POST, &promote, staging).await.0, 403);

    // A second run asks for a margin over production that the same data and seed cannot give: the new version is
    // registered, the gate fails with both figures, and version 1 keeps serving.
    let (run_id, run) = run_to_end(&sluice, "penguins_train", json!({"margin": 0.01})).await;
    assert_eq!(run["state"], "failed", "{run}");
    let states = sluice.task_states("penguins_train", &run_id).await;
    assert_eq!((states["train"].as_str(), states["deploy"].as_str()), ("success", "failed"), "{states:?}");
    let log = sluice.log("penguins_train", &run_id, "deploy", 1).await;
    assert!(log.contains("gate failed") && log.contains("production version 1"), "{log}");
    let (_, model) = sluice.get(&format!("/models/{MODEL}")).await;
    assert_eq!((model["latest_version"].as_i64(), model["production_version"].as_i64()), (Some(2), Some(1)));

    // A deploy of a version whose artifact is corrupt fails, and version 1 keeps serving.
    let model_file = sluice.lake.path().join("models/penguins_species/2/model.json");
    let intact = std::fs::read(&model_file).unwrap();
    std::fs::write(&model_file, b"{\"not\": \"a model\"").unwrap();
    sluice.add_dag("force_v2.yaml", FORCE_V2);
    sluice.wait_dag("force_v2").await;
    sluice.unpause("force_v2").await;
    let (run_id, run) = run_to_end(&sluice, "force_v2", json!({})).await;
    assert_eq!(run["state"], "failed", "{run}");
    let log = sluice.log("force_v2", &run_id, "deploy", 1).await;
    assert!(log.contains("corrupt model.json"), "{log}");
    let (_, answer) = predict(json!({"records": records}), "").await;
    assert_eq!((answer["version"].as_i64(), &answer["predictions"]), (Some(1), &json!(species)), "{answer}");
    let (status, body) =
        sluice.post(&format!("/models/{MODEL}/versions/2/stage"), json!({"stage": "production"})).await;
    assert_eq!(status, 409, "nor is it promoted by hand: {body}");
    std::fs::write(&model_file, intact).unwrap();

    // Promotion by hand swaps the served version; a rollback brings the previous one back.
    let (status, body) =
        sluice.post(&format!("/models/{MODEL}/versions/2/stage"), json!({"stage": "production"})).await;
    assert_eq!((status, body["stage"].as_str()), (200, Some("production")), "{body}");
    let (_, answer) = predict(json!({"records": records}), "").await;
    assert_eq!(answer["version"], 2, "{answer}");
    let (status, body) = sluice.post(&format!("/models/{MODEL}/rollback"), json!({"reason": "test"})).await;
    assert_eq!((status, body["version"].as_i64()), (200, Some(1)), "{body}");
    let (_, versions) = sluice.get(&format!("/models/{MODEL}/versions")).await;
    let stages: Vec<(i64, &str)> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["stage"].as_str().unwrap()))
        .collect();
    assert_eq!(stages, [(2, "archived"), (1, "production")]);
    let (_, history) = sluice.get(&format!("/models/{MODEL}/stageHistory")).await;
    let last = history["stage_changes"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["changed_by"].as_str(), last["reason"].as_str()), (Some("user:admin"), Some("test")), "{history}");
    // `sluice serve` sees the rollback within a second.
    let back = sluice
        .eventually("sluice serve to answer with version 1", Duration::from_secs(10), || {
            let http = sluice.http.clone();
            let url = format!("{serve_url}/api/v2/models/{MODEL}/predict");
            let token = sluice.token.clone().unwrap();
            let body = json!({"records": records});
            async move {
                let answer: Value =
                    http.post(url).bearer_auth(token).json(&body).send().await.ok()?.json().await.ok()?;
                (answer["version"] == 1).then_some(answer)
            }
        })
        .await;
    assert_eq!(back["predictions"], json!(species));
}

/// Promotes version 2 without a gate.
const FORCE_V2: &str = "\
dag_id: force_v2
schedule: null
tasks:
  - id: deploy
    kind: deploy
    deploy: {model: penguins_species, version: 2, stage: production}
";

const CONSTANT: &str = "\
dag_id: constant_target
schedule: null
tasks:
  - id: ingest
    kind: ingest
    source: {type: csv, path: data/constant.csv}
    outputs: [lake://raw/constant]
  - id: train
    kind: train
    depends_on: [ingest]
    inputs: [lake://raw/constant]
    model:
      name: constant
      target: label
      candidates: [{algorithm: decision_tree}]
      cv: {folds: 2}
";

#[tokio::test]
async fn a_train_on_unusable_data_fails_clearly_and_registers_nothing() {
    let sluice = start(&[("constant.yaml", CONSTANT)]).await;
    let csv: String = std::iter::once("x,label\n".to_owned()).chain((0..20).map(|i| format!("{i},yes\n"))).collect();
    sluice.add_data("constant.csv", &csv);
    sluice.wait_dag("constant_target").await;
    sluice.unpause("constant_target").await;
    let (run_id, run) = run_to_end(&sluice, "constant_target", json!({})).await;
    assert_eq!(run["state"], "failed", "{run}");
    let log = sluice.log("constant_target", &run_id, "train", 1).await;
    assert!(log.to_lowercase().contains("class"), "the reason (one class only) is in the log: {log}");
    let (status, versions) = sluice.get("/models/constant/versions").await;
    assert_eq!((status, versions["total_entries"].as_i64()), (200, Some(0)), "no version is registered: {versions}");
}

const MONITOR: &str = include_str!("../../dags/penguins_monitor.yaml");

/// The penguins data with `grams` added to every body mass.
fn shifted_penguins(grams: i64) -> String {
    let mut lines = PENGUINS.lines();
    let header = lines.next().unwrap();
    let mass = header.split(',').position(|c| c == "body_mass_g").unwrap();
    let mut out = format!("{header}\n");
    for line in lines {
        let mut cells: Vec<String> = line.split(',').map(str::to_owned).collect();
        if let Ok(value) = cells[mass].parse::<i64>() {
            cells[mass] = (value + grams).to_string();
        }
        out += &cells.join(",");
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn a_drifted_batch_is_reported_on_its_feature_and_triggers_retraining() {
    let sluice = start(&[("penguins_train.yaml", TRAIN), ("penguins_monitor.yaml", MONITOR)]).await;
    let (_, run) = run_to_end(&sluice, "penguins_train", json!({})).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());

    // The data the model was trained on does not drift.
    let (run_id, run) = run_to_end(&sluice, "penguins_monitor", json!({})).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let (_, reports) = sluice.get(&format!("/models/{MODEL}/monitorReports")).await;
    let report = &reports["monitor_reports"][0];
    assert_eq!(
        (report["drifted"].as_bool(), report["run_id"].as_str()),
        (Some(false), Some(run_id.as_str())),
        "{report}"
    );
    let (_, scored) = sluice.get("/assets/events?source_dag_id=penguins_monitor&source_task_id=score").await;
    assert_eq!(scored["asset_events"][0]["row_count"], 344, "{scored}");

    // Heavier birds: body mass drifts, nothing else does, and penguins_train runs again with the reason.
    sluice.add_data("penguins_heavy.csv", &shifted_penguins(2000));
    let (_, run) = run_to_end(&sluice, "penguins_monitor", json!({"batch": "data/penguins_heavy.csv"})).await;
    assert_eq!(run["state"], "success", "drift is a finding, not a failure: {run}");
    let (_, reports) = sluice.get(&format!("/models/{MODEL}/monitorReports")).await;
    assert_eq!(reports["total_entries"], 2);
    let report = reports["monitor_reports"][0].clone();
    assert_eq!(report["drifted"], true, "{report}");
    let checks = report["checks"].as_array().unwrap();
    let drifted_features: std::collections::BTreeSet<&str> = checks
        .iter()
        .filter(|c| c["drifted"] == true && c["feature"] != "prediction" && c["feature"] != "label")
        .map(|c| c["feature"].as_str().unwrap())
        .collect();
    assert_eq!(drifted_features.into_iter().collect::<Vec<_>>(), ["body_mass_g"], "{report}");
    let psi = checks.iter().find(|c| c["feature"] == "body_mass_g" && c["statistic"] == "psi").unwrap();
    assert!(psi["value"].as_f64().unwrap() > 0.2, "{psi}");
    let retrain_run = report["retrain_run_id"].as_str().unwrap_or_else(|| panic!("a retraining run: {report}"));
    assert_eq!(report["retrain_dag_id"], "penguins_train");
    let (_, triggered) = sluice.get(&format!("/dags/penguins_train/dagRuns/{retrain_run}")).await;
    assert_eq!(triggered["conf"]["drifted_features"], json!(["body_mass_g"]), "{triggered}");
    assert!(triggered["conf"]["reason"].as_str().unwrap().contains("body_mass_g"), "{triggered}");

    // The retraining run trains on the same data: its version is no better, so production stays.
    let retrained = sluice.wait_run_done("penguins_train", retrain_run, Duration::from_secs(300)).await;
    assert_eq!(retrained["state"], "failed", "the gate keeps a version that is not better out: {retrained}");
    let (_, model) = sluice.get(&format!("/models/{MODEL}")).await;
    assert_eq!((model["latest_version"].as_i64(), model["production_version"].as_i64()), (Some(2), Some(1)), "{model}");
}

/// The figures `sluice bench <args>` prints, one JSON object per line.
fn bench(args: &[&str]) -> Vec<Value> {
    let output = std::process::Command::new(sluice_tests::sluice_bin())
        .arg("bench")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `sluice bench --scenarios train,predict`: the model selection's time and accuracy, then predictions from the
/// server and from a `sluice serve` it starts, after training through the real pipeline (here on SQLite, with few
/// requests).
#[test]
fn bench_measures_training_and_predictions_from_both_servers() {
    let lines = bench(&["--sqlite", "--scenarios", "train,predict", "--predict-requests", "300"]);
    let [train, server, serve] = lines.as_slice() else { panic!("three lines expected: {lines:?}") };
    assert_eq!(
        (train["scenario"].as_str(), train["candidates"].as_u64(), train["folds"].as_u64()),
        (Some("train"), Some(12), Some(5)),
        "{train}"
    );
    assert!(train["seconds"].as_f64().unwrap() > 0.0, "{train}");
    assert!(train["cv_accuracy"].as_f64().unwrap() > 0.98, "{train}");
    for (line, target) in [(server, "server"), (serve, "serve")] {
        assert_eq!((line["scenario"].as_str(), line["target"].as_str()), (Some("predict"), Some(target)), "{line}");
        assert_eq!(line["requests"], 300, "{line}");
        let (p50, p99) = (line["latency_ms_p50"].as_f64().unwrap(), line["latency_ms_p99"].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p99, "{line}");
        assert!(line["requests_per_s"].as_f64().unwrap() > 0.0, "{line}");
    }
}

/// `sluice bench --scenarios score,monitor` on small batches: every row of the batch scored, and a drift report that
/// names the two shifted features and no other (the scenario itself fails otherwise).
#[test]
fn bench_scores_a_batch_and_reports_its_drift() {
    let lines = bench(&["--scenarios", "score,monitor", "--score-rows", "5000", "--monitor-rows", "50000"]);
    let [score, monitor] = lines.as_slice() else { panic!("two lines expected: {lines:?}") };
    assert_eq!((score["scenario"].as_str(), score["rows"].as_u64()), (Some("score"), Some(5000)), "{score}");
    assert!(score["rows_per_s"].as_f64().unwrap() > 0.0 && score["peak_rss_mib"].as_f64().unwrap() > 0.0, "{score}");
    assert_eq!(
        (monitor["scenario"].as_str(), monitor["rows"].as_u64(), &monitor["drifted_features"]),
        (Some("monitor"), Some(50_000), &serde_json::json!(["f00", "f01"])),
        "{monitor}"
    );
    // PSI and KS for each of the 20 features, the predictions' PSI, accuracy and F1.
    assert_eq!(monitor["checks"], 20 * 2 + 1 + 2, "{monitor}");
}

/// Monitors a batch against the production model; fed-back labels are judged too, and a drift is posted to the
/// `alerts` connection.
const WATCH: &str = "\
dag_id: penguins_watch
schedule: null
is_paused_upon_creation: false
params:
  batch: {type: string, default: data/penguins.csv}
tasks:
  - id: ingest
    kind: ingest
    source: {type: csv, path: '{{ params.batch }}'}
    outputs: [lake://raw/penguins_watch]
  - id: monitor
    kind: monitor
    depends_on: [ingest]
    inputs: [lake://raw/penguins_watch]
    monitor:
      model: penguins_species
      thresholds: {min_accuracy: 0.5}
      on_drift: {webhook: {connection: alerts, endpoint: /hooks/drift}}
";

#[tokio::test]
async fn predictions_are_logged_labels_fed_back_are_judged_and_drift_is_posted() {
    let mut sluice =
        Sluice::new(Backend::Postgres, &[("penguins_train.yaml", TRAIN), ("penguins_watch.yaml", WATCH)]).await;
    sluice.add_data("penguins.csv", PENGUINS);
    sluice.env.push(("SLUICE_PREDICTION_LOG_FLUSH_SECS".into(), "1".into()));
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "2"]);
    let (_, run) = run_to_end(&sluice, "penguins_train", json!({})).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let hook = WebhookReceiver::start(1).await;
    let port = hook.port;
    let alerts = json!({"connection_id": "alerts", "conn_type": "http", "host": "127.0.0.1", "port": port});
    assert_eq!(sluice.post("/connections", alerts).await.0, 201);

    // Every prediction has a request id, in the body and the header; the protocol's `id` is the request id.
    let records: Vec<Value> = known_rows().into_iter().map(|(r, _)| r).collect();
    let token = sluice.token.clone().unwrap();
    let response = sluice
        .http
        .post(format!("{}/api/v2/models/{MODEL}/predict", sluice.url))
        .bearer_auth(&token)
        .json(&json!({"records": records}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let answer: Value = response.json().await.unwrap();
    let request_id = answer["request_id"].as_str().unwrap().to_owned();
    assert_eq!(header, request_id, "{answer}");
    assert_eq!(&request_id[14..15], "7", "a UUIDv7: {request_id}");
    let infer = json!({"id": "oip-1", "inputs": [
        {"name": "island", "shape": [1], "datatype": "BYTES", "data": ["Torgersen"]},
        {"name": "bill_length_mm", "shape": [1], "datatype": "FP64", "data": [39.1]},
        {"name": "bill_depth_mm", "shape": [1], "datatype": "FP64", "data": [18.7]},
        {"name": "flipper_length_mm", "shape": [1], "datatype": "INT64", "data": [181]},
        {"name": "body_mass_g", "shape": [1], "datatype": "INT64", "data": [3750]},
        {"name": "sex", "shape": [1], "datatype": "BYTES", "data": ["male"]}]});
    let response = sluice
        .http
        .post(format!("{}/v2/models/{MODEL}/infer", sluice.url))
        .bearer_auth(&token)
        .json(&infer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "oip-1");

    // Both are logged to the model's prediction log, an asset with an event per write.
    let log_dir = sluice.lake.path().join(format!("predictions/{MODEL}"));
    let (_, assets) = sluice
        .eventually("the prediction log's asset", Duration::from_secs(30), || {
            let sluice = &sluice;
            async move {
                let (status, assets) = sluice.get("/assets?limit=100").await;
                let found =
                    assets["assets"].as_array()?.iter().any(|a| a["uri"] == format!("lake://predictions/{MODEL}"));
                found.then_some((status, assets))
            }
        })
        .await;
    let asset = assets["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["uri"] == format!("lake://predictions/{MODEL}"))
        .unwrap();
    let rows = sluice
        .eventually("4 logged rows", Duration::from_secs(30), || {
            let sluice = &sluice;
            let id = asset["id"].as_i64().unwrap();
            async move {
                let (_, events) = sluice.get(&format!("/assets/events?asset_id={id}")).await;
                let rows: i64 = events["asset_events"].as_array()?.iter().filter_map(|e| e["row_count"].as_i64()).sum();
                (rows == 4).then_some(rows)
            }
        })
        .await;
    assert_eq!(rows, 4, "3 records and 1");
    let parts: Vec<_> = std::fs::read_dir(&log_dir)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.starts_with("part-") && f.ends_with(".parquet"))
        .collect();
    assert!(!parts.is_empty(), "partition files in {}", log_dir.display());

    // Feedback: bad requests say what is wrong, and a Viewer may not give any.
    let feedback = |body: Value| {
        let sluice = &sluice;
        async move { sluice.post(&format!("/models/{MODEL}/feedback"), body).await }
    };
    let (status, body) =
        sluice.post("/models/no_such_model/feedback", json!({"feedback": [{"request_id": "a", "label": "x"}]})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = feedback(json!({"feedback": [{"request_id": "a"}]})).await;
    assert!(status == 422 && body["detail"].as_str().unwrap().contains("label"), "{body}");
    let (status, body) = feedback(json!({"feedback": [{"request_id": "a", "label": {"x": 1}}]})).await;
    assert!(status == 422 && body["detail"].as_str().unwrap().contains("feedback[0]"), "{body}");
    sluice.create_user("viewer", "Viewer", "viewer-password").await;
    let viewer = sluice.login("viewer", "viewer-password").await;
    let path = format!("/api/v2/models/{MODEL}/feedback");
    let some = json!({"feedback": [{"request_id": "a", "label": "x"}]});
    assert_eq!(sluice.request_as(Some(&viewer), Method::POST, &path, Some(some)).await.0, 403);

    // Two right labels, one wrong, one for a request that was never logged.
    let labels = json!({"feedback": [
        {"request_id": request_id, "label": "Adelie"},
        {"request_id": request_id, "record": 1, "label": "Adelie"},
        {"request_id": "oip-1", "label": "Adelie"},
        {"request_id": "never-made", "label": "Gentoo"}]});
    let (status, body) = feedback(labels).await;
    assert_eq!((status, body["recorded"].as_i64()), (200, Some(4)), "{body}");

    // The next monitor report judges the model on them: 2 of 3 right, above the minimum of 0.5.
    let (run_id, run) = run_to_end(&sluice, "penguins_watch", json!({})).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let (_, reports) = sluice.get(&format!("/models/{MODEL}/monitorReports")).await;
    let report = reports["monitor_reports"][0].clone();
    assert_eq!(report["run_id"], run_id.as_str());
    assert_eq!(report["feedback"]["labels"], 4, "{report}");
    assert_eq!(report["feedback"]["matched"], 3, "{report}");
    let check = |report: &Value, statistic: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["feature"] == "feedback" && c["statistic"] == statistic)
            .cloned()
    };
    let accuracy = check(&report, "accuracy").unwrap_or_else(|| panic!("feedback accuracy: {report}"));
    assert!((accuracy["value"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9, "{accuracy}");
    assert_eq!((accuracy["threshold"].as_f64(), accuracy["drifted"].as_bool()), (Some(0.5), Some(false)));
    assert!(check(&report, "f1").is_some(), "{report}");
    assert_eq!(report["drifted"], false, "{report}");
    assert!(hook.received().is_empty(), "no drift, no message");

    // Only labels given since that report count in the next one; heavier birds drift and the webhook is told,
    // after its first answer (503) was retried.
    let late = json!({"feedback": [{"request_id": "oip-1", "label": "Gentoo"}]});
    assert_eq!(feedback(late).await.0, 200);
    sluice.add_data("penguins_heavy.csv", &shifted_penguins(2000));
    let (run_id, run) = run_to_end(&sluice, "penguins_watch", json!({"batch": "data/penguins_heavy.csv"})).await;
    assert_eq!(run["state"], "success", "a webhook that fails once does not fail the report: {run}");
    let (_, reports) = sluice.get(&format!("/models/{MODEL}/monitorReports")).await;
    let report = reports["monitor_reports"][0].clone();
    assert_eq!(
        (report["feedback"]["labels"].as_i64(), report["feedback"]["matched"].as_i64()),
        (Some(1), Some(1)),
        "{report}"
    );
    assert_eq!(check(&report, "accuracy").unwrap()["drifted"], true, "the one new label is wrong: {report}");
    let messages = hook.received();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(message["_request_line"], "POST /hooks/drift HTTP/1.1");
    assert_eq!((message["model"].as_str(), message["version"].as_i64()), (Some(MODEL), Some(1)), "{message}");
    assert_eq!(
        (message["dag_id"].as_str(), message["run_id"].as_str()),
        (Some("penguins_watch"), Some(run_id.as_str()))
    );
    assert_eq!(message["drifted_features"], json!(["body_mass_g"]), "{message}");
    let drift = message["drift"].as_array().unwrap();
    assert!(
        drift.iter().any(|d| d["feature"] == "body_mass_g" && d["statistic"] == "psi" && d["threshold"] == 0.2),
        "{message}"
    );
    let log = sluice.log("penguins_watch", &run_id, "monitor", 1).await;
    assert!(log.contains("HTTP 503") && log.contains("drift posted"), "{log}");

    // Lineage: features → train → version 1 → the tasks that use the production version.
    let (status, lineage) = sluice.get(&format!("/assets/lineage?model={MODEL}&version=1")).await;
    assert_eq!(status, 200, "{lineage}");
    assert_eq!(lineage["node"], json!({"type": "model", "name": MODEL, "version": 1}));
    let train = json!({"type": "task", "dag_id": "penguins_train", "task_id": "train"});
    let monitor = json!({"type": "task", "dag_id": "penguins_watch", "task_id": "monitor"});
    assert!(lineage["upstream"].as_array().unwrap().contains(&train), "{lineage}");
    assert!(
        lineage["upstream"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "asset", "uri": "lake://features/penguins_species"}))
    );
    assert!(lineage["downstream"].as_array().unwrap().contains(&monitor), "{lineage}");
    let (_, from_data) = sluice.get("/assets/lineage?uri=lake://features/penguins_species").await;
    assert!(
        from_data["edges"]
            .as_array()
            .unwrap()
            .contains(&json!([train, {"type": "model", "name": MODEL, "version": 1}])),
        "{from_data}"
    );
}

/// A command task that registers what it wrote (no ONNX: registered, not served).
const COMMAND_MODEL: &str = "\
dag_id: command_model
schedule: null
is_paused_upon_creation: false
tasks:
  - id: ingest
    kind: ingest
    source: {type: csv, path: data/penguins.csv}
    outputs: [lake://raw/command_model]
  - id: train
    depends_on: [ingest]
    inputs: [lake://raw/command_model]
    script: |
      test -s \"$SLUICE_INPUT\" || exit 5
      echo '{\"accuracy\": 0.9}' > \"$SLUICE_MODEL_DIR/metrics.json\"
      echo 'weights' > \"$SLUICE_MODEL_DIR/model.bin\"
    registers: {model: penguins_command, target: species}
";

/// With the lake in an S3 bucket, the whole journey keeps its files there and nothing on local disk: the trained
/// and the command-registered versions, the prediction log (which a monitor then reads back to judge fed-back
/// labels), and both servers load the model from the bucket.
#[tokio::test]
async fn models_and_the_prediction_log_live_in_an_s3_lake() {
    let store = sluice_tests::ObjectStore::start().await;
    store.create_bucket("lake").await;
    let mut sluice = Sluice::new(
        Backend::Postgres,
        &[("penguins_train.yaml", TRAIN), ("penguins_watch.yaml", WATCH), ("command_model.yaml", COMMAND_MODEL)],
    )
    .await;
    sluice.add_data("penguins.csv", PENGUINS);
    sluice.env = store.lake_env("s3://lake/prod");
    sluice.env.push(("SLUICE_PREDICTION_LOG_FLUSH_SECS".into(), "1".into()));
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "2"]);
    let (_, run) = run_to_end(&sluice, "penguins_train", json!({})).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let (_, run) = run_to_end(&sluice, "command_model", json!({})).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());

    let keys = store.keys("lake").await;
    let version_files = |model: &str| {
        let prefix = format!("prod/models/{model}/1/");
        let mut files: Vec<&str> = keys.iter().filter_map(|k| k.strip_prefix(prefix.as_str())).collect();
        files.sort_unstable();
        files
    };
    assert_eq!(
        version_files(MODEL),
        ["fitted_transform.json", "model.json", "reference.json", "signature.json"],
        "{keys:?}"
    );
    assert_eq!(version_files("penguins_command"), ["metrics.json", "model.bin", "signature.json"], "{keys:?}");
    assert!(
        keys.iter().filter(|k| k.starts_with("prod/models/")).all(|k| k.contains("/1/")),
        "nothing but the versions under models/: {keys:?}"
    );
    let (_, command) = sluice.get("/models/penguins_command/versions/1").await;
    assert_eq!(command["metrics"]["accuracy"].as_f64(), Some(0.9), "{command}");

    // Both servers read the version from the bucket; the server logs what it predicted there.
    let serve_url = sluice.start_serve();
    let (records, species): (Vec<Value>, Vec<&str>) = known_rows().into_iter().unzip();
    let mut request_id = String::new();
    for base in [serve_url.clone(), sluice.url.clone()] {
        let answer = sluice.predict_eventually(&base, MODEL, json!({"records": records})).await;
        assert_eq!(answer["predictions"], json!(species), "{base}: {answer}");
        request_id = answer["request_id"].as_str().unwrap().to_owned();
    }
    let log_keys = sluice
        .eventually("the prediction log in the bucket", Duration::from_secs(30), || {
            let store = &store;
            async move {
                let keys = store.keys("lake").await;
                let log: Vec<String> = keys
                    .into_iter()
                    .filter(|k| k.starts_with(&format!("prod/predictions/{MODEL}/ds=")) && k.ends_with(".parquet"))
                    .collect();
                (!log.is_empty()).then_some(log)
            }
        })
        .await;
    assert!(!log_keys.is_empty());

    // The monitor reads the log back from the bucket to match the labels fed back for the server's request (its
    // webhook is posted to only on drift, and there is none).
    let alerts = json!({"connection_id": "alerts", "conn_type": "http", "host": "127.0.0.1", "port": 9});
    assert_eq!(sluice.post("/connections", alerts).await.0, 201);
    let labels = json!({"feedback": [
        {"request_id": request_id, "record": 0, "label": "Adelie"},
        {"request_id": request_id, "record": 1, "label": "Adelie"},
        {"request_id": request_id, "record": 2, "label": "Chinstrap"}]});
    assert_eq!(sluice.post(&format!("/models/{MODEL}/feedback"), labels).await.0, 200);
    let (_, run) = run_to_end(&sluice, "penguins_watch", json!({})).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let (_, reports) = sluice.get(&format!("/models/{MODEL}/monitorReports")).await;
    let report = &reports["monitor_reports"][0];
    assert_eq!(
        (report["feedback"]["labels"].as_i64(), report["feedback"]["matched"].as_i64()),
        (Some(3), Some(3)),
        "{report}"
    );
    let accuracy = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["feature"] == "feedback" && c["statistic"] == "accuracy")
        .unwrap_or_else(|| panic!("{report}"));
    assert!((accuracy["value"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9, "two of three labels are right: {report}");
    assert!(!sluice.lake.path().join("models").exists() && !sluice.lake.path().join("predictions").exists());
}
