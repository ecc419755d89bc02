// @ts-check
// Backfills of a DAG: start one from a form (date range, rerun failed, max active runs), follow each with a
// progress bar kept live by the event stream, pause, resume or cancel it.

import { ApiError, api, can, query, report, seg, stream } from "../api.js";
import { busy, empty, fill, h, legend, stateClass, time } from "../dom.js";

/** @param {HTMLElement} root @param {Record<string, string>} params */
export function mount(root, params) {
  let dagId = params.dag ?? "";
  const controller = new AbortController();
  const dagBox = /** @type {HTMLInputElement} */ (
    h("input", { id: "backfill-dag", list: "backfill-dags", value: dagId, placeholder: "DAG id", autocomplete: "off" })
  );
  const dagList = h("datalist", { id: "backfill-dags" });
  const live = h("span", { class: "live", text: "live" });
  const formBox = h("div", {});
  const list = h("div", {});
  root.append(
    h("div", { class: "toolbar" }, h("h1", { text: "Backfills" }), h("span", { class: "grow" }), live),
    h("div", { class: "toolbar" }, h("label", { for: "backfill-dag", text: "DAG" }), dagBox, dagList),
    formBox,
    legend(),
    list,
  );
  /** @type {{close: () => void} | null} */
  let events = null;
  let timer = 0;

  async function loadDagIds() {
    const answer = await api(`/dags${query({ limit: 1000, order_by: "dag_id" })}`, { signal: controller.signal });
    fill(dagList, answer.dags.map((/** @type {any} */ d) => h("option", { value: d.dag_id })));
  }

  function choose() {
    dagId = dagBox.value.trim();
    history.replaceState(null, "", `#/backfills${query({ dag: dagId })}`);
    events?.close();
    events = null;
    drawForm();
    if (!dagId) {
      fill(list, empty("Choose a DAG to see its backfills, or to start one."));
      return;
    }
    fill(list, h("p", { class: "muted", text: "Loading…" }));
    load().catch(report);
    events = stream(() => `/ui/events${query({ dag_id: dagId })}`, {
      onEvent: (name) => {
        if (name !== "dag_run" && name !== "resync") return;
        clearTimeout(timer);
        timer = window.setTimeout(() => load().catch(report), 300);
      },
      onStatus: (on) => live.classList.toggle("on", on),
    });
  }

  function drawForm() {
    if (!dagId || !can("Op")) {
      fill(formBox);
      return;
    }
    const today = new Date().toISOString().slice(0, 10);
    const weekAgo = new Date(Date.now() - 6 * 86400000).toISOString().slice(0, 10);
    const from = /** @type {HTMLInputElement} */ (h("input", { id: "bf-from", type: "date", value: weekAgo, required: true }));
    const to = /** @type {HTMLInputElement} */ (h("input", { id: "bf-to", type: "date", value: today, required: true }));
    const rerun = /** @type {HTMLInputElement} */ (h("input", { id: "bf-rerun", type: "checkbox" }));
    const maxActive = /** @type {HTMLInputElement} */ (h("input", { id: "bf-max", type: "number", min: 1, value: 10 }));
    const error = h("p", { class: "form-error", role: "alert" });
    const preview = h("p", { class: "muted", "aria-live": "polite" });
    const start = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", class: "primary", text: "Start backfill" }));
    const dry = /** @type {HTMLButtonElement} */ (h("button", { type: "button", text: "Preview dates" }));
    const body = () => ({
      dag_id: dagId,
      from_date: `${from.value}T00:00:00Z`,
      to_date: `${to.value}T00:00:00Z`,
      reprocess_behavior: rerun.checked ? "failed" : "none",
      max_active_runs: Number(maxActive.value) || 10,
    });
    /** @param {unknown} e */
    const show = (e) => {
      error.textContent = e instanceof ApiError ? e.detail : String(e);
    };
    dry.addEventListener("click", () =>
      busy(dry, async () => {
        error.textContent = "";
        const answer = await api("/backfills/dry_run", { method: "POST", body: body() });
        preview.textContent = `${answer.total_entries} logical date${answer.total_entries === 1 ? "" : "s"} would run`;
      }, show),
    );
    const form = h(
      "form",
      { class: "card backfill-form", "aria-label": "Start a backfill" },
      h("h2", { text: `Start a backfill of ${dagId}` }),
      h(
        "div",
        { class: "toolbar" },
        h("label", {}, "From (logical date)", from),
        h("label", {}, "To (included)", to),
        h("label", {}, "Max active runs", maxActive),
        h("label", { class: "check" }, rerun, "Rerun failed runs"),
      ),
      h("div", { class: "actions" }, start, dry),
      preview,
      error,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(start, async () => {
        error.textContent = "";
        if (!from.value || !to.value) throw new Error("give both dates");
        await api("/backfills", { method: "POST", body: body() });
        preview.textContent = "";
        await load();
      }, show);
    });
    fill(formBox, form);
  }

  async function load() {
    const answer = await api(`/backfills${query({ dag_id: dagId, limit: 50 })}`, { signal: controller.signal });
    /** @type {any[]} */
    const backfills = answer.backfills.sort((/** @type {any} */ a, /** @type {any} */ b) => b.id - a.id);
    if (!backfills.length) {
      fill(list, empty(can("Op") ? "No backfill of this DAG yet: start one with the form above." : "No backfill of this DAG yet."));
      return;
    }
    const rows = await Promise.all(backfills.map(async (b) => ({ b, runs: await runsOf(b) })));
    fill(
      list,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "backfills" },
          h("thead", {}, h("tr", {}, ["#", "Range", "Progress", "Status", "Created", ""].map((t) => h("th", { text: t })))),
          h("tbody", {}, rows.map(({ b, runs }) => row(b, runs))),
        ),
      ),
    );
  }

  /** The runs of a backfill: the DAG's backfill runs in its range. @param {any} b */
  async function runsOf(b) {
    const answer = await api(
      `/dags/${seg(b.dag_id)}/dagRuns${query({ run_type: "backfill", logical_date_gte: b.from_date, logical_date_lte: b.to_date, limit: 1000 })}`,
      { signal: controller.signal },
    );
    return /** @type {any[]} */ (answer.dag_runs);
  }

  /** @param {any} b @param {any[]} runs */
  function row(b, runs) {
    /** @type {Record<string, number>} */
    const counts = {};
    for (const r of runs) counts[r.state] = (counts[r.state] ?? 0) + 1;
    const total = runs.length;
    const done = (counts.success ?? 0) + (counts.failed ?? 0);
    const bar = h(
      "div",
      {
        class: "progress",
        role: "progressbar",
        "aria-valuemin": 0,
        "aria-valuemax": total,
        "aria-valuenow": done,
        "aria-label": `${b.dag_id} backfill ${b.id}`,
        title: Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", "),
      },
      ["success", "failed", "running", "queued"].map((st) =>
        counts[st] ? h("span", { class: stateClass(st), style: { width: `${(100 * counts[st]) / total}%` } }) : null,
      ),
    );
    const status = b.completed_at ? "complete" : b.is_paused ? "paused" : "running";
    /** @param {string} label @param {string} action @param {string} [cls] */
    const act = (label, action, cls = "") => {
      const button = /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: cls, text: label }));
      button.addEventListener("click", () =>
        busy(button, async () => {
          await api(`/backfills/${b.id}/${action}`, { method: "PUT" });
          await load();
        }, report),
      );
      return button;
    };
    return h(
      "tr",
      { dataset: { backfill: String(b.id) } },
      h("td", { text: String(b.id) }),
      h("td", {}, time(b.from_date), " → ", time(b.to_date)),
      h("td", {}, bar, h("span", { class: "muted progress-text", text: `${done} of ${total} runs done` })),
      h("td", { class: "backfill-status", text: status }),
      h("td", {}, time(b.created_at)),
      h(
        "td",
        {},
        can("Op") && !b.completed_at
          ? [b.is_paused ? act("Resume", "unpause") : act("Pause", "pause"), " ", act("Cancel", "cancel", "danger")]
          : null,
      ),
    );
  }

  let typing = 0;
  // While typing, only a known DAG id is taken; Enter or leaving the field takes whatever was typed.
  dagBox.addEventListener("input", () => {
    clearTimeout(typing);
    const known = [...dagList.querySelectorAll("option")].some((o) => o.value === dagBox.value.trim());
    if (known) typing = window.setTimeout(choose, 200);
  });
  dagBox.addEventListener("change", () => {
    clearTimeout(typing);
    if (dagBox.value.trim() !== dagId) choose();
  });
  loadDagIds().catch(report);
  choose();

  return {
    unmount() {
      events?.close();
      controller.abort();
      clearTimeout(timer);
      clearTimeout(typing);
    },
  };
}
