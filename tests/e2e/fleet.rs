//! A fleet on one PostgreSQL: two servers, each with its scheduler loop, and workers spread over them; and a worker
//! cut off from its server by a network partition.

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::time::Duration;

use serde_json::{Value, json};
use sluice_tests::{Backend, Sluice, TcpProxy, free_port, max_overlapping, process_alive};
use sqlx::Connection;

/// Tasks in each chain whose queue waits are measured.
const CHAIN_LENGTH: usize = 12;

/// A chain `t01 → t02 → …` of `n` echo tasks on `queues` in turn.
fn chain(dag_id: &str, n: usize, queues: &[&str]) -> String {
    let mut yaml = format!("dag_id: {dag_id}\nschedule: null\nis_paused_upon_creation: false\ntasks:\n");
    for i in 1..=n {
        yaml += &format!("  - id: t{i:02}\n    queue: {}\n    script: echo {i}\n", queues[(i - 1) % queues.len()]);
        if i > 1 {
            yaml += &format!("    depends_on: [t{:02}]\n", i - 1);
        }
    }
    yaml
}

/// Twelve daily runs for the two scheduler loops to create at once, each a fan-out and a join.
const BUSY: &str = r#"
dag_id: busy
schedule: "@daily"
start_date: 2026-01-01
end_date: 2026-01-12
catchup: true
max_active_runs: 12
is_paused_upon_creation: true
tasks:
  - id: start
    script: echo start
  - {id: left, depends_on: [start], script: sleep 0.2}
  - {id: middle, depends_on: [start], script: sleep 0.2}
  - {id: right, depends_on: [start], script: sleep 0.2}
  - id: join
    depends_on: [left, middle, right]
    script: echo join
"#;

fn time(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap()
}

