// Who may connect, and for how long: token sources, the origin rule, token
// expiry (4001), refresh-token, and the heartbeat.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Stack, Client, makeToken, waitFor } from './harness.mjs';

let s;
before(async () => {
  s = await new Stack('auth', {
    recheckMs: 100,
    // Short enough to watch a drop, long enough that a client on a loaded
    // 2-core machine (sanitizer builds, a browser test beside it) still
    // answers in time.
    pingIntervalMs: 300,
    pingTimeoutMs: 2000,
    env: { HERALD_ALLOWED_ORIGINS: 'https://allowed.example' },
  }).start();
});
after(async () => { await s.stop(); });

const ws = () => s.gateways[0].ws;

async function refused(url, opts) {
  const c = new Client(url, opts);
  try {
    await c.opened();
  } catch (e) {
    return { status: e.status, body: e.body ? JSON.parse(e.body) : null };
  }
  await c.close();
  return { status: 101 };
}

test('no token: HTTP 401 with a JSON error', async () => {
  const r = await refused(ws());
  assert.equal(r.status, 401);
  assert.equal(r.body.error, 'auth-required');
  assert.equal(typeof r.body.message, 'string');
});

test('bad tokens: 401 with the reason', async () => {
  const uid = s.users.alice;
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const cases = [
    ['expired', makeToken(uid, { ttl: -10 })],
    ['bad-signature', makeToken(uid, { secret: 'another-secret' })],
    ['bad-algorithm', `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: String(uid), exp: now + 60 })}.`],
    ['not-yet-valid', makeToken(uid, { claims: { nbf: now + 3600 } })],
    ['malformed', 'not.a.token'],
  ];
  // HS384 with the right secret is still the wrong algorithm.
  const h = b64({ alg: 'HS384', typ: 'JWT' }), p = b64({ sub: String(uid), exp: now + 60 });
  const sig = crypto.createHmac('sha384', 'integration-test-secret-0123456789').update(`${h}.${p}`).digest('base64url');
  cases.push(['bad-algorithm', `${h}.${p}.${sig}`]);
  for (const [word, tok] of cases) {
    const r = await refused(ws(), { headers: { Authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 401, word);
    assert.equal(r.body.error, word);
  }
});

test('token sources: bearer, cookie and ?token= all work', async () => {
  const tok = s.token('alice');
  for (const opts of [
    { url: ws(), headers: { Authorization: `Bearer ${tok}` } },
    { url: ws(), headers: { Cookie: `theme=dark; accessToken=${tok}` } },
    { url: `${ws()}?token=${encodeURIComponent(tok)}`, headers: {} },
  ]) {
    const c = await new Client(opts.url, { headers: opts.headers }).opened();
    c.send({ type: 'ping' });
    await c.next((m) => m.type === 'pong');
    await c.close();
  }
});

test('cookie upgrades from a foreign origin are refused with 403', async () => {
  const tok = s.token('bob');
  const host = `127.0.0.1:${s.gateways[0].port}`;
  let r = await refused(ws(), { headers: { Cookie: `accessToken=${tok}`, Origin: 'https://evil.example' } });
  assert.equal(r.status, 403);
  assert.equal(r.body.error, 'origin-forbidden');
  r = await refused(ws(), { headers: { Cookie: `accessToken=${tok}`, Origin: `http://${host}` } });
  assert.equal(r.status, 101, 'same origin is always allowed');
  r = await refused(ws(), { headers: { Cookie: `accessToken=${tok}`, Origin: 'https://allowed.example' } });
  assert.equal(r.status, 101, 'configured origin is allowed');
  r = await refused(ws(), { headers: { Authorization: `Bearer ${tok}`, Origin: 'https://evil.example' } });
  assert.equal(r.status, 101, 'a bearer token is not ambient: no origin rule');
});

test('an expiring token closes the connection with 4001', async () => {
  const c = await new Client(ws(), { headers: { Authorization: `Bearer ${makeToken(s.users.carol, { ttl: 2 })}` } }).opened();
  const t0 = Date.now();
  const { code } = await c.closed;
  assert.equal(code, 4001);
  assert.ok(Date.now() - t0 < 4500, 'closed soon after exp');
});

test('refresh-token keeps a session alive; another user\'s token is refused with 4003', async () => {
  const c = await new Client(ws(), { headers: { Authorization: `Bearer ${makeToken(s.users.dave, { ttl: 2 })}` } }).opened();
  c.send({ type: 'refresh-token', token: makeToken(s.users.dave, { ttl: 600 }) });
  await c.next((m) => m.type === 'token-refreshed');
  await new Promise((r) => setTimeout(r, 3000));
  c.send({ type: 'ping' });
  await c.next((m) => m.type === 'pong', 2000, 'pong after the first token expired');
  c.send({ type: 'refresh-token', token: makeToken(s.users.erin, { ttl: 600 }) });
  assert.equal((await c.closed).code, 4003);

  const d = await new Client(ws(), { headers: { Authorization: `Bearer ${s.token('dave')}` } }).opened();
  d.send({ type: 'refresh-token', token: 'garbage' });
  assert.equal((await d.closed).code, 4001);
});

test('heartbeat: a client that never answers pings is dropped and goes offline', async () => {
  const watcher = await s.connect('alice', 1);
  const silent = await s.connect('erin', 0, { autoPong: false });
  await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.erin && m.status === 'online');
  let pings = 0;
  silent.ws.on('ping', () => { pings++; });
  const t0 = Date.now();
  await silent.closed;
  const waited = Date.now() - t0;
  assert.ok(pings >= 1, 'the server pinged');
  assert.ok(waited >= 1500 && waited < 8000, `dropped after ${waited} ms (timeout 2000 ms)`);
  await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.erin && m.status === 'offline');
  // A client that answers pings outlives the timeout several times over.
  const lively = await s.connect('bob', 0);
  await new Promise((r) => setTimeout(r, 4500));
  assert.equal(lively.ws.readyState, 1, 'still open');
  await lively.close();
  await watcher.close();
});

