/* UTF-8 for every layer: checks and decodes one sequence, encodes a code
 * point, validates a whole text. Pure functions, no allocation: the JSON
 * escaper, the log writer, the JSON validators and the XML bridge use them. */
#ifndef SLUICE_LIB_UTF8_H
#define SLUICE_LIB_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returns the length (1..4) of the well-formed UTF-8 sequence at s (n > 0
 * bytes available), or 0 when s does not start one: a stray continuation
 * byte, an overlong form, a surrogate (U+D800..U+DFFF), a code point past
 * U+10FFFF, or a sequence cut short by the end. Reads at most min(n, 4)
 * bytes. Thread-safe. Inline: the escaper and validators call it per
 * character. */
static inline size_t sl_utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2) /* a continuation byte or an overlong 2-byte lead */
        return 0;
    if (c < 0xE0)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
            return 0; /* overlong, or a surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
            return 0; /* overlong, or past U+10FFFF */
        return 4;
    }
    return 0;
}

/* As sl_utf8_seq_len, and stores the code point in *cp when the sequence
 * is well formed (*cp is untouched otherwise). Thread-safe. */
size_t sl_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Writes the code point cp (at most 0x10FFFF) as UTF-8 into out, which has
 * room for 4 bytes, and returns the length written (1..4). Surrogates are
 * written as they come (the caller rejects them if it must). */
size_t sl_utf8_encode(uint32_t cp, char out[4]);

/* True when s[0..n) is entirely well-formed UTF-8 (n == 0 included). */
bool sl_utf8_valid(const char *s, size_t n);

#endif
