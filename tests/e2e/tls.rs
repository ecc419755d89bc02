//! TLS both ways, with a private CA made for each test: the server serving HTTPS to workers, the CLI and the
//! standalone's own workers, which trust that CA; and the server reaching a PostgreSQL of the test's own over TLS
//! that verifies the database's certificate.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use serde_json::json;
use sluice_tests::{Backend, PrivatePostgres, Sluice, TestDb, free_port};
use sqlx::Row;

const HELLO: &str = "dag_id: hello\nschedule: null\ntasks:\n  - id: greet\n    script: echo hello over tls\n";

/// A CA, a certificate it signed for `localhost` and `127.0.0.1` with its key, and a second CA that signed nothing
/// here, as PEM files in a folder of their own.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = ca("Sluice test CA");
        let (other_ca_pem, _) = ca("Another CA");
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        for (name, pem) in [
            ("ca.pem", ca_pem.as_str()),
            ("other-ca.pem", &other_ca_pem),
            ("server.pem", &cert.pem()),
            ("server-key.pem", &key.serialize_pem()),
        ] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        Pki { dir, ca_pem }
    }

    /// The path of one of the files, as an argument.
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A self-signed CA certificate (PEM) and what signs with it.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

#[tokio::test]
async fn workers_and_the_cli_reach_an_https_server_through_a_private_ca() {
    let pki = Pki::new();
    let mut sluice = Sluice::new(Backend::Sqlite, &[("hello.yaml", HELLO)]).await;
    sluice.use_https(&pki.ca_pem);
    sluice.start_server(&["--tls-cert", &pki.path("server.pem"), "--tls-key", &pki.path("server-key.pem")]).await;
    sluice.spawn_worker(&["--ca-cert", &pki.path("ca.pem")]);
    sluice.unpause("hello").await;
    let run_id = sluice.trigger("hello", json!({})).await;
    let run = sluice.wait_run_done("hello", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{}", sluice.run_logs("hello", &run_id).await);
    assert!(sluice.log("hello", &run_id, "greet", 1).await.contains("hello over tls"));

    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/health", sluice.port)).send().await;
    assert!(plain.is_err(), "plain HTTP to the HTTPS port was answered: {plain:?}");

    // A worker that does not trust the CA never gets in, and says why.
    let stranger = sluice.spawn_worker(&[]);
    let log = sluice
        .eventually("the worker without the CA to log why", Duration::from_secs(30), || {
            let output = sluice.workers[stranger].output();
            async move { output.contains("lease failed").then_some(output) }
        })
        .await;
    assert!(log.contains("invalid peer certificate: UnknownIssuer"), "{log}");

    let (token, ca) = (sluice.token.clone().unwrap(), pki.path("ca.pem"));
    let list = ["runs", "list", "hello", "--server", &sluice.url, "--token", &token];
    let (code, output) = sluice.run_cli(&[&list[..], &["--ca-cert", &ca][..]].concat()).await;
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains(&run_id), "{output}");
    let (code, output) = sluice.run_cli(&list).await;
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("invalid peer certificate: UnknownIssuer"), "{output}");
}

