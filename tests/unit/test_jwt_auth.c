/*
 * test_jwt_auth.c - access-token verification against real tokens.
 *
 * Tokens are built here independently of the code under test: header and
 * payload JSON are base64url-encoded by a local encoder and HMAC-signed with
 * OpenSSL directly, so a vector can carry any alg, any claim type, or a
 * signature made with the wrong key. RS256/ES256 key pairs are generated at
 * run time with EVP_PKEY_keygen and PEM-encoded in memory (no files, no
 * external commands). The clock is fixed at NOW so expiry vectors are exact.
 */
#include "check.h"
#include "jwt_auth.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>

#define NOW ((time_t)1700000000)
#define SECRET "test-secret-0123456789abcdef0123"
#define HDR_HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* ---- token building --------------------------------------------------- */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Unpadded base64url of data[0..n) appended to out (which has room). */
static void b64url_append(char *out, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t o = strlen(out);
    uint32_t acc = 0;
    int bits = 0;

    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64url_alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = b64url_alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/*
 * Builds header.payload.signature where the signature is HMAC(md, key) over
 * the first two parts; md NULL leaves the signature empty ("h.p."), as an
 * alg "none" token does. Caller frees with free().
 */
static char *make_token_n(const EVP_MD *md, const void *key, size_t key_len, const char *hdr,
                          const char *pay, size_t pay_len)
{
    size_t cap = (strlen(hdr) + pay_len) * 4 / 3 + 200;
    char *tok = calloc(1, cap);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    if (!tok)
        abort();
    b64url_append(tok, hdr, strlen(hdr));
    strcat(tok, ".");
    b64url_append(tok, pay, pay_len);
    if (md) {
        if (!HMAC(md, key, (int)key_len, (const unsigned char *)tok, strlen(tok), mac, &mac_len))
            abort();
    }
    strcat(tok, ".");
    b64url_append(tok, mac, mac_len);
    return tok;
}

static char *make_token(const EVP_MD *md, const char *key, const char *hdr, const char *pay)
{
    return make_token_n(md, key, strlen(key), hdr, pay, strlen(pay));
}

/* The usual case: HS256 with SECRET and a standard header. */
static char *hs256(const char *pay)
{
    return make_token(EVP_sha256(), SECRET, HDR_HS256, pay);
}

static enum jwt_auth_status verify(const struct jwt_auth *a, const char *tok, int64_t *uid,
                                   int64_t *exp)
{
    int64_t u, e;
    enum jwt_auth_status st = jwt_auth_verify(a, tok, strlen(tok), NOW, &u, &e);
    if (uid)
        *uid = u;
    if (exp)
        *exp = e;
    return st;
}

/* Verifies an HS256/SECRET token for payload and returns the status. */
static enum jwt_auth_status verify_payload(const struct jwt_auth *a, const char *pay, int64_t *uid)
{
    char *tok = hs256(pay);
    enum jwt_auth_status st = verify(a, tok, uid, NULL);
    free(tok);
    return st;
}

/* Decodes part `index` (0 header, 1 payload) of tok and parses it as JSON. */
static struct json_object *token_part_json(const char *tok, int index)
{
    const char *start = tok;
    for (int i = 0; i < index; i++)
        start = strchr(start, '.') + 1;
    size_t n = strcspn(start, ".");
    char *b64 = calloc(1, n + 4);
    memcpy(b64, start, n);
    for (size_t i = 0; i < n; i++)
        b64[i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
    while (n % 4)
        b64[n++] = '=';
    unsigned char *raw = calloc(1, n);
    int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    struct json_object *obj = NULL;
    if (len >= 0) {
        /* EVP_DecodeBlock counts padding as zero bytes; trim them. */
        while (len > 0 && raw[len - 1] == '\0')
            len--;
        obj = json_tokener_parse((const char *)raw);
    }
    free(b64);
    free(raw);
    return obj;
}

/* ---- keys --------------------------------------------------------------- */

static EVP_PKEY *gen_rsa(int bits)
{
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) != 1 || EVP_PKEY_keygen(ctx, &pk) != 1)
        abort();
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

static EVP_PKEY *gen_ec(int nid)
{
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, nid) != 1 || EVP_PKEY_keygen(ctx, &pk) != 1)
        abort();
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

static char *bio_to_string(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *s = malloc((size_t)n + 1);
    if (!s || n < 0)
        abort();
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(bio);
    return s;
}

static char *pem_public(EVP_PKEY *pk)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || PEM_write_bio_PUBKEY(bio, pk) != 1)
        abort();
    return bio_to_string(bio);
}

/* PKCS#8 private key PEM, encrypted with pass when pass is non-NULL. */
static char *pem_private(EVP_PKEY *pk, const char *pass)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const EVP_CIPHER *enc = pass ? EVP_aes_128_cbc() : NULL;
    if (!bio || PEM_write_bio_PrivateKey(bio, pk, enc, (unsigned char *)pass,
                                         pass ? (int)strlen(pass) : 0, NULL, NULL) != 1)
        abort();
    return bio_to_string(bio);
}

static int init(struct jwt_auth *a, const char *alg, const char *key, const char *iss,
                const char *aud)
{
    char err[128] = "";
    int rc = jwt_auth_init(a, alg, (const unsigned char *)key, key ? strlen(key) : 0, iss, aud, err,
                           sizeof(err));
    if (rc != 0 && err[0] == '\0')
        rc = -2; /* a failure must say why */
    return rc;
}

/* ---- tests -------------------------------------------------------------- */

static void test_status_words(void)
{
    CHECK_STR(jwt_auth_status_str(JWT_AUTH_OK), "ok");
    CHECK_STR(jwt_auth_status_str(JWT_AUTH_ERR_TOO_LONG), "token-too-long");
    CHECK_STR(jwt_auth_status_str(JWT_AUTH_ERR_MALFORMED), "malformed");
    CHECK_STR(jwt_auth_status_str(JWT_AUTH_ERR_ALG), "bad-algorithm");
    CHECK_STR(jwt_auth_status_str(JWT_AUTH_ERR_SIGNATURE), "bad-signature");
    CHECK_STR(jwt_auth_status_str(JWT_AUTH_ERR_NO_EXP), "no-expiry");
    CHECK_STR(jwt_auth_status_str(JWT_AUTH_ERR_EXPIRED), "expired");
    CHECK_STR(jwt_auth_status_str(JWT_AUTH_ERR_NOT_YET), "not-yet-valid");
    CHECK_STR(jwt_auth_status_str(JWT_AUTH_ERR_SUBJECT), "bad-subject");
    CHECK_STR(jwt_auth_status_str(JWT_AUTH_ERR_ISSUER), "bad-issuer");
    CHECK_STR(jwt_auth_status_str(JWT_AUTH_ERR_AUDIENCE), "bad-audience");
    CHECK_STR(jwt_auth_status_str((enum jwt_auth_status)99), "unknown");
}

