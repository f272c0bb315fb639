// The benchmarks' reference server (bench/reference/server.js: Node
// Socket.IO v4 + @socket.io/redis-streams-adapter) as the benchmarks run it:
// two processes on one redis-server, driven by the stock socket.io-client.
// Proves it keeps the part of Herald's contract the benchmarks compare:
// presence across processes (one event per real transition), get-online-users,
// livechat and direct messages crossing processes, bad tokens refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Stack, SECRET, freePort, makeToken, waitFor, sioClient, sioConnected, sioAck, sioNext, sioOnce,
  closeSioClients,
} from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SERVER = path.join(ROOT, 'bench/reference/server.js');
const USERS = [
  { id: 11, username: 'alice' }, { id: 12, username: 'Bob' }, { id: 13, username: 'carol' },
  { id: 14, username: 'dave' }, { id: 15, username: 'erin' }, { id: 16, username: 'frank' },
];
const uid = Object.fromEntries(USERS.map((u) => [u.username.toLowerCase(), u.id]));

let s; // the harness Stack: temp dir, log dir, redis-server, stop-by-pid
const refs = []; // { proc, url }

// Starts one reference process as the harness starts its processes (Stack.stop
// stops it by pid and requires exit 0 after SIGTERM).
async function startRef(name) {
  const Proc = s.redisProc.constructor;
  const port = await freePort();
  const proc = new Proc(name, process.execPath, [
    SERVER, '--port', String(port), '--redis-url', `redis://127.0.0.1:${s.redisPort}`,
    '--users', path.join(s.dir, 'users.json'), '--name', name,
  ], { HERALD_JWT_SECRET: SECRET }, s.logDir);
  s.procs.push(proc);
  await waitFor(() => {
    if (!proc.running) throw new Error(`${name} exited: ${proc.tail()}`);
    return /^listening \d+$/m.test(proc.tail(200));
  }, { what: `${name} listening`, timeout: 10000 });
  return { proc, url: `http://127.0.0.1:${port}` };
}

before(async () => {
  s = new Stack('reference');
  fs.writeFileSync(path.join(s.dir, 'users.json'), JSON.stringify(USERS));
  s.redisPort = await freePort();
  await s.startRedis();
  refs.push(...await Promise.all([startRef('ref-a'), startRef('ref-b')]));
});
after(async () => {
  closeSioClients();
  await s.stop();
});

const sio = (name, i, opts = {}) =>
  sioConnected(sioClient(refs[i].url, { token: name ? makeToken(uid[name]) : null, ...opts }));
const statuses = (sock, id) =>
  sock.events.filter(([n, d]) => n === 'user-status-change' && d.userId === id).map(([, d]) => d.status);
