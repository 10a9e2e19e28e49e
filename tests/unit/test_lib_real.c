/* Unit tests for lib/real.c: every text reads back as the same double, is
 * the shortest of %.15g..%.17g that does, reads as a real (".0"), on edge
 * values and a million random doubles; non-finite values and a small cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "real.h"

/* Significant digits of the %g part of a text (sign, point, exponent and
 * the ".0" mark left out). */
static int sig_digits(const char *s)
{
    char m[32];
    snprintf(m, sizeof m, "%s", s);
    char *e = strchr(m, 'e');
    if (e)
        *e = '\0';
    size_t len = strlen(m);
    if (len > 2 && strcmp(m + len - 2, ".0") == 0)
        m[len - 2] = '\0';
    int n = 0;
    bool leading = true;
    for (const char *p = m; *p; p++) {
        if (*p < '0' || *p > '9')
            continue;
        if (*p == '0' && leading)
            continue;
        leading = false;
        n++;
    }
    return n ? n : 1;
}

static void check(double d)
{
    char got[32];
    size_t n = sl_format_real(d, got, sizeof got);
    if (n != strlen(got))
        fail_msg("%.17g: length %zu for [%s]", d, n, got);
    if (strtod(got, NULL) != d)
        fail_msg("%.17g: [%s] does not read back", d, got);
    if (!strpbrk(got, ".e"))
        fail_msg("%.17g: [%s] reads as an integer", d, got);
    int digits = sig_digits(got);
    if (digits > 15) { /* a shorter precision must not have read back */
        char shorter[32];
        snprintf(shorter, sizeof shorter, "%.*g", digits - 1, d);
        if (strtod(shorter, NULL) == d)
            fail_msg("%.17g: [%s] but [%s] reads back too", d, got, shorter);
    }
}

static void expect(double d, const char *want)
{
    char buf[32];
    assert_int_equal(sl_format_real(d, buf, sizeof buf), strlen(want));
    assert_string_equal(buf, want);
}

static void test_known_texts(void **state)
{
    expect(3.0, "3.0");
    expect(-0.0, "-0.0");
    expect(0.0, "0.0");
    expect(12.5, "12.5");
    expect(0.1, "0.1");
    expect(0.1 + 0.2, "0.30000000000000004");
    expect(1e21, "1e+21");
    expect(1e-7, "1e-07");
    expect(1e15, "1e+15");
    expect(123456789012345.0, "123456789012345.0");
    expect(707547749.11476815, "707547749.1147681"); /* the correctly rounded 16 digits */
    expect(NAN, "nan");
    expect(-INFINITY, "-inf");
    static const double edges[] = {5e-324, 1.7976931348623157e308, 9007199254740993.0, 1.0 / 3,
                                   -2.5e-5};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        check(edges[i]);
}

static void test_random_doubles(void **state)
{
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 1000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (isfinite(d))
            check(d);
    }
}

/* The fast paths against printf and strtod: short decimals (prices,
 * ratios), random doubles and edges; each text a fast path writes must be
 * byte for byte %.15g's, each double it reads must be strtod's. */
static void check_fast(double d)
{
    char fast[32], slow[40];
    size_t n = sl_real_fixed15(d, fast);
    snprintf(slow, sizeof slow, "%.15g", d);
    if (n && (n != strlen(fast) || strcmp(fast, slow) != 0 || strtod(slow, NULL) != d))
        fail_msg("%.17g: fast [%s], %%.15g [%s]", d, n ? fast : "", slow);
    double got;
    if (sl_real_parse_fast(slow, strlen(slow), &got) &&
        memcmp(&got, &(double){strtod(slow, NULL)}, sizeof got))
        fail_msg("[%s]: fast read %.17g, strtod %.17g", slow, got, strtod(slow, NULL));
}

static void test_fast_paths(void **state)
{
    uint64_t x = 0x2545f4914f6cdd1dULL;
    int taken = 0;
    for (int i = 0; i < 1000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int k = (int)(x % 16);
        int64_t m = (int64_t)(x >> 14) % 1000000000000000LL;
        double d = (double)m / pow(10, k); /* a short decimal, or near one */
        check_fast(d);
        check_fast(-d);
        char t[32];
        taken += sl_real_fixed15(d, t) > 0;
        double r;
        memcpy(&r, &x, sizeof r);
        if (isfinite(r))
            check_fast(r);
    }
    assert_true(taken > 500000); /* the fast path does the common case */
    static const double edges[] = {
        0.1, 0.0001, 0.00012345,          1e-4,    99999999999999.9, 1e14 - 0.5, 19.99, 145.48,
        5.5, -0.5,   0.30000000000000004, 1.0 / 3, 123456789012.345, 0.000099999};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        check_fast(edges[i]);
    char buf[32];
    assert_int_equal(sl_real_fixed15(19.99, buf), 5);
    assert_string_equal(buf, "19.99");
    assert_int_equal(sl_real_fixed15(-0.0001, buf), 7);
    assert_string_equal(buf, "-0.0001");
    assert_int_equal(sl_real_fixed15(3.0, buf), 0); /* integers: printf's path */
    static const char *texts[] = {"145.48",
                                  "-0.0",
                                  "1e22",
                                  "1.5e-3",
                                  "0.000001",
                                  "9007199254740993",
                                  "123456789012345.6",
                                  "1E+2",
                                  "2.2250738585072014e-308"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        double got;
        if (sl_real_parse_fast(texts[i], strlen(texts[i]), &got) &&
            memcmp(&got, &(double){strtod(texts[i], NULL)}, sizeof got))
            fail_msg("[%s]: fast read %.17g", texts[i], got);
    }
    double v;
    assert_true(sl_real_parse_fast("145.48", 6, &v) && v == 145.48);
    assert_true(sl_real_parse_fast("-0.0", 4, &v) && v == 0 && signbit(v));
    assert_false(sl_real_parse_fast("9007199254740993", 16, &v)); /* 16 digits: strtod's */
}

static void test_small_cap(void **state)
{
    char buf[4];
    memset(buf, 'X', sizeof buf);
    size_t n = sl_format_real(12.5, buf, sizeof buf);
    assert_int_equal(n, 4); /* what it needed, as snprintf says */
    assert_string_equal(buf, "12.");
    memset(buf, 'X', sizeof buf);
    sl_format_real(3.0, buf, 3); /* "3" fits, "3.0" does not: no ".0" */
    assert_string_equal(buf, "3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_texts),
        cmocka_unit_test(test_random_doubles),
        cmocka_unit_test(test_fast_paths),
        cmocka_unit_test(test_small_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
