// @ts-check
// The trigger form, generated from the DAG's `params`: one field per param (type, default, enum, bounds,
// description), a JSON editor for the rest of `conf`, and errors next to the field they are about — whether the
// browser or the server found them. The browser checks what a field's widget shows (type, bounds, choices); the
// server checks the whole JSON Schema (patterns, formats, nested objects) and its message is shown in place.

import { ApiError, api, report, seg } from "../../api.js";
import { enc, h } from "../../dom.js";

/**
 * @typedef {{type?: string | string[], enum?: unknown[], minimum?: number, maximum?: number, description?: string}} Schema
 * @typedef {{name: string, value: unknown, schema: Schema, description: string | null}} Param
 */

/**
 * The params of a DAG in one shape, whether the server sends Airflow's `{value, schema, description}` or the
 * DAG file's `{type, default, ...}`.
 * @param {Record<string, any> | null | undefined} params
 * @returns {Param[]}
 */
export function normalizeParams(params) {
  return Object.entries(params ?? {}).map(([name, p]) => {
    if (p && typeof p === "object" && "schema" in p) {
      return { name, value: p.value, schema: p.schema ?? {}, description: p.description ?? p.schema?.description ?? null };
    }
    if (p && typeof p === "object" && !Array.isArray(p)) {
      const { default: value, description, ...schema } = p;
      return { name, value, schema, description: description ?? null };
    }
    return { name, value: p, schema: {}, description: null };
  });
}

/** @param {Schema} schema */
function typeOf(schema) {
  const t = Array.isArray(schema.type) ? schema.type.find((x) => x !== "null") : schema.type;
  return t ?? "string";
}

/**
 * A field's value checked against its schema: the value to send, or the error to show.
 * @param {Schema} schema
 * @param {string | boolean} raw
 * @returns {{value: unknown} | {error: string}}
 */
export function check(schema, raw) {
  const type = typeOf(schema);
  // An empty field of a param that may be null sends null, as Airflow's trigger form does.
  if (Array.isArray(schema.type) && schema.type.includes("null") && raw === "") return { value: null };
  /** @type {unknown} */
  let value = raw;
  if (type === "boolean") value = Boolean(raw);
  else if (type === "integer" || type === "number") {
    const text = String(raw).trim();
    if (text === "") return { error: "a value is required" };
    const n = Number(text);
    if (!Number.isFinite(n)) return { error: `must be a number` };
    if (type === "integer" && !Number.isInteger(n)) return { error: "must be a whole number" };
    if (schema.minimum !== undefined && n < schema.minimum) return { error: `must be at least ${schema.minimum}` };
    if (schema.maximum !== undefined && n > schema.maximum) return { error: `must be at most ${schema.maximum}` };
    value = n;
  } else if (type === "array" || type === "object") {
    try {
      value = JSON.parse(String(raw));
    } catch (e) {
      return { error: `not valid JSON: ${e instanceof Error ? e.message : e}` };
    }
    if (type === "array" && !Array.isArray(value)) return { error: "must be a JSON array" };
    if (type === "object" && (value === null || typeof value !== "object" || Array.isArray(value))) {
      return { error: "must be a JSON object" };
    }
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    return { error: `must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(", ")}` };
  }
  return { value };
}

