// The dashboard's first page: DAGs, recent runs and import errors, from the same /api/v2 that users call.

// The token from POST /auth/token lives for this browser tab only.
const login = document.querySelector("#login");

async function api(path) {
  const token = sessionStorage.getItem("sluice-token");
  const response = await fetch(`/api/v2${path}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (response.status === 401) {
    sessionStorage.removeItem("sluice-token");
    login.hidden = false;
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

login.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(login);
  const response = await fetch("/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: form.get("username"), password: form.get("password") }),
  });
  const body = await response.json();
  login.querySelector(".error").textContent = response.ok ? "" : body.detail;
  if (!response.ok) return;
  sessionStorage.setItem("sluice-token", body.access_token);
  login.hidden = true;
  login.reset();
  refresh();
});

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

refresh().catch(() => {});
setInterval(() => { if (login.hidden) refresh().catch(() => {}); }, 3000);
