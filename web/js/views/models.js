// @ts-check
// Models: the registry's models; for one model, its versions with their metrics, the history of its stages, and
// its drift reports with a chart per drifted feature (the statistic over the reports, against its threshold).

import { api, query, report, seg } from "../api.js";
import { empty, enc, fill, h, s, time, timeText } from "../dom.js";

/** @param {HTMLElement} root @param {Record<string, string>} params */
export function mount(root, params) {
  const controller = new AbortController();
  const signal = controller.signal;
  const body = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  root.append(body);
  (params.name ? one(body, params.name, signal) : list(body, signal)).catch(report);
  return { unmount: () => controller.abort() };
}

/** @param {HTMLElement} body @param {AbortSignal} signal */
async function list(body, signal) {
  const answer = await api(`/models${query({ limit: 1000 })}`, { signal });
  fill(
    body,
    h("h1", { text: "Models" }),
    answer.models.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "models" },
            h("thead", {}, h("tr", {}, ["Model", "Latest version", "In production", "Updated"].map((t) => h("th", { text: t })))),
            h(
              "tbody",
              {},
              answer.models.map((/** @type {any} */ m) =>
                h(
                  "tr",
                  {},
                  h("td", {}, h("a", { href: `#/models/${enc(m.name)}`, text: m.name }), m.description ? h("div", { class: "muted", text: m.description }) : null),
                  h("td", { text: m.latest_version ?? "—" }),
                  h("td", { text: m.production_version ?? "—" }),
                  h("td", {}, time(m.updated_at)),
                ),
              ),
            ),
          ),
        )
      : empty("No models yet: a DAG task with `train:` registers a version each time it runs."),
  );
}

/** @param {HTMLElement} body @param {string} name @param {AbortSignal} signal */
async function one(body, name, signal) {
  const base = `/models/${seg(name)}`;
  const [model, versions, history, reports] = await Promise.all([
    api(base, { signal }),
    api(`${base}/versions`, { signal }),
    api(`${base}/stageHistory`, { signal }),
    api(`${base}/monitorReports${query({ limit: 100 })}`, { signal }),
  ]);
  /** @type {any[]} */
  const vs = versions.versions;
  const metricNames = [...new Set(vs.flatMap((v) => Object.keys(v.metrics ?? {})))].sort();
  fill(
    body,
    h("p", {}, h("a", { href: "#/models", text: "← Models" })),
    h("h1", { text: name }),
    model.description ? h("p", { class: "muted", text: model.description }) : null,
    h("h2", { text: "Versions" }),
    vs.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "versions" },
            h("thead", {}, h("tr", {}, ["Version", "Stage", "Algorithm", ...metricNames, "Trained by", "Created"].map((t) => h("th", { text: t })))),
            h(
              "tbody",
              {},
              [...vs].reverse().map((v) =>
                h(
                  "tr",
                  {},
                  h("td", { text: v.version }),
                  h("td", {}, h("span", { class: `badge ${v.stage === "production" ? "st-success" : v.stage === "staging" ? "st-running" : "st-none"}`, text: v.stage })),
                  h("td", { class: "mono", text: v.algorithm }),
                  metricNames.map((m) => h("td", { class: "mono", text: typeof v.metrics?.[m] === "number" ? v.metrics[m].toFixed(4) : "—" })),
                  h("td", {}, h("a", { href: `#/dags/${enc(v.lineage.dag_id)}/runs/${enc(v.lineage.run_id)}/tasks/${enc(v.lineage.task_id)}`, text: `${v.lineage.dag_id}.${v.lineage.task_id}` })),
                  h("td", {}, time(v.created_at)),
                ),
              ),
            ),
          ),
        )
      : empty("No versions yet: run the DAG that trains this model."),
    h("h2", { text: "Stage history" }),
    history.stage_changes.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "stages" },
            h("thead", {}, h("tr", {}, ["When", "Version", "From", "To", "By", "Reason"].map((t) => h("th", { text: t })))),
            h(
              "tbody",
              {},
              history.stage_changes.map((/** @type {any} */ c) =>
                h("tr", {}, h("td", {}, time(c.timestamp)), h("td", { text: c.version }), h("td", { text: c.from_stage }), h("td", { text: c.to_stage }), h("td", { text: c.changed_by }), h("td", { text: c.reason ?? "" })),
              ),
            ),
          ),
        )
      : empty("No stage changes yet: promote a version with `sluice models promote` or POST …/stage."),
    h("h2", { text: "Drift" }),
    drift(reports.monitor_reports),
  );
}

