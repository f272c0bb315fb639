/*
 * test_b64.c - base64 both ways, both alphabets (common/b64.c): the RFC 4648
 * §10 vectors, the URL alphabet without padding, in-place decoding, and every
 * non-canonical spelling the decoder must refuse.
 */
#include "check.h"
#include "b64.h"

struct vec {
    const char *bytes;
    const char *std_pad; /* standard alphabet, padded */
    const char *url_raw; /* URL alphabet, unpadded */
};

/* RFC 4648 §10, plus bytes whose encodings differ between the alphabets. */
static const struct vec vecs[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
    {"\xfb\xff\xbf", "+/+/", "-_-_"},
    {"\x00\x00\x00\xff", "AAAA/w==", "AAAA_w"},
};

static void test_vectors(void)
{
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        const struct vec *v = &vecs[i];
        size_t n = strlen(v->bytes);
        if (i == sizeof(vecs) / sizeof(vecs[0]) - 1)
            n = 4; /* holds NULs */
        char out[32];
        size_t w = b64_encode(out, sizeof(out), (const uint8_t *)v->bytes, n, B64_STD, true);
        CHECK_MEM(out, w, v->std_pad);
        CHECK_INT(b64_encoded_len(n, true), strlen(v->std_pad));
        w = b64_encode(out, sizeof(out), (const uint8_t *)v->bytes, n, B64_URL, false);
        CHECK_MEM(out, w, v->url_raw);
        CHECK_INT(b64_encoded_len(n, false), strlen(v->url_raw));

        uint8_t dec[32];
        long d = b64_decode(dec, sizeof(dec), v->std_pad, strlen(v->std_pad), B64_STD, true);
        CHECK_INT(d, n);
        CHECK(d >= 0 && memcmp(dec, v->bytes, n) == 0);
        d = b64_decode(dec, sizeof(dec), v->url_raw, strlen(v->url_raw), B64_URL, false);
        CHECK_INT(d, n);
        CHECK(d >= 0 && memcmp(dec, v->bytes, n) == 0);
        /* Exactly enough room works; one byte less does not. */
        if (n > 0) {
            CHECK_INT(b64_decode(dec, n, v->std_pad, strlen(v->std_pad), B64_STD, true), n);
            CHECK_INT(b64_decode(dec, n - 1, v->std_pad, strlen(v->std_pad), B64_STD, true), -1);
            CHECK_INT(b64_encode(out, strlen(v->std_pad) - 1, (const uint8_t *)v->bytes, n, B64_STD,
                                 true),
                      0);
        }
    }
}

/* Every text here is refused: each is either not base64 or a second
 * spelling of bytes that have a canonical one. */
static void test_hostile(void)
{
    static const char *const std_bad[] = {
        "Zg",       /* padded form needs whole groups */
        "Zg=",      /* one '=' short */
        "Z===",     /* three '=' */
        "====",     /* nothing but padding */
        "Zh==",     /* non-zero unused bits: "Zg==" is the spelling of "f" */
        "Zm9=",     /* same, one '=' */
        "Zm=v",     /* '=' inside */
        "Zm9v====", /* a group of padding */
        "Zm9-",     /* URL character in the standard alphabet */
        "Zm9 ",     /* space */
        "Zm9v\n",   /* newline */
        "A",        /* 4n+1 */
    };
    uint8_t out[16];
    for (size_t i = 0; i < sizeof(std_bad) / sizeof(std_bad[0]); i++) {
        long d = b64_decode(out, sizeof(out), std_bad[i], strlen(std_bad[i]), B64_STD, true);
        if (d != -1)
            fprintf(stderr, "accepted %s\n", std_bad[i]);
        CHECK_INT(d, -1);
    }
    static const char *const url_bad[] = {
        "Zg==",  /* no padding in the URL form */
        "Zh",    /* non-zero unused bits */
        "Zm9vY", /* 4n+1 */
        "Zm9+",  /* standard character */
        "Zm9/",  /* standard character */
        "Z\x80", /* not ASCII */
    };
    for (size_t i = 0; i < sizeof(url_bad) / sizeof(url_bad[0]); i++)
        CHECK_INT(b64_decode(out, sizeof(out), url_bad[i], strlen(url_bad[i]), B64_URL, false), -1);
    CHECK_INT(b64_value('=', B64_STD), -1);
    CHECK_INT(b64_value('+', B64_URL), -1);
    CHECK_INT(b64_value('_', B64_URL), 63);
}

/* Decoding in place (as Engine.IO binary packets are): the output never
 * overtakes the text still to be read. */
static void test_in_place(void)
{
    char buf[64];
    uint8_t bytes[40];
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(bytes); n++) {
        size_t w = b64_encode(buf, sizeof(buf), bytes, n, B64_STD, true);
        long d = b64_decode((uint8_t *)buf, sizeof(buf), buf, w, B64_STD, true);
        CHECK_INT(d, n);
        CHECK(memcmp(buf, bytes, n) == 0);
    }
}

int main(void)
{
    test_vectors();
    test_hostile();
    test_in_place();
    return check_report("b64");
}
