// The stock socket.io-client (v4) against Herald's /socket.io/ endpoint,
// unchanged: the snippets of PROTOCOL.md §4, default transports (polling
// then upgrade), acks, connect_error, heartbeat, maxPayload, token expiry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import fs from 'node:fs';
import path from 'node:path';
import { Stack, makeToken, waitFor, metrics, BIN } from './harness.mjs';

let s;
before(async () => {
  s = await new Stack('socketio', {
    pingIntervalMs: 300,
    pingTimeoutMs: 2000, // generous: a loaded 2-core CI box must not drop healthy clients
    recheckMs: 100,
    env: { HERALD_MAX_PAYLOAD: '4000' },
  }).start();
});
after(async () => { await s.stop(); });

const url = (i = 0) => s.gateways[i].url;
const sockets = [];
function client(i, opts) {
  const sock = io(url(i), { reconnection: false, ...opts });
  sockets.push(sock);
  sock.events = [];
  sock.onAny((name, ...args) => sock.events.push([name, ...args]));
  return sock;
}
const connected = (sock) => new Promise((resolve, reject) => {
  if (sock.connected) return resolve(sock);
  sock.once('connect', () => resolve(sock));
  sock.once('connect_error', reject);
});
const once = (sock, ev, ms = 5000) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error(`no ${ev} within ${ms} ms`)), ms);
  sock.once(ev, (...a) => { clearTimeout(t); resolve(a); });
});
const onlineUsers = (sock) => new Promise((resolve) => sock.emit('get-online-users', resolve));
// Long-polling GETs the gateway at url holds parked (herald_gateway_polls_parked).
const parkedPolls = async (u) => (await metrics(u)).get('herald_gateway_polls_parked');
const statusOf = (sock, uid) => sock.events.filter(([n, d]) => n === 'user-status-change' && d.userId === uid).map(([, d]) => d.status);

after(() => { for (const so of sockets) so.disconnect(); });

test('guest with token: null over websocket; get-online-users answers number[]', async () => {
  const socket = client(0, { auth: { token: null }, transports: ['websocket'] });
  await connected(socket);
  const users = await onlineUsers(socket);
  assert.ok(Array.isArray(users));
  assert.ok(users.every((u) => typeof u === 'number'));
  socket.disconnect();
});

test('user-status-change reaches guests when another user connects and leaves', async () => {
  const guest = client(0, { auth: { token: null }, transports: ['websocket'] });
  await connected(guest);
  await onlineUsers(guest); // everything before this is settled
  const bob = client(1, { auth: { token: s.token('bob') }, transports: ['websocket'] });
  await connected(bob);
  await waitFor(() => statusOf(guest, s.users.bob).includes('online'), { what: 'bob online' });
  const ev = guest.events.find(([n, d]) => n === 'user-status-change' && d.userId === s.users.bob);
  assert.equal(ev[1].status, 'online');
  assert.ok((await onlineUsers(guest)).includes(s.users.bob));
  bob.disconnect();
  await waitFor(() => statusOf(guest, s.users.bob).includes('offline'), { what: 'bob offline' });
  assert.deepEqual(statusOf(guest, s.users.bob), ['online', 'offline']);
  assert.ok(!(await onlineUsers(guest)).includes(s.users.bob));
  guest.disconnect();
});

test('login upgrade by reconnect makes the new connection the user\'s', async () => {
  const watcher = client(1, { auth: { token: null }, transports: ['websocket'] });
  await connected(watcher);
  const socket = client(0, { auth: { token: null }, transports: ['websocket'] });
  await connected(socket);
  await onlineUsers(watcher);
  assert.deepEqual(statusOf(watcher, s.users.carol), []);
  socket.auth = { token: s.token('carol') };
  socket.disconnect().connect();
  await connected(socket);
  await waitFor(() => statusOf(watcher, s.users.carol).includes('online'), { what: 'carol online' });
  assert.ok((await onlineUsers(socket)).includes(s.users.carol));
  socket.disconnect();
  await waitFor(() => statusOf(watcher, s.users.carol).includes('offline'), { what: 'carol offline' });
  watcher.disconnect();
});