const conns = (id) => Number(s.redis('HGET', 'herald-ref:conns', String(id)).replace(/"/g, '')) || 0;

// Fence: `who` connects on refs[0] and `watcher` sees its online event. A
// process's broadcasts reach the stream in the order it made them, so every
// earlier status change of refs[0] has reached the watcher too.
async function fence(watcher, who) {
  const sock = await sio(who, 0);
  await sioNext(watcher, 'user-status-change', (d) => d.userId === uid[who] && d.status === 'online');
  sock.disconnect();
  await sioNext(watcher, 'user-status-change', (d) => d.userId === uid[who] && d.status === 'offline');
}

test('two tabs on one process: one online seen on the other process, offline after both close', async () => {
  const watcher = await sio(null, 1); // a guest on the other process
  const tab1 = await sio('alice', 0);
  const [ev] = await sioNext(watcher, 'user-status-change', (d) => d.userId === uid.alice);
  assert.deepEqual(ev, { userId: uid.alice, status: 'online' });
  const tab2 = await sio('alice', 0);
  await waitFor(() => conns(uid.alice) === 2, { what: 'two alice connections counted' });
  await fence(watcher, 'frank');
  assert.deepEqual(statuses(watcher, uid.alice), ['online']);
  assert.deepEqual(await s.onlineUsers(), [uid.alice]);

  tab1.disconnect();
  await waitFor(() => conns(uid.alice) === 1, { what: 'one alice connection left' });
  await fence(watcher, 'frank');
  assert.deepEqual(statuses(watcher, uid.alice), ['online'], 'closing one of two tabs is no transition');
  assert.deepEqual(await s.onlineUsers(), [uid.alice]);

  tab2.disconnect();
  const [off] = await sioNext(watcher, 'user-status-change', (d) => d.userId === uid.alice && d.status === 'offline');
  assert.deepEqual(off, { userId: uid.alice, status: 'offline' });
  assert.deepEqual(await s.onlineUsers(), []);
  assert.equal(s.redis('HEXISTS', 'herald-ref:conns', String(uid.alice)), '(integer) 0');
  watcher.disconnect();
});

test('get-online-users answers the ids online on either process, as numbers', async () => {
  const a = await sio('alice', 0);
  const b = await sio('bob', 1);
  const guest = await sio(null, 1);
  await waitFor(async () => (await sioAck(guest, 'get-online-users')).length === 2, { what: 'two online' });
  const users = await sioAck(a, 'get-online-users');
  assert.deepEqual([...users].sort((x, y) => x - y), [uid.alice, uid.bob]);
  assert.ok(users.every((u) => typeof u === 'number'));
  a.disconnect();
  b.disconnect();
  guest.disconnect();
  await waitFor(async () => (await s.onlineUsers()).length === 0, { what: 'everyone offline' });
});

test('livechat crosses processes to every authenticated client, not to guests', async () => {
  const alice = await sio('alice', 0);
  const bob = await sio('bob', 1);
  const carol = await sio('carol', 0);
  const guestA = await sio(null, 0);
  const guestB = await sio(null, 1);
  const message = `hello t=${Date.now()} ünïcode ✓`;
  assert.deepEqual(await sioAck(alice, 'livechat', { message }), { ok: true });
  for (const sock of [alice, bob, carol]) {
    const [ev] = await sioNext(sock, 'livechat');
    assert.equal(ev.user, 'alice');
    assert.equal(ev.message, message, 'the message string is passed through unchanged');
  }
  // Each process emits to its local room in one go: the guests beside bob
  // and carol would have it by now.
  await sioAck(guestA, 'get-online-users');
  await sioAck(guestB, 'get-online-users');
  assert.equal(guestA.events.filter(([n]) => n === 'livechat').length, 0);
  assert.equal(guestB.events.filter(([n]) => n === 'livechat').length, 0);

  // Guests may not chat: an error event, or the ack when there is one.
  guestB.emit('livechat', { message: 'nope' });
  const [err] = await sioNext(guestB, 'error');
  assert.equal(err.code, 'auth-required');
  const ack = await sioAck(guestA, 'livechat', { message: 'nope' });
  assert.equal(ack.error, 'auth-required');
  // Bob sends without an ack: still delivered.
  bob.emit('livechat', { message: 'no ack' });
  await sioNext(alice, 'livechat', (d) => d.message === 'no ack' && d.user === 'Bob');
  for (const sock of [alice, bob, carol, guestA, guestB]) sock.disconnect();
});

test('direct_message reaches both tabs of the recipient on the other process, and only them', async () => {
  const alice = await sio('alice', 0);
  const bob1 = await sio('bob', 1);
  const bob2 = await sio('bob', 1);
  const carol = await sio('carol', 1);
  const m1 = `dm by name t=${Date.now()}`;
  assert.deepEqual(await sioAck(alice, 'direct_message', { to: 'BOB', message: m1 }), { ok: true });
  for (const tab of [bob1, bob2]) {
    const [ev] = await sioNext(tab, 'direct_message', (d) => d.message === m1);
    assert.equal(ev.user, 'alice');
  }
  const m2 = 'dm by id';
  assert.deepEqual(await sioAck(alice, 'direct_message', { to: uid.bob, message: m2 }), { ok: true });
  await sioNext(bob1, 'direct_message', (d) => d.message === m2);
  await sioNext(bob2, 'direct_message', (d) => d.message === m2);
  const m3 = 'dm by numeric string';
  assert.deepEqual(await sioAck(alice, 'direct_message', { to: String(uid.carol), message: m3 }), { ok: true });
  await sioNext(carol, 'direct_message', (d) => d.message === m3 && d.user === 'alice');
  assert.equal(carol.events.filter(([n]) => n === 'direct_message').length, 1, 'carol saw only her own DM');
  assert.equal(alice.events.filter(([n]) => n === 'direct_message').length, 0);

  const bad = await sioAck(alice, 'direct_message', { to: 'nobody', message: 'x' });
  assert.equal(bad.error, 'unknown-user');
  const guest = await sio(null, 1);
  assert.equal((await sioAck(guest, 'direct_message', { to: 'alice', message: 'x' })).error, 'auth-required');
  for (const sock of [alice, bob1, bob2, carol, guest]) sock.disconnect();
});

test('bad tokens are refused with connect_error; ?token= works too', async () => {
  const refused = async (token, opts = {}) => {
    const err = await sioConnected(sioClient(refs[1].url, { token, ...opts })).then(
      () => assert.fail('connected'), (e) => e);
    assert.equal(err.message, 'invalid-token');
    assert.equal(err.data?.code, 'invalid-token');
  };
  await refused(makeToken(uid.alice, { secret: 'wrong-secret' }));
  await refused(makeToken(uid.alice, { ttl: -10 }));
  await refused(makeToken(uid.alice, { alg: 'HS512' }));
  await refused(makeToken(uid.alice, { claims: { exp: undefined } }));
  const [h, p] = makeToken(uid.alice).split('.');
  const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
  await refused(`${none}.${p}.`);
  await refused(`${h}.${p}`);
  await refused('garbage');
  await refused(makeToken(uid.alice, { secret: 'wrong' }), { query: { token: makeToken(uid.alice) } });
  assert.deepEqual(await s.onlineUsers(), [], 'refused connections never count');

  // userId claim instead of sub; token in the query string.
  const viaQuery = sioClient(refs[1].url, { query: { token: makeToken(0, { claims: { sub: undefined, userId: uid.dave } }) } });
  await sioConnected(viaQuery);
  await waitFor(async () => (await s.onlineUsers()).includes(uid.dave), { what: 'dave online via ?token=' });
  viaQuery.disconnect();
  await waitFor(async () => (await s.onlineUsers()).length === 0, { what: 'dave offline' });
});

test('SIGTERM: the stopped process takes its users offline, announced on the other', async () => {
  const watcher = await sio(null, 1);
  const erin = await sio('erin', 0);
  await sioNext(watcher, 'user-status-change', (d) => d.userId === uid.erin && d.status === 'online');
  const gone = sioOnce(erin, 'disconnect');
  const info = await refs[0].proc.stop();
  assert.equal(info.code, 0, refs[0].proc.tail());
  await gone;
  await sioNext(watcher, 'user-status-change', (d) => d.userId === uid.erin && d.status === 'offline');
  assert.deepEqual(await s.onlineUsers(), []);
  watcher.disconnect();
});
