// Presence at scale (PROTOCOL.md §2): scope related (own user, friends,
// watched profiles, the watch-presence list; friendship changes on open
// connections), coalescing (a flap inside the window writes nothing), and
// the gateways' own online lists: every form of get-online-users and
// get-online-count answered without a broker entry, and still exact after
// Redis restarts empty and after a gateway is paused past its lease.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, freePort, metrics, waitFor, sioClient, sioConnected, sioAck, closeSioClients } from './harness.mjs';
import { API_KEY, http as httpOn, is } from './social-lib.mjs';

const stacks = [];
after(async () => {
  closeSioClients();
  await Promise.all(stacks.map((st) => st.stop()));
});

async function stack(name, env = {}, opts = {}) {
  const adminPort = await freePort();
  const st = await new Stack(name, {
    ...opts,
    env: { HERALD_API_KEY: API_KEY, HERALD_ADMIN_LISTEN: `127.0.0.1:${adminPort}`, ...env },
  }).start();
  st.brokerAdminUrl = `http://127.0.0.1:${adminPort}`;
  stacks.push(st);
  return st;
}
const sorted = (a) => [...a].sort((x, y) => x - y);
const statusesOf = (c, uid) => c.messages.filter((m) => m.type === 'status_update' && m.userId === uid).map((m) => m.status);

test('scope related: friends, watched profiles and the watch-presence list hear a transition; others do not; a friendship made takes effect on open connections', async () => {
  const s = await stack('scope-related', { HERALD_PRESENCE_SCOPE: 'related' });
  // Demo friendships: alice-bob, bob-carol, alice-dave; erin has none.
  const { alice: A, bob: B, carol: C, erin: E } = s.users;
  const bob = await s.connect('bob', 0);
  const carol = await s.connect('carol', 1);
  const watcher = await sioConnected(sioClient(s.gateways[1].url, { token: null })); // a guest
  await sioAck(watcher, 'watch-profile', { userId: A });
  assert.deepEqual(await sioAck(watcher, 'watch-presence', { userIds: [C, E] }), { ok: true, online: [C] });

  const alice = await s.connect('alice', 1);
  await bob.next(is('status_update', (m) => m.userId === A && m.status === 'online'), 5000, 'friend hears alice');
  await waitFor(() => watcher.events.some(([e, d]) => e === 'user-status-change' && d.userId === A), { what: 'profile watcher hears alice' });
  // A round trip through the broker: alice's event would have come first.
  const listed = await carol.sync();
  assert.deepEqual(statusesOf(carol, A), [], 'carol (not alice\'s friend) hears nothing of her');
  assert.deepEqual(sorted(listed.users), sorted([B, C]), 'the whole list in scope related: her related online users');
  assert.deepEqual(sorted((await alice.sync()).users), sorted([A, B]));

  // carol adds alice to her presence list; the backend makes erin alice's
  // friend while erin's tab is open. alice's next transition reaches both.
  carol.send({ type: 'watch-presence', userIds: [A] });
  await carol.sync();
  const erin = await s.connect('erin', 0);
  await waitFor(() => watcher.events.some(([e, d]) => e === 'user-status-change' && d.userId === E && d.status === 'online'),
    { what: 'the guest hears erin (in its presence list)' });
  const r = await httpOn(s, 'PUT', 0, '/api/friendships', { body: { userId: A, friendId: E }, bearer: API_KEY });
  assert.equal(r.status, 200, r.text);
  await erin.next(is('status_update', (m) => m.userId === A && m.status === 'online'), 5000, 'erin told alice is online');
  await alice.next(is('status_update', (m) => m.userId === E && m.status === 'online'), 5000, 'alice told erin is online');
  await erin.sync();
  await alice.close();
  for (const [c, who] of [[bob, 'bob (friend)'], [carol, 'carol (watch-presence)'], [erin, 'erin (new friend)']]) {
    await c.next(is('status_update', (m) => m.userId === A && m.status === 'offline'), 5000, `${who} hears alice offline`);
  }
  await waitFor(() => watcher.events.some(([e, d]) => e === 'user-status-change' && d.userId === A && d.status === 'offline'),
    { what: 'profile watcher hears alice offline' });
  // Every gateway's list followed every transition, whoever heard it.
  for (const gi of [0, 1]) {
    const g = await sioConnected(sioClient(s.gateways[gi].url, { token: null }));
    assert.deepEqual(sorted(await sioAck(g, 'get-online-users', { ids: [A, B, C, s.users.dave, E] })),
      sorted([B, C, E]), `gateway ${gi}'s list`);
    g.disconnect();
  }
  await Promise.all([bob.close(), carol.close(), erin.close()]);
});

