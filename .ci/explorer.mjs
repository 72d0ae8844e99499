// Drives the explorer at $BASE/graphql in Debian's headless Chromium (playwright-core):
// every request to another origin is refused and counted, and must not happen; logs in,
// waits for the schema browser to list Customer, opens it, runs a query, and runs a
// subscription that receives a lead made meanwhile.
import { chromium } from "playwright-core";

const base = process.env.BASE;
const origin = new URL(base).origin;
const fail = (message) => {
  console.error("explorer: " + message);
  process.exit(1);
};

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    // Names resolve to nothing but the server's own address.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  ],
});
const elsewhere = [];
const broken = [];
const problems = [];
try {
  const context = await browser.newContext();
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    elsewhere.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  page.on("requestfailed", (r) => broken.push(r.url() + " " + (r.failure() || {}).errorText));
  page.on("response", (r) => { if (r.status() >= 400 && !r.url().endsWith("/graphql")) broken.push(r.url() + " " + r.status()); });
  page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(String(e)));

  await page.goto(base + "/graphql", { waitUntil: "load" });
  await page.fill("#email", process.env.EMAIL);
  await page.fill("#password", process.env.PASSWORD);
  await page.click("#login button[type=submit]");
  const customer = page.locator('#types a[data-type="Customer"]');
  await customer.waitFor({ timeout: 15000 });
  await customer.click();
  await page.locator("#type h2", { hasText: "Customer" }).waitFor({ timeout: 5000 });
  const fields = await page.locator("#type .field .name").allTextContents();
  if (!fields.includes("name")) fail("Customer's fields are not listed: " + fields.join(", "));
  await page.fill("#query", "{ me { email role } }");
  await page.click("#run");
  await page.locator("#result", { hasText: process.env.EMAIL }).waitFor({ timeout: 5000 });
  // A subscription over /graphql/ws: a lead made elsewhere shows up in the result pane.
  await page.fill("#query", "subscription { newLead { id name } }");
  await page.click("#run");
  await page.locator("#status", { hasText: "subscribed" }).waitFor({ timeout: 5000 });
  const gql = async (query, token) => {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = "Bearer " + token;
    const resp = await fetch(base + "/graphql", { method: "POST", headers, body: JSON.stringify({ query }) });
    return resp.json();
  };
  const login = await gql(`mutation { login(email: "${process.env.EMAIL}", password: "${process.env.PASSWORD}") { accessToken } }`);
  await gql('mutation { createCustomer(input: {name: "订阅测试客户", kind: INDIVIDUAL}) { id } }', login.data.login.accessToken);
  await page.locator("#result", { hasText: "订阅测试客户" }).waitFor({ timeout: 10000 });
  await page.click("#run");
  await page.locator("#status", { hasText: "stopped" }).waitFor({ timeout: 5000 });
  const types = await page.locator("#types li").count();
  console.log(`explorer: logged in, ${types} types listed, Customer opened (${fields.length} fields), a query and a subscription ran`);
} catch (e) {
  fail(String(e));
} finally {
  await browser.close();
}
if (elsewhere.length) fail("requests left the server's origin: " + elsewhere.join(" "));
if (broken.length) fail("requests failed: " + broken.join(" "));
if (problems.length) fail("errors in the page: " + problems.join(" | "));
console.log("explorer: no request left " + origin);
