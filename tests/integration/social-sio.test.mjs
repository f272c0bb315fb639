// The social features through the stock socket.io-client (v4) with acks:
// watch-profile snapshots and privacy, stats, account deletion, live chat,
// DMs, the shared rate limit, matchmaking, search presence, the room bound.
// Raw /ws clients join where a feature must cross the two endpoints.
// PROTOCOL.md §4-§6 and docs/API.md are the reference.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  waitFor, sioClient, sioConnected, sioAck, sioSync, sioNext, sioOnce, closeSioClients,
} from './harness.mjs';
import {
  socialStack, http as httpOn, notify as notifyOn, xadd as xaddOn, is, since, nextFrom, statusOf,
  assertPublic, assertFail, plain, plainAck } from './social-lib.mjs';

let s;
before(async () => { s = await socialStack('social-sio'); });
after(async () => {
  closeSioClients();
  if (s) await s.stop();
});

// ---- helpers ------------------------------------------------------------

const http = (...args) => httpOn(s, ...args);
const notify = (event, body, gi = 0) => notifyOn(s, event, body, { gi });
const xadd = (event, body) => xaddOn(s, event, body);

const evs = (sock, name, from = 0) => sock.events.slice(from).filter((e) => e[0] === name).map((e) => e[1]);

const byId = (a) => [...a].sort((x, y) => x.id - y.id);
const pubUser = (name, avatar = `/avatars/${name}.svg`) => {
  const id = s.users[name];
  return { userID: id, userId: id, id, username: name, avatar };
};
const ratio = (w, l) => (w + l === 0 ? 0 : Math.round((w / (w + l)) * 1000) / 1000);
const statsOf = (name, w, l) => ({ userId: s.users[name], wins: w, losses: l, ratio: ratio(w, l) });

// ---- 1. snapshots and privacy ------------------------------------------

test('watch-profile ack: full snapshot for self and friends, public for guests and non-friends, with online and stats', async () => {
  const A = s.users.alice;
  const friends = [{ id: s.users.bob, username: 'bob' }, { id: s.users.dave, username: 'dave' }];
  const alice = await s.sio('alice', 0);
  const bob = await s.sio('bob', 1);
  const carol = await s.sio('carol', 0);
  const guest = await s.sio(null, 1);
  await sioSync(alice);

  const self = await sioAck(alice, 'watch-profile', { userId: A });
  assert.deepEqual(Object.keys(self).sort(), ['online', 'stats', 'user']);
  assert.deepEqual({ ...self.user, friends: byId(self.user.friends) }, { ...pubUser('alice'), friends });
  assert.deepEqual(self.stats, statsOf('alice', 12, 3));
  assert.equal(self.online, true);

  const fr = await sioAck(bob, 'watch-profile', { userId: String(A) });
  assert.deepEqual({ ...fr.user, friends: byId(fr.user.friends) }, { ...pubUser('alice'), friends }, 'a friend gets the full shape');
  assert.equal(fr.online, true);

  for (const [sock, what] of [[carol, 'non-friend'], [guest, 'guest']]) {
    const snap = await sioAck(sock, 'watch-profile', { userId: A });
    assert.deepEqual(snap.user, pubUser('alice'), `${what} gets the public shape`);
    assert.deepEqual(snap.stats, statsOf('alice', 12, 3), what);
    assert.equal(snap.online, true, what);
  }

  // Offline users, and ratios of other records.
  const e = await sioAck(guest, 'watch-profile', { userId: s.users.erin });
  assert.deepEqual(e, { user: pubUser('erin'), stats: statsOf('erin', 0, 0), online: false });
  assert.equal(e.stats.ratio, 0);
  const c = await sioAck(bob, 'watch-profile', { userId: s.users.carol });
  assert.deepEqual(c.stats, { userId: s.users.carol, wins: 2, losses: 9, ratio: 0.182 });
  assert.deepEqual(byId(c.user.friends), [{ id: s.users.bob, username: 'bob' }], 'bob is carol\'s friend: full shape');
  assert.equal(c.online, true, 'carol is connected');
  const d = await sioAck(carol, 'watch-profile', { userId: s.users.dave });
  assert.deepEqual(d, { user: pubUser('dave'), stats: { userId: s.users.dave, wins: 20, losses: 1, ratio: 0.952 }, online: false });
  for (const [sock, uid] of [[guest, s.users.erin], [bob, s.users.carol], [carol, s.users.dave], [alice, A]]) {
    assert.deepEqual(await sioAck(sock, 'unwatch-profile', { userId: uid }), { ok: true });
  }
  for (const so of [alice, bob, carol, guest]) so.disconnect();
});

