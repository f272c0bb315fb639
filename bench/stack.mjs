// bench/stack.mjs - starts and stops the server side of one benchmark run:
// either a Herald stack (redis-server, broker, G gateways) or the reference
// stack (redis-server, G Socket.IO processes of bench/reference/server.js),
// each on free ports, with users lg<id> created for the load generator.
//
// Why a fresh stack per run: every figure the report prints is a difference
// between two samples of the same processes (RSS, CPU time), and presence
// state left over from an earlier run (users still going offline, a broker
// still draining) would leak into the next one. Starting costs about a
// second.
//
// Processes are stopped by pid (SIGTERM, then SIGKILL after a grace period),
// never by name. Every child this module starts is also killed when the Node
// process exits, so an interrupted benchmark leaves nothing behind.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from '../tests/integration/harness.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// Same rule as the integration harness: $HERALD_BIN_DIR, else build/.
export const BIN = process.env.HERALD_BIN_DIR || path.join(ROOT, 'build');
export const SECRET = 'herald-benchmark-secret-0123456789abcdef';
// The hard limit on open files of one process on the benchmark machine;
// each server process is given at most SERVER_CONNS connections (the rest of
// its descriptors: listeners, Redis, logs).
export const FD_LIMIT = 20000;
export const SERVER_CONNS = 19000;
// The broker's heartbeat key (broker/bk_lead.c), which gateways read.
const BROKER_ALIVE_KEY = 'herald:broker:alive';

// How many gateways (Herald) or Socket.IO processes (reference) serve
// `conns` connections: two, so that cross-process delivery is always part of
// the measurement, or more when one process could not hold its share.
export function serversFor(conns) {
  return Math.max(2, Math.ceil(conns / SERVER_CONNS));
}

// Every Herald setting the benchmarks change from the defaults, in one place.
// Limits meant for hostile clients are switched off: the load generator opens
// thousands of connections from 32 loopback addresses and one user sends
// thousands of messages per second. Besides those named here, every
// per-address option that `herald-gateway --help` says 0 disables is set to
// 0 (perIpOverrides), so a limit added later does not skew the figures
// unnoticed.
export function heraldBenchEnv(secret = SECRET, bin = BIN) {
  return {
    HERALD_JWT_SECRET: secret,
    HERALD_LOG_LEVEL: 'warn',
    HERALD_PRESENCE_GRACE_MS: '0', // every change is announced at once (the reference has no grace)
    HERALD_CONNS_PER_IP: '0',
    HERALD_CONN_RATE_PER_IP: '0',
    HERALD_CHAT_RATE: '100000', // the broker's per-user bucket: its largest allowed value
    HERALD_CHAT_BURST: '100000',
    HERALD_CHAT_RATE_PER_IP: '0', // the gateway's per-address chat bucket (0: no limit)
    ...perIpOverrides(bin),
  };
}

let perIpCache = null;
// Reads `herald-gateway --help` and returns {ENV: '0'} for every per-address
// option (e.g. a chat rate per IP) whose help says that 0 means no limit.
export function perIpOverrides(bin = BIN) {
  if (perIpCache) return perIpCache;
  perIpCache = {};
  let help = '';
  try {
    help = execFileSync(path.join(bin, 'herald-gateway'), ['--help'], { encoding: 'utf8' });
  } catch (e) {
    help = e.stdout || '';
  }
  // Each option: "  --name   description" then "  [HERALD_X; default: ...]".
  const re = /^\s+--(\S+)\s+(.*)\n\s+\[(HERALD_\w+);/gm;
  for (const m of help.matchAll(re)) {
    const [, , desc, env] = m;
    if (/PER_IP/.test(env) && /\b0: (no limit|off|unlimited)/.test(desc)) perIpCache[env] = '0';
  }
  return perIpCache;
}

// ---- processes ---------------------------------------------------------------

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});

