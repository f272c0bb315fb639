/*
 * b64.c - see b64.h. Table-free: the value of a character is four range
 * checks, as fast as a lookup for the short inputs we decode (tokens, keys,
 * packets of a few KB) and nothing to keep in sync between alphabets.
 */
#include "b64.h"

#include "log.h"

static const char b64_chars[2][65] = {
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
};

int b64_value(unsigned char c, enum b64_alphabet alphabet)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (unsigned char)b64_chars[alphabet][62])
        return 62;
    if (c == (unsigned char)b64_chars[alphabet][63])
        return 63;
    return -1;
}

size_t b64_encoded_len(size_t len, bool pad)
{
    size_t groups = len / 3, rest = len % 3;
    if (groups > (SIZE_MAX - 4) / 4)
        return SIZE_MAX;
    if (rest == 0)
        return 4 * groups;
    return 4 * groups + (pad ? 4 : rest + 1);
}

size_t b64_encode(char *out, size_t cap, const uint8_t *in, size_t len, enum b64_alphabet alphabet,
                  bool pad)
{
    size_t need = b64_encoded_len(len, pad);
    if (need == SIZE_MAX || cap < need)
        return 0;
    const char *abc = b64_chars[alphabet];
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 0x3F];
        out[o++] = abc[(v >> 6) & 0x3F];
        out[o++] = abc[v & 0x3F];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 0x3F];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 0x3F];
        out[o++] = abc[(v >> 6) & 0x3F];
        if (pad)
            out[o++] = '=';
    }
    HERALD_ASSERT(o == need);
    return o;
}

long b64_decode(uint8_t *out, size_t cap, const char *in, size_t len, enum b64_alphabet alphabet,
                bool pad)
{
    size_t n = len;
    if (pad) {
        /* Padded: whole groups, and at most two '=' closing the last. */
        if (len % 4 != 0)
            return -1;
        if (n > 0 && in[n - 1] == '=')
            n--;
        if (n > 0 && in[n - 1] == '=')
            n--;
        /* A third '=' ("A===") is left in the text and refused below. */
    }
    /* A last group of one character carries only 6 bits: never a byte. */
    if (n % 4 == 1)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)in[i], alphabet);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* §3.5: the unused low bits of the last character must be zero, else
     * the same bytes would have a second spelling. */
    if (acc != 0)
        return -1;
    return (long)o;
}
