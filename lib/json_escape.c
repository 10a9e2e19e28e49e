/* JSON string escaping (see json_escape.h). One loop: a run of plain ASCII
 * is copied byte by byte, everything else is looked at once, turned into
 * its output piece, and written only when the whole piece fits. */
#include "json_escape.h"

#include <string.h>

#include "utf8.h"

static const char hex_digits[] = "0123456789abcdef";

/* Writes c as \u00XX into e and returns 6. */
static size_t escape_hex(unsigned char c, char e[6])
{
    memcpy(e, "\\u00", 4);
    e[4] = hex_digits[c >> 4];
    e[5] = hex_digits[c & 15];
    return 6;
}

/* Writes the escape of c ('"', '\\', a control character or DEL) into e
 * and returns its length (2 or 6). */
static size_t escape_special(unsigned char c, unsigned flags, char e[6])
{
    char shorthand = 0;
    switch (c) {
        case '"':
        case '\\':
            shorthand = (char)c;
            break;
        case '\n':
            shorthand = 'n';
            break;
        case '\r':
            shorthand = 'r';
            break;
        case '\t':
            shorthand = 't';
            break;
        case '\b':
            shorthand = flags & SL_JSON_ESC_TERMINAL ? 0 : 'b';
            break;
        case '\f':
            shorthand = flags & SL_JSON_ESC_TERMINAL ? 0 : 'f';
            break;
        default:
            break;
    }
    if (!shorthand)
        return escape_hex(c, e);
    e[0] = '\\';
    e[1] = shorthand;
    return 2;
}

/* The output piece for the non-ASCII byte at s[0] (n bytes left): points
 * *piece at it and returns its length; *used gets the input bytes it covers. */
static size_t high_piece(const unsigned char *s, size_t n, unsigned flags, char e[6],
                         const char **piece, size_t *used)
{
    size_t k = (flags & SL_JSON_ESC_RAW) ? 1 : sl_utf8_seq_len(s, n);
    *used = k ? k : 1;
    if (k) {
        *piece = (const char *)s;
        return k;
    }
    *piece = e;
    if (flags & SL_JSON_ESC_REPLACE) {
        memcpy(e, "\\ufffd", 6);
        return 6;
    }
    return escape_hex(s[0], e);
}

size_t sl_json_escape(const char *s, size_t len, unsigned flags, char *out, size_t cap,
                      size_t *written)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char del_plain = (flags & SL_JSON_ESC_TERMINAL) ? 0 : 0x7f;
    size_t i = 0, o = 0;
    while (i < len) {
        unsigned char c = p[i];
        if ((c >= 0x20 && c < 0x7f && c != '"' && c != '\\') || (c == 0x7f && del_plain)) {
            if (o == cap)
                break;
            out[o++] = (char)c;
            i++;
            continue;
        }
        char e[6];
        const char *piece = e;
        size_t used = 1, n;
        if (c >= 0x80)
            n = high_piece(p + i, len - i, flags, e, &piece, &used);
        else
            n = escape_special(c, flags, e);
        if (n > cap - o)
            break;
        memcpy(out + o, piece, n);
        o += n;
        i += used;
    }
    *written = o;
    return i;
}

bool sl_json_escape_cstr(const char *s, size_t len, unsigned flags, char *out, size_t cap,
                         size_t *pos)
{
    if (cap == 0)
        return false;
    size_t p = *pos, w = 0, used = 0;
    if (p < cap - 1)
        used = sl_json_escape(s, len, flags, out + p, cap - 1 - p, &w);
    p += w;
    out[p < cap ? p : cap - 1] = '\0';
    *pos = p;
    return used == len;
}
