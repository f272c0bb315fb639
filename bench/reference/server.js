#!/usr/bin/env node
// bench/reference/server.js - the stack Herald is measured against: a stock
// Node Socket.IO v4 server with @socket.io/redis-streams-adapter, the way
// applications run it today (several such processes on one Redis). It
// implements the part of Herald's contract (docs/PROTOCOL.md §1, §2, §4)
// that the benchmarks use: JWT handshake auth, presence in Redis
// (`online_users`) with `user-status-change` broadcasts, `get-online-users`,
// `livechat` and `direct_message`. See README.md beside this file.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createClient, defineScript } from 'redis';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-streams-adapter';

const USAGE = `usage: node bench/reference/server.js [options]

Reference Socket.IO v4 server (redis-streams adapter) for Herald's benchmarks.

  --port N               listen port (0: any free port)       [env PORT, 3000]
  --host ADDR            listen address                          [127.0.0.1]
  --redis-url URL        redis://host:port[/db]
                           [env HERALD_REDIS_URL, redis://127.0.0.1:6379]
  --jwt-secret S         HS256 secret                     [env HERALD_JWT_SECRET]
  --jwt-secret-file F    file holding the HS256 secret
                                                     [env HERALD_JWT_SECRET_FILE]
  --users FILE           JSON array [{"id":1,"username":"u1"},...]; without it
                         a user's name is their id
  --name NAME            name used in logs and as the Redis client name
                                                               [ref-<pid>]
  --ping-interval-ms N   Engine.IO pingInterval       [Socket.IO default, 25000]
  --ping-timeout-ms N    Engine.IO pingTimeout        [Socket.IO default, 20000]
  -h, --help             this text

Prints "listening <port>" on stdout once it accepts connections and its
adapter reads the Redis stream. SIGTERM/SIGINT close it cleanly (exit 0).
`;

const CONNS_KEY = 'herald-ref:conns'; // hash: user id -> open connections, all processes
const ONLINE_KEY = 'online_users'; // set: online user ids (Herald's key, §2/§7)

// ---- options --------------------------------------------------------------------

function die(msg) {
  process.stderr.write(`reference: ${msg}\n`);
  process.exit(2);
}

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      'redis-url': { type: 'string' },
      'jwt-secret': { type: 'string' },
      'jwt-secret-file': { type: 'string' },
      users: { type: 'string' },
      name: { type: 'string' },
      'ping-interval-ms': { type: 'string' },
      'ping-timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (e) {
  process.stderr.write(`${e.message}\n\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

function intOpt(v, what, min = 0) {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) die(`${what} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

const port = intOpt(opts.port ?? process.env.PORT ?? '3000', '--port');
const host = opts.host;
const redisUrl = opts['redis-url'] ?? process.env.HERALD_REDIS_URL ?? 'redis://127.0.0.1:6379';
const name = opts.name ?? `ref-${process.pid}`;
const pingInterval = intOpt(opts['ping-interval-ms'], '--ping-interval-ms', 1);
const pingTimeout = intOpt(opts['ping-timeout-ms'], '--ping-timeout-ms', 1);

// First found wins: --jwt-secret, --jwt-secret-file, HERALD_JWT_SECRET,
// HERALD_JWT_SECRET_FILE (a file's one trailing newline is dropped).
function loadSecret() {
  const fromFile = (f) => {
    try {
      return fs.readFileSync(f, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      return die(`cannot read JWT secret file: ${e.message}`);
    }
  };
  const s = opts['jwt-secret'] ??
    (opts['jwt-secret-file'] !== undefined ? fromFile(opts['jwt-secret-file']) : undefined) ??
    (process.env.HERALD_JWT_SECRET || undefined) ??
    (process.env.HERALD_JWT_SECRET_FILE ? fromFile(process.env.HERALD_JWT_SECRET_FILE) : undefined);
  if (!s) die('no JWT secret: give --jwt-secret, --jwt-secret-file, HERALD_JWT_SECRET or HERALD_JWT_SECRET_FILE');
  return Buffer.from(s, 'utf8');
}
const secret = loadSecret();

// The user table, in memory as the original stack held it.
const usersById = new Map();
const usersByName = new Map();
if (opts.users) {
  let list;
  try {
    list = JSON.parse(fs.readFileSync(opts.users, 'utf8'));
  } catch (e) {
    die(`cannot read --users ${opts.users}: ${e.message}`);
  }
  if (!Array.isArray(list)) die('--users must hold a JSON array of {id, username}');
  for (const u of list) {
    const id = Number(u?.id);
    if (!Number.isSafeInteger(id) || id <= 0 || typeof u.username !== 'string' || !u.username) {
      die(`--users: bad entry ${JSON.stringify(u)}`);
    }
    usersById.set(id, u.username);
    usersByName.set(u.username.toLowerCase(), id);
  }
}
const usernameOf = (id) => usersById.get(id) ?? String(id);

const log = (...a) => process.stderr.write(`${new Date().toISOString()} [${name}] ${a.join(' ')}\n`);

// ---- JWT (HS256, node's crypto) ----------------------------------------------------

const B64URL = /^[A-Za-z0-9_-]*$/;

function jsonPart(s) {
  const v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
  return v;
}

function idOf(v) {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v > 0 ? v : null;
  if (typeof v === 'string' && /^[0-9]{1,15}$/.test(v)) {
    const n = Number(v);
    return n > 0 ? n : null;
  }
  return null;
}

// Returns the token's user id, or null when the token must be refused: bad
// shape, alg other than HS256 (including "none"), bad signature, missing or
// past exp, future nbf, no usable user id.
function verifyToken(token) {
  if (typeof token !== 'string' || token.length > 8192) return null;
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => B64URL.test(p)) || !parts[0] || !parts[1]) return null;
  let header, claims;
  try {
    header = jsonPart(parts[0]);
    claims = jsonPart(parts[1]);
  } catch {
    return null;
  }
  if (header.alg !== 'HS256') return null;
  const want = crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const got = Buffer.from(parts[2], 'base64url');
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
  const now = Date.now() / 1000;
  if (typeof claims.exp !== 'number' || !(claims.exp > now)) return null;
  if (claims.nbf !== undefined && !(typeof claims.nbf === 'number' && claims.nbf <= now)) return null;
  return idOf(claims.sub ?? claims.userId ?? claims.id);
}

