// @ts-check
// The graph: the DAG as the server laid it out (left to right), drawn as SVG, its nodes coloured by the states of
// the chosen run and kept live by the event stream. A node opens its task instance.

import { api, query, report, seg, stream } from "../../api.js";
import { empty, enc, fill, h, legend, s, timeText } from "../../dom.js";

/** @param {HTMLElement} root @param {any} dag @param {Record<string, string>} params */
export function mount(root, dag, params) {
  const dagId = dag.dag_id;
  const controller = new AbortController();
  let runId = params.run ?? "";
  const picker = /** @type {HTMLSelectElement} */ (h("select", { "aria-label": "Run" }));
  const live = h("span", { class: "live", text: "live" });
  const wrap = h("div", { class: "graph-wrap" }, h("p", { class: "muted", text: "Loading…" }));
  root.append(
    h("div", { class: "toolbar" }, h("label", { class: "check" }, "Run", picker), h("span", { class: "grow" }), live),
    legend(),
    wrap,
  );
  /** @type {Map<string, SVGElement>} */
  const shapes = new Map();

  async function loadRuns() {
    const answer = await api(`/dags/${seg(dagId)}/dagRuns${query({ limit: 25, order_by: "-run_after" })}`, {
      signal: controller.signal,
    });
    /** @type {any[]} */
    const list = answer.dag_runs;
    if (!runId && list.length) runId = list[0].dag_run_id;
    fill(
      picker,
      h("option", { value: "", text: "no run (structure only)" }),
      list.map((r) =>
        h("option", { value: r.dag_run_id, selected: r.dag_run_id === runId, text: `${timeText(r.run_after)} · ${r.state} · ${r.dag_run_id}` }),
      ),
    );
  }

  async function load() {
    const layout = await api(`/ui/structure/${seg(dagId)}${query({ run_id: runId })}`, { signal: controller.signal });
    draw(layout);
  }

  /** @param {any} layout */
  function draw(layout) {
    shapes.clear();
    if (!layout.nodes.length) {
      fill(wrap, empty("This DAG has no tasks: add some under `tasks:` in its file."));
      return;
    }
    const pad = 10;
    const svg = s("svg", {
      width: layout.width + 2 * pad,
      height: layout.height + 2 * pad,
      viewBox: `${-pad} ${-pad} ${layout.width + 2 * pad} ${layout.height + 2 * pad}`,
      role: "group",
      "aria-label": `Graph of ${dagId}`,
    });
    svg.append(
      s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#9aa4b0" }))),
    );
    for (const edge of layout.edges) {
      const d = edge.points.map((/** @type {number[]} */ p, /** @type {number} */ i) => `${i ? "L" : "M"} ${p[0]} ${p[1]}`).join(" ");
      svg.append(s("path", { class: "edge", d, "marker-end": "url(#arrow)" }));
    }
    for (const node of layout.nodes) {
      const rect = s("rect", { x: node.x, y: node.y, width: node.width, height: node.height, rx: 5, class: fillOf(node.state) });
      const label = s("text", { x: node.x + node.width / 2, y: node.y + node.height / 2 + 4, "text-anchor": "middle", text: node.label });
      const title = s("title", { text: `${node.id} (${node.kind}): ${node.state ?? "no status"}` });
      const group = s("g", { class: "node" }, rect, label, title);
      const target = runId
        ? s("a", { href: `#/dags/${enc(dagId)}/runs/${enc(runId)}/tasks/${enc(node.id)}`, "data-task": node.id, "aria-label": `${node.id}: ${node.state ?? "no status"}` }, group)
        : group;
      svg.append(target);
      shapes.set(node.id, rect);
    }
    fill(wrap, svg);
  }

  /** Nodes without a state are drawn pale, so the coloured ones stand out. @param {string | null} state */
  const fillOf = (state) => (state ? `fill-${state}` : "pale");

  picker.addEventListener("change", () => {
    runId = picker.value;
    history.replaceState(null, "", `#/dags/${enc(dagId)}/graph${query({ run: runId })}`);
    load().catch(report);
  });

  let opened = false;
  const events = stream(() => `/ui/events${query({ dag_id: dagId })}`, {
    onOpen: () => {
      if (opened) load().catch(report);
      opened = true;
    },
    onEvent: (name, data) => {
      if (name === "resync") load().catch(report);
      else if (name === "task_instance" && data.run_id === runId) {
        const rect = shapes.get(data.task_id);
        rect?.setAttribute("class", fillOf(data.state));
        rect?.parentElement?.querySelector("title")?.replaceChildren(`${data.task_id}: ${data.state ?? "no status"}`);
      } else if (name === "dag_run" && !runId) {
        // The first run of a DAG shown without one: follow it.
        runId = data.run_id;
        loadRuns().then(load).catch(report);
      }
    },
    onStatus: (on) => live.classList.toggle("on", on),
  });
  loadRuns().then(load).catch(report);

  return {
    unmount() {
      events.close();
      controller.abort();
    },
  };
}
