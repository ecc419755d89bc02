// @ts-check
// What the dashboard tests stand on: a real `sluice standalone` in a temporary home with its own DAG folder, the
// admin's password it generated, a Chromium driven by playwright-core, and a page that fails the test on any
// console error.

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, createWriteStream } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const SCREENSHOTS = join(here, "screenshots");

/** The sluice binary: `SLUICE_BIN`, else the debug build of the default target directory. */
function sluiceBin() {
  if (process.env.SLUICE_BIN) return process.env.SLUICE_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? resolve(here, "../../target");
  return join(target, "debug", "sluice");
}

/** @returns {Promise<number>} */
function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (address && typeof address === "object" ? ok(address.port) : fail(new Error("no port"))));
    });
  });
}

/**
 * A running `sluice standalone`, with an HTTP client signed in as admin.
 * @param {Record<string, string>} dags file name → YAML
 */
export async function startSluice(dags) {
  const home = mkdtempSync(join(tmpdir(), "sluice-ui-"));
  const dagsDir = join(home, "dags");
  mkdirSync(dagsDir);
  for (const [name, yaml] of Object.entries(dags)) writeFileSync(join(dagsDir, name), yaml);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logFile = join(home, "sluice.log");
  const log = createWriteStream(logFile);
  const child = spawn(sluiceBin(), ["standalone"], {
    env: {
      ...process.env,
      SLUICE_HOME: home,
      SLUICE_DAGS_FOLDER: dagsDir,
      SLUICE_BIND: `127.0.0.1:${port}`,
      SLUICE_SCHEDULER_TICK_MS: "100",
      SLUICE_DAG_SYNC_SECS: "1",
      SLUICE_STANDALONE_WORKERS: "2",
      SLUICE_WORKER_SLOTS: "4",
      RUST_LOG: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise((ok) => child.once("exit", ok));
  const deadline = Date.now() + 60000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sluice standalone exited: ${readFileSync(logFile, "utf8")}`);
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`sluice standalone did not start: ${readFileSync(logFile, "utf8")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const password = JSON.parse(readFileSync(join(home, "passwords.json.generated"), "utf8")).admin;
  const sluice = {
    url,
    home,
    dagsDir,
    password,
    token: "",
    /** @param {string} name @param {string} yaml */
    addDag(name, yaml) {
      writeFileSync(join(dagsDir, name), yaml);
    },
    /**
     * A call to the API as admin; throws on a non-2xx answer.
     * @param {string} method @param {string} path @param {unknown} [body]
     */
    async api(method, path, body) {
      const response = await fetch(`${url}${path.startsWith("/auth") ? "" : "/api/v2"}${path}`, {
        method,
        headers: { Authorization: `Bearer ${sluice.token}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
      return text ? JSON.parse(text) : null;
    },
    /**
     * Waits until `check` answers something truthy.
     * @template T
     * @param {string} what @param {() => Promise<T>} check @param {number} [timeout]
     * @returns {Promise<T>}
     */
    async until(what, check, timeout = 60000) {
      const end = Date.now() + timeout;
      for (;;) {
        const value = await check().catch(() => null);
        if (value) return value;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async stop() {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10000);
      await exited;
      clearTimeout(killer);
    },
    logs: () => readFileSync(logFile, "utf8"),
  };
  const login = await fetch(`${url}/auth/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "admin", password }),
  });
  sluice.token = (await login.json()).access_token;
  return sluice;
}

/** Debian's Chromium, headless. */
export async function startBrowser() {
  const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
  return chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/**
 * A page of the dashboard that records console errors and uncaught exceptions.
 * @param {import("playwright-core").Browser} browser
 * @param {{width: number, height: number}} [viewport]
 */
export async function openPage(browser, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  /** @type {string[]} */
  const errors = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`console: ${msg.text()} (${msg.location().url})`);
  });
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
  // Confirmation dialogs of the dashboard are answered yes.
  page.on("dialog", (dialog) => dialog.accept());
  return { page, context, errors };
}
