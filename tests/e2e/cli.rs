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
    let dag =
        "dag_id: once\ntasks:\n  - id: hello\n    script: echo \"hello {{ params.who }}\"\nparams:\n  who: world\n";
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
