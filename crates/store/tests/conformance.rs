//! The store's conformance suite: every case runs against a fresh PostgreSQL database (on
//! `SLUICE_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/postgres`) and a fresh SQLite file, and
//! both must behave the same.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use chrono::{Duration, Utc};
use serde_json::json;
use sluice_core::xcom::XComValue;
use sluice_core::{AccessControl, Role, RunState, TaskState};
use sluice_store::{
    AssetEventFilter, ConnectionRow, DagFilter, DagUpsert, FeedbackCounts, ImportErrorFilter, NewApiKey, NewAssetEvent,
    NewBackfill, NewFeedback, NewModelVersion, NewMonitorReport, NewNotification, NewRun, NewTaskInstance,
    NotificationFilter, PoolSettings, RunFilter, Secrets, SetStage, StageRefusal, Store, TaskLimit, TiFilter, TryEnd,
    TryRef,
};
use sqlx::Connection;
use uuid::Uuid;

/// A store on a fresh database, dropped (PostgreSQL) or deleted (SQLite) afterwards.
struct Fresh {
    store: Store,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

fn admin_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl Fresh {
    async fn postgres() -> Fresh {
        let name = format!("sluice_store_{}", Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
        let base = admin_url();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Fresh { store, pg_name: Some(name), _dir: tempfile::tempdir().unwrap() }
    }

    async fn sqlite() -> Fresh {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("s.db").display())).await.unwrap();
        store.migrate().await.unwrap();
        Fresh { store, pg_name: None, _dir: dir }
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some(name) = self.pg_name {
            let mut admin = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
            sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut admin).await.unwrap();
        }
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test] async fn $case() { let f = super::Fresh::postgres().await; super::$case(&f.store).await; f.finish().await; })*
        }
        mod sqlite {
            $(#[tokio::test] async fn $case() { let f = super::Fresh::sqlite().await; super::$case(&f.store).await; f.finish().await; })*
        }
    };
}

conformance!(
    migrations_run_twice,
    dag_versions_follow_content,
    a_scheduler_reading_an_older_file_does_not_bring_its_version_back,
    dags_whose_files_are_gone_become_inactive,
    a_run_is_created_once,
    max_active_runs_bounds_creation,
    claims_are_fenced_by_lease,
    concurrent_claims_never_share_a_task,
    expired_leases_are_found,
    logs_need_the_current_lease,
    ended_tries_logs_are_taken_once_and_moved_in_one_commit,
    import_errors_and_variables,
    connections_crud,
    secrets_are_sealed_at_rest,
    pools_count_their_task_instances,
    pools_limit_what_is_queued,
    pool_slots_and_task_limits_decide_what_is_queued,
    backfills_are_recorded_and_runs_found_by_date,
    a_backfill_owns_its_runs_until_cancelled,
    users_are_unique_by_name_and_change_role,
    api_keys_act_for_their_owner_until_revoked,
    access_control_hides_dags_from_lists,
    asset_events_and_quality_reports,
    asset_triggers_consume_events_once,
    leases_read_connections_and_watermarks,
    model_versions_and_stages,
    queued_tasks_are_taken_back_only_with_claims_excluded,
    a_mapped_task_is_expanded_once_in_place_of_its_placeholder,
    a_rescheduled_try_resumes_with_its_number_and_lease,
    keyed_outputs_are_kept_by_key_and_go_with_a_clear,
    alerts_are_taken_once_retried_and_listed,
);

fn dag(dag_id: &str, hash: &str) -> DagUpsert {
    DagUpsert {
        dag_id: dag_id.into(),
        fileloc: format!("dags/{dag_id}.yaml"),
        hash: hash.into(),
        spec: json!({"dag_id": dag_id}),
        source: format!("dag_id: {dag_id}"),
        description: None,
        owners: vec!["team".into()],
        tags: vec!["t".into()],
        timetable_summary: "None".into(),
        max_active_runs: 16,
        max_active_tasks: 16,
        is_paused_upon_creation: false,
        access_control: None,
        modified: chrono::Utc::now(),
    }
}

fn new_run(dag_id: &str, version_id: Uuid, run_id: &str, day: u32) -> NewRun {
    let at = chrono::NaiveDate::from_ymd_opt(2026, 1, day).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
    NewRun {
        dag_id: dag_id.into(),
        run_id: run_id.into(),
        version_id,
        run_type: "scheduled".into(),
        logical_date: Some(at),
        data_interval_start: Some(at),
        data_interval_end: Some(at + Duration::days(1)),
        run_after: at + Duration::days(1),
        conf: json!({}),
        note: None,
        triggered_by: "test".into(),
        backfill_id: None,
    }
}

fn tasks(n: usize) -> Vec<NewTaskInstance> {
    (0..n)
        .map(|i| NewTaskInstance {
            task_id: format!("t{i}"),
            max_tries: 1,
            priority_weight: i64::try_from(i).unwrap(),
            queue: "default".into(),
            pool: "default_pool".into(),
            pool_slots: 1,
        })
        .collect()
}

/// Claims up to `n` queued task instances for `worker`, as the engine does: lock them (their runs first), then
/// start their tries.
async fn claim(
    tx: &mut sluice_store::Tx,
    n: i64,
    worker: &str,
    lease_until: chrono::DateTime<Utc>,
    now: chrono::DateTime<Utc>,
) -> Vec<sluice_store::ClaimedTask> {
    let mut claimed = Vec::new();
    let mut claim = tx.claim_queued(&["default".into()], n).await.unwrap();
    for ti in claim.take_queued() {
        let rendered = json!({"argv": ["true"]});
        claimed.extend(claim.start_try(ti, &rendered, worker, "host", lease_until, now).await.unwrap());
    }
    claimed
}

/// The end of a try that succeeded with `output`.
fn succeeded(output: serde_json::Value) -> TryEnd {
    TryEnd {
        try_state: TaskState::Success,
        ti_state: TaskState::Success,
        exit_code: Some(0),
        error: None,
        output: Some(XComValue::Inline(output)),
        xcom: Vec::new(),
        next_retry_at: None,
        alerts: Vec::new(),
    }
}

/// A DAG with one run of `n` task instances, all queued.
async fn queued_run(store: &Store, n: usize) -> Uuid {
    let version = store.upsert_dag(&dag("d", "h1")).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let mut run = tx.create_run(&new_run("d", version, "r1", 1), &tasks(n), None, Utc::now()).await.unwrap().unwrap();
    let run_pk = run.run().id;
    let ids: Vec<Uuid> = run.run_task_instances(run_pk, None).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(run.set_ti_states(&ids, &[TaskState::None], TaskState::Scheduled, Utc::now()).await.unwrap(), n as u64);
    assert_eq!(run.queue_scheduled(1000, &Default::default(), Utc::now()).await.unwrap().len(), n);
    tx.commit().await.unwrap();
    run_pk
}

