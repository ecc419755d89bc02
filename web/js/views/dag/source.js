// @ts-check
// The DAG's file, as Sluice read it.

import { api, report, seg } from "../../api.js";
import { empty, fill, h } from "../../dom.js";

/** @param {HTMLElement} root @param {any} dag */
export function mount(root, dag) {
  const controller = new AbortController();
  const body = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  root.append(body);
  api(`/dagSources/${seg(dag.dag_id)}`, { signal: controller.signal })
    .then((answer) => {
      fill(
        body,
        answer.content
          ? [
              h("p", { class: "muted", text: `${dag.relative_fileloc ?? dag.fileloc ?? ""} · version ${answer.version_number ?? "—"}` }),
              h("pre", { class: "source", tabindex: 0, text: answer.content }),
            ]
          : empty("Sluice has no source for this DAG."),
      );
    })
    .catch(report);
  return { unmount: () => controller.abort() };
}
