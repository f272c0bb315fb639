// The web client (web/) in a real browser: Debian's Chromium driven by
// playwright-core, against a real stack (web-lib.mjs). Screenshots of the
// main states go to $HERALD_TEST_OUT/e2e/screenshots/ (default tests/out/).
// Stored messages (history, unread badges) are in web-dm.test.mjs.
//
// Waits are polls on the page's DOM (data-testid selectors); absence is only
// asserted after something that must arrive later has arrived.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { waitFor } from '../integration/harness.mjs';
import { WebBench, T, connState, login, onlineUser, onlineNames, shot, noPageErrors } from './web-lib.mjs';

const bench = new WebBench('e2e-web');
let s;
before(async () => { s = await bench.start(); });
after(() => bench.stop());

const person = (gi, opts) => bench.person(gi, opts);
const closeAll = () => bench.closeAll();
const notify = (event, body) => bench.notify(event, body);

// ---- tests --------------------------------------------------------------------------

test('two users see each other come online, and go offline after logout or tab close', async () => {
  try {
    const alice = await person(0);
    const bob = await person(1);
    // A guest sees the page live but cannot chat or play.
    await alice.locator('[data-testid=conn-state]', { hasText: 'Online as a guest' }).waitFor({ timeout: T });
    assert.equal(await alice.locator('[data-testid=chat-input]').isDisabled(), true);
    assert.equal(await alice.locator('[data-testid=match-button]').isDisabled(), true);
    await shot(alice, 'guest');

    await login(alice, 'alice');
    await onlineUser(bob, 'alice').waitFor({ timeout: T }); // bob, still a guest, sees alice arrive
    await login(bob, 'bob');
    await onlineUser(alice, 'bob').waitFor({ timeout: T });
    assert.deepEqual(await onlineNames(alice), ['alice', 'bob']);
    assert.deepEqual(await onlineNames(bob), ['alice', 'bob']);
    assert.equal(await onlineUser(alice, 'alice').locator('.badge').textContent(), 'you');
    await shot(alice, 'online-two-users');

    // Logout: a clean close (1000) and bob sees alice go offline.
    const before = await alice.evaluate(() => window.__wsCloses.length);
    await alice.getByRole('button', { name: 'Log out' }).click();
    await onlineUser(bob, 'alice').waitFor({ state: 'detached', timeout: T });
    await alice.waitForFunction((n) => window.__wsCloses.length > n, before);
    const closes = await alice.evaluate(() => window.__wsCloses);
    assert.deepEqual(closes.slice(before)[0], { code: 1000, clean: true }, 'logout closes the socket with 1000');
    await alice.locator('[data-testid=login-form]').waitFor({ timeout: T });
    await alice.locator('[data-testid=conn-state]', { hasText: 'guest' }).waitFor({ timeout: T });
    await onlineUser(alice, 'alice').waitFor({ state: 'detached', timeout: T });
    assert.deepEqual(await onlineNames(alice), ['bob']);

    // Back in; then bob closes his tab.
    await login(alice, 'alice');
    await onlineUser(bob, 'alice').waitFor({ timeout: T });
    noPageErrors(alice, bob);
    await bob.close();
    await onlineUser(alice, 'bob').waitFor({ state: 'detached', timeout: T });
    assert.deepEqual(await onlineNames(alice), ['alice']);
    // A reload keeps the session (the cookie), as the same user.
    await alice.reload();
    await connState(alice, 'online');
    await alice.locator('[data-testid=me-name]', { hasText: 'alice' }).waitFor({ timeout: T });
    await onlineUser(alice, 'alice').waitFor({ timeout: T });
    noPageErrors(alice);
  } finally {
    await closeAll();
  }
});

test('search results show online and offline live', async () => {
  try {
    const guest = await person(0);
    await guest.getByLabel('Find someone').fill('car');
    const carolRow = guest.locator('[data-testid=search-results] [data-testid=search-result][data-username=carol]');
    await carolRow.waitFor({ timeout: T });
    assert.equal(await carolRow.getAttribute('data-online'), 'false');
    assert.equal(await carolRow.locator('[data-testid=status]').textContent(), 'offline');
    assert.equal(await guest.locator('[data-testid=search-result]').count(), 1, 'prefix match: carol only');

    const carol = await person(1);
    await login(carol, 'carol');
    await guest.locator('[data-testid=search-result][data-username=carol][data-online=true]').waitFor({ timeout: T });
    assert.equal(await carolRow.locator('[data-testid=status]').textContent(), 'online');
    await shot(guest, 'search-live-status');

    await carol.getByRole('button', { name: 'Log out' }).click();
    await guest.locator('[data-testid=search-result][data-username=carol][data-online=false]').waitFor({ timeout: T });

    // A name that matches nobody says so.
    await guest.getByLabel('Find someone').fill('zz-nobody');
    await guest.locator('[data-testid=search-results]', { hasText: 'No one by that name' }).waitFor({ timeout: T });
    noPageErrors(guest, carol);
  } finally {
    await closeAll();
  }
});

