//! Chaos: a fleet of two servers, two schedulers and four workers on a PostgreSQL of the test's own runs a mix of
//! about a thousand task instances while a seeded random killer sends `kill -9` to its processes and starts them
//! again, and restarts PostgreSQL once. Afterwards the database must show every task instance in the state its DAG
//! decides, no two tries of one task instance at the same time, every run once, and the log of every successful try
//! with what its task printed.
//!
//! The seed is printed first; `SLUICE_CHAOS_SEED=<seed>` replays a run's kills (their timing against the tasks
//! still varies). `SLUICE_CHAOS_RUNS` sets how many runs of the mixed DAG are triggered (22 by default: 1,020 task
//! instances with the scheduled runs).

#![allow(clippy::unwrap_used)] // a test fails by panicking with the value it did not expect

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::json;
use sluice_tests::{PrivatePostgres, Proc, Sluice, TestDb, free_port};
use sqlx::Connection;

/// One run: a chain, a fan-out and its join, a task that fails twice before it succeeds, a task that fails for good
/// when the run's conf says so, a mapped task over an upstream output, and a time sensor in reschedule mode. Every
/// task has retries to spare for the tries that the kills cost it.
const MIX: &str = r#"
dag_id: chaos_mix
schedule: null
is_paused_upon_creation: false
max_active_runs: 64
max_active_tasks: 64
default_args: {retries: 10, retry_delay: 0s}
tasks:
  - {id: chain_1, script: echo chain 1}
  - {id: chain_2, depends_on: [chain_1], script: echo chain 2}
  - {id: chain_3, depends_on: [chain_2], script: echo chain 3}
  - {id: chain_4, depends_on: [chain_3], script: echo chain 4}
  - {id: chain_5, depends_on: [chain_4], script: echo chain 5}
  - {id: fan_start, script: echo fan}
  - id: fan
    depends_on: [fan_start]
    expand: {part: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}
    script: echo "part {{ args.part }}"
  - {id: fan_join, depends_on: [fan], script: echo joined}
  - id: flaky
    script: |
      {% if ti.try_number <= 2 %}echo "failing on purpose"; exit 1{% else %}echo recovered{% endif %}
  - {id: after_flaky, depends_on: [flaky], script: echo after flaky}
  - id: doomed
    retries: 3
    script: |
      {% if dag_run.conf.doomed %}echo "failing for good"; exit 1{% else %}echo spared{% endif %}
  - {id: after_doomed, depends_on: [doomed], script: echo after doomed}
  - id: list
    script: echo '::output::[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]'
  - id: mapped
    expand: {n: {output: list}}
    script: echo "::output::$(( {{ args.n }} * 2 ))"
  - id: total
    depends_on: [mapped]
    script: echo "total {{ outputs.mapped | sum }}"
  - id: wait
    kind: sensor
    sensor: {type: time, delta: 2s}
    mode: reschedule
    poke_interval: 1s
  - {id: after_wait, depends_on: [wait], script: echo waited}
"#;

/// Task instances of one run of [`MIX`]: 5 in the chain, 1 + 20 + 1 in the fan-out, 2 + 2, 1 + 10 + 1 around the
/// map, 2 for the sensor.
const MIX_TIS: usize = 45;

/// Ten catch-up runs, created by whichever scheduler gets there first.
const DAILY: &str = r#"
dag_id: chaos_daily
schedule: "@daily"
start_date: 2026-01-01
end_date: 2026-01-10
catchup: true
max_active_runs: 10
is_paused_upon_creation: true
default_args: {retries: 10, retry_delay: 0s}
tasks:
  - {id: extract, script: echo extract}
  - {id: transform, depends_on: [extract], script: echo transform}
  - {id: load, depends_on: [transform], script: echo load}
"#;

const DAILY_RUNS: usize = 10;

/// The state the DAG decides for task `task_id`, in a run whose conf says whether `doomed` fails.
fn expected_state(task_id: &str, doomed: bool) -> &'static str {
    match task_id {
        "doomed" if doomed => "failed",
        "after_doomed" if doomed => "upstream_failed",
        _ => "success",
    }
}

/// The processes the killer picks from, by what they are.
enum Role {
    /// A server listening on this port, without a scheduler loop.
    Server(u16),
    Scheduler,
    /// A worker of the server on this port.
    Worker(u16),
}

struct Member {
    role: Role,
    name: String,
    proc: Proc,
}

/// Starts `role` again under `name`.
async fn start(sluice: &Sluice, role: &Role, name: &str) -> Proc {
    match role {
        Role::Server(port) => sluice.spawn_server(name, *port, &["--no-scheduler"]).await,
        Role::Scheduler => sluice.spawn(name, &["scheduler"]),
        Role::Worker(port) => sluice.start_worker(name, &format!("http://127.0.0.1:{port}"), &["--slots", "4"]),
    }
}

