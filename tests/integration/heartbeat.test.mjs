// The heartbeat: the pings of many connections opened together leave spread
// out, not in one burst (a burst of 20 000 pings and their pongs held a
// gateway's loop long enough to push presence p99 at 100 000 connections to
// 453 ms); and a client that is reading a backlog is alive, though its pong
// waits behind that backlog.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Stack, waitFor, upgradeRequest, clientFrame } from './harness.mjs';

let s;
before(async () => {
  // A 2 s interval: the sweep's tick is 400 ms, 20 slices of 20 ms.
  s = await new Stack('heartbeat', {
    pingIntervalMs: 2000,
    pingTimeoutMs: 3000,
    env: {
      HERALD_OUTPUT_CAP: String(32 << 20),
      HERALD_CHAT_MAX_LENGTH: '60000',
      HERALD_CHAT_BURST: '100000',
      HERALD_CHAT_RATE: '100000',
      HERALD_CHAT_RATE_PER_IP: '0',
    },
  }).start();
});
after(async () => { await s.stop(); });

test('/ws: the pings of 100 connections opened at once arrive spread out, a slice at a time', async () => {
  const names = ['alice', 'bob', 'carol', 'dave', 'erin'];
  const conns = await Promise.all(Array.from({ length: 100 }, (_, i) => s.connect(names[i % names.length], 0)));
  const first = new Array(conns.length).fill(null);
  conns.forEach((c, i) => c.ws.once('ping', () => { first[i] = performance.now(); }));
  await waitFor(() => first.every((t) => t !== null), { what: 'a ping on every connection', timeout: 10000 });
  const times = [...first].sort((a, b) => a - b);
  // The most pings that arrived within any 10 ms. Walking every connection
  // in one go sent all pings that fell due in a tick together: all 100 of
  // connections opened inside one 400 ms tick, and still a third of them
  // at once when the first pings are spread over half the interval (1 s).
  // A slice is 100/20+1 = 6 connections.
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i] - times[j] > 10) j++;
    most = Math.max(most, i - j + 1);
  }
  // The first pings leave spread over the second half of the interval.
  assert.ok(times[times.length - 1] - times[0] >= 400, `the first pings spread over ${Math.round(times[times.length - 1] - times[0])} ms`);
  assert.ok(most <= 20, `${most} of 100 pings arrived within 10 ms (spread over ${Math.round(times[times.length - 1] - times[0])} ms)`);
  await Promise.all(conns.map((c) => c.close()));
});

test('/ws: a client reading a long backlog is not dropped as silent; once it has read it, the silence counts', async () => {
  // A raw socket: nothing but this test decides when it reads (the ws
  // library resumes a socket it finds paused), and it never answers a ping.
  const port = s.gateways[1].port;
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  const N = 240;
  const last = `"${N - 1}:x`;
  const seen = new Set();
  let tail = '';
  let throttle = false;
  let closedAt = null;
  sock.on('error', () => {});
  sock.on('close', () => { closedAt = performance.now(); });
  sock.on('data', (d) => {
    const text = tail + d.toString('latin1');
    for (const m of ['HTTP/1.1 101', '"chat_history"', last]) if (text.includes(m)) seen.add(m);
    tail = text.slice(-64);
    // Reads a chunk (at most 64 KiB) every 30 ms: the backlog takes
    // seconds, longer than the 3 s timeout, and the gateway's writes keep
    // progressing.
    if (throttle) { sock.pause(); setTimeout(() => sock.resume(), 30); }
  });
  sock.write(upgradeRequest(port, s.token('bob')));
  await waitFor(() => seen.has('HTTP/1.1 101'), { what: 'the upgrade' });
  // Everything it says, it says before the backlog: one broker round trip,
  // so that the chat below reaches it.
  sock.write(clientFrame(1, JSON.stringify({ type: 'get_chat_history', limit: 1 })));
  await waitFor(() => seen.has('"chat_history"'), { what: 'the chat history answer' });
  sock.pause(); // the kernel buffers fill, then the gateway's queue
  const body = 'x'.repeat(50000);
  for (let i = 0; i < N; i++) {
    const r = await s.chatOverHttp('carol', `${i}:${body}`);
    assert.equal(r.status, 202);
  }
  const queued = async () => Number((await (await fetch(`${s.gateways[1].url}/metrics`)).text())
    .match(/^herald_gateway_output_queued_bytes (\d+)$/m)[1]);
  await waitFor(async () => (await queued()) > 4e6, { what: 'a backlog of several MB queued for bob', timeout: 20000 });
  throttle = true;
  const t0 = performance.now();
  sock.resume();
  await waitFor(() => seen.has(last) || closedAt !== null, { what: 'the backlog read, or bob dropped', timeout: 60000 });
  const readMs = performance.now() - t0;
  assert.equal(closedAt, null, `dropped as silent after ${Math.round(closedAt - t0)} ms while still reading`);
  assert.ok(readMs > 3000, `the backlog took ${Math.round(readMs)} ms, longer than the ping timeout (else this proves nothing)`);
  // Now it has read everything and still never answers: dropped.
  await waitFor(() => closedAt !== null, { what: 'bob dropped once silent', timeout: 15000 });
  assert.ok(closedAt - t0 >= readMs, 'dropped only after the backlog');
});
