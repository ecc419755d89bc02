//! The deployment files: docker-compose.yml and deploy/kubernetes/sluice.yaml give every process what it needs,
//! the same way, and only settings and flags that the `sluice` binary knows. The first-start command of both
//! (migrate, create the Admin) runs here for real, twice, against PostgreSQL.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sluice_tests::{Backend, Sluice, sluice_bin};

const COMPOSE: &str = include_str!("../../docker-compose.yml");
const ENV_EXAMPLE: &str = include_str!("../../.env.example");
const KUBERNETES: &str = include_str!("../../deploy/kubernetes/sluice.yaml");

/// Settings that are secrets: in Kubernetes they must come from a Secret, never a literal.
const SECRETS: [&str; 6] = [
    "SLUICE_WORKER_TOKEN",
    "SLUICE_SECRET_KEY",
    "SLUICE_ENCRYPTION_KEY",
    "SLUICE_DATABASE_URL",
    "SLUICE_ADMIN_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
];

fn compose() -> Value {
    serde_saphyr::from_str(COMPOSE).unwrap()
}

fn kubernetes() -> Vec<Value> {
    serde_saphyr::from_multiple(KUBERNETES).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
}

/// The `sluice` invocations in a command: the command itself, or those in a `bash -c` line.
fn sluice_commands(command: &[String]) -> Vec<Vec<String>> {
    match command.first().map(String::as_str) {
        Some("bash" | "sh") => command[command.len() - 1]
            .split(['|', '&', ';'])
            .map(|part| part.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .filter(|words| words.first().is_some_and(|w| w == "sluice"))
            .map(|words| words[1..].to_vec())
            .collect(),
        Some(_) => vec![command.to_vec()],
        None => Vec::new(),
    }
}

/// The binary's help for `args`' subcommand, after its parser accepted every flag in `args`.
fn help_accepting(args: &[String]) -> String {
    let output = Command::new(sluice_bin()).args(args).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "sluice {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    help
}

/// Every `SLUICE_*` setting given to a process is one its subcommand reads (for a worker, or the `sluice run-op`
/// it starts for data tasks with its environment).
fn assert_known(what: &str, args: &[String], env: &BTreeSet<String>) {
    let mut help = help_accepting(args);
    if args.first().is_some_and(|a| a == "worker") {
        help += &help_accepting(&["run-op".to_owned()]);
    }
    for name in env.iter().filter(|n| n.starts_with("SLUICE_")) {
        assert!(help.contains(&format!("env: {name}")), "{what}: `sluice {}` reads no {name}", args.join(" "));
    }
}

#[test]
fn compose_gives_every_service_what_it_needs() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let env = |name: &str| -> BTreeMap<String, String> {
        services[name]["environment"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect())
            .unwrap_or_default()
    };

    // Dependencies name services, wait for health only where there is a check, and for completion only of
    // one-off services.
    for (name, service) in services {
        let Some(depends) = service["depends_on"].as_object() else { continue };
        for (target, how) in depends {
            assert!(services.contains_key(target), "{name} depends on a missing {target}");
            match how["condition"].as_str() {
                Some("service_healthy") => assert!(services[target]["healthcheck"].is_object(), "{target}: no check"),
                Some("service_completed_successfully") => {
                    assert!(target.ends_with("-init"), "{name} waits for {target} to end, but it is a service");
                }
                other => panic!("{name} → {target}: {other:?}"),
            }
        }
    }
    for volume in services.values().flat_map(|s| strings(&s["volumes"])) {
        let source = volume.split(':').next().unwrap();
        assert!(source.starts_with("./") || compose["volumes"].get(source).is_some(), "undeclared volume {source}");
    }
    // Every variable the file reads from .env is in .env.example.
    let example: BTreeSet<&str> = ENV_EXAMPLE.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k).collect();
    for reference in COMPOSE.split("${").skip(1) {
        let name = reference.split([':', '}', '-']).next().unwrap();
        assert!(example.contains(name), "{name} is not in .env.example");
    }

    // The server: published on the port it binds, reachable by the workers, sharing their token and lake.
    let server = env("server");
    let command = strings(&services["server"]["command"]);
    let bind = &command[command.iter().position(|a| a == "--bind").unwrap() + 1];
    let port = bind.rsplit(':').next().unwrap();
    assert!(strings(&services["server"]["ports"]).contains(&format!("{port}:{port}")), "{bind}");
    assert!(strings(&services["server"]["healthcheck"]["test"]).join(" ").contains(&format!("{port}/health")));
    for key in ["SLUICE_DATABASE_URL", "SLUICE_SECRET_KEY", "SLUICE_ENCRYPTION_KEY", "SLUICE_WORKER_TOKEN"] {
        assert!(server.contains_key(key), "the server has no {key}");
    }
    let workers: Vec<&String> = services.keys().filter(|k| k.starts_with("worker")).collect();
    assert!(workers.len() >= 2, "{workers:?}");
    let mut names = BTreeSet::new();
    for worker in &workers {
        let worker_env = env(worker);
        let command = strings(&services[worker.as_str()]["command"]);
        let url = &command[command.iter().position(|a| a == "--server").unwrap() + 1];
        assert_eq!(url, &format!("http://server:{port}"), "{worker}");
        names.insert(command[command.iter().position(|a| a == "--name").unwrap() + 1].clone());
        for shared in ["SLUICE_WORKER_TOKEN", "SLUICE_LAKE", "SLUICE_DAGS_FOLDER", "AWS_ENDPOINT_URL"] {
            assert_eq!(worker_env.get(shared), server.get(shared), "{worker} and the server differ in {shared}");
        }
        for private in ["SLUICE_DATABASE_URL", "SLUICE_SECRET_KEY", "SLUICE_ENCRYPTION_KEY"] {
            assert!(!worker_env.contains_key(private), "{worker} needs no {private}");
        }
        assert_known(worker, &command, &worker_env.keys().cloned().collect());
    }
    assert_eq!(names.len(), workers.len(), "each worker has its own name: {names:?}");
    assert!(server["SLUICE_LAKE"].starts_with("s3://"), "a lake every worker sees");
    assert_eq!(
        server["SLUICE_LAKE"].trim_start_matches("s3://").split('/').next(),
        strings(&services["minio-init"]["command"])[0].rsplit('/').next(),
        "the init creates the lake's bucket"
    );
    assert_known("server", &command, &server.keys().cloned().collect());
    for args in sluice_commands(
        &strings(&services["sluice-init"]["entrypoint"])
            .into_iter()
            .chain(strings(&services["sluice-init"]["command"]))
            .collect::<Vec<_>>(),
    ) {
        help_accepting(&args);
    }
}

