#!/usr/bin/env node
// bench/bench.mjs - runs the benchmark scenarios of issue 7 against Herald
// (raw /ws and Socket.IO) and the reference Socket.IO server at the same
// sizes, collects herald-loadgen's JSON summaries into docs/bench/results.json
// and has bench/report.mjs write docs/BENCHMARKS.md and the plots.
//
// Each run gets a fresh stack (bench/stack.mjs) so that its memory and CPU
// figures start from the same clean state; herald-loadgen samples the CPU
// time and RSS of every server process, Redis included (--pid NAME=PID).
// Runs are sequential: on a 2-core machine anything running beside a run
// would be measured as the servers' own cost.
//
// The sizes are in SIZES below: edit them there.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { BIN, ROOT, SECRET, heraldBenchEnv, redisCli, serversFor, startHerald, startStack } from './stack.mjs';
import { startReceiver } from './receiver.mjs';
import { freePort, metrics, waitFor } from '../tests/integration/harness.mjs';
import { derive, machineInfo, NOISE_FLAG, scaleKeptUp, scenarioMarkdown, writeReport, SCENARIOS } from './report.mjs';

// ---- sizes ---------------------------------------------------------------------
//
// time:      seconds of settle (after the ramp), measure and drain (late
//            deliveries); idle holds its connections for `hold` seconds.
// idle:      connection counts; `tabs` connections per user (see below);
//            `handshake`: one more run of that many connections of a single
//            user, so that no handshake announces anything: the handshake
//            cost alone.
// presence:  `watchers` connections (`tabs` per user) and `churnUsers` users
//            that come and go, swept over `rates` changes/s; then `fast.rate`
//            changes/s with each of `fast.watchers`. Each change goes to every
//            connection, so rate × watchers deliveries/s: the low rates find
//            the latency floor (one event's fan-out) and the knee, the high
//            ones what happens past it.
// broadcast: `recipients` connections; `senders` connections per load
//            generator worker send live chat at each of `rates` messages/s,
//            at saturation (`window` messages in flight per worker) and in
//            bursts of `bursty.burst` at `bursty.rate`.
// dm:        `conns` connections (conns/2 pairs) sending `rate` DMs/s in all;
//            Herald runs it twice, the second time with DM storage off.
// webhook:   the dm load (its conns and rate) against Herald /ws, three
//            series back to back: no webhook, a webhook receiver that never
//            answers, one that answers 204 at once; `rounds` times over, so
//            the report shows the run-to-run spread. Then the sender alone:
//            `throughput` hook entries appended at once, drained to a 204
//            receiver, at each of `batches` events per POST, `repeats` times.
// store:     `count` DMs per batch size into the SQLite store alone
//            (herald-store-bench), no network.
// scale:     Herald /ws only, `conns` connections (multiples of 6) of
//            conns/2 users with 1, 2 or 3 tabs, each user with `friends`
//            friends (a ring: herald-admin friend bulk), scope related; user
//            sessions of `sessionMin` minutes (conns/(60 × sessionMin)
//            connections close and reopen per second, a user's tabs
//            together, `offline` s apart), `dmPer1k` DMs/s and `watchPer1k`
//            watch-profile changes/s per 1 000 connections. Then the same in
//            scope all at each of `allConns`, to find the largest that keeps
//            up; `time` its own (a large ramp needs a longer settle).
// floor:     at each of `conns`: herald-floor-probe (one small send() to
//            each of N loopback connections, `rounds` times: the kernel's
//            floor), and one Herald gateway (scope all) holding N
//            connections while one user goes offline and online: the time
//            from a transition to its last delivery, and the server CPU per
//            delivery, against that floor. The user changes 20 000/N
//            times a second, 2 to 20 (20/s at 1 000, 2/s at 10 000):
//            one fan-out at a time, yet enough of them that the servers'
//            idle work (timers, heartbeats) is not what is measured.
//
// Why tabs: the contract announces every user's first connection to every
// connection, so a ramp of N distinct users costs O(N^2) deliveries (60 000
// users: 1.8 billion). With `tabs` connections per user it is N^2/(2 tabs),
// and the ramp measures handshakes rather than presence fan-out.
export const SIZES = {
  full: {
    time: { settle: 2, measure: 10, drain: 2, hold: 2 },
    idle: { conns: [5000, 20000, 60000], tabs: 1000, handshake: 20000 },
    presence: { watchers: 20000, tabs: 1000, churnUsers: 1000, rates: [2, 10, 25, 50, 100, 200],
      fast: { rate: 2000, watchers: [200, 1000] } },
    broadcast: { recipients: 5000, tabs: 100, senders: 4, rates: [100, 500], window: 32,
      bursty: { rate: 500, burst: 10 } },
    dm: { conns: 2000, rate: 2000 },
    webhook: { rounds: 3, throughput: 200000, batches: [100, 1000], repeats: 3 },
    store: { count: 200000 },
    floor: { conns: [1000, 10000], rounds: 9 },
    scale: { conns: [30000, 100002], allConns: [5004, 10002, 20004], friends: 50, sessionMin: 20, offline: 2,
      dmPer1k: 1, watchPer1k: 1, time: { settle: 5, measure: 30, drain: 3 } },
  },
  quick: {
    time: { settle: 1, measure: 4, drain: 1.5, hold: 1 },
    idle: { conns: [2000, 10000], tabs: 1000, handshake: 10000 },
    presence: { watchers: 5000, tabs: 1000, churnUsers: 1000, rates: [25, 100],
      fast: { rate: 2000, watchers: [200] } },
    broadcast: { recipients: 1000, tabs: 100, senders: 4, rates: [100, 500], window: 32,
      bursty: { rate: 500, burst: 10 } },
    dm: { conns: 1000, rate: 1000 },
    webhook: { rounds: 2, throughput: 20000, batches: [100, 1000], repeats: 1 },
    store: { count: 50000 },
    floor: { conns: [1000], rounds: 5 },
    scale: { conns: [6000], allConns: [3000], friends: 50, sessionMin: 20, offline: 1,
      dmPer1k: 2, watchPer1k: 2, time: { settle: 2, measure: 8, drain: 2 } },
  },
};

