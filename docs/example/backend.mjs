#!/usr/bin/env node
// docs/example/backend.mjs - a minimal application backend beside Herald:
// the game site's own server, which owns the accounts (its own SQLite
// database), signs the access tokens, and keeps Herald's copy of users and
// friendships in step. docs/EXAMPLE.md walks through it.
//
// Plain ESM for Node 18+, no build step. Its only package is sql.js
// (SQLite compiled to WebAssembly, from the repository's node_modules).
//
//   node docs/example/backend.mjs --help
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import initSqlJs from 'sql.js';

const HELP = `docs/example/backend.mjs - example application backend for Herald

Configuration (environment):
  PORT                    port to listen on (127.0.0.1)               default 3000
  EXAMPLE_DB              the backend's own SQLite file               default example.db
  HERALD_URL              Herald's base URL (nginx or a gateway)      default http://127.0.0.1:8080
  HERALD_API_KEY          Herald's API key, for /api/*                required
  HERALD_JWT_SECRET       HS256 secret shared with Herald's gateways  required (or _FILE)
  HERALD_JWT_SECRET_FILE  file holding that secret
  HERALD_WEBHOOK_SECRET   secret of Herald's webhook signatures       unset: /herald/webhook answers 403
  TOKEN_TTL               lifetime of the tokens /login signs, in s   default 3600

Routes (JSON bodies and answers):
  POST   /signup   {username, avatar?}          create a user, here and in Herald
  POST   /login    {username}                   a signed access token for Herald
  POST   /friends  {userId, friendId}           befriend (DELETE /friends: unfriend)
  POST   /profile  {userId, avatar?, bio?}      change a profile, tell Herald's watchers
  GET    /users/:id                             own row, lastSeen, live online from Herald
  DELETE /users/:id                             delete the account, here and in Herald
  POST   /herald/webhook                        Herald's signed event batches
`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(HELP);
  process.exit(0);
}

function readSecret() {
  if (process.env.HERALD_JWT_SECRET) return process.env.HERALD_JWT_SECRET;
  if (process.env.HERALD_JWT_SECRET_FILE) {
    // The gateway takes the file's bytes without the line ends at its end.
    const bytes = fs.readFileSync(process.env.HERALD_JWT_SECRET_FILE);
    let n = bytes.length;
    while (n > 0 && (bytes[n - 1] === 0x0a || bytes[n - 1] === 0x0d)) n--;
    return bytes.subarray(0, n);
  }
  return '';
}

const config = {
  port: Number(process.env.PORT || 3000),
  dbPath: process.env.EXAMPLE_DB || 'example.db',
  heraldUrl: (process.env.HERALD_URL || 'http://127.0.0.1:8080').replace(/\/$/, ''),
  apiKey: process.env.HERALD_API_KEY || '',
  jwtSecret: readSecret(),
  webhookSecret: process.env.HERALD_WEBHOOK_SECRET || '',
  tokenTtl: Number(process.env.TOKEN_TTL || 3600),
};
for (const [name, ok] of [['HERALD_API_KEY', config.apiKey], ['HERALD_JWT_SECRET or HERALD_JWT_SECRET_FILE', config.jwtSecret.length > 0]]) {
  if (!ok) {
    console.error(`backend: ${name} is required (see --help)`);
    process.exit(2);
  }
}

const log = (...words) => console.log(new Date().toISOString(), ...words);

// ---- the backend's own database ---------------------------------------------
//
// sql.js keeps the database in memory; we load it from the file at start
// and write the whole file back after every committed change.

const SQL = await initSqlJs();
const db = fs.existsSync(config.dbPath) ? new SQL.Database(fs.readFileSync(config.dbPath)) : new SQL.Database();
db.run(`
  CREATE TABLE IF NOT EXISTS users (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,  -- also the user's id in Herald
    username  TEXT NOT NULL UNIQUE COLLATE NOCASE,
    avatar    TEXT,
    bio       TEXT,
    online    INTEGER NOT NULL DEFAULT 0,         -- from Herald's webhook
    last_seen INTEGER                             -- ms: the last user-online/user-offline
  );
  CREATE TABLE IF NOT EXISTS friendships (
    a INTEGER NOT NULL, b INTEGER NOT NULL,       -- a < b
    PRIMARY KEY (a, b)
  );
  CREATE TABLE IF NOT EXISTS webhook_events (     -- ids already applied: delivery is at-least-once
    id          TEXT PRIMARY KEY,
    received_at INTEGER NOT NULL
  );
`);
// Our ids are Herald's ids. Start them at 1001 so that they never meet the
// demo users scripts/run puts in Herald's database (ids 1-5). AUTOINCREMENT
// never hands out an id again, which Herald requires too (a deleted id
// stays deleted there).
if (!one('SELECT seq FROM sqlite_sequence WHERE name = ?', ['users'])) {
  db.run("INSERT INTO sqlite_sequence (name, seq) VALUES ('users', 1000)");
}
persist();

