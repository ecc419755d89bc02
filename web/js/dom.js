// @ts-check
// DOM helpers and the formatting every view shares: elements, states, times, durations, empty states.

/**
 * @typedef {string | number | Node | null | undefined | false} Child
 * @typedef {Child | ChildList} Children any nesting of children
 * @typedef {Array<Children>} ChildList
 * @typedef {Record<string, any>} Attrs
 */

/**
 * An element. Attributes: `class`, `text`, `on*` (listeners), `dataset`, `style` (object), booleans
 * (`hidden`, `disabled`, ...), the rest as attributes.
 * @param {string} tag
 * @param {Attrs} [attrs]
 * @param {...Children} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * An SVG element, attributes set as given.
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...Children} children
 * @returns {SVGElement}
 */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = String(v);
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

/** @param {HTMLElement} el @param {Attrs} attrs */
function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = String(v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else if (k === "value" && "value" in el) /** @type {HTMLInputElement} */ (el).value = String(v);
    else el.setAttribute(k, String(v));
  }
}

/** @param {Element} el @param {Children[]} children */
function append(el, children) {
  for (const child of /** @type {Child[]} */ (/** @type {unknown[]} */ (children).flat(Infinity))) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "object" ? child : String(child));
  }
}

/** Replaces an element's children. @param {Element} el @param {...Children} children */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** Every task and run state, in lifecycle order, with the label the legend shows. */
export const STATES = [
  ["none", "no status"],
  ["scheduled", "scheduled"],
  ["queued", "queued"],
  ["running", "running"],
  ["success", "success"],
  ["failed", "failed"],
  ["up_for_retry", "up for retry"],
  ["up_for_reschedule", "up for reschedule"],
  ["upstream_failed", "upstream failed"],
  ["skipped", "skipped"],
  ["removed", "removed"],
];

/** The CSS class of a state (`null` is a task instance the scheduler has not looked at). @param {string | null | undefined} state */
export const stateClass = (state) => `st-${state ?? "none"}`;

/** A state as a coloured badge. @param {string | null | undefined} state */
export function badge(state) {
  return h("span", { class: `badge ${stateClass(state)}`, text: (state ?? "no status").replace(/_/g, " ") });
}

/** The legend of state colours. */
export function legend() {
  return h(
    "ul",
    { class: "legend", "aria-label": "State colours" },
    STATES.map(([state, label]) => h("li", {}, h("span", { class: `sq ${stateClass(state)}` }), label)),
  );
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/**
 * A time in the browser's timezone, with UTC on hover; "—" when unknown.
 * @param {string | null | undefined} iso
 */
export function time(iso) {
  if (!iso) return h("span", { class: "muted", text: "—" });
  const d = new Date(iso);
  return h("time", { datetime: iso, title: `${d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "")} UTC`, text: dateTime.format(d) });
}

/** A time as text in the browser's timezone. @param {string | null | undefined} iso */
export const timeText = (iso) => (iso ? dateTime.format(new Date(iso)) : "—");

/** A human duration: "850 ms", "12 s", "3 min 4 s", "2 h 5 min", "3 d 4 h". @param {number | null | undefined} seconds */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  const hours = Math.floor(m / 60);
  if (hours < 24) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** Seconds between two times, up to now when the end is unknown. @param {string | null | undefined} start @param {string | null | undefined} end */
export function between(start, end) {
  if (!start) return null;
  const stop = end ? Date.parse(end) : Date.now();
  return Math.max(0, (stop - Date.parse(start)) / 1000);
}

/** An empty state that says what to do. @param {string} message @param {...Child} more */
export function empty(message, ...more) {
  return h("div", { class: "empty" }, h("p", { text: message }), ...more);
}

/** A link into the dashboard. @param {string} hash @param {...Child} children */
export function link(hash, ...children) {
  return h("a", { href: hash }, ...children);
}

/** A hash route segment, escaped. @param {string} s */
export const enc = (s) => encodeURIComponent(s);

/**
 * Runs `fn` and shows its error in `where` (or a toast) instead of losing it; the button is disabled meanwhile.
 * @param {HTMLButtonElement | null} button
 * @param {() => Promise<unknown>} fn
 * @param {(error: unknown) => void} onError
 */
export async function busy(button, fn, onError) {
  if (button) button.disabled = true;
  try {
    await fn();
  } catch (error) {
    onError(error);
  } finally {
    if (button) button.disabled = false;
  }
}

/**
 * Asks before doing something that cannot be undone; a native dialog keeps focus handling right.
 * @param {string} message
 */
export function confirmAction(message) {
  return window.confirm(message);
}