test('coalescing: a flap inside the window writes nothing; other transitions of the window arrive in order', async () => {
  const s = await stack('scope-flush', { HERALD_PRESENCE_FLUSH_MS: '300' });
  const { alice: A, carol: C } = s.users;
  const bob = await s.connect('bob', 0);
  const alice = await s.connect('alice', 1);
  await bob.next(is('status_update', (m) => m.userId === A && m.status === 'online'), 5000, 'alice online');
  // Alice's tab reloads inside one window: offline and online again.
  await alice.close();
  const again = await s.connect('alice', 1);
  // carol's connect comes after: her event is written in the same flush
  // or a later one, after alice's held state was settled.
  const carol = await s.connect('carol', 0);
  await bob.next(is('status_update', (m) => m.userId === C && m.status === 'online'), 5000, 'carol online');
  assert.deepEqual(statusesOf(bob, A), ['online'], 'no offline/online for a flap inside the window');
  assert.deepEqual(await s.onlineUsers(), sorted([A, s.users.bob, C]));
  // A real change is still written after at most a window.
  await again.close();
  await bob.next(is('status_update', (m) => m.userId === A && m.status === 'offline'), 5000, 'alice offline');
  await Promise.all([bob.close(), carol.close()]);
});

test('get-online-users (whole, ids, pages) and get-online-count come from the gateway: no broker entry per call', async () => {
  const s = await stack('scope-local');
  const ids = [s.users.alice, s.users.bob, s.users.carol];
  const tabs = [await s.connect('alice', 0), await s.connect('bob', 1), await s.connect('carol', 1)];
  const sock = await sioConnected(sioClient(s.gateways[0].url, { token: s.token('dave') }));
  const all = sorted([...ids, s.users.dave]);
  await waitFor(async () => JSON.stringify(await sioAck(sock, 'get-online-users')) === JSON.stringify(all), { what: 'the list' });
  const entries0 = (await metrics(s.brokerAdminUrl)).get('herald_broker_entries_total');
  for (let i = 0; i < 20; i++) {
    assert.deepEqual(await sioAck(sock, 'get-online-users'), all);
    assert.deepEqual(await sioAck(sock, 'get-online-users', { ids: [s.users.erin, s.users.bob, 999] }), [s.users.bob]);
    assert.equal(await sioAck(sock, 'get-online-count'), 4);
    const p1 = await sioAck(sock, 'get-online-users', { limit: 3 });
    assert.deepEqual(p1, { users: all.slice(0, 3), next: all[3] });
    assert.deepEqual(await sioAck(sock, 'get-online-users', { cursor: p1.next, limit: 3 }), { users: all.slice(3), next: null });
  }
  const raw = tabs[0];
  raw.send({ type: 'get_online_count' });
  assert.deepEqual({ ...(await raw.next(is('online_count'))) }, { type: 'online_count', count: 4 });
  raw.send({ type: 'get_online_users', limit: 2 });
  const page = await raw.next(is('online_users', (m) => m.next !== undefined));
  assert.deepEqual({ ...page }, { type: 'online_users', users: all.slice(0, 2), next: all[2] });
  const post = await httpOn(s, 'POST', 1, '/api/online-status', { body: { ids: [s.users.carol, s.users.erin] }, bearer: API_KEY });
  assert.deepEqual(post.json, { online: [s.users.carol] });
  const entries1 = (await metrics(s.brokerAdminUrl)).get('herald_broker_entries_total');
  assert.equal(entries1, entries0, '0 broker entries for 100 questions');
  // Bad arguments get a word, not a wrong answer.
  assert.deepEqual(await sioAck(sock, 'get-online-users', { limit: 0 }), { ok: false, error: 'bad-field', message: 'limit must be 1..1000' });
  await Promise.all(tabs.map((t) => t.close()));
});

