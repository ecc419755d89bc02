"""The functions of the python_taskflow example DAG.

Each is called with the keyword arguments it names, picked from the run's context (`ds`, `params`, `ti`,
`dag_run`, ...), the outputs of its upstream tasks (under their task ids) and the task's `op_kwargs`. What it returns
is the task's output.
"""


def extract(ds, params):
    """The day's penguin counts by species: a stand-in for reading them from a field station's API."""
    counts = {"Adelie": 152, "Chinstrap": 68, "Gentoo": 124}
    print(f"counted {sum(counts.values())} penguins on {ds} at {params['station']}")
    return {"day": ds, "station": params["station"], "counts": counts}


def summarize(extract, min_share, ti, dag_run):
    """The total, and the species making up at least `min_share` of it, from `extract`'s output."""
    counts = extract["counts"]
    total = sum(counts.values())
    # op_kwargs templates render to text, as in Airflow.
    common = sorted(species for species, n in counts.items() if n / total >= float(min_share))
    return {
        "day": extract["day"],
        "total": total,
        "common": common,
        "same_as_pulled": ti.xcom_pull(task_ids="extract") == extract,
        "run_id": dag_run.run_id,
        "try_number": ti.try_number,
    }


def audit(**context):
    """A function taking **kwargs receives the whole context, as in Airflow."""
    names = sorted(name for name in context if name not in context["outputs"])
    print(f"context of {context['ti'].task_id}: {', '.join(names)}")
    return {"context": names, "upstream": sorted(context["outputs"])}
