// The dashboard's first page: DAGs, recent runs and import errors, from the same /api/v2 that users call.

async function api(path) {
  const response = await fetch(`/api/v2${path}`);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  return td;
}

function stateCell(state) {
  const td = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = `state state-${state}`;
  badge.textContent = state;
  td.append(badge);
  return td;
}

function fill(tableId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows);
}

async function refresh() {
  const [dags, runs, errors] = await Promise.all([
    api("/dags?limit=100"),
    api("/dags/~/dagRuns?limit=20"),
    api("/importErrors"),
  ]);
  fill("dags", dags.dags.map((d) => {
    const tr = document.createElement("tr");
    tr.append(cell(d.dag_id), cell(d.timetable_summary ?? "manual"), cell(d.is_paused ? "yes" : "no"),
      cell(d.next_dagrun_run_after));
    return tr;
  }));
  fill("runs", runs.dag_runs.map((r) => {
    const tr = document.createElement("tr");
    tr.append(cell(r.dag_id), cell(r.dag_run_id), cell(r.run_type), stateCell(r.state), cell(r.start_date));
    return tr;
  }));
  const section = document.querySelector("#import-errors");
  section.hidden = errors.total_entries === 0;
  section.querySelector("ul").replaceChildren(...errors.import_errors.map((e) => {
    const li = document.createElement("li");
    li.textContent = e.stack_trace;
    return li;
  }));
}

refresh();
setInterval(refresh, 3000);