const WEBHOOK_DESC = { off: 'off', hang: 'to a receiver that never answers', ok: 'to a 204 receiver' };

// Herald over both of its dialects, and the reference (Socket.IO only).
export const TARGETS = [
  { target: 'herald', proto: 'ws' },
  { target: 'herald', proto: 'sio' },
  { target: 'reference', proto: 'sio' },
];

// Load generator workers: at least two, so that it can use both cores when
// the servers leave them idle, and at most 19 000 connections each (the fd
// limit of one process here is 20 000).
function loadgenProcs(conns) {
  return Math.max(2, Math.ceil(conns / 19000));
}

// ---- the plan --------------------------------------------------------------------

// The configurations of one scenario (target-independent).
function configs(scenario, sz) {
  const t = sz.time;
  const base = { settle: t.settle, duration: t.measure, drain: t.drain };
  const out = [];
  if (scenario === 'idle') {
    for (const conns of sz.idle.conns) {
      out.push({ ...base, duration: t.hold, series: 'idle', conns, tabs: Math.min(sz.idle.tabs, conns),
        desc: `${conns} conns (${sz.idle.tabs} tabs/user)` });
    }
    if (sz.idle.handshake) {
      const conns = sz.idle.handshake;
      out.push({ ...base, duration: t.hold, series: 'handshake', conns, tabs: conns,
        desc: `${conns} conns of one user (handshakes without presence fan-out)` });
    }
  } else if (scenario === 'presence') {
    const p = sz.presence;
    for (const rate of p.rates) {
      out.push({ ...base, series: 'sweep', conns: p.watchers, tabs: Math.min(p.tabs, p.watchers),
        churnUsers: p.churnUsers, rate, desc: `${p.watchers} watchers ${rate} changes/s` });
    }
    for (const w of p.fast.watchers) {
      out.push({ ...base, series: 'fast', conns: w, tabs: Math.min(p.tabs, w), churnUsers: p.churnUsers,
        rate: p.fast.rate, desc: `${w} watchers ${p.fast.rate} changes/s` });
    }
  } else if (scenario === 'broadcast') {
    const b = sz.broadcast;
    const common = { ...base, conns: b.recipients, tabs: Math.min(b.tabs, b.recipients), senders: b.senders };
    for (const rate of b.rates) {
      out.push({ ...common, series: 'rate', case: `${rate} msg/s`, rate, burst: 1,
        desc: `${b.recipients} recipients ${rate} msg/s` });
    }
    out.push({ ...common, series: 'saturation', case: 'saturation', rate: 0, burst: 1, window: b.window,
      desc: `${b.recipients} recipients saturation (window ${b.window})` });
    out.push({ ...common, series: 'bursty', case: `bursty ${b.bursty.rate} msg/s × ${b.bursty.burst}`,
      rate: b.bursty.rate, burst: b.bursty.burst,
      desc: `${b.recipients} recipients bursty ${b.bursty.rate} msg/s in bursts of ${b.bursty.burst}` });
  } else if (scenario === 'dm') {
    out.push({ ...base, series: 'dm', conns: sz.dm.conns, tabs: 1, rate: sz.dm.rate,
      desc: `${sz.dm.conns / 2} pairs ${sz.dm.rate} DMs/s` });
    // The same with the broker's DM storage off (--dm-store off, a switch
    // for this comparison only): what storing costs per DM.
    out.push({ ...base, series: 'dm-nostore', dmStore: 'off', heraldOnly: true, conns: sz.dm.conns, tabs: 1,
      rate: sz.dm.rate, desc: `${sz.dm.conns / 2} pairs ${sz.dm.rate} DMs/s, DMs not stored` });
  } else if (scenario === 'floor') {
    for (const conns of sz.floor?.conns || []) {
      // One gateway; conns/10 users of 10 tabs, so the ramp announces 10
      // users only; one churning user, 20 000/N transitions per second, 2 to
      // 20 (the rate is split over the two workers and the one
      // churning user sits on one of them, hence twice that): about 20 000
      // deliveries/s, one fan-out at a time (a fan-out to N takes ~N × 15 µs).
      // Offline transitions are timed to their last delivery.
      const perSec = Math.min(20, Math.max(2, Math.round(20000 / conns)));
      out.push({ ...base, settle: 1, duration: 10, drain: 1, series: 'floor', mode: 'presence', heraldOnly: true,
        protos: ['ws'], servers: 1, conns, tabs: Math.max(1, Math.floor(conns / 10)), churnUsers: 1, rate: 2 * perSec,
        desc: `${conns} conns on one gateway, ${perSec} transitions/s to all (scope all)` });
    }
  } else if (scenario === 'scale') {
    const c = sz.scale;
    if (!c) return out;
    const t2 = { ...base, ...(c.time ? { settle: c.time.settle, duration: c.time.measure, drain: c.time.drain } : {}) };
    const one = (conns, scope) => {
      // A session ends and begins again: the user's tabs (2 on average)
      // close and reopen, so conns/(60 × sessionMin) reconnects/s is half
      // as many sessions/s.
      const reconnects = conns / (60 * c.sessionMin);
      return { ...t2, series: scope, scope, heraldOnly: true, protos: ['ws'], conns, tabs: 2,
        friends: c.friends, rate: reconnects / 2, offline: c.offline,
        dmRate: (conns / 1000) * c.dmPer1k, watchRate: (conns / 1000) * c.watchPer1k,
        desc: `${conns} conns scope ${scope}, ${c.friends} friends, ${reconnects.toFixed(1)} reconnects/s` };
    };
    for (const conns of c.conns) out.push(one(conns, 'related'));
    for (const conns of c.allConns || []) out.push(one(conns, 'all'));
  } else if (scenario === 'webhook') {
    // The dm load with the broker's webhook off, pointed at a receiver that
    // never answers, and at one that answers 204 at once: whether a hung
    // endpoint reaches the clients. Herald /ws only (the webhook is the
    // broker's; the dialect does not matter to it), the three back to back,
    // `rounds` times, so that the spread between runs of the same series is
    // there to compare the differences with.
    const w = sz.webhook || { rounds: 0 };
    for (let round = 1; round <= w.rounds; round++) {
      for (const webhook of ['off', 'hang', 'ok']) {
        out.push({ ...base, series: `wh-${webhook}`, mode: 'dm', webhook, round, heraldOnly: true, protos: ['ws'],
          conns: sz.dm.conns, tabs: 1, rate: sz.dm.rate,
          desc: `${sz.dm.conns / 2} pairs ${sz.dm.rate} DMs/s, webhook ${WEBHOOK_DESC[webhook]} (round ${round})` });
      }
    }
  }
  return out;
}