test('default transports: long-polling first, then the upgrade to WebSocket', async () => {
  const watcher = client(0, { auth: { token: null }, transports: ['websocket'] });
  await connected(watcher);
  await onlineUsers(watcher);
  const socket = client(1, { auth: { token: s.token('dave') } });
  const first = new Promise((r) => socket.io.once('open', () => r(socket.io.engine.transport.name)));
  await connected(socket);
  assert.equal(await first, 'polling', 'the session opens over long-polling');
  // Works while still polling.
  assert.ok((await onlineUsers(socket)).includes(s.users.dave));
  await waitFor(() => socket.io.engine.transport.name === 'websocket', { what: 'upgrade' });
  await waitFor(() => statusOf(watcher, s.users.dave).includes('online'), { what: 'dave online' });
  assert.ok((await onlineUsers(socket)).includes(s.users.dave));
  // Events reach it after the upgrade.
  const erin = client(0, { auth: { token: s.token('erin') }, transports: ['websocket'] });
  await connected(erin);
  await waitFor(() => statusOf(socket, s.users.erin).includes('online'), { what: 'erin seen by dave' });
  erin.disconnect();
  socket.disconnect();
  await waitFor(() => statusOf(watcher, s.users.dave).includes('offline'), { what: 'dave offline' });
  assert.deepEqual(statusOf(watcher, s.users.dave), ['online', 'offline']);
  watcher.disconnect();
});

test('polling only (no upgrade) also gets events', async () => {
  const socket = client(0, { auth: { token: null }, transports: ['polling'] });
  await connected(socket);
  const bob = client(1, { auth: { token: s.token('bob') }, transports: ['websocket'] });
  await connected(bob);
  await waitFor(() => statusOf(socket, s.users.bob).includes('online'), { what: 'bob online via polling' });
  bob.disconnect();
  await waitFor(() => statusOf(socket, s.users.bob).includes('offline'), { what: 'bob offline via polling' });
  socket.disconnect();
});

test('a bad token is a connect_error the client can show', async () => {
  for (const [tok, word] of [[makeToken(s.users.alice, { secret: 'wrong' }), 'bad-signature'],
    [makeToken(s.users.alice, { ttl: -5 }), 'expired']]) {
    const socket = client(0, { auth: { token: tok }, transports: ['websocket'] });
    const [err] = await once(socket, 'connect_error');
    assert.equal(err.message, 'invalid token');
    assert.equal(err.data.code, word);
    socket.disconnect();
  }
  const other = io(`${url(0)}/admin`, { reconnection: false, transports: ['websocket'] });
  sockets.push(other);
  const [err] = await once(other, 'connect_error');
  assert.equal(err.message, 'Invalid namespace');
  other.disconnect();
});

test('an expiring token gets token-expired, then a server disconnect', async () => {
  const socket = client(0, { auth: { token: makeToken(s.users.alice, { ttl: 2 }) }, transports: ['websocket'] });
  await connected(socket);
  const [reason] = await once(socket, 'disconnect', 5000);
  assert.equal(reason, 'io server disconnect');
  assert.ok(socket.events.some(([n]) => n === 'token-expired'));
});

test('heartbeat: a client that stops answering pings is dropped and goes offline', async () => {
  const watcher = client(1, { auth: { token: null }, transports: ['websocket'] });
  await connected(watcher);
  const ws = new WebSocket(`${s.gateways[0].ws.replace('/ws', '')}/socket.io/?EIO=4&transport=websocket`);
  const frames = [];
  ws.on('message', (d) => {
    const m = d.toString();
    frames.push(m);
    if (m.startsWith('0')) ws.send(`40${JSON.stringify({ token: s.token('erin') })}`);
    // pings ("2") are never answered
  });
  const closed = new Promise((r) => ws.on('close', r));
  await waitFor(() => statusOf(watcher, s.users.erin).includes('online'), { what: 'erin online' });
  const t0 = Date.now();
  await closed;
  assert.ok(frames.includes('2'), 'the server pinged');
  assert.ok(Date.now() - t0 < 8000, "dropped within a few ping periods");
  await waitFor(() => statusOf(watcher, s.users.erin).includes('offline'), { what: 'erin offline' });
  watcher.disconnect();
});

