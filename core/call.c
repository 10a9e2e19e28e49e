/* Helpers for the synchronous connector calls of core/call.h (the response
 * every callable connector fills and every caller frees). */
#include "call.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_call_resp_free(sl_call_resp *resp)
{
    if (!resp)
        return;
    for (size_t i = 0; i < resp->n_headers; i++) {
        free(resp->headers[i].key);
        free(resp->headers[i].value);
    }
    free(resp->headers);
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

int sl_call_resp_fail(sl_call_resp *resp, sl_result res, const char *fmt, ...)
{
    memset(resp, 0, sizeof *resp);
    resp->result = res;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(resp->error, sizeof resp->error, fmt, ap);
    va_end(ap);
    return res;
}
