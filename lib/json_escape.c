/* JSON string escaping (see json_escape.h). One loop: a run of plain ASCII
 * is copied byte by byte, everything else is looked at once, turned into
 * its output piece, and written only when the whole piece fits. */
#include "json_escape.h"

#include <stdbool.h>
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

/* Writes the escape of a byte that is not part of valid UTF-8 into e
 * (\ufffd with SL_JSON_ESC_REPLACE, else \u00XX) and returns 6. */
static size_t escape_bad_byte(unsigned char c, unsigned flags, char e[6])
{
    if (flags & SL_JSON_ESC_REPLACE) {
        memcpy(e, "\\ufffd", 6);
        return 6;
    }
    return escape_hex(c, e);
}

/* The loop of sl_json_escape. Inlined twice: with bounded false (the
 * caller has room for the worst case) the compiler drops the room checks
 * from the per-byte path. */
static inline __attribute__((always_inline)) size_t escape_loop(const unsigned char *p, size_t len,
                                                                unsigned flags, char *out,
                                                                size_t cap, size_t *written,
                                                                bool bounded)
{
    unsigned char del_plain = (flags & SL_JSON_ESC_TERMINAL) ? 0 : 0x7f;
    size_t i = 0, o = 0;
    while (i < len) {
        unsigned char c = p[i];
        if ((c >= 0x20 && c < 0x7f && c != '"' && c != '\\') || (c == 0x7f && del_plain)) {
            if (bounded && o == cap)
                break;
            out[o++] = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = (flags & SL_JSON_ESC_RAW) ? 1 : sl_utf8_seq_len(p + i, len - i);
            if (k) { /* copied as it is */
                if (bounded && k > cap - o)
                    break;
                for (size_t j = 0; j < k; j++)
                    out[o + j] = (char)p[i + j];
                o += k;
                i += k;
                continue;
            }
        }
        char e[6];
        size_t n = c >= 0x80 ? escape_bad_byte(c, flags, e) : escape_special(c, flags, e);
        if (bounded && n > cap - o)
            break;
        memcpy(out + o, e, n);
        o += n;
        i++;
    }
    *written = o;
    return i;
}

size_t sl_json_escape(const char *s, size_t len, unsigned flags, char *out, size_t cap,
                      size_t *written)
{
    const unsigned char *p = (const unsigned char *)s;
    if (len <= cap / SL_JSON_ESC_MAX_GROWTH)
        return escape_loop(p, len, flags, out, cap, written, false);
    return escape_loop(p, len, flags, out, cap, written, true);
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
