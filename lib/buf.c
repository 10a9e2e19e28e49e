/* The growable byte buffer (see buf.h): growth and the rare calls; the
 * per-character appends are inline in the header. */
#include "buf.h"

#include <stdint.h>
#include <stdlib.h>

bool sl_buf_grow(sl_buf *b, size_t need)
{
    if (b->oom)
        return false;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < need) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void sl_buf_puts(sl_buf *b, const char *s)
{
    sl_buf_put(b, s, strlen(s));
}

char *sl_buf_cstr(sl_buf *b)
{
    if (b->oom || !sl_buf_reserve(b, 0))
        return NULL;
    b->p[b->len] = '\0';
    return b->p;
}

void sl_buf_free(sl_buf *b)
{
    if (!b)
        return;
    free(b->p);
    *b = (sl_buf){0};
}
