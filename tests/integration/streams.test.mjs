// herald:events is capped without ever losing what it holds: gateways
// publish without MAXLEN (an approximate trim drops entries the broker has
// not read), the broker trims only what it acknowledged (XTRIM MINID), and
// while the stream is at its cap a gateway answers client events
// "unavailable" instead of accepting them. Exact ledger: every DM the
// sender was not refused arrives once; none of the refused ones does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, waitFor } from './harness.mjs';

const CAP = 150;
let s;
before(async () => {
  s = await new Stack('streams', {
    env: {
      HERALD_STREAM_MAXLEN: String(CAP),
      HERALD_CHAT_BURST: '100000',
      HERALD_CHAT_RATE: '100000',
      HERALD_CHAT_RATE_PER_IP: '0',
    },
  }).start();
});
after(async () => { await s.stop(); });

// Sends DM i and a ping, and tells whether the DM was refused: the gateway
// answers both in order, so an error before this ping's pong is the DM's.
async function sendDm(alice, i) {
  const from = alice.messages.length;
  alice.send({ type: 'direct_message', to: 'bob', message: `m${i}` });
  alice.send({ type: 'ping' });
  const pong = await alice.next((m) => m.type === 'pong' && alice.messages.indexOf(m) >= from, 5000, `pong ${i}`);
  const upTo = alice.messages.indexOf(pong);
  const err = alice.messages.slice(from, upTo).find((m) => m.type === 'error');
  if (err) assert.equal(err.code, 'unavailable', JSON.stringify(err));
  return Boolean(err);
}

test('broker stopped: the input stream fills to its cap, then events are refused; nothing accepted is lost', async () => {
  const alice = await s.connect('alice', 0);
  const bob = await s.connect('bob', 1);
  await alice.sync();
  await bob.sync();
  s.broker.kill('SIGSTOP');
  const accepted = [];
  const refused = [];
  try {
    for (let i = 0; i < 5000 && refused.length < 20; i++)
      (await sendDm(alice, i) ? refused : accepted).push(i);
  } finally {
    s.broker.kill('SIGCONT');
  }
  console.log(`# cap ${CAP}: ${accepted.length} DMs accepted before the first refusal was seen, ${refused.length} refused`);
  assert.ok(refused.length >= 20, `refusals once the stream was full (accepted ${accepted.length})`);
  // The stream still held a few acknowledged entries (opens) when the
  // broker stopped: the gateway stops at the cap, counting its own publishes
  // between two measurements.
  assert.ok(accepted.length > CAP - 20 && accepted.length <= CAP, `about the cap was accepted (${accepted.length})`);
  const metrics = await (await fetch(`${s.gateways[0].url}/metrics`)).text();
  assert.match(metrics, /^herald_gateway_events_refused_total [1-9]\d*$/m);

  const dms = () => bob.messages.filter((m) => m.type === 'direct_message').map((m) => Number(m.message.slice(1)));
  await waitFor(() => dms().length >= accepted.length, { what: `${accepted.length} DMs at bob`, timeout: 30000 });

  // The broker trims what it acknowledged, and both gateways take events
  // again (a round trip through the broker from each client).
  await waitFor(() => Number(s.redis('XLEN', 'herald:events').replace(/\D/g, '')) < CAP,
    { what: 'herald:events trimmed', timeout: 10000 });
  for (const c of [alice, bob])
    await waitFor(async () => Boolean(await c.sync(1500)), { what: 'requests accepted again', timeout: 15000 });
  assert.deepEqual(dms(), accepted, 'every accepted DM once, in order; no refused one');
  await alice.close();
  await bob.close();
});
