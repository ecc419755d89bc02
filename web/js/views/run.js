// @ts-check
// A DAG run: its task instances (state, try, duration), a Gantt of every try with the time queued drawn apart,
// and the run's actions: mark success or failed, clear the failed tasks. The event stream keeps it live.

import { api, can, query, report, seg, stream } from "../api.js";
import { confirmButton } from "../actions.js";
import { badge, between, duration, empty, enc, fill, h, legend, s, time, timeText } from "../dom.js";

/** @param {HTMLElement} root @param {Record<string, string>} params */
export function mount(root, params) {
  const { dag: dagId, run: runId } = params;
  const controller = new AbortController();
  const base = `/dags/${seg(dagId)}/dagRuns/${seg(runId)}`;
  const live = h("span", { class: "live", text: "live" });
  const summary = h("div", { class: "facts" });
  const actions = h("div", { class: "actions" });
  const tis = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  const gantt = h("div", { class: "chart-wrap" });
  root.append(
    h("p", {}, h("a", { href: `#/dags/${enc(dagId)}/grid`, text: `← ${dagId}` })),
    h("div", { class: "toolbar" }, h("h1", { text: `Run ${runId}` }), h("span", { class: "grow" }), live),
    summary,
    actions,
    legend(),
    h("h2", { text: "Task instances" }),
    tis,
    h("h2", { text: "Gantt" }),
    h("p", { class: "muted", text: "Each try from queued (pale) through running (solid) to its end." }),
    gantt,
  );

  async function loadRun() {
    const run = await api(base, { signal: controller.signal });
    fill(
      summary,
      h("span", {}, "State ", badge(run.state)),
      h("span", {}, "Type ", h("b", { text: run.run_type })),
      h("span", {}, "Logical date ", h("b", {}, time(run.logical_date))),
      h("span", {}, "Queued ", h("b", {}, time(run.queued_at))),
      h("span", {}, "Started ", h("b", {}, time(run.start_date))),
      h("span", {}, "Ended ", h("b", {}, time(run.end_date))),
      h("span", {}, "Duration ", h("b", { text: duration(between(run.start_date, run.end_date)) })),
      Object.keys(run.conf ?? {}).length ? h("span", {}, "Conf ", h("code", { text: JSON.stringify(run.conf) })) : null,
      run.note ? h("span", {}, "Note ", h("b", { text: run.note })) : null,
    );
    drawActions();
  }

  function drawActions() {
    if (!can("User")) {
      fill(actions);
      return;
    }
    /** @param {string} label @param {string} question @param {() => Promise<unknown>} fn @param {string} [cls] */
    const button = (label, question, fn, cls = "") => confirmButton(label, question, fn, refresh, cls);
    fill(
      actions,
      button("Clear failed tasks", `Clear the failed tasks of ${runId} so they run again?`, () =>
        api(`${base}/clear`, { method: "POST", body: { dry_run: false, only_failed: true } }),
      ),
      button("Mark success", `Mark ${runId} success (its unfinished tasks too)?`, () =>
        api(base, { method: "PATCH", body: { state: "success" } }),
      ),
      button("Mark failed", `Mark ${runId} failed?`, () => api(base, { method: "PATCH", body: { state: "failed" } }), "danger"),
    );
  }

  async function loadTis() {
    const answer = await api(`${base}/taskInstances${query({ limit: 1000 })}`, { signal: controller.signal });
    /** @type {any[]} */
    const list = answer.task_instances;
    if (!list.length) {
      fill(tis, empty("This run has no task instances yet: the scheduler creates them when the run starts."));
      return;
    }
    fill(
      tis,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "tis" },
          h(
            "thead",
            {},
            h("tr", {}, ["Task", "State", "Try", "Started", "Duration", "Operator"].map((t) => h("th", { text: t }))),
          ),
          h(
            "tbody",
            {},
            list.map((ti) =>
              h(
                "tr",
                { dataset: { task: ti.task_id } },
                h("td", {}, h("a", { href: `#/dags/${enc(dagId)}/runs/${enc(runId)}/tasks/${enc(ti.task_id)}`, text: ti.task_display_name || ti.task_id })),
                h("td", {}, badge(ti.state)),
                h("td", { text: String(ti.try_number) }),
                h("td", {}, time(ti.start_date)),
                h("td", { text: duration(ti.duration ?? between(ti.start_date, ti.end_date)) }),
                h("td", { class: "mono", text: ti.operator }),
              ),
            ),
          ),
        ),
      ),
    );
  }

  async function loadGantt() {
    const answer = await api(`/ui/gantt/${seg(dagId)}/${seg(runId)}`, { signal: controller.signal });
    drawGantt(answer.tries);
  }

  /** @param {any[]} tries */
  function drawGantt(tries) {
    const timed = tries.filter((t) => t.queued_at || t.start_date);
    if (!timed.length) {
      fill(gantt, empty("Nothing has started yet."));
      return;
    }
    const t0 = Math.min(...timed.map((t) => Date.parse(t.queued_at ?? t.start_date)));
    const t1 = Math.max(...timed.map((t) => (t.end_date ? Date.parse(t.end_date) : Date.now())), t0 + 1000);
    const left = 170;
    const width = Math.max(600, Math.min(1400, root.clientWidth - 40));
    const rowH = 22;
    const x = (/** @type {number} */ ms) => left + ((ms - t0) / (t1 - t0)) * (width - left - 10);
    const svg = s("svg", { width, height: timed.length * rowH + 30, role: "img", "aria-label": "Gantt chart of the run" });
    for (const frac of [0, 0.25, 0.5, 0.75, 1]) {
      const at = t0 + frac * (t1 - t0);
      svg.append(
        s("line", { class: "axis", x1: x(at), x2: x(at), y1: 0, y2: timed.length * rowH }),
        s("text", { class: "axis-text", x: x(at), y: timed.length * rowH + 16, "text-anchor": frac === 1 ? "end" : frac === 0 ? "start" : "middle", text: `+${duration((at - t0) / 1000)}` }),
      );
    }
    timed.forEach((t, i) => {
      const y = i * rowH + 3;
      const start = t.start_date ? Date.parse(t.start_date) : null;
      const queued = t.queued_at ? Date.parse(t.queued_at) : start;
      const end = t.end_date ? Date.parse(t.end_date) : Date.now();
      const label = `${t.task_id}${t.map_index >= 0 ? `[${t.map_index}]` : ""} #${t.try_number}`;
      const title = `${label}: ${t.state ?? "no status"}\nqueued ${timeText(t.queued_at)}\nstarted ${timeText(t.start_date)}\nended ${timeText(t.end_date)}\nwaited ${duration(queued !== null && start !== null ? (start - queued) / 1000 : null)} · ran ${duration(t.duration ?? (start !== null ? (end - start) / 1000 : null))}`;
      svg.append(
        s(
          "a",
          { href: `#/dags/${enc(dagId)}/runs/${enc(runId)}/tasks/${enc(t.task_id)}` },
          s("text", { class: "axis-text", x: left - 8, y: y + 12, "text-anchor": "end", text: label }),
          queued !== null && start !== null
            ? s("rect", { x: x(queued), y, width: Math.max(1, x(start) - x(queued)), height: 16, class: `fill-${t.state ?? "none"}`, opacity: 0.3 })
            : null,
          queued !== null && start === null
            ? s("rect", { x: x(queued), y, width: Math.max(1, x(Date.now()) - x(queued)), height: 16, class: `fill-${t.state ?? "none"}`, opacity: 0.3 })
            : null,
          start !== null ? s("rect", { x: x(start), y, width: Math.max(2, x(end) - x(start)), height: 16, class: `fill-${t.state ?? "none"}` }) : null,
          s("title", { text: title }),
        ),
      );
    });
    fill(gantt, svg);
  }

  let timer = 0;
  /** A burst of events is one refresh. */
  function soon() {
    clearTimeout(timer);
    timer = window.setTimeout(() => refresh().catch(report), 250);
  }
  const refresh = () => Promise.all([loadRun(), loadTis(), loadGantt()]);

  let opened = false;
  const events = stream(() => `/ui/events${query({ dag_id: dagId, run_id: runId })}`, {
    // After a reconnection, what changed meanwhile was not streamed.
    onOpen: () => {
      if (opened) soon();
      opened = true;
    },
    onEvent: (name, data) => {
      if (name === "resync" || data.run_id === runId) soon();
    },
    onStatus: (on) => live.classList.toggle("on", on),
  });
  refresh().catch(report);

  return {
    unmount() {
      events.close();
      controller.abort();
      clearTimeout(timer);
    },
  };
}