test('POST /auth/dev-login: off by default; when on, sets a cookie that logs the socket in; logout clears it', async () => {
  const post = (url, path, body) => fetch(`${url}${path}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  assert.equal((await post(s.gateways[0].url, '/auth/dev-login', { username: 'alice' })).status, 404);
  const gw = await s.startGateway('gw-dev', undefined, { HERALD_DEV_LOGIN: '1' });
  try {
    await s.waitHealthy(gw);
    assert.equal((await post(gw.url, '/auth/dev-login', { username: 'nobody' })).status, 404);
    assert.equal((await post(gw.url, '/auth/dev-login', { name: 'alice' })).status, 400);
    const r = await post(gw.url, '/auth/dev-login', { username: 'ALICE' });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { id: s.users.alice, username: 'alice' });
    const cookie = r.headers.get('set-cookie');
    assert.match(cookie, /^accessToken=[\w-]+\.[\w-]+\.[\w-]+; Path=\/; HttpOnly; SameSite=Lax/);
    // The cookie is the user's session on /ws (any gateway: same secret).
    const c = await new Client(s.gateways[1].ws, { headers: { Cookie: cookie.split(';')[0] } }).opened();
    const watcher = await s.connect('bob', 0);
    assert.ok((await watcher.sync()).users.includes(s.users.alice), 'alice is online through the cookie');
    await c.close();
    await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.alice && m.status === 'offline');
    await watcher.close();
    const out = await post(gw.url, '/auth/logout', {});
    assert.equal(out.status, 200);
    assert.match(out.headers.get('set-cookie'), /^accessToken=; .*Max-Age=0/);
  } finally {
    const info = await gw.proc.stop();
    assert.equal(info.code, 0);
  }
});