async fn migrations_run_twice(store: &Store) {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn a_scheduler_reading_an_older_file_does_not_bring_its_version_back(store: &Store) {
    let before_deploy = chrono::Utc::now() - chrono::Duration::hours(1);
    let old = DagUpsert { modified: before_deploy, tags: vec!["old".into()], ..dag("deployed", "h1") };
    let v1 = store.upsert_dag(&old).await.unwrap();
    let v2 = store.upsert_dag(&DagUpsert { tags: vec!["new".into()], ..dag("deployed", "h2") }).await.unwrap();
    assert_ne!(v1, v2, "new content is a new version");

    // Another scheduler still reads the file from before the deploy, or starts on it.
    assert_eq!(store.upsert_dag(&old).await.unwrap(), v2, "the latest version stays");
    let row = store.get_dag("deployed").await.unwrap().unwrap();
    assert_eq!(row.latest_version_id, Some(v2));
    assert_eq!(row.tags, vec!["new".to_string()], "nor do the old file's fields come back");
    assert!(row.last_parsed.is_some_and(|at| at > before_deploy), "the parse is recorded");

    // The file edited back to what it was, after the new version: that content is the latest again.
    let reverted = DagUpsert { modified: chrono::Utc::now() + chrono::Duration::seconds(1), ..old };
    assert_eq!(store.upsert_dag(&reverted).await.unwrap(), v1);
    let row = store.get_dag("deployed").await.unwrap().unwrap();
    assert_eq!(row.latest_version_id, Some(v1));
    assert_eq!(row.tags, vec!["old".to_string()]);
    assert!(store.get_dag_version_by_number("deployed", 3).await.unwrap().is_none(), "no version is made twice");
}

async fn dag_versions_follow_content(store: &Store) {
    let v1 = store.upsert_dag(&dag("d", "h1")).await.unwrap();
    assert_eq!(store.upsert_dag(&dag("d", "h1")).await.unwrap(), v1, "same content, same version");
    store.set_paused("d", true).await.unwrap();
    let v2 = store.upsert_dag(&dag("d", "h2")).await.unwrap();
    assert_ne!(v1, v2);
    let row = store.get_dag("d").await.unwrap().unwrap();
    assert_eq!(row.latest_version_id, Some(v2));
    assert!(row.is_paused, "a new version keeps the paused flag");
    assert_eq!(row.tags, vec!["t".to_string()]);
    let version = store.get_dag_version(v2).await.unwrap().unwrap();
    assert_eq!(version.version_number, 2);
    assert_eq!(version.spec, json!({"dag_id": "d"}));
}

async fn dags_whose_files_are_gone_become_inactive(store: &Store) {
    for id in ["a", "b", "c"] {
        store.upsert_dag(&dag(id, "h")).await.unwrap();
    }
    // b's file is broken: it keeps its last version and stays active.
    let gone = store.deactivate_missing_dags(&["a".into()], &["dags/b.yaml".into()]).await.unwrap();
    assert_eq!(gone, vec!["c".to_string()]);
    let filter = DagFilter { limit: 10, only_active: true, ..DagFilter::default() };
    let (active, total) = store.list_dags(&filter).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(active.iter().map(|d| d.dag_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    store.upsert_dag(&dag("c", "h")).await.unwrap();
    assert!(store.get_dag("c").await.unwrap().unwrap().is_active, "a returning file revives its DAG");
}

async fn a_run_is_created_once(store: &Store) {
    let version = store.upsert_dag(&dag("d", "h1")).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let mut locked =
        tx.create_run(&new_run("d", version, "r1", 1), &tasks(3), None, Utc::now()).await.unwrap().unwrap();
    let run = locked.run().clone();
    let tis = locked.run_task_instances(run.id, None).await.unwrap();
    assert_eq!(tis.len(), 3);
    let mut waiting = locked.waiting_task_ids(run.id).await.unwrap();
    waiting.sort();
    assert_eq!(waiting, ["t0", "t1", "t2"], "not started yet");
    let by_task = |task_id: &str| tis.iter().find(|ti| ti.task_id == task_id).map(|ti| ti.id).unwrap();
    locked.set_ti_states(&[by_task("t0")], &[TaskState::None], TaskState::Scheduled, Utc::now()).await.unwrap();
    locked.set_ti_states(&[by_task("t1")], &[TaskState::None], TaskState::UpForRetry, Utc::now()).await.unwrap();
    let mut waiting = tx.waiting_task_ids(run.id).await.unwrap();
    waiting.sort();
    assert_eq!(waiting, ["t1", "t2"], "up for retry waits too; scheduled does not");
    assert!(
        tx.create_run(&new_run("d", version, "r1", 2), &tasks(3), None, Utc::now()).await.unwrap().is_none(),
        "same run_id"
    );
    assert!(
        tx.create_run(&new_run("d", version, "other", 1), &tasks(3), None, Utc::now()).await.unwrap().is_none(),
        "same logical date"
    );
    tx.commit().await.unwrap();
    let last = store.last_scheduled_interval("d").await.unwrap().unwrap();
    assert_eq!(last.0, run.logical_date.unwrap());
}

async fn max_active_runs_bounds_creation(store: &Store) {
    let version = store.upsert_dag(&dag("d", "h1")).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    for day in 1..=2 {
        let run = new_run("d", version, &format!("r{day}"), day);
        assert!(tx.create_run(&run, &tasks(1), Some(2), Utc::now()).await.unwrap().is_some());
    }
    let third = tx.create_run(&new_run("d", version, "r3", 3), &tasks(1), Some(2), Utc::now()).await.unwrap();
    assert!(third.is_none(), "two active runs already");
    tx.commit().await.unwrap();
}

async fn claims_are_fenced_by_lease(store: &Store) {
    let run_pk = queued_run(store, 2).await;
    let now = Utc::now();
    let mut tx = store.begin().await.unwrap();
    let claimed = claim(&mut tx, 1, "w1", now + Duration::seconds(30), now).await;
    tx.commit().await.unwrap();
    assert_eq!(claimed.len(), 1);
    let task = &claimed[0];
    assert_eq!(task.ti.task_id, "t1", "highest priority first");
    assert_eq!(task.ti.state, TaskState::Running);
    assert_eq!(task.ti.try_number, 1);
    assert_eq!(task.ti.lease_id, Some(task.lease_id));
    let stored = store.get_task_instance_by_id(task.ti.id).await.unwrap().unwrap();
    assert_eq!(stored, task.ti, "the claimed row is what the database holds");
    assert_eq!(stored.rendered, Some(json!({"argv": ["true"]})));

    let mut tx = store.begin().await.unwrap();
    let mut run = tx.lock_run(run_pk).await.unwrap().unwrap();
    assert!(run.lock_leased_ti(task.ti.id, Uuid::now_v7()).await.unwrap().is_none(), "a wrong lease holds nothing");
    let ti = run.lock_leased_ti(task.ti.id, task.lease_id).await.unwrap().unwrap();
    run.end_try(&ti, &succeeded(json!({"n": 1})), Utc::now()).await.unwrap();
    assert!(run.lock_leased_ti(task.ti.id, task.lease_id).await.unwrap().is_none(), "an ended try holds nothing");
    let outputs = tx.reads().run_outputs(run_pk, &["t0", "t1"]).await.unwrap();
    assert_eq!(outputs, vec![("t1".to_string(), -1, XComValue::Inline(json!({"n": 1})))]);
    assert_eq!(tx.reads().run_outputs(run_pk, &["t0"]).await.unwrap(), vec![], "only the tasks asked for");
    assert!(tx.has_unfinished_tis(run_pk, None).await.unwrap());
    assert!(!tx.has_unfinished_tis(run_pk, Some("t1")).await.unwrap(), "t1 has ended");
    assert_eq!(tx.count_active_tis_of_dag("d", 16).await.unwrap(), 1, "t0 is still queued");
    tx.commit().await.unwrap();
    assert_eq!(store.run_progress(run_pk).await.unwrap(), (true, false), "unfinished, none waiting for room");

    assert!(!store.extend_lease(task.ti.id, task.lease_id, Utc::now()).await.unwrap());
    let tries = store.list_tries(task.ti.id).await.unwrap();
    assert_eq!(tries.len(), 1);
    assert_eq!(tries[0].state, TaskState::Success);
    assert_eq!(tries[0].exit_code, Some(0));
}

async fn a_rescheduled_try_resumes_with_its_number_and_lease(store: &Store) {
    let run_pk = queued_run(store, 1).await;
    let started = Utc::now() - Duration::seconds(10);
    let mut tx = store.begin().await.unwrap();
    let first = claim(&mut tx, 1, "w1", started + Duration::seconds(30), started).await.remove(0);
    tx.commit().await.unwrap();

    // The poke found its condition false: the task instance waits for its next poke, the try stays open.
    let mut tx = store.begin().await.unwrap();
    let mut run = tx.lock_run(run_pk).await.unwrap().unwrap();
    let ti = run.lock_leased_ti(first.ti.id, first.lease_id).await.unwrap().unwrap();
    let end = TryEnd {
        try_state: TaskState::UpForReschedule,
        ti_state: TaskState::UpForReschedule,
        output: None,
        next_retry_at: Some(Utc::now() - Duration::seconds(1)),
        ..succeeded(json!(null))
    };
    run.end_try(&ti, &end, Utc::now()).await.unwrap();
    assert_eq!(run.waiting_task_ids(run_pk).await.unwrap(), vec!["t0".to_string()]);
    let from = [TaskState::UpForReschedule];
    assert_eq!(run.set_ti_states(&[ti.id], &from, TaskState::Scheduled, Utc::now()).await.unwrap(), 1);
    assert_eq!(run.queue_scheduled(10, &Default::default(), Utc::now()).await.unwrap().len(), 1);
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let mut claim = tx.claim_queued(&["default".into()], 1).await.unwrap();
    let queued = claim.take_queued().remove(0);
    let until = Utc::now() + Duration::seconds(30);
    let resumed = claim.resume_try(&queued, "w2", "host2", until).await.unwrap().expect("the open try resumes");
    tx.commit().await.unwrap();
    assert_eq!(resumed.lease_id, first.lease_id, "the same try");
    assert_eq!((resumed.ti.try_number, resumed.ti.state), (1, TaskState::Running));
    assert_eq!(resumed.ti.start_date, first.ti.start_date, "the first poke's start is kept");
    let stored = store.get_task_instance_by_id(first.ti.id).await.unwrap().unwrap();
    assert_eq!(stored, resumed.ti, "the resumed row is what the database holds");
    let tries = store.list_tries(first.ti.id).await.unwrap();
    assert_eq!(tries.len(), 1);
    assert_eq!((tries[0].state, tries[0].worker.as_deref()), (TaskState::Running, Some("w2")));

    // What an external-task sensor reads: the task's instances, or the run, at the run's logical date.
    let mut tx = store.begin().await.unwrap();
    let run = tx.lock_run(run_pk).await.unwrap().unwrap();
    let date = run.run().logical_date.unwrap();
    let mut reads = tx.reads();
    assert_eq!(reads.external_states("d", Some("t0"), date).await.unwrap(), vec![TaskState::Running]);
    assert_eq!(reads.external_states("d", None, date).await.unwrap(), vec![TaskState::Queued]);
    assert_eq!(reads.external_states("d", Some("t0"), date + Duration::days(1)).await.unwrap(), vec![]);
    assert_eq!(reads.external_states("other", None, date).await.unwrap(), vec![]);
}

async fn concurrent_claims_never_share_a_task(store: &Store) {
    queued_run(store, 40).await;
    let claimers = (0..4).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let now = Utc::now();
                let mut tx = store.begin().await.unwrap();
                let claimed = claim(&mut tx, 3, &format!("w{w}"), now + Duration::seconds(30), now).await;
                tx.commit().await.unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|c| c.ti.id));
            }
        })
    });
    let all: Vec<Uuid> = futures::future::join_all(claimers).await.into_iter().flat_map(Result::unwrap).collect();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 40, "every task claimed");
    assert_eq!(unique.len(), 40, "no task claimed twice");
}

