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
        cmocka_unit_test(test_small_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
