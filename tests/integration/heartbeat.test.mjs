// The heartbeat's shape: the pings of many connections opened together
// leave spread over the sweep's tick, not in one burst (a burst of 20 000
// pings and their pongs held a gateway's loop long enough to push presence
// p99 at 100 000 connections to 453 ms).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, waitFor } from './harness.mjs';

let s;
before(async () => {
  // A 2 s interval: the sweep's tick is 400 ms, 20 slices of 20 ms.
  s = await new Stack('heartbeat', { pingIntervalMs: 2000, pingTimeoutMs: 10000 }).start();
});
after(async () => { await s.stop(); });

test('/ws: the pings of 60 connections opened at once arrive spread out, a slice at a time', async () => {
  const names = ['alice', 'bob', 'carol', 'dave', 'erin'];
  const conns = await Promise.all(Array.from({ length: 60 }, (_, i) => s.connect(names[i % names.length], 0)));
  const first = new Array(conns.length).fill(null);
  conns.forEach((c, i) => c.ws.once('ping', () => { first[i] = performance.now(); }));
  await waitFor(() => first.every((t) => t !== null), { what: 'a ping on every connection', timeout: 10000 });
  const times = [...first].sort((a, b) => a - b);
  // The most pings that arrived within any 10 ms. Walking every connection
  // in one go sends all pings that fell due in a tick together: with 60
  // connections opened well inside one 400 ms tick, 30 or more at once.
  // A slice is 60/20+1 = 4 connections.
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i] - times[j] > 10) j++;
    most = Math.max(most, i - j + 1);
  }
  assert.ok(most <= 20, `${most} of 60 pings arrived within 10 ms (spread over ${Math.round(times[59] - times[0])} ms)`);
  await Promise.all(conns.map((c) => c.close()));
});
