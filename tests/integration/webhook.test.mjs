// Webhooks (docs/API.md "Webhooks"): the broker POSTs herald:hooks to a
// receiver started here, which checks every request's signature and
// headers and answers as each test tells it (200, 500, or nothing at all).
// The tests cause the events with real /ws clients and look at what the
// receiver got and at the broker's /metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Stack, waitFor, freePort, metrics } from './harness.mjs';

const SECRET = 'webhook-test-secret';

// A receiver on a free loopback port. answer(req) returns a status, or
// 'hold' to never answer (the socket is closed when the broker gives up).
// Every request is kept: { status, events, delivery, sigOk, headers }.
async function receiver() {
  const r = {
    requests: [],
    answer: () => 200,
    // Events of 2xx answers, in the order they were acknowledged.
    delivered() { return this.requests.filter((q) => q.status >= 200 && q.status < 300).flatMap((q) => q.events); },
  };
  r.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const want = Buffer.from(`sha256=${crypto.createHmac('sha256', SECRET).update(body).digest('hex')}`);
      const got = Buffer.from(String(req.headers['x-herald-signature'] || ''));
      const sigOk = got.length === want.length && crypto.timingSafeEqual(got, want);
      let events = [];
      try { events = JSON.parse(body.toString('utf8')).events; } catch { events = null; }
      const q = { sigOk, events, delivery: req.headers['x-herald-delivery'], headers: req.headers, method: req.method, url: req.url };
      const a = r.answer(q);
      q.status = a === 'hold' ? 0 : a;
      r.requests.push(q);
      if (a === 'hold') {
        req.socket.on('close', () => res.destroy());
        return;
      }
      res.writeHead(a, { 'Content-Type': 'text/plain' });
      res.end('ok');
    });
  });
  await new Promise((resolve) => r.server.listen(0, '127.0.0.1', resolve));
  r.port = r.server.address().port;
  return r;
}

// Every request was a signed POST of a well-formed batch.
function checkRequests(r, maxBatch) {
  for (const q of r.requests) {
    assert.equal(q.sigOk, true, `signature of ${q.delivery}`);
    assert.equal(q.method, 'POST');
    assert.equal(q.url, '/hooks?src=herald');
    assert.equal(q.headers['content-type'], 'application/json');
    assert.equal(q.headers['user-agent'], 'herald-broker');
    assert.ok(Array.isArray(q.events) && q.events.length >= 1 && q.events.length <= maxBatch,
      `batch of ${q.events && q.events.length}`);
    assert.equal(q.delivery, q.events[0].id);
    for (const e of q.events) {
      assert.match(e.id, /^\d+-\d+$/);
      assert.ok(Number.isInteger(e.ts) && typeof e.t === 'string' && e.d && typeof e.d === 'object');
    }
  }
}

const cmpId = (a, b) => {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  return am === bm ? (as < bs ? -1 : as > bs ? 1 : 0) : (am < bm ? -1 : 1);
};

async function startStack(name, r, env) {
  const adminPort = await freePort();
  const s = await new Stack(name, {
    env: {
      HERALD_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      HERALD_WEBHOOK_URL: `http://127.0.0.1:${r.port}/hooks?src=herald`,
      HERALD_WEBHOOK_SECRET: SECRET,
      HERALD_CHAT_BURST: '100',
      HERALD_CHAT_RATE: '100',
      ...env,
    },
  }).start();
  s.admin = `http://127.0.0.1:${adminPort}`;
  return s;
}

const metric = async (s, name) => (await metrics(s.admin)).get(name);
const livechat = (e, msg) => e.t === 'livechat' && e.d.message === msg;

let r1, s1;
before(async () => {
  r1 = await receiver();
  s1 = await startStack('webhook', r1, {
    HERALD_WEBHOOK_BATCH: '5', HERALD_WEBHOOK_FLUSH_MS: '200', HERALD_WEBHOOK_TIMEOUT_MS: '300',
  });
});
after(async () => {
  await s1.stop();
  r1.server.close();
});