async fn expired_leases_are_found(store: &Store) {
    queued_run(store, 1).await;
    let past = Utc::now() - Duration::seconds(5);
    let mut tx = store.begin().await.unwrap();
    let claimed = claim(&mut tx, 1, "w", past, past).await;
    tx.commit().await.unwrap();
    let expired = store.expired_leases(Utc::now(), 10).await.unwrap();
    assert_eq!(expired.iter().map(|t| t.id).collect::<Vec<_>>(), vec![claimed[0].ti.id]);
}

async fn logs_need_the_current_lease(store: &Store) {
    queued_run(store, 1).await;
    let now = Utc::now();
    let mut tx = store.begin().await.unwrap();
    let task = claim(&mut tx, 1, "w", now + Duration::seconds(30), now).await.remove(0);
    tx.commit().await.unwrap();
    let lines: Vec<_> = (0..5).map(|i| (Utc::now(), "stdout".to_string(), format!("line {i}"))).collect();
    assert!(store.append_logs(task.ti.id, task.lease_id, &lines).await.unwrap());
    assert!(!store.append_logs(task.ti.id, Uuid::now_v7(), &lines).await.unwrap(), "stale lease");
    let first = store.read_logs(task.lease_id, 0, 3).await.unwrap();
    assert_eq!(first.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(), ["line 0", "line 1", "line 2"]);
    let rest = store.read_logs(task.lease_id, first[2].id, 100).await.unwrap();
    assert_eq!(rest.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(), ["line 3", "line 4"]);
}

async fn ended_tries_logs_are_taken_once_and_moved_in_one_commit(store: &Store) {
    let run_pk = queued_run(store, 3).await;
    let now = Utc::now();
    let mut tx = store.begin().await.unwrap();
    let tasks = claim(&mut tx, 3, "w", now + Duration::seconds(30), now).await;
    tx.commit().await.unwrap();
    for task in &tasks {
        let lines: Vec<_> =
            (0..5).map(|i| (Utc::now(), "stdout".to_string(), format!("{} {i}", task.ti.task_id))).collect();
        assert!(store.append_logs(task.ti.id, task.lease_id, &lines).await.unwrap());
    }
    // t2 succeeds, t1 is a sensor waiting for its next poke (its try goes on), t0 still runs.
    let (done, waiting) = (&tasks[0], &tasks[1]);
    assert_eq!((done.ti.task_id.as_str(), waiting.ti.task_id.as_str()), ("t2", "t1"));
    let mut tx = store.begin().await.unwrap();
    let mut run = tx.lock_run(run_pk).await.unwrap().unwrap();
    let ti = run.lock_leased_ti(done.ti.id, done.lease_id).await.unwrap().unwrap();
    run.end_try(&ti, &succeeded(json!(null)), now).await.unwrap();
    let ti = run.lock_leased_ti(waiting.ti.id, waiting.lease_id).await.unwrap().unwrap();
    let rescheduled = TryEnd {
        try_state: TaskState::UpForReschedule,
        ti_state: TaskState::UpForReschedule,
        ..succeeded(json!(null))
    };
    run.end_try(&ti, &rescheduled, now).await.unwrap();
    tx.commit().await.unwrap();

    let hold = now + Duration::seconds(60);
    assert!(store.take_logs_to_move(now - Duration::seconds(1), now, hold, 10).await.unwrap().is_empty(), "too recent");
    let taken = store.take_logs_to_move(now, now, hold, 10).await.unwrap();
    let expected = sluice_store::LogsToMove {
        try_id: done.lease_id,
        dag_id: "d".into(),
        run_id: "r1".into(),
        task_id: "t2".into(),
        map_index: -1,
        try_number: 1,
    };
    assert_eq!(taken, vec![expected.clone()], "only the ended try");
    assert!(store.take_logs_to_move(now, now, hold, 10).await.unwrap().is_empty(), "held for its mover");
    let later = hold + Duration::milliseconds(1);
    let taken_over = store.take_logs_to_move(now, later, later + Duration::seconds(60), 10).await.unwrap();
    assert_eq!(taken_over, vec![expected], "taken over once the hold ends");

    // The move records the object and deletes the rows it holds, together; a line written after them stays.
    let lines = store.read_logs(done.lease_id, 0, 100).await.unwrap();
    assert_eq!(store.log_uri(done.lease_id).await.unwrap(), None);
    let uri = "lake://_logs/d/r1/t2/-1/1.jsonl";
    assert!(store.record_log_moved(done.lease_id, uri, lines[3].id).await.unwrap());
    let left = store.read_logs(done.lease_id, 0, 100).await.unwrap();
    assert_eq!(left, lines[4..].to_vec());
    assert_eq!(store.log_uri(done.lease_id).await.unwrap().as_deref(), Some(uri));
    assert!(!store.record_log_moved(done.lease_id, uri, lines[4].id).await.unwrap(), "moved once");
    assert_eq!(store.read_logs(done.lease_id, 0, 100).await.unwrap(), left, "a second move changes nothing");
    assert!(store.take_logs_to_move(now, later + Duration::days(1), later, 10).await.unwrap().is_empty());
    for other in &tasks[1..] {
        assert_eq!(store.read_logs(other.lease_id, 0, 100).await.unwrap().len(), 5, "{}", other.ti.task_id);
        assert_eq!(store.log_uri(other.lease_id).await.unwrap(), None);
    }
}

async fn import_errors_and_variables(store: &Store) {
    store.record_import_error("dags/a.yaml", "a:1:1: bad").await.unwrap();
    store.record_import_error("dags/b.yaml", "b:2:2: bad").await.unwrap();
    store.record_import_error("dags/a.yaml", "a:3:1: worse").await.unwrap();
    let all = ImportErrorFilter { limit: 10, ..ImportErrorFilter::default() };
    let (errors, total) = store.list_import_errors(&all).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(errors[0].message, "a:3:1: worse");
    store.clear_import_errors_except(&["dags/b.yaml".into()]).await.unwrap();
    let (errors, _) = store.list_import_errors(&all).await.unwrap();
    assert_eq!(errors.iter().map(|e| e.filename.as_str()).collect::<Vec<_>>(), ["dags/b.yaml"]);
    let by_id = ImportErrorFilter { id: Some(errors[0].id), ..all.clone() };
    assert_eq!(store.list_import_errors(&by_id).await.unwrap().0, errors);

    store.set_variable("k", "v1", None).await.unwrap();
    store.set_variable("k", "v2", Some("why")).await.unwrap();
    let vars = store.list_variables().await.unwrap();
    assert_eq!(vars.len(), 1);
    assert_eq!((vars[0].value.as_str(), vars[0].description.as_deref()), ("v2", Some("why")));
}

