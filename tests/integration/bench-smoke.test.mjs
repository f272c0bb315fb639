// bench-smoke.test.mjs - a tiny run of every benchmark scenario (bench/)
// against Herald (/ws and Socket.IO) and the reference Socket.IO server,
// through the same code scripts/bench uses: bench/stack.mjs starts a fresh
// stack per run, herald-loadgen (from $HERALD_BIN_DIR, like the other
// binaries) drives it, bench/report.mjs renders the report into a temporary
// directory. It checks counts, never timings: every connection held, no
// errors, every chat message and DM delivered, latencies recorded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN } from '../../bench/stack.mjs';
import { planRuns, runFloorProbe, runOnce, runWebhookThroughput, TARGETS } from '../../bench/bench.mjs';
import { machineInfo, writeReport } from '../../bench/report.mjs';

const OUT = process.env.HERALD_TEST_OUT || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../out');

// The shape of bench.mjs's SIZES, as small as still says something.
const SMOKE = {
  time: { settle: 0.3, measure: 1.2, drain: 1, hold: 0.3 },
  idle: { conns: [200], tabs: 10 },
  presence: { watchers: 100, tabs: 50, churnUsers: 20, rates: [40], fast: { rate: 100, watchers: [] } },
  // Saturation and bursty cover both ways of sending (paced by deliveries, by rate).
  broadcast: { recipients: 100, tabs: 10, senders: 2, rates: [], window: 4, bursty: { rate: 20, burst: 5 } },
  dm: { conns: 100, rate: 100 },
};
// The scale scenario (Herald /ws only): 600 connections of 300 users with
// 10 friends each, in scope related, then 300 in scope all; sessions end
// fast (0.5-minute sessions: 10 a second) so that a 2-second measurement
// sees a few dozen, back after 0.3 s. The floor probe at 100 connections.
const SCALE = {
  time: { settle: 0.3, measure: 2, drain: 1 },
  scale: { conns: [600], allConns: [300], friends: 10, sessionMin: 0.5, offline: 0.3, dmPer1k: 20, watchPer1k: 20 },
};
const FLOOR_CONNS = 100;
// The webhook scenario: the dm load above, one round of its three series;
// the sender alone drains WEBHOOK_N entries.
const WEBHOOK = { rounds: 1 };
const WEBHOOK_N = 2000;

const records = [];
let webhookThroughput = null; // the sender alone, for the report test

