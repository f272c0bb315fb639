// main.js - Herald's demo page, and the reference for how a front end uses
// Herald (PROTOCOL.md §4, docs/API.md):
//   - connect at once, as a guest when not logged in (the accessToken cookie,
//     HttpOnly, rides along on the handshake when there is one);
//   - ask for the online list once per connection (get-online-users), then
//     keep a live set from user-status-change;
//   - profiles: watch-profile while the panel is open (snapshot in the ack,
//     then profile-update / game-stats-update), unwatch-profile on close;
//   - chat, direct messages and matchmaking with their acks and error words;
//   - stored messages (PROTOCOL.md §4a): the recent live chat on load
//     (get-chat-history), DM conversations with their history
//     (get-dm-history, paged back with `before`), unread badges
//     (get-unread, dm-unread) cleared with dm-read when a conversation is
//     shown; after every reconnect, what arrived meanwhile is fetched again
//     (everything above the newest id held). Lists are merged by id
//     (history.js), so a message that arrives both live and in a history
//     page is shown once.
// All state lives in `state`; render*() functions draw it. Text from users
// and backends only ever reaches the DOM through dom.js (text nodes).
import { Connection, gatewayList } from './connection.js';
import { devLogin, logout as apiLogout, searchUsers } from './api.js';
import { h, replaceChildren, avatar, clock } from './dom.js';
import { mergeById, newestId, oldestId, nextCatchUpPage } from './history.js';

const $ = (id) => document.getElementById(id);
const CHAT_KEEP = 200; // messages kept on screen per log
const DM_PAGE = 50; // one get-dm-history page (the broker's default; at most 100)
const CATCH_UP_PAGES = 10; // a reconnect fetches at most this many pages per conversation
const HINT_KEY = 'herald.me'; // who we logged in as: the page cannot read the HttpOnly cookie

const state = {
  me: null, // {id, username, avatar} when logged in and known
  authenticated: false, // this connection is a user's (not a guest's)
  online: new Set(), // live set of online user ids
  onlineKnown: false, // the set has been filled since the last (re)connect
  onlineEver: false, // ... at least once since the page loaded
  users: new Map(), // id -> {id, username, avatar}: what we know of people
  searchOnline: new Map(), // id -> online flag from the last search (used while offline)
  searchResults: null, // [ids] of the last search, null when no search
  profile: null, // {id, user, stats, online, loading, error} of the open panel
  chat: [], // [{id, user, userId, text, at}], id order, each id once
  dms: new Map(), // peer id -> conversation(): messages, unread count, paging state
  activeDm: null, // peer id of the conversation shown
  match: { state: 'idle' }, // idle | queued | matched (+ opponent, matchId)
};

const conn = new Connection(gatewayList(window.location));
let profileOpener = null; // element to give focus back to when the panel closes

// ---- identity ------------------------------------------------------------

function loadHint() {
  try {
    const v = JSON.parse(localStorage.getItem(HINT_KEY) || 'null');
    return v && Number.isInteger(v.id) && typeof v.username === 'string' ? v : null;
  } catch { return null; }
}
function saveHint(me) {
  try { if (me) localStorage.setItem(HINT_KEY, JSON.stringify({ id: me.id, username: me.username })); else localStorage.removeItem(HINT_KEY); } catch { /* private mode */ }
}

// Who this connection is: the CONNECT answer carries only the session id,
// so ask the broker (works on whichever gateway we are connected to).
async function whoami() {
  const r = await conn.request('whoami');
  return r && Number.isInteger(r.id) && r.id > 0 ? { id: r.id, username: String(r.username || '') } : null;
}

// ---- people ----------------------------------------------------------------

function remember(u) {
  const id = Number(u?.id ?? u?.userId ?? u?.userID);
  if (!Number.isInteger(id) || id <= 0) return null;
  const known = state.users.get(id) || { id };
  if (typeof u.username === 'string' && u.username) known.username = u.username;
  if ('avatar' in u) known.avatar = u.avatar;
  state.users.set(id, known);
  return known;
}
const userOf = (id) => state.users.get(id) || { id, username: `user ${id}` };
// The live set once we have had one (while reconnecting it is the last
// known state, shown faded); before that, what the last search said.
const isOnline = (id) => (state.onlineEver ? state.online.has(id) : Boolean(state.searchOnline.get(id)));
const isMe = (id) => state.me && state.me.id === id;

