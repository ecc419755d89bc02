-- The audit log (Airflow's `log` table, served as /api/v2/eventLogs): every change made over the API, by whom,
-- from where, with what.
CREATE TABLE event_log (
    id           BIGSERIAL PRIMARY KEY,
    when_ms      BIGINT NOT NULL,
    event        TEXT NOT NULL,
    owner        TEXT,
    dag_id       TEXT,
    run_id       TEXT,
    task_id      TEXT,
    map_index    BIGINT,
    try_number   BIGINT,
    extra        TEXT
);
CREATE INDEX event_log_when ON event_log (when_ms);
CREATE INDEX event_log_dag ON event_log (dag_id, when_ms);
