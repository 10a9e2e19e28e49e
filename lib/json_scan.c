/* Finding one value in a JSON text without building a tree (json_scan.h):
 * one pass over the bytes that skips every value off the path by counting
 * brackets outside strings, so it is linear in the text and needs no
 * memory; anything it cannot decide exactly is handed back as UNSURE. */
#include "json_scan.h"

#include <string.h>

typedef struct scan {
    const unsigned char *s;
    size_t len;
    size_t pos;
} scan;

static void skip_ws(scan *c)
{
    while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t' ||
                               c->s[c->pos] == '\n' || c->s[c->pos] == '\r'))
        c->pos++;
}

/* c->pos is at a '"': moves past the closing quote and sets *esc when the
 * string holds a backslash. Returns false when the text ends first. */
static bool skip_string(scan *c, bool *esc)
{
    size_t i = c->pos + 1;
    *esc = false;
    while (i <= c->len) {
        const unsigned char *q = memchr(c->s + i, '"', c->len - i);
        if (q == NULL)
            return false;
        size_t qi = (size_t)(q - c->s);
        const unsigned char *b = memchr(c->s + i, '\\', qi - i);
        if (b == NULL) {
            c->pos = qi + 1;
            return true;
        }
        *esc = true;
        i = (size_t)(b - c->s) + 2; /* past the backslash and the character it escapes */
    }
    return false;
}

/* c->pos is at the first byte of a value: moves past it. Returns false when
 * the text ends first. */
static bool skip_value(scan *c)
{
    bool esc;
    if (c->pos >= c->len)
        return false;
    unsigned char ch = c->s[c->pos];
    if (ch == '"')
        return skip_string(c, &esc);
    if (ch == '{' || ch == '[') {
        size_t depth = 0;
        while (c->pos < c->len) {
            ch = c->s[c->pos];
            if (ch == '"') {
                if (!skip_string(c, &esc))
                    return false;
                continue;
            }
            if (ch == '{' || ch == '[') {
                depth++;
            } else if (ch == '}' || ch == ']') {
                if (--depth == 0) {
                    c->pos++;
                    return true;
                }
            }
            c->pos++;
        }
        return false;
    }
    while (c->pos < c->len && c->s[c->pos] != ',' && c->s[c->pos] != '}' && c->s[c->pos] != ']' &&
           c->s[c->pos] != ' ' && c->s[c->pos] != '\t' && c->s[c->pos] != '\n' &&
           c->s[c->pos] != '\r')
        c->pos++;
    return true;
}

/* c->pos is at a '{': leaves c->pos at the value of the last member named
 * st's name. */
static sl_json_scan_result find_member(scan *c, const sl_json_step *st)
{
    bool found = false, esc;
    size_t at = 0;
    c->pos++;
    skip_ws(c);
    if (c->pos < c->len && c->s[c->pos] == '}')
        return SL_JSON_SCAN_MISSING;
    for (;;) {
        skip_ws(c);
        if (c->pos >= c->len || c->s[c->pos] != '"')
            return SL_JSON_SCAN_UNSURE;
        size_t name = c->pos + 1;
        if (!skip_string(c, &esc) || esc)
            return SL_JSON_SCAN_UNSURE; /* an escaped name may equal ours once decoded */
        size_t name_len = c->pos - 1 - name;
        skip_ws(c);
        if (c->pos >= c->len || c->s[c->pos] != ':')
            return SL_JSON_SCAN_UNSURE;
        c->pos++;
        skip_ws(c);
        if (name_len == st->name_len && memcmp(c->s + name, st->name, name_len) == 0) {
            found = true;
            at = c->pos;
        }
        if (!skip_value(c))
            return SL_JSON_SCAN_UNSURE;
        skip_ws(c);
        if (c->pos >= c->len)
            return SL_JSON_SCAN_UNSURE;
        if (c->s[c->pos] == '}')
            break;
        if (c->s[c->pos] != ',')
            return SL_JSON_SCAN_UNSURE;
        c->pos++;
    }
    c->pos = at;
    return found ? SL_JSON_SCAN_FOUND : SL_JSON_SCAN_MISSING;
}

