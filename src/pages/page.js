// The pages' script: plain JavaScript, no framework, no build step. The
// HTML around it was rendered by the server when the item last changed;
// everything that changes by the second comes from the JSON API
// (contract §3): the server's clock, stock and state, the session, the
// captcha, the hidden path, the buy, its result and the order.
"use strict";
(() => {
const $ = (id) => document.getElementById(id);
const PAGE = document.body.dataset.page;
const CLIENT_SALT = document.body.dataset.clientSalt;

// A sentence for every refusal code the API answers with, so that nobody
// reads "captcha_wrong". `{s}` is the Retry-After in seconds.
const MESSAGES = {
  invalid_input: "That was not accepted. Check what you typed and try again.",
  username_taken: "That username is taken. Choose another one, or log in.",
  bad_credentials: "Wrong username or password.",
  unauthenticated: "Please log in first (your session may have ended).",
  rate_limited: "Too many tries at once. Wait {s} s and try again.",
  overloaded: "The shop is very busy right now. Try again in a moment.",
  unavailable: "The shop is briefly unavailable. Try again in a moment.",
  no_such_item: "This item does not exist.",
  not_started: "The sale has not started yet.",
  ended: "The sale has ended.",
  captcha_wrong: "Wrong answer. Here is a new question.",
  captcha_expired: "The question expired. Here is a new one.",
  bad_path: "Your buying link expired. Answer the new question and try again.",
  limit_reached: "You already hold as many of this item as one person may buy.",
  request_id_reused: "That attempt was already used for a different order. Please try again.",
  sold_out: "Sold out: every unit has been taken.",
  no_such_order: "That order was not found.",
  order_expired: "The payment deadline has passed: the order expired.",
  order_cancelled: "This order was cancelled.",
  order_paid: "This order is already paid.",
  body_too_large: "That was too long. Please shorten what you typed.",
  not_found: "The shop did not recognise that request. Reload the page.",
  internal: "Something went wrong on our side. Please try again.",
  network: "Cannot reach the shop. Check your connection and try again.",
};

const STATE_TEXT = {
  upcoming: "Starts soon",
  starting: "Starting…",
  active: "On sale now",
  sold_out: "Sold out",
  ended: "The sale has ended",
};

const ORDER_STATUS_TEXT = {
  pending_payment: "Waiting for payment",
  paid: "Paid",
  cancelled: "Cancelled",
  expired: "Expired (not paid in time)",
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- the API ----------------------------------------------------------------

// One request; never throws. `blob` asks for the body as a Blob (the captcha).
async function api(method, path, body, blob) {
  const init = { method, headers: {}, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, code: "network", data: null, retryAfter: 0 };
  }
  let data = null;
  if (blob && resp.ok) {
    data = await resp.blob();
  } else {
    const text = await resp.text();
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
  }
  const code = !resp.ok && data && typeof data.code === "string" ? data.code : null;
  return { ok: resp.ok, status: resp.status, code, data, retryAfter: Number(resp.headers.get("Retry-After")) || 0 };
}

function explain(r) {
  const known = r.code && MESSAGES[r.code];
  const text = known || (r.data && r.data.message) || `Something went wrong (HTTP ${r.status}). Please try again.`;
  return text.replace("{s}", String(Math.max(1, r.retryAfter)));
}

function say(text, kind) {
  const m = $("message");
  m.textContent = text;
  m.dataset.kind = kind || "info";
  m.hidden = !text;
}

// --- the server's clock -----------------------------------------------------

// Server time = local time + offset, learnt from `server_time_ms` in the
// catalogue's answers, taken at the middle of the round trip. The sample
// with the shortest round trip bounds the error best, so a slower one
// replaces it only if not much slower (the local clock may drift).
let offsetMs = 0;
let bestRttMs = Infinity;
function learnTime(serverMs, sentAt, receivedAt) {
  const rtt = receivedAt - sentAt;
  if (typeof serverMs !== "number" || rtt > bestRttMs + 50) return;
  bestRttMs = Math.min(bestRttMs, rtt);
  offsetMs = serverMs - (sentAt + receivedAt) / 2;
}
const serverNow = () => Date.now() + offsetMs;

function formatDuration(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const days = Math.floor(total / 86400);
  const two = (n) => String(n).padStart(2, "0");
  const clock = `${two(Math.floor(total / 3600) % 24)}:${two(Math.floor(total / 60) % 60)}:${two(total % 60)}`;
  return days > 0 ? `${days} d ${clock}` : clock;
}

function formatTime(ms) {
  return new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
}

function localiseTimes() {
  for (const t of document.querySelectorAll("time[data-ms]")) {
    const ms = Number(t.dataset.ms);
    t.dateTime = new Date(ms).toISOString();
    t.textContent = formatTime(ms);
  }
}

// A sale's state now: what the server last said, moved on by the clock. The
// start is left to the server to confirm ("starting" until it does), so the
// buy button never opens before the server would take a buy.
function phaseOf(item, startMs, endMs) {
  const now = serverNow();
  if (now >= endMs || (item && item.state === "ended")) return "ended";
  if (item && item.state !== "upcoming") return item.state;
  return now < startMs ? "upcoming" : "starting";
}

// --- the session --------------------------------------------------------------

let me = null; // {user_id, username} while signed in

async function loadMe() {
  const r = await api("GET", "/api/me");
  me = r.ok ? r.data : null;
  renderAccount();
}

function renderAccount() {
  const who = $("who");
  who.textContent = me ? `Signed in as ${me.username}` : "";
  who.dataset.userId = me ? String(me.user_id) : "";
  $("logout").hidden = !me;
  if (PAGE === "item") {
    $("account").hidden = !!me;
    $("buy").hidden = !me;
  }
}

let authBusy = false;
async function submitAuth(register) {
  if (authBusy) return;
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!/^[A-Za-z0-9_.-]{3,32}$/.test(username)) {
    say("A username is 3 to 32 letters, digits, or _ . -", "error");
    return;
  }
  if (register && password.length < 8) {
    say("Choose a password of at least 8 characters.", "error");
    return;
  }
  if (!password) {
    say("Type your password.", "error");
    return;
  }
  // Contract §3: the wire carries md5(client_salt + password); the server
  // keeps only a slow salted hash of that.
  const hashed = md5(CLIENT_SALT + password);
  authBusy = true;
  $("login").disabled = $("register").disabled = true;
  try {
    say(register ? "Creating your account…" : "Signing in…");
    if (register) {
      const created = await api("POST", "/api/users", { username, password: hashed });
      if (!created.ok) return say(explain(created), "error");
    }
    const r = await api("POST", "/api/login", { username, password: hashed });
    if (!r.ok) return say(explain(r), "error");
    $("password").value = "";
    say(register ? "Welcome! Your account is ready." : "Signed in.", "ok");
    await afterSignIn();
  } finally {
    authBusy = false;
    $("login").disabled = $("register").disabled = false;
  }
}

async function logout() {
  const r = await api("POST", "/api/logout");
  if (!r.ok && r.status !== 401) return say(explain(r), "error");
  me = null;
  order = null;
  renderAccount();
  if (PAGE === "item") renderOrder();
  say("Signed out.", "ok");
}

// --- the item page ------------------------------------------------------------

const ITEM_EL = $("item");
const ITEM_ID = ITEM_EL ? Number(ITEM_EL.dataset.itemId) : 0;
let item = null; // the last ITEM the API answered
let itemLoading = false;
let itemLoadedAt = 0;

async function loadItem() {
  if (itemLoading) return;
  itemLoading = true;
  try {
    const sentAt = Date.now();
    const r = await api("GET", `/api/items/${ITEM_ID}`);
    const receivedAt = Date.now();
    itemLoadedAt = receivedAt;
    if (!r.ok) return say(explain(r), "error");
    learnTime(r.data.server_time_ms, sentAt, receivedAt);
    item = r.data;
  } finally {
    itemLoading = false;
  }
}

let buying = false;
let paying = false;
let order = null; // the ORDER shown, once the user has one

function itemTick() {
  const startMs = item ? item.start_ms : Number(ITEM_EL.dataset.startMs);
  const endMs = item ? item.end_ms : Number(ITEM_EL.dataset.endMs);
  const phase = phaseOf(item, startMs, endMs);
  const state = $("state");
  state.textContent = STATE_TEXT[phase] || "";
  state.dataset.state = phase;
  const now = serverNow();
  $("countdown").textContent =
    phase === "upcoming" ? `Starts in ${formatDuration(startMs - now)}`
    : phase === "active" ? `Ends in ${formatDuration(endMs - now)}`
    : "";
  if (item) $("stock-left").textContent = String(item.stock_left);
  $("buy-button").disabled = !(phase === "active" && me && !buying && !atLimit());
  // Ask the server while the clock says the sale has begun but it has not
  // confirmed; every few seconds while it runs (stock, sold out, units
  // back from expired orders); now and then before, to keep the clock.
  const age = Date.now() - itemLoadedAt;
  const every = phase === "starting" ? 300 : phase === "upcoming" ? 30000 : phase === "ended" ? Infinity : 3000;
  if (age >= every) loadItem();
  renderOrder();
}

// The page buys one unit at a time, so a live order of an item with a limit
// of one is the limit: the button closes instead of inviting a refusal.
function atLimit() {
  const live = order && (order.status === "pending_payment" || order.status === "paid");
  return Boolean(live && item && item.per_user_limit <= 1);
}

// The captcha is fetched as a Blob so that a refusal (401, 429, …) shows
// its message; the image's `data-ready` tells it is on screen.
let captchaUrl = null;
async function loadCaptcha() {
  const img = $("captcha-img");
  img.dataset.ready = "false";
  $("captcha-answer").value = "";
  const r = await api("GET", `/api/items/${ITEM_ID}/captcha`, undefined, true);
  if (!r.ok) return say(explain(r), "error");
  if (captchaUrl) URL.revokeObjectURL(captchaUrl);
  captchaUrl = URL.createObjectURL(r.data);
  img.onload = () => { img.dataset.ready = "true"; };
  img.src = captchaUrl;
}

function newRequestId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Kept until the server gives a final answer: a retry after a 503 or a lost
// connection (outcome unknown) reuses it, so it can never buy twice.
let pendingRequestId = null;

async function buy() {
  const answer = $("captcha-answer").value.trim();
  if (!answer) return say("Type the answer to the question first.", "error");
  buying = true;
  itemTick();
  try {
    say("Checking your answer…");
    const p = await api("POST", `/api/items/${ITEM_ID}/path`, { captcha: answer });
    // Any answer, right or wrong, used the question up.
    loadCaptcha();
    if (!p.ok) {
      if (p.code === "not_started" || p.code === "ended") await loadItem();
      return say(explain(p), "error");
    }
    const requestId = pendingRequestId || (pendingRequestId = newRequestId());
    for (let attempt = 1; ; attempt++) {
      say("Buying…");
      const body = { item_id: ITEM_ID, quantity: 1, request_id: requestId };
      const r = await api("POST", `/api/seckill/${encodeURIComponent(p.data.path)}`, body);
      if (r.status === 200) {
        pendingRequestId = null;
        say("You got it! Pay before the deadline to keep it.", "ok");
        await showOrder(r.data.order_id);
        return;
      }
      if (r.status === 202) {
        await pollResult();
        pendingRequestId = null;
        return;
      }
      const unknown = r.status === 503 || r.status === 0;
      if (unknown && attempt < 4) {
        say(`${explain(r)} Retrying…`);
        await sleep(1000 * Math.max(1, r.retryAfter));
        continue;
      }
      // Refused: the request id made no order and is not remembered.
      if (!unknown) pendingRequestId = null;
      if (r.code === "sold_out" || r.code === "ended" || r.code === "not_started") await loadItem();
      return say(explain(r), "error");
    }
  } finally {
    buying = false;
    itemTick();
  }
}

// Async confirmation (202): ask `/result` until the order is decided.
async function pollResult() {
  say("Your order is queued…");
  for (let i = 0; i < 120; i++) {
    const r = await api("GET", `/api/items/${ITEM_ID}/result`);
    if (r.ok && r.data.status === "success") {
      say("You got it! Pay before the deadline to keep it.", "ok");
      return showOrder(r.data.order_id);
    }
    if (r.ok && r.data.status === "sold_out") {
      await loadItem();
      return say(MESSAGES.sold_out, "error");
    }
    if (r.ok && r.data.status === "none") return say("Your order was not taken. Please try again.", "error");
    if (!r.ok && r.status !== 429 && r.status !== 503 && r.status !== 0) return say(explain(r), "error");
    await sleep(r.status === 429 ? 1000 * Math.max(1, r.retryAfter) : 500);
  }
  say("Your order is still being processed. Reload the page in a moment to see it.");
}

async function showOrder(orderId) {
  const r = await api("GET", `/api/orders/${orderId}`);
  if (!r.ok) return say(explain(r), "error");
  order = r.data;
  renderOrder();
  // The order took a unit: show the stock (and perhaps "sold out") now.
  await loadItem();
}

function renderOrder() {
  $("order").hidden = !order;
  if (!order) return;
  $("order-id").textContent = order.id;
  const status = $("order-status");
  status.textContent = ORDER_STATUS_TEXT[order.status] || order.status;
  status.dataset.status = order.status;
  $("order-deadline").textContent = formatTime(order.pay_deadline_ms);
  const left = order.pay_deadline_ms - serverNow();
  const payable = order.status === "pending_payment" && left > 0;
  $("order-countdown").textContent =
    payable ? `${formatDuration(left)} left to pay`
    : order.status === "pending_payment" ? "The payment deadline has passed."
    : "";
  $("pay").disabled = !payable || paying;
}

async function pay() {
  if (!order) return;
  paying = true;
  renderOrder();
  const r = await api("POST", `/api/orders/${order.id}/pay`);
  paying = false;
  if (r.ok) {
    order = r.data;
    say("Paid. Thank you!", "ok");
  } else {
    say(explain(r), "error");
    await showOrder(order.id);
  }
  renderOrder();
}

// After signing in or on load with a session: a question ready, and the
// order if the user already has one for this item.
async function afterSignIn() {
  await loadMe();
  if (PAGE !== "item" || !me) return;
  loadCaptcha();
  const r = await api("GET", `/api/items/${ITEM_ID}/result`);
  if (r.ok && r.data.status === "success") await showOrder(r.data.order_id);
  else if (r.ok && r.data.status === "pending") await pollResult();
}

// --- the list page ------------------------------------------------------------

let listed = new Map(); // id → ITEM
let listLoadedAt = 0;
let listLoading = false;

async function loadList() {
  if (listLoading) return;
  listLoading = true;
  try {
    const sentAt = Date.now();
    const r = await api("GET", "/api/items");
    const receivedAt = Date.now();
    listLoadedAt = receivedAt;
    if (!r.ok) return say(explain(r), "error");
    learnTime(r.data.server_time_ms, sentAt, receivedAt);
    listed = new Map(r.data.items.map((i) => [i.id, i]));
  } finally {
    listLoading = false;
  }
}

function homeTick() {
  let changing = false;
  for (const row of document.querySelectorAll("li.sale")) {
    const it = listed.get(Number(row.dataset.itemId));
    const startMs = it ? it.start_ms : Number(row.dataset.startMs);
    const endMs = it ? it.end_ms : Number(row.dataset.endMs);
    const phase = phaseOf(it, startMs, endMs);
    const now = serverNow();
    const text =
      phase === "upcoming" ? `Starts in ${formatDuration(startMs - now)}`
      : phase === "active" ? `On sale: ${it.stock_left} left, ends in ${formatDuration(endMs - now)}`
      : STATE_TEXT[phase];
    const cell = row.querySelector(".sale-state");
    cell.textContent = text;
    cell.dataset.state = phase;
    changing = changing || phase === "starting";
  }
  if (Date.now() - listLoadedAt >= (changing ? 500 : 5000)) loadList();
}

// --- MD5 (RFC 1321) -------------------------------------------------------------

// The client-side hash of contract §3, over the UTF-8 bytes of `text`;
// lowercase hex. Small and plain: the page needs nothing else from a library.
function md5(text) {
  const bytes = new TextEncoder().encode(text);
  const blocks = ((bytes.length + 8) >>> 6) + 1;
  const words = new Int32Array(blocks * 16);
  for (let i = 0; i < bytes.length; i++) words[i >> 2] |= bytes[i] << ((i % 4) * 8);
  words[bytes.length >> 2] |= 0x80 << ((bytes.length % 4) * 8);
  words[blocks * 16 - 2] = (bytes.length * 8) >>> 0;
  words[blocks * 16 - 1] = Math.floor(bytes.length / 0x20000000);
  const shifts = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
  const k = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 0x100000000) | 0);
  let a0 = 0x67452301, b0 = 0xefcdab89 | 0, c0 = 0x98badcfe | 0, d0 = 0x10325476;
  for (let block = 0; block < words.length; block += 16) {
    let a = a0, b = b0, c = c0, d = d0;
    for (let i = 0; i < 64; i++) {
      let f, g;
      if (i < 16) { f = (b & c) | (~b & d); g = i; }
      else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
      else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
      else { f = c ^ (b | ~d); g = (7 * i) % 16; }
      const s = shifts[(i >> 4) * 4 + (i % 4)];
      const x = (a + f + k[i] + words[block + g]) | 0;
      a = d;
      d = c;
      c = b;
      b = (b + ((x << s) | (x >>> (32 - s)))) | 0;
    }
    a0 = (a0 + a) | 0; b0 = (b0 + b) | 0; c0 = (c0 + c) | 0; d0 = (d0 + d) | 0;
  }
  let hex = "";
  for (const word of [a0, b0, c0, d0]) {
    for (let i = 0; i < 4; i++) hex += ((word >>> (i * 8)) & 0xff).toString(16).padStart(2, "0");
  }
  return hex;
}

// --- start --------------------------------------------------------------------

localiseTimes();
$("logout").addEventListener("click", logout);
if (PAGE === "item") {
  $("auth-form").addEventListener("submit", (e) => { e.preventDefault(); submitAuth(false); });
  $("register").addEventListener("click", () => submitAuth(true));
  $("captcha-new").addEventListener("click", loadCaptcha);
  $("buy-button").addEventListener("click", buy);
  $("pay").addEventListener("click", pay);
  $("captcha-answer").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !$("buy-button").disabled) buy();
  });
  loadItem().then(itemTick);
  afterSignIn();
  setInterval(itemTick, 250);
} else {
  loadMe();
  loadList().then(homeTick);
  setInterval(homeTick, 1000);
}
// Exposed for the browser test, which checks the hash against Node's MD5.
window.seckillMd5 = md5;
})();
