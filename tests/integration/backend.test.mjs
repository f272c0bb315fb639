// The application backend's side (PROTOCOL.md §6a, docs/API.md
// "Provisioning", "Online queries", "Hooks"): users and friendships
// provisioned over HTTP and over the stream, just-in-time users from token
// claims (on and off), POST /api/online-status for 1,000 ids, and the
// herald:hooks stream: one entry per event kind, capped without ever
// trimming what a consumer group has not acknowledged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, freePort, makeToken, metrics, waitFor, sioAck, closeSioClients, sioClient, sioConnected } from './harness.mjs';
import { API_KEY, http as httpOn, is, nextFrom, assertPublic } from './social-lib.mjs';
import { NO_LIMITS } from './chaos-lib.mjs';

let s; // JIT off (the default), hooks at the default cap
let j; // JIT on, hooks capped at HOOKS_CAP
const HOOKS_CAP = 40;

async function stack(name, env) {
  const adminPort = await freePort();
  const st = await new Stack(name, {
    env: { HERALD_API_KEY: API_KEY, HERALD_ADMIN_LISTEN: `127.0.0.1:${adminPort}`, ...env },
  }).start();
  st.brokerAdminUrl = `http://127.0.0.1:${adminPort}`;
  return st;
}

before(async () => {
  [s, j] = await Promise.all([
    stack('backend'),
    stack('backend-jit', { ...NO_LIMITS, HERALD_JIT_USERS: '1', HERALD_HOOKS_MAXLEN: String(HOOKS_CAP) }),
  ]);
});
after(async () => {
  closeSioClients();
  await Promise.all([s?.stop(), j?.stop()]);
});

const api = (st, method, path, body, { key = API_KEY, gi = 0 } = {}) => httpOn(st, method, gi, path, { body, bearer: key });
const brokerMetric = async (st, name) => (await metrics(st.brokerAdminUrl)).get(name) ?? 0;
const exists = async (st, name) => (await httpOn(st, 'GET', 0, `/online-status/${name}`)).status === 200;

// Every entry of herald:hooks as {id, t, d, ts}.
function hooks(st) {
  const out = st.redis('--raw', 'XRANGE', 'herald:hooks', '-', '+').split('\n');
  // --raw XRANGE prints: id, then field/value lines (t, name, d, json, ts, ms).
  const entries = [];
  for (let i = 0; i < out.length;) {
    if (!/^\d+-\d+$/.test(out[i])) { i++; continue; }
    const e = { id: out[i] };
    for (let k = i + 1; k + 1 < out.length && !/^\d+-\d+$/.test(out[k]); k += 2) e[out[k]] = out[k + 1];
    entries.push({ id: e.id, t: e.t, d: JSON.parse(e.d), ts: Number(e.ts) });
    i++;
  }
  return entries;
}
const hookWith = (st, t, pred = () => true) => hooks(st).find((h) => h.t === t && pred(h.d));

// ---- provisioning ------------------------------------------------------

test('PUT /api/users/:id creates (201) then updates (200); repeats change nothing; bad input is refused with a word and changes nothing', async () => {
  let r = await api(s, 'PUT', '/api/users/500', { username: 'zoe', avatar: '/z.png' });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.json, { ok: true, created: true });
  r = await api(s, 'PUT', '/api/users/500', { username: 'zoe', avatar: '/z.png' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { ok: true, created: false });
  assert.ok(await exists(s, 'zoe'));

  // The new user connects with a token for its id.
  const zoe = await sioConnected(sioClient(s.gateways[1].url, { token: makeToken(500) }));
  assert.deepEqual(await sioAck(zoe, 'whoami'), { id: 500, username: 'zoe' });

  const refusals = [
    [['PUT', '/api/users/500', { avatar: '/x.png' }], 400, 'bad-field'],
    [['PUT', '/api/users/500', { username: 'has space' }], 400, 'bad-field'],
    [['PUT', '/api/users/500', { username: 'zoe', avatar: 7 }], 400, 'bad-field'],
    [['PUT', '/api/users/500', 'not json'], 400, 'bad-json'],
    [['PUT', '/api/users/500', { username: 'alice' }], 409, 'username-taken'],
    [['PUT', '/api/users/abc', { username: 'x' }], 400, 'bad-field'],
    [['PUT', '/api/users/0', { username: 'x' }], 400, 'bad-field'],
    [['PUT', '/api/users/9007199254740992', { username: 'x' }], 400, 'bad-field'],
    [['PATCH', '/api/users/500', { username: 'x' }], 405, 'method-not-allowed'],
    [['PUT', '/api/friendships', { userId: 500 }], 400, 'bad-field'],
    [['PUT', '/api/friendships', { userId: 500, friendId: 500 }], 400, 'bad-field'],
    [['PUT', '/api/friendships', { userId: 500, friendId: 123456 }], 404, 'unknown-user'],
    [['GET', '/api/online-status'], 405, 'method-not-allowed'],
  ];
  for (const [[method, path, body], status, word] of refusals) {
    r = await api(s, method, path, body);
    assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json?.error, word, `${method} ${path}: ${r.text}`);
    assert.equal(typeof r.json?.message, 'string');
  }
  r = await api(s, 'PUT', '/api/users/500', { username: 'zz' }, { key: 'wrong' });
  assert.equal(r.status, 401, r.text);
  assert.equal(r.json.error, 'bad-api-key');
  // Nothing of it took effect.
  assert.deepEqual(await sioAck(zoe, 'whoami'), { id: 500, username: 'zoe' });
  assert.ok(!(await exists(s, 'zz')));
  zoe.disconnect();
});

