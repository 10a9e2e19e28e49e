/* Pure helpers of the http_server input connector: content-type matching and
 * a zero-allocation JSON validator. No state, no threads: unit-tested alone.
 * The listener helpers it shares with the admin API are in core/http_util.h. */
#ifndef SLUICE_HTTP_SERVER_UTIL_H
#define SLUICE_HTTP_SERVER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

/* What an http_server input accepts (`content_type:`): any, or one kind. */
typedef enum { SL_CT_ANY = 0, SL_CT_JSON, SL_CT_XML, SL_CT_TEXT } sl_content_type;

/* True when the request's Content-Type header value (may be NULL: only ANY
 * accepts a missing one) is acceptable for kind: JSON takes application/json
 * and any type/subtype+json; XML takes application/xml, text/xml and any
 * +xml; TEXT takes text/ANYTHING; ANY takes everything. Parameters after ';'
 * are ignored; matching is case-insensitive. */
bool sl_httpd_content_type_ok(sl_content_type kind, const char *ctype);

/* The canonical media type of kind ("application/json", ...) or NULL for ANY. */
const char *sl_httpd_content_type_name(sl_content_type kind);

/* Checks that buf[0..len) is one JSON text (RFC 8259, any value at the top,
 * surrounding whitespace allowed) as jansson would accept it by default:
 * (JSON_DECODE_ANY | JSON_ALLOW_NUL, as sl_msg_json parses): valid UTF-8,
 * integers within int64, finite reals, nesting up to 2048. Allocates nothing. Returns true, or
 * false with a message such as "unexpected '}' at line 1, column 12 (byte 11)" in msg (cap bytes).
 * Thread-safe. */
bool sl_httpd_json_valid(const char *buf, size_t len, char *msg, size_t cap);

#endif
