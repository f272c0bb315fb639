// The example backend of docs/EXAMPLE.md (docs/example/backend.mjs) against
// a real Herald stack: signup provisions users in Herald, its tokens connect,
// its friendships change what a watcher sees, its profile changes reach the
// watchers, Herald's signed webhook updates its own database, and deleting
// an account closes the user's socket. The broker posts its webhook to the
// backend (HERALD_WEBHOOK_URL), the backend calls Herald with the API key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Stack, Proc, SECRET, freePort, waitFor, sioClient, sioConnected, sioAck, sioNext, sioOnce, closeSioClients,
} from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const API_KEY = 'example-test-api-key-0123456789';
const WEBHOOK_SECRET = 'example-test-webhook-secret';

let s;
let backend;
let api; // the backend's base URL

before(async () => {
  const port = await freePort();
  api = `http://127.0.0.1:${port}`;
  s = await new Stack('example', {
    env: {
      HERALD_API_KEY: API_KEY,
      HERALD_WEBHOOK_URL: `${api}/herald/webhook`,
      HERALD_WEBHOOK_SECRET: WEBHOOK_SECRET,
      HERALD_WEBHOOK_FLUSH_MS: '100',
    },
  }).start();
  backend = new Proc('backend', process.execPath, [path.join(ROOT, 'docs/example/backend.mjs')], {
    PORT: String(port),
    EXAMPLE_DB: path.join(s.dir, 'example.db'),
    HERALD_URL: s.gateways[0].url,
    HERALD_API_KEY: API_KEY,
    HERALD_JWT_SECRET: SECRET,
    HERALD_WEBHOOK_SECRET: WEBHOOK_SECRET,
  }, s.logDir);
  await waitFor(async () => {
    if (!backend.running) throw new Error(`backend exited: ${backend.tail()}`);
    return (await fetch(`${api}/users/1`)).status === 404;
  }, { what: 'the example backend', timeout: 15000 });
});

after(async () => {
  closeSioClients();
  const info = await backend?.stop();
  try {
    await s?.stop();
  } finally {
    assert.equal(info?.code, 0, `the backend exits 0 on SIGTERM:\n${backend?.tail()}`);
  }
});

