// docs/SECURITY.md rows that need a whole stack to prove: the origin rule on
// cookie-authenticated POSTs, /metrics from a non-loopback address, no core
// dumps, log lines that cannot be forged, and secrets that never reach a
// log (the last test stops the stack and reads every log it wrote).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  Stack, Proc, Client, BIN, SECRET, makeToken, freePort, waitFor, rawExchange, rawStatus, upgradeRequest,
  clientFrame, limitRefusals, sioClient, sioConnected, sioAck, sioOnce, closeSioClients,
} from './harness.mjs';
import { http, is, since } from './social-lib.mjs';

const API_KEY = 'security-api-key-5f1e2d3c4b5a';
const ALLOWED = 'https://allowed.example';
let s;
before(async () => {
  s = await new Stack('security', {
    env: { HERALD_API_KEY: API_KEY, HERALD_ALLOWED_ORIGINS: ALLOWED, HERALD_DEV_LOGIN: '1' },
  }).start();
});
after(async () => {
  closeSioClients();
  if (s) await s.stop();
});

// Every log file of the stack's own processes (not Redis'), by name.
const heraldLogs = () => fs.readdirSync(s.logDir).filter((f) => !f.startsWith('redis'))
  .map((f) => [f, fs.readFileSync(path.join(s.logDir, f), 'utf8')]);

// ---- the origin rule on cookie-authenticated POSTs --------------------------------

test('POSTs with the session cookie: a foreign Origin gets 403 and sends nothing; same or allowed origin 202; a Bearer token is not ambient', async () => {
  const url = s.gateways[0].url;
  const listener = await s.connect('erin', 1);
  await listener.sync();
  const before = await limitRefusals(url);
  const cookie = { Cookie: `theme=dark; accessToken=${s.token('bob')}` };
  const cases = [
    ['/live_chat_message', { message: 'from evil' }, { ...cookie, Origin: 'https://evil.example' }, 403],
    // Same host, another port: another origin (and the same site, so a
    // browser sends the cookie along).
    ['/direct_chat_message', { to: 'erin', message: 'from a sibling port' }, { ...cookie, Origin: `http://127.0.0.1:${s.gateways[1].port}` }, 403],
    ['/live_chat_message', { message: 'from null' }, { ...cookie, Origin: 'null' }, 403],
    ['/live_chat_message', { message: 'same origin' }, { ...cookie, Origin: url }, 202],
    ['/direct_chat_message', { to: 'erin', message: 'allowed origin' }, { ...cookie, Origin: ALLOWED }, 202],
    ['/live_chat_message', { message: 'not a browser' }, cookie, 202],
    ['/live_chat_message', { message: 'bearer' }, { Authorization: `Bearer ${s.token('bob')}`, Origin: 'https://evil.example' }, 202],
  ];
  for (const [route, body, headers, want] of cases) {
    const r = await http(s, 'POST', 0, route, { body, headers });
    assert.equal(r.status, want, `${route} ${headers.Origin}: ${r.text}`);
    if (want === 403) assert.equal(r.json?.error, 'origin-forbidden');
  }
  await listener.sync();
  const seen = since(listener, 0, (m) => ['livechat', 'direct_message'].includes(m.type)).map((m) => m.message);
  assert.deepEqual(seen.sort(), ['allowed origin', 'bearer', 'not a browser', 'same origin']);
  assert.equal((await limitRefusals(url)).origin - (before.origin ?? 0), 3);
  await listener.close();
});

// ---- /metrics from a non-loopback address -------------------------------------------

