// @ts-check
// The hash router: `#/dags/:id/grid` and the like. Each route names a view module; the router mounts it into the
// page and unmounts the previous one (which stops its own streams).

/**
 * What a view's `mount` returns: how to stop it.
 * @typedef {{unmount: () => void}} Mounted
 * @typedef {(root: HTMLElement, params: Record<string, string>) => Mounted} Mount
 * @typedef {{pattern: string, load: () => Promise<{mount: Mount}>, title: (p: Record<string, string>) => string}} Route
 */

/**
 * Matches a hash path against a pattern with `:name` segments.
 * @param {string} pattern
 * @param {string} path
 * @returns {Record<string, string> | null}
 */
export function match(pattern, path) {
  const want = pattern.split("/").filter(Boolean);
  const got = path.split("/").filter(Boolean);
  if (want.length !== got.length) return null;
  /** @type {Record<string, string>} */
  const params = {};
  for (let i = 0; i < want.length; i += 1) {
    if (want[i].startsWith(":")) params[want[i].slice(1)] = decodeURIComponent(got[i]);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}

/**
 * Starts routing: `routes` in order, first match wins; `fallback` when nothing matches.
 * @param {HTMLElement} root
 * @param {Route[]} routes
 * @param {string} fallback
 * @param {(error: unknown) => void} onError
 */
export function startRouter(root, routes, fallback, onError) {
  /** @type {Mounted | null} */
  let current = null;
  let generation = 0;

  async function show() {
    const mine = ++generation;
    const hash = location.hash.replace(/^#/, "") || fallback;
    const [path, search = ""] = hash.split("?");
    let found = null;
    for (const route of routes) {
      const params = match(route.pattern, path);
      if (params) {
        found = { route, params: { ...Object.fromEntries(new URLSearchParams(search)), ...params } };
        break;
      }
    }
    if (!found) {
      location.replace(`#${fallback}`);
      return;
    }
    current?.unmount();
    current = null;
    root.replaceChildren();
    try {
      const module = await found.route.load();
      if (mine !== generation) return;
      document.title = `${found.route.title(found.params)} · Sluice`;
      current = module.mount(root, found.params);
      markNav(path);
    } catch (error) {
      onError(error);
    }
  }

  window.addEventListener("hashchange", show);
  return {
    refresh: show,
    stop() {
      window.removeEventListener("hashchange", show);
      current?.unmount();
      current = null;
    },
  };
}

/** Marks the navigation link of the current area. @param {string} path */
function markNav(path) {
  // The header's links only: views mark their own tabs. A link stands for its whole area (`Admin` goes to
  // `/admin/workers` and is current on every admin page), so the first segments are compared.
  const area = (/** @type {string} */ p) => p.split("/").filter(Boolean)[0];
  for (const a of document.querySelectorAll("header nav a")) {
    if (area((a.getAttribute("href") ?? "").replace(/^#/, "")) === area(path)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}
