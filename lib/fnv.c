/* FNV-1a 64-bit hashing (see fnv.h): partitioning in the route engine and
 * the hash tables of core and connectors all hash through here, so that a
 * key lands in the same partition whichever layer computes it. */
#include "fnv.h"

#define FNV1A64_PRIME 1099511628211ULL

uint64_t sl_fnv1a64_add(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * FNV1A64_PRIME;
    return h;
}

uint64_t sl_fnv1a64(const void *data, size_t n)
{
    return sl_fnv1a64_add(SL_FNV1A64_INIT, data, n);
}

uint64_t sl_fnv1a64_str(const char *s)
{
    uint64_t h = SL_FNV1A64_INIT;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * FNV1A64_PRIME;
    return h;
}
