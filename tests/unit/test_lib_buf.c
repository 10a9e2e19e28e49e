/* Unit tests for lib/buf.c: appends grow the buffer and keep every byte,
 * sl_buf_cstr terminates, and a failed growth is sticky (oom stays set, no
 * later write grows the buffer, sl_buf_cstr refuses, what was written stays). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void test_appends_grow_and_keep_bytes(void **state)
{
    sl_buf b = {0};
    for (int i = 0; i < 1000; i++)
        sl_buf_putc(&b, (char)('a' + i % 26));
    sl_buf_put(&b, "\0x", 2); /* NULs are bytes like any other */
    sl_buf_puts(&b, "end");
    assert_false(b.oom);
    assert_int_equal(b.len, 1005);
    assert_true(b.cap > b.len);
    assert_int_equal(b.p[0], 'a');
    assert_int_equal(b.p[999], 'a' + 999 % 26);
    assert_memory_equal(b.p + 1000, "\0xend", 5);
    char *s = sl_buf_cstr(&b);
    assert_ptr_equal(s, b.p);
    assert_string_equal(s + 1001, "xend");
    sl_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
}

static void test_empty_cstr(void **state)
{
    sl_buf b = {0};
    char *s = sl_buf_cstr(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    sl_buf_free(&b);
    sl_buf_free(NULL);
}

static void test_failed_growth_is_sticky(void **state)
{
    sl_buf b = {0};
    sl_buf_puts(&b, "kept");
    size_t cap = b.cap;
    assert_false(sl_buf_grow(&b, SIZE_MAX - 8)); /* cannot be had */
    assert_true(b.oom);
    assert_int_equal(b.cap, cap);
    assert_false(sl_buf_grow(&b, 1)); /* sticky */
    char big[1024] = {0};
    sl_buf_put(&b, big, sizeof big); /* would need growth: dropped */
    assert_int_equal(b.len, 4);
    assert_int_equal(b.cap, cap);
    assert_memory_equal(b.p, "kept", 4);
    assert_null(sl_buf_cstr(&b));
    sl_buf_free(&b);
    assert_false(b.oom);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends_grow_and_keep_bytes),
        cmocka_unit_test(test_empty_cstr),
        cmocka_unit_test(test_failed_growth_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
