/*
 * utf8.h - incremental UTF-8 validation (RFC 3629).
 *
 * WebSocket text messages must be valid UTF-8 (RFC 6455 §5.6, §8.1) and may
 * arrive in fragments split anywhere, even inside a code point, so the
 * validator carries its state across calls. Rejects overlong forms,
 * surrogates (U+D800..U+DFFF) and code points above U+10FFFF as soon as the
 * offending byte is seen, so a connection can fail fast.
 */
#ifndef HERALD_UTF8_H
#define HERALD_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0u /* between code points: the text so far is complete and valid */
#define UTF8_REJECT 1u /* invalid; sticky: feeding more never leaves this state */

/*
 * Feeds len bytes. state is UTF8_ACCEPT at the start of a message. Returns
 * the new state: UTF8_ACCEPT, UTF8_REJECT, or another value meaning "valid so
 * far, inside a code point" (so a message that ends in that state is invalid).
 */
uint32_t utf8_feed(uint32_t state, const uint8_t *s, size_t len);

/* Convenience: true when s[0..len) is complete, valid UTF-8. */
int utf8_valid(const uint8_t *s, size_t len);

#endif
