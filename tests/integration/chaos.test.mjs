// Fault tests with exact ledgers: a gateway paused past its lease, Redis
// restarting (with and without a standby broker, with and without
// persistence), Redis down under load, a broker stall filling the input
// stream's cap, kill -9 of the active broker, kill -9 of a gateway. Every
// scenario counts messages (sent, accepted, refused, in doubt, delivered,
// lost, duplicated) and presence events (spurious ones), then checks that
// presence is exact again after the fault (chaos-lib.mjs explains the
// ledgers). After each scenario has settled the ledger reads the DM store
// (GET /api/dm/history for every pair involved) and classifies every
// accepted DM as delivered, stored (not delivered live, e.g. cut off) or
// lost. Targets: 0 ghosts, 0 missing, 0 spurious events, 0 messages lost
// silently, 0 duplicates, every accepted DM in the store exactly once (so 0
// DMs lost, cut off or not), a takeover within the lock TTL + 1 s, and no
// Herald process exiting because Redis restarted.
//
// Small by default (a dozen clients, a 5 s outage); HERALD_CHAOS_SCALE=full
// (scripts/chaos) runs hundreds of clients and a 30 s outage. With
// HERALD_CHAOS_REPORT=<file> each scenario appends its ledger as a JSON line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { waitFor } from './harness.mjs';
import { Chaos, Peer, SIZES, FULL, logHas, sleep } from './chaos-lib.mjs';

// The time (ms since the epoch) of the first log line of proc matching re,
// or null: Herald's log lines start with an ISO 8601 UTC time.
function logTime(proc, re) {
  for (const line of fs.readFileSync(proc.log, 'utf8').split('\n')) {
    if (re.test(line)) return Date.parse(line.slice(0, 24));
  }
  return null;
}

const health = async (gw) => { try { return (await fetch(`${gw.url}/healthz`)).status; } catch { return 0; } };

// Runs one scenario on its own stack; body returns the targets it missed.
async function run(name, opts, body) {
  const c = new Chaos(name, opts);
  let failed = null;
  try {
    await c.start();
    c.log(`stack up (${FULL ? 'full' : 'small'} size)`);
    const missed = await body(c);
    // The store is read in settle(), which every scenario reaches.
    assert.ok(c.ledger.storeChecked, `${name}: the DM store was not read`);
    assert.deepEqual(missed, [], `${name}: targets missed`);
    assert.equal(c.report.dmUnstored, 0, `${name}: accepted DMs missing from the store`);
    assert.equal(c.report.dmLost, 0, `${name}: accepted DMs neither delivered nor stored`);
    assert.equal(c.report.cutOffLost, 0, `${name}: DMs to cut-off recipients lost`);
    assert.equal(c.report.dmAccepted, c.report.dmDelivered + c.report.dmStored, `${name}: every accepted DM delivered or stored`);
  } catch (e) {
    failed = e;
    if (!c.report.violations) {
      c.report.error = e.message.split('\n')[0];
      if (process.env.HERALD_CHAOS_REPORT) fs.appendFileSync(process.env.HERALD_CHAOS_REPORT, `${JSON.stringify(c.report)}\n`);
    }
    throw e;
  } finally {
    try {
      await c.stop();
    } catch (e) {
      if (!failed) throw e;
      console.log(`# [${name}] also at stop: ${e.message.split('\n')[0]}`);
    }
  }
}

// Herald processes (not redis) that are no longer running, with their exit.
const exited = (c) => c.s.procs.filter((p) => !p.name.startsWith('redis') && !p.running && !p.expectedExit)
  .map((p) => `${p.name} exited (${p.exitInfo.code ?? p.exitInfo.sig})`);

// The next peer (by index) of the given list: alternates gateways and kinds.
const ring = (list) => (p) => list[(list.indexOf(p) + 1) % list.length];