fn warehouse() -> ConnectionRow {
    ConnectionRow {
        conn_id: "warehouse".into(),
        conn_type: "postgres".into(),
        description: None,
        host: Some("db.internal".into()),
        login: Some("etl".into()),
        password: Some("s3cret".into()),
        schema: Some("analytics".into()),
        port: Some(5432),
        extra: Some(r#"{"sslmode": "require"}"#.into()),
    }
}

async fn connections_crud(store: &Store) {
    let mut conn = warehouse();
    assert!(store.create_connection(&conn).await.unwrap());
    assert!(!store.create_connection(&conn).await.unwrap(), "a second create with the same id changes nothing");
    assert_eq!(store.get_connection("warehouse").await.unwrap().as_ref(), Some(&conn));
    conn.port = None;
    conn.password = Some("rotated".into());
    assert!(store.update_connection(&conn).await.unwrap());
    assert_eq!(store.get_connection("warehouse").await.unwrap().as_ref(), Some(&conn));
    let mut other = conn.clone();
    other.conn_id = "api".into();
    assert!(store.create_connection(&other).await.unwrap());
    let (page, total) = store.list_connections(1, 0).await.unwrap();
    assert_eq!((page[0].conn_id.as_str(), total), ("api", 2));
    assert!(store.delete_connection("api").await.unwrap());
    assert!(!store.delete_connection("api").await.unwrap());
    other.conn_id = "missing".into();
    assert!(!store.update_connection(&other).await.unwrap());
}

async fn secrets_are_sealed_at_rest(store: &Store) {
    let keyed = |config: &str| store.clone().with_secrets(Secrets::from_config(config).unwrap());
    let (old, new) = (Secrets::generate_key(), Secrets::generate_key());
    store.set_variable("early", "written before a key was set", None).await.unwrap();
    let sealing = keyed(&old);
    assert!(sealing.create_connection(&warehouse()).await.unwrap());
    sealing.set_variable("api_key", "hunter2", None).await.unwrap();
    assert_eq!(sealing.get_connection("warehouse").await.unwrap(), Some(warehouse()));
    assert_eq!(sealing.get_variable("api_key").await.unwrap().unwrap().value, "hunter2");
    let mut tx = sealing.begin().await.unwrap();
    let mut reads = tx.reads();
    assert_eq!(reads.connection("warehouse").await.unwrap(), Some(warehouse()));
    assert!(reads.variables().await.unwrap().contains(&("api_key".into(), "hunter2".into())));
    tx.rollback().await.unwrap();
    assert_eq!(sealing.check_secrets().await.unwrap().to_reseal, 1, "the value written before the key");

    // Without the key, or with another one, the sealed values do not open, and the message names the key needed.
    let old_id = Secrets::from_config(&old).unwrap().key_ids()[0].to_owned();
    for wrong in [store.clone(), keyed(&new)] {
        let refused = wrong.check_secrets().await.unwrap_err().to_string();
        assert!(refused.contains(&old_id) && refused.contains("SLUICE_ENCRYPTION_KEY"), "{refused}");
        assert!(wrong.get_variable("api_key").await.is_err());
        assert!(wrong.get_connection("warehouse").await.is_err());
    }

    // Rotation: the new key first, the old one after it, then everything sealed again with the new one.
    let rotating = keyed(&format!("{new},{old}"));
    assert_eq!(rotating.check_secrets().await.unwrap().to_reseal, 4, "password, extra and two variables");
    assert_eq!(rotating.reseal_secrets().await.unwrap(), 4);
    assert_eq!(rotating.check_secrets().await.unwrap().to_reseal, 0);
    let rotated = keyed(&new);
    rotated.check_secrets().await.unwrap();
    assert_eq!(rotated.get_connection("warehouse").await.unwrap(), Some(warehouse()));
    assert_eq!(rotated.get_variable("early").await.unwrap().unwrap().value, "written before a key was set");
    assert!(sealing.check_secrets().await.is_err(), "the old key alone no longer opens them");
}

async fn pools_count_their_task_instances(store: &Store) {
    let default = store.get_pool("default_pool").await.unwrap().expect("the default pool exists from the start");
    assert_eq!((default.slots, default.occupied_slots()), (128, 0));
    let mut gpu = PoolSettings { name: "gpu".into(), slots: 2, description: None, include_deferred: false };
    assert!(store.create_pool(&gpu).await.unwrap());
    assert!(!store.create_pool(&gpu).await.unwrap());
    queued_run(store, 3).await;
    let default = store.get_pool("default_pool").await.unwrap().unwrap();
    assert_eq!((default.queued_slots, default.occupied_slots(), default.open_slots()), (3, 3, 125));
    gpu.slots = -1;
    gpu.name = "accelerators".into();
    assert!(store.update_pool("gpu", &gpu).await.unwrap());
    assert!(store.get_pool("gpu").await.unwrap().is_none(), "renamed");
    let renamed = store.get_pool("accelerators").await.unwrap().unwrap();
    assert_eq!((renamed.slots, renamed.open_slots()), (-1, -1));
    let (pools, total) = store.list_pools(10, 0).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["accelerators", "default_pool"]);
    assert!(store.delete_pool("accelerators").await.unwrap());
    assert!(!store.delete_pool("accelerators").await.unwrap());
}

async fn pools_limit_what_is_queued(store: &Store) {
    let tiny = PoolSettings { name: "tiny".into(), slots: 1, description: None, include_deferred: false };
    assert!(store.create_pool(&tiny).await.unwrap());
    let version = store.upsert_dag(&dag("d", "h1")).await.unwrap();
    // The highest priorities are in the one-slot pool and in a pool that does not exist.
    let mut planned = tasks(6);
    for (task, pool) in planned.iter_mut().rev().zip(["tiny", "tiny", "tiny", "nowhere"]) {
        task.pool = pool.into();
    }
    let mut tx = store.begin().await.unwrap();
    let mut run = tx.create_run(&new_run("d", version, "r1", 1), &planned, None, Utc::now()).await.unwrap().unwrap();
    let run_pk = run.run().id;
    let tis = run.run_task_instances(run_pk, None).await.unwrap();
    let ids: Vec<Uuid> = tis.iter().map(|t| t.id).collect();
    run.set_ti_states(&ids, &[TaskState::None], TaskState::Scheduled, Utc::now()).await.unwrap();
    let queued = run.queue_scheduled(3, &Default::default(), Utc::now()).await.unwrap();
    let pool_of = |id: &Uuid| tis.iter().find(|t| t.id == *id).unwrap().pool.clone();
    let mut pools: Vec<String> = queued.iter().map(pool_of).collect();
    pools.sort();
    assert_eq!(pools, ["default_pool", "default_pool", "tiny"], "one task of the full pool, then the others");
    let more: Vec<String> =
        run.queue_scheduled(10, &Default::default(), Utc::now()).await.unwrap().iter().map(pool_of).collect();
    assert!(more.is_empty(), "tiny is full, nowhere missing: {more:?}");
    tx.commit().await.unwrap();
    let tiny = store.get_pool("tiny").await.unwrap().unwrap();
    assert_eq!((tiny.queued_slots, tiny.open_slots()), (1, 0));
}

async fn pool_slots_and_task_limits_decide_what_is_queued(store: &Store) {
    let three = PoolSettings { name: "three".into(), slots: 3, description: None, include_deferred: false };
    assert!(store.create_pool(&three).await.unwrap());
    let version = store.upsert_dag(&dag("d", "h1")).await.unwrap();
    // By priority: t4 takes 2 slots, t3 takes 2, t2 and t1 one each; t5 is first of all but at its limit.
    let mut planned = tasks(6);
    for (task, slots) in planned.iter_mut().skip(1).zip([1, 1, 2, 2, 1]) {
        task.pool = "three".into();
        task.pool_slots = slots;
    }
    let mut tx = store.begin().await.unwrap();
    let mut run = tx.create_run(&new_run("d", version, "r1", 1), &planned, None, Utc::now()).await.unwrap().unwrap();
    let run_pk = run.run().id;
    let tis = run.run_task_instances(run_pk, None).await.unwrap();
    let ids: Vec<Uuid> = tis.iter().map(|t| t.id).collect();
    run.set_ti_states(&ids, &[TaskState::None], TaskState::Scheduled, Utc::now()).await.unwrap();
    let limits = [("t5".to_owned(), TaskLimit { per_dag: Some(5), per_run: Some(0) })].into_iter().collect();
    let queued = run.queue_scheduled(2, &limits, Utc::now()).await.unwrap();
    let task_of = |id: &Uuid| tis.iter().find(|t| t.id == *id).unwrap().task_id.clone();
    let mut picked: Vec<String> = queued.iter().map(task_of).collect();
    picked.sort();
    assert_eq!(picked, ["t2", "t4"], "t4's two slots and one for t2, passing t5 at its limit and t3 too big");
    let more: Vec<String> = run.queue_scheduled(10, &limits, Utc::now()).await.unwrap().iter().map(task_of).collect();
    assert_eq!(more, ["t0"], "the pool is full; t0 is in the default pool");
    tx.commit().await.unwrap();
    let three = store.get_pool("three").await.unwrap().unwrap();
    assert_eq!((three.queued_slots, three.open_slots()), (3, 0));
}

async fn backfills_are_recorded_and_runs_found_by_date(store: &Store) {
    let version = store.upsert_dag(&dag("d", "h1")).await.unwrap();
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 1, d).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let mut tx = store.begin().await.unwrap();
    tx.create_run(&new_run("d", version, "r3", 3), &tasks(1), None, Utc::now()).await.unwrap().unwrap();
    let backfill = NewBackfill {
        dag_id: "d".into(),
        from_date: day(1),
        to_date: day(5),
        dag_run_conf: json!({"full": true}),
        reprocess_behavior: "failed".into(),
        max_active_runs: 2,
    };
    let first = tx.insert_backfill(&backfill, Utc::now()).await.unwrap();
    let second = tx.insert_backfill(&backfill, Utc::now()).await.unwrap();
    assert!(second.id > first.id);
    assert_eq!(tx.lock_run_at("d", day(3)).await.unwrap().map(|r| r.run().run_id.clone()), Some("r3".into()));
    assert!(tx.lock_run_at("d", day(4)).await.unwrap().is_none());
    tx.commit().await.unwrap();

    let stored = store.get_backfill(first.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.from_date, stored.to_date, stored.dag_run_conf.clone()),
        (day(1), day(5), json!({"full": true}))
    );
    assert_eq!(stored, first);
    let (page, total) = store.list_backfills("d", 1, 0).await.unwrap();
    assert_eq!((page[0].id, total), (second.id, 2), "newest first");
    assert!(store.get_backfill(second.id + 100).await.unwrap().is_none());
}

