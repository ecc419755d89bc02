-- The model registry: models, their versions (each one a `train` try that succeeded) and every change of stage.
CREATE TABLE models (
    name          TEXT PRIMARY KEY,
    description   TEXT,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL,
    -- the last version number handed to a train try; a try that fails leaves its number unused
    last_version  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE model_versions (
    model_name          TEXT NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    version             BIGINT NOT NULL,
    -- none | staging | production | archived; one production version per model at most
    stage               TEXT NOT NULL DEFAULT 'none',
    algorithm           TEXT NOT NULL,
    params              TEXT NOT NULL,
    metrics             TEXT NOT NULL,
    details             TEXT NOT NULL,
    artifact_uri        TEXT NOT NULL,
    input_uri           TEXT NOT NULL,
    -- the asset event whose data the model was trained on
    input_event_id      BIGINT,
    description         TEXT,
    dag_id              TEXT NOT NULL,
    run_id              TEXT NOT NULL,
    task_id             TEXT NOT NULL,
    try_id              TEXT NOT NULL,
    dag_version_id      TEXT,
    created_ms          BIGINT NOT NULL,
    PRIMARY KEY (model_name, version)
);
CREATE INDEX model_versions_run ON model_versions (dag_id, run_id);

CREATE TABLE model_stage_changes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    model_name    TEXT NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    version       BIGINT NOT NULL,
    from_stage    TEXT NOT NULL,
    to_stage      TEXT NOT NULL,
    -- `user:<name>` or `run:<dag_id>/<run_id>/<task_id>`
    changed_by    TEXT NOT NULL,
    reason        TEXT,
    ts_ms         BIGINT NOT NULL
);
CREATE INDEX model_stage_changes_model ON model_stage_changes (model_name, id);

-- A monitor try's drift report on a model version: every check with its value, threshold and verdict.
CREATE TABLE monitor_reports (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    model_name      TEXT NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    version         BIGINT NOT NULL,
    input_uri       TEXT NOT NULL,
    row_count       BIGINT NOT NULL,
    drifted         INTEGER NOT NULL,
    checks          TEXT NOT NULL,
    dag_id          TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    try_id          TEXT NOT NULL,
    -- the run of the retraining DAG that the drift triggered, if any
    retrain_dag_id  TEXT,
    retrain_run_id  TEXT,
    ts_ms           BIGINT NOT NULL
);
CREATE INDEX monitor_reports_model ON monitor_reports (model_name, id);