test('profile-update over socket.io: full to the user\'s tabs and watching friends, public to others; unwatch stops it', async () => {
  const A = s.users.alice;
  const aliceTab = await s.sio('alice', 1); // own tab, not watching
  const bob = await s.sio('bob', 0); // friend, watching
  const carol = await s.sio('carol', 1); // non-friend, watching
  const guest = await s.sio(null, 0); // guest, watching
  const dave = await s.sio('dave', 1); // friend, not watching
  for (const so of [bob, carol, guest]) await sioAck(so, 'watch-profile', { userId: A });

  const user = {
    username: 'alice', avatar: '/a2.png', bio: 'secret',
    friends: [{ id: s.users.bob, username: 'bob' }, { id: s.users.dave, username: 'dave' }],
  };
  const r = await notify('profile-update', { userId: A, user }, 1);
  assert.equal(r.status, 202, r.text);
  for (const [so, what] of [[bob, 'friend'], [aliceTab, 'self']]) {
    const [ev] = await sioNext(so, 'profile-update');
    for (const [k, v] of Object.entries(user)) assert.deepEqual(ev.user[k], v, `${what}: ${k}`);
    assert.equal(ev.user.userID, A, `${what}: userID`);
  }
  for (const [so, what] of [[carol, 'non-friend'], [guest, 'guest']]) {
    const [ev] = await sioNext(so, 'profile-update');
    assertPublic(ev.user, what);
    assert.equal(ev.user.username, 'alice', what);
    assert.equal(ev.user.userID, A, `${what}: userID`);
    assert.equal(ev.user.avatar, '/a2.png', what);
    assert.equal(ev.user.bio, undefined, what);
    assert.equal(ev.user.friends, undefined, what);
  }
  await sioSync(dave);
  assert.deepEqual(evs(dave, 'profile-update'), [], 'a friend not watching gets nothing');

  // The avatar was stored: a new snapshot shows it.
  const g2 = await s.sio(null, 1);
  assert.deepEqual((await sioAck(g2, 'watch-profile', { userId: A })).user, pubUser('alice', '/a2.png'));

  // Unwatch (ack {ok:true}), then an XADD-ed update reaches only the rest.
  for (const so of [bob, carol, guest]) assert.deepEqual(await sioAck(so, 'unwatch-profile', { userId: A }), { ok: true });
  const marks = [bob, carol, guest, aliceTab, g2].map((so) => so.events.length);
  xadd('profile-update', { userId: A, user: { username: 'alice', avatar: '/avatars/alice.svg' } });
  await sioNext(aliceTab, 'profile-update', (ev) => ev.user.avatar === '/avatars/alice.svg', { from: marks[3] });
  await sioNext(g2, 'profile-update', (ev) => ev.user.avatar === '/avatars/alice.svg', { from: marks[4] });
  await Promise.all([bob, carol, guest].map(sioSync));
  [bob, carol, guest].forEach((so, i) => assert.deepEqual(evs(so, 'profile-update', marks[i]), [], `unwatched ${i}`));
  assert.deepEqual((await sioAck(guest, 'watch-profile', { userId: A })).user, pubUser('alice'), 'stored again');
  for (const so of [aliceTab, bob, carol, guest, dave, g2]) so.disconnect();
});

// ---- 2. stats -----------------------------------------------------------