// Names for ids we have not seen (the online list carries ids only): one
// get-users round trip per batch of up to 100.
const GET_USERS_MAX = 100;
const resolving = new Set();
function resolveUsers(ids) {
  const want = [...new Set(ids)].filter((id) => !state.users.get(id)?.username && !resolving.has(id));
  for (let i = 0; conn.connected && i < want.length; i += GET_USERS_MAX) {
    const batch = want.slice(i, i + GET_USERS_MAX);
    batch.forEach((id) => resolving.add(id));
    conn.request('get-users', { ids: batch }).then((rows) => {
      if (Array.isArray(rows)) rows.forEach((u) => remember(u));
      renderPeople();
    }).catch(() => {}).finally(() => batch.forEach((id) => resolving.delete(id)));
  }
}

// One page of everyone, once: most names come from here without a round
// trip per user.
let directoryLoaded = false;
async function loadDirectory() {
  if (directoryLoaded) return;
  try {
    for (const u of await searchUsers('', { limit: 50 })) remember(u);
    directoryLoaded = true;
    renderAll();
  } catch { /* names are resolved one by one instead */ }
}

// ---- connection events ---------------------------------------------------------

conn.addEventListener('state', (e) => renderConn(e.detail));

conn.addEventListener('connect', async () => {
  state.onlineKnown = false;
  try {
    // The list is applied the moment it arrives: a status event that comes
    // after it (before whoami's answer, say) is newer and must not be
    // overwritten by it.
    const list = conn.request('get-online-users').then((ids) => {
      state.online = new Set(Array.isArray(ids) ? ids : []);
      state.onlineKnown = true;
      state.onlineEver = true;
    });
    const [, me] = await Promise.all([list, whoami()]);
    state.authenticated = Boolean(me);
    if (!me && state.me) setMe(null); // the cookie expired or was cleared elsewhere
    if (me && (!state.me || state.me.id !== me.id)) setMe(me); // e.g. the application's cookie
  } catch { return; } // the connection dropped meanwhile; the next one retries
  renderAll();
  loadDirectory();
  resolveUsers([...state.online]);
  if (state.profile) watchProfile(state.profile.id); // rooms belong to the old connection
  if (state.match.state === 'queued') joinMatch(); // so did the queue place
  syncStored();
});

conn.addEventListener('disconnect', () => {
  state.onlineKnown = false;
  renderAll();
});

// The cookie is refused (expired, account deleted): drop it, come back a guest.
conn.addEventListener('auth-error', async (e) => {
  toast(e.detail.code === 'account-deleted' ? 'This account was deleted.' : 'Your session has ended: please log in again.');
  await endSession();
});

conn.on('user-status-change', ({ userId, status } = {}) => {
  if (!Number.isInteger(userId)) return;
  if (status === 'online') state.online.add(userId);
  else state.online.delete(userId);
  if (status === 'online') resolveUsers([userId]);
  renderPeople();
  renderProfile();
  renderDms();
});

conn.on('livechat', (m = {}) => {
  if (typeof m.message !== 'string') return;
  remember({ id: m.userId, username: m.user });
  addChat([m]);
  renderChat();
});

// A DM to us, or (payload with `to`) one we sent from another tab.
conn.on('direct_message', (m = {}) => {
  if (typeof m.message !== 'string' || !Number.isInteger(m.userId)) return;
  remember({ id: m.userId, username: m.user });
  const mine = isMe(m.userId) && Number.isInteger(m.to);
  const peer = mine ? m.to : m.userId;
  if (mine) resolveUsers([peer]);
  const c = conversation(peer);
  if (addDms(c, [m]) === 0) return; // already here (a history page had it)
  if (!mine) c.unread++;
  if (state.activeDm === null) {
    state.activeDm = peer;
    if (!c.loaded) loadDm(c);
  }
  markShownRead();
  renderDms();
});

