//! Authentication and roles end to end: tokens, API keys, Airflow's four roles and per-DAG `access_control`.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use reqwest::Method;
use serde_json::{Value, json};
use sluice_tests::{Backend, SECRET_KEY, Sluice, WORKER_TOKEN};

const OPEN: &str = "dag_id: open\nschedule: null\ntasks:\n  - id: a\n    script: echo a\n";
/// Readable by Op only, and editable by nobody but Admin.
const PRIVATE: &str =
    "dag_id: private\nschedule: null\naccess_control:\n  Op: [can_read]\ntasks:\n  - id: a\n    script: echo a\n";

/// A server with the two DAGs (no workers: runs stay queued) and a signed-in user of each role; the tokens of
/// Viewer, User and Op in that order (Admin's is `sluice.token`).
async fn deployment(backend: Backend) -> (Sluice, [String; 3]) {
    let sluice = Sluice::start(backend, &[("open.yaml", OPEN), ("private.yaml", PRIVATE)], 0).await;
    sluice.wait_dag("open").await;
    sluice.wait_dag("private").await;
    let mut tokens = Vec::new();
    for role in ["Viewer", "User", "Op"] {
        let name = role.to_lowercase();
        sluice.create_user(&name, role, &format!("{name}-password")).await;
        tokens.push(sluice.login(&name, &format!("{name}-password")).await);
    }
    (sluice, tokens.try_into().unwrap())
}