async fn a_backfill_owns_its_runs_until_cancelled(store: &Store) {
    let version = store.upsert_dag(&dag("d", "h1")).await.unwrap();
    let backfill = NewBackfill {
        dag_id: "d".into(),
        from_date: Utc::now(),
        to_date: Utc::now(),
        dag_run_conf: json!({}),
        reprocess_behavior: "none".into(),
        max_active_runs: 1,
    };
    let mut tx = store.begin().await.unwrap();
    let b = tx.insert_backfill(&backfill, Utc::now()).await.unwrap();
    assert!(!b.is_paused && b.cancelled_at.is_none());
    let mut owned = new_run("d", version, "backfill_1", 1);
    owned.backfill_id = Some(b.id);
    let mut owned = tx.create_run(&owned, &tasks(1), None, Utc::now()).await.unwrap().unwrap();
    assert_eq!(owned.run().backfill_id, Some(b.id));
    owned.set_run_state(RunState::Running, Utc::now()).await.unwrap();
    let other = tx.create_run(&new_run("d", version, "scheduled_2", 2), &tasks(1), None, Utc::now()).await.unwrap();
    other.unwrap().set_run_state(RunState::Running, Utc::now()).await.unwrap();
    // Each limit counts its own runs: the DAG's those outside backfills, a backfill's its own.
    assert_eq!(tx.count_running_runs("d", None).await.unwrap(), 1);
    assert_eq!(tx.count_running_runs("d", Some(b.id)).await.unwrap(), 1);
    assert_eq!(tx.count_active_runs("d").await.unwrap(), 1);
    assert_eq!(tx.unfinished_backfill("d").await.unwrap(), Some(b.id));
    assert!(tx.backfill_is_unfinished(b.id).await.unwrap());
    tx.set_backfill_paused(b.id, true).await.unwrap();
    assert!(tx.lock_backfill(b.id).await.unwrap().unwrap().is_paused);
    tx.cancel_backfill(b.id, Utc::now()).await.unwrap();
    assert!(!tx.backfill_is_unfinished(b.id).await.unwrap(), "a cancelled backfill is complete");
    tx.commit().await.unwrap();

    let filter = RunFilter { backfill_id: Some(b.id), limit: 10, ..RunFilter::default() };
    let (runs, total) = store.list_runs(&filter).await.unwrap();
    assert_eq!((runs[0].run_id.as_str(), total), ("backfill_1", 1));
    let stored = store.get_backfill(b.id).await.unwrap().unwrap();
    assert!(stored.is_paused && stored.cancelled_at.is_some());
}

async fn users_are_unique_by_name_and_change_role(store: &Store) {
    let alice = store.create_user("alice", "hash-a", Role::Op).await.unwrap().unwrap();
    assert_eq!((alice.username.as_str(), alice.password_hash.as_str(), alice.role), ("alice", "hash-a", Role::Op));
    assert!(store.create_user("alice", "other", Role::Admin).await.unwrap().is_none(), "name taken");
    store.create_user("bob", "hash-b", Role::Viewer).await.unwrap().unwrap();
    assert_eq!(store.get_user(alice.id).await.unwrap().unwrap().password_hash, "hash-a");
    let names: Vec<_> = store.list_users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["alice", "bob"]);
    let promoted = store.set_user_role("bob", Role::Admin).await.unwrap().unwrap();
    assert_eq!((promoted.role, promoted.password_hash.as_str()), (Role::Admin, "hash-b"));
    assert_eq!(store.get_user_by_name("bob").await.unwrap().unwrap().role, Role::Admin);
    assert!(store.set_user_role("carol", Role::Op).await.unwrap().is_none(), "no such user");
    assert!(store.delete_user("alice").await.unwrap());
    assert!(!store.delete_user("alice").await.unwrap());
    assert!(store.get_user_by_name("alice").await.unwrap().is_none());
}

async fn api_keys_act_for_their_owner_until_revoked(store: &Store) {
    let owner = store.create_user("ci", "h", Role::User).await.unwrap().unwrap();
    let other = store.create_user("other", "h", Role::Admin).await.unwrap().unwrap();
    let id = Uuid::now_v7();
    let key = NewApiKey { id, name: "deploy", user_id: owner.id, role: Role::Viewer, secret_hash: "sha" };
    let created = store.create_api_key(&key).await.unwrap();
    assert_eq!((created.username.as_str(), created.role, created.owner_role), ("ci", Role::Viewer, Role::User));
    assert!(created.last_used.is_none() && created.revoked.is_none());
    let other_key = NewApiKey { id: Uuid::now_v7(), name: "x", user_id: other.id, role: Role::Admin, secret_hash: "s" };
    store.create_api_key(&other_key).await.unwrap();
    assert_eq!(store.list_api_keys(Some(owner.id)).await.unwrap().len(), 1);
    assert_eq!(store.list_api_keys(None).await.unwrap().len(), 2);

    store.touch_api_key(id).await.unwrap();
    assert!(store.get_api_key(id).await.unwrap().unwrap().last_used.is_some());
    assert!(store.revoke_api_key(id).await.unwrap());
    assert!(!store.revoke_api_key(id).await.unwrap(), "revoked once");
    assert!(store.get_api_key(id).await.unwrap().unwrap().revoked.is_some());

    store.delete_user("ci").await.unwrap();
    assert!(store.get_api_key(id).await.unwrap().is_none(), "a deleted user's keys go with them");
}

async fn access_control_hides_dags_from_lists(store: &Store) {
    let access: AccessControl = serde_json::from_value(json!({"Op": ["can_read"]})).unwrap();
    let private = DagUpsert { access_control: Some(access.clone()), ..dag("private", "h1") };
    let private_version = store.upsert_dag(&private).await.unwrap();
    let open_version = store.upsert_dag(&dag("open", "h2")).await.unwrap();
    assert_eq!(store.dag_access_control("private").await.unwrap(), Some(access.clone()));
    assert_eq!(store.dag_access_control("open").await.unwrap(), None);
    assert_eq!(store.dag_access_control("missing").await.unwrap(), None);
    assert_eq!(store.restricted_dags().await.unwrap(), vec![("private".to_string(), access)]);

    let hidden = vec!["private".to_string()];
    let filter = DagFilter { limit: 10, hidden_dag_ids: hidden.clone(), ..DagFilter::default() };
    let (dags, total) = store.list_dags(&filter).await.unwrap();
    assert_eq!((dags.iter().map(|d| d.dag_id.as_str()).collect::<Vec<_>>(), total), (vec!["open"], 1));

    let mut tx = store.begin().await.unwrap();
    for (dag_id, version) in [("private", private_version), ("open", open_version)] {
        tx.create_run(&new_run(dag_id, version, "r1", 1), &tasks(1), None, Utc::now()).await.unwrap().unwrap();
    }
    tx.commit().await.unwrap();
    let runs = RunFilter { limit: 10, hidden_dag_ids: hidden.clone(), ..RunFilter::default() };
    let (runs, total) = store.list_runs(&runs).await.unwrap();
    assert_eq!((runs.iter().map(|r| r.dag_id.as_str()).collect::<Vec<_>>(), total), (vec!["open"], 1));
    let tis = TiFilter { limit: 10, hidden_dag_ids: hidden.clone(), ..TiFilter::default() };
    let (tis, total) = store.list_task_instances(&tis).await.unwrap();
    assert_eq!((tis.iter().map(|t| t.dag_id.as_str()).collect::<Vec<_>>(), total), (vec!["open"], 1));

    // An import error belongs to the DAGs of its file; one of a file without a known DAG, only to whoever sees all.
    for file in ["dags/private.yaml", "dags/open.yaml", "dags/new.yaml"] {
        store.record_import_error(file, "bad").await.unwrap();
    }
    let files = |filter: ImportErrorFilter| async move {
        let (errors, total) = store.list_import_errors(&filter).await.unwrap();
        (errors.into_iter().map(|e| e.filename).collect::<Vec<_>>(), total)
    };
    let all = ImportErrorFilter { limit: 10, ..ImportErrorFilter::default() };
    assert_eq!(files(all.clone()).await.1, 3);
    let visible = ImportErrorFilter { hidden_dag_ids: hidden.clone(), ..all };
    assert_eq!(files(visible).await, (vec!["dags/open.yaml".to_string()], 1));

    let opened = DagUpsert { access_control: None, ..dag("private", "h3") };
    store.upsert_dag(&opened).await.unwrap();
    assert!(store.restricted_dags().await.unwrap().is_empty(), "dropping access_control opens the DAG");
}

/// The try of the first queued task instance, claimed, as the source of events and reports.
async fn a_try(store: &Store) -> TryRef {
    queued_run(store, 1).await;
    let now = Utc::now();
    let mut tx = store.begin().await.unwrap();
    let claimed = claim(&mut tx, 1, "w", now + Duration::seconds(30), now).await;
    tx.commit().await.unwrap();
    let ti = &claimed[0].ti;
    TryRef {
        try_id: claimed[0].lease_id.to_string(),
        dag_id: ti.dag_id.clone(),
        run_id: ti.run_id.clone(),
        task_id: ti.task_id.clone(),
        try_number: ti.try_number,
    }
}

fn event(uri: &str, rows: i64) -> NewAssetEvent {
    NewAssetEvent {
        uri: uri.into(),
        row_count: Some(rows),
        schema: Some(json!([{"name": "a", "dtype": "i64"}])),
        content_hash: Some(format!("hash-{rows}")),
        watermark: None,
    }
}

