// history.js - message lists as the page keeps them. A message can reach
// the page twice: live (livechat, direct_message) and again in a history
// page (get-chat-history, get-dm-history) asked for on load or after a
// reconnect. Herald gives every stored message an id that only grows
// (PROTOCOL.md §4a), so a list is kept in id order with each id once, and
// "what did we miss" is "everything above the newest id we hold".
// No DOM here: tests/e2e/web-units.test.mjs runs these in Node.

/**
 * Merges incoming messages into list (neither is modified): the result is
 * in ascending id order, each id once (the copy already held wins), and at
 * most `keep` long (the oldest are dropped). A message without an integer
 * id (an older server) cannot be matched: it is kept, after those with one.
 * Returns { list, added }: added counts the incoming messages that were new.
 */
export function mergeById(list, incoming, keep = Infinity) {
  const seen = new Set();
  for (const m of list) if (Number.isInteger(m.id)) seen.add(m.id);
  let added = 0;
  const out = list.slice();
  for (const m of incoming) {
    if (Number.isInteger(m.id)) {
      if (seen.has(m.id)) continue;
      seen.add(m.id);
    }
    out.push(m);
    added++;
  }
  const key = (m) => (Number.isInteger(m.id) ? m.id : Infinity);
  out.sort((a, b) => key(a) - key(b)); // stable: id-less ones keep their order
  return { list: out.length > keep ? out.slice(out.length - keep) : out, added };
}

/** The newest (largest) id in list, 0 when it has none. */
export function newestId(list) {
  let n = 0;
  for (const m of list) if (Number.isInteger(m.id) && m.id > n) n = m.id;
  return n;
}

/** The oldest (smallest) id in list, 0 when it has none. */
export function oldestId(list) {
  let n = 0;
  for (const m of list) if (Number.isInteger(m.id) && (n === 0 || m.id < n)) n = m.id;
  return n;
}

/**
 * Catching up after a gap: pages come newest first (each page itself
 * newest last). Given a page just fetched with `limit`, and the newest id
 * held before the gap (`since`), returns the `before` of the next, older
 * page to ask for, or 0 when this page reaches back to what we hold (or
 * there is nothing older). A conversation we hold nothing of (since 0)
 * needs one page only: older ones are for "Earlier messages".
 */
export function nextCatchUpPage(page, limit, since) {
  if (since <= 0 || page.length < limit) return 0;
  const oldest = oldestId(page);
  return oldest > since ? oldest : 0;
}
