/* Unit tests for lib/name_index.c: positions found by name in an array of
 * records that grows and moves (through several table growths), absent
 * names, and an index freed back to empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "name_index.h"

typedef struct rec {
    const char *name;
    int value;
} rec;

static void test_find_after_growth(void **state)
{
    (void)state;
    enum { N = 5000 };
    rec *v = NULL;
    char(*names)[16] = calloc(N, sizeof *names);
    assert_non_null(names);
    sl_name_index ix = {NULL, 0};
    assert_int_equal(sl_name_index_find(&ix, v, sizeof *v, "k0"), -1);
    for (size_t i = 0; i < N; i++) {
        rec *nv = realloc(v, (i + 1) * sizeof *v); /* moves: the index keeps positions */
        assert_non_null(nv);
        v = nv;
        snprintf(names[i], sizeof names[i], "k%zu", i);
        assert_int_equal(sl_name_index_find(&ix, v, sizeof *v, names[i]), -1);
        v[i].name = names[i];
        v[i].value = (int)i;
        assert_true(sl_name_index_add(&ix, v, sizeof *v, i));
    }
    for (size_t i = 0; i < N; i++)
        assert_int_equal(sl_name_index_find(&ix, v, sizeof *v, names[i]), (long)i);
    assert_int_equal(sl_name_index_find(&ix, v, sizeof *v, "k5000"), -1);
    assert_int_equal(sl_name_index_find(&ix, v, sizeof *v, ""), -1);
    sl_name_index_free(&ix);
    assert_int_equal(sl_name_index_find(&ix, v, sizeof *v, "k1"), -1);
    free(v);
    free(names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_after_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