async fn asset_events_and_quality_reports(store: &Store) {
    let from = a_try(store).await;
    let t0 = Utc::now();
    let mut tx = store.begin().await.unwrap();
    tx.record_asset_events(&from, Some("team"), &[event("lake://raw/a", 3), event("lake://raw/b", 5)], t0)
        .await
        .unwrap();
    tx.record_asset_events(&from, Some("other"), &[event("lake://raw/a", 4)], t0 + Duration::seconds(1)).await.unwrap();
    let report = json!({"rows": 4, "results": [{"check": "not_null", "passed": false}]});
    tx.record_quality_report(&from, "lake://raw/a", "warn", &report, t0).await.unwrap();
    tx.commit().await.unwrap();

    let (assets, total) = store.list_assets(10, 0, &[]).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(assets.iter().map(|a| a.uri.as_str()).collect::<Vec<_>>(), ["lake://raw/a", "lake://raw/b"]);
    let a = &assets[0];
    assert_eq!(a.owner.as_deref(), Some("team"), "the first writer's owner stays");
    assert!(a.updated > a.created);
    let last = a.last_event.as_ref().unwrap();
    assert_eq!((last.row_count, last.quality_status.as_deref()), (Some(4), Some("warn")), "the newest event is judged");
    assert_eq!(last.schema, Some(json!([{"name": "a", "dtype": "i64"}])));
    assert_eq!(last.asset_id, a.id);
    assert_eq!(store.asset_uri(a.id).await.unwrap().as_deref(), Some("lake://raw/a"));
    assert_eq!(store.asset_uri(a.id + 100).await.unwrap(), None);

    let only_a = AssetEventFilter { uri: Some("lake://raw/a".into()), limit: 10, ..AssetEventFilter::default() };
    let (events, total) = store.asset_events(&only_a).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(events.iter().map(|e| e.row_count).collect::<Vec<_>>(), [Some(4), Some(3)], "newest first");
    assert_eq!(events[1].quality_status, None);
    assert_eq!((events[0].dag_id.as_str(), events[0].task_id.as_str()), (from.dag_id.as_str(), from.task_id.as_str()));
    let by_run =
        AssetEventFilter { run_id: Some(from.run_id.clone()), limit: 1, offset: 1, ..AssetEventFilter::default() };
    let (page, total) = store.asset_events(&by_run).await.unwrap();
    assert_eq!((page.len(), total), (1, 3));
    let elsewhere = AssetEventFilter { dag_id: Some("nope".into()), limit: 10, ..AssetEventFilter::default() };
    assert_eq!(store.asset_events(&elsewhere).await.unwrap().1, 0);
    // Events of a DAG the caller may not read are left out, and so is what they say about the asset.
    let hidden = vec![from.dag_id.clone()];
    let hiding = AssetEventFilter { limit: 10, hidden_dag_ids: hidden.clone(), ..AssetEventFilter::default() };
    assert_eq!(store.asset_events(&hiding).await.unwrap(), (Vec::new(), 0));
    let (assets, total) = store.list_assets(10, 0, &hidden).await.unwrap();
    assert_eq!((assets.iter().filter(|a| a.last_event.is_some()).count(), total), (0, 2));

    let reports = store.quality_reports(&from.dag_id, &from.run_id, &from.task_id, from.try_number).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].uri.as_str(), reports[0].status.as_str()), ("lake://raw/a", "warn"));
    assert_eq!(reports[0].report, report);
    assert!(store.quality_reports(&from.dag_id, &from.run_id, &from.task_id, 2).await.unwrap().is_empty());
}

async fn asset_triggers_consume_events_once(store: &Store) {
    let from = a_try(store).await;
    store.upsert_dag(&dag("consumer", "h1")).await.unwrap();
    let updated = |store: &Store| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            assert!(tx.lock_dag("consumer").await.unwrap());
            let updated = tx.assets_updated("consumer", &["lake://raw/a", "lake://raw/b"]).await.unwrap();
            tx.commit().await.unwrap();
            updated
        }
    };
    let record = |uri: &'static str| {
        let store = store.clone();
        let from = from.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            tx.record_asset_events(&from, None, &[event(uri, 1)], Utc::now()).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    let uris = |marks: &[(String, i64)]| marks.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>();
    assert_eq!(updated(store).await, [], "no events yet");
    record("lake://raw/b").await;
    assert_eq!(uris(&updated(store).await), ["lake://raw/b"]);
    record("lake://raw/a").await;
    let marks = updated(store).await;
    assert_eq!(uris(&marks), ["lake://raw/a", "lake://raw/b"], "in the order asked");

    let mut tx = store.begin().await.unwrap();
    tx.consume_asset_events("consumer", &marks).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(updated(store).await, [], "consumed");
    record("lake://raw/a").await;
    assert_eq!(uris(&updated(store).await), ["lake://raw/a"], "only a is new");
    record("lake://raw/b").await;
    let next = updated(store).await;
    assert!(next.iter().zip(&marks).all(|((_, new), (_, old))| new > old), "{next:?} after {marks:?}");
    let mut tx = store.begin().await.unwrap();
    assert!(!tx.lock_dag("nope").await.unwrap());
    tx.rollback().await.unwrap();
}

/// What a data task's lease reads in the claim's transaction: its connections and the newest watermark of its output.
async fn leases_read_connections_and_watermarks(store: &Store) {
    let conn = warehouse();
    assert!(store.create_connection(&conn).await.unwrap());
    let from = a_try(store).await;
    let marked = |rows: i64, mark: Option<&str>| NewAssetEvent {
        watermark: mark.map(str::to_owned),
        ..event("lake://raw/w", rows)
    };
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.reads().connection("warehouse").await.unwrap().as_ref(), Some(&conn));
    assert_eq!(tx.reads().connection("nope").await.unwrap(), None);
    assert_eq!(tx.reads().connections().await.unwrap(), std::slice::from_ref(&conn));
    assert_eq!(tx.reads().latest_watermark("lake://raw/w").await.unwrap(), None);
    let events = [marked(3, Some("3")), marked(2, Some("5")), marked(0, None)];
    for e in &events {
        tx.record_asset_events(&from, None, std::slice::from_ref(e), Utc::now()).await.unwrap();
    }
    assert_eq!(tx.reads().latest_watermark("lake://raw/w").await.unwrap().as_deref(), Some("5"), "the newest mark");
    assert_eq!(tx.reads().latest_watermark("lake://raw/other").await.unwrap(), None);
    tx.commit().await.unwrap();
}

/// Registers version `version` of model `m`, trained on the data of `event("lake://f", rows)`.
async fn register(store: &Store, version: i64, accuracy: f64, rows: i64) {
    let metrics = std::collections::BTreeMap::from([("accuracy".to_owned(), accuracy)]);
    let (params, details) = (json!({"alpha": 1.0}), json!({"per_fold": []}));
    let uri = format!("lake://models/m/{version}");
    let hash = format!("hash-{rows}");
    let new = NewModelVersion {
        model: "m",
        version,
        algorithm: "logistic_regression",
        params: &params,
        metrics: &metrics,
        details: &details,
        artifact_uri: &uri,
        input_uri: "lake://f",
        input_content_hash: Some(&hash),
        description: Some("a model"),
        dag_id: "d",
        run_id: "r",
        task_id: "train",
        try_id: "t",
        dag_version_id: None,
    };
    let mut tx = store.begin().await.unwrap();
    tx.register_model_version(&new, Utc::now()).await.unwrap();
    tx.commit().await.unwrap();
}

