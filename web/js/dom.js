// dom.js - the only way this page builds markup. Everything a user or a
// backend can influence (usernames, chat text, avatar URLs, error messages)
// reaches the DOM as a text node or as a checked attribute, never through
// innerHTML, so a chat message like <img src=x onerror=...> stays text.

/**
 * h(tag, props, ...children) creates an element.
 * props: plain attributes (set with setAttribute; "on*" names are refused so
 * a caller cannot turn data into a handler by mistake), plus:
 *   class   - class names
 *   text    - textContent
 *   dataset - object of data-* values
 *   on      - object of event listeners
 *   hidden, disabled - booleans
 * children: nodes or strings (strings become text nodes); null/false skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === 'hidden' || key === 'disabled') el[key] = Boolean(value);
    else if (/^on/i.test(key)) throw new Error(`h(): refusing event attribute ${key}`);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces every child of el with children. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * Returns the avatar URL when it is safe to put in <img src>, else null.
 * Accepted: a same-origin path ("/avatars/a.svg", not "//host/..." nor
 * "/\host", which browsers treat as another host) or an absolute http(s)
 * URL. Everything else (javascript:, data:, relative paths, junk) is refused.
 */
export function safeAvatarUrl(url) {
  if (typeof url !== 'string' || url.length === 0 || url.length > 2048) return null;
  if (/[\u0000-\u001f\u007f\s]/.test(url)) return null;
  if (url[0] === '/') {
    if (url[1] === '/' || url[1] === '\\') return null;
    return url;
  }
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

// Eight hues for generated avatars, picked by a hash of the name so a user
// keeps the same colour everywhere.
const HUES = 8;
function hueOf(name) {
  let x = 0;
  for (const ch of String(name)) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % HUES;
}

function fallbackAvatar(name, size) {
  const initial = (String(name || '?').match(/[\p{L}\p{N}]/u) || ['?'])[0].toUpperCase();
  return h('span', {
    class: `avatar avatar-${size} avatar-fallback hue-${hueOf(name || '?')}`,
    'aria-hidden': 'true',
    dataset: { testid: 'avatar-fallback' },
    text: initial,
  });
}

/**
 * An avatar for user {username, avatar}: the image when its URL is safe,
 * else (or when it fails to load) the initial on a coloured circle.
 * size: 'sm' | 'md' | 'lg'. Decorative: the username is always shown beside.
 */
export function avatar(user, size = 'md') {
  const name = user?.username || '';
  const src = safeAvatarUrl(user?.avatar);
  if (!src) return fallbackAvatar(name, size);
  const img = h('img', { class: `avatar avatar-${size}`, src, alt: '', decoding: 'async', referrerpolicy: 'no-referrer' });
  img.addEventListener('error', () => img.replaceWith(fallbackAvatar(name, size)), { once: true });
  return img;
}

/** "14:05" for a Date. */
export function clock(date) {
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
