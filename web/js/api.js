// @ts-check
// The only module that talks to the server: /api/v2, /auth and the Server-Sent Event streams. Every failure reaches
// the user (a toast, or the error a caller shows next to a field); a 401 signs the user out and shows the sign-in.

const TOKEN_KEY = "sluice-token";

/** Roles in increasing order of rights, as the server ranks them. */
export const ROLES = ["Viewer", "User", "Op", "Admin"];

/** An answer of the API that was not 2xx: its status and the server's `detail`. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} detail
   * @param {string} path
   */
  constructor(status, detail, path) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.path = path;
  }
}

/** @type {Set<(signedIn: boolean) => void>} */
const authListeners = new Set();
/** @type {Set<(message: string) => void>} */
const errorListeners = new Set();

/** @param {(signedIn: boolean) => void} fn */
export function onAuthChange(fn) {
  authListeners.add(fn);
}

/** Where errors go when the caller does not show them itself (the app shows a toast). @param {(message: string) => void} fn */
export function onError(fn) {
  errorListeners.add(fn);
}

/** Shows an error to the user. @param {unknown} error */
export function report(error) {
  if (error instanceof DOMException && error.name === "AbortError") return;
  if (error instanceof ApiError && error.status === 401) return; // the sign-in view is the answer
  const message = error instanceof Error ? error.message : String(error);
  for (const fn of errorListeners) fn(message);
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/**
 * Who is signed in, read from the token's claims (the server checks every request again; this only decides what
 * the dashboard offers).
 * @returns {{username: string, role: string} | null}
 */
export function me() {
  const t = token();
  if (!t) return null;
  try {
    const payload = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload));
    return { username: String(claims.username), role: String(claims.role) };
  } catch {
    return null;
  }
}

/** Whether the signed-in user has at least `role`. @param {string} role */
export function can(role) {
  const user = me();
  return user !== null && ROLES.indexOf(user.role) >= ROLES.indexOf(role);
}

function signedOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  for (const fn of authListeners) fn(false);
}

/** @param {string} username @param {string} password */
export async function signIn(username, password) {
  const response = await fetch("/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, detailOf(body, response), "/auth/token");
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  for (const fn of authListeners) fn(true);
}

export function signOut() {
  signedOut();
}

/** @param {any} body @param {Response} response */
function detailOf(body, response) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (detail !== undefined) return JSON.stringify(detail);
  return `${response.status} ${response.statusText}`;
}

function headers() {
  /** @type {Record<string, string>} */
  const h = {};
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

/**
 * A call to the API: `path` is under `/api/v2` unless it starts with `/auth`. Rejects with an {@link ApiError}.
 * @param {string} path
 * @param {{method?: string, body?: unknown, signal?: AbortSignal, text?: boolean}} [options]
 * @returns {Promise<any>}
 */
export async function api(path, options = {}) {
  const url = path.startsWith("/auth") ? path : `/api/v2${path}`;
  const h = headers();
  if (options.body !== undefined) h["Content-Type"] = "application/json";
  if (options.text) h.Accept = "text/plain";
  const response = await fetch(url, {
    method: options.method ?? "GET",
    headers: h,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  });
  if (response.status === 401) {
    signedOut();
    throw new ApiError(401, "Your session has ended: sign in again", path);
  }
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new ApiError(response.status, detailOf(body, response), path);
  }
  if (response.status === 204) return null;
  return options.text ? response.text() : response.json();
}

/** A query string from an object; arrays repeat the key, empty values are left out. @param {Record<string, unknown>} params */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) for (const v of value) q.append(key, String(v));
    else q.append(key, String(value));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** A path segment, escaped. @param {string} s */
export const seg = (s) => encodeURIComponent(s);

/**
 * @typedef {object} Stream
 * @property {() => void} close stops the stream for good
 */

/**
 * Reads a Server-Sent Events stream with `fetch` (so that it carries the token) and calls `onEvent(name, data)`
 * per event with its JSON data. A dropped connection is opened again after a pause; `onOpen` runs at every
 * (re)connection, so the caller can reload what it may have missed. `path(lastId)` gives the URL of each attempt.
 * @param {(state: {lastId: string | null}) => string} path
 * @param {{onEvent: (name: string, data: any, id: string | null) => void, onOpen?: () => void, onStatus?: (live: boolean) => void}} handlers
 * @returns {Stream}
 */
export function stream(path, handlers) {
  const controller = new AbortController();
  const state = { lastId: /** @type {string | null} */ (null) };
  let closed = false;

  async function once() {
    const response = await fetch(`/api/v2${path(state)}`, {
      headers: { ...headers(), Accept: "text/event-stream" },
      signal: controller.signal,
    });
    if (response.status === 401) {
      signedOut();
      closed = true;
      return;
    }
    if (!response.ok || !response.body) {
      const body = await response.json().catch(() => null);
      throw new ApiError(response.status, detailOf(body, response), path(state));
    }
    handlers.onStatus?.(true);
    handlers.onOpen?.();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        dispatch(block);
        if (closed) return;
      }
    }
  }

  /** @param {string} block */
  function dispatch(block) {
    let name = "message";
    let id = null;
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
    if (data.length === 0) return;
    if (id !== null) state.lastId = id;
    let parsed;
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      report(new Error(`the server sent an event that is not JSON: ${data.join("\n").slice(0, 200)}`));
      return;
    }
    handlers.onEvent(name, parsed, id);
  }

  (async () => {
    let failures = 0;
    while (!closed) {
      try {
        await once();
        failures = 0;
      } catch (error) {
        if (closed || controller.signal.aborted) return;
        failures += 1;
        // A server that refuses the stream (4xx) will refuse it again: say so once and stop.
        if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
          report(error);
          return;
        }
        if (failures === 3) report(new Error("The live connection to the server is down; retrying"));
      }
      if (closed) return;
      handlers.onStatus?.(false);
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** failures, 10000)));
    }
  })();

  return {
    close() {
      closed = true;
      controller.abort();
    },
  };
}
