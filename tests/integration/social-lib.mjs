// social-lib.mjs - what the social test files (and limits.test.mjs) share:
// their stack (the limits small enough to hit), HTTP and notify helpers,
// message filters, refusal checks and the public-fields check.
import assert from 'node:assert/strict';
import { Stack, freePort, metrics } from './harness.mjs';

export const API_KEY = 'test-api-key';
export const PUBLIC = new Set(['userID', 'userId', 'id', 'username', 'avatar', 'wins', 'losses', 'ratio']);

// A started stack whose chat bucket (3, then 0.5/s), room bound (4) and
// message length (50) are small enough for the tests to reach.
export async function socialStack(name) {
  const adminPort = await freePort();
  const s = await new Stack(name, {
    env: {
      HERALD_API_KEY: API_KEY,
      HERALD_CHAT_BURST: '3',
      HERALD_CHAT_RATE: '0.5',
      HERALD_MAX_ROOMS: '4',
      HERALD_CHAT_MAX_LENGTH: '50',
      HERALD_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
    },
  }).start();
  s.brokerAdminUrl = `http://127.0.0.1:${adminPort}`;
  return s;
}

// herald_broker_refusals_total of stack s's broker, by error word.
export async function brokerRefusals(s) {
  const out = {};
  for (const [k, v] of await metrics(s.brokerAdminUrl)) {
    const m = k.match(/^herald_broker_refusals_total\{code="([\w-]+)"\}$/);
    if (m) out[m[1]] = v;
  }
  return out;
}

// HTTP against gateway gi of stack s: {status, json, text}.
export async function http(s, method, gi, path, { body, bearer, headers = {} } = {}) {
  const h = { ...headers };
  if (bearer) h.Authorization = `Bearer ${bearer}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['Content-Type'] = 'application/json';
  }
  const r = await fetch(`${s.gateways[gi].url}${path}`, { method, headers: h, body: payload });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, json, text };
}

// POST /api/notify/<event> with the API key (or key).
export const notify = (s, event, body, { key = API_KEY, gi = 0 } = {}) =>
  http(s, 'POST', gi, `/api/notify/${event}`, { body, bearer: key });

// The same notification written straight to the broker's stream.
export const xadd = (s, event, body) =>
  s.redis('XADD', 'herald:events', '*', 't', 'notify', 'e', event, 'd', JSON.stringify(body));

export const is = (type, pred = () => true) => (m) => m.type === type && pred(m);
// Messages of raw client c received at index >= from that match pred.
export const since = (c, from, pred) => c.messages.slice(from).filter(pred);
// Next message of raw client c at index >= from matching pred.
export const nextFrom = (c, from, pred, what) =>
  c.next((m) => c.messages.indexOf(m) >= from && pred(m), 5000, what);
// The user-status-change statuses a socket.io client saw for uid.
export const statusOf = (sock, uid) =>
  sock.events.filter(([n, d]) => n === 'user-status-change' && d.userId === uid).map(([, d]) => d.status);

export function assertPublic(u, what) {
  for (const k of Object.keys(u)) assert.ok(PUBLIC.has(k), `${what}: key ${k} is not a public field: ${JSON.stringify(u)}`);
}

// The next `error` message of raw client c at index >= from: it must carry
// code and a message for people.
export async function rawError(c, from, code) {
  const m = await nextFrom(c, from, is('error'), `error ${code}`);
  assert.equal(m.code, code, JSON.stringify(m));
  assert.equal(typeof m.message, 'string');
  return m;
}

// A Socket.IO acknowledgement that reports a refusal with word.
export function assertFail(ack, word, what) {
  assert.equal(ack?.ok, false, `${what}: ${JSON.stringify(ack)}`);
  assert.equal(ack.error, word, `${what}: ${JSON.stringify(ack)}`);
  assert.equal(typeof ack.message, 'string', what);
}

// A chat message or DM as delivered, without what the broker adds to every
// one (checked here): its stored "id", its "ts" and, for a DM, "to".
export function plain(m) {
  if (!m || typeof m !== 'object' || Array.isArray(m)) return m;
  const { id, ts, to, ...rest } = m;
  assert.ok(Number.isInteger(id) && id > 0, `id ${id}`);
  assert.ok(Number.isInteger(ts) && Math.abs(ts - Date.now()) < 60000, `ts ${ts}`);
  if (m.type === 'direct_message' || to !== undefined) assert.ok(Number.isInteger(to) && to > 0, `to ${to}`);
  return rest;
}

// A DM's callback answer without its stored id and ts (checked).
export function plainAck(a) {
  if (!a || a.ok !== true) return a;
  const { id, ts, ...rest } = a;
  assert.ok(Number.isInteger(id) && id > 0, `ack id ${id}`);
  assert.ok(Number.isInteger(ts), `ack ts ${ts}`);
  return rest;
}
