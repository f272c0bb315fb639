// herald-admin against a real database and stack, and --help on every binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Stack, Client, BIN } from './harness.mjs';

let s;
before(async () => { s = await new Stack('admin', { graceMs: 600 }).start(); });
after(async () => { await s.stop(); });


test('every binary answers --help with its options', () => {
  for (const b of ['herald-gateway', 'herald-broker', 'herald-admin', 'herald-conformance']) {
    const out = execFileSync(path.join(BIN, b), ['--help'], { encoding: 'utf8' });
    assert.match(out, /usage: /, b);
  }
  const gw = execFileSync(path.join(BIN, 'herald-gateway'), ['--help'], { encoding: 'utf8' });
  assert.match(gw, /HERALD_PING_INTERVAL_MS/);
  assert.match(gw, /default: 25000/);
  const bad = spawnSync(path.join(BIN, 'herald-gateway'), ['--no-such-flag']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr.toString(), /unknown option --no-such-flag/);
  const nosecret = spawnSync(path.join(BIN, 'herald-gateway'), [], { env: { PATH: process.env.PATH } });
  assert.notEqual(nosecret.status, 0, 'refuses to start without a JWT secret');
  assert.match(nosecret.stderr.toString(), /no JWT secret/);
});

test('user add, token, friend add, stats set, user del', async () => {
  const id = Number(s.admin('user', 'add', 'frank', '--avatar', 'https://example.com/f.png'));
  assert.ok(id > 0);
  assert.throws(() => s.admin('user', 'add', 'FRANK'), /UNIQUE|exists|constraint|taken/i);
  assert.throws(() => s.admin('user', 'add', 'bad name'), /bad username/);
  assert.match(s.admin('friend', 'add', 'frank', 'alice'), /friends/);
  assert.throws(() => s.admin('friend', 'add', 'frank', 'nobody'), /no such user/);
  assert.match(s.admin('stats', 'set', 'frank', '4', '2'), /4 wins, 2 losses/);
  const tok = s.admin('token', 'frank', '--ttl', '120');
  const payload = JSON.parse(Buffer.from(tok.split('.')[1], 'base64url').toString());
  assert.equal(payload.sub, String(id));
  assert.ok(payload.exp - Math.floor(Date.now() / 1000) <= 120);

  const watcher = await s.connect('alice', 0);
  const frank = await new Client(s.gateways[1].ws, { headers: { Authorization: `Bearer ${tok}` } }).opened();
  const ev = await watcher.next((m) => m.type === 'status_update' && m.userId === id);
  assert.equal(ev.username, 'frank');
  assert.deepEqual(await (await fetch(`${s.gateways[0].url}/online-status/frank`)).json(), { online: true });
  await frank.close();
  assert.match(s.admin('user', 'del', 'frank'), /deleted/);
  assert.throws(() => s.admin('user', 'del', 'frank'), /no such user/);
  assert.equal((await fetch(`${s.gateways[0].url}/online-status/frank`)).status, 404);
  await watcher.close();
});

test('token signed with --jwt-secret-file (no HERALD_JWT_SECRET) is accepted', async () => {
  const file = path.join(s.dir, 'jwt.secret');
  fs.writeFileSync(file, 'integration-test-secret-0123456789\n');
  const env = { PATH: process.env.PATH, HERALD_JWT_SECRET_FILE: file };
  const tok = execFileSync(path.join(BIN, 'herald-admin'), ['--db', s.db, 'token', 'erin'], { env, encoding: 'utf8' }).trim();
  const c = await new Client(s.gateways[0].ws, { headers: { Authorization: `Bearer ${tok}` } }).opened();
  await c.close();
});

test('grace period: a quick reconnect announces nothing; a real leave is announced after it', async () => {
  const watcher = await s.connect('bob', 0);
  const c1 = await s.connect('carol', 1);
  await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.carol);
  await c1.close();
  const c2 = await s.connect('carol', 0); // a page reload
  await new Promise((r) => setTimeout(r, 900));
  await watcher.sync();
  assert.deepEqual(watcher.statuses(s.users.carol), ['online'], 'no offline/online flicker');
  const t0 = Date.now();
  await c2.close();
  await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.carol && m.status === 'offline');
  assert.ok(Date.now() - t0 >= 500, 'offline only after the grace period');
  assert.ok(!(await s.onlineUsers()).includes(s.users.carol));
  await watcher.close();
});
