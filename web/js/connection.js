// connection.js - one Socket.IO connection to Herald that stays up.
//
// socket.io-client can reconnect by itself, but it cannot say "reconnecting
// in 4 s", move to another gateway, or notice a dead path before Engine.IO's
// heartbeat gives up (ping interval + timeout, 60 s by default). So each
// attempt here is a fresh socket with reconnection:false, and this module
// owns the loop:
//   - exponential backoff with jitter between attempts (a gateway restart
//     must not bring every browser back in the same millisecond);
//   - a list of gateway URLs, rotated after each failure (?gateways=...);
//     behind a load balancer the list is just the page's own origin;
//   - an application ping ("ping" with an ack, answered by the gateway
//     itself) every PING_INTERVAL_MS: no answer within PING_TIMEOUT_MS and
//     the connection is treated as dead and replaced;
//   - a clean close (WebSocket close code 1000) when the page asks for it,
//     so the server sees a deliberate goodbye, not a lost peer.
// The page learns what happens through 'state' events and registers its
// Herald event handlers once, with on(); they survive every reconnect.

const BACKOFF_BASE_MS = 2000; // first retry after 1-2 s
const BACKOFF_MAX_MS = 30000; // never wait longer than 15-30 s
const CONNECT_TIMEOUT_MS = 8000; // an attempt that has not connected by then failed
const PING_INTERVAL_MS = 10000; // well under Engine.IO's 25 s + 35 s heartbeat
const PING_TIMEOUT_MS = 5000;
const REQUEST_TIMEOUT_MS = 8000; // acks come back through the broker
const CLOSE_GRACE_MS = 1000; // how long the server gets to close after our DISCONNECT

// connect_error codes (err.data.code) that retrying cannot fix: the session
// cookie is bad. The page answers them by logging out and coming back as a
// guest. origin-forbidden is not here: another gateway may accept us.
export const AUTH_ERROR_CODES = new Set([
  'token-too-long', 'malformed', 'bad-algorithm', 'bad-signature', 'no-expiry', 'expired',
  'not-yet-valid', 'bad-subject', 'bad-issuer', 'bad-audience', 'account-deleted',
]);

/**
 * Parses the gateway list: ?gateways=url,url (else the page's origin).
 * Only http(s) URLs on this page's host name are kept: the session cookie
 * belongs to the host, and a crafted link must not point the page at a
 * stranger's server.
 */
export function gatewayList(location) {
  const param = new URLSearchParams(location.search).get('gateways');
  const urls = [];
  for (const raw of (param || '').split(',')) {
    try {
      const u = new URL(raw.trim());
      if ((u.protocol === 'http:' || u.protocol === 'https:') && u.hostname === location.hostname && !urls.includes(u.origin)) {
        urls.push(u.origin);
      }
    } catch { /* not a URL: skipped */ }
  }
  if (urls.length === 0) urls.push(location.origin);
  return urls;
}

/** The wait before retry number `attempt` (0-based): "equal jitter". */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 10));
  return Math.round(ceiling / 2 + random() * ceiling / 2);
}

export class Connection extends EventTarget {
  /** urls: gateway origins, tried in order; the first is used first. */
  constructor(urls, { origin = location.origin } = {}) {
    super();
    this.urls = urls;
    this.origin = origin;
    this.index = Math.max(0, urls.indexOf(origin));
    this.socket = null;
    this.handlers = new Map(); // event name -> Set of functions
    this.state = 'idle'; // idle | connecting | online | reconnecting | stopped
    this.attempt = 0; // consecutive failures
    this.retryAt = 0;
    this.retryTimer = null;
    this.countdownTimer = null;
    this.pingTimer = null;
    this.lastError = '';
  }

  get url() { return this.urls[this.index]; }
  get connected() { return Boolean(this.socket && this.socket.connected); }

