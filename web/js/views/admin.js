// @ts-check
// Administration: workers, pools, variables, connections (secrets masked by the server), users and API keys.
// Sections and edit forms appear for the roles the server allows them to.

import { ApiError, ROLES, api, can, me, report, seg } from "../api.js";
import { busy, confirmAction, empty, fill, h, time } from "../dom.js";

/**
 * @typedef {{name: string, label: string, type?: string, options?: string[], help?: string, required?: boolean}} Field
 * @typedef {{label: string, role: string, load: (box: HTMLElement, signal: AbortSignal) => Promise<void>}} Section
 */

/** @type {Record<string, Section>} */
const SECTIONS = {
  workers: { label: "Workers", role: "Viewer", load: workers },
  pools: { label: "Pools", role: "Viewer", load: pools },
  variables: { label: "Variables", role: "Op", load: variables },
  connections: { label: "Connections", role: "Op", load: connections },
  users: { label: "Users", role: "Admin", load: users },
  "api-keys": { label: "API keys", role: "Viewer", load: apiKeys },
};

/** @param {HTMLElement} root @param {Record<string, string>} params */
export function mount(root, params) {
  const controller = new AbortController();
  const name = SECTIONS[params.section] && can(SECTIONS[params.section].role) ? params.section : "workers";
  const box = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  root.append(
    h("h1", { text: "Admin" }),
    h(
      "nav",
      { class: "tabs", "aria-label": "Admin sections" },
      Object.entries(SECTIONS)
        .filter(([, s]) => can(s.role))
        .map(([key, s]) => h("a", { href: `#/admin/${key}`, text: s.label, "aria-current": key === name ? "page" : null })),
    ),
    box,
  );
  reloadSection = () => SECTIONS[name].load(box, controller.signal).catch(report);
  reloadSection();
  return {
    unmount() {
      controller.abort();
      reloadSection = () => {};
      newKey = null;
    },
  };
}

/** Reads the shown section again, after a change. */
let reloadSection = () => {};
/** A key just created, shown once above the list. @type {string | null} */
let newKey = null;
const changed = () => reloadSection();

/**
 * A table with a header row.
 * @param {string[]} heads
 * @param {HTMLElement[]} rows
 * @param {string} cls
 */
function table(heads, rows, cls) {
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { class: cls }, h("thead", {}, h("tr", {}, heads.map((t) => h("th", { text: t })))), h("tbody", {}, rows)),
  );
}

/**
 * An edit form: its fields, a submit button, and the server's error under the field it names (or under the form).
 * @param {string} title
 * @param {Field[]} fields
 * @param {Record<string, any>} initial
 * @param {(values: Record<string, string | boolean>) => Promise<unknown>} save
 */
function editor(title, fields, initial, save) {
  const formError = h("p", { class: "form-error", role: "alert" });
  /** @type {Map<string, {input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, error: HTMLElement}>} */
  const inputs = new Map();
  const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  const rows = fields.map((f) => {
    const id = `${slug}-${f.name}`;
    const error = h("p", { class: "error", id: `${id}-error` });
    /** @type {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} */
    const input = f.options
      ? /** @type {HTMLSelectElement} */ (h("select", { id, name: f.name }, f.options.map((o) => h("option", { value: o, text: o, selected: initial[f.name] === o }))))
      : f.type === "textarea"
        ? /** @type {HTMLTextAreaElement} */ (h("textarea", { id, name: f.name, rows: 3 }))
        : /** @type {HTMLInputElement} */ (h("input", { id, name: f.name, type: f.type ?? "text", required: f.required, autocomplete: "off" }));
    if (!f.options) input.value = initial[f.name] === undefined || initial[f.name] === null ? "" : String(initial[f.name]);
    input.setAttribute("aria-describedby", `${id}-error`);
    inputs.set(f.name, { input, error });
    return h("div", { class: "field" }, h("label", { for: id, text: f.label }), input, f.help ? h("span", { class: "help", text: f.help }) : null, error);
  });
  const submit = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", class: "primary", text: "Save" }));
  const form = h("form", { class: "card", "aria-label": title }, h("h2", { text: title }), rows, h("div", { class: "actions" }, submit), formError);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    formError.textContent = "";
    for (const { input, error } of inputs.values()) {
      error.textContent = "";
      input.removeAttribute("aria-invalid");
    }
    /** @type {Record<string, string>} */
    const values = {};
    for (const [k, { input }] of inputs) values[k] = input.value;
    busy(submit, async () => {
      await save(values);
      changed();
    }, (error) => {
      const detail = error instanceof ApiError ? error.detail : String(error);
      const named = [...inputs.entries()].find(([k]) => new RegExp(`\\b${k}\\b`).test(detail));
      if (named) {
        named[1].error.textContent = detail;
        named[1].input.setAttribute("aria-invalid", "true");
      } else formError.textContent = detail;
    });
  });
  return form;
}

