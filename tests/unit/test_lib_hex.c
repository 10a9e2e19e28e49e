/* Unit tests for lib/hex.c: digits of either case, exact digit counts, and
 * refusal of anything else (the \uXXXX and _xHHHH_ readers rely on it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hex.h"

static void test_digits(void **state)
{
    assert_int_equal(sl_hex_digit('0'), 0);
    assert_int_equal(sl_hex_digit('9'), 9);
    assert_int_equal(sl_hex_digit('a'), 10);
    assert_int_equal(sl_hex_digit('F'), 15);
    assert_int_equal(sl_hex_digit('g'), -1);
    assert_int_equal(sl_hex_digit('/'), -1);
    assert_int_equal(sl_hex_digit('\0'), -1);
}

static void test_values(void **state)
{
    assert_int_equal(sl_hex_value("00e9", 4), 0xe9);
    assert_int_equal(sl_hex_value("D83D", 4), 0xd83d);
    assert_int_equal(sl_hex_value("0010FFFF", 8), 0x10ffff);
    assert_int_equal(sl_hex_value("ffffffff", 8), 0xffffffffLL);
    assert_int_equal(sl_hex_value("12345", 4), 0x1234); /* only ndig digits read */
    assert_int_equal(sl_hex_value("", 0), 0);
    assert_int_equal(sl_hex_value("12x4", 4), -1);
    assert_int_equal(sl_hex_value("-123", 4), -1);
    assert_int_equal(sl_hex_value(" 123", 4), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digits),
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
