// api.js - Herald's HTTP routes as the page uses them. All go to the page's
// own origin (the load balancer, or the gateway that served the page):
// the cookie is HttpOnly, so the page never holds a token, and the gateways
// send no CORS headers for another origin.

/** An HTTP failure with Herald's stable error word (e.g. "unknown-user"). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || '';
  }
}

async function call(path, { method = 'GET', body, signal } = {}) {
  const res = await fetch(path, {
    method,
    signal,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch { /* empty or not JSON */ }
  if (!res.ok) throw new ApiError(res.status, data?.error, data?.message);
  return data;
}

/** POST /auth/dev-login: sets the accessToken cookie; resolves {id, username}. */
export function devLogin(username) {
  return call('/auth/dev-login', { method: 'POST', body: { username } });
}

/** POST /auth/logout: clears the cookie. */
export function logout() {
  return call('/auth/logout', { method: 'POST', body: {} });
}

/** GET /users/search: [{id, username, avatar, online}], prefix match. */
export function searchUsers(q, { limit = 20, offset = 0, signal } = {}) {
  const params = new URLSearchParams({ q, limit: String(limit), offset: String(offset) });
  return call(`/users/search?${params}`, { signal });
}
