// @ts-check
// Assets: the catalog (schema, owner, rows, last update, quality) and, for the chosen asset, its lineage across
// DAGs drawn as a layered graph; a node opens its asset or its task's DAG.

import { api, query, report } from "../api.js";
import { empty, enc, fill, h, s, time } from "../dom.js";

/**
 * @typedef {{type: "asset", uri: string} | {type: "task", dag_id: string, task_id: string}} Node
 */

/** @param {Node} n */
const keyOf = (n) => (n.type === "asset" ? `asset:${n.uri}` : `task:${n.dag_id}.${n.task_id}`);

/**
 * Layers for a lineage graph: each node one column right of its furthest upstream node.
 * @param {Node[]} nodes
 * @param {[Node, Node][]} edges
 * @returns {Map<string, number>}
 */
export function layers(nodes, edges) {
  const layer = new Map(nodes.map((n) => [keyOf(n), 0]));
  // Longest path by relaxation; lineage graphs are acyclic, and the bound stops a malformed one.
  for (let round = 0; round < nodes.length; round += 1) {
    let changed = false;
    for (const [a, b] of edges) {
      const want = (layer.get(keyOf(a)) ?? 0) + 1;
      if ((layer.get(keyOf(b)) ?? 0) < want) {
        layer.set(keyOf(b), want);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return layer;
}

/** @param {HTMLElement} root @param {Record<string, string>} params */
export function mount(root, params) {
  const controller = new AbortController();
  let chosen = params.uri ?? "";
  const catalog = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  const lineage = h("div", {});
  const quality = h("div", {});
  root.append(h("h1", { text: "Assets" }), catalog, lineage, quality);
  /** The catalog's assets by URI. @type {Map<string, any>} */
  const known = new Map();

  async function loadCatalog() {
    const answer = await api(`/assets${query({ limit: 1000 })}`, { signal: controller.signal });
    /** @type {any[]} */
    const assets = answer.assets;
    if (!assets.length) {
      fill(catalog, empty("No assets yet: a task that declares `outlets:` (or writes a table to the lake) makes one."));
      return;
    }
    if (!chosen) chosen = assets[0].uri;
    for (const a of assets) known.set(a.uri, a);
    fill(
      catalog,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "assets" },
          h("thead", {}, h("tr", {}, ["Asset", "Owner", "Schema", "Rows", "Last update", "Quality", "Made by"].map((t) => h("th", { text: t })))),
          h(
            "tbody",
            {},
            assets.map((a) => {
              const open = h("button", { type: "button", class: "link", text: a.name || a.uri, title: a.uri });
              open.addEventListener("click", () => show(a.uri));
              const columns = schemaColumns(a.schema);
              return h(
                "tr",
                { dataset: { uri: a.uri } },
                h("td", {}, open, a.description ? h("div", { class: "muted", text: a.description }) : null),
                h("td", { text: a.owner ?? "—" }),
                h(
                  "td",
                  {},
                  columns.length
                    ? h("details", {}, h("summary", { text: `${columns.length} columns` }), h("ul", {}, columns.map((c) => h("li", { class: "mono", text: c }))))
                    : "—",
                ),
                h("td", { text: a.row_count ?? "—" }),
                h("td", {}, time(a.last_asset_event?.timestamp ?? a.updated_at)),
                h("td", {}, a.quality_status ? h("span", { class: `badge ${qualityClass(a.quality_status)}`, text: a.quality_status }) : "—"),
                h(
                  "td",
                  {},
                  a.producing_tasks.map((/** @type {any} */ t) => h("div", {}, h("a", { href: `#/dags/${enc(t.dag_id)}/grid`, text: `${t.dag_id}.${t.task_id}` }))),
                ),
              );
            }),
          ),
        ),
      ),
    );
    await show(chosen);
  }

  /** @param {string} status */
  const qualityClass = (status) => (status === "passed" ? "st-success" : status === "warn" ? "st-up_for_retry" : "st-failed");

  /** @param {any} schema @returns {string[]} */
  function schemaColumns(schema) {
    if (!schema) return [];
    const cols = Array.isArray(schema) ? schema : schema.columns ?? schema.fields ?? Object.entries(schema).map(([name, type]) => ({ name, type }));
    return cols.map((/** @type {any} */ c) => (typeof c === "string" ? c : `${c.name}: ${c.type ?? c.dtype ?? ""}`));
  }

  /** @param {string} uri */
  async function show(uri) {
    chosen = uri;
    history.replaceState(null, "", `#/assets${query({ uri })}`);
    for (const tr of catalog.querySelectorAll("tr[data-uri]")) tr.toggleAttribute("aria-selected", /** @type {HTMLElement} */ (tr).dataset.uri === uri);
    let view;
    try {
      view = await api(`/assets/lineage${query({ uri })}`, { signal: controller.signal });
    } catch (error) {
      fill(lineage, h("h2", { text: `Lineage of ${uri}` }), empty("No DAG reads or writes this asset any more."));
      report(error);
      return;
    }
    drawLineage(uri, view);
    await showQuality(known.get(uri));
  }

  /** The report behind an asset's quality status. @param {any} asset */
  async function showQuality(asset) {
    fill(quality);
    if (!asset?.quality_status) return;
    const judged = await api(`/assets/${asset.id}/quality`, { signal: controller.signal });
    const found = judged.report;
    /** @type {any[]} */
    const results = Array.isArray(found.results) ? found.results : [];
    fill(
      quality,
      h("h2", { text: `Quality of ${asset.uri}: ${found.status}` }),
      h(
        "p",
        { class: "muted" },
        "Checked by ",
        h("a", { href: `#/dags/${enc(judged.dag_id)}/runs/${enc(judged.dag_run_id)}/tasks/${enc(judged.task_id)}`, text: `${judged.dag_id}.${judged.task_id}` }),
        " on ",
        time(found.timestamp),
        found.rows === null || found.rows === undefined ? "" : ` · ${found.rows} rows`,
      ),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "quality" },
          h("thead", {}, h("tr", {}, ["Check", "Column", "Observed", "Threshold", "Severity", "Result"].map((t) => h("th", { text: t })))),
          h(
            "tbody",
            {},
            results.map((r) =>
              h(
                "tr",
                {},
                h("td", { class: "mono", text: r.check }),
                h("td", { class: "mono", text: r.column ?? "—" }),
                h("td", { class: "mono", text: JSON.stringify(r.observed) }),
                h("td", { class: "mono", text: JSON.stringify(r.threshold) }),
                h("td", { text: r.severity ?? "" }),
                h("td", {}, h("span", { class: `badge ${r.passed ? "st-success" : "st-failed"}`, text: r.passed ? "passed" : "failed" })),
              ),
            ),
          ),
        ),
      ),
    );
  }


  /** @param {string} uri @param {any} view */
  function drawLineage(uri, view) {
    /** @type {Node[]} */
    const nodes = [view.node, ...view.upstream, ...view.downstream];
    /** @type {[Node, Node][]} */
    const edges = view.edges;
    const layer = layers(nodes, edges);
    /** @type {Map<number, Node[]>} */
    const columns = new Map();
    for (const n of nodes) {
      const l = layer.get(keyOf(n)) ?? 0;
      columns.set(l, [...(columns.get(l) ?? []), n]);
    }
    const W = 190;
    const H = 34;
    const gapX = 70;
    const gapY = 16;
    /** @type {Map<string, {x: number, y: number}>} */
    const at = new Map();
    let rows = 0;
    for (const [l, col] of columns) {
      col.forEach((n, i) => at.set(keyOf(n), { x: l * (W + gapX), y: i * (H + gapY) }));
      rows = Math.max(rows, col.length);
    }
    const width = columns.size * (W + gapX) - gapX + 20;
    const height = rows * (H + gapY) + 20;
    const svg = s("svg", { width, height, viewBox: `-10 -10 ${width} ${height}`, role: "group", "aria-label": `Lineage of ${uri}` });
    svg.append(s("defs", {}, s("marker", { id: "lin-arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, s("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#9aa4b0" }))));
    for (const [a, b] of edges) {
      const p = at.get(keyOf(a));
      const q = at.get(keyOf(b));
      if (!p || !q) continue;
      const x1 = p.x + W;
      const y1 = p.y + H / 2;
      const x2 = q.x;
      const y2 = q.y + H / 2;
      svg.append(s("path", { class: "edge", d: `M ${x1} ${y1} C ${x1 + gapX / 2} ${y1}, ${x2 - gapX / 2} ${y2}, ${x2} ${y2}`, "marker-end": "url(#lin-arrow)" }));
    }
    for (const n of nodes) {
      const p = at.get(keyOf(n));
      if (!p) continue;
      const label = n.type === "asset" ? n.uri : `${n.dag_id}.${n.task_id}`;
      const isChosen = n.type === "asset" && n.uri === uri;
      const group = s(
        "g",
        { class: "node" },
        s("rect", { x: p.x, y: p.y, width: W, height: H, rx: n.type === "asset" ? 17 : 4, fill: n.type === "asset" ? (isChosen ? "#cfe3ff" : "#eef4fb") : "#fff", "stroke-width": isChosen ? 2 : 1 }),
        s("text", { x: p.x + W / 2, y: p.y + H / 2 + 4, "text-anchor": "middle", text: label.length > 28 ? `…${label.slice(-27)}` : label }),
        s("title", { text: `${n.type}: ${label}` }),
      );
      if (n.type === "asset") {
        const a = s("a", { href: `#/assets${query({ uri: n.uri })}`, "aria-label": `asset ${n.uri}` }, group);
        a.addEventListener("click", (e) => {
          e.preventDefault();
          show(n.uri).catch(report);
        });
        svg.append(a);
      } else {
        svg.append(s("a", { href: `#/dags/${enc(n.dag_id)}/graph`, "aria-label": `task ${label}` }, group));
      }
    }
    fill(
      lineage,
      h("h2", { text: `Lineage of ${uri}` }),
      h("p", { class: "muted", text: "Data flows left to right: rounded nodes are assets, square ones tasks. Click a node to open it." }),
      h("div", { class: "graph-wrap" }, svg),
    );
  }

  loadCatalog().catch(report);
  return { unmount: () => controller.abort() };
}

