// @ts-check
// The dashboard in Chromium against a real `sluice standalone`: every view, its live updates, its forms and its
// speed budgets. Screenshots of every view land in screenshots/ (not committed); any console error fails.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SCREENSHOTS, openPage, startBrowser, startSluice } from "./harness.js";

const DEMO = `dag_id: ui_demo
description: Extract, a slow step that logs as it goes, and a load.
owner: web-team
tags: [demo, ui]
schedule: null
start_date: 2026-01-01
params:
  rows: {type: integer, default: 5, minimum: 1, maximum: 1000, description: how many rows to extract}
  mode: {type: string, default: fast, enum: [fast, thorough]}
tasks:
  - id: extract
    inputs: [s3://demo/raw]
    script: echo "extracting {{ params.rows }} rows"
  - id: slow
    depends_on: [extract]
    script: |
      for i in $(seq 1 30); do echo "progress line $i"; sleep 0.1; done
  - id: load
    depends_on: [slow]
    outputs: [s3://demo/clean]
    script: echo loaded
`;

/** @param {string} marker */
const flaky = (marker) => `dag_id: flaky
owner: web-team
tags: [demo]
schedule: null
start_date: 2026-01-01
is_paused_upon_creation: false
tasks:
  - id: fragile
    script: |
      if [ -f ${marker} ]; then echo "fixed, all good"; else echo "the input is missing" >&2; exit 3; fi
`;

const BACKFILL = `dag_id: daily_numbers
owner: web-team
tags: [demo]
schedule: "@daily"
start_date: 2026-01-01
catchup: false
is_paused_upon_creation: false
tasks:
  - id: count
    script: echo "counting {{ ds }}"
`;

const BIG_LOG = `dag_id: big_log
schedule: null
start_date: 2026-01-01
is_paused_upon_creation: false
tasks:
  - id: chatty
    script: seq 1 50000
`;

const GROUPED = `dag_id: grouped
schedule: null
start_date: 2026-01-01
is_paused_upon_creation: false
tasks:
  - id: start
    script: echo start
  - id: report
    depends_on: [transform]
    script: echo report
groups:
  - id: transform
    description: Clean, then check
    depends_on: [start]
    tasks:
      - id: clean
        script: echo clean
      - id: check
        depends_on: [clean]
        script: echo check
`;

/** A DAG of `n` independent tasks in a chain of groups, for the grid budget. @param {number} n */
function wideDag(n) {
  const tasks = [];
  for (let i = 0; i < n; i += 1) {
    tasks.push(`  - id: t${String(i).padStart(3, "0")}\n    script: echo ${i}${i >= 10 ? `\n    depends_on: [t${String(i % 10).padStart(3, "0")}]` : ""}`);
  }
  return `dag_id: wide\nschedule: null\nstart_date: 2026-01-01\ntasks:\n${tasks.join("\n")}\n`;
}

/** @type {Awaited<ReturnType<typeof startSluice>>} */
let sluice;
/** @type {import("playwright-core").Browser} */
let browser;
/** @type {Awaited<ReturnType<typeof openPage>>} */
let admin;
const marker = join(process.env.TMPDIR ?? "/tmp", `sluice-ui-flaky-${process.pid}`);

before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  sluice = await startSluice({
    "ui_demo.yaml": DEMO,
    "flaky.yaml": flaky(marker),
    "daily_numbers.yaml": BACKFILL,
    "big_log.yaml": BIG_LOG,
    "grouped.yaml": GROUPED,
    "broken.yaml": "dag_id: broken\ntasks:\n  - id: a\n    script: [unclosed\n",
  });
  await sluice.until("the DAGs to be read", async () => (await sluice.api("GET", "/dags")).total_entries >= 5);
  await sluice.api("POST", "/auth/users", { username: "viewer", password: "viewer-password-1", role: "Viewer" });
  browser = await startBrowser();
  admin = await openPage(browser);
});

after(async () => {
  await browser?.close();
  await sluice?.stop();
});

/** @param {import("playwright-core").Page} page @param {string} name */
async function shot(page, name) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: false });
}

/** Fails on console errors so far, naming the step. @param {string[]} errors @param {string} step */
function noConsoleErrors(errors, step) {
  const seen = errors.splice(0);
  assert.deepEqual(seen, [], `console errors during ${step}`);
}

/** @param {import("playwright-core").Page} page @param {string} username @param {string} password */
async function signIn(page, username, password) {
  await page.goto(`${sluice.url}/`);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("table.dags").waitFor();
}

test("sign in", async () => {
  const { page, errors } = admin;
  await page.goto(`${sluice.url}/`);
  await page.getByRole("heading", { name: "Sign in to Sluice" }).waitFor();
  await shot(page, "signin");
  await signIn(page, "admin", sluice.password);
  await page.locator(".who .user").getByText("admin (Admin)").waitFor();
  noConsoleErrors(errors, "sign in");
});

test("find a DAG by search and unpause it", async () => {
  const { page, errors } = admin;
  await page.getByLabel("Search DAGs").fill("ui_de");
  await page.locator("table.dags tbody tr").first().waitFor();
  await page.waitForFunction(() => document.querySelectorAll("table.dags tbody tr").length === 1);
  const row = page.locator('tr[data-dag="ui_demo"]');
  await row.waitFor();
  await page.getByLabel("Search DAGs").fill("tag:ui");
  await page.waitForFunction(() => document.querySelectorAll("table.dags tbody tr").length === 1);
  const toggle = row.getByRole("switch");
  assert.equal(await toggle.isChecked(), false, "ui_demo starts paused");
  await toggle.click();
  await sluice.until("ui_demo to be unpaused", async () => !(await sluice.api("GET", "/dags/ui_demo")).is_paused, 5000);
  await page.getByLabel("Search DAGs").fill("");
  await page.getByLabel("Show").selectOption("paused");
  await page.getByText("No DAG matches").waitFor();
  await page.getByLabel("Show").selectOption("active");
  await page.waitForFunction(() => document.querySelectorAll("table.dags tbody tr").length === 5);
  await page.getByLabel("Show").selectOption("all");
  await page.waitForFunction(() => document.querySelectorAll("table.dags tbody tr").length >= 5);
  await shot(page, "dags");
  noConsoleErrors(errors, "search and unpause");
});

test("an import error names the file, line and column", async () => {
  const { page, errors } = admin;
  await page.goto(`${sluice.url}/#/dags`);
  const banner = page.locator(".banner");
  await banner.waitFor();
  await banner.locator("summary").click();
  await banner.locator("b").getByText("broken.yaml").waitFor();
  const trace = await banner.locator("pre").first().textContent();
  assert.match(trace ?? "", /broken\.yaml:\d+:\d+: /, `the message locates the error: ${trace}`);
  await shot(page, "import-errors");
  noConsoleErrors(errors, "import errors");
});

