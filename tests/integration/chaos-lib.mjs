// chaos-lib.mjs - ledgers for the fault tests (chaos.test.mjs).
//
// A scenario runs logical clients ("peers": one user each, raw /ws or
// Socket.IO, reconnecting when the scenario says so) and keeps two ledgers:
//
// Messages. Every DM or livechat message carries a unique id in its text
// ("<scenario>#<n>"). Per message: sent; then its answer, one of
//   accepted  Socket.IO callback {ok:true}; raw /ws (no answer on success):
//             the probe sent right behind it (`get_chat_history` of one
//             message: a round trip through the broker; the online list is
//             the gateway's own) was answered with no error frame in
//             between. The broker answers a connection's
//             events in order, and the gateway refuses at once and in order,
//             so with one message in flight per raw client (a raw peer sends
//             its next only after this outcome) an error frame before that
//             answer is the message's;
//   refused   callback {ok:false,error}; raw: an error frame before the
//             answer (or two errors: the message's and the probe's);
//   in doubt  the sender's connection closed before any answer (the sender
//             was told: by the close, e.g. 1012);
//   unanswered no answer at all while the connection stayed open (Socket.IO
//             callback timeout) - the sender was never told;
// and, on the receiving side, delivered (each recipient present at send time
// got it) and duplicated (some recipient got it more than once). A message
// is lost when it was accepted, a recipient had an open connection when it
// was sent, and that recipient never got it ("lost live"). A DM accepted for
// a recipient with no open connection is "undeliverable", and one for a
// recipient whose connection the fault cut off is "cut off" (cutOffAt()):
// neither could be delivered live.
//
// The DM store. The broker stores every DM before delivering it, so after
// the scenario has settled (settle()) the ledger reads the stored
// conversation of every pair that exchanged DMs (GET /api/dm/history with
// the API key, paged with `before`) and classifies each accepted DM:
//   delivered  a recipient got it live;
//   stored     not delivered live (undeliverable, cut off, lost live) but in
//              the recipient's history: it reaches the user on the next
//              get_dm_history, so it is not lost;
//   LOST       accepted, not delivered, not in the store.
// Every accepted DM, delivered or not, must be in the store exactly once
// ("unstored" and "storedTwice" count the exceptions). Livechat is not
// stored per recipient and not guaranteed to reach a connection cut off by
// a fault; its accounting is the live one above.
//
// Presence. Every peer records the presence events it saw (`status_update`
// on /ws, `user-status-change` on Socket.IO) after a baseline. The scenario
// says, per user, which transitions really happened (e.g. ['offline',
// 'online']); an event beyond the longest common subsequence of what an
// observer saw and that truth is spurious (an observer that was away may
// miss events; that is not counted).
//
// Heal: online_users (Redis) and a get_online_users answer must both equal
// the users with an open authenticated connection (client's view) within a
// deadline; ghosts are online but not connected, missing connected but not
// online.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Stack, Proc, Client, waitFor, sioClient, sioConnected,
} from './harness.mjs';

// The raw clients' round trip through the broker: the smallest request it
// answers (one message of the live chat history).
const PROBE = { type: 'get_chat_history', limit: 1 };

// ---- sizes ----------------------------------------------------------------

// HERALD_CHAOS_SCALE: unset/"small" (default, inside scripts/test) or
// "full" (scripts/chaos): hundreds of clients, thousands of messages, a 30 s
// Redis outage.

export const FULL = /^(full|1|large)$/i.test(process.env.HERALD_CHAOS_SCALE || '');
export const SIZES = FULL ? {
  peers: 200, // per scenario, spread over both gateways
  loadMs: 100, // one message per sender per tick
  senders: 60,
  redisOutageMs: 30000,
  brokerLoadMs: 6000,
  capMax: 8000,
} : {
  peers: 12,
  loadMs: 100,
  senders: 6,
  redisOutageMs: 5000,
  brokerLoadMs: 2500,
  capMax: 1500,
};

// Every limit that would refuse load for reasons other than the fault.
export const NO_LIMITS = {
  HERALD_CHAT_BURST: '100000',
  HERALD_CHAT_RATE: '100000',
  HERALD_CHAT_RATE_PER_IP: '0',
  HERALD_CHAT_BURST_PER_IP: '1000000',
  HERALD_CONNS_PER_IP: '0',
  HERALD_CONN_RATE_PER_IP: '0',
};

// ---- the stack --------------------------------------------------------------

