-- Alerts waiting to be delivered, and the outcome of those that were: the callbacks of tasks and runs and missed
-- deadlines. A row is written in the transaction of the state change it tells about, and the server's notifier
-- delivers it later, so no receiver ever holds a decision up. `next_attempt_ms` is when a pending alert is due,
-- pushed forward while a notifier is sending it, so that another server's notifier leaves it alone.
-- `dedupe_key` makes an alert that must fire once (a missed deadline) a conflict the second time. Alerts of one
-- `stream` (the OpenLineage events of a DAG run) are delivered in the order of their `id`: the order they were
-- recorded in, as the transactions recording events of one run follow each other.
CREATE TABLE notifications (
    id               BIGSERIAL PRIMARY KEY,
    dag_id           TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    task_id          TEXT,
    map_index        BIGINT,
    try_number       BIGINT,
    event            TEXT NOT NULL,
    notifier         TEXT NOT NULL,
    context          TEXT NOT NULL,
    dedupe_key       TEXT UNIQUE,
    stream           TEXT,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_ms  BIGINT NOT NULL,
    last_error       TEXT,
    created_ms       BIGINT NOT NULL,
    finished_ms      BIGINT
);
CREATE INDEX notifications_due ON notifications (state, next_attempt_ms);
CREATE INDEX notifications_dag ON notifications (dag_id, id);
CREATE INDEX notifications_stream ON notifications (stream, id);