/**
 * A button that asks, calls, and reloads the section.
 * @param {string} label @param {string} question @param {() => Promise<unknown>} fn
 */
function danger(label, question, fn) {
  const b = /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: "danger", text: label }));
  b.addEventListener("click", () => {
    if (!confirmAction(question)) return;
    busy(b, async () => {
      await fn();
      changed();
    }, report);
  });
  return b;
}

/**
 * A button that opens an edit form below the table.
 * @param {HTMLElement} slot @param {string} label @param {() => HTMLElement} make
 */
function opener(slot, label, make) {
  const b = h("button", { type: "button", text: label });
  b.addEventListener("click", () => {
    const form = make();
    fill(slot, form);
    /** @type {HTMLElement | null} */ (form.querySelector("input, select, textarea"))?.focus();
  });
  return b;
}

/** @param {HTMLElement} box @param {AbortSignal} signal */
async function workers(box, signal) {
  const answer = await api("/ui/workers", { signal });
  /** @type {any[]} */
  const list = answer.workers;
  fill(
    box,
    list.length
      ? table(
          ["Worker", "Host", "Queues", "Slots used / free", "Token", "Last heartbeat", "State"],
          list.map((w) =>
            h(
              "tr",
              {},
              h("td", { class: "mono", text: w.name }),
              h("td", { text: w.hostname ?? "—" }),
              h("td", { text: (w.queues ?? []).join(", ") }),
              h("td", { text: `${w.slots_used} / ${Math.max(0, w.slots - w.slots_used)}` }),
              h("td", { class: "mono", text: w.token_name ?? "shared" }),
              h("td", {}, time(w.last_heartbeat)),
              h("td", {}, h("span", { class: `badge ${w.state === "active" ? "st-success" : "st-removed"}`, text: w.state })),
            ),
          ),
          "workers",
        )
      : empty("No worker has connected: start one with `sluice worker --server URL`."),
  );
}

/** @param {HTMLElement} box @param {AbortSignal} signal */
async function pools(box, signal) {
  const answer = await api("/pools?limit=1000", { signal });
  const slot = h("div");
  const mayEdit = can("Op");
  const poolFields = [
    { name: "name", label: "Name", required: true },
    { name: "slots", label: "Slots", type: "number", help: "-1 for unlimited", required: true },
    { name: "description", label: "Description" },
  ];
  fill(
    box,
    table(
      ["Pool", "Slots", "Running", "Queued", "Open", "Description", ""],
      answer.pools.map((/** @type {any} */ p) =>
        h(
          "tr",
          {},
          h("td", { class: "mono", text: p.name }),
          h("td", { text: p.slots }),
          h("td", { text: p.running_slots }),
          h("td", { text: p.queued_slots }),
          h("td", { text: p.open_slots }),
          h("td", { text: p.description ?? "" }),
          h(
            "td",
            {},
            mayEdit
              ? [
                  opener(slot, "Edit", () =>
                    editor(`Edit pool ${p.name}`, poolFields.slice(1), p, (v) =>
                      api(`/pools/${seg(p.name)}`, { method: "PATCH", body: { slots: Number(v.slots), description: v.description || null } }),
                    ),
                  ),
                  p.name === "default_pool" ? null : [" ", danger("Delete", `Delete the pool ${p.name}?`, () => api(`/pools/${seg(p.name)}`, { method: "DELETE" }))],
                ]
              : null,
          ),
        ),
      ),
      "pools",
    ),
    mayEdit
      ? h(
          "div",
          { class: "actions" },
          opener(slot, "New pool", () =>
            editor("New pool", poolFields, { slots: 8 }, (v) =>
              api("/pools", { method: "POST", body: { name: v.name, slots: Number(v.slots), description: v.description || null } }),
            ),
          ),
        )
      : null,
    slot,
  );
}

