/* The allocator behind each Lua state's memory: blocks of up to
 * SL_LUA_POOL_CLASSES * 16 bytes (tables, short strings, closures: most of
 * what a message's decode and encode allocate) are kept on per-size free
 * lists when Lua frees them and handed out again, which costs a few
 * instructions where malloc and free cost about a hundred; larger blocks go
 * to malloc. A pool belongs to one host (one thread) and keeps at most
 * SL_LUA_POOL_MAX_BYTES of free blocks. The state's allocator (the memory
 * cap) is here too, so that the pool is inlined into it. */
#define SL_LUA_INTERNAL
#include "lua_host.h"

#include <stdlib.h>
#include <string.h>

#define CLASS_BYTES 16
#define POOLED_MAX (SL_LUA_POOL_CLASSES * CLASS_BYTES)

typedef struct free_block {
    struct free_block *next;
} free_block;

/* The class of a block of n bytes (1 <= n <= POOLED_MAX) and its size. */
static inline size_t class_of(size_t n)
{
    return (n - 1) / CLASS_BYTES;
}

static inline size_t class_size(size_t c)
{
    return (c + 1) * CLASS_BYTES;
}

/* A block for n bytes (n <= POOLED_MAX): from the pool, else malloc'd at
 * its class's size, so that any block of a class serves any request of it. */
static void *take(sl_lua_pool *p, size_t n)
{
    size_t c = class_of(n);
    free_block *b = p->free[c];
    if (b) {
        p->free[c] = b->next;
        p->bytes -= class_size(c);
        return b;
    }
    return malloc(class_size(c));
}

/* Gives back a block Lua held at n bytes. Every block Lua holds at n <=
 * POOLED_MAX bytes is at least its class's size (take, or a shrink that
 * kept a larger block), so it may serve that class. */
static void give(sl_lua_pool *p, void *ptr, size_t n)
{
    if (n == 0 || n > POOLED_MAX || p->bytes + class_size(class_of(n)) > SL_LUA_POOL_MAX_BYTES) {
        free(ptr);
        return;
    }
    size_t c = class_of(n);
    free_block *b = ptr;
    b->next = p->free[c];
    p->free[c] = b;
    p->bytes += class_size(c);
}

static inline void *pool_realloc(sl_lua_pool *p, void *ptr, size_t osize, size_t nsize)
{
    if (nsize == 0) {
        if (ptr)
            give(p, ptr, osize);
        return NULL;
    }
    if (!ptr)
        return nsize <= POOLED_MAX ? take(p, nsize) : malloc(nsize);
    if (osize > POOLED_MAX && nsize > POOLED_MAX)
        return realloc(ptr, nsize);
    if (osize > 0 && osize <= POOLED_MAX && nsize <= POOLED_MAX &&
        class_of(osize) == class_of(nsize))
        return ptr; /* the block already has room */
    void *nb = nsize <= POOLED_MAX ? take(p, nsize) : malloc(nsize);
    if (!nb)
        return nsize < osize ? ptr : NULL; /* a shrink keeps the larger block */
    memcpy(nb, ptr, osize < nsize ? osize : nsize);
    give(p, ptr, osize);
    return nb;
}

void *sl_lua_pool_realloc(sl_lua_pool *p, void *ptr, size_t osize, size_t nsize)
{
    return pool_realloc(p, ptr, osize, nsize);
}

/* The allocator: refuses to grow past the cap. Shrinking never fails (Lua
 * relies on that). After a refusal Lua runs an emergency collection and
 * tries once more before raising "not enough memory". */
void *sl_lua_host_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    sl_lua_host *h = ud;
    if (!ptr)
        osize = 0;
    if (nsize == 0) {
        pool_realloc(&h->pool, ptr, osize, 0);
        h->used -= osize;
        return NULL;
    }
    if (nsize > osize && h->used - osize + nsize > h->limit)
        return NULL;
    /* a shrink never fails: the block is kept; it is accounted at its new size */
    void *p = pool_realloc(&h->pool, ptr, osize, nsize);
    if (!p)
        return NULL;
    h->used = h->used - osize + nsize;
    return p;
}

void sl_lua_pool_drain(sl_lua_pool *p)
{
    for (size_t c = 0; c < SL_LUA_POOL_CLASSES; c++) {
        while (p->free[c]) {
            free_block *b = p->free[c];
            p->free[c] = b->next;
            free(b);
        }
    }
    p->bytes = 0;
}
