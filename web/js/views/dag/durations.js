// @ts-check
// Run durations over time: one bar per run (queued time drawn apart, lighter), coloured by the run's state.

import { api, query, report, seg } from "../../api.js";
import { between, duration, empty, enc, fill, h, s, timeText } from "../../dom.js";

/** @param {HTMLElement} root @param {any} dag */
export function mount(root, dag) {
  const controller = new AbortController();
  const wrap = h("div", { class: "chart-wrap" }, h("p", { class: "muted", text: "Loading…" }));
  root.append(h("p", { class: "muted", text: "The last 100 runs, oldest left: bar height is the run's duration, the pale part its time queued." }), wrap);

  (async () => {
    const answer = await api(`/dags/${seg(dag.dag_id)}/dagRuns${query({ limit: 100, order_by: "-run_after" })}`, {
      signal: controller.signal,
    });
    /** @type {any[]} */
    const runs = answer.dag_runs.reverse();
    if (!runs.length) {
      fill(wrap, empty("No runs yet: trigger one to see its duration here."));
      return;
    }
    const rows = runs.map((r) => ({
      run: r,
      queued: r.queued_at && r.start_date ? Math.max(0, (Date.parse(r.start_date) - Date.parse(r.queued_at)) / 1000) : 0,
      ran: between(r.start_date, r.end_date) ?? 0,
    }));
    const max = Math.max(1, ...rows.map((r) => r.queued + r.ran));
    const H = 220;
    const left = 70;
    const bw = 14;
    const width = left + rows.length * (bw + 4) + 10;
    const y = (/** @type {number} */ v) => H - (v / max) * H + 10;
    const svg = s("svg", { width, height: H + 40, role: "img", "aria-label": "Run durations" });
    for (const frac of [0, 0.5, 1]) {
      svg.append(
        s("line", { class: "axis", x1: left - 4, x2: width, y1: y(max * frac), y2: y(max * frac) }),
        s("text", { class: "axis-text", x: left - 8, y: y(max * frac) + 4, "text-anchor": "end", text: duration(max * frac) }),
      );
    }
    rows.forEach((r, i) => {
      const x = left + i * (bw + 4);
      const title = s("title", {
        text: `${r.run.dag_run_id}\n${r.run.state} · ${timeText(r.run.run_after)}\nqueued ${duration(r.queued)} · ran ${duration(r.ran)}`,
      });
      const link = s(
        "a",
        { href: `#/dags/${enc(dag.dag_id)}/runs/${enc(r.run.dag_run_id)}` },
        r.queued > 0
          ? s("rect", { x, width: bw, y: y(r.queued + r.ran), height: (r.queued / max) * H, class: `fill-${r.run.state}`, opacity: 0.35 })
          : null,
        s("rect", { x, width: bw, y: y(r.ran), height: Math.max(1, (r.ran / max) * H), class: `fill-${r.run.state}` }),
        title,
      );
      svg.append(link);
    });
    svg.append(
      s("text", { class: "axis-text", x: left, y: H + 30, text: timeText(runs[0].run_after) }),
      s("text", { class: "axis-text", x: width - 10, y: H + 30, "text-anchor": "end", text: timeText(runs[runs.length - 1].run_after) }),
    );
    fill(wrap, svg);
  })().catch(report);

  return { unmount: () => controller.abort() };
}

