#!/usr/bin/env node
// bench/redis_ops.mjs - Redis commands per presence transition and per DM,
// for docs/SCALE.md: a Herald stack (2 gateways) with `conns` idle users,
// then herald-loadgen's presence mode (users coming and going, nothing
// else) and its dm mode, each with Redis's INFO commandstats sampled; a run
// of the same shape with no changes gives the background
// (heartbeats, leases) that is subtracted. Prints JSON on stdout.
// Commands are counted over the measurement window only (sampled).
//   node bench/redis_ops.mjs [--scope related|all] [--friends K]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BIN, SECRET, redisCli, startHerald } from './stack.mjs';
import { runLoadgen } from './bench.mjs';

const { values: o } = parseArgs({ options: {
  scope: { type: 'string', default: 'related' }, friends: { type: 'string', default: '50' },
  conns: { type: 'string', default: '2000' }, seconds: { type: 'string', default: '5' },
} });
const conns = Number(o.conns);
const secs = Number(o.seconds);

function commandstats(port) {
  const out = {};
  for (const l of redisCli(port, 'INFO', 'commandstats').split('\n')) {
    const m = /^cmdstat_(\S+):calls=(\d+)/.exec(l.trim());
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}
const diff = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] || 0)]).filter(([, v]) => v > 0));
const total = (x) => Object.values(x).reduce((s, v) => s + v, 0);

// Samples commandstats every SAMPLE_MS while the load generator runs, so
// that the measurement window alone is counted (not the ramp, not the
// teardown when the load generator exits).
const SAMPLE_MS = 250;

async function measure(mode, extra) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-redis-ops-'));
  const churn = mode === 'presence' ? 20 : 0;
  const stack = await startHerald({ servers: 2, users: conns + churn, friends: Number(o.friends), logDir: dir, bin: BIN,
    secret: SECRET, env: { HERALD_PRESENCE_SCOPE: o.scope } });
  try {
    const samples = [];
    let stop = false;
    const sampler = (async () => {
      while (!stop) {
        samples.push({ t: Date.now(), c: commandstats(stack.redisPort) });
        await new Promise((r) => setTimeout(r, SAMPLE_MS));
      }
    })();
    const t0 = Date.now();
    const run = { scenario: mode, mode, proto: 'ws', target: 'herald', conns, tabs: 1, procs: 2, settle: 1, duration: secs,
      drain: 1, churnUsers: churn, ...extra };
    const lg = await runLoadgen(run, stack, { bin: BIN, dir, quiet: true });
    stop = true;
    await sampler;
    // The samples inside the measurement window, its ends trimmed by a
    // sample period.
    const ws = t0 + (lg.ramp_s + run.settle) * 1000 + SAMPLE_MS;
    const we = ws + lg.measure_s * 1000 - 2 * SAMPLE_MS;
    const inside = samples.filter((x) => x.t >= ws && x.t <= we);
    const a = inside[0], b = inside[inside.length - 1];
    const secsIn = (b.t - a.t) / 1000;
    const d = diff(a.c, b.c);
    return { lg: { sent: lg.sent, received: lg.received, measure_s: lg.measure_s },
      window_s: secsIn, commands: d, per_s: total(d) / secsIn, actions_per_s: lg.sent / lg.measure_s,
      commands_per_s: Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v / secsIn])) };
  } finally {
    await stack.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const idle = await measure('presence', { rate: 0.0001 });
const pres = await measure('presence', { rate: 100 });
const dm = await measure('dm', { rate: 500 });
const per = (m) => (m.per_s - idle.per_s) / m.actions_per_s;
const perCmd = (m) => Object.fromEntries(Object.entries(m.commands_per_s)
  .map(([k, v]) => [k, +((v - (idle.commands_per_s[k] || 0)) / m.actions_per_s).toFixed(2)]).filter(([, v]) => Math.abs(v) >= 0.05));
process.stdout.write(`${JSON.stringify({
  scope: o.scope, friends: Number(o.friends), conns,
  idle, presence: pres, dm,
  per_transition: per(pres), per_transition_by_command: perCmd(pres),
  per_dm: per(dm), per_dm_by_command: perCmd(dm),
}, null, 1)}\n`);