// 1. A gateway paused (SIGSTOP) for twice its lease: the broker writes it
// off; once resumed it must learn that within a lease renewal and close its
// connections with 1012 so the clients reconnect (raw clients here reconnect
// on 1012 themselves, Socket.IO clients by their own reconnection).
test('chaos: SIGSTOP of a gateway for 2x its lease, then SIGCONT', async () => {
  const LEASE = 2000;
  await run('chaos-sigstop', { leaseMs: LEASE }, async (c) => {
    const peers = await c.peersOf('ss', SIZES.peers, { reconnect: 'on1012' });
    const paused = peers.filter((p) => p.gi === 0);
    const prober = peers.find((p) => p.gi === 1 && p.kind === 'raw');
    await c.baseline();
    const load = c.load(peers.slice(0, SIZES.senders * 2), ring(peers));
    await sleep(500); // some traffic before the fault
    const gw = c.s.gateways[0];
    gw.proc.kill('SIGSTOP');
    c.log(`gw-a stopped for ${2 * LEASE} ms`);
    await sleep(2 * LEASE); // holds the fault
    gw.proc.kill('SIGCONT');
    const tCont = Date.now();
    c.log('gw-a continued');
    // The contract: closed with 1012 within a lease renewal, then reconnected.
    const fenced = await waitFor(() => paused.every((p) => p.closes.some((x) => x.t >= tCont) && p.connected),
      { what: 'paused clients closed and reconnected', timeout: LEASE + 5000 }).then(() => true, () => false);
    const got1012 = paused.filter((p) => p.closes.some((x) => x.code === 1012));
    const firstClose = Math.min(...paused.flatMap((p) => p.closes.filter((x) => x.t >= tCont).map((x) => x.t)));
    c.report.fenceMs = Number.isFinite(firstClose) ? firstClose - tCont : null;
    c.log(`${got1012.length} of ${paused.length} clients of the paused gateway closed with 1012` +
      ` (codes: ${JSON.stringify([...new Set(paused.flatMap((p) => p.closes.map((x) => x.code)))])})`);
    await sleep(300); // traffic after the reconnections
    load.stop();
    await c.heal(prober, tCont, LEASE + 5000);
    // From the reap on, the broker counted the paused gateway's users
    // offline: a DM to them is accepted and stored but not delivered live,
    // "cut off" (it must be in the store). The reap time is the broker's
    // log line (same clock); messages sent up to 300 ms before it may have
    // reached the broker after it.
    const reapAt = logTime(c.s.broker, /gateway gw-a missed its lease/);
    if (reapAt) for (const p of paused) p.cutoff = [[reapAt - 300, p.opens.at(-1).t]];
    await c.settle();
    const truth = new Map(paused.map((p) => [p.userId, ['offline', 'online']]));
    const v = [];
    if (got1012.length < paused.length) {
      v.push(`${paused.length - got1012.length} of ${paused.length} clients of the paused gateway not closed with 1012`);
    }
    if (!fenced) v.push('the paused gateway\'s clients were not all closed and reconnected within lease + 5 s');
    return c.finish(truth, { fenced1012: got1012.length, pausedClients: paused.length, exited: exited(c), violations: v.concat(exited(c)) });
  });
});

