/* Unit tests for lib/utf8.c: the well-formed sequences at each boundary of
 * the UTF-8 table, and the malformed ones (overlong, surrogate, past
 * U+10FFFF, stray and truncated) every caller relies on being refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

static size_t seq(const char *s)
{
    return sl_utf8_seq_len((const unsigned char *)s, strlen(s));
}

static void test_well_formed_boundaries(void **state)
{
    assert_int_equal(seq("a"), 1);
    assert_int_equal(seq("\x7f"), 1);
    assert_int_equal(seq("\xc2\x80"), 2);         /* U+0080 */
    assert_int_equal(seq("\xdf\xbf"), 2);         /* U+07FF */
    assert_int_equal(seq("\xe0\xa0\x80"), 3);     /* U+0800 */
    assert_int_equal(seq("\xed\x9f\xbf"), 3);     /* U+D7FF, below the surrogates */
    assert_int_equal(seq("\xee\x80\x80"), 3);     /* U+E000, above them */
    assert_int_equal(seq("\xef\xbf\xbf"), 3);     /* U+FFFF */
    assert_int_equal(seq("\xf0\x90\x80\x80"), 4); /* U+10000 */
    assert_int_equal(seq("\xf4\x8f\xbf\xbf"), 4); /* U+10FFFF */
    /* only the first sequence counts */
    assert_int_equal(seq("\xc3\xa9xyz"), 2);
}

static void test_malformed(void **state)
{
    assert_int_equal(seq("\x80"), 0);             /* stray continuation */
    assert_int_equal(seq("\xc0\xaf"), 0);         /* overlong '/' */
    assert_int_equal(seq("\xc1\xbf"), 0);         /* overlong */
    assert_int_equal(seq("\xe0\x9f\xbf"), 0);     /* overlong 3-byte */
    assert_int_equal(seq("\xf0\x8f\xbf\xbf"), 0); /* overlong 4-byte */
    assert_int_equal(seq("\xed\xa0\x80"), 0);     /* U+D800 */
    assert_int_equal(seq("\xed\xbf\xbf"), 0);     /* U+DFFF */
    assert_int_equal(seq("\xf4\x90\x80\x80"), 0); /* U+110000 */
    assert_int_equal(seq("\xf5\x80\x80\x80"), 0);
    assert_int_equal(seq("\xff"), 0);
    assert_int_equal(seq("\xc3x"), 0);    /* bad continuation */
    assert_int_equal(seq("\xe2\x82"), 0); /* cut by the end of the string */
    /* cut by n, though more bytes follow in memory */
    assert_int_equal(sl_utf8_seq_len((const unsigned char *)"\xe2\x82\xac", 2), 0);
}

static void test_decode_encode_round_trip(void **state)
{
    static const uint32_t cps[] = {0,      0x41,   0x7f,    0x80,    0xe9,
                                   0x7ff,  0x800,  0x20ac,  0xd7ff,  0xe000,
                                   0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char buf[4];
        size_t n = sl_utf8_encode(cps[i], buf);
        uint32_t back = 0xdeadbeef;
        assert_int_equal(sl_utf8_decode((const unsigned char *)buf, n, &back), n);
        assert_int_equal(back, cps[i]);
    }
    char buf[4];
    assert_int_equal(sl_utf8_encode(0x20ac, buf), 3);
    assert_memory_equal(buf, "\xe2\x82\xac", 3);
    uint32_t cp = 7;
    assert_int_equal(sl_utf8_decode((const unsigned char *)"\xed\xa0\x80", 3, &cp), 0);
    assert_int_equal(cp, 7); /* untouched on failure */
}

static void test_valid_text(void **state)
{
    assert_true(sl_utf8_valid("", 0));
    assert_true(sl_utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    assert_true(sl_utf8_valid("a\0b", 3)); /* NUL is a character like any other */
    assert_false(sl_utf8_valid("caf\xc3", 4));
    assert_false(sl_utf8_valid("ok \xff ok", 7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_well_formed_boundaries),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_decode_encode_round_trip),
        cmocka_unit_test(test_valid_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
