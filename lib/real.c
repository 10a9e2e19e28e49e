/* JSON real formatting (see real.h): printf's %g at the first precision
 * that reads back exactly, marked as a real. One copy for the key text of
 * JSON numbers and the JSON/XML bridge's slow path. */
#include "real.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t sl_format_real(double d, char *buf, size_t cap)
{
    int k = 0;
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
