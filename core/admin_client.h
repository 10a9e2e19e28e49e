/* A minimal blocking HTTP/1.1 client for the admin API, used by the CLI
 * (`sluice log ... --admin [https://]HOST:PORT`, `sluice log replay`): one
 * request per connection, plain HTTP or HTTPS (GnuTLS, the server's
 * certificate verified against a CA file or the system's CAs, its name or
 * IP address checked; a client certificate for an admin listener with
 * client_ca), a deadline on connect and on the whole exchange. */
#ifndef SLUICE_ADMIN_CLIENT_H
#define SLUICE_ADMIN_CLIENT_H

#include <stddef.h>

#include "error.h"

/* The largest answer body sl_admin_request accepts. */
#define SL_ADMIN_CLIENT_MAX_BODY (64u << 20)

/* TLS settings of a request to an https:// address; every field may be
 * NULL. */
typedef struct sl_admin_tls {
    const char *cacert; /* PEM file of the CAs to trust; NULL: the system's */
    const char *cert;   /* PEM client certificate (mutual TLS), with key */
    const char *key;
} sl_admin_tls;

/* Sends method (GET or POST) path to addr ("HOST:PORT", "[V6]:PORT", either
 * after "http://", or after "https://" for TLS with the settings in tls,
 * which may be NULL), with
 * `Authorization: Bearer token` when token is non-NULL and non-empty and
 * body (JSON, may be NULL) for a POST, and waits at most timeout_ms for
 * the whole answer. On success returns 0, the HTTP status in *status and
 * the body, NUL-terminated, in *resp (malloc'd: the caller frees it) with
 * its length in *resp_len. Returns -1 with err (SL_EINVAL bad address,
 * SL_EIO connection, TLS or protocol failure, SL_ETIMEOUT, SL_ENOMEM) and
 * *resp NULL otherwise. Thread-safe. */
int sl_admin_request(const char *addr, const sl_admin_tls *tls, const char *method,
                     const char *path, const char *token, const char *body, int timeout_ms,
                     int *status, char **resp, size_t *resp_len, sl_error *err);

#endif