// 2. Redis stops, stays down ~2 s and starts again, while some clients close
// and others open. Closed ones go offline, opened ones online, nobody else
// changes; the active broker keeps the lead; nothing exits.
for (const [variant, label, opts] of [
  ['a', 'no standby, appendonly no', {}],
  ['b', 'standby broker, appendonly no', { standby: true }],
  ['c', 'appendonly yes', { appendonly: true }],
]) {
  test(`chaos: Redis restart (${variant}: ${label}) with closes and opens during the outage`, async () => {
    const LEASE = 2000;
    await run(`chaos-redis-${variant}`, {
      leaseMs: LEASE, appendonly: !!opts.appendonly, env: { HERALD_LOCK_TTL_MS: '2000' },
    }, async (c) => {
      let standby = null;
      if (opts.standby) {
        standby = await c.s.startBroker({ HERALD_CONSUMER: 'broker-2' });
        await waitFor(() => logHas(standby, /standby: broker broker-1 is active/), { what: 'standby waiting' });
      }
      const peers = await c.peersOf(`rr${variant}`, SIZES.peers);
      const closing = peers.filter((_, i) => i % 4 === 3);
      const staying = peers.filter((p) => !closing.includes(p));
      const prober = staying.find((p) => p.gi === 0 && p.kind === 'raw');
      const opening = c.s.makeUsers(`rro${variant}`, Math.max(2, Math.floor(SIZES.peers / 4)));
      await c.baseline();
      const load = c.load(staying.slice(0, SIZES.senders), ring(staying));
      await sleep(300);
      const tDown = Date.now();
      await c.s.redisProc.stop();
      c.log('redis stopped');
      await waitFor(async () => (await health(c.s.gateways[0])) === 503 && (await health(c.s.gateways[1])) === 503,
        { what: 'gateways see redis down' });
      await Promise.all(closing.map((p) => p.close()));
      // Opens during the outage, not awaited: they may only finish once Redis is back.
      const newPeers = opening.map((nm, i) => new Peer(c, nm, i % 2 ? 'sio' : 'raw', i % 2));
      const opened = Promise.allSettled(newPeers.map((p) => p.open(p.gi, 15000)));
      await sleep(Math.max(0, 2000 - (Date.now() - tDown))); // holds the outage ~2 s
      await c.s.startRedis();
      const tUp = Date.now();
      c.log('redis started');
      const res = await opened;
      newPeers.forEach((p, i) => { if (res[i].status === 'fulfilled') c.peers.push(p); });
      const openFailed = res.filter((r) => r.status === 'rejected').map((r) => r.reason.message);
      await sleep(300);
      load.stop();
      await c.heal(prober, tUp, LEASE + 5000);
      // Without persistence, what the broker acknowledged in the last
      // instants before Redis stopped but a gateway had not yet read from
      // its stream is gone with the stream (PROTOCOL.md §7: "not answered:
      // run Redis with appendonly yes when that window matters"). A DM
      // there is stored, not delivered live: "cut off", and it must be in
      // the store. Variant c (appendonly yes) keeps the strict count.
      if (!opts.appendonly) for (const p of staying) p.cutoff = [[tDown - 1000, tUp]];
      // The active broker keeps the lead (a Redis restart is no reason to
      // hand over), whatever the standby does.
      const lockOk = await waitFor(() => c.s.redis('GET', 'herald:broker:lock') === '"broker-1"',
        { what: 'broker-1 holds the lock', timeout: LEASE + 5000 }).then(() => true, () => false);
      await c.settle();
      const truth = new Map([
        ...closing.map((p) => [p.userId, ['offline']]),
        ...newPeers.map((p) => [p.userId, ['online']]),
      ]);
      const v = exited(c);
      if (!lockOk) v.push(`herald:broker:lock is ${c.s.redis('GET', 'herald:broker:lock')}, not broker-1`);
      if (standby && logHas(standby, /active broker: lock taken/)) v.push('the standby took over during a Redis restart');
      if (openFailed.length) v.push(`${openFailed.length} open(s) during the outage failed: ${openFailed[0]}`);
      return c.finish(truth, {
        closed: closing.length, opened: newPeers.length - openFailed.length, lockKept: lockOk,
        standbyTookOver: !!(standby && logHas(standby, /active broker: lock taken/)), exited: exited(c), violations: v,
      });
    });
  });
}

