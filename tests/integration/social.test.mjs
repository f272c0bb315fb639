// The social features end to end over raw /ws and the HTTP routes (a
// socket.io guest where the contract needs one): profile privacy, notify
// API, account deletion, live chat, DMs, rate limit, matchmaking, search,
// the room bound. PROTOCOL.md §3-§6 and docs/API.md are the reference.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  makeToken, waitFor, sioClient, sioConnected, sioAck, sioSync, sioNext, sioOnce, closeSioClients,
} from './harness.mjs';
import {
  API_KEY, socialStack, http as httpOn, notify as notifyOn, xadd as xaddOn, is, since, nextFrom,
  statusOf, assertPublic, rawError, brokerRefusals, plain, plainAck } from './social-lib.mjs';

let s;
before(async () => { s = await socialStack('social'); });
after(async () => {
  closeSioClients();
  if (s) await s.stop();
});

// ---- helpers ------------------------------------------------------------

const http = (...args) => httpOn(s, ...args);
const notify = (...args) => notifyOn(s, ...args);
const search = async (qs, gi = 0) => {
  const r = await http('GET', gi, `/users/search?${qs}`);
  assert.equal(r.status, 200, r.text);
  return r.json;
};

const sioCount = (sock, name, from = 0) => sock.events.slice(from).filter((e) => e[0] === name).length;
function assertHas(u, expected, what) {
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(u[k], v, `${what}: ${k}`);
}

// ---- 1. profile privacy -------------------------------------------------

test('profile-update: full object to the user and watching friends, public fields to non-friends and guests; unwatch stops it', async () => {
  const A = s.users.alice;
  const aliceTab = await s.connect('alice', 1); // the user's own tab, watching nothing
  const bob = await s.connect('bob', 1); // friend, watching
  const carol = await s.connect('carol', 0); // not a friend, watching
  const dave = await s.connect('dave', 0); // friend, NOT watching
  const guest = await s.sio(null, 0);
  await aliceTab.sync();

  bob.send({ type: 'watch-profile', userId: A });
  carol.send({ type: 'watch-profile', userId: String(A) });
  const snap = await sioAck(guest, 'watch-profile', { userId: A });
  assert.deepEqual(snap.user, { userID: A, userId: A, id: A, username: 'alice', avatar: '/avatars/alice.svg' },
    'a guest gets the public snapshot (no friends)');
  assert.deepEqual(snap.stats, { userId: A, wins: 12, losses: 3, ratio: 0.8 });
  assert.equal(snap.online, true);
  await Promise.all([bob.sync(), carol.sync(), dave.sync(), aliceTab.sync()]);
  assert.deepEqual(since(bob, 0, is('error')), []);
  assert.deepEqual(since(carol, 0, is('error')), []);

  const user = {
    username: 'alice', avatar: '/a2.png', bio: 'secret',
    friends: [{ id: s.users.bob, username: 'bob' }, { id: s.users.dave, username: 'dave' }],
  };
  const r = await notify('profile-update', { userId: A, user });
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { status: 'accepted' });

  // PROTOCOL §4: profile-update {user: {userID, username, avatar, ...}}.
  const full = (m, what) => { assertHas(m.user, user, what); assert.equal(m.user.userID, A, `${what}: userID`); };
  const pub = (u, what) => {
    assertPublic(u, what);
    assert.equal(u.userID, A, `${what}: userID`);
    assert.equal(u.username, 'alice', what);
    assert.equal(u.avatar, '/a2.png', what);
    assert.equal(u.bio, undefined, `${what}: no bio`);
    assert.equal(u.friends, undefined, `${what}: no friends`);
  };
  full(await bob.next(is('profile-update'), 5000, 'profile-update at bob'), 'friend bob');
  full(await aliceTab.next(is('profile-update'), 5000, 'profile-update at alice'), 'alice herself');
  pub((await carol.next(is('profile-update'), 5000, 'profile-update at carol')).user, 'non-friend carol');
  const [onGuest] = await sioNext(guest, 'profile-update');
  pub(onGuest.user, 'guest');
  await dave.sync();
  assert.deepEqual(since(dave, 0, is('profile-update')), [], 'a friend who does not watch gets nothing');

  // username/avatar were stored: search and a fresh snapshot show them.
  const found = (await search('q=alice')).find((u) => u.id === A);
  assert.equal(found.avatar, '/a2.png');
  const guest2 = await s.sio(null, 1);
  const snap2 = await sioAck(guest2, 'watch-profile', { userId: A });
  assert.equal(snap2.user.avatar, '/a2.png');
  assert.equal(snap2.user.bio, undefined);

  // Unwatch: raw answers nothing on success, socket.io acks {ok:true}.
  bob.send({ type: 'unwatch-profile', userId: A });
  carol.send({ type: 'unwatch-profile', userId: A });
  await Promise.all([bob.sync(), carol.sync()]);
  assert.deepEqual(await sioAck(guest, 'unwatch-profile', { userId: A }), { ok: true });
  const [nb, nc, na, ng] = [bob.messages.length, carol.messages.length, aliceTab.messages.length, guest.events.length];
  const ng2 = guest2.events.length;
  const r2 = await notify('profile-update', { userId: A, user: { username: 'alice', avatar: '/avatars/alice.svg' } });
  assert.equal(r2.status, 202);
  await nextFrom(aliceTab, na, is('profile-update', (m) => m.user.avatar === '/avatars/alice.svg'), 'second update at alice');
  await sioNext(guest2, 'profile-update', (d) => d.user.avatar === '/avatars/alice.svg', { from: ng2 });
  await Promise.all([bob.sync(), carol.sync(), sioSync(guest)]);
  assert.deepEqual(since(bob, nb, is('profile-update')), [], 'bob unwatched');
  assert.deepEqual(since(carol, nc, is('profile-update')), [], 'carol unwatched');
  assert.equal(sioCount(guest, 'profile-update', ng), 0, 'the guest unwatched');

  guest.disconnect();
  guest2.disconnect();
  await Promise.all([aliceTab.close(), bob.close(), carol.close(), dave.close()]);
});

