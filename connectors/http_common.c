/* What both HTTP clients share: URL joining, status mapping and the policy
 * of which message headers go to a partner (see http_common.h). */
#include "http_common.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *sl_http_join_url(const char *base, const char *path)
{
    size_t bl = strlen(base);
    if (!path || !path[0])
        return strdup(base);
    size_t pl = strlen(path);
    char *u;
    if (path[0] == '?') {
        u = malloc(bl + pl + 1);
        if (u) {
            memcpy(u, base, bl);
            memcpy(u + bl, path, pl + 1);
        }
        return u;
    }
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    while (*path == '/')
        path++;
    pl = strlen(path);
    u = malloc(bl + pl + 2);
    if (!u)
        return NULL;
    memcpy(u, base, bl);
    u[bl] = '/';
    memcpy(u + bl + 1, path, pl + 1);
    return u;
}

sl_result sl_http_status_result(long status)
{
    if (status >= 200 && status < 300)
        return SL_OK;
    return status >= 500 || status == 408 || status == 429 ? SL_RETRY : SL_FAIL;
}

/* Headers no message may set on a partner call, whatever forward_headers
 * says: transport framing, the partner's host, credentials and cookies,
 * proxy and forwarding headers (a caller could make the partner believe it
 * came from elsewhere), and Sluice's own. Lower case; a trailing '*' is a
 * prefix. */
static const char *const NEVER_FORWARD[] = {"host",
                                            "content-length",
                                            "transfer-encoding",
                                            "connection",
                                            "keep-alive",
                                            "upgrade",
                                            "te",
                                            "trailer",
                                            "expect",
                                            "authorization",
                                            "cookie",
                                            "proxy-*",
                                            "forwarded",
                                            "x-forwarded-*",
                                            "x-real-ip",
                                            "x-sluice-*",
                                            "x-message-id",
                                            "idempotency-key",
                                            "content-type",
                                            NULL};

/* The message headers forwarded when forward_headers is not configured. */
static const char *const DEFAULT_FORWARD[] = {"traceparent", "tracestate", NULL};

/* True when name matches pattern: equal ignoring case, or, for a pattern
 * ending in '*', starting with what comes before it. */
static bool name_matches(const char *name, const char *pattern)
{
    size_t pl = strlen(pattern);
    if (pl > 0 && pattern[pl - 1] == '*')
        return strncasecmp(name, pattern, pl - 1) == 0;
    return strcasecmp(name, pattern) == 0;
}

static bool matches_any(const char *name, const char *const *patterns, size_t n)
{
    for (size_t i = 0; i < n && patterns[i]; i++) {
        if (name_matches(name, patterns[i]))
            return true;
    }
    return false;
}

bool sl_http_never_forwarded(const char *name)
{
    return matches_any(name, NEVER_FORWARD, SIZE_MAX);
}

bool sl_http_forwarded(const char *name, const char *const *allow, size_t n_allow, bool configured)
{
    if (sl_http_never_forwarded(name))
        return false;
    if (!configured)
        return matches_any(name, DEFAULT_FORWARD, SIZE_MAX);
    return matches_any(name, allow, n_allow);
}