test('a rename reaches the profile\'s watchers; a friendship gives the new friend the full shape on its open connection and an unfriend takes it back', async () => {
  const Z = 500, B = s.users.bob;
  const bob = await s.connect('bob', 0);
  bob.send({ type: 'watch-profile', userId: Z });
  await bob.sync();
  let from = bob.messages.length;

  let r = await api(s, 'PUT', `/api/users/${Z}`, { username: 'zoe2' });
  assert.equal(r.status, 200, r.text);
  let m = await nextFrom(bob, from, is('profile-update'), 'rename at bob');
  assert.equal(m.user.username, 'zoe2');
  assert.equal(m.user.avatar, '/z.png', 'an absent avatar is kept');
  assertPublic(m.user, 'bob is not a friend yet');

  from = bob.messages.length;
  r = await api(s, 'PUT', '/api/friendships', { userId: Z, friendId: B });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { ok: true, changed: true });
  m = await nextFrom(bob, from, is('profile-update', (x) => x.user.userID === Z), 'friendship at bob');
  assert.deepEqual(m.user.friends, [{ id: B, username: 'bob' }], 'the full shape: with the friends list');
  r = await api(s, 'PUT', '/api/friendships', { userId: B, friendId: Z });
  assert.deepEqual(r.json, { ok: true, changed: false }, 'idempotent, in either order');

  from = bob.messages.length;
  r = await api(s, 'DELETE', '/api/friendships', { userId: B, friendId: Z });
  assert.deepEqual(r.json, { ok: true, changed: true });
  m = await nextFrom(bob, from, is('profile-update', (x) => x.user.userID === Z), 'unfriend at bob');
  assertPublic(m.user, 'after the unfriend');
  r = await api(s, 'DELETE', '/api/friendships', { userId: B, friendId: Z });
  assert.deepEqual(r.json, { ok: true, changed: false });
  await bob.close();
});

test('DELETE /api/users/:id is account-deleted: the tabs are told and closed, the id is never reused; the stream path provisions too', async () => {
  const zoe = await s.connect(null, 1, { headers: { Authorization: `Bearer ${makeToken(500)}` } });
  await zoe.sync();
  let r = await api(s, 'DELETE', '/api/users/500');
  assert.equal(r.status, 202, r.text);
  await zoe.next(is('account-deleted'), 5000, 'account-deleted');
  assert.equal((await zoe.closed).code, 4003);
  r = await api(s, 'PUT', '/api/users/500', { username: 'zoe' });
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.error, 'deleted-user');
  r = await api(s, 'DELETE', '/api/users/500');
  assert.equal(r.status, 202, 'a repeated deletion is accepted without effect');

  // The same events XADDed by a backend straight onto herald:events.
  const xadd = (e, d) => s.redis('XADD', 'herald:events', '*', 't', 'notify', 'e', e, 'd', JSON.stringify(d));
  xadd('user-put', { userId: 501, username: 'yan' });
  await waitFor(() => exists(s, 'yan'), { what: 'yan provisioned from the stream' });
  xadd('friendship-put', { userId: 501, friendId: s.users.alice });
  const alice = await sioConnected(sioClient(s.gateways[0].url, { token: s.token('alice') }));
  await waitFor(async () => {
    const snap = await sioAck(alice, 'watch-profile', { userId: 501 });
    return snap.user.friends?.some((f) => f.id === s.users.alice);
  }, { what: 'the stream friendship' });
  xadd('user-delete', { userId: 501 });
  await waitFor(async () => !(await exists(s, 'yan')), { what: 'yan deleted from the stream' });
  alice.disconnect();
});

// ---- just-in-time users ----------------------------------------------------

test('JIT off: a valid token for an unknown id is refused unknown-user and creates nothing', async () => {
  const c = await s.connect(null, 0, { headers: { Authorization: `Bearer ${makeToken(900, { claims: { username: 'ghost' } })}` } });
  const closed = await c.closed;
  assert.equal(closed.code, 4003);
  assert.equal(closed.reason, 'unknown-user');
  assert.ok(!(await exists(s, 'ghost')));
});