/** @param {HTMLElement} box @param {AbortSignal} signal */
async function variables(box, signal) {
  const answer = await api("/variables?limit=1000", { signal });
  const slot = h("div");
  const fields = [
    { name: "key", label: "Key", required: true },
    { name: "value", label: "Value", type: "textarea" },
    { name: "description", label: "Description" },
  ];
  /** @param {Record<string, any>} v */
  const body = (v) => ({ key: v.key, value: v.value, description: v.description || null });
  fill(
    box,
    answer.variables.length
      ? table(
          ["Key", "Value", "Description", ""],
          answer.variables.map((/** @type {any} */ v) =>
            h(
              "tr",
              {},
              h("td", { class: "mono", text: v.key }),
              h("td", { class: "mono", text: v.value.length > 80 ? `${v.value.slice(0, 80)}…` : v.value }),
              h("td", { text: v.description ?? "" }),
              h(
                "td",
                {},
                opener(slot, "Edit", () => editor(`Edit variable ${v.key}`, fields, v, (x) => api(`/variables/${seg(v.key)}`, { method: "PATCH", body: body(x) }))),
                " ",
                danger("Delete", `Delete the variable ${v.key}?`, () => api(`/variables/${seg(v.key)}`, { method: "DELETE" })),
              ),
            ),
          ),
          "variables",
        )
      : empty("No variables yet: tasks read them as {{ var.value.KEY }}; add one below."),
    h("div", { class: "actions" }, opener(slot, "New variable", () => editor("New variable", fields, {}, (x) => api("/variables", { method: "POST", body: body(x) })))),
    slot,
  );
}

/** @param {HTMLElement} box @param {AbortSignal} signal */
async function connections(box, signal) {
  const answer = await api("/connections?limit=1000", { signal });
  const slot = h("div");
  const fields = [
    { name: "connection_id", label: "Connection id", required: true },
    { name: "conn_type", label: "Type", required: true, help: "postgres, http, s3, …" },
    { name: "host", label: "Host" },
    { name: "port", label: "Port", type: "number" },
    { name: "schema", label: "Schema" },
    { name: "login", label: "Login" },
    { name: "password", label: "Password", type: "password", help: "*** keeps the stored password" },
    { name: "extra", label: "Extra (JSON)", type: "textarea" },
    { name: "description", label: "Description" },
  ];
  /** @param {Record<string, any>} v */
  const body = (v) => ({
    connection_id: v.connection_id,
    conn_type: v.conn_type,
    host: v.host || null,
    port: v.port ? Number(v.port) : null,
    schema: v.schema || null,
    login: v.login || null,
    password: v.password || null,
    extra: v.extra || null,
    description: v.description || null,
  });
  fill(
    box,
    answer.connections.length
      ? table(
          ["Connection", "Type", "Host", "Login", "Password", "Extra", ""],
          answer.connections.map((/** @type {any} */ c) =>
            h(
              "tr",
              {},
              h("td", { class: "mono", text: c.connection_id }),
              h("td", { text: c.conn_type }),
              h("td", { text: [c.host, c.port].filter(Boolean).join(":") || "—" }),
              h("td", { text: c.login ?? "—" }),
              h("td", { class: "mono", text: c.password ? "***" : "—" }),
              h("td", { class: "mono", text: c.extra ?? "" }),
              h(
                "td",
                {},
                opener(slot, "Edit", () =>
                  editor(`Edit connection ${c.connection_id}`, fields, c, (x) => api(`/connections/${seg(c.connection_id)}`, { method: "PATCH", body: body(x) })),
                ),
                " ",
                danger("Delete", `Delete the connection ${c.connection_id}?`, () => api(`/connections/${seg(c.connection_id)}`, { method: "DELETE" })),
              ),
            ),
          ),
          "connections",
        )
      : empty("No connections yet: tasks reach databases and services through them; add one below."),
    h("div", { class: "actions" }, opener(slot, "New connection", () => editor("New connection", fields, {}, (x) => api("/connections", { method: "POST", body: body(x) })))),
    slot,
  );
}