/** @param {HTMLElement} root @param {any} dag */
export function mount(root, dag) {
  const params = normalizeParams(dag.params);
  /** @type {Map<string, {input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, error: HTMLElement, param: Param}>} */
  const fields = new Map();
  const formError = h("p", { class: "form-error", role: "alert" });
  const submit = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", class: "primary", text: "Trigger run" }));

  const paramFields = params.map((param) => {
    const id = `param-${param.name}`;
    const type = typeOf(param.schema);
    const error = h("p", { class: "error", id: `${id}-error`, role: "alert" });
    /** @type {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} */
    let input;
    if (param.schema.enum) {
      input = /** @type {HTMLSelectElement} */ (
        h(
          "select",
          { id, name: param.name },
          param.schema.enum.map((e, i) =>
            h("option", { value: String(i), text: String(e), selected: JSON.stringify(e) === JSON.stringify(param.value) }),
          ),
        )
      );
    } else if (type === "boolean") {
      input = /** @type {HTMLInputElement} */ (h("input", { id, name: param.name, type: "checkbox", checked: Boolean(param.value) }));
    } else if (type === "array" || type === "object") {
      input = /** @type {HTMLTextAreaElement} */ (
        h("textarea", { id, name: param.name, rows: 4, spellcheck: "false" })
      );
      input.value = JSON.stringify(param.value ?? (type === "array" ? [] : {}), null, 2);
    } else {
      input = /** @type {HTMLInputElement} */ (
        h("input", {
          id,
          name: param.name,
          type: type === "integer" || type === "number" ? "text" : "text",
          inputmode: type === "integer" ? "numeric" : type === "number" ? "decimal" : null,
          value: param.value === undefined || param.value === null ? "" : String(param.value),
        })
      );
    }
    input.setAttribute("aria-describedby", `${id}-help ${id}-error`);
    fields.set(param.name, { input, error, param });
    const bounds = [
      param.schema.minimum !== undefined ? `min ${param.schema.minimum}` : null,
      param.schema.maximum !== undefined ? `max ${param.schema.maximum}` : null,
    ].filter(Boolean);
    const help = [param.description, `${type}${bounds.length ? ` (${bounds.join(", ")})` : ""}`].filter(Boolean).join(" · ");
    return h(
      "div",
      { class: "field", dataset: { param: param.name } },
      type === "boolean"
        ? h("label", { class: "check", for: id }, input, param.name)
        : [h("label", { for: id, text: param.name }), input],
      h("span", { class: "help", id: `${id}-help`, text: help }),
      error,
    );
  });

  const conf = /** @type {HTMLTextAreaElement} */ (
    h("textarea", { id: "conf", name: "conf", rows: 5, spellcheck: "false", "aria-describedby": "conf-help conf-error" })
  );
  conf.value = "{}";
  const confError = h("p", { class: "error", id: "conf-error", role: "alert" });
  const note = /** @type {HTMLInputElement} */ (h("input", { id: "note", name: "note", placeholder: "why this run (optional)" }));

  const form = h(
    "form",
    { class: "card trigger-form", novalidate: true, "aria-label": `Trigger ${dag.dag_id}` },
    h("h2", { text: `Trigger ${dag.dag_id}` }),
    params.length ? paramFields : h("p", { class: "muted", text: "This DAG has no params; add conf below if its tasks read any." }),
    h(
      "div",
      { class: "field" },
      h("label", { for: "conf", text: "More conf (JSON object)" }),
      conf,
      h("span", { class: "help", id: "conf-help", text: "Merged with the params above; the params win." }),
      confError,
    ),
    h("div", { class: "field" }, h("label", { for: "note", text: "Note" }), note),
    h("div", { class: "actions" }, submit, h("a", { class: "button", href: `#/dags/${enc(dag.dag_id)}/grid`, text: "Cancel" })),
    formError,
  );
  root.append(form);

  /** @param {HTMLElement} error @param {Element} input @param {string} message */
  function setError(error, input, message) {
    error.textContent = message;
    input.setAttribute("aria-invalid", message ? "true" : "false");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    /** @type {Record<string, unknown>} */
    const values = {};
    /** @type {HTMLElement | null} */
    let firstBad = null;
    for (const { input, error, param } of fields.values()) {
      let raw;
      if (param.schema.enum) raw = JSON.stringify(param.schema.enum[Number(input.value)]);
      else if (input instanceof HTMLInputElement && input.type === "checkbox") raw = input.checked;
      else raw = input.value;
      const result = param.schema.enum ? { value: param.schema.enum[Number(input.value)] } : check(param.schema, raw);
      if ("error" in result) {
        setError(error, input, `${param.name} ${result.error}`);
        firstBad ??= input;
      } else {
        setError(error, input, "");
        values[param.name] = result.value;
      }
    }
    /** @type {Record<string, unknown>} */
    let extra = {};
    try {
      const parsed = JSON.parse(conf.value.trim() || "{}");
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("must be a JSON object");
      extra = parsed;
      setError(confError, conf, "");
    } catch (e) {
      setError(confError, conf, `conf ${e instanceof Error ? e.message : e}`);
      firstBad ??= conf;
    }
    if (firstBad) {
      firstBad.focus();
      return;
    }
    submit.disabled = true;
    try {
      await api(`/dags/${seg(dag.dag_id)}/dagRuns`, {
        method: "POST",
        body: { conf: { ...extra, ...values }, note: note.value || null, logical_date: null },
      });
      location.hash = `#/dags/${enc(dag.dag_id)}/grid`;
    } catch (error) {
      if (!(error instanceof ApiError)) {
        report(error);
        return;
      }
      // The server names the param it refused: show its message next to that field.
      const named = [...fields.values()].find(({ param }) => new RegExp(`\\b${escapeRegExp(param.name)}\\b`).test(error.detail));
      if (named) {
        setError(named.error, named.input, error.detail);
        named.input.focus();
      } else formError.textContent = error.detail;
    } finally {
      submit.disabled = false;
    }
  });

  const first = form.querySelector("input, select, textarea");
  if (first instanceof HTMLElement) first.focus();
  return { unmount() {} };
}

/** @param {string} s */
const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