test('signed batches of at most 5, in stream order, in order per user', async () => {
  const alice = await s1.connect('alice', 0);
  const bob = await s1.connect('bob', 1);
  // Both users' arrivals are delivered before the burst.
  await waitFor(() => ['alice', 'bob'].every((u) => r1.delivered().some((e) => e.t === 'user-online' && e.d.username === u)),
    { what: 'user-online hooks', timeout: 10000 });
  const from = r1.requests.length;
  for (let i = 0; i < 12; i++) {
    alice.send({ type: 'livechat', message: `a${i}` });
    bob.send({ type: 'livechat', message: `b${i}` });
    if (i % 3 === 0) {
      alice.send({ type: 'direct_message', to: 'carol', message: `adm${i}` });
      bob.send({ type: 'direct_message', to: 'carol', message: `bdm${i}` });
    }
  }
  await waitFor(() => r1.delivered().filter((e) => e.t === 'livechat').length >= 24 &&
    r1.delivered().filter((e) => e.t === 'direct-message').length >= 8, { what: '24 livechat and 8 DM hooks', timeout: 15000 });
  checkRequests(r1, 5);
  const batches = r1.requests.slice(from).filter((q) => q.status === 200);
  assert.ok(batches.length >= 7, `32 events in batches of at most 5: ${batches.length} batches`);
  assert.ok(batches.some((q) => q.events.length === 5), 'some batch is full');
  const all = r1.delivered();
  // Stream order overall, every event once.
  for (let i = 1; i < all.length; i++) assert.equal(cmpId(all[i - 1].id, all[i].id), -1, `order at ${i}`);
  // Per user: the order each one sent in.
  for (const [user, p] of [['alice', 'a'], ['bob', 'b']]) {
    const uid = s1.users[user];
    const mine = all.filter((e) => (e.t === 'livechat' || e.t === 'direct-message') && e.d.userId === uid);
    const expect = [];
    for (let i = 0; i < 12; i++) {
      expect.push(`${p}${i}`);
      if (i % 3 === 0) expect.push(`${p}dm${i}`);
    }
    // Within one connection, a DM sent after a livechat message is applied after it.
    assert.deepEqual(mine.map((e) => e.d.message), expect, `${user}'s events in order`);
  }
  assert.equal(await metric(s1, 'herald_broker_webhook_events_total'), all.length);
  assert.ok(await metric(s1, 'herald_broker_webhook_batches_total') >= batches.length);
  await alice.close();
  await bob.close();
});

// Waits until nothing is left in flight and every request so far is answered.
async function settled(s, r) {
  await waitFor(async () => (await metric(s, 'herald_broker_webhook_inflight')) === 0, { what: 'inflight 0', timeout: 10000 });
  return r.requests.length;
}

// Every event of a failed request came again in a 2xx one; every
// delivered event came exactly once.
function checkRetried(r, from) {
  const ok = new Map();
  for (const e of r.delivered()) ok.set(e.id, (ok.get(e.id) || 0) + 1);
  for (const [id, n] of ok) assert.equal(n, 1, `${id} delivered ${n} times`);
  for (const q of r.requests.slice(from).filter((x) => !(x.status >= 200 && x.status < 300))) {
    for (const e of q.events) assert.ok(ok.has(e.id), `${e.id} of a failed batch delivered later`);
  }
}

test('a 500 is retried: every event delivered once, failures counted', async () => {
  const from = await settled(s1, r1);
  const failures0 = await metric(s1, 'herald_broker_webhook_failures_total');
  let first = true;
  r1.answer = () => (first ? ((first = false), 500) : 200);
  const carol = await s1.connect('carol', 0);
  for (const m of ['r1', 'r2', 'r3']) carol.send({ type: 'livechat', message: m });
  await waitFor(() => ['r1', 'r2', 'r3'].every((m) => r1.delivered().some((e) => livechat(e, m))),
    { what: 'the retried batch', timeout: 10000 });
  checkRequests(r1, 5);
  const failedReq = r1.requests.slice(from).find((q) => q.status === 500);
  assert.ok(failedReq, 'the receiver answered 500 once');
  const retry = r1.requests.slice(from).find((q) => q.status === 200 && q.delivery === failedReq.delivery);
  assert.ok(retry, 'the same batch was posted again');
  checkRetried(r1, from);
  assert.ok(await metric(s1, 'herald_broker_webhook_failures_total') >= failures0 + 1);
  await carol.close();
  r1.answer = () => 200;
});