// The unread counts: a new connection's first events, and every tab's
// when a read mark moved. The whole list: a conversation not in it has
// nothing unread.
conn.on('dm-unread', (rows) => applyUnread(rows));

conn.on('profile-update', ({ user } = {}) => {
  if (!user || typeof user !== 'object') return;
  const id = Number(user.userID ?? user.userId ?? user.id);
  remember({ ...user, id });
  if (state.profile?.id === id) state.profile.user = { ...state.profile.user, ...user };
  if (isMe(id)) setMe({ ...state.me, ...state.users.get(id) });
  renderAll();
});

conn.on('game-stats-update', ({ stats } = {}) => {
  if (!stats || typeof stats !== 'object') return;
  if (state.profile?.id === Number(stats.userId)) {
    state.profile.stats = { ...state.profile.stats, ...stats };
    renderProfile();
  }
});

conn.on('match-found', ({ matchId, opponent } = {}) => {
  if (opponent) remember({ id: opponent.userId, username: opponent.username });
  state.match = { state: 'matched', matchId: String(matchId ?? ''), opponent: opponent || {} };
  renderMatch();
});

conn.on('account-deleted', () => {
  toast('This account was deleted.');
  endSession();
});

conn.on('token-expired', () => {
  toast('Your session has expired: please log in again.');
  endSession();
});

conn.on('error', (e = {}) => toast(e.message || e.code || 'Something went wrong'));

// ---- login / logout ---------------------------------------------------------------

function setMe(me) {
  const changed = !me || (state.me && state.me.id !== me.id);
  state.me = me;
  saveHint(me && me.id ? me : null);
  if (!me) state.authenticated = false;
  if (changed) { // another user's conversations are not ours
    state.dms.clear();
    state.activeDm = null;
    state.match = { state: 'idle' };
  }
  renderAll();
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('login-name');
  const name = input.value.trim();
  const note = $('login-note');
  if (!name) { note.textContent = 'Type a username, e.g. alice.'; input.focus(); return; }
  note.textContent = 'Logging in…';
  try {
    const me = await devLogin(name);
    remember(me);
    setMe({ id: Number(me.id), username: String(me.username), avatar: state.users.get(Number(me.id))?.avatar });
    note.textContent = '';
    input.value = '';
    conn.restart(); // the new handshake carries the cookie
    $('logout').focus();
  } catch (err) {
    note.textContent = err.code === 'unknown-user' ? `No user called “${name}”.`
      : err.status === 404 ? 'Demo login is off on this server: sign in through your application.'
      : `Login failed: ${err.message}`;
  }
});

// Logging out: say goodbye on the socket (close 1000: others see us go
// offline now), drop the cookie, come back as a guest.
async function endSession() {
  conn.stop();
  try { await apiLogout(); } catch { /* the gateway is down: the cookie may outlive us */ }
  setMe(null);
  conn.start();
}

$('logout').addEventListener('click', async () => {
  await endSession();
  $('login-name').focus();
});

// ---- search ------------------------------------------------------------------------

let searchSeq = 0;
let searchTimer = null;
$('search-form').addEventListener('submit', (e) => { e.preventDefault(); runSearch(); });
$('search-input').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, 200);
});

async function runSearch() {
  const q = $('search-input').value.trim();
  const seq = ++searchSeq;
  if (!q) {
    state.searchResults = null;
    renderPeople();
    return;
  }
  try {
    const rows = await searchUsers(q, { limit: 20 });
    if (seq !== searchSeq) return; // a newer search is on its way
    state.searchResults = rows.map((u) => {
      remember(u);
      state.searchOnline.set(u.id, Boolean(u.online));
      return u.id;
    });
  } catch (err) {
    if (seq !== searchSeq) return;
    state.searchResults = [];
    toast(`Search failed: ${err.message}`);
  }
  renderPeople();
}

// ---- profile panel ---------------------------------------------------------------------

function openProfile(id, opener) {
  if (state.profile && state.profile.id !== id) conn.send('unwatch-profile', { userId: state.profile.id });
  profileOpener = opener || document.activeElement;
  state.profile = { id, user: { ...userOf(id) }, stats: null, loading: true };
  renderProfile();
  $('profile').hidden = false;
  $('profile-close').focus();
  watchProfile(id);
}

