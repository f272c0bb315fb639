/*
 * jwt_auth.c - access-token verification and signing on top of libjwt 1.10.
 *
 * Every authenticated connection presents a JWT at connect time and again
 * every 30 s (PROTOCOL.md §1), so this is the one place that decides who a
 * peer is. libjwt 1.10 does the signature arithmetic; everything it gets
 * wrong or leaves out is done here first:
 *
 *   - jwt_decode() believes the token's own "alg" header (compared with
 *     strcasecmp, so "nOnE" is "none"). Given a key it refuses "none", but it
 *     happily verifies HS384/HS512 with our HS256 secret, and verifies
 *     "HS256" using an RS256 *public* PEM as the HMAC secret - the classic
 *     algorithm-confusion forgery. Given no key it checks no signature at
 *     all, whatever the alg. So we decode the header ourselves and require
 *     alg to be exactly the configured name before libjwt sees the token,
 *     always pass the key, and re-check jwt_get_alg() afterwards in case
 *     libjwt's JSON parser (jansson) read the header differently from ours.
 *   - libjwt's base64 decoder skips characters outside the alphabet and
 *     writes one byte past a zero-length malloc() for an empty part; its
 *     helpers alloca() sizes derived from the token. We hand it only tokens
 *     of at most JWT_AUTH_MAX_TOKEN bytes made of exactly three strict
 *     base64url parts, header and payload non-empty JSON objects, and a
 *     non-empty signature.
 *   - No claim validation exists in 1.10 (no jwt_valid). exp, nbf, iss, aud
 *     and the user id are read here from our own json-c parse of the payload,
 *     which sees real JSON types (jwt_get_grant() only returns strings and
 *     jwt_get_grant_int() folds "absent" and 0 together).
 *
 * Order of checks, which fixes which status a doubly-bad token gets: size,
 * shape (MALFORMED), header and alg (ALG), signature (SIGNATURE), then the
 * claims exp, nbf, iss, aud and subject. Claims are only looked at once the
 * signature holds, so a forged token is always "bad-signature" (or worse).
 *
 * Cost per verify: two base64url decodes and two json-c parses of at most
 * 6 KB each, plus libjwt's own decode (it re-parses with jansson) and one
 * HMAC or public-key operation; libjwt re-reads the PEM key on every call.
 * Scratch space lives on the stack (~15 KB); nothing here is global, so
 * verifiers may be used from several threads. The token is never logged.
 */
#include "jwt_auth.h"
#include "b64.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* Token JSON is flat claims; json-c's default of 32 levels is more than any
 * issuer needs and each level costs a hostile peer nothing to send. */
#define JWT_AUTH_JSON_DEPTH 16

/* Largest decoded part: 3 bytes per 4 base64url characters. */
#define JWT_AUTH_MAX_DECODED (JWT_AUTH_MAX_TOKEN / 4 * 3 + 3)

/* exp/nbf are clamped to +-2^40 s (about 35,000 years) and the leeway to
 * [0, 2^32] s so that "exp + leeway" can never overflow int64. */
#define JWT_AUTH_TIME_CLAMP (INT64_C(1) << 40)
#define JWT_AUTH_LEEWAY_CLAMP (INT64_C(1) << 32)

/* RFC 7518 §3.3: RSA keys for RS256 MUST be 2048 bits or larger. */
#define JWT_AUTH_MIN_RSA_BITS 2048

/* A user id string is at most this many digits: JWT_AUTH_MAX_USER_ID has 16. */
#define JWT_AUTH_MAX_ID_DIGITS 16