test("trigger from the generated form; the grid turns green live", async () => {
  const { page, errors } = admin;
  await page.goto(`${sluice.url}/#/dags/ui_demo/trigger`);
  const rows = page.getByLabel("rows", { exact: true });
  await rows.waitFor();
  assert.equal(await rows.inputValue(), "5", "the default is filled in");
  await rows.fill("5000");
  await page.getByRole("button", { name: "Trigger run" }).click();
  await page.locator("#param-rows-error").getByText("at most 1000").waitFor();
  assert.equal(await rows.getAttribute("aria-invalid"), "true");
  assert.match(page.url(), /trigger$/, "a refused value does not trigger");
  await shot(page, "trigger");
  await rows.fill("7");
  await page.getByLabel("mode").selectOption({ label: "thorough" });
  // The rest of conf, as JSON: a mistake is shown next to it too.
  const conf = page.getByLabel("More conf (JSON object)");
  await conf.fill('{"region": "eu"');
  await page.getByRole("button", { name: "Trigger run" }).click();
  await page.locator("#conf-error").getByText(/^conf .+/).waitFor();
  assert.match(page.url(), /trigger$/);
  await conf.fill('{"region": "eu", "rows": 1}');
  await page.getByRole("button", { name: "Trigger run" }).click();
  await page.waitForURL(/#\/dags\/ui_demo\/grid$/);
  await page.locator("table.grid").waitFor();
  // From here on the page is not reloaded: the colours come from the event stream.
  await page.evaluate(() => Object.assign(window, { sameDocument: true }));
  await page.locator("table.grid a.cell.st-success").first().waitFor({ timeout: 30000 });
  await page.waitForFunction(() => document.querySelectorAll("table.grid tbody a.cell.st-success").length === 3, null, {
    timeout: 30000,
  });
  await page.locator("table.grid a.runbar.st-success").waitFor({ timeout: 10000 });
  assert.equal(await page.evaluate(() => "sameDocument" in window), true, "the grid was not reloaded");
  const runs = await sluice.api("GET", "/dags/ui_demo/dagRuns");
  assert.deepEqual(runs.dag_runs[0].conf, { region: "eu", rows: 7, mode: "thorough" }, "the params win over the JSON");
  await shot(page, "grid");
  noConsoleErrors(errors, "trigger and grid");
});

test("the grid by keyboard; the graph, run durations and source of a DAG", async () => {
  const { page, errors } = admin;
  await page.goto(`${sluice.url}/#/dags/ui_demo/grid`);
  const first = page.locator('table.grid a.cell[tabindex="0"]');
  await first.focus();
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/tasks\/slow$/);
  await page.locator(".tries").waitFor();
  await page.goto(`${sluice.url}/#/dags/ui_demo/graph`);
  await page.locator(".graph-wrap svg .node").first().waitFor();
  assert.equal(await page.locator(".graph-wrap svg .node").count(), 3);
  await page.locator(".graph-wrap svg rect.fill-success").first().waitFor();
  await shot(page, "graph");
  await page.getByRole("link", { name: "Run durations" }).click();
  await page.locator(".chart-wrap svg a").first().waitFor();
  await shot(page, "durations");
  await page.getByRole("link", { name: "Source" }).click();
  await page.locator("pre.source").getByText("progress line").waitFor();
  await shot(page, "source");
  noConsoleErrors(errors, "graph, durations, source");
});

test("the graph collapses a task group to one node and expands it; the grid shows a task's group", async () => {
  const { page, errors } = admin;
  const run = await sluice.api("POST", "/dags/grouped/dagRuns", { conf: {} });
  const path = `/dags/grouped/dagRuns/${encodeURIComponent(run.dag_run_id)}`;
  await sluice.until("the grouped run to succeed", async () => (await sluice.api("GET", path)).state === "success");
  await page.goto(`${sluice.url}/#/dags/grouped/graph`);
  await page.locator(".graph-wrap svg rect.fill-success").first().waitFor();
  assert.equal(await page.locator(".graph-wrap svg .node").count(), 4);
  await page.getByLabel("Collapse transform").check();
  await page.locator(".graph-wrap svg .node.group rect.fill-success").waitFor();
  assert.equal(await page.locator(".graph-wrap svg .node").count(), 3);
  await shot(page, "graph-collapsed");
  await page.getByRole("link", { name: /Expand group transform/ }).click();
  await page.waitForFunction(() => document.querySelectorAll(".graph-wrap svg .node").length === 4);
  assert.equal(await page.getByLabel("Collapse transform").isChecked(), false);
  await page.locator(".graph-wrap svg text.caption").getByText("transform").first().waitFor();
  await shot(page, "graph-groups");
  await page.goto(`${sluice.url}/#/dags/grouped/grid`);
  await page.locator('table.grid th[title="transform.clean"]').getByText("transform.").waitFor();
  noConsoleErrors(errors, "task groups");
});

test("a running task's log lines arrive live", async () => {
  const { page, errors } = admin;
  const run = await sluice.api("POST", "/dags/ui_demo/dagRuns", { conf: {} });
  await page.goto(`${sluice.url}/#/dags/ui_demo/runs/${encodeURIComponent(run.dag_run_id)}/tasks/slow`);
  const log = page.locator(".log");
  await log.getByText("progress line 1", { exact: true }).waitFor({ timeout: 30000 });
  const early = await page.locator(".log .line").count();
  await log.getByText("progress line 30", { exact: true }).waitFor({ timeout: 30000 });
  const late = await page.locator(".log .line").count();
  assert.ok(late > early, `lines arrived while the page was open (${early} then ${late})`);
  await page.locator(".tries .badge.st-success").waitFor({ timeout: 15000 });
  await page.getByLabel("Search the log").fill("line 2");
  await page.locator(".log .line.current").waitFor();
  await shot(page, "task");
  await page.goto(`${sluice.url}/#/dags/ui_demo/runs/${encodeURIComponent(run.dag_run_id)}`);
  await page.locator(".chart-wrap svg a").first().waitFor();
  await page.locator("table.tis .badge.st-success").nth(2).waitFor({ timeout: 15000 });
  await shot(page, "run");
  noConsoleErrors(errors, "live log");
});

test("a failed task, cleared, runs again", async () => {
  const { page, errors } = admin;
  const run = await sluice.api("POST", "/dags/flaky/dagRuns", { conf: {} });
  await page.goto(`${sluice.url}/#/dags/flaky/runs/${encodeURIComponent(run.dag_run_id)}/tasks/fragile`);
  await page.locator(".tries .badge.st-failed").waitFor({ timeout: 30000 });
  assert.equal((await page.locator(".tries .exit-code").first().textContent())?.trim(), "3");
  await page.locator(".log").getByText("the input is missing").waitFor();
  writeFileSync(marker, "fixed");
  await page.getByRole("button", { name: "Clear", exact: true }).click();
  await page.locator(".tries tbody tr").nth(1).waitFor({ timeout: 30000 });
  await page.locator(".tries tbody tr").nth(1).locator(".badge.st-success").waitFor({ timeout: 30000 });
  await page.locator(".log").getByText("fixed, all good").waitFor({ timeout: 10000 });
  noConsoleErrors(errors, "clear and retry");
});

