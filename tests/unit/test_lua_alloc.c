/* Unit tests for the Lua states' block pool (transforms/lua_alloc.c): blocks
 * keep their bytes through every kind of resize (within a class, across
 * classes, into and out of the pooled sizes), freed blocks are reused, and
 * the pool keeps no more than its bound. Run under ASan, a block handed out
 * smaller than asked for fails here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#define SL_LUA_INTERNAL
#include "lua_host.h"

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static void check(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p[i], (unsigned char)(seed + i * 7));
}

/* Grows and shrinks one block through sizes on both sides of the pooled
 * limit; its first bytes survive every step and every byte is writable. */
static void test_resizes_keep_bytes(void **state)
{
    (void)state;
    sl_lua_pool pool = {0};
    static const size_t sizes[] = {1, 16, 17, 31, 32, 100, 256, 257, 1000, 255, 40, 8, 300, 3};
    size_t n = 5;
    unsigned char *p = sl_lua_pool_realloc(&pool, NULL, 0, n);
    assert_non_null(p);
    fill(p, n, 1);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t keep = n < sizes[i] ? n : sizes[i];
        p = sl_lua_pool_realloc(&pool, p, n, sizes[i]);
        assert_non_null(p);
        check(p, keep, 1);
        n = sizes[i];
        fill(p, n, 1);
    }
    assert_null(sl_lua_pool_realloc(&pool, p, n, 0));
    sl_lua_pool_drain(&pool);
    assert_int_equal(pool.bytes, 0);
}

/* A freed small block is handed out again for a request of its class; the
 * pool keeps at most SL_LUA_POOL_MAX_BYTES. */
static void test_reuse_and_bound(void **state)
{
    (void)state;
    sl_lua_pool pool = {0};
    void *a = sl_lua_pool_realloc(&pool, NULL, 0, 40);
    sl_lua_pool_realloc(&pool, a, 40, 0);
    assert_int_equal(pool.bytes, 48);
    void *b = sl_lua_pool_realloc(&pool, NULL, 0, 48);
    assert_ptr_equal(a, b);
    assert_int_equal(pool.bytes, 0);
    memset(b, 0xab, 48);
    sl_lua_pool_realloc(&pool, b, 48, 0);
    enum { N = 20000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = sl_lua_pool_realloc(&pool, NULL, 0, 256);
    for (int i = 0; i < N; i++)
        sl_lua_pool_realloc(&pool, blocks[i], 256, 0);
    assert_true(pool.bytes <= SL_LUA_POOL_MAX_BYTES);
    assert_true(pool.bytes > SL_LUA_POOL_MAX_BYTES - 256);
    sl_lua_pool_drain(&pool);
    assert_int_equal(pool.bytes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resizes_keep_bytes),
        cmocka_unit_test(test_reuse_and_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
