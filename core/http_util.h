/* HTTP listener helpers shared by the admin API (core) and the http_server
 * input connector: listen-address parsing and binding, the bound address,
 * an RFC 3339 parser and a constant-time comparison. No state, no threads. */
#ifndef SLUICE_HTTP_UTIL_H
#define SLUICE_HTTP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "error.h"

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

/* Parses an RFC 3339 timestamp ("2024-05-01T12:00:00Z",
 * "2024-05-01T12:00:00.123456+02:00"; 't' and 'z' and a space for 'T' are
 * accepted) into Unix milliseconds (fractions below 1 ms are truncated).
 * Returns 0, or -1 when s is malformed or a field is out of range. */
int sl_httpd_parse_rfc3339(const char *s, int64_t *ms_out);

/* Compares a (length alen) with b (length blen) in time that depends only on
 * blen (the secret's length), not on where they differ. True when equal. */
bool sl_httpd_secret_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
