"""Sluice's runner of `kind: python` tasks: calls `module:function` with the run's context, as Airflow's
PythonOperator does, and makes its return value the task's output. `ti.xcom_push(key, value)` and
`multiple_outputs` push values under other keys, as the worker reads them: files in $SLUICE_OUTPUT_DIR.

The worker starts `<interpreter> -u -c <bootstrap> <call>`; the bootstrap executes this file, which the server
sends with the lease in $SLUICE_PYTHON_RUNNER, beside the run's context in $SLUICE_PYTHON_CONTEXT. <call> is the
JSON of the task's `callable`, rendered `op_kwargs`, `requirements` and `system_site_packages`.

With `requirements`, the function runs in a virtualenv cached by a hash of the interpreter and the requirements:
the runner builds it (once per host, under a file lock) and executes itself again with the virtualenv's Python.

Only the standard library is used: it runs in whatever interpreter the task names.
"""

import asyncio
import fcntl
import hashlib
import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import traceback
from datetime import datetime

RUNNER_ENV = "SLUICE_PYTHON_RUNNER"
CONTEXT_ENV = "SLUICE_PYTHON_CONTEXT"
# A context too long for the environment is in a file the worker wrote, named here instead.
CONTEXT_FILE_ENV = CONTEXT_ENV + "_FILE"
# Set when the runner executes itself again inside the virtualenv it prepared.
VENV_ENV = "SLUICE_PYTHON_VENV"
# Written last into a finished virtualenv: a folder without it is a build that did not finish.
MARKER = "sluice-venv.json"


class TaskError(Exception):
    """A problem the runner reports in one line, without a traceback of its own code."""


def main():
    call = json.loads(sys.argv[1])
    runner = os.environ.get(RUNNER_ENV, "")
    context = read_context()
    if call.get("requirements") and VENV_ENV not in os.environ:
        venv = ensure_venv(call["requirements"], call.get("system_site_packages", True))
        python = os.path.join(venv, "bin", "python")
        env = dict(os.environ, **{VENV_ENV: venv})
        sys.stdout.flush()
        os.execve(python, [python, "-u", "-c", runner, sys.argv[1]], env)
    # What the function starts need not carry the runner and the context.
    for name in (RUNNER_ENV, CONTEXT_ENV, CONTEXT_FILE_ENV, VENV_ENV):
        os.environ.pop(name, None)
    put_dags_folder_on_path()
    function = load(call["callable"])
    kwargs = keyword_arguments(function, context, call.get("op_kwargs") or {})
    try:
        result = function(**kwargs)
        if inspect.iscoroutine(result):
            # An `async def` function, as Airflow 3 runs them: to its end on an event loop of its own.
            result = asyncio.run(result)
    except Exception as error:
        # The traceback starts at the user's function: the runner's own frame says nothing.
        traceback.print_exception(type(error), error, error.__traceback__.tb_next)
        sys.exit(1)
    if call.get("multiple_outputs") and result is not None:
        push_each(call["callable"], result)
    write_output(call["callable"], result)


def read_context():
    path = os.environ.get(CONTEXT_FILE_ENV)
    if path:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    return json.loads(os.environ.get(CONTEXT_ENV) or "{}")


def put_dags_folder_on_path():
    """The DAG folder comes first, as a script's own folder does, instead of the worker's working directory."""
    folder = os.path.abspath(os.environ.get("SLUICE_DAGS_FOLDER", "dags"))
    sys.path[:] = [folder] + [p for p in sys.path if p not in ("", folder)]


def load(spec):
    """The object named by `module:attribute.path`."""
    module_name, _, path = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            folder = sys.path[0]
            raise TaskError(f"cannot import {spec}: {error} (the DAG folder {folder} is on sys.path)") from None
        raise
    target = module
    for part in path.split("."):
        if not hasattr(target, part):
            what = f"module {module_name!r}" if target is module else repr(target)
            raise TaskError(f"cannot find {spec}: {what} has no attribute {part!r}")
        target = getattr(target, part)
    if not callable(target):
        raise TaskError(f"{spec} is not callable: it is a {type(target).__name__}")
    return target


def keyword_arguments(function, context, op_kwargs):
    """Airflow's determine_kwargs: everything to a function taking **kwargs, else only the names it declares."""
    available = upstream_outputs(context)
    available.update(airflow_context(context))
    available.update(op_kwargs)
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        # Some built-in callables have no signature to read: give them what the task names explicitly.
        return dict(op_kwargs)
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return available
    named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {name: value for name, value in available.items() if name in named}


def upstream_outputs(context):
    """Each direct upstream task's output under its task id (None for an upstream task without output)."""
    outputs = context.get("outputs") or {}
    return {task_id: outputs.get(task_id) for task_id in context.get("upstream") or []}


def when(text):
    return datetime.fromisoformat(text) if text else None


class DagRun:
    def __init__(self, context):
        run = context.get("dag_run") or {}
        self.dag_id = context.get("dag_id")
        self.run_id = context.get("run_id")
        self.conf = run.get("conf") or {}
        self.logical_date = when(context.get("logical_date"))
        self.data_interval_start = when(context.get("data_interval_start"))
        self.data_interval_end = when(context.get("data_interval_end"))
        self.run_after = when(context.get("run_after"))

    def __repr__(self):
        return f"<DagRun {self.dag_id} @ {self.run_id}>"


