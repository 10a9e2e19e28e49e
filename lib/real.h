/* Text of JSON reals: how a key taken from a JSON number (core/message.c)
 * and the JSON/XML bridge (transforms/json_xml.c, behind its fast path)
 * write a double. Pure, no allocation. */
#ifndef SLUICE_LIB_REAL_H
#define SLUICE_LIB_REAL_H

#include <stddef.h>

/* Writes d into buf (cap bytes; 32 always suffice) as the shortest of
 * %.15g, %.16g and %.17g that reads back as exactly d, with ".0" added when
 * it would otherwise read as an integer ("3" -> "3.0", "-0" -> "-0.0") and
 * there is room; NaN and infinities are written as printf does ("nan",
 * "-inf"). Always NUL-terminates (cap > 0); returns the length, or what
 * snprintf would have needed when cap was too small. Thread-safe. */
size_t sl_format_real(double d, char *buf, size_t cap);

#endif