async function watchProfile(id) {
  try {
    const r = await conn.request('watch-profile', { userId: id });
    if (state.profile?.id !== id) { conn.send('unwatch-profile', { userId: id }); return; }
    if (r && r.ok === false) {
      state.profile.error = r.error === 'unknown-user' ? 'This user no longer exists.' : (r.message || r.error);
    } else if (r) {
      remember({ ...r.user, id });
      state.profile.user = { ...state.profile.user, ...r.user };
      state.profile.stats = r.stats || null;
      state.profile.error = null;
    }
  } catch {
    if (state.profile?.id === id) state.profile.error = 'Offline: the profile updates when the connection is back.';
  }
  if (state.profile?.id === id) {
    state.profile.loading = false;
    renderProfile();
  }
}

function closeProfile() {
  if (!state.profile) return;
  conn.send('unwatch-profile', { userId: state.profile.id });
  state.profile = null;
  $('profile').hidden = true;
  if (profileOpener && document.contains(profileOpener)) profileOpener.focus();
  profileOpener = null;
}

$('profile-close').addEventListener('click', closeProfile);
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && state.profile) closeProfile();
});
$('profile-message').addEventListener('click', () => {
  if (!state.profile) return;
  const id = state.profile.id;
  conversation(id);
  openDm(id);
  closeProfile();
  $('dm-input').focus();
});

// ---- chat --------------------------------------------------------------------------------

const CHAT_ERRORS = {
  'auth-required': 'Log in to chat.',
  'rate-limited': 'Slow down: too many messages in a row.',
  'message-too-long': 'That message is too long.',
  'unknown-user': 'That user does not exist.',
};
const errorText = (r) => CHAT_ERRORS[r?.error] || r?.message || r?.error || 'Not sent.';

$('chat-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('chat-input');
  const message = input.value;
  if (!message.trim()) return;
  const note = $('chat-note');
  try {
    const r = await conn.request('livechat', { message });
    if (r && r.ok === false) { note.textContent = errorText(r); return; }
    note.textContent = '';
    input.value = ''; // our own message comes back with everyone else's
  } catch {
    note.textContent = 'Not sent: you are offline.';
  }
});

// ---- stored messages: the chat history, DM history, unread counts ---------------------

const at = (ts) => new Date(Number.isFinite(ts) ? ts : Date.now());

// livechat payloads or get-chat-history rows, into the chat log.
function addChat(rows) {
  const msgs = rows.filter((m) => typeof m?.message === 'string').map((m) => ({
    id: m.id, user: String(m.user ?? ''), userId: m.userId, text: m.message, at: at(m.ts),
  }));
  const r = mergeById(state.chat, msgs, CHAT_KEEP);
  state.chat = r.list;
  return r.added;
}

// The recent live chat: on load, and after a reconnect whatever was said
// meanwhile (the broker keeps the last 100; live messages merge by id).
async function loadChatHistory() {
  const rows = await conn.request('get-chat-history', {});
  if (!Array.isArray(rows)) return;
  rows.forEach((m) => remember({ id: m.userId, username: m.user }));
  addChat(rows);
  renderChat();
}

function conversation(id) {
  if (!state.dms.has(id)) {
    state.dms.set(id, {
      id,
      messages: [], // [{id, from, mine, text, at}], id order, each id once
      unread: 0, // the broker's count (dm-unread), plus live DMs since
      loaded: false, // the newest page has been fetched
      loading: false,
      hasMore: false, // older pages exist ("Earlier messages")
      readSent: 0, // the highest upTo sent with dm-read on this connection
      error: '',
    });
  }
  return state.dms.get(id);
}

// direct_message payloads ({userId, to?}) or history rows ({from, to}).
function addDms(c, rows) {
  const msgs = rows.filter((m) => typeof m?.message === 'string').map((m) => {
    const from = Number(m.from ?? m.userId);
    return { id: m.id, from, mine: isMe(from), text: m.message, at: at(m.ts) };
  });
  const r = mergeById(c.messages, msgs);
  c.messages = r.list;
  return r.added;
}