// Every run, in order: scenario by scenario, each configuration against
// each target back to back (so the figures that are compared are measured
// minutes apart, not an hour).
export function planRuns(sz, { only = SCENARIOS, targets = TARGETS } = {}) {
  const runs = [];
  for (const scenario of SCENARIOS.filter((s) => only.includes(s))) {
    for (const cfg of configs(scenario, sz)) {
      for (const t of targets.filter((x) => (!cfg.heraldOnly || x.target === 'herald') &&
        (!cfg.protos || cfg.protos.includes(x.proto)))) {
        const users = Math.ceil(cfg.conns / cfg.tabs) + (cfg.churnUsers || 0);
        runs.push({ scenario, ...t, ...cfg, users, servers: cfg.servers ?? serversFor(cfg.conns),
          procs: loadgenProcs(cfg.conns + (cfg.churnUsers || 0)) });
      }
    }
  }
  return runs;
}

// herald-loadgen's command line for `run` against `stack`.
export function loadgenArgs(run, stack, jsonPath) {
  const mode = run.mode || run.scenario;
  const a = ['--mode', mode, '--proto', run.proto, '--ports', stack.ports.join(','),
    '--secret', stack.secret, '--first-user', String(stack.firstUser),
    '--conns', String(run.conns), '--tabs', String(run.tabs), '--procs', String(run.procs),
    '--settle', String(run.settle), '--duration', String(run.duration), '--drain', String(run.drain),
    '--label', `${run.target}/${run.proto}`, '--json', jsonPath];
  if (mode === 'presence') a.push('--churn-users', String(run.churnUsers), '--rate', String(run.rate));
  if (run.scenario === 'broadcast') {
    a.push('--rate', String(run.rate), '--burst', String(run.burst), '--senders', String(run.senders));
    if (run.window) a.push('--window', String(run.window));
  }
  if (mode === 'dm') a.push('--rate', String(run.rate));
  if (mode === 'scale') {
    // Source addresses spread over 127.0.0.2..127.0.0.251 (250 of them) so
    // that no (source, gateway) pair comes near its ephemeral ports.
    a.push('--rate', String(run.rate), '--dm-rate', String(run.dmRate), '--watch-rate', String(run.watchRate),
      '--offline', String(run.offline), '--sources', '250');
  }
  for (const p of stack.measured()) a.push('--pid', `${p.name}=${p.pid}`);
  return a;
}

let currentLoadgen = null;

// ---- the store alone ---------------------------------------------------------------
//
// herald-store-bench (bench/store_bench.c): stored DMs per second through the
// broker's own store calls, per batch size. Run STORE_REPEATS times, so the
// report shows the spread (the machine may be shared).
const STORE_REPEATS = 3;
export const STORE_BATCHES = [1, 16, 64, 256];

export function runStoreBench({ bin = BIN, count, dir } = {}) {
  const out = [];
  for (let i = 0; i < STORE_REPEATS; i++) {
    const args = ['--json', '--count', String(count), '--batches', STORE_BATCHES.join(',')];
    const text = execFileSync(path.join(bin, 'herald-store-bench'), args, {
      encoding: 'utf8', env: { ...process.env, TMPDIR: dir || os.tmpdir() },
    });
    out.push(JSON.parse(text));
  }
  return out;
}

// ---- the kernel's floor --------------------------------------------------------------
//
// herald-floor-probe (bench/floor_probe.c): CPU per send() of a small message
// to each of N loopback connections and the time to the last arrival, the
// medians of `rounds` rounds, one JSON line per N.
export function runFloorProbe({ bin = BIN, conns, rounds }) {
  const text = execFileSync(path.join(bin, 'herald-floor-probe'), ['--conns', conns.join(','), '--rounds', String(rounds)],
    { encoding: 'utf8', timeout: 120000 });
  return text.trim().split('\n').map((l) => JSON.parse(l));
}

// ---- CPU of everything else -------------------------------------------------------
//
// The machine may be shared (builds, other tests) and is often a virtual
// machine. To tell a run that was disturbed from one that was not, bench
// measures how much CPU time the whole machine spent during the load
// generator's run (/proc/stat) beyond what the server processes and the load
// generator used ("other"), and how much the hypervisor stole. Kernel work
// done outside process context (softirqs on an idle CPU) counts as other
// too, so a few hundredths of a core are normal.

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux everywhere that matters
const NCPU = os.cpus().length;

// Idle and steal time of the whole machine, seconds. Busy time is derived
// as capacity minus idle: the kernel's idle time is exact (measured when a
// CPU goes idle), while its user/system counters are sampled at ticks and
// miss much of the short bursts an event loop runs in.
function machineCpu() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return { idle: (f[3] + f[4]) / CLK_TCK, steal: (f[7] || 0) / CLK_TCK };
}

// utime + stime of a process, seconds; cutime + cstime too when `children`.
function procCpu(statText, children = false) {
  const f = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
  const own = Number(f[11]) + Number(f[12]);
  return (children ? own + Number(f[13]) + Number(f[14]) : own) / CLK_TCK;
}

