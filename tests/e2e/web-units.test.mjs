// The web client's pure helpers, without a browser: which avatar URLs may go
// into <img src>, which gateway URLs the page accepts, the backoff bounds,
// how message lists merge live messages with history pages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { safeAvatarUrl } from '../../web/js/dom.js';
import { gatewayList, backoffDelay } from '../../web/js/connection.js';
import { mergeById, newestId, oldestId, nextCatchUpPage } from '../../web/js/history.js';

test('avatar URLs: same-origin paths and http(s) only', () => {
  const ok = [
    ['/avatars/alice.svg', '/avatars/alice.svg'],
    ['/a b'.replace(' ', '%20'), '/a%20b'],
    ['https://cdn.example/a.png', 'https://cdn.example/a.png'],
    ['http://10.0.0.5:8080/x.svg', 'http://10.0.0.5:8080/x.svg'],
  ];
  for (const [url, want] of ok) assert.equal(safeAvatarUrl(url), want, url);
  const refused = [
    '//evil.example/a.png', '/\\evil.example/a.png', 'javascript:alert(1)', 'JavaScript:alert(1)',
    'data:image/svg+xml,<svg onload=alert(1)>', 'vbscript:x', 'avatars/alice.svg', './a.png',
    'ftp://host/a.png', 'https://host/a b.png', '/a\nb', '', null, undefined, 42, {}, 'x'.repeat(3000),
  ];
  for (const url of refused) assert.equal(safeAvatarUrl(url), null, String(url));
});

test('gateway list: http(s) on the page host only, default the page origin', () => {
  const loc = (search) => ({ search, origin: 'http://127.0.0.1:8080', hostname: '127.0.0.1' });
  assert.deepEqual(gatewayList(loc('')), ['http://127.0.0.1:8080']);
  assert.deepEqual(gatewayList(loc('?gateways=http://127.0.0.1:8081,http://127.0.0.1:8082/')),
    ['http://127.0.0.1:8081', 'http://127.0.0.1:8082']);
  assert.deepEqual(gatewayList(loc('?gateways=http://evil.example:8081,javascript:alert(1),junk,http://127.0.0.1:8082,http://127.0.0.1:8082')),
    ['http://127.0.0.1:8082']);
  assert.deepEqual(gatewayList(loc('?gateways=http://evil.example')), ['http://127.0.0.1:8080']);
});

test('backoff: doubles from 1-2 s, never over 30 s, jittered within [ceiling/2, ceiling]', () => {
  assert.equal(backoffDelay(0, () => 0), 1000);
  assert.equal(backoffDelay(0, () => 1), 2000);
  assert.equal(backoffDelay(1, () => 0), 2000);
  assert.equal(backoffDelay(3, () => 1), 16000);
  assert.equal(backoffDelay(10, () => 1), 30000);
  assert.equal(backoffDelay(1000, () => 0), 15000);
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(2);
    assert.ok(d >= 4000 && d <= 8000, String(d));
  }
});

test('message lists: id order, each id once, the held copy wins, trimmed from the oldest', () => {
  const m = (id, text = `m${id}`) => ({ id, text });
  const live = [m(5), m(7)];
  // A history page that overlaps what arrived live.
  let r = mergeById(live, [m(3), m(5, 'again'), m(6), m(7, 'again')]);
  assert.deepEqual(r.list.map((x) => x.id), [3, 5, 6, 7]);
  assert.equal(r.added, 2);
  assert.equal(r.list.find((x) => x.id === 5).text, 'm5', 'the copy already held is kept');
  assert.deepEqual(live.map((x) => x.id), [5, 7], 'the input is not modified');
  // The same page again adds nothing; duplicates inside one batch count once.
  assert.equal(mergeById(r.list, [m(3), m(6)]).added, 0);
  assert.deepEqual(mergeById([], [m(2), m(2), m(1)]).list.map((x) => x.id), [1, 2]);
  // keep: the newest stay.
  assert.deepEqual(mergeById([m(1), m(2)], [m(4), m(3)], 3).list.map((x) => x.id), [2, 3, 4]);
  // Messages without an id are kept, in arrival order, after the others.
  r = mergeById([{ text: 'a' }], [m(9), { text: 'b' }]);
  assert.deepEqual(r.list.map((x) => x.id ?? x.text), [9, 'a', 'b']);
  assert.equal(newestId(r.list), 9);
  assert.equal(oldestId([m(8), m(4), { text: 'x' }]), 4);
  assert.equal(newestId([]), 0);
  assert.equal(oldestId([]), 0);
});

test('catching up after a gap: older pages until one reaches back to what is held', () => {
  const page = (...ids) => ids.map((id) => ({ id }));
  assert.equal(nextCatchUpPage(page(11, 12, 13), 3, 5), 11, 'a full page above the gap: ask for the one before');
  assert.equal(nextCatchUpPage(page(4, 5, 6), 3, 5), 0, 'reaches what we hold');
  assert.equal(nextCatchUpPage(page(12, 13), 3, 5), 0, 'not full: nothing older');
  assert.equal(nextCatchUpPage(page(11, 12, 13), 3, 0), 0, 'nothing held: one page only');
});
