/*
 * b64.h - base64 (RFC 4648), both alphabets, strict decoding.
 *
 * Why one module: Engine.IO carries binary packets in standard base64
 * (§4, padded), JWTs are base64url without padding (§5, RFC 7515 §2), the
 * WebSocket accept key is standard base64, and session ids are random bytes
 * spelled in the URL alphabet. Three hand-written copies had drifted in how
 * strictly they read; this is the one place. Decoding is strict everywhere:
 * a text that is not the one canonical spelling of its bytes (a character
 * outside the alphabet, misplaced or missing '=', non-zero unused bits, a
 * length no encoder produces) is an error, so two different strings never
 * decode to the same bytes (a token or packet has exactly one spelling).
 *
 * No allocation and no I/O: pointer + length in, caller's buffer out. No
 * NUL is ever written.
 */
#ifndef HERALD_B64_H
#define HERALD_B64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum b64_alphabet {
    B64_STD, /* A-Z a-z 0-9 + /  (RFC 4648 §4) */
    B64_URL  /* A-Z a-z 0-9 - _  (RFC 4648 §5) */
};

/* Characters b64_encode() writes for len bytes: 4 per started group of 3
 * when pad, else without the '=' (2 or 3 for a last group of 1 or 2).
 * SIZE_MAX when that would not fit in a size_t (no buffer is that big). */
size_t b64_encoded_len(size_t len, bool pad);

/*
 * Encodes in[0..len) into out (capacity cap). Returns the number of
 * characters written (b64_encoded_len(len, pad)), or 0 when cap is too
 * small (out untouched) — also 0 for len 0, which encodes as nothing.
 */
size_t b64_encode(char *out, size_t cap, const uint8_t *in, size_t len, enum b64_alphabet alphabet,
                  bool pad);

/*
 * Decodes in[0..len) strictly (see above): with pad, len must be a multiple
 * of 4 with '=' only as the last one or two characters; without, no '=' and
 * len % 4 != 1. Writes at most cap bytes to out. out may equal in (decoding
 * in place: byte k is written after character 4k/3 has been read). Returns
 * the decoded length, or -1 when the text is not canonical or the output
 * does not fit (out may then hold a partial result).
 */
long b64_decode(uint8_t *out, size_t cap, const char *in, size_t len, enum b64_alphabet alphabet,
                bool pad);

/* The 6-bit value of character c in alphabet, or -1 ('=' included). */
int b64_value(unsigned char c, enum b64_alphabet alphabet);

#endif
