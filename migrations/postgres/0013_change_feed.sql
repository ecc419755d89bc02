-- The dashboard's change feed and its lists.
--
-- `updated_ms` is when a run's or a task instance's state, try or times last changed, stamped by the database
-- itself, so that every process writing them (servers, schedulers) is covered. A heartbeat extends a lease
-- without touching it. Servers poll the rows changed since the last poll (indexes below) and stream them to
-- dashboards.

ALTER TABLE dag_runs ADD COLUMN updated_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE task_instances ADD COLUMN updated_ms BIGINT NOT NULL DEFAULT 0;

-- clock_timestamp(), not now(): now() is the transaction's start, which would put a long transaction's changes
-- far behind what the feed has already read.
CREATE FUNCTION sluice_stamp_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_ms := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    RETURN NEW;
END
$$;

CREATE TRIGGER dag_runs_updated_insert BEFORE INSERT ON dag_runs
    FOR EACH ROW EXECUTE FUNCTION sluice_stamp_updated();
CREATE TRIGGER dag_runs_updated BEFORE UPDATE ON dag_runs
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.queued_at_ms IS DISTINCT FROM NEW.queued_at_ms
          OR OLD.start_ms IS DISTINCT FROM NEW.start_ms OR OLD.end_ms IS DISTINCT FROM NEW.end_ms)
    EXECUTE FUNCTION sluice_stamp_updated();

CREATE TRIGGER task_instances_updated_insert BEFORE INSERT ON task_instances
    FOR EACH ROW EXECUTE FUNCTION sluice_stamp_updated();
CREATE TRIGGER task_instances_updated BEFORE UPDATE ON task_instances
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.try_number IS DISTINCT FROM NEW.try_number
          OR OLD.queued_ms IS DISTINCT FROM NEW.queued_ms OR OLD.start_ms IS DISTINCT FROM NEW.start_ms
          OR OLD.end_ms IS DISTINCT FROM NEW.end_ms)
    EXECUTE FUNCTION sluice_stamp_updated();

CREATE INDEX dag_runs_updated ON dag_runs (updated_ms);
CREATE INDEX task_instances_updated ON task_instances (updated_ms);

-- The newest runs of a DAG (the DAG list's last runs, the grid's columns) without reading its older runs.
CREATE INDEX dag_runs_dag_recent ON dag_runs (dag_id, run_after_ms);
