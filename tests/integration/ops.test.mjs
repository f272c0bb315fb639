// What an operator sees: GET /metrics on a gateway (Prometheus text, the
// round-trip histogram), the broker's admin port, and herald-admin status.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { Stack, BIN, freePort, parseMetrics as parse } from './harness.mjs';

let s, adminPort;
before(async () => {
  adminPort = await freePort();
  s = await new Stack('ops', { env: { HERALD_ADMIN_LISTEN: `127.0.0.1:${adminPort}` } }).start();
});
after(async () => { await s.stop(); });

test('gateway /metrics counts connections by kind and measures the broker round trip', async () => {
  const alice = await s.connect('alice', 0);
  const bob = await s.connect('bob', 0);
  await alice.sync();
  // An HTTP request answered by the broker carries the round-trip stamp.
  assert.equal((await fetch(`${s.gateways[0].url}/online-status/alice`)).status, 200);
  const r = await fetch(`${s.gateways[0].url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const m = parse(await r.text());
  assert.equal(m.get('herald_gateway_connections{kind="ws"}'), 2);
  assert.equal(m.get('herald_gateway_redis_up'), 1);
  assert.equal(m.get('herald_gateway_broker_alive'), 1);
  assert.ok(m.get('herald_gateway_published_total') >= 3);
  assert.ok(m.get('herald_gateway_deliveries_total') >= 1);
  assert.ok(m.get('herald_gateway_broker_rtt_seconds_count') >= 1, 'the relayed request was measured');
  assert.equal(m.get('herald_gateway_broker_rtt_seconds_bucket{le="+Inf"}'), m.get('herald_gateway_broker_rtt_seconds_count'));
  const post = await fetch(`${s.gateways[0].url}/metrics`, { method: 'POST' });
  assert.equal(post.status, 405);
  await alice.close();
  await bob.close();
});

test('broker admin port: /metrics with presence and stream figures, /healthz', async () => {
  const carol = await s.connect('carol', 1);
  await carol.sync();
  const base = `http://127.0.0.1:${adminPort}`;
  let m;
  // Stream figures refresh every second.
  for (let i = 0; i < 40; i++) {
    m = parse(await (await fetch(`${base}/metrics`)).text());
    if (m.get('herald_broker_stream_length') > 0) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(m.get('herald_broker_online_users'), 1);
  assert.equal(m.get('herald_broker_connections'), 1);
  assert.equal(m.get('herald_broker_gateways'), 2);
  assert.ok(m.get('herald_broker_entries_total') > 0);
  assert.ok(m.get('herald_broker_stream_length') > 0);
  assert.equal(m.get('herald_broker_redis_up'), 1);
  const h = await fetch(`${base}/healthz`);
  assert.equal(h.status, 200);
  assert.equal((await h.json()).online, 1);
  await carol.close();
});

test('herald-admin status prints the broker, online count and each gateway lease', async () => {
  const dave = await s.connect('dave', 0);
  await dave.sync();
  const out = execFileSync(path.join(BIN, 'herald-admin'), ['--redis-url', `redis://127.0.0.1:${s.redisPort}`, 'status'], { encoding: 'utf8' });
  assert.match(out, /^broker: +broker-1$/m);
  assert.match(out, /^online users: +1$/m);
  assert.match(out, /^ +gw-a +1 connections +lease ok/m);
  assert.match(out, /^ +gw-b +0 connections +lease ok/m);
  assert.match(out, /events stream: \d+ entries, pending \d+, lag \d+/);
  assert.match(out, /^hooks stream: +[1-9]\d* entries$/m, 'dave going online wrote a hook; no group yet');
  s.redis('XGROUP', 'CREATE', 'herald:hooks', 'crm', '0');
  const withGroup = execFileSync(path.join(BIN, 'herald-admin'), ['--redis-url', `redis://127.0.0.1:${s.redisPort}`, 'status'], { encoding: 'utf8' });
  assert.match(withGroup, /^hooks stream: +\d+ entries, group crm pending 0( lag \d+)?$/m, 'the group and what it has not read');
  s.redis('XGROUP', 'DESTROY', 'herald:hooks', 'crm');
  await dave.close();
});

test('--log-file and SIGHUP: after logrotate moves the file, the process writes a new one', async () => {
  const fs = await import('node:fs');
  const file = path.join(s.dir, 'gw-log.log');
  const gw = await s.startGateway('gw-log', undefined, { HERALD_LOG_FILE: file });
  try {
    await s.waitHealthy(gw);
    assert.match(fs.readFileSync(file, 'utf8'), /config: listen=/);
    fs.renameSync(file, `${file}.1`);
    gw.proc.kill('SIGHUP');
    const { waitFor } = await import('./harness.mjs');
    await waitFor(() => fs.existsSync(file) && /SIGHUP: log file reopened/.test(fs.readFileSync(file, 'utf8')),
      { what: 'a fresh log file' });
    assert.ok(!/SIGHUP/.test(fs.readFileSync(`${file}.1`, 'utf8')), 'the rotated file is left alone');
  } finally {
    assert.equal((await gw.proc.stop()).code, 0);
  }
});