const char *jwt_auth_status_str(enum jwt_auth_status st)
{
    switch (st) {
    case JWT_AUTH_OK:
        return "ok";
    case JWT_AUTH_ERR_TOO_LONG:
        return "token-too-long";
    case JWT_AUTH_ERR_MALFORMED:
        return "malformed";
    case JWT_AUTH_ERR_ALG:
        return "bad-algorithm";
    case JWT_AUTH_ERR_SIGNATURE:
        return "bad-signature";
    case JWT_AUTH_ERR_NO_EXP:
        return "no-expiry";
    case JWT_AUTH_ERR_EXPIRED:
        return "expired";
    case JWT_AUTH_ERR_NOT_YET:
        return "not-yet-valid";
    case JWT_AUTH_ERR_SUBJECT:
        return "bad-subject";
    case JWT_AUTH_ERR_ISSUER:
        return "bad-issuer";
    case JWT_AUTH_ERR_AUDIENCE:
        return "bad-audience";
    }
    return "unknown";
}

/*
 * Maps a configured algorithm name to libjwt's enum. Only the three
 * algorithms PROTOCOL.md §1 allows are accepted; "none" never is.
 * Returns JWT_ALG_INVAL for anything else (or NULL).
 */
static jwt_alg_t alg_from_name(const char *name)
{
    if (!name)
        return JWT_ALG_INVAL;
    if (strcasecmp(name, "HS256") == 0)
        return JWT_ALG_HS256;
    if (strcasecmp(name, "RS256") == 0)
        return JWT_ALG_RS256;
    if (strcasecmp(name, "ES256") == 0)
        return JWT_ALG_ES256;
    return JWT_ALG_INVAL;
}

/* The RFC 7515 spelling of a supported alg, compared case-sensitively
 * against the token header (RFC 7515 §4.1.1: alg values are case-sensitive). */
static const char *alg_canonical_name(int alg)
{
    switch (alg) {
    case JWT_ALG_HS256:
        return "HS256";
    case JWT_ALG_RS256:
        return "RS256";
    case JWT_ALG_ES256:
        return "ES256";
    default:
        return NULL;
    }
}

static void set_err(char *err, size_t err_len, const char *msg)
{
    if (err && err_len)
        snprintf(err, err_len, "%s", msg);
}

/* OpenSSL passphrase callback that refuses: an encrypted PEM must fail at
 * once instead of OpenSSL's default callback prompting on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/*
 * Checks that a parsed key suits alg: RSA of at least 2048 bits for RS256,
 * EC on P-256 for ES256 (RFC 7518 §3.4). Returns NULL when it does, else a
 * message for the operator.
 */
static const char *pkey_unsuitable(const EVP_PKEY *pkey, jwt_alg_t alg)
{
    if (alg == JWT_ALG_RS256) {
        /* libjwt compares EVP_PKEY_id() with EVP_PKEY_RSA, so RSA-PSS keys
         * would fail every verify; refuse them here instead. */
        if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
            return "RS256 needs an RSA key";
        if (EVP_PKEY_get_bits(pkey) < JWT_AUTH_MIN_RSA_BITS)
            return "RS256 needs an RSA key of at least 2048 bits";
        return NULL;
    }
    if (alg == JWT_ALG_ES256) {
        char group[64];
        if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
            return "ES256 needs an EC key";
        if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0))
            return "ES256 needs an EC key on curve P-256";
        return NULL;
    }
    return NULL;
}

/*
 * Parses a PEM key (public when want_private is 0) and checks it suits alg.
 * Returns NULL when usable, else a message. Leaves the OpenSSL error queue
 * empty either way.
 */
static const char *pem_key_problem(const unsigned char *key, size_t key_len, jwt_alg_t alg,
                                   int want_private)
{
    const char *problem = NULL;
    BIO *bio = BIO_new_mem_buf(key, (int)key_len);
    EVP_PKEY *pkey = NULL;

    if (!bio) {
        problem = "out of memory";
        goto cleanup;
    }
    if (want_private)
        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    else
        pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    if (!pkey) {
        problem = want_private ? "key is not an unencrypted PEM private key"
                               : "key is not a PEM public key (BEGIN PUBLIC KEY)";
        goto cleanup;
    }
    problem = pkey_unsuitable(pkey, alg);
cleanup:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    ERR_clear_error();
    return problem;
}

