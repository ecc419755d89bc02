-- The dashboard's change feed and its lists.
--
-- `updated_ms` is when a run's or a task instance's state, try or times last changed, stamped by the database
-- itself, so that every statement writing them is covered. A heartbeat extends a lease without touching it.
-- The server polls the rows changed since the last poll (indexes below) and streams them to dashboards.

ALTER TABLE dag_runs ADD COLUMN updated_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE task_instances ADD COLUMN updated_ms BIGINT NOT NULL DEFAULT 0;

-- SQLite's triggers run after the row is written, so they stamp it with a second update of that one column
-- (which does not fire them again: `updated_ms` is not among the columns they watch).
CREATE TRIGGER dag_runs_updated_insert AFTER INSERT ON dag_runs
BEGIN
    UPDATE dag_runs SET updated_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) WHERE id = NEW.id;
END;
CREATE TRIGGER dag_runs_updated AFTER UPDATE OF state, queued_at_ms, start_ms, end_ms ON dag_runs
    WHEN OLD.state IS NOT NEW.state OR OLD.queued_at_ms IS NOT NEW.queued_at_ms
      OR OLD.start_ms IS NOT NEW.start_ms OR OLD.end_ms IS NOT NEW.end_ms
BEGIN
    UPDATE dag_runs SET updated_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) WHERE id = NEW.id;
END;

CREATE TRIGGER task_instances_updated_insert AFTER INSERT ON task_instances
BEGIN
    UPDATE task_instances SET updated_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
     WHERE id = NEW.id;
END;
CREATE TRIGGER task_instances_updated AFTER UPDATE OF state, try_number, queued_ms, start_ms, end_ms
    ON task_instances
    WHEN OLD.state IS NOT NEW.state OR OLD.try_number IS NOT NEW.try_number OR OLD.queued_ms IS NOT NEW.queued_ms
      OR OLD.start_ms IS NOT NEW.start_ms OR OLD.end_ms IS NOT NEW.end_ms
BEGIN
    UPDATE task_instances SET updated_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
     WHERE id = NEW.id;
END;

CREATE INDEX dag_runs_updated ON dag_runs (updated_ms);
CREATE INDEX task_instances_updated ON task_instances (updated_ms);

-- The newest runs of a DAG (the DAG list's last runs, the grid's columns) without reading its older runs.
CREATE INDEX dag_runs_dag_recent ON dag_runs (dag_id, run_after_ms);