// A local IPv4 address that is not loopback: one an interface already has,
// else one added to lo for the test (root and iproute2, as in CI). Never a
// silent skip: without either the test fails and says why.
function nonLoopbackAddress() {
  for (const addrs of Object.values(os.networkInterfaces())) {
    const a = addrs.find((x) => x.family === 'IPv4' && !x.internal);
    if (a) return { address: a.address, cleanup: () => {} };
  }
  const address = '198.51.100.77'; // TEST-NET-2: routed nowhere
  try {
    execFileSync('ip', ['addr', 'add', `${address}/32`, 'dev', 'lo'], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`no non-loopback IPv4 address, and adding one failed (needs root and iproute2): ${e.stderr || e.message}`);
  }
  return { address, cleanup: () => execFileSync('ip', ['addr', 'del', `${address}/32`, 'dev', 'lo']) };
}

// GET path on address:port from address (the peer the gateway sees):
// resolves with the status.
function getFrom(address, port, reqPath) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const sock = net.connect({ host: address, port, localAddress: address }, () => {
      assert.equal(sock.localAddress, address);
      sock.write(`GET ${reqPath} HTTP/1.1\r\nHost: ${address}:${port}\r\nConnection: close\r\n\r\n`);
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', reject);
    sock.on('close', () => resolve(rawStatus(Buffer.concat(chunks))));
  });
}

test('/metrics answers 403 to a non-loopback peer, 200 once --metrics-allow names it', async () => {
  const { address, cleanup } = nonLoopbackAddress();
  assert.ok(!address.startsWith('127.'), address);
  const gws = [];
  try {
    // One after the other: a port is only taken once its gateway listens.
    for (const [id, extra] of [['gw-metrics-deny', {}], ['gw-metrics-allow', { HERALD_METRICS_ALLOW: `192.0.2.250,${address}` }]]) {
      const port = await freePort();
      const gw = await s.startGateway(id, port, { HERALD_LISTEN: `${address}:${port}`, ...extra });
      gws.push({ port, gw });
      await waitFor(async () => {
        if (!gw.proc.running) throw new Error(`${gw.id} exited: ${gw.proc.tail()}`);
        return (await getFrom(address, port, '/healthz')) === 200;
      }, { what: `${gw.id} healthy on ${address}` });
    }
    assert.notEqual(gws[0].port, gws[1].port);
    assert.equal(await getFrom(address, gws[0].port, '/metrics'), 403, `from ${address}`);
    assert.equal(await getFrom(address, gws[1].port, '/metrics'), 200, `from ${address}, allowed`);
    assert.match(fs.readFileSync(gws[0].gw.proc.log, 'utf8'), /config:.*listen=/);
  } finally {
    for (const { gw } of gws) assert.equal((await gw.proc.stop()).code, 0);
    cleanup();
  }
});

// ---- no core dumps ----------------------------------------------------------------

const procStatusUid = (pid) => Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)[1]);