int jwt_auth_init(struct jwt_auth *a, const char *alg_name, const unsigned char *key,
                  size_t key_len, const char *iss, const char *aud, char *err, size_t err_len)
{
    jwt_alg_t alg = alg_from_name(alg_name);
    const char *problem;

    if (!a) {
        set_err(err, err_len, "no verifier");
        return -1;
    }
    memset(a, 0, sizeof(*a));
    if (alg == JWT_ALG_INVAL) {
        set_err(err, err_len, "unknown JWT algorithm (want HS256, RS256 or ES256)");
        return -1;
    }
    if (!key || key_len == 0) {
        /* libjwt without a key verifies nothing; an empty HMAC secret is no
         * better. Refuse both up front. */
        set_err(err, err_len, "empty JWT key");
        return -1;
    }
    if (key_len > INT_MAX) {
        set_err(err, err_len, "JWT key too large");
        return -1;
    }
    if (alg != JWT_ALG_HS256) {
        /* A key that cannot verify anything would make every token
         * "bad-signature"; say so at start-up instead. */
        problem = pem_key_problem(key, key_len, alg, 0);
        if (problem) {
            set_err(err, err_len, problem);
            return -1;
        }
    }

    a->alg = alg;
    a->key = malloc(key_len + 1);
    a->iss = (iss && *iss) ? strdup(iss) : NULL;
    a->aud = (aud && *aud) ? strdup(aud) : NULL;
    if (!a->key || (iss && *iss && !a->iss) || (aud && *aud && !a->aud)) {
        jwt_auth_free(a);
        set_err(err, err_len, "out of memory");
        return -1;
    }
    memcpy(a->key, key, key_len);
    a->key[key_len] = '\0';
    a->key_len = key_len;
    a->leeway_s = 0;
    return 0;
}

void jwt_auth_free(struct jwt_auth *a)
{
    if (!a)
        return;
    if (a->key)
        OPENSSL_cleanse(a->key, a->key_len);
    free(a->key);
    free(a->iss);
    free(a->aud);
    memset(a, 0, sizeof(*a));
}

/* Strict unpadded base64url (RFC 7515 §2, b64_decode()): 0 with *out_len,
 * or -1. */
static int b64url_decode(const char *src, size_t n, unsigned char *out, size_t cap, size_t *out_len)
{
    long got = b64_decode(out, cap, src, n, B64_URL, false);
    if (got < 0)
        return -1;
    *out_len = (size_t)got;
    return 0;
}

/*
 * Parses buf[0..len) as exactly one JSON object: strict mode, valid UTF-8,
 * bounded depth, nothing after it. Returns a new reference the caller puts
 * with json_object_put(), or NULL.
 */
static struct json_object *parse_json_object(const unsigned char *buf, size_t len)
{
    struct json_tokener *tok;
    struct json_object *obj;

    if (len == 0 || len > INT_MAX)
        return NULL;
    tok = json_tokener_new_ex(JWT_AUTH_JSON_DEPTH);
    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, (const char *)buf, (int)len);
    if (obj &&
        (json_tokener_get_error(tok) != json_tokener_success ||
         json_tokener_get_parse_end(tok) != len || !json_object_is_type(obj, json_type_object))) {
        json_object_put(obj);
        obj = NULL;
    }
    json_tokener_free(tok);
    return obj;
}

/* Looks up key in obj; a JSON null counts as absent. Borrowed reference. */
static struct json_object *get_claim(struct json_object *obj, const char *key)
{
    struct json_object *val = NULL;

    if (!json_object_object_get_ex(obj, key, &val))
        return NULL;
    return val; /* json-c represents null as a NULL value */
}

