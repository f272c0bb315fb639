// Limits that depend on who is asking (docs/SECURITY.md, "Hostile input"):
// caps tighter before authentication (HTTP bodies, Socket.IO messages and
// payloads before a user's CONNECT, guests), and the chat bucket per client
// address that holds many accounts from one address together. The gateways
// run with the default caps: 4 KB body and 16 KB Socket.IO message without
// credentials, 64 KB body and 1 MB payload with them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Stack, Client, makeToken, rawExchange, limitRefusals, sioClient, sioConnected, sioAck, sioNext, sioOnce,
  closeSioClients, rawStatus,
} from './harness.mjs';
import { http, is, since, rawError, assertFail, plainAck } from './social-lib.mjs';

const API_KEY = 'limits-api-key';
let s;
before(async () => {
  s = await new Stack('limits', { env: { HERALD_API_KEY: API_KEY, HERALD_DEV_LOGIN: '1' } }).start();
});
after(async () => {
  closeSioClients();
  if (s) await s.stop();
});

// A JSON body of about n bytes that every route reads as a small request.
const padded = (n, fields = { message: 'hi' }) => JSON.stringify({ ...fields, pad: 'x'.repeat(n) });

test('HTTP bodies: 4 KB without valid credentials (413 before the body is read), the route cap with them', async () => {
  const url = s.gateways[0].url;
  const before = await limitRefusals(url);
  const tok = s.token('alice');
  const bad = makeToken(s.users.alice, { secret: 'not-the-secret' });
  const big = padded(5000);
  const cases = [
    ['no token', '/live_chat_message', {}, 413],
    ['bad signature', '/live_chat_message', { bearer: bad }, 413],
    ['cookie from a foreign origin', '/live_chat_message', { headers: { Cookie: `accessToken=${tok}`, Origin: 'https://evil.example' } }, 413],
    ['dev-login (no credentials at all)', '/auth/dev-login', {}, 413],
    ['notify with a wrong API key', '/api/notify/profile-update', { bearer: 'wrong-key' }, 413],
    ['valid token', '/live_chat_message', { bearer: tok }, 202],
    ['valid cookie, same origin', '/live_chat_message', { headers: { Cookie: `accessToken=${tok}`, Origin: url } }, 202],
    ['the API key', '/api/notify/profile-update', { bearer: API_KEY }, 202],
  ];
  for (const [what, path, opts, want] of cases) {
    const body = path.startsWith('/api/') ? padded(5000, { userId: s.users.alice, user: {} }) : big;
    const r = await http(s, 'POST', 0, path, { body, ...opts });
    assert.equal(r.status, want, `${what}: ${r.text}`);
    if (want === 413) assert.equal(r.json?.error, 'too-large', what);
  }
  // Small requests are answered as before: the cap is not what refused them.
  assert.equal((await http(s, 'POST', 0, '/live_chat_message', { body: { message: 'hi' } })).status, 401);
  // With a token the route's own cap holds: --max-body (64 KB).
  assert.equal((await http(s, 'POST', 0, '/live_chat_message', { body: padded(60000), bearer: tok })).status, 202);
  assert.equal((await http(s, 'POST', 0, '/live_chat_message', { body: padded(70000), bearer: tok })).status, 413);
  // The head alone is answered: nothing of a 900 KB body is waited for.
  const t0 = Date.now();
  const buf = await rawExchange(s.gateways[0].port,
    'POST /live_chat_message HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 900000\r\n\r\n');
  assert.equal(rawStatus(buf), 413);
  assert.ok(Date.now() - t0 < 1000, 'answered at once, before any body');
  const after = await limitRefusals(url);
  assert.equal(after.body_unauth - (before.body_unauth ?? 0), 6, 'five refusals above and the bare head');
  assert.equal(after.body - (before.body ?? 0), 1);
});