// ---- Redis ----------------------------------------------------------------------

// Presence bookkeeping is one atomic script per transition, so two processes
// (or two tabs) racing cannot leave online_users out of step with the counts.
let redisReady = false; // a first connection that never comes is fatal, later drops are retried
const redis = createClient({
  url: redisUrl,
  socket: {
    reconnectStrategy: (retries) =>
      !redisReady && retries >= 20 ? new Error('no Redis') : Math.min(retries * 50, 500),
  },
  name: `herald-ref:${name}`, // the adapter's duplicates inherit it (readiness check below)
  scripts: {
    presenceUp: defineScript({
      NUMBER_OF_KEYS: 2,
      SCRIPT: `local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if n == 1 then redis.call('SADD', KEYS[2], ARGV[1]) end
return n`,
      transformArguments: (id) => [CONNS_KEY, ONLINE_KEY, String(id)],
      transformReply: (n) => n,
    }),
    presenceDown: defineScript({
      NUMBER_OF_KEYS: 2,
      SCRIPT: `local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[1])
end
return n`,
      transformArguments: (id) => [CONNS_KEY, ONLINE_KEY, String(id)],
      transformReply: (n) => n,
    }),
  },
});
let lastRedisError = 0;
redis.on('error', (e) => {
  if (Date.now() - lastRedisError < 1000) return;
  lastRedisError = Date.now();
  log(`redis: ${e.message}`);
});
redis.on('ready', () => { redisReady = true; });
try {
  await redis.connect();
} catch (e) {
  die(`cannot connect to Redis at ${redisUrl}: ${e.message}`);
}

// ---- Socket.IO --------------------------------------------------------------------

const httpServer = http.createServer((req, res) => {
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end('{"error":"not-found"}');
});

// Tuned as https://socket.io/docs/v4/performance-tuning/ advises: WebSocket
// only (no long-polling, so no sticky sessions or upgrade round trips), no
// per-message deflate, no HTTP compression; no client bundle to serve.
const io = new Server(httpServer, {
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  ...(pingInterval !== undefined ? { pingInterval } : {}),
  ...(pingTimeout !== undefined ? { pingTimeout } : {}),
  adapter: createAdapter(redis),
});

// Promises of Redis work still under way, awaited at shutdown.
const pending = new Set();
function track(p) {
  pending.add(p);
  p.catch((e) => log(`redis: ${e.message}`)).finally(() => pending.delete(p));
  return p;
}

io.use((socket, next) => {
  const hs = socket.handshake;
  let token = hs.auth?.token;
  if (token === undefined || token === null || token === '') token = hs.query?.token;
  if (token === undefined || token === null || token === '') {
    socket.data.userId = null; // a guest
    return next();
  }
  const id = verifyToken(Array.isArray(token) ? token[0] : token);
  if (id === null) {
    const err = new Error('invalid-token');
    err.data = { code: 'invalid-token' };
    return next(err);
  }
  socket.data.userId = id;
  socket.data.username = usernameOf(id);
  next();
});

// Error answer: the ack when the client asked for one, else an `error` event.
function refuse(socket, ack, code, message) {
  if (typeof ack === 'function') ack({ ok: false, error: code, message });
  else socket.emit('error', { code, message });
}