/*
 * Checks the JOSE header: alg must be exactly the configured name; typ, when
 * present, must be "JWT" (libjwt 1.10 refuses any other typ, so we say why
 * rather than let it look like a bad signature); crit is refused because we
 * implement no extensions (RFC 7515 §4.1.11).
 */
static enum jwt_auth_status check_header(struct json_object *hdr, int alg)
{
    struct json_object *val;
    const char *want = alg_canonical_name(alg);

    val = get_claim(hdr, "alg");
    if (!want || !val || !json_object_is_type(val, json_type_string) ||
        strcmp(json_object_get_string(val), want) != 0 ||
        (size_t)json_object_get_string_len(val) != strlen(want))
        return JWT_AUTH_ERR_ALG;
    if (json_object_object_get_ex(hdr, "typ", &val)) {
        if (!json_object_is_type(val, json_type_string) ||
            strcasecmp(json_object_get_string(val), "JWT") != 0)
            return JWT_AUTH_ERR_MALFORMED;
    }
    if (json_object_object_get_ex(hdr, "crit", NULL))
        return JWT_AUTH_ERR_MALFORMED;
    return JWT_AUTH_OK;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/*
 * Reads a NumericDate (RFC 7519 §2: a JSON number of seconds, fractions
 * allowed). Numeric strings are not numbers and are refused: an issuer that
 * writes "exp":"1700000000" has a bug we would rather surface. The value is
 * floored and clamped to +-JWT_AUTH_TIME_CLAMP. Returns 0 or -1.
 */
static int read_numeric_date(struct json_object *val, int64_t *out)
{
    if (!val)
        return -1;
    if (json_object_is_type(val, json_type_int)) {
        /* json-c saturates integers beyond int64; the clamp absorbs that. */
        *out = clamp64(json_object_get_int64(val), -JWT_AUTH_TIME_CLAMP, JWT_AUTH_TIME_CLAMP);
        return 0;
    }
    if (json_object_is_type(val, json_type_double)) {
        double d = json_object_get_double(val);
        int64_t v;
        if (!isfinite(d))
            return -1;
        if (d < (double)-JWT_AUTH_TIME_CLAMP)
            d = (double)-JWT_AUTH_TIME_CLAMP;
        if (d > (double)JWT_AUTH_TIME_CLAMP)
            d = (double)JWT_AUTH_TIME_CLAMP;
        /* floor() without libm: the cast truncates toward zero */
        v = (int64_t)d;
        if ((double)v > d)
            v--;
        *out = v;
        return 0;
    }
    return -1;
}

/*
 * Converts one id claim: a JSON integer, or a string of 1-16 decimal digits
 * without sign, spaces or leading zeros; either way 1..JWT_AUTH_MAX_USER_ID.
 * Floats (even 42.0), booleans and everything else are refused.
 * Returns 0 and sets *id, or -1.
 */
static int read_user_id(struct json_object *val, int64_t *id)
{
    int64_t v = 0;

    if (json_object_is_type(val, json_type_int)) {
        /* json-c saturates out-of-range integers to INT64_MIN/INT64_MAX,
         * both outside the accepted range, so overflow cannot slip in. */
        v = json_object_get_int64(val);
    } else if (json_object_is_type(val, json_type_string)) {
        const char *s = json_object_get_string(val);
        size_t n = (size_t)json_object_get_string_len(val);
        if (n == 0 || n > JWT_AUTH_MAX_ID_DIGITS || s[0] == '0')
            return -1;
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -1;             /* also catches an embedded NUL */
            v = v * 10 + (s[i] - '0'); /* <= 16 digits: cannot overflow */
        }
    } else {
        return -1;
    }
    if (v < 1 || v > JWT_AUTH_MAX_USER_ID)
        return -1;
    *id = v;
    return 0;
}

/*
 * The user id comes from sub, else userId, else id (PROTOCOL.md §1). The
 * first claim present (and not null) decides: a sub that is not a number is
 * an error, not a reason to look at userId, so one token never names two
 * users depending on which claim a reader prefers.
 */