// ---- 2. game stats ------------------------------------------------------

test('game-stats-update over HTTP and XADD reaches watchers and the user, shaped by privacy; the snapshot shows stored numbers', async () => {
  const C = s.users.carol;
  const bob = await s.connect('bob', 1); // carol's friend, watching
  const alice = await s.connect('alice', 0); // not carol's friend, watching
  const carol = await s.connect('carol', 1); // herself, not watching
  const guest = await s.sio(null, 0);
  bob.send({ type: 'watch-profile', userId: C });
  alice.send({ type: 'watch-profile', userId: C });
  const snap0 = await sioAck(guest, 'watch-profile', { userId: C });
  assert.deepEqual(snap0.stats, { userId: C, wins: 2, losses: 9, ratio: 0.182 });
  await Promise.all([bob.sync(), alice.sync(), carol.sync()]);

  const r = await notify('game-stats-update', { userId: C, stats: { wins: 5, losses: 5, history: ['w', 'l'] } }, { gi: 1 });
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { status: 'accepted' });
  const checkStats = (st, wins, losses, ratio, what) => {
    assert.equal(st.wins, wins, what);
    assert.equal(st.losses, losses, what);
    assert.equal(st.ratio, ratio, `${what}: ratio computed`);
    assert.equal(st.userId, C, `${what}: userId`); // PROTOCOL §4: {stats: {userId, wins, losses, ratio}}
  };
  for (const [c, what] of [[bob, 'friend'], [carol, 'self']]) {
    const m = await c.next(is('game-stats-update'), 5000, `stats at ${what}`);
    checkStats(m.stats, 5, 5, 0.5, what);
    assert.deepEqual(m.stats.history, ['w', 'l'], `${what} gets the full stats`);
  }
  const onAlice = await alice.next(is('game-stats-update'), 5000, 'stats at alice');
  checkStats(onAlice.stats, 5, 5, 0.5, 'non-friend');
  assertPublic(onAlice.stats, 'non-friend stats');
  const [onGuest] = await sioNext(guest, 'game-stats-update');
  checkStats(onGuest.stats, 5, 5, 0.5, 'guest');
  assertPublic(onGuest.stats, 'guest stats');

  // The same event written straight onto the broker's stream.
  const [nb, na, nc, ng] = [bob.messages.length, alice.messages.length, carol.messages.length, guest.events.length];
  xaddOn(s, 'game-stats-update', { userId: C, stats: { wins: 2, losses: 1 } });
  for (const [c, n, what] of [[bob, nb, 'friend'], [alice, na, 'non-friend'], [carol, nc, 'self']]) {
    const m = await nextFrom(c, n, is('game-stats-update'), `XADD stats at ${what}`);
    checkStats(m.stats, 2, 1, 0.667, `XADD ${what}`);
  }
  const [viaX] = await sioNext(guest, 'game-stats-update', () => true, { from: ng });
  checkStats(viaX.stats, 2, 1, 0.667, 'XADD guest');

  const guest2 = await s.sio(null, 1);
  const snap = await sioAck(guest2, 'watch-profile', { userId: C });
  assert.deepEqual(snap.stats, { userId: C, wins: 2, losses: 1, ratio: 0.667 }, 'wins/losses were stored');

  // Put carol's numbers back for the other tests.
  const n2 = carol.messages.length;
  assert.equal((await notify('game-stats-update', { userId: C, stats: { wins: 2, losses: 9 } })).status, 202);
  await nextFrom(carol, n2, is('game-stats-update', (m) => m.stats.losses === 9), 'restore');
  guest.disconnect();
  guest2.disconnect();
  await Promise.all([bob.close(), alice.close(), carol.close()]);
});

