"""The function of the xcom example DAG: with `multiple_outputs: true`, each key of the dict it returns is an
output of its own, beside the return value (the whole dict); `ti.xcom_push` pushes one more."""


def split(ti):
    counts = {"Adelie": 152, "Chinstrap": 68, "Gentoo": 124}
    ti.xcom_push(key="checked_by", value=ti.task_id)
    return {"total": sum(counts.values()), "species": sorted(counts)}
