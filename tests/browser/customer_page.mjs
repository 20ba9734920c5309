// Drives the customer page in headless Chromium (Playwright over CDP), as an end customer
// would: opens the link, corrects a field, uploads a bill, draws a signature and signs; then
// opens an expired link. A screenshot of each step goes to OUT_DIR. Run by tests/api/browser.rs.
//
//   node customer_page.mjs LINK_URL EXPIRED_URL BILL_PDF OUT_DIR
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(process.env.KPR_NODE_MODULES + "/");
const { chromium } = require("playwright-core");
const [link, expired, bill, out] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const shot = async (page, name) => page.screenshot({ path: path.join(out, name), fullPage: true });
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 430, height: 900 }, userAgent: "kpr-browser-test" });
  const page = await context.newPage();
  let expectErrors = false; // the expired link's 410 is logged by the browser as an error
  page.on("console", (m) => { if (m.type() === "error" && !expectErrors) problems.push("console: " + m.text()); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  // anything that leaves the service is a leak of the token (Referer) or a third party
  page.on("request", (r) => {
    const url = r.url();
    if (/^(https?|wss?):/.test(url) && !url.startsWith(new URL(link).origin)) problems.push("outside request: " + url);
  });

  const opened = await page.goto(link);
  if (opened.status() !== 200) throw new Error("the link answered " + opened.status());
  await shot(page, "1-opened.png");

  // correct a field, with the keyboard as a customer might
  await page.getByLabel("Name on the bill").fill("Jo Browser Doe");
  await page.getByLabel("Account number with your current provider").fill("ACC-778");
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Save details" }).click()]);
  if (!/done=details/.test(page.url())) {
    const why = await page.locator("#page-error").textContent().catch(() => "no message");
    throw new Error("the correction was refused: " + why);
  }
  await page.getByText("Your details are saved.").waitFor();
  await shot(page, "2-corrected.png");

  // upload a bill; the script shows progress and the file in the list
  await page.setInputFiles("#file", bill);
  await page.getByRole("button", { name: "Upload" }).click();
  await page.getByText("Uploaded: bill.pdf").waitFor({ timeout: 15000 });
  await shot(page, "3-uploaded.png");

  // sign: typed name, a drawn signature, consent
  await page.getByLabel("Your full name").fill("Jo Browser Doe");
  await page.locator("#pad").scrollIntoViewIfNeeded();
  const pad = await page.locator("#pad").boundingBox();
  await page.mouse.move(pad.x + 20, pad.y + pad.height * 0.6);
  await page.mouse.down();
  for (let i = 1; i <= 24; i++) {
    await page.mouse.move(pad.x + 20 + i * 12, pad.y + pad.height * (0.6 - 0.3 * Math.sin(i / 2)), { steps: 2 });
  }
  await page.mouse.up();
  await page.getByLabel(/I agree that my typed name/).check();
  await shot(page, "4-ready-to-sign.png");
  await page.locator("section[aria-labelledby=loa-h]").screenshot({ path: path.join(out, "4-signing.png") });
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: /Sign the letter/ }).click()]);
  if (!/done=signed/.test(page.url())) {
    const why = await page.locator("#page-error").textContent().catch(() => "no message");
    throw new Error("signing was refused: " + why);
  }
  await page.locator("#signed-status").waitFor();
  await shot(page, "5-signed.png");

  // an expired link: its own page, which says nothing of the request
  expectErrors = true;
  const gone = await page.goto(expired);
  if (gone.status() !== 410) throw new Error("the expired link answered " + gone.status());
  await page.getByText("This link has expired").waitFor();
  await shot(page, "6-expired.png");
} catch (e) {
  problems.push(String(e && e.stack || e));
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("ok");
