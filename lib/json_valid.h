/* Validating a JSON text without building a tree (used by the HTTP input
 * for every JSON body and by the JSON Lines writer of the file and stdout
 * outputs). */
#ifndef SLUICE_JSON_VALID_H
#define SLUICE_JSON_VALID_H

#include <stdbool.h>
#include <stddef.h>

/* Checks that buf[0..len) is one JSON text (RFC 8259, any value at the top,
 * surrounding whitespace allowed) as jansson would accept it by default
 * (JSON_DECODE_ANY | JSON_ALLOW_NUL, as sl_msg_json parses): valid UTF-8,
 * integers within int64, finite reals, nesting up to 2048. Allocates
 * nothing. Returns true, or false with a message such as "unexpected '}' at
 * line 1, column 12 (byte 11)" in msg (cap bytes; msg may be NULL when cap
 * is 0). Thread-safe. */
bool sl_json_valid(const char *buf, size_t len, char *msg, size_t cap);

#endif
