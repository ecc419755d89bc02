-- Backfills can be paused, resumed and cancelled, and each limits its own runs: a run remembers the backfill that
-- created or reran it.
ALTER TABLE backfills ADD COLUMN is_paused BOOLEAN NOT NULL DEFAULT FALSE;
-- Set when the backfill is cancelled; otherwise a backfill is complete once none of its runs is queued or running.
ALTER TABLE backfills ADD COLUMN completed_ms BIGINT;
ALTER TABLE dag_runs ADD COLUMN backfill_id BIGINT REFERENCES backfills (id) ON DELETE SET NULL;
CREATE INDEX dag_runs_backfill ON dag_runs (backfill_id, state) WHERE backfill_id IS NOT NULL;