static enum jwt_auth_status read_subject(struct json_object *claims, int64_t *id)
{
    static const char *const names[] = {"sub", "userId", "id"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct json_object *val = get_claim(claims, names[i]);
        if (val)
            return read_user_id(val, id) == 0 ? JWT_AUTH_OK : JWT_AUTH_ERR_SUBJECT;
    }
    return JWT_AUTH_ERR_SUBJECT;
}

/* True when val is the string want exactly (length included, so an
 * embedded NUL cannot make "herald\u0000x" equal "herald"). */
static int json_string_equals(struct json_object *val, const char *want)
{
    return val && json_object_is_type(val, json_type_string) &&
           (size_t)json_object_get_string_len(val) == strlen(want) &&
           memcmp(json_object_get_string(val), want, strlen(want)) == 0;
}

/* RFC 7519 §4.1.3: aud is one string or an array of strings; we must be
 * one of them. */
static int audience_matches(struct json_object *aud, const char *want)
{
    if (!aud)
        return 0;
    if (json_object_is_type(aud, json_type_array)) {
        size_t n = json_object_array_length(aud);
        for (size_t i = 0; i < n; i++)
            if (json_string_equals(json_object_array_get_idx(aud, i), want))
                return 1;
        return 0;
    }
    return json_string_equals(aud, want);
}

/*
 * Claim checks, run only after the signature verified. now >= exp + leeway
 * is expired (RFC 7519 §4.1.4 "on or after"); now < nbf - leeway is not yet
 * valid. An nbf that is present but not a number is MALFORMED: we cannot
 * tell when the token starts, so we do not guess.
 */
static enum jwt_auth_status check_claims(const struct jwt_auth *a, struct json_object *claims,
                                         time_t now, int64_t *user_id, int64_t *exp_out)
{
    int64_t exp, nbf;
    int64_t t = clamp64((int64_t)now, -JWT_AUTH_TIME_CLAMP, JWT_AUTH_TIME_CLAMP);
    int64_t leeway = clamp64((int64_t)a->leeway_s, 0, JWT_AUTH_LEEWAY_CLAMP);
    struct json_object *val;
    enum jwt_auth_status st;

    if (read_numeric_date(get_claim(claims, "exp"), &exp) != 0)
        return JWT_AUTH_ERR_NO_EXP;
    if (t >= exp + leeway)
        return JWT_AUTH_ERR_EXPIRED;
    val = get_claim(claims, "nbf");
    if (val) {
        if (read_numeric_date(val, &nbf) != 0)
            return JWT_AUTH_ERR_MALFORMED;
        if (t < nbf - leeway)
            return JWT_AUTH_ERR_NOT_YET;
    }
    if (a->iss && !json_string_equals(get_claim(claims, "iss"), a->iss))
        return JWT_AUTH_ERR_ISSUER;
    if (a->aud && !audience_matches(get_claim(claims, "aud"), a->aud))
        return JWT_AUTH_ERR_AUDIENCE;
    st = read_subject(claims, user_id);
    if (st == JWT_AUTH_OK)
        *exp_out = exp;
    return st;
}

