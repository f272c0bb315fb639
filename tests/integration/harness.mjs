// harness.mjs - starts a real Herald stack for a test: redis-server on a
// free port, a temporary SQLite database with demo users, the broker and two
// gateways (each on its own free port), and stops it again by pid.
//
// Binaries come from $HERALD_BIN_DIR (default build/). Process logs go to
// $HERALD_TEST_OUT/<stack name>/ (default tests/out/). At stop, every Herald
// process must exit 0 after SIGTERM: a sanitizer report (leak, UB) makes its
// exit code non-zero and fails the test that owns the stack.
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { io } from 'socket.io-client';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.HERALD_BIN_DIR || path.join(ROOT, 'build');
const OUT = process.env.HERALD_TEST_OUT || path.join(ROOT, 'tests/out');
export const SECRET = 'integration-test-secret-0123456789';

// A port nobody listens on now, never one this process handed out before:
// the kernel may give the same free port to two quick asks (a broker's admin
// port and a gateway's once collided that way, and the gateway never came up).
const portsGiven = new Set();
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.on('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const { port: p } = s.address();
        s.close(() => resolve(p));
      });
    });
    if (!portsGiven.has(port)) {
      portsGiven.add(port);
      return port;
    }
  }
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// Signs an HS256 token the way an application backend would.
export function makeToken(userId, { ttl = 3600, secret = SECRET, alg = 'HS256', claims = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg, typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub: String(userId), iat: now, exp: now + ttl, ...claims }));
  const sig = crypto.createHmac('sha256', secret).update(`${header}.${body}`).digest();
  return `${header}.${body}.${b64url(sig)}`;
}

async function waitFor(fn, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}
export { waitFor };

// A process whose output goes to <logDir>/<name>.log; spawnOpts are
// child_process.spawn options (uid, gid, cwd).
export class Proc {
  constructor(name, cmd, args, env, logDir, spawnOpts = {}) {
    this.name = name;
    this.log = path.join(logDir, `${name}.log`);
    const fd = fs.openSync(this.log, 'a');
    this.child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd], ...spawnOpts });
    fs.closeSync(fd);
    this.exited = new Promise((resolve) => this.child.on('exit', (code, sig) => resolve({ code, sig })));
    this.exitInfo = null;
    this.exited.then((i) => { this.exitInfo = i; });
  }
  get pid() { return this.child.pid; }
  get running() { return this.exitInfo === null; }
  kill(sig = 'SIGTERM') { if (this.running) process.kill(this.pid, sig); }
  async stop(timeout = 8000) {
    if (!this.running) return this.exitInfo;
    this.kill('SIGTERM');
    const t = setTimeout(() => this.kill('SIGKILL'), timeout);
    const info = await this.exited;
    clearTimeout(t);
    return info;
  }
  tail(n = 30) {
    try { return fs.readFileSync(this.log, 'utf8').split('\n').slice(-n).join('\n'); } catch { return ''; }
  }
}