test('game-stats-update via XADD and HTTP reaches socket.io watchers; non-friends get public keys; the snapshot follows', async () => {
  const D = s.users.dave;
  const alice = await s.sio('alice', 0); // dave's friend, watching
  const guest = await s.sio(null, 1); // watching
  const daveTab = await s.sio('dave', 1); // himself, not watching
  await sioAck(alice, 'watch-profile', { userId: D });
  await sioAck(guest, 'watch-profile', { userId: D });

  xadd('game-stats-update', { userId: D, stats: { wins: 1, losses: 2, history: ['l', 'l', 'w'] } });
  for (const [so, what] of [[alice, 'friend'], [daveTab, 'self']]) {
    const [ev] = await sioNext(so, 'game-stats-update');
    assert.equal(ev.stats.userId, D, what);
    assert.equal(ev.stats.wins, 1, what);
    assert.equal(ev.stats.losses, 2, what);
    assert.equal(ev.stats.ratio, 0.333, `${what}: ratio computed`);
    assert.deepEqual(ev.stats.history, ['l', 'l', 'w'], `${what}: full stats`);
  }
  const [pub] = await sioNext(guest, 'game-stats-update');
  assertPublic(pub.stats, 'guest stats');
  assert.equal(pub.stats.userId, D);
  assert.equal(pub.stats.wins, 1);
  assert.equal(pub.stats.losses, 2);
  assert.equal(pub.stats.ratio, 0.333);
  const g2 = await s.sio(null, 0);
  assert.deepEqual((await sioAck(g2, 'watch-profile', { userId: D })).stats, statsOf('dave', 1, 2));

  // A ratio sent by the backend is kept.
  const n = guest.events.length;
  const r = await notify('game-stats-update', { userId: D, stats: { wins: 20, losses: 1, ratio: 0.95 } });
  assert.equal(r.status, 202);
  const [again] = await sioNext(guest, 'game-stats-update', () => true, { from: n });
  assert.equal(again.stats.wins, 20);
  assert.equal(again.stats.ratio, 0.95);
  assert.deepEqual((await sioAck(g2, 'watch-profile', { userId: D })).stats, statsOf('dave', 20, 1));
  for (const so of [alice, guest, daveTab, g2]) so.disconnect();
});

// ---- 3. account deletion ------------------------------------------------

test('account-deleted (XADD): every tab told, then disconnected; offline; CONNECT refused; unknown afterwards', async () => {
  const Y = s.addUser('yan');
  const guest = await s.sio(null, 0);
  await sioSync(guest);
  const t0 = await s.sio('yan', 0);
  const t1 = await s.sio('yan', 1);
  const raw = await s.connect('yan', 1);
  await waitFor(() => statusOf(guest, Y).includes('online'), { what: 'yan online' });
  assert.deepEqual(await sioAck(t0, 'join-matchmaking'), { ok: true, status: 'queued' });
  const disc = [t0, t1].map((so) => sioOnce(so, 'disconnect'));

  xadd('account-deleted', { userId: Y });
  for (const so of [t0, t1]) await sioNext(so, 'account-deleted');
  for (const p of disc) assert.equal((await p)[0], 'io server disconnect');
  await raw.next(is('account-deleted'), 5000, 'account-deleted on raw');
  assert.equal((await raw.closed).code, 4003);
  await waitFor(() => statusOf(guest, Y).includes('offline'), { what: 'yan offline' });
  await sioSync(guest);
  assert.deepEqual(statusOf(guest, Y), ['online', 'offline']);
  assert.ok(!(await sioSync(guest)).includes(Y));

  // CONNECT with the still-valid token fails, over WebSocket and polling.
  const again = sioClient(s.gateways[0].url, { token: s.token('yan') });
  await assert.rejects(sioConnected(again), (e) => { assert.equal(e.data?.code, 'account-deleted'); return true; });
  const polling = sioClient(s.gateways[1].url, { token: s.token('yan'), transports: ['polling'] });
  await assert.rejects(sioConnected(polling), (e) => { assert.equal(e.data?.code, 'account-deleted'); return true; });
  t1.auth = { token: s.token('yan') };
  t1.connect();
  await assert.rejects(sioConnected(t1), (e) => { assert.equal(e.data?.code, 'account-deleted'); return true; });

  assertFail(await sioAck(guest, 'watch-profile', { userId: Y }), 'unknown-user', 'watch a deleted user');
  assert.equal((await http('GET', 0, '/online-status/yan')).status, 404);
  // Dequeued: the next joiner waits.
  const bob = await s.sio('bob', 1);
  assert.deepEqual(await sioAck(bob, 'join-matchmaking'), { ok: true, status: 'queued' });
  assert.deepEqual(await sioAck(bob, 'leave-matchmaking'), { ok: true, status: 'left' });
  for (const so of [guest, bob, again, polling, t0, t1]) so.disconnect();
});

