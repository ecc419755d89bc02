// @ts-check
// The dashboard's entry point: the routes, the header, sign-in and sign-out, and where errors are shown.

import { me, onAuthChange, onError, report, signOut } from "./api.js";
import { h } from "./dom.js";
import { startRouter } from "./router.js";

const main = /** @type {HTMLElement} */ (document.querySelector("#main"));
const nav = /** @type {HTMLElement} */ (document.querySelector("nav"));
const who = /** @type {HTMLElement} */ (document.querySelector(".who"));
const toasts = /** @type {HTMLElement} */ (document.querySelector("#toasts"));

/** @param {string} message */
function toast(message) {
  // The same failure repeated (a stream that keeps failing) is one toast.
  if ([...toasts.querySelectorAll(".toast span")].some((el) => el.textContent === message)) return;
  const close = h("button", { type: "button", class: "link", "aria-label": "Dismiss", text: "✕" });
  const item = h("div", { class: "toast", role: "alert" }, h("span", { text: message }), close);
  close.addEventListener("click", () => item.remove());
  toasts.append(item);
  setTimeout(() => item.remove(), 10000);
}
onError(toast);
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  report(event.reason);
});

/** @type {import("./router.js").Route[]} */
const routes = [
  { pattern: "/signin", load: () => import("./views/signin.js"), title: () => "Sign in" },
  { pattern: "/dags", load: () => import("./views/dags.js"), title: () => "DAGs" },
  { pattern: "/dags/:dag/:tab", load: () => import("./views/dag.js"), title: (p) => p.dag },
  { pattern: "/dags/:dag/runs/:run", load: () => import("./views/run.js"), title: (p) => `${p.dag} · ${p.run}` },
  {
    pattern: "/dags/:dag/runs/:run/tasks/:task",
    load: () => import("./views/task.js"),
    title: (p) => `${p.task} · ${p.run}`,
  },
  { pattern: "/backfills", load: () => import("./views/backfills.js"), title: () => "Backfills" },
  { pattern: "/assets", load: () => import("./views/assets.js"), title: () => "Assets" },
  { pattern: "/admin/:section", load: () => import("./views/admin.js"), title: (p) => `Admin · ${p.section}` },
  { pattern: "/models", load: () => import("./views/models.js"), title: () => "Models" },
  { pattern: "/models/:name", load: () => import("./views/models.js"), title: (p) => p.name },
];

// A DAG's page without a tab opens its grid.
window.addEventListener("hashchange", () => {
  const m = location.hash.match(/^#\/dags\/([^/?]+)\/?$/);
  if (m) location.replace(`#/dags/${m[1]}/grid`);
});

const router = startRouter(main, routes, "/dags", report);

function showUser() {
  const user = me();
  nav.hidden = user === null;
  who.hidden = user === null;
  /** @type {HTMLElement} */ (who.querySelector(".user")).textContent = user ? `${user.username} (${user.role})` : "";
}

onAuthChange((signedIn) => {
  showUser();
  if (!signedIn) {
    const back = location.hash.startsWith("#/signin") ? "" : location.hash.replace(/^#/, "");
    location.hash = `#/signin${back ? `?next=${encodeURIComponent(back)}` : ""}`;
  }
});

/** @type {HTMLButtonElement} */ (who.querySelector(".signout")).addEventListener("click", () => signOut());

showUser();
if (me() === null && !location.hash.startsWith("#/signin")) {
  const back = location.hash.replace(/^#/, "");
  location.replace(`#/signin${back ? `?next=${encodeURIComponent(back)}` : ""}`);
}
const m = location.hash.match(/^#\/dags\/([^/?]+)\/?$/);
if (m) location.replace(`#/dags/${m[1]}/grid`);
router.refresh().catch(report);

