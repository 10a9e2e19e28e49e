/* Hexadecimal digits read by the JSON validators and decoders (\uXXXX) and
 * the XML name decoder (_xHHHH_): pure, no allocation. */
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

#endif
