// The SSO & SAML page in a real browser (Debian's chromium, driven by
// playwright-core). Started by tests/sso_browser.rs, which runs the gate,
// the pysaml2 IdP and the recording upstream, and checks what the upstream
// received afterwards. Fails (exit 1) on the first unmet expectation.
//
// Environment: GATE_URL (the gate's public_url: http://127.0.0.1:PORT, the
// same site as the IdP, so the gate's SameSite=Lax request-state cookie
// rides the IdP's POST on plain http), METADATA_FILE (the IdP metadata XML
// to upload), SCREENSHOT (a PNG path).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const metadataFile = process.env.METADATA_FILE;
const screenshot = process.env.SCREENSHOT;
const GATE = process.env.GATE_URL;

function fail(msg) {
  throw new Error(msg);
}

// Without the background-networking flags Chromium waits on services it
// cannot reach on a closed network.
const args = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-proxy-server",
];

const dirs = [];
async function fresh() {
  const dir = mkdtempSync(join(tmpdir(), "authgate-chromium-"));
  dirs.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args,
    timeout: 60000,
  });
  ctx.setDefaultTimeout(30000);
  return ctx;
}

/// Signs in through the IdP as `user` (the IdP's test users) and returns
/// the page where the gate sent the browser back.
async function signIn(ctx, user, rd) {
  // The IdP signs in the user named in its query: the gate's redirect to
  // the IdP gets `&user=` appended (a route cannot rewrite the target of a
  // redirect the browser follows itself).
  await ctx.route(
    (url) => url.pathname === "/_auth/saml/login",
    async (route) => {
      const resp = await route.fetch({ maxRedirects: 0 });
      const headers = resp.headers();
      headers.location = `${headers.location}&user=${user}`;
      await route.fulfill({ response: resp, headers });
    },
  );
  const page = await ctx.newPage();
  await page.goto(`${GATE}/_auth/saml/login?rd=${encodeURIComponent(rd)}`);
  try {
    await page.waitForURL(`${GATE}${rd}`);
  } catch (e) {
    fail(`${user} did not land on ${rd}: at ${page.url()}: ${(await page.content()).slice(0, 2000)}`);
  }
  return page;
}

async function saved(page) {
  await page.waitForURL(/[?&]saved=\d+/);
  const notice = await page.locator("#notice").textContent();
  if (!/^Saved \(version \d+\)/.test(notice || "")) fail(`no saved notice: ${notice}`);
}

let admin;
let user;
try {
  // 1. The administrator signs in at the IdP and opens the page.
  admin = await fresh();
  const cspErrors = [];
  admin.on("console", (m) => {
    if (m.type() === "error" && /Content.Security.Policy/i.test(m.text())) cspErrors.push(m.text());
  });
  const page = await signIn(admin, "alice", "/_auth/admin/sso");
  if ((await page.locator("h1").textContent()) !== "SSO & SAML") fail("not the SSO page");
  // The copy buttons: shown by the page's script (allowed by the CSP).
  const copy = page.locator("button.copy").first();
  await copy.waitFor({ state: "visible" });
  await copy.click();
  await page.locator("button.copy", { hasText: "Copied" }).first().waitFor();

  // 2. Upload the IdP metadata file.
  await page.setInputFiles("#metadata_file", metadataFile);
  await page.click("#upload");
  await saved(page);
  const source = await page.locator("#metadata-status").textContent();
  if (!source.includes("SSO settings page")) fail(`metadata source: ${source}`);

  // 3. Add a mapping row (reviewer ← ls-reviewers) and save.
  await page.click("#add-role");
  await page.waitForSelector("#role-2-name");
  await page.selectOption("#role-1-name", "reviewer");
  await page.fill("#role-1-groups", "ls-reviewers");
  await page.click("#save");
  await saved(page);
  const groups = await page.inputValue("#role-1-groups");
  if (groups !== "ls-reviewers") fail(`row not saved: ${groups}`);
  await page.screenshot({ path: screenshot, fullPage: true });
  if (cspErrors.length) fail(`CSP violations: ${cspErrors.join(" | ")}`);

  // 4. A mapped user, in a fresh browser profile, lands upstream.
  user = await fresh();
  const landed = await signIn(user, "okta", "/labels");
  console.log(`landed ${landed.url()}`);

  // 5. That user (a reviewer) is refused the page.
  const denied = await landed.goto(`${GATE}/_auth/admin/sso`);
  if (denied.status() !== 403) {
    fail(`non-admin got ${denied.status()} at ${landed.url()}: ${(await landed.locator("main p").first().textContent())}`);
  }
  console.log("ok");
} catch (e) {
  console.error(`FAILED: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  for (const c of [admin, user]) if (c) await c.close().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