function chatMessage(socket, data, ack) {
  const m = data?.message;
  if (typeof m !== 'string' || m.length === 0) {
    refuse(socket, ack, 'bad-field', 'message must be a non-empty string');
    return null;
  }
  return m;
}

function resolveUser(to) {
  if (typeof to === 'string' && to.length > 0) {
    const id = usersByName.get(to.toLowerCase());
    if (id !== undefined) return id;
  }
  const id = idOf(to);
  if (id === null) return null;
  return usersById.size === 0 || usersById.has(id) ? id : null;
}

io.on('connection', (socket) => {
  const userId = socket.data.userId;

  socket.on('get-online-users', (...args) => {
    const ack = args[args.length - 1];
    if (typeof ack !== 'function') return;
    redis.sMembers(ONLINE_KEY).then((ids) => ack(ids.map(Number)), (e) => {
      log(`SMEMBERS: ${e.message}`);
      ack({ ok: false, error: 'unavailable', message: 'Redis is down' });
    });
  });

  socket.on('ping', (...args) => {
    const ack = args[args.length - 1];
    if (typeof ack === 'function') ack('pong');
  });

  socket.on('livechat', (data, ack) => {
    if (typeof data === 'function') [data, ack] = [undefined, data];
    if (userId === null) return refuse(socket, ack, 'auth-required', 'guests may not do this: log in first');
    const message = chatMessage(socket, data, ack);
    if (message === null) return;
    io.to('auth').emit('livechat', { user: socket.data.username, userId, message });
    if (typeof ack === 'function') ack({ ok: true });
  });

  socket.on('direct_message', (data, ack) => {
    if (typeof data === 'function') [data, ack] = [undefined, data];
    if (userId === null) return refuse(socket, ack, 'auth-required', 'guests may not do this: log in first');
    if (data?.to === undefined || data?.to === null) {
      return refuse(socket, ack, 'bad-field', 'to must be a username or a user id');
    }
    const message = chatMessage(socket, data, ack);
    if (message === null) return;
    const to = resolveUser(data.to);
    if (to === null) return refuse(socket, ack, 'unknown-user', 'no such recipient');
    io.to(`user:${to}`).emit('direct_message', { user: socket.data.username, userId, message });
    if (typeof ack === 'function') ack({ ok: true });
  });

  if (userId === null) return;

  // Presence: count this tab across all processes; announce 0->1 and 1->0.
  // Commands on one client run in order, so this tab's decrement can never
  // overtake its increment.
  socket.join([`user:${userId}`, 'auth']);
  track(redis.presenceUp(userId)).then((n) => {
    if (n === 1) io.emit('user-status-change', { userId, status: 'online' });
  }, () => {});
  socket.on('disconnect', () => {
    track(redis.presenceDown(userId)).then((n) => {
      if (n === 0) io.emit('user-status-change', { userId, status: 'offline' });
    }, () => {});
  });
});

// ---- start, readiness, shutdown -------------------------------------------------

await new Promise((resolve, reject) => {
  httpServer.once('error', reject);
  httpServer.listen(port, host, () => {
    httpServer.off('error', reject);
    resolve();
  });
}).catch((e) => die(`cannot listen on ${host}:${port}: ${e.message}`));
const boundPort = httpServer.address().port;

// The adapter starts reading its stream at "$" once its duplicate client is
// connected; broadcasts from the other processes before that are lost. Wait
// until that client sits in XREAD, so "listening" means fully ready.
{
  const me = `name=herald-ref:${name} `;
  const end = Date.now() + 10000;
  for (;;) {
    const list = await redis.sendCommand(['CLIENT', 'LIST']);
    if (list.split('\n').some((l) => l.includes(me) && /\bcmd=xread\b/.test(l))) break;
    if (Date.now() > end) die('the adapter never started reading its Redis stream');
    await new Promise((r) => setTimeout(r, 20));
  }
}

log(`reference Socket.IO server pid ${process.pid} port ${boundPort} host ${host} redis ${redisUrl}` +
    ` users ${usersById.size} socket.io-ping ${io.engine.opts.pingInterval}/${io.engine.opts.pingTimeout} ms`);
process.stdout.write(`listening ${boundPort}\n`);

let stopping = false;
async function shutdown(sig) {
  if (stopping) return;
  stopping = true;
  log(`${sig}: closing`);
  const hard = setTimeout(() => {
    log('shutdown took too long');
    process.exit(1);
  }, 8000);
  hard.unref();
  // Disconnects every socket (their disconnect handlers take their users
  // offline in Redis and announce it), then stops listening.
  await io.close();
  while (pending.size) await Promise.allSettled([...pending]);
  await redis.quit().catch(() => {});
  log('closed');
  // The adapter's stream reader may sit in a blocking XREAD for a few more
  // seconds; nothing is left to do, so do not wait for it.
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
