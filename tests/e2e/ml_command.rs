//! Models from users' own code, end to end on real workers and PostgreSQL: `dags/penguins_sklearn.yaml` trains a
//! scikit-learn pipeline in a `command` task that registers its model, exports it to ONNX, and Sluice serves it over
//! the records endpoint and the Open Inference Protocol, from `sluice server` and `sluice serve`. A command model
//! without ONNX is registered but not served (409 saying so, and its deploy fails); a command that fails registers
//! nothing.
//!
//! The workers' `python3` is the test tools' venv (`SLUICE_TEST_PYTHON`, with scikit-learn, skl2onnx, onnx and
//! pyarrow from scripts/test.sh), put first on their `PATH`.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice};

const SKLEARN_DAG: &str = include_str!("../../dags/penguins_sklearn.yaml");
const SKLEARN_SCRIPT: &str = include_str!("../../dags/penguins_sklearn.py");
const PENGUINS: &str = include_str!("../../dags/data/penguins.csv");
const MODEL: &str = "penguins_sklearn";

/// A server and one worker whose `python3` is the test venv's, with `dags` and the penguins data.
async fn start(dags: &[(&str, &str)]) -> Sluice {
    let python = std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SLUICE_TEST_PYTHON is not set: run the tests with scripts/test.sh, which installs the Python tools")
    });
    let venv_bin = Path::new(&python).parent().unwrap().display().to_string();
    let mut sluice = Sluice::new(Backend::Postgres, dags).await;
    sluice.add_data("penguins.csv", PENGUINS);
    std::fs::write(sluice.dags.path().join("penguins_sklearn.py"), SKLEARN_SCRIPT).unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    sluice.env.push(("PATH".into(), format!("{venv_bin}:{path}")));
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "2"]);
    sluice
}

async fn run_to_end(sluice: &Sluice, dag_id: &str) -> (String, Value) {
    sluice.wait_dag(dag_id).await;
    sluice.unpause(dag_id).await;
    let run_id = sluice.trigger(dag_id, json!({})).await;
    let run = sluice.wait_run_done(dag_id, &run_id, Duration::from_secs(300)).await;
    (run_id, run)
}

/// Rows 1, 153 and 277 of penguins.csv, as raw records, with their species.
fn known_rows() -> (Vec<Value>, Vec<&'static str>) {
    let row = |island: &str, bill: f64, depth: f64, flipper: i64, mass: i64, sex: &str| {
        json!({"island": island, "bill_length_mm": bill, "bill_depth_mm": depth, "flipper_length_mm": flipper,
               "body_mass_g": mass, "sex": sex})
    };
    (
        vec![
            row("Torgersen", 39.1, 18.7, 181, 3750, "male"),
            row("Biscoe", 46.1, 13.2, 211, 4500, "female"),
            row("Dream", 46.5, 17.9, 192, 3500, "female"),
        ],
        vec!["Adelie", "Gentoo", "Chinstrap"],
    )
}