// One child process, output appended to logDir/name.log. onLine (optional)
// sees each stdout line.
class Proc {
  constructor(name, cmd, args, { env = {}, logDir, onLine } = {}) {
    this.name = name;
    this.log = path.join(logDir, `${name}.log`);
    const fd = fs.openSync(this.log, 'a');
    this.child = spawn(cmd, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', onLine ? 'pipe' : fd, fd],
    });
    fs.closeSync(fd);
    if (onLine) {
      let buf = '';
      this.child.stdout.on('data', (d) => {
        try { fs.appendFileSync(this.log, d); } catch { /* log directory removed under us */ }
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    }
    this.exitInfo = null;
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, sig) => {
        this.exitInfo = { code, sig };
        live.delete(this);
        resolve(this.exitInfo);
      });
      this.child.on('error', (e) => {
        this.exitInfo = { code: null, sig: null, error: e.message };
        live.delete(this);
        resolve(this.exitInfo);
      });
    });
    live.add(this);
  }

  get pid() { return this.child.pid; }
  get running() { return this.exitInfo === null; }

  // SIGTERM, SIGKILL after `grace` ms; resolves with {code, sig}.
  async stop(grace = 10000) {
    if (!this.running) return this.exitInfo;
    try { process.kill(this.pid, 'SIGTERM'); } catch { /* raced with exit */ }
    const t = setTimeout(() => { try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ } }, grace);
    const info = await this.exited;
    clearTimeout(t);
    return info;
  }

  tail(n = 20) {
    try { return fs.readFileSync(this.log, 'utf8').split('\n').slice(-n).join('\n'); } catch { return ''; }
  }
}

export function redisCli(port, ...args) {
  return execFileSync('redis-cli', ['-p', String(port), ...args], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'],
  }).trim();
}

async function startRedis(stack) {
  const port = await freePort();
  const p = new Proc('redis', 'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', stack.dir],
    { logDir: stack.logDir });
  stack.procs.push(p);
  await waitFor(() => {
    if (!p.running) throw new Error(`redis-server exited: ${p.tail()}`);
    return redisCli(port, 'PING') === 'PONG';
  }, { what: 'redis-server', timeout: 10000 });
  stack.redisPort = port;
  stack.redisUrl = `redis://127.0.0.1:${port}`;
}

// A started stack: what the load generator needs (ports, first user id,
// the pids to measure) and stop().
class BenchStack {
  constructor(target, { servers, logDir, bin, secret }) {
    this.target = target;
    this.servers = servers;
    this.bin = bin;
    this.secret = secret;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `herald-bench-${target}-`));
    this.logDir = logDir || this.dir;
    fs.mkdirSync(this.logDir, { recursive: true });
    this.procs = [];
    this.ports = [];
    this.firstUser = 1;
  }

  // [{name, pid}] of every server process, Redis included: what
  // herald-loadgen samples with --pid NAME=PID.
  measured() {
    return this.procs.map((p) => ({ name: p.name, pid: p.pid }));
  }

  // Stops everything, front ends first, Redis last. Returns a list of
  // problems (a Herald process that did not exit 0 after SIGTERM: under a
  // sanitizer build that is a leak or UB report), empty when clean.
  async stop() {
    const problems = [];
    const tiers = [
      this.procs.filter((p) => p.name !== 'redis' && p.name !== 'broker'),
      this.procs.filter((p) => p.name === 'broker'),
      this.procs.filter((p) => p.name === 'redis'),
    ];
    for (const tier of tiers) {
      await Promise.all(tier.map(async (p) => {
        const wasRunning = p.running;
        const info = await p.stop();
        if (p.name !== 'redis' && (!wasRunning || info.code !== 0)) {
          problems.push(`${p.name} ${wasRunning ? 'exited with' : 'had already exited with'} ` +
            `${info.code ?? info.sig}; log ${p.log}:\n${p.tail(15)}`);
        }
      }));
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    return problems;
  }
}

