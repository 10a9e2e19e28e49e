/* What both HTTP clients share: URL joining and status mapping (see
 * http_common.h). */
#include "http_common.h"

#include <stdlib.h>
#include <string.h>

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