test('JIT on: a valid token for an unknown id creates the user from its claims; username and avatar follow the claims later', async () => {
  const tok = (claims) => makeToken(900, { claims });
  let sock = await sioConnected(sioClient(j.gateways[0].url, { token: tok({ preferred_username: 'jit ty', picture: '/j.png' }) }));
  assert.deepEqual(await sioAck(sock, 'whoami'), { id: 900, username: 'jit_ty' }, 'preferred_username, unsafe bytes replaced');
  const watcher = await sioConnected(sioClient(j.gateways[1].url, { token: j.token('bob') }));
  let snap = await sioAck(watcher, 'watch-profile', { userId: 900 });
  assert.equal(snap.user.avatar, '/j.png');
  sock.disconnect();

  const n = watcher.events.length;
  sock = await sioConnected(sioClient(j.gateways[1].url, { token: tok({ username: 'jitty2', avatar: '/j2.png', name: 'ignored' }) }));
  assert.deepEqual(await sioAck(sock, 'whoami'), { id: 900, username: 'jitty2' });
  await waitFor(() => watcher.events.slice(n).some(([e, d]) => e === 'profile-update' && d.user.username === 'jitty2' && d.user.avatar === '/j2.png'),
    { what: 'the watcher told of the new claims' });
  sock.disconnect();

  // A claimed name someone else has: the new user gets its id appended.
  sock = await sioConnected(sioClient(j.gateways[0].url, { token: makeToken(901, { claims: { username: 'alice' } }) }));
  assert.deepEqual(await sioAck(sock, 'whoami'), { id: 901, username: 'alice-901' });
  // No claim at all: user<id>.
  const bare = await sioConnected(sioClient(j.gateways[0].url, { token: makeToken(902) }));
  assert.deepEqual(await sioAck(bare, 'whoami'), { id: 902, username: 'user902' });
  sock.disconnect();
  bare.disconnect();
  watcher.disconnect();

  // A deleted account is not created again by its still-valid token.
  assert.equal((await api(j, 'DELETE', '/api/users/902')).status, 202);
  const again = await j.connect(null, 0, { headers: { Authorization: `Bearer ${makeToken(902)}` } }).catch((e) => e);
  assert.equal(again.status, 401, 'refused at the door by the deleted set');
});

// ---- online queries -----------------------------------------------------------

test('POST /api/online-status answers 1,000 ids in one request, those online in the order asked; over 1,000 or a bad id is 400', async () => {
  const a = await s.connect('alice', 0), c = await s.connect('carol', 1);
  await Promise.all([a.sync(), c.sync()]);
  const ids = Array.from({ length: 1000 }, (_, i) => 1000 - i); // descending, ids 1..1000
  const r = await api(s, 'POST', '/api/online-status', { ids });
  assert.equal(r.status, 200, r.text);
  const want = [s.users.alice, s.users.carol].sort((x, y) => y - x);
  assert.deepEqual(r.json, { online: want });
  const strIds = await api(s, 'POST', '/api/online-status', { ids: [String(s.users.alice), 999999] });
  assert.deepEqual(strIds.json, { online: [s.users.alice] }, 'ids as strings are answered as numbers');
  for (const [body, why] of [[{ ids: Array(1001).fill(1) }, '1001 ids'], [{ ids: 5 }, 'not an array'],
    [{ ids: [1, 'x'] }, 'a bad id'], [{ ids: [1, -2] }, 'a negative id'], [{}, 'no ids']]) {
    const b = await api(s, 'POST', '/api/online-status', body);
    assert.equal(b.status, 400, `${why}: ${b.text}`);
    assert.equal(b.json.error, 'bad-field', why);
  }
  const nokey = await api(s, 'POST', '/api/online-status', { ids: [1] }, { key: null });
  assert.equal(nokey.status, 401);
  await Promise.all([a.close(), c.close()]);
});

// ---- hooks -------------------------------------------------------------------

