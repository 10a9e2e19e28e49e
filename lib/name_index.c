/* An open-addressing index from names to positions in a caller's array
 * of records (lib/name_index.h), kept at most half full. */
#include "name_index.h"

#include <stdlib.h>
#include <string.h>

#include "fnv.h"

static const char *name_at(const void *base, size_t stride, size_t pos)
{
    const char *name;
    memcpy(&name, (const char *)base + pos * stride, sizeof name);
    return name;
}

long sl_name_index_find(const sl_name_index *ix, const void *base, size_t stride, const char *name)
{
    if (!ix->mask)
        return -1;
    for (size_t i = sl_fnv1a64_str(name) & ix->mask;; i = (i + 1) & ix->mask) {
        if (!ix->slot[i])
            return -1;
        if (!strcmp(name_at(base, stride, ix->slot[i] - 1), name))
            return (long)(ix->slot[i] - 1);
    }
}

static void put(sl_name_index *ix, const void *base, size_t stride, size_t pos)
{
    size_t i = sl_fnv1a64_str(name_at(base, stride, pos)) & ix->mask;
    while (ix->slot[i])
        i = (i + 1) & ix->mask;
    ix->slot[i] = pos + 1;
}

bool sl_name_index_add(sl_name_index *ix, const void *base, size_t stride, size_t pos)
{
    if ((pos + 1) * 2 > ix->mask) {
        size_t n = ix->mask ? (ix->mask + 1) * 2 : 16;
        while ((pos + 1) * 2 > n - 1)
            n *= 2;
        size_t *slot = calloc(n, sizeof *slot);
        if (!slot)
            return false;
        free(ix->slot);
        ix->slot = slot;
        ix->mask = n - 1;
        for (size_t i = 0; i < pos; i++)
            put(ix, base, stride, i);
    }
    put(ix, base, stride, pos);
    return true;
}

void sl_name_index_free(sl_name_index *ix)
{
    free(ix->slot);
    ix->slot = NULL;
    ix->mask = 0;
}
