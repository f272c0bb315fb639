// Processes dying and coming back: the broker's state survives a kill -9,
// a gateway's SIGTERM sends 1001 and takes its users offline, and a killed
// gateway's users go offline when its lease lapses.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, waitFor } from './harness.mjs';

let s;
before(async () => {
  s = await new Stack('restart', { leaseMs: 1500, env: { HERALD_API_KEY: 'restart-key' } }).start();
});

async function notify(event, body) {
  const r = await fetch(`${s.gateways[0].url}/api/notify/${event}`, {
    method: 'POST',
    headers: { Authorization: 'Bearer restart-key', 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 202, await r.text());
}
after(async () => { await s.stop(); });


test('broker kill -9 and restart: presence carries on from Redis', async () => {
  const alice = await s.connect('alice', 0);
  const bob = await s.connect('bob', 1);
  await alice.next((m) => m.type === 'status_update' && m.userId === s.users.bob);
  s.broker.kill('SIGKILL');
  await s.broker.exited;
  // Events while the broker is down wait in the stream.
  const carol = await s.connect('carol', 1);
  await s.startBroker();
  await alice.next((m) => m.type === 'status_update' && m.userId === s.users.carol && m.status === 'online', 8000);
  const list = await alice.sync();
  assert.deepEqual([...list.users].sort(), [s.users.alice, s.users.bob, s.users.carol].sort());
  // A connection opened before the crash still counts: closing it is an offline.
  await bob.close();
  await alice.next((m) => m.type === 'status_update' && m.userId === s.users.bob && m.status === 'offline');
  await alice.sync();
  assert.deepEqual(alice.statuses(s.users.bob), ['online', 'offline'], 'no duplicate events after the restart');
  assert.deepEqual(await s.onlineUsers(), [s.users.alice, s.users.carol].sort((a, b) => a - b));
  await carol.close();
  await alice.close();
});

test('broker kill -9 and restart: profile rooms and the matchmaking queue are rebuilt from Redis', async () => {
  const watcher = await s.connect('carol', 1);
  watcher.send({ type: 'watch-profile', userId: s.users.erin });
  const queued = await s.connect('dave', 0);
  queued.send({ type: 'join-matchmaking' });
  await watcher.sync();
  await queued.sync();
  s.broker.kill('SIGKILL');
  await s.broker.exited;
  await s.startBroker();
  // The room survived: an update about erin reaches carol (not a friend:
  // public fields only).
  await notify('game-stats-update', { userId: s.users.erin, stats: { wins: 4, losses: 1, secret: 1 } });
  const ev = await watcher.next((m) => m.type === 'game-stats-update', 8000);
  assert.deepEqual(ev.stats, { userId: s.users.erin, wins: 4, losses: 1, ratio: 0.8 });
  // The queue survived: the next player is paired with dave.
  const player = await s.connect('bob', 1);
  player.send({ type: 'join-matchmaking' });
  const m1 = await player.next((m) => m.type === 'match-found', 8000);
  const m2 = await queued.next((m) => m.type === 'match-found');
  assert.equal(m1.matchId, m2.matchId);
  assert.deepEqual(m1.opponent, { userId: s.users.dave, username: 'dave' });
  // Closing the watcher empties the room in Redis as well.
  await watcher.close();
  await waitFor(() => s.redis('HLEN', 'herald:watch:gw-b') === '(integer) 0', { what: 'room rows removed' });
  await player.close();
  await queued.close();
});

test('gateway SIGTERM: clients get close 1001, their users go offline', async () => {
  const watcher = await s.connect('alice', 0);
  const dave = await s.connect('dave', 1);
  await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.dave && m.status === 'online');
  const gw = s.gateways[1];
  gw.proc.kill('SIGTERM');
  assert.equal((await dave.closed).code, 1001);
  const info = await gw.proc.exited;
  assert.equal(info.code, 0, 'clean exit');
  await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.dave && m.status === 'offline');
  await s.waitHealthy(await s.startGateway('gw-b'));
  await watcher.close();
});

test('gateway kill -9: its users go offline when the lease lapses', async () => {
  const watcher = await s.connect('alice', 0);
  const erin = await s.connect('erin', 1);
  await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.erin && m.status === 'online');
  const t0 = Date.now();
  s.gateways[1].proc.kill('SIGKILL');
  await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.erin && m.status === 'offline', 8000);
  const took = Date.now() - t0;
  console.log(`# gateway kill -9: offline event ${took} ms after the kill (lease 1500 ms)`);
  // PROTOCOL.md §2: announced within the lease (plus slack for a loaded box).
  assert.ok(took < 1500 + 1000, `offline after ${took} ms (lease 1500 ms)`);
  assert.ok(!(await s.onlineUsers()).includes(s.users.erin));
  await erin.closed;
  // Restarting under the same id works and serves again.
  await s.waitHealthy(await s.startGateway('gw-b'));
  const again = await s.connect('erin', 1);
  await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.erin &&
    watcher.statuses(s.users.erin).length === 3);
  await again.close();
  await watcher.close();
});