test('live chat reaches everyone, a DM only its recipient, each in its own window', async () => {
  try {
    const alice = await person(0);
    const bob = await person(1);
    const carol = await person(0);
    await login(alice, 'alice');
    await login(bob, 'bob');
    await login(carol, 'carol');
    await onlineUser(alice, 'bob').waitFor({ timeout: T });

    // Alice opens bob's profile from the online list and writes to him.
    await onlineUser(alice, 'bob').getByRole('button').click();
    await alice.locator('[data-testid=profile-panel][data-user-id]').waitFor({ timeout: T });
    await alice.getByRole('button', { name: 'Send a message' }).click();
    await alice.locator('[data-testid=dm-thread][data-peer=bob]').waitFor({ timeout: T });
    await alice.getByTestId('dm-input').fill('psst bob, just for you');
    await alice.getByTestId('dm-input').press('Enter');
    await alice.locator('[data-testid=dm-log] [data-testid=dm-message]', { hasText: 'psst bob, just for you' }).waitFor({ timeout: T });
    // Then a message to everyone.
    await alice.getByTestId('chat-input').fill('hello everyone');
    await alice.getByTestId('chat-input').press('Enter');

    for (const p of [alice, bob, carol]) {
      await p.locator('[data-testid=chat-log] [data-testid=chat-message][data-author=alice]', { hasText: 'hello everyone' }).waitFor({ timeout: T });
    }
    // Bob got the DM, in the conversation with alice, not in the chat.
    await bob.locator('[data-testid=dm-thread][data-peer=alice] [data-testid=dm-message]', { hasText: 'psst bob, just for you' }).waitFor({ timeout: T });
    assert.equal(await bob.locator('[data-testid=dm-conversation]').count(), 1);
    assert.equal(await bob.locator('[data-testid=chat-log]', { hasText: 'psst' }).count(), 0);
    assert.equal(await bob.locator('[data-testid=dm-log]', { hasText: 'hello everyone' }).count(), 0);
    // Carol has seen the later chat message, so the DM would have reached
    // her by now if it were going to: she has no conversation at all.
    assert.equal(await carol.locator('[data-testid=dm-conversation]').count(), 0);
    assert.equal(await carol.locator('[data-testid=dm-message]').count(), 0);
    assert.equal(await carol.getByText('psst bob').count(), 0);

    // Bob answers; it lands in alice's conversation with bob.
    await bob.getByTestId('dm-input').fill('thanks alice');
    await bob.getByTestId('dm-input').press('Enter');
    await alice.locator('[data-testid=dm-thread][data-peer=bob] [data-testid=dm-message]', { hasText: 'thanks alice' }).waitFor({ timeout: T });
    await bob.getByTestId('chat-input').fill('bob says hi to the room');
    await bob.getByTestId('chat-input').press('Enter');
    await carol.locator('[data-testid=chat-message][data-author=bob]', { hasText: 'bob says hi to the room' }).waitFor({ timeout: T });
    assert.equal(await carol.getByText('thanks alice').count(), 0);
    await shot(bob, 'chat-and-dm');
    noPageErrors(alice, bob, carol);
  } finally {
    await closeAll();
  }
});

