// The docs UI as a person uses it, in headless Chromium (Debian's, at LABS_CHROMIUM or
// /usr/bin/chromium; never a downloaded browser): open /docs, press "Authorize", log in with
// the OAuth 2.0 password form, then "Try it out" on GET /auth/me and "Execute".
//
//   node scripts/browser/authorize.mjs DOCS_URL EMAIL PASSWORD SCREENSHOT
//
// Prints one JSON line, {"status": <the answer's status as the page shows it>, "body": ...},
// and saves a screenshot of the page after the call (outside the repository: the caller picks
// the path). Exits non-zero when a step cannot be done, naming the step.
import { chromium } from "playwright-core";

const [docsUrl, email, password, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error("usage: node authorize.mjs DOCS_URL EMAIL PASSWORD SCREENSHOT");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.LABS_CHROMIUM || "/usr/bin/chromium",
  // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let step = "open the docs";
const page = await browser.newPage();
try {
  page.setDefaultTimeout(20_000);
  const refused = [];
  page.on("console", (message) => {
    if (message.type() === "error") refused.push(message.text());
  });
  await page.goto(docsUrl);

  step = "press Authorize";
  await page.locator(".auth-wrapper button.authorize").click();

  step = "log in with the OAuth 2.0 password form";
  const oauth = page.locator(".auth-container", { hasText: "(OAuth2, password)" });
  await oauth.locator("#oauth_username").fill(email);
  await oauth.locator("#oauth_password").fill(password);
  await oauth.locator("button.authorize").click();
  // Authorized: the form turns into a Logout button.
  await oauth.locator("button", { hasText: "Logout" }).waitFor();
  await page.locator("button.close-modal").click();

  step = "try GET /auth/me";
  const me = page.locator("#operations-auth-get_me");
  await me.locator(".opblock-summary").click();
  await me.locator("button.try-out__btn").click();
  await me.locator("button.execute").click();
  const response = me.locator(".live-responses-table .response").first();
  const status = (await response.locator(".response-col_status").textContent()).trim();
  const body = (await response.locator(".response-col_description pre").first().textContent()).trim();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ status: Number(status), body, consoleErrors: refused }));
} catch (error) {
  console.error(`browser: cannot ${step}: ${error.message}`);
  // What the page showed (an error in the Authorize dialog, say), and a screenshot of it.
  const shown = await page.locator("body").innerText().catch(() => "");
  console.error(`browser: the page showed:\n${shown.slice(0, 2000)}`);
  await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