test('Socket.IO: guests and sessions before a user\'s CONNECT are capped at 16 KB; a user\'s session gets maxPayload', async () => {
  const url = s.gateways[0].url;
  const before = await limitRefusals(url);
  // A guest over WebSocket: small events work, a 20 KB one closes it.
  const guest = await sioConnected(sioClient(url));
  assert.ok(Array.isArray(await sioAck(guest, 'get-online-users')));
  const gone = sioOnce(guest, 'disconnect');
  guest.emit('get-online-users', 'x'.repeat(20000));
  const [reason, details] = await gone;
  assert.equal(reason, 'transport close');
  assert.equal(details.context.code, 1009);
  // A user may send far more on the same path.
  const user = await sioConnected(sioClient(url, { token: s.token('bob') }));
  assert.equal(await sioAck(user, 'ping', 'x'.repeat(100000)), 'pong');
  assert.ok(user.connected);
  user.disconnect();

  // Long-polling: a session that has not CONNECTed gets 413 for a 20 KB
  // payload, and is closed; once a user's CONNECT is accepted it may send it.
  const poll = `${url}/socket.io/?EIO=4&transport=polling`;
  const open = async () => JSON.parse((await (await fetch(poll)).text()).slice(1)).sid;
  const post = (sid, body) => fetch(`${poll}&sid=${sid}`, { method: 'POST', body });
  const anon = await open();
  assert.equal((await post(anon, `4${'y'.repeat(20000)}`)).status, 413);
  assert.equal((await fetch(`${poll}&sid=${anon}`)).status, 400, 'the session is gone');
  const sid = await open();
  assert.equal((await post(sid, `40${JSON.stringify({ token: s.token('carol') })}`)).status, 200);
  assert.match(await (await fetch(`${poll}&sid=${sid}`)).text(), /^40\{"sid":/);
  assert.equal((await post(sid, `42${JSON.stringify(['ping', 'y'.repeat(20000)])}`)).status, 200);
  assert.match(await (await fetch(`${poll}&sid=${sid}`)).text(), /42\["pong"\]/);
  assert.equal((await post(sid, '1')).status, 200);

  const after = await limitRefusals(url);
  assert.equal(after.payload_unauth - (before.payload_unauth ?? 0), 2, 'the guest and the polling session');
  assert.equal(after.payload ?? 0, before.payload ?? 0, 'nothing refused a user');
});

test('chat per address: users from one address share its bucket (burst 6 here), each far within their own; rate-limited / 429', async () => {
  // A gateway whose per-address bucket is small and refills too slowly
  // (one message per 100 s) to matter during the test. Every user's own
  // bucket in the broker takes 10 at once: nobody here sends more than 3.
  const gw = await s.startGateway('gw-chat', undefined, { HERALD_CHAT_RATE_PER_IP: '0.01', HERALD_CHAT_BURST_PER_IP: '6' });
  try {
    await s.waitHealthy(gw);
    const gi = s.gateways.indexOf(gw);
    const listener = await s.connect('erin', 0); // on another gateway: listening takes nothing
    await listener.sync();
    const alice = await s.connect('alice', gi);
    const bob = await sioConnected(sioClient(gw.url, { token: s.token('bob') }));
    const chat = (name, message) => http(s, 'POST', gi, '/live_chat_message', { body: { message }, bearer: s.token(name) });

    alice.send({ type: 'livechat', message: 'ok 1' });
    alice.send({ type: 'livechat', message: 'ok 2' });
    await alice.sync();
    assert.deepEqual(await sioAck(bob, 'livechat', { message: 'ok 3' }), { ok: true });
    assert.deepEqual(plainAck(await sioAck(bob, 'direct_message', { to: 'erin', message: 'ok 4' })), { ok: true });
    assert.equal((await chat('carol', 'ok 5')).status, 202);
    const dm = await http(s, 'POST', gi, '/direct_chat_message', { body: { to: 'erin', message: 'ok 6' }, bearer: s.token('dave') });
    assert.equal(dm.status, 202);

    // The address's six are spent: every endpoint refuses, whoever asks.
    let n = alice.messages.length;
    alice.send({ type: 'livechat', message: 'no 1' });
    await rawError(alice, n, 'rate-limited');
    assertFail(await sioAck(bob, 'livechat', { message: 'no 2' }), 'rate-limited', 'socket.io with an ack');
    const from = bob.events.length;
    bob.emit('direct_message', { to: 'erin', message: 'no 3' });
    const [err] = await sioNext(bob, 'error', () => true, { from });
    assert.equal(err.code, 'rate-limited');
    const r = await chat('carol', 'no 4');
    assert.equal(r.status, 429);
    assert.equal(r.json?.error, 'rate-limited');
    // A user who has sent nothing at all is refused too: the limit is the
    // address's, not the user's.
    const fresh = await new Client(gw.ws, { headers: { Authorization: `Bearer ${s.token('erin')}` } }).opened();
    n = fresh.messages.length;
    fresh.send({ type: 'direct_message', to: 'alice', message: 'no 5' });
    await rawError(fresh, n, 'rate-limited');

    await listener.sync();
    const seen = since(listener, 0, (m) => ['livechat', 'direct_message'].includes(m.type)).map((m) => m.message);
    assert.deepEqual(seen.sort(), ['ok 1', 'ok 2', 'ok 3', 'ok 4', 'ok 5', 'ok 6'], 'nothing over the limit was sent');
    assert.equal(since(alice, 0, is('direct_message')).length, 0);
    assert.equal((await limitRefusals(gw.url)).chat_rate_per_ip, 5);
    await Promise.all([listener.close(), alice.close(), fresh.close()]);
    bob.disconnect();
  } finally {
    assert.equal((await gw.proc.stop()).code, 0);
  }
});