// ---- 3. notify auth -----------------------------------------------------

test('/api/notify/*: 401 bad-api-key, 404 unknown-user, 400 bad body, 403 forbidden without a configured key', async () => {
  for (const ev of ['profile-update', 'game-stats-update', 'account-deleted']) {
    const body = { userId: s.users.erin, user: { username: 'erin' }, stats: { wins: 0, losses: 0 } };
    let r = await http('POST', 0, `/api/notify/${ev}`, { body: { userId: 999999 } });
    assert.equal(r.status, 401, `${ev} without key`);
    assert.equal(r.json?.error, 'bad-api-key', `${ev} without key`);
    r = await notify(ev, body, { key: 'wrong-key' });
    assert.equal(r.status, 401, `${ev} wrong key`);
    assert.equal(r.json?.error, 'bad-api-key');
    assert.equal(typeof r.json?.message, 'string');
    r = await notify(ev, { userId: 999999, user: { username: 'ghost' }, stats: { wins: 1, losses: 1 } }, { gi: 1 });
    assert.equal(r.status, 404, `${ev} unknown user: ${r.text}`);
    assert.equal(r.json?.error, 'unknown-user');
    r = await notify(ev, '{"userId":');
    assert.equal(r.status, 400, `${ev} bad JSON`);
    assert.equal(r.json?.error, 'bad-json');
    r = await notify(ev, { user: { username: 'x' }, stats: { wins: 1, losses: 1 } });
    assert.equal(r.status, 400, `${ev} without userId`);
    assert.equal(r.json?.error, 'bad-field');
  }
  // A harmless accepted one (erin's current stats).
  const ok = await notify('game-stats-update', { userId: s.users.erin, stats: { wins: 0, losses: 0 } }, { gi: 1 });
  assert.equal(ok.status, 202, ok.text);

  // A gateway without HERALD_API_KEY refuses every notify with 403.
  const gw = await s.startGateway('gw-nokey', undefined, { HERALD_API_KEY: undefined });
  try {
    await s.waitHealthy(gw);
    for (const key of [API_KEY, undefined]) {
      const r = await fetch(`${gw.url}/api/notify/profile-update`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify({ userId: s.users.erin, user: { username: 'erin' } }),
      });
      assert.equal(r.status, 403, `no key configured (sent ${key ? 'a key' : 'none'})`);
      assert.equal((await r.json()).error, 'forbidden');
    }
  } finally {
    const info = await gw.proc.stop();
    s.gateways.splice(s.gateways.indexOf(gw), 1);
    assert.equal(info.code, 0, `gw-nokey exit: ${gw.proc.tail()}`);
  }
});

// ---- 4. account deletion ------------------------------------------------

