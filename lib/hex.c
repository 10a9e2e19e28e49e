/* Hex digit parsing and hex text (see hex.h): one copy for the
 * http_server's JSON validator, Lua's json.decode, the JSON/XML bridge's
 * name escapes, and the digests of webhook signatures. */
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

void sl_hex_encode(const void *data, size_t len, char *out)
{
    static const char DIGITS[] = "0123456789abcdef";
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = DIGITS[p[i] >> 4];
        out[2 * i + 1] = DIGITS[p[i] & 15];
    }
    out[2 * len] = '\0';
}

long sl_hex_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
    if (len % 2 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len; i += 2) {
        int hi = sl_hex_digit(s[i]), lo = sl_hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(len / 2);
}
