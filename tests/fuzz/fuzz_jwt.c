/*
 * fuzz_jwt.c - libFuzzer target for jwt_auth_verify_profile() (jwt_auth_verify()
 * with the profile claims of just-in-time users).
 *
 * Tokens come from peers before authentication, so every byte of one is
 * hostile. Random bytes rarely get past the base64url and JSON checks, and
 * never past the signature, so the first input byte picks how the rest is
 * turned into a token:
 *
 *   mode 0  the rest is the token, verbatim;
 *   mode 1  the rest is "header\npayload\nsignature" (raw bytes), each piece
 *           base64url-encoded and joined with '.': reaches both JSON parsers
 *           and libjwt's signature check;
 *   mode 2  "header\npayload", base64url-encoded and correctly HS256-signed
 *           with the fuzz secret: header rules and claims are both reached;
 *   mode 3  the rest is the payload under a fixed HS256 header, signed:
 *           the quickest way into the claim checks.
 *
 * Bit 2 of the first byte selects a second verifier that also checks iss
 * and aud and allows 30 s of leeway. The verifiers are set up once and live
 * for the process (still reachable, so LeakSanitizer does not count them);
 * everything allocated per input is freed before returning.
 *
 * Seeds: tests/fuzz/corpus/jwt/, whose file names start with the mode digit
 * ('0'..'7' are modes 0..3, plain and then strict).
 */
#include "jwt_auth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define FUZZ_SECRET "fuzz-secret-0123456789abcdef0123"
#define FUZZ_ISS "https://auth.example"
#define FUZZ_AUD "herald"
#define FUZZ_NOW ((time_t)1700000000)
#define FUZZ_HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static struct jwt_auth fuzz_plain, fuzz_strict;
static int fuzz_ready;

static void fuzz_setup(void)
{
    if (fuzz_ready)
        return;
    if (jwt_auth_init(&fuzz_plain, "HS256", (const unsigned char *)FUZZ_SECRET, strlen(FUZZ_SECRET),
                      NULL, NULL, NULL, 0) != 0 ||
        jwt_auth_init(&fuzz_strict, "HS256", (const unsigned char *)FUZZ_SECRET,
                      strlen(FUZZ_SECRET), FUZZ_ISS, FUZZ_AUD, NULL, 0) != 0)
        abort();
    fuzz_strict.leeway_s = 30;
    fuzz_ready = 1;
}

static const char fuzz_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Appends unpadded base64url of p[0..n) at out + *o (room is the caller's). */
static void b64url_put(char *out, size_t *o, const uint8_t *p, size_t n)
{
    uint32_t acc = 0;
    int bits = 0;

    for (size_t i = 0; i < n; i++) {
        acc = ((acc << 8) | p[i]) & 0xffffu;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[(*o)++] = fuzz_b64[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[(*o)++] = fuzz_b64[(acc << (6 - bits)) & 63];
}

/* Splits data at the next '\n': *piece gets the bytes before it. */
static void next_piece(const uint8_t **data, size_t *size, const uint8_t **piece, size_t *n)
{
    const uint8_t *nl = *size ? memchr(*data, '\n', *size) : NULL;
    size_t used;

    *piece = *data;
    *n = nl ? (size_t)(nl - *data) : *size;
    used = nl ? *n + 1 : *n;
    *data += used;
    *size -= used;
}

/*
 * Builds a token from header, payload and either sig (mode 1) or an HS256
 * signature made with the fuzz secret (sig NULL). Returns a malloc'd buffer
 * (not NUL-terminated) and its length in *len, or NULL.
 */
static char *build_token(const uint8_t *hdr, size_t hdr_n, const uint8_t *pay, size_t pay_n,
                         const uint8_t *sig, size_t sig_n, size_t *len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t cap = (hdr_n + pay_n + sig_n + EVP_MAX_MD_SIZE) * 4 / 3 + 32, o = 0;
    char *tok = malloc(cap);

    if (!tok)
        return NULL;
    b64url_put(tok, &o, hdr, hdr_n);
    tok[o++] = '.';
    b64url_put(tok, &o, pay, pay_n);
    if (!sig) {
        if (!HMAC(EVP_sha256(), FUZZ_SECRET, (int)strlen(FUZZ_SECRET), (unsigned char *)tok, o, mac,
                  &mac_len)) {
            free(tok);
            return NULL;
        }
        sig = mac;
        sig_n = mac_len;
    }
    tok[o++] = '.';
    b64url_put(tok, &o, sig, sig_n);
    *len = o;
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *hdr, *pay, *sig;
    size_t hdr_n, pay_n, sig_n, len = 0;
    const struct jwt_auth *a;
    char *tok = NULL;
    int64_t uid = -1, exp = -1;
    enum jwt_auth_status st;
    uint8_t mode;

    fuzz_setup();
    if (size == 0)
        return 0;
    mode = data[0];
    data++;
    size--;
    a = (mode & 4) ? &fuzz_strict : &fuzz_plain;

    switch (mode & 3) {
    case 0:
        /* Copied so the token ends exactly where the input does (ASan's
         * redzone follows the allocation): no over-read goes unseen. */
        tok = malloc(size ? size : 1);
        if (!tok)
            return 0;
        if (size)
            memcpy(tok, data, size);
        len = size;
        break;
    case 1:
        next_piece(&data, &size, &hdr, &hdr_n);
        next_piece(&data, &size, &pay, &pay_n);
        next_piece(&data, &size, &sig, &sig_n);
        tok = build_token(hdr, hdr_n, pay, pay_n, sig, sig_n, &len);
        break;
    case 2:
        next_piece(&data, &size, &hdr, &hdr_n);
        next_piece(&data, &size, &pay, &pay_n);
        tok = build_token(hdr, hdr_n, pay, pay_n, NULL, 0, &len);
        break;
    default:
        tok = build_token((const uint8_t *)FUZZ_HDR, strlen(FUZZ_HDR), data, size, NULL, 0, &len);
        break;
    }
    if (!tok)
        return 0;

    struct jwt_auth_profile prof;
    st = jwt_auth_verify_profile(a, tok, len, FUZZ_NOW, &uid, &exp, &prof);
    /* The profile: a safe username of at most 64 bytes, an avatar of at
     * most 512 without a NUL, nothing at all on failure. */
    size_t nl = strnlen(prof.username, sizeof(prof.username));
    if (nl > JWT_AUTH_NAME_MAX || (st != JWT_AUTH_OK && (nl || prof.has_avatar)))
        abort();
    for (size_t i = 0; i < nl; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
                    prof.username[i]))
            abort();
    if (prof.has_avatar && strnlen(prof.avatar, sizeof(prof.avatar)) > JWT_AUTH_AVATAR_MAX)
        abort();

    /* Invariants the gateway relies on. */
    if (strcmp(jwt_auth_status_str(st), "unknown") == 0)
        abort();
    if (st == JWT_AUTH_OK) {
        if (uid < 1 || uid > JWT_AUTH_MAX_USER_ID)
            abort();
        if ((int64_t)FUZZ_NOW >= exp + a->leeway_s)
            abort(); /* accepted an expired token */
    } else if (uid != 0 || exp != 0) {
        abort(); /* outputs must be cleared on failure */
    }
    if (len > JWT_AUTH_MAX_TOKEN && st != JWT_AUTH_ERR_TOO_LONG)
        abort();
    free(tok);
    return 0;
}