function one(sql, params = []) {
  const stmt = db.prepare(sql);
  try {
    stmt.bind(params);
    return stmt.step() ? stmt.getAsObject() : undefined;
  } finally {
    stmt.free();
  }
}

function run(sql, params = []) {
  db.run(sql, params);
  return db.getRowsModified();
}

function persist() {
  const tmp = `${config.dbPath}.tmp`;
  fs.writeFileSync(tmp, db.export());
  fs.renameSync(tmp, config.dbPath);
}

// One transaction at a time: every handler that writes runs inside
// transaction(), which queues it behind the previous one (readers queue
// too, with serialized(), so they never see a change still in flight). A
// handler that calls Herald does so inside its transaction, so that a refusal
// (thrown as an HttpError) rolls the own change back and the two databases
// never disagree.
let queue = Promise.resolve();
function serialized(fn) {
  const result = queue.then(fn);
  queue = result.catch(() => {});
  return result;
}
function transaction(fn) {
  return serialized(async () => {
    db.run('BEGIN');
    try {
      const value = await fn();
      db.run('COMMIT');
      persist();
      return value;
    } catch (err) {
      db.run('ROLLBACK');
      throw err;
    }
  });
}

// ---- talking to Herald ---------------------------------------------------------

class HttpError extends Error {
  constructor(status, error, message) {
    super(message);
    this.status = status;
    this.error = error;
  }
}

