/* Text of JSON reals: how a key taken from a JSON number (core/message.c)
 * and the JSON/XML bridge (transforms/json_xml.c, behind its fast path)
 * write a double. Pure, no allocation. */
#ifndef SLUICE_LIB_REAL_H
#define SLUICE_LIB_REAL_H

#include <stdbool.h>
#include <stddef.h>

/* Writes d into buf (cap bytes; 32 always suffice) as the shortest of
 * %.15g, %.16g and %.17g that reads back as exactly d, with ".0" added when
 * it would otherwise read as an integer ("3" -> "3.0", "-0" -> "-0.0") and
 * there is room; NaN and infinities are written as printf does ("nan",
 * "-inf"). Always NUL-terminates (cap > 0); returns the length, or what
 * snprintf would have needed when cap was too small. Thread-safe. */
size_t sl_format_real(double d, char *buf, size_t cap);

/* When d is not an integer, 1e-4 <= |d| < 1e14 and a decimal of at most
 * 15 significant digits reads back as d: writes into buf (32 bytes) exactly
 * what snprintf "%.15g" writes for d (fixed notation, no trailing zeros)
 * and returns its length. Else returns 0 (buf undefined): the caller takes
 * printf's path. Pure, thread-safe. */
size_t sl_real_fixed15(double d, char *buf);

/* Reads the JSON number text s[0..n) (already checked against JSON's
 * grammar) into *out as strtod would (the nearest double) and returns true
 * when it has at most 15 significant digits and a net power of ten within
 * +-22 (one exact operation decides it); else returns false. */
bool sl_real_parse_fast(const char *s, size_t n, double *out);

#endif
