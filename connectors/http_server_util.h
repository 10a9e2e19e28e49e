/* Pure helpers shared by the http_server input connector and the admin
 * listener: listen-address parsing and binding, content-type matching, a
 * zero-allocation JSON validator, an RFC 3339 parser, JSON string escaping
 * and a constant-time comparison. No state, no threads: unit-tested alone. */
#ifndef SLUICE_HTTP_SERVER_UTIL_H
#define SLUICE_HTTP_SERVER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "error.h"

/* What an http_server input accepts (`content_type:`): any, or one kind. */
typedef enum { SL_CT_ANY = 0, SL_CT_JSON, SL_CT_XML, SL_CT_TEXT } sl_content_type;

/* Parses "HOST:PORT" ("127.0.0.1:8080", "0.0.0.0:80", "[::1]:8080",
 * "localhost:8080", ":8080" for every IPv4 interface) into addr/len.
 * Returns 0, or -1 with err (SL_EINVAL) naming the address. */
int sl_httpd_parse_listen(const char *where, struct sockaddr_storage *addr, socklen_t *len,
                          sl_error *err);

/* Creates a non-blocking listening TCP socket bound to listen (SO_REUSEADDR,
 * IPV6_V6ONLY off for "[::]"). Returns the fd, or -1 with err naming the
 * address and the errno text ("cannot bind 0.0.0.0:8080: Address already in
 * use"). The caller owns the fd. */
int sl_httpd_listen_socket(const char *where, int backlog, sl_error *err);

/* Writes the local address of fd as "HOST:PORT" into out (cap bytes). */
void sl_httpd_sockname(int fd, char *out, size_t cap);

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

/* Parses an RFC 3339 timestamp ("2024-05-01T12:00:00Z",
 * "2024-05-01T12:00:00.123456+02:00"; 't' and 'z' and a space for 'T' are
 * accepted) into Unix milliseconds (fractions below 1 ms are truncated).
 * Returns 0, or -1 when s is malformed or a field is out of range. */
int sl_httpd_parse_rfc3339(const char *s, int64_t *ms_out);

/* Appends s escaped as JSON string content (without the quotes) into
 * out[*pos..cap), advancing *pos; always NUL-terminates. Returns false when
 * it did not fit (what fitted is kept). */
bool sl_httpd_json_escape(const char *s, size_t len, char *out, size_t cap, size_t *pos);

/* Compares a (length alen) with b (length blen) in time that depends only on
 * blen (the secret's length), not on where they differ. True when equal. */
bool sl_httpd_secret_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