// 3. Redis down under a steady DM and livechat load: every message is
// delivered or refused, none twice, and nobody's presence changes.
test('chaos: Redis down under load', async () => {
  const LEASE = 2000;
  await run('chaos-redis-load', { leaseMs: LEASE }, async (c) => {
    const peers = await c.peersOf('rl', SIZES.peers);
    const prober = peers.find((p) => p.gi === 1 && p.kind === 'raw');
    await c.baseline();
    const load = c.load(peers.slice(0, SIZES.senders), ring(peers), { chatEvery: 10 });
    await sleep(500);
    const tDown = Date.now();
    await c.s.redisProc.stop();
    c.log(`redis stopped for ${SIZES.redisOutageMs} ms under load`);
    await sleep(SIZES.redisOutageMs); // holds the outage
    await c.s.startRedis();
    const tUp = Date.now();
    c.log('redis started');
    await waitFor(async () => (await health(c.s.gateways[0])) === 200 && (await health(c.s.gateways[1])) === 200,
      { what: 'healthy again', timeout: LEASE + 5000 }).catch(() => {});
    await sleep(500); // load after the heal
    load.stop();
    await c.heal(prober, tUp, LEASE + 5000);
    // Redis without persistence: the window of the restart scenarios above.
    for (const p of peers) p.cutoff = [[tDown - 1000, tUp]];
    await c.settle();
    const v = exited(c);
    return c.finish(new Map(), { outageMs: SIZES.redisOutageMs, exited: exited(c), violations: v });
  });
});

// 4. The broker stalls (SIGSTOP) long enough for herald:events to reach the
// gateways' small cap: past it they refuse with unavailable; once the broker
// resumes every accepted message is delivered and every refused one was
// answered.
test('chaos: broker stalled until the input stream cap refuses, then resumed', async () => {
  const LEASE = 1000; // the gateways measure the stream every lease / 5
  const CAP = FULL ? 3000 : 300; // above what the opens of the clients take
  await run('chaos-stream-cap', { leaseMs: LEASE, env: { HERALD_STREAM_MAXLEN: String(CAP) } }, async (c) => {
    const peers = await c.peersOf('sc', SIZES.peers);
    const prober = peers.find((p) => p.gi === 1 && p.kind === 'raw');
    await c.baseline();
    const broker = c.s.broker;
    broker.kill('SIGSTOP');
    const tStop = Date.now();
    c.log('broker stopped');
    const load = c.load(peers.slice(0, SIZES.senders), ring(peers), { tickMs: 20 });
    const refusals = () => [...c.ledger.msgs.values()].filter((m) => m.state === 'refused').length;
    const enough = Math.max(20, 2 * SIZES.senders);
    const capped = await waitFor(() => refusals() >= enough || c.ledger.n >= SIZES.capMax,
      { what: 'refusals at the cap', timeout: 60000 }).then(() => refusals() > 0, () => false);
    load.stop();
    const xlen = c.s.redis('XLEN', 'herald:events');
    c.log(`${c.ledger.n} sent, ${refusals()} refused, herald:events ${xlen} after ${Date.now() - tStop} ms`);
    broker.kill('SIGCONT');
    const tCont = Date.now();
    c.log('broker continued');
    await c.settle(30000);
    await c.heal(prober, tCont, LEASE + 5000);
    const v = exited(c);
    if (!capped) v.push('no refusal (unavailable) came while the broker was stopped: the cap never applied');
    return c.finish(new Map(), { streamCap: CAP, streamLenAtCap: Number(xlen.replace(/\D/g, '')), exited: exited(c), violations: v });
  });
});