function serversCpu(stack) {
  let t = 0;
  for (const p of stack.measured()) {
    try { t += procCpu(fs.readFileSync(`/proc/${p.pid}/stat`, 'utf8')); } catch { /* exited */ }
  }
  return t;
}

// Runs herald-loadgen for `run` on a started stack. Resolves with its JSON
// summary (histogram left out) plus `other`, the CPU the rest of the machine
// used meanwhile; throws with what went wrong. `quiet` keeps its progress
// lines (they are returned in err.output on failure).
//
// The load generator runs under `sh`, in its own process group, so that its
// total CPU time (its workers' included) can be read from the shell's
// cutime/cstime once it has been waited for; the shell ignores SIGTERM and
// SIGINT, which the load generator handles itself (stop the phases, still
// write the summary).
export function runLoadgen(run, stack, { bin = BIN, dir, quiet = false } = {}) {
  const json = path.join(dir, `loadgen-${process.pid}-${Date.now()}.json`);
  const statFile = `${json}.stat`;
  const args = loadgenArgs(run, stack, json);
  if (quiet) args.push('--quiet');
  // Generous: a slow ramp (the reference at 60 000 connections) plus phases.
  // Scale waits up to 600 s more for the ramp's announcements to stop.
  const limit = (60 + run.conns / 100 + run.settle + run.duration + run.drain + (run.scenario === 'scale' ? 600 : 0)) * 1000;
  const script = 'trap "" TERM INT; "$0" "$@"; rc=$?; cat /proc/$$/stat > "$LG_STAT"; exit $rc';
  return new Promise((resolve, reject) => {
    const m0 = machineCpu();
    const s0 = serversCpu(stack);
    const t0 = process.hrtime.bigint();
    const child = spawn('sh', ['-c', script, path.join(bin, 'herald-loadgen'), ...args], {
      stdio: ['ignore', 'ignore', quiet ? 'pipe' : 'inherit'],
      env: { ...process.env, LG_STAT: statFile },
      detached: true,
    });
    const signal = (sig) => { try { process.kill(-child.pid, sig); } catch { /* gone */ } };
    currentLoadgen = { stop: () => signal('SIGTERM') };
    let output = '';
    if (quiet) child.stderr.on('data', (d) => { output += d; });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      signal('SIGTERM');
      setTimeout(() => signal('SIGKILL'), 15000).unref();
    }, limit);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      currentLoadgen = null;
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      const m1 = machineCpu();
      const s1 = serversCpu(stack);
      let lgCpu = null;
      try { lgCpu = procCpu(fs.readFileSync(statFile, 'utf8'), true); } catch { /* killed */ }
      let summary = null;
      try { summary = JSON.parse(fs.readFileSync(json, 'utf8')); } catch { /* none */ }
      fs.rmSync(json, { force: true });
      fs.rmSync(statFile, { force: true });
      if (summary) {
        delete summary.histogram_us;
        const steal = m1.steal - m0.steal;
        const busy = wall * NCPU - (m1.idle - m0.idle) - steal;
        const other = lgCpu === null ? null : busy - (s1 - s0) - lgCpu;
        summary.machine = {
          wall_s: wall, cpus: NCPU, busy_s: busy, steal_s: steal,
          servers_s: s1 - s0, loadgen_s: lgCpu, other_s: other,
          other_cores: other === null ? null : Math.max(0, other) / wall,
        };
      }
      if (code === 0 && summary) { resolve(summary); return; }
      const why = timedOut ? `timed out after ${limit / 1000} s` : `herald-loadgen exited with ${code ?? sig}`;
      reject(Object.assign(new Error(why), { summary, output }));
    });
  });
}

// ---- one run, the whole plan ---------------------------------------------------------

function summaryLine(rec) {
  if (!rec.ok) return `failed: ${rec.error}`;
  const d = derive(rec);
  const err = `errors ${d.errors}${d.errors ? ` (${rec.lg.last_error})` : ''}, loadgen util ${d.lgUtil.toFixed(2)}` +
    `, machine noise ${d.noise === null ? '?' : d.noise.toFixed(2)} cores`;
  switch (rec.scenario) {
    case 'idle':
      return `held ${rec.lg.held}, ${d.userKB.toFixed(2)} KB/conn user space, ${d.kernelKB.toFixed(2)} KB/conn kernel, ` +
        `${Math.round(rec.lg.handshake_rate)} handshakes/s, ${Math.round(d.hsPerCore)} per front-end CPU-s; ${err}`;
    case 'presence':
      return `${Math.round(rec.lg.recv_rate)} events/s, p50 ${d.p50.toFixed(2)} p99 ${d.p99.toFixed(2)} p999 ${d.p999.toFixed(2)} ms, ` +
        `${Math.round(d.perChange)} events per change; ${err}`;
    case 'broadcast':
      return `${Math.round(rec.lg.recv_rate)} deliveries/s, ${Math.round(d.perCpu)} per server CPU-s, p99 ${d.p99.toFixed(2)} ms, ` +
        `undelivered ${d.loss}; ${err}`;
    case 'scale':
      return `held ${rec.lg.held}/${rec.conns}, ${d.userKB.toFixed(2)} KB/conn user space, ${d.kernelKB.toFixed(2)} KB/conn kernel, ` +
        `presence p50 ${d.p50.toFixed(2)} p99 ${d.p99.toFixed(2)} p999 ${d.p999.toFixed(2)} ms, ` +
        `${Math.round(rec.lg.recv_rate)} deliveries/s, server ${d.cores.toFixed(2)} cores; ${err}`;
    case 'floor': {
      const l = rec.lg.offline_last_us || {};
      return `${Math.round(rec.lg.recv_rate)} deliveries/s, ${rec.lg.sent} transitions, offline to the last delivery ` +
        `p50 ${((l.p50 || 0) / 1000).toFixed(2)} max ${((l.max || 0) / 1000).toFixed(2)} ms over ${l.count ?? 0}; ${err}`;
    }
    case 'webhook': {
      const w = rec.webhook_metrics?.window || {};
      return `${Math.round(rec.lg.recv_rate)} DMs/s, p50 ${d.p50.toFixed(2)} p99 ${d.p99.toFixed(2)} ms, lost ${d.loss}; ` +
        `webhook in the window: ${w.events ?? '?'} events, ${w.batches ?? '?'} batches, ${w.failures ?? '?'} failures; ${err}`;
    }
    default:
      return `${Math.round(rec.lg.recv_rate)} DMs/s, p50 ${d.p50.toFixed(2)} p99 ${d.p99.toFixed(2)} ms, lost ${d.loss}; ${err}`;
  }
}

