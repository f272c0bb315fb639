// Stored direct messages: a DM to a user who is offline used to be
// acknowledged and dropped. It is now stored in SQLite before anything is
// delivered, so it survives a broker kill -9 and a Redis restart, shows up
// as unread when its recipient connects, and in the conversation's history;
// read marks are shared by every tab. Also the live chat history.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, waitFor, sioClient, sioConnected, sioNext, closeSioClients } from './harness.mjs';

const API_KEY = 'dm-api-key';
let s;
before(async () => { s = await new Stack('dm', { env: { HERALD_API_KEY: API_KEY } }).start(); });
after(async () => { closeSioClients(); await s.stop(); });

const healthy = () => waitFor(async () => (await fetch(`${s.gateways[0].url}/healthz`)).status === 200 &&
  (await fetch(`${s.gateways[1].url}/healthz`)).status === 200, { what: 'healthy', timeout: 20000 });

test('DMs to an offline user survive a broker kill -9 and a Redis restart: unread on login, then history', async () => {
  const alice = await s.sio('alice', 0);
  const acks = [];
  for (const message of ['one', 'two', 'three']) {
    acks.push(await alice.timeout(5000).emitWithAck('direct_message', { to: 'bob', message }));
  }
  for (const a of acks) assert.equal(a.ok, true);
  const ids = acks.map((a) => a.id);
  assert.ok(ids[0] < ids[1] && ids[1] < ids[2], `ids grow: ${ids}`);

  s.broker.kill('SIGKILL');
  await s.broker.exited;
  await s.redisProc.stop();
  await s.startRedis();
  await s.startBroker();
  await healthy();

  // bob's first tab hears of all three at once, then reads the history.
  const bob = await s.connect('bob', 1);
  const unread = await bob.next((m) => m.type === 'dm-unread', 10000, 'dm-unread on connect');
  assert.deepEqual(unread.conversations, [{ userId: s.users.alice, username: 'alice', count: 3, lastId: ids[2] }]);
  bob.send({ type: 'get_dm_history', with: 'alice' });
  const h = await bob.next((m) => m.type === 'dm_history', 5000, 'dm_history');
  assert.equal(h.with, s.users.alice);
  assert.deepEqual(h.messages.map((m) => [m.id, m.from, m.to, m.message]),
    ids.map((id, i) => [id, s.users.alice, s.users.bob, ['one', 'two', 'three'][i]]));
  assert.ok(h.messages.every((m) => Number.isInteger(m.ts)));
  // A page: before the newest, at most one.
  bob.send({ type: 'get_dm_history', with: s.users.alice, before: ids[2], limit: 1 });
  const page = await bob.next((m) => m.type === 'dm_history' && m.messages.length === 1 && m.messages[0].id === ids[1],
    5000, 'a page of one');
  assert.equal(page.messages[0].message, 'two');
  alice.disconnect();
  await bob.close();
});

test('read marks are shared by every tab; Socket.IO gets dm-unread as a list', async () => {
  const carol = await s.sio('carol', 0);
  const ack = await carol.timeout(5000).emitWithAck('direct_message', { to: 'dave', message: 'for dave' });
  assert.equal(ack.ok, true);
  const daveRaw = await s.connect('dave', 1);
  const first = await daveRaw.next((m) => m.type === 'dm-unread', 10000, 'dm-unread (raw)');
  assert.deepEqual(first.conversations.map((c) => [c.userId, c.count]), [[s.users.carol, 1]]);
  const daveSio = sioClient(s.gateways[0].url, { token: s.token('dave') });
  const pushed = sioNext(daveSio, 'dm-unread', () => true, { timeout: 10000 });
  await sioConnected(daveSio);
  const [list] = await pushed;
  assert.deepEqual(list.map((c) => [c.userId, c.username, c.count, c.lastId]), [[s.users.carol, 'carol', 1, ack.id]]);
  // The Socket.IO tab reads it: the raw tab's counts follow.
  const n = daveRaw.messages.length;
  assert.deepEqual(await daveSio.timeout(5000).emitWithAck('dm-read', { with: 'carol', upTo: ack.id }), { ok: true });
  const after = await daveRaw.next((m) => m.type === 'dm-unread' && daveRaw.messages.indexOf(m) >= n, 5000, 'new counts');
  assert.deepEqual(after.conversations, []);
  assert.deepEqual(await daveSio.timeout(5000).emitWithAck('get-unread'), []);
  // A new DM: dave's tabs get it and its counts; carol's other tab a copy.
  const carol2 = await s.connect('carol', 1);
  await carol2.sync();
  const ack2 = await carol.timeout(5000).emitWithAck('direct_message', { to: 'dave', message: 'again' });
  const copy = await carol2.next((m) => m.type === 'direct_message' && m.message === 'again', 5000, "the sender's other tab");
  assert.equal(copy.to, s.users.dave);
  assert.equal(copy.id, ack2.id);
  const live = await daveRaw.next((m) => m.type === 'direct_message' && m.message === 'again');
  assert.equal(live.id, ack2.id);
  daveRaw.send({ type: 'get_unread' });
  await daveRaw.next((m) => m.type === 'dm-unread' && m.conversations.length === 1 && m.conversations[0].count === 1);
  // The history from Socket.IO: a callback with the list, newest last.
  const hist = await daveSio.timeout(5000).emitWithAck('get-dm-history', { with: s.users.carol });
  assert.deepEqual(hist.map((m) => m.message), ['for dave', 'again']);
  // Bad input is answered and changes nothing.
  const bad = await daveSio.timeout(5000).emitWithAck('dm-read', { with: 'carol', upTo: 'x' });
  assert.equal(bad.ok, false);
  assert.equal(bad.error, 'bad-field');
  carol.disconnect();
  daveSio.disconnect();
  await carol2.close();
  await daveRaw.close();
});