/// Each container of a Kubernetes workload: its name, args, and settings (literal ones and references).
struct Container {
    workload: String,
    command: Vec<String>,
    env: BTreeMap<String, Value>,
}

#[test]
fn kubernetes_manifests_match_the_compose_file() {
    let documents = kubernetes();
    let of_kind = |kind: &'static str| documents.iter().filter(move |d| d["kind"] == kind);
    let secret = of_kind("Secret").next().unwrap();
    let secret_keys: BTreeSet<&str> = secret["stringData"].as_object().unwrap().keys().map(String::as_str).collect();
    let config = of_kind("ConfigMap").next().unwrap();
    let config_name = config["metadata"]["name"].as_str().unwrap();

    let mut containers = Vec::new();
    for workload in of_kind("Deployment").chain(of_kind("Job")) {
        for container in workload["spec"]["template"]["spec"]["containers"].as_array().unwrap() {
            let mut env = BTreeMap::new();
            for source in container["envFrom"].as_array().into_iter().flatten() {
                assert_eq!(source["configMapRef"]["name"], config_name);
                for (key, value) in config["data"].as_object().unwrap() {
                    env.insert(key.clone(), value.clone());
                }
            }
            for entry in container["env"].as_array().into_iter().flatten() {
                if let Some(reference) = entry["valueFrom"]["secretKeyRef"].as_object() {
                    assert_eq!(reference["name"], secret["metadata"]["name"]);
                    let key = reference["key"].as_str().unwrap();
                    assert!(secret_keys.contains(key), "no key {key} in the Secret");
                }
                env.insert(entry["name"].as_str().unwrap().to_owned(), entry.clone());
            }
            let command = strings(&container["command"]).into_iter().chain(strings(&container["args"])).collect();
            containers.push(Container {
                workload: workload["metadata"]["name"].as_str().unwrap().to_owned(),
                command,
                env,
            });
        }
    }
    for container in &containers {
        for name in SECRETS.iter().filter(|n| container.env.contains_key(**n)) {
            assert!(
                container.env[*name]["valueFrom"]["secretKeyRef"].is_object(),
                "{}: {name} must come from the Secret",
                container.workload
            );
        }
        for args in sluice_commands(&container.command) {
            help_accepting(&args);
        }
    }

    // Each process gets at least what its compose counterpart gets, and only settings its subcommand reads.
    let compose = compose();
    let services = &compose["services"];
    let names = |service: &str| -> BTreeSet<String> {
        services[service]["environment"].as_object().unwrap().keys().cloned().collect()
    };
    let find = |prefix: &str| containers.iter().find(|c| c.command.first().is_some_and(|a| a == prefix)).unwrap();
    for (service, container) in
        [("server", find("server")), ("worker-1", find("worker")), ("sluice-init", find("bash"))]
    {
        let have: BTreeSet<String> = container.env.keys().cloned().collect();
        let missing: Vec<_> = names(service).difference(&have).cloned().collect();
        assert!(missing.is_empty(), "{} lacks what compose's {service} has: {missing:?}", container.workload);
    }
    for subcommand in ["server", "worker", "scheduler"] {
        let container = find(subcommand);
        let explicit: BTreeSet<String> =
            container.env.keys().filter(|k| !config["data"].as_object().unwrap().contains_key(*k)).cloned().collect();
        assert_known(&container.workload, &container.command, &explicit);
    }
    let scheduler = find("scheduler");
    for key in ["SLUICE_DATABASE_URL", "SLUICE_ENCRYPTION_KEY", "SLUICE_DAGS_FOLDER"] {
        assert!(scheduler.env.contains_key(key), "the scheduler has no {key}");
    }
    let server = find("server");
    assert!(server.command.contains(&"--no-scheduler".to_owned()), "schedulers run in their own workload");

    // Workers reach the server through its Service, on the port the server binds and probes.
    let service = of_kind("Service").next().unwrap();
    let port = service["spec"]["ports"][0]["port"].as_i64().unwrap();
    let worker = find("worker");
    let url = &worker.command[worker.command.iter().position(|a| a == "--server").unwrap() + 1];
    assert_eq!(url, &format!("http://{}:{port}", service["metadata"]["name"].as_str().unwrap()));
    assert!(server.command.contains(&format!("0.0.0.0:{port}")), "{:?}", server.command);
    let deployment = of_kind("Deployment").find(|d| d["metadata"]["name"] == server.workload.as_str()).unwrap();
    let probe = &deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"];
    assert_eq!((probe["path"].as_str(), probe["port"].as_i64()), (Some("/health"), Some(port)));
}

/// The first-start command migrates an empty database and creates the Admin, and running it again changes nothing.
#[tokio::test]
async fn the_first_start_command_creates_the_admin_once() {
    let compose = compose();
    let init = &compose["services"]["sluice-init"];
    // Compose writes `$$` for a `$` that the shell, not compose, expands.
    let line = strings(&init["command"]).pop().unwrap().replace("$$", "$");
    let mut sluice = Sluice::new(Backend::Postgres, &[]).await;
    let bin_dir = sluice_bin().parent().unwrap().to_owned();
    let run = |password: &str| {
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        Command::new("bash")
            .args(["-c", &line])
            .env("PATH", path)
            .env("SLUICE_DATABASE_URL", &sluice.db.url)
            .env("SLUICE_ENCRYPTION_KEY", sluice_tests::ENCRYPTION_KEY)
            .env("SLUICE_ADMIN_PASSWORD", password)
            .current_dir(Path::new("/"))
            .output()
            .unwrap()
    };
    let first = run("first-admin-password");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let again = run("another-password");
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stdout).contains("exists already"));

    // A token already set: the harness creates no admin of its own.
    sluice.token = Some(String::new());
    sluice.start_server(&[]).await;
    sluice.login("admin", "first-admin-password").await;
}