// Starts a stack for `run`, runs the load generator, stops the stack.
// Always resolves with a record: {...run, ok, error?, lg?, problems}.
export async function runOnce(run, { bin = BIN, logDir, quiet = false, session, sizes } = {}) {
  const rec = { ...run, session, sizes, at: new Date().toISOString(), ok: false };
  fs.mkdirSync(logDir, { recursive: true });
  let stack = null;
  let receiver = null;
  let sampler = null;
  try {
    const env = run.dmStore ? { HERALD_DM_STORE: run.dmStore } : {};
    if (run.scope) env.HERALD_PRESENCE_SCOPE = run.scope; // broker and gateways alike
    if (run.webhook) {
      // Every webhook run has the admin port, the one without a webhook too
      // (same broker work for /metrics in all three series).
      env.HERALD_ADMIN_LISTEN = `127.0.0.1:${await freePort()}`;
      if (run.webhook !== 'off') {
        receiver = await startReceiver(run.webhook);
        env.HERALD_WEBHOOK_URL = receiver.url;
        env.HERALD_WEBHOOK_SECRET = WEBHOOK_SECRET;
      }
    }
    stack = await startStack(run.target, { servers: run.servers, users: run.users, friends: run.friends || 0, logDir, bin, secret: SECRET, env });
    if (run.webhook) sampler = startWebhookSampler(`http://${env.HERALD_ADMIN_LISTEN}`);
    const t0 = Date.now();
    try {
      rec.lg = await runLoadgen(run, stack, { bin, dir: logDir, quiet });
      rec.ok = true;
    } finally {
      if (sampler) rec.webhook_metrics = await webhookWindow(sampler, run, rec.lg, t0, stack);
    }
  } catch (e) {
    rec.error = e.message;
    if (e.summary) rec.lg = e.summary;
    if (e.output) rec.output = e.output.split('\n').slice(-15).join('\n');
  }
  if (stack) {
    rec.problems = await stack.stop();
    if (rec.problems.length && !quiet) process.stderr.write(`  stack: ${rec.problems.join('\n  ')}\n`);
  }
  if (receiver) {
    await receiver.stop();
    rec.receiver = receiver.summary();
  }
  return rec;
}

// ---- the webhook runs ----------------------------------------------------------------
//
// The broker's webhook counters (GET /metrics on its admin port) sampled
// every SAMPLE_MS while the load generator runs, so that the report can give
// their growth over the measurement window alone: the window is placed from
// herald-loadgen's summary (ramp_s, then the settle period, then measure_s
// from the start of its process), and the counters are interpolated between
// the two samples around each end.
const WEBHOOK_SECRET = 'herald-benchmark-webhook-secret';
const SAMPLE_MS = 200;
const WH_METRICS = {
  events: 'herald_broker_webhook_events_total',
  batches: 'herald_broker_webhook_batches_total',
  failures: 'herald_broker_webhook_failures_total',
  dropped: 'herald_broker_webhook_dropped_total',
  inflight: 'herald_broker_webhook_inflight',
};

async function webhookCounters(adminUrl) {
  const m = await metrics(adminUrl);
  const out = { t: Date.now() };
  for (const [k, name] of Object.entries(WH_METRICS)) out[k] = m.get(name) ?? null;
  return out;
}

function startWebhookSampler(adminUrl) {
  const s = { adminUrl, samples: [], errors: 0, stopped: false };
  s.done = (async () => {
    while (!s.stopped) {
      try { s.samples.push(await webhookCounters(adminUrl)); } catch { s.errors++; }
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
    }
  })();
  return s;
}

// Counter k at time t (ms), linear between the samples around it.
function counterAt(samples, k, t) {
  const xs = samples.filter((x) => x[k] !== null);
  if (!xs.length) return null;
  if (t <= xs[0].t) return xs[0][k];
  for (let i = 1; i < xs.length; i++) {
    if (xs[i].t >= t) {
      const a = xs[i - 1], b = xs[i];
      return b.t === a.t ? b[k] : a[k] + ((b[k] - a[k]) * (t - a.t)) / (b.t - a.t);
    }
  }
  return xs[xs.length - 1][k];
}