async function historyPage(c, before) {
  const rows = await conn.request('get-dm-history', before ? { with: c.id, before, limit: DM_PAGE } : { with: c.id, limit: DM_PAGE });
  if (!Array.isArray(rows)) throw new Error(errorText(rows));
  return rows;
}

// The newest page of a conversation, when it is first shown.
async function loadDm(c) {
  if (c.loading || !state.authenticated || !conn.connected) return;
  c.loading = true;
  c.error = '';
  try {
    const rows = await historyPage(c, 0);
    if (state.dms.get(c.id) !== c) return; // logged out meanwhile
    addDms(c, rows);
    c.hasMore = rows.length >= DM_PAGE;
    c.loaded = true;
  } catch (err) {
    c.error = `The conversation could not be loaded: ${err.message}`;
  } finally {
    c.loading = false;
  }
  markShownRead();
  renderDms();
}

// "Earlier messages": the page before the oldest one shown; the view stays
// where the reader is.
let keepDmScroll = false;
async function loadOlderDms(c) {
  if (c.loading || !conn.connected) return;
  c.loading = true;
  renderDms();
  try {
    const rows = await historyPage(c, oldestId(c.messages));
    addDms(c, rows);
    c.hasMore = rows.length >= DM_PAGE;
  } catch (err) {
    c.error = `Earlier messages could not be loaded: ${err.message}`;
  } finally {
    c.loading = false;
  }
  keepDmScroll = true;
  renderDms();
}

// After a reconnect: pages from the newest back to the newest id held, so
// nothing said while we were away is missing.
async function catchUpDm(c) {
  const since = newestId(c.messages);
  let before = 0;
  for (let i = 0; i < CATCH_UP_PAGES; i++) {
    const rows = await historyPage(c, before);
    if (state.dms.get(c.id) !== c) return;
    addDms(c, rows);
    before = nextCatchUpPage(rows, DM_PAGE, since);
    if (!before) break;
  }
}

function applyUnread(rows) {
  const list = Array.isArray(rows) ? rows : rows?.conversations;
  if (!Array.isArray(list)) return; // only a user's connections get these
  const counts = new Map();
  for (const r of list) {
    const u = remember({ id: r?.userId, username: r?.username });
    if (u && Number.isInteger(r.count)) counts.set(u.id, r.count);
  }
  for (const id of counts.keys()) conversation(id);
  for (const c of state.dms.values()) c.unread = counts.get(c.id) || 0;
  markShownRead();
  renderDms();
}

// The conversation on screen (the page visible, its messages loaded) is
// read: dm-read up to its newest message; every tab of ours then gets the
// new counts (dm-unread) and drops its badge.
function markShownRead() {
  const c = state.activeDm !== null ? state.dms.get(state.activeDm) : null;
  if (!c || !c.loaded || !c.unread || document.hidden || !state.authenticated || !conn.connected) return;
  c.unread = 0;
  const upTo = newestId(c.messages);
  if (upTo <= c.readSent) return; // already said; the counts are on their way
  c.readSent = upTo;
  conn.request('dm-read', { with: c.id, upTo }).then((r) => {
    if (r && r.ok === false) c.readSent = 0;
  }).catch(() => { c.readSent = 0; });
}

document.addEventListener('visibilitychange', () => {
  markShownRead();
  renderDms();
});

// Each (re)connection of a user: the chat history, the unread counts, and
// for every conversation the page holds, what arrived while it was away.
async function syncStored() {
  if (!state.authenticated) return;
  for (const c of state.dms.values()) c.readSent = 0; // marks sent on the old connection may be lost
  const jobs = [
    loadChatHistory(),
    conn.request('get-unread').then(applyUnread),
    ...[...state.dms.values()].map((c) => (c.loaded ? catchUpDm(c) : c.id === state.activeDm ? loadDm(c) : null)),
  ];
  await Promise.allSettled(jobs);
  markShownRead();
  renderAll();
}

// ---- direct messages -------------------------------------------------------------------

function openDm(id) {
  const c = conversation(id);
  if (state.activeDm !== id) keepDmScroll = false;
  state.activeDm = id;
  $('dm-note').textContent = '';
  if (!c.loaded) loadDm(c);
  markShownRead();
  renderDms();
}