test('account-deleted: both tabs told and closed (4003 / io server disconnect), offline, token refused, dequeued, gone', async () => {
  const Z = s.addUser('zed');
  const watcher = await s.connect('alice', 1);
  const guest = await s.sio(null, 0);
  await watcher.sync();
  const raw = await s.connect('zed', 0);
  const sock = await s.sio('zed', 1);
  await watcher.next(is('status_update', (m) => m.userId === Z && m.status === 'online'), 5000, 'zed online');
  raw.send({ type: 'join-matchmaking' });
  await raw.sync();

  const disc = sioOnce(sock, 'disconnect');
  const r = await notify('account-deleted', { userId: Z });
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { status: 'accepted' });
  assert.deepEqual(await raw.next(is('account-deleted'), 5000, 'account-deleted on raw'), { type: 'account-deleted' });
  assert.equal((await raw.closed).code, 4003);
  await sioNext(sock, 'account-deleted');
  const [reason] = await disc;
  assert.equal(reason, 'io server disconnect');

  await watcher.next(is('status_update', (m) => m.userId === Z && m.status === 'offline'), 5000, 'zed offline');
  await waitFor(() => statusOf(guest, Z).includes('offline'), { what: 'guest sees zed offline' });
  await watcher.sync();
  assert.deepEqual(watcher.statuses(Z), ['online', 'offline']);
  assert.ok(!(await s.onlineUsers()).includes(Z));

  // The still-valid token is refused everywhere.
  for (const gi of [0, 1]) {
    await assert.rejects(s.connect('zed', gi), (e) => {
      assert.equal(e.status, 401, `gw${gi} upgrade`);
      assert.equal(JSON.parse(e.body).error, 'account-deleted');
      return true;
    });
    const again = sioClient(s.gateways[gi].url, { token: s.token('zed') });
    await assert.rejects(sioConnected(again), (e) => {
      assert.equal(e.data?.code, 'account-deleted', `gw${gi} socket.io CONNECT: ${e.message}`);
      return true;
    });
    again.disconnect();
  }
  const post = await http('POST', 0, '/live_chat_message', { body: { message: 'ghost' }, bearer: s.token('zed') });
  assert.equal(post.status, 401);
  assert.equal(post.json?.error, 'account-deleted');

  // Removed from the database and from the matchmaking queue.
  assert.equal((await http('GET', 1, '/online-status/zed')).status, 404);
  assert.deepEqual(await search('q=zed'), []);
  const dave = await s.connect('dave', 0);
  dave.send({ type: 'join-matchmaking' });
  await dave.sync();
  assert.deepEqual(since(dave, 0, is('match-found')), [], 'zed was dequeued');
  dave.send({ type: 'leave-matchmaking' });
  await dave.sync();
  guest.disconnect();
  await Promise.all([watcher.close(), dave.close()]);
});

// ---- 5. live chat -------------------------------------------------------

test('livechat from /ws reaches every authenticated connection on both gateways, the author too, never a guest', async () => {
  const dave = await s.connect('dave', 0); // author
  const bob = await s.connect('bob', 1);
  const carol = await s.connect('carol', 0);
  const erin = await s.sio('erin', 1);
  const alice = await s.sio('alice', 0);
  const guest = await s.sio(null, 1);
  await Promise.all([dave.sync(), bob.sync(), carol.sync()]);

  dave.send({ type: 'livechat', message: 'hello all' });
  const want = { user: 'dave', userId: s.users.dave, message: 'hello all' };
  for (const [c, who] of [[dave, 'author'], [bob, 'bob@gw1'], [carol, 'carol@gw0']]) {
    assert.deepEqual(plain(await c.next(is('livechat'), 5000, `livechat at ${who}`)), { type: 'livechat', ...want });
  }
  for (const so of [erin, alice]) assert.deepEqual(plain((await sioNext(so, 'livechat'))[0]), want);
  await sioSync(guest);
  assert.equal(sioCount(guest, 'livechat'), 0, 'a guest gets no livechat');

  // A guest may not chat.
  guest.emit('livechat', { message: 'let me in' });
  const [err] = await sioNext(guest, 'error');
  assert.equal(err.code, 'auth-required');

  // Over HTTP with a Bearer token: 202 and the same broadcast.
  const [nd, nb] = [dave.messages.length, bob.messages.length];
  const ne = erin.events.length;
  const r = await http('POST', 1, '/live_chat_message', { body: { message: 'via http' }, bearer: s.token('carol') });
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { status: 'accepted' });
  const want2 = { user: 'carol', userId: s.users.carol, message: 'via http' };
  assert.deepEqual(plain(await nextFrom(bob, nb, is('livechat'), 'http livechat at bob')), { type: 'livechat', ...want2 });
  assert.deepEqual(plain(await nextFrom(dave, nd, is('livechat'), 'http livechat at dave')), { type: 'livechat', ...want2 });
  assert.deepEqual(plain((await sioNext(erin, 'livechat', () => true, { from: ne }))[0]), want2);
  await sioSync(guest);
  assert.equal(sioCount(guest, 'livechat'), 0);

  let bad = await http('POST', 0, '/live_chat_message', { body: { message: 'anon' } });
  assert.equal(bad.status, 401);
  assert.equal(bad.json?.error, 'auth-required');
  bad = await http('POST', 0, '/live_chat_message', { body: { message: 'forged' }, bearer: `${s.token('bob')}x` });
  assert.equal(bad.status, 401);
  // A valid token for an id Herald does not know: the same word as at
  // connection time (it used to be auth-required, which misleads).
  bad = await http('POST', 0, '/live_chat_message', { body: { message: 'anon' }, bearer: makeToken(999997) });
  assert.equal(bad.status, 401);
  assert.equal(bad.json?.error, 'unknown-user');
  await Promise.all([bob.sync(), dave.sync()]);
  assert.ok(!bob.messages.some((m) => m.type === 'livechat' && ['anon', 'forged'].includes(m.message)));

  for (const so of [erin, alice, guest]) so.disconnect();
  await Promise.all([dave.close(), bob.close(), carol.close()]);
});