test("a task and its run are marked, and a log is downloaded", async () => {
  const { page, errors } = admin;
  const run = await sluice.api("POST", "/dags/daily_numbers/dagRuns", { conf: {} });
  const runPath = `/dags/daily_numbers/dagRuns/${encodeURIComponent(run.dag_run_id)}`;
  await sluice.until("the run to succeed", async () => (await sluice.api("GET", runPath)).state === "success");
  await page.goto(`${sluice.url}/#/dags/daily_numbers/runs/${encodeURIComponent(run.dag_run_id)}/tasks/count`);
  await page.locator(".tries .badge.st-success").waitFor({ timeout: 15000 });
  await page.locator(".log").getByText("counting").waitFor();
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download" }).click(),
  ]);
  const saved = await download.path();
  assert.match(readFileSync(saved, "utf8"), /counting \d{4}-\d{2}-\d{2}/);

  await page.getByRole("button", { name: "Mark failed" }).click();
  await sluice.until(
    "the task to be failed",
    async () => (await sluice.api("GET", `${runPath}/taskInstances/count`)).state === "failed",
  );
  await page.goto(`${sluice.url}/#/dags/daily_numbers/runs/${encodeURIComponent(run.dag_run_id)}`);
  await page.getByRole("button", { name: "Mark failed" }).click();
  await sluice.until("the run to be marked failed", async () => (await sluice.api("GET", runPath)).state === "failed");
  await page.getByRole("button", { name: "Mark success" }).click();
  await sluice.until("the run to be marked success", async () => (await sluice.api("GET", runPath)).state === "success");
  noConsoleErrors(errors, "marks and download");
});

test("a backfill shows its progress", async () => {
  const { page, errors } = admin;
  await page.goto(`${sluice.url}/#/backfills?dag=daily_numbers`);
  await page.locator("form.backfill-form").waitFor();
  await page.locator("#bf-from").fill("2026-02-01");
  await page.locator("#bf-to").fill("2026-02-03");
  await page.getByRole("button", { name: "Preview dates" }).click();
  await page.getByText("3 logical dates would run").waitFor();
  await page.getByRole("button", { name: "Start backfill" }).click();
  await page.locator("table.backfills tbody tr").first().waitFor();
  await page.locator(".progress-text").getByText("3 of 3 runs done").waitFor({ timeout: 45000 });
  await page.locator(".backfill-status").getByText("complete").waitFor({ timeout: 15000 });
  await shot(page, "backfills");
  noConsoleErrors(errors, "backfill");
});

test("a backfill is paused, resumed and cancelled", async () => {
  const { page, errors } = admin;
  await page.goto(`${sluice.url}/#/backfills?dag=daily_numbers`);
  await page.locator("form.backfill-form").waitFor();
  await page.locator("#bf-from").fill("2026-03-01");
  await page.locator("#bf-to").fill("2026-04-30");
  await page.locator("#bf-max").fill("1");
  await page.getByRole("button", { name: "Start backfill" }).click();
  const running = page.locator("table.backfills tbody tr", {
    has: page.locator(".backfill-status", { hasText: "running" }),
  });
  await running.waitFor();
  const id = await running.getAttribute("data-backfill");
  const row = page.locator(`table.backfills tbody tr[data-backfill="${id}"]`);
  await row.getByRole("button", { name: "Pause" }).click();
  await row.locator(".backfill-status").getByText("paused").waitFor();
  await row.getByRole("button", { name: "Resume" }).click();
  await row.locator(".backfill-status").getByText("running").waitFor();
  await row.getByRole("button", { name: "Cancel" }).click();
  await row.locator(".backfill-status").getByText("complete").waitFor({ timeout: 15000 });
  assert.equal(await row.getByRole("button").count(), 0, "a finished backfill offers no actions");
  const backfill = await sluice.api("GET", `/backfills/${id}`);
  assert.ok(backfill.completed_at, JSON.stringify(backfill));
  noConsoleErrors(errors, "backfill controls");
});

test("assets, admin and models views", async () => {
  const { page, errors } = admin;
  await page.goto(`${sluice.url}/#/assets`);
  await page.locator("table.assets").waitFor();
  await page.locator(".graph-wrap svg").waitFor();
  await shot(page, "assets");
  for (const section of ["workers", "pools", "variables", "connections", "users", "api-keys"]) {
    await page.goto(`${sluice.url}/#/admin/${section}`);
    await page.locator(`main .tabs a[aria-current="page"]`).waitFor();
    await page.locator("main table, main .empty").first().waitFor();
    await shot(page, `admin-${section}`);
  }
  await page.goto(`${sluice.url}/#/admin/workers`);
  await page.locator("table.workers").getByText("standalone-worker-1").waitFor();
  await page.goto(`${sluice.url}/#/admin/pools`);
  await page.getByRole("button", { name: "New pool" }).click();
  const newPool = page.getByRole("form", { name: "New pool" });
  await newPool.getByLabel("Name").fill("etl_pool");
  await newPool.getByLabel("Slots").fill("3");
  await newPool.getByRole("button", { name: "Save" }).click();
  const pool = page.locator("table.pools tbody tr", { hasText: "etl_pool" });
  await pool.waitFor();
  await pool.getByRole("button", { name: "Edit" }).click();
  const editPool = page.getByRole("form", { name: "Edit pool etl_pool" });
  await editPool.getByLabel("Slots").fill("5");
  await editPool.getByRole("button", { name: "Save" }).click();
  await pool.locator("td:nth-child(2)", { hasText: /^5$/ }).waitFor();
  assert.equal((await sluice.api("GET", "/pools/etl_pool")).slots, 5);
  await page.goto(`${sluice.url}/#/admin/variables`);
  await page.getByRole("button", { name: "New variable" }).click();
  await page.getByLabel("Key").fill("ui_greeting");
  await page.getByLabel("Value").fill("hello");
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("table.variables").getByText("ui_greeting").waitFor();
  await page.goto(`${sluice.url}/#/admin/connections`);
  await page.getByRole("button", { name: "New connection" }).click();
  await page.getByLabel("Connection id").fill("warehouse");
  await page.getByLabel("Type").fill("postgres");
  await page.getByLabel("Password").fill("s3cret-value");
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("table.connections").getByText("warehouse").waitFor();
  assert.equal(await page.locator("table.connections").getByText("s3cret-value").count(), 0, "secrets are masked");
  await page.goto(`${sluice.url}/#/models`);
  await page.locator("main .empty, main table").first().waitFor();
  await shot(page, "models");
  noConsoleErrors(errors, "assets, admin, models");
});