test('no answer within --webhook-timeout-ms is a failure, then retried', async () => {
  const from = await settled(s1, r1);
  const failures0 = await metric(s1, 'herald_broker_webhook_failures_total');
  let first = true;
  r1.answer = () => (first ? ((first = false), 'hold') : 200);
  const dave = await s1.connect('dave', 1);
  for (const m of ['t1', 't2']) dave.send({ type: 'livechat', message: m });
  await waitFor(() => ['t1', 't2'].every((m) => r1.delivered().some((e) => livechat(e, m))),
    { what: 'delivery after the timeout', timeout: 10000 });
  const held = r1.requests.slice(from).find((q) => q.status === 0);
  assert.ok(held, 'the first request was held');
  assert.ok(r1.requests.slice(from).some((q) => q.status === 200 && q.delivery === held.delivery), 'then posted again');
  checkRequests(r1, 5);
  checkRetried(r1, from);
  assert.ok(await metric(s1, 'herald_broker_webhook_failures_total') >= failures0 + 1);
  await dave.close();
  r1.answer = () => 200;
});

test('SIGTERM with a request in flight: clean exit, the batch stays pending and the next broker sends it', async () => {
  await settled(s1, r1);
  r1.answer = () => 'hold';
  const from = r1.requests.length;
  const erin = await s1.connect('erin', 0);
  erin.send({ type: 'livechat', message: 'k1' });
  await waitFor(() => r1.requests.slice(from).some((q) => q.events.some((e) => livechat(e, 'k1'))),
    { what: 'the held request', timeout: 10000 });
  const info = await s1.broker.stop();
  assert.equal(info.code, 0, `broker exit: ${s1.broker.tail(40)}`);
  const pending = Number((s1.redis('XPENDING', 'herald:hooks', 'herald-webhook').match(/\(integer\) (\d+)/) || [])[1]);
  assert.ok(pending >= 1, `pending after the stop: ${pending}`);
  r1.answer = () => 200;
  await s1.startBroker();
  await waitFor(() => r1.delivered().some((e) => livechat(e, 'k1')), { what: 'k1 sent by the next broker', timeout: 15000 });
  assert.match(s1.broker.tail(200), /webhook: \d+ pending events taken over/);
  checkRequests(r1, 5);
  await erin.close();
});

test('Redis restarts empty: the sender creates its group again and delivers what comes after', async () => {
  await settled(s1, r1);
  const alice = await s1.connect('alice', 0);
  await s1.redisProc.stop();
  await s1.startRedis();
  await waitFor(async () => (await fetch(`${s1.gateways[0].url}/healthz`)).status === 200,
    { what: 'healthy again', timeout: 20000 });
  await waitFor(() => /herald-webhook/.test(s1.redis('XINFO', 'GROUPS', 'herald:hooks')),
    { what: 'the group created again', timeout: 10000 });
  // The first events after the restart may land before the group exists
  // (created at $): keep sending until one is delivered.
  let n = 0;
  await waitFor(() => {
    alice.send({ type: 'livechat', message: `back${n++}` });
    return r1.delivered().some((e) => e.t === 'livechat' && /^back\d+$/.test(e.d.message));
  }, { what: 'delivery after the restart', timeout: 15000, interval: 300 });
  checkRequests(r1, 5);
  await alice.close();
});

test('a standby broker with the same URL sends nothing', async () => {
  const from = await settled(s1, r1);
  const active = s1.broker;
  const standby = await s1.startBroker({ HERALD_CONSUMER: 'broker-2', HERALD_ADMIN_LISTEN: '' });
  await waitFor(() => /standby: broker broker-1 is active/.test(standby.tail(50)), { what: 'standing by', timeout: 10000 });
  const bob = await s1.connect('bob', 1);
  bob.send({ type: 'livechat', message: 'sb1' });
  await waitFor(() => r1.delivered().some((e) => livechat(e, 'sb1')), { what: 'sb1 delivered', timeout: 10000 });
  assert.doesNotMatch(standby.tail(200), /webhook: posting/);
  const consumers = s1.redis('XINFO', 'CONSUMERS', 'herald:hooks', 'herald-webhook');
  assert.doesNotMatch(consumers, /broker-2/);
  assert.equal(r1.requests.slice(from).filter((q) => q.events.some((e) => livechat(e, 'sb1'))).length, 1);
  await bob.close();
  assert.equal((await standby.stop()).code, 0);
  s1.broker = active;
});