// The harness Stack, plus opts.appendonly (redis-server --appendonly yes, so
// a restart keeps its data) and opts.users (extra users made at start).
export class ChaosStack extends Stack {
  async startRedis() {
    if (!this.opts.appendonly) return super.startRedis();
    this.redisProc = new Proc(`redis-${this.procs.length}`, 'redis-server',
      ['--port', String(this.redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes',
        '--appendfsync', 'always', '--dir', this.dir],
      {}, this.logDir);
    this.procs.push(this.redisProc);
    await waitFor(() => { this.redis('PING'); return true; }, { what: 'redis', timeout: 15000 });
  }

  // Makes n users with herald-admin user bulk (named <prefix><id>, ids
  // consecutive from the one it prints) and returns their names.
  makeUsers(prefix, n) {
    const first = Number(this.admin('user', 'bulk', prefix, String(n)));
    if (!(first > 0)) throw new Error(`herald-admin user bulk ${prefix} ${n}: no id`);
    const names = [];
    for (let id = first; id < first + n; id++) {
      this.users[`${prefix}${id}`] = id;
      names.push(`${prefix}${id}`);
    }
    return names;
  }
}

export const logHas = (proc, re) => { try { return re.test(fs.readFileSync(proc.log, 'utf8')); } catch { return false; } };

// ---- peers --------------------------------------------------------------------

let peerSeq = 0;

// One user's logical client. kind 'raw' or 'sio'. reconnect:
//   false        never;
//   'on1012'     raw: reopen (to reconnectTo) when closed with 1012;
//                Socket.IO: the stock client's own reconnection;
//   'always'     reopen (to reconnectTo) after any close the test did not ask for.
export class Peer {
  constructor(chaos, name, kind, gi, { reconnect = false, reconnectTo = gi, recordOnly = false } = {}) {
    this.chaos = chaos;
    this.s = chaos.s;
    this.name = name;
    this.userId = this.s.users[name];
    this.kind = kind;
    this.gi = gi;
    this.reconnect = reconnect;
    this.reconnectTo = reconnectTo;
    this.recordOnly = recordOnly;
    this.seq = ++peerSeq;
    this.presence = []; // { userId, status, t, conn }
    this.baseline = 0;
    this.closes = []; // { code, t, conn }
    this.opens = []; // { t, gi }
    this.conn = null; // raw: Client; sio: socket
    this.connNo = 0;
    this.stopped = false; // the test closed it on purpose
    this.away = []; // [from, to|null] intervals without an open connection
    this.reconnecting = null;
  }

  get connected() {
    if (!this.conn) return false;
    if (this.kind === 'raw') return this.conn.ws.readyState === 1 && !this.conn.dead;
    return this.conn.connected;
  }

  // True when this peer had an open connection at time t (client's view).
  presentAt(t) {
    for (const [a, b] of this.away) if (t >= a && (b === null || t < b)) return false;
    return this.opens.length > 0 && t >= this.opens[0].t;
  }

  // True when, at t, this peer's connection was open but cut off by the
  // fault (this.cutoff: [from, to] intervals a scenario sets): on a gateway
  // killed with the message in its stream, or one the broker had given up
  // (the broker counted the user offline). Such a recipient cannot get a
  // message live; a DM to it must be in the store (Ledger.summary()), a
  // livechat message is simply not delivered to it.
  cutOffAt(t) {
    return (this.cutoff || []).some(([a, b]) => t >= a && (b === null || t < b));
  }

  async open(gi = this.gi, timeout = 10000) {
    this.gi = gi;
    const no = ++this.connNo;
    if (this.kind === 'raw') {
      const c = await this.s.connect(this.name, gi);
      this.conn = c;
      c.pending = []; // the message (or probe) waiting for its outcome
      c.lists = []; // askOnline()s waiting for their online_users answer
      c.ws.on('message', (data, bin) => { if (!bin) this.onRaw(JSON.parse(data.toString()), no, c); });
      c.ws.on('close', (code) => this.onClosed(code, no, c));
    } else {
      const reconnection = this.reconnect === 'on1012';
      const sock = sioClient(this.s.gateways[gi].url, {
        token: this.s.token(this.name),
        reconnection, reconnectionDelay: 100, reconnectionDelayMax: 1000, randomizationFactor: 0.2,
      });
      this.conn = sock;
      sock.on('user-status-change', (ev) => this.onStatus(ev, no));
      sock.on('direct_message', (ev) => this.chaos.ledger.deliver(ev.message, this));
      sock.on('livechat', (ev) => this.chaos.ledger.deliver(ev.message, this));
      sock.on('disconnect', (reason, desc) => {
        const code = desc?.context?.code ?? desc?.description?.code ?? null;
        this.onClosed(code ?? reason, no);
      });
      sock.io.on('reconnect', () => {
        // Back once the broker counts it: after a round trip through it.
        const back = () => {
          const a = this.away.find((x) => x[1] === null);
          if (a) a[1] = Date.now();
          this.opens.push({ t: Date.now(), gi, auto: true });
        };
        sock.timeout(5000).emitWithAck('whoami').then(back, back);
      });
      await sioConnected(sock, timeout);
    }
    // Present from when the broker has registered the connection (a round
    // trip through it: the gateway's open entry went first), not from the
    // socket's open: a DM in between finds the user offline.
    await this.sync(5000);
    const a = this.away.find((x) => x[1] === null);
    if (a) a[1] = Date.now();
    this.opens.push({ t: Date.now(), gi });
    return this;
  }