$('dm-older').addEventListener('click', () => {
  const c = state.activeDm !== null ? state.dms.get(state.activeDm) : null;
  if (c) loadOlderDms(c);
});

$('dm-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const id = state.activeDm;
  const input = $('dm-input');
  const message = input.value;
  if (id === null || !message.trim()) return;
  const note = $('dm-note');
  try {
    const r = await conn.request('direct_message', { to: id, message });
    if (r && r.ok === false) { note.textContent = errorText(r); return; }
    // Our other tabs get a copy; this one shows it from the ack.
    addDms(conversation(id), [{ id: r?.id, ts: r?.ts, from: state.me?.id, message }]);
    input.value = '';
    note.textContent = isOnline(id) ? '' : `${userOf(id).username} is offline: the message is kept for when they come back.`;
    renderDms();
  } catch {
    note.textContent = 'Not sent: you are offline.';
  }
});

// ---- matchmaking ---------------------------------------------------------------------------

async function joinMatch() {
  state.match = { state: 'queued', since: Date.now() };
  renderMatch();
  try {
    const r = await conn.request('join-matchmaking');
    if (r && r.ok === false) { state.match = { state: 'idle', error: errorText(r) }; renderMatch(); }
    // "matched": match-found arrives as well and fills in the opponent.
  } catch {
    /* offline: re-joined on reconnect */
  }
}

async function leaveMatch() {
  state.match = { state: 'idle' };
  renderMatch();
  try { await conn.request('leave-matchmaking'); } catch { /* the queue forgets us on disconnect */ }
}

$('match-button').addEventListener('click', () => {
  if (state.match.state === 'queued') leaveMatch();
  else joinMatch();
});

// ---- rendering ------------------------------------------------------------------------------

function renderAll() {
  renderAccount();
  renderPeople();
  renderChat();
  renderDms();
  renderMatch();
  renderProfile();
}

function renderConn({ state: s, url, retryIn, error }) {
  const el = $('conn');
  el.dataset.state = s;
  el.dataset.gateway = url;
  const text = {
    idle: 'Starting…',
    connecting: 'Connecting…',
    online: state.authenticated ? 'Online' : 'Online as a guest',
    reconnecting: `Reconnecting in ${retryIn} s`,
    stopped: 'Disconnected',
  }[s] || s;
  $('conn-text').textContent = text;
  el.title = error && s !== 'online' ? `${url}: ${error}` : url;
  $('conn-retry').hidden = s !== 'reconnecting';
  $('gateway-info').textContent = s === 'online' ? `Connected to ${url}` : '';
  document.body.classList.toggle('is-offline', s !== 'online');
}

function renderAccount() {
  const me = state.me;
  $('login-form').hidden = Boolean(me);
  $('me').hidden = !me;
  if (me) {
    $('me-name').textContent = me.username || 'your account';
    replaceChildren($('me-avatar'), avatar(me.username ? { ...me, ...state.users.get(me.id) } : { username: '?' }, 'sm'));
  }
  $('guest-intro').hidden = Boolean(me);
  // Online-as-guest vs online: refresh the badge text.
  if (conn.state === 'online') $('conn-text').textContent = state.authenticated ? 'Online' : 'Online as a guest';
}

function userRow(id, { testid }) {
  const u = userOf(id);
  const online = isOnline(id);
  return h('li', { dataset: { testid, userId: String(id), username: u.username || '', online: String(online) } },
    h('button', {
      type: 'button',
      class: 'user-row',
      'aria-label': `${u.username}, ${online ? 'online' : 'offline'}${isMe(id) ? ' (you)' : ''}. Open profile`,
      on: { click: (e) => openProfile(id, e.currentTarget) },
    },
    h('span', { class: 'avatar-wrap' }, avatar(u, 'md'), h('span', { class: `presence-dot ${online ? 'on' : 'off'}`, 'aria-hidden': 'true' })),
    h('span', { class: 'user-name', text: u.username }),
    isMe(id) ? h('span', { class: 'badge', text: 'you' }) : null,
    h('span', { class: `status-text ${online ? 'on' : 'off'}`, dataset: { testid: 'status' }, text: online ? 'online' : 'offline' })));
}