/// Triggers a run of `dag_id` through the first server and waits for its success; each task's wait in the queue
/// (from `queued_when` to its start), in task order, after checking that it ran once, on a worker of its queue.
async fn run_chain(sluice: &Sluice, dag_id: &str, workers_of: impl Fn(&str) -> [&'static str; 2]) -> Vec<i64> {
    let run_id = sluice.trigger(dag_id, json!({})).await;
    let run = sluice.wait_run_done(dag_id, &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{}", sluice.all_output());
    let mut tis = sluice.task_instances(dag_id, &run_id).await;
    tis.sort_by_key(|ti| ti["task_id"].as_str().unwrap().to_owned());
    assert_eq!(tis.len(), CHAIN_LENGTH);
    let mut waits = Vec::new();
    for ti in &tis {
        let task_id = ti["task_id"].as_str().unwrap();
        assert_eq!(ti["try_number"], 1, "{task_id} queued or run twice: {ti}");
        assert_eq!(sluice.tries(dag_id, &run_id, task_id).await.len(), 1, "{task_id}");
        let executor = ti["executor"].as_str().unwrap();
        assert!(workers_of(ti["queue"].as_str().unwrap()).contains(&executor), "{task_id} ran on {executor}");
        waits.push((time(&ti["start_date"]) - time(&ti["queued_when"])).num_milliseconds());
    }
    waits
}

fn median(values: &[i64]) -> i64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

/// Server A (the harness's) and server B share the database, each with its scheduler loop. Workers 1 and 2
/// long-poll A for queue `a`, workers 3 and 4 long-poll B for queue `b`, both also for `default`.
///
/// `relay` alternates `b` and `a`: every task is queued by one server (A's API for the first, then the report of
/// its upstream task, which reaches the other server) and leased from the other, so only `NOTIFY` wakes its
/// workers at once; without it they would find the task at their next recheck, up to a second later. `local` keeps
/// every task on B (queued and leased in one process, by its in-process signal) as the one-server figure.
#[tokio::test]
async fn two_servers_on_one_database_wake_each_others_workers_and_run_everything_once() {
    let (relay, local) = (chain("relay", CHAIN_LENGTH, &["b", "a"]), chain("local", CHAIN_LENGTH, &["b"]));
    let dags = [("relay.yaml", relay.as_str()), ("local.yaml", local.as_str()), ("busy.yaml", BUSY)];
    let mut sluice = Sluice::new(Backend::Postgres, &dags).await;
    sluice.start_server(&[]).await;
    let port_b = free_port();
    let server_b = sluice.spawn_server("server-b", port_b, &[]).await;
    sluice.extra.push(server_b);
    let (a, b) = (sluice.url.clone(), format!("http://127.0.0.1:{port_b}"));
    for (server, queues) in [(&a, "a,default"), (&a, "a,default"), (&b, "b,default"), (&b, "b,default")] {
        sluice.spawn_worker_at(server, &["--slots", "1", "--queues", queues]);
    }
    sluice
        .eventually("the four workers to poll", Duration::from_secs(30), || async {
            let (_, health) = sluice.get("/monitor/health").await;
            (health["workers"].as_array()?.len() == 4).then_some(())
        })
        .await;
    let workers_of = |queue: &str| match queue {
        "a" => ["worker-1", "worker-2"],
        _ => ["worker-3", "worker-4"],
    };

    let across = run_chain(&sluice, "relay", workers_of).await;
    let within = run_chain(&sluice, "local", workers_of).await;
    // The first task of `local` was queued by A's API: only B's own hand-offs are the one-server figure.
    let within = &within[1..];
    eprintln!("queue waits (ms), across servers: {across:?}; within one: {within:?}");
    assert!(median(&across) < 250, "woken by the other server's NOTIFY, not the 1 s recheck: {across:?}");
    assert!(
        median(&across) <= median(within) + 100,
        "as fast across servers as within one: {across:?} against {within:?}"
    );

    // Both scheduler loops create the catch-up runs at once; workers of both servers run them.
    sluice.unpause("busy").await;
    let mut db = sqlx::PgConnection::connect(&sluice.db.url).await.unwrap();
    sluice
        .eventually("twelve successful runs of busy", Duration::from_secs(120), || async {
            let (_, runs) = sluice.get("/dags/busy/dagRuns?state=success").await;
            (runs["total_entries"] == 12).then_some(())
        })
        .await;
    let (runs, dates): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT logical_date_ms) FROM dag_runs WHERE dag_id = 'busy' AND state = 'success'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!((runs, dates), (12, 12), "one run per logical date");
    let (all_runs,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM dag_runs WHERE dag_id = 'busy'").fetch_one(&mut db).await.unwrap();
    assert_eq!(all_runs, 12, "no run besides them");
    let tries: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT ti.run_id, ti.task_id, count(t.id), min(t.worker) FROM task_instances ti
           LEFT JOIN task_tries t ON t.ti_id = ti.id WHERE ti.dag_id = 'busy' GROUP BY ti.run_id, ti.task_id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(tries.len(), 12 * 5, "{tries:?}");
    let twice: Vec<_> = tries.iter().filter(|(_, _, n, _)| *n != 1).collect();
    assert!(twice.is_empty(), "every task instance ran exactly once: {twice:?}");
    let ran_on = |names: [&str; 2]| tries.iter().filter(|t| t.3.as_deref().is_some_and(|w| names.contains(&w))).count();
    let (on_a, on_b) = (ran_on(workers_of("a")), ran_on(workers_of("b")));
    eprintln!("busy: {on_a} task instances run by A's workers, {on_b} by B's");
    assert!(on_a > 0 && on_b > 0, "workers of both servers ran tasks: {on_a} on A, {on_b} on B");
    for server in sluice.server.iter().chain(&sluice.extra) {
        assert!(server.output().contains("scheduler started"), "{}: {}", server.name, server.output());
    }
}

/// The first try sleeps, and says which processes are its own; the second checks that none of them runs any more.
const CUT_OFF: &str = r#"
dag_id: cut_off
schedule: null
is_paused_upon_creation: false
tasks:
  - id: long
    retries: 1
    retry_delay: 0s
    script: |
      pids="{{ dag_run.conf.pidfile }}"
      {% if ti.try_number == 1 %}
      sleep 300 &
      echo $! > "$pids.tmp"
      echo $$ >> "$pids.tmp"
      mv "$pids.tmp" "$pids"
      wait
      {% else %}
      for pid in $(cat "$pids"); do
        if [ -e "/proc/$pid" ] && ! grep -q ') Z ' "/proc/$pid/stat"; then
          echo "the first try still runs: $pid"
          exit 1
        fi
      done
      echo "the first try is gone"
      {% endif %}
"#;

/// The harness's `SLUICE_LEASE_SECS`; heartbeats go every third of it.
const LEASE: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_worker_cut_off_from_its_server_kills_its_task_and_the_task_runs_once_more_elsewhere() {
    let mut sluice = Sluice::new(Backend::Postgres, &[("cut_off.yaml", CUT_OFF)]).await;
    sluice.start_server(&[]).await;
    let proxy = TcpProxy::start(sluice.port).await;
    sluice.spawn_worker_at(&proxy.url(), &["--slots", "1"]);
    let pidfile = sluice.dags.path().join("pids");
    let run_id = sluice.trigger("cut_off", json!({"pidfile": pidfile})).await;
    sluice.wait_task_state("cut_off", &run_id, "long", "running").await;
    let pids: Vec<i32> = sluice
        .eventually("the first try's pids", Duration::from_secs(10), || async {
            let text = std::fs::read_to_string(&pidfile).ok()?;
            Some(text.lines().map(|l| l.trim().parse().unwrap()).collect())
        })
        .await;
    // The second worker reaches the server directly; it has nothing to do until the first try is given up.
    sluice.spawn_worker(&["--slots", "1"]);

    proxy.cut();
    let cut = tokio::time::Instant::now();
    let killed_after = sluice
        .eventually("the cut-off worker to kill its task", Duration::from_secs(15), || async {
            pids.iter().all(|p| !process_alive(*p)).then(|| cut.elapsed())
        })
        .await;
    eprintln!("the first try was killed {killed_after:?} after the cut");
    // Its last heartbeat got through at most a heartbeat interval before the cut, and kept the lease a whole lease.
    assert!(killed_after >= LEASE * 2 / 3 - Duration::from_millis(500), "killed before its lease ran out");
    assert!(killed_after <= LEASE + Duration::from_secs(2), "still running long after its lease ran out");

    let run = sluice.wait_run_done("cut_off", &run_id, Duration::from_secs(60)).await;
    assert_eq!(run["state"], "success", "{}\n{}", sluice.run_logs("cut_off", &run_id).await, sluice.all_output());
    let tries = sluice.tries("cut_off", &run_id, "long").await;
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert!(tries[0]["error"].as_str().unwrap().contains("lost"), "{:?}", tries[0]);
    assert_eq!((&tries[0]["executor"], &tries[1]["executor"]), (&json!("worker-1"), &json!("worker-2")));
    assert_eq!(max_overlapping(&tries), 1, "never two tries at once: {tries:?}");
    assert!(sluice.log("cut_off", &run_id, "long", 2).await.contains("the first try is gone"));
    let cut_off = sluice.workers[0].output();
    assert!(cut_off.contains("no heartbeat got through for a whole lease"), "{cut_off}");
    assert!(!cut_off.contains("reported"), "the cut-off worker reported nothing: {cut_off}");
}
