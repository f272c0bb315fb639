// Recovered sessions (PROTOCOL.md §4a): a client whose gateway dies (kill
// -9) or whose connection blips comes back, on any gateway, as the same
// session, with every event it missed, once each, in order: the stock
// socket.io-client (connection state recovery: same socket.id,
// socket.recovered === true, rooms intact) and the raw /ws resume. Past
// the window, a fresh session. And a thousand sessions at once.
//
// The clients reach the gateways through a small TCP proxy (what nginx is
// in production): it points at gateway A, and at B once A is killed, so
// the stock client, which knows one URL, reconnects to the other gateway.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { io } from 'socket.io-client';
import { Stack, Client, waitFor, sioClient, sioConnected, sioNext, closeSioClients, metrics, freePort } from './harness.mjs';
import { API_KEY, http, notify } from './social-lib.mjs';

after(() => closeSioClients());

// A TCP proxy on a free port to one of the gateways; .to(port) switches
// where new connections go, .cut() drops every open one (a network blip).
async function proxy(targetPort) {
  const port = await freePort();
  const socks = new Set();
  let target = targetPort;
  let refusing = false;
  const server = net.createServer((c) => {
    if (refusing) { c.destroy(); return; }
    const up = net.connect(target, '127.0.0.1');
    socks.add(c); socks.add(up);
    c.pipe(up); up.pipe(c);
    const end = () => { c.destroy(); up.destroy(); socks.delete(c); socks.delete(up); };
    c.on('error', end); up.on('error', end); c.on('close', end); up.on('close', end);
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/ws`,
    to(p) { target = p; },
    refuse(on) { refusing = on; },
    cut() { for (const s of socks) s.destroy(); socks.clear(); },
    close() { this.cut(); server.close(); },
  };
}

// The stock client as a page has it: default reconnection, WebSocket.
function pageClient(url, token) {
  return sioClient(url, { token, reconnection: true });
}

// Events of `name` whose payload matches pred, as the client got them.
const got = (sock, name, pred = () => true) => sock.events.filter((e) => e[0] === name && pred(e[1]));

const stackOpts = (extra = {}) => ({
  graceMs: 1500,
  leaseMs: 10000, // A's death is noticed by the client long before the lease
  env: { HERALD_API_KEY: API_KEY, HERALD_CHAT_BURST: '1000', HERALD_CHAT_RATE: '1000', HERALD_CHAT_RATE_PER_IP: '0',
    HERALD_CONN_RATE_PER_IP: '0', HERALD_CONNS_PER_IP: '0', ...extra },
});

test('Socket.IO: gateway A killed with SIGKILL, the client comes back on B as the same session with everything it missed', async () => {
  const s = await new Stack('recovery-sio', stackOpts()).start();
  const px = await proxy(s.gateways[0].port);
  try {
    const [A, B] = s.gateways;
    const carol = pageClient(px.url, s.token('carol'));
    await sioConnected(carol);
    const firstId = carol.id;
    // A room: carol watches dave's profile.
    await carol.timeout(5000).emitWithAck('watch-profile', { userId: s.users.dave });
    const bob = await s.connect('bob', 1);
    const alice = await s.sio('alice', 1);
    await bob.next((m) => m.type === 'status_update' && m.userId === s.users.alice && m.status === 'online');
    // Something before the fault, so carol holds an offset.
    await alice.timeout(5000).emitWithAck('livechat', { message: 'before' });
    await sioNext(carol, 'livechat', (d) => d.message === 'before');
    const lost = new Promise((resolve) => carol.once('disconnect', resolve));

    A.proc.kill('SIGKILL');
    await A.proc.exited;
    px.to(B.port);
    await lost;
    // The gap: DMs, live chat, a status change and a profile update, in a
    // known order, all while carol has no connection.
    const sent = [];
    for (let i = 0; i < 5; i++) {
      const ack = await alice.timeout(5000).emitWithAck('direct_message', { to: 'carol', message: `dm ${i}` });
      assert.equal(ack.ok, true);
      sent.push(`dm ${i}`);
      assert.equal((await alice.timeout(5000).emitWithAck('livechat', { message: `chat ${i}` })).ok, true);
      sent.push(`chat ${i}`);
    }
    const erin = await s.connect('erin', 1);
    await bob.next((m) => m.type === 'status_update' && m.userId === s.users.erin && m.status === 'online');
    assert.equal((await notify(s, 'profile-update', { userId: s.users.dave, user: { username: 'dave', avatar: 'gap.png' } }, { gi: 1 })).status, 202);

    await waitFor(() => carol.connected, { what: 'carol back', timeout: 15000 });
    assert.equal(carol.recovered, true, 'socket.recovered');
    assert.equal(carol.id, firstId, 'the same socket.id');
    // Everything from the gap, once each and in order.
    await waitFor(() => got(carol, 'user-status-change', (d) => d.userId === s.users.erin).length === 1 &&
      got(carol, 'profile-update', (d) => d.user && d.user.avatar === 'gap.png').length === 1 &&
      got(carol, 'livechat', (d) => d.message === 'chat 4').length === 1, { what: 'the gap replayed', timeout: 10000 });
    const seen = carol.events.filter((e) => (e[0] === 'direct_message' || e[0] === 'livechat') && e[1].message !== 'before')
      .map((e) => e[1].message);
    assert.deepEqual(seen, sent, 'every DM and chat line of the gap, once, in order');
    // Every event carried its offset as the last argument.
    assert.ok(carol.offsets.every((o) => typeof o === 'string'), 'an offset on every event');
    // The room came back with the session: a new update reaches carol
    // without a new watch-profile.
    assert.equal((await notify(s, 'profile-update', { userId: s.users.dave, user: { username: 'dave', avatar: 'after.png' } }, { gi: 1 })).status, 202);
    await sioNext(carol, 'profile-update', (d) => d.user && d.user.avatar === 'after.png');
    // No presence transition for carol: her session never ended.
    await bob.sync();
    assert.deepEqual(bob.statuses(s.users.carol).filter((x) => x === 'offline'), [], 'carol was never offline');
    const m = await metrics(B.url);
    assert.equal(m.get('herald_gateway_sessions_recovered_total'), 1);
    assert.ok(m.get('herald_gateway_events_replayed_total') >= sent.length + 2);
    // And she is served on B both ways.
    const ack = await carol.timeout(5000).emitWithAck('direct_message', { to: 'erin', message: 'hi from B' });
    assert.equal(ack.ok, true);
    await erin.next((x) => x.type === 'direct_message' && x.message === 'hi from B');
    await erin.close();
    await bob.close();
  } finally {
    px.close();
    closeSioClients();
    await s.stop();
  }
});

test('raw /ws: gateway A killed with SIGKILL, ?resume=<id>:<offset> on B: what was missed, then resumed', async () => {
  const s = await new Stack('recovery-ws', stackOpts()).start();
  try {
    const [A, B] = s.gateways;
    const hdr = { headers: { Authorization: `Bearer ${s.token('carol')}` } };
    const c1 = await new Client(A.ws, hdr).opened();
    const session = await c1.next((m) => m.type === 'session', 5000, 'session frame');
    assert.ok(session.id && session.offset, 'id and offset');
    assert.equal(c1.messages[0].type, 'session', 'the first frame');
    const alice = await s.connect('alice', 1);
    alice.send({ type: 'livechat', message: 'before' });
    const before = await c1.next((m) => m.type === 'livechat' && m.message === 'before');
    assert.ok(before.offset, 'every frame carries an offset');
    // Gateway A dies with the connection.
    A.proc.kill('SIGKILL');
    await A.proc.exited;
    await c1.closed;
    const sent = [];
    for (let i = 0; i < 4; i++) {
      alice.send({ type: 'direct_message', to: 'carol', message: `dm ${i}` });
      alice.send({ type: 'livechat', message: `chat ${i}` });
      sent.push(`dm ${i}`, `chat ${i}`);
    }
    await alice.sync();
    const c2 = await new Client(`${B.ws}?resume=${encodeURIComponent(`${session.id}:${before.offset}`)}`, hdr).opened();
    const resumed = await c2.next((m) => m.type === 'resumed', 10000, 'resumed');
    const upTo = c2.messages.indexOf(resumed);
    const missed = c2.messages.slice(0, upTo).filter((m) => m.type === 'direct_message' || m.type === 'livechat')
      .map((m) => m.message);
    assert.deepEqual(missed, sent, 'what was missed, once each, in order, before resumed');
    assert.ok(!c2.messages.some((m) => m.type === 'session'), 'no new session');
    // Live again, on B.
    alice.send({ type: 'livechat', message: 'after' });
    const live = await c2.next((m) => m.type === 'livechat' && m.message === 'after');
    assert.ok(c2.messages.indexOf(live) > upTo);
    // A blip on B (the TCP connection dies without a close frame): the
    // session is kept, detached, and resumes on B itself.
    c2.ws._socket.destroy();
    await c2.closed;
    // Once B has seen it go (alice's is then its only /ws connection), the
    // session is detached and its id free there.
    await waitFor(async () => (await metrics(B.url)).get('herald_gateway_connections{kind="ws"}') === 1,
      { what: 'B noticed the blip' });
    alice.send({ type: 'direct_message', to: 'carol', message: 'during the blip' });
    await alice.sync();
    const c4 = await new Client(`${B.ws}?resume=${encodeURIComponent(`${session.id}:${live.offset}`)}`, hdr).opened();
    const again = await c4.next((m) => m.type === 'resumed', 10000, 'resumed after the blip');
    assert.deepEqual(c4.messages.slice(0, c4.messages.indexOf(again)).map((m) => m.message), ['during the blip']);
    await c4.close();
    // A resume that names an unknown session gets a fresh one.
    const c3 = await new Client(`${B.ws}?resume=${encodeURIComponent(`999.123.1-0:1-0`)}`, hdr).opened();
    const fresh = await c3.next((m) => m.type === 'session', 10000, 'a fresh session');
    assert.notEqual(fresh.id, session.id);
    await c3.close();
    await alice.close();
  } finally {
    await s.stop();
  }
});

test('past the window the client gets a fresh session (recovered === false)', async () => {
  const WINDOW = 1500;
  const s = await new Stack('recovery-window', stackOpts({ HERALD_RECOVERY_WINDOW_MS: String(WINDOW) })).start();
  const px = await proxy(s.gateways[0].port);
  try {
    const carol = pageClient(px.url, s.token('carol'));
    await sioConnected(carol);
    const firstId = carol.id;
    const lost = new Promise((resolve) => carol.once('disconnect', resolve));
    // The network is down (connections refused) for longer than the window.
    px.refuse(true);
    px.cut();
    await lost;
    const bob = await s.connect('bob', 1);
    await bob.next((m) => m.type === 'status_update' && m.userId === s.users.carol && m.status === 'offline', 10000);
    // The fault is held until the broker has dropped the session at the
    // end of its window.
    await waitFor(() => /recovery window over/.test(s.broker.tail(400)), { what: 'the window over', timeout: 15000 });
    px.refuse(false);
    await waitFor(() => carol.connected, { what: 'carol back', timeout: 15000 });
    assert.equal(carol.recovered, false);
    assert.notEqual(carol.id, firstId);
    await bob.next((m) => m.type === 'status_update' && m.userId === s.users.carol &&
      bob.statuses(s.users.carol).at(-1) === 'online', 10000);
    await bob.close();
  } finally {
    px.close();
    closeSioClients();
    await s.stop();
  }
});

test('a thousand sessions come back at once after their gateway is killed', async () => {
  const N = 1000;
  const s = await new Stack('recovery-1000', stackOpts()).start();
  const px = await proxy(s.gateways[0].port);
  const socks = [];
  try {
    const [A, B] = s.gateways;
    const names = ['bob', 'carol', 'dave', 'erin'];
    for (let i = 0; i < N; i += 100) {
      const batch = [];
      for (let j = i; j < Math.min(N, i + 100); j++) {
        const sock = io(px.url, { forceNew: true, transports: ['websocket'], auth: { token: s.token(names[j % names.length]) } });
        sock.events = [];
        sock.onAny((name, ...args) => sock.events.push([name, ...args]));
        socks.push(sock);
        batch.push(sioConnected(sock, 20000));
      }
      await Promise.all(batch);
    }
    const ids = socks.map((x) => x.id);
    const sender = await s.connect('alice', 1);
    sender.send({ type: 'livechat', message: 'before' });
    await waitFor(() => socks.every((x) => got(x, 'livechat', (d) => d.message === 'before').length === 1),
      { what: 'everyone has an offset', timeout: 20000 });
    const lost = socks.map((x) => new Promise((resolve) => x.once('disconnect', resolve)));
    A.proc.kill('SIGKILL');
    await A.proc.exited;
    px.to(B.port);
    await Promise.all(lost);
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) sender.send({ type: 'livechat', message: `gap ${i}` });
    await sender.sync();
    await waitFor(() => socks.every((x) => x.connected), { what: 'all back', timeout: 60000 });
    const back = Date.now() - t0;
    await waitFor(() => socks.every((x) => got(x, 'livechat', (d) => d.message === 'gap 2').length === 1),
      { what: 'the gap everywhere', timeout: 30000 });
    const done = Date.now() - t0;
    assert.equal(socks.filter((x) => x.recovered).length, N, 'every session recovered');
    assert.deepEqual(socks.map((x) => x.id), ids, 'same ids');
    for (const x of socks) {
      const lines = got(x, 'livechat').map((e) => e[1].message);
      assert.deepEqual(lines, ['before', 'gap 0', 'gap 1', 'gap 2']);
    }
    // Each replay ends at its session's "moved" entry, past the others'.
    await waitFor(async () => (await metrics(B.url)).get('herald_gateway_sessions_recovered_total') === N,
      { what: 'every replay finished', timeout: 20000 });
    console.log(`# ${N} sessions: all connected again ${back} ms after the kill, all replayed ${done} ms after it`);
    await sender.close();
  } finally {
    for (const x of socks) x.disconnect();
    px.close();
    await s.stop();
  }
});
