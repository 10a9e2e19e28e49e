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
 * bytes. Thread-safe. */
size_t sl_utf8_seq_len(const unsigned char *s, size_t n);

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