/* c->pos is at a '[': leaves c->pos at element st->index. */
static sl_json_scan_result find_element(scan *c, const sl_json_step *st)
{
    c->pos++;
    skip_ws(c);
    if (c->pos < c->len && c->s[c->pos] == ']')
        return SL_JSON_SCAN_MISSING;
    for (size_t k = 0;; k++) {
        skip_ws(c);
        if (k == st->index)
            return c->pos < c->len ? SL_JSON_SCAN_FOUND : SL_JSON_SCAN_UNSURE;
        if (!skip_value(c))
            return SL_JSON_SCAN_UNSURE;
        skip_ws(c);
        if (c->pos >= c->len)
            return SL_JSON_SCAN_UNSURE;
        if (c->s[c->pos] == ']')
            return SL_JSON_SCAN_MISSING;
        if (c->s[c->pos] != ',')
            return SL_JSON_SCAN_UNSURE;
        c->pos++;
    }
}

/* c->pos is at an integer: FOUND with its text when jansson would print it
 * back the same (no fraction or exponent, at most 18 digits, not -0). */
static sl_json_scan_result integer_at(scan *c, const char **val, size_t *val_len)
{
    size_t start = c->pos;
    if (!skip_value(c))
        return SL_JSON_SCAN_UNSURE;
    size_t n = c->pos - start;
    const unsigned char *t = c->s + start;
    size_t digits = n - (t[0] == '-');
    if (digits == 0 || digits > 18 || (n == 2 && t[0] == '-' && t[1] == '0'))
        return SL_JSON_SCAN_UNSURE;
    for (size_t i = t[0] == '-'; i < n; i++)
        if (t[i] < '0' || t[i] > '9')
            return SL_JSON_SCAN_UNSURE;
    *val = (const char *)t;
    *val_len = n;
    return SL_JSON_SCAN_FOUND;
}

/* c->pos is at the value the path led to. */
static sl_json_scan_result value_at(scan *c, const char **val, size_t *val_len)
{
    bool esc;
    const unsigned char *t = c->s + c->pos;
    size_t left = c->len - c->pos;
    switch (t[0]) {
        case '"':
            if (!skip_string(c, &esc) || esc)
                return SL_JSON_SCAN_UNSURE;
            *val = (const char *)t + 1;
            *val_len = (size_t)(c->s + c->pos - 1 - (t + 1));
            return SL_JSON_SCAN_FOUND;
        case 'n':
            return left >= 4 && memcmp(t, "null", 4) == 0 ? SL_JSON_SCAN_MISSING
                                                          : SL_JSON_SCAN_UNSURE;
        case 't':
        case 'f': {
            size_t n = t[0] == 't' ? 4 : 5;
            if (left < n || memcmp(t, t[0] == 't' ? "true" : "false", n) != 0)
                return SL_JSON_SCAN_UNSURE;
            *val = (const char *)t;
            *val_len = n;
            return SL_JSON_SCAN_FOUND;
        }
        default:
            if (t[0] == '-' || (t[0] >= '0' && t[0] <= '9'))
                return integer_at(c, val, val_len);
            return SL_JSON_SCAN_UNSURE; /* an object or an array: the parser says why not */
    }
}

sl_json_scan_result sl_json_scan(const char *buf, size_t len, const sl_json_step *steps, size_t n,
                                 const char **val, size_t *val_len)
{
    scan c = {(const unsigned char *)buf, len, 0};
    skip_ws(&c);
    for (size_t i = 0; i < n; i++) {
        if (c.pos >= c.len)
            return SL_JSON_SCAN_UNSURE;
        unsigned char ch = c.s[c.pos];
        sl_json_scan_result r;
        if (!steps[i].is_index && ch == '{')
            r = find_member(&c, &steps[i]);
        else if (steps[i].is_index && ch == '[')
            r = find_element(&c, &steps[i]);
        else
            r = SL_JSON_SCAN_MISSING; /* a step into a value of another kind finds nothing */
        if (r != SL_JSON_SCAN_FOUND)
            return r;
    }
    if (c.pos >= c.len)
        return SL_JSON_SCAN_UNSURE;
    return value_at(&c, val, val_len);
}
