-- A backfill: runs of a DAG created for past logical dates, on request. Its runs are ordinary runs of type
-- 'backfill'; this row keeps what was asked for.
CREATE TABLE backfills (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id              TEXT NOT NULL REFERENCES dags (dag_id) ON DELETE CASCADE,
    from_ms             BIGINT NOT NULL,
    to_ms               BIGINT NOT NULL,
    dag_run_conf        TEXT NOT NULL DEFAULT '{}',
    reprocess_behavior  TEXT NOT NULL,
    max_active_runs     BIGINT NOT NULL,
    created_ms          BIGINT NOT NULL
);
CREATE INDEX backfills_dag ON backfills (dag_id, id);