/**
 * The drift reports: a chart per feature that drifted in any report, then the reports themselves.
 * @param {any[]} reports newest first
 */
function drift(reports) {
  if (!reports.length) return empty("No drift reports yet: a DAG task with `monitor:` compares new data with the training data.");
  const ordered = [...reports].reverse();
  /** @type {Map<string, {t: string, value: number, threshold: number | null, drifted: boolean}[]>} */
  const series = new Map();
  for (const r of ordered) {
    for (const c of r.checks ?? []) {
      const key = `${c.feature} · ${c.statistic}`;
      series.set(key, [...(series.get(key) ?? []), { t: r.timestamp, value: c.value, threshold: c.threshold, drifted: c.drifted }]);
    }
  }
  const drifted = [...series.entries()].filter(([, points]) => points.some((p) => p.drifted));
  return h(
    "div",
    {},
    drifted.length
      ? h("div", { class: "cols" }, drifted.map(([key, points]) => h("div", { class: "card drift-chart" }, h("h3", { text: key }), chart(points))))
      : h("p", { class: "muted", text: "No feature has drifted." }),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "reports" },
        h("thead", {}, h("tr", {}, ["When", "Version", "Rows", "Drifted", "Checks", "Retraining"].map((t) => h("th", { text: t })))),
        h(
          "tbody",
          {},
          reports.map((r) =>
            h(
              "tr",
              {},
              h("td", {}, time(r.timestamp)),
              h("td", { text: r.version }),
              h("td", { text: r.rows }),
              h("td", {}, h("span", { class: `badge ${r.drifted ? "st-failed" : "st-success"}`, text: r.drifted ? "drifted" : "no drift" })),
              h("td", { class: "mono", text: (r.checks ?? []).filter((/** @type {any} */ c) => c.drifted).map((/** @type {any} */ c) => `${c.feature} ${c.statistic}=${c.value.toFixed(3)}`).join(", ") || "—" }),
              h("td", {}, r.retrain_run_id ? h("a", { href: `#/dags/${enc(r.retrain_dag_id)}/runs/${enc(r.retrain_run_id)}`, text: r.retrain_run_id }) : "—"),
            ),
          ),
        ),
      ),
    ),
  );
}

/** A line chart of a statistic over reports, with its threshold dashed. @param {{t: string, value: number, threshold: number | null, drifted: boolean}[]} points */
function chart(points) {
  const W = 360;
  const H = 140;
  const pad = 34;
  const values = points.flatMap((p) => [p.value, p.threshold ?? p.value]);
  const lo = Math.min(0, ...values);
  const hi = Math.max(...values, lo + 1e-9);
  const x = (/** @type {number} */ i) => pad + (points.length === 1 ? (W - 2 * pad) / 2 : (i * (W - 2 * pad)) / (points.length - 1));
  const y = (/** @type {number} */ v) => H - pad / 2 - ((v - lo) / (hi - lo)) * (H - pad);
  const svg = s("svg", { width: W, height: H, role: "img", "aria-label": "Statistic over the drift reports" });
  svg.append(
    s("text", { class: "axis-text", x: pad - 4, y: y(hi) + 4, "text-anchor": "end", text: hi.toFixed(2) }),
    s("text", { class: "axis-text", x: pad - 4, y: y(lo) + 4, "text-anchor": "end", text: lo.toFixed(2) }),
    s("line", { class: "axis", x1: pad, x2: W - pad, y1: y(lo), y2: y(lo) }),
  );
  const threshold = points.find((p) => p.threshold !== null)?.threshold;
  if (threshold !== undefined && threshold !== null) {
    svg.append(s("line", { x1: pad, x2: W - pad, y1: y(threshold), y2: y(threshold), stroke: "var(--st-failed)", "stroke-dasharray": "4 3" }));
  }
  svg.append(s("polyline", { points: points.map((p, i) => `${x(i)},${y(p.value)}`).join(" "), fill: "none", stroke: "var(--accent)", "stroke-width": 2 }));
  points.forEach((p, i) =>
    svg.append(
      s(
        "circle",
        { cx: x(i), cy: y(p.value), r: 4, class: p.drifted ? "fill-failed" : "fill-success" },
        s("title", { text: `${timeText(p.t)}: ${p.value.toFixed(4)}${p.threshold !== null ? ` (threshold ${p.threshold})` : ""}` }),
      ),
    ),
  );
  return svg;
}