test('livechat limits: 50 characters pass, 51 are message-too-long (/ws) and 413 (HTTP); empty or missing is bad-field', async () => {
  const bob = await s.connect('bob', 0);
  const erin = await s.connect('erin', 1);
  const watcher = await s.connect('alice', 1);
  await watcher.sync();
  const fifty = 'y'.repeat(50);
  bob.send({ type: 'livechat', message: fifty });
  await watcher.next(is('livechat', (m) => m.message === fifty), 5000, '50-char livechat');

  let n = bob.messages.length;
  bob.send({ type: 'livechat', message: 'z'.repeat(51) });
  await rawError(bob, n, 'message-too-long');
  const r = await http('POST', 0, '/live_chat_message', { body: { message: 'z'.repeat(51) }, bearer: s.token('bob') });
  assert.equal(r.status, 413);
  assert.equal(r.json?.error, 'message-too-long');

  n = erin.messages.length;
  erin.send({ type: 'livechat', message: '' });
  await rawError(erin, n, 'bad-field');
  n = erin.messages.length;
  erin.send({ type: 'livechat' });
  await rawError(erin, n, 'bad-field');

  await watcher.sync();
  assert.deepEqual(plain(since(watcher, 0, is('livechat')).map((m) => m.message)), [fifty], 'nothing else was broadcast');
  await Promise.all([bob.close(), erin.close(), watcher.close()]);
});

// ---- 6. rate limit ------------------------------------------------------

test('rate limit: one bucket for chat and DMs on every endpoint and gateway; burst 3, then rate-limited / 429, nothing sent', async () => {
  const R = s.addUser('rusty');
  const tab0 = await s.connect('rusty', 0);
  const tab1 = await s.connect('rusty', 1);
  const carol = await s.connect('carol', 1);
  await carol.sync();

  tab0.send({ type: 'livechat', message: 'r1' });
  tab1.send({ type: 'livechat', message: 'r2' });
  tab0.send({ type: 'direct_message', to: 'carol', message: 'r3' });
  await carol.next(is('livechat', (m) => m.message === 'r1'), 5000, 'r1');
  await carol.next(is('livechat', (m) => m.message === 'r2'), 5000, 'r2');
  assert.deepEqual(plain(await carol.next(is('direct_message'), 5000, 'r3')),
    { type: 'direct_message', user: 'rusty', userId: R, message: 'r3' });

  let n = tab1.messages.length;
  tab1.send({ type: 'livechat', message: 'r4' });
  await rawError(tab1, n, 'rate-limited');
  let r = await http('POST', 0, '/live_chat_message', { body: { message: 'r5' }, bearer: s.token('rusty') });
  assert.equal(r.status, 429, r.text);
  assert.equal(r.json?.error, 'rate-limited');
  r = await http('POST', 1, '/direct_chat_message', { body: { to: 'carol', message: 'r6' }, bearer: s.token('rusty') });
  assert.equal(r.status, 429, r.text);
  assert.equal(r.json?.error, 'rate-limited');
  n = tab0.messages.length;
  tab0.send({ type: 'direct_message', to: s.users.carol, message: 'r7' });
  await rawError(tab0, n, 'rate-limited');

  await carol.sync();
  const seen = carol.messages.filter((m) => ['livechat', 'direct_message'].includes(m.type) && m.userId === R).map((m) => m.message);
  assert.deepEqual(seen.sort(), ['r1', 'r2', 'r3'], 'nothing over the limit was sent'); // r1/r2 cross gateways: any order
  await Promise.all([tab0.close(), tab1.close(), carol.close()]);
});

