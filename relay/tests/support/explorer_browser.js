// Drives the explorer page (/explorer/) in a real headless Chromium (Debian's `chromium`, through
// npm puppeteer-core, no browser download) for relay/tests/explorer.rs and scripts/screenshots.
// Events are published by an independent client: nostr-tools (npm, NODE_PATH) over the relay's
// WebSocket.
//
// Usage: node explorer_browser.js INPUT.json, INPUT being
//   {"base": "http://127.0.0.1:PORT", "peer_wallet": "<second relay's wallet, base58>",
//    "auth_base": "http://127.0.0.1:PORT2 (optional: a relay with read auth on)",
//    "chromium": "/usr/bin/chromium", "screenshots": "<dir, optional>", "timeout_ms": 60000}
// Prints one JSON line with what it measured and checked:
//   {"ok": true, "checks": [...], "fleet_latency_ms": N}
// and exits 0, or prints {"ok": false, "error": "...", "checks": [...]} and exits 1. Every wait is
// bounded by timeout_ms.
'use strict';

const fs = require('fs');
const path = require('path');

if (typeof WebSocket === 'undefined') {
  // Node 20 and 21 have the WebSocket client behind a flag; 22 and later have it by default.
  if (process.execArgv.includes('--experimental-websocket')) {
    process.stderr.write('explorer_browser.js: this Node.js has no WebSocket client (need Node >= 20.10)\n');
    process.exit(2);
  }
  const { spawnSync } = require('child_process');
  const r = spawnSync(process.execPath, ['--experimental-websocket', __filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status === null ? 2 : r.status);
}

let puppeteer, pure;
try {
  puppeteer = require('puppeteer-core');
  pure = require(path.join(path.dirname(require.resolve('nostr-tools')), 'pure.js'));
} catch (e) {
  process.stderr.write(
    `explorer_browser.js: cannot load puppeteer-core or nostr-tools (${e.message}); scripts/test installs them ` +
      'into target/npm-explorer and target/npm-nostr-tools and puts both on NODE_PATH\n',
  );
  process.exit(3);
}

const input = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const TIMEOUT = input.timeout_ms || 60000;
const checks = [];
const ZERO = '0'.repeat(64);

function check(name, detail) {
  checks.push(detail === undefined ? name : `${name}: ${detail}`);
}

/** Publishes `event` to the relay at `base` (http URL) and waits for its OK. */
function publish(base, event) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + '/');
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error('no OK from the relay in time'));
    }, TIMEOUT);
    ws.onopen = () => ws.send(JSON.stringify(['EVENT', event]));
    ws.onerror = () => reject(new Error(`cannot connect to ${base}`));
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg[0] === 'OK' && msg[1] === event.id) {
        clearTimeout(timer);
        ws.close();
        if (msg[2] === true) resolve();
        else reject(new Error(`relay refused the event: ${msg[3]}`));
      }
    };
  });
}

function statusEvent(sk, session, status, createdAt) {
  const content = JSON.stringify({ Status: { status, reason: 'UserRequest', initial_request: ZERO, payload: '' } });
  return pure.finalizeEvent(
    { kind: 1573, created_at: createdAt, tags: [['s', session], ['p', pure.getPublicKey(sk)]], content },
    sk,
  );
}

async function getJson(url) {
  const r = await fetch(url);
  return { status: r.status, body: await r.json().catch(() => null) };
}

