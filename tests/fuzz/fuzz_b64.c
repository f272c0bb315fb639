/*
 * fuzz_b64.c - libFuzzer target for b64_decode() (common/b64.c).
 *
 * Base64 reaches us from peers in Engine.IO binary packets and JWTs. The
 * property checked is canonicity: whatever text decodes, re-encoding the
 * bytes gives back exactly that text (so no two texts mean the same bytes),
 * in both alphabets, padded and not, and decoding in place agrees with
 * decoding into another buffer. The first input byte picks the variant.
 * Seeds: tests/fuzz/corpus/b64/.
 */
#include "b64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    enum b64_alphabet abc = (data[0] & 1) ? B64_URL : B64_STD;
    bool pad = (data[0] & 2) != 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    uint8_t *out = malloc(len + 1), *copy = malloc(len + 1);
    char *again = malloc(len + 8);
    if (!out || !copy || !again)
        abort();
    long n = b64_decode(out, len, text, len, abc, pad);
    memcpy(copy, text, len);
    long m = b64_decode(copy, len, (const char *)copy, len, abc, pad);
    if (n != m || (n > 0 && memcmp(out, copy, (size_t)n) != 0))
        abort();
    if (n >= 0) {
        size_t w = b64_encode(again, len + 8, out, (size_t)n, abc, pad);
        if (w != len || memcmp(again, text, len) != 0)
            abort();
    }
    free(out);
    free(copy);
    free(again);
    return 0;
}