test('the profile panel follows live profile and stats updates, and unwatches on close', async () => {
  try {
    const guest = await person(0); // a guest: public fields only
    const dave = await person(1);
    await login(dave, 'dave');
    await onlineUser(guest, 'dave').waitFor({ timeout: T });
    const opener = onlineUser(guest, 'dave').getByRole('button');
    await opener.click();
    const panel = guest.getByTestId('profile-panel');
    await guest.locator(`[data-testid=profile-panel][data-user-id="${s.users.dave}"]`).waitFor({ timeout: T });
    await panel.locator('[data-testid=profile-name]', { hasText: 'dave' }).waitFor({ timeout: T });
    await panel.locator('[data-testid=profile-status]', { hasText: 'Online now' }).waitFor({ timeout: T });
    await guest.locator('[data-testid=profile-wins]:not(:text("…"))').waitFor({ timeout: T });
    assert.equal(await guest.locator('#profile-friends-box').isHidden(), true, 'a guest gets the public fields: no friend list');

    // The panel holds a room on the gateway: herald:watch:<gw> has it.
    const watching = () => s.redis('HKEYS', 'herald:watch:gw-a').split('\n').filter((k) => k.endsWith(`:${s.users.dave}"`) || k.endsWith(`:${s.users.dave}`));
    await waitFor(() => watching().length === 1, { what: 'watch room in redis' });

    await notify('game-stats-update', { userId: s.users.dave, stats: { wins: 12, losses: 4 } });
    await panel.locator('[data-testid=profile-wins]', { hasText: '12' }).waitFor({ timeout: T });
    assert.equal(await panel.getByTestId('profile-losses').textContent(), '4');
    assert.equal(await panel.getByTestId('profile-ratio').textContent(), '75%');

    await notify('profile-update', { userId: s.users.dave, user: { avatar: '/avatars/carol.svg' } });
    await panel.locator('[data-testid=profile-avatar] img[src="/avatars/carol.svg"]').waitFor({ timeout: T });
    // The online list follows the new avatar too.
    await onlineUser(guest, 'dave').locator('img[src="/avatars/carol.svg"]').waitFor({ timeout: T });
    await shot(guest, 'profile-panel');

    // An avatar that is not a safe URL is never put in <img src>.
    await notify('profile-update', { userId: s.users.dave, user: { avatar: 'javascript:alert(1)' } });
    await panel.locator('[data-testid=profile-avatar] [data-testid=avatar-fallback]').waitFor({ timeout: T });
    assert.equal(await guest.locator('img[src^="javascript"]').count(), 0);
    await notify('profile-update', { userId: s.users.dave, user: { avatar: '/avatars/dave.svg' } });
    await panel.locator('[data-testid=profile-avatar] img[src="/avatars/dave.svg"]').waitFor({ timeout: T });

    // Presence in the panel is live as well.
    await dave.getByRole('button', { name: 'Log out' }).click();
    await panel.locator('[data-testid=profile-status]', { hasText: 'Offline' }).waitFor({ timeout: T });

    // Escape closes it, focus goes back, and the room is left.
    await guest.keyboard.press('Escape');
    await panel.waitFor({ state: 'hidden', timeout: T });
    await waitFor(() => watching().length === 0, { what: 'unwatch-profile after close' });
    noPageErrors(guest, dave);
  } finally {
    await closeAll();
  }
});

test('a chat message with markup is shown as text, never as HTML', async () => {
  try {
    const alice = await person(0);
    const bob = await person(1);
    await login(alice, 'alice');
    await login(bob, 'bob');
    const evil = '<img src=x onerror="window.__pwned=1"><b>bold?</b>';
    await alice.getByTestId('chat-input').fill(evil);
    await alice.getByTestId('chat-input').press('Enter');
    for (const p of [alice, bob]) {
      const text = p.locator('[data-testid=chat-message] [data-testid=message-text]').last();
      await p.locator('[data-testid=chat-message]', { hasText: 'onerror' }).waitFor({ timeout: T });
      assert.equal(await text.textContent(), evil, 'the literal text is shown');
      assert.equal(await text.evaluate((el) => el.children.length), 0, 'no element inside the message');
      assert.equal(await p.locator('img[src="x"]').count(), 0, 'no <img> was created');
      assert.equal(await p.locator('[data-testid=chat-log] b').count(), 0);
      assert.equal(await p.evaluate(() => window.__pwned), undefined);
    }
    // The same in a direct message.
    await alice.getByRole('button', { name: /^bob, online/ }).click();
    await alice.getByRole('button', { name: 'Send a message' }).click();
    await alice.getByTestId('dm-input').fill(evil);
    await alice.getByTestId('dm-input').press('Enter');
    const dm = bob.locator('[data-testid=dm-message] [data-testid=message-text]', { hasText: 'onerror' });
    await dm.waitFor({ timeout: T });
    assert.equal(await dm.textContent(), evil);
    assert.equal(await bob.locator('img[src="x"]').count(), 0);
    assert.equal(await bob.evaluate(() => window.__pwned), undefined);
    await shot(bob, 'xss-as-text');
    noPageErrors(alice, bob);
  } finally {
    await closeAll();
  }
});

