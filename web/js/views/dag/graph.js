// @ts-check
// The graph: the DAG as the server laid it out (left to right), drawn as SVG, its nodes coloured by the states of
// the chosen run and kept live by the event stream. A node opens its task instance. Task groups can be collapsed
// to one node each: the server lays the DAG out again with them folded.

import { api, query, report, seg, stream } from "../../api.js";
import { empty, enc, fill, h, legend, s, timeText } from "../../dom.js";

/** @param {HTMLElement} root @param {any} dag @param {Record<string, string>} params */
export function mount(root, dag, params) {
  const dagId = dag.dag_id;
  const controller = new AbortController();
  let runId = params.run ?? "";
  const picker = /** @type {HTMLSelectElement} */ (h("select", { "aria-label": "Run" }));
  const live = h("span", { class: "live", text: "live" });
  const groupBar = h("span", { class: "groups" });
  const wrap = h("div", { class: "graph-wrap" }, h("p", { class: "muted", text: "Loading…" }));
  /** Ids of the task groups drawn as one node. @type {Set<string>} */
  const collapsed = new Set();
  root.append(
    h("div", { class: "toolbar" }, h("label", { class: "check" }, "Run", picker), groupBar, h("span", { class: "grow" }), live),
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
    const layout = await api(`/ui/structure/${seg(dagId)}${query({ run_id: runId, collapsed: [...collapsed] })}`, {
      signal: controller.signal,
    });
    drawGroups(layout.groups);
    draw(layout);
  }

  /** @param {string} id @param {boolean} fold */
  function setCollapsed(id, fold) {
    if (fold) collapsed.add(id);
    else collapsed.delete(id);
    load().catch(report);
  }

  /** A checkbox per task group: checked, the group is one node. @param {{id: string, description: string | null}[]} groups */
  function drawGroups(groups) {
    fill(
      groupBar,
      groups.map((g) => {
        const box = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", checked: collapsed.has(g.id) }));
        box.addEventListener("change", () => setCollapsed(g.id, box.checked));
        return h("label", { class: "check", title: g.description ?? "" }, box, `Collapse ${g.id}`);
      }),
    );
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
      const folded = node.kind === "group";
      // A task of a group is labelled with its short id, under its group's id in small print.
      const caption = node.group_id && !folded;
      const mid = node.x + node.width / 2;
      const label = s("text", { x: mid, y: node.y + node.height / 2 + (caption ? 8 : 4), "text-anchor": "middle", text: node.label });
      const title = s("title", { text: `${node.id} (${node.kind}): ${node.state ?? "no status"}` });
      const group = s("g", { class: folded ? "node group" : "node" }, rect, label, title);
      if (caption) group.append(s("text", { x: mid, y: node.y + 12, "text-anchor": "middle", class: "caption", text: node.group_id }));
      const target = folded
        ? s("a", { href: "#", "data-group": node.id, "aria-label": `Expand group ${node.id}: ${node.state ?? "no status"}`, onclick: (/** @type {Event} */ e) => { e.preventDefault(); setCollapsed(node.id, false); } }, group)
        : runId
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
        // A task inside a collapsed group has no node of its own: the group's state is the server's to say.
        if (!rect && collapsed.size) load().catch(report);
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