test('herald:hooks has an entry for every event kind: online, offline (with onlineSince), livechat, DM, account deletion', async () => {
  const E = s.addUser('erika');
  const before = Date.now();
  const erika = await s.connect('erika', 0);
  const bob = await s.connect('bob', 1);
  await waitFor(() => hookWith(s, 'user-online', (d) => d.userId === E), { what: 'user-online hook' });
  const on = hookWith(s, 'user-online', (d) => d.userId === E);
  assert.deepEqual(on.d, { userId: E, username: 'erika' });
  assert.ok(on.ts >= before - 5 && on.ts <= Date.now() + 5, 'ts is the time of day');

  erika.send({ type: 'livechat', message: 'hooked on chat' });
  erika.send({ type: 'direct_message', to: 'bob', message: 'hooked DM' });
  await bob.next(is('direct_message'), 5000, 'the DM');
  await waitFor(() => hookWith(s, 'direct-message', (d) => d.message === 'hooked DM'), { what: 'DM hook' });
  const chat = hookWith(s, 'livechat', (d) => d.message === 'hooked on chat');
  assert.equal(chat.d.userId, E);
  assert.equal(chat.d.user, 'erika');
  assert.ok(chat.d.id > 0 && chat.d.ts > 0);
  const dm = hookWith(s, 'direct-message', (d) => d.message === 'hooked DM');
  assert.deepEqual({ userId: dm.d.userId, to: dm.d.to, user: dm.d.user }, { userId: E, to: s.users.bob, user: 'erika' });
  assert.ok(dm.d.id > 0);

  await erika.close();
  await waitFor(() => hookWith(s, 'user-offline', (d) => d.userId === E), { what: 'user-offline hook' });
  const off = hookWith(s, 'user-offline', (d) => d.userId === E);
  assert.deepEqual(off.d, { userId: E, username: 'erika', onlineSince: on.ts });

  assert.equal((await api(s, 'DELETE', `/api/users/${E}`)).status, 202);
  await waitFor(() => hookWith(s, 'account-deleted', (d) => d.userId === E), { what: 'account-deleted hook' });
  await bob.close();
  // In the order they happened.
  const order = hooks(s).filter((h) => h.d.userId === E && h.t !== 'direct-message').map((h) => h.t);
  assert.deepEqual(order, ['user-online', 'livechat', 'user-offline', 'account-deleted']);
});

test('herald:hooks is capped but never trimmed past what a consumer group has not acknowledged; at the cap new hooks are dropped and counted', async () => {
  // A group that reads nothing yet: every entry from now on is held for it.
  j.redis('XGROUP', 'CREATE', 'herald:hooks', 'app', '$', 'MKSTREAM');
  const dropped0 = await brokerMetric(j, 'herald_broker_hooks_dropped_total');
  const alice = await sioConnected(sioClient(j.gateways[0].url, { token: j.token('alice') }));
  // Livechat messages until the stream is full and hooks are dropped.
  // (The broker learns of the group at its next trim, within a second.)
  let sent = 0;
  await waitFor(async () => {
    assert.deepEqual(await sioAck(alice, 'livechat', { message: `cap ${sent++}` }), { ok: true });
    return (await brokerMetric(j, 'herald_broker_hooks_dropped_total')) > dropped0;
  }, { what: 'hooks dropped at the cap', interval: 5 });
  // Read the group's entries without acknowledging: none of them is trimmed.
  const read = j.redis('--raw', 'XREADGROUP', 'GROUP', 'app', 'c1', 'COUNT', '1000', 'STREAMS', 'herald:hooks', '>')
    .split('\n').filter((l) => /^\d+-\d+$/.test(l));
  assert.ok(read.length >= HOOKS_CAP / 2, `the group got the entries held for it (${read.length})`);
  const first = read[0];
  assert.ok(await brokerMetric(j, 'herald_broker_hooks_length') >= HOOKS_CAP);
  // Trims run every second; hooks keep being dropped meanwhile, and the
  // oldest unacknowledged entry stays.
  const dropped1 = await brokerMetric(j, 'herald_broker_hooks_dropped_total');
  const len0 = Number(j.redis('--raw', 'XLEN', 'herald:hooks'));
  await waitFor(async () => {
    await sioAck(alice, 'livechat', { message: 'while full' });
    return (await brokerMetric(j, 'herald_broker_hooks_dropped_total')) > dropped1 + 2;
  }, { what: 'more drops', interval: 400 });
  assert.equal(j.redis('--raw', 'XRANGE', 'herald:hooks', first, first).split('\n')[0], first, 'an unacknowledged entry is kept');
  // While full nothing is added: the stream does not grow. (It may hold
  // more than the cap: what was added in the second before the broker's
  // trim first saw the group. A trim may make room for one entry: the one
  // the group's read started after.)
  const len1 = Number(j.redis('--raw', 'XLEN', 'herald:hooks'));
  assert.ok(len1 <= Math.max(len0, HOOKS_CAP), `the stream did not grow while full (${len0} -> ${len1})`);

  // Acknowledged: the trim frees the stream and hooks are added again.
  j.redis('XACK', 'herald:hooks', 'app', ...read);
  await waitFor(() => Number(j.redis('--raw', 'XLEN', 'herald:hooks')) < HOOKS_CAP / 2, { what: 'the trim after the ack' });
  await waitFor(async () => (await sioAck(alice, 'livechat', { message: 'after the ack' })).ok, { what: 'chat' });
  await waitFor(() => hookWith(j, 'livechat', (d) => d.message === 'after the ack'), { what: 'hooks added again' });
  j.redis('XGROUP', 'DESTROY', 'herald:hooks', 'app');
  alice.disconnect();
});
