/*
 * utf8.c - incremental UTF-8 validator, see utf8.h.
 *
 * Why our own: text frames arrive in fragments cut anywhere, so the check
 * must carry a few bits of state from one call to the next, and it must fail
 * on the first byte that no valid text could continue with (RFC 6455 §8.1
 * asks endpoints to fail "as soon as" invalid data is seen). A small explicit
 * state machine does both and can be read against RFC 3629 §4 line by line.
 *
 * State word. UTF8_ACCEPT (0) and UTF8_REJECT (1) are fixed by utf8.h. Inside
 * a code point the state is (remaining << 4) | range: remaining (1..3) is the
 * number of continuation bytes still due, range names the bounds of the NEXT
 * byte. Only the first continuation after E0, ED, F0 and F4 is narrower than
 * 80..BF, and that narrowing is exactly what rejects overlong 3- and 4-byte
 * forms (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points above
 * U+10FFFF (F4 90..BF). Overlong 2-byte forms (C0, C1) and F5..FF are
 * rejected at the lead byte.
 *
 * Cost: text is mostly ASCII (JSON), so between code points we skip eight
 * ASCII bytes per step; the state machine runs only on non-ASCII bytes.
 */
#include "utf8.h"

#include <string.h>

/* Bounds of the next byte (RFC 3629 §4, the UTF8-2/3/4 productions). */
enum utf8_range {
    UTF8_R_TAIL, /* any continuation byte: 80..BF */
    UTF8_R_E0,   /* after E0: A0..BF, else the code point fits in 2 bytes (overlong) */
    UTF8_R_ED,   /* after ED: 80..9F, else it is a UTF-16 surrogate D800..DFFF */
    UTF8_R_F0,   /* after F0: 90..BF, else the code point fits in 3 bytes (overlong) */
    UTF8_R_F4,   /* after F4: 80..8F, else the code point is above U+10FFFF */
    UTF8_R_COUNT
};

static const uint8_t utf8_lo[UTF8_R_COUNT] = {0x80, 0xA0, 0x80, 0x90, 0x80};
static const uint8_t utf8_hi[UTF8_R_COUNT] = {0xBF, 0xBF, 0x9F, 0xBF, 0x8F};

#define UTF8_STATE(remaining, range) (((uint32_t)(remaining) << 4) | (uint32_t)(range))
#define UTF8_REMAINING(state) ((state) >> 4)
#define UTF8_RANGE(state) ((state)&0xFu)

/* A state word we could have produced; anything else is treated as REJECT so
 * that a corrupted state can never turn invalid text into valid text. */
static int utf8_state_ok(uint32_t state)
{
    if (state == UTF8_ACCEPT || state == UTF8_REJECT)
        return 1;
    return UTF8_REMAINING(state) >= 1 && UTF8_REMAINING(state) <= 3 &&
           UTF8_RANGE(state) < UTF8_R_COUNT;
}

/* State after a lead byte b >= 0x80 seen between code points. */
static uint32_t utf8_lead(uint8_t b)
{
    if (b < 0xC2) /* 80..BF: continuation with no lead; C0, C1: overlong ASCII */
        return UTF8_REJECT;
    if (b < 0xE0)
        return UTF8_STATE(1, UTF8_R_TAIL);
    if (b == 0xE0)
        return UTF8_STATE(2, UTF8_R_E0);
    if (b == 0xED)
        return UTF8_STATE(2, UTF8_R_ED);
    if (b < 0xF0)
        return UTF8_STATE(2, UTF8_R_TAIL);
    if (b == 0xF0)
        return UTF8_STATE(3, UTF8_R_F0);
    if (b < 0xF4)
        return UTF8_STATE(3, UTF8_R_TAIL);
    if (b == 0xF4)
        return UTF8_STATE(3, UTF8_R_F4);
    return UTF8_REJECT; /* F5..FF would encode above U+10FFFF (or are not UTF-8 at all) */
}

uint32_t utf8_feed(uint32_t state, const uint8_t *s, size_t len)
{
    size_t i = 0;

    if (!utf8_state_ok(state))
        return UTF8_REJECT;
    while (state != UTF8_REJECT && i < len) {
        if (state == UTF8_ACCEPT) {
            /* ASCII fast path; memcpy keeps the unaligned load well-defined. */
            while (len - i >= 8) {
                uint64_t w;
                memcpy(&w, s + i, sizeof(w));
                if (w & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            if (i == len)
                break;
            uint8_t b = s[i++];
            if (b >= 0x80)
                state = utf8_lead(b);
            continue;
        }
        uint8_t b = s[i++];
        uint32_t range = UTF8_RANGE(state);
        if (b < utf8_lo[range] || b > utf8_hi[range]) {
            state = UTF8_REJECT;
        } else {
            uint32_t remaining = UTF8_REMAINING(state) - 1;
            state = remaining ? UTF8_STATE(remaining, UTF8_R_TAIL) : UTF8_ACCEPT;
        }
    }
    return state;
}

int utf8_valid(const uint8_t *s, size_t len)
{
    return utf8_feed(UTF8_ACCEPT, s, len) == UTF8_ACCEPT;
}
