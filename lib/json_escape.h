/* JSON string escaping for every layer: the file/stdout outputs, Lua's
 * json.encode, the JSON log lines, HTTP error bodies and `sluice log dump`
 * all write string content through sl_json_escape. Flags keep each writer's
 * established output byte for byte. */
#ifndef SLUICE_LIB_JSON_ESCAPE_H
#define SLUICE_LIB_JSON_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>

/* What to do with bytes >= 0x80 (pick one; 0 is SL_JSON_ESC_LATIN1). */
#define SL_JSON_ESC_LATIN1 0x0u  /* valid UTF-8 copied; any other byte written \u00XX */
#define SL_JSON_ESC_REPLACE 0x1u /* valid UTF-8 copied; any other byte written \ufffd */
#define SL_JSON_ESC_RAW 0x2u     /* copied unchecked: the caller vouches for UTF-8 */
/* Text meant for a terminal (log lines, HTTP error details): DEL is written
 * \u007f, and every control character but \n, \r and \t as \u00XX (so \b and
 * \f too). Without it DEL is copied and \b, \f use their short forms. */
#define SL_JSON_ESC_TERMINAL 0x4u

/* The most bytes sl_json_escape writes for one input byte. */
#define SL_JSON_ESC_MAX_GROWTH 6

/* Writes s[0..len) (may hold NULs) as the inside of a JSON string, without
 * the quotes, into out (cap bytes): '"' and '\\' are escaped, control
 * characters become \n, \r, \t, \b, \f or \u00XX (lowercase hex), other
 * bytes follow flags. Stops before the first character whose escaped form
 * does not fit whole, so an escape or a UTF-8 sequence is never cut.
 * Returns how many bytes of s were consumed (len when everything fitted) and
 * stores the number of bytes written in *written. Does not NUL-terminate.
 * At most len * SL_JSON_ESC_MAX_GROWTH bytes are ever needed. Thread-safe. */
size_t sl_json_escape(const char *s, size_t len, unsigned flags, char *out, size_t cap,
                      size_t *written);

/* sl_json_escape into a C string: appends at out[*pos], keeps out
 * NUL-terminated within cap (cap > 0) and advances *pos. Returns false when
 * not everything fitted (what fitted, whole characters only, is kept). */
bool sl_json_escape_cstr(const char *s, size_t len, unsigned flags, char *out, size_t cap,
                         size_t *pos);

#endif
