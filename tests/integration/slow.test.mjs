// A client that stops reading: the gateway cuts it at the output cap (close
// 1013 queued past the cap, the socket dropped if it never drains) while
// every other client keeps receiving everything.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, waitFor } from './harness.mjs';

let s;
before(async () => {
  s = await new Stack('slow', {
    env: {
      HERALD_OUTPUT_CAP: '65536',
      HERALD_CHAT_MAX_LENGTH: '60000',
      HERALD_CHAT_BURST: '100000',
      HERALD_CHAT_RATE: '100000',
      HERALD_CHAT_RATE_PER_IP: '0', // 300 messages from one address
    },
  }).start();
});
after(async () => { await s.stop(); });

test('a consumer that stops reading is cut off; the others get every message', async () => {
  const fast = await s.connect('alice', 0);
  const slow = await s.connect('bob', 0);
  await fast.sync();
  await slow.sync();
  slow.ws._socket.pause(); // stops reading: the kernel buffers fill, then our queue
  const N = 300;
  const body = 'x'.repeat(50000);
  const token = s.token('carol');
  for (let i = 0; i < N; i++) {
    const r = await fetch(`${s.gateways[0].url}/live_chat_message`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ message: `${i}:${body}` }),
    });
    assert.equal(r.status, 202);
  }
  await fast.next((m) => m.type === 'livechat' && m.message.startsWith(`${N - 1}:`), 20000);
  const got = fast.messages.filter((m) => m.type === 'livechat').map((m) => Number(m.message.split(':')[0]));
  assert.deepEqual(got, [...Array(N).keys()], 'the fast client got everything, in order');
  const metrics = await (await fetch(`${s.gateways[0].url}/metrics`)).text();
  assert.match(metrics, /^herald_gateway_slow_consumers_cut_total 1$/m);
  assert.match(metrics, /^herald_gateway_limit_refusals_total\{limit="output_cap"\} 1$/m);
  slow.ws._socket.resume();
  const { code } = await slow.closed;
  // 1013 when it caught up within the close timeout, 1006 when dropped.
  console.log(`# slow consumer closed with ${code}`);
  assert.ok(code === 1013 || code === 1006, `closed with ${code}`);
  const received = slow.messages.filter((m) => m.type === 'livechat').length;
  assert.ok(received < N, `the slow client was cut before the end (${received} of ${N})`);
  await fast.close();
});
