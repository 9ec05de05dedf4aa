// Loads tollgate's /dashboard in headless Chromium (playwright-core) and reports what it shows.
//
// Usage: node dashboard.mjs <base-url> <admin-key> <screenshot-dir> <expected-json>
//   or, for a server with no traffic yet, expected-json {"empty": true, "instance": "..."}
//   expected-json: {"subscriptions": [...], "tools": [...], "instance": "...", "hits": N, "misses": N}
// Env: TOLLGATE_TEST_NODE_MODULES (where playwright-core is), TOLLGATE_TEST_CHROMIUM.
// Prints one JSON object; exits 1 when a check fails, 2 when the browser cannot run.
import { createRequire } from "node:module";
import path from "node:path";

const [, , baseUrl, adminKey, screenshotDir, expectedJson] = process.argv;
const expected = JSON.parse(expectedJson);
const require = createRequire(path.join(process.env.TOLLGATE_TEST_NODE_MODULES, "resolve-from-here.js"));
const { chromium } = require("playwright-core");

const origin = new URL(baseUrl).origin;
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };

const browser = await chromium.launch({
  executablePath: process.env.TOLLGATE_TEST_CHROMIUM,
  headless: true,
  chromiumSandbox: false,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  timeout: 60_000,
});

const requests = [];
const consoleErrors = [];
function watch(page) {
  page.on("request", (request) => requests.push(request.url()));
  page.on("console", (message) => { if (message.type() === "error") consoleErrors.push(message.text()); });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
}

let result;
try {
  if (expected.empty) {
    // A server with no traffic yet: the page says so instead of drawing empty charts.
    const page = await browser.newPage();
    watch(page);
    await page.goto(`${baseUrl}/dashboard#key=${encodeURIComponent(adminKey)}`);
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 20_000 });
    const emptyShown = await page.isVisible("#empty");
    const shown = { instance: (await page.innerText("#instance-id")).trim(), emptyShown,
      bars: await page.locator("rect.bar").count() };
    check(emptyShown, "the empty state is shown");
    check(shown.bars === 0, "no bars without traffic");
    check(shown.instance === expected.instance, `instance shown ${shown.instance}`);
    await page.screenshot({ path: path.join(screenshotDir, "dashboard-empty.png"), fullPage: true });
    const foreign = requests.filter((url) => !url.startsWith(origin + "/"));
    check(foreign.length === 0, `requests to other hosts: ${foreign.join(", ")}`);
    check(consoleErrors.length === 0, `console errors: ${consoleErrors.join(" | ")}`);
    result = { ok: failures.length === 0, failures, shown, foreign, requests: [...new Set(requests)] };
  } else {
  // 1. The key in the fragment: the page loads the figures at once.
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watch(page);
  await page.goto(`${baseUrl}/dashboard#key=${encodeURIComponent(adminKey)}`);
  await page.waitForSelector('body[data-loaded="true"]', { timeout: 20_000 });
  await page.waitForSelector('svg[data-chart="cache"] rect.bar', { timeout: 20_000 });
  const text = await page.innerText("body");
  const shown = {
    hits: (await page.innerText("#cache-hits")).trim(),
    misses: (await page.innerText("#cache-misses")).trim(),
    instance: (await page.innerText("#instance-id")).trim(),
    hitBars: await page.locator('svg[data-chart="cache"] rect.bar-hit').count(),
    missBars: await page.locator('svg[data-chart="cache"] rect.bar-miss').count(),
  };
  check(shown.hits === String(expected.hits), `hits shown ${shown.hits}, sent ${expected.hits}`);
  check(shown.misses === String(expected.misses), `misses shown ${shown.misses}, sent ${expected.misses}`);
  check(shown.instance === expected.instance, `instance shown ${shown.instance}`);
  check(text.includes(expected.instance + " (this one)"), "the instances table names this one");
  check(shown.hitBars > 0 && shown.missBars > 0, "the cache chart has bars of both kinds");
  for (const name of expected.subscriptions) check(text.includes(name), `subscription ${name} shown`);
  for (const tool of expected.tools || []) check(text.includes(tool), `tool ${tool} shown`);
  check(!page.url().includes("key="), "the key is taken out of the address bar");
  await page.screenshot({ path: path.join(screenshotDir, "dashboard.png"), fullPage: true });

  // 2. A phone: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(100);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `the page is ${overflow}px wider than a phone screen`);
  await page.screenshot({ path: path.join(screenshotDir, "dashboard-phone.png"), fullPage: true });

  // 3. No key: the page asks, refuses a wrong one, takes the right one.
  const fresh = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const asking = await fresh.newPage();
  watch(asking);
  await asking.goto(`${baseUrl}/dashboard`);
  await asking.waitForSelector("#key-form:not([hidden])", { timeout: 10_000 });
  await asking.getByLabel("Admin key").fill("not-the-admin-key");
  await asking.getByRole("button", { name: "Show the dashboard" }).click();
  await asking.waitForFunction(() => document.getElementById("key-error").textContent.length > 0, null, { timeout: 10_000 });
  const refusal = await asking.innerText("#key-error");
  await asking.getByLabel("Admin key").fill(adminKey);
  await asking.getByRole("button", { name: "Show the dashboard" }).click();
  await asking.waitForSelector('body[data-loaded="true"]', { timeout: 10_000 });
  check((await asking.innerText("#cache-hits")).trim() === String(expected.hits), "hits after typing the key");

  const foreign = requests.filter((url) => !url.startsWith(origin + "/"));
  check(foreign.length === 0, `requests to other hosts: ${foreign.join(", ")}`);
  // A refused key is answered 403, which the browser logs; anything else is a fault.
  const faults = consoleErrors.filter((e) => !e.includes("403"));
  check(faults.length === 0, `console errors: ${faults.join(" | ")}`);
  result = { ok: failures.length === 0, failures, shown, refusal, overflow,
    requests: [...new Set(requests)], foreign, consoleErrors };
  }
} catch (error) {
  result = { ok: false, failures: [...failures, String(error)], requests: [...new Set(requests)], consoleErrors };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
