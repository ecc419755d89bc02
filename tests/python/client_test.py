"""Airflow's official Python client (apache-airflow-client 3.x) against a running Sluice.

Usage: client_test.py BASE_URL USERNAME PASSWORD DAG_ID TASK_ID

Gets a token from /auth/token as Airflow 3's simple auth manager hands it out, then does what a team's scripts do:
list DAGs, unpause one, trigger a run with conf, poll it to success, list its task instances, read a task's log, set
and read a variable. Exits non-zero, saying what went wrong, at the first surprise.
"""

import json
import sys
import time
import urllib.request

import airflow_client.client as airflow
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.api.variable_api import VariableApi
from airflow_client.client.models.dag_patch_body import DAGPatchBody
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody
from airflow_client.client.models.variable_body import VariableBody


def token(base_url: str, username: str, password: str) -> str:
    request = urllib.request.Request(
        f"{base_url}/auth/token",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)["access_token"]


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"FAILED: {message}")


def main() -> None:
    base_url, username, password, dag_id, task_id = sys.argv[1:6]
    config = airflow.Configuration(host=base_url, access_token=token(base_url, username, password))
    with airflow.ApiClient(config) as client:
        dags = DAGApi(client).get_dags(limit=100)
        check(dag_id in [d.dag_id for d in dags.dags], f"{dag_id} listed in {[d.dag_id for d in dags.dags]}")

        dag = DAGApi(client).patch_dag(dag_id, DAGPatchBody(is_paused=False))
        check(dag.is_paused is False, "the DAG is unpaused")

        runs = DagRunApi(client)
        run = runs.trigger_dag_run(dag_id, TriggerDAGRunPostBody(logical_date=None, conf={"rows": 3}))
        check(run.conf == {"rows": 3}, f"conf kept: {run.conf}")
        deadline = time.monotonic() + 120
        while run.state.value not in ("success", "failed") and time.monotonic() < deadline:
            time.sleep(0.5)
            run = runs.get_dag_run(dag_id, run.dag_run_id)
        check(run.state.value == "success", f"the run succeeded: {run.state}")

        tis = TaskInstanceApi(client).get_task_instances(dag_id, run.dag_run_id)
        states = {ti.task_id: ti.state.value for ti in tis.task_instances}
        check(states and all(s == "success" for s in states.values()), f"every task succeeded: {states}")

        log = TaskInstanceApi(client).get_log(dag_id, run.dag_run_id, task_id, 1, full_content=True)
        lines = log.content.actual_instance
        events = [line.event if hasattr(line, "event") else str(line) for line in lines]
        check(len(events) > 0, f"the log of {task_id} has lines")

        variables = VariableApi(client)
        variables.post_variable(VariableBody(key="client_check", value="42", description="set by the client"))
        check(variables.get_variable("client_check").value == "42", "the variable reads back")
        variables.delete_variable("client_check")
    print(f"apache-airflow-client {airflow.__version__}: all checks passed ({len(events)} log lines)")


if __name__ == "__main__":
    main()