// 5. kill -9 of the active broker under DM load with a standby running: the
// standby takes over within the lock TTL + 1 s; nothing accepted is lost and
// (target) no client gets a message twice.
test('chaos: kill -9 of the active broker under load, standby takes over', async () => {
  const LEASE = 2000;
  const TTL = 2000;
  await run('chaos-broker-kill', { leaseMs: LEASE, env: { HERALD_LOCK_TTL_MS: String(TTL) } }, async (c) => {
    const active = c.s.broker;
    const standby = await c.s.startBroker({ HERALD_CONSUMER: 'broker-2' });
    await waitFor(() => logHas(standby, /standby: broker broker-1 is active/), { what: 'standby waiting' });
    const peers = await c.peersOf('bk', SIZES.peers);
    const prober = peers.find((p) => p.gi === 0 && p.kind === 'raw');
    await c.baseline();
    const load = c.load(peers.slice(0, SIZES.senders), ring(peers));
    await sleep(SIZES.brokerLoadMs / 2);
    active.expectedExit = true;
    active.kill('SIGKILL');
    const tKill = Date.now();
    c.log('broker-1 killed');
    // First answered request, and the standby's log line.
    const answered = waitFor(async () => { await prober.askOnline(300); return Date.now(); },
      { what: 'an answer from the new broker', timeout: TTL + 10000, interval: 10 }).catch(() => null);
    const logged = waitFor(() => logHas(standby, /active broker: lock taken/) && Date.now(),
      { what: 'standby lock taken', timeout: TTL + 10000, interval: 20 }).catch(() => null);
    const [tAns, tLog] = await Promise.all([answered, logged]);
    c.report.takeoverMs = tLog ? tLog - tKill : null;
    c.report.firstAnswerMs = tAns ? tAns - tKill : null;
    c.log(`standby: lock taken after ${c.report.takeoverMs} ms, first answer after ${c.report.firstAnswerMs} ms (TTL ${TTL})`);
    await sleep(SIZES.brokerLoadMs / 2); // load under the new broker
    load.stop();
    await c.heal(prober, tLog || tKill, LEASE + 5000);
    await c.settle();
    const v = exited(c);
    if (c.report.takeoverMs === null || c.report.takeoverMs > TTL + 1000) {
      v.push(`takeover ${c.report.takeoverMs} ms, over lock TTL ${TTL} + 1000 ms`);
    }
    return c.finish(new Map(), { lockTtlMs: TTL, exited: exited(c), violations: v });
  });
});

// 6. kill -9 of a gateway: its clients reconnect to the other one at once
// (well inside the presence grace), a few stay away. Those that came back
// are never shown offline; those that stayed away go offline; presence is
// exact after the lease (+ grace).
test('chaos: kill -9 of a gateway, its clients reconnect to the other one', async () => {
  const LEASE = 2000;
  const GRACE = 3000;
  await run('chaos-gateway-kill', { leaseMs: LEASE, graceMs: GRACE }, async (c) => {
    const peers = await c.peersOf('gk', SIZES.peers, { reconnect: (i) => (i % 2 === 1 && i % 16 !== 5 && i % 16 !== 7 ? 'always' : false), reconnectTo: 0 });
    const onB = peers.filter((p) => p.gi === 1);
    const leavers = onB.filter((p) => p.reconnect === false);
    const returners = onB.filter((p) => p.reconnect === 'always');
    const prober = peers.find((p) => p.gi === 0 && p.kind === 'raw');
    await c.baseline();
    const load = c.load(peers.slice(0, SIZES.senders * 2), ring(peers));
    await sleep(500);
    const gw = c.s.gateways[1];
    gw.proc.expectedExit = true;
    gw.proc.kill('SIGKILL');
    const tKill = Date.now();
    c.log(`gw-b killed; ${returners.length} clients reconnect to gw-a, ${leavers.length} stay away`);
    await waitFor(() => returners.every((p) => p.connected && p.gi === 0), { what: 'returners reconnected', timeout: 10000 }).catch(() => {});
    const back = Math.max(...returners.map((p) => (p.opens.at(-1)?.t ?? Infinity) - tKill));
    c.report.reconnectMs = Number.isFinite(back) ? back : null;
    c.log(`returners back within ${c.report.reconnectMs} ms (grace ${GRACE} ms)`);
    await sleep(300);
    load.stop();
    await c.heal(prober, tKill, LEASE + GRACE + 5000);
    // Messages the broker had already written to gw-b's stream when it was
    // killed may die with it: "cut off", not delivered live, but a DM among
    // them must be in the store (a livechat message is just gone for that
    // connection). 300 ms before the kill covers what was in flight;
    // anything older must have arrived.
    for (const p of onB) p.cutoff = [[tKill - 300, null]];
    await c.settle();
    const truth = new Map(leavers.map((p) => [p.userId, ['offline']]));
    const v = exited(c);
    return c.finish(truth, { graceMs: GRACE, returners: returners.length, leavers: leavers.length, exited: exited(c), violations: v });
  });
});
