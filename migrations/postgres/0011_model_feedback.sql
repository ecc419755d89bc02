-- True labels fed back for predictions, by request id, for the monitor tasks to judge the model on.
CREATE TABLE model_feedback (
    id          BIGSERIAL PRIMARY KEY,
    model_name  TEXT NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    request_id  TEXT NOT NULL,
    -- the record of the request the label is for, 0 for the first
    record      BIGINT NOT NULL DEFAULT 0,
    label       TEXT NOT NULL,
    -- `user:<name>`
    given_by    TEXT NOT NULL,
    ts_ms       BIGINT NOT NULL
);
CREATE INDEX model_feedback_model ON model_feedback (model_name, id);

-- The feedback a report judged the model on: how many labels, how many matched a logged prediction, and the id of
-- the newest label seen (the next report starts after it).
ALTER TABLE monitor_reports ADD COLUMN feedback_labels BIGINT;
ALTER TABLE monitor_reports ADD COLUMN feedback_matched BIGINT;
ALTER TABLE monitor_reports ADD COLUMN feedback_through BIGINT;

-- A drifted report's retraining run is asked for in the report's own transaction: `retrain_conf` holds the run's
-- `conf` until the run is created (right after the commit, or by the scheduler loop after a crash), then is cleared.
ALTER TABLE monitor_reports ADD COLUMN retrain_conf TEXT;
CREATE INDEX monitor_reports_retrain_pending ON monitor_reports (id) WHERE retrain_conf IS NOT NULL;