// Stops the sampler; returns {window: {s, events, batches, failures,
// dropped}, total: {...}, rss_kb_end: {broker, redis}, samples, sample_errors}.
async function webhookWindow(sampler, run, lg, t0, stack) {
  sampler.stopped = true;
  await sampler.done;
  const out = { samples: sampler.samples.length, sample_errors: sampler.errors };
  try { out.total = await webhookCounters(sampler.adminUrl); } catch (e) { out.error = e.message; }
  const rss = {};
  for (const p of stack.measured().filter((x) => x.name === 'broker' || x.name === 'redis')) {
    try { rss[p.name] = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${p.pid}/status`, 'utf8'))[1]); } catch { /* gone */ }
  }
  out.rss_kb_end = rss;
  if (lg && lg.measure_s > 0) {
    const start = t0 + (lg.ramp_s + run.settle) * 1000;
    const end = start + lg.measure_s * 1000;
    out.window = { s: lg.measure_s };
    for (const k of ['events', 'batches', 'failures', 'dropped']) {
      const a = counterAt(sampler.samples, k, start), b = counterAt(sampler.samples, k, end);
      out.window[k] = a === null || b === null ? null : b - a;
    }
  }
  return out;
}

// ---- the webhook sender alone ----------------------------------------------------------
//
// Redis and a broker (no gateways) with the webhook on and a 204 receiver;
// once the broker has created its group on herald:hooks, `n` hook entries
// are appended at once (redis-cli --pipe) and the receiver times the first
// to the n-th event: events/s the sender delivers while it drains a backlog,
// one request in flight, `batch` events per POST.
export const WEBHOOK_STREAM = 'herald:hooks';

function respCommand(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return out;
}

export async function runWebhookThroughput({ bin = BIN, n, batch, logDir }) {
  fs.mkdirSync(logDir, { recursive: true });
  const rec = { n, batch, ok: false };
  const receiver = await startReceiver('ok');
  let stack = null;
  try {
    const admin = `127.0.0.1:${await freePort()}`;
    stack = await startHerald({
      servers: 0, users: 0, logDir, bin, secret: SECRET,
      env: {
        HERALD_ADMIN_LISTEN: admin, HERALD_WEBHOOK_URL: receiver.url, HERALD_WEBHOOK_SECRET: WEBHOOK_SECRET,
        HERALD_WEBHOOK_BATCH: String(batch), HERALD_HOOKS_MAXLEN: String(n + 100000),
      },
    });
    await waitFor(() => redisCli(stack.redisPort, 'XINFO', 'GROUPS', WEBHOOK_STREAM).includes('herald-webhook'),
      { what: 'the broker\'s group herald-webhook on herald:hooks', timeout: 15000, interval: 20 });
    const now = Date.now();
    const chunks = [];
    for (let i = 0; i < n; i++) {
      const d = JSON.stringify({ id: i + 1, userId: 1 + (i % 1000), user: `lg${1 + (i % 1000)}`, message: `webhook bench ${i}`, ts: now });
      chunks.push(respCommand(['XADD', WEBHOOK_STREAM, '*', 't', 'livechat', 'd', d, 'ts', String(now)]));
    }
    const input = chunks.join('');
    const pid = (name) => stack.measured().find((p) => p.name === name).pid;
    const cpuOf = (name) => procCpu(fs.readFileSync(`/proc/${pid(name)}/stat`, 'utf8'));
    const cpu0 = { broker: cpuOf('broker'), redis: cpuOf('redis') };
    const t0 = process.hrtime.bigint();
    const piped = await new Promise((resolve, reject) => {
      const c = spawn('redis-cli', ['-p', String(stack.redisPort), '--pipe'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      c.stdout.on('data', (x) => { out += x; });
      c.stderr.on('data', (x) => { out += x; });
      c.on('error', reject);
      c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`redis-cli --pipe exited ${code}: ${out}`))));
      c.stdin.end(input);
    });
    const tAppended = process.hrtime.bigint();
    const m = /errors: (\d+), replies: (\d+)/.exec(piped);
    if (!m || Number(m[1]) !== 0 || Number(m[2]) !== n) throw new Error(`redis-cli --pipe: ${piped.trim()}`);
    // Generous: at 2 000 events/s (a tenth of what it does here) plus a minute.
    await receiver.waitEvents(n, 60000 + n / 2);
    const cpu1 = { broker: cpuOf('broker'), redis: cpuOf('redis') };
    const span = Number(receiver.lastAt - receiver.firstAt) / 1e9;
    const total = await webhookCounters(`http://${admin}`);
    Object.assign(rec, {
      received: receiver.events, requests: receiver.requests, out_of_order: receiver.outOfOrder,
      first_batch: receiver.firstBatch,
      append_s: Number(tAppended - t0) / 1e9,
      first_s: Number(receiver.firstAt - t0) / 1e9,
      last_s: Number(receiver.lastAt - t0) / 1e9,
      span_s: span,
      // The first batch arrives at firstAt: the rest took the span.
      events_per_s: span > 0 ? (n - receiver.firstBatch) / span : null,
      cpu_s: { broker: cpu1.broker - cpu0.broker, redis: cpu1.redis - cpu0.redis },
      metrics: total,
    });
    rec.ok = receiver.events === n && receiver.outOfOrder === 0 && total.events === n && total.failures === 0;
    if (!rec.ok) {
      rec.error = `received ${receiver.events} of ${n}, ${receiver.outOfOrder} out of order, broker counted ` +
        `${total.events} delivered and ${total.failures} failures`;
    }
  } catch (e) {
    rec.error = e.message;
  }
  if (stack) rec.problems = await stack.stop();
  await receiver.stop();
  if (rec.problems?.length) { rec.ok = false; rec.error = rec.error || rec.problems.join('; '); }
  return rec;
}

const HELP = `usage: node bench/bench.mjs [options]   (or scripts/bench)

Runs the benchmark scenarios against Herald (/ws and Socket.IO) and the
reference Socket.IO v4 server (bench/reference/) at the same sizes, writes the
raw results and then the report with its plots.

  --quick              small sizes, 4 s measurements (the whole run takes about 7 min)
  --only S[,S...]      scenarios to run: ${SCENARIOS.join(', ')} (default: all);
                       the results of the others are kept from the results file
  --target T           herald, reference or both (default both)
  --results FILE       raw results JSON [docs/bench/results.json]
  --report FILE        the report [docs/BENCHMARKS.md]; plots go to
                       <its directory>/bench/
  --keep-logs          keep the process logs even when every run succeeded
  --help               this text

Scenarios (sizes in bench/bench.mjs, SIZES):
  idle       ramp to N idle authenticated connections; user-space RSS per
             connection of each server process, kernel socket memory,
             handshakes/s and handshakes per front-end CPU-second
  presence   watchers connected; users connect/disconnect at a fixed rate;
             latency from each change to the watchers' status event
  broadcast  live chat to N recipients at fixed rates, at saturation and in
             bursts; deliveries/s and deliveries per server CPU-second
  dm         pairs of users on different server processes exchange DMs;
             latency and loss; Herald also with DM storage off (the cost
             of storing per DM)
  webhook    the dm load (Herald /ws) with the broker's webhook off, pointed
             at a receiver that never answers, and at a 204 receiver, back to
             back; then the sender alone: events/s drained from a backlog of
             hook entries to a 204 receiver, per batch size
  floor      the kernel's floor: CPU per send() to each of N loopback
             connections (herald-floor-probe) against one Herald gateway
             fanning one transition out to N connections (scope all)
  store      stored DMs/s into the broker's SQLite store alone
             (herald-store-bench), per transaction size
  scale      Herald /ws at up to 100 000 connections: users with 1-3 tabs
             and ~50 friends, 20-minute sessions, DMs and profile watches,
             scope related; then scope all at smaller sizes. Connections
             held, memory per connection, presence latency from each
             transition to each related watcher, deliveries/s, server CPU

Progress: one line per run on stderr, then herald-loadgen's own lines. At the
end the tables of the scenarios that ran are printed on stdout. Binaries come
from $HERALD_BIN_DIR (default build/).
`;

async function main() {
  let o;
  try {
    ({ values: o } = parseArgs({
      options: {
        quick: { type: 'boolean' },
        only: { type: 'string' },
        target: { type: 'string', default: 'both' },
        results: { type: 'string', default: path.join(ROOT, 'docs/bench/results.json') },
        report: { type: 'string', default: path.join(ROOT, 'docs/BENCHMARKS.md') },
        'keep-logs': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`bench: ${e.message}\n\n${HELP}`);
    process.exit(2);
  }
  if (o.help) {
    process.stdout.write(HELP);
    return;
  }
  const only = o.only ? o.only.split(',').map((s) => s.trim()).filter(Boolean) : SCENARIOS;
  for (const s of only) {
    if (!SCENARIOS.includes(s)) {
      process.stderr.write(`bench: unknown scenario ${s} (${SCENARIOS.join(', ')})\n`);
      process.exit(2);
    }
  }
  if (!['herald', 'reference', 'both'].includes(o.target)) {
    process.stderr.write('bench: --target is herald, reference or both\n');
    process.exit(2);
  }
  const targets = TARGETS.filter((t) => o.target === 'both' || t.target === o.target);
  const sizes = o.quick ? 'quick' : 'full';
  const runs = planRuns(SIZES[sizes], { only, targets });
  const session = new Date().toISOString();
  const logRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-bench-logs-'));
  const t0 = Date.now();

  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\nbench: interrupted; stopping the current run\n');
    if (currentLoadgen) currentLoadgen.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // The binaries of this session, copied once: every run measures the same
  // build even if build/ is rebuilt meanwhile (and a run never starts a
  // binary that is being written).
  const bin = path.join(logRoot, 'bin');
  fs.mkdirSync(bin);
  for (const b of ['herald-gateway', 'herald-broker', 'herald-admin', 'herald-loadgen', 'herald-store-bench', 'herald-floor-probe']) {
    if (b === 'herald-store-bench' && !only.includes('store')) continue;
    if (b === 'herald-floor-probe' && !only.includes('floor')) continue;
    fs.copyFileSync(path.join(BIN, b), path.join(bin, b));
    fs.chmodSync(path.join(bin, b), 0o755);
  }
  process.stderr.write(`bench: ${runs.length} runs (${sizes} sizes); binaries from ${BIN}; process logs in ${logRoot}\n`);
  const records = [];
  // Runs disturbed by the rest of the machine are done again once, at most
  // this many per session (so a busy machine cannot double the run time, and
  // --quick stays around 7 minutes).
  const maxRetries = o.quick ? 2 : Math.ceil(runs.length / 10);
  let retries = 0;
  // Scale in scope all: sizes ascending; past the first that did not keep up
  // the larger ones are skipped (their ramp alone is O(conns²) deliveries).
  let allFailedAt = null;
  for (let i = 0; i < runs.length && !interrupted; i++) {
    const run = runs[i];
    if (run.scenario === 'scale' && run.scope === 'all' && allFailedAt !== null) {
      process.stderr.write(`[${i + 1}/${runs.length}] ${run.scenario} ${run.desc}: skipped (scope all did not keep up at ` +
        `${allFailedAt} conns)\n`);
      records.push({ ...run, session, sizes, ok: false, skipped: true, error: `skipped: scope all did not keep up at ${allFailedAt} conns` });
      continue;
    }
    process.stderr.write(`[${i + 1}/${runs.length}] ${run.scenario} ${run.target}/${run.proto} ${run.desc} ` +
      `(${run.servers} ${run.target === 'herald' ? 'gateways' : 'processes'}) ...\n`);
    const slug = `${String(i + 1).padStart(2, '0')}-${run.scenario}-${run.target}-${run.proto}-${run.conns}`;
    let rec = await runOnce(run, { logDir: path.join(logRoot, slug), session, sizes, bin });
    process.stderr.write(`[${i + 1}/${runs.length}]   ${summaryLine(rec)}\n`);
    const noise = rec.ok ? derive(rec).noise : null;
    if (noise > NOISE_FLAG && retries < maxRetries && !interrupted) {
      retries++;
      process.stderr.write(`[${i + 1}/${runs.length}]   machine noise ${noise.toFixed(2)} cores (other processes, ` +
        `hypervisor steal): running it again (${retries}/${maxRetries})\n`);
      const again = await runOnce(run, { logDir: path.join(logRoot, `${slug}-again`), session, sizes, bin });
      process.stderr.write(`[${i + 1}/${runs.length}]   ${summaryLine(again)}\n`);
      // Keep the quieter of the two.
      if (again.ok && derive(again).noise < noise) {
        again.noise_before_retry = noise;
        rec = again;
      } else {
        rec.noise_after_retry = again.ok ? derive(again).noise : null;
      }
    }
    if (rec.scenario === 'scale' && rec.scope === 'all' && !scaleKeptUp(rec)) allFailedAt = rec.conns;
    records.push(rec);
  }
  let webhook = null;
  if (only.includes('webhook') && o.target !== 'reference' && !interrupted) {
    const w = SIZES[sizes].webhook;
    webhook = { session, sizes, at: new Date().toISOString(), ok: true, runs: [] };
    for (let rep = 1; rep <= w.repeats && !interrupted; rep++) {
      for (const batch of w.batches) {
        process.stderr.write(`webhook: ${w.throughput} hook entries drained to a 204 receiver, batch ${batch} ` +
          `(${rep}/${w.repeats}) ...\n`);
        const r = await runWebhookThroughput({ bin, n: w.throughput, batch, logDir: path.join(logRoot, `webhook-throughput-${batch}-${rep}`) });
        r.repeat = rep;
        webhook.runs.push(r);
        process.stderr.write(r.ok ? `webhook:   ${Math.round(r.events_per_s)} events/s, ${r.requests} requests, ` +
          `appended in ${r.append_s.toFixed(2)} s, last event at ${r.last_s.toFixed(2)} s\n` : `webhook:   failed: ${r.error}\n`);
        if (!r.ok) webhook.ok = false;
      }
    }
  }
  let store = null;
  if (only.includes('store') && o.target !== 'reference' && !interrupted) {
    process.stderr.write(`store: herald-store-bench, ${SIZES[sizes].store.count} DMs per batch size, ` +
      `${STORE_REPEATS} times ...\n`);
    try {
      store = { session, sizes, at: new Date().toISOString(), ok: true,
        runs: runStoreBench({ bin, count: SIZES[sizes].store.count, dir: logRoot }) };
      for (const b of STORE_BATCHES) {
        const rates = store.runs.map((r) => Math.round(r.sizes.find((x) => x.batch === b)?.dms_per_s ?? 0));
        process.stderr.write(`store:   batch ${b}: ${rates.join(', ')} DMs/s\n`);
      }
    } catch (e) {
      store = { session, sizes, ok: false, error: e.message };
      process.stderr.write(`store: failed: ${e.message}\n`);
    }
  }
  let floor = null;
  if (only.includes('floor') && o.target !== 'reference' && !interrupted) {
    const f = SIZES[sizes].floor;
    process.stderr.write(`floor: herald-floor-probe --conns ${f.conns.join(',')} --rounds ${f.rounds} ...\n`);
    try {
      floor = { session, sizes, at: new Date().toISOString(), ok: true, runs: runFloorProbe({ bin, conns: f.conns, rounds: f.rounds }) };
      for (const r of floor.runs) {
        process.stderr.write(`floor:   ${r.conns} conns: ${r.send_cpu_us.toFixed(2)} CPU-µs per send, last arrival ` +
          `${r.last_ms.toFixed(2)} ms\n`);
      }
    } catch (e) {
      floor = { session, sizes, ok: false, error: e.message };
      process.stderr.write(`floor: failed: ${e.message}\n`);
    }
  }
  const wall = (Date.now() - t0) / 1000;

  // Keep what this session did not run (other scenarios or targets).
  let previous = { runs: [] };
  try { previous = JSON.parse(fs.readFileSync(o.results, 'utf8')); } catch { /* first run */ }
  const ranHere = (r) => only.includes(r.scenario) && targets.some((t) => t.target === r.target && t.proto === r.proto);
  const kept = (previous.runs || []).filter((r) => !ranHere(r));
  const all = [...kept, ...records].sort((a, b) => SCENARIOS.indexOf(a.scenario) - SCENARIOS.indexOf(b.scenario));
  const sessions = { ...(previous.meta?.sessions || {}), [session]: { sizes, wall_s: wall, only, target: o.target } };
  const storeSession = (store || previous.store)?.session;
  const webhookSession = (webhook || previous.webhook_throughput)?.session;
  const floorSession = (floor || previous.floor_probe)?.session;
  for (const s of Object.keys(sessions)) {
    if (!all.some((r) => r.session === s) && s !== storeSession && s !== webhookSession && s !== floorSession) delete sessions[s];
  }
  const results = {
    meta: { ...machineInfo(), session, sizes, wall_s: wall, herald_env: benchEnvShown(),
      command: `node bench/bench.mjs ${process.argv.slice(2).join(' ')}`.trim(), sessions },
    sizes: SIZES,
    runs: all,
    store: store || previous.store,
    webhook_throughput: webhook || previous.webhook_throughput,
    floor_probe: floor || previous.floor_probe,
  };
  fs.mkdirSync(path.dirname(o.results), { recursive: true });
  fs.writeFileSync(o.results, `${JSON.stringify(results, null, 1)}\n`);
  await writeReport(results, o.report, o.results);
  process.stdout.write(scenarioMarkdown(results, only));
  const failed = [...records.filter((r) => !r.ok && !r.skipped), ...(store && !store.ok ? [store] : []),
    ...(floor && !floor.ok ? [floor] : []),
    ...(webhook ? webhook.runs.filter((r) => !r.ok) : [])];
  process.stderr.write(`bench: ${records.length} runs in ${(wall / 60).toFixed(1)} min, ${failed.length} failed; ` +
    `results ${path.relative(process.cwd(), o.results)}, report ${path.relative(process.cwd(), o.report)}\n`);
  if (failed.length || o['keep-logs']) process.stderr.write(`bench: process logs kept in ${logRoot}\n`);
  else fs.rmSync(logRoot, { recursive: true, force: true });
  process.exitCode = failed.length || interrupted ? 1 : 0;
}

// The Herald settings of the runs, for the report (the secret left out).
function benchEnvShown() {
  const env = { ...heraldBenchEnv() };
  delete env.HERALD_JWT_SECRET;
  return env;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(`bench: ${e.stack || e.message}\n`);
    process.exit(1);
  });
}
