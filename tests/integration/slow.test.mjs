// A client that stops reading: the gateway cuts it at the output cap (close
// 1013 in place of what was still queued, the socket dropped if it never
// drains) while every other client keeps receiving everything.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, waitFor } from './harness.mjs';

let s;
before(async () => {
  s = await new Stack('slow', {
    env: {
      HERALD_OUTPUT_CAP: '1048576', // the default
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
  const metricsText = async () => (await fetch(`${s.gateways[0].url}/metrics`)).text();
  // The slow client reads again as soon as it has been cut: it must then
  // learn why (close 1013), not find its socket dropped (1006). The close
  // frame used to wait behind the whole queue, which was thrown away with
  // the socket when the close timeout passed.
  let queuedAtCut = NaN;
  const resumed = waitFor(async () => {
    const m = await metricsText();
    if (!/^herald_gateway_slow_consumers_cut_total 1$/m.test(m)) return false;
    queuedAtCut = Number(m.match(/^herald_gateway_output_queued_bytes (\d+)$/m)[1]);
    return true;
  }, { what: 'the slow consumer cut', timeout: 30000 }).then(() => slow.ws._socket.resume());
  for (let i = 0; i < N; i++) {
    const r = await s.chatOverHttp('carol', `${i}:${body}`);
    assert.equal(r.status, 202);
  }
  await resumed;
  await fast.next((m) => m.type === 'livechat' && m.message.startsWith(`${N - 1}:`), 20000);
  const got = fast.messages.filter((m) => m.type === 'livechat').map((m) => Number(m.message.split(':')[0]));
  assert.deepEqual(got, [...Array(N).keys()], 'the fast client got everything, in order');
  const metrics = await metricsText();
  assert.match(metrics, /^herald_gateway_slow_consumers_cut_total 1$/m);
  assert.match(metrics, /^herald_gateway_limit_refusals_total\{limit="output_cap"\} 1$/m);
  // What it had not been sent was dropped at the cut (at most the frame
  // being written stays, then the close frame): not the 1 MB cap's worth.
  assert.ok(queuedAtCut < 300000, `${queuedAtCut} bytes still queued after the cut`);
  const { code, reason } = await slow.closed;
  assert.equal(code, 1013, `closed with ${code}`);
  assert.equal(reason, 'too slow: output queue full');
  const seen = slow.messages.filter((m) => m.type === 'livechat').map((m) => Number(m.message.split(':')[0]));
  assert.ok(seen.length < N, `the slow client was cut before the end (${seen.length} of ${N})`);
  assert.deepEqual(seen, [...Array(seen.length).keys()], 'what it got came whole and in order');
  await fast.close();
});
