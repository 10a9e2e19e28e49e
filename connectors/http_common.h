/* What both HTTP clients share (the http_client output on curl multi, and
 * sl_http_call for steps' ctx.http): joining a connector's base_url with a
 * path, and mapping a response status to a delivery result. */
#ifndef SLUICE_HTTP_COMMON_H
#define SLUICE_HTTP_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* base_url + path with exactly one '/' between them; base_url as is when
 * path is NULL or empty; a path that starts with '?' is appended as is (a
 * query on base_url itself). Returns a malloc'd string, or NULL when out of
 * memory. */
char *sl_http_join_url(const char *base, const char *path);

/* SL_OK for 2xx; SL_RETRY for 5xx, 408 and 429 (the partner may recover);
 * SL_FAIL for every other status (the request itself is refused). */
sl_result sl_http_status_result(long status);

/* True for a header name no message may ever set on a partner call
 * (Host, Authorization, Cookie, Content-Length, Transfer-Encoding,
 * Connection and other hop-by-hop headers, Proxy-*, Forwarded,
 * X-Forwarded-*, X-Real-IP, X-Sluice-*, and the headers Sluice sets itself:
 * X-Message-Id, Idempotency-Key, Content-Type). Case-insensitive. */
bool sl_http_never_forwarded(const char *name);

/* True when a message header called name goes to the partner: never for
 * sl_http_never_forwarded names; else, when configured, when it matches one
 * of the n_allow patterns of `forward_headers` (a name, any case, or a
 * prefix ending in '*': "x-partner-*"); when not configured, only the trace
 * headers traceparent and tracestate. */
bool sl_http_forwarded(const char *name, const char *const *allow, size_t n_allow, bool configured);

#endif
