/* Unit tests for lib/fnv.c: the algorithm against the published FNV-1a
 * 64-bit vectors (from the published basis), the values Sluice's own basis
 * gives (the partition of a key depends on them never changing), and the
 * incremental form hashing pieces as one text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fnv.h"

#define PUBLISHED_BASIS 0xcbf29ce484222325ULL

static void test_published_vectors(void **state)
{
    assert_true(sl_fnv1a64_add(PUBLISHED_BASIS, "", 0) == PUBLISHED_BASIS);
    assert_true(sl_fnv1a64_add(PUBLISHED_BASIS, "a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(sl_fnv1a64_add(PUBLISHED_BASIS, "foobar", 6) == 0x85944171f73967e8ULL);
}

/* The values every copy computed before lib/ existed (1469598103934665603
 * as the basis): partitions of existing data dirs depend on them. */
static void test_sluice_basis_values(void **state)
{
    assert_true(SL_FNV1A64_INIT == 0x14650fb0739d0383ULL);
    assert_true(sl_fnv1a64("", 0) == 0x14650fb0739d0383ULL);
    assert_true(sl_fnv1a64("a", 1) == 0x44bd8ad473cd9906ULL);
    assert_true(sl_fnv1a64("foobar", 6) == 0x88fad7c0a8ff07f2ULL);
    assert_true(sl_fnv1a64_str("foobar") == 0x88fad7c0a8ff07f2ULL);
    assert_true(sl_fnv1a64_str("c1") == 0x9ba51200c6552563ULL);
    assert_true(sl_fnv1a64_str("") == SL_FNV1A64_INIT);
}

static void test_pieces_hash_as_one(void **state)
{
    uint64_t h = sl_fnv1a64_add(SL_FNV1A64_INIT, "foo", 3);
    h = sl_fnv1a64_add(h, "bar", 3);
    assert_true(h == sl_fnv1a64("foobar", 6));
    /* bytes above 0x7f hash as unsigned, and NULs count */
    assert_true(sl_fnv1a64("\xff\0x", 3) != sl_fnv1a64("\xff", 1));
    assert_true(sl_fnv1a64("\xe9", 1) == sl_fnv1a64_str("\xe9"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_published_vectors),
        cmocka_unit_test(test_sluice_basis_values),
        cmocka_unit_test(test_pieces_hash_as_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