test("a run live: the graph colours, the log follows until scrolled up, failed tasks cleared, a clear with upstream", async () => {
  const { page, errors } = admin;
  const fixed = `${marker}-chain`;
  sluice.addDag(
    "chain_live.yaml",
    `dag_id: chain_live
schedule: null
start_date: 2026-01-01
is_paused_upon_creation: false
tasks:
  - id: first
    script: sleep 1; echo one
  - id: second
    depends_on: [first]
    script: for i in $(seq 1 300); do echo "row $i"; sleep 0.03; done
  - id: third
    depends_on: [second]
    script: test -f ${fixed}
`,
  );
  await sluice.until("chain_live to be read", async () => (await sluice.api("GET", "/dags/chain_live")).dag_id);
  // The graph of a DAG without runs follows its first run as it starts.
  await page.goto(`${sluice.url}/#/dags/chain_live/graph`);
  await page.locator(".graph-wrap svg .node").first().waitFor();
  await page.evaluate(() => Object.assign(window, { sameDocument: true }));
  const run = await sluice.api("POST", "/dags/chain_live/dagRuns", { conf: {} });
  const runPath = `/dags/chain_live/dagRuns/${encodeURIComponent(run.dag_run_id)}`;
  await page.locator('.graph-wrap svg a[data-task="first"] rect.fill-success').waitFor({ timeout: 30000 });
  await page.locator('.graph-wrap svg a[data-task="second"] rect.fill-running').waitFor({ timeout: 15000 });
  assert.equal(await page.evaluate(() => "sameDocument" in window), true, "the graph was not reloaded");

  await page.locator('.graph-wrap svg a[data-task="second"]').click();
  const log = page.locator(".log");
  await log.getByText("row 20", { exact: true }).waitFor({ timeout: 15000 });
  const atEnd = () => log.evaluate((el) => el.scrollTop + el.clientHeight >= el.scrollHeight - 30);
  await page.waitForFunction(() => document.querySelectorAll(".log .line").length > 0);
  await sluice.until("the log to scroll past a screen", async () => (await log.evaluate((el) => el.scrollHeight > el.clientHeight * 1.5)) || null, 20000);
  assert.equal(await atEnd(), true, "the log follows its new lines");
  await log.evaluate((el) => {
    el.scrollTop = 0;
    el.dispatchEvent(new Event("scroll"));
  });
  const before = await page.locator(".log-tools").textContent();
  await page.waitForFunction((b) => document.querySelector(".log-tools")?.textContent !== b, before, { timeout: 10000 });
  assert.equal(await log.evaluate((el) => el.scrollTop), 0, "scrolled up, the log stays where the user is");
  await page.getByRole("button", { name: "Follow" }).click();
  // Lines keep coming: the view is at the end once it has drawn the ones that arrived with the click.
  await page.waitForFunction(() => {
    const el = document.querySelector(".log");
    return el !== null && el.scrollTop + el.clientHeight >= el.scrollHeight - 30;
  }, null, { timeout: 2000 }).catch(() => assert.fail("Follow goes back to the end"));

  await sluice.until("the run to fail", async () => (await sluice.api("GET", runPath)).state === "failed", 60000);
  await page.goto(`${sluice.url}/#/dags/chain_live/runs/${encodeURIComponent(run.dag_run_id)}`);
  await page.locator("table.tis .badge.st-failed").waitFor();
  writeFileSync(fixed, "fixed");
  await page.getByRole("button", { name: "Clear failed tasks" }).click();
  await sluice.until("the run to succeed", async () => (await sluice.api("GET", runPath)).state === "success", 60000);
  const tries = async (/** @type {string} */ task) => (await sluice.api("GET", `${runPath}/taskInstances/${task}`)).try_number;
  assert.deepEqual([await tries("first"), await tries("second"), await tries("third")], [1, 1, 2], "only the failed task ran again");

  await page.goto(`${sluice.url}/#/dags/chain_live/runs/${encodeURIComponent(run.dag_run_id)}/tasks/third`);
  await page.locator(".tries .badge.st-success").first().waitFor();
  await page.getByLabel("with upstream").check();
  await page.getByRole("button", { name: "Clear", exact: true }).click();
  await sluice.until("first to run again", async () => (await tries("first")) === 2, 30000);
  await sluice.until("the run to succeed again", async () => (await sluice.api("GET", runPath)).state === "success", 60000);
  assert.deepEqual([await tries("first"), await tries("second"), await tries("third")], [2, 2, 3], "upstream tasks ran again");
  noConsoleErrors(errors, "a run live");
});