// Calls Herald's API with the API key. Answers the parsed JSON body of a
// 2xx answer; throws an HttpError with Herald's own status and error word
// when it refuses, 502 herald-unreachable when it cannot be reached.
async function herald(method, path, body) {
  let res;
  try {
    res = await fetch(config.heraldUrl + path, {
      method,
      headers: { Authorization: `Bearer ${config.apiKey}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
  } catch (err) {
    throw new HttpError(502, 'herald-unreachable', `Herald (${config.heraldUrl}) did not answer: ${err.message}`);
  }
  const text = await res.text();
  let json = {};
  try { json = text ? JSON.parse(text) : {}; } catch { /* not JSON: keep {} */ }
  if (!res.ok) {
    throw new HttpError(res.status, json.error || 'herald-error', `Herald refused ${method} ${path}: ${json.message || text}`);
  }
  return json;
}

// ---- access tokens ---------------------------------------------------------------
//
// An HS256 JWT signed with the secret Herald's gateways verify with:
// sub is the user's id (a string), exp is required by Herald, username is
// what Herald uses if it creates the user from the token (HERALD_JIT_USERS).

const b64url = (data) => Buffer.from(data).toString('base64url');

function signToken(user) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims = b64url(JSON.stringify({ sub: String(user.id), username: user.username, iat: now, exp: now + config.tokenTtl }));
  const signature = crypto.createHmac('sha256', config.jwtSecret).update(`${header}.${claims}`).digest();
  return { token: `${header}.${claims}.${b64url(signature)}`, expiresAt: (now + config.tokenTtl) * 1000 };
}

// ---- webhook signatures ----------------------------------------------------------
//
// X-Herald-Signature: sha256=<hex HMAC-SHA256 of the raw body>. The HMAC is
// computed over the exact bytes received (never over re-serialised JSON)
// and compared in constant time.

function signatureValid(rawBody, header) {
  const m = /^sha256=([0-9a-f]{64})$/i.exec(header || '');
  if (!m) return false;
  const expected = crypto.createHmac('sha256', config.webhookSecret).update(rawBody).digest();
  return crypto.timingSafeEqual(expected, Buffer.from(m[1], 'hex'));
}

// ---- request helpers --------------------------------------------------------------

function readBody(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, 'too-large', 'the body is too large'));
        req.destroy();
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseJson(raw) {
  try {
    const v = JSON.parse(raw.toString('utf8') || '{}');
    if (v && typeof v === 'object' && !Array.isArray(v)) return v;
  } catch { /* fall through */ }
  throw new HttpError(400, 'bad-json', 'the body must be a JSON object');
}

function userId(v, field) {
  const id = Number(v);
  if (!Number.isSafeInteger(id) || id <= 0) throw new HttpError(400, 'bad-field', `${field} must be a user id`);
  return id;
}

function mustExist(id) {
  const user = one('SELECT * FROM users WHERE id = ?', [id]);
  if (!user) throw new HttpError(404, 'unknown-user', `no user has id ${id}`);
  return user;
}

const USERNAME = /^[A-Za-z0-9_.-]{1,64}$/; // the same rule as Herald's

// ---- routes -------------------------------------------------------------------------

// POST /signup {username, avatar?}: our row first, then Herald's copy with
// the same id. A refusal from Herald (say 409 username-taken, when Herald
// already has that name) undoes our row and is passed on.
async function signup(body) {
  const { username, avatar = null } = body;
  if (typeof username !== 'string' || !USERNAME.test(username)) {
    throw new HttpError(400, 'bad-field', 'username must be 1-64 of A-Z a-z 0-9 _ . -');
  }
  if (avatar !== null && typeof avatar !== 'string') throw new HttpError(400, 'bad-field', 'avatar must be a string');
  const user = await transaction(async () => {
    if (one('SELECT id FROM users WHERE username = ?', [username])) {
      throw new HttpError(409, 'username-taken', `${username} is taken`);
    }
    run('INSERT INTO users (username, avatar) VALUES (?, ?)', [username, avatar]);
    const row = one('SELECT id, username, avatar FROM users WHERE id = last_insert_rowid()');
    await herald('PUT', `/api/users/${row.id}`, { username, avatar });
    return row;
  });
  return [201, user];
}

// POST /login {username}: no password in this example; a real backend
// checks one here. The token is all a browser needs to connect to Herald.
async function login(body) {
  if (typeof body.username !== 'string') throw new HttpError(400, 'bad-field', 'username must be a string');
  const user = await serialized(() => one('SELECT id, username FROM users WHERE username = ?', [body.username]));
  if (!user) throw new HttpError(404, 'unknown-user', `no user is called ${body.username}`);
  return [200, { userId: user.id, username: user.username, ...signToken(user) }];
}

// POST / DELETE /friends {userId, friendId}: Herald needs friendships for
// its privacy rule (friends see the full profile) and tells the watchers
// of both profiles at once.
async function friends(body, befriend) {
  const a = userId(body.userId, 'userId');
  const b = userId(body.friendId, 'friendId');
  if (a === b) throw new HttpError(400, 'bad-field', 'a user cannot befriend themself');
  const changed = await transaction(async () => {
    mustExist(a);
    mustExist(b);
    const pair = [Math.min(a, b), Math.max(a, b)];
    const n = befriend
      ? run('INSERT OR IGNORE INTO friendships (a, b) VALUES (?, ?)', pair)
      : run('DELETE FROM friendships WHERE a = ? AND b = ?', pair);
    await herald(befriend ? 'PUT' : 'DELETE', '/api/friendships', { userId: a, friendId: b });
    return n > 0;
  });
  return [200, { ok: true, changed }];
}

// POST /profile {userId, avatar?, bio?}: our row, then profile-update to
// everyone watching that profile. Herald stores the avatar and passes bio
// on, to the user's friends only (bio is not one of its public fields).
async function profile(body) {
  const id = userId(body.userId, 'userId');
  for (const f of ['avatar', 'bio']) {
    if (body[f] !== undefined && body[f] !== null && typeof body[f] !== 'string') {
      throw new HttpError(400, 'bad-field', `${f} must be a string`);
    }
  }
  const user = await transaction(async () => {
    const old = mustExist(id);
    const avatar = body.avatar !== undefined ? body.avatar : old.avatar;
    const bio = body.bio !== undefined ? body.bio : old.bio;
    run('UPDATE users SET avatar = ?, bio = ? WHERE id = ?', [avatar, bio, id]);
    const fields = { username: old.username, avatar, bio };
    await herald('POST', '/api/notify/profile-update', { userId: id, user: fields });
    return { id, ...fields };
  });
  return [200, user];
}

// DELETE /users/:id: our rows, then Herald, which sends account-deleted to
// the user's tabs, closes them and refuses the user's tokens from now on.
// A user Herald never heard of (404) is fine to delete here.
async function deleteUser(id) {
  await transaction(async () => {
    mustExist(id);
    run('DELETE FROM friendships WHERE a = ? OR b = ?', [id, id]);
    run('DELETE FROM users WHERE id = ?', [id]);
    try {
      await herald('DELETE', `/api/users/${id}`);
    } catch (err) {
      if (err.status !== 404) throw err;
    }
  });
  return [200, { ok: true }];
}

// GET /users/:id: what we know, and whether the user is online right now
// (asked from Herald; null when Herald cannot be asked).
async function getUser(id) {
  const row = await serialized(() => mustExist(id));
  let online = null;
  try {
    online = (await herald('POST', '/api/online-status', { ids: [id] })).online.includes(id);
  } catch (err) {
    log(`online-status of ${id}: ${err.message}`);
  }
  return [200, {
    id: row.id, username: row.username, avatar: row.avatar, bio: row.bio,
    lastSeen: row.last_seen, online, onlineByWebhook: row.online === 1,
  }];
}

// POST /herald/webhook: a batch {"events":[{id, t, ts, d}]}. Herald retries
// a batch it could not deliver, so an event may come twice: its id is
// remembered and a repeat is skipped. Events of one user may also arrive
// out of order across retries, hence the ts check.
async function webhook(raw, signature) {
  if (!config.webhookSecret) throw new HttpError(403, 'forbidden', 'HERALD_WEBHOOK_SECRET is not set');
  if (!signatureValid(raw, signature)) throw new HttpError(401, 'bad-signature', 'X-Herald-Signature does not match');
  const { events } = parseJson(raw);
  if (!Array.isArray(events)) throw new HttpError(400, 'bad-field', 'events must be an array');
  const result = await transaction(async () => {
    let applied = 0;
    let repeated = 0;
    const seen = [];
    const now = Date.now();
    for (const ev of events) {
      if (!ev || (typeof ev.id !== 'string' && typeof ev.id !== 'number')) continue;
      if (run('INSERT OR IGNORE INTO webhook_events (id, received_at) VALUES (?, ?)', [String(ev.id), now]) === 0) {
        repeated++;
        continue;
      }
      applied++;
      const ts = Number(ev.ts);
      const uid = Number(ev.d?.userId);
      if (ev.t === 'user-online' || ev.t === 'user-offline') {
        run('UPDATE users SET online = ?, last_seen = ? WHERE id = ? AND (last_seen IS NULL OR last_seen <= ?)',
          [ev.t === 'user-online' ? 1 : 0, ts, uid, ts]);
      }
      seen.push(`${ev.t} ${JSON.stringify(ev.d)}`);
    }
    // Herald gives up on a batch after webhook_retry_s (300 s by default):
    // ids older than a day can no longer come back.
    run('DELETE FROM webhook_events WHERE received_at < ?', [now - 86400000]);
    return [{ ok: true, applied, repeated }, seen.join(', ')];
  });
  return [200, ...result];
}

async function route(req, raw) {
  const url = new URL(req.url, 'http://localhost');
  const p = url.pathname;
  const m = /^\/users\/(\d+)$/.exec(p);
  if (req.method === 'POST' && p === '/herald/webhook') return webhook(raw, req.headers['x-herald-signature']);
  if (req.method === 'POST' && p === '/signup') return signup(parseJson(raw));
  if (req.method === 'POST' && p === '/login') return login(parseJson(raw));
  if (req.method === 'POST' && p === '/friends') return friends(parseJson(raw), true);
  if (req.method === 'DELETE' && p === '/friends') return friends(parseJson(raw), false);
  if (req.method === 'POST' && p === '/profile') return profile(parseJson(raw));
  if (req.method === 'GET' && m) return getUser(userId(m[1], 'id'));
  if (req.method === 'DELETE' && m) return deleteUser(userId(m[1], 'id'));
  throw new HttpError(404, 'not-found', `no route ${req.method} ${p}`);
}

let stopping = false;
const server = http.createServer(async (req, res) => {
  const start = Date.now();
  let status;
  let answer;
  let note; // what the log line adds, e.g. the events of a webhook batch
  try {
    [status, answer, note] = await route(req, await readBody(req));
  } catch (err) {
    if (!(err instanceof HttpError)) log(`error: ${err.stack}`);
    status = err instanceof HttpError ? err.status : 500;
    answer = { error: err.error || 'internal', message: err.message };
  }
  res.writeHead(status, { 'Content-Type': 'application/json', ...(stopping ? { Connection: 'close' } : {}) });
  res.end(JSON.stringify(answer));
  if (status >= 400) note = `${answer.error}: ${answer.message}`;
  log(`${req.method} ${req.url} ${status} ${Date.now() - start}ms${note ? ` ${note}` : ''}`);
});

server.listen(config.port, '127.0.0.1', () => {
  log(`backend listening on http://127.0.0.1:${config.port}/, database ${config.dbPath}, Herald at ${config.heraldUrl}`);
});

// SIGTERM / Ctrl-C: stop accepting, let running requests finish, wait for
// the last transaction, write the database, exit 0.
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: stopping`);
  const force = setTimeout(() => server.closeAllConnections(), 5000);
  server.close(() => {
    clearTimeout(force);
    serialized(() => {
      persist();
      db.close();
      log('stopped');
      process.exit(0);
    });
  });
  server.closeIdleConnections();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
