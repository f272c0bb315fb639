// The web client with stored messages (PROTOCOL.md §4a), in a real browser
// (web-lib.mjs): DMs sent while someone was away are unread badges after
// login and a conversation with its history, paged back; a read in one tab
// clears the badge in the other; our own DMs from another tab show up; the
// recent live chat shows on load; after a gateway loss the page fetches
// what it missed, and shows every message once.
//
// The senders are Socket.IO clients (the same events the page sends): they
// make the stored state without a second browser. Screenshots: dm-unread
// and dm-history (docs/img/web-unread.png and web-dm-history.png are copies).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSioClients, waitFor } from '../integration/harness.mjs';
import { WebBench, T, connState, login, shot, noPageErrors } from './web-lib.mjs';

// More than one history page (50) is sent at once: no rate limit in the way.
const bench = new WebBench('e2e-web-dm', {
  env: { HERALD_CHAT_BURST: '1000', HERALD_CHAT_RATE: '1000', HERALD_CHAT_BURST_PER_IP: '10000' },
});
let s;
before(async () => { s = await bench.start(); });
after(async () => {
  closeSioClients();
  await bench.stop();
});

const person = (gi, opts) => bench.person(gi, opts);

const conversationRow = (page, name) => page.locator(`[data-testid=dm-conversation][data-username="${name}"]`);
const dmTexts = (page) => page.locator('[data-testid=dm-log] [data-testid=dm-message] [data-testid=message-text]').allTextContents();
const chatTexts = (page) => page.locator('[data-testid=chat-log] [data-testid=chat-message] [data-testid=message-text]').allTextContents();
const count = (list, text) => list.filter((t) => t === text).length;

async function sendDms(sock, to, messages) {
  const acks = [];
  for (const message of messages) acks.push(await sock.timeout(5000).emitWithAck('direct_message', { to, message }));
  assert.ok(acks.every((a) => a.ok === true), JSON.stringify(acks.find((a) => !a.ok)));
  return acks.map((a) => a.id);
}

const PLANS = ['the quiz starts at eight', 'bring the blue deck', 'table four is ours', 'loser buys the snacks', 'warm-up round first'];
const note = (i) => `#${i} ${PLANS[i % PLANS.length]}`;

test('DMs sent while away: unread badges after login, then the conversation with its history, paged back', async () => {
  try {
    const alice = await s.sio('alice', 0);
    const bob = await s.sio('bob', 1);
    const fromAlice = Array.from({ length: 55 }, (_, i) => note(i + 1));
    await sendDms(alice, 'carol', fromAlice);
    await sendDms(bob, 'carol', ['are you coming tonight?', 'ping me when you are back']);
    await alice.timeout(5000).emitWithAck('livechat', { message: 'who is in for the quiz?' });

    const carol = await person(0);
    await login(carol, 'carol');
    // The badges come with the connection (dm-unread), no conversation open.
    await conversationRow(carol, 'alice').locator('[data-testid=dm-unread]', { hasText: '55' }).waitFor({ timeout: T });
    await conversationRow(carol, 'bob').locator('[data-testid=dm-unread]', { hasText: '2' }).waitFor({ timeout: T });
    assert.equal(await carol.getByTestId('dm-thread').isHidden(), true);
    // The chat history came along too.
    await carol.locator('[data-testid=chat-message][data-author=alice]', { hasText: 'who is in for the quiz?' }).waitFor({ timeout: T });
    await shot(carol, 'dm-unread');

    // Opening alice's conversation: the newest page, newest last; the
    // badge goes, bob's stays.
    await conversationRow(carol, 'alice').getByRole('button').click();
    await carol.locator('[data-testid=dm-thread][data-peer=alice]').waitFor({ timeout: T });
    await carol.locator('[data-testid=dm-log] [data-testid=dm-message]', { hasText: note(55) }).waitFor({ timeout: T });
    assert.deepEqual(await dmTexts(carol), fromAlice.slice(5));
    await conversationRow(carol, 'alice').locator('[data-testid=dm-unread]').waitFor({ state: 'detached', timeout: T });
    assert.equal(await conversationRow(carol, 'bob').getAttribute('data-unread'), '2');
    // Earlier messages: the rest, in order, and no further page.
    await carol.getByRole('button', { name: 'Earlier messages' }).click();
    await carol.locator('[data-testid=dm-log] [data-testid=dm-message]', { hasText: note(1) }).first().waitFor({ timeout: T });
    assert.deepEqual(await dmTexts(carol), fromAlice);
    await carol.getByTestId('dm-older').waitFor({ state: 'hidden', timeout: T });

    // Bob's conversation, then carol answers: hers shows as her own.
    await conversationRow(carol, 'bob').getByRole('button').click();
    await carol.locator('[data-testid=dm-thread][data-peer=bob] [data-testid=dm-message]', { hasText: 'ping me when you are back' }).waitFor({ timeout: T });
    await carol.getByTestId('dm-input').fill('back now, see you at eight');
    await carol.getByTestId('dm-input').press('Enter');
    await carol.locator('[data-testid=dm-log] .message.mine', { hasText: 'back now, see you at eight' }).waitFor({ timeout: T });
    assert.deepEqual(await dmTexts(carol), ['are you coming tonight?', 'ping me when you are back', 'back now, see you at eight']);
    await conversationRow(carol, 'bob').locator('[data-testid=dm-unread]').waitFor({ state: 'detached', timeout: T });
    await shot(carol, 'dm-history');

    // The read marks are the broker's: nothing is unread any more.
    const carolSio = await s.sio('carol', 1);
    assert.deepEqual(await carolSio.timeout(5000).emitWithAck('get-unread'), []);
    noPageErrors(carol);
  } finally {
    await bench.closeAll();
  }
});