test("hover tips, the legend, a task's rendered command and the lineage graph's links", async () => {
  const { page, errors } = admin;
  await page.goto(`${sluice.url}/#/dags/ui_demo/grid`);
  const legend = page.locator("ul.legend");
  await legend.waitFor();
  for (const state of ["success", "failed", "running", "queued"]) {
    assert.equal(await legend.locator(`.sq.st-${state}`).count(), 1, `the legend shows ${state}`);
  }
  await page.locator("table.grid tbody a.cell.st-success").first().hover();
  const tip = page.getByRole("tooltip");
  await tip.waitFor();
  const text = (await tip.textContent()) ?? "";
  assert.match(text, /state: success/);
  assert.match(text, /started: .+\d/);
  assert.match(text, /duration: \d+(\.\d+)? (ms|s)/, text);

  const runs = await sluice.api("GET", "/dags/ui_demo/dagRuns");
  const run = runs.dag_runs.find((/** @type {any} */ r) => r.conf.rows === 7);
  await page.goto(`${sluice.url}/#/dags/ui_demo/runs/${encodeURIComponent(run.dag_run_id)}/tasks/extract`);
  await page.locator("pre.rendered").getByText('echo "extracting 7 rows"').waitFor();

  await page.goto(`${sluice.url}/#/assets`);
  await page.locator(".graph-wrap svg").waitFor();
  await page.locator('.graph-wrap svg a[aria-label="asset s3://demo/clean"]').click();
  await page.getByRole("heading", { name: "Lineage of s3://demo/clean" }).waitFor();
  await page.locator('.graph-wrap svg a[aria-label="task ui_demo.load"]').click();
  await page.waitForURL(/#\/dags\/ui_demo\/graph$/);
  noConsoleErrors(errors, "details");
});

test("times show in the browser's timezone, with UTC on hover", async () => {
  const context = await browser.newContext({ timezoneId: "Asia/Kolkata", locale: "en-US" });
  const page = await context.newPage();
  await page.goto(`${sluice.url}/`);
  await page.evaluate((t) => sessionStorage.setItem("sluice-token", t), sluice.token);
  await page.goto(`${sluice.url}/#/admin/workers`);
  await page.reload();
  const first = page.locator("table.workers time").first();
  await first.waitFor();
  const utc = (await first.getAttribute("title")) ?? "";
  assert.match(utc, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/);
  const at = new Date(`${utc.replace(" UTC", "Z").replace(" ", "T")}`);
  const local = new Intl.DateTimeFormat("en-US", { dateStyle: "medium", timeStyle: "medium", timeZone: "Asia/Kolkata" }).format(at);
  assert.equal(await first.textContent(), local, "shown in the browser's timezone (UTC+5:30)");
  await context.close();
});

test("no request storm: one event stream per page and no polling", async () => {
  const { page, errors } = admin;
  /** @type {string[]} */
  const requests = [];
  const record = (/** @type {import("playwright-core").Request} */ r) => {
    if (new URL(r.url()).pathname.startsWith("/api/")) requests.push(new URL(r.url()).pathname);
  };
  page.on("request", record);
  for (const view of ["#/dags", "#/dags/ui_demo/grid", "#/dags/ui_demo/graph"]) {
    await page.goto(`${sluice.url}/${view}`);
    await page.locator("main table, main svg").first().waitFor();
    await page.waitForTimeout(500);
    requests.length = 0;
    await page.waitForTimeout(4000);
    assert.deepEqual(requests, [], `${view} asked nothing more while idle`);
  }
  // A run changing state: the open stream brings it; the views ask for nothing per row.
  requests.length = 0;
  await page.goto(`${sluice.url}/#/dags`);
  await page.locator("table.dags tbody tr").first().waitFor();
  const run = await sluice.api("POST", "/dags/ui_demo/dagRuns", { conf: {} });
  const path = `/dags/ui_demo/dagRuns/${encodeURIComponent(run.dag_run_id)}`;
  await sluice.until("the run to succeed", async () => (await sluice.api("GET", path)).state === "success");
  await page.waitForTimeout(1500);
  page.off("request", record);
  const streams = requests.filter((r) => r.endsWith("/ui/events"));
  assert.equal(streams.length, 1, `one event stream: ${requests.join(", ")}`);
  assert.ok(requests.length <= 12, `${requests.length} requests for a run of 3 tasks: ${requests.join(", ")}`);
  noConsoleErrors(errors, "request storm");
});

test("a model: its versions with metrics, stage history and a chart per drifted feature", async () => {
  const { page, errors } = admin;
  const repo = join(import.meta.dirname, "..", "..", "dags");
  const penguins = readFileSync(join(repo, "data", "penguins.csv"), "utf8");
  // Heavier birds: body mass drifts.
  const [header, ...rows] = penguins.trim().split("\n");
  const mass = header.split(",").indexOf("body_mass_g");
  const heavy = rows.map((row) => {
    const cells = row.split(",");
    if (/^\d+$/.test(cells[mass])) cells[mass] = String(Number(cells[mass]) + 2000);
    return cells.join(",");
  });
  mkdirSync(join(sluice.dagsDir, "data"), { recursive: true });
  writeFileSync(join(sluice.dagsDir, "data", "penguins.csv"), penguins);
  writeFileSync(join(sluice.dagsDir, "data", "penguins_heavy.csv"), `${[header, ...heavy].join("\n")}\n`);
  sluice.addDag("penguins_train.yaml", readFileSync(join(repo, "penguins_train.yaml"), "utf8"));
  sluice.addDag("penguins_monitor.yaml", readFileSync(join(repo, "penguins_monitor.yaml"), "utf8"));
  await sluice.until("the penguin DAGs to be read", async () => (await sluice.api("GET", "/dags/penguins_monitor")).dag_id);
  /** @param {string} dag @param {unknown} conf */
  const runToEnd = async (dag, conf) => {
    const run = await sluice.api("POST", `/dags/${dag}/dagRuns`, { conf });
    const path = `/dags/${dag}/dagRuns/${encodeURIComponent(run.dag_run_id)}`;
    return sluice.until(`${dag} to finish`, async () => {
      const state = (await sluice.api("GET", path)).state;
      return state === "success" || state === "failed" ? state : null;
    }, 300000);
  };
  assert.equal(await runToEnd("penguins_train", {}), "success");
  assert.equal(await runToEnd("penguins_monitor", { batch: "data/penguins_heavy.csv" }), "success");
  // The drift triggers a retraining: let it end, so that later tests measure a quiet server.
  await sluice.until("the retraining to end", async () => {
    const runs = (await sluice.api("GET", "/dags/penguins_train/dagRuns")).dag_runs;
    return runs.length === 2 && runs.every((/** @type {any} */ r) => r.state === "success" || r.state === "failed");
  }, 300000);

  await page.goto(`${sluice.url}/#/models`);
  await page.locator("table.models").getByRole("link", { name: "penguins_species" }).click();
  await page.waitForURL(/#\/models\/penguins_species$/);
  const versions = page.locator("table.versions tbody tr");
  await versions.first().waitFor();
  assert.ok((await versions.count()) >= 1);
  await page.locator("table.versions .badge").getByText("production").first().waitFor();
  const accuracy = page.locator("table.versions thead th").getByText("accuracy", { exact: true });
  assert.equal(await accuracy.count(), 1, "a column per metric");
  assert.match((await page.locator("table.versions tbody tr").first().textContent()) ?? "", /0\.\d{4}|1\.0000/);
  assert.ok((await page.locator("table.stages tbody tr").count()) >= 1, "the promotion is in the stage history");
  await page.locator(".drift-chart h3").getByText(/^body_mass_g · /).first().waitFor();
  await page.locator(".drift-chart svg circle.fill-failed").first().waitFor();
  await page.locator("table.reports .badge").getByText("drifted", { exact: true }).waitFor();
  await shot(page, "model");
  noConsoleErrors(errors, "models");
});

test("an Admin manages users and API keys", async () => {
  const { page, errors } = admin;
  await page.goto(`${sluice.url}/#/admin/users`);
  await page.getByRole("button", { name: "New user" }).click();
  const newUser = page.getByRole("form", { name: "New user" });
  await newUser.getByLabel("Username").fill("grace");
  await newUser.getByLabel("Role").selectOption("User");
  await newUser.getByLabel("Password").fill("compilers-1952");
  await newUser.getByRole("button", { name: "Save" }).click();
  const grace = page.locator("table.users tbody tr", { hasText: "grace" });
  await grace.getByRole("cell", { name: "User", exact: true }).waitFor();
  const own = page.locator("table.users tbody tr").filter({ has: page.getByRole("cell", { name: "admin", exact: true }) });
  assert.equal(await own.getByRole("button").count(), 0, "an Admin neither deletes nor demotes themselves");

  await grace.getByRole("button", { name: "Change role" }).click();
  const roleForm = page.getByRole("form", { name: "Role of grace" });
  assert.equal(await roleForm.getByLabel("Role").inputValue(), "User", "the form starts from the current role");
  await roleForm.getByLabel("Role").selectOption("Op");
  await roleForm.getByRole("button", { name: "Save" }).click();
  await grace.getByRole("cell", { name: "Op", exact: true }).waitFor();
  const users = await sluice.api("GET", "/auth/users");
  assert.equal(users.users.find((/** @type {any} */ u) => u.username === "grace").role, "Op");
  await shot(page, "admin-users-edit");

  // A key for grace, then one of the admin's own: each secret is shown once and works at once.
  await page.goto(`${sluice.url}/#/admin/api-keys`);
  await page.locator('header nav a[aria-current="page"]').getByText("Admin").waitFor();
  /** @param {string} name @param {string} owner @param {string} role */
  const newKey = async (name, owner, role) => {
    await page.getByRole("button", { name: "New API key" }).click();
    const form = page.getByRole("form", { name: "New API key" });
    await form.getByLabel("Name").fill(name);
    await form.getByLabel("Owner", { exact: true }).selectOption(owner);
    await form.getByLabel(/^Role/).selectOption(role);
    await form.getByRole("button", { name: "Save" }).click();
    await page.locator("table.api-keys tbody tr", { hasText: name }).waitFor();
    const key = (await page.locator("pre.api-key").textContent()) ?? "";
    assert.match(key, /^sluice_[0-9a-f]{32}_[0-9a-f]+$/);
    return key;
  };
  /** @param {string} key @param {string} path */
  const statusWith = async (key, path) => (await fetch(`${sluice.url}/api/v2${path}`, { headers: { Authorization: `Bearer ${key}` } })).status;
  const deployKey = await newKey("deploy-bot", "grace", "User");
  const deployRow = page.locator("table.api-keys tbody tr", { hasText: "deploy-bot" });
  assert.equal(await deployRow.getByRole("cell", { name: "grace", exact: true }).count(), 1);
  assert.equal(await statusWith(deployKey, "/dags"), 200);
  assert.equal(await statusWith(deployKey, "/variables"), 403, "the key acts as User, below grace's Op");
  await newKey("nightly", "admin", "Viewer");
  assert.equal(await page.locator("pre.api-key").count(), 1, "only the newest key is shown");
  await shot(page, "admin-api-keys-new");
  await deployRow.getByRole("button", { name: "Revoke" }).click();
  await page.waitForFunction(() => !document.querySelector("pre.api-key"));
  assert.equal(await deployRow.getByRole("button", { name: "Revoke" }).count(), 0);
  assert.equal(await statusWith(deployKey, "/dags"), 401, "a revoked key stops working");
  await page.goto(`${sluice.url}/#/admin/users`);
  await page.goto(`${sluice.url}/#/admin/api-keys`);
  await page.locator("table.api-keys").waitFor();
  assert.equal(await page.locator("pre.api-key").count(), 0, "a key's secret is not shown again");

  await page.goto(`${sluice.url}/#/admin/users`);
  await grace.getByRole("button", { name: "Delete" }).click();
  await grace.waitFor({ state: "detached" });
  const left = await sluice.api("GET", "/auth/users");
  assert.deepEqual(left.users.map((/** @type {any} */ u) => u.username), ["admin", "viewer"]);
  noConsoleErrors(errors, "users and API keys");
});

test("a 50,000-line log opens without freezing the tab", async () => {
  const { page, errors } = admin;
  const run = await sluice.api("POST", "/dags/big_log/dagRuns", { conf: {} });
  await sluice.until(
    "the chatty task to finish",
    async () => (await sluice.api("GET", `/dags/big_log/dagRuns/${encodeURIComponent(run.dag_run_id)}`)).state === "success",
  );
  await page.goto(`${sluice.url}/#/dags/big_log/runs/${encodeURIComponent(run.dag_run_id)}/tasks/chatty`);
  const start = Date.now();
  await page.locator(".log-tools").getByText(/^500\d\d lines/).waitFor({ timeout: 20000 });
  const loaded = Date.now() - start;
  // The page answers at once while holding every line: only a window of them is in the DOM.
  const t0 = Date.now();
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));
  assert.ok(Date.now() - t0 < 200, "a frame is drawn promptly");
  assert.ok((await page.locator(".log .line").count()) < 200, "the log is windowed");
  await page.locator(".log").getByText("50000", { exact: true }).waitFor();
  assert.ok(loaded < 5000, `50,000 lines loaded in ${loaded} ms`);
  noConsoleErrors(errors, "big log");
});

