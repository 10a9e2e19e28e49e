/* The http_server's records in a route's shared Idempotency-Key store
 * (connectors/http_server_idem_shared.h). A value is "C" (claimed: in
 * flight on some gateway) or "A" STATUS "\n" CONTENT-TYPE "\n" LOCATION
 * "\n" BODY (the answer given); a forgotten key has no value. */
#include "http_server_idem_shared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logging.h"

#define HSI_COMPONENT "http_server"

/* Copies the n bytes at s into a new string ("" -> NULL). */
static char *dup_field(const char *s, size_t n)
{
    if (n == 0)
        return NULL;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Parses an "A..." value into ans. Returns 0, or -1 when malformed. */
static int parse_answer(const char *v, size_t len, sl_idem_answer *ans)
{
    const char *end = v + len, *p = v + 1;
    char *stop = NULL;
    long status = strtol(p, &stop, 10);
    if (stop == p || stop >= end || *stop != '\n' || status < 100 || status > 599)
        return -1;
    const char *f[2];
    size_t fl[2];
    p = stop + 1;
    for (int i = 0; i < 2; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return -1;
        f[i] = p;
        fl[i] = (size_t)(nl - p);
        p = nl + 1;
    }
    memset(ans, 0, sizeof *ans);
    ans->status = (int)status;
    ans->content_type = dup_field(f[0], fl[0]);
    ans->location = dup_field(f[1], fl[1]);
    ans->body = dup_field(p, (size_t)(end - p));
    ans->body_len = ans->body ? (size_t)(end - p) : 0;
    return 0;
}

hs_shared_state hs_idem_shared_get(sl_route *route, const char *key, size_t klen, uint64_t now_ms,
                                   sl_idem_answer *ans)
{
    char *v = NULL;
    size_t len = 0;
    uint64_t at = 0;
    memset(ans, 0, sizeof *ans);
    if (sl_route_idem_get(route, key, klen, &v, &len, &at) != 1)
        return HS_SHARED_NONE;
    hs_shared_state st = HS_SHARED_NONE;
    if (len >= 1 && v[0] == 'C')
        st = at + HS_IDEM_CLAIM_MS >= now_ms ? HS_SHARED_CLAIMED : HS_SHARED_NONE;
    else if (len >= 1 && v[0] == 'A' && parse_answer(v, len, ans) == 0)
        st = HS_SHARED_ANSWERED;
    free(v);
    return st;
}

static void put(sl_route *route, const char *key, size_t klen, const char *val, size_t len)
{
    sl_error err;
    if (sl_route_idem_put(route, key, klen, val, len, &err) != 0)
        sl_warn(HSI_COMPONENT, "%s: Idempotency-Key not shared with the other gateways", err.msg);
}

void hs_idem_shared_claim(sl_route *route, const char *key, size_t klen)
{
    put(route, key, klen, "C", 1);
}

void hs_idem_shared_close(sl_route *route, const char *key, size_t klen, const sl_idem_answer *ans)
{
    if (!ans) {
        put(route, key, klen, NULL, 0);
        return;
    }
    const char *ct = ans->content_type ? ans->content_type : "";
    const char *loc = ans->location ? ans->location : "";
    int head = snprintf(NULL, 0, "A%d\n%s\n%s\n", ans->status, ct, loc);
    size_t len = (size_t)head + ans->body_len;
    char *v = head > 0 ? malloc(len + 1) : NULL;
    if (!v) {
        sl_warn(HSI_COMPONENT, "out of memory: Idempotency-Key not shared");
        return;
    }
    snprintf(v, (size_t)head + 1, "A%d\n%s\n%s\n", ans->status, ct, loc);
    if (ans->body_len)
        memcpy(v + head, ans->body, ans->body_len);
    put(route, key, klen, v, len);
    free(v);
}