export class Stack {
  constructor(name, opts = {}) {
    this.name = name;
    this.opts = opts;
    this.procs = [];
    this.gateways = [];
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `herald-${name}-`));
    this.logDir = path.join(OUT, name);
    fs.rmSync(this.logDir, { recursive: true, force: true });
    fs.mkdirSync(this.logDir, { recursive: true });
    this.db = path.join(this.dir, 'herald.db');
    this.users = {};
  }

  admin(...args) {
    return execFileSync(path.join(BIN, 'herald-admin'), ['--db', this.db, ...args], {
      env: { ...process.env, HERALD_JWT_SECRET: SECRET },
      encoding: 'utf8',
    }).trim();
  }

  redis(...args) {
    return execFileSync('redis-cli', ['-p', String(this.redisPort), '--no-raw', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  }

  async onlineUsers() {
    const out = execFileSync('redis-cli', ['-p', String(this.redisPort), 'SMEMBERS', 'online_users'], { encoding: 'utf8' });
    return out.split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);
  }

  env() {
    return {
      HERALD_REDIS_URL: `redis://127.0.0.1:${this.redisPort}`,
      HERALD_DB: this.db,
      HERALD_JWT_SECRET: SECRET,
      HERALD_LOG_LEVEL: 'debug',
      HERALD_PRESENCE_GRACE_MS: String(this.opts.graceMs ?? 0),
      HERALD_GATEWAY_LEASE_MS: String(this.opts.leaseMs ?? 3000),
      HERALD_PING_INTERVAL_MS: String(this.opts.pingIntervalMs ?? 25000),
      HERALD_PING_TIMEOUT_MS: String(this.opts.pingTimeoutMs ?? 35000),
      HERALD_TOKEN_RECHECK_MS: String(this.opts.recheckMs ?? 30000),
      HERALD_WEB_ROOT: this.opts.webRoot ?? path.join(ROOT, 'web'),
      ...(this.opts.env || {}),
    };
  }

  async start() {
    this.admin('init');
    for (const line of this.admin('demo').split('\n')) {
      const m = line.match(/^user (\S+) id (\d+)$/);
      if (m) this.users[m[1]] = Number(m[2]);
    }
    this.redisPort = await freePort();
    await this.startRedis();
    await this.startBroker();
    for (const id of ['gw-a', 'gw-b']) await this.startGateway(id);
    await Promise.all(this.gateways.map((g) => this.waitHealthy(g)));
    return this;
  }

  // Starts redis-server on this.redisPort, without persistence: a restart
  // loses everything, the worst case for the processes that use it.
  async startRedis() {
    this.redisProc = new Proc(`redis-${this.procs.length}`, 'redis-server',
      ['--port', String(this.redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir],
      {}, this.logDir);
    this.procs.push(this.redisProc);
    await waitFor(() => { this.redis('PING'); return true; }, { what: 'redis' });
  }

  // Starts a broker (this.broker is the latest one); extraEnv overrides
  // this.env(), e.g. { HERALD_CONSUMER: 'broker-2' } for a standby.
  async startBroker(extraEnv = {}) {
    this.broker = new Proc(`broker-${this.procs.length}`, path.join(BIN, 'herald-broker'), [],
      { ...this.env(), ...extraEnv }, this.logDir);
    this.procs.push(this.broker);
    return this.broker;
  }

  // extraEnv (optional) overrides this.env() for this gateway only; a value
  // of undefined removes that variable.
  async startGateway(id, port, extraEnv = {}) {
    port = port ?? await freePort();
    const p = new Proc(`${id}-${this.procs.length}`, path.join(BIN, 'herald-gateway'), [],
      { ...this.env(), HERALD_GATEWAY_ID: id, HERALD_LISTEN: `127.0.0.1:${port}`, ...extraEnv }, this.logDir);
    this.procs.push(p);
    const gw = { id, port, proc: p, url: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/ws` };
    const i = this.gateways.findIndex((g) => g.id === id);
    if (i >= 0) this.gateways[i] = gw; else this.gateways.push(gw);
    return gw;
  }

  async waitHealthy(gw) {
    await waitFor(async () => {
      if (!gw.proc.running) throw new Error(`${gw.id} exited: ${gw.proc.tail()}`);
      const r = await fetch(`${gw.url}/healthz`);
      return r.status === 200;
    }, { what: `${gw.id} healthy`, timeout: 15000 });
  }

  token(name, opts) { return makeToken(this.users[name], opts); }

  // POST /live_chat_message as user `name` on gateway gi; the response.
  chatOverHttp(name, message, gi = 0) {
    return fetch(`${this.gateways[gi].url}/live_chat_message`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.token(name)}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ message }),
    });
  }

  // Adds a user with herald-admin (extra args e.g. '--avatar', url), records
  // its id in this.users and returns the id.
  addUser(name, ...args) {
    const id = Number(this.admin('user', 'add', name, ...args));
    if (!(id > 0)) throw new Error(`herald-admin user add ${name}: no id`);
    this.users[name] = id;
    return id;
  }

  // Opens a connected socket.io-client socket on gateway gi for user `name`
  // (null: a guest). See sioClient for the options.
  sio(name, gi = 0, opts = {}) {
    return sioConnected(sioClient(this.gateways[gi].url, { token: name ? this.token(name) : null, ...opts }));
  }

  // Opens a raw /ws client for user `name` on gateway index gi.
  connect(name, gi = 0, { headers = {}, ...wsOpts } = {}) {
    const c = new Client(this.gateways[gi].ws, {
      headers: { Authorization: `Bearer ${this.token(name)}`, ...headers }, ...wsOpts,
    });
    return c.opened();
  }

  // Stops every process (reverse order) and checks they exited cleanly.
  async stop() {
    const problems = [];
    for (const p of [...this.procs].reverse()) {
      const wasRunning = p.running;
      const info = await p.stop();
      if (wasRunning && !p.name.startsWith('redis') && info.code !== 0) {
        problems.push(`${p.name} exited with ${info.code ?? info.sig}:\n${p.tail(40)}`);
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (problems.length) throw new Error(problems.join('\n\n'));
  }
}

// Every frame the broker caused carries its recovery offset (PROTOCOL.md
// §4a). Tests compare frames whole: the offset stays readable as m.offset
// but is not enumerable, so deepEqual leaves it out.
export function hideOffset(m) {
  if (m && typeof m === 'object' && typeof m.offset === 'string' && m.type !== 'session' && m.type !== 'resumed') {
    const o = m.offset;
    delete m.offset;
    Object.defineProperty(m, 'offset', { value: o, enumerable: false });
  }
  return m;
}

// A raw /ws client that records every JSON message and its close.
export class Client {
  constructor(url, opts = {}) {
    this.ws = new WebSocket(url, opts);
    this.messages = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => {
      const m = isBinary ? { binary: data } : JSON.parse(data.toString());
      hideOffset(m);
      this.messages.push(m);
      this.waiters = this.waiters.filter((w) => !(w.pred(m) && (w.resolve(m), true)));
    });
  }
  opened() {
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve(this));
      this.ws.once('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body })));
      });
      this.ws.once('error', reject);
    });
  }
  send(obj) { this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)); }
  // Resolves with the first message (already received or future) matching pred.
  next(pred, timeout = 5000, what = 'message') {
    const have = this.messages.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.messages)}`)), timeout);
      this.waiters.push({ pred, resolve: (m) => { clearTimeout(t); resolve(m); } });
    });
  }
  statuses(userId) {
    return this.messages.filter((m) => m.type === 'status_update' && m.userId === userId).map((m) => m.status);
  }
  // Round trip through the broker (a one-message chat history: the online
  // list is the gateway's own, PROTOCOL.md §2): everything the broker did
  // before it read this request has reached this client once the answer
  // is here. Resolves with the online list asked for after that, which
  // follows every transition delivered so far.
  async sync(timeout = 8000) {
    let n = this.messages.length;
    this.send({ type: 'get_chat_history', limit: 1 });
    await this.next((m) => (m.type === 'chat_history' || m.type === 'error') && this.messages.indexOf(m) >= n, timeout, 'chat_history');
    n = this.messages.length;
    this.send({ type: 'get_online_users' });
    return this.next((m) => m.type === 'online_users' && this.messages.indexOf(m) >= n, timeout, 'online_users');
  }
  close(code = 1000) { this.ws.close(code); return this.closed; }
}