fn seed() -> u64 {
    match std::env::var("SLUICE_CHAOS_SEED") {
        Ok(seed) => seed.parse().expect("SLUICE_CHAOS_SEED is a number"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    }
}

/// Whether `runs` runs have finished; not while the database is out of reach.
async fn finished(url: &str, runs: usize) -> bool {
    let Ok(mut db) = sqlx::PgConnection::connect(url).await else { return false };
    let done: Result<(i64,), _> =
        sqlx::query_as("SELECT count(*) FROM dag_runs WHERE state IN ('success', 'failed')").fetch_one(&mut db).await;
    done.is_ok_and(|(n,)| usize::try_from(n).unwrap() >= runs)
}

#[tokio::test]
async fn a_fleet_under_random_kills_and_a_database_restart_runs_everything_once() {
    let seed = seed();
    eprintln!("chaos seed: {seed} (replay with SLUICE_CHAOS_SEED={seed})");
    let runs: usize = std::env::var("SLUICE_CHAOS_RUNS").map_or(22, |n| n.parse().expect("SLUICE_CHAOS_RUNS"));
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let began = tokio::time::Instant::now();

    let mut postgres = PrivatePostgres::init("local all all trust\nhost all all 127.0.0.1/32 trust\n");
    postgres.set("max_connections", "300");
    postgres.start().await;
    let mut sluice = Sluice::on(TestDb::existing(postgres.url()), &[("mix.yaml", MIX), ("daily.yaml", DAILY)]);
    sluice.start_server(&["--no-scheduler"]).await;
    let (port_a, port_b) = (sluice.port, free_port());
    let mut fleet =
        vec![Member { role: Role::Server(port_a), name: "server-a".to_owned(), proc: sluice.server.take().unwrap() }];
    let roles = [
        ("server-b", Role::Server(port_b)),
        ("scheduler-1", Role::Scheduler),
        ("scheduler-2", Role::Scheduler),
        ("worker-a1", Role::Worker(port_a)),
        ("worker-a2", Role::Worker(port_a)),
        ("worker-b1", Role::Worker(port_b)),
        ("worker-b2", Role::Worker(port_b)),
    ];
    for (name, role) in roles {
        let proc = start(&sluice, &role, name).await;
        fleet.push(Member { role, name: name.to_owned(), proc });
    }

    // Every run is created before the first kill: a trigger answered 200 is a run that must end.
    let mut triggered = BTreeMap::new();
    for i in 0..runs {
        let doomed = i % 2 == 1;
        triggered.insert(sluice.trigger("chaos_mix", json!({"doomed": doomed})).await, doomed);
    }
    sluice.unpause("chaos_daily").await;
    let total = runs * MIX_TIS + DAILY_RUNS * 3;
    eprintln!("{total} task instances in {runs} + {DAILY_RUNS} runs");

    let kills = kill_at_random(&sluice, &mut fleet, &mut postgres, &mut rng, runs + DAILY_RUNS, began).await;
    eprintln!("chaos for {:?}: {kills:?} restarted", began.elapsed());
    wait_finished(&postgres.url(), runs + DAILY_RUNS, seed, &fleet).await;
    eprintln!("every run ended {:?} after the start", began.elapsed());

    let mut db = sqlx::PgConnection::connect(&postgres.url()).await.unwrap();
    let problems = check(&mut db, &triggered).await;
    let (tries, lost): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE error LIKE '%lost%') FROM task_tries")
            .fetch_one(&mut db)
            .await
            .unwrap();
    eprintln!("{tries} tries, {lost} of them lost to the kills");
    assert!(
        problems.is_empty(),
        "seed {seed}: {} problems, the first ones:\n{}\n{}",
        problems.len(),
        problems.iter().take(30).cloned().collect::<Vec<_>>().join("\n"),
        tails(&fleet)
    );
}

/// The killer: `kill -9` to one process of the fleet at a time, started again a moment later, then a pause;
/// PostgreSQL's turn comes once. It goes on until `runs` runs ended and every kind of process (and PostgreSQL) went
/// down once, or two minutes after `began`; how many of each kind it restarted.
async fn kill_at_random(
    sluice: &Sluice,
    fleet: &mut [Member],
    postgres: &mut PrivatePostgres,
    rng: &mut Xoshiro256PlusPlus,
    runs: usize,
    began: tokio::time::Instant,
) -> BTreeMap<&'static str, usize> {
    let postgres_at = rng.random_range(2..6);
    let mut kills: BTreeMap<&str, usize> = BTreeMap::new();
    let until = began + Duration::from_secs(120);
    let mut step = 0;
    while tokio::time::Instant::now() < until && (kills.len() < 4 || !finished(&postgres.url(), runs).await) {
        if step == postgres_at {
            postgres.stop();
            tokio::time::sleep(Duration::from_millis(rng.random_range(1000..4000))).await;
            postgres.start().await;
            *kills.entry("postgresql").or_default() += 1;
        } else {
            let member = &mut fleet[rng.random_range(0..fleet.len())];
            member.proc.kill_9();
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..1000))).await;
            member.proc = start(sluice, &member.role, &member.name).await;
            let kind = match member.role {
                Role::Server(_) => "server",
                Role::Scheduler => "scheduler",
                Role::Worker(_) => "worker",
            };
            *kills.entry(kind).or_default() += 1;
        }
        step += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1200))).await;
    }
    kills
}