test("a Viewer sees no trigger, pause or clear", async () => {
  const viewer = await openPage(browser);
  const { page, errors } = viewer;
  await signIn(page, "viewer", "viewer-password-1");
  await page.locator('tr[data-dag="ui_demo"]').waitFor();
  assert.equal(await page.locator("a.trigger").count(), 0, "no trigger button");
  assert.equal(await page.locator('tr[data-dag="ui_demo"]').getByRole("switch").isDisabled(), true, "no pause");
  await page.goto(`${sluice.url}/#/dags/ui_demo/grid`);
  await page.locator("table.grid").waitFor();
  assert.equal(await page.locator("a.trigger").count(), 0);
  assert.equal(await page.getByRole("link", { name: "Trigger" }).count(), 0);
  const runs = await sluice.api("GET", "/dags/flaky/dagRuns");
  await page.goto(`${sluice.url}/#/dags/flaky/runs/${encodeURIComponent(runs.dag_runs[0].dag_run_id)}/tasks/fragile`);
  await page.locator(".tries").waitFor();
  assert.equal(await page.getByRole("button", { name: "Clear" }).count(), 0, "no clear button");
  assert.equal(await page.getByRole("button", { name: /^Mark / }).count(), 0, "no mark buttons");
  await page.goto(`${sluice.url}/#/dags/flaky/runs/${encodeURIComponent(runs.dag_runs[0].dag_run_id)}`);
  await page.locator("table.tis").waitFor();
  assert.equal(await page.locator("main .actions button").count(), 0, "no clear or mark on a run");
  await page.goto(`${sluice.url}/#/backfills?dag=daily_numbers`);
  await page.locator("table.backfills").waitFor();
  assert.equal(await page.locator("form.backfill-form").count(), 0, "no backfill form");
  assert.equal(await page.locator("table.backfills button").count(), 0, "no pause, resume or cancel");
  // Users are Admin's; API keys, each user's own.
  await page.goto(`${sluice.url}/#/admin/users`);
  await page.locator('main .tabs a[aria-current="page"]').getByText("Workers").waitFor();
  assert.deepEqual(await page.locator("main .tabs a").allTextContents(), ["Workers", "Pools", "API keys"]);
  assert.equal(await page.locator("table.users").count(), 0);
  await page.goto(`${sluice.url}/#/admin/api-keys`);
  await page.getByText("No API keys").waitFor();
  assert.equal(await page.getByText("nightly").count(), 0, "another user's keys are not listed");
  await page.getByRole("button", { name: "New API key" }).click();
  const form = page.getByRole("form", { name: "New API key" });
  assert.equal(await form.getByLabel("Owner", { exact: true }).count(), 0, "no choice of owner");
  assert.deepEqual(await form.getByLabel(/^Role/).locator("option").allTextContents(), ["Viewer"]);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in to Sluice" }).waitFor();
  noConsoleErrors(errors, "viewer");
  await viewer.context.close();
});

/**
 * Presses Tab through the whole page: every action in `main` (link, button, field, focusable region) must get the
 * focus, each showing it; what was not reached or did not show its focus.
 * @param {import("playwright-core").Page} page
 */