// ---- 7. direct messages -------------------------------------------------

test('direct_message reaches every tab of the recipient (by username or id), nobody else; unknown-user / 404', async () => {
  const A = s.users.alice;
  const alice = await s.connect('alice', 0);
  const bob1 = await s.connect('bob', 1);
  const bob0 = await s.connect('bob', 0);
  const carol = await s.connect('carol', 1);
  await Promise.all([alice.sync(), bob1.sync(), bob0.sync(), carol.sync()]);

  const cases = [['BOB', 'by name'], [s.users.bob, 'by numeric id'], [String(s.users.bob), 'by digit string']];
  for (const [to, message] of cases) {
    const [n1, n0] = [bob1.messages.length, bob0.messages.length];
    alice.send({ type: 'direct_message', to, message });
    const want = { type: 'direct_message', user: 'alice', userId: A, message };
    assert.deepEqual(plain(await nextFrom(bob1, n1, is('direct_message'), `${message} @gw1`)), want);
    assert.deepEqual(plain(await nextFrom(bob0, n0, is('direct_message'), `${message} @gw0`)), want);
  }

  // Over HTTP (dave): 202, delivered; an unknown recipient is 404.
  const n1 = bob1.messages.length;
  let r = await http('POST', 1, '/direct_chat_message', { body: { to: 'bob', message: 'from dave' }, bearer: s.token('dave') });
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { status: 'accepted' });
  assert.deepEqual(plain(await nextFrom(bob1, n1, is('direct_message'), 'http DM')),
    { type: 'direct_message', user: 'dave', userId: s.users.dave, message: 'from dave' });
  r = await http('POST', 0, '/direct_chat_message', { body: { to: 'nobody', message: 'hi' }, bearer: s.token('dave') });
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json?.error, 'unknown-user');
  r = await http('POST', 0, '/direct_chat_message', { body: { to: 'bob', message: 'anon' } });
  assert.equal(r.status, 401);

  // Unknown recipient on /ws (carol): unknown-user; a known offline one (erin): accepted silently.
  let n = carol.messages.length;
  carol.send({ type: 'direct_message', to: 'nobody', message: 'hi' });
  await rawError(carol, n, 'unknown-user');
  n = carol.messages.length;
  carol.send({ type: 'direct_message', to: 'erin', message: 'are you there' });
  await carol.sync();
  assert.deepEqual(since(carol, n, is('error')), [], 'an offline known recipient is not an error');

  await Promise.all([alice.sync(), bob1.sync(), bob0.sync(), carol.sync()]);
  assert.deepEqual(plain(since(carol, 0, is('direct_message'))), [], 'carol got none of bob\'s DMs');
  assert.deepEqual(plain(since(alice, 0, is('direct_message'))), [], 'the author gets no copy');
  assert.equal(since(bob1, 0, is('direct_message')).length, 4);
  assert.equal(since(bob0, 0, is('direct_message')).length, 4);
  await Promise.all([alice.close(), bob1.close(), bob0.close(), carol.close()]);
});

// ---- 8. matchmaking -----------------------------------------------------

