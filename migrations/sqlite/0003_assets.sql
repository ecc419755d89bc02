-- Assets: the data that tasks read and write, named by URI (lake://raw/penguins). An asset exists from its first
-- event on; its owner is the owner of the DAG that first wrote it, until someone sets another.
CREATE TABLE assets (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    uri          TEXT NOT NULL UNIQUE,
    description  TEXT,
    owner        TEXT,
    created_ms   BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL
);

-- One row per successful write of an asset by a task try. Events drive the catalog, lineage and data-aware
-- scheduling; ids grow with time, so "new since" is a comparison of ids.
CREATE TABLE asset_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_uri       TEXT NOT NULL REFERENCES assets (uri) ON DELETE CASCADE,
    dag_id          TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    try_number      BIGINT NOT NULL,
    ts_ms           BIGINT NOT NULL,
    row_count       BIGINT,
    schema_json     TEXT,
    content_hash    TEXT,
    -- the last quality task's verdict on this version of the data: passed | warn | failed
    quality_status  TEXT,
    -- ingest with a watermark column: the high-water mark after this load
    watermark       TEXT
);
CREATE INDEX asset_events_asset ON asset_events (asset_uri, id);
CREATE INDEX asset_events_run ON asset_events (dag_id, run_id);

-- The report of a quality task's try on one input asset; failed reports are kept too.
CREATE TABLE quality_reports (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    try_id       TEXT NOT NULL REFERENCES task_tries (id) ON DELETE CASCADE,
    dag_id       TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    try_number   BIGINT NOT NULL,
    asset_uri    TEXT NOT NULL,
    status       TEXT NOT NULL,
    report       TEXT NOT NULL,
    ts_ms        BIGINT NOT NULL
);
CREATE INDEX quality_reports_try ON quality_reports (dag_id, run_id, task_id, try_number);
CREATE INDEX quality_reports_asset ON quality_reports (asset_uri, id);

-- Data-aware scheduling: for each DAG scheduled on assets, the newest event of each asset that its last
-- asset-triggered run consumed. A run is due when every listed asset has an event above its mark.
CREATE TABLE asset_consumers (
    dag_id         TEXT NOT NULL REFERENCES dags (dag_id) ON DELETE CASCADE,
    asset_uri      TEXT NOT NULL,
    last_event_id  BIGINT NOT NULL,
    PRIMARY KEY (dag_id, asset_uri)
);
