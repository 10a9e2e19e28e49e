/* A small synchronous HTTP client for calls made from steps (Lua's ctx.http):
 * one request through an http_client connector's base_url, timeout and
 * headers, on a CURL easy handle cached per thread so that connections are
 * reused. The output connector (http_client.c, curl multi) is separate. */
#ifndef SLUICE_HTTP_CALL_H
#define SLUICE_HTTP_CALL_H

#include <stddef.h>

#include "call.h"
#include "config.h"
#include "error.h"

/* Response bodies larger than this fail the call (permanent), so that a
 * misbehaving peer cannot fill a worker's memory. */
#define SL_HTTP_CALL_MAX_BODY ((size_t)4 << 20)

/* The connector call types of core/call.h, under their HTTP names. */
typedef sl_call_req sl_http_call_req;
typedef sl_call_resp sl_http_call_resp;

/* Makes one request (no credentials: see sl_http_call_auth): conn->base_url joined with req->path,
 * conn->timeout_ms for the whole transfer, conn->headers then req->headers. Fills *resp (the caller
 * frees it with sl_http_call_resp_free, whatever the result) and returns resp->result: SL_OK for a
 * 2xx, SL_RETRY for timeouts, connection errors, 5xx, 408 and 429, SL_FAIL for every other status
 * and for a bad request (a path that does not start with '/' or '?', a header with CR or LF, an
 * unknown method) or a body over SL_HTTP_CALL_MAX_BODY. No retry here: the caller decides. Uses
 * (and creates) the calling thread's cached CURL handle; thread-safe. Redirects are not followed.
 */
int sl_http_call(const sl_connector_conf *conn, const sl_http_call_req *req,
                 sl_http_call_resp *resp);

typedef struct sl_hc_auth sl_hc_auth;

/* As sl_http_call, with the connector's credentials (http_client_auth.h;
 * NULL: none, which is what sl_http_call does): an Authorization header,
 * and after a 401 with a renewable credential (OAuth2, token file) one more
 * attempt with a new one. A credential that cannot be had (token endpoint
 * down) fails the call with SL_RETRY. The connector's tls files apply. */
int sl_http_call_auth(const sl_connector_conf *conn, sl_hc_auth *auth, const sl_http_call_req *req,
                      sl_http_call_resp *resp);

/* Frees what sl_http_call put in resp and zeroes it (sl_call_resp_free).
 * resp may be NULL. */
void sl_http_call_resp_free(sl_http_call_resp *resp);

/* Frees the calling thread's cached CURL handle now (threads that end free
 * theirs on their own; the main thread of a test calls this before exit). */
void sl_http_call_thread_cleanup(void);

#endif