function byName(a, b) {
  return (userOf(a).username || '').localeCompare(userOf(b).username || '');
}

function renderPeople() {
  const ids = [...state.online].sort((a, b) => (isMe(b) - isMe(a)) || byName(a, b));
  replaceChildren($('online-list'), ids.map((id) => userRow(id, { testid: 'online-user' })));
  $('online-count').textContent = String(ids.length);
  $('online-empty').hidden = ids.length > 0;
  $('online-empty').textContent = state.onlineKnown || conn.state !== 'online' ? 'Nobody is online right now.' : 'Loading…';
  $('online-list').setAttribute('aria-busy', String(!state.onlineKnown));
  const box = $('search-box');
  box.hidden = state.searchResults === null;
  if (state.searchResults) {
    const rows = state.searchResults.map((id) => userRow(id, { testid: 'search-result' }));
    replaceChildren($('search-results'), rows.length ? rows : h('li', { class: 'empty', text: 'No one by that name.' }));
  }
}

function messageItem(m, { testid, showAuthor }) {
  const author = m.mine ? state.me : userOf(m.userId);
  return h('li', { class: `message${m.mine ? ' mine' : ''}`, dataset: { testid, author: m.user ?? author?.username ?? '' } },
    showAuthor ? avatar({ username: m.user, avatar: state.users.get(m.userId)?.avatar }, 'sm') : null,
    h('div', { class: 'bubble' },
      h('div', { class: 'meta' },
        showAuthor ? h('span', { class: 'author', text: m.user }) : null,
        h('time', { datetime: m.at.toISOString(), text: clock(m.at) })),
      h('p', { class: 'text', dataset: { testid: 'message-text' }, text: m.text })));
}

function renderChat() {
  const log = $('chat-log');
  const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 40;
  replaceChildren(log, state.chat.map((m) => messageItem(m, { testid: 'chat-message', showAuthor: true })));
  if (stick) log.scrollTop = log.scrollHeight;
  $('chat-empty').hidden = state.chat.length > 0;
  $('chat-empty').textContent = state.authenticated ? 'No messages yet. Say hello!' : 'Log in to join the live chat.';
  const can = state.authenticated && conn.connected;
  $('chat-input').disabled = !can;
  $('chat-send').disabled = !can;
  $('chat-input').placeholder = state.authenticated ? 'Message everyone' : 'Log in to chat';
}

let shownDm = null; // the conversation the log showed at the last render
function renderDms() {
  const ids = [...state.dms.keys()];
  $('dm-empty').hidden = ids.length > 0;
  replaceChildren($('dm-conversations'), ids.map((id) => {
    const c = state.dms.get(id);
    const u = userOf(id);
    const online = isOnline(id);
    return h('li', { dataset: { testid: 'dm-conversation', username: u.username || '', unread: String(c.unread) } },
      h('button', {
        type: 'button',
        class: `conversation${state.activeDm === id ? ' active' : ''}`,
        'aria-current': state.activeDm === id ? 'true' : null,
        on: { click: () => openDm(id) },
      },
      h('span', { class: 'avatar-wrap' }, avatar(u, 'sm'), h('span', { class: `presence-dot ${online ? 'on' : 'off'}`, 'aria-hidden': 'true' })),
      h('span', { class: 'user-name', text: u.username }),
      c.unread ? h('span', { class: 'unread', dataset: { testid: 'dm-unread' }, 'aria-label': `${c.unread} unread`, text: String(c.unread) }) : null));
  }));
  const active = state.activeDm !== null ? state.dms.get(state.activeDm) : null;
  $('dm-thread').hidden = !active;
  if (!active) { shownDm = null; return; }
  const u = userOf(active.id);
  $('dm-thread').dataset.peer = u.username || '';
  $('dm-peer').textContent = `With ${u.username}${isOnline(active.id) ? '' : ' (offline)'}`;
  $('dm-input-label').textContent = `Message to ${u.username}`;
  $('dm-input').placeholder = `Message ${u.username}`;
  const older = $('dm-older');
  older.hidden = !active.hasMore && !(active.loading && active.loaded);
  older.disabled = active.loading || !conn.connected;
  older.textContent = active.loading ? 'Loading…' : 'Earlier messages';
  const log = $('dm-log');
  log.setAttribute('aria-busy', String(active.loading));
  // Where the reader is: at the bottom it follows new messages; after
  // "Earlier messages" the same message stays in view.
  const fromBottom = log.scrollHeight - log.scrollTop;
  const atBottom = fromBottom - log.clientHeight < 40;
  replaceChildren(log, active.messages.map((m) => messageItem({ ...m, user: m.mine ? state.me?.username : u.username, userId: m.mine ? state.me?.id : active.id },
    { testid: 'dm-message', showAuthor: false })));
  if (keepDmScroll && shownDm === active.id) log.scrollTop = log.scrollHeight - fromBottom;
  else if (atBottom || shownDm !== active.id) log.scrollTop = log.scrollHeight;
  keepDmScroll = false;
  shownDm = active.id;
  const status = active.error || (!active.loaded && active.loading ? 'Loading the conversation…' : '');
  $('dm-status').textContent = status;
  $('dm-status').hidden = !status;
  const can = state.authenticated && conn.connected;
  $('dm-input').disabled = !can;
  $('dm-form').querySelector('button').disabled = !can;
}

