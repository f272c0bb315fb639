#!/usr/bin/env node
// bench/redis_ops.mjs - Redis commands per presence transition and per DM,
// for docs/SCALE.md: a Herald stack (2 gateways) with `conns` idle users,
// then herald-loadgen's presence mode (users coming and going, nothing
// else) and its dm mode, each with Redis's INFO commandstats read before
// and after; an idle period of the same length gives the background
// (heartbeats, leases) that is subtracted. Prints JSON on stdout.
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

async function measure(mode, extra) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-redis-ops-'));
  const churn = mode === 'presence' ? 20 : 0;
  const stack = await startHerald({ servers: 2, users: conns + churn, friends: Number(o.friends), logDir: dir, bin: BIN,
    secret: SECRET, env: { HERALD_PRESENCE_SCOPE: o.scope } });
  try {
    // The background: the same time with nothing happening.
    const i0 = commandstats(stack.redisPort);
    await new Promise((r) => setTimeout(r, secs * 1000)); // an interval of wall time is the measurement itself
    const idle = diff(i0, commandstats(stack.redisPort));
    const a = commandstats(stack.redisPort);
    const run = { scenario: mode, mode, proto: 'ws', target: 'herald', conns, tabs: 1, procs: 2, settle: 0.5, duration: secs,
      drain: 1, churnUsers: churn, ...extra };
    const lg = await runLoadgen(run, stack, { bin: BIN, dir, quiet: true });
    const b = commandstats(stack.redisPort);
    const d = diff(a, b);
    const span = lg.ramp_s + 0.5 + lg.measure_s + 1 + 2; // + the drain wait
    const bg = total(idle) * span / secs;
    // The ramp's own commands (conns handshakes) are counted apart: a
    // second pass with the rate 0 would double the time; the ramp costs
    // are the connection events, reported as per-connection below.
    return { lg: { sent: lg.sent, received: lg.received, ramp_s: lg.ramp_s, measure_s: lg.measure_s, handshakes: lg.handshakes },
      commands: d, total: total(d), background_per_s: total(idle) / secs, background: bg };
  } finally {
    await stack.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const ramp = await measure('presence', { rate: 0.0001 });
const pres = await measure('presence', { rate: 100 });
const dm = await measure('dm', { rate: 500 });
const per = (m, n) => (m.total - ramp.total) / n;
process.stdout.write(`${JSON.stringify({
  scope: o.scope, friends: Number(o.friends), conns,
  ramp_only: ramp, presence: pres, dm,
  per_connection_ramp: (ramp.total - ramp.background) / (conns + 20),
  per_transition: per(pres, pres.lg.sent),
  per_dm: per(dm, dm.lg.sent),
}, null, 1)}\n`);