  onRaw(m, no, c) {
    if (m.type === 'status_update') this.onStatus(m, no);
    else if (m.type === 'direct_message' || m.type === 'livechat') this.chaos.ledger.deliver(m.message, this);
    else if (m.type === 'online_users') {
      const w = c.lists.shift();
      if (w) w.resolve(m);
    } else if (m.type === 'chat_history') {
      const head = c.pending.shift();
      if (head && head.probe) head.resolve(m);
      else if (head) this.chaos.ledger.answered(head, head.error ? 'refused' : 'accepted', head.error);
    } else if (m.type === 'error') {
      const head = c.pending[0];
      if (head && head.probe) {
        c.pending.shift();
        head.reject(new Error(`the probe was refused: ${m.code}`));
      } else if (head && !head.error) {
        head.error = m.code; // the message's; its probe's answer or error follows
      } else if (head) {
        c.pending.shift(); // the probe behind a refused message was refused too
        this.chaos.ledger.answered(head, 'refused', head.error);
      } else this.chaos.ledger.strayErrors.push({ peer: this.name, code: m.code, message: m.message, pending: c.pending.length });
    }
  }

  onStatus(ev, no) {
    this.presence.push({ userId: Number(ev.userId), status: ev.status, t: Date.now(), conn: no });
  }

  onClosed(code, no, c = null) {
    if (c) {
      c.dead = true;
      for (const msg of c.pending.splice(0)) {
        if (msg.probe) continue;
        this.chaos.ledger.answered(msg, msg.error ? 'refused' : 'doubt', msg.error ?? `closed ${code}`);
      }
    }
    if (no !== this.connNo) return;
    const t = Date.now();
    this.closes.push({ code, t, conn: no });
    if (!this.away.some((x) => x[1] === null)) this.away.push([t, null]);
    if (this.stopped) return;
    const again = this.reconnect === 'always' || (this.reconnect === 'on1012' && this.kind === 'raw' && code === 1012);
    if (again) this.reconnecting = this.reopenLoop();
  }

  // Reopens until it works or the peer is stopped (a gateway may still be
  // starting, paused or dead: each try is bounded).
  async reopenLoop() {
    const until = Date.now() + 60000;
    while (!this.stopped && Date.now() < until) {
      try {
        await this.open(this.reconnectTo, 5000);
        return;
      } catch {
        if (this.kind === 'sio' && this.conn) this.conn.disconnect();
        await sleep(200);
      }
    }
  }

  // Sends one message with a unique id; kind 'dm' (to a peer) or 'chat'.
  send(kind, to = null) {
    if (this.stopped || !this.connected) return null;
    if (this.kind === 'raw' && this.conn.pending.length) return null; // one in flight
    const msg = this.chaos.ledger.add(this, kind, to);
    if (this.kind === 'raw') {
      this.conn.pending.push(msg);
      if (kind === 'dm') this.conn.send({ type: 'direct_message', to: to.name, message: msg.id });
      else this.conn.send({ type: 'livechat', message: msg.id });
      this.conn.send(PROBE);
    } else {
      const ev = kind === 'dm' ? ['direct_message', { to: to.name, message: msg.id }] : ['livechat', { message: msg.id }];
      const conn = this.connNo;
      this.conn.timeout(this.chaos.ackTimeout).emit(...ev, (err, res) => {
        if (err) {
          // socket.io-client fails pending callbacks when the socket closes.
          const closed = conn !== this.connNo || !this.conn.connected || /disconnected/.test(err.message);
          this.chaos.ledger.answered(msg, closed ? 'doubt' : 'unanswered', err.message);
        } else if (res && res.ok) this.chaos.ledger.answered(msg, 'accepted');
        else this.chaos.ledger.answered(msg, 'refused', res?.error);
      });
    }
    return msg;
  }