function renderMatch() {
  const m = state.match;
  const el = $('match-status');
  const btn = $('match-button');
  el.dataset.state = m.state;
  if (!state.authenticated) {
    el.textContent = 'Log in to play.';
    btn.textContent = 'Find a match';
    btn.disabled = true;
    return;
  }
  btn.disabled = !conn.connected;
  if (m.state === 'queued') {
    el.textContent = 'Looking for an opponent…';
    btn.textContent = 'Cancel';
  } else if (m.state === 'matched') {
    replaceChildren(el, 'Match found! You play ', h('strong', { dataset: { testid: 'match-opponent' }, text: m.opponent.username || `user ${m.opponent.userId}` }), '.');
    btn.textContent = 'Find another match';
  } else {
    el.textContent = m.error || 'Play someone who is online right now: first come, first paired.';
    btn.textContent = 'Find a match';
  }
}

function renderProfile() {
  const p = state.profile;
  if (!p) return;
  const u = { ...userOf(p.id), ...p.user };
  const online = isOnline(p.id);
  $('profile').dataset.userId = String(p.id);
  replaceChildren($('profile-avatar'), avatar(u, 'lg'));
  $('profile-name').textContent = u.username || `user ${p.id}`;
  const status = $('profile-status');
  status.dataset.online = String(online);
  status.className = `presence ${online ? 'on' : 'off'}`;
  status.textContent = online ? 'Online now' : 'Offline';
  const s = p.stats;
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? String(v) : '–');
  $('profile-wins').textContent = p.loading ? '…' : num(s?.wins);
  $('profile-losses').textContent = p.loading ? '…' : num(s?.losses);
  const played = (Number(s?.wins) || 0) + (Number(s?.losses) || 0);
  $('profile-ratio').textContent = p.loading ? '…'
    : played > 0 && typeof s?.ratio === 'number' && Number.isFinite(s.ratio) ? `${Math.round(s.ratio * 1000) / 10}%` : '–';
  const friends = Array.isArray(u.friends) ? u.friends : null;
  $('profile-friends-box').hidden = !friends;
  if (friends) {
    replaceChildren($('profile-friends'), friends.length
      ? friends.map((f) => h('li', { class: 'chip', text: f?.username ?? '' }))
      : h('li', { class: 'muted', text: 'No friends yet.' }));
  }
  $('profile-note').textContent = p.error || '';
  const msg = $('profile-message');
  msg.hidden = !state.authenticated || isMe(p.id);
}

let toastTimer = null;
function toast(text) {
  let el = $('toast');
  if (!el) {
    el = h('div', { id: 'toast', class: 'toast', role: 'alert', dataset: { testid: 'toast' } });
    document.body.append(el);
  }
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 6000);
}

$('conn-retry').addEventListener('click', () => conn.retryNow());
window.addEventListener('online', () => conn.retryNow());

// ---- start ----------------------------------------------------------------------------------

state.me = loadHint();
renderAll();
conn.start();
