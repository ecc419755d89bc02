//! Killing things: a timed-out task's process tree, a worker (also while it trains a model), the server; a graceful
//! worker stop.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use serde_json::json;
use sluice_tests::{Backend, Sluice, max_overlapping, process_alive};

const TIMEOUT_DAG: &str = r#"
dag_id: too_slow
schedule: null
is_paused_upon_creation: false
tasks:
  - id: spawner
    execution_timeout: 2s
    script: |
      sleep 300 &
      echo $! > "{{ dag_run.conf.pidfile }}"
      echo $$ >> "{{ dag_run.conf.pidfile }}"
      sleep 300
"#;

#[tokio::test]
async fn execution_timeout_kills_the_whole_process_tree() {
    let sluice = Sluice::start(Backend::Postgres, &[("too_slow.yaml", TIMEOUT_DAG)], 1).await;
    let pidfile = sluice.dags.path().join("pids.txt");
    let run_id = sluice.trigger("too_slow", json!({"pidfile": pidfile})).await;
    let run = sluice.wait_run_done("too_slow", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "failed");
    let tries = sluice.tries("too_slow", &run_id, "spawner").await;
    assert!(tries[0]["error"].as_str().unwrap().contains("timed out"), "{:?}", tries[0]);

    let pids: Vec<i32> =
        std::fs::read_to_string(&pidfile).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "the script wrote its pid and its child's");
    let orphans = sluice
        .eventually("the task's processes to be gone", Duration::from_secs(10), || async {
            let left: Vec<_> = pids.iter().filter(|p| process_alive(**p)).collect();
            left.is_empty().then_some(left)
        })
        .await;
    assert!(orphans.is_empty());
}

const SLEEPY: &str = r#"
dag_id: sleepy
schedule: null
is_paused_upon_creation: false
tasks:
  - id: sleep
    script: |
      sleep {% if ti.try_number == 1 %}30{% else %}2{% endif %} &
      echo $! > "{{ dag_run.conf.pidfile }}-{{ ti.try_number }}"
      echo $$ >> "{{ dag_run.conf.pidfile }}-{{ ti.try_number }}"
      wait
      echo slept
    retries: 2
    retry_delay: 0s
"#;

