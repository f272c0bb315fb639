// Faults that used to leave presence wrong for good: a gateway paused past
// its lease (it came back as a zombie the broker no longer counted), and a
// Redis restart with a standby broker (the standby took over with Redis's
// empty state and every client got an online event for every user).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Stack, waitFor, metrics, sioClient, sioConnected, closeSioClients } from './harness.mjs';

const logHas = (proc, re) => re.test(fs.readFileSync(proc.log, 'utf8'));
const sorted = (v) => [...v].sort((a, b) => a - b);

// A gateway stopped (SIGSTOP) for twice its lease: the broker reaps it and
// takes its users offline. When it resumes it must learn at its next lease
// renewal that it was given up, register again, let the broker answer
// what its clients sent meanwhile (unavailable), then close them with 1012
// (they missed what happened meanwhile); they reconnect and everything
// works as before. It used to renew its lease as if nothing had
// happened: its clients stayed connected, invisible and deaf for good.
test('a gateway paused past its lease closes its clients with 1012 and serves again', async () => {
  const LEASE = 1500;
  const s = await new Stack('fencing-pause', { leaseMs: LEASE }).start();
  try {
    const watcher = await s.connect('alice', 0);
    const erin = await s.connect('erin', 1);
    // The stock client's default reconnection, as a web page has it.
    const dave = sioClient(s.gateways[1].url, { token: s.token('dave'), reconnection: true, reconnectionDelay: 100 });
    await sioConnected(dave);
    await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.dave && m.status === 'online');
    await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.erin && m.status === 'online');
    const firstId = dave.id;

    const gw = s.gateways[1];
    gw.proc.kill('SIGSTOP');
    try {
      // The broker reaps it: both users are announced offline (real).
      await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.erin && m.status === 'offline', 10000);
      await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.dave && m.status === 'offline', 10000);
      // Hold the pause past twice the lease (a fault held, not a wait).
      await sleep(LEASE);
      // A DM written while the gateway is stopped: it reads it on resume,
      // before it learns it was given up. It must not vanish in silence:
      // erin is told (unavailable, or the 1012 close before any answer).
      erin.send({ type: 'direct_message', to: 'alice', message: 'from-the-pause' });
    } finally {
      gw.proc.kill('SIGCONT');
    }
    const t0 = Date.now();
    const closed = await erin.closed;
    console.log(`# paused gateway: its client closed with ${closed.code} ${Date.now() - t0} ms after SIGCONT`);
    assert.equal(closed.code, 1012);
    assert.equal(closed.reason, 'service restart');

    // Socket.IO reconnects by itself, and comes back as the same session
    // (connection state recovery: its session was kept, detached, when the
    // gateway was reaped); the raw client is reconnected here.
    // (recovered turns true only on a reconnect: connected alone may still
    // be the old connection, whose close has not arrived yet.)
    await waitFor(() => dave.connected && dave.recovered, { what: 'dave back, recovered', timeout: 15000 });
    assert.equal(dave.id, firstId);
    const erin2 = await s.connect('erin', 1);
    await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.erin &&
      watcher.statuses(s.users.erin).length === 3, 10000);
    await waitFor(() => watcher.statuses(s.users.dave).length === 3, { what: 'dave online again' });
    assert.deepEqual(watcher.statuses(s.users.erin), ['online', 'offline', 'online']);
    assert.deepEqual(watcher.statuses(s.users.dave), ['online', 'offline', 'online']);
    assert.deepEqual(await s.onlineUsers(), sorted([s.users.alice, s.users.erin, s.users.dave]));
    const list = await watcher.sync();
    assert.deepEqual(sorted(list.users), sorted([s.users.alice, s.users.erin, s.users.dave]));

    // The DM from the pause was answered before the close: the broker no
    // longer held erin's connection, so it is refused (unavailable), and
    // the gateway closed its old clients only after the broker's welcome,
    // which follows the answer in its stream. Not delivered either.
    const errors = erin.messages.filter((m) => m.type === 'error').map((m) => m.code);
    assert.deepEqual(errors, ['unavailable']);
    const got = watcher.messages.filter((m) => m.type === 'direct_message' && m.message === 'from-the-pause');
    assert.equal(got.length, 0, 'the broker had given erin up: the DM is answered unavailable, not delivered');

    // Served again both ways.
    erin2.send({ type: 'direct_message', to: 'alice', message: 'after' });
    await watcher.next((m) => m.type === 'direct_message' && m.message === 'after');
    watcher.send({ type: 'direct_message', to: 'erin', message: 'back' });
    await erin2.next((m) => m.type === 'direct_message' && m.message === 'back');
    const m = await metrics(gw.url);
    assert.equal(m.get('herald_gateway_fenced_total'), 1);
    assert.ok(logHas(s.broker, /gateway gw-b registered again after it was fenced/));
    dave.disconnect();
    closeSioClients();
    await erin2.close();
    await watcher.close();
  } finally {
    await s.stop();
  }
});

