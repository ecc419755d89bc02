-- Task logs kept in the lake (`SLUICE_LOG_STORE=lake`). Once a try has ended, a server moves its lines from
-- task_logs to one object of the lake and, in the transaction that deletes those rows, sets `log_uri` to where it
-- is; so a reader that reads the rows, then this column, misses no line. `log_hold_ms` is set while a server moves
-- the try's lines: others leave the try alone until then, and take it over after (the mover stopped half-way).
-- The index finds the ended tries whose lines have not been moved.
ALTER TABLE task_tries ADD COLUMN log_uri TEXT;
ALTER TABLE task_tries ADD COLUMN log_hold_ms BIGINT;
CREATE INDEX task_tries_logs_to_move ON task_tries (end_ms) WHERE log_uri IS NULL;
