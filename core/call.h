/* A synchronous request/response to a connector (a step calling a partner:
 * Lua's ctx.http): the request and response every callable connector
 * speaks, in protocol-neutral terms (method, path, headers, body, status). */
#ifndef SLUICE_CALL_H
#define SLUICE_CALL_H

#include <stddef.h>

#include "config.h"
#include "error.h"

typedef struct sl_call_req {
    const char *method;   /* GET, POST, PUT, PATCH, DELETE, HEAD; NULL = GET */
    const char *path;     /* appended to the connector's base address; "" or '/' or '?' first */
    const sl_kv *headers; /* sent after the connector's headers (later ones win) */
    size_t n_headers;
    const char *body; /* may be NULL */
    size_t body_len;
} sl_call_req;

typedef struct sl_call_resp {
    sl_result result; /* SL_OK, SL_RETRY (transient) or SL_FAIL (permanent) */
    int status;       /* protocol status (HTTP status), 0 when no response came */
    sl_kv *headers;   /* malloc'd; names lower case; in the order received */
    size_t n_headers;
    char *body; /* malloc'd, NUL-terminated (body_len excludes the NUL); may be NULL */
    size_t body_len;
    char error[256]; /* why, when result is not SL_OK */
} sl_call_resp;

/* Frees what a call put in resp (headers, body) and zeroes it. resp may be
 * NULL. */
void sl_call_resp_free(sl_call_resp *resp);

/* Fills resp as a failed call that never reached the partner: no status,
 * no body, result res, error formatted. Returns res. */
int sl_call_resp_fail(sl_call_resp *resp, sl_result res, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
