// The real Label Studio behind authgate, in a real browser (Debian's
// chromium, driven by playwright-core). Started by tests/label_studio.rs,
// which runs slapd, authgate and Label Studio with the integration.
// A person opens Label Studio's projects page, is sent to authgate's login,
// signs in with the directory form and lands on Label Studio's projects
// page as themselves — never on Label Studio's own login page.
//
// Environment: GATE_URL, LOGIN_USER, LOGIN_PASSWORD, SCREENSHOT (a PNG path).
// Prints one JSON line: the final URL and what /api/current-user/whoami said.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const GATE = process.env.GATE_URL;
const dir = mkdtempSync(join(tmpdir(), "authgate-chromium-"));
const ctx = await chromium.launchPersistentContext(dir, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  // Without the background-networking flags Chromium waits on services it
  // cannot reach on a closed network.
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-proxy-server"],
  timeout: 60000,
});
ctx.setDefaultTimeout(60000);
try {
  const page = await ctx.newPage();
  await page.goto(`${GATE}/projects/`);
  if (!page.url().includes("/_auth/login")) {
    throw new Error(`expected authgate's login page, got ${page.url()}`);
  }
  await page.fill("input[name=username]", process.env.LOGIN_USER);
  await page.fill("input[name=password]", process.env.LOGIN_PASSWORD);
  await Promise.all([
    page.waitForURL((u) => !u.pathname.startsWith("/_auth/")),
    page.press("input[name=password]", "Enter"),
  ]);
  await page.waitForLoadState("networkidle").catch(() => {});
  const url = new URL(page.url());
  if (url.pathname.startsWith("/user/login")) {
    throw new Error(`landed on Label Studio's own login page: ${page.url()}`);
  }
  const whoami = await page.evaluate(async () => {
    const r = await fetch("/api/current-user/whoami", { headers: { accept: "application/json" } });
    return { status: r.status, body: await r.json() };
  });
  await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  console.log(JSON.stringify({ path: url.pathname, title: await page.title(), whoami }));
} finally {
  await ctx.close();
  rmSync(dir, { recursive: true, force: true });
}