// ---- 4. live chat -------------------------------------------------------

test('livechat from socket.io (ack ok) reaches authenticated sio and raw clients on both gateways and the author, not guests', async () => {
  const erin = await s.sio('erin', 1); // author
  const bob = await s.sio('bob', 0);
  const alice = await s.connect('alice', 0);
  const carol = await s.connect('carol', 1);
  const guest = await s.sio(null, 0);
  await Promise.all([alice.sync(), carol.sync(), sioSync(guest)]);

  assert.deepEqual(await sioAck(erin, 'livechat', { message: 'hi from sio' }), { ok: true });
  const want = { user: 'erin', userId: s.users.erin, message: 'hi from sio' };
  assert.deepEqual(plain((await sioNext(erin, 'livechat'))[0]), want, 'the author gets it too');
  assert.deepEqual(plain((await sioNext(bob, 'livechat'))[0]), want);
  assert.deepEqual(plain(await alice.next(is('livechat'), 5000, 'livechat at raw alice')), { type: 'livechat', ...want });
  assert.deepEqual(plain(await carol.next(is('livechat'), 5000, 'livechat at raw carol')), { type: 'livechat', ...want });
  await sioSync(guest);
  assert.deepEqual(evs(guest, 'livechat'), [], 'guests get no livechat');

  // Code points count, not UTF-16 units or bytes: 50 emoji are 50 characters.
  const emoji = '\u{1F600}'.repeat(50);
  assert.deepEqual(await sioAck(erin, 'livechat', { message: emoji }), { ok: true });
  assert.equal((await sioNext(bob, 'livechat', (d) => d.message !== 'hi from sio'))[0].message, emoji);

  // Refusals (dave): too long, wrong type, missing; guests: auth-required.
  const dave = await s.sio('dave', 1);
  assertFail(await sioAck(dave, 'livechat', { message: 'x'.repeat(51) }), 'message-too-long', 'too long');
  assertFail(await sioAck(dave, 'livechat', { message: 42 }), 'bad-field', 'number');
  assertFail(await sioAck(dave, 'livechat', {}), 'bad-field', 'missing');
  assertFail(await sioAck(guest, 'livechat', { message: 'let me in' }), 'auth-required', 'guest with ack');
  const n = guest.events.length;
  guest.emit('livechat', { message: 'no ack' });
  const [err] = await sioNext(guest, 'error', () => true, { from: n });
  assert.equal(err.code, 'auth-required');
  assert.equal(typeof err.message, 'string');
  await Promise.all([alice.sync(), sioSync(bob)]);
  assert.deepEqual(plain(since(alice, 0, is('livechat')).map((m) => m.message)), ['hi from sio', emoji], 'no refused message was sent');
  for (const so of [erin, bob, guest, dave]) so.disconnect();
  await Promise.all([alice.close(), carol.close()]);
});

// ---- 5. direct messages -------------------------------------------------