  // The online users as this peer's gateway answers them from its own list,
  // asked after a round trip through the broker (so the list has every
  // transition the broker wrote before it).
  async askOnline(timeout = 3000) {
    if (!this.connected) throw new Error(`${this.name} is not connected`);
    if (this.kind === 'sio') {
      await this.conn.timeout(timeout).emitWithAck('whoami');
      return (await this.conn.timeout(timeout).emitWithAck('get-online-users')).map(Number);
    }
    // Queued behind a message in flight, if any: its answer is the next
    // chat_history after that message's.
    const c = this.conn;
    let resolve, reject;
    const answered = new Promise((rs, rj) => { resolve = rs; reject = rj; });
    answered.catch(() => {});
    c.pending.push({ probe: true, resolve, reject });
    c.send(PROBE);
    let t;
    const late = new Promise((_, rj) => { t = setTimeout(() => rj(new Error('timed out waiting for the probe')), timeout); });
    late.catch(() => {});
    try {
      await Promise.race([answered, late]);
      const list = new Promise((rs, rj) => c.lists.push({ resolve: rs, reject: rj }));
      c.send({ type: 'get_online_users' });
      const ans = await Promise.race([list, late]);
      return ans.users.map(Number);
    } finally { clearTimeout(t); }
  }

  // A round trip through the broker, errors ignored.
  async sync(timeout = 5000) { try { await this.askOnline(timeout); return true; } catch { return false; } }

  markBaseline() { this.baseline = this.presence.length; }

  async close() {
    this.stopped = true;
    if (!this.conn) return;
    if (this.kind === 'raw') {
      if (this.conn.ws.readyState <= 1) { this.conn.ws.close(1000); await Promise.race([this.conn.closed, sleep(3000)]); }
    } else {
      this.conn.io.opts.reconnection = false;
      this.conn.disconnect();
    }
  }
}

// ---- the message ledger -----------------------------------------------------

export class Ledger {
  constructor(tag) {
    this.tag = tag;
    this.n = 0;
    this.msgs = new Map();
    this.strayErrors = [];
    this.unknownDeliveries = 0;
  }

  add(from, kind, to) {
    const id = `${this.tag}#${++this.n}`;
    const now = Date.now();
    const msg = {
      id, kind, from, to, t: now, state: 'pending', error: null, why: null,
      recipients: kind === 'dm' ? [to] : null, got: new Map(),
      stored: 0, // DMs: copies found in the store (checkStore())
    };
    this.msgs.set(id, msg);
    return msg;
  }

  // For a livechat message every peer is a recipient; set after sending so
  // the list is whoever exists.
  setChatRecipients(peers) {
    for (const m of this.msgs.values()) if (m.kind === 'chat') m.recipients = peers;
  }

  answered(msg, state, why = null) {
    if (msg.state !== 'pending') return;
    msg.state = state;
    msg.why = why;
    msg.answeredAt = Date.now();
  }

  deliver(text, peer) {
    const msg = this.msgs.get(text);
    if (!msg) { this.unknownDeliveries++; return; }
    msg.got.set(peer, (msg.got.get(peer) || 0) + 1);
  }

  pending() { return [...this.msgs.values()].filter((m) => m.state === 'pending').length; }

  // Recipients of msg that had an open connection when it was sent.
  presentRecipients(msg) {
    return (msg.recipients || []).filter((p) => p.presentAt(msg.t) && !p.cutOffAt(msg.t));
  }

  // True when every accepted message reached all its present recipients.
  settled() {
    for (const m of this.msgs.values()) {
      if (m.state === 'pending') return false;
      if (m.state !== 'accepted') continue;
      for (const p of this.presentRecipients(m)) if (!m.got.get(p)) return false;
    }
    return true;
  }

