// @ts-check
// A DAG: its facts, pause and trigger, and tabs for the grid, the graph, the run durations, the source and the
// trigger form. Each tab is its own module under dag/, mounted and unmounted with the tab.

import { pauseSwitch } from "../actions.js";
import { api, can, report, seg } from "../api.js";
import { fill, h, enc, time } from "../dom.js";

/** @type {Record<string, {label: string, load: () => Promise<{mount: (root: HTMLElement, dag: any, params: Record<string, string>) => {unmount: () => void}}>}>} */
const TABS = {
  grid: { label: "Grid", load: () => import("./dag/grid.js") },
  graph: { label: "Graph", load: () => import("./dag/graph.js") },
  durations: { label: "Run durations", load: () => import("./dag/durations.js") },
  source: { label: "Source", load: () => import("./dag/source.js") },
  trigger: { label: "Trigger", load: () => import("./dag/trigger.js") },
};

/** @param {HTMLElement} root @param {Record<string, string>} params */
export function mount(root, params) {
  const dagId = params.dag;
  const tab = TABS[params.tab] ? params.tab : "grid";
  const controller = new AbortController();
  /** @type {{unmount: () => void} | null} */
  let inner = null;
  let gone = false;

  const head = h("div", { class: "dag-head" }, h("h1", { text: dagId }));
  const facts = h("div", { class: "facts" });
  const tabs = h(
    "nav",
    { class: "tabs", "aria-label": "DAG views" },
    Object.entries(TABS)
      .filter(([name]) => name !== "trigger" || can("User"))
      .map(([name, t]) =>
        h("a", { href: `#/dags/${enc(dagId)}/${name}`, text: t.label, "aria-current": name === tab ? "page" : null }),
      ),
  );
  const body = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  root.append(h("p", {}, h("a", { href: "#/dags", text: "← DAGs" })), head, facts, tabs, body);

  (async () => {
    const dag = await api(`/dags/${seg(dagId)}/details`, { signal: controller.signal });
    if (gone) return;
    header(dag);
    const module = await TABS[tab].load();
    if (gone) return;
    fill(body);
    inner = module.mount(body, dag, params);
  })().catch(report);

  /** @param {any} dag */
  function header(dag) {
    const mayEdit = can("User");
    const label = h("span", { text: dag.is_paused ? "paused" : "active" });
    const toggle = pauseSwitch(dag, "Active", () => {
      label.textContent = dag.is_paused ? "paused" : "active";
    });
    fill(
      head,
      h("h1", { text: dagId }),
      h("label", { class: "check" }, toggle, label),
      mayEdit && tab !== "trigger"
        ? h("a", { class: "button primary trigger", href: `#/dags/${enc(dagId)}/trigger`, text: "Trigger" })
        : null,
    );
    fill(
      facts,
      dag.description ? h("span", { text: dag.description }) : null,
      h("span", {}, "Schedule ", h("b", { class: "mono", text: dag.timetable_summary ?? "manual" })),
      h("span", {}, "Owner ", h("b", { text: (dag.owners ?? []).join(", ") || "—" })),
      h("span", {}, "Next run ", h("b", {}, time(dag.next_dagrun_logical_date))),
      (dag.tags ?? []).length
        ? h("span", {}, "Tags ", h("b", { text: dag.tags.map((/** @type {any} */ t) => t.name ?? t).join(", ") }))
        : null,
      h("span", { class: "mono", text: dag.relative_fileloc ?? dag.fileloc ?? "" }),
    );
  }

  return {
    unmount() {
      gone = true;
      controller.abort();
      inner?.unmount();
    },
  };
}