// The status of a raw HTTP answer (NaN when there is none).
export const rawStatus = (buf) => Number((buf.toString('latin1').match(/^HTTP\/1\.1 (\d{3})/) || [])[1]);

// Raw TCP helper for hostile HTTP / frames: sends bytes, collects the answer.
export function rawExchange(port, bytes, { wait = 1500 } = {}) {
  return new Promise((resolve) => {
    const chunks = [];
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    s.on('data', (d) => chunks.push(d));
    const done = () => resolve(Buffer.concat(chunks));
    s.on('close', done);
    s.on('error', done);
    setTimeout(() => { s.destroy(); }, wait);
  });
}

// Builds a masked client frame.
export function clientFrame(opcode, payload, { fin = true, mask = true, rsv = 0 } = {}) {
  payload = Buffer.from(payload);
  const len = payload.length;
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode)];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 255);
  else { head.push(m | 127, 0, 0, 0, 0, (len >>> 24) & 255, (len >> 16) & 255, (len >> 8) & 255, len & 255); }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i % 4]));
  return Buffer.concat([Buffer.from(head), key, body]);
}

// A WebSocket upgrade request for path (default /ws) with a Bearer token
// (none when token is null) and extra header lines.
export function upgradeRequest(port, token, extra = '', path = '/ws') {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
    `${token === null ? '' : `Authorization: Bearer ${token}\r\n`}${extra}\r\n`;
}

// Prometheus text ("name{labels} value" lines) as a Map from
// 'name{labels}' to the value.
export function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

// GET <url>/metrics, parsed (see parseMetrics).
export async function metrics(url) {
  const r = await fetch(`${url}/metrics`);
  if (r.status !== 200) throw new Error(`${url}/metrics: ${r.status}`);
  return parseMetrics(await r.text());
}

// herald_gateway_limit_refusals_total of the gateway at url, by limit.
export async function limitRefusals(url) {
  const out = {};
  for (const [k, v] of await metrics(url)) {
    const m = k.match(/^herald_gateway_limit_refusals_total\{limit="(\w+)"\}$/);
    if (m) out[m[1]] = v;
  }
  return out;
}