  // Reads the stored conversation of every pair of users that exchanged a
  // DM in this ledger, through GET /api/dm/history at url with apiKey
  // (pages of 100, older pages with `before` = the first id of a page), and
  // sets m.stored to the number of stored copies of each DM (by its unique
  // text; a stored copy whose sender or recipient differs is counted in
  // this.storeMismatch). A page answered 503 is asked again until answered
  // 200 (a gateway refuses while it counts herald:events at its cap or
  // Redis down, until its next measurement; from the first such answer to
  // the last page it held up: this.storeWaitMs); throws when one is not answered 200 within 15 s.
  async checkStore(url, apiKey) {
    const pairs = new Map();
    for (const m of this.msgs.values()) {
      if (m.kind !== 'dm') continue;
      const [a, b] = [m.from.userId, m.to.userId].sort((x, y) => x - y);
      pairs.set(`${a}-${b}`, [a, b]);
    }
    this.storeMismatch = 0;
    this.storePages = 0;
    this.storeWaitMs = 0; // from the first 503 to the last page it held up
    let waitFrom = null;
    const one = async ([a, b]) => {
      let before = null;
      for (;;) {
        const q = new URLSearchParams({ user: String(a), with: String(b), limit: '100' });
        if (before !== null) q.set('before', String(before));
        const ask = async () => {
          const r = await fetch(`${url}/api/dm/history?${q}`, { headers: { Authorization: `Bearer ${apiKey}` } });
          const body = await r.text();
          if (r.status === 200) return body;
          const e = new Error(`GET /api/dm/history?${q}: ${r.status} ${body.slice(0, 200)}`);
          if (r.status !== 503) e.fatal = true;
          throw e;
        };
        let body;
        try {
          body = await ask();
        } catch (e) {
          if (e.fatal) throw e;
          waitFrom ??= Date.now();
          body = await waitFor(ask, { what: 'the DM history answered', timeout: 15000, interval: 100 });
          this.storeWaitMs = Date.now() - waitFrom;
        }
        const { messages } = JSON.parse(body);
        this.storePages++;
        for (const s of messages) {
          const m = this.msgs.get(s.message);
          if (!m) continue; // not one of this scenario's
          if (m.kind !== 'dm' || Number(s.from) !== m.from.userId || Number(s.to) !== m.to.userId) this.storeMismatch++;
          else m.stored++;
        }
        if (messages.length < 100) return;
        before = messages[0].id;
      }
    };
    const list = [...pairs.values()];
    for (let i = 0; i < list.length; i += 4) await Promise.all(list.slice(i, i + 4).map(one));
    this.storeChecked = true;
  }

  summary() {
    const r = {
      sent: 0, accepted: 0, refused: 0, inDoubt: 0, unanswered: 0, pending: 0, delivered: 0,
      lost: 0, duplicated: 0, extraCopies: 0, undeliverable: 0, cutOff: 0, refusedButDelivered: 0,
      refusedWords: {}, doubtWhy: {}, strayErrors: this.strayErrors.length, strayErrorSamples: this.strayErrors.slice(0, 3), unknownDeliveries: this.unknownDeliveries,
      lostIds: [], dupIds: [], silentIds: [],
      // The DM store (null when it was not read): accepted DMs by outcome,
      // and the exceptions.
      dmAccepted: 0, dmDelivered: 0, dmStored: 0, dmLost: 0, cutOffStored: 0, cutOffLost: 0,
      dmUnstored: 0, dmStoredTwice: 0, dmDoubtStored: 0, dmRefusedStored: 0, dmLostIds: [], dmUnstoredIds: [],
    };
    for (const m of this.msgs.values()) {
      r.sent++;
      const present = this.presentRecipients(m);
      const gotAll = present.length > 0 && present.every((p) => m.got.get(p));
      const gotAny = [...m.got.values()].some((v) => v > 0);
      const copies = [...m.got.values()];
      if (copies.some((v) => v > 1)) {
        r.duplicated++;
        r.extraCopies += copies.reduce((a, v) => a + Math.max(0, v - 1), 0);
        if (r.dupIds.length < 10) r.dupIds.push(m.id);
      }
      if (gotAny) r.delivered++;
      if (m.kind === 'dm') this.countStored(m, gotAny, r);
      switch (m.state) {
        case 'accepted':
          r.accepted++;
          if (present.length === 0) {
            if (gotAny) break;
            if ((m.recipients || []).some((p) => p.presentAt(m.t) && p.cutOffAt(m.t))) r.cutOff++;
            else r.undeliverable++;
          } else if (!gotAll) {
            r.lost++;
            if (r.lostIds.length < 10) r.lostIds.push(`${m.id} ${m.from.name}->${m.to ? m.to.name : '*'}`);
          }
          break;
        case 'refused':
          r.refused++;
          r.refusedWords[m.why] = (r.refusedWords[m.why] || 0) + 1;
          if (gotAny) r.refusedButDelivered++;
          break;
        case 'doubt':
          r.inDoubt++;
          r.doubtWhy[m.why] = (r.doubtWhy[m.why] || 0) + 1;
          break;
        case 'unanswered':
          r.unanswered++;
          if (!gotAny && r.silentIds.length < 10) r.silentIds.push(m.id);
          break;
        default:
          r.pending++;
      }
    }
    if (!this.storeChecked) {
      for (const k of ['dmDelivered', 'dmStored', 'dmLost', 'cutOffStored', 'cutOffLost', 'dmUnstored', 'dmStoredTwice', 'dmDoubtStored', 'dmRefusedStored']) r[k] = null;
    }
    // Never told and never delivered: lost silently as well.
    r.silentlyUnanswered = [...this.msgs.values()].filter((m) => (m.state === 'unanswered' || m.state === 'pending') &&
      ![...m.got.values()].some((v) => v > 0)).length;
    return r;
  }

