// @ts-check
// Controls that change something on the server, shared by several views: the pause switch of a DAG and buttons
// that ask before they act.

import { api, can, report, seg } from "./api.js";
import { busy, confirmAction, h } from "./dom.js";

/**
 * A switch that pauses or unpauses `dag` (disabled for roles that may not); `onChange` runs after the server
 * agreed, with the new state in `dag.is_paused`.
 * @param {{dag_id: string, is_paused: boolean}} dag
 * @param {string} label
 * @param {() => void} [onChange]
 */
export function pauseSwitch(dag, label, onChange) {
  const title = () => (dag.is_paused ? "Paused: click to unpause" : "Active: click to pause");
  const toggle = /** @type {HTMLInputElement} */ (
    h("input", { type: "checkbox", role: "switch", checked: !dag.is_paused, disabled: !can("User"), "aria-label": label, title: title() })
  );
  toggle.addEventListener("change", async () => {
    toggle.disabled = true;
    try {
      const answer = await api(`/dags/${seg(dag.dag_id)}`, { method: "PATCH", body: { is_paused: !toggle.checked } });
      dag.is_paused = answer.is_paused;
      toggle.title = title();
      onChange?.();
    } catch (error) {
      toggle.checked = !dag.is_paused;
      report(error);
    } finally {
      toggle.disabled = false;
    }
  });
  return toggle;
}

/**
 * A button that asks `question`, then calls `fn` and `after`; errors go to the user.
 * @param {string} label
 * @param {string} question
 * @param {() => Promise<unknown>} fn
 * @param {() => Promise<unknown>} after
 * @param {string} [cls]
 */
export function confirmButton(label, question, fn, after, cls = "") {
  const b = /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: cls, text: label }));
  b.addEventListener("click", () => {
    if (!confirmAction(question)) return;
    busy(b, async () => {
      await fn();
      await after();
    }, report);
  });
  return b;
}
