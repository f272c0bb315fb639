// Presence end to end: real redis-server, broker and two gateways, raw /ws
// clients from the npm `ws` package.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, Client, makeToken, waitFor, sioClient } from './harness.mjs';

let s;
before(async () => { s = await new Stack('presence').start(); });
after(async () => { await s.stop(); });


test('a user connecting through the other gateway is announced online, once', async () => {
  const alice = await s.connect('alice', 0);
  await alice.sync();
  const bob = await s.connect('bob', 1);
  const ev = await alice.next((m) => m.type === 'status_update' && m.userId === s.users.bob);
  assert.deepEqual(ev, { type: 'status_update', userId: s.users.bob, username: 'bob', status: 'online' });
  assert.deepEqual(await s.onlineUsers(), [s.users.alice, s.users.bob].sort((a, b) => a - b));
  const list = await bob.sync();
  assert.deepEqual([...list.users].sort((a, b) => a - b), [s.users.alice, s.users.bob].sort((a, b) => a - b));
  await bob.close();
  await alice.next((m) => m.type === 'status_update' && m.userId === s.users.bob && m.status === 'offline');
  assert.deepEqual(await s.onlineUsers(), [s.users.alice]);
  await alice.close();
  await waitFor(async () => (await s.onlineUsers()).length === 0, { what: 'online_users empty' });
});

test('two tabs on two gateways: one online event, one offline event', async () => {
  const carol = await s.connect('carol', 0);
  await carol.sync();
  const tab1 = await s.connect('dave', 0);
  const tab2 = await s.connect('dave', 1);
  await carol.next((m) => m.type === 'status_update' && m.userId === s.users.dave);
  await carol.sync();
  assert.deepEqual(carol.statuses(s.users.dave), ['online']);
  await tab1.close();
  await carol.sync();
  assert.deepEqual(carol.statuses(s.users.dave), ['online'], 'closing one of two tabs announces nothing');
  assert.ok((await s.onlineUsers()).includes(s.users.dave));
  await tab2.close();
  await carol.next((m) => m.type === 'status_update' && m.userId === s.users.dave && m.status === 'offline');
  await carol.sync();
  assert.deepEqual(carol.statuses(s.users.dave), ['online', 'offline']);
  assert.ok(!(await s.onlineUsers()).includes(s.users.dave));
  await carol.close();
});

test('GET /online-status/:username answers true, false and 404', async () => {
  const erin = await s.connect('erin', 1);
  await erin.sync();
  for (const g of s.gateways) {
    let r = await fetch(`${g.url}/online-status/erin`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { online: true });
    r = await fetch(`${g.url}/online-status/ERIN`);
    assert.deepEqual(await r.json(), { online: true }, 'usernames are case-insensitive');
    r = await fetch(`${g.url}/online-status/bob`);
    assert.deepEqual(await r.json(), { online: false });
    r = await fetch(`${g.url}/online-status/nobody`);
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error, 'unknown-user');
    r = await fetch(`${g.url}/online-status/x%27%20OR%201%3D1`);
    assert.equal(r.status, 404);
  }
  await erin.close();
});

test('application ping, bad JSON and unknown types get answers; the connection stays', async () => {
  const c = await s.connect('alice', 1);
  c.send({ type: 'ping' });
  assert.deepEqual(await c.next((m) => m.type === 'pong'), { type: 'pong' });
  c.send('{not json');
  assert.equal((await c.next((m) => m.type === 'error')).code, 'bad-json');
  c.send({ type: 'no-such-event' });
  assert.equal((await c.next((m) => m.type === 'error' && m.code === 'unknown-type')).code, 'unknown-type');
  c.ws.send(Buffer.from([1, 2, 3]));
  assert.equal((await c.next((m) => m.type === 'error' && m.code === 'bad-message')).code, 'bad-message');
  await c.sync();
  await c.close();
});

test('a valid token for a user Herald does not know: unknown-user (close 4003 / CONNECT_ERROR), never online', async () => {
  const watcher = await s.connect('bob', 0);
  await watcher.sync();
  const ghost = new Client(s.gateways[1].ws, { headers: { Authorization: `Bearer ${makeToken(999999)}` } });
  await ghost.opened();
  const { code, reason } = await ghost.closed;
  assert.equal(code, 4003);
  assert.equal(reason, 'unknown-user', 'the close says why');
  // Socket.IO: the stock client gets connect_error with data.code, as for
  // any other refused CONNECT, and does not retry by itself.
  const sock = sioClient(s.gateways[0].url, { token: makeToken(999998), transports: ['websocket'] });
  const err = await new Promise((resolve) => sock.on('connect_error', resolve));
  assert.equal(err.data?.code, 'unknown-user');
  assert.equal(err.message, 'unknown user');
  assert.equal(sock.active, false, 'a refusal, not a connection to retry');
  sock.close();
  await watcher.sync();
  assert.deepEqual(watcher.statuses(999999), []);
  assert.deepEqual(watcher.statuses(999998), []);
  const online = await s.onlineUsers();
  assert.ok(!online.includes(999999) && !online.includes(999998));
  await watcher.close();
});

test('web client and health are served', async () => {
  const r = await fetch(`${s.gateways[0].url}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/html/);
  assert.match(await r.text(), /Herald/);
  const h = await fetch(`${s.gateways[1].url}/healthz`);
  assert.equal(h.status, 200);
  assert.equal((await h.json()).status, 'ok');
});

// A kick entry is written by our broker, but anyone with access to Redis
// can write one: a close code a frame may not carry, or a reason too long
// for one, must give a valid close frame (the defaults), never a broken one.
test('a kick with an invalid code or an oversized reason still closes cleanly', async () => {
  const erin = await s.connect('erin', 0);
  await erin.sync();
  const conns = s.redis('HGETALL', 'herald:conns:gw-a').split('\n').map((l) => (l.match(/"(.*)"/) || [])[1]);
  let id;
  // "<user>:<kind>:<session token>"
  for (let i = 0; i + 1 < conns.length; i += 2) if (conns[i + 1].startsWith(`${s.users.erin}:w:`)) id = conns[i];
  assert.ok(id, `erin's connection in herald:conns:gw-a: ${conns}`);
  s.redis('XADD', 'herald:gw:gw-a', '*', 't', 'kick', 'c', id, 's', '1005', 'e', 'x'.repeat(200));
  const { code, reason } = await erin.closed;
  assert.equal(code, 1000);
  assert.equal(reason, 'closed by the server');
});