/** @param {HTMLElement} box @param {AbortSignal} signal */
async function users(box, signal) {
  const answer = await api("/auth/users", { signal });
  const slot = h("div");
  const self = me()?.username;
  fill(
    box,
    table(
      ["User", "Role", "Created", ""],
      answer.users.map((/** @type {any} */ u) =>
        h(
          "tr",
          {},
          h("td", { text: u.username }),
          h("td", { text: u.role }),
          h("td", {}, time(u.created)),
          h(
            "td",
            {},
            // The server refuses both for oneself, so that an Admin is always left.
            u.username === self
              ? null
              : [
                  opener(slot, "Change role", () =>
                    editor(`Role of ${u.username}`, [{ name: "role", label: "Role", options: ROLES }], u, (v) =>
                      api(`/auth/users/${seg(u.username)}`, { method: "PATCH", body: { role: v.role } }),
                    ),
                  ),
                  " ",
                  danger("Delete", `Delete the user ${u.username}?`, () => api(`/auth/users/${seg(u.username)}`, { method: "DELETE" })),
                ],
          ),
        ),
      ),
      "users",
    ),
    h(
      "div",
      { class: "actions" },
      opener(slot, "New user", () =>
        editor(
          "New user",
          [
            { name: "username", label: "Username", required: true },
            { name: "role", label: "Role", options: ROLES },
            { name: "password", label: "Password", type: "password", required: true },
          ],
          { role: "Viewer" },
          (v) => api("/auth/users", { method: "POST", body: { username: v.username, role: v.role, password: v.password } }),
        ),
      ),
    ),
    slot,
  );
}

/** @param {HTMLElement} box @param {AbortSignal} signal */
async function apiKeys(box, signal) {
  // Admin may create keys for others, so is offered every user as the owner.
  const [answer, people] = await Promise.all([
    api("/auth/api-keys", { signal }),
    can("Admin") ? api("/auth/users", { signal }) : null,
  ]);
  const self = me()?.username ?? "";
  /** @type {Field[]} */
  const owner = people ? [{ name: "username", label: "Owner", options: people.users.map((/** @type {any} */ u) => u.username) }] : [];
  const slot = h("div");
  const secret = h("div", { role: "status" });
  if (newKey) fill(secret, h("div", { class: "card" }, h("p", { text: "The new key, shown once: copy it now." }), h("pre", { class: "code api-key", text: newKey })));
  // The server keeps only the key's hash: once shown, it is gone from the dashboard too.
  newKey = null;
  fill(
    box,
    secret,
    answer.api_keys.length
      ? table(
          ["Name", "Owner", "Role", "Created", "Last used", "Revoked", ""],
          answer.api_keys.map((/** @type {any} */ k) =>
            h(
              "tr",
              {},
              h("td", { text: k.name }),
              h("td", { text: k.username }),
              h("td", { text: k.role }),
              h("td", {}, time(k.created)),
              h("td", {}, time(k.last_used)),
              h("td", {}, time(k.revoked)),
              h("td", {}, k.revoked ? null : danger("Revoke", `Revoke the key ${k.name}? Scripts using it stop working.`, () => api(`/auth/api-keys/${seg(k.id)}`, { method: "DELETE" }))),
            ),
          ),
          "api-keys",
        )
      : empty("No API keys: scripts and CI authenticate with one as `Authorization: Bearer KEY`."),
    h(
      "div",
      { class: "actions" },
      opener(slot, "New API key", () =>
        editor(
          "New API key",
          [
            { name: "name", label: "Name", required: true },
            ...owner,
            { name: "role", label: "Role (at most the owner's)", options: ROLES.filter((r) => can(r)) },
          ],
          { role: me()?.role, username: self },
          async (v) => {
            const key = await api("/auth/api-keys", { method: "POST", body: { name: v.name, role: v.role, username: v.username ?? self } });
            newKey = key.key ?? null;
          },
        ),
      ),
    ),
    slot,
  );
}