async fn model_versions_and_stages(store: &Store) {
    let from = a_try(store).await;
    let mut tx = store.begin().await.unwrap();
    tx.record_asset_events(&from, None, &[event("lake://f", 10), event("lake://f", 20)], Utc::now()).await.unwrap();
    // Numbers are reserved one by one, whether or not the try that took one registers it.
    let reserved = [
        tx.reserve_model_version("m", Utc::now()).await.unwrap(),
        tx.reserve_model_version("m", Utc::now()).await.unwrap(),
    ];
    tx.commit().await.unwrap();
    assert_eq!(reserved, [1, 2]);
    register(store, 1, 0.9, 10).await;
    register(store, 2, 0.95, 20).await;
    let v1 = store.get_model_version("m", 1).await.unwrap().unwrap();
    let (events, _) = store
        .asset_events(&AssetEventFilter { uri: Some("lake://f".into()), limit: 10, ..AssetEventFilter::default() })
        .await
        .unwrap();
    let first_event = events.iter().find(|e| e.row_count == Some(10)).unwrap().id;
    assert_eq!((v1.stage.as_str(), v1.input_event_id, v1.metrics["accuracy"]), ("none", Some(first_event), 0.9));

    let promote = |version, expected| SetStage {
        model: "m",
        version,
        stage: "production",
        changed_by: "run:d/r/deploy",
        reason: Some("gate passed"),
        expected_production: expected,
    };
    store.set_model_stage(&promote(1, Some(None)), Utc::now()).await.unwrap().unwrap();
    // A decision made against an older production version changes nothing.
    let refused = store.set_model_stage(&promote(2, Some(None)), Utc::now()).await.unwrap();
    assert_eq!(refused, Err(StageRefusal::ProductionMoved { model: "m".into(), expected: None, now: Some(1) }));
    assert_eq!(
        store.set_model_stage(&promote(7, None), Utc::now()).await.unwrap(),
        Err(StageRefusal::NoSuchVersion("m".into(), 7))
    );
    store.set_model_stage(&promote(2, Some(Some(1))), Utc::now()).await.unwrap().unwrap();

    let stages: Vec<(i64, String)> =
        store.list_model_versions("m").await.unwrap().into_iter().map(|v| (v.version, v.stage)).collect();
    assert_eq!(stages, [(2, "production".to_owned()), (1, "archived".to_owned())]);
    let history: Vec<(i64, String, String)> = store
        .model_stage_history("m")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.version, c.from_stage, c.to_stage))
        .collect();
    let expected = [(1, "none", "production"), (1, "production", "archived"), (2, "none", "production")];
    assert_eq!(history, expected.map(|(v, f, t)| (v, f.to_owned(), t.to_owned())));
    let mut tx = store.begin().await.unwrap();
    let (versions, previous) = tx.model_versions_for_deploy("m").await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!((versions.len(), previous), (2, Some(1)), "a rollback goes back to version 1");
    let model = store.get_model("m").await.unwrap().unwrap();
    assert_eq!(
        (model.latest_version, model.production_version, model.description.as_deref()),
        (Some(2), Some(2), Some("a model"))
    );
    assert_eq!(store.model_version_in_stage("m", "production").await.unwrap().unwrap().version, 2);
    assert_eq!(store.list_models(10, 0).await.unwrap().1, 1);

    let checks = json!([{"feature": "x", "statistic": "psi", "value": 0.5, "threshold": 0.2, "drifted": true}]);
    let report = NewMonitorReport {
        model: "m",
        version: 2,
        input_uri: "lake://batch",
        rows: 100,
        drifted: true,
        checks: &checks,
        dag_id: "watch",
        run_id: "r1",
        task_id: "monitor",
        try_id: "t",
        feedback: None,
    };
    // Labels fed back before the first report are all above its (absent) mark.
    let label =
        |request_id: &str, label: &str| NewFeedback { request_id: request_id.into(), record: 0, label: label.into() };
    let given = [label("a", "x"), label("b", "y"), label("c", "x")];
    assert_eq!(store.record_feedback("m", &given, "user:u", Utc::now()).await.unwrap(), 3);
    let mut tx = store.begin().await.unwrap();
    let since = tx.reads().feedback_since("m", 2).await.unwrap();
    let newest: Vec<&str> = since.rows.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!((since.after, since.total, newest), (None, 3, vec!["c", "b"]), "the newest, within the limit");
    let through = since.rows[0].id;
    let id = tx.record_monitor_report(&report, Utc::now()).await.unwrap();
    let conf = json!({"reason": "drift"});
    tx.request_retraining(id, "retrain", "retrain__report_1", &conf).await.unwrap();
    tx.commit().await.unwrap();
    let pending = store.pending_retraining(10).await.unwrap();
    assert_eq!((pending.len(), pending[0].retrain_conf.as_ref()), (1, Some(&conf)), "asked for with the report");
    store.retraining_done(id, true).await.unwrap();
    assert!(store.pending_retraining(10).await.unwrap().is_empty());
    let (reports, total) = store.list_monitor_reports("m", 10, 0).await.unwrap();
    assert_eq!((total, reports[0].drifted, &reports[0].checks), (1, true, &checks));
    assert_eq!(reports[0].retrain_run_id.as_deref(), Some("retrain__report_1"));

    // The next report notes the labels it used; later ones start above its mark.
    let counts = FeedbackCounts { labels: 3, matched: 2, through };
    let mut tx = store.begin().await.unwrap();
    let id =
        tx.record_monitor_report(&NewMonitorReport { feedback: Some(counts), ..report }, Utc::now()).await.unwrap();
    tx.request_retraining(id, "gone", "retrain__report_2", &conf).await.unwrap();
    tx.commit().await.unwrap();
    store.retraining_done(id, false).await.unwrap();
    let (reports, _) = store.list_monitor_reports("m", 10, 0).await.unwrap();
    assert_eq!((reports[0].feedback, reports[0].retrain_run_id.as_deref()), (Some(counts), None));
    store.record_feedback("m", &[label("d", "y")], "user:u", Utc::now()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let since = tx.reads().feedback_since("m", 10).await.unwrap();
    tx.rollback().await.unwrap();
    let ids: Vec<&str> = since.rows.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!((since.after, since.total, ids), (Some(through), 1, vec!["d"]));
    let origins = store.model_version_origins().await.unwrap();
    assert_eq!(
        origins.iter().map(|o| (o.version, o.stage.as_str())).collect::<Vec<_>>(),
        [(1, "archived"), (2, "production")]
    );
}

async fn queued_tasks_are_taken_back_only_with_claims_excluded(store: &Store) {
    let run_pk = queued_run(store, 1).await;
    let mut tx = store.begin().await.unwrap();
    let mut run = tx.lock_run(run_pk).await.unwrap().unwrap();
    let ids: Vec<Uuid> = run.run_task_instances(run_pk, None).await.unwrap().iter().map(|t| t.id).collect();
    let refused = run.set_ti_states(&ids, &[TaskState::Queued], TaskState::Skipped, Utc::now()).await;
    assert!(matches!(refused, Err(sluice_store::Error::LockOrder(_))), "{refused:?}");
    run.exclude_claims().await.unwrap();
    assert_eq!(run.set_ti_states(&ids, &[TaskState::Queued], TaskState::Skipped, Utc::now()).await.unwrap(), 1);
    tx.commit().await.unwrap();
}

/// Interleavings that need two transactions open at once: PostgreSQL only (Sluice's SQLite pool has one
/// connection, so its transactions take turns).
mod postgres_interleavings {
    use super::*;

    const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    /// Claims go on beside a decision that moves a run forward (a report, settling, the scheduler's pass); a
    /// decision that takes queued tasks back (a manual mark, a timeout) makes them skip the run rather than take
    /// its tasks from under it, and never wait for it; once it commits, the next claim takes what it left queued.
    #[tokio::test]
    async fn claims_skip_a_run_only_while_its_queued_tasks_are_taken_back() {
        let fresh = Fresh::postgres().await;
        let store = &fresh.store;
        let run_pk = queued_run(store, 3).await;
        let now = Utc::now();
        let until = now + Duration::seconds(30);
        let claim_beside = |n: i64| async move {
            let mut other = store.begin().await.unwrap();
            let claimed = tokio::time::timeout(WAIT, claim(&mut other, n, "w", until, now))
                .await
                .expect("a claim never waits for a run's lock");
            other.commit().await.unwrap();
            claimed.into_iter().map(|c| c.ti.task_id).collect::<Vec<_>>()
        };

        let mut decision = store.begin().await.unwrap();
        decision.lock_run(run_pk).await.unwrap().unwrap();
        assert_eq!(claim_beside(1).await, ["t2"], "a claim goes on beside a decision");
        decision.commit().await.unwrap();

        let mut mark = store.begin().await.unwrap();
        let mut run = mark.lock_run_excluding_claims(run_pk).await.unwrap().unwrap();
        assert!(claim_beside(2).await.is_empty(), "the claim took tasks from under a mark");
        let tis = run.run_task_instances(run_pk, None).await.unwrap();
        let t0: Vec<Uuid> = tis.iter().filter(|ti| ti.task_id == "t0").map(|ti| ti.id).collect();
        let skipped = tokio::time::timeout(WAIT, run.set_ti_states(&t0, &[TaskState::Queued], TaskState::Skipped, now))
            .await
            .expect("the mark waits for nothing but its run");
        assert_eq!(skipped.unwrap(), 1, "what the mark read still holds");
        mark.commit().await.unwrap();

        assert_eq!(claim_beside(2).await, ["t1"]);
        fresh.finish().await;
    }
}

async fn a_mapped_task_is_expanded_once_in_place_of_its_placeholder(store: &Store) {
    let version = store.upsert_dag(&dag("d", "h1")).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let now = Utc::now();
    let mut run = tx.create_run(&new_run("d", version, "r1", 1), &tasks(2), None, now).await.unwrap().unwrap();
    let run_pk = run.run().id;
    let tis = run.run_task_instances(run_pk, Some(&["t1".to_string()])).await.unwrap();
    let placeholder = tis[0].clone();
    assert_eq!(placeholder.map_index, -1);
    // Past a chunk of inserted rows, so that the statement is split as SQLite's parameter limit needs.
    assert!(run.expand_mapped(&placeholder, 1500, now).await.unwrap());
    assert!(!run.expand_mapped(&placeholder, 1500, now).await.unwrap(), "a placeholder expands once");
    let expanded = run.run_task_instances(run_pk, Some(&["t1".to_string()])).await.unwrap();
    assert_eq!(expanded.len(), 1500);
    let mut indexes: Vec<i64> = expanded.iter().map(|ti| ti.map_index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..1500).collect::<Vec<_>>());
    assert!(expanded.iter().all(|ti| ti.state == TaskState::Scheduled && ti.pool == placeholder.pool));
    assert!(expanded.iter().any(|ti| ti.id == placeholder.id && ti.map_index == 0), "the placeholder is instance 0");
    assert_eq!(
        run.queue_scheduled(10_000, &Default::default(), now).await.unwrap().len(),
        128,
        "the default pool's slots"
    );
    tx.commit().await.unwrap();

    // Outputs of the instances come back in map_index order, whatever order they ended in.
    let mut tx = store.begin().await.unwrap();
    let mut claimed = claim(&mut tx, 3, "w1", now + Duration::seconds(30), now).await;
    tx.commit().await.unwrap();
    claimed.sort_by_key(|c| std::cmp::Reverse(c.ti.map_index));
    let mut tx = store.begin().await.unwrap();
    let mut run = tx.lock_run(run_pk).await.unwrap().unwrap();
    for task in &claimed {
        let ti = run.lock_leased_ti(task.ti.id, task.lease_id).await.unwrap().unwrap();
        run.end_try(&ti, &succeeded(json!(ti.map_index)), now).await.unwrap();
    }
    let outputs = tx.reads().run_outputs(run_pk, &["t1"]).await.unwrap();
    let mut want: Vec<i64> = claimed.iter().map(|c| c.ti.map_index).collect();
    want.sort_unstable();
    let got: Vec<i64> = outputs.iter().map(|(_, i, _)| *i).collect();
    assert_eq!(got, want);
    assert!(outputs.iter().all(|(task, i, v)| task == "t1" && *v == XComValue::Inline(json!(i))));
    tx.commit().await.unwrap();
}

