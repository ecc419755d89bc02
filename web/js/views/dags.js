// @ts-check
// The DAGs: search by id and tag, filter, page through thousands; the last runs as squares kept live by the event
// stream; pause and trigger for those allowed; the import errors of broken DAG files.

import { pauseSwitch } from "../actions.js";
import { api, can, query, report, stream } from "../api.js";
import { empty, enc, fill, h, legend, stateClass, time, timeText } from "../dom.js";

const PAGE = 50;
const RUNS = 10;

/**
 * @typedef {{run_id: string, state: string, logical_date: string | null, run_after: string | null, start_date: string | null, end_date: string | null}} RunSummary
 * @typedef {{dag_id: string, description: string | null, owners: string[], tags: string[], timetable_summary: string | null, next_dagrun_logical_date: string | null, is_paused: boolean, latest_dag_runs: RunSummary[]}} DagRow
 */

/** `tag:x` words of a search become tag filters, the rest matches DAG ids. @param {string} text */
export function parseSearch(text) {
  const tags = [];
  const words = [];
  for (const word of text.trim().split(/\s+/).filter(Boolean)) {
    if (word.startsWith("tag:") && word.length > 4) tags.push(word.slice(4));
    else words.push(word);
  }
  return { pattern: words.join(" "), tags };
}