test("a read in one tab clears the badge in the other; our own DMs from another tab show up", async () => {
  try {
    const erin = await s.sio('erin', 1);
    await sendDms(erin, 'dave', ['dave?', 'the server is down', 'call me']);
    const one = await person(0);
    await login(one, 'dave');
    const two = await bench.tab(one, 1); // same cookie, the other gateway
    await two.locator('[data-testid=me-name]', { hasText: 'dave' }).waitFor({ timeout: T });
    for (const p of [one, two]) {
      await conversationRow(p, 'erin').locator('[data-testid=dm-unread]', { hasText: '3' }).waitFor({ timeout: T });
    }

    // Tab one reads; tab two, which shows nothing, loses the badge.
    await conversationRow(one, 'erin').getByRole('button').click();
    await one.locator('[data-testid=dm-log] [data-testid=dm-message]', { hasText: 'call me' }).waitFor({ timeout: T });
    await conversationRow(two, 'erin').locator('[data-testid=dm-unread]').waitFor({ state: 'detached', timeout: T });
    assert.equal(await conversationRow(two, 'erin').getAttribute('data-unread'), '0');
    assert.equal(await two.getByTestId('dm-thread').isHidden(), true);

    // Tab one answers: tab two shows the answer as dave's own, with the
    // history around it, and no badge for it.
    await one.getByTestId('dm-input').fill('on it');
    await one.getByTestId('dm-input').press('Enter');
    await two.locator('[data-testid=dm-thread][data-peer=erin] .message.mine', { hasText: 'on it' }).waitFor({ timeout: T });
    await two.locator('[data-testid=dm-log] [data-testid=dm-message]', { hasText: 'dave?' }).waitFor({ timeout: T });
    assert.deepEqual(await dmTexts(two), ['dave?', 'the server is down', 'call me', 'on it']);
    assert.equal(await conversationRow(two, 'erin').getAttribute('data-unread'), '0');
    // erin got it once.
    const got = await erin.timeout(5000).emitWithAck('get-dm-history', { with: 'dave' });
    assert.deepEqual(got.map((m) => m.message), ['dave?', 'the server is down', 'call me', 'on it']);
    noPageErrors(one, two);
  } finally {
    await bench.closeAll();
  }
});