async fn keyed_outputs_are_kept_by_key_and_go_with_a_clear(store: &Store) {
    let run_pk = queued_run(store, 2).await;
    let now = Utc::now();
    let mut tx = store.begin().await.unwrap();
    let mut claimed = claim(&mut tx, 2, "w1", now + Duration::seconds(30), now).await;
    tx.commit().await.unwrap();
    claimed.sort_by(|a, b| a.ti.task_id.cmp(&b.ti.task_id));
    let lake = XComValue::Lake("lake://_xcom/d/r/t1/-1/return_value.json".into());
    let ends = [
        TryEnd {
            xcom: vec![("rows".into(), XComValue::Inline(json!(3))), ("path".into(), XComValue::Inline(json!("/p")))],
            ..succeeded(json!({"ok": true}))
        },
        TryEnd { output: Some(lake.clone()), ..succeeded(json!(null)) },
    ];
    let mut tx = store.begin().await.unwrap();
    let mut run = tx.lock_run(run_pk).await.unwrap().unwrap();
    for (task, end) in claimed.iter().zip(&ends) {
        let ti = run.lock_leased_ti(task.ti.id, task.lease_id).await.unwrap().unwrap();
        run.end_try(&ti, end, now).await.unwrap();
    }
    let outputs = tx.reads().run_outputs(run_pk, &["t0", "t1"]).await.unwrap();
    assert_eq!(outputs[1], ("t1".to_string(), -1, lake.clone()), "a return value the lake keeps");
    let pushed = tx.reads().run_xcom(run_pk, &["t0", "t1"]).await.unwrap();
    let want = |key: &str, v: serde_json::Value| ("t0".to_string(), -1, key.to_string(), XComValue::Inline(v));
    assert_eq!(pushed, vec![want("path", json!("/p")), want("rows", json!(3))], "by task, then key");
    tx.commit().await.unwrap();

    let t0 = store.get_task_instance_by_id(claimed[0].ti.id).await.unwrap().unwrap();
    let keys = |entries: Vec<sluice_store::XComRow>| entries.into_iter().map(|e| e.key).collect::<Vec<_>>();
    assert_eq!(keys(store.xcom_entries(&t0).await.unwrap()), ["path", "return_value", "rows"]);
    let t1 = store.get_task_instance_by_id(claimed[1].ti.id).await.unwrap().unwrap();
    assert_eq!(store.xcom_entry(&t1, "return_value").await.unwrap().map(|e| e.value), Some(lake));
    assert_eq!(t1.output_uri.as_deref(), Some("lake://_xcom/d/r/t1/-1/return_value.json"));
    assert_eq!(store.list_tries(t1.id).await.unwrap()[0].output_uri, t1.output_uri, "the try keeps it too");

    // Created once, then only changed; the return value is one key among the others.
    let note = XComValue::Inline(json!("n"));
    assert!(store.create_xcom(t0.id, "note", &note, now).await.unwrap());
    assert!(!store.create_xcom(t0.id, "note", &note, now).await.unwrap(), "the key exists");
    assert!(!store.create_xcom(t0.id, "return_value", &note, now).await.unwrap(), "so does the return value");
    assert!(store.update_xcom(t0.id, "note", &XComValue::Inline(json!(2)), now).await.unwrap());
    assert!(!store.update_xcom(t0.id, "nope", &note, now).await.unwrap(), "no such key");
    assert!(store.update_xcom(t0.id, "return_value", &XComValue::Inline(json!(7)), now).await.unwrap());
    let t0 = store.get_task_instance_by_id(t0.id).await.unwrap().unwrap();
    assert_eq!(t0.output, Some(json!(7)));
    let note = store.xcom_entry(&t0, "note").await.unwrap().unwrap();
    assert_eq!((note.value, note.updated.is_some()), (XComValue::Inline(json!(2)), true));

    // A clear takes every value of the task instance away.
    let mut tx = store.begin().await.unwrap();
    let mut run = tx.lock_run(run_pk).await.unwrap().unwrap();
    assert!(run.reset_task_instance(t0.id, 2, &[TaskState::Success]).await.unwrap());
    tx.commit().await.unwrap();
    let t0 = store.get_task_instance_by_id(t0.id).await.unwrap().unwrap();
    assert_eq!((&t0.output, store.xcom_entries(&t0).await.unwrap()), (&None, Vec::new()));
    assert!(store.create_xcom(t0.id, "return_value", &XComValue::Inline(json!(1)), now).await.unwrap());
}

fn alert(run_id: &str, event: &str, dedupe_key: Option<&str>) -> NewNotification {
    NewNotification {
        dag_id: "etl".into(),
        run_id: run_id.into(),
        task_id: Some("load".into()),
        map_index: Some(-1),
        try_number: Some(1),
        event: event.into(),
        notifier: json!({"type": "webhook", "connection": "hook"}),
        context: json!({"message": "load failed"}),
        dedupe_key: dedupe_key.map(str::to_owned),
        stream: None,
    }
}

async fn alerts_are_taken_once_retried_and_listed(store: &Store) {
    let now = Utc::now();
    let mut tx = store.begin().await.unwrap();
    let recorded = tx
        .enqueue_notifications(&[alert("r1", "on_failure", None), alert("r1", "deadline", Some("deadline:r1:0"))], now)
        .await
        .unwrap();
    assert_eq!(recorded, 2);
    // A deadline fires once, whoever records it.
    assert_eq!(tx.enqueue_notifications(&[alert("r1", "deadline", Some("deadline:r1:0"))], now).await.unwrap(), 0);
    tx.commit().await.unwrap();

    let hold = now + Duration::seconds(60);
    let taken = store.take_due_notifications(now, hold, 10).await.unwrap();
    assert_eq!(taken.iter().map(|n| n.alert.event.as_str()).collect::<Vec<_>>(), ["on_failure", "deadline"]);
    assert_eq!(taken[0].alert, alert("r1", "on_failure", None));
    // Held: a second notifier finds nothing until the hold ends.
    assert!(store.take_due_notifications(now, hold, 10).await.unwrap().is_empty());

    let (failing, delivered) = (taken[0].id, taken[1].id);
    let retry_at = now + Duration::seconds(5);
    store.record_notification_attempt(failing, Some("HTTP 500"), Some(retry_at), now).await.unwrap();
    store.record_notification_attempt(delivered, None, None, now).await.unwrap();
    assert!(store.take_due_notifications(now + Duration::seconds(4), hold, 10).await.unwrap().is_empty());
    let again = store.take_due_notifications(retry_at, hold, 10).await.unwrap();
    assert_eq!((again.len(), again[0].attempts, again[0].last_error.as_deref()), (1, 1, Some("HTTP 500")));
    store.record_notification_attempt(failing, Some("HTTP 503"), None, now).await.unwrap();
    assert!(store.take_due_notifications(now + Duration::days(1), hold, 10).await.unwrap().is_empty());

    let failed = NotificationFilter { state: Some("failed".into()), limit: 10, ..Default::default() };
    let (rows, total) = store.list_notifications(&failed).await.unwrap();
    assert_eq!((total, rows[0].attempts, rows[0].last_error.as_deref()), (1, 2, Some("HTTP 503")));
    assert!(rows[0].finished.is_some());
    let all = NotificationFilter { limit: 10, ..Default::default() };
    assert_eq!(store.list_notifications(&all).await.unwrap().1, 2);
    let hidden = NotificationFilter { hidden_dag_ids: vec!["etl".into()], limit: 10, ..Default::default() };
    assert_eq!(store.list_notifications(&hidden).await.unwrap().1, 0);

    // A stream's alerts are taken one at a time, oldest first; other alerts go on meanwhile.
    let streamed = |event: &str| NewNotification { stream: Some("run-1".into()), ..alert("r2", event, None) };
    let mut tx = store.begin().await.unwrap();
    let alerts = [streamed("START"), streamed("COMPLETE"), alert("r2", "on_success", None)];
    tx.enqueue_notifications(&alerts, now).await.unwrap();
    tx.commit().await.unwrap();
    let events =
        |taken: &[sluice_store::NotificationRow]| taken.iter().map(|n| n.alert.event.clone()).collect::<Vec<_>>();
    let first = store.take_due_notifications(now, hold, 10).await.unwrap();
    assert_eq!(events(&first), ["START", "on_success"]);
    assert!(events(&store.take_due_notifications(now, hold, 10).await.unwrap()).is_empty(), "START is pending still");
    store.record_notification_attempt(first[0].id, None, None, now).await.unwrap();
    assert_eq!(events(&store.take_due_notifications(now, hold, 10).await.unwrap()), ["COMPLETE"]);
}
