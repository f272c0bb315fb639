// bench/receiver.mjs - the webhook receivers of the `webhook` benchmark
// scenario, run inside the bench process (node:http on a free loopback
// port), one per run, stopped after it.
//
//   ok    reads each POST, counts its events, checks their ids grow (stream
//         order, docs/API.md "Webhooks") and answers 204 at once. It checks
//         no signature: the benchmark measures the sender, not a receiver.
//   hang  accepts the connection, reads the request and never answers: the
//         broker's attempt runs into --webhook-timeout-ms (10 s by default),
//         then it retries with backoff, for the whole run.
import http from 'node:http';

// Compares two stream ids "ms-seq" numerically.
export function cmpId(a, b) {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : (as < bs ? -1 : 1);
}

// Starts a receiver; resolves with
// { mode, port, url, requests, events, outOfOrder, lastId, firstAt, lastAt,
//   firstBatch, waitEvents(n, timeoutMs), stop() }.
// Times (firstAt, lastAt) are process.hrtime.bigint() of the end of a
// request's body; lastAt is the latest request.
export async function startReceiver(mode) {
  if (mode !== 'ok' && mode !== 'hang') throw new Error(`receiver mode ${mode}`);
  const r = {
    mode, requests: 0, events: 0, outOfOrder: 0, badBodies: 0, lastId: null,
    firstAt: null, lastAt: null, firstBatch: 0, sockets: new Set(), waiters: [],
  };
  r.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      r.requests++;
      if (mode === 'hang') return; // never answered: the broker times out
      const at = process.hrtime.bigint();
      let events = null;
      try { events = JSON.parse(Buffer.concat(chunks).toString('utf8')).events; } catch { /* counted below */ }
      if (!Array.isArray(events)) {
        r.badBodies++;
      } else {
        for (const e of events) {
          if (r.lastId !== null && cmpId(e.id, r.lastId) <= 0) r.outOfOrder++;
          r.lastId = e.id;
        }
        if (r.firstAt === null) { r.firstAt = at; r.firstBatch = events.length; }
        r.lastAt = at;
        r.events += events.length;
      }
      res.writeHead(204).end();
      r.waiters = r.waiters.filter((w) => (r.events >= w.n ? (w.resolve(), false) : true));
    });
  });
  r.server.on('connection', (s) => {
    r.sockets.add(s);
    s.on('close', () => r.sockets.delete(s));
  });
  // Node's own request timeouts would answer 408 on the hang receiver's
  // behalf after a while: off.
  r.server.requestTimeout = 0;
  r.server.headersTimeout = 0;
  r.server.keepAliveTimeout = 60000;
  await new Promise((resolve, reject) => {
    r.server.once('error', reject);
    r.server.listen(0, '127.0.0.1', resolve);
  });
  r.port = r.server.address().port;
  r.url = `http://127.0.0.1:${r.port}/hooks`;
  // Resolves once n events were received, rejects after timeoutMs.
  r.waitEvents = (n, timeoutMs) => new Promise((resolve, reject) => {
    if (r.events >= n) { resolve(); return; }
    const w = { n, resolve: () => { clearTimeout(w.timer); resolve(); } };
    w.timer = setTimeout(() => {
      r.waiters = r.waiters.filter((x) => x !== w);
      reject(new Error(`webhook receiver: ${r.events} of ${n} events within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    r.waiters.push(w);
  });
  r.stop = () => new Promise((resolve) => {
    for (const s of r.sockets) s.destroy();
    r.server.close(() => resolve());
  });
  // What a run record keeps.
  r.summary = () => ({ mode, requests: r.requests, events: r.events, out_of_order: r.outOfOrder, bad_bodies: r.badBodies });
  return r;
}