async function tabThrough(page) {
  const count = await page.evaluate(() => {
    const actions = [...document.querySelectorAll("main a[href], main button, main input, main select, main textarea, main [tabindex]")]
      .filter((el) => el instanceof HTMLElement || el instanceof SVGElement)
      .filter((el) => /** @type {HTMLElement} */ (el).tabIndex >= 0 && !el.matches(":disabled") && el.getClientRects().length > 0);
    actions.forEach((el, i) => el.setAttribute("data-kb", String(i)));
    /** @type {HTMLElement} */ (document.activeElement)?.blur();
    return actions.length;
  });
  assert.ok(count > 0, "the page has actions");
  const reached = new Set();
  /** @type {string[]} */
  const unseen = [];
  const all = await page.evaluate(() => document.querySelectorAll("a[href], button, input, select, textarea, [tabindex]").length);
  for (let i = 0; i < all + 5; i += 1) {
    await page.keyboard.press("Tab");
    const focus = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      const rect = el instanceof SVGElement ? el.querySelector("rect") : null;
      const shown = getComputedStyle(el).outlineStyle !== "none" || (rect !== null && getComputedStyle(rect).strokeWidth === "3px");
      return { kb: el.getAttribute("data-kb"), shown, name: `${el.tagName}#${el.id} ${(el.textContent ?? "").trim().slice(0, 30) || el.getAttribute("aria-label")}` };
    });
    if (!focus) continue;
    if (focus.kb !== null) reached.add(focus.kb);
    if (!focus.shown) unseen.push(focus.name);
  }
  const missed = await page.evaluate(
    (seen) => [...document.querySelectorAll("[data-kb]")].filter((el) => !seen.includes(el.getAttribute("data-kb") ?? "")).map((el) => `${el.tagName} ${(el.textContent ?? "").trim().slice(0, 30)}`),
    [...reached],
  );
  return { count, missed, unseen };
}

test("every action is reachable by Tab, with a visible focus, and works with Enter", async () => {
  const { page, errors } = admin;
  const runs = await sluice.api("GET", "/dags/flaky/dagRuns");
  const task = `#/dags/flaky/runs/${encodeURIComponent(runs.dag_runs[0].dag_run_id)}/tasks/fragile`;
  for (const [view, ready] of [
    ["#/dags", "table.dags tbody tr"],
    ["#/dags/ui_demo/graph", ".graph-wrap svg .node"],
    [task, ".tries tbody tr"],
    ["#/backfills?dag=daily_numbers", "form.backfill-form"],
    ["#/admin/users", "table.users"],
  ]) {
    await page.goto(`${sluice.url}/${view}`);
    await page.locator(ready).first().waitFor();
    const { count, missed, unseen } = await tabThrough(page);
    assert.deepEqual(missed, [], `${view}: ${missed.length} of ${count} actions not reached by Tab`);
    assert.deepEqual(unseen, [], `${view}: focus not shown`);
  }
  // The grid is one Tab stop, its cells reached by the arrows (tested above); a form opens and is sent by keyboard.
  await page.goto(`${sluice.url}/#/admin/variables`);
  const opener = page.getByRole("button", { name: "New variable" });
  await opener.waitFor();
  await opener.focus();
  await page.keyboard.press("Enter");
  await page.keyboard.type("by_keyboard");
  assert.equal(await page.getByLabel("Key").inputValue(), "by_keyboard", "the form's first field has the focus");
  await page.keyboard.press("Tab");
  await page.keyboard.type("typed");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await page.locator("table.variables").getByText("by_keyboard").waitFor();
  assert.equal((await sluice.api("GET", "/variables/by_keyboard")).value, "typed");
  noConsoleErrors(errors, "keyboard");
});

