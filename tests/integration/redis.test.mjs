// Redis restarting empty under a running stack: clients stay connected,
// /healthz says 503 meanwhile, and afterwards online_users is exact again
// and events flow as before.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, waitFor, sioClient, sioConnected, sioAck, sioNext, closeSioClients, metrics } from './harness.mjs';

let s;
before(async () => { s = await new Stack('redis-restart').start(); });
after(async () => { await s.stop(); });

const health = async (gw) => (await fetch(`${gw.url}/healthz`)).status;

test('redis restart without persistence: no client dropped, state rewritten, events flow again', async () => {
  const alice = await s.connect('alice', 0);
  const bob = await s.connect('bob', 1);
  await alice.next((m) => m.type === 'status_update' && m.userId === s.users.bob);
  let dropped = false;
  alice.closed.then(() => { dropped = true; });
  bob.closed.then(() => { dropped = true; });

  const t0 = Date.now();
  await s.redisProc.stop();
  await waitFor(async () => (await health(s.gateways[0])) === 503, { what: '/healthz 503 while redis is down' });
  await s.startRedis();
  await waitFor(async () => (await health(s.gateways[0])) === 200 && (await health(s.gateways[1])) === 200,
    { what: 'healthy again', timeout: 20000 });
  await waitFor(async () => {
    const on = await s.onlineUsers();
    return on.length === 2 && on[0] === s.users.alice && on[1] === s.users.bob;
  }, { what: 'online_users rewritten', timeout: 15000 });
  console.log(`# redis down and back: healthy and online_users exact ${Date.now() - t0} ms after the stop`);
  assert.equal(dropped, false, 'clients stay connected through a short outage');

  // Each gateway's connections were written back too (herald:conns:<gw>):
  // a broker started now loads them, keeps both users online and announces
  // nothing. They used to be deleted and never rewritten, so the next broker
  // took both users offline while their tabs were open.
  await waitFor(() => s.redis('HLEN', 'herald:conns:gw-a') === '(integer) 1' &&
    s.redis('HLEN', 'herald:conns:gw-b') === '(integer) 1', { what: 'connections written back' });
  const seen = alice.messages.length;
  s.broker.kill('SIGKILL');
  await s.broker.exited;
  await s.startBroker();
  const after = await alice.sync(); // answered by the new broker
  assert.deepEqual([...after.users].sort((a, b) => a - b), [s.users.alice, s.users.bob].sort((a, b) => a - b));
  assert.deepEqual(await s.onlineUsers(), [s.users.alice, s.users.bob].sort((a, b) => a - b));
  assert.deepEqual(alice.messages.slice(seen).filter((m) => m.type === 'status_update'), []);

  // The pipeline works: a new user is announced, a leaving one too.
  const carol = await s.connect('carol', 1);
  await alice.next((m) => m.type === 'status_update' && m.userId === s.users.carol && m.status === 'online', 10000);
  await bob.close();
  await alice.next((m) => m.type === 'status_update' && m.userId === s.users.bob && m.status === 'offline');
  assert.deepEqual(await s.onlineUsers(), [s.users.alice, s.users.carol].sort((a, b) => a - b));
  const list = await alice.sync();
  assert.deepEqual([...list.users].sort((a, b) => a - b), [s.users.alice, s.users.carol].sort((a, b) => a - b));
  await carol.close();
  await alice.close();
});

// While a gateway cannot hand events to Redis, a chat message or DM must not
// vanish: its sender hears "unavailable" at once, on every endpoint (it used
// to be dropped without a word, and a Socket.IO callback was never called).
test('redis down: socket events are refused with unavailable, never dropped silently', async () => {
  const alice = await s.connect('alice', 0);
  const bob = await s.sio('bob', 1);
  await alice.sync();
  await s.redisProc.stop();
  await waitFor(async () => (await health(s.gateways[0])) === 503 && (await health(s.gateways[1])) === 503,
    { what: 'both gateways see redis down' });

  const from = alice.messages.length;
  alice.send({ type: 'direct_message', to: 'bob', message: 'lost?' });
  alice.send({ type: 'livechat', message: 'lost too?' });
  const errorsSince = () => alice.messages.slice(from).filter((m) => m.type === 'error');
  await waitFor(() => errorsSince().length >= 2, { what: 'two error frames' });
  assert.deepEqual(errorsSince().map((m) => m.code), ['unavailable', 'unavailable']);

  const ack = await sioAck(bob, 'direct_message', { to: 'alice', message: 'lost?' });
  assert.equal(ack.ok, false);
  assert.equal(ack.error, 'unavailable');
  const ev = bob.events.length;
  bob.emit('livechat', { message: 'no callback' });
  const [err] = await sioNext(bob, 'error', () => true, { from: ev });
  assert.equal(err.code, 'unavailable');

  await s.startRedis();
  await waitFor(async () => (await health(s.gateways[0])) === 200 && (await health(s.gateways[1])) === 200,
    { what: 'healthy again', timeout: 20000 });
  // And once Redis is back the same events are taken again.
  await waitFor(async () => (await sioAck(bob, 'livechat', { message: 'back' })).ok === true,
    { what: 'chat accepted again', timeout: 15000 });
  await alice.next((m) => m.type === 'livechat' && m.message === 'back');
  bob.disconnect();
  closeSioClients();
  await alice.close();
});