test('the recent live chat shows on load, each message once, also after a reload', async () => {
  try {
    const alice = await s.sio('alice', 1);
    for (const message of ['early bird 1', 'early bird 2']) {
      assert.deepEqual(await alice.timeout(5000).emitWithAck('livechat', { message }), { ok: true });
    }
    const bob = await person(0);
    await login(bob, 'bob');
    await bob.locator('[data-testid=chat-message]', { hasText: 'early bird 2' }).waitFor({ timeout: T });
    // Live messages merge with the history; the last one live proves the
    // earlier ones had their chance to show twice.
    await alice.timeout(5000).emitWithAck('livechat', { message: 'live now' });
    await bob.getByTestId('chat-input').fill('bob is here');
    await bob.getByTestId('chat-input').press('Enter');
    await bob.locator('[data-testid=chat-message][data-author=bob]', { hasText: 'bob is here' }).waitFor({ timeout: T });
    let texts = await chatTexts(bob);
    for (const t of ['early bird 1', 'early bird 2', 'live now', 'bob is here']) assert.equal(count(texts, t), 1, t);
    assert.deepEqual(texts.slice(-4), ['early bird 1', 'early bird 2', 'live now', 'bob is here']);

    await bob.reload();
    await connState(bob, 'online');
    await bob.locator('[data-testid=chat-message]', { hasText: 'bob is here' }).waitFor({ timeout: T });
    texts = await chatTexts(bob);
    assert.deepEqual(texts.slice(-4), ['early bird 1', 'early bird 2', 'live now', 'bob is here']);
    for (const t of ['early bird 1', 'live now']) assert.equal(count(texts, t), 1, t);
    noPageErrors(bob);
  } finally {
    await bench.closeAll();
  }
});

// Last: it kills gateway A for good.
test('after a gateway loss the page fetches the chat and DMs it missed, and shows each once', async () => {
  try {
    const [a, b] = s.gateways.map((g) => g.url);
    const erin = await s.sio('erin', 1);
    const alice = await person(0, { query: `?gateways=${a},${b}` });
    await login(alice, 'alice');
    await sendDms(erin, 'alice', ['before the loss']);
    // The first DM opens the conversation by itself.
    await alice.locator('[data-testid=dm-thread][data-peer=erin] [data-testid=dm-message]', { hasText: 'before the loss' }).waitFor({ timeout: T });
    // Its history is loaded once it is marked read (dm-read follows the
    // load): what comes back after the loss is a catch-up, not a first load.
    const aliceSio = await s.sio('alice', 1);
    await waitFor(async () => (await aliceSio.timeout(5000).emitWithAck('get-unread')).length === 0, { what: 'the conversation loaded and read' });

    s.gateways[0].proc.kill('SIGKILL');
    await connState(alice, 'reconnecting');
    await erin.timeout(5000).emitWithAck('livechat', { message: 'said while alice was away' });
    await sendDms(erin, 'alice', ['DM while away 1', 'DM while away 2']);
    // The page retries after 1-2 s: these were answered before it could be
    // back, so only a refetch can show them.
    assert.equal(await alice.getByTestId('conn-state').getAttribute('data-state'), 'reconnecting',
      'the page must still be away when the messages are stored');

    await alice.locator(`[data-testid=conn-state][data-state=online][data-gateway="${b}"]`).waitFor({ timeout: 20000 });
    await alice.locator('[data-testid=chat-message]', { hasText: 'said while alice was away' }).waitFor({ timeout: T });
    await alice.locator('[data-testid=dm-log] [data-testid=dm-message]', { hasText: 'DM while away 2' }).waitFor({ timeout: T });
    // One more of each, live: after it, nothing is there twice.
    await erin.timeout(5000).emitWithAck('livechat', { message: 'welcome back' });
    await sendDms(erin, 'alice', ['live again']);
    await alice.locator('[data-testid=dm-log] [data-testid=dm-message]', { hasText: 'live again' }).waitFor({ timeout: T });
    await alice.locator('[data-testid=chat-message]', { hasText: 'welcome back' }).waitFor({ timeout: T });
    assert.deepEqual(await dmTexts(alice), ['before the loss', 'DM while away 1', 'DM while away 2', 'live again']);
    const chat = await chatTexts(alice);
    assert.equal(count(chat, 'said while alice was away'), 1);
    assert.equal(count(chat, 'welcome back'), 1);
    // Shown, so read: nothing unread at the broker.
    await conversationRow(alice, 'erin').locator('[data-testid=dm-unread]').waitFor({ state: 'detached', timeout: T });
    assert.deepEqual(await aliceSio.timeout(5000).emitWithAck('get-unread'), []);
    noPageErrors(alice);
  } finally {
    await bench.closeAll();
  }
});