/** Polls `f` (async, truthy when done) every 200 ms, up to TIMEOUT. */
async function until(what, f) {
  const end = Date.now() + TIMEOUT;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function openPage(browser, url, errors) {
  const page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT);
  await page.setViewport({ width: 1200, height: 900 });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console error: ${m.text()}`);
  });
  const resp = await page.goto(url, { waitUntil: 'load' });
  if (!resp || resp.status() !== 200) throw new Error(`GET ${url}: HTTP ${resp && resp.status()}`);
  return page;
}

async function shot(page, name) {
  if (!input.screenshots) return;
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(input.screenshots, `explorer-${name}.png`), fullPage: true });
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: input.chromium || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    protocolTimeout: TIMEOUT,
  });
  const errors = [];
  try {
    const base = input.base;
    const page = await openPage(browser, `${base}/explorer/#fleet`, errors);
    const title = await page.title();
    if (!title.includes('explorer')) throw new Error(`unexpected page title ${title}`);
    check('page loads from the relay', title);

    // Fleet: a Status published now shows up live.
    await page.waitForFunction(() => document.getElementById('conn-state').textContent.includes('live'));
    await page.waitForFunction(() => !document.getElementById('fleet').textContent.includes('Loading'));
    const sk = pure.generateSecretKey();
    const machine = pure.getPublicKey(sk);
    const session = `explorer-test-${Math.random().toString(16).slice(2, 10)}`;
    const now = Math.floor(Date.now() / 1000);
    const first = statusEvent(sk, session, 'Available', now - 2);
    await publish(base, first);
    await page.waitForSelector(`tr[data-machine="${machine}"][data-state="Available"]`);
    const second = statusEvent(sk, session, 'Working', now);
    const t0 = performance.now();
    await publish(base, second);
    await page.waitForSelector(`tr[data-machine="${machine}"][data-state="Working"]`);
    const latency = Math.round(performance.now() - t0);
    check('a newly published Status appears in the fleet view', `${latency} ms from publish to row`);
    // Filters: another session hides the machine, its own session shows it.
    await page.type('#filter-session', 'no-such-session');
    await page.waitForFunction((m) => !document.querySelector(`tr[data-machine="${m}"]`), {}, machine);
    await page.$eval('#filter-session', (el) => {
      el.value = '';
    });
    await page.type('#filter-session', session);
    await page.waitForSelector(`tr[data-machine="${machine}"]`);
    check('the session filter hides and shows the machine');
    await shot(page, 'fleet');

    // Log: wait for a signed checkpoint that covers the event, then verify in the page.
    await until('a checkpoint covering the Status event', async () => {
      const cp = await getJson(`${base}/log/checkpoint`);
      if (cp.status !== 200) return false;
      const p = await getJson(`${base}/log/proof/inclusion?id=${second.id}&tree_size=${cp.body.tree_size}`);
      return p.status === 200;
    });
    // One more event and checkpoint, so that there are two checkpoints to check consistency of.
    const firstSize = (await getJson(`${base}/log/checkpoint`)).body.tree_size;
    await publish(base, statusEvent(pure.generateSecretKey(), session, 'Available', now));
    await until('a second checkpoint', async () => {
      const cp = await getJson(`${base}/log/checkpoint`);
      return cp.status === 200 && cp.body.tree_size > firstSize;
    });
    await page.goto(`${base}/explorer/#log`, { waitUntil: 'load' });
    await page.waitForSelector('#latest-size');
    await page.$eval('#verify-id', (el, id) => {
      el.value = id;
    }, second.id);
    await page.click('#verify-btn');
    await page.waitForSelector('#verify-result');
    const good = await page.$eval('#verify-result', (el) => [el.dataset.ok, el.textContent]);
    if (good[0] !== 'true') throw new Error(`the proof did not verify in the page: ${good[1]}`);
    const passed = await page.$$eval('#verify-out li[data-ok="true"]', (l) => l.length);
    check('a proof verifies in the browser', `${passed} steps passed: ${good[1]}`);
    await shot(page, 'log');
    await page.click('#verify-tamper');
    await page.click('#verify-btn');
    await page.waitForFunction(() => document.getElementById('verify-result')?.dataset.ok === 'false');
    const bad = await page.$eval('#verify-result', (el) => el.textContent);
    const failed = await page.$$eval('#verify-out li[data-ok="false"]', (l) => l.map((x) => x.textContent));
    if (!failed.length) throw new Error('the tampered proof failed without a failing step shown');
    check('a tampered proof visibly fails', `${bad}; failing step: ${failed.join(' | ')}`);
    // Consistency between the two latest checkpoints (the form's default choice).
    await page.click('#cons-form button');
    await page.waitForSelector('#cons-result');
    const cons = await page.$eval('#cons-result', (el) => [el.dataset.ok, el.textContent]);
    if (cons[0] !== 'true') throw new Error(`consistency did not verify: ${cons[1]}`);
    check('consistency between two checkpoints verifies', cons[1]);

    // Federation: the second relay's node is listed (peer table, registry entries, map).
    await page.goto(`${base}/explorer/#federation`, { waitUntil: 'load' });
    const wallet = input.peer_wallet;
    await page.waitForSelector(`#fed-peers tr[data-wallet="${wallet}"]`);
    const row = await page.$eval(`#fed-peers tr[data-wallet="${wallet}"]`, (el) => el.textContent);
    if (!row.includes('online')) throw new Error(`the second relay is listed but not online: ${row}`);
    await page.waitForSelector(`#fed-entries tr[data-wallet="${wallet}"]`);
    await page.waitForSelector(`#fed-map g[data-wallet="${wallet}"]`);
    const network = await page.$eval('#fed-network', (el) => el.textContent);
    check("the federation view lists the second relay's node", `network ${network}, peer row "${row}"`);
    await shot(page, 'federation');

    // Relay: live charts from /metrics (two samples make a rate).
    await page.goto(`${base}/explorer/#relay`, { waitUntil: 'load' });
    await page.waitForSelector('#chart-connections svg');
    await page.waitForSelector('#chart-ingest svg');
    check('the relay view charts /metrics');
    await shot(page, 'relay');

    // Phone width: the fleet view without horizontal page scroll.
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    await page.goto(`${base}/explorer/#fleet`, { waitUntil: 'load' });
    await page.waitForSelector(`tr[data-machine="${machine}"]`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) throw new Error(`the page is ${overflow} px wider than a 390 px phone screen`);
    check('readable on a phone (no horizontal scroll at 390 px)');
    await shot(page, 'phone');
    await page.close();

    if (input.auth_base) await readAuth(browser, input.auth_base, errors);

    if (errors.length) throw new Error(`the page reported errors: ${errors.join('; ')}`);
    console.log(JSON.stringify({ ok: true, checks, fleet_latency_ms: latency }));
  } finally {
    await browser.close();
  }
}