test('direct_message over socket.io: every tab of the recipient (sio + raw), nobody else; ack errors', async () => {
  const A = s.users.alice;
  const alice = await s.sio('alice', 0);
  const bobSio = await s.sio('bob', 0);
  const bobRaw = await s.connect('bob', 1);
  const carol = await s.sio('carol', 1);
  await Promise.all([bobRaw.sync(), sioSync(carol)]);

  for (const [to, message] of [['Bob', 'by name'], [s.users.bob, 'by id'], [String(s.users.bob), 'by digit string']]) {
    const n = bobSio.events.length;
    const m = bobRaw.messages.length;
    assert.deepEqual(plainAck(await sioAck(alice, 'direct_message', { to, message })), { ok: true }, message);
    const want = { user: 'alice', userId: A, message };
    assert.deepEqual(plain((await sioNext(bobSio, 'direct_message', () => true, { from: n }))[0]), want);
    assert.deepEqual(plain(await nextFrom(bobRaw, m, is('direct_message'), message)), { type: 'direct_message', ...want });
  }
  assertFail(await sioAck(carol, 'direct_message', { to: 'nobody', message: 'hi' }), 'unknown-user', 'unknown name');
  assertFail(await sioAck(carol, 'direct_message', { to: 999999, message: 'hi' }), 'unknown-user', 'unknown id');
  assert.deepEqual(plainAck(await sioAck(carol, 'direct_message', { to: 'erin', message: 'offline' })), { ok: true }, 'offline is accepted');
  const dave = await s.sio('dave', 1);
  assertFail(await sioAck(dave, 'direct_message', { to: 'bob' }), 'bad-field', 'no message');
  const guest = await s.sio(null, 1);
  assertFail(await sioAck(guest, 'direct_message', { to: 'bob', message: 'hi' }), 'auth-required', 'guest');

  await Promise.all([sioSync(carol), sioSync(alice), sioSync(bobSio), bobRaw.sync()]);
  assert.deepEqual(evs(carol, 'direct_message'), [], 'carol gets none');
  assert.deepEqual(evs(alice, 'direct_message'), [], 'the author gets no copy');
  assert.equal(evs(bobSio, 'direct_message').length, 3);
  assert.equal(since(bobRaw, 0, is('direct_message')).length, 3);
  for (const so of [alice, bobSio, carol, guest, dave]) so.disconnect();
  await bobRaw.close();
});

// ---- 6. rate limit ------------------------------------------------------

test('rate limit through socket.io: chat and DMs share one bucket over tabs, gateways and HTTP; then rate-limited / 429', async () => {
  const R = s.addUser('rosa');
  const tab0 = await s.sio('rosa', 0);
  const tab1 = await s.sio('rosa', 1);
  const bob = await s.connect('bob', 0);
  await bob.sync();

  assert.deepEqual(await sioAck(tab0, 'livechat', { message: 'q1' }), { ok: true });
  assert.deepEqual(plainAck(await sioAck(tab1, 'direct_message', { to: 'bob', message: 'q2' })), { ok: true });
  const r = await http('POST', 1, '/live_chat_message', { body: { message: 'q3' }, bearer: s.token('rosa') });
  assert.equal(r.status, 202, r.text);
  assertFail(await sioAck(tab1, 'livechat', { message: 'q4' }), 'rate-limited', 'tab1 livechat');
  assertFail(await sioAck(tab0, 'direct_message', { to: 'bob', message: 'q5' }), 'rate-limited', 'tab0 DM');
  const n = tab0.events.length;
  tab0.emit('livechat', { message: 'q6' });
  const [err] = await sioNext(tab0, 'error', () => true, { from: n });
  assert.equal(err.code, 'rate-limited');
  const h = await http('POST', 0, '/direct_chat_message', { body: { to: 'bob', message: 'q7' }, bearer: s.token('rosa') });
  assert.equal(h.status, 429, h.text);
  assert.equal(h.json?.error, 'rate-limited');

  await bob.sync();
  const seen = bob.messages.filter((m) => ['livechat', 'direct_message'].includes(m.type) && m.userId === R).map((m) => m.message);
  assert.deepEqual(seen.sort(), ['q1', 'q2', 'q3'], 'only the first three were sent');
  tab0.disconnect();
  tab1.disconnect();
  await bob.close();
});

// ---- 7. matchmaking -----------------------------------------------------

