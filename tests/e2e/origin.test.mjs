// Cross-site WebSocket hijacking and request forgery from a real browser
// (docs/SECURITY.md): a victim logged in on the gateway (accessToken cookie
// for 127.0.0.1) visits a page served from another origin on the same host
// (another port: the same site, so the browser sends the cookie along).
// That page opens a WebSocket to /ws, a Socket.IO connection, and POSTs a
// chat message with credentials: the gateway must refuse all three with 403
// (seen on the server: /metrics, its log, presence, a listening client),
// while the very same page served from the gateway's own origin succeeds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Stack, freePort, waitFor, limitRefusals } from '../integration/harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const T = 10000;

// The probe page: the three things an attacker's page would try, each
// reported as the page sees it.
const PROBE = `<!doctype html>
<meta charset="utf-8"><title>probe</title>
<script src="/vendor/socket.io.min.js"></script>
<script>
window.probe = async (gw, tag) => {
  const out = {};
  out.ws = await new Promise((resolve) => {
    const ws = new WebSocket(gw.replace(/^http/, 'ws') + '/ws');
    window.__ws = ws;
    ws.onopen = () => resolve('open');
    ws.onclose = (e) => resolve('closed ' + e.code);
  });
  out.sio = await new Promise((resolve) => {
    const s = io(gw, { transports: ['websocket'], reconnection: false });
    window.__sio = s;
    s.on('connect', () => resolve('connect'));
    s.on('connect_error', (e) => resolve('connect_error ' + e.message));
  });
  try {
    // text/plain: a "simple" request, sent without a preflight, as a
    // forging page would send it.
    const r = await fetch(gw + '/live_chat_message', {
      method: 'POST', credentials: 'include', headers: { 'Content-Type': 'text/plain' },
      body: JSON.stringify({ message: 'chat from ' + tag }),
    });
    out.post = r.status;
  } catch (e) {
    out.post = 'unreadable';
  }
  return out;
};
</script>`;

let s, browser, site, dir, foreign;
before(async () => {
  // One directory is both the gateway's web root and the foreign site.
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-origin-'));
  fs.mkdirSync(path.join(dir, 'vendor'));
  fs.copyFileSync(path.join(ROOT, 'web/vendor/socket.io.min.js'), path.join(dir, 'vendor/socket.io.min.js'));
  fs.writeFileSync(path.join(dir, 'probe.html'), PROBE);
  s = await new Stack('e2e-origin', { webRoot: dir, env: { HERALD_DEV_LOGIN: '1' } }).start();
  const port = await freePort();
  site = http.createServer((req, res) => {
    const file = path.join(dir, new URL(req.url, 'http://x').pathname);
    if (!file.startsWith(dir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': file.endsWith('.js') ? 'text/javascript' : 'text/html' });
    res.end(fs.readFileSync(file));
  });
  await new Promise((resolve) => site.listen(port, '127.0.0.1', resolve));
  foreign = `http://127.0.0.1:${port}`;
  browser = await chromium.launch({
    executablePath: process.env.HERALD_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
});
after(async () => {
  await browser?.close();
  await new Promise((resolve) => (site ? site.close(resolve) : resolve()));
  await s?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('a foreign page cannot use the victim\'s cookie: /ws and Socket.IO get 403 at the upgrade, a POST 403; the same page from the gateway\'s origin can', async () => {
  const gw = s.gateways[0];
  const listener = await s.connect('bob', 1);
  await listener.sync();
  const ctx = await browser.newContext();
  try {
    const page = await ctx.newPage();
    // What the browser itself saw on the wire, including the status of a
    // response the page was not allowed to read (DevTools protocol).
    const socketErrors = [];
    page.on('websocket', (ws) => ws.on('socketerror', (e) => socketErrors.push(`${ws.url()} ${e}`)));
    // The events of one request may come in any order: joined by id.
    const cdp = await ctx.newCDPSession(page);
    const urls = new Map();
    const statuses = new Map();
    cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, e.request.url));
    cdp.on('Network.responseReceived', (e) => statuses.set(e.requestId, e.response.status));
    cdp.on('Network.responseReceivedExtraInfo', (e) => statuses.set(e.requestId, e.statusCode));
    await cdp.send('Network.enable');
    const postStatuses = () => [...statuses].filter(([id]) => urls.get(id)?.endsWith('/live_chat_message')).map(([, st]) => st);

    // The victim logs in on the gateway: the accessToken cookie is set.
    await page.goto(`${gw.url}/probe.html`);
    const login = await page.evaluate(() => fetch('/auth/dev-login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'alice' }),
    }).then((r) => r.status));
    assert.equal(login, 200);
    const cookies = await ctx.cookies(gw.url);
    assert.ok(cookies.some((c) => c.name === 'accessToken'), 'logged in');

    // Then visits the attacker's page.
    const before = await limitRefusals(gw.url);
    await page.goto(`${foreign}/probe.html`);
    const evil = await page.evaluate((u) => window.probe(u, 'foreign'), gw.url);
    assert.match(evil.ws, /^closed 1006$/, 'the page never got a socket');
    assert.match(evil.sio, /^connect_error /);
    assert.equal(evil.post, 'unreadable', 'and cannot read the answer');
    // The server refused all three, because of the cookie's origin (a
    // request without the cookie would get 401, not 403).
    await waitFor(() => socketErrors.length >= 2, { what: 'both handshakes failed', timeout: T });
    for (const e of socketErrors) assert.match(e, /403/, e);
    await waitFor(() => postStatuses().length === 1, { what: 'the POST answer', timeout: T });
    assert.deepEqual(postStatuses(), [403]);
    const after = await limitRefusals(gw.url);
    assert.equal(after.origin - (before.origin ?? 0), 3, 'three origin refusals on the gateway');
    const log = fs.readFileSync(gw.proc.log, 'utf8');
    for (const route of ['/ws', '/socket.io/', '/live_chat_message']) {
      assert.ok(log.includes(`${route} with the session cookie from foreign origin ${foreign}: 403`), route);
    }
    await listener.sync();
    assert.ok(!(await s.onlineUsers()).includes(s.users.alice), 'alice never went online');
    assert.equal(listener.messages.filter((m) => m.type === 'livechat').length, 0, 'no chat was sent');
    assert.equal(listener.statuses(s.users.alice).length, 0);

    // Positive control: the same page from the gateway's own origin.
    await page.goto(`${gw.url}/probe.html`);
    const home = await page.evaluate((u) => window.probe(u, 'home'), gw.url);
    assert.deepEqual(home, { ws: 'open', sio: 'connect', post: 202 });
    await listener.next((m) => m.type === 'livechat' && m.message === 'chat from home' && m.userId === s.users.alice, T);
    await waitFor(async () => (await s.onlineUsers()).includes(s.users.alice), { what: 'alice online', timeout: T });
    assert.equal((await limitRefusals(gw.url)).origin, after.origin, 'nothing refused from home');
  } finally {
    await ctx.close();
    await listener.close();
  }
});