function checkRun(rec) {
  const what = `${rec.scenario} ${rec.target}/${rec.proto} ${rec.desc}`;
  assert.ok(rec.ok, `${what}: ${rec.error}\n${rec.output || ''}`);
  assert.deepEqual(rec.problems, [], `${what}: processes did not stop cleanly`);
  const lg = rec.lg;
  assert.deepEqual(lg.errors, { connect: 0, handshake: 0, closed: 0, protocol: 0, server: 0 }, `${what}: ${lg.last_error}`);
  assert.equal(lg.held, rec.conns, `${what}: connections held`);
  switch (rec.scenario) {
    case 'idle':
      assert.equal(lg.handshakes, rec.conns, `${what}: handshakes`);
      assert.ok(lg.status_events > 0, `${what}: no status events in the ramp`);
      for (const name of Object.keys(lg.rss_kb_held)) assert.ok(lg.rss_kb_held[name] > 0, `${what}: RSS of ${name}`);
      break;
    case 'presence':
      assert.ok(lg.sent > 0, `${what}: no changes made`);
      assert.ok(lg.received > 0, `${what}: no status event about a churning user seen`);
      assert.ok(lg.latency_us.count > 0, `${what}: no latency recorded`);
      break;
    case 'broadcast': {
      assert.ok(lg.sent > 0, `${what}: nothing sent`);
      assert.equal(lg.received_after_drain % lg.held, 0, `${what}: a message reached only some recipients`);
      // The load generator counts what was sent only once every worker has
      // stopped sending, so every message counts on both sides.
      assert.equal(lg.received_after_drain, lg.sent * lg.held,
        `${what}: ${lg.sent} sent × ${lg.held} recipients, ${lg.received_after_drain} delivered`);
      assert.ok(lg.latency_us.count > 0, `${what}: no latency recorded`);
      break;
    }
    case 'scale': {
      // Counts only: sessions ended and came back, transitions reached
      // related tabs and were timed, DMs and watches went out.
      const sc = lg.scale;
      assert.ok(sc.sessions_ended > 0 && sc.sessions_begun > 0, `${what}: ${JSON.stringify(sc)}`);
      assert.ok(lg.received > 0 && lg.latency_us.count > 0, `${what}: no presence delivery timed`);
      assert.ok(sc.dm_sent > 0 && sc.dm_received > 0 && sc.dm_latency_us.count > 0, `${what}: DMs ${JSON.stringify(sc)}`);
      assert.ok(sc.watch_sent > 0, `${what}: no watch-profile sent`);
      assert.equal(sc.users, rec.conns / 2, `${what}: users`);
      break;
    }
    case 'webhook': {
      // The DM checks below, and the webhook counters: counts, no timings.
      const wm = rec.webhook_metrics;
      assert.ok(wm && wm.total && wm.window, `${what}: no webhook metrics (${JSON.stringify(wm)})`);
      if (rec.webhook === 'ok') {
        assert.ok(wm.total.events > 0, `${what}: no webhook event delivered`);
        assert.equal(rec.receiver.events, wm.total.events, `${what}: receiver and broker counts`);
        assert.equal(rec.receiver.out_of_order, 0, `${what}: events out of order`);
        assert.equal(wm.total.failures, 0, `${what}: webhook failures`);
      } else if (rec.webhook === 'hang') {
        assert.ok(wm.total.failures >= 0 && wm.total.events === 0, `${what}: ${JSON.stringify(wm.total)}`);
        assert.ok(rec.receiver.requests >= 1, `${what}: the hanging receiver got no request`);
      } else {
        assert.equal(wm.total.events, 0, `${what}: webhook events without a webhook`);
      }
    }
    // falls through
    case 'dm':

      assert.ok(lg.sent > 0, `${what}: nothing sent`);
      assert.equal(lg.received_after_drain, lg.sent, `${what}: DMs sent and received (loss)`);
      assert.ok(lg.latency_us.count > 0, `${what}: no latency recorded`);
      break;
    default:
      assert.fail(`unknown scenario ${rec.scenario}`);
  }
}

// BIN is where herald-loadgen must be: built by default with the rest.
test('herald-loadgen is built beside the servers', () => {
  assert.ok(fs.existsSync(path.join(BIN, 'herald-loadgen')), `no ${BIN}/herald-loadgen: build the default targets`);
});

// The three targets run side by side; each runs the scenarios in turn.
test('benchmark scenarios, tiny', { concurrency: true, timeout: 180000 }, async (t) => {
  await Promise.all(TARGETS.map((tg) => t.test(`against ${tg.target}/${tg.proto}`, async () => {
    const runs = planRuns(SMOKE, { targets: [tg] });
    assert.deepEqual([...new Set(runs.map((r) => r.scenario))], ['idle', 'presence', 'broadcast', 'dm']);
    for (const run of runs) {
      const logDir = path.join(OUT, 'bench-smoke', `${run.scenario}-${run.target}-${run.proto}-${run.series}`);
      const rec = await runOnce(run, { logDir, quiet: true, session: 'smoke' });
      records.push(rec);
      checkRun(rec);
    }
  })));
});

