// The broker dying: a standby broker takes over when the active one's lock
// lapses, claims what it had read but not acknowledged, and nothing a
// gateway accepted is lost; a restarted broker replays a chat burst it was
// killed in the middle of.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Stack, waitFor } from './harness.mjs';

const LOCK_MS = 1500;
let s;
before(async () => {
  s = await new Stack('failover', {
    // 300 chat messages in a burst: no per-user or per-address bucket in the way.
    env: {
      HERALD_LOCK_TTL_MS: String(LOCK_MS), HERALD_CHAT_BURST: '1000', HERALD_CHAT_RATE: '1000',
      HERALD_CHAT_RATE_PER_IP: '0',
    },
  }).start();
});
after(async () => { await s.stop(); });

const logHas = (proc, re) => re.test(fs.readFileSync(proc.log, 'utf8'));
const chats = (c) => c.messages.filter((m) => m.type === 'livechat').map((m) => m.message);

test('kill -9 of the active broker: the standby takes over, presence and chat carry on', async () => {
  const active = s.broker;
  const standby = await s.startBroker({ HERALD_CONSUMER: 'broker-2' });
  await waitFor(() => logHas(standby, /standby: broker broker-1 is active/), { what: 'standby' });
  const alice = await s.connect('alice', 0);
  const bob = await s.connect('bob', 1);
  await alice.next((m) => m.type === 'status_update' && m.userId === s.users.bob);
  const t0 = Date.now();
  active.kill('SIGKILL');
  await active.exited;
  // Accepted by the gateways while no broker runs: they wait in the stream.
  for (let i = 0; i < 5; i++) bob.send({ type: 'livechat', message: `during-${i}` });
  const carol = await s.connect('carol', 0);
  await alice.next((m) => m.type === 'livechat' && m.message === 'during-4', LOCK_MS * 4 + 5000);
  const took = Date.now() - t0;
  console.log(`# standby took over and delivered ${took} ms after the kill (lock ${LOCK_MS} ms)`);
  assert.deepEqual(chats(alice), ['during-0', 'during-1', 'during-2', 'during-3', 'during-4']);
  await alice.next((m) => m.type === 'status_update' && m.userId === s.users.carol && m.status === 'online');
  assert.deepEqual(await s.onlineUsers(), [s.users.alice, s.users.bob, s.users.carol].sort((a, b) => a - b));
  assert.ok(logHas(standby, /active broker: lock taken/));
  // A clean stop hands over at once: broker-1 comes back and leads.
  await standby.stop();
  assert.equal(standby.exitInfo.code, 0);
  const back = await s.startBroker();
  await waitFor(() => logHas(back, /active broker: lock taken/), { what: 'broker-1 leads again', timeout: 3000 });
  bob.send({ type: 'livechat', message: 'after' });
  await alice.next((m) => m.type === 'livechat' && m.message === 'after');
  await Promise.all([alice.close(), bob.close(), carol.close()]);
});

test('kill -9 in the middle of a chat burst: after the restart every message arrives, duplicates bounded', async () => {
  const alice = await s.connect('alice', 0);
  const bob = await s.connect('bob', 1);
  await alice.sync();
  const sent = [];
  for (let i = 0; i < 300; i++) {
    sent.push(`burst-${i}`);
    bob.send({ type: 'livechat', message: `burst-${i}` });
    if (i === 100) s.broker.kill('SIGKILL');
  }
  await s.broker.exited;
  await s.startBroker();
  await alice.next((m) => m.type === 'livechat' && m.message === 'burst-299', 15000);
  await alice.sync();
  const got = chats(alice);
  assert.deepEqual([...new Set(got)].sort(), [...sent].sort(), 'every accepted message delivered');
  const dups = got.length - new Set(got).size;
  console.log(`# ${got.length} deliveries for ${sent.length} messages: ${dups} duplicates`);
  assert.ok(dups <= 512, `duplicates bounded by one read batch (${dups})`);
  // Order per sender is kept apart from the replayed duplicates.
  const firsts = got.filter((m, i) => got.indexOf(m) === i);
  assert.deepEqual(firsts, sent);
  await Promise.all([alice.close(), bob.close()]);
});

test('a killed gateway restarted under the same id clears its old connections at once, not after the lease', async () => {
  const watcher = await s.connect('alice', 0);
  const erin = await s.connect('erin', 1);
  await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.erin && m.status === 'online');
  const gw = s.gateways[1];
  gw.proc.kill('SIGKILL');
  await gw.proc.exited;
  const t0 = Date.now();
  await s.waitHealthy(await s.startGateway('gw-b', gw.port));
  await watcher.next((m) => m.type === 'status_update' && m.userId === s.users.erin && m.status === 'offline', 8000);
  const took = Date.now() - t0;
  console.log(`# gateway restarted under its id: offline ${took} ms after the restart began (lease 3000 ms)`);
  assert.ok(took < 3000, `cleared by the restart's hello (${took} ms), not by the 3000 ms lease`);
  assert.ok(!(await s.onlineUsers()).includes(s.users.erin));
  await erin.closed;
  await watcher.close();
});
