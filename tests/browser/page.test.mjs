// The web pages end to end in headless Chromium (issue 11). Run by
// tests/browser/run.sh, which starts the servers and exports their
// addresses. For each confirmation mode (sync: 200; async: 202 and /result):
//   an item on sale in the future with 1 unit; user 1 registers through the
//   page, sees the countdown and a disabled buy button; the sale is moved to
//   start in a few seconds; the countdown runs out and the button opens;
//   a wrong captcha answer shows its message and a new question; the right
//   answer (through the admin hook) buys; the order shows with its payment
//   deadline; Pay pays it. User 2 then registers and sees the item sold out.
// On a 390×844 phone screen every page is checked for horizontal scrolling
// and tap targets under 44 px. Screenshots go to $ARTIFACTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const ARTIFACTS = process.env.ARTIFACTS || "target/browser-artifacts";
const SALT = process.env.SECKILL_CLIENT_SALT;
const SERVERS = {
  sync: { url: process.env.SECKILL_SYNC_URL, admin: process.env.SECKILL_SYNC_ADMIN },
  async: { url: process.env.SECKILL_ASYNC_URL, admin: process.env.SECKILL_ASYNC_ADMIN },
};
// Bounds on waiting for the page, not assertions about speed: a loaded CI
// machine may be slow, and only a page that never gets there fails.
const WAIT_MS = 60_000;
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const PASSWORD = "correct horse battery";

let browser;

before(async () => {
  assert.ok(SALT, "SECKILL_CLIENT_SALT is set (run tests/browser/run.sh)");
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium" });
});

after(async () => {
  await browser?.close();
});