static void test_init(void)
{
    struct jwt_auth a;
    char err[128];

    CHECK_INT(init(&a, "HS256", SECRET, NULL, NULL), 0);
    CHECK_INT(a.alg, JWT_ALG_HS256);
    CHECK_INT(a.key_len, strlen(SECRET));
    CHECK(a.iss == NULL && a.aud == NULL);
    CHECK_INT(a.leeway_s, 0);
    jwt_auth_free(&a);
    CHECK(a.key == NULL);
    jwt_auth_free(&a); /* twice is harmless */
    jwt_auth_free(NULL);

    CHECK_INT(init(&a, "hs256", SECRET, "", ""), 0); /* names are case-insensitive */
    CHECK_INT(a.alg, JWT_ALG_HS256);
    CHECK(a.iss == NULL && a.aud == NULL); /* "" means not checked */
    jwt_auth_free(&a);

    CHECK_INT(init(&a, "HS256", SECRET, "issuer", "aud"), 0);
    CHECK_STR(a.iss, "issuer");
    CHECK_STR(a.aud, "aud");
    jwt_auth_free(&a);

    CHECK_INT(init(&a, "none", SECRET, NULL, NULL), -1);
    CHECK_INT(init(&a, "HS384", SECRET, NULL, NULL), -1);
    CHECK_INT(init(&a, "RS512", SECRET, NULL, NULL), -1);
    CHECK_INT(init(&a, "", SECRET, NULL, NULL), -1);
    CHECK_INT(init(&a, NULL, SECRET, NULL, NULL), -1);
    CHECK_INT(init(&a, "HS256", "", NULL, NULL), -1);
    CHECK_INT(init(&a, "HS256", NULL, NULL, NULL), -1);
    CHECK(a.key == NULL); /* a failed init leaves nothing to free */
    jwt_auth_free(&a);
    CHECK_INT(init(&a, "RS256", "not a pem", NULL, NULL), -1);
    CHECK_INT(init(&a, "ES256", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                   NULL, NULL),
              -1);
    CHECK_INT(
        jwt_auth_init(NULL, "HS256", (const unsigned char *)"k", 1, NULL, NULL, err, sizeof(err)),
        -1);
    /* err may be NULL */
    CHECK_INT(jwt_auth_init(&a, "HS1", (const unsigned char *)"k", 1, NULL, NULL, NULL, 0), -1);

    /* A zeroed (never initialised) verifier refuses everything. */
    struct jwt_auth zero;
    memset(&zero, 0, sizeof(zero));
    char *tok = hs256("{\"sub\":\"1\",\"exp\":1700000600}");
    CHECK_INT(verify(&zero, tok, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
    CHECK_INT(jwt_auth_verify(NULL, tok, strlen(tok), NOW, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
    free(tok);
    jwt_auth_free(&zero);
}

struct claim_vector {
    const char *payload;
    enum jwt_auth_status want;
    int64_t uid; /* expected when want is OK */
};

/* NOW = 1700000000; "exp":1700000600 is ten minutes ahead. */
static const struct claim_vector subject_vectors[] = {
    {"{\"sub\":\"42\",\"exp\":1700000600}", JWT_AUTH_OK, 42},
    {"{\"sub\":42,\"exp\":1700000600}", JWT_AUTH_OK, 42},
    {"{\"userId\":7,\"exp\":1700000600}", JWT_AUTH_OK, 7},
    {"{\"userId\":\"8\",\"exp\":1700000600}", JWT_AUTH_OK, 8},
    {"{\"id\":9,\"exp\":1700000600}", JWT_AUTH_OK, 9},
    {"{\"id\":\"10\",\"exp\":1700000600}", JWT_AUTH_OK, 10},
    /* fallback order: sub, then userId, then id */
    {"{\"id\":3,\"userId\":2,\"sub\":\"1\",\"exp\":1700000600}", JWT_AUTH_OK, 1},
    {"{\"id\":3,\"userId\":2,\"exp\":1700000600}", JWT_AUTH_OK, 2},
    {"{\"sub\":null,\"userId\":5,\"exp\":1700000600}", JWT_AUTH_OK, 5},
    {"{\"sub\":null,\"userId\":null,\"id\":6,\"exp\":1700000600}", JWT_AUTH_OK, 6},
    /* the first present claim decides; a bad sub does not fall through */
    {"{\"sub\":\"abc\",\"userId\":5,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\"auth0|123\",\"id\":5,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    /* limits */
    {"{\"sub\":\"1\",\"exp\":1700000600}", JWT_AUTH_OK, 1},
    {"{\"sub\":\"9007199254740991\",\"exp\":1700000600}", JWT_AUTH_OK, 9007199254740991},
    {"{\"sub\":9007199254740991,\"exp\":1700000600}", JWT_AUTH_OK, 9007199254740991},
    {"{\"sub\":\"9007199254740992\",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":9007199254740992,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":9223372036854775807,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":-9223372036854775808,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\"9223372036854775808\",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\"99999999999999999999999\",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":1e30,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    /* not positive integers */
    {"{\"sub\":\"0\",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":0,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":-1,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\"-1\",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"userId\":-5,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\"12abc\",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\" 12\",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\"12 \",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\"+12\",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\"012\",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\"0x10\",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\"4.2\",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\"12\\u0000\",\"exp\":1700000600}", JWT_AUTH_ERR_SIGNATURE, 0}, /* jansson */
    {"{\"sub\":\"\",\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":1.5,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":42.0,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":1e3,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":true,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":[1],\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":{\"id\":1},\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"user\":1,\"uid\":2,\"exp\":1700000600}", JWT_AUTH_ERR_SUBJECT, 0},
    /* libjwt's parser (jansson) refuses integers beyond int64 before any
     * signature check, and libjwt cannot say why: reported as bad-signature. */
    {"{\"sub\":9223372036854775808,\"exp\":1700000600}", JWT_AUTH_ERR_SIGNATURE, 0},
    /* duplicate keys: json-c and jansson both keep the last */
    {"{\"sub\":\"1\",\"sub\":\"2\",\"exp\":1700000600}", JWT_AUTH_OK, 2},
};

static const struct claim_vector time_vectors[] = {
    {"{\"sub\":\"1\"}", JWT_AUTH_ERR_NO_EXP, 0},
    {"{\"sub\":\"1\",\"exp\":\"1700000600\"}", JWT_AUTH_ERR_NO_EXP, 0}, /* strings refused */
    {"{\"sub\":\"1\",\"exp\":null}", JWT_AUTH_ERR_NO_EXP, 0},
    {"{\"sub\":\"1\",\"exp\":true}", JWT_AUTH_ERR_NO_EXP, 0},
    {"{\"sub\":\"1\",\"exp\":[1700000600]}", JWT_AUTH_ERR_NO_EXP, 0},
    {"{\"sub\":\"1\",\"exp\":{}}", JWT_AUTH_ERR_NO_EXP, 0},
    {"{\"sub\":\"1\",\"EXP\":1700000600}", JWT_AUTH_ERR_NO_EXP, 0},
    {"{\"sub\":\"1\",\"exp\":1700000001}", JWT_AUTH_OK, 1},
    {"{\"sub\":\"1\",\"exp\":1700000000}", JWT_AUTH_ERR_EXPIRED, 0}, /* now == exp */
    {"{\"sub\":\"1\",\"exp\":1699999999}", JWT_AUTH_ERR_EXPIRED, 0},
    {"{\"sub\":\"1\",\"exp\":0}", JWT_AUTH_ERR_EXPIRED, 0},
    {"{\"sub\":\"1\",\"exp\":-5}", JWT_AUTH_ERR_EXPIRED, 0},
    {"{\"sub\":\"1\",\"exp\":-9223372036854775808}", JWT_AUTH_ERR_EXPIRED, 0},
    {"{\"sub\":\"1\",\"exp\":1700000000.5}", JWT_AUTH_ERR_EXPIRED, 0}, /* floored */
    {"{\"sub\":\"1\",\"exp\":1700000001.5}", JWT_AUTH_OK, 1},
    {"{\"sub\":\"1\",\"exp\":1e300}", JWT_AUTH_OK, 1},
    {"{\"sub\":\"1\",\"exp\":-1e300}", JWT_AUTH_ERR_EXPIRED, 0},
    /* from the fuzzer: negative fractions floor downwards, huge reals clamp */
    {"{\"sub\":\"1\",\"exp\":-7.7}", JWT_AUTH_ERR_EXPIRED, 0},
    {"{\"exp\":9e47}", JWT_AUTH_ERR_SUBJECT, 0},
    {"{\"sub\":\"1\",\"exp\":9223372036854775807}", JWT_AUTH_OK, 1},
    /* expiry is checked before the subject */
    {"{\"sub\":\"x\",\"exp\":1}", JWT_AUTH_ERR_EXPIRED, 0},
    {"{\"sub\":\"x\"}", JWT_AUTH_ERR_NO_EXP, 0},
    /* nbf */
    {"{\"sub\":\"1\",\"exp\":1700000600,\"nbf\":1700000010}", JWT_AUTH_ERR_NOT_YET, 0},
    {"{\"sub\":\"1\",\"exp\":1700000600,\"nbf\":1700000001}", JWT_AUTH_ERR_NOT_YET, 0},
    {"{\"sub\":\"1\",\"exp\":1700000600,\"nbf\":1700000000}", JWT_AUTH_OK, 1},
    {"{\"sub\":\"1\",\"exp\":1700000600,\"nbf\":1600000000}", JWT_AUTH_OK, 1},
    {"{\"sub\":\"1\",\"exp\":1700000600,\"nbf\":null}", JWT_AUTH_OK, 1},
    {"{\"sub\":\"1\",\"exp\":1700000600,\"nbf\":1700000000.5}", JWT_AUTH_OK, 1},
    {"{\"sub\":\"1\",\"exp\":1700000600,\"nbf\":1e300}", JWT_AUTH_ERR_NOT_YET, 0},
    {"{\"sub\":\"1\",\"exp\":1700000600,\"nbf\":\"1600000000\"}", JWT_AUTH_ERR_MALFORMED, 0},
    {"{\"sub\":\"1\",\"exp\":1700000600,\"nbf\":false}", JWT_AUTH_ERR_MALFORMED, 0},
    /* iat is informational and never checked */
    {"{\"sub\":\"1\",\"exp\":1700000600,\"iat\":1800000000}", JWT_AUTH_OK, 1},
    {"{\"sub\":\"1\",\"exp\":1700000600,\"iat\":\"x\"}", JWT_AUTH_OK, 1},
};

static void run_claim_vectors(const struct jwt_auth *a, const struct claim_vector *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t uid = -1;
        enum jwt_auth_status st = verify_payload(a, v[i].payload, &uid);
        if (st != v[i].want)
            fprintf(stderr, "vector %s: got %s, want %s\n", v[i].payload, jwt_auth_status_str(st),
                    jwt_auth_status_str(v[i].want));
        CHECK_INT(st, v[i].want);
        CHECK_INT(uid, v[i].want == JWT_AUTH_OK ? v[i].uid : 0);
    }
}

static void test_claims(void)
{
    struct jwt_auth a;
    int64_t uid, exp;
    char *tok;

    CHECK_INT(init(&a, "HS256", SECRET, NULL, NULL), 0);
    run_claim_vectors(&a, subject_vectors, sizeof(subject_vectors) / sizeof(subject_vectors[0]));
    run_claim_vectors(&a, time_vectors, sizeof(time_vectors) / sizeof(time_vectors[0]));

    /* *exp reports the claim (floored, clamped) */
    tok = hs256("{\"sub\":\"5\",\"exp\":1700000600}");
    CHECK_INT(verify(&a, tok, &uid, &exp), JWT_AUTH_OK);
    CHECK_INT(uid, 5);
    CHECK_INT(exp, 1700000600);
    free(tok);
    tok = hs256("{\"sub\":\"5\",\"exp\":1700000600.9}");
    CHECK_INT(verify(&a, tok, &uid, &exp), JWT_AUTH_OK);
    CHECK_INT(exp, 1700000600);
    free(tok);
    tok = hs256("{\"sub\":\"5\",\"exp\":1e300}");
    CHECK_INT(verify(&a, tok, &uid, &exp), JWT_AUTH_OK);
    CHECK_INT(exp, INT64_C(1) << 40);
    free(tok);
    /* outputs are optional, and zeroed on failure */
    tok = hs256("{\"sub\":\"5\",\"exp\":1}");
    uid = exp = 77;
    CHECK_INT(jwt_auth_verify(&a, tok, strlen(tok), NOW, &uid, &exp), JWT_AUTH_ERR_EXPIRED);
    CHECK_INT(uid, 0);
    CHECK_INT(exp, 0);
    free(tok);
    tok = hs256("{\"sub\":\"5\",\"exp\":1700000600}");
    CHECK_INT(jwt_auth_verify(&a, tok, strlen(tok), NOW, NULL, NULL), JWT_AUTH_OK);
    /* the same token expires as the clock moves */
    CHECK_INT(jwt_auth_verify(&a, tok, strlen(tok), NOW + 599, NULL, NULL), JWT_AUTH_OK);
    CHECK_INT(jwt_auth_verify(&a, tok, strlen(tok), NOW + 600, NULL, NULL), JWT_AUTH_ERR_EXPIRED);
    free(tok);

    /* leeway widens both ends, by exactly leeway_s */
    a.leeway_s = 30;
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":1699999990}", NULL), JWT_AUTH_OK);
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":1699999971}", NULL), JWT_AUTH_OK);
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":1699999970}", NULL), JWT_AUTH_ERR_EXPIRED);
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":1700000600,\"nbf\":1700000030}", NULL),
              JWT_AUTH_OK);
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":1700000600,\"nbf\":1700000031}", NULL),
              JWT_AUTH_ERR_NOT_YET);
    /* a negative leeway counts as none, a huge one cannot overflow */
    a.leeway_s = -1000;
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":1700000001}", NULL), JWT_AUTH_OK);
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":1700000000}", NULL), JWT_AUTH_ERR_EXPIRED);
    a.leeway_s = 0x7fffffffL;
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":9223372036854775807}", NULL), JWT_AUTH_OK);
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":-9223372036854775808}", NULL),
              JWT_AUTH_ERR_EXPIRED);
    a.leeway_s = 0;

    /* payloads that are not one JSON object */
    CHECK_INT(verify_payload(&a, "[]", NULL), JWT_AUTH_ERR_MALFORMED);
    CHECK_INT(verify_payload(&a, "null", NULL), JWT_AUTH_ERR_MALFORMED);
    CHECK_INT(verify_payload(&a, "42", NULL), JWT_AUTH_ERR_MALFORMED);
    CHECK_INT(verify_payload(&a, "\"sub\"", NULL), JWT_AUTH_ERR_MALFORMED);
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":1700000600", NULL),
              JWT_AUTH_ERR_MALFORMED);
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":1700000600} x", NULL),
              JWT_AUTH_ERR_MALFORMED);
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":1700000600}{}", NULL),
              JWT_AUTH_ERR_MALFORMED);
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":1700000600,}", NULL),
              JWT_AUTH_ERR_MALFORMED);
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"n\":\"\xff\xfe\",\"exp\":1700000600}", NULL),
              JWT_AUTH_ERR_MALFORMED); /* not UTF-8 */
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"n\":\"\xc3\xa9\",\"exp\":1700000600}", NULL),
              JWT_AUTH_OK); /* UTF-8 is fine */
    {
        /* 20 levels of nesting is past our depth limit of 16 */
        char deep[256] = "{\"sub\":\"1\",\"exp\":1700000600,\"x\":";
        for (int i = 0; i < 20; i++)
            strcat(deep, "[");
        for (int i = 0; i < 20; i++)
            strcat(deep, "]");
        strcat(deep, "}");
        CHECK_INT(verify_payload(&a, deep, NULL), JWT_AUTH_ERR_MALFORMED);
    }
    CHECK_INT(verify_payload(&a, "{'sub':'1','exp':1700000600}", NULL), JWT_AUTH_ERR_MALFORMED);
    /* json-c accepts NaN even in strict mode, jansson (inside libjwt) does
     * not, and libjwt cannot say why: bad-signature */
    CHECK_INT(verify_payload(&a, "{\"sub\":\"1\",\"exp\":NaN}", NULL), JWT_AUTH_ERR_SIGNATURE);
    /* a payload with NUL bytes in it */
    static const char nul_pay[] = "{\"sub\":\"1\",\"exp\":1700000600}\0junk";
    tok =
        make_token_n(EVP_sha256(), SECRET, strlen(SECRET), HDR_HS256, nul_pay, sizeof(nul_pay) - 1);
    CHECK_INT(verify(&a, tok, NULL, NULL), JWT_AUTH_ERR_MALFORMED);
    free(tok);
    jwt_auth_free(&a);
}