test('matchmaking: queue state, then match-found on both pages', async () => {
  try {
    const alice = await person(0);
    const bob = await person(1);
    await login(alice, 'alice');
    await login(bob, 'bob');
    await alice.getByRole('button', { name: 'Find a match' }).click();
    await alice.locator('[data-testid=match-status][data-state=queued]').waitFor({ timeout: T });
    assert.equal(await alice.getByTestId('match-button').textContent(), 'Cancel');
    // Cancel and join again: leave-matchmaking works.
    await alice.getByRole('button', { name: 'Cancel' }).click();
    await alice.locator('[data-testid=match-status][data-state=idle]').waitFor({ timeout: T });
    await alice.getByRole('button', { name: 'Find a match' }).click();
    await alice.locator('[data-testid=match-status][data-state=queued]').waitFor({ timeout: T });
    await bob.getByRole('button', { name: 'Find a match' }).click();
    await alice.locator('[data-testid=match-status][data-state=matched] [data-testid=match-opponent]', { hasText: 'bob' }).waitFor({ timeout: T });
    await bob.locator('[data-testid=match-status][data-state=matched] [data-testid=match-opponent]', { hasText: 'alice' }).waitFor({ timeout: T });
    await shot(alice, 'match-found');
    noPageErrors(alice, bob);
  } finally {
    await closeAll();
  }
});

test('phone width (375 px): one column, nothing wider than the screen', async () => {
  try {
    const page = await person(0, { viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    await login(page, 'erin');
    await page.getByTestId('chat-input').fill('hello from a phone');
    await page.getByTestId('chat-input').press('Enter');
    await page.locator('[data-testid=chat-message]', { hasText: 'hello from a phone' }).waitFor({ timeout: T });
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 375, `page is ${width} px wide`);
    await shot(page, 'phone-375', { fullPage: true });
    await onlineUser(page, 'erin').getByRole('button').click();
    await page.getByTestId('profile-panel').waitFor({ timeout: T });
    await page.locator('[data-testid=profile-wins]:not(:text("…"))').waitFor({ timeout: T });
    await shot(page, 'phone-375-profile');
    noPageErrors(page);
  } finally {
    await closeAll();
  }
});

// Last: it kills gateway A for good.
test('killing the gateway the page is on: "reconnecting", then online again on the other gateway', async () => {
  try {
    const [a, b] = s.gateways.map((g) => g.url);
    const alice = await person(0, { query: `?gateways=${a},${b}` });
    const bob = await person(1);
    await login(alice, 'alice');
    await login(bob, 'bob');
    await onlineUser(alice, 'bob').waitFor({ timeout: T });
    await onlineUser(bob, 'alice').waitFor({ timeout: T });
    assert.equal(await alice.getByTestId('conn-state').getAttribute('data-gateway'), a);

    s.gateways[0].proc.kill('SIGKILL');
    await alice.locator('[data-testid=conn-state][data-state=reconnecting]', { hasText: /Reconnecting in \d+ s/ }).waitFor({ timeout: T });
    await shot(alice, 'reconnecting');
    await alice.locator(`[data-testid=conn-state][data-state=online][data-gateway="${b}"]`).waitFor({ timeout: 20000 });
    // Still alice (the cookie went along), and the presence list is right
    // again once the broker has written gateway A off.
    await alice.locator('[data-testid=me-name]', { hasText: 'alice' }).waitFor({ timeout: T });
    await waitFor(() => fs.readFileSync(s.broker.log, 'utf8').includes('gateway gw-a missed its lease'), { what: 'broker drops gw-a', timeout: 15000 });
    await alice.locator('[data-testid=chat-input]:enabled').waitFor({ timeout: T });
    await onlineUser(alice, 'alice').waitFor({ timeout: T });
    await onlineUser(alice, 'bob').waitFor({ timeout: T });
    await onlineUser(bob, 'alice').waitFor({ timeout: T });
    // A round trip through the broker on each page, then compare.
    await alice.getByTestId('chat-input').fill('back on gateway B');
    await alice.getByTestId('chat-input').press('Enter');
    await bob.locator('[data-testid=chat-message]', { hasText: 'back on gateway B' }).waitFor({ timeout: T });
    assert.deepEqual(await onlineNames(alice), ['alice', 'bob']);
    assert.deepEqual(await onlineNames(bob), ['alice', 'bob']);
    assert.deepEqual(await s.onlineUsers(), [s.users.alice, s.users.bob].sort((x, y) => x - y));
    await shot(alice, 'recovered-on-gateway-b');
    noPageErrors(alice, bob);
  } finally {
    await closeAll();
  }
});
