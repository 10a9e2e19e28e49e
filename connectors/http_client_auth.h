/* Outbound credentials of an http_client connector at run time: the
 * Authorization value for each request (basic, bearer static or from a file
 * re-read when it changes, OAuth2 client credentials fetched and cached),
 * and the connector's TLS files applied to a curl handle. Shared by the
 * output (http_client.c) and by steps' calls (http_call.c), so ctx.http
 * through a connector carries the same credentials. */
#ifndef SLUICE_HTTP_CLIENT_AUTH_H
#define SLUICE_HTTP_CLIENT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "error.h"
#include "http_client.h"

typedef struct sl_hc_auth sl_hc_auth;

/* Makes the credentials of conf (the connector called name; both must
 * outlive the result). Returns NULL with err when out of memory. With no
 * `auth:` the result gives no header. Nothing is fetched yet. */
sl_hc_auth *sl_hc_auth_new(const sl_http_client_conf *conf, const char *name, sl_error *err);

/* Frees a. a may be NULL. */
void sl_hc_auth_free(sl_hc_auth *a);

/* The Authorization header value for the next request, malloc'd into
 * *value (NULL when the connector has no auth), and the generation of that
 * credential in *gen (for sl_hc_auth_invalidate). May block: reads the
 * token file when it changed; for OAuth2, fetches a token from token_url
 * when there is none or it is about to expire, one fetch at a time (other
 * callers wait for it and share its outcome). Returns SL_OK, or SL_RETRY
 * with a reason in err (token endpoint down or refusing, unreadable token
 * file, out of memory): a transient failure of the delivery. The reason
 * never holds a secret. Thread-safe; never call it from a curl callback. */
sl_result sl_hc_auth_value(sl_hc_auth *a, char **value, uint64_t *gen, char *err, size_t cap);

/* True when a 401 may be cured by asking again (OAuth2: a new token; a
 * token file: read it again). */
bool sl_hc_auth_renewable(const sl_hc_auth *a);

/* The partner refused the credential of generation gen (a 401): forget it
 * so that the next sl_hc_auth_value gets a new one. A later generation is
 * kept (another request already renewed it). Thread-safe. */
void sl_hc_auth_invalidate(sl_hc_auth *a, uint64_t gen);

/* Sets the connector's tls files (CA, client certificate and key) on e.
 * Returns CURLE_OK or the first option curl refused. */
CURLcode sl_hc_tls_apply(CURL *e, const sl_hc_tls_conf *tls);

#endif