// Herald: redis-server, `herald-admin init` and `user bulk lg USERS`, the
// broker and `servers` gateways, all with heraldBenchEnv(). `friends` (K > 0)
// puts the users on a friendship ring, ~K friends each (`herald-admin friend
// bulk`). Resolves when every gateway answers /healthz 200 (which needs the
// broker alive).
export async function startHerald({ servers = 2, users = 0, friends = 0, logDir, bin = BIN, secret = SECRET, env = {} } = {}) {
  const s = new BenchStack('herald', { servers, logDir, bin, secret });
  try {
    await startRedis(s);
    const db = path.join(s.dir, 'herald.db');
    const admin = (...args) => execFileSync(path.join(bin, 'herald-admin'), ['--db', db, ...args], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
    admin('init');
    if (users > 0) {
      s.firstUser = Number(admin('user', 'bulk', 'lg', String(users)).split('\n').pop());
      if (!(s.firstUser > 0)) throw new Error('herald-admin user bulk printed no first id');
      if (friends > 0) s.friendPairs = Number(admin('friend', 'bulk', String(s.firstUser), String(users), String(friends)));
    }
    const common = { ...heraldBenchEnv(secret, bin), HERALD_REDIS_URL: s.redisUrl, HERALD_DB: db,
      HERALD_WEB_ROOT: path.join(ROOT, 'web'), ...env };
    const broker = new Proc('broker', path.join(bin, 'herald-broker'), [], { env: common, logDir: s.logDir });
    s.procs.push(broker);
    // A gateway reports healthy once it has seen the broker's heartbeat key,
    // which it reads at start and then every lease/5 (2 s): starting the
    // gateways after the broker's first beat saves those 2 s per run.
    await waitFor(() => {
      if (!broker.running) throw new Error(`broker exited: ${broker.tail()}`);
      return redisCli(s.redisPort, 'EXISTS', BROKER_ALIVE_KEY) === '1';
    }, { what: 'broker heartbeat', timeout: 10000, interval: 20 });
    const gws = [];
    for (let i = 1; i <= servers; i++) {
      const port = await freePort();
      const name = `gw${i}`;
      const p = new Proc(name, path.join(bin, 'herald-gateway'), [], {
        env: { ...common, HERALD_GATEWAY_ID: `bench-${name}`, HERALD_LISTEN: `127.0.0.1:${port}` },
        logDir: s.logDir,
      });
      s.procs.push(p);
      s.ports.push(port);
      gws.push({ p, port });
    }
    await Promise.all(gws.map(({ p, port }) => waitFor(async () => {
      if (!p.running) throw new Error(`${p.name} exited: ${p.tail()}`);
      if (!broker.running) throw new Error(`broker exited: ${broker.tail()}`);
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      return r.status === 200;
    }, { what: `${p.name} healthy`, timeout: 20000, interval: 50 })));
    return s;
  } catch (e) {
    await s.stop().catch(() => {});
    throw e;
  }
}

// The reference: redis-server, a users file [{id, username}] with the same
// ids and names Herald's bulk command makes (lg<id> from 1), and `servers`
// processes of bench/reference/server.js on one Redis. Resolves when each
// has printed "listening <port>" (its adapter reads the Redis stream).
export async function startReference({ servers = 2, users = 0, logDir, secret = SECRET, firstUser = 1, bin = BIN } = {}) {
  const s = new BenchStack('reference', { servers, logDir, bin, secret });
  try {
    await startRedis(s);
    s.firstUser = firstUser;
    const list = [];
    for (let id = firstUser; id < firstUser + users; id++) list.push({ id, username: `lg${id}` });
    const usersFile = path.join(s.dir, 'users.json');
    fs.writeFileSync(usersFile, JSON.stringify(list));
    const starts = [];
    for (let i = 1; i <= servers; i++) {
      const name = `ref${i}`;
      let resolvePort;
      const port = new Promise((r) => { resolvePort = r; });
      const p = new Proc(name, process.execPath,
        [path.join(ROOT, 'bench/reference/server.js'), '--port', '0', '--redis-url', s.redisUrl,
          '--users', usersFile, '--name', name],
        {
          env: { HERALD_JWT_SECRET: secret }, logDir: s.logDir,
          onLine: (l) => { const m = /^listening (\d+)/.exec(l); if (m) resolvePort(Number(m[1])); },
        });
      s.procs.push(p);
      starts.push(Promise.race([
        port,
        p.exited.then(() => { throw new Error(`${name} exited: ${p.tail()}`); }),
        new Promise((_, rej) => setTimeout(() => rej(new Error(`${name}: no "listening" within 20 s`)), 20000).unref()),
      ]));
    }
    s.ports = await Promise.all(starts);
    return s;
  } catch (e) {
    await s.stop().catch(() => {});
    throw e;
  }
}

export function startStack(target, opts) {
  return target === 'herald' ? startHerald(opts) : startReference(opts);
}