// Parses server frames after the 101 head; returns [{opcode, payload}].
export function parseServerFrames(buf) {
  const end = buf.indexOf('\r\n\r\n');
  let off = end < 0 ? buf.length : end + 4;
  const frames = [];
  while (off + 2 <= buf.length) {
    const op = buf[off] & 0x0f;
    let len = buf[off + 1] & 0x7f;
    let p = off + 2;
    if (len === 126) { len = buf.readUInt16BE(p); p += 2; } else if (len === 127) { len = Number(buf.readBigUInt64BE(p)); p += 8; }
    if (p + len > buf.length) break;
    frames.push({ opcode: op, payload: buf.subarray(p, p + len) });
    off = p + len;
  }
  return frames;
}

export function closeCodeOf(frames) {
  const c = frames.find((f) => f.opcode === 8);
  return c && c.payload.length >= 2 ? c.payload.readUInt16BE(0) : null;
}

// ---- socket.io-client helpers -------------------------------------------

const sioSockets = new Set();

// A stock socket.io-client socket (no reconnection, WebSocket transport
// unless opts say otherwise) that records every event as [name, ...args] in
// .events. closeSioClients() disconnects every socket made here.
export function sioClient(url, { token = null, ...opts } = {}) {
  const sock = io(url, { reconnection: false, forceNew: true, transports: ['websocket'], auth: { token }, ...opts });
  sock.events = [];
  sock.offsets = [];
  sock.onAny((name, ...args) => sock.events.push([name, ...splitOffset(sock, args)]));
  sioSockets.add(sock);
  return sock;
}

// The recovery offset the server appends as an event's last argument
// (PROTOCOL.md §4a) goes to sock.offsets (one per event, null when none),
// so tests see an event's arguments as the application sends them.
const OFFSET = /^\d+-\d+$/;
export function splitOffset(sock, args) {
  if (args.length && typeof args[args.length - 1] === 'string' && OFFSET.test(args[args.length - 1])) {
    sock.offsets.push(args[args.length - 1]);
    return args.slice(0, -1);
  }
  sock.offsets.push(null);
  return args;
}

export function withoutOffset(args) {
  return args.length && typeof args[args.length - 1] === 'string' && OFFSET.test(args[args.length - 1])
    ? args.slice(0, -1) : args;
}

// Resolves with the socket once connected; rejects with the connect_error.
export function sioConnected(sock, timeout = 5000) {
  return new Promise((resolve, reject) => {
    if (sock.connected) { resolve(sock); return; }
    const done = () => { clearTimeout(t); sock.off('connect', ok); sock.off('connect_error', bad); };
    const ok = () => { done(); resolve(sock); };
    const bad = (e) => { done(); reject(e); };
    const t = setTimeout(() => { done(); reject(new Error('socket.io connect timed out')); }, timeout);
    sock.on('connect', ok);
    sock.on('connect_error', bad);
  });
}

// Emits with a callback and resolves with the callback's argument.
export function sioAck(sock, event, ...args) {
  return sock.timeout(5000).emitWithAck(event, ...args);
}

// Round trip through the broker (get-online-users is relayed to it).
// The same for Socket.IO: whoami is the broker's, the list the gateway's.
export async function sioSync(sock) {
  await sioAck(sock, 'whoami');
  return sioAck(sock, 'get-online-users');
}

// Resolves with the args of the first event `name` (index >= from in
// .events, already received or future) for which pred(...args) holds.
export function sioNext(sock, name, pred = () => true, { from = 0, timeout = 5000 } = {}) {
  const match = (e) => e[0] === name && pred(...e.slice(1));
  const have = sock.events.slice(from).find(match);
  if (have) return Promise.resolve(have.slice(1));
  return new Promise((resolve, reject) => {
    const h = (...raw) => {
      const e = [raw[0], ...withoutOffset(raw.slice(1))];
      if (!match(e)) return;
      clearTimeout(t);
      sock.offAny(h);
      resolve(e.slice(1));
    };
    const t = setTimeout(() => {
      sock.offAny(h);
      reject(new Error(`timed out waiting for ${name}; got ${JSON.stringify(sock.events)}`));
    }, timeout);
    sock.onAny(h);
  });
}

// Resolves with the args of the next reserved event (connect_error,
// disconnect), which onAny does not see.
export function sioOnce(sock, name, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${name} within ${timeout} ms`)), timeout);
    sock.once(name, (...a) => { clearTimeout(t); resolve(a); });
  });
}

export function closeSioClients() {
  for (const sock of sioSockets) sock.disconnect();
  sioSockets.clear();
}
