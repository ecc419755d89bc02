// @ts-check
// A task instance: every try with its times, exit code, rendered command and outputs; the log of the chosen try,
// paged in from the JSON endpoint and then streamed while the try runs, drawn as a window over the lines so that
// tens of thousands of them stay smooth; clear (with downstream or upstream) and mark.

import { api, can, query, report, seg, stream } from "../api.js";
import { confirmButton } from "../actions.js";
import { badge, duration, empty, enc, fill, h, time } from "../dom.js";

const LINE = 18;

/** @param {HTMLElement} root @param {Record<string, string>} params */
export function mount(root, params) {
  const { dag: dagId, run: runId, task: taskId } = params;
  const controller = new AbortController();
  const base = `/dags/${seg(dagId)}/dagRuns/${seg(runId)}/taskInstances/${seg(taskId)}`;
  const live = h("span", { class: "live", text: "live" });
  const summary = h("div", { class: "facts" });
  const actions = h("div", {});
  const triesBox = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  const tryDetail = h("div", {});
  const logBox = h("div", {});
  root.append(
    h(
      "p",
      {},
      h("a", { href: `#/dags/${enc(dagId)}/grid`, text: `← ${dagId}` }),
      " / ",
      h("a", { href: `#/dags/${enc(dagId)}/runs/${enc(runId)}`, text: runId }),
    ),
    h("div", { class: "toolbar" }, h("h1", { text: taskId }), h("span", { class: "grow" }), live),
    summary,
    actions,
    h("h2", { text: "Tries" }),
    triesBox,
    tryDetail,
    h("h2", { text: "Log" }),
    logBox,
  );

  /** A try chosen in the address stays shown; otherwise the latest, so a retry appears as it starts. */
  const pinned = params.try ? Number(params.try) : null;
  /** @type {number | null} */
  let shownTry = null;
  /** @type {ReturnType<typeof logView> | null} */
  let log = null;
  /** @type {any[]} */
  let tries = [];

  async function loadTi() {
    const ti = await api(base, { signal: controller.signal });
    fill(
      summary,
      h("span", {}, "State ", badge(ti.state)),
      h("span", {}, "Try ", h("b", { text: String(ti.try_number) })),
      h("span", {}, "Retries ", h("b", { text: String(ti.max_tries) })),
      h("span", {}, "Operator ", h("b", { class: "mono", text: ti.operator })),
      h("span", {}, "Pool ", h("b", { text: ti.pool })),
      h("span", {}, "Queue ", h("b", { text: ti.queue })),
      ti.hostname ? h("span", {}, "Host ", h("b", { text: ti.hostname })) : null,
    );
    return ti;
  }

  async function loadTries() {
    const answer = await api(`${base}/tries`, { signal: controller.signal });
    tries = answer.task_instances;
    if (!tries.length) {
      fill(triesBox, empty("No try yet: the task starts when its upstream tasks are done and a worker has a free slot."));
      fill(tryDetail);
      return;
    }
    shownTry = tries.some((t) => t.try_number === pinned) ? pinned : tries[tries.length - 1].try_number;
    fill(
      triesBox,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "tries" },
          h("thead", {}, h("tr", {}, ["Try", "State", "Started", "Ended", "Duration", "Exit code", "Host"].map((t) => h("th", { text: t })))),
          h(
            "tbody",
            {},
            tries.map((t) =>
              h(
                "tr",
                { "aria-current": t.try_number === shownTry ? "true" : null, style: t.try_number === shownTry ? { background: "#eef4fb" } : {} },
                h("td", {}, h("a", { href: `#/dags/${enc(dagId)}/runs/${enc(runId)}/tasks/${enc(taskId)}?try=${t.try_number}`, text: `#${t.try_number}` })),
                h("td", {}, badge(t.state)),
                h("td", {}, time(t.start_date)),
                h("td", {}, time(t.end_date)),
                h("td", { text: duration(t.duration) }),
                h("td", { class: "mono exit-code", text: t.exit_code ?? "—" }),
                h("td", { text: t.hostname ?? "—" }),
              ),
            ),
          ),
        ),
      ),
    );
    const chosen = tries.find((t) => t.try_number === shownTry);
    if (chosen) showTry(chosen);
  }

  /** @param {any} t */
  function showTry(t) {
    fill(
      tryDetail,
      h(
        "div",
        { class: "cols" },
        h(
          "div",
          { class: "card" },
          h("h3", { text: `Try #${t.try_number}: command` }),
          h("pre", { class: "code rendered", text: rendered(t.rendered_fields) }),
        ),
        h(
          "div",
          { class: "card" },
          h("h3", { text: "Outputs" }),
          t.output_uri
            ? h("p", { class: "muted", text: `Above 64 KiB, kept in the lake at ${t.output_uri}; the XCom API reads it back.` })
            : t.output === null || t.output === undefined
              ? h("p", { class: "muted", text: "No output: a task outputs JSON by printing ::output::{...} or writing to $SLUICE_OUTPUT." })
              : h("pre", { class: "code", text: JSON.stringify(t.output, null, 2) }),
          t.error ? [h("h3", { text: "Error" }), h("pre", { class: "code", text: t.error })] : null,
        ),
      ),
    );
    if (!log || log.tryNumber !== t.try_number) {
      log?.close();
      log = logView(t.try_number);
      fill(logBox, log.el);
    }
  }

  function drawActions() {
    if (!can("User")) return;
    const downstream = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", checked: true }));
    const upstream = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox" }));
    /** @param {string} label @param {string} question @param {() => Promise<unknown>} fn @param {string} [cls] */
    const button = (label, question, fn, cls = "") => confirmButton(label, question, fn, refresh, cls);
    const scope = () => ({ include_downstream: downstream.checked, include_upstream: upstream.checked });
    fill(
      actions,
      h(
        "div",
        { class: "actions" },
        button("Clear", `Clear ${taskId} so that it runs again?`, () =>
          api(`/dags/${seg(dagId)}/clearTaskInstances`, {
            method: "POST",
            body: { dry_run: false, only_failed: false, task_ids: [taskId], dag_run_id: runId, ...scope() },
          }),
        ),
        button("Mark success", `Mark ${taskId} success?`, () => api(base, { method: "PATCH", body: { new_state: "success", ...scope() } })),
        button("Mark failed", `Mark ${taskId} failed?`, () => api(base, { method: "PATCH", body: { new_state: "failed", ...scope() } }), "danger"),
        h("label", { class: "check" }, downstream, "with downstream"),
        h("label", { class: "check" }, upstream, "with upstream"),
      ),
    );
  }

  /** The log of one try: a virtual list over its lines. @param {number} tryNumber */
  function logView(tryNumber) {
    /** @type {{id: number, ts: string, stream: string, line: string}[]} */
    const lines = [];
    let follow = true;
    let closed = false;
    /** @type {number[]} */
    let hits = [];
    let hit = -1;
    /** @type {{close: () => void} | null} */
    let tail = null;
    const status = h("span", { class: "muted", "aria-live": "polite", text: "loading…" });
    const search = /** @type {HTMLInputElement} */ (h("input", { type: "search", placeholder: "Search the log", "aria-label": "Search the log" }));
    const found = h("span", { class: "muted" });
    const prev = h("button", { type: "button", text: "↑", "aria-label": "Previous match" });
    const next = h("button", { type: "button", text: "↓", "aria-label": "Next match" });
    const followButton = h("button", { type: "button", text: "Follow", title: "Scroll to the end and keep following" });
    const download = h("button", { type: "button", text: "Download" });
    const inner = h("div", { class: "lines" });
    const spacer = h("div", {});
    const box = h("div", { class: "log", tabindex: 0, role: "log", "aria-label": `Log of try ${tryNumber}` }, spacer, inner);
    const el = h("div", {}, h("div", { class: "log-tools" }, search, prev, next, found, h("span", { class: "grow" }), status, followButton, download), box);

    let frame = 0;
    function draw() {
      frame = 0;
      spacer.style.height = `${lines.length * LINE}px`;
      const first = Math.max(0, Math.floor(box.scrollTop / LINE) - 20);
      const last = Math.min(lines.length, first + Math.ceil(box.clientHeight / LINE) + 40);
      inner.style.top = `${first * LINE}px`;
      const hitSet = new Set(hits);
      const current = hits[hit];
      const rows = [];
      for (let i = first; i < last; i += 1) {
        const l = lines[i];
        const row = document.createElement("div");
        row.className = `line ${l.stream}${hitSet.has(i) ? " hit" : ""}${i === current ? " current" : ""}`;
        const ts = document.createElement("span");
        ts.className = "ts";
        ts.textContent = l.ts ? new Date(l.ts).toLocaleTimeString() : "";
        ts.title = l.ts ?? "";
        const text = document.createElement("span");
        text.textContent = l.line;
        row.append(ts, text);
        rows.push(row);
      }
      inner.replaceChildren(...rows);
      if (follow) box.scrollTop = box.scrollHeight;
    }
    const redraw = () => {
      if (!frame) frame = requestAnimationFrame(draw);
    };

    box.addEventListener("scroll", () => {
      follow = box.scrollTop + box.clientHeight >= box.scrollHeight - LINE;
      followButton.hidden = follow;
      redraw();
    });
    followButton.hidden = true;
    followButton.addEventListener("click", () => {
      follow = true;
      followButton.hidden = true;
      redraw();
    });

    function runSearch() {
      const q = search.value.toLowerCase();
      hits = [];
      if (q) lines.forEach((l, i) => l.line.toLowerCase().includes(q) && hits.push(i));
      hit = hits.length ? 0 : -1;
      found.textContent = q ? `${hits.length ? hit + 1 : 0} of ${hits.length}` : "";
      jump();
    }
    function jump() {
      if (hit >= 0) {
        follow = false;
        followButton.hidden = false;
        box.scrollTop = Math.max(0, hits[hit] * LINE - box.clientHeight / 2);
        found.textContent = `${hit + 1} of ${hits.length}`;
      }
      redraw();
    }
    /** @param {number} step */
    const move = (step) => {
      if (!hits.length) return;
      hit = (hit + step + hits.length) % hits.length;
      jump();
    };
    let searchTimer = 0;
    search.addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = window.setTimeout(runSearch, 150);
    });
    search.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        move(e.shiftKey ? -1 : 1);
      }
    });
    prev.addEventListener("click", () => move(-1));
    next.addEventListener("click", () => move(1));
    download.addEventListener("click", () => {
      const text = lines.map((l) => `${l.ts} ${l.stream} ${l.line}\n`).join("");
      const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
      const a = h("a", { href: url, download: `${dagId}.${runId}.${taskId}.${tryNumber}.log` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    });

    (async () => {
      // History first, a page at a time; then the stream from the last line read.
      let token = "";
      for (;;) {
        const page = await api(`${base}/logs/${tryNumber}${query({ token })}`, { signal: controller.signal });
        if (closed) return;
        for (const l of page.content) lines.push({ id: 0, ts: l.timestamp, stream: l.stream, line: l.event });
        status.textContent = `${lines.length} lines`;
        redraw();
        if (!page.content.length || !page.continuation_token || page.continuation_token === token) break;
        token = page.continuation_token;
      }
      if (closed) return;
      let after = token || "0";
      tail = stream(() => `/ui/logs/${seg(dagId)}/${seg(runId)}/${seg(taskId)}/${tryNumber}${query({ after })}`, {
        onEvent: (name, data) => {
          if (name === "line") {
            after = String(data.id);
            lines.push({ id: data.id, ts: data.ts, stream: data.stream, line: data.line });
            status.textContent = `${lines.length} lines · live`;
            if (search.value && data.line.toLowerCase().includes(search.value.toLowerCase())) hits.push(lines.length - 1);
            redraw();
          } else if (name === "end") {
            status.textContent = `${lines.length} lines · ${data.state ?? "finished"}`;
            tail?.close();
          }
        },
        onStatus: (on) => live.classList.toggle("on", on),
      });
    })().catch(report);

    return {
      el,
      tryNumber,
      close() {
        closed = true;
        tail?.close();
        if (frame) cancelAnimationFrame(frame);
      },
    };
  }

  const refresh = () => Promise.all([loadTi(), loadTries()]);
  let timer = 0;
  let opened = false;
  const events = stream(() => `/ui/events${query({ dag_id: dagId, run_id: runId })}`, {
    onOpen: () => {
      if (opened) refresh().catch(report);
      opened = true;
    },
    onEvent: (name, data) => {
      if (name !== "resync" && (name !== "task_instance" || data.task_id !== taskId)) return;
      clearTimeout(timer);
      timer = window.setTimeout(() => refresh().catch(report), 200);
    },
  });
  drawActions();
  refresh().catch(report);

  return {
    unmount() {
      events.close();
      log?.close();
      controller.abort();
      clearTimeout(timer);
    },
  };
}

/**
 * The rendered command as a person would type it: a shell script as itself, other argv quoted where needed, then
 * the environment the task set; anything else (data tasks) as JSON.
 * @param {any} fields
 */
export function rendered(fields) {
  const argv = fields?.argv;
  if (!Array.isArray(argv)) return JSON.stringify(fields ?? {}, null, 2);
  const quote = (/** @type {string} */ a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
  const command = argv.length === 3 && argv[1] === "-c" ? argv[2] : argv.map(quote).join(" ");
  const env = Object.entries(fields.env ?? {}).map(([k, v]) => `${k}=${v}`);
  return [...env, command, fields.cwd ? `(in ${fields.cwd})` : ""].filter(Boolean).join("\n");
}