// Redis restarting empty while a standby broker waits: the active broker
// keeps leading (the standby gives it a full lock TTL after its own
// reconnect), nobody receives a presence event, online_users is exact and
// no process exits. The active broker used to lose its lock, exit with 3,
// and the standby announced every online user again to every client.
test('redis restart with a standby broker: the active one keeps the lock, no client sees an event', async () => {
  const LOCK = 2000;
  const s = await new Stack('fencing-leader', { env: { HERALD_LOCK_TTL_MS: String(LOCK) } }).start();
  try {
    const active = s.broker;
    const standby = await s.startBroker({ HERALD_CONSUMER: 'broker-2' });
    await waitFor(() => logHas(standby, /standby: broker broker-1 is active/), { what: 'standby' });
    const alice = await s.connect('alice', 0);
    const bob = await s.connect('bob', 1);
    const carol = await s.connect('carol', 1);
    await alice.next((m) => m.type === 'status_update' && m.userId === s.users.carol);
    await alice.sync();
    const seen = alice.messages.length;

    await s.redisProc.stop();
    // Down longer than the lock's TTL: had it survived (appendonly), it
    // would have lapsed too.
    await sleep(LOCK + 500);
    await s.startRedis();
    await waitFor(async () => (await fetch(`${s.gateways[0].url}/healthz`)).status === 200 &&
      (await fetch(`${s.gateways[1].url}/healthz`)).status === 200, { what: 'healthy again', timeout: 20000 });
    await waitFor(async () => (await s.onlineUsers()).length === 3, { what: 'online_users rewritten', timeout: 15000 });
    // Past the standby's hold-off: it must still be standing by.
    await sleep(LOCK + 500);
    assert.ok(active.running, `the active broker exited:\n${active.tail()}`);
    assert.ok(standby.running, `the standby exited:\n${standby.tail()}`);
    assert.ok(!logHas(standby, /active broker: lock taken/), 'the standby took over');
    assert.equal(s.redis('GET', 'herald:broker:lock'), '"broker-1"');
    assert.deepEqual(await s.onlineUsers(), sorted([s.users.alice, s.users.bob, s.users.carol]));
    const list = await alice.sync();
    assert.deepEqual(sorted(list.users), sorted([s.users.alice, s.users.bob, s.users.carol]));
    assert.deepEqual(alice.messages.slice(seen).filter((m) => m.type === 'status_update'), []);
    assert.ok(s.gateways.every((g) => g.proc.running));

    // Still a working standby: a kill -9 of the active one hands over.
    const t0 = Date.now();
    active.kill('SIGKILL');
    await waitFor(() => logHas(standby, /active broker: lock taken/), { what: 'takeover', timeout: LOCK + 3000 });
    console.log(`# standby took over ${Date.now() - t0} ms after kill -9 (lock TTL ${LOCK} ms)`);
    await bob.close();
    await alice.next((m) => m.type === 'status_update' && m.userId === s.users.bob && m.status === 'offline', 10000);
    await carol.close();
    await alice.close();
  } finally {
    await s.stop();
  }
});

// Each gateway's stream is trimmed by the gateway itself, to what it has
// read; the broker writes it without MAXLEN (Redis's approximate trimming
// dropped entries the gateway had not read). A gateway that falls
// --gw-stream-maxlen entries behind is given up like one that missed its
// lease: its clients are closed with 1012 instead of missing deliveries.
test('a gateway stream holds only unread entries; a gateway that far behind is given up', async () => {
  const CAP = 200;
  const LOG = 100;
  const s = await new Stack('fencing-backlog', {
    leaseMs: 15000, // the lease (TTL 9 s) must not be what gives it up
    env: { HERALD_GW_STREAM_MAXLEN: String(CAP), HERALD_RECOVERY_LOG_MAX: String(LOG),
      HERALD_CHAT_BURST: '1000', HERALD_CHAT_RATE: '1000', HERALD_CHAT_RATE_PER_IP: '0' },
  }).start();
  try {
    const alice = await s.connect('alice', 0);
    const bob = await s.connect('bob', 1);
    await alice.next((m) => m.type === 'status_update' && m.userId === s.users.bob);
    // DMs to bob: written to gw-b's stream only (a broadcast would fill
    // gw-a's too).
    for (let i = 0; i < 150; i++) alice.send({ type: 'direct_message', to: 'bob', message: `read ${i}` });
    await bob.next((m) => m.type === 'direct_message' && m.message === 'read 149');
    // Trimmed after each batch it reads: only the recovery log stays
    // (--recovery-log-max entries for sessions that come back, plus the
    // one entry the trim keeps).
    await waitFor(() => Number(s.redis('XLEN', 'herald:gw:gw-b').replace(/\D/g, '')) <= LOG + 1,
      { what: 'gw-b trims its stream' });

    const gw = s.gateways[1];
    gw.proc.kill('SIGSTOP');
    try {
      for (let i = 0; i < CAP + 50; i++) alice.send({ type: 'direct_message', to: 'bob', message: `unread ${i}` });
      // Behind them, a round trip: the broker has written them all.
      await alice.sync();
      await waitFor(() => logHas(s.broker, /gateway gw-b has \d+ unread entries \(cap 200\): giving it up/),
        { what: 'the broker gives gw-b up', timeout: 20000 });
      await alice.next((m) => m.type === 'status_update' && m.userId === s.users.bob && m.status === 'offline');
    } finally {
      gw.proc.kill('SIGCONT');
    }
    // It learns at its next renewal, delivers what it had (nothing was
    // trimmed unread), then closes bob with 1012.
    const closed = await bob.closed;
    assert.equal(closed.code, 1012);
    const got = bob.messages.filter((m) => m.type === 'direct_message' && m.message.startsWith('unread ')).length;
    assert.equal(got, CAP + 50, 'every entry written for gw-b was still there to read');
    const bob2 = await s.connect('bob', 1);
    await alice.next((m) => m.type === 'status_update' && m.userId === s.users.bob && alice.statuses(s.users.bob).length === 3);
    await bob2.close();
    await alice.close();
  } finally {
    await s.stop();
  }
});
