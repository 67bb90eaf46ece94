// An emailed link as a person follows it, in headless Chromium (Debian's, at LABS_CHROMIUM or
// /usr/bin/chromium; never a downloaded browser): open the link, fill in the page's form,
// press its button, read the page that answers.
//
//   node scripts/browser/emailed-link.mjs LINK SCREENSHOT NAME=VALUE...
//
// Each NAME=VALUE fills the form field named NAME. Prints one JSON line: the answer's status,
// its heading and text, the console's errors (a CSP violation is one), and every request the
// page made after the link itself, with its Referer, so that the caller can check that the
// link's token went nowhere else. Saves a screenshot of the answer (outside the repository:
// the caller picks the path). Exits non-zero when a step cannot be done, naming the step.
import { chromium } from "playwright-core";

const [link, screenshot, ...fields] = process.argv.slice(2);
if (!screenshot) {
  console.error("usage: node emailed-link.mjs LINK SCREENSHOT NAME=VALUE...");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.LABS_CHROMIUM || "/usr/bin/chromium",
  // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let step = "open the link";
const page = await browser.newPage();
try {
  page.setDefaultTimeout(20_000);
  const consoleErrors = [];
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  // The headers as sent on the wire (`allHeaders`), not as the page asked for them.
  const seen = [];
  page.on("request", (request) => {
    if (request.url() !== link) {
      seen.push(
        request.allHeaders().then((headers) => ({
          method: request.method(),
          url: request.url(),
          // Chromium reports a request sent without one as an empty `referer`.
          referer: headers.referer || null,
          secFetchSite: headers["sec-fetch-site"] ?? null,
        })),
      );
    }
  });
  const opened = await page.goto(link);
  if (opened.status() !== 200) throw new Error(`the link answered ${opened.status()}`);

  for (const field of fields) {
    const [name, ...value] = field.split("=");
    step = `fill in ${name}`;
    await page.locator(`form [name="${name}"]`).fill(value.join("="));
  }
  step = "submit the form";
  const [answer] = await Promise.all([
    page.waitForNavigation(),
    page.locator('form button[type="submit"]').click(),
  ]);
  step = "read the answer";
  const heading = (await page.locator("h1").textContent()).trim();
  const text = (await page.locator("main").innerText()).trim();
  await page.screenshot({ path: screenshot, fullPage: true });
  const requests = await Promise.all(seen);
  console.log(JSON.stringify({ status: answer.status(), url: page.url(), heading, text, consoleErrors, requests }));
} catch (error) {
  console.error(`browser: cannot ${step}: ${error.message}`);
  const shown = await page.locator("body").innerText().catch(() => "");
  console.error(`browser: the page showed:\n${shown.slice(0, 2000)}`);
  await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