class TaskInstance:
    def __init__(self, context):
        self.dag_id = context.get("dag_id")
        self.task_id = context.get("task_id")
        self.run_id = context.get("run_id")
        self.try_number = context.get("try_number")
        self.map_index = context.get("map_index", -1)
        self._outputs = context.get("outputs") or {}
        self._xcom = context.get("xcom") or {}

    def xcom_pull(self, task_ids=None, dag_id=None, key="return_value", default=None, run_id=None, **_ignored):
        """The outputs of tasks of this run under `key`: one value for one task id, a list for a list of them."""
        if dag_id not in (None, self.dag_id) or run_id not in (None, self.run_id):
            raise NotImplementedError("Sluice's tasks read the outputs of their own run only")
        if key == "return_value":
            values = self._outputs
        else:
            values = {task_id: keys[key] for task_id, keys in self._xcom.items() if key in keys}
        if task_ids is None:
            task_ids = self.task_id
        if isinstance(task_ids, str):
            return values.get(task_ids, default)
        return [values.get(task_id, default) for task_id in task_ids]

    def xcom_push(self, key, value, **_ignored):
        """Pushes `value` under `key`, for the tasks downstream, templates and the API."""
        push(key, value)

    def __repr__(self):
        return f"<TaskInstance {self.dag_id}.{self.task_id} {self.run_id} try {self.try_number}>"


class Named:
    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __repr__(self):
        return f"<{', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())}>"


def airflow_context(context):
    """The keyword arguments Airflow gives a Python callable, under Airflow's names."""
    ti = TaskInstance(context)
    values = {
        "ti": ti,
        "task_instance": ti,
        "dag_run": DagRun(context),
        "task": Named(task_id=context.get("task_id"), dag_id=context.get("dag_id")),
        "dag": Named(dag_id=context.get("dag_id")),
        "params": context.get("params") or {},
        "outputs": context.get("outputs") or {},
        "run_id": context.get("run_id"),
    }
    for name in ("ds", "ds_nodash", "ts", "ts_nodash"):
        values[name] = context.get(name)
    for name in ("logical_date", "data_interval_start", "data_interval_end"):
        values[name] = when(context.get(name))
    return values


def to_json(value, what):
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TaskError(f"{what} cannot be an output, which is JSON: {error}") from None


def push(key, value):
    """Writes `value` where the worker reads the output `key`: $SLUICE_OUTPUT_DIR/<key>.json (the worker checks the
    key), or an output line without that folder."""
    if not isinstance(key, str) or not key or "/" in key:
        raise TaskError(f"invalid output key {key!r}: a key is a non-empty string without '/'")
    text = to_json(value, f"the value of {key!r}")
    folder = os.environ.get("SLUICE_OUTPUT_DIR")
    if folder:
        with open(os.path.join(folder, key + ".json"), "w", encoding="utf-8") as file:
            file.write(text)
    else:
        print(f"::output name={key}::{text}")


def push_each(spec, result):
    """Airflow's `multiple_outputs`: each key of the returned mapping is an output of its own."""
    if not isinstance(result, dict):
        raise TaskError(f"{spec} returned a {type(result).__name__}: with multiple_outputs it must return a dict")
    for key, value in result.items():
        if not isinstance(key, str):
            raise TaskError(f"{spec} returned the key {key!r}: with multiple_outputs every key must be a string")
        push(key, value)


def write_output(spec, result):
    print(f"Done. Returned value was: {result!r}")
    if result is None:
        return
    text = to_json(result, f"the return value of {spec}")
    path = os.environ.get("SLUICE_OUTPUT")
    if path:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
    else:
        print(f"::output::{text}")


def cache_root():
    root = os.environ.get("SLUICE_VENV_CACHE")
    if root:
        return root
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sluice", "venvs")


def ensure_venv(requirements, system_site_packages):
    """The virtualenv of these requirements for this interpreter, built if no finished one is cached."""
    key = json.dumps(
        {
            "interpreter": os.path.realpath(sys.executable),
            "version": sys.version,
            "requirements": sorted(set(requirements)),
            "system_site_packages": bool(system_site_packages),
        },
        sort_keys=True,
    )
    root = cache_root()
    venv = os.path.join(root, "venv-" + hashlib.sha256(key.encode()).hexdigest()[:16])
    if finished(venv, key):
        print(f"using the cached virtualenv {venv}")
        return venv
    os.makedirs(root, exist_ok=True)
    with open(venv + ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another task building the virtualenv {venv}", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if finished(venv, key):
            print(f"using the virtualenv {venv}, built meanwhile")
            return venv
        build_venv(venv, key, requirements, system_site_packages)
    return venv


def finished(venv, key):
    try:
        with open(os.path.join(venv, MARKER), encoding="utf-8") as marker:
            return marker.read() == key
    except OSError:
        return False


def build_venv(venv, key, requirements, system_site_packages):
    """Builds in place, marker last: a virtualenv cannot be moved once built (its scripts name its path)."""
    if os.path.exists(venv):
        print(f"removing the unfinished virtualenv {venv}")
        shutil.rmtree(venv)
    print(f"creating the virtualenv {venv} for {', '.join(requirements)}", flush=True)
    create = [sys.executable, "-m", "venv", venv]
    if system_site_packages:
        create.insert(3, "--system-site-packages")
    listed = os.path.join(venv, "requirements.txt")
    pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--no-input", "-r", listed]
    try:
        run_step("python -m venv", create)
        with open(listed, "w", encoding="utf-8") as file:
            file.write("\n".join(requirements) + "\n")
        run_step("pip install", pip)
    except (OSError, TaskError) as error:
        shutil.rmtree(venv, ignore_errors=True)
        raise TaskError(f"could not build the virtualenv {venv}: {error}") from None
    partial = os.path.join(venv, MARKER + ".partial")
    with open(partial, "w", encoding="utf-8") as marker:
        marker.write(key)
    os.replace(partial, os.path.join(venv, MARKER))


def run_step(name, command):
    code = subprocess.run(command).returncode
    if code != 0:
        raise TaskError(f"{name} exited with code {code}")


try:
    main()
except TaskError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
