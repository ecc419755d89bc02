-- A task may take several slots of its pool (`pool_slots`); a pool's open slots are its slots minus the sum of
-- them over its queued and running task instances.
ALTER TABLE task_instances ADD COLUMN pool_slots BIGINT NOT NULL DEFAULT 1;