test('matchmaking: two tabs queue the user once; first come first paired; leave and last-tab close dequeue', async () => {
  const mf = is('match-found');
  const carol0 = await s.connect('carol', 0);
  const carol1 = await s.connect('carol', 1);
  carol0.send({ type: 'join-matchmaking' });
  await carol0.sync();
  carol1.send({ type: 'join-matchmaking' });
  await carol1.sync();
  const dave = await s.connect('dave', 1);
  dave.send({ type: 'join-matchmaking' });
  const d = await dave.next(mf, 5000, 'match-found at dave');
  const c0 = await carol0.next(mf, 5000, 'match-found at carol tab 0');
  const c1 = await carol1.next(mf, 5000, 'match-found at carol tab 1');
  assert.equal(typeof d.matchId, 'string');
  assert.ok(d.matchId.length > 0);
  assert.equal(c0.matchId, d.matchId);
  assert.equal(c1.matchId, d.matchId);
  assert.deepEqual(d.opponent, { userId: s.users.carol, username: 'carol' });
  assert.deepEqual(c0.opponent, { userId: s.users.dave, username: 'dave' });
  assert.deepEqual(c1.opponent, { userId: s.users.dave, username: 'dave' });

  // carol was queued once: erin (fourth) stays queued.
  const erin = await s.connect('erin', 0);
  erin.send({ type: 'join-matchmaking' });
  await Promise.all([erin.sync(), carol0.sync(), carol1.sync()]);
  assert.deepEqual(since(erin, 0, mf), [], 'erin stays queued');
  assert.equal(since(carol0, 0, mf).length, 1, 'carol was not queued twice');
  assert.equal(since(carol1, 0, mf).length, 1);

  // leave-matchmaking dequeues erin: bob is queued, not paired.
  erin.send({ type: 'leave-matchmaking' });
  await erin.sync();
  const bob = await s.connect('bob', 1);
  bob.send({ type: 'join-matchmaking' });
  await Promise.all([bob.sync(), erin.sync()]);
  assert.deepEqual(since(bob, 0, mf), [], 'erin left the queue');
  assert.deepEqual(since(erin, 0, mf), []);
  bob.send({ type: 'leave-matchmaking' });
  await bob.sync();

  // Closing one of two tabs keeps the user queued; closing the last one dequeues.
  const alice0 = await s.connect('alice', 0);
  const alice1 = await s.connect('alice', 1);
  alice0.send({ type: 'join-matchmaking' });
  await alice0.sync();
  await alice0.close();
  await alice1.sync();
  bob.send({ type: 'join-matchmaking' });
  const b = await bob.next(mf, 5000, 'bob paired with alice (tab 1 still open)');
  assert.deepEqual(b.opponent, { userId: s.users.alice, username: 'alice' });
  const a1 = await alice1.next(mf, 5000, 'match-found at alice tab 1');
  assert.equal(a1.matchId, b.matchId);
  assert.notEqual(b.matchId, d.matchId, 'every match has its own id');

  alice1.send({ type: 'join-matchmaking' });
  await alice1.sync();
  await alice1.close();
  await bob.next(is('status_update', (m) => m.userId === s.users.alice && m.status === 'offline'), 5000, 'alice offline');
  const nb = bob.messages.length;
  bob.send({ type: 'join-matchmaking' });
  await bob.sync();
  assert.deepEqual(since(bob, nb, mf), [], 'alice left the queue with her last tab');
  erin.send({ type: 'join-matchmaking' });
  const e = await erin.next(mf, 5000, 'erin paired with bob');
  assert.deepEqual(e.opponent, { userId: s.users.bob, username: 'bob' });
  assert.deepEqual((await nextFrom(bob, nb, mf, 'bob paired with erin')).opponent, { userId: s.users.erin, username: 'erin' });

  await Promise.all([carol0.close(), carol1.close(), dave.close(), erin.close(), bob.close()]);
});

// ---- 9. search ----------------------------------------------------------