fn dag_ids(body: &Value) -> Vec<&str> {
    body["dags"].as_array().unwrap().iter().map(|d| d["dag_id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn each_role_may_do_what_airflow_allows_it_and_gets_403_beyond() {
    let (sluice, [viewer, user, op]) = deployment(Backend::Postgres).await;
    let admin = sluice.token.clone().unwrap();
    let trigger = || Some(json!({"logical_date": null}));
    let variable = |key: &str| Some(json!({"key": key, "value": "v"}));
    // (token, method, path, body, expected status)
    let cases: Vec<(&str, Method, &str, Option<Value>, u16)> = vec![
        (&viewer, Method::GET, "/api/v2/dags", None, 200),
        (&viewer, Method::GET, "/api/v2/dags/open/dagRuns", None, 200),
        (&viewer, Method::GET, "/api/v2/importErrors", None, 200),
        (&viewer, Method::PATCH, "/api/v2/dags/open", Some(json!({"is_paused": false})), 403),
        (&viewer, Method::POST, "/api/v2/dags/open/dagRuns", trigger(), 403),
        (&viewer, Method::GET, "/api/v2/variables", None, 403),
        (&user, Method::PATCH, "/api/v2/dags/open", Some(json!({"is_paused": false})), 200),
        (&user, Method::POST, "/api/v2/dags/open/dagRuns", trigger(), 200),
        (&user, Method::GET, "/api/v2/variables", None, 403),
        (&user, Method::POST, "/api/v2/variables", variable("from_user"), 403),
        (&op, Method::POST, "/api/v2/variables", variable("from_op"), 201),
        (&op, Method::GET, "/api/v2/variables/from_op", None, 200),
        (&op, Method::DELETE, "/api/v2/variables/from_op", None, 204),
        (&op, Method::POST, "/api/v2/dags/open/dagRuns", trigger(), 200),
        (&admin, Method::POST, "/api/v2/variables", variable("from_admin"), 201),
    ];
    for (token, method, path, body, expected) in cases {
        let (status, answer) = sluice.request_as(Some(token), method.clone(), path, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        if status == 403 {
            assert!(answer["detail"].is_string(), "403 explains itself: {answer}");
        }
    }
    // Airflow leaves health and version open; everything else wants a credential.
    for path in ["/api/v2/monitor/health", "/api/v2/version"] {
        assert_eq!(sluice.request_as(None, Method::GET, path, None).await.0, 200, "{path}");
    }
    let (status, body) = sluice.request_as(None, Method::GET, "/api/v2/dags", None).await;
    assert_eq!((status, body["detail"].as_str()), (401, Some("Not authenticated")));
}

#[tokio::test]
async fn a_dag_with_access_control_is_hidden_from_roles_it_does_not_list() {
    let (sluice, [viewer, user, op]) = deployment(Backend::Sqlite).await;
    let admin = sluice.token.clone().unwrap();
    let run_id = sluice.trigger("private", json!({})).await;
    sluice.trigger("open", json!({})).await;

    for token in [&viewer, &user] {
        let (status, dags) = sluice.request_as(Some(token), Method::GET, "/api/v2/dags", None).await;
        assert_eq!((status, dag_ids(&dags), dags["total_entries"].as_i64()), (200, vec!["open"], Some(1)));
        let (_, runs) = sluice.request_as(Some(token), Method::GET, "/api/v2/dags/~/dagRuns", None).await;
        let run_dags: Vec<_> = runs["dag_runs"].as_array().unwrap().iter().map(|r| r["dag_id"].clone()).collect();
        assert_eq!(run_dags, vec![json!("open")], "runs of hidden DAGs are hidden too");
        for path in [
            "/api/v2/dags/private".to_string(),
            "/api/v2/dags/private/dagRuns".to_string(),
            format!("/api/v2/dags/private/dagRuns/{run_id}/taskInstances"),
            // An escaped id is the same DAG.
            "/api/v2/dags/priv%61te".to_string(),
        ] {
            let (status, body) = sluice.request_as(Some(token), Method::GET, &path, None).await;
            assert_eq!(status, 403, "{path}: {body}");
        }
    }
    let (status, body) = sluice.request_as(Some(&user), Method::POST, "/api/v2/dags/private/dagRuns", None).await;
    assert_eq!(status, 403, "{body}");

    // Op may read it, as access_control says, but not edit it.
    let (_, dags) = sluice.request_as(Some(&op), Method::GET, "/api/v2/dags", None).await;
    assert_eq!(dag_ids(&dags), ["open", "private"]);
    assert_eq!(sluice.request_as(Some(&op), Method::GET, "/api/v2/dags/private", None).await.0, 200);
    let (_, runs) = sluice.request_as(Some(&op), Method::GET, "/api/v2/dags/~/dagRuns", None).await;
    assert_eq!(runs["total_entries"], 2);
    let pause = Some(json!({"is_paused": false}));
    assert_eq!(sluice.request_as(Some(&op), Method::PATCH, "/api/v2/dags/private", pause.clone()).await.0, 403);
    // Admin is never restricted.
    assert_eq!(sluice.request_as(Some(&admin), Method::PATCH, "/api/v2/dags/private", pause).await.0, 200);
}

/// The claims of a JWT, read without checking its signature.
fn claims(token: &str) -> Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.insecure_disable_signature_validation();
    validation.validate_aud = false;
    let key = jsonwebtoken::DecodingKey::from_secret(b"");
    jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap().claims
}

fn signed(claims: &Value, secret: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &key).unwrap()
}

#[tokio::test]
async fn bad_credentials_expired_forged_and_worker_tokens_get_401() {
    let mut sluice = Sluice::new(Backend::Sqlite, &[("open.yaml", OPEN)]).await;
    sluice.start_server(&["--token-ttl", "90m"]).await;
    let token = sluice.token.clone().unwrap();
    let good = claims(&token);
    assert_eq!(good["exp"].as_u64().unwrap() - good["iat"].as_u64().unwrap(), 90 * 60, "SLUICE_TOKEN_TTL: {good}");
    assert_eq!(sluice.request_as(Some(&token), Method::GET, "/api/v2/dags", None).await.0, 200);

    let login = |body: Value| {
        let http = sluice.http.clone();
        let url = format!("{}/auth/token", sluice.url);
        async move { http.post(url).json(&body).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(login(json!({"username": "admin", "password": "wrong"})).await, 401);
    assert_eq!(login(json!({"username": "nobody", "password": "wrong"})).await, 401);
    assert_eq!(login(json!({"username": "admin", "password": ""})).await, 400);
    assert_eq!(login(json!({"username": "admin"})).await, 422);
    let form = sluice
        .http
        .post(format!("{}/auth/token", sluice.url))
        .form(&[("username", "admin"), ("password", sluice_tests::ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 201, "Airflow's login form posts urlencoded");

    let now = chrono::Utc::now().timestamp();
    let mut expired = good.clone();
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 60);
    let mut foreign = good.clone();
    foreign["aud"] = json!("someone-else");
    let rejected = [
        ("expired", signed(&expired, SECRET_KEY)),
        ("forged", signed(&good, "not-the-server-secret")),
        ("other audience", signed(&foreign, SECRET_KEY)),
        ("worker token", WORKER_TOKEN.to_string()),
        ("garbage", "abc".to_string()),
        ("unknown API key", "sluice_0192f5c6a6a07cc2a1b5e0f4d2f1c3b4_secret".to_string()),
    ];
    for (what, credential) in rejected {
        let (status, body) = sluice.request_as(Some(&credential), Method::GET, "/api/v2/dags", None).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body["detail"].is_string(), "{what}: {body}");
    }
    // A user's token is no worker token.
    let lease = sluice.http.post(format!("{}/worker/v1/lease", sluice.url)).bearer_auth(&token);
    let lease = lease.json(&json!({"worker": "w", "hostname": "h", "queues": ["default"], "slots": 1}));
    assert_eq!(lease.send().await.unwrap().status().as_u16(), 401);

    // Deleting a user ends their tokens at once.
    sluice.create_user("temp", "Viewer", "temp-password").await;
    let temp = sluice.login("temp", "temp-password").await;
    assert_eq!(sluice.request_as(Some(&temp), Method::GET, "/api/v2/dags", None).await.0, 200);
    let (code, output) = sluice.run_cli(&["users", "delete", "temp"]).await;
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(sluice.request_as(Some(&temp), Method::GET, "/api/v2/dags", None).await.0, 401);
}

#[tokio::test]
async fn api_keys_are_created_used_listed_and_revoked() {
    let (sluice, [viewer, user, _op]) = deployment(Backend::Postgres).await;
    let admin = sluice.token.clone().unwrap();
    let keys = "/auth/api-keys";
    let (status, created) = sluice.request_as(Some(&user), Method::POST, keys, Some(json!({"name": "ci"}))).await;
    assert_eq!((status, created["role"].as_str(), created["username"].as_str()), (201, Some("User"), Some("user")));
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let trigger = Some(json!({"logical_date": null}));
    let (status, body) =
        sluice.request_as(Some(&key), Method::POST, "/api/v2/dags/open/dagRuns", trigger.clone()).await;
    assert_eq!(status, 200, "a key acts for its owner: {body}");

    // Listed without its secret, with its last use.
    let (_, list) = sluice.request_as(Some(&user), Method::GET, keys, None).await;
    assert_eq!(list["total_entries"], 1);
    assert!(list["api_keys"][0].get("key").is_none() && list["api_keys"][0]["last_used"].is_string(), "{list}");
    assert!(!list.to_string().contains(key.rsplit('_').next().unwrap()), "the secret is shown once only");

    // A key may have fewer rights than its owner, never more.
    let (status, weak) =
        sluice.request_as(Some(&user), Method::POST, keys, Some(json!({"name": "ro", "role": "Viewer"}))).await;
    assert_eq!(status, 201, "{weak}");
    let weak = weak["key"].as_str().unwrap();
    assert_eq!(sluice.request_as(Some(weak), Method::POST, "/api/v2/dags/open/dagRuns", trigger).await.0, 403);
    let (status, _) =
        sluice.request_as(Some(&user), Method::POST, keys, Some(json!({"name": "x", "role": "Admin"}))).await;
    assert_eq!(status, 403);
    // Keys for someone else are Admin's business.
    let for_viewer = Some(json!({"name": "v", "username": "viewer"}));
    assert_eq!(sluice.request_as(Some(&user), Method::POST, keys, for_viewer.clone()).await.0, 403);
    let (status, body) = sluice.request_as(Some(&admin), Method::POST, keys, for_viewer).await;
    assert_eq!((status, body["role"].as_str()), (201, Some("Viewer")), "{body}");
    let (_, all) = sluice.request_as(Some(&admin), Method::GET, keys, None).await;
    assert_eq!(all["total_entries"], 3, "Admin sees every key: {all}");

    // Someone else's key cannot be revoked (or even seen); its owner revokes it and it stops working.
    let revoke = format!("{keys}/{id}");
    assert_eq!(sluice.request_as(Some(&viewer), Method::DELETE, &revoke, None).await.0, 404);
    assert_eq!(sluice.request_as(Some(&user), Method::DELETE, &revoke, None).await.0, 204);
    let (status, body) = sluice.request_as(Some(&key), Method::GET, "/api/v2/dags", None).await;
    assert_eq!((status, body["detail"].as_str()), (401, Some("API key revoked")));
}

#[tokio::test]
async fn users_are_managed_from_the_command_line() {
    let mut sluice = Sluice::new(Backend::Sqlite, &[]).await;
    let (code, output) = sluice.run_cli(&["users", "create", "--username", "ada", "--role", "op"]).await;
    assert_eq!(code, Some(0), "{output}");
    let generated = output.lines().find_map(|l| l.strip_prefix("password: ")).unwrap_or_else(|| panic!("{output}"));
    sluice.start_server(&[]).await;
    let token = sluice.login("ada", generated).await;
    let (status, _) = sluice.request_as(Some(&token), Method::GET, "/api/v2/variables", None).await;
    assert_eq!(status, 200, "ada signed in with the generated password, as Op");
    let (code, output) = sluice.run_cli(&["users", "create", "--username", "ada", "--role", "Viewer"]).await;
    assert_eq!(code, Some(1), "the name is taken: {output}");
    let (code, output) = sluice.run_cli(&["users", "create", "--username", "bob", "--role", "root"]).await;
    assert_eq!(code, Some(2), "an unknown role is a usage error: {output}");
    let (code, output) = sluice.run_cli(&["users", "list"]).await;
    assert_eq!(code, Some(0));
    let ada = output.lines().find(|l| l.starts_with("ada ")).unwrap_or_else(|| panic!("{output}"));
    assert!(ada.contains(" Op "), "{output}");
    assert_eq!(sluice.run_cli(&["users", "delete", "ada"]).await.0, Some(0));
    assert_eq!(sluice.run_cli(&["users", "delete", "ada"]).await.0, Some(1));
}

#[tokio::test]
async fn admin_manages_users_over_the_api_and_no_one_else_may() {
    let sluice = Sluice::start(Backend::Postgres, &[], 0).await;
    let body = json!({"username": "grace", "password": "compilers-1952", "role": "User"});
    let (status, created) = sluice.request(Method::POST, "/auth/users", Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["username"].as_str(), created["role"].as_str()), (Some("grace"), Some("User")));
    assert!(!created.to_string().contains("compilers-1952"), "no password in answers: {created}");
    assert_eq!(sluice.request(Method::POST, "/auth/users", Some(body)).await.0, 409, "the name is taken");
    let short = json!({"username": "hopper", "password": "short", "role": "Viewer"});
    let (status, problem) = sluice.request(Method::POST, "/auth/users", Some(short)).await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("password"), "{problem}");

    let grace = sluice.login("grace", "compilers-1952").await;
    for (method, path) in [(Method::GET, "/auth/users"), (Method::DELETE, "/auth/users/admin")] {
        let (status, body) = sluice.request_as(Some(&grace), method.clone(), path, None).await;
        assert_eq!(status, 403, "{method} {path} is Admin's: {body}");
    }
    let (status, users) = sluice.request(Method::GET, "/auth/users", None).await;
    assert_eq!(status, 200, "{users}");
    let names: Vec<&str> = users["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "grace"]);

    // A new role applies at once to the token grace already holds.
    let (status, _) = sluice.request_as(Some(&grace), Method::GET, "/api/v2/variables", None).await;
    assert_eq!(status, 403, "variables are Op's");
    let (status, changed) = sluice.request(Method::PATCH, "/auth/users/grace", Some(json!({"role": "Op"}))).await;
    assert_eq!((status, changed["role"].as_str()), (200, Some("Op")), "{changed}");
    let (status, _) = sluice.request_as(Some(&grace), Method::GET, "/api/v2/variables", None).await;
    assert_eq!(status, 200, "grace is Op now");
    let (status, body) =
        sluice.request_as(Some(&grace), Method::PATCH, "/auth/users/grace", Some(json!({"role": "Admin"}))).await;
    assert_eq!(status, 403, "only Admin changes roles: {body}");
    let (status, body) = sluice.request(Method::PATCH, "/auth/users/admin", Some(json!({"role": "Viewer"}))).await;
    assert_eq!(status, 409, "not your own role: {body}");
    let (status, body) = sluice.request(Method::PATCH, "/auth/users/nobody", Some(json!({"role": "Op"}))).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = sluice.request(Method::PATCH, "/auth/users/grace", Some(json!({"role": "root"}))).await;
    assert_eq!(status, 422, "{body}");

    assert_eq!(sluice.request(Method::DELETE, "/auth/users/admin", None).await.0, 409, "not yourself");
    assert_eq!(sluice.request(Method::DELETE, "/auth/users/grace", None).await.0, 204);
    assert_eq!(sluice.request(Method::DELETE, "/auth/users/grace", None).await.0, 404);
    let (status, _) = sluice.request_as(Some(&grace), Method::GET, "/api/v2/dags", None).await;
    assert_eq!(status, 401, "a deleted user's token stops working");
}

/// A DAG of each kind for the cross-DAG test: both write the same asset and output an XCom value, and the second
/// is readable by Op only. `classified` is the word to look for in answers.
fn shared_asset_dag(dag_id: &str, access_control: &str) -> String {
    format!(
        "dag_id: {dag_id}\nschedule: '0 0 1 1 *'\nstart_date: 2020-01-01\ncatchup: false\n{access_control}\
         tasks:\n  - id: a\n    script: |\n      echo '::output::{{\"from\":\"{dag_id}\"}}'\n    outputs: ['lake://shared/data']\n"
    )
}

/// Waits until every run the admin sees has finished.
async fn wait_all_runs_done(sluice: &Sluice) {
    sluice
        .eventually("every run to finish", std::time::Duration::from_secs(60), || async {
            let (_, runs) = sluice.get("/dags/~/dagRuns?limit=1000").await;
            let runs = runs["dag_runs"].as_array()?.clone();
            runs.iter().all(|r| matches!(r["state"].as_str(), Some("success" | "failed"))).then_some(())
        })
        .await;
}

#[tokio::test]
async fn listings_across_dags_leave_out_what_the_caller_may_not_read() {
    let open = shared_asset_dag("open", "");
    let classified = shared_asset_dag("classified", "access_control:\n  Op: [can_read]\n");
    let sluice = Sluice::start(Backend::Postgres, &[("open.yaml", &open), ("classified.yaml", &classified)], 1).await;
    let mut tokens = Vec::new();
    for role in ["Viewer", "User"] {
        let name = role.to_lowercase();
        sluice.create_user(&name, role, &format!("{name}-password")).await;
        tokens.push((role, sluice.login(&name, &format!("{name}-password")).await));
    }
    let admin = sluice.token.clone().unwrap();

    // Runs, task instances, XCom values, asset events and backfills in both DAGs; the classified DAG's last.
    let mut backfills = Vec::new();
    for dag_id in ["open", "classified"] {
        sluice.wait_dag(dag_id).await;
        sluice.unpause(dag_id).await;
        let run_id = sluice.trigger(dag_id, json!({})).await;
        sluice.wait_run_done(dag_id, &run_id, std::time::Duration::from_secs(60)).await;
        let body = json!({"dag_id": dag_id, "from_date": "2020-01-01T00:00:00Z", "to_date": "2020-01-01T00:00:00Z"});
        let (status, backfill) = sluice.post("/backfills", body).await;
        assert_eq!(status, 200, "{backfill}");
        backfills.push(backfill["id"].as_i64().unwrap());
    }
    wait_all_runs_done(&sluice).await;
    let last_run = sluice.trigger("classified", json!({})).await;
    sluice.wait_run_done("classified", &last_run, std::time::Duration::from_secs(60)).await;

    // Import errors: each DAG's file broken (its DAG stays), and a broken file of no known DAG.
    for file in ["open.yaml", "classified.yaml", "unknown.yaml"] {
        sluice.add_dag(file, "dag_id: [\n");
    }
    let errors = sluice
        .eventually("three import errors", std::time::Duration::from_secs(30), || async {
            let (_, errors) = sluice.get("/importErrors").await;
            (errors["total_entries"] == 3).then_some(errors)
        })
        .await;
    let error_of = |file: &str| {
        let errors = errors["import_errors"].as_array().unwrap();
        let found = errors.iter().find(|e| e["filename"].as_str().unwrap().ends_with(file)).unwrap();
        found["import_error_id"].as_i64().unwrap()
    };
    let (_, assets) = sluice.get("/assets").await;
    let asset_id = assets["assets"][0]["id"].as_i64().unwrap();

    // Every listing that spans DAGs, with the key of its items: none may name the classified DAG but Admin's.
    let lists: Vec<(Method, String, Option<Value>, &str)> = vec![
        (Method::GET, "/api/v2/dags/~/dagRuns/~/taskInstances".into(), None, "task_instances"),
        (Method::POST, "/api/v2/dags/~/dagRuns/~/taskInstances/list".into(), Some(json!({})), "task_instances"),
        (Method::GET, "/api/v2/dags/~/dagRuns".into(), None, "dag_runs"),
        (Method::POST, "/api/v2/dags/~/dagRuns/list".into(), Some(json!({})), "dag_runs"),
        (Method::GET, "/api/v2/dags".into(), None, "dags"),
        (Method::GET, "/api/v2/assets".into(), None, "assets"),
        (Method::GET, "/api/v2/assets/events".into(), None, "asset_events"),
        (Method::GET, "/api/v2/importErrors".into(), None, "import_errors"),
        (Method::GET, format!("/api/v2/assets/{asset_id}"), None, ""),
        (Method::GET, "/api/v2/assets/lineage?uri=lake://shared/data".into(), None, ""),
    ];
    for (method, path, body, items) in &lists {
        let (status, answer) = sluice.request_as(Some(&admin), method.clone(), path, body.clone()).await;
        assert_eq!(status, 200, "Admin {method} {path}: {answer}");
        assert!(answer.to_string().contains("classified"), "Admin sees everything: {method} {path}: {answer}");
        for (role, token) in &tokens {
            let (status, answer) = sluice.request_as(Some(token), method.clone(), path, body.clone()).await;
            assert_eq!(status, 200, "{role} {method} {path}: {answer}");
            assert!(!answer.to_string().contains("classified"), "{role} {method} {path}: {answer}");
            if !items.is_empty() {
                let shown = answer[*items].as_array().unwrap();
                assert!(!shown.is_empty(), "{role} still sees the open DAG's: {method} {path}: {answer}");
                assert_eq!(answer["total_entries"], shown.len(), "{role} {method} {path}: the count agrees");
            }
        }
    }
    // The asset's newest event is the classified DAG's: others see the newest of the open DAG's.
    let (_, asset) =
        sluice.request_as(Some(&tokens[0].1), Method::GET, &format!("/api/v2/assets/{asset_id}"), None).await;
    let (_, events) = sluice.request_as(Some(&tokens[0].1), Method::GET, "/api/v2/assets/events", None).await;
    assert_eq!(asset["last_asset_event"]["id"], events["asset_events"][0]["id"], "{asset}");

    // Routes naming one thing of the classified DAG, or `~` where a run or task is needed: never its data.
    let run_id = last_run.as_str();
    let singles = [
        ("/api/v2/dags/classified/dagRuns/~/taskInstances".to_string(), 403),
        (format!("/api/v2/dags/~/dagRuns/{run_id}/taskInstances"), 400),
        (format!("/api/v2/dags/~/dagRuns/{run_id}"), 404),
        (format!("/api/v2/dags/~/dagRuns/{run_id}/taskInstances/a"), 404),
        (format!("/api/v2/dags/~/dagRuns/{run_id}/taskInstances/a/xcomEntries"), 404),
        ("/api/v2/dags/~/dagRuns/~/taskInstances/~/xcomEntries".to_string(), 404),
        (format!("/api/v2/dags/classified/dagRuns/{run_id}/taskInstances/a/xcomEntries"), 403),
        ("/api/v2/assets/lineage?dag_id=classified&task_id=a".to_string(), 404),
        (format!("/api/v2/importErrors/{}", error_of("classified.yaml")), 403),
        (format!("/api/v2/importErrors/{}", error_of("unknown.yaml")), 403),
        ("/api/v2/backfills?dag_id=classified".to_string(), 403),
        (format!("/api/v2/backfills/{}", backfills[1]), 404),
    ];
    for (path, expected) in &singles {
        for (role, token) in &tokens {
            let (status, answer) = sluice.request_as(Some(token), Method::GET, path, None).await;
            assert_eq!(status, *expected, "{role} GET {path}: {answer}");
            assert!(answer["detail"].is_string(), "an error, not data: {answer}");
        }
    }
    for path in [
        format!("/api/v2/importErrors/{}", error_of("open.yaml")),
        format!("/api/v2/backfills/{}", backfills[0]),
        "/api/v2/backfills?dag_id=open".to_string(),
    ] {
        for (role, token) in &tokens {
            assert_eq!(sluice.request_as(Some(token), Method::GET, &path, None).await.0, 200, "{role} {path}");
        }
    }
    for path in [
        format!("/api/v2/importErrors/{}", error_of("unknown.yaml")),
        "/api/v2/assets/lineage?dag_id=classified&task_id=a".to_string(),
    ] {
        assert_eq!(sluice.request_as(Some(&admin), Method::GET, &path, None).await.0, 200, "Admin {path}");
    }
}

/// Named worker tokens: an Admin (or the command line) makes one, a worker uses it and the token shows which, and
/// revoking it shuts that worker out while the shared token keeps working.
#[tokio::test]
async fn named_worker_tokens_are_made_used_seen_and_revoked() {
    let (mut sluice, [_viewer, _user, op]) = deployment(Backend::Postgres).await;
    let admin = sluice.token.clone().unwrap();
    let tokens = "/auth/worker-tokens";
    let etl = Some(json!({"name": "etl-eu"}));
    assert_eq!(sluice.request_as(Some(&op), Method::POST, tokens, etl.clone()).await.0, 403, "Admin's business");
    let (status, made) = sluice.request_as(Some(&admin), Method::POST, tokens, etl.clone()).await;
    assert_eq!((status, made["name"].as_str()), (201, Some("etl-eu")), "{made}");
    let token = made["token"].as_str().unwrap().to_owned();
    assert_eq!(sluice.request_as(Some(&admin), Method::POST, tokens, etl).await.0, 409, "names are not reused");
    let bad = Some(json!({"name": "no spaces"}));
    assert_eq!(sluice.request_as(Some(&admin), Method::POST, tokens, bad).await.0, 422);
    let (code, output) = sluice.run_cli(&["worker-tokens", "create", "from-cli"]).await;
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("sluicew_"), "{output}");

    // A worker with the named token runs tasks; the token records the worker, the worker its token.
    sluice.env.push(("SLUICE_WORKER_TOKEN".into(), token.clone()));
    let named = sluice.spawn_worker(&["--slots", "2"]);
    sluice.env.pop();
    sluice.unpause("open").await;
    let run_id = sluice.trigger("open", json!({})).await;
    let run = sluice.wait_run_done("open", &run_id, std::time::Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{run}\n{}", sluice.all_output());
    let (_, list) = sluice.request_as(Some(&admin), Method::GET, tokens, None).await;
    let row = list["worker_tokens"].as_array().unwrap().iter().find(|t| t["name"] == "etl-eu").unwrap().clone();
    assert_eq!((row["last_worker"].as_str(), row["created_by"].as_str()), (Some("worker-1"), Some("admin")), "{row}");
    assert!(row["last_used"].is_string() && row.get("token").is_none(), "{row}");
    assert_eq!(list["total_entries"], 2, "{list}");
    let (_, workers) = sluice.get("/ui/workers").await;
    assert_eq!(workers["workers"][0]["token_name"], "etl-eu", "{workers}");

    // Forged and revoked tokens are refused; the worker stops, and the shared token still lets one in.
    let lease = |bearer: String| {
        let request = sluice.http.post(format!("{}/worker/v1/lease", sluice.url)).bearer_auth(bearer);
        request.json(&json!({"worker": "probe", "hostname": "h", "queues": ["default"], "slots": 0, "wait_ms": 0}))
    };
    let forged = format!("{}x", token);
    assert_eq!(lease(forged).send().await.unwrap().status(), 401);
    assert_eq!(sluice.request_as(Some(&admin), Method::DELETE, &format!("{tokens}/etl-eu"), None).await.0, 204);
    assert_eq!(sluice.request_as(Some(&admin), Method::DELETE, &format!("{tokens}/etl-eu"), None).await.0, 409);
    assert_eq!(sluice.request_as(Some(&admin), Method::DELETE, &format!("{tokens}/nothing"), None).await.0, 404);
    let refused = lease(token).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["detail"], "the worker token `etl-eu` is revoked", "{body}");
    let code = sluice.workers[named].wait_exit(std::time::Duration::from_secs(60)).await;
    assert!(code.is_some_and(|c| c != 0), "the worker stops: {code:?}\n{}", sluice.all_output());
    assert_eq!(lease(WORKER_TOKEN.to_owned()).send().await.unwrap().status(), 200);
}
