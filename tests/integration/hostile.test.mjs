// Bad input of every kind gets its HTTP status or close code, and the
// gateway keeps serving everyone else.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Stack, rawExchange, clientFrame, upgradeRequest, parseServerFrames, closeCodeOf, limitRefusals,
  rawStatus as statusOf,
} from './harness.mjs';

let s, port, tok;
before(async () => {
  s = await new Stack('hostile', { env: { HERALD_HEADER_TIMEOUT_MS: '600', HERALD_MAX_MESSAGE: '4096' } }).start();
  port = s.gateways[0].port;
  tok = s.token('alice');
});
after(async () => {
  const h = await fetch(`${s.gateways[0].url}/healthz`);
  assert.equal(h.status, 200, 'the gateway survived');
  await s.stop();
});


async function frameClose(...frames) {
  const buf = await rawExchange(port, Buffer.concat([Buffer.from(upgradeRequest(port, tok)), ...frames]));
  assert.equal(statusOf(buf), 101);
  return closeCodeOf(parseServerFrames(buf));
}

test('frame-level violations close with the RFC 6455 code', async () => {
  assert.equal(await frameClose(clientFrame(1, '{"type":"ping"}', { mask: false })), 1002, 'unmasked');
  assert.equal(await frameClose(clientFrame(1, 'x', { rsv: 4 })), 1002, 'RSV1 without extension');
  assert.equal(await frameClose(clientFrame(3, 'x')), 1002, 'reserved opcode');
  assert.equal(await frameClose(clientFrame(9, 'x', { fin: false })), 1002, 'fragmented ping');
  assert.equal(await frameClose(clientFrame(0, 'x')), 1002, 'continuation without a message');
  assert.equal(await frameClose(clientFrame(1, Buffer.from([0x22, 0xc0, 0xaf, 0x22]))), 1007, 'overlong UTF-8');
  assert.equal(await frameClose(clientFrame(1, Buffer.from([0xed, 0xa0, 0x80]))), 1007, 'surrogate');
  assert.equal(await frameClose(clientFrame(1, 'a'.repeat(5000))), 1009, 'over max-message');
  assert.equal(await frameClose(clientFrame(1, 'a'.repeat(3000), { fin: false }), clientFrame(0, 'a'.repeat(3000))), 1009,
    'fragments over max-message');
  assert.equal(await frameClose(clientFrame(8, Buffer.from([0x03, 0xed]))), 1002, 'close code 1005 on the wire');
  assert.equal(await frameClose(clientFrame(8, Buffer.from([0x0b, 0xb8]))), 3000, 'valid close code is echoed');
});

test('invalid UTF-8 fails fast, before the rest of its frame arrives (Autobahn 6.4.3)', async () => {
  // One text frame announcing 21 bytes; only its first 13 payload bytes are
  // sent: 11 bytes of valid text, then F4 90 (no code point starts so: it
  // would be above U+10FFFF). The rest never comes, so only a parser that
  // checks a partial payload answers 1007; before the fix: no close at all.
  const payload = Buffer.concat([Buffer.from('κόσμε'), Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from('edited')]);
  const frame = clientFrame(1, payload);
  assert.equal(await frameClose(frame.subarray(0, 2 + 4 + 13)), 1007, 'bad bytes in a partial frame');
  // Same inside a continuation: a complete first fragment, then a partial one.
  const first = clientFrame(1, Buffer.from([0xce, 0xba]), { fin: false });
  const cont = clientFrame(0, Buffer.from([0xf4, 0x90, 0x80, 0x80, 0x41]));
  assert.equal(await frameClose(first, cont.subarray(0, 2 + 4 + 2)), 1007, 'bad bytes in a partial continuation');
});

test('pings are answered with the same payload; fragments interleaved with a ping work', async () => {
  const buf = await rawExchange(port, Buffer.concat([
    Buffer.from(upgradeRequest(port, tok)),
    clientFrame(9, 'hello'),
    clientFrame(1, '{"type":', { fin: false }),
    clientFrame(9, 'mid'),
    clientFrame(0, '"ping"}'),
  ]));
  const frames = parseServerFrames(buf);
  const pongs = frames.filter((f) => f.opcode === 10).map((f) => f.payload.toString());
  assert.deepEqual(pongs, ['hello', 'mid']);
  const texts = frames.filter((f) => f.opcode === 1).map((f) => JSON.parse(f.payload));
  assert.deepEqual(texts.filter((m) => m.type !== 'status_update' && m.type !== 'session'), [{ type: 'pong' }]);
});