test('a broker that leads without a URL removes the group herald-webhook', async () => {
  const groups = () => s1.redis('XINFO', 'GROUPS', 'herald:hooks');
  assert.match(groups(), /herald-webhook/);
  assert.equal((await s1.broker.stop()).code, 0);
  await s1.startBroker({ HERALD_WEBHOOK_URL: '' });
  await waitFor(() => /webhook: no --webhook-url: consumer group herald-webhook removed/.test(s1.broker.tail(100)),
    { what: 'the group removed', timeout: 10000 });
  assert.doesNotMatch(groups(), /herald-webhook/);
});

test('events older than --webhook-retry-s are dropped and counted; delivery goes on after (secret from a file)', async () => {
  const r = await receiver();
  // This broker reads its secret from a file (with the newline an editor adds).
  const secretFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'herald-wh-')), 'webhook.secret');
  fs.writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  const s = await startStack('webhook-drop', r, {
    HERALD_WEBHOOK_RETRY_S: '1', HERALD_WEBHOOK_FLUSH_MS: '100', HERALD_WEBHOOK_TIMEOUT_MS: '300',
    HERALD_WEBHOOK_SECRET: '', HERALD_WEBHOOK_SECRET_FILE: secretFile,
  });
  try {
    const erin = await s.connect('erin', 0);
    await waitFor(() => r.delivered().some((e) => e.t === 'user-online' && e.d.username === 'erin'), { what: 'user-online', timeout: 10000 });
    await settled(s, r);
    const dropped0 = await metric(s, 'herald_broker_webhook_dropped_total');
    r.answer = () => 500;
    for (const m of ['d1', 'd2', 'd3']) erin.send({ type: 'livechat', message: m });
    await waitFor(async () => (await metric(s, 'herald_broker_webhook_dropped_total')) >= dropped0 + 3,
      { what: 'three events dropped', timeout: 15000 });
    assert.equal(await metric(s, 'herald_broker_webhook_dropped_total'), dropped0 + 3);
    assert.ok(r.requests.filter((q) => q.status === 500).length >= 2, 'retried before dropping');
    await waitFor(async () => (await metric(s, 'herald_broker_webhook_inflight')) === 0, { what: 'inflight 0' });
    r.answer = () => 200;
    for (const m of ['after1', 'after2']) erin.send({ type: 'livechat', message: m });
    await waitFor(() => ['after1', 'after2'].every((m) => r.delivered().some((e) => livechat(e, m))),
      { what: 'delivery after the drop', timeout: 10000 });
    assert.ok(!r.delivered().some((e) => e.t === 'livechat' && /^d\d$/.test(e.d.message)), 'dropped events never delivered');
    // An entry no broker wrote (d not an object) is skipped and counted, the next one delivered.
    const dropped1 = await metric(s, 'herald_broker_webhook_dropped_total');
    const bogus = s.redis('XADD', 'herald:hooks', '*', 't', 'livechat', 'd', 'not json', 'ts', String(Date.now())).replace(/^"|"$/g, '');
    erin.send({ type: 'livechat', message: 'after3' });
    await waitFor(() => r.delivered().some((e) => livechat(e, 'after3')), { what: 'delivery after a bogus entry', timeout: 10000 });
    assert.equal(await metric(s, 'herald_broker_webhook_dropped_total'), dropped1 + 1);
    assert.ok(!r.requests.some((q) => q.events.some((e) => e.id === bogus)), `${bogus} never posted`);
    checkRequests(r, 100);
    assert.match(s.broker.tail(400), /webhook: 3 events dropped/);
    assert.match(s.broker.tail(400), /webhook: POST .* answered 500/);
    assert.match(s.broker.tail(400), /webhook: delivering again/);
    await erin.close();
  } finally {
    await s.stop();
    r.server.close();
    fs.rmSync(path.dirname(secretFile), { recursive: true, force: true });
  }
});
