-- After every task's end Sluice asks whether its run has unfinished task instances, and which scheduled ones to
-- queue first: both are answered from this index instead of reading every task instance of the run.
CREATE INDEX task_instances_run_state ON task_instances (run_pk, state, priority_weight DESC, scheduled_ms);
