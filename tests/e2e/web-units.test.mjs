// The web client's pure helpers, without a browser: which avatar URLs may go
// into <img src>, which gateway URLs the page accepts, the backoff bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { safeAvatarUrl } from '../../web/js/dom.js';
import { gatewayList, backoffDelay } from '../../web/js/connection.js';

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
