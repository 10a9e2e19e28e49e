/* Hexadecimal digits read by the JSON validators and decoders (\uXXXX) and
 * the XML name decoder (_xHHHH_), and hex text of binary digests and
 * signatures: pure, no allocation. */
#ifndef SLUICE_LIB_HEX_H
#define SLUICE_LIB_HEX_H

#include <stddef.h>
#include <stdint.h>

/* The value (0..15) of the hex digit c, either case, or -1. */
int sl_hex_digit(char c);

/* The value of exactly ndig (at most 15) hex digits at s, either case, or
 * -1 when one of them is not a hex digit (no sign, no "0x", no blanks). The
 * caller makes sure ndig bytes are readable. */
int64_t sl_hex_value(const char *s, size_t ndig);

/* Writes the lowercase hex of len bytes at data to out, which holds
 * 2 * len + 1 bytes; NUL-terminated. */
void sl_hex_encode(const void *data, size_t len, char *out);

/* Decodes len hex digits (either case) at s into out (cap bytes). Returns
 * the number of bytes written, or -1 when len is odd, a character is not a
 * hex digit, or the result does not fit in cap. */
long sl_hex_decode(const char *s, size_t len, uint8_t *out, size_t cap);

#endif