/// Waits up to two minutes for `runs` runs to end; else fails with the task instances left.
async fn wait_finished(url: &str, runs: usize, seed: u64, fleet: &[Member]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !finished(url, runs).await {
        if tokio::time::Instant::now() > deadline {
            let mut db = sqlx::PgConnection::connect(url).await.unwrap();
            let left: Vec<(String, String, String, i64, String, i64)> = sqlx::query_as(
                "SELECT dag_id, run_id, task_id, map_index, state, try_number FROM task_instances
                  WHERE state NOT IN ('success', 'failed', 'upstream_failed', 'skipped') ORDER BY run_id LIMIT 30",
            )
            .fetch_all(&mut db)
            .await
            .unwrap();
            panic!("seed {seed}: runs left unfinished; task instances left: {left:#?}\n{}", tails(fleet));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The last lines of each process's log (of its latest start), for failure messages.
fn tails(fleet: &[Member]) -> String {
    let mut out = String::new();
    for member in fleet {
        let log = member.proc.output();
        let lines: Vec<&str> = log.lines().collect();
        out += &format!("===== {} =====\n{}\n", member.name, lines[lines.len().saturating_sub(20)..].join("\n"));
    }
    out
}

/// Everything the database says that it should not: runs missing, duplicated or in the wrong state, task instances
/// in the wrong state, tries open or overlapping, successful tries whose log lacks what the task printed.
async fn check(db: &mut sqlx::PgConnection, triggered: &BTreeMap<String, bool>) -> Vec<String> {
    let mut problems = Vec::new();
    let runs: Vec<(String, String, String, Option<i64>)> =
        sqlx::query_as("SELECT dag_id, run_id, state, logical_date_ms FROM dag_runs")
            .fetch_all(&mut *db)
            .await
            .unwrap();
    let mix: BTreeMap<&str, &str> =
        runs.iter().filter(|r| r.0 == "chaos_mix").map(|r| (r.1.as_str(), r.2.as_str())).collect();
    if mix.len() != triggered.len() || triggered.keys().any(|id| !mix.contains_key(id.as_str())) {
        problems.push(format!("runs of chaos_mix: {mix:?}, triggered {triggered:?}"));
    }
    for (run_id, doomed) in triggered {
        let want = if *doomed { "failed" } else { "success" };
        if mix.get(run_id.as_str()).is_some_and(|state| *state != want) {
            problems.push(format!("run {run_id} is {}, not {want}", mix[run_id.as_str()]));
        }
    }
    let daily: Vec<_> = runs.iter().filter(|r| r.0 == "chaos_daily").collect();
    let dates: std::collections::BTreeSet<_> = daily.iter().map(|r| r.3).collect();
    if daily.len() != DAILY_RUNS || dates.len() != DAILY_RUNS || daily.iter().any(|r| r.2 != "success") {
        problems.push(format!("runs of chaos_daily: {daily:?}"));
    }

    let tis: Vec<(String, String, String, i64, String)> =
        sqlx::query_as("SELECT dag_id, run_id, task_id, map_index, state FROM task_instances")
            .fetch_all(&mut *db)
            .await
            .unwrap();
    let want = triggered.len() * MIX_TIS + DAILY_RUNS * 3;
    if tis.len() != want {
        problems.push(format!("{} task instances, not {want}", tis.len()));
    }
    for (dag_id, run_id, task_id, map_index, state) in &tis {
        let doomed = dag_id == "chaos_mix" && triggered.get(run_id).copied().unwrap_or_default();
        let want = expected_state(task_id, doomed);
        if state != want {
            problems.push(format!("{dag_id} {run_id} {task_id}[{map_index}] is {state}, not {want}"));
        }
    }

    let tries: Vec<(String, i64, i64, Option<i64>)> =
        sqlx::query_as("SELECT ti_id, try_number, start_ms, end_ms FROM task_tries ORDER BY ti_id, start_ms")
            .fetch_all(&mut *db)
            .await
            .unwrap();
    for pair in tries.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        if before.0 == after.0 && before.3.is_none_or(|end| end > after.2) {
            problems.push(format!("tries overlap: {before:?} and {after:?}"));
        }
    }
    for open in tries.iter().filter(|t| t.3.is_none()) {
        problems.push(format!("a try never ended: {open:?}"));
    }

    // Every task but these prints a line of its own: its successful tries' logs must hold it, whatever was killed.
    let silent: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT ti.dag_id, ti.run_id, ti.task_id FROM task_tries t JOIN task_instances ti ON ti.id = t.ti_id
          WHERE t.state = 'success' AND ti.task_id NOT IN ('list', 'mapped', 'wait')
            AND NOT EXISTS (SELECT 1 FROM task_logs l WHERE l.try_id = t.id AND l.stream = 'stdout')",
    )
    .fetch_all(&mut *db)
    .await
    .unwrap();
    problems.extend(silent.iter().map(|ti| format!("a successful try without its output in its log: {ti:?}")));
    problems
}