test('maxPayload: an oversized message closes the session', async () => {
  const socket = client(0, { auth: { token: null }, transports: ['websocket'] });
  await connected(socket);
  socket.emit('get-online-users', 'x'.repeat(5000));
  const [reason] = await once(socket, 'disconnect');
  assert.equal(reason, 'transport close');
  // Over polling: 413, and the session is gone.
  const open = await (await fetch(`${url(0)}/socket.io/?EIO=4&transport=polling`)).text();
  const { sid, maxPayload } = JSON.parse(open.slice(1));
  assert.equal(maxPayload, 4000);
  const r = await fetch(`${url(0)}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: `4${'y'.repeat(5000)}` });
  assert.equal(r.status, 413);
  const again = await fetch(`${url(0)}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
  assert.equal(again.status, 400);
});

test('Engine.IO errors: bad version, transport, sid, method', async () => {
  const cases = [
    ['/socket.io/?transport=polling', 5], ['/socket.io/?EIO=3&transport=polling', 5],
    ['/socket.io/?EIO=4&transport=carrier-pigeon', 0], ['/socket.io/?EIO=4&transport=polling&sid=nope', 1],
  ];
  for (const [path, code] of cases) {
    const r = await fetch(`${url(1)}${path}`);
    assert.equal(r.status, 400, path);
    assert.equal((await r.json()).code, code, path);
  }
  const r = await fetch(`${url(1)}/socket.io/?EIO=4&transport=polling`, { method: 'PUT' });
  assert.equal((await r.json()).code, 2);
});

test('Engine.IO by hand: probe, noop to the parked GET, upgrade, and what is refused after', async () => {
  const base = `${url(0)}/socket.io/?EIO=4&transport=polling`;
  const { sid } = JSON.parse((await (await fetch(base)).text()).slice(1));
  const wsUrl = `${url(0).replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket&sid=${sid}`;
  const ws = new WebSocket(wsUrl);
  const got = [];
  ws.on('message', (d) => got.push(d.toString()));
  await new Promise((r) => ws.once('open', r));
  const parked = await parkedPolls(url(0));
  const poll = fetch(`${base}&sid=${sid}`); // parked until the upgrade ends it
  await waitFor(async () => (await parkedPolls(url(0))) > parked, { what: 'the GET parked' });
  ws.send('2probe');
  await waitFor(() => got.includes('3probe'), { what: '3probe' });
  assert.equal(await (await poll).text(), '6', 'the parked GET gets a noop');
  ws.send('5');
  ws.send('40');
  await waitFor(() => got.some((m) => m.startsWith('40{"sid":')), { what: 'CONNECT answer over WebSocket' });
  assert.equal((await fetch(`${base}&sid=${sid}`)).status, 400, 'polling after the upgrade is refused');
  const ws2 = new WebSocket(wsUrl);
  const code = await new Promise((r) => ws2.on('close', (c) => r(c)));
  assert.equal(code, 1008, 'a second WebSocket for the session is accepted, then closed');
  ws.close();

  // Two GETs at once: the first gets the close packet, the second a 400,
  // and the session is gone.
  const { sid: sid2 } = JSON.parse((await (await fetch(base)).text()).slice(1));
  const parked2 = await parkedPolls(url(0));
  const first = fetch(`${base}&sid=${sid2}`);
  await waitFor(async () => (await parkedPolls(url(0))) > parked2, { what: 'the first GET parked' });
  const second = await fetch(`${base}&sid=${sid2}`);
  assert.equal(second.status, 400);
  assert.equal(await (await first).text(), '1');
  assert.equal((await fetch(`${base}&sid=${sid2}`)).status, 400);
});

test('a poll split over two TCP reads, answered at once, is answered once', async () => {
  const net = await import('node:net');
  const base = `${url(1)}/socket.io/?EIO=4&transport=polling`;
  const { sid } = JSON.parse((await (await fetch(base)).text()).slice(1));
  // A guest CONNECT: its answer waits in the session's queue.
  assert.equal((await fetch(`${base}&sid=${sid}`, { method: 'POST', body: '40' })).status, 200);
  const req = `GET /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n\r\n`;
  const got = await new Promise((resolve) => {
    const chunks = [];
    const sock = net.connect(s.gateways[1].port, '127.0.0.1', () => {
      sock.write(req.slice(0, 20));
      setTimeout(() => sock.write(req.slice(20)), 100);
    });
    const done = () => { sock.destroy(); resolve(Buffer.concat(chunks).toString()); };
    let first = true;
    sock.on('data', (d) => {
      chunks.push(d);
      if (!first) return;
      first = false;
      // Had the request been parsed twice, a second GET would now be
      // parked on this socket and would receive the "3" queued by this ping.
      fetch(`${base}&sid=${sid}`, { method: 'POST', body: '2' }).then(() => setTimeout(done, 200));
    });
    setTimeout(done, 3000);
  });
  assert.equal((got.match(/HTTP\/1\.1 /g) || []).length, 1, got);
  assert.match(got, /^HTTP\/1\.1 200/);
  assert.match(got, /\r\n\r\n40\{"sid":"[^"]+"(,"pid":"[^"]+")?\}$/);
  const next = await fetch(`${base}&sid=${sid}`);
  assert.equal(next.status, 200, 'the session is intact');
  // The answer to our ping waited for this poll (a server ping may follow).
  assert.match(await next.text(), /^3(\x1e2)?$/);
});