async function call(method, route, body) {
  const r = await fetch(api + route, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

// The backend's view of a user once pred holds (polled: the webhook is
// asynchronous).
function userWhen(id, pred, what) {
  return waitFor(async () => {
    const { status, body } = await call('GET', `/users/${id}`);
    return status === 200 && pred(body) ? body : null;
  }, { what, timeout: 10000 });
}

function sign(raw, secret = WEBHOOK_SECRET) {
  return `sha256=${crypto.createHmac('sha256', secret).update(raw).digest('hex')}`;
}

test('the example backend drives Herald end to end', async () => {
  const gw = s.gateways[0].url;

  // Sign up two users: each exists in Herald at once, with the backend's id.
  const ann = await call('POST', '/signup', { username: 'ann', avatar: '/avatars/ann.png' });
  assert.equal(ann.status, 201, JSON.stringify(ann.body));
  const ben = await call('POST', '/signup', { username: 'ben' });
  assert.equal(ben.status, 201, JSON.stringify(ben.body));
  const annId = ann.body.id;
  const benId = ben.body.id;
  assert.ok(annId > 1000 && benId > annId, `ids after 1000: ${annId}, ${benId}`);
  for (const name of ['ann', 'ben']) {
    const r = await fetch(`${gw}/online-status/${name}`);
    assert.equal(r.status, 200, `Herald knows ${name}`);
    assert.deepEqual(await r.json(), { online: false });
  }

  // A name Herald already has (a demo user) is refused by Herald: the
  // backend passes the refusal on and keeps no row of its own.
  const dup = await call('POST', '/signup', { username: 'alice' });
  assert.equal(dup.status, 409);
  assert.equal(dup.body.error, 'username-taken');
  assert.equal((await call('POST', '/login', { username: 'alice' })).status, 404, 'rolled back');
  assert.equal((await call('POST', '/signup', { username: 'ann' })).status, 409, 'own unique name');

  // Log in: the backend's token connects to Herald as that user.
  const login = await call('POST', '/login', { username: 'ann' });
  assert.equal(login.status, 200);
  const claims = JSON.parse(Buffer.from(login.body.token.split('.')[1], 'base64url').toString());
  assert.equal(claims.sub, String(annId));
  assert.equal(claims.username, 'ann');
  assert.ok(claims.exp > Date.now() / 1000);
  const annSock = await sioConnected(sioClient(gw, { token: login.body.token }));
  assert.deepEqual(await sioAck(annSock, 'whoami'), { id: annId, username: 'ann' });
  const benSock = await sioConnected(sioClient(s.gateways[1].url, {
    token: (await call('POST', '/login', { username: 'ben' })).body.token,
  }));
  assert.deepEqual(await sioAck(benSock, 'whoami'), { id: benId, username: 'ben' });

  // The webhook tells the backend that ann came online; it records it.
  const onlineNow = await userWhen(annId, (u) => u.onlineByWebhook, 'user-online recorded for ann');
  assert.equal(onlineNow.online, true, 'Herald answers online too');
  assert.ok(onlineNow.lastSeen > Date.now() - 60000);

  // Ben watches ann's profile; not friends yet: the public shape.
  const snap = await sioAck(benSock, 'watch-profile', { userId: annId });
  assert.equal(snap.user.username, 'ann');
  assert.equal(snap.user.friends, undefined, 'no friends list for a non-friend');
  let from = benSock.events.length;
  assert.equal((await call('POST', '/profile', { userId: annId, avatar: '/avatars/ann2.png', bio: 'likes chess' })).status, 200);
  let [upd] = await sioNext(benSock, 'profile-update', (p) => p.user.userID === annId, { from });
  assert.equal(upd.user.avatar, '/avatars/ann2.png');
  assert.equal(upd.user.bio, undefined, 'bio is not public');

  // Befriending changes the shape: ben now gets the full object, friends included.
  from = benSock.events.length;
  const fr = await call('POST', '/friends', { userId: annId, friendId: benId });
  assert.deepEqual(fr, { status: 200, body: { ok: true, changed: true } });
  [upd] = await sioNext(benSock, 'profile-update', (p) => Array.isArray(p.user.friends), { from });
  assert.deepEqual(upd.user.friends.map((f) => f.id), [benId]);
  from = benSock.events.length;
  assert.equal((await call('POST', '/profile', { userId: annId, bio: 'likes go' })).status, 200);
  [upd] = await sioNext(benSock, 'profile-update', (p) => p.user.userID === annId && p.user.bio !== undefined, { from });
  assert.equal(upd.user.bio, 'likes go', 'a friend sees the bio');
  assert.deepEqual((await call('POST', '/friends', { userId: benId, friendId: annId })).body, { ok: true, changed: false });

  // Ann disconnects: user-offline reaches the backend, with last_seen.
  const before = (await call('GET', `/users/${annId}`)).body.lastSeen;
  annSock.disconnect();
  const gone = await userWhen(annId, (u) => !u.onlineByWebhook, 'user-offline recorded for ann');
  assert.equal(gone.online, false);
  assert.ok(gone.lastSeen >= before, `lastSeen moves on: ${before} -> ${gone.lastSeen}`);

  // A forged or missing signature is refused; a repeat of a batch is skipped.
  // (The event is older than what the backend has: counted, not applied.)
  const raw = JSON.stringify({ events: [{ id: '1-0', t: 'user-online', ts: gone.lastSeen - 1, d: { userId: annId, username: 'ann' } }] });
  const post = (sig) => fetch(`${api}/herald/webhook`, { method: 'POST', headers: sig ? { 'X-Herald-Signature': sig } : {}, body: raw });
  assert.equal((await post(sign(raw, 'not-the-secret'))).status, 401);
  assert.equal((await post(sign(`${raw} `))).status, 401, 'signed over other bytes');
  assert.equal((await post(null)).status, 401);
  assert.equal((await call('GET', `/users/${annId}`)).body.onlineByWebhook, false, 'nothing applied');
  const first = await (await post(sign(raw))).json();
  const again = await (await post(sign(raw))).json();
  assert.deepEqual([first.applied, again.applied, again.repeated], [1, 0, 1]);
  assert.equal((await call('GET', `/users/${annId}`)).body.onlineByWebhook, false, 'an older event changes nothing');

  // Deleting ben's account: his socket gets account-deleted and is closed,
  // Herald forgets him, and so does the backend.
  const closed = sioOnce(benSock, 'disconnect', 10000);
  from = benSock.events.length;
  assert.equal((await call('DELETE', `/users/${benId}`)).status, 200);
  await sioNext(benSock, 'account-deleted', () => true, { from, timeout: 10000 });
  await closed;
  assert.equal((await fetch(`${gw}/online-status/ben`)).status, 404);
  assert.equal((await call('GET', `/users/${benId}`)).status, 404);
  assert.equal((await call('POST', '/login', { username: 'ben' })).status, 404);

  // The backend's database survives in its file.
  assert.ok(fs.statSync(path.join(s.dir, 'example.db')).size > 0);
});
