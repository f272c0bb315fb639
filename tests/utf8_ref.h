/*
 * utf8_ref.h - a slow, obvious UTF-8 validator for tests and fuzz targets
 * to judge common/utf8.c against: decode each code point arithmetically and
 * apply RFC 3629 as prose (shortest form, no surrogates, at most U+10FFFF).
 */
#ifndef HERALD_UTF8_REF_H
#define HERALD_UTF8_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool utf8_ref_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        uint32_t cp, min;
        size_t k;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            k = 1, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            k = 2, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            k = 3, cp = b & 0x07, min = 0x10000;
        } else {
            return false;
        }
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

#endif
