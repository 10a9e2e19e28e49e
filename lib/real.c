/* JSON real formatting (see real.h): printf's %g at the first precision
 * that reads back exactly, marked as a real. One copy for the key text of
 * JSON numbers and the JSON/XML bridge's slow path. Fast paths without
 * printf/strtod for the common short decimals (exact: see each). */
#include "real.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t sl_format_real(double d, char *buf, size_t cap)
{
    int k = cap >= 32 ? (int)sl_real_fixed15(d, buf) : 0;
    if (k)
        return (size_t)k; /* not an integer: %.15g reads back, has a point */
    for (int prec = 15; prec <= 17; prec++) {
        k = snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (k < 0)
        return 0;
    if (!strpbrk(buf, ".eEni") && (size_t)k + 3 <= cap) {
        memcpy(buf + k, ".0", 3);
        k += 2;
    }
    return (size_t)k;
}

/* Powers of ten that are exact doubles (10^22 is the last). */
static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Writes m (< 10^15) with a point before its last k digits, the integer
 * part at least "0", into buf after the sign; returns the length. */
static size_t put_fixed(uint64_t m, int k, bool neg, char *buf)
{
    char digits[24];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + m % 10);
        m /= 10;
    } while (m || nd <= k); /* at least one integer digit */
    size_t n = 0;
    if (neg)
        buf[n++] = '-';
    for (int i = nd - 1; i >= 0; i--) {
        buf[n++] = digits[i];
        if (i == k)
            buf[n++] = '.';
    }
    buf[n] = '\0';
    return n;
}

size_t sl_real_fixed15(double d, char *buf)
{
    double a = fabs(d);
    if (!(a >= 1e-4 && a < 1e14) || a == floor(a))
        return 0;
    /* the smallest k with a decimal m / 10^k of at most 15 digits that
     * reads back as d; the 15-digit grid is much coarser than d's ulp, so
     * that decimal is exactly what %.15g rounds d to */
    for (int k = 1; k <= 22; k++) {
        double scaled = a * POW10[k];
        if (scaled >= 1e15)
            return 0;
        double m = nearbyint(scaled);
        if (m / POW10[k] == a)
            return put_fixed((uint64_t)m, k, signbit(d), buf);
    }
    return 0;
}

bool sl_real_parse_fast(const char *s, size_t n, double *out)
{
    const char *p = s, *end = s + n;
    bool neg = p < end && *p == '-';
    p += neg;
    uint64_t m = 0;
    int digits = 0, frac = 0;
    bool point = false;
    for (; p < end && ((*p >= '0' && *p <= '9') || (*p == '.' && !point)); p++) {
        if (*p == '.') {
            point = true;
            continue;
        }
        if (m || *p != '0')
            digits++;
        m = m * 10 + (uint64_t)(*p - '0');
        frac += point;
        if (digits > 15)
            return false;
    }
    int exp = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = p < end && *p == '-';
        p += p < end && (*p == '-' || *p == '+');
        if (p == end)
            return false;
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            exp = exp * 10 + (*p - '0');
            if (exp > 400)
                return false;
        }
        exp = eneg ? -exp : exp;
    }
    exp -= frac;
    if (p != end || exp < -22 || exp > 22)
        return false;
    /* m < 10^15 and 10^|exp| are exact doubles: one correctly rounded
     * operation gives the double nearest the decimal, as strtod does */
    double v = exp < 0 ? (double)m / POW10[-exp] : (double)m * POW10[exp];
    *out = neg ? -v : v;
    return true;
}
