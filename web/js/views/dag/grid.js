// @ts-check
// The grid: runs as columns (oldest left), tasks as rows, each cell coloured by its task instance's state. It loads
// once (one request) and then follows the event stream: a cell changes colour as its task instance changes state.
// Arrow keys move between cells, Enter opens one; hovering or focusing a cell shows its times.

import { api, query, report, seg, stream } from "../../api.js";
import { between, duration, empty, enc, fill, h, legend, stateClass, timeText } from "../../dom.js";

const RUNS = 25;

/**
 * @typedef {{run_id: string, state: string, run_type: string, logical_date: string | null, run_after: string | null, queued_at: string | null, start_date: string | null, end_date: string | null}} Run
 * @typedef {{task_id: string, label: string, kind: string, group_id: string | null}} Task
 * @typedef {{state: string | null, try_number: number, map_count: number, queued_at: string | null, start_date: string | null, end_date: string | null}} Cell
 */

/** @param {HTMLElement} root @param {any} dag */
export function mount(root, dag) {
  const dagId = dag.dag_id;
  const controller = new AbortController();
  const live = h("span", { class: "live", text: "live" });
  const wrap = h("div", { class: "grid-wrap" }, h("p", { class: "muted", text: "Loading…" }));
  const tip = h("div", { class: "tip", role: "tooltip", hidden: true });
  root.append(h("div", { class: "toolbar" }, legend(), h("span", { class: "grow" }), live), wrap, tip);

  /** @type {Run[]} */
  let runs = [];
  /** @type {Task[]} */
  let tasks = [];
  /** Cell elements and their data, by run id then task id. @type {Map<string, Map<string, {el: HTMLElement, cell: Cell | null}>>} */
  const cells = new Map();
  /** @type {Map<string, HTMLElement>} */
  const runBars = new Map();
  let reloadTimer = 0;

  async function load() {
    const answer = await api(`/ui/grid/${seg(dagId)}${query({ limit: RUNS })}`, { signal: controller.signal });
    runs = [...answer.runs].reverse();
    tasks = answer.tasks;
    // The server sends cells newest run first, like the runs.
    const byRun = [...answer.cells].reverse();
    render(byRun);
  }

  /** @param {(Cell | null)[][]} byRun */
  function render(byRun) {
    cells.clear();
    runBars.clear();
    if (runs.length === 0) {
      fill(
        wrap,
        empty(
          dag.is_paused
            ? "No runs yet: unpause the DAG so its schedule starts runs, or trigger a run."
            : "No runs yet: trigger a run, or wait for the schedule.",
        ),
      );
      return;
    }
    const longest = Math.max(0.001, ...runs.map((r) => between(r.start_date, r.end_date) ?? 0));
    const table = document.createElement("table");
    table.className = "grid";
    const head = table.createTHead().insertRow();
    const corner = document.createElement("th");
    corner.className = "task corner";
    corner.textContent = "Task \\ run";
    head.append(corner);
    for (const run of runs) {
      const th = document.createElement("th");
      const bar = document.createElement("a");
      bar.href = `#/dags/${enc(dagId)}/runs/${enc(run.run_id)}`;
      bar.className = `runbar ${stateClass(run.state)}`;
      bar.dataset.run = run.run_id;
      bar.setAttribute("aria-label", `run ${run.run_id}: ${run.state}`);
      bar.tabIndex = -1;
      const d = between(run.start_date, run.end_date) ?? 0;
      bar.style.height = `${Math.max(6, Math.round((40 * d) / longest))}px`;
      th.append(bar);
      head.append(th);
      runBars.set(run.run_id, bar);
      cells.set(run.run_id, new Map());
    }
    const tbody = table.createTBody();
    tasks.forEach((task, t) => {
      const tr = tbody.insertRow();
      const th = document.createElement("th");
      th.className = "task";
      th.scope = "row";
      // A task of a group shows the group's part of its id muted, so that a group's rows read as one.
      if (task.group_id) th.append(h("span", { class: "muted", text: `${task.group_id}.` }));
      th.append(task.label || task.task_id);
      th.title = task.task_id;
      tr.append(th);
      runs.forEach((run, r) => {
        const td = tr.insertCell();
        const cell = byRun[r]?.[t] ?? null;
        const a = document.createElement("a");
        a.href = `#/dags/${enc(dagId)}/runs/${enc(run.run_id)}/tasks/${enc(task.task_id)}`;
        a.className = `cell ${stateClass(cell ? cell.state : "none")}`;
        if (!cell) a.style.opacity = "0.35";
        a.dataset.run = run.run_id;
        a.dataset.task = task.task_id;
        a.tabIndex = -1;
        a.setAttribute("aria-label", `${task.task_id} in ${run.run_id}: ${cell?.state ?? "no status"}`);
        td.append(a);
        /** @type {Map<string, any>} */ (cells.get(run.run_id)).set(task.task_id, { el: a, cell });
      });
    });
    fill(wrap, table);
    // One cell is in the tab order: the newest run's first task.
    const first = cells.get(runs[runs.length - 1].run_id)?.get(tasks[0]?.task_id ?? "");
    if (first) first.el.tabIndex = 0;
    wrap.scrollLeft = wrap.scrollWidth;
  }

  /** @param {HTMLElement} el */
  function describe(el) {
    const run = runs.find((r) => r.run_id === el.dataset.run);
    if (!run) return "";
    if (!el.dataset.task) {
      return [
        run.run_id,
        `state: ${run.state} (${run.run_type})`,
        `logical date: ${timeText(run.logical_date)}`,
        `started: ${timeText(run.start_date)}`,
        `ended: ${timeText(run.end_date)}`,
        `duration: ${duration(between(run.start_date, run.end_date))}`,
      ].join("\n");
    }
    const entry = cells.get(run.run_id)?.get(el.dataset.task);
    const c = entry?.cell;
    if (!c) return `${el.dataset.task}\nnot in this run`;
    return [
      `${el.dataset.task} · ${run.run_id}`,
      `state: ${c.state ?? "no status"}${c.try_number > 1 ? ` (try ${c.try_number})` : ""}${c.map_count > 1 ? ` · ${c.map_count} mapped` : ""}`,
      `queued: ${timeText(c.queued_at)}`,
      `started: ${timeText(c.start_date)}`,
      `ended: ${timeText(c.end_date)}`,
      `duration: ${duration(between(c.start_date, c.end_date))}`,
    ].join("\n");
  }

  /** @param {Event} event */
  function showTip(event) {
    const el = /** @type {HTMLElement | null} */ (/** @type {HTMLElement} */ (event.target).closest?.("a[data-run]"));
    if (!el) return;
    tip.textContent = describe(el);
    tip.hidden = false;
    const box = el.getBoundingClientRect();
    const left = Math.min(box.right + 8, window.innerWidth - tip.offsetWidth - 8);
    const top = Math.min(box.top, window.innerHeight - tip.offsetHeight - 8);
    tip.style.left = `${Math.max(8, left)}px`;
    tip.style.top = `${Math.max(8, top)}px`;
  }
  const hideTip = () => {
    tip.hidden = true;
  };
  wrap.addEventListener("mouseover", showTip);
  wrap.addEventListener("focusin", showTip);
  wrap.addEventListener("mouseleave", hideTip);
  wrap.addEventListener("focusout", hideTip);
  wrap.addEventListener("scroll", hideTip);

  wrap.addEventListener("keydown", (event) => {
    const el = /** @type {HTMLElement} */ (event.target);
    const run = el.dataset.run;
    const task = el.dataset.task;
    if (!run || !task) return;
    const r = runs.findIndex((x) => x.run_id === run);
    const t = tasks.findIndex((x) => x.task_id === task);
    /** @type {Record<string, [number, number]>} */
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const move = moves[event.key];
    if (!move) return;
    const nr = runs[Math.max(0, Math.min(runs.length - 1, r + move[0]))];
    const nt = tasks[Math.max(0, Math.min(tasks.length - 1, t + move[1]))];
    const next = cells.get(nr.run_id)?.get(nt.task_id)?.el;
    if (!next) return;
    event.preventDefault();
    el.tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
  });

  /** @param {any} ti */
  function onTaskInstance(ti) {
    const entry = cells.get(ti.run_id)?.get(ti.task_id);
    if (!entry) {
      reload();
      return;
    }
    const cell = entry.cell ?? { state: null, try_number: 0, map_count: 1, queued_at: null, start_date: null, end_date: null };
    Object.assign(cell, {
      state: ti.state,
      try_number: ti.try_number,
      queued_at: ti.queued_at,
      start_date: ti.start_date,
      end_date: ti.end_date,
    });
    entry.cell = cell;
    entry.el.className = `cell ${stateClass(ti.state)}`;
    entry.el.style.opacity = "";
    entry.el.setAttribute("aria-label", `${ti.task_id} in ${ti.run_id}: ${ti.state ?? "no status"}`);
  }

  /** @param {any} run */
  function onRun(run) {
    const known = runs.find((r) => r.run_id === run.run_id);
    const bar = runBars.get(run.run_id);
    if (!known || !bar) {
      reload();
      return;
    }
    Object.assign(known, run);
    bar.className = `runbar ${stateClass(run.state)}`;
    bar.setAttribute("aria-label", `run ${run.run_id}: ${run.state}`);
  }

  /** A new run or task: read the grid again, once for a burst of events. */
  function reload() {
    clearTimeout(reloadTimer);
    reloadTimer = window.setTimeout(() => load().catch(report), 300);
  }

  let opened = false;
  const events = stream(() => `/ui/events${query({ dag_id: dagId })}`, {
    onOpen: () => {
      if (opened) reload();
      opened = true;
    },
    onEvent: (name, data) => {
      if (name === "task_instance") onTaskInstance(data);
      else if (name === "dag_run") onRun(data);
      else if (name === "resync") reload();
    },
    onStatus: (on) => live.classList.toggle("on", on),
  });
  load().catch(report);

  return {
    unmount() {
      events.close();
      controller.abort();
      clearTimeout(reloadTimer);
      tip.remove();
    },
  };
}