// The Engine.IO sid is a polling credential; socket.id is what applications
// show to other users. Socket.IO sends a separate random id, and so do we.
test('socket.id is a random id of its own, never the Engine.IO sid', async () => {
  const a = client(0, { auth: { token: s.token('alice') } }); // polling, then the upgrade
  const b = client(1, { auth: { token: null }, transports: ['websocket'] });
  await Promise.all([connected(a), connected(b)]);
  for (const sock of [a, b]) {
    assert.match(sock.id, /^[A-Za-z0-9_-]{20}$/);
    assert.match(sock.io.engine.id, /^[A-Za-z0-9_-]{20}$/);
    assert.notEqual(sock.id, sock.io.engine.id);
  }
  assert.notEqual(a.id, b.id);
  a.disconnect();
  b.disconnect();
});

// A gateway whose getrandom(2) fails (the shim tests/integration/no_random.c,
// preloaded) must refuse to create sessions rather than hand out ids anyone
// could guess: HTTP 500 to the handshake (polling and direct WebSocket alike),
// CONNECT_ERROR "internal" to a CONNECT; and work again once it has them.
test('no random bytes: sessions refused (500, CONNECT_ERROR internal), logged, never a weak id', async () => {
  const flag = path.join(s.dir, 'no-random');
  const gw = await s.startGateway('gw-norandom', undefined, {
    LD_PRELOAD: path.join(BIN, 'libherald_test_norandom.so'),
    // The shim comes before the sanitizer runtime in the preload list.
    ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ?? ''}:verify_asan_link_order=0`,
    HERALD_TEST_NO_RANDOM_FILE: flag,
  });
  await s.waitHealthy(gw);
  const base = `${gw.url}/socket.io/?EIO=4&transport=polling`;
  const open = await (await fetch(base)).text(); // a session made while bytes were there
  const sid = JSON.parse(open.slice(1)).sid;

  fs.writeFileSync(flag, '');
  const r = await fetch(base);
  assert.equal(r.status, 500);
  assert.deepEqual(await r.json(), { error: 'internal', message: 'no random bytes for a session id' });
  const direct = await new Promise((resolve, reject) => {
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    ws.on('unexpected-response', (req, res) => { resolve(res.statusCode); ws.terminate(); });
    ws.on('open', () => reject(new Error('a direct WebSocket session opened without random bytes')));
    ws.on('error', () => {});
  });
  assert.equal(direct, 500);
  assert.equal((await fetch(`${base}&sid=${sid}`, { method: 'POST', body: '40' })).status, 200);
  const reply = await (await fetch(`${base}&sid=${sid}`)).text();
  assert.equal(reply, '44{"message":"no random bytes for a session id","data":{"code":"internal"}}');
  const log = fs.readFileSync(gw.proc.log, 'utf8');
  assert.match(log, /no random bytes for a session id \(getrandom: Function not implemented\): refused with 500/);
  assert.match(log, /no random bytes for a Socket\.IO id: CONNECT refused/);

  fs.rmSync(flag);
  const sock = client(2, { auth: { token: s.token('dave') } });
  await connected(sock);
  assert.notEqual(sock.id, sock.io.engine.id);
  sock.disconnect();
});