async function call(server, method, path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const resp = await fetch(server.url + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  return { status: resp.status, json: text ? JSON.parse(text) : null, date: resp.headers.get("date") };
}

async function putItem(server, id, startMs, endMs) {
  const body = {
    name: `Limited sneaker ${id}`,
    description: "One pair only. A long description that must wrap on a phone screen without scrolling sideways.",
    price_cents: 12_900,
    stock: 1,
    per_user_limit: 1,
    start_ms: startMs,
    end_ms: endMs,
  };
  const r = await call(server, "PUT", `/admin/items/${id}`, body, server.admin);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json;
}

/** The server's clock, from its own answer (not this machine's). */
async function serverNowMs(server) {
  const r = await call(server, "GET", "/api/items");
  assert.equal(r.status, 200);
  return r.json.server_time_ms;
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** The phone checks: no horizontal scroll, every visible control ≥ 44 px tall. */
async function checkPhoneLayout(page, label) {
  const report = await page.evaluate(() => {
    const root = document.documentElement;
    const small = [];
    for (const el of document.querySelectorAll("button, input, a, select, textarea")) {
      const box = el.getBoundingClientRect();
      const style = getComputedStyle(el);
      if (box.width === 0 || box.height === 0 || style.visibility === "hidden") continue;
      if (box.height < 44) small.push(`${el.tagName.toLowerCase()}#${el.id || el.textContent.trim()} ${box.height}px`);
    }
    return { scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, small, controls: document.querySelectorAll("button, input, a").length };
  });
  assert.ok(report.clientWidth <= 390, `${label}: the viewport is a phone's (${report.clientWidth})`);
  assert.ok(report.scrollWidth <= report.clientWidth, `${label}: scrolls sideways (${report.scrollWidth} > ${report.clientWidth})`);
  assert.deepEqual(report.small, [], `${label}: tap targets under 44 px`);
  assert.ok(report.controls > 0, `${label}: has controls to check`);
}

/** A page that records uncaught script errors, which fail the test. */
async function openPage(context, errors) {
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  return page;
}

async function registerThroughPage(page, username) {
  await page.locator("#account").waitFor({ state: "visible", timeout: WAIT_MS });
  await page.fill("#username", username);
  await page.fill("#password", PASSWORD);
  await page.click("#register");
  await page.locator("#who[data-user-id]:not([data-user-id=''])").waitFor({ timeout: WAIT_MS });
  assert.equal(await page.textContent("#who"), `Signed in as ${username}`);
  assert.ok(await page.locator("#account").isHidden(), "the sign-in form is gone once signed in");
  return Number(await page.getAttribute("#who", "data-user-id"));
}

/** The answer to the question on screen, through the admin hook. */
async function captchaAnswer(server, page, itemId, userId) {
  await page.locator("#captcha-img[data-ready='true']").waitFor({ timeout: WAIT_MS });
  const natural = await page.$eval("#captcha-img", (img) => img.naturalWidth);
  assert.ok(natural > 0, "the captcha image decoded");
  const r = await call(server, "GET", `/admin/items/${itemId}/captcha-answer?user_id=${userId}`, undefined, server.admin);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.answer;
}

for (const [mode, itemId] of [["sync", 101], ["async", 102]]) {
  test(`${mode}: register, countdown, captcha, buy, pay; then sold out for another user`, async () => {
    const server = SERVERS[mode];
    assert.ok(server.url && server.admin, `the ${mode} server's address and admin token are exported`);
    const errors = [];
    const now = await serverNowMs(server);
    await putItem(server, itemId, now + 3_600_000, now + 7_200_000);

    // --- user 1, on a phone ---
    const first = await browser.newContext(PHONE);
    const page = await openPage(first, errors);
    const resp = await page.goto(`${server.url}/items/${itemId}`);
    assert.equal(resp.status(), 200);
    assert.match(resp.headers()["content-type"], /^text\/html/);
    assert.ok(resp.headers().etag, "the page has an ETag");
    assert.equal(await page.getAttribute("body", "data-client-salt"), SALT, "the salt is rendered into the page");
    await checkPhoneLayout(page, `${mode} item page, signed out`);
    await shot(page, `${mode}-1-signed-out`);

    const username = `buyer_${mode}_1`;
    const userId = await registerThroughPage(page, username);
    // The page hashed md5(client_salt + password): a login computed here is accepted.
    const hashed = createHash("md5").update(SALT + PASSWORD, "utf8").digest("hex");
    assert.equal(await page.evaluate((s) => window.seckillMd5(s), SALT + PASSWORD), hashed);
    const login = await call(server, "POST", "/api/login", { username, password: hashed });
    assert.equal(login.status, 200, "the page registered md5(client_salt + password)");

    // Before the start: a countdown, the buy button disabled.
    await page.locator("#countdown", { hasText: /^Starts in \d\d:\d\d:\d\d$/ }).waitFor({ timeout: WAIT_MS });
    assert.equal(await page.getAttribute("#state", "data-state"), "upcoming");
    assert.ok(await page.locator("#buy-button").isDisabled(), "disabled before the start");
    await checkPhoneLayout(page, `${mode} item page, before the start`);
    await shot(page, `${mode}-2-countdown`);

    // The sale now starts in a few seconds (server time); the reloaded page
    // counts down to it and opens the button when the server confirms.
    const soon = (await serverNowMs(server)) + 4_000;
    await putItem(server, itemId, soon, soon + 3_600_000);
    await page.reload();
    await page.locator("#buy-button:enabled").waitFor({ timeout: WAIT_MS });
    const opened = await serverNowMs(server);
    assert.ok(opened >= soon, `the button opened at or after the start (${opened} >= ${soon})`);
    assert.equal(await page.getAttribute("#state", "data-state"), "active");
    assert.match(await page.textContent("#countdown"), /^Ends in /);

    // A wrong answer: its message, and a new question.
    const wrong = Number(await captchaAnswer(server, page, itemId, userId)) + 1;
    await page.fill("#captcha-answer", String(wrong));
    await page.click("#buy-button");
    await page.locator("#message", { hasText: "Wrong answer" }).waitFor({ timeout: WAIT_MS });
    assert.equal(await page.getAttribute("#message", "data-kind"), "error");
    assert.ok(await page.locator("#order").isHidden(), "no order from a wrong answer");
    await shot(page, `${mode}-3-wrong-captcha`);

    // The right answer buys.
    const answer = await captchaAnswer(server, page, itemId, userId);
    await page.fill("#captcha-answer", answer);
    await page.click("#buy-button");
    await page.locator("#order-status[data-status='pending_payment']").waitFor({ timeout: WAIT_MS });
    const orderId = (await page.textContent("#order-id")).trim();
    assert.match(orderId, /^\d+$/);
    assert.match(await page.textContent("#order-countdown"), /left to pay$/);
    assert.ok((await page.textContent("#order-deadline")).trim().length > 0, "the payment deadline is shown");
    assert.ok(await page.locator("#pay").isEnabled());
    // The unit is taken: the page shows none left and no longer offers a buy.
    await page.locator("#stock-left", { hasText: /^0$/ }).waitFor({ timeout: WAIT_MS });
    assert.ok(await page.locator("#buy-button").isDisabled(), "no second buy: limit reached and sold out");
    const stored = await call(server, "GET", `/api/orders/${orderId}`, undefined, login.json.token);
    assert.equal(stored.status, 200, "the order on the page is the user's order");
    assert.equal(stored.json.status, "pending_payment");
    await checkPhoneLayout(page, `${mode} item page, with an order`);
    await shot(page, `${mode}-4-order`);

    await page.click("#pay");
    await page.locator("#order-status[data-status='paid']").waitFor({ timeout: WAIT_MS });
    assert.ok(await page.locator("#pay").isDisabled(), "a paid order has no pay button to press");
    const stats = await call(server, "GET", `/admin/items/${itemId}/stats`, undefined, server.admin);
    assert.equal(stats.json.paid, 1, JSON.stringify(stats.json));
    assert.equal(stats.json.stock_left, 0);
    await shot(page, `${mode}-5-paid`);

    // --- user 2, in a fresh browser: sold out ---
    const second = await browser.newContext(PHONE);
    const page2 = await openPage(second, errors);
    await page2.goto(`${server.url}/items/${itemId}`);
    await registerThroughPage(page2, `buyer_${mode}_2`);
    await page2.locator("#state[data-state='sold_out']").waitFor({ timeout: WAIT_MS });
    assert.equal(await page2.textContent("#state"), "Sold out");
    assert.ok(await page2.locator("#buy-button").isDisabled(), "disabled when sold out");
    assert.equal(await page2.textContent("#stock-left"), "0");
    assert.ok(await page2.locator("#order").isHidden(), "user 2 has no order");
    await checkPhoneLayout(page2, `${mode} item page, sold out`);
    await shot(page2, `${mode}-6-sold-out`);

    // The list page: the item, sold out, on a phone.
    await page2.goto(`${server.url}/`);
    await page2.locator(`li.sale[data-item-id='${itemId}'] .sale-state[data-state='sold_out']`).waitFor({ timeout: WAIT_MS });
    await checkPhoneLayout(page2, `${mode} list page`);
    await shot(page2, `${mode}-7-list`);

    await first.close();
    await second.close();
    assert.deepEqual(errors, [], "no uncaught script errors");
  });
}