#[tokio::test]
async fn killed_worker_task_is_retried_elsewhere_never_overlapping() {
    let mut sluice = Sluice::new(Backend::Postgres, &[("sleepy.yaml", SLEEPY)]).await;
    sluice.start_server(&[]).await;
    let first = sluice.spawn_worker(&["--slots", "1"]);
    let pidfile = sluice.dags.path().join("pids");
    let run_id = sluice.trigger("sleepy", json!({"pidfile": pidfile})).await;
    sluice.wait_task_state("sleepy", &run_id, "sleep", "running").await;
    let running_log = sluice
        .eventually("the log of the running try", Duration::from_secs(10), || async {
            let log = sluice.log("sleepy", &run_id, "sleep", 1).await;
            log.contains("started pid").then_some(log)
        })
        .await;
    assert!(!running_log.contains("slept"), "read while the task still runs: {running_log}");
    let first_try = format!("{}-1", pidfile.display());
    let pids: Vec<i32> = sluice
        .eventually("the first try's pids", Duration::from_secs(10), || async {
            let text = std::fs::read_to_string(&first_try).unwrap_or_default();
            let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            (pids.len() == 2).then_some(pids)
        })
        .await;
    sluice.workers[first].kill_9();
    // The dead worker's guard kills the task's process group at once, long before the lease runs out or the
    // first try's sleep would end.
    sluice
        .eventually("the killed worker's task processes to be gone", Duration::from_secs(2), || async {
            pids.iter().all(|p| !process_alive(*p)).then_some(())
        })
        .await;
    sluice.spawn_worker(&["--slots", "1"]);

    let run = sluice.wait_run_done("sleepy", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{}", sluice.all_output());
    let tries = sluice.tries("sleepy", &run_id, "sleep").await;
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert!(tries[0]["error"].as_str().unwrap().contains("lost"), "{:?}", tries[0]);
    assert_eq!(tries[0]["executor"], "worker-1");
    assert_eq!(tries[1]["executor"], "worker-2");
    assert_eq!(max_overlapping(&tries), 1, "never two tries at once: {tries:?}");
}

const CHAIN: &str = r#"
dag_id: chain
schedule: null
is_paused_upon_creation: false
default_args: {retries: 2, retry_delay: 0s}
tasks:
  - id: first
    script: echo one
  - id: middle
    depends_on: [first]
    script: sleep 3; echo two
  - id: last
    depends_on: [middle]
    script: echo three
"#;

#[tokio::test]
async fn killed_server_loses_nothing_after_restart() {
    let mut sluice = Sluice::start(Backend::Postgres, &[("chain.yaml", CHAIN)], 1).await;
    let run_id = sluice.trigger("chain", json!({})).await;
    sluice.wait_task_state("chain", &run_id, "middle", "running").await;
    if let Some(server) = sluice.server.as_mut() {
        server.kill_9();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    sluice.start_server(&[]).await;

    let run = sluice.wait_run_done("chain", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{}", sluice.all_output());
    let states = sluice.task_states("chain", &run_id).await;
    assert!(states.values().all(|s| s == "success"), "{states:?}");
    for task in ["first", "middle", "last"] {
        let tries = sluice.tries("chain", &run_id, task).await;
        assert_eq!(max_overlapping(&tries), 1, "{task}: {tries:?}");
    }
    let (_, runs) = sluice.get("/dags/chain/dagRuns").await;
    assert_eq!(runs["total_entries"], 1, "no run lost or duplicated");
}

#[tokio::test]
async fn sigterm_lets_the_running_task_finish_then_the_worker_exits() {
    let mut sluice = Sluice::start(Backend::Sqlite, &[("chain.yaml", CHAIN)], 1).await;
    let run_id = sluice.trigger("chain", json!({})).await;
    sluice.wait_task_state("chain", &run_id, "middle", "running").await;
    sluice.workers[0].terminate();
    let code = sluice.workers[0].wait_exit(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0), "{}", sluice.all_output());
    let ti = sluice.wait_task_state("chain", &run_id, "middle", "success").await;
    assert_eq!(ti["try_number"], 1, "finished within the grace period, not retried");
    assert_eq!(sluice.task_states("chain", &run_id).await["last"], "queued", "no worker left to run it");
}

#[tokio::test]
async fn standalone_runs_everything_in_one_command_and_stops_cleanly() {
    let mut sluice = Sluice::new(Backend::Sqlite, &[("chain.yaml", CHAIN)]).await;
    let home = tempfile::tempdir().unwrap();
    // The first start creates `admin`, prints its password once and keeps it in the home folder.
    let (mut standalone, password) = sluice.start_standalone(home.path()).await;
    assert!(standalone.output().contains(&format!("password: {password}")), "{}", standalone.output());
    let run_id = sluice.trigger("chain", json!({})).await;
    let run = sluice.wait_run_done("chain", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{}", standalone.output());
    let (_, health) = sluice.get("/monitor/health").await;
    assert_eq!(health["workers"].as_array().unwrap().len(), 2, "two worker processes: {health}");

    standalone.terminate();
    assert_eq!(standalone.wait_exit(Duration::from_secs(40)).await, Some(0), "{}", standalone.output());
    let output = standalone.output();
    assert!(output.contains("Sluice is running: dashboard http://"), "{output}");
    assert_eq!(output.matches("worker stopped").count(), 2, "both workers stopped: {output}");
}

const PENGUINS: &str = include_str!("../../dags/data/penguins.csv");

/// A worker killed while it trains leaves no version behind, half-written or registered, and the retry on another
/// worker registers one complete version. Enough random forests that training takes a while, so that the worker can
/// be killed in the middle of it.
const SLOW_TRAIN: &str = r#"
dag_id: slow_train
schedule: null
is_paused_upon_creation: false
tasks:
  - id: ingest
    kind: ingest
    source: {type: csv, path: data/penguins.csv}
    outputs: [lake://raw/penguins]
  - id: features
    kind: transform
    depends_on: [ingest]
    inputs: [lake://raw/penguins]
    outputs: [lake://features/penguins]
    steps:
      - select: [species, bill_length_mm, bill_depth_mm, flipper_length_mm]
      - fill_missing: {columns: [bill_length_mm, bill_depth_mm, flipper_length_mm], strategy: median}
  - id: train
    kind: train
    depends_on: [features]
    inputs: [lake://features/penguins]
    retries: 1
    retry_delay: 0s
    model:
      name: slow_species
      target: species
      candidates:
        - {algorithm: random_forest, grid: {n_trees: [3000], max_depth: [4, 6, 8, 10, 12, 14]}}
      cv: {folds: 10, seed: 1}
"#;

#[tokio::test]
async fn worker_killed_while_training_leaves_no_version_and_the_retry_registers_one() {
    let mut sluice = Sluice::new(Backend::Postgres, &[("slow_train.yaml", SLOW_TRAIN)]).await;
    sluice.add_data("penguins.csv", PENGUINS);
    sluice.start_server(&[]).await;
    let first = sluice.spawn_worker(&["--slots", "1"]);
    let run_id = sluice.trigger("slow_train", json!({})).await;
    sluice.wait_task_state("slow_train", &run_id, "train", "running").await;
    sluice
        .eventually("the train task to start fitting", Duration::from_secs(30), || async {
            sluice.log("slow_train", &run_id, "train", 1).await.contains("training slow_species").then_some(())
        })
        .await;
    sluice.workers[first].kill_9();

    // Nothing of the interrupted try: no version in the registry, no version folder in the lake.
    let models = sluice.lake.path().join("models/slow_species");
    let (status, versions) = sluice.get("/models/slow_species/versions").await;
    assert_eq!((status, versions["total_entries"].as_i64()), (200, Some(0)), "{versions}");
    // A version's model file is written last: a folder with one is a complete version.
    let complete = || -> Vec<String> {
        std::fs::read_dir(&models)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|e| e.path().join("model.json").is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(complete(), Vec::<String>::new(), "a version written by the killed try");

    sluice.spawn_worker(&["--slots", "1"]);
    let run = sluice.wait_run_done("slow_train", &run_id, Duration::from_secs(300)).await;
    assert_eq!(run["state"], "success", "{}", sluice.all_output());
    let tries = sluice.tries("slow_train", &run_id, "train").await;
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert!(tries[0]["error"].as_str().unwrap().contains("lost"), "{:?}", tries[0]);
    assert_eq!(max_overlapping(&tries), 1, "never two tries at once: {tries:?}");

    // Exactly one version, complete, from the retry.
    let (_, versions) = sluice.get("/models/slow_species/versions").await;
    let versions = versions["versions"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 1, "{versions:?}");
    let version = versions[0]["version"].as_i64().unwrap();
    for file in ["model.json", "signature.json", "reference.json"] {
        assert!(models.join(version.to_string()).join(file).is_file(), "{file} of version {version}");
    }
    assert_eq!(complete(), vec![version.to_string()], "only the registered version is complete");
}
