/* Hex digit parsing (see hex.h): one copy for the http_server's JSON
 * validator, Lua's json.decode and the JSON/XML bridge's name escapes. */
#include "hex.h"

int sl_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int64_t sl_hex_value(const char *s, size_t ndig)
{
    int64_t v = 0;
    for (size_t i = 0; i < ndig; i++) {
        int d = sl_hex_digit(s[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}