#[tokio::test]
async fn a_scikit_learn_model_is_registered_promoted_and_served_from_onnx() {
    let mut sluice = start(&[("penguins_sklearn.yaml", SKLEARN_DAG)]).await;
    let (run_id, run) = run_to_end(&sluice, "penguins_sklearn").await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());

    // The version has the metrics and params the script wrote, and a train task's lineage.
    let (status, model) = sluice.get(&format!("/models/{MODEL}")).await;
    assert_eq!((status, model["production_version"].as_i64()), (200, Some(1)), "{model}");
    let (_, v1) = sluice.get(&format!("/models/{MODEL}/versions/1")).await;
    let accuracy = v1["metrics"]["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.95, "CV accuracy from metrics.json {accuracy}: {v1}");
    assert!(v1["metrics"]["f1"].is_f64(), "{v1}");
    assert_eq!(v1["params"]["cv_folds"], 5, "params.json: {v1}");
    assert_eq!(v1["algorithm"], "sklearn.RandomForestClassifier");
    assert_eq!(v1["details"]["format"], "onnx", "{v1}");
    assert_eq!(v1["lineage"]["input_uri"], "lake://features/penguins_sklearn");
    assert!(v1["lineage"]["input_event_id"].is_i64(), "the asset event it read: {v1}");
    assert_eq!(
        (v1["lineage"]["run_id"].as_str(), v1["lineage"]["task_id"].as_str()),
        (Some(run_id.as_str()), Some("train")),
        "{v1}"
    );
    assert!(v1["lineage"]["dag_version_id"].is_string(), "{v1}");
    let folder = sluice.lake.path().join("models/penguins_sklearn");
    for file in ["model.onnx", "metrics.json", "params.json", "features.json", "signature.json", "reference.json"] {
        assert!(folder.join("1").join(file).is_file(), "{file} in the version's folder");
    }
    let names: Vec<String> =
        std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["1"], "nothing but the version is left in the model's folder");

    // Known rows are predicted correctly from the ONNX model over both protocols, by both servers.
    let serve_url = sluice.start_serve();
    let (records, species) = known_rows();
    for base in [sluice.url.clone(), serve_url.clone()] {
        let answer = sluice.predict_eventually(&base, MODEL, json!({"records": records})).await;
        assert_eq!((&answer["predictions"], answer["version"].as_i64()), (&json!(species), Some(1)), "{answer}");
        assert_eq!(answer["classes"], json!(["Adelie", "Chinstrap", "Gentoo"]), "{answer}");
        for p in answer["probabilities"].as_array().unwrap() {
            let sum: f64 = p.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).sum();
            assert!((sum - 1.0).abs() < 1e-4, "{answer}");
        }
        let tensor = |name: &str, datatype: &str| {
            json!({"name": name, "shape": [3], "datatype": datatype,
                   "data": records.iter().map(|r| r[name].clone()).collect::<Vec<_>>()})
        };
        let infer = json!({"inputs": [
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
        assert_eq!(answer["outputs"][0]["data"], json!(species), "{base}: {answer}");
    }
    let (status, body) =
        sluice.post(&format!("/models/{MODEL}/predict"), json!({"records": [{"island": "Dream"}]})).await;
    assert_eq!(status, 422, "a record without the model's columns: {body}");
}

/// A command model without ONNX, and a command that fails after writing its files.
const EXTERNAL: &str = "\
dag_id: external_model
schedule: null
params: {exit: {type: integer, default: 0}}
tasks:
  - id: ingest
    kind: ingest
    source: {type: csv, path: data/penguins.csv}
    outputs: [lake://raw/penguins_external]
  - id: train
    depends_on: [ingest]
    inputs: [lake://raw/penguins_external]
    script: |
      test -f \"$SLUICE_INPUT\" || exit 5
      echo '{\"accuracy\": 0.9}' > \"$SLUICE_MODEL_DIR/metrics.json\"
      echo 'weights' > \"$SLUICE_MODEL_DIR/model.bin\"
      exit {{ params.exit }}
    registers: {model: penguins_external, target: species}
  - id: deploy
    kind: deploy
    depends_on: [train]
    deploy: {model: penguins_external, stage: production}
";

#[tokio::test]
async fn a_command_model_without_onnx_is_registered_not_served_and_a_failed_command_registers_nothing() {
    let sluice = start(&[("external.yaml", EXTERNAL)]).await;
    let (run_id, run) = run_to_end(&sluice, "external_model").await;
    assert_eq!(run["state"], "failed", "the deploy fails: {run}");
    let states = sluice.task_states("external_model", &run_id).await;
    assert_eq!((states["train"].as_str(), states["deploy"].as_str()), ("success", "failed"), "{states:?}");
    let log = sluice.log("external_model", &run_id, "deploy", 1).await;
    assert!(log.contains("registered but not served") && log.contains("model.onnx"), "{log}");

    let (_, v1) = sluice.get("/models/penguins_external/versions/1").await;
    assert_eq!((v1["metrics"]["accuracy"].as_f64(), v1["details"]["format"].as_str()), (Some(0.9), Some("external")));
    assert_eq!(v1["algorithm"], "command");
    assert!(sluice.lake.path().join("models/penguins_external/1/model.bin").is_file());
    let (records, _) = known_rows();
    let (status, body) = sluice.post("/models/penguins_external/predict?version=1", json!({"records": records})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("registered but not served"), "{body}");
    let (status, body) =
        sluice.post("/models/penguins_external/versions/1/stage", json!({"stage": "production"})).await;
    assert_eq!(status, 409, "nor promoted by hand: {body}");
    let infer = json!({"inputs": [{"name": "island", "shape": [1], "datatype": "BYTES", "data": ["Dream"]}]});
    let (status, body) =
        sluice.request(Method::POST, "/v2/models/penguins_external/versions/1/infer", Some(infer)).await;
    assert_eq!(status, 409, "{body}");

    // A command that fails after writing its files registers no version and leaves no folder.
    let run_id = sluice.trigger("external_model", json!({"exit": 3})).await;
    let run = sluice.wait_run_done("external_model", &run_id, Duration::from_secs(120)).await;
    assert_eq!(run["state"], "failed", "{run}");
    let states = sluice.task_states("external_model", &run_id).await;
    assert_eq!(states["train"], "failed", "{states:?}");
    let log = sluice.log("external_model", &run_id, "train", 1).await;
    assert!(log.contains("no model version is registered"), "{log}");
    let (_, versions) = sluice.get("/models/penguins_external/versions").await;
    assert_eq!(versions["total_entries"], 1, "{versions}");
    let names: Vec<String> = std::fs::read_dir(sluice.lake.path().join("models/penguins_external"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["1"], "no half-written version of the failed try");
}
