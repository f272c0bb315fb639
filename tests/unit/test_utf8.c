/*
 * test_utf8.c - the incremental UTF-8 validator (common/utf8.c).
 *
 * Three layers: a table of named sequences (each also fed at every split
 * point and byte by byte, checking the state turns to REJECT on exactly the
 * first bad byte); an exhaustive comparison against a slow reference
 * decoder for every sequence of up to three bytes and the 4-byte sequences
 * that matter; and a round trip over every Unicode scalar value.
 */
#include "check.h"
#include "utf8.h"
#include "../utf8_ref.h"

#include <stdbool.h>
#include <stdlib.h>

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

struct utf8_vec {
    const char *name;
    const uint8_t *s;
    size_t len;
    bool valid;
    /* Index of the first byte no valid text could continue with; -1 when
     * there is none (valid, or only truncated at the end). */
    int bad_at;
};

static const struct utf8_vec vecs[] = {
    {"empty", S(""), true, -1},
    {"ascii", S("Hello, world"), true, -1},
    {"ascii long (fast path)", S("0123456789abcdef0123456789abcdef!"), true, -1},
    {"nul is valid", S("a\x00z"), true, -1},
    {"U+007F", S("\x7F"), true, -1},
    {"U+0080 smallest 2-byte", S("\xC2\x80"), true, -1},
    {"U+07FF largest 2-byte", S("\xDF\xBF"), true, -1},
    {"U+0800 smallest 3-byte", S("\xE0\xA0\x80"), true, -1},
    {"euro sign U+20AC", S("\xE2\x82\xAC"), true, -1},
    {"U+D7FF below surrogates", S("\xED\x9F\xBF"), true, -1},
    {"U+E000 above surrogates", S("\xEE\x80\x80"), true, -1},
    {"U+FFFD", S("\xEF\xBF\xBD"), true, -1},
    {"U+FFFF", S("\xEF\xBF\xBF"), true, -1},
    {"U+10000 smallest 4-byte", S("\xF0\x90\x80\x80"), true, -1},
    {"U+1F600 emoji", S("\xF0\x9F\x98\x80"), true, -1},
    {"U+10FFFF largest", S("\xF4\x8F\xBF\xBF"), true, -1},
    {"mixed", S("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80!"), true, -1},
    {"ascii then euro past 8 bytes", S("abcdefghij\xE2\x82\xAC"), true, -1},
    {"Markus Kuhn kosme", S("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"), true, -1},

    {"overlong C0 80", S("\xC0\x80"), false, 0},
    {"overlong C1 BF", S("\xC1\xBF"), false, 0},
    {"overlong E0 80 80", S("\xE0\x80\x80"), false, 1},
    {"overlong E0 9F BF", S("\xE0\x9F\xBF"), false, 1},
    {"overlong F0 80 80 80", S("\xF0\x80\x80\x80"), false, 1},
    {"overlong F0 8F BF BF", S("\xF0\x8F\xBF\xBF"), false, 1},
    {"surrogate ED A0 80 (U+D800)", S("\xED\xA0\x80"), false, 1},
    {"surrogate ED BF BF (U+DFFF)", S("\xED\xBF\xBF"), false, 1},
    {"surrogate pair as CESU-8", S("\xED\xA0\xBD\xED\xB8\x80"), false, 1},
    {"above U+10FFFF: F4 90 80 80", S("\xF4\x90\x80\x80"), false, 1},
    {"F5 lead", S("\xF5\x80\x80\x80"), false, 0},
    {"FF byte", S("ab\xFF"), false, 2},
    {"FE byte", S("\xFE"), false, 0},
    {"lone continuation 80", S("\x80"), false, 0},
    {"lone continuation after ascii", S("abcdefghijk\xBF"), false, 11},
    {"two-byte lead then ascii", S("\xC3(x"), false, 1},
    {"three-byte lead cut by ascii", S("\xE2\x82x"), false, 2},
    {"four-byte lead cut by lead", S("\xF0\x9F\xC3\xA9"), false, 2},
    {"extra continuation", S("\xC3\xA9\xA9"), false, 2},
    {"invalid after valid text", S("caf\xC3\xA9 \xC0\xAF"), false, 6},
    {"truncated 2-byte at end", S("\xC3"), false, -1},
    {"truncated 3-byte at end", S("ok\xE2\x82"), false, -1},
    {"truncated 4-byte at end", S("\xF0\x9F\x98"), false, -1},
};

/* Feeds s split at every offset; each split must agree with the whole. */
static void check_splits(const struct utf8_vec *v, uint32_t whole)
{
    int mismatches = 0;
    for (size_t cut = 0; cut <= v->len; cut++) {
        uint32_t st = utf8_feed(UTF8_ACCEPT, v->s, cut);
        st = utf8_feed(st, v->s + cut, v->len - cut);
        if (st != whole) {
            fprintf(stderr, "  %s: split at %zu gives %u, whole %u\n", v->name, cut, st, whole);
            mismatches++;
        }
    }
    CHECK_INT(mismatches, 0);
}

/* Byte by byte: the state must turn to REJECT on exactly bad_at, and a
 * rejected state must stay rejected. */
static void check_bytewise(const struct utf8_vec *v, uint32_t whole)
{
    uint32_t st = UTF8_ACCEPT;
    int first_reject = -1;
    for (size_t i = 0; i < v->len; i++) {
        st = utf8_feed(st, v->s + i, 1);
        if (st == UTF8_REJECT && first_reject < 0)
            first_reject = (int)i;
    }
    if (first_reject != v->bad_at)
        fprintf(stderr, "  %s: rejected at %d, expected %d\n", v->name, first_reject, v->bad_at);
    CHECK_INT(first_reject, v->bad_at);
    CHECK_INT(st, whole);
}