// The webhook scenario (Herald /ws only) and the sender alone, while the
// other targets' scenarios run (one more stack beside them).
test('webhook scenario, tiny', { timeout: 120000 }, async (t) => {
  const runs = planRuns({ ...SMOKE, webhook: WEBHOOK }, { only: ['webhook'] });
  assert.deepEqual(runs.map((r) => `${r.target}/${r.proto} ${r.series}`),
    ['herald/ws wh-off', 'herald/ws wh-hang', 'herald/ws wh-ok']);
  for (const run of runs) {
    const logDir = path.join(OUT, 'bench-smoke', `webhook-${run.series}`);
    const rec = await runOnce(run, { logDir, quiet: true, session: 'smoke' });
    records.push(rec);
    checkRun(rec);
  }
  await t.test('the sender alone delivers every entry, in order', async () => {
    const r = await runWebhookThroughput({ n: WEBHOOK_N, batch: 100, logDir: path.join(OUT, 'bench-smoke', 'webhook-throughput') });
    assert.ok(r.ok, r.error);
    assert.equal(r.received, WEBHOOK_N);
    assert.equal(r.out_of_order, 0);
    assert.equal(r.metrics.events, WEBHOOK_N);
    assert.ok(r.requests >= WEBHOOK_N / 100, `${r.requests} requests`);
    assert.ok(r.events_per_s > 0);
    webhookThroughput = { session: 'smoke', sizes: 'smoke', ok: true, runs: [{ ...r, repeat: 1 }] };
  });
});

// Scale (Herald /ws, scopes related and all) and the floor probe, while the
// other scenarios run.
test('scale scenario and floor probe, tiny', { timeout: 120000 }, async (t) => {
  const runs = planRuns(SCALE, { only: ['scale'] });
  assert.deepEqual(runs.map((r) => `${r.target}/${r.proto} ${r.scope} ${r.conns}`),
    ['herald/ws related 600', 'herald/ws all 300']);
  for (const run of runs) {
    const logDir = path.join(OUT, 'bench-smoke', `scale-${run.scope}`);
    const rec = await runOnce(run, { logDir, quiet: true, session: 'smoke' });
    records.push(rec);
    checkRun(rec);
  }
  await t.test('herald-floor-probe reaches every connection', () => {
    const [r] = runFloorProbe({ conns: [FLOOR_CONNS], rounds: 2 });
    assert.equal(r.conns, FLOOR_CONNS);
    assert.ok(r.send_cpu_us > 0 && r.last_ms > 0, JSON.stringify(r));
  });
});

test('report.mjs renders the tables and plots, and keeps the notes', { timeout: 60000 }, async () => {
  // Runs after the scenario tests (node:test runs top-level tests in order).
  assert.ok(records.length > 0, 'no runs to report');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-bench-report-'));
  try {
    const report = path.join(dir, 'BENCHMARKS.md');
    fs.writeFileSync(report, 'old\n<!-- notes -->\nhand-written, keep me\n<!-- /notes -->\nold\n');
    const results = { meta: { ...machineInfo(), session: 'smoke', sizes: 'smoke', wall_s: 1 }, sizes: { smoke: SMOKE }, runs: records,
      webhook_throughput: webhookThroughput };
    const { plots } = await writeReport(results, report, path.join(dir, 'bench/results.json'));
    const md = fs.readFileSync(report, 'utf8');
    for (const h of ['## Machine', '## Targets', '## Method', '### Idle connections', '### Presence',
      '### Broadcast (live chat)', '### Direct messages', '### Webhook', '#### The sender alone', '### Scale']) {
      assert.ok(md.includes(h), `report lacks ${h}`);
    }
    for (const name of ['Herald /ws', 'Herald Socket.IO', 'reference']) {
      assert.ok(md.split('\n').some((l) => l.startsWith('|') && l.includes(`| ${name} |`)), `no table row for ${name}`);
    }
    assert.match(md, /<!-- notes -->\nhand-written, keep me\n<!-- \/notes -->/);
    assert.ok(!md.includes('old\n<!--'), 'the generated part was not rewritten');
    let gnuplot = true;
    try { execFileSync('gnuplot', ['--version'], { stdio: 'ignore' }); } catch { gnuplot = false; }
    if (gnuplot) {
      assert.ok(plots.length >= 4, `plots: ${plots.join(', ')}`);
      for (const p of plots) {
        assert.ok(p.startsWith(path.join(dir, 'bench')), `plot outside the report's directory: ${p}`);
        assert.deepEqual([...fs.readFileSync(p).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], `${p} is not a PNG`);
        assert.ok(md.includes(`](bench/${path.basename(p)})`), `${p} not embedded`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