test('GET /users/search: case-insensitive prefix, live online flag, paging, literal % and _, bounds', async () => {
  const A = s.users.alice;
  const alice = await s.connect('alice', 1);
  const row = async (q, gi = 0) => (await search(`q=${q}`, gi)).find((u) => u.id === A);
  await waitFor(async () => (await row('AL'))?.online === true, { what: 'alice online in search' });
  const hit = await row('aLi', 1);
  assert.deepEqual(Object.keys(hit).sort(), ['avatar', 'id', 'online', 'username']);
  assert.equal(hit.username, 'alice');
  assert.equal(hit.online, true);
  for (const u of await search('q=AL')) assert.ok(u.username.toLowerCase().startsWith('al'), u.username);
  assert.equal(await row('lice'), undefined, 'a prefix match, not a substring match');
  assert.equal(await row('a_'), undefined, '_ is literal');
  assert.deepEqual(await search('q=%25'), [], '% is literal');
  await alice.close();
  await waitFor(async () => (await row('al'))?.online === false, { what: 'alice offline in search' });

  const all = await search('q=&limit=50');
  assert.ok(all.length >= 5);
  const names = all.map((u) => u.username);
  assert.deepEqual(names, [...names].sort((x, y) => x.toLowerCase().localeCompare(y.toLowerCase())), 'sorted by username');
  for (const n of ['alice', 'bob', 'carol', 'dave', 'erin']) assert.ok(names.includes(n), n);
  assert.deepEqual((await search('q=&limit=2')).map((u) => u.username), names.slice(0, 2));
  assert.deepEqual((await search('q=&limit=2&offset=2')).map((u) => u.username), names.slice(2, 4));
  assert.deepEqual((await search(`q=&limit=2&offset=${names.length}`)), []);
  assert.equal((await search('q=')).length, Math.min(names.length, 20), 'default limit 20');
  assert.deepEqual(await search(`q=${'a'.repeat(64)}`), [], '64 characters are allowed');

  for (const qs of [`q=${'a'.repeat(65)}`, 'q=a&limit=0', 'q=a&limit=51', 'q=a&limit=x', 'q=a&offset=-1']) {
    const r = await http('GET', 0, `/users/search?${qs}`);
    assert.equal(r.status, 400, qs);
    assert.equal(r.json?.error, 'bad-field', qs);
  }
});

// ---- 10. room bound -----------------------------------------------------

test('watch-profile: unknown-user, bad-field, and too-many-rooms at the 5th room (each counted in the broker\'s /metrics); unwatch frees a slot', async () => {
  const before = await brokerRefusals(s);
  const c = await s.connect('erin', 0);
  let n = c.messages.length;
  c.send({ type: 'watch-profile', userId: 999999 });
  await rawError(c, n, 'unknown-user');
  n = c.messages.length;
  c.send({ type: 'watch-profile', userId: 'abc' });
  await rawError(c, n, 'bad-field');

  n = c.messages.length;
  for (const name of ['alice', 'bob', 'carol', 'dave']) c.send({ type: 'watch-profile', userId: s.users[name] });
  await c.sync();
  assert.deepEqual(since(c, n, is('error')), [], 'four rooms are fine');
  c.send({ type: 'watch-profile', userId: s.users.erin });
  await rawError(c, n, 'too-many-rooms');
  const after = await brokerRefusals(s);
  for (const word of ['unknown-user', 'bad-field', 'too-many-rooms']) {
    assert.equal(after[word] - before[word], 1, `refusals{code="${word}"}`);
  }

  // Unwatching dave frees a slot; dave's updates no longer arrive, bob's do.
  n = c.messages.length;
  c.send({ type: 'unwatch-profile', userId: s.users.dave });
  c.send({ type: 'watch-profile', userId: s.users.erin });
  await c.sync();
  assert.deepEqual(since(c, n, is('error')), [], 'the freed slot is usable');
  // The bound is per connection: another tab of erin's may watch.
  const c2 = await s.connect('erin', 1);
  c2.send({ type: 'watch-profile', userId: s.users.alice });
  await c2.sync();
  assert.deepEqual(since(c2, 0, is('error')), []);

  n = c.messages.length;
  assert.equal((await notify('game-stats-update', { userId: s.users.dave, stats: { wins: 20, losses: 1 } })).status, 202);
  assert.equal((await notify('game-stats-update', { userId: s.users.bob, stats: { wins: 7, losses: 7 } })).status, 202);
  const m = await nextFrom(c, n, is('game-stats-update'), 'bob stats');
  assert.equal(m.stats.wins, 7);
  await c.sync();
  assert.deepEqual(since(c, n, is('game-stats-update')).map((x) => x.stats.wins), [7], 'nothing about dave');
  await Promise.all([c.close(), c2.close()]);
});
