-- Whether a run has unfinished or waiting task instances is asked after every task's end: answer it from an
-- index instead of reading every task instance of the run.
CREATE INDEX task_instances_run_state ON task_instances (run_pk, state);
