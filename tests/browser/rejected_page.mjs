// Opens the customer page of a request rejected with a code, in headless Chromium, and checks
// what the customer sees: what to correct and the fix, and the fields to correct highlighted
// (and only those). A screenshot goes to OUT_DIR. Run by tests/api/browser.rs.
//
//   node rejected_page.mjs LINK_URL OUT_DIR
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(process.env.KPR_NODE_MODULES + "/");
const { chromium } = require("playwright-core");
const [link, out] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 430, height: 900 } })).newPage();
  const opened = await page.goto(link);
  if (opened.status() !== 200) throw new Error("the link answered " + opened.status());
  const heading = await page.locator("#rejection-h").textContent();
  if (!heading.includes("Wrong PIN or passcode")) throw new Error("no rejection heading: " + heading);
  const fix = await page.locator("#rejection").textContent();
  if (!fix.includes("port-out PIN")) throw new Error("no fix: " + fix);
  const outline = async (id) =>
    page.locator("#" + id).evaluate((el) => getComputedStyle(el).outlineStyle + " " + el.closest(".field").className);
  const pin = await outline("bill-pin");
  if (!pin.startsWith("solid") || !pin.includes("to-correct")) throw new Error("the PIN is not highlighted: " + pin);
  const name = await outline("bill-name");
  if (name.startsWith("solid") || name.includes("to-correct")) throw new Error("the name is highlighted: " + name);
  const label = await page.locator("label[for=bill-pin]").textContent();
  if (!label.includes("correct this")) throw new Error("the PIN's label does not say so: " + label);
  await page.screenshot({ path: path.join(out, "7-rejected.png"), fullPage: true });
} finally {
  await browser.close();
}