static void test_table(void)
{
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        const struct utf8_vec *v = &vecs[i];
        uint32_t whole = utf8_feed(UTF8_ACCEPT, v->s, v->len);
        if (utf8_valid(v->s, v->len) != v->valid)
            fprintf(stderr, "  %s: utf8_valid disagrees\n", v->name);
        CHECK_INT(utf8_valid(v->s, v->len), v->valid);
        CHECK_INT(utf8_ref_valid(v->s, v->len), v->valid); /* the table itself is right */
        /* Invalid without a bad byte means truncated: "inside a code point". */
        if (!v->valid && v->bad_at < 0)
            CHECK(whole != UTF8_ACCEPT && whole != UTF8_REJECT);
        if (v->bad_at >= 0)
            CHECK_INT(whole, UTF8_REJECT);
        check_splits(v, whole);
        check_bytewise(v, whole);
        /* REJECT is sticky whatever follows. */
        CHECK_INT(utf8_feed(UTF8_REJECT, (const uint8_t *)"abc", 3), UTF8_REJECT);
    }
}

/* A state word utf8_feed() never returns must not validate anything. */
static void test_bogus_state(void)
{
    static const uint32_t bogus[] = {2, 3, 15, 0x0F, 0x15, 0x40, 0x45, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof(bogus) / sizeof(bogus[0]); i++)
        CHECK_INT(utf8_feed(bogus[i], (const uint8_t *)"\x80", 1), UTF8_REJECT);
    CHECK_INT(utf8_feed(UTF8_ACCEPT, NULL, 0), UTF8_ACCEPT);
}

/* Every 1-, 2- and 3-byte sequence, and every 4-byte sequence that starts
 * with F0..F4 (fourth byte at its boundary values), against the reference. */
static void test_exhaustive(void)
{
    long mismatches = 0;
    uint8_t s[4];
    for (uint32_t x = 0; x < (1u << 24); x++) {
        s[0] = (uint8_t)(x >> 16), s[1] = (uint8_t)(x >> 8), s[2] = (uint8_t)x;
        if (x < 256 && utf8_valid(s + 2, 1) != utf8_ref_valid(s + 2, 1))
            mismatches++;
        if (x < 65536 && utf8_valid(s + 1, 2) != utf8_ref_valid(s + 1, 2))
            mismatches++;
        if (utf8_valid(s, 3) != utf8_ref_valid(s, 3))
            mismatches++;
    }
    /* 4-byte leads: all second and third bytes, the boundary values for the
     * fourth (the state machine treats 80..BF alike after the second). */
    static const uint8_t last[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90,
                                   0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    for (uint32_t lead = 0xF0; lead <= 0xF4; lead++) {
        for (uint32_t x = 0; x < 65536; x++) {
            for (size_t k = 0; k < sizeof(last); k++) {
                s[0] = (uint8_t)lead, s[1] = (uint8_t)(x >> 8), s[2] = (uint8_t)x, s[3] = last[k];
                if (utf8_valid(s, 4) != utf8_ref_valid(s, 4))
                    mismatches++;
            }
        }
    }
    CHECK_INT(mismatches, 0);
}

/* Every scalar value encodes to valid UTF-8; every surrogate does not. */
static void test_all_code_points(void)
{
    long mismatches = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t s[4];
        size_t n;
        if (cp < 0x80) {
            s[0] = (uint8_t)cp, n = 1;
        } else if (cp < 0x800) {
            s[0] = (uint8_t)(0xC0 | cp >> 6), s[1] = (uint8_t)(0x80 | (cp & 0x3F)), n = 2;
        } else if (cp < 0x10000) {
            s[0] = (uint8_t)(0xE0 | cp >> 12), s[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            s[2] = (uint8_t)(0x80 | (cp & 0x3F)), n = 3;
        } else {
            s[0] = (uint8_t)(0xF0 | cp >> 18), s[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            s[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)), s[3] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 4;
        }
        bool want = cp < 0xD800 || cp > 0xDFFF;
        if ((utf8_valid(s, n) != 0) != want)
            mismatches++;
    }
    CHECK_INT(mismatches, 0);
}

/* Long text straddling the 8-byte fast path at every alignment. */
static void test_fast_path_alignment(void)
{
    uint8_t buf[64];
    int mismatches = 0;
    for (size_t pos = 0; pos + 2 <= sizeof(buf); pos++) {
        memset(buf, 'a', sizeof(buf));
        buf[pos] = 0xC3, buf[pos + 1] = 0xA9; /* é */
        for (size_t start = 0; start < 8; start++) {
            if (start > pos)
                break;
            if (!utf8_valid(buf + start, sizeof(buf) - start))
                mismatches++;
        }
        buf[pos + 1] = 'x'; /* lead byte without its continuation */
        if (utf8_valid(buf, sizeof(buf)))
            mismatches++;
        buf[pos] = 0x80;
        if (utf8_valid(buf, sizeof(buf)))
            mismatches++;
    }
    CHECK_INT(mismatches, 0);
}

int main(void)
{
    test_table();
    test_bogus_state();
    test_exhaustive();
    test_all_code_points();
    test_fast_path_alignment();
    return check_report("test_utf8");
}