/* The profile claims of a verified token (jwt_auth.h). */
static void read_profile(struct json_object *claims, struct jwt_auth_profile *p)
{
    static const char *const names[] = {"username", "preferred_username", "name"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !p->username[0]; i++) {
        struct json_object *v = get_claim(claims, names[i]);
        if (!v || !json_object_is_type(v, json_type_string))
            continue;
        const char *s = json_object_get_string(v);
        size_t n = (size_t)json_object_get_string_len(v), k;
        for (k = 0; k < n && k < JWT_AUTH_NAME_MAX; k++) {
            char c = s[k];
            p->username[k] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                     (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'
                                 ? c
                                 : '_';
        }
        p->username[k] = '\0';
    }
    static const char *const pics[] = {"avatar", "picture"};
    for (size_t i = 0; i < 2 && !p->has_avatar; i++) {
        struct json_object *v = get_claim(claims, pics[i]);
        size_t n = v && json_object_is_type(v, json_type_string)
                       ? (size_t)json_object_get_string_len(v)
                       : JWT_AUTH_AVATAR_MAX + 1;
        /* A NUL inside would cut the URL short where it is stored. */
        if (n > JWT_AUTH_AVATAR_MAX || memchr(json_object_get_string(v), '\0', n))
            continue;
        memcpy(p->avatar, json_object_get_string(v), n);
        p->avatar[n] = '\0';
        p->has_avatar = 1;
    }
}

enum jwt_auth_status jwt_auth_verify(const struct jwt_auth *a, const char *token, size_t len,
                                     time_t now, int64_t *user_id, int64_t *exp)
{
    return jwt_auth_verify_profile(a, token, len, now, user_id, exp, NULL);
}

enum jwt_auth_status jwt_auth_verify_profile(const struct jwt_auth *a, const char *token,
                                             size_t len, time_t now, int64_t *user_id, int64_t *exp,
                                             struct jwt_auth_profile *p)
{
    /* libjwt wants a NUL-terminated token; ours is (pointer, length). */
    char tok[JWT_AUTH_MAX_TOKEN + 1];
    unsigned char scratch[JWT_AUTH_MAX_DECODED];
    struct json_object *hdr = NULL, *claims = NULL;
    const char *dot1, *dot2, *pay, *sig;
    size_t hdr_len, pay_len, sig_len, n;
    int64_t uid = 0, exp_val = 0;
    enum jwt_auth_status st;
    jwt_t *jwt = NULL;

    if (user_id)
        *user_id = 0;
    if (exp)
        *exp = 0;
    if (p)
        memset(p, 0, sizeof(*p));
    if (!token || len == 0)
        return JWT_AUTH_ERR_MALFORMED;
    if (len > JWT_AUTH_MAX_TOKEN)
        return JWT_AUTH_ERR_TOO_LONG;
    /* An unconfigured verifier verifies nothing: fail closed. */
    if (!a || !a->key || a->key_len == 0 || a->key_len > INT_MAX || !alg_canonical_name(a->alg))
        return JWT_AUTH_ERR_SIGNATURE;

    /* Shape: exactly header.payload.signature (JWS compact, RFC 7515 §7.1). */
    dot1 = memchr(token, '.', len);
    if (!dot1)
        return JWT_AUTH_ERR_MALFORMED;
    pay = dot1 + 1;
    dot2 = memchr(pay, '.', len - (size_t)(pay - token));
    if (!dot2)
        return JWT_AUTH_ERR_MALFORMED;
    sig = dot2 + 1;
    hdr_len = (size_t)(dot1 - token);
    pay_len = (size_t)(dot2 - pay);
    sig_len = len - (size_t)(sig - token);
    if (memchr(sig, '.', sig_len))
        return JWT_AUTH_ERR_MALFORMED; /* JWE (5 parts) or junk */
    /* The signature is decoded only to prove it is canonical base64url;
     * libjwt decodes it again itself. */
    if (b64url_decode(sig, sig_len, scratch, sizeof(scratch), &n) != 0)
        return JWT_AUTH_ERR_MALFORMED;

    if (b64url_decode(token, hdr_len, scratch, sizeof(scratch), &n) != 0)
        return JWT_AUTH_ERR_MALFORMED;
    hdr = parse_json_object(scratch, n);
    if (!hdr) {
        st = JWT_AUTH_ERR_MALFORMED;
        goto cleanup;
    }
    st = check_header(hdr, a->alg);
    if (st != JWT_AUTH_OK)
        goto cleanup;

    if (b64url_decode(pay, pay_len, scratch, sizeof(scratch), &n) != 0) {
        st = JWT_AUTH_ERR_MALFORMED;
        goto cleanup;
    }
    claims = parse_json_object(scratch, n);
    if (!claims) {
        st = JWT_AUTH_ERR_MALFORMED;
        goto cleanup;
    }
    if (sig_len == 0) {
        st = JWT_AUTH_ERR_SIGNATURE;
        goto cleanup;
    }

    /*
     * The alg is pinned, so libjwt now verifies with the algorithm we chose.
     * Any failure from here is reported as a bad signature: libjwt returns
     * EINVAL alike for a wrong signature and for a payload its own JSON
     * parser (jansson) refuses where json-c did not (integers beyond
     * int64, NaN, "\u0000"); such a token is not one we can trust.
     */
    memcpy(tok, token, len);
    tok[len] = '\0';
    if (jwt_decode(&jwt, tok, a->key, (int)a->key_len) != 0 || !jwt) {
        ERR_clear_error();
        st = JWT_AUTH_ERR_SIGNATURE;
        goto cleanup;
    }
    /* Belt and braces: libjwt must have verified with the pinned alg. */
    if (jwt_get_alg(jwt) != (jwt_alg_t)a->alg) {
        st = JWT_AUTH_ERR_ALG;
        goto cleanup;
    }

    st = check_claims(a, claims, now, &uid, &exp_val);
    if (st == JWT_AUTH_OK) {
        if (user_id)
            *user_id = uid;
        if (exp)
            *exp = exp_val;
        if (p)
            read_profile(claims, p);
    }
cleanup:
    jwt_free(jwt);
    json_object_put(claims);
    json_object_put(hdr);
    return st;
}

char *jwt_auth_sign(const char *alg_name, const unsigned char *key, size_t key_len, int64_t user_id,
                    int64_t exp, int64_t nbf, const char *iss, const char *aud)
{
    jwt_alg_t alg = alg_from_name(alg_name);
    char sub[24];
    char *out = NULL;
    jwt_t *jwt = NULL;

    if (alg == JWT_ALG_INVAL || !key || key_len == 0 || key_len > INT_MAX)
        return NULL;
    if (user_id < 1 || user_id > JWT_AUTH_MAX_USER_ID)
        return NULL;
    /* jwt_add_grant_int() takes a long. */
    if (exp < LONG_MIN || exp > LONG_MAX || nbf > LONG_MAX)
        return NULL;
    /* Check a PEM private key ourselves first: libjwt would hand an
     * encrypted one to OpenSSL's default callback, which prompts on the
     * terminal, and would report a wrong key type only as EINVAL. */
    if (alg != JWT_ALG_HS256 && pem_key_problem(key, key_len, alg, 1) != NULL)
        return NULL;

    if (jwt_new(&jwt) != 0)
        return NULL;
    /* sub as a string of digits: RFC 7519 §4.1.2 makes sub a StringOrURI,
     * and it is what most issuers emit; our verifier accepts both forms. */
    snprintf(sub, sizeof(sub), "%" PRId64, user_id);
    if (jwt_add_grant(jwt, "sub", sub) != 0 || jwt_add_grant_int(jwt, "exp", (long)exp) != 0 ||
        jwt_add_grant_int(jwt, "iat", (long)time(NULL)) != 0)
        goto cleanup;
    if (nbf > 0 && jwt_add_grant_int(jwt, "nbf", (long)nbf) != 0)
        goto cleanup;
    if (iss && *iss && jwt_add_grant(jwt, "iss", iss) != 0)
        goto cleanup;
    if (aud && *aud && jwt_add_grant(jwt, "aud", aud) != 0)
        goto cleanup;
    if (jwt_set_alg(jwt, alg, key, (int)key_len) != 0)
        goto cleanup;
    out = jwt_encode_str(jwt);
cleanup:
    jwt_free(jwt);
    ERR_clear_error();
    return out;
}