test("empty states say what to do", async () => {
  const bare = await startSluice({});
  const fresh = await openPage(browser);
  const { page, errors } = fresh;
  try {
    await page.goto(`${bare.url}/`);
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel("Password").fill(bare.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("main .empty").getByText("No DAGs yet: put a YAML file in the DAGs folder").waitFor();
    for (const [view, advice] of [
      ["#/assets", /^No assets yet: a task that declares/],
      ["#/models", /^No models yet: a DAG task with `train:`/],
      ["#/admin/variables", /^No variables yet/],
      ["#/admin/api-keys", /^No API keys/],
    ]) {
      await page.goto(`${bare.url}/${view}`);
      await page.locator("main .empty").first().getByText(advice).waitFor();
    }
    noConsoleErrors(errors, "empty states");
  } finally {
    await fresh.context.close();
    await bare.stop();
  }
});

test("a narrow window", async () => {
  const narrow = await openPage(browser, { width: 390, height: 844 });
  const { page, errors } = narrow;
  await signIn(page, "admin", sluice.password);
  await shot(page, "narrow-dags");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the DAG list fits a narrow window (overflow ${overflow}px)`);
  await page.goto(`${sluice.url}/#/dags/ui_demo/grid`);
  await page.locator("table.grid").waitFor();
  await shot(page, "narrow-grid");
  noConsoleErrors(errors, "narrow window");
  await narrow.context.close();
});

const CATALOG = `dag_id: ui_catalog
owner: bird-team
schedule: null
start_date: 2026-01-01
is_paused_upon_creation: false
tasks:
  - id: ingest
    kind: ingest
    source: {type: csv, path: data/birds.csv}
    outputs: [lake://raw/birds]
  - id: quality
    kind: quality
    depends_on: [ingest]
    inputs: [lake://raw/birds]
    checks:
      - {row_count: {min: 3}}
      - {column: species, not_null: true}
  - id: summary
    depends_on: [quality]
    script: |
      echo '::output::{"table": "birds", "rows": 3}'
`;

test("a DAG's schedule and next run; an asset's catalog entry and quality report; a task's outputs; a run's queued time", async () => {
  const { page, errors } = admin;
  const daily = await sluice.api("GET", "/dags/daily_numbers");
  assert.ok(daily.next_dagrun_logical_date, JSON.stringify(daily));
  await page.goto(`${sluice.url}/#/dags`);
  const row = page.locator('tr[data-dag="daily_numbers"]');
  await row.waitFor();
  assert.equal(await row.locator("td.mono").textContent(), daily.timetable_summary);
  assert.equal(await row.locator("time").first().getAttribute("datetime"), daily.next_dagrun_logical_date, "the next run");

  mkdirSync(join(sluice.dagsDir, "data"), { recursive: true });
  writeFileSync(join(sluice.dagsDir, "data", "birds.csv"), "species,wing_mm\nAdelie,190\nGentoo,217\nChinstrap,196\n");
  sluice.addDag("ui_catalog.yaml", CATALOG);
  await sluice.until("ui_catalog to be read", async () => (await sluice.api("GET", "/dags/ui_catalog")).dag_id);
  const run = await sluice.api("POST", "/dags/ui_catalog/dagRuns", { conf: {} });
  const runPath = `/dags/ui_catalog/dagRuns/${encodeURIComponent(run.dag_run_id)}`;
  await sluice.until("ui_catalog to succeed", async () => (await sluice.api("GET", runPath)).state === "success", 30000);

  await page.goto(`${sluice.url}/#/assets`);
  const asset = page.locator('table.assets tr[data-uri="lake://raw/birds"]');
  await asset.waitFor();
  const cells = await asset.locator("td").allTextContents();
  assert.equal(cells[1], "bird-team", "the owner");
  assert.equal(await asset.locator("summary").textContent(), "2 columns", "the schema");
  assert.equal(cells[3], "3", "the row count");
  assert.equal(cells[5], "passed", "the quality status");
  assert.equal(cells[6], "ui_catalog.ingest");
  await asset.locator("time").waitFor();
  await asset.locator("summary").click();
  assert.equal(await asset.locator("li").count(), 2, "one line per column");
  await asset.getByRole("button", { name: "lake://raw/birds" }).click();
  const report = page.locator("table.quality");
  await report.waitFor();
  assert.equal(await report.locator("tbody tr").count(), 2, "one line per check");
  assert.equal(await report.locator("tbody .badge.st-success").count(), 2);
  await page.getByRole("heading", { name: "Quality of lake://raw/birds: passed" }).waitFor();

  await page.goto(`${sluice.url}/#/dags/ui_catalog/runs/${encodeURIComponent(run.dag_run_id)}/tasks/summary`);
  const outputs = page.locator(".card", { has: page.getByRole("heading", { name: "Outputs" }) });
  await outputs.locator("pre.code").waitFor();
  assert.deepEqual(JSON.parse((await outputs.locator("pre.code").textContent()) ?? ""), { table: "birds", rows: 3 });

  // Each try is drawn from queued (pale) to started, then solid to its end: the two bars meet.
  await page.goto(`${sluice.url}/#/dags/ui_catalog/runs/${encodeURIComponent(run.dag_run_id)}`);
  const bars = page.locator('.chart-wrap svg[aria-label="Gantt chart of the run"] a');
  await bars.first().waitFor();
  assert.equal(await bars.count(), 3, "one bar per try");
  for (const bar of await bars.all()) {
    const [queued, ran] = await bar.locator("rect").evaluateAll((rects) =>
      rects.map((r) => ({ x: Number(r.getAttribute("x")), width: Number(r.getAttribute("width")), opacity: r.getAttribute("opacity") })),
    );
    assert.equal(queued.opacity, "0.3", "the queued part is pale");
    assert.equal(ran.opacity, null, "the running part is solid");
    assert.ok(Math.abs(queued.x + queued.width - ran.x) < 1.01, `the queued part ends where the try starts: ${JSON.stringify([queued, ran])}`);
    assert.match((await bar.locator("title").textContent()) ?? "", /\nwaited .+ · ran .+$/);
  }
  await shot(page, "gantt");
  noConsoleErrors(errors, "schedule, catalog, outputs, Gantt");
});

test("an expired session shows the sign-in, which leads back to the page asked for", async () => {
  const tab = await openPage(browser);
  const { page, errors } = tab;
  await signIn(page, "viewer", "viewer-password-1");
  // A token the server no longer accepts (its signature altered) still names its user to the dashboard.
  await page.evaluate(() => {
    const t = sessionStorage.getItem("sluice-token") ?? "";
    sessionStorage.setItem("sluice-token", `${t.slice(0, -4)}${t.slice(-4) === "AAAA" ? "BBBB" : "AAAA"}`);
  });
  await page.evaluate(() => {
    location.hash = "#/dags/flaky/grid";
  });
  await page.getByRole("heading", { name: "Sign in to Sluice" }).waitFor();
  assert.match(page.url(), /#\/signin\?next=%2Fdags%2Fflaky%2Fgrid$/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("sluice-token")), null, "the refused token is dropped");
  await page.getByLabel("Username").fill("viewer");
  await page.getByLabel("Password").fill("viewer-password-1");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/#\/dags\/flaky\/grid$/);
  await page.getByRole("heading", { name: "flaky", exact: true }).waitFor();
  // The browser itself logs each refused request; nothing else may be logged.
  const others = errors.splice(0).filter((e) => !/status of 401/.test(e));
  assert.deepEqual(others, [], "console errors besides the refused requests");
  await tab.context.close();
});

test("budgets: 2,000 DAGs listed and a 25 × 200 grid, each under a second", async () => {
  const { page, errors } = admin;
  for (let i = 0; i < 2000; i += 1) {
    const id = `perf_${String(i).padStart(4, "0")}`;
    sluice.addDag(`${id}.yaml`, `dag_id: ${id}\nowner: perf\ntags: [perf, batch${i % 7}]\nschedule: "@daily"\nstart_date: 2026-01-01\ntasks:\n  - id: only\n    script: echo ${i}\n`);
  }
  sluice.addDag("wide.yaml", wideDag(200));
  await sluice.until("2,000 more DAGs to be read", async () => (await sluice.api("GET", "/dags?limit=1")).total_entries >= 2005, 180000);
  for (let i = 0; i < 25; i += 1) {
    const run = await sluice.api("POST", "/dags/wide/dagRuns", { conf: {}, dag_run_id: `perf_${i}` });
    await sluice.api("PATCH", `/dags/wide/dagRuns/${run.dag_run_id}`, { state: i % 5 === 4 ? "failed" : "success" });
  }

  await page.goto(`${sluice.url}/#/backfills`);
  await page.locator("h1").getByText("Backfills").waitFor();
  let start = Date.now();
  await page.goto(`${sluice.url}/#/dags`);
  await page.waitForFunction(() => document.querySelectorAll("table.dags tbody tr").length === 50);
  const list = Date.now() - start;
  start = Date.now();
  await page.getByLabel("Search DAGs").fill("perf_19");
  await page.waitForFunction(() => document.querySelectorAll("table.dags tbody tr").length === 50 && document.querySelector('tr[data-dag="perf_1900"]'));
  const search = Date.now() - start - 200; // the search waits 200 ms for the typing to stop
  start = Date.now();
  await page.getByRole("button", { name: "Next →" }).click();
  await page.waitForFunction(() => document.querySelector('tr[data-dag="perf_1950"]'));
  const nextPage = Date.now() - start;
  console.log(`2,000 DAGs: list ${list} ms, search ${search} ms, next page ${nextPage} ms`);
  assert.ok(list < 1000, `the DAG list took ${list} ms`);
  assert.ok(search < 1000, `a search took ${search} ms`);
  assert.ok(nextPage < 1000, `the next page took ${nextPage} ms`);

  start = Date.now();
  await page.goto(`${sluice.url}/#/dags/wide/grid`);
  await page.waitForFunction(() => document.querySelectorAll("table.grid tbody a.cell").length === 5000);
  const grid = Date.now() - start;
  console.log(`25 × 200 grid: ${grid} ms`);
  assert.ok(grid < 1000, `the grid took ${grid} ms`);
  assert.equal(await page.locator("table.grid tbody a.cell.st-success").count(), 4000);
  noConsoleErrors(errors, "budgets");
});