test('no core dumps: gateway and broker run with RLIMIT_CORE 0 (soft and hard) and are not dumpable', async () => {
  for (const p of [s.gateways[0].proc, s.broker]) {
    assert.match(fs.readFileSync(`/proc/${p.pid}/limits`, 'utf8'), /^Max core file size\s+0\s+0\s+bytes\s*$/m, p.name);
  }
  // proc(5): the files of a process that is not dumpable belong to root,
  // whoever runs it. Run as nobody that tells the two apart; `sleep` as
  // nobody is the control whose files are nobody's.
  const NOBODY = 65534;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-nobody-'));
  const db = path.join(dir, 'herald.db');
  execFileSync(path.join(BIN, 'herald-admin'), ['--db', db, 'init'], { env: { ...process.env, HERALD_JWT_SECRET: SECRET } });
  for (const f of [dir, ...fs.readdirSync(dir).map((f) => path.join(dir, f))]) fs.chownSync(f, NOBODY, NOBODY);
  const env = {
    ...process.env, HERALD_JWT_SECRET: SECRET, HERALD_REDIS_URL: 'redis://127.0.0.1:1', HERALD_DB: db,
    HERALD_LISTEN: '127.0.0.1:0', HERALD_LOG_LEVEL: 'info',
  };
  const started = [];
  const run = (name, cmd, args, ready) => {
    const p = new Proc(name, cmd, args, env, s.logDir, { uid: NOBODY, gid: NOBODY, cwd: dir });
    started.push(p);
    return waitFor(() => {
      if (!p.running) throw new Error(`${name} exited: ${p.tail()}`);
      return ready.test(fs.readFileSync(p.log, 'utf8')) && p.pid;
    }, { what: `${name} started` });
  };
  try {
    const control = await run('sleep-nobody', 'sleep', ['30'], /^/);
    await waitFor(() => procStatusUid(control) === NOBODY, { what: 'sleep runs as nobody' });
    assert.equal(fs.statSync(`/proc/${control}/status`).uid, NOBODY, 'control: a dumpable process owns its /proc files');
    // Both lines come after the protection and the signal handlers.
    const gw = await run('gw-nobody', path.join(BIN, 'herald-gateway'), [], /listening on /);
    const bk = await run('broker-nobody', path.join(BIN, 'herald-broker'), ['--consumer', 'broker-nobody'], /: running$/m);
    for (const [name, pid] of [['gateway', gw], ['broker', bk]]) {
      assert.equal(procStatusUid(pid), NOBODY, `${name} runs as nobody`);
      assert.equal(fs.statSync(`/proc/${pid}/status`).uid, 0, `${name} is not dumpable: its /proc files are root's`);
      assert.match(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'), /^Max core file size\s+0\s+0\s+bytes\s*$/m, name);
    }
  } finally {
    const codes = await Promise.all(started.map((p) => p.stop().then((i) => i.code ?? i.sig)));
    fs.rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(codes.slice(1), [0, 0], 'gateway and broker exit cleanly (sanitizers included)');
  }
});

// ---- forged log lines ---------------------------------------------------------------

const LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARN |ERROR) (gateway|broker) [^:]+: /;
// What no log line may hold raw: C0 controls but tab... all of them, DEL,
// C1 controls, line/paragraph separators, bidirectional overrides.
const UNSAFE = /[\x00-\x1f\x7f\u0080-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

test('a newline, CR, escape or separator in a path, header, name or event never makes or hides a log line', async () => {
  const { port } = s.gateways[0];
  const M = `FORGED-${crypto.randomBytes(4).toString('hex')}`;
  const tok = s.token('alice');
  const fake = `2030-01-01T00:00:00.000Z ERROR gateway gw-a: ${M}`;
  const requests = [
    `GET /ws%0d%0a${encodeURIComponent(fake)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    `GET /ws\r\n${fake}\r\nHost: x\r\n\r\n`,
    `GET /online-status/alice%0a${M} HTTP/1.1\r\nHost: x\r\n\r\n`,
    `GET /online-status/alice%0d%0a${M}%1b%5b2K HTTP/1.1\r\nHost: x\r\n\r\n`,
    `POST /auth/dev-login HTTP/1.1\r\nHost: x\r\nContent-Length: ${JSON.stringify({ username: `alice\n${M}` }).length}\r\n\r\n${JSON.stringify({ username: `alice\n${M}` })}`,
    `GET /users/search?q=a%0a${M} HTTP/1.1\r\nHost: x\r\n\r\n`,
  ];
  for (const r of requests) await rawExchange(port, Buffer.from(r, 'utf8'), { wait: 600 });
  // Values that do reach a log line: a foreign Origin (logged with the 403)
  // holding a tab and raw UTF-8 NEL, line separator and RTL override...
  const origin = Buffer.concat([Buffer.from(`https://e\t`), Buffer.from(`\u0085${M}\u2028${fake}\u202e`, 'utf8')]);
  const head = upgradeRequest(port, null, `Cookie: accessToken=${tok}\r\n`).slice(0, -2);
  const up = Buffer.concat([Buffer.from(`${head}Origin: `), origin, Buffer.from('\r\n\r\n')]);
  assert.match((await rawExchange(port, up)).toString('latin1'), /^HTTP\/1\.1 403/);
  // ... and a Socket.IO event name (valid JSON may hold them raw).
  const sio = await sioConnected(sioClient(s.gateways[0].url, { token: tok }));
  sio.emit(`evil\u2028${fake}\u0085\u2029`, {});
  const dm = await sioAck(sio, 'direct_message', { to: `bob\n${M}`, message: `hi\n${fake}` });
  assert.equal(dm.error, 'unknown-user');
  sio.disconnect();

  const marked = await waitFor(() => {
    const lines = heraldLogs().flatMap(([, t]) => t.split('\n')).filter((l) => l.includes(M));
    return lines.length >= 2 && lines;
  }, { what: 'the marked values in the log' });
  for (const line of marked) {
    assert.match(line, LINE, `a marked value starts no line: ${JSON.stringify(line)}`);
    assert.ok(!UNSAFE.test(line), `escaped: ${JSON.stringify(line)}`);
  }
  assert.ok(marked.some((l) => l.includes('\\u2028') && l.includes('\\x09')), 'the origin line, escaped');
  for (const [name, text] of heraldLogs()) {
    for (const line of text.split('\n').slice(0, -1)) {
      assert.match(line, LINE, `${name}: every line is one of ours: ${JSON.stringify(line)}`);
      assert.ok(!UNSAFE.test(line), `${name}: ${JSON.stringify(line)}`);
    }
  }
});

// ---- secrets never logged -----------------------------------------------------------

test('at log level debug, no log holds the JWT secret, the API key, a token or its signature; every refusal is logged with its reason', async () => {
  const gw = s.gateways[0];
  const tokens = [];
  const keep = (t) => { tokens.push(t); return t; };
  const uid = s.users.alice;
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const bad = {
    'bad-signature': keep(makeToken(uid, { secret: 'an-attackers-guess-of-the-secret' })),
    expired: keep(makeToken(uid, { ttl: -60 })),
    'bad-algorithm': keep(`${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: String(uid), exp: now + 600 })}.`),
  };
  const good = () => keep(s.token('alice'));

  // Logins that work, by every token source and endpoint.
  const viaBearer = await new Client(gw.ws, { headers: { Authorization: `Bearer ${good()}` } }).opened();
  const viaCookie = await new Client(gw.ws, { headers: { Cookie: `accessToken=${good()}` } }).opened();
  const viaQuery = await new Client(`${gw.ws}?token=${encodeURIComponent(good())}`).opened();
  viaBearer.send({ type: 'refresh-token', token: good() });
  await viaBearer.next(is('token-refreshed'));
  const sio = await sioConnected(sioClient(gw.url, { token: good() }));
  assert.deepEqual(await sioAck(sio, 'refresh-token', { token: good() }), { ok: true });
  const sioQuery = await sioConnected(sioClient(gw.url, { query: { token: good() } }));
  assert.equal((await http(s, 'POST', 0, '/live_chat_message', { body: { message: 'hi' }, bearer: good() })).status, 202);
  const login = await http(s, 'POST', 0, '/auth/dev-login', { body: { username: 'bob' } });
  assert.equal(login.status, 200);
  const devCookie = (await fetch(`${gw.url}/auth/dev-login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'carol' }),
  })).headers.get('set-cookie').split(';')[0];
  keep(devCookie.split('=')[1]);
  const viaDevCookie = await new Client(gw.ws, { headers: { Cookie: devCookie } }).opened();
  assert.equal((await http(s, 'POST', 0, '/api/notify/game-stats-update', {
    body: { userId: uid, stats: { wins: 1, losses: 0 } }, bearer: API_KEY,
  })).status, 202);

  // Refusals, each of which must be logged with its reason.
  for (const [word, t] of Object.entries(bad)) {
    const r = await new Client(gw.ws, { headers: { Authorization: `Bearer ${t}` } }).opened().catch((e) => e);
    assert.equal(r.status, 401, word);
    assert.equal((await http(s, 'POST', 0, '/live_chat_message', { body: { message: 'x' }, bearer: t })).status, 401);
    const e = await sioConnected(sioClient(gw.url, { token: t })).catch((x) => x);
    assert.equal(e.data?.code, word);
    const h = await sioConnected(sioClient(gw.url, { query: { token: t } })).catch((x) => x);
    assert.equal(h.data?.code, word, 'a refused token from the handshake');
  }
  viaCookie.send({ type: 'refresh-token', token: keep(s.token('bob')) });
  assert.equal((await viaCookie.closed).code, 4003);
  viaQuery.send({ type: 'refresh-token', token: bad.expired });
  assert.equal((await viaQuery.closed).code, 4001);
  const gone = sioOnce(sio, 'disconnect');
  sio.emit('refresh-token', { token: keep(s.token('dave')) });
  await gone;
  const foreign = await new Client(gw.ws, { headers: { Cookie: `accessToken=${good()}`, Origin: 'https://evil.example' } }).opened().catch((e) => e);
  assert.equal(foreign.status, 403);
  for (const key of [`${API_KEY}x`, API_KEY.slice(0, -1), s.token('alice')]) {
    const r = await http(s, 'POST', 0, '/api/notify/account-deleted', { body: { userId: uid }, bearer: key });
    assert.equal(r.status, 401);
  }
  const apiKeyAsToken = await new Client(gw.ws, { headers: { Authorization: `Bearer ${API_KEY}` } }).opened().catch((e) => e);
  assert.equal(apiKeyAsToken.status, 401);
  // Tokens in places nobody should put them.
  await rawExchange(gw.port, `GET /nope?token=${good()} HTTP/1.1\r\nHost: x\r\n\r\n`);
  await rawExchange(gw.port, Buffer.concat([Buffer.from(upgradeRequest(gw.port, good())), clientFrame(1, JSON.stringify({ type: good() }))]));

  for (const c of [viaBearer, viaDevCookie]) await c.close();
  sioQuery.disconnect();
  await s.stop(); // every line, shutdown included, is written now
  const logs = fs.readdirSync(s.logDir).map((f) => [f, fs.readFileSync(path.join(s.logDir, f), 'utf8')]);
  const all = logs.map(([, t]) => t).join('\n');
  assert.ok(all.length > 10000 && /DEBUG/.test(all), 'the logs are there, at debug level');
  const secrets = [['the JWT secret', SECRET], ['the API key', API_KEY]];
  for (const t of tokens) {
    secrets.push(['a token', t]);
    const sig = t.split('.')[2];
    if (sig) secrets.push(['a token signature', sig]);
  }
  for (const [what, value] of secrets) {
    for (const [file, text] of logs) assert.ok(!text.includes(value), `${what} is in ${file}`);
  }
  assert.match(all, /config:.*api-key=\(set\)/, 'the config line masks the key');

  const refusals = [
    /token refused: bad-signature: 401/, /token refused: expired: 401/, /token refused: bad-algorithm: 401/,
    /token refused: malformed: 401/,
    /session \d+: CONNECT token refused: bad-signature/, /session \d+: CONNECT token refused: expired/,
    /session \d+: CONNECT token refused: bad-algorithm/,
    /session \d+: CONNECT with a refused handshake token: bad-signature/,
    /session \d+: CONNECT with a refused handshake token: expired/,
    /session \d+: CONNECT with a refused handshake token: bad-algorithm/,
    /conn \d+: refresh-token for another user/, /conn \d+: refresh-token refused: expired/,
    /session \d+: refresh-token refused \(another user\)/,
    /conn \d+: \/ws with the session cookie from foreign origin https:\/\/evil\.example: 403/,
    /notify with a missing or wrong API key: 401/,
  ];
  for (const re of refusals) assert.match(all, re);
  s = null;
});