/** @param {HTMLElement} root @param {Record<string, string>} params */
export function mount(root, params) {
  let search = params.q ?? "";
  let filter = params.filter ?? "all";
  let page = Math.max(0, Number(params.page ?? 0) || 0);
  /** @type {Map<string, {row: DagRow, squares: HTMLElement}>} */
  const shown = new Map();
  let request = 0;
  const controller = new AbortController();

  const searchBox = /** @type {HTMLInputElement} */ (
    h("input", { type: "search", placeholder: "Search DAG id, or tag:name", "aria-label": "Search DAGs", value: search })
  );
  const filterBox = /** @type {HTMLSelectElement} */ (
    h(
      "select",
      { "aria-label": "Show" },
      ["all", "active", "paused", "failing"].map((f) => h("option", { value: f, text: f, selected: f === filter })),
    )
  );
  const count = h("span", { class: "muted", "aria-live": "polite" });
  const banner = h("div", { class: "banner", hidden: true });
  const body = h("div");
  const pager = h("div", { class: "pager" });
  const live = h("span", { class: "live", text: "live" });

  root.append(
    h("div", { class: "toolbar" }, h("h1", { text: "DAGs" }), h("span", { class: "grow" }), live),
    banner,
    h("div", { class: "toolbar" }, searchBox, filterBox, count),
    legend(),
    body,
    pager,
  );

  function remember() {
    const q = query({ q: search, filter: filter === "all" ? "" : filter, page: page || "" });
    history.replaceState(null, "", `#/dags${q}`);
  }

  async function load() {
    const mine = ++request;
    const { pattern, tags } = parseSearch(search);
    const answer = await api(
      `/ui/dags${query({ limit: PAGE, offset: page * PAGE, dag_id_pattern: pattern, tags, filter, runs: RUNS })}`,
      { signal: controller.signal },
    );
    if (mine !== request) return;
    render(answer.dags, answer.total_entries);
  }

  /** @param {DagRow[]} dags @param {number} total */
  function render(dags, total) {
    shown.clear();
    count.textContent = `${total} DAG${total === 1 ? "" : "s"}`;
    if (dags.length === 0) {
      fill(
        body,
        total === 0 && !search && filter === "all"
          ? empty("No DAGs yet: put a YAML file in the DAGs folder (dags/) and it appears here within seconds.")
          : empty("No DAG matches: clear the search or choose another filter."),
      );
      fill(pager);
      return;
    }
    const rows = dags.map(row);
    fill(
      body,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "dags" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { text: "DAG" }),
              h("th", { class: "hide-narrow", text: "Owner" }),
              h("th", { class: "hide-narrow", text: "Tags" }),
              h("th", { text: "Schedule" }),
              h("th", { class: "hide-narrow", text: "Next run" }),
              h("th", { text: "Last runs" }),
              h("th", { text: "Active" }),
              h("th", { text: "" }),
            ),
          ),
          h("tbody", {}, rows),
        ),
      ),
    );
    const pages = Math.ceil(total / PAGE);
    const prev = h("button", { type: "button", text: "← Previous", disabled: page === 0 });
    const next = h("button", { type: "button", text: "Next →", disabled: page + 1 >= pages });
    prev.addEventListener("click", () => go(page - 1));
    next.addEventListener("click", () => go(page + 1));
    fill(pager, prev, h("span", { class: "muted", text: `page ${page + 1} of ${pages}` }), next);
  }

  /** @param {number} p */
  function go(p) {
    page = p;
    remember();
    load().catch(report);
  }

  /** @param {DagRow} dag */
  function row(dag) {
    const squares = h("div", { class: "runs-squares" });
    drawSquares(squares, dag);
    shown.set(dag.dag_id, { row: dag, squares });
    const mayEdit = can("User");
    const toggle = pauseSwitch(dag, `${dag.dag_id} active`);
    return h(
      "tr",
      { dataset: { dag: dag.dag_id } },
      h(
        "td",
        {},
        h("a", { href: `#/dags/${enc(dag.dag_id)}/grid`, class: "dag-link", text: dag.dag_id }),
        dag.description ? h("div", { class: "muted hide-narrow", text: dag.description }) : null,
      ),
      h("td", { class: "hide-narrow", text: dag.owners.join(", ") }),
      h(
        "td",
        { class: "hide-narrow" },
        h(
          "div",
          { class: "tags" },
          dag.tags.map((t) => {
            const b = h("button", { type: "button", class: "tag", text: t, title: `Show DAGs tagged ${t}` });
            b.addEventListener("click", () => addTag(t));
            return b;
          }),
        ),
      ),
      h("td", { class: "mono", text: dag.timetable_summary ?? "manual" }),
      h("td", { class: "hide-narrow" }, time(dag.next_dagrun_logical_date)),
      h("td", {}, squares),
      h("td", {}, toggle),
      h(
        "td",
        {},
        mayEdit
          ? h("a", {
              class: "button trigger",
              href: `#/dags/${enc(dag.dag_id)}/trigger`,
              text: "Trigger",
              "aria-label": `Trigger ${dag.dag_id}`,
            })
          : null,
      ),
    );
  }

  /** @param {HTMLElement} squares @param {DagRow} dag */
  function drawSquares(squares, dag) {
    fill(
      squares,
      dag.latest_dag_runs.length === 0
        ? h("span", { class: "muted", text: "no runs" })
        : [...dag.latest_dag_runs].reverse().map((r) =>
            h("a", {
              class: stateClass(r.state),
              href: `#/dags/${enc(dag.dag_id)}/runs/${enc(r.run_id)}`,
              title: `${r.run_id}\n${r.state} · ${timeText(r.logical_date ?? r.run_after)}`,
              "aria-label": `run ${r.run_id}: ${r.state}`,
            }),
          ),
    );
  }

  /** @param {string} tag */
  function addTag(tag) {
    if (!parseSearch(search).tags.includes(tag)) search = `${search} tag:${tag}`.trim();
    searchBox.value = search;
    go(0);
  }

  async function loadImportErrors() {
    const answer = await api("/importErrors?limit=100", { signal: controller.signal });
    banner.hidden = answer.total_entries === 0;
    if (answer.total_entries === 0) return;
    fill(
      banner,
      h(
        "details",
        {},
        h(
          "summary",
          { text: `${answer.total_entries} DAG file${answer.total_entries === 1 ? " has" : "s have"} import errors` },
        ),
        answer.import_errors.map((/** @type {any} */ e) =>
          h(
            "div",
            { class: "import-error" },
            h("b", { class: "mono", text: e.filename }),
            " ",
            time(e.timestamp),
            h("pre", { text: e.stack_trace }),
          ),
        ),
      ),
    );
  }

  /** @param {any} run */
  function onRun(run) {
    const entry = shown.get(run.dag_id);
    if (!entry) return;
    const runs = entry.row.latest_dag_runs;
    const known = runs.find((r) => r.run_id === run.run_id);
    if (known) Object.assign(known, run);
    else {
      runs.unshift(run);
      runs.sort((a, b) => String(b.run_after ?? b.logical_date).localeCompare(String(a.run_after ?? a.logical_date)));
      runs.length = Math.min(runs.length, RUNS);
    }
    drawSquares(entry.squares, entry.row);
  }

  let timer = 0;
  searchBox.addEventListener("input", () => {
    clearTimeout(timer);
    timer = window.setTimeout(() => {
      search = searchBox.value;
      go(0);
    }, 200);
  });
  filterBox.addEventListener("change", () => {
    filter = filterBox.value;
    go(0);
  });

  fill(body, h("p", { class: "muted", text: "Loading…" }));
  load().catch(report);
  loadImportErrors().catch(report);
  let opened = false;
  const events = stream(() => "/ui/events", {
    // After a reconnection, what changed meanwhile was not streamed: read the page again.
    onOpen: () => {
      if (opened) load().catch(report);
      opened = true;
    },
    onEvent: (name, data) => {
      if (name === "dag_run") onRun(data);
      else if (name === "resync") load().catch(report);
    },
    onStatus: (on) => live.classList.toggle("on", on),
  });
  const errorsTimer = window.setInterval(() => loadImportErrors().catch(report), 30000);

  return {
    unmount() {
      events.close();
      controller.abort();
      clearTimeout(timer);
      clearInterval(errorsTimer);
    },
  };
}