static void test_issuer_audience(void)
{
    struct jwt_auth a, plain;

    CHECK_INT(init(&a, "HS256", SECRET, "https://auth.example", "herald"), 0);
    CHECK_INT(init(&plain, "HS256", SECRET, NULL, NULL), 0);

    static const struct claim_vector v[] = {
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://auth.example\",\"aud\":\"herald\"}",
         JWT_AUTH_OK, 1},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://auth.example\","
         "\"aud\":[\"other\",\"herald\"]}",
         JWT_AUTH_OK, 1},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://auth.example\","
         "\"aud\":[1,null,\"herald\"]}",
         JWT_AUTH_OK, 1},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://auth.example\","
         "\"aud\":[\"other\"]}",
         JWT_AUTH_ERR_AUDIENCE, 0},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://auth.example\",\"aud\":[]}",
         JWT_AUTH_ERR_AUDIENCE, 0},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://auth.example\",\"aud\":\"Herald\"}",
         JWT_AUTH_ERR_AUDIENCE, 0},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://auth.example\","
         "\"aud\":\"herald2\"}",
         JWT_AUTH_ERR_AUDIENCE, 0},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://auth.example\","
         "\"aud\":\"herald\\u0000x\"}",
         JWT_AUTH_ERR_SIGNATURE, 0}, /* jansson refuses \u0000 */
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://auth.example\","
         "\"aud\":[[\"herald\"]]}",
         JWT_AUTH_ERR_AUDIENCE, 0},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://auth.example\",\"aud\":null}",
         JWT_AUTH_ERR_AUDIENCE, 0},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://auth.example\"}",
         JWT_AUTH_ERR_AUDIENCE, 0},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"aud\":\"herald\"}", JWT_AUTH_ERR_ISSUER, 0},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://evil.example\",\"aud\":\"herald\"}",
         JWT_AUTH_ERR_ISSUER, 0},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"https://auth.example/\","
         "\"aud\":\"herald\"}",
         JWT_AUTH_ERR_ISSUER, 0},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":[\"https://auth.example\"],"
         "\"aud\":\"herald\"}",
         JWT_AUTH_ERR_ISSUER, 0},
        /* issuer before audience, both before subject, all after expiry */
        {"{\"sub\":\"x\",\"exp\":1700000600,\"iss\":\"bad\",\"aud\":\"bad\"}", JWT_AUTH_ERR_ISSUER,
         0},
        {"{\"sub\":\"x\",\"exp\":1700000600,\"iss\":\"https://auth.example\",\"aud\":\"bad\"}",
         JWT_AUTH_ERR_AUDIENCE, 0},
        {"{\"sub\":\"x\",\"exp\":1,\"iss\":\"bad\",\"aud\":\"bad\"}", JWT_AUTH_ERR_EXPIRED, 0},
    };
    run_claim_vectors(&a, v, sizeof(v) / sizeof(v[0]));

    /* when not configured, iss and aud are ignored whatever they hold */
    static const struct claim_vector u[] = {
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":\"anyone\",\"aud\":[\"x\"]}", JWT_AUTH_OK, 1},
        {"{\"sub\":\"1\",\"exp\":1700000600,\"iss\":42,\"aud\":{}}", JWT_AUTH_OK, 1},
    };
    run_claim_vectors(&plain, u, sizeof(u) / sizeof(u[0]));
    jwt_auth_free(&a);
    jwt_auth_free(&plain);
}