test('hostile HTTP gets the right status', async () => {
  const cases = [
    ['GET / HTTP/1.1\r\nHost: x\r\nX-Big: ' + 'a'.repeat(9000) + '\r\n\r\n', 431],
    ['GET /' + 'a'.repeat(9000) + ' HTTP/1.1\r\n\r\n', 414],
    ['POST /ws HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 411],
    ['GARBAGE\r\n\r\n', 400],
    ['GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505],
    ['GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n', 413],
    ['GET / HTTP/1.1\r\nBad Header: x\r\n\r\n', 400],
    ['POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n', 405],
    ['GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n', 404],
    ['GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n', 404],
    ['GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['GET /nope.html HTTP/1.1\r\nHost: x\r\n\r\n', 404],
    [upgradeRequest(port, tok).replace('Sec-WebSocket-Version: 13', 'Sec-WebSocket-Version: 8'), 426],
    [upgradeRequest(port, tok).replace('dGhlIHNhbXBsZSBub25jZQ==', 'short'), 400],
  ];
  for (const [req, want] of cases) {
    const buf = await rawExchange(port, Buffer.from(req, 'latin1'));
    assert.equal(statusOf(buf), want, `${req.slice(0, 40)}... -> ${buf.toString('latin1').slice(0, 60)}`);
    const body = jsonBody(buf);
    assert.match(body.error, /^[a-z-]+$/, `${want}: an error word`);
    assert.equal(typeof body.message, 'string', `${want}: a message`);
  }
  // The 426 body was once cut five bytes short of its JSON.
  const b426 = jsonBody(await rawExchange(port, Buffer.from(
    upgradeRequest(port, tok).replace('Sec-WebSocket-Version: 13', 'Sec-WebSocket-Version: 8'), 'latin1')));
  assert.deepEqual(b426, { error: 'upgrade-required', message: 'WebSocket version 13 only' });
});

// Engine.IO's 400 "Bad request" bodies once went out with a trailing NUL.
test('Engine.IO bad-request bodies are exact JSON, nothing after them', async () => {
  const post = async (body) => {
    const open = (await rawExchange(port, Buffer.from(
      'GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))).toString('latin1');
    const sid = JSON.parse(open.slice(open.indexOf('\r\n\r\n') + 5)).sid;
    const head = `POST /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n` +
      `Content-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    return rawExchange(port, Buffer.concat([Buffer.from(head, 'latin1'), body]));
  };
  for (const [what, body] of [['invalid UTF-8', Buffer.from([0x34, 0xc0, 0xaf])], ['bad payload', Buffer.from('9zz')]]) {
    const buf = await post(body);
    assert.equal(statusOf(buf), 400, what);
    assert.deepEqual(jsonBody(buf), { code: 3, message: 'Bad request' }, what);
  }
});

/* The body of one HTTP answer, parsed as JSON: Content-Length must cover
 * exactly the bytes after the head, and they must be one JSON value. */
function jsonBody(buf) {
  const text = buf.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  assert.ok(end > 0, `an HTTP head: ${text.slice(0, 60)}`);
  const len = Number((text.slice(0, end).match(/\r\nContent-Length: (\d+)/i) || [])[1]);
  const body = buf.subarray(end + 4);
  assert.equal(body.length, len, `Content-Length ${len} for ${JSON.stringify(body.toString('latin1'))}`);
  return JSON.parse(body.toString('utf8'));
}

test('a request head that never completes is cut off (slowloris)', async () => {
  const t0 = Date.now();
  const buf = await rawExchange(port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n'), { wait: 5000 });
  const took = Date.now() - t0;
  assert.equal(buf.length, 0);
  assert.ok(took >= 500 && took < 4000, `closed after ${took} ms`);
});

test('keep-alive: two pipelined requests on one connection both answered', async () => {
  const buf = await rawExchange(port, Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /online-status/bob HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), { wait: 3000 });
  const text = buf.toString();
  assert.equal((text.match(/HTTP\/1\.1 200/g) || []).length, 2, text);
  assert.match(text, /\{"online":false\}/);
});

test('a message that makes the server close, and the client close, in one write: our close frame still goes out', async () => {
  // Regression: the client's close was taken as the answer to ours and the
  // connection dropped before our queued close frame was written (browsers
  // send a last message and their close in one segment).
  const closeFrame = clientFrame(8, Buffer.from([0x03, 0xe8]));
  const other = s.token('bob');
  const code = await frameClose(clientFrame(1, JSON.stringify({ type: 'refresh-token', token: other })), closeFrame);
  assert.equal(code, 4003);
});

test('per-address limits: connections held and connection rate, answered 429 before parsing, counted', async () => {
  const { Client, waitFor } = await import('./harness.mjs');
  // Plain one-shot HTTP (fetch would keep an idle pooled socket, a slot).
  const get = (p, path) => rawExchange(p, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { wait: 800 });
  const gw = await s.startGateway('gw-ip', undefined, { HERALD_CONNS_PER_IP: '3', HERALD_CONN_RATE_PER_IP: '0' });
  const gr = await s.startGateway('gw-rate', undefined, { HERALD_CONNS_PER_IP: '0', HERALD_CONN_RATE_PER_IP: '2' });
  try {
    await waitFor(async () => statusOf(await get(gw.port, '/healthz')) === 200, { what: 'gw-ip healthy' });
    const connect = () => new Client(gw.ws, { headers: { Authorization: `Bearer ${tok}` } }).opened();
    const open = [await connect(), await connect(), await connect()];
    const refused = await rawExchange(gw.port, upgradeRequest(gw.port, tok));
    assert.equal(statusOf(refused), 429);
    assert.match(refused.toString(), /"error":"rate-limited"/);
    await open[0].close();
    // A slot freed by a close is usable again.
    const again = await waitFor(() => connect().catch(() => null), { what: 'a freed slot' });
    await Promise.all([again.close(), open[1].close(), open[2].close()]);
    const metrics = await waitFor(async () => {
      const r = await get(gw.port, '/metrics');
      return statusOf(r) === 200 && r.toString();
    }, { what: '/metrics' });
    assert.match(metrics, /^herald_gateway_ip_refused_total [1-9]/m);
    assert.match(metrics, /^herald_gateway_limit_refusals_total\{limit="conns_per_ip"\} [1-9]/m);

    // Rate: a burst of 2, refilled at 2 per second: 8 connections at once
    // cannot all be admitted.
    await waitFor(async () => statusOf(await get(gr.port, '/healthz')) === 200, { what: 'gw-rate healthy' });
    await new Promise((r) => setTimeout(r, 1100)); // a full bucket again
    const statuses = await Promise.all(Array.from({ length: 8 }, () => get(gr.port, '/healthz').then(statusOf)));
    assert.ok(statuses.includes(429), `some refused: ${statuses}`);
    assert.ok(statuses.includes(200), `some admitted: ${statuses}`);
    const rateMetrics = await waitFor(async () => {
      const r = await get(gr.port, '/metrics');
      return statusOf(r) === 200 && r.toString();
    }, { what: 'gw-rate /metrics' });
    assert.match(rateMetrics, /^herald_gateway_limit_refusals_total\{limit="conn_rate_per_ip"\} [1-9]/m);
  } finally {
    assert.equal((await gw.proc.stop()).code, 0);
    assert.equal((await gr.proc.stop()).code, 0);
  }
});

test('every limit refusal is counted in /metrics, by limit', async () => {
  const url = s.gateways[0].url;
  const before = await limitRefusals(url);
  const head = (path, extra = '') => `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}`;
  // Each refusal with the answer it gets; bodies are announced, never sent:
  // the answer comes before them.
  const http = [
    ['request_line', `GET /${'a'.repeat(9000)} HTTP/1.1\r\n\r\n`, 414],
    ['header_bytes', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`, 431],
    ['header_count', `GET / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 60 }, (_, i) => `X-H${i}: y\r\n`).join('')}\r\n`, 431],
    ['body', 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n', 413],
    ['body', head('/live_chat_message', `Authorization: Bearer ${tok}\r\nContent-Length: 70000\r\n\r\n`), 413],
    ['body_unauth', head('/live_chat_message', 'Content-Length: 5000\r\n\r\n'), 413],
    ['origin', head('/live_chat_message', `Cookie: accessToken=${tok}\r\nOrigin: https://evil.example\r\nContent-Length: 15\r\n\r\n{"message":"x"}`), 403],
  ];
  for (const [limit, req, want] of http) {
    assert.equal(statusOf(await rawExchange(port, Buffer.from(req))), want, limit);
  }
  // A head that never completes (slowloris): dropped after 600 ms.
  assert.equal((await rawExchange(port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n'), { wait: 3000 })).length, 0);
  // /ws message over --max-message (4096).
  assert.equal(await frameClose(clientFrame(1, 'a'.repeat(5000))), 1009, 'message');
  // Socket.IO over WebSocket: before CONNECT the cap is --max-message-unauth
  // (16384); after a user's CONNECT it is --max-payload (1000000). Frame
  // heads announcing more are refused before their payload arrives.
  const sio = (...frames) => rawExchange(port, Buffer.concat([
    Buffer.from(upgradeRequest(port, null, '', '/socket.io/?EIO=4&transport=websocket')), ...frames]));
  const announce = (n) => Buffer.from([0x81, 0xff, 0, 0, 0, 0, (n >>> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255, 1, 2, 3, 4]);
  assert.equal(closeCodeOf(parseServerFrames(await sio(announce(20000)))), 1009, 'payload_unauth');
  const user = await sio(clientFrame(1, `40${JSON.stringify({ token: tok })}`), announce(2000000));
  assert.match(user.toString('latin1'), /40\{"sid":/, 'the CONNECT was accepted first');
  assert.equal(closeCodeOf(parseServerFrames(user)), 1009, 'payload');
  // Chat from one address over its bucket (burst 40): the first ten pass
  // alice's own bucket in the broker, the rest are refused there, and past
  // forty here.
  const { Client } = await import('./harness.mjs');
  const c = await new Client(s.gateways[0].ws, { headers: { Authorization: `Bearer ${tok}` } }).opened();
  for (let i = 0; i < 45; i++) c.send({ type: 'livechat', message: `flood ${i}` });
  await c.sync();
  await c.close();

  const after = await limitRefusals(url);
  for (const limit of ['request_line', 'header_bytes', 'header_count', 'header_timeout', 'body', 'body_unauth',
    'origin', 'message', 'payload', 'payload_unauth', 'chat_rate_per_ip']) {
    assert.ok(after[limit] > (before[limit] ?? 0), `${limit}: ${before[limit]} -> ${after[limit]}`);
  }
  assert.equal(after.body - before.body, 2, 'body: both 413s');
});
