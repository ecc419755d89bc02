-- Sluice's core schema. Times are UTC epoch milliseconds (BIGINT) and ids are UUID text, the same in PostgreSQL
-- and SQLite, so that both databases share one set of queries in crates/store.

CREATE TABLE dags (
    dag_id             TEXT PRIMARY KEY,
    fileloc            TEXT NOT NULL,
    is_paused          INTEGER NOT NULL,
    -- false once the DAG's file is gone; its history stays
    is_active          INTEGER NOT NULL,
    latest_version_id  TEXT,
    description        TEXT,
    owners             TEXT NOT NULL DEFAULT '[]',
    tags               TEXT NOT NULL DEFAULT '[]',
    timetable_summary  TEXT NOT NULL DEFAULT 'None',
    max_active_runs    BIGINT NOT NULL,
    max_active_tasks   BIGINT NOT NULL,
    last_parsed_ms     BIGINT
);

CREATE TABLE dag_versions (
    id              TEXT PRIMARY KEY,
    dag_id          TEXT NOT NULL REFERENCES dags (dag_id) ON DELETE CASCADE,
    version_number  BIGINT NOT NULL,
    hash            TEXT NOT NULL,
    spec            TEXT NOT NULL,
    source          TEXT NOT NULL,
    fileloc         TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    UNIQUE (dag_id, hash),
    UNIQUE (dag_id, version_number)
);

CREATE TABLE import_errors (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    filename      TEXT NOT NULL UNIQUE,
    message       TEXT NOT NULL,
    timestamp_ms  BIGINT NOT NULL
);

CREATE TABLE dag_runs (
    id                              TEXT PRIMARY KEY,
    dag_id                          TEXT NOT NULL REFERENCES dags (dag_id) ON DELETE CASCADE,
    run_id                          TEXT NOT NULL,
    version_id                      TEXT NOT NULL REFERENCES dag_versions (id),
    run_type                        TEXT NOT NULL,
    state                           TEXT NOT NULL,
    logical_date_ms                 BIGINT,
    data_interval_start_ms          BIGINT,
    data_interval_end_ms            BIGINT,
    run_after_ms                    BIGINT NOT NULL,
    queued_at_ms                    BIGINT,
    start_ms                        BIGINT,
    end_ms                          BIGINT,
    conf                            TEXT NOT NULL DEFAULT '{}',
    note                            TEXT,
    triggered_by                    TEXT,
    last_scheduling_decision_ms     BIGINT,
    UNIQUE (dag_id, run_id),
    -- two schedulers computing the same scheduled run collide here; NULL (manual, no logical date) never collides
    UNIQUE (dag_id, logical_date_ms)
);
CREATE INDEX dag_runs_state ON dag_runs (state, dag_id);

CREATE TABLE task_instances (
    id               TEXT PRIMARY KEY,
    run_pk           TEXT NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    dag_id           TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    task_id          TEXT NOT NULL,
    map_index        BIGINT NOT NULL DEFAULT -1,
    state            TEXT NOT NULL,
    try_number       BIGINT NOT NULL DEFAULT 0,
    max_tries        BIGINT NOT NULL DEFAULT 0,
    priority_weight  BIGINT NOT NULL DEFAULT 1,
    queue            TEXT NOT NULL,
    pool             TEXT NOT NULL,
    -- the try that holds the task now; every worker call about it is fenced on this id
    lease_id         TEXT,
    lease_until_ms   BIGINT,
    worker           TEXT,
    hostname         TEXT,
    pid              BIGINT,
    scheduled_ms     BIGINT,
    queued_ms        BIGINT,
    start_ms         BIGINT,
    end_ms           BIGINT,
    next_retry_ms    BIGINT,
    output           TEXT,
    rendered         TEXT,
    UNIQUE (run_pk, task_id, map_index)
);
CREATE INDEX task_instances_claim ON task_instances (state, queue, priority_weight DESC, queued_ms);
CREATE INDEX task_instances_dag_state ON task_instances (dag_id, state);

CREATE TABLE task_tries (
    id           TEXT PRIMARY KEY,
    ti_id        TEXT NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    try_number   BIGINT NOT NULL,
    state        TEXT NOT NULL,
    worker       TEXT,
    hostname     TEXT,
    pid          BIGINT,
    start_ms     BIGINT NOT NULL,
    end_ms       BIGINT,
    exit_code    BIGINT,
    error        TEXT,
    rendered     TEXT,
    output       TEXT,
    UNIQUE (ti_id, try_number)
);

CREATE TABLE task_logs (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    try_id  TEXT NOT NULL REFERENCES task_tries (id) ON DELETE CASCADE,
    ts_ms   BIGINT NOT NULL,
    stream  TEXT NOT NULL,
    line    TEXT NOT NULL
);
CREATE INDEX task_logs_try ON task_logs (try_id, id);

CREATE TABLE workers (
    name           TEXT PRIMARY KEY,
    hostname       TEXT NOT NULL,
    queues         TEXT NOT NULL,
    slots          BIGINT NOT NULL,
    first_seen_ms  BIGINT NOT NULL,
    last_seen_ms   BIGINT NOT NULL
);

CREATE TABLE variables (
    key          TEXT PRIMARY KEY,
    val          TEXT NOT NULL,
    description  TEXT
);

CREATE TABLE scheduler_heartbeats (
    scheduler_id       TEXT PRIMARY KEY,
    hostname           TEXT NOT NULL,
    last_heartbeat_ms  BIGINT NOT NULL
);