test('matchmaking: a raw player and a two-tab socket.io player are paired; one queue entry per user; acks', async () => {
  const carol0 = await s.sio('carol', 0);
  const carol1 = await s.sio('carol', 1);
  assert.deepEqual(await sioAck(carol0, 'join-matchmaking'), { ok: true, status: 'queued' });
  assert.deepEqual(await sioAck(carol1, 'join-matchmaking'), { ok: true, status: 'queued' }, 'a second tab: still queued once');
  const dave = await s.connect('dave', 0);
  dave.send({ type: 'join-matchmaking' });
  const d = await dave.next(is('match-found'), 5000, 'match-found at raw dave');
  const [c0] = await sioNext(carol0, 'match-found');
  const [c1] = await sioNext(carol1, 'match-found');
  assert.equal(typeof d.matchId, 'string');
  assert.deepEqual(d, { type: 'match-found', matchId: d.matchId, opponent: { userId: s.users.carol, username: 'carol' } });
  assert.deepEqual(c0, { matchId: d.matchId, opponent: { userId: s.users.dave, username: 'dave' } });
  assert.deepEqual(c1, c0);

  // carol was in the queue once: bob waits, erin pairs with bob.
  const bob = await s.sio('bob', 1);
  assert.deepEqual(await sioAck(bob, 'join-matchmaking'), { ok: true, status: 'queued' });
  const erin = await s.sio('erin', 0);
  assert.deepEqual(await sioAck(erin, 'join-matchmaking'), { ok: true, status: 'matched' });
  const [b] = await sioNext(bob, 'match-found');
  const [e] = await sioNext(erin, 'match-found');
  assert.equal(b.matchId, e.matchId);
  assert.notEqual(b.matchId, d.matchId);
  assert.deepEqual(b.opponent, { userId: s.users.erin, username: 'erin' });
  assert.deepEqual(e.opponent, { userId: s.users.bob, username: 'bob' });
  await Promise.all([sioSync(carol0), sioSync(carol1)]);
  assert.equal(evs(carol0, 'match-found').length, 1);
  assert.equal(evs(carol1, 'match-found').length, 1);

  // leave-matchmaking: {status:'left'}, also when not queued.
  assert.deepEqual(await sioAck(bob, 'join-matchmaking'), { ok: true, status: 'queued' });
  assert.deepEqual(await sioAck(bob, 'leave-matchmaking'), { ok: true, status: 'left' });
  assert.deepEqual(await sioAck(bob, 'leave-matchmaking'), { ok: true, status: 'left' });
  assert.deepEqual(await sioAck(erin, 'join-matchmaking'), { ok: true, status: 'queued' }, 'bob left');
  assert.deepEqual(await sioAck(erin, 'leave-matchmaking'), { ok: true, status: 'left' });

  // Disconnecting the last tab dequeues.
  const guest = await s.sio(null, 1);
  const alice = await s.sio('alice', 0);
  await waitFor(() => statusOf(guest, s.users.alice).includes('online'), { what: 'alice online' });
  assert.deepEqual(await sioAck(alice, 'join-matchmaking'), { ok: true, status: 'queued' });
  alice.disconnect();
  await waitFor(() => statusOf(guest, s.users.alice).includes('offline'), { what: 'alice offline' });
  assert.deepEqual(await sioAck(bob, 'join-matchmaking'), { ok: true, status: 'queued' }, 'alice left with her last tab');
  assert.deepEqual(await sioAck(bob, 'leave-matchmaking'), { ok: true, status: 'left' });
  await sioSync(bob);
  assert.equal(evs(bob, 'match-found').length, 1);

  // Guests may not matchmake.
  assertFail(await sioAck(guest, 'join-matchmaking'), 'auth-required', 'guest join');
  const n = guest.events.length;
  guest.emit('join-matchmaking');
  assert.equal((await sioNext(guest, 'error', () => true, { from: n }))[0].code, 'auth-required');
  for (const so of [carol0, carol1, bob, erin, guest]) so.disconnect();
  await dave.close();
});

// ---- 8. search and presence ---------------------------------------------

