-- Keyed task outputs (Airflow's XCom). A task's return value stays in task_instances.output (and its try's
-- output), where mapping, branching, templates and the dashboard read it with the row they read anyway; the values
-- a task pushes under other keys, and those users create over the API, get a row each here, one per (task
-- instance, key), deleted with their task instance and when it is cleared. A value above the database's limit
-- (64 KiB of JSON) is kept in the lake: `value` is then NULL and `lake_uri` says where, and for a return value
-- `output_uri` does the same beside `output`.
CREATE TABLE xcom (
    ti_id       TEXT NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT,
    lake_uri    TEXT,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (ti_id, key)
);
ALTER TABLE task_instances ADD COLUMN output_uri TEXT;
ALTER TABLE task_tries ADD COLUMN output_uri TEXT;