test('the live chat history: the last messages, newest last, on both endpoints', async () => {
  const erin = await s.connect('erin', 0);
  for (const message of ['c1', 'c2', 'c3']) erin.send({ type: 'livechat', message });
  await erin.next((m) => m.type === 'livechat' && m.message === 'c3');
  erin.send({ type: 'get_chat_history', limit: 2 });
  const h = await erin.next((m) => m.type === 'chat_history', 5000, 'chat_history');
  assert.deepEqual(h.messages.map((m) => [m.user, m.message]), [['erin', 'c2'], ['erin', 'c3']]);
  const alice = await s.sio('alice', 1);
  const list = await alice.timeout(5000).emitWithAck('get-chat-history', {});
  assert.deepEqual(list.slice(-3).map((m) => m.message), ['c1', 'c2', 'c3']);
  assert.ok(list.every((m) => Number.isInteger(m.id) && Number.isInteger(m.ts) && m.userId > 0));
  alice.disconnect();
  await erin.close();
});

test('GET /api/dm/history: the application reads a stored conversation with its API key', async () => {
  const [carol, erin] = [s.users.carol, s.users.erin];
  const erinSio = await s.sio('erin', 0);
  const acks = [];
  for (const message of ['h1', 'h2', 'h3']) {
    acks.push(await erinSio.timeout(5000).emitWithAck('direct_message', { to: 'carol', message }));
  }
  assert.ok(acks.every((a) => a.ok === true), JSON.stringify(acks));
  const ids = acks.map((a) => a.id);
  const get = (query, key = API_KEY, gi = 1) => fetch(`${s.gateways[gi].url}/api/dm/history?${query}`,
    { headers: key ? { Authorization: `Bearer ${key}` } : {} });
  const json = async (r) => ({ status: r.status, body: await r.json() });

  // The whole conversation, newest last, either way round.
  const all = await json(await get(`user=${carol}&with=${erin}`));
  assert.equal(all.status, 200);
  assert.deepEqual(all.body.messages.map((m) => [m.id, m.from, m.to, m.message]),
    ids.map((id, i) => [id, erin, carol, `h${i + 1}`]));
  assert.ok(all.body.messages.every((m) => Number.isInteger(m.ts) && m.ts > 0));
  assert.deepEqual((await json(await get(`user=${erin}&with=${carol}`, API_KEY, 0))).body, all.body);
  // Pages: the newest one, then the one before it.
  assert.deepEqual((await json(await get(`user=${carol}&with=${erin}&limit=2`))).body.messages.map((m) => m.id), ids.slice(1));
  assert.deepEqual((await json(await get(`user=${carol}&with=${erin}&before=${ids[1]}&limit=2`))).body.messages.map((m) => m.id), [ids[0]]);
  // Users who never wrote to each other: an empty list.
  assert.deepEqual((await json(await get(`user=${carol}&with=${s.users.bob}`))).body, { messages: [] });

  // Bad input is named; unknown users are 404 with the parameter named.
  const bad = [
    ['with=1', /user must be a user id/],
    [`user=${carol}`, /with must be a user id/],
    [`user=x&with=${erin}`, /user must be a user id/],
    [`user=${carol}&with=0`, /with must be a user id/],
    [`user=${carol}&with=${erin}&before=-1`, /before must be a message id/],
    [`user=${carol}&with=${erin}&limit=0`, /limit must be 1\.\.100/],
    [`user=${carol}&with=${erin}&limit=101`, /limit must be 1\.\.100/],
  ];
  for (const [q, message] of bad) {
    const r = await json(await get(q));
    assert.equal(r.status, 400, q);
    assert.equal(r.body.error, 'bad-field', q);
    assert.match(r.body.message, message, q);
  }
  const unknownWith = await json(await get(`user=${carol}&with=999999`));
  assert.deepEqual([unknownWith.status, unknownWith.body.error], [404, 'unknown-user']);
  assert.match(unknownWith.body.message, /with/);
  const unknownUser = await json(await get(`user=999999&with=${carol}`));
  assert.deepEqual([unknownUser.status, unknownUser.body.error], [404, 'unknown-user']);
  assert.match(unknownUser.body.message, /user/);

  // The API key is required; a user's token is not one.
  assert.deepEqual(await json(await get(`user=${carol}&with=${erin}`, null)),
    { status: 401, body: { error: 'bad-api-key', message: 'a valid API key is required' } });
  assert.equal((await get(`user=${carol}&with=${erin}`, s.token('carol'))).status, 401);
  const post = await fetch(`${s.gateways[0].url}/api/dm/history?user=${carol}&with=${erin}`,
    { method: 'POST', headers: { Authorization: `Bearer ${API_KEY}` } });
  assert.equal(post.status, 405);
  erinSio.disconnect();
});