  // One DM's store outcome into the summary r (see the file's head).
  countStored(m, gotAny, r) {
    if (m.stored > 1) r.dmStoredTwice++;
    if (m.state === 'doubt' && m.stored) r.dmDoubtStored++;
    if (m.state === 'refused' && m.stored) r.dmRefusedStored++;
    if (m.state !== 'accepted') return;
    r.dmAccepted++;
    const tag = `${m.id} ${m.from.name}->${m.to.name}`;
    if (!m.stored) {
      r.dmUnstored++;
      if (r.dmUnstoredIds.length < 10) r.dmUnstoredIds.push(tag);
    }
    const cut = m.to.presentAt(m.t) && m.to.cutOffAt(m.t);
    if (gotAny) r.dmDelivered++;
    else if (m.stored) {
      r.dmStored++;
      if (cut) r.cutOffStored++;
    } else {
      r.dmLost++;
      if (cut) r.cutOffLost++;
      if (r.dmLostIds.length < 10) r.dmLostIds.push(tag);
    }
  }
}

// ---- presence ledger --------------------------------------------------------

function lcs(a, b) {
  const dp = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      dp[i][j] = a[i - 1] === b[j - 1] ? dp[i - 1][j - 1] + 1 : Math.max(dp[i - 1][j], dp[i][j - 1]);
    }
  }
  return dp[a.length][b.length];
}

// truth: Map userId -> expected transitions (default none). Returns
// { spurious, events, examples }.
export function presenceLedger(peers, truth) {
  let spurious = 0;
  let events = 0;
  const examples = [];
  for (const p of peers) {
    const byUser = new Map();
    for (const e of p.presence.slice(p.baseline)) {
      events++;
      if (!byUser.has(e.userId)) byUser.set(e.userId, []);
      byUser.get(e.userId).push(e.status);
    }
    for (const [uid, seen] of byUser) {
      const want = truth.get(uid) || [];
      const extra = seen.length - lcs(seen, want);
      if (extra > 0) {
        spurious += extra;
        if (examples.length < 8) examples.push(`${p.name} saw user ${uid}: ${seen.join(',')} (truth: ${want.join(',') || 'none'})`);
      }
    }
  }
  return { spurious, events, examples };
}

// ---- a scenario ---------------------------------------------------------------

// The API key of every chaos stack: the ledger reads the DM store through
// GET /api/dm/history.
export const CHAOS_API_KEY = 'chaos-api-key';

export class Chaos {
  constructor(name, stackOpts = {}) {
    this.name = name;
    this.s = new ChaosStack(name, {
      ...stackOpts,
      env: { ...NO_LIMITS, HERALD_API_KEY: CHAOS_API_KEY, ...(stackOpts.env || {}) },
    });
    this.ledger = new Ledger(name);
    this.peers = [];
    this.ackTimeout = 20000; // a Socket.IO callback not called by then: unanswered
    this.report = { scenario: name };
    this.t0 = Date.now();
  }

  get lease() { return this.s.opts.leaseMs ?? 3000; }

  log(msg) { console.log(`# [${this.name} +${((Date.now() - this.t0) / 1000).toFixed(1)}s] ${msg}`); }

  async start() { await this.s.start(); return this; }

  // Opens n peers (new users), gateway gi(i) (default alternating) and kind
  // kind(i) (default raw, raw, sio, sio, ...: both kinds on both gateways). Opens in small parallel batches.
  async peersOf(prefix, n, { gi = (i) => i % 2, kind = (i) => (Math.floor(i / 2) % 2 === 0 ? 'raw' : 'sio'), ...opts } = {}) {
    const names = this.s.makeUsers(prefix, n);
    const made = names.map((nm, i) => new Peer(this, nm, typeof kind === 'function' ? kind(i) : kind,
      typeof gi === 'function' ? gi(i) : gi, typeof opts.reconnect === 'function' ? { ...opts, reconnect: opts.reconnect(i) } : opts));
    for (let i = 0; i < made.length; i += 25) await Promise.all(made.slice(i, i + 25).map((p) => p.open()));
    this.peers.push(...made);
    return made;
  }

