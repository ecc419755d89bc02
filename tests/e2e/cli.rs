//! The `sluice` command line, as users run it.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::process::Command;

use sluice_tests::sluice_bin;

#[test]
fn dags_validate_prints_every_error_with_its_location_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yaml"), "dag_id: good\ntasks:\n  - id: a\n    script: echo a\n").unwrap();
    let broken = "dag_id: bad\nschedule: \"61 * * * *\"\nstart_date: 2026-01-01\ntimezone: Mars/Olympus\n\
                  tasks:\n  - id: a\n    depends_on: [b]\n    script: echo a\n  - id: b\n    depends_on: [a]\n    \
                  script: echo b\n  - id: a\n    script: echo again\n";
    std::fs::write(dir.path().join("bad.yaml"), broken).unwrap();
    let output = Command::new(sluice_bin()).args(["dags", "validate"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let file = dir.path().join("bad.yaml").display().to_string();
    for expected in [
        format!("{file}:2:11: "), // the cron
        format!("{file}:4:11: "), // the timezone
        format!("{file}:12:9: "), // the duplicate task id
    ] {
        assert!(stdout.contains(&expected), "missing {expected:?} in\n{stdout}");
    }
    assert!(stdout.contains("cycle"), "{stdout}");
    assert!(stdout.contains("2 file(s) checked: 1 valid, 1 with errors"), "{stdout}");

    let ok = Command::new(sluice_bin()).args(["dags", "validate"]).arg(dir.path().join("good.yaml")).output().unwrap();
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn dags_test_runs_a_dag_once_and_prints_its_logs() {
    let dir = tempfile::tempdir().unwrap();
    let dag = "dag_id: once\ntasks:\n  - id: hello\n    script: echo \"hello {{ params.who }}\"\n  - id: where\n    \
               script: echo \"folder=$SLUICE_DAGS_FOLDER\"\nparams:\n  who: world\n";
    std::fs::write(dir.path().join("once.yaml"), dag).unwrap();
    let output = Command::new(sluice_bin())
        .args(["dags", "test", "once", "--conf", r#"{"who": "sluice"}"#, "--dags-folder"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("hello sluice"), "{stdout}");
    assert!(stdout.contains(": success"), "{stdout}");
    // Its tasks read the folder given, as a standalone's do.
    assert!(stdout.contains(&format!("folder={}", dir.path().display())), "{stdout}");
}

#[test]
fn sluice_toml_fills_in_settings_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("from_toml")).unwrap();
    std::fs::write(dir.path().join("from_toml/bad.yaml"), "dag_id: [\n").unwrap();
    std::fs::write(dir.path().join("sluice.toml"), "dags_folder = \"from_toml\"\n").unwrap();
    let run = |env: Option<&str>| {
        let mut command = Command::new(sluice_bin());
        command.args(["dags", "validate"]).current_dir(dir.path()).env_remove("SLUICE_DAGS_FOLDER");
        if let Some(folder) = env {
            command.env("SLUICE_DAGS_FOLDER", folder);
        }
        let output = command.output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (code, stdout) = run(None);
    assert_eq!(code, Some(1), "the file's folder was read: {stdout}");
    assert!(stdout.contains("bad.yaml"), "{stdout}");
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let (code, stdout) = run(Some("empty"));
    assert_eq!(code, Some(0), "the environment wins over sluice.toml: {stdout}");
}

const CHATTY: &str = r#"
dag_id: chatty
schedule: null
is_paused_upon_creation: false
tasks:
  - id: talk
    script: for i in 1 2 3 4 5; do echo "line $i of {{ dag_run.conf.topic }}"; sleep 0.3; done
  - id: after
    depends_on: [talk]
    script: echo done
"#;

/// Runs `sluice ARGS` against the test server; answers (exit code, stdout, stderr).
fn sluice_cli(sluice: &sluice_tests::Sluice, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(sluice_bin())
        .args(args)
        .env("SLUICE_SERVER", &sluice.url)
        .env("SLUICE_TOKEN", sluice.token.as_deref().unwrap_or_default())
        .env("XDG_CONFIG_HOME", sluice.dags.path())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

#[tokio::test]
async fn the_cli_triggers_follows_logs_and_manages_variables_over_the_api() {
    use sluice_tests::{Backend, Sluice};
    let sluice = Sluice::start(Backend::Sqlite, &[("chatty.yaml", CHATTY)], 1).await;
    sluice.wait_dag("chatty").await;

    let (code, out, err) =
        sluice_cli(&sluice, &["dags", "trigger", "chatty", "--conf", r#"{"topic": "rivers"}"#, "--output", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let run: serde_json::Value = serde_json::from_str(&out).unwrap();
    let run_id = run["dag_run_id"].as_str().unwrap().to_string();

    // --follow prints lines as they come and returns when the try ends.
    sluice.wait_task_state("chatty", &run_id, "talk", "running").await;
    let (code, out, err) = sluice_cli(&sluice, &["tasks", "logs", "chatty", &run_id, "talk", "--follow"]);
    assert_eq!(code, 0, "{out}{err}");
    for i in 1..=5 {
        assert!(out.contains(&format!("line {i} of rivers")), "line {i} in\n{out}");
    }
    sluice.wait_run_done("chatty", &run_id, std::time::Duration::from_secs(60)).await;
    let (code, out, _) = sluice_cli(&sluice, &["tasks", "list", "chatty", &run_id]);
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().starts_with("task_id"), "a table with a header:\n{out}");
    assert_eq!(out.lines().filter(|l| l.contains("success")).count(), 2, "{out}");

    let (code, out, err) = sluice_cli(&sluice, &["variables", "set", "region", "eu-west"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(sluice_cli(&sluice, &["variables", "set", "region", "eu-north"]).0, 0, "set replaces");
    let (_, out, _) = sluice_cli(&sluice, &["variables", "get", "region", "--output", "json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["value"], "eu-north");
    let export = sluice.dags.path().join("variables.json");
    assert_eq!(sluice_cli(&sluice, &["variables", "export", export.to_str().unwrap()]).0, 0);
    assert_eq!(sluice_cli(&sluice, &["variables", "delete", "region"]).0, 0);
    assert_eq!(sluice_cli(&sluice, &["variables", "get", "region"]).0, 1, "gone");
    assert_eq!(sluice_cli(&sluice, &["variables", "import", export.to_str().unwrap()]).0, 0);
    let (_, out, _) = sluice_cli(&sluice, &["variables", "list"]);
    assert!(out.contains("region") && out.contains("eu-north"), "{out}");

    // Exit codes: 1 when the server refuses, 2 for a usage error.
    let (code, _, err) = sluice_cli(&sluice, &["runs", "show", "chatty", "no_such_run"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("404"), "{err}");
    assert_eq!(sluice_cli(&sluice, &["runs", "mark", "chatty", &run_id, "--state", "purple"]).0, 2);
    assert_eq!(sluice_cli(&sluice, &["dags", "trigger", "chatty", "--conf", "[1]"]).0, 2);
    assert_eq!(sluice_cli(&sluice, &["runs", "frobnicate"]).0, 2, "clap's own usage error");
    let (code, out, _) = sluice_cli(&sluice, &["runs", "mark", "chatty", &run_id, "--state", "failed"]);
    assert_eq!(code, 0);
    assert!(out.contains("failed"), "{out}");
}

fn daily(marker: &str) -> String {
    format!(
        r#"
dag_id: daily_report
schedule: "@daily"
start_date: 2026-01-01
catchup: false
is_paused_upon_creation: false
tasks:
  - id: report
    script: '{{ test "{{{{ ds }}}}" != 2026-01-03 || test -f "{marker}"; }} && echo "report for {{{{ ds }}}}"'
"#
    )
}

#[tokio::test]
async fn backfill_runs_every_past_date_and_reruns_failed_ones_on_request() {
    use sluice_tests::{Backend, Sluice};
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("fixed");
    let dag = daily(marker.to_str().unwrap());
    let sluice = Sluice::start(Backend::Postgres, &[("daily.yaml", &dag)], 2).await;
    sluice.wait_dag("daily_report").await;

    let (code, out, err) =
        sluice_cli(&sluice, &["backfill", "daily_report", "--from", "2026-01-01", "--to", "2026-01-04", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("2026-01-01T00:00:00Z\n") && out.ends_with("4 runs\n"), "{out}");

    // 3 January fails until the marker exists: the backfill reports it and exits 1.
    let (code, out, err) =
        sluice_cli(&sluice, &["backfill", "daily_report", "--from", "2026-01-01", "--to", "2026-01-04"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("4 runs, 3 succeeded, 1 failed (backfill__2026-01-03T00:00:00+00:00)"), "{out}{err}");
    let (_, runs) = sluice.get("/dags/daily_report/dagRuns?run_type=backfill&order_by=logical_date").await;
    let dates: Vec<&str> =
        runs["dag_runs"].as_array().unwrap().iter().map(|r| r["logical_date"].as_str().unwrap()).collect();
    assert_eq!(dates, ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"]);
    let log = sluice.log("daily_report", "backfill__2026-01-02T00:00:00+00:00", "report", 1).await;
    assert!(log.contains("report for 2026-01-02"), "{log}");

    // Without --rerun-failed, existing runs are left alone; with it, the failed date runs again and passes.
    std::fs::write(&marker, "").unwrap();
    let (code, out, _) =
        sluice_cli(&sluice, &["backfill", "daily_report", "--from", "2026-01-03", "--to", "2026-01-03"]);
    assert_eq!(code, 1, "the failed run was not touched: {out}");
    let (code, out, err) = sluice_cli(
        &sluice,
        &[
            "backfill",
            "daily_report",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-04",
            "--rerun-failed",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["backfill"]["reprocess_behavior"], "failed");
    assert!(answer["dag_runs"].as_array().unwrap().iter().all(|r| r["state"] == "success"), "{out}");
    let tries = sluice.tries("daily_report", "backfill__2026-01-03T00:00:00+00:00", "report").await;
    assert_eq!(tries.len(), 2, "the failed date ran once more");
    let (status, backfills) = sluice.get("/backfills?dag_id=daily_report").await;
    assert_eq!(status, 200, "{backfills}");
    assert_eq!(backfills["total_entries"], 3);
    assert!(!backfills["backfills"][0]["completed_at"].is_null(), "{backfills}");

    assert_eq!(sluice_cli(&sluice, &["backfill", "daily_report", "--from", "last tuesday", "--to", "2026-01-01"]).0, 2);
}

#[tokio::test]
async fn db_clean_counts_then_deletes_old_history_and_keeps_the_rest() {
    // Each run's success alert goes to a connection that does not exist: with one attempt, it fails at once.
    let dag = "dag_id: kept\nschedule: null\nis_paused_upon_creation: false\n\
               on_success: [{type: webhook, connection: nowhere}]\ntasks:\n  - id: a\n    script: echo a\n";
    let mut sluice = sluice_tests::Sluice::new(sluice_tests::Backend::Postgres, &[("kept.yaml", dag)]).await;
    sluice.env.push(("SLUICE_ALERT_ATTEMPTS".into(), "1".into()));
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&["--slots", "4"]);
    sluice.wait_dag("kept").await;
    let mut old = Vec::new();
    for _ in 0..3 {
        let run_id = sluice.trigger("kept", serde_json::json!({})).await;
        sluice.wait_run_done("kept", &run_id, std::time::Duration::from_secs(30)).await;
        old.push(run_id);
    }
    sluice
        .eventually("the three alerts to fail", std::time::Duration::from_secs(30), || async {
            let (_, failed) = sluice.get("/notifications?state=failed").await;
            (failed["total_entries"] == 3).then_some(())
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let recent = sluice.trigger("kept", serde_json::json!({})).await;
    sluice.wait_run_done("kept", &recent, std::time::Duration::from_secs(30)).await;

    let (code, out) =
        sluice.run_cli(&["db", "clean", "--older-than", "2s", "--tables", "dag_runs,event_log", "--dry-run"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("dag_runs: 3 rows older than"), "{out}");
    assert!(out.contains("event_log: 3 rows older than"), "the three triggers: {out}");
    let (code, out) =
        sluice.run_cli(&["db", "clean", "--older-than", "2s", "--tables", "notifications", "--yes"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("notifications: 3 rows deleted"), "{out}");
    let (_, alerts) = sluice.get("/notifications").await;
    assert_eq!(alerts["total_entries"], 1, "the recent run's alert stays: {alerts}");
    let (_, runs) = sluice.get("/dags/kept/dagRuns").await;
    assert_eq!(runs["total_entries"], 4, "a dry run deletes nothing");

    let (code, out) = sluice.run_cli(&["db", "clean", "--older-than", "2s", "--tables", "dag_runs"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("pass --yes"), "{out}");

    let (code, out) = sluice.run_cli(&["db", "clean", "--older-than", "2s", "--tables", "dag_runs", "--yes"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("dag_runs: 3 rows deleted"), "{out}");
    let (_, runs) = sluice.get("/dags/kept/dagRuns").await;
    let left: Vec<&str> =
        runs["dag_runs"].as_array().unwrap().iter().map(|r| r["dag_run_id"].as_str().unwrap()).collect();
    assert_eq!(left, [recent.as_str()], "the recent run stays");
    let (status, _) = sluice.get(&format!("/dags/kept/dagRuns/{}/taskInstances/a/logs/1", old[0])).await;
    assert_eq!(status, 404, "an old run's task instances and logs went with it");

    let (code, out) = sluice.run_cli(&["db", "clean", "--older-than", "2s", "--tables", "dag_run"]).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("one of dag_runs, task_logs, event_log, notifications"), "{out}");
}