// The lists every gateway answers from, asked through a fresh connection.
async function gatewayLists(s) {
  const out = [];
  for (const g of s.gateways) {
    const sock = await sioConnected(sioClient(g.url, { token: null }));
    out.push(sorted(await sioAck(sock, 'get-online-users')));
    sock.disconnect();
  }
  return out;
}

test('the gateways\' lists are exact after Redis restarts empty and after a gateway is paused past its lease', async () => {
  const s = await stack('scope-faults', {}, { leaseMs: 1500 });
  const alice = await s.connect('alice', 0);
  const bob = await s.connect('bob', 1);
  const carol = await s.connect('carol', 1);
  const truth = async () => s.onlineUsers();
  await waitFor(async () => JSON.stringify(await gatewayLists(s)) === JSON.stringify([await truth(), await truth()]),
    { what: 'lists equal online_users' });

  // Redis restarts empty; carol leaves while it is down.
  await s.redisProc.stop();
  await carol.close();
  await s.startRedis();
  await waitFor(async () => {
    const t = await truth();
    return JSON.stringify(t) === JSON.stringify(sorted([s.users.alice, s.users.bob])) &&
      JSON.stringify(await gatewayLists(s)) === JSON.stringify([t, t]);
  }, { what: 'lists exact after the Redis restart', timeout: 20000 });

  // gw-b paused past its lease: its users go offline (reaped), dave joins
  // on gw-a meanwhile; gw-b comes back, closes its clients (1012) and
  // starts again from the broker's list.
  const gw = s.gateways[1];
  gw.proc.kill('SIGSTOP');
  try {
    await alice.next(is('status_update', (m) => m.userId === s.users.bob && m.status === 'offline'), 10000, 'bob reaped');
    const dave = await s.connect('dave', 0);
    await alice.next(is('status_update', (m) => m.userId === s.users.dave && m.status === 'online'), 5000, 'dave online');
    s.dave = dave;
  } finally {
    gw.proc.kill('SIGCONT');
  }
  assert.equal((await bob.closed).code, 1012);
  await waitFor(async () => {
    const t = await truth();
    return JSON.stringify(t) === JSON.stringify(sorted([s.users.alice, s.users.dave])) &&
      JSON.stringify(await gatewayLists(s)) === JSON.stringify([t, t]);
  }, { what: 'lists exact after the pause', timeout: 20000 });
  await Promise.all([alice.close(), s.dave.close()]);
});

test('write coalescing: with --write-delay-us the events of the next instants share one write per connection', async () => {
  const s = await stack('scope-writes', { HERALD_WRITE_DELAY_US: '100000' });
  const gwA = s.gateways[0];
  const receivers = [];
  for (const name of ['alice', 'bob', 'carol', 'dave']) receivers.push(await s.connect(name, 0));
  const sender = await s.connect('erin', 1);
  await Promise.all(receivers.map((r) => r.sync()));
  const before = await metrics(gwA.url);
  for (let i = 0; i < 5; i++) sender.send({ type: 'livechat', message: `burst ${i}` });
  await Promise.all(receivers.map((r) => r.next(is('livechat', (m) => m.message === 'burst 4'), 5000, 'the burst')));
  const after = await metrics(gwA.url);
  const writes = after.get('herald_gateway_writes_total') - before.get('herald_gateway_writes_total');
  const deliveries = after.get('herald_gateway_deliveries_total') - before.get('herald_gateway_deliveries_total');
  assert.equal(deliveries, 5 * receivers.length);
  // Five events in a few milliseconds, a 100 ms window: one write each
  // (two if the burst straddles a window's end).
  assert.ok(writes <= 2 * receivers.length, `${writes} writes for ${deliveries} deliveries`);
  console.log(`# write coalescing: ${deliveries} deliveries in ${writes} writes`);
  await Promise.all([...receivers, sender].map((c) => c.close()));
});