// A client that closes while Redis is down: its close cannot be published
// then, and its user used to stay in online_users for good (a ghost). The
// gateway now lists every connection it holds once Redis is back, and the
// broker drops the ones that are not listed, with the offline event.
test('a close made while redis was down is not forgotten: no ghost afterwards', async () => {
  const alice = await s.connect('alice', 0);
  const carol = await s.connect('carol', 1);
  const dave = await s.sio('dave', 1);
  await alice.next((m) => m.type === 'status_update' && m.userId === s.users.dave && m.status === 'online');
  await alice.sync();
  await s.redisProc.stop();
  await waitFor(async () => (await health(s.gateways[1])) === 503, { what: 'gw-b sees redis down' });
  await carol.close();
  dave.disconnect();
  await s.startRedis();
  await waitFor(async () => (await health(s.gateways[0])) === 200 && (await health(s.gateways[1])) === 200,
    { what: 'healthy again', timeout: 20000 });
  await alice.next((m) => m.type === 'status_update' && m.userId === s.users.carol && m.status === 'offline', 10000);
  await alice.next((m) => m.type === 'status_update' && m.userId === s.users.dave && m.status === 'offline', 10000);
  await waitFor(async () => {
    const on = await s.onlineUsers();
    return on.length === 1 && on[0] === s.users.alice;
  }, { what: 'online_users is alice alone', timeout: 10000 });
  const st = await (await fetch(`${s.gateways[0].url}/online-status/carol`)).json();
  assert.deepEqual(st, { online: false });
  closeSioClients();
  await alice.close();
});

// An event handed to Redis that Redis never took: the connection dropped
// with it in flight, or Redis refused the write. Its sender used to hear
// nothing (raw) or wait for a callback that never came (Socket.IO). A
// refusal is the reproducible form of it: maxmemory 1 makes every XADD fail.
test('an event Redis never took is answered unavailable, on both endpoints', async () => {
  const alice = await s.connect('alice', 0);
  const bob = await s.sio('bob', 1);
  await alice.sync();
  const lostBefore = await Promise.all(s.gateways.map(async (gw) =>
    (await metrics(gw.url)).get('herald_gateway_events_lost_in_flight_total')));
  const from = alice.messages.length;
  s.redis('CONFIG', 'SET', 'maxmemory', '1');
  let ack;
  try {
    alice.send({ type: 'direct_message', to: 'bob', message: 'not taken' });
    ack = await sioAck(bob, 'direct_message', { to: 'alice', message: 'not taken either' });
    await alice.next((m) => m.type === 'error' && alice.messages.indexOf(m) >= from, 5000, 'an error frame');
  } finally {
    s.redis('CONFIG', 'SET', 'maxmemory', '0');
  }
  assert.deepEqual(alice.messages.slice(from).filter((m) => m.type === 'error').map((m) => m.code), ['unavailable']);
  assert.equal(ack.ok, false);
  assert.equal(ack.error, 'unavailable');
  for (const [i, gw] of s.gateways.entries()) {
    assert.equal((await metrics(gw.url)).get('herald_gateway_events_lost_in_flight_total'), lostBefore[i] + 1);
  }
  // Taken again as soon as Redis takes writes.
  await waitFor(async () => (await sioAck(bob, 'livechat', { message: 'taken' })).ok === true, { what: 'chat accepted again' });
  await alice.next((m) => m.type === 'livechat' && m.message === 'taken');
  bob.disconnect();
  closeSioClients();
  await alice.close();
});

// Redis acknowledged the event, then restarted without it (no persistence)
// before the broker read it. Its sender used to hear nothing for good. The
// gateway holds each event until the broker's group has read it, and
// after a reconnect checks that the ones still held are there.
test('an event Redis lost in a restart before the broker read it is answered unavailable', async () => {
  const alice = await s.connect('alice', 0);
  const bob = await s.sio('bob', 1);
  await alice.sync();
  // Nothing held from before (the sync's own event is read by now): what
  // is answered below is the two events of this test only.
  await waitFor(async () => (await Promise.all(s.gateways.map(async (gw) =>
    (await metrics(gw.url)).get('herald_gateway_events_held')))).every((n) => n === 0), { what: 'nothing held' });
  const from = alice.messages.length;
  s.broker.kill('SIGSTOP');
  let pending;
  try {
    const before = Number(s.redis('XLEN', 'herald:events').replace(/\D/g, ''));
    alice.send({ type: 'direct_message', to: 'bob', message: 'stored, then gone' });
    pending = bob.timeout(15000).emitWithAck('direct_message', { to: 'alice', message: 'stored, then gone too' });
    await waitFor(() => Number(s.redis('XLEN', 'herald:events').replace(/\D/g, '')) >= before + 2,
      { what: 'both events in the stream' });
    await s.redisProc.stop();
    await s.startRedis();
  } finally {
    s.broker.kill('SIGCONT');
  }
  const ack = await pending;
  assert.equal(ack.ok, false);
  assert.equal(ack.error, 'unavailable');
  await alice.next((m) => m.type === 'error' && alice.messages.indexOf(m) >= from, 10000, 'an error frame');
  assert.deepEqual(alice.messages.slice(from).filter((m) => m.type === 'error').map((m) => m.code), ['unavailable']);
  assert.equal(alice.messages.slice(from).filter((m) => m.type === 'direct_message').length, 0);
  await waitFor(async () => (await fetch(`${s.gateways[0].url}/healthz`)).status === 200 &&
    (await fetch(`${s.gateways[1].url}/healthz`)).status === 200, { what: 'healthy again', timeout: 20000 });
  bob.disconnect();
  closeSioClients();
  await alice.close();
});
