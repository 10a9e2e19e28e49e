/* Which route takes which method and path on one http_server connector
 * (see http_server_paths.h): a chained hash table on the path, grown by
 * doubling, all in the config's pool. */
#include "http_server_paths.h"

#include <string.h>
#include <strings.h>

#include "fnv.h"

typedef struct claim {
    const sl_route_conf *route;
    const sl_http_server_input *in;
    struct claim *next; /* in the same bucket */
} claim;

struct sl_hs_paths {
    claim **bucket;
    size_t mask; /* buckets - 1 */
    size_t n;
};

/* The first method of hi that o also takes (case-insensitive), or NULL. */
static const char *shared_method(const sl_http_server_input *o, const sl_http_server_input *hi)
{
    for (size_t m = 0; m < hi->n_methods; m++)
        for (size_t k = 0; k < o->n_methods; k++)
            if (strcasecmp(hi->methods[m], o->methods[k]) == 0)
                return hi->methods[m];
    return NULL;
}

static size_t bucket_of(const sl_hs_paths *t, const char *path)
{
    return (size_t)sl_fnv1a64_str(path) & t->mask;
}

/* Doubles the bucket array when the table is more than twice as full;
 * false when out of memory. */
static bool grow(sl_hs_paths *t, sl_pool *pool)
{
    if (t->bucket && t->n < 2 * (t->mask + 1))
        return true;
    size_t nb = t->bucket ? 2 * (t->mask + 1) : 64;
    claim **b = sl_pool_alloc(pool, nb * sizeof *b);
    if (!b)
        return false;
    claim **old = t->bucket;
    size_t old_n = t->bucket ? t->mask + 1 : 0;
    t->bucket = b;
    t->mask = nb - 1;
    for (size_t i = 0; i < old_n; i++) {
        for (claim *c = old[i], *next; c; c = next) {
            next = c->next;
            size_t at = bucket_of(t, c->in->path);
            c->next = b[at];
            b[at] = c;
        }
    }
    return true;
}

const sl_route_conf *sl_hs_paths_claim(sl_hs_paths **paths, sl_pool *pool,
                                       const sl_route_conf *route, const sl_http_server_input *hi,
                                       const char **method)
{
    if (!*paths && !(*paths = sl_pool_alloc(pool, sizeof **paths)))
        return NULL;
    sl_hs_paths *t = *paths;
    if (!grow(t, pool))
        return NULL;
    size_t at = bucket_of(t, hi->path);
    const sl_route_conf *first = NULL;
    for (const claim *c = t->bucket[at]; c; c = c->next) {
        const char *m = strcmp(c->in->path, hi->path) == 0 ? shared_method(c->in, hi) : NULL;
        if (m) { /* the chain is newest first: the last match is the earliest route */
            first = c->route;
            *method = m;
        }
    }
    claim *c = sl_pool_alloc(pool, sizeof *c);
    if (c) { /* recorded even when refused: a later route is compared with it too */
        *c = (claim){.route = route, .in = hi, .next = t->bucket[at]};
        t->bucket[at] = c;
        t->n++;
    }
    return first;
}