  connectedUsers() {
    return [...new Set(this.peers.filter((p) => p.connected).map((p) => p.userId))].sort((a, b) => a - b);
  }

  // Waits until online_users is exactly the connected users, syncs every
  // peer and starts the presence ledger from there.
  async baseline() {
    const want = this.connectedUsers();
    await waitFor(async () => eq(await this.s.onlineUsers(), want), { what: 'everyone online', timeout: 20000 });
    await Promise.all(this.peers.map((p) => p.sync(10000)));
    for (const p of this.peers) p.markBaseline();
  }

  // Steady load: every tick each sender sends a DM to its partner (and
  // every chatEvery-th tick a livechat message). Returns { stop }.
  load(senders, partnerOf, { tickMs = SIZES.loadMs, chatEvery = 0 } = {}) {
    let tick = 0;
    const timer = setInterval(() => {
      tick++;
      for (const p of senders) {
        if (chatEvery && tick % chatEvery === 0 && p === senders[0]) p.send('chat');
        else p.send('dm', partnerOf(p));
      }
    }, tickMs);
    return { stop: () => clearInterval(timer) };
  }

  // Polls until online_users and a get_online_users answer (through prober)
  // both equal the connected users, up to deadlineMs from `from`. Records
  // healMs, ghosts and missing.
  async heal(prober, from, deadlineMs) {
    let last = { redis: null, answer: null, want: null };
    let ok = false;
    // The broker is asked through the prober; when that goes unanswered,
    // through a second tab of the prober's user (online, and staying so:
    // the tab changes nobody's presence). A raw prober's answers are matched
    // to its messages in order, and one answer short there (an event it
    // sent as Redis went down was answered twice, or not at all) would
    // leave each later question waiting for the one before.
    let tab = null;
    let viaTab = false;
    do {
      const want = this.connectedUsers();
      let redisSet = null;
      let answer = null;
      try { redisSet = await this.s.onlineUsers(); } catch { /* redis down */ }
      try {
        if (viaTab) {
          if (!tab || tab.ws.readyState !== 1) tab = await this.s.connect(prober.name, prober.gi);
          answer = (await tab.sync(2000)).users.map(Number).sort((a, b) => a - b);
        } else {
          answer = (await prober.askOnline(2000)).sort((a, b) => a - b);
        }
      } catch { viaTab = !viaTab; /* not answered: the other way next time */ }
      last = { redis: redisSet, answer, want };
      ok = !!(redisSet && answer && eq(redisSet, want) && eq(answer, want));
      if (!ok) await sleep(100);
    } while (!ok && Date.now() < from + deadlineMs);
    this.report.healMs = ok ? Date.now() - from : null;
    const seen = new Set([...(last.redis || []), ...(last.answer || [])]);
    const both = (last.redis || []).filter((u) => (last.answer || []).includes(u));
    this.report.ghosts = ok ? 0 : [...seen].filter((u) => !last.want.includes(u)).length;
    this.report.missing = ok ? 0 : last.want.filter((u) => !both.includes(u)).length;
    this.report.healDetail = ok ? undefined : { onlineUsers: last.redis, answer: last.answer, connected: last.want };
    this.log(ok ? `presence exact ${this.report.healMs} ms after the heal` :
      `presence NOT exact within ${deadlineMs} ms: ghosts ${this.report.ghosts}, missing ${this.report.missing}`);
    if (tab && tab.ws.readyState === 1) await tab.close();
    return ok;
  }

  // Waits (bounded) for every message to be answered and every accepted one
  // delivered, then a round trip through the broker on every peer so late
  // copies show up too; then reads the DM store (Ledger.checkStore())
  // through a running gateway. Throws when the store cannot be read.
  async settle(timeout = this.ackTimeout + 2000) {
    this.ledger.setChatRecipients(this.peers);
    await waitFor(() => this.ledger.settled(), { what: 'messages settled', timeout }).catch(() => {});
    await Promise.all(this.peers.filter((p) => p.connected).map((p) => p.sync(5000)));
    const gw = this.s.gateways.find((g) => g.proc.running);
    if (!gw) throw new Error('no gateway running to read the DM store through');
    const t = Date.now();
    await this.ledger.checkStore(gw.url, CHAOS_API_KEY);
    this.report.storeWaitMs = this.ledger.storeWaitMs;
    this.log(`DM store read through ${gw.id}: ${this.ledger.storePages} page(s) in ${Date.now() - t} ms` +
      ` (${this.ledger.storeWaitMs} ms of it waiting for the gateway to relay again)`);
  }

