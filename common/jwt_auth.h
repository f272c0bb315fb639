/*
 * jwt_auth.h - access-token verification on top of libjwt 1.10.
 *
 * libjwt 1.10 checks signatures but has no claim validation (no jwt_valid),
 * and it trusts the token's own "alg" header. We pin the algorithm to the
 * configured one before verifying (so "none" and HS256-signed-with-the-RSA-
 * public-key are refused), require exp, honour nbf, optionally check iss and
 * aud, and read the user id from sub, else userId, else id.
 */
#ifndef HERALD_JWT_AUTH_H
#define HERALD_JWT_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Tokens longer than this are refused unparsed (a real one is ~200-800
 * bytes; 8 KB also bounds the work a hostile peer can ask for). */
#define JWT_AUTH_MAX_TOKEN 8192

/* Largest user id a token may carry: 2^53 - 1. Ids reach browsers as JSON
 * numbers, and JavaScript rounds integers above this silently, which would
 * show one user's presence under another's id. SQLite rowids never get near. */
#define JWT_AUTH_MAX_USER_ID INT64_C(9007199254740991)

enum jwt_auth_status {
    JWT_AUTH_OK = 0,
    JWT_AUTH_ERR_TOO_LONG,  /* over JWT_AUTH_MAX_TOKEN */
    JWT_AUTH_ERR_MALFORMED, /* not three base64url parts of JSON */
    JWT_AUTH_ERR_ALG,       /* alg differs from the configured one (incl. none) */
    JWT_AUTH_ERR_SIGNATURE, /* signature does not verify */
    JWT_AUTH_ERR_NO_EXP,    /* exp missing or not a number */
    JWT_AUTH_ERR_EXPIRED,   /* now >= exp + leeway */
    JWT_AUTH_ERR_NOT_YET,   /* now < nbf - leeway */
    JWT_AUTH_ERR_SUBJECT,   /* no sub/userId/id, or not a positive integer */
    JWT_AUTH_ERR_ISSUER,    /* iss configured and different */
    JWT_AUTH_ERR_AUDIENCE,  /* aud configured and not matching */
};

/* Stable machine word for a status ("expired", "bad-signature", ...). */
const char *jwt_auth_status_str(enum jwt_auth_status st);

struct jwt_auth {
    int alg;            /* jwt_alg_t: JWT_ALG_HS256, JWT_ALG_RS256 or JWT_ALG_ES256 */
    unsigned char *key; /* owned: HMAC secret or PEM public key */
    size_t key_len;
    char *iss;     /* owned, NULL: not checked */
    char *aud;     /* owned, NULL: not checked */
    long leeway_s; /* clock skew allowed on exp/nbf, seconds; 0 after init */
};

/*
 * Sets up a verifier. alg_name: "HS256", "RS256" or "ES256" (case-insensitive).
 * key: the secret (HS256) or PEM public key (RS256/ES256); copied.
 * iss/aud may be NULL or "" (not checked); copied.
 * Returns 0, or -1 with a message in err (unknown alg, empty key, or for
 * RS256/ES256 a key that is not a PEM public key of the right kind: RSA of
 * 2048+ bits, EC P-256). err may be NULL. Free with jwt_auth_free().
 */
int jwt_auth_init(struct jwt_auth *a, const char *alg_name, const unsigned char *key,
                  size_t key_len, const char *iss, const char *aud, char *err, size_t err_len);

/* Frees what jwt_auth_init allocated; safe on a zeroed struct. */
void jwt_auth_free(struct jwt_auth *a);

/*
 * Verifies token[0..len) at time now. On JWT_AUTH_OK sets *user_id
 * (1..JWT_AUTH_MAX_USER_ID) and *exp (the exp claim, seconds since the
 * epoch, fractions dropped); on failure sets both to 0. Either may be NULL.
 * token need not be NUL-terminated. Never logs the token.
 */
enum jwt_auth_status jwt_auth_verify(const struct jwt_auth *a, const char *token, size_t len,
                                     time_t now, int64_t *user_id, int64_t *exp);

/*
 * A verified token's profile claims, for just-in-time users (PROTOCOL.md
 * §6a). username: the first of "username", "preferred_username", "name"
 * that is a non-empty string, every byte outside [A-Za-z0-9_.-] replaced by
 * '_' and cut to 64 bytes; "" when there is none. avatar: "avatar", else
 * "picture", when a string of at most 512 bytes (has_avatar).
 */
#define JWT_AUTH_NAME_MAX 64
#define JWT_AUTH_AVATAR_MAX 512
struct jwt_auth_profile {
    char username[JWT_AUTH_NAME_MAX + 1];
    char avatar[JWT_AUTH_AVATAR_MAX + 1];
    int has_avatar;
};
/* jwt_auth_verify(), and on JWT_AUTH_OK the profile claims into *p (when p
 * is not NULL; zeroed on failure). */
enum jwt_auth_status jwt_auth_verify_profile(const struct jwt_auth *a, const char *token,
                                             size_t len, time_t now, int64_t *user_id, int64_t *exp,
                                             struct jwt_auth_profile *p);

/*
 * Signs a token for user_id valid until exp (and from nbf when nbf > 0) with
 * alg_name and key (the HMAC secret, or a PEM private key for RS256/ES256).
 * Writes sub as a string of digits, plus exp, iat, and nbf/iss/aud when given.
 * Used by herald-admin and tests. Returns a string the caller frees with
 * free(), or NULL (bad alg or key, encrypted PEM, user_id outside
 * 1..JWT_AUTH_MAX_USER_ID).
 */
char *jwt_auth_sign(const char *alg_name, const unsigned char *key, size_t key_len, int64_t user_id,
                    int64_t exp, int64_t nbf, const char *iss, const char *aud);

#endif