struct header_vector {
    const char *header;
    const char *md; /* HMAC digest name, NULL: no signature */
    enum jwt_auth_status want;
};

static const struct header_vector header_vectors[] = {
    {"{\"alg\":\"HS256\"}", "SHA256", JWT_AUTH_OK},
    {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "SHA256", JWT_AUTH_OK},
    {"{\"typ\":\"jwt\",\"alg\":\"HS256\",\"kid\":\"k1\"}", "SHA256", JWT_AUTH_OK},
    /* alg none in any spelling (libjwt compares with strcasecmp) */
    {"{\"alg\":\"none\"}", NULL, JWT_AUTH_ERR_ALG},
    {"{\"alg\":\"None\"}", NULL, JWT_AUTH_ERR_ALG},
    {"{\"alg\":\"NONE\"}", NULL, JWT_AUTH_ERR_ALG},
    {"{\"alg\":\"nOnE\"}", NULL, JWT_AUTH_ERR_ALG},
    {"{\"alg\":\"none\",\"typ\":\"JWT\"}", NULL, JWT_AUTH_ERR_ALG},
    {"{\"alg\":\"none\"}", "SHA256", JWT_AUTH_ERR_ALG},
    /* other HMAC algorithms, correctly signed with our very secret */
    {"{\"alg\":\"HS384\",\"typ\":\"JWT\"}", "SHA384", JWT_AUTH_ERR_ALG},
    {"{\"alg\":\"HS512\",\"typ\":\"JWT\"}", "SHA512", JWT_AUTH_ERR_ALG},
    /* alg values are case-sensitive (RFC 7515 §4.1.1), libjwt's are not */
    {"{\"alg\":\"hs256\"}", "SHA256", JWT_AUTH_ERR_ALG},
    {"{\"alg\":\"Hs256\"}", "SHA256", JWT_AUTH_ERR_ALG},
    {"{\"alg\":\"RS256\"}", "SHA256", JWT_AUTH_ERR_ALG},
    {"{\"alg\":\"HS256 \"}", "SHA256", JWT_AUTH_ERR_ALG},
    {"{\"alg\":\"HS256\\u0000\"}", "SHA256", JWT_AUTH_ERR_ALG},
    {"{}", "SHA256", JWT_AUTH_ERR_ALG},
    {"{\"typ\":\"JWT\"}", "SHA256", JWT_AUTH_ERR_ALG},
    {"{\"alg\":null}", "SHA256", JWT_AUTH_ERR_ALG},
    {"{\"alg\":256}", "SHA256", JWT_AUTH_ERR_ALG},
    {"{\"alg\":[\"HS256\"]}", "SHA256", JWT_AUTH_ERR_ALG},
    {"{\"ALG\":\"HS256\"}", "SHA256", JWT_AUTH_ERR_ALG},
    /* duplicate alg: both parsers keep the last one */
    {"{\"alg\":\"HS256\",\"alg\":\"none\"}", NULL, JWT_AUTH_ERR_ALG},
    {"{\"alg\":\"none\",\"alg\":\"HS256\"}", "SHA256", JWT_AUTH_OK},
    /* typ other than JWT (libjwt 1.10 refuses them), crit extensions */
    {"{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", "SHA256", JWT_AUTH_ERR_MALFORMED},
    {"{\"alg\":\"HS256\",\"typ\":1}", "SHA256", JWT_AUTH_ERR_MALFORMED},
    {"{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "SHA256", JWT_AUTH_ERR_MALFORMED},
    /* not a JSON object */
    {"[\"HS256\"]", "SHA256", JWT_AUTH_ERR_MALFORMED},
    {"\"HS256\"", "SHA256", JWT_AUTH_ERR_MALFORMED},
    {"alg=HS256", "SHA256", JWT_AUTH_ERR_MALFORMED},
    {"{\"alg\":\"HS256\"", "SHA256", JWT_AUTH_ERR_MALFORMED},
    /* well-formed header, signature of the wrong size/kind */
    {"{\"alg\":\"HS256\"}", NULL, JWT_AUTH_ERR_SIGNATURE},
    {"{\"alg\":\"HS256\"}", "SHA512", JWT_AUTH_ERR_SIGNATURE},
};

static void test_headers(void)
{
    struct jwt_auth a;
    const char *pay = "{\"sub\":\"3\",\"exp\":1700000600}";
    char *tok;

    CHECK_INT(init(&a, "HS256", SECRET, NULL, NULL), 0);
    for (size_t i = 0; i < sizeof(header_vectors) / sizeof(header_vectors[0]); i++) {
        const struct header_vector *v = &header_vectors[i];
        const EVP_MD *md = v->md ? EVP_get_digestbyname(v->md) : NULL;
        tok = make_token(md, SECRET, v->header, pay);
        enum jwt_auth_status st = verify(&a, tok, NULL, NULL);
        if (st != v->want)
            fprintf(stderr, "header %s: got %s, want %s\n", v->header, jwt_auth_status_str(st),
                    jwt_auth_status_str(v->want));
        CHECK_INT(st, v->want);
        free(tok);
    }

    /* The classic hand-made "none" token, {"alg":"none"} unsigned. */
    tok = make_token(NULL, "", "{\"alg\":\"none\"}", pay);
    CHECK(strncmp(tok, "eyJhbGciOiJub25lIn0.", 20) == 0);
    CHECK(tok[strlen(tok) - 1] == '.');
    CHECK_INT(verify(&a, tok, NULL, NULL), JWT_AUTH_ERR_ALG);
    free(tok);
    /* ... and with the signature of a real token pasted on */
    char *real = hs256(pay);
    tok = make_token(NULL, "", "{\"alg\":\"None\"}", pay);
    char *pasted = malloc(strlen(tok) + strlen(real) + 1);
    strcpy(pasted, tok);
    strcat(pasted, strrchr(real, '.') + 1);
    CHECK_INT(verify(&a, pasted, NULL, NULL), JWT_AUTH_ERR_ALG);
    free(pasted);
    free(tok);
    free(real);
    jwt_auth_free(&a);
}

static void test_shapes(void)
{
    struct jwt_auth a;
    char *good;
    char buf[JWT_AUTH_MAX_TOKEN + 64];

    CHECK_INT(init(&a, "HS256", SECRET, NULL, NULL), 0);
    good = hs256("{\"sub\":\"3\",\"exp\":1700000600}");
    CHECK_INT(verify(&a, good, NULL, NULL), JWT_AUTH_OK);

    static const char *const malformed[] = {
        "",
        ".",
        "..",
        "...",
        "abc",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIzIn0",          /* two parts */
        "eyJhbGciOiJIUzI1NiJ9..sig",                     /* empty payload */
        ".eyJzdWIiOiIzIn0.sig",                          /* empty header */
        "!!!.???.***",                                   /* garbage base64 */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIzIn0=.abc",     /* padding */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIzIn0+/.abc",    /* standard alphabet */
        "eyJhbGciOiJIUzI1NiJ9 .eyJzdWIiOiIzIn0.abc",     /* space */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIzIn0.abcde",    /* 4n+1 characters */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIzIn1.abc",      /* non-canonical last char */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIzIn0.abc.def",  /* four parts */
        "a.b.c.d.e",                                     /* JWE shape */
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIzIn0.a", /* header value, not token */
        "AAAA.AAAA.AAAA",                                /* base64 of zero bytes */
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        enum jwt_auth_status st = verify(&a, malformed[i], NULL, NULL);
        if (st != JWT_AUTH_ERR_MALFORMED)
            fprintf(stderr, "shape \"%s\": got %s\n", malformed[i], jwt_auth_status_str(st));
        CHECK_INT(st, JWT_AUTH_ERR_MALFORMED);
    }
    CHECK_INT(jwt_auth_verify(&a, NULL, 10, NOW, NULL, NULL), JWT_AUTH_ERR_MALFORMED);
    CHECK_INT(jwt_auth_verify(&a, good, 0, NOW, NULL, NULL), JWT_AUTH_ERR_MALFORMED);

    /* (pointer, length): the token need not be NUL-terminated, and bytes
     * after len are not looked at */
    size_t n = strlen(good);
    memcpy(buf, good, n);
    memcpy(buf + n, "garbage", 7);
    CHECK_INT(jwt_auth_verify(&a, buf, n, NOW, NULL, NULL), JWT_AUTH_OK);
    /* an embedded NUL or a trailing newline is not part of a token */
    buf[n] = '\0';
    CHECK_INT(jwt_auth_verify(&a, buf, n + 1, NOW, NULL, NULL), JWT_AUTH_ERR_MALFORMED);
    buf[n] = '\n';
    CHECK_INT(jwt_auth_verify(&a, buf, n + 1, NOW, NULL, NULL), JWT_AUTH_ERR_MALFORMED);
    buf[10] = '\0';
    CHECK_INT(jwt_auth_verify(&a, buf, n, NOW, NULL, NULL), JWT_AUTH_ERR_MALFORMED);

    /* every proper prefix of a good token is refused */
    int prefix_ok = 0;
    for (size_t i = 0; i < n; i++)
        if (jwt_auth_verify(&a, good, i, NOW, NULL, NULL) == JWT_AUTH_OK)
            prefix_ok++;
    CHECK_INT(prefix_ok, 0);

    /* every single-character change anywhere is refused */
    static const char repl[] = "Ax0-_.=+";
    int mutant_ok = 0, mutants = 0;
    for (size_t i = 0; i < n; i++) {
        for (const char *r = repl; *r; r++) {
            if (good[i] == *r)
                continue;
            memcpy(buf, good, n);
            buf[i] = *r;
            mutants++;
            if (jwt_auth_verify(&a, buf, n, NOW, NULL, NULL) == JWT_AUTH_OK)
                mutant_ok++;
        }
    }
    CHECK(mutants > 500);
    CHECK_INT(mutant_ok, 0);

    /* size limit: exactly JWT_AUTH_MAX_TOKEN is fine, one more is not */
    char *pay = malloc(JWT_AUTH_MAX_TOKEN);
    size_t fill = 6000;
    for (;;) {
        snprintf(pay, JWT_AUTH_MAX_TOKEN, "{\"sub\":\"3\",\"exp\":1700000600,\"pad\":\"%0*d\"}",
                 (int)fill, 0);
        char *t = hs256(pay);
        size_t tl = strlen(t);
        free(t);
        if (tl >= JWT_AUTH_MAX_TOKEN)
            break;
        fill++;
    }
    /* fill now gives >= MAX; back off until exactly MAX or just below */
    char *big = NULL;
    for (size_t f = fill; f > fill - 8; f--) {
        snprintf(pay, JWT_AUTH_MAX_TOKEN, "{\"sub\":\"3\",\"exp\":1700000600,\"pad\":\"%0*d\"}",
                 (int)f, 0);
        big = hs256(pay);
        if (strlen(big) <= JWT_AUTH_MAX_TOKEN)
            break;
        free(big);
        big = NULL;
    }
    CHECK(big != NULL);
    if (big) {
        CHECK(strlen(big) > JWT_AUTH_MAX_TOKEN - 4);
        CHECK_INT(verify(&a, big, NULL, NULL), JWT_AUTH_OK);
        free(big);
    }
    snprintf(pay, JWT_AUTH_MAX_TOKEN, "{\"sub\":\"3\",\"exp\":1700000600,\"pad\":\"%0*d\"}",
             (int)fill + 4, 0);
    big = hs256(pay);
    CHECK(strlen(big) > JWT_AUTH_MAX_TOKEN);
    CHECK_INT(verify(&a, big, NULL, NULL), JWT_AUTH_ERR_TOO_LONG);
    free(big);
    free(pay);
    memset(buf, 'a', sizeof(buf));
    CHECK_INT(jwt_auth_verify(&a, buf, JWT_AUTH_MAX_TOKEN + 1, NOW, NULL, NULL),
              JWT_AUTH_ERR_TOO_LONG);
    CHECK_INT(jwt_auth_verify(&a, buf, (size_t)-1, NOW, NULL, NULL), JWT_AUTH_ERR_TOO_LONG);
    CHECK_INT(jwt_auth_verify(&a, buf, JWT_AUTH_MAX_TOKEN, NOW, NULL, NULL),
              JWT_AUTH_ERR_MALFORMED);
    free(good);
    jwt_auth_free(&a);
}

static void test_signatures(void)
{
    struct jwt_auth a, other;
    const char *pay = "{\"sub\":\"3\",\"exp\":1700000600}";
    char *tok;

    CHECK_INT(init(&a, "HS256", SECRET, NULL, NULL), 0);
    CHECK_INT(init(&other, "HS256", "another-secret-another-secret-00", NULL, NULL), 0);

    tok = hs256(pay);
    CHECK_INT(verify(&a, tok, NULL, NULL), JWT_AUTH_OK);
    CHECK_INT(verify(&other, tok, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
    /* flip one character in the middle of the signature */
    char *sig = strrchr(tok, '.') + 1;
    char saved = sig[5];
    sig[5] = saved == 'A' ? 'B' : 'A';
    CHECK_INT(verify(&a, tok, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
    sig[5] = saved;
    CHECK_INT(verify(&a, tok, NULL, NULL), JWT_AUTH_OK);
    /* 40 of the 43 characters: 30 bytes, still canonical base64url */
    CHECK_INT(strlen(sig), 43);
    sig[40] = 0;
    CHECK_INT(verify(&a, tok, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
    /* signature removed entirely */
    sig[0] = 0;
    CHECK_INT(verify(&a, tok, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
    free(tok);

    /* a signature from one token on another token's payload */
    char *t1 = hs256("{\"sub\":\"3\",\"exp\":1700000600}");
    char *t2 = hs256("{\"sub\":\"4\",\"exp\":1700000600}");
    char *swap = malloc(strlen(t1) + strlen(t2) + 1);
    size_t body = (size_t)(strrchr(t2, '.') - t2);
    memcpy(swap, t2, body);
    strcpy(swap + body, strrchr(t1, '.'));
    CHECK_INT(verify(&a, swap, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
    free(swap);
    free(t1);
    free(t2);

    /* the signature is checked before any claim: a forged token with bad
     * claims is still just a bad signature */
    tok = make_token(EVP_sha256(), "wrong", HDR_HS256, "{\"sub\":\"x\"}");
    CHECK_INT(verify(&a, tok, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
    free(tok);

    /* HMAC keys are bytes: a secret with a NUL in it is used whole */
    static const unsigned char bin_key[] = {'k', 0, 'e', 'y', 0, 1, 2, 3};
    struct jwt_auth bin;
    CHECK_INT(jwt_auth_init(&bin, "HS256", bin_key, sizeof(bin_key), NULL, NULL, NULL, 0), 0);
    tok = make_token_n(EVP_sha256(), bin_key, sizeof(bin_key), HDR_HS256, pay, strlen(pay));
    CHECK_INT(verify(&bin, tok, NULL, NULL), JWT_AUTH_OK);
    free(tok);
    tok = make_token_n(EVP_sha256(), bin_key, 1, HDR_HS256, pay, strlen(pay));
    CHECK_INT(verify(&bin, tok, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
    free(tok);
    jwt_auth_free(&bin);

    jwt_auth_free(&a);
    jwt_auth_free(&other);
}

static void test_sign_hs256(void)
{
    struct jwt_auth a;
    int64_t uid, exp;
    char *tok;
    struct json_object *claims, *val;

    CHECK_INT(init(&a, "HS256", SECRET, "iss-1", "aud-1"), 0);
    tok = jwt_auth_sign("HS256", (const unsigned char *)SECRET, strlen(SECRET), 42, 1700000600,
                        1699999000, "iss-1", "aud-1");
    CHECK(tok != NULL);
    if (tok) {
        CHECK_INT(verify(&a, tok, &uid, &exp), JWT_AUTH_OK);
        CHECK_INT(uid, 42);
        CHECK_INT(exp, 1700000600);
        /* what the signer wrote: sub as a digit string, exp/nbf/iat numbers */
        claims = token_part_json(tok, 1);
        CHECK(claims != NULL);
        CHECK(json_object_object_get_ex(claims, "sub", &val) &&
              json_object_is_type(val, json_type_string));
        CHECK_STR(json_object_get_string(val), "42");
        CHECK(json_object_object_get_ex(claims, "exp", &val) &&
              json_object_is_type(val, json_type_int) && json_object_get_int64(val) == 1700000600);
        CHECK(json_object_object_get_ex(claims, "nbf", &val) &&
              json_object_get_int64(val) == 1699999000);
        CHECK(json_object_object_get_ex(claims, "iat", &val) &&
              json_object_is_type(val, json_type_int) &&
              llabs((long long)(json_object_get_int64(val) - (int64_t)time(NULL))) < 60);
        CHECK(json_object_object_get_ex(claims, "iss", &val) &&
              strcmp(json_object_get_string(val), "iss-1") == 0);
        CHECK(json_object_object_get_ex(claims, "aud", &val) &&
              strcmp(json_object_get_string(val), "aud-1") == 0);
        json_object_put(claims);
        struct json_object *hdr = token_part_json(tok, 0);
        CHECK(hdr && json_object_object_get_ex(hdr, "alg", &val) &&
              strcmp(json_object_get_string(val), "HS256") == 0);
        json_object_put(hdr);
        free(tok);
    }

    /* nbf 0 and NULL/"" iss/aud are left out */
    tok = jwt_auth_sign("hs256", (const unsigned char *)SECRET, strlen(SECRET), 7, 1700000600, 0,
                        NULL, "");
    CHECK(tok != NULL);
    if (tok) {
        claims = token_part_json(tok, 1);
        CHECK(claims && !json_object_object_get_ex(claims, "nbf", NULL) &&
              !json_object_object_get_ex(claims, "iss", NULL) &&
              !json_object_object_get_ex(claims, "aud", NULL));
        json_object_put(claims);
        CHECK_INT(verify(&a, tok, NULL, NULL), JWT_AUTH_ERR_ISSUER);
        free(tok);
    }

    /* the largest user id round-trips; beyond it nothing is signed */
    tok = jwt_auth_sign("HS256", (const unsigned char *)SECRET, strlen(SECRET),
                        JWT_AUTH_MAX_USER_ID, 1700000600, 0, "iss-1", "aud-1");
    CHECK(tok != NULL);
    if (tok) {
        CHECK_INT(verify(&a, tok, &uid, NULL), JWT_AUTH_OK);
        CHECK_INT(uid, JWT_AUTH_MAX_USER_ID);
        free(tok);
    }
    const unsigned char *k = (const unsigned char *)SECRET;
    CHECK(jwt_auth_sign("HS256", k, strlen(SECRET), JWT_AUTH_MAX_USER_ID + 1, 1, 0, NULL, NULL) ==
          NULL);
    CHECK(jwt_auth_sign("HS256", k, strlen(SECRET), 0, 1700000600, 0, NULL, NULL) == NULL);
    CHECK(jwt_auth_sign("HS256", k, strlen(SECRET), -1, 1700000600, 0, NULL, NULL) == NULL);
    CHECK(jwt_auth_sign("none", k, strlen(SECRET), 1, 1700000600, 0, NULL, NULL) == NULL);
    CHECK(jwt_auth_sign("HS512", k, strlen(SECRET), 1, 1700000600, 0, NULL, NULL) == NULL);
    CHECK(jwt_auth_sign(NULL, k, strlen(SECRET), 1, 1700000600, 0, NULL, NULL) == NULL);
    CHECK(jwt_auth_sign("HS256", k, 0, 1, 1700000600, 0, NULL, NULL) == NULL);
    CHECK(jwt_auth_sign("HS256", NULL, 5, 1, 1700000600, 0, NULL, NULL) == NULL);
    /* an already expired token can be signed (tests need them) */
    tok = jwt_auth_sign("HS256", k, strlen(SECRET), 1, 1000, 0, "iss-1", "aud-1");
    CHECK(tok != NULL);
    if (tok)
        CHECK_INT(verify(&a, tok, NULL, NULL), JWT_AUTH_ERR_EXPIRED);
    free(tok);
    jwt_auth_free(&a);
}

/* The profile claims for just-in-time users (jwt_auth_verify_profile). */
static void test_profile_claims(void)
{
    struct jwt_auth a;
    CHECK_INT(init(&a, "HS256", SECRET, NULL, NULL), 0);
    static const struct {
        const char *claims; /* after "sub":"7","exp":... */
        const char *username;
        const char *avatar; /* NULL: none */
    } v[] = {
        {"", "", NULL},
        {",\"username\":\"alice\",\"avatar\":\"/a.png\"", "alice", "/a.png"},
        {",\"preferred_username\":\"bob\",\"picture\":\"https://x/p.png\"", "bob",
         "https://x/p.png"},
        {",\"name\":\"Carol Smith\"", "Carol_Smith", NULL},
        {",\"username\":\"u\",\"preferred_username\":\"p\",\"name\":\"n\"", "u", NULL},
        /* Not strings, or empty: the next claim. */
        {",\"username\":7,\"preferred_username\":\"\",\"name\":\"n\"", "n", NULL},
        {",\"username\":null,\"avatar\":{},\"picture\":\"/p\"", "", "/p"},
        /* Bytes outside [A-Za-z0-9_.-] (UTF-8, quotes) become '_' (a NUL
         * never gets this far: libjwt refuses "\u0000" as a bad token). */
        {",\"username\":\"Zo\u00eb\\\"x\"", "Zo___x", NULL},
        {",\"username\":\"a.b-c_d\"", "a.b-c_d", NULL},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char pay[512];
        snprintf(pay, sizeof(pay), "{\"sub\":\"7\",\"exp\":%lld%s}", (long long)NOW + 60,
                 v[i].claims);
        char *tok = hs256(pay);
        struct jwt_auth_profile p;
        int64_t uid = 0;
        CHECK_INT(jwt_auth_verify_profile(&a, tok, strlen(tok), NOW, &uid, NULL, &p), JWT_AUTH_OK);
        CHECK_INT(uid, 7);
        CHECK_STR(p.username, v[i].username);
        CHECK_INT(p.has_avatar, v[i].avatar != NULL);
        if (v[i].avatar)
            CHECK_STR(p.avatar, v[i].avatar);
        free(tok);
    }
    /* Cut to 64 bytes; a 512-byte avatar fits and a 513-byte one does not. */
    char pay[2048], longname[100], av[514];
    memset(longname, 'n', 99);
    longname[99] = '\0';
    memset(av, 'a', 513);
    av[513] = '\0';
    snprintf(pay, sizeof(pay), "{\"sub\":\"7\",\"exp\":%lld,\"username\":\"%s\",\"avatar\":\"%s\"}",
             (long long)NOW + 60, longname, av);
    char *tok = hs256(pay);
    struct jwt_auth_profile p;
    CHECK_INT(jwt_auth_verify_profile(&a, tok, strlen(tok), NOW, NULL, NULL, &p), JWT_AUTH_OK);
    CHECK_INT((long)strlen(p.username), JWT_AUTH_NAME_MAX);
    CHECK_INT(p.has_avatar, 0);
    free(tok);
    av[512] = '\0';
    snprintf(pay, sizeof(pay), "{\"sub\":\"7\",\"exp\":%lld,\"avatar\":\"%s\"}",
             (long long)NOW + 60, av);
    tok = hs256(pay);
    CHECK_INT(jwt_auth_verify_profile(&a, tok, strlen(tok), NOW, NULL, NULL, &p), JWT_AUTH_OK);
    CHECK_INT(p.has_avatar, 1);
    CHECK_INT((long)strlen(p.avatar), JWT_AUTH_AVATAR_MAX);
    free(tok);
    /* A refused token yields no profile. */
    snprintf(pay, sizeof(pay), "{\"sub\":\"7\",\"exp\":%lld,\"username\":\"x\"}",
             (long long)NOW - 60);
    tok = hs256(pay);
    memset(&p, 'x', sizeof(p));
    CHECK_INT(jwt_auth_verify_profile(&a, tok, strlen(tok), NOW, NULL, NULL, &p),
              JWT_AUTH_ERR_EXPIRED);
    CHECK_STR(p.username, "");
    CHECK_INT(p.has_avatar, 0);
    free(tok);
    jwt_auth_free(&a);
}

static void test_public_key_algs(void)
{
    EVP_PKEY *rsa = gen_rsa(2048), *rsa2 = gen_rsa(2048), *rsa_small = gen_rsa(1024);
    EVP_PKEY *ec = gen_ec(NID_X9_62_prime256v1), *ec2 = gen_ec(NID_X9_62_prime256v1);
    EVP_PKEY *ec384 = gen_ec(NID_secp384r1);
    char *rsa_pub = pem_public(rsa), *rsa_priv = pem_private(rsa, NULL);
    char *rsa_priv_enc = pem_private(rsa, "passphrase");
    char *rsa2_pub = pem_public(rsa2), *rsa_small_pub = pem_public(rsa_small);
    char *rsa_small_priv = pem_private(rsa_small, NULL);
    char *ec_pub = pem_public(ec), *ec_priv = pem_private(ec, NULL);
    char *ec2_pub = pem_public(ec2), *ec384_pub = pem_public(ec384);
    char *ec384_priv = pem_private(ec384, NULL);
    struct jwt_auth rs, rs_other, es, es_other, hs, tmp;
    int64_t uid, exp;
    char *tok;

    /* verifier keys must be public keys of the right kind and size */
    CHECK_INT(init(&rs, "RS256", rsa_pub, NULL, NULL), 0);
    CHECK_INT(init(&rs_other, "RS256", rsa2_pub, NULL, NULL), 0);
    CHECK_INT(init(&es, "ES256", ec_pub, NULL, NULL), 0);
    CHECK_INT(init(&es_other, "es256", ec2_pub, NULL, NULL), 0);
    CHECK_INT(init(&hs, "HS256", SECRET, NULL, NULL), 0);
    CHECK_INT(init(&tmp, "RS256", rsa_priv, NULL, NULL), -1);
    CHECK_INT(init(&tmp, "RS256", ec_pub, NULL, NULL), -1);
    CHECK_INT(init(&tmp, "RS256", rsa_small_pub, NULL, NULL), -1);
    CHECK_INT(init(&tmp, "ES256", rsa_pub, NULL, NULL), -1);
    CHECK_INT(init(&tmp, "ES256", ec384_pub, NULL, NULL), -1);
    CHECK_INT(init(&tmp, "ES256", ec_priv, NULL, NULL), -1);

    /* RS256 round trip */
    tok = jwt_auth_sign("RS256", (const unsigned char *)rsa_priv, strlen(rsa_priv), 1234,
                        1700000600, 0, NULL, NULL);
    CHECK(tok != NULL);
    if (tok) {
        CHECK_INT(verify(&rs, tok, &uid, &exp), JWT_AUTH_OK);
        CHECK_INT(uid, 1234);
        CHECK_INT(exp, 1700000600);
        CHECK_INT(verify(&rs_other, tok, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
        CHECK_INT(verify(&es, tok, NULL, NULL), JWT_AUTH_ERR_ALG);
        CHECK_INT(verify(&hs, tok, NULL, NULL), JWT_AUTH_ERR_ALG);
        /* the RSA signature bytes, tampered */
        char *sig = strrchr(tok, '.') + 1;
        sig[10] = sig[10] == 'A' ? 'B' : 'A';
        CHECK_INT(verify(&rs, tok, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
        free(tok);
    }

    /* ES256 round trips: r and s have a leading zero byte about 1 time in
     * 128 each, so sign enough tokens to cross that padding path */
    int es_ok = 0, es_rounds = 300;
    for (int i = 1; i <= es_rounds; i++) {
        tok = jwt_auth_sign("ES256", (const unsigned char *)ec_priv, strlen(ec_priv), i, 1700000600,
                            0, NULL, NULL);
        if (tok && verify(&es, tok, &uid, NULL) == JWT_AUTH_OK && uid == i &&
            verify(&es_other, tok, NULL, NULL) == JWT_AUTH_ERR_SIGNATURE)
            es_ok++;
        if (i == 1 && tok) {
            CHECK_INT(verify(&rs, tok, NULL, NULL), JWT_AUTH_ERR_ALG);
            CHECK_INT(verify(&hs, tok, NULL, NULL), JWT_AUTH_ERR_ALG);
            /* ES256 signatures are exactly 64 bytes: 86 characters */
            CHECK_INT(strlen(strrchr(tok, '.') + 1), 86);
        }
        free(tok);
    }
    CHECK_INT(es_ok, es_rounds);

    /*
     * Algorithm confusion: the attacker knows the RS256 public key and signs
     * an HS256 token using the PEM text as the HMAC secret. Raw libjwt 1.10
     * accepts that token; we must refuse it before libjwt sees it.
     */
    const char *pay = "{\"sub\":\"1\",\"exp\":1700000600}";
    tok = make_token(EVP_sha256(), rsa_pub, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", pay);
    CHECK_INT(verify(&rs, tok, NULL, NULL), JWT_AUTH_ERR_ALG);
    free(tok);
    tok = make_token(EVP_sha256(), ec_pub, "{\"alg\":\"HS256\"}", pay);
    CHECK_INT(verify(&es, tok, NULL, NULL), JWT_AUTH_ERR_ALG);
    free(tok);
    /* with the alg claiming RS256 but an HMAC for a signature */
    tok = make_token(EVP_sha256(), rsa_pub, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", pay);
    CHECK_INT(verify(&rs, tok, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
    free(tok);
    /* and alg none against public-key verifiers */
    tok = make_token(NULL, "", "{\"alg\":\"none\"}", pay);
    CHECK_INT(verify(&rs, tok, NULL, NULL), JWT_AUTH_ERR_ALG);
    CHECK_INT(verify(&es, tok, NULL, NULL), JWT_AUTH_ERR_ALG);
    free(tok);
    /* an ES256 signature of the wrong length */
    tok = make_token(EVP_sha256(), "x", "{\"alg\":\"ES256\"}", pay);
    CHECK_INT(verify(&es, tok, NULL, NULL), JWT_AUTH_ERR_SIGNATURE);
    free(tok);

    /* signing refuses keys that do not fit, without prompting for a
     * passphrase */
    const char *cases[][2] = {
        {"RS256", rsa_pub},        {"RS256", rsa_priv_enc}, {"RS256", ec_priv},
        {"RS256", "garbage"},      {"ES256", rsa_priv},     {"ES256", ec384_priv},
        {"RS256", rsa_small_priv},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tok = jwt_auth_sign(cases[i][0], (const unsigned char *)cases[i][1], strlen(cases[i][1]), 1,
                            1700000600, 0, NULL, NULL);
        CHECK(tok == NULL);
        free(tok);
    }

    jwt_auth_free(&rs);
    jwt_auth_free(&rs_other);
    jwt_auth_free(&es);
    jwt_auth_free(&es_other);
    jwt_auth_free(&hs);
    free(rsa_pub);
    free(rsa_priv);
    free(rsa_priv_enc);
    free(rsa2_pub);
    free(rsa_small_pub);
    free(rsa_small_priv);
    free(ec_pub);
    free(ec_priv);
    free(ec2_pub);
    free(ec384_pub);
    free(ec384_priv);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(rsa_small);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ec2);
    EVP_PKEY_free(ec384);
}

int main(void)
{
    test_status_words();
    test_init();
    test_claims();
    test_issuer_audience();
    test_headers();
    test_shapes();
    test_signatures();
    test_sign_hs256();
    test_public_key_algs();
    test_profile_claims();
    return check_report("test_jwt_auth");
}