/** With read auth on: without a signer the page says what is needed; with a NIP-07 signer it works. */
async function readAuth(browser, base, errors) {
  const sk = pure.generateSecretKey();
  const session = `explorer-auth-${Math.random().toString(16).slice(2, 10)}`;
  const ev = statusEvent(sk, session, 'Working', Math.floor(Date.now() / 1000));
  await publish(base, ev);
  const machine = pure.getPublicKey(sk);

  const plain = await openPage(browser, `${base}/explorer/#fleet`, []);
  await plain.waitForFunction(() => !document.getElementById('auth-note').hidden);
  const note = await plain.$eval('#auth-note', (el) => el.textContent);
  if (!note.includes('NIP-07')) throw new Error(`no signer: unexpected note ${note}`);
  check('read auth without a signer: the page says what is needed', note.slice(0, 80));
  await plain.close();

  // A NIP-07 signer (window.nostr) backed by nostr-tools in this process.
  const userSk = pure.generateSecretKey();
  const page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  await page.exposeFunction('__explorerTestSign', (template) => pure.finalizeEvent(template, userSk));
  await page.evaluateOnNewDocument((pubkey) => {
    window.nostr = {
      getPublicKey: async () => pubkey,
      signEvent: (template) => window.__explorerTestSign(template),
    };
  }, pure.getPublicKey(userSk));
  await page.goto(`${base}/explorer/#fleet`, { waitUntil: 'load' });
  await page.waitForSelector(`tr[data-machine="${machine}"][data-state="Working"]`);
  check('read auth with a NIP-07 signer: the fleet view shows events');
  await page.close();
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, error: e.message, checks }));
  process.exit(1);
});