test('GET /users/search follows socket.io presence; guests do not count', async () => {
  const row = async (gi = 0) => {
    const r = await http('GET', gi, '/users/search?q=CAR&limit=5');
    assert.equal(r.status, 200);
    return r.json.find((u) => u.id === s.users.carol);
  };
  const guest = await s.sio(null, 0);
  await waitFor(async () => (await row()).online === false, { what: 'carol offline after the last test' });
  assert.deepEqual(await row(), { id: s.users.carol, username: 'carol', avatar: '/avatars/carol.svg', online: false });
  const carol = await s.sio('carol', 1);
  await waitFor(async () => (await row(0)).online === true, { what: 'carol online in search' });
  assert.equal((await row(1)).online, true);
  carol.disconnect();
  await waitFor(async () => (await row(1)).online === false, { what: 'carol offline in search' });
  const long = await http('GET', 1, `/users/search?q=${'c'.repeat(65)}`);
  assert.equal(long.status, 400);
  assert.equal(long.json?.error, 'bad-field');
  guest.disconnect();
});

// ---- 9. room bound ------------------------------------------------------

test('watch-profile acks: unknown-user, bad-field, too-many-rooms at the 5th (ack and error event); unwatch frees a slot', async () => {
  const guest = await s.sio(null, 0);
  assertFail(await sioAck(guest, 'watch-profile', { userId: 999999 }), 'unknown-user', 'unknown id');
  assertFail(await sioAck(guest, 'watch-profile', { userId: 'abc' }), 'bad-field', 'not an id');
  assertFail(await sioAck(guest, 'watch-profile', {}), 'bad-field', 'missing id');
  for (const name of ['alice', 'bob', 'carol', 'dave']) {
    const snap = await sioAck(guest, 'watch-profile', { userId: s.users[name] });
    assert.equal(snap.user?.username, name, JSON.stringify(snap));
  }
  assertFail(await sioAck(guest, 'watch-profile', { userId: s.users.erin }), 'too-many-rooms', '5th room');
  const n = guest.events.length;
  guest.emit('watch-profile', { userId: s.users.erin });
  const [err] = await sioNext(guest, 'error', () => true, { from: n });
  assert.equal(err.code, 'too-many-rooms');

  assert.deepEqual(await sioAck(guest, 'unwatch-profile', { userId: s.users.dave }), { ok: true });
  assert.equal((await sioAck(guest, 'watch-profile', { userId: s.users.erin })).user.username, 'erin', 'the freed slot is usable');
  // Dave's updates stop, erin's arrive.
  const m = guest.events.length;
  assert.equal((await notify('game-stats-update', { userId: s.users.dave, stats: { wins: 20, losses: 1 } })).status, 202);
  assert.equal((await notify('game-stats-update', { userId: s.users.erin, stats: { wins: 0, losses: 0 } })).status, 202);
  const [ev] = await sioNext(guest, 'game-stats-update', () => true, { from: m });
  assert.equal(ev.stats.wins, 0);
  await sioSync(guest);
  assert.equal(evs(guest, 'game-stats-update', m).length, 1, 'nothing about dave');
  guest.disconnect();
});

test('whoami names the connection\'s user (id 0 for a guest); get-users resolves ids to names with live online', async () => {
  const alice = await s.sio('alice', 0);
  const guest = await s.sio(null, 1);
  assert.deepEqual(await sioAck(alice, 'whoami'), { id: s.users.alice, username: 'alice' });
  assert.deepEqual(await sioAck(guest, 'whoami'), { id: 0 });
  const rows = await sioAck(guest, 'get-users', { ids: [s.users.alice, s.users.bob, 999999, 'x'] });
  assert.deepEqual(rows.map((r) => [r.id, r.username, r.online]),
    [[s.users.alice, 'alice', true], [s.users.bob, 'bob', false]]);
  assert.deepEqual(Object.keys(rows[0]).sort(), ['avatar', 'id', 'online', 'username']);
  const bad = await sioAck(guest, 'get-users', { ids: Array.from({ length: 101 }, (_, i) => i + 1) });
  assert.equal(bad.error, 'bad-field');
  alice.disconnect();
  guest.disconnect();
});