#[tokio::test]
async fn standalone_serves_https_and_its_own_workers_trust_its_ca() {
    let pki = Pki::new();
    let mut sluice = Sluice::new(Backend::Sqlite, &[("hello.yaml", HELLO)]).await;
    sluice.use_https(&pki.ca_pem);
    // Set as variables, the way a deployment's environment or sluice.toml gives them.
    for (name, file) in
        [("SLUICE_TLS_CERT", "server.pem"), ("SLUICE_TLS_KEY", "server-key.pem"), ("SLUICE_CA_CERT", "ca.pem")]
    {
        sluice.env.push((name.to_owned(), pki.path(file)));
    }
    let home = tempfile::tempdir().unwrap();
    let (mut standalone, _) = sluice.start_standalone(home.path()).await;
    sluice.unpause("hello").await;
    let run_id = sluice.trigger("hello", json!({})).await;
    let run = sluice.wait_run_done("hello", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{}\n{}", sluice.run_logs("hello", &run_id).await, standalone.output());

    // Stopping is as graceful over TLS: the workers' long polls end, and so do they.
    standalone.terminate();
    assert_eq!(standalone.wait_exit(Duration::from_secs(40)).await, Some(0), "{}", standalone.output());
    let output = standalone.output();
    assert!(output.contains(&format!("Sluice is running: dashboard https://127.0.0.1:{}/", sluice.port)), "{output}");
    assert_eq!(output.matches("worker stopped").count(), 2, "both workers stopped: {output}");
}

#[tokio::test]
async fn a_server_with_half_or_wrong_tls_files_does_not_start_and_names_them() {
    let pki = Pki::new();
    let sluice = Sluice::new(Backend::Sqlite, &[]).await;
    let (cert, key, missing) = (pki.path("server.pem"), pki.path("server-key.pem"), pki.path("missing.pem"));
    let cases: [(Vec<&str>, String); 4] = [
        (vec!["--tls-cert", &cert], "--tls-cert (SLUICE_TLS_CERT) and --tls-key (SLUICE_TLS_KEY) go together".into()),
        (vec!["--tls-key", &key], "--tls-cert (SLUICE_TLS_CERT) and --tls-key (SLUICE_TLS_KEY) go together".into()),
        (vec!["--tls-cert", &missing, "--tls-key", &key], format!("cannot read the TLS certificate {missing}")),
        (vec!["--tls-cert", &key, "--tls-key", &cert], format!("the TLS certificate {key} holds no PEM certificate")),
    ];
    for (flags, expected) in cases {
        let args = [&["server", "--bind", "127.0.0.1:0"][..], &flags[..]].concat();
        let started = tokio::time::timeout(Duration::from_secs(30), sluice.run_cli(&args)).await;
        let (code, output) = started.unwrap_or_else(|_| panic!("{flags:?}: the server started"));
        assert_eq!(code, Some(1), "{flags:?}: {output}");
        assert!(output.contains(&expected), "{flags:?}: {output}");
    }
}

#[tokio::test]
async fn a_server_reaches_postgresql_over_verified_tls_and_refuses_a_wrong_ca() {
    let pki = Pki::new();
    let mut postgres = PrivatePostgres::init(
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
    );
    let cert = postgres.add_file(&pki.dir.path().join("server.pem"), false);
    let key = postgres.add_file(&pki.dir.path().join("server-key.pem"), true);
    postgres.set("ssl", "on");
    postgres.set("ssl_cert_file", &cert.display().to_string());
    postgres.set("ssl_key_file", &key.display().to_string());
    postgres.start().await;
    let mut observer = postgres.observer().await;
    // Over TCP, verifying the server's certificate against the CA in `ca`.
    let verify_full_url = |ca: &str| format!("{}?sslmode=verify-full&sslrootcert={ca}", postgres.url());
    let db = TestDb::existing(verify_full_url(&pki.path("ca.pem")));
    let mut sluice = Sluice::on(db, &[("hello.yaml", HELLO)]);
    sluice.start_server(&[]).await;
    sluice.spawn_worker(&[]);
    sluice.unpause("hello").await;
    let run_id = sluice.trigger("hello", json!({})).await;
    let run = sluice.wait_run_done("hello", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{}", sluice.run_logs("hello", &run_id).await);

    // The server's connections came over TCP, which pg_hba.conf allows with TLS only; check it all the same.
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl), min(s.version)
           FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
          WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL",
    )
    .fetch_one(&mut observer)
    .await
    .unwrap();
    let (tls, plain, version): (i64, i64, Option<String>) = (row.get(0), row.get(1), row.get(2));
    assert!(tls >= 1 && plain == 0, "{tls} connections over TLS, {plain} without");
    assert!(version.is_some_and(|v| v.starts_with("TLSv1.")));

    let wrong = verify_full_url(&pki.path("other-ca.pem"));
    let bind = format!("127.0.0.1:{}", free_port());
    let mut refused = sluice.spawn("server-wrong-ca", &["server", "--bind", &bind, "--database-url", &wrong]);
    assert_eq!(refused.wait_exit(Duration::from_secs(30)).await, Some(1), "{}", refused.output());
    let output = refused.output();
    assert!(output.contains("TLS connection to PostgreSQL failed (sslmode=verify-full)"), "{output}");
    assert!(output.contains("invalid peer certificate: UnknownIssuer"), "{output}");
}