  // Fills the report, writes it as one JSON line to $HERALD_CHAOS_REPORT,
  // and returns the list of targets missed (empty when all are met).
  finish(truth, extra = {}) {
    const m = this.ledger.summary();
    const pres = presenceLedger(this.peers, truth);
    Object.assign(this.report, {
      sent: m.sent, accepted: m.accepted, delivered: m.delivered, refused: m.refused, inDoubt: m.inDoubt,
      unanswered: m.unanswered, pending: m.pending, lost: m.lost, silent: m.silentlyUnanswered,
      duplicated: m.duplicated, extraCopies: m.extraCopies, undeliverable: m.undeliverable, cutOff: m.cutOff,
      dmAccepted: m.dmAccepted, dmDelivered: m.dmDelivered, dmStored: m.dmStored, dmLost: m.dmLost,
      cutOffStored: m.cutOffStored, cutOffLost: m.cutOffLost, dmUnstored: m.dmUnstored, dmStoredTwice: m.dmStoredTwice,
      dmDoubtStored: m.dmDoubtStored, dmRefusedStored: m.dmRefusedStored, storeMismatch: this.ledger.storeMismatch ?? null,
      // What the figures promise: a DM accepted is stored (so delivered or
      // readable from the history); livechat is delivered to the recipients
      // connected and not cut off, and only to them.
      guarantees: { dm: 'accepted => stored once => delivered live or in get_dm_history', chat: 'live only; a connection cut off by the fault may miss it' },
      refusedWords: m.refusedWords, doubtWhy: m.doubtWhy, strayErrors: m.strayErrors, strayErrorSamples: m.strayErrorSamples,
      refusedButDelivered: m.refusedButDelivered,
      spurious: pres.spurious, presenceEvents: pres.events, peers: this.peers.length,
      ...extra,
    });
    const v = [];
    if (this.report.ghosts) v.push(`${this.report.ghosts} ghost(s) after the heal`);
    if (this.report.missing) v.push(`${this.report.missing} missing user(s) after the heal`);
    if (this.report.healMs === null) v.push(`presence not exact by the deadline: ${JSON.stringify(this.report.healDetail)}`);
    if (pres.spurious) v.push(`${pres.spurious} spurious presence event(s): ${pres.examples.join('; ')}`);
    if (m.lost) v.push(`${m.lost} accepted message(s) lost: ${m.lostIds.join(', ')}`);
    if (m.silentlyUnanswered) v.push(`${m.silentlyUnanswered} message(s) never answered nor delivered: ${m.silentIds.join(', ')}`);
    if (m.dmUnstored === null) v.push('the DM store was not read (settle() not reached)');
    if (m.dmLost) v.push(`${m.dmLost} accepted DM(s) neither delivered nor stored: ${m.dmLostIds.join(', ')}`);
    if (m.dmUnstored) v.push(`${m.dmUnstored} accepted DM(s) missing from the store: ${m.dmUnstoredIds.join(', ')}`);
    if (m.dmStoredTwice) v.push(`${m.dmStoredTwice} DM(s) stored more than once`);
    if (this.ledger.storeMismatch) v.push(`${this.ledger.storeMismatch} stored DM(s) with another sender or recipient than sent`);
    if (m.duplicated) v.push(`${m.duplicated} message(s) delivered more than once (${m.extraCopies} extra copies): ${m.dupIds.join(', ')}`);
    this.report.violations = v.concat(extra.violations || []);
    delete this.report.healDetail;
    const file = process.env.HERALD_CHAOS_REPORT;
    if (file) fs.appendFileSync(file, `${JSON.stringify(this.report)}\n`);
    this.log(`ledger ${JSON.stringify(this.report)}`);
    return this.report.violations;
  }

  // Closes every peer and stops the stack (resuming anything paused first).
  async stop() {
    for (const p of this.s.procs) if (p.running) { try { process.kill(p.pid, 'SIGCONT'); } catch { /* gone */ } }
    await Promise.all(this.peers.map((p) => p.close().catch(() => {})));
    await this.s.stop();
  }
}

export function eq(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export { path, sleep };