  /** Registers a handler for a Herald event (survives reconnects). */
  on(event, fn) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(fn);
    return this;
  }

  /** Connects now (also after stop()). */
  start() {
    this.cancelRetry();
    this.connect();
  }

  /** Closes cleanly and connects again at once: after a login or logout the
   * new handshake carries the new cookie. */
  restart() {
    this.dropSocket();
    this.attempt = 0;
    this.start();
  }

  /** Closes cleanly (code 1000) and stays closed until start(). */
  stop() {
    this.cancelRetry();
    this.dropSocket();
    this.setState('stopped');
  }

  /** Retries at once instead of waiting for the countdown. */
  retryNow() {
    if (this.state === 'reconnecting') this.start();
  }

  /**
   * Emits event with data and resolves with the ack's argument. Rejects when
   * not connected or without an answer in time. A Herald refusal is not a
   * rejection: it resolves with {ok: false, error, message}.
   */
  request(event, data) {
    const socket = this.socket;
    if (!socket || !socket.connected) return Promise.reject(new Error('not connected'));
    const args = data === undefined ? [] : [data];
    return socket.timeout(REQUEST_TIMEOUT_MS).emitWithAck(event, ...args);
  }

  /** Emits without waiting for an answer (returns false when offline). */
  send(event, data) {
    if (!this.connected) return false;
    this.socket.emit(event, data);
    return true;
  }

  // ---- internals ---------------------------------------------------------

  connect() {
    this.dropSocket();
    const url = this.url;
    this.setState('connecting');
    // WebSocket only: a polling session lives in one gateway process and
    // cross-origin polling needs CORS, which Herald does not serve; every
    // browser this page supports has WebSocket. No auth payload: the
    // handshake carries the accessToken cookie when there is one, else the
    // connection is a guest's.
    const socket = window.io(url, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      timeout: CONNECT_TIMEOUT_MS,
    });
    this.socket = socket;
    socket.onAny((event, ...args) => {
      for (const fn of this.handlers.get(event) || []) {
        try { fn(...args); } catch (e) { console.error(`handler for ${event}`, e); }
      }
    });
    socket.on('connect', () => {
      if (socket !== this.socket) return;
      this.attempt = 0;
      this.lastError = '';
      this.setState('online');
      this.schedulePing(socket);
      this.dispatchEvent(new CustomEvent('connect', { detail: { url } }));
    });
    socket.on('connect_error', (err) => {
      if (socket !== this.socket) return;
      const code = err?.data?.code || '';
      this.lastError = code || err?.message || 'connection failed';
      if (AUTH_ERROR_CODES.has(code)) {
        // The cookie is refused everywhere: the page must drop it first.
        this.dropSocket();
        this.setState('stopped');
        this.dispatchEvent(new CustomEvent('auth-error', { detail: { code, message: err.message } }));
        return;
      }
      this.fail();
    });
    socket.on('disconnect', (reason) => {
      if (socket !== this.socket) return; // one we dropped on purpose
      this.stopPing();
      this.lastError = reason;
      this.dispatchEvent(new CustomEvent('disconnect', { detail: { reason } }));
      this.fail();
    });
  }

  // A failed attempt or a lost connection: next gateway, wait, try again.
  fail() {
    this.cancelRetry();
    this.dropSocket();
    if (this.urls.length > 1) this.index = (this.index + 1) % this.urls.length;
    const delay = backoffDelay(this.attempt++);
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.connect(); }, delay);
    // The countdown on screen: whole seconds, refreshed a few times a second
    // so it never shows a stale number for long.
    this.countdownTimer = setInterval(() => this.emitState(), 250);
    this.setState('reconnecting');
  }

  cancelRetry() {
    clearTimeout(this.retryTimer);
    clearInterval(this.countdownTimer);
    this.retryTimer = this.countdownTimer = null;
  }

  schedulePing(socket) {
    this.stopPing();
    this.pingTimer = setTimeout(() => {
      if (socket !== this.socket || !socket.connected) return;
      socket.timeout(PING_TIMEOUT_MS).emit('ping', (err) => {
        if (socket !== this.socket) return;
        if (err) {
          // No pong: the path is dead even if TCP has not noticed yet.
          this.lastError = 'no answer to ping';
          this.dispatchEvent(new CustomEvent('disconnect', { detail: { reason: 'ping timeout' } }));
          this.fail();
        } else {
          this.schedulePing(socket);
        }
      });
    }, PING_INTERVAL_MS);
  }

  stopPing() {
    clearTimeout(this.pingTimer);
    this.pingTimer = null;
  }

  // Forgets the current socket, closing it with code 1000 when it is open.
  dropSocket() {
    this.stopPing();
    const socket = this.socket;
    this.socket = null;
    if (!socket) return;
    socket.offAny();
    socket.removeAllListeners();
    // engine.io-client closes its WebSocket at once and without a code (the
    // server would see 1005, "no status"). A deliberate goodbye is 1000.
    // When connected, disconnect() first sends Socket.IO's DISCONNECT
    // packet, which Herald answers by closing with 1000 itself; our own
    // close frame right behind it would cross the server's, and a gateway
    // that reads both at once drops the connection before its close frame
    // is out (the browser then reports 1006). So the server closes, and we
    // close with 1000 only if it has not done so in CLOSE_GRACE_MS.
    const ws = socket.io?.engine?.transport?.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      const close = ws.close.bind(ws);
      if (socket.connected) {
        ws.close = () => {
          const t = setTimeout(() => close(1000, 'bye'), CLOSE_GRACE_MS);
          ws.addEventListener('close', () => clearTimeout(t), { once: true });
        };
      } else {
        ws.close = () => close(1000, 'bye');
      }
    }
    socket.disconnect();
  }

  setState(state) {
    if (state !== 'reconnecting') this.cancelRetryTimersOnly();
    this.state = state;
    this.emitState();
  }

  cancelRetryTimersOnly() {
    clearInterval(this.countdownTimer);
    this.countdownTimer = null;
  }

  emitState() {
    const retryIn = this.state === 'reconnecting' ? Math.max(0, Math.ceil((this.retryAt - Date.now()) / 1000)) : 0;
    this.dispatchEvent(new CustomEvent('state', {
      detail: { state: this.state, url: this.url, retryIn, attempt: this.attempt, error: this.lastError },
    }));
  }
}
