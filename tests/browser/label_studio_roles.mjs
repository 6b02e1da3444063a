// An annotator's pages of the real Label Studio behind authgate with
// organization roles enforced (tests/label_studio.rs starts slapd, authgate
// and Label Studio). Signs in with the directory form, then opens the pages an
// annotator uses — the projects list, the project's data manager, the
// labeling stream, their own account — and one they may not use (the
// project's settings). Records every answer authgate refused with
// role_required (which API a page calls on load) and every console error and
// uncaught page error, and takes a screenshot of each page.
//
// Environment: GATE_URL, LOGIN_USER, LOGIN_PASSWORD, PROJECT (id), SHOTS (a
// directory). Prints one JSON line: per page, the HTTP status of the
// navigation, the refused requests, the console errors.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const GATE = process.env.GATE_URL;
const PROJECT = process.env.PROJECT;
const dir = mkdtempSync(join(tmpdir(), "authgate-chromium-"));
const ctx = await chromium.launchPersistentContext(dir, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-proxy-server"],
  timeout: 60000,
});
ctx.setDefaultTimeout(60000);
const pages = [];
try {
  const page = await ctx.newPage();
  let current = null;
  page.on("response", async (r) => {
    if (!current || r.status() !== 403) return;
    let body = "";
    try { body = await r.text(); } catch { /* navigation away */ }
    if (body.includes("role_required")) {
      current.refused.push(`${r.request().method()} ${new URL(r.url()).pathname}`);
    }
  });
  page.on("console", (m) => { if (current && m.type() === "error") current.console.push(m.text()); });
  page.on("pageerror", (e) => { if (current) current.console.push(`uncaught: ${e.message}`); });

  await page.goto(`${GATE}/projects/`);
  await page.fill("input[name=username]", process.env.LOGIN_USER);
  await page.fill("input[name=password]", process.env.LOGIN_PASSWORD);
  await Promise.all([
    page.waitForURL((u) => !u.pathname.startsWith("/_auth/")),
    page.press("input[name=password]", "Enter"),
  ]);
  for (const [name, path] of [
    ["projects", "/projects/"],
    ["data-manager", `/projects/${PROJECT}/data`],
    ["labeling", `/projects/${PROJECT}/data?labeling=1`],
    ["account", "/user/account/"],
    ["settings-refused", `/projects/${PROJECT}/settings/`],
  ]) {
    current = { name, path, status: 0, refused: [], console: [], text: "" };
    const resp = await page.goto(`${GATE}${path}`);
    current.status = resp ? resp.status() : 0;
    await page.waitForLoadState("networkidle").catch(() => {});
    // Single-page apps keep fetching for a moment after network idle.
    await page.waitForTimeout(1500);
    current.text = (await page.evaluate(() => document.body.innerText)).slice(0, 400);
    await page.screenshot({ path: join(process.env.SHOTS, `annotator-${name}.png`), fullPage: true });
    pages.push(current);
  }
  current = null;
  console.log(JSON.stringify({ pages }));
} finally {
  await ctx.close();
  rmSync(dir, { recursive: true, force: true });
}
