/* Validating a JSON text without building it (json_valid.h): the checks
 * jansson makes when it parses, in one pass with a fixed-size stack, so
 * that inputs and outputs can tell JSON from other text without a tree. */
#include "json_valid.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "utf8.h"

#define JSON_MAX_DEPTH 2048

typedef struct jv {
    const unsigned char *s;
    size_t len;
    size_t pos;
    char *msg;
    size_t cap;
    bool saw_nul; /* the last string had a \u0000 escape */
} jv;

static bool jv_fail(jv *v, const char *what)
{
    size_t line = 1, line_start = 0;
    for (size_t i = 0; i < v->pos && i < v->len; i++) {
        if (v->s[i] == '\n') {
            line++;
            line_start = i + 1;
        }
    }
    if (v->cap > 0)
        snprintf(v->msg, v->cap, "%s at line %zu, column %zu (byte %zu)", what, line,
                 v->pos - line_start + 1, v->pos);
    return false;
}

static bool jv_unexpected(jv *v)
{
    char what[48];
    if (v->pos >= v->len)
        return jv_fail(v, "unexpected end of input");
    unsigned char c = v->s[v->pos];
    if (c >= 0x20 && c < 0x7f)
        snprintf(what, sizeof what, "unexpected '%c'", c);
    else
        snprintf(what, sizeof what, "unexpected byte 0x%02x", c);
    return jv_fail(v, what);
}

static void jv_ws(jv *v)
{
    while (v->pos < v->len) {
        unsigned char c = v->s[v->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        v->pos++;
    }
}

static int jv_hex4(const unsigned char *p)
{
    return (int)sl_hex_value((const char *)p, 4);
}

/* At the opening quote: checks the string and moves past the closing quote. */
static bool jv_string(jv *v)
{
    v->saw_nul = false;
    v->pos++;
    while (v->pos < v->len) {
        unsigned char c = v->s[v->pos];
        if (c == '"') {
            v->pos++;
            return true;
        }
        if (c < 0x20)
            return jv_fail(v, "control character in string");
        if (c == '\\') {
            if (v->pos + 1 >= v->len)
                break;
            unsigned char e = v->s[v->pos + 1];
            if (e == 'u') {
                if (v->pos + 6 > v->len)
                    break;
                int cp = jv_hex4(v->s + v->pos + 2);
                if (cp < 0)
                    return jv_fail(v, "invalid \\u escape");
                if (cp == 0)
                    v->saw_nul = true;
                if (cp >= 0xdc00 && cp <= 0xdfff)
                    return jv_fail(v, "lone low surrogate");
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (v->pos + 12 > v->len || v->s[v->pos + 6] != '\\' || v->s[v->pos + 7] != 'u')
                        return jv_fail(v, "lone high surrogate");
                    int lo = jv_hex4(v->s + v->pos + 8);
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return jv_fail(v, "invalid surrogate pair");
                    v->pos += 12;
                } else {
                    v->pos += 6;
                }
                continue;
            }
            if (strchr("\"\\/bfnrt", e) == NULL || e == '\0')
                return jv_fail(v, "invalid escape");
            v->pos += 2;
            continue;
        }
        size_t n = sl_utf8_seq_len(v->s + v->pos, v->len - v->pos);
        if (n == 0)
            return jv_fail(v, "invalid UTF-8 in string");
        v->pos += n;
    }
    v->pos = v->len;
    return jv_fail(v, "unterminated string");
}

static bool jv_digits(jv *v)
{
    size_t start = v->pos;
    while (v->pos < v->len && v->s[v->pos] >= '0' && v->s[v->pos] <= '9')
        v->pos++;
    return v->pos > start;
}

/* The range checks jansson makes on the number token at [start, v->pos):
 * integers must fit int64, reals must be finite. Long tokens are copied to
 * the heap: a 400-digit real can still overflow. */
static bool jv_range(jv *v, size_t start, bool real)
{
    char small[64];
    size_t n = v->pos - start;
    char *tok = n < sizeof small ? small : malloc(n + 1);
    if (tok == NULL)
        return jv_fail(v, "out of memory");
    memcpy(tok, v->s + start, n);
    tok[n] = '\0';
    errno = 0;
    const char *err = NULL;
    if (real) {
        double d = strtod(tok, NULL);
        if (errno == ERANGE && isinf(d))
            err = "real number overflow";
    } else {
        (void)strtoll(tok, NULL, 10);
        if (errno == ERANGE)
            err = "integer out of range";
    }
    if (tok != small)
        free(tok);
    if (err == NULL)
        return true;
    v->pos = start;
    return jv_fail(v, err);
}

static bool jv_number(jv *v)
{
    size_t start = v->pos;
    bool real = false;
    if (v->s[v->pos] == '-')
        v->pos++;
    if (v->pos < v->len && v->s[v->pos] == '0') {
        v->pos++;
        if (v->pos < v->len && v->s[v->pos] >= '0' && v->s[v->pos] <= '9')
            return jv_fail(v, "leading zero in number");
    } else if (!jv_digits(v)) {
        return jv_unexpected(v);
    }
    if (v->pos < v->len && v->s[v->pos] == '.') {
        v->pos++;
        real = true;
        if (!jv_digits(v))
            return jv_unexpected(v);
    }
    if (v->pos < v->len && (v->s[v->pos] == 'e' || v->s[v->pos] == 'E')) {
        v->pos++;
        real = true;
        if (v->pos < v->len && (v->s[v->pos] == '+' || v->s[v->pos] == '-'))
            v->pos++;
        if (!jv_digits(v))
            return jv_unexpected(v);
    }
    return jv_range(v, start, real);
}

static bool jv_literal(jv *v, const char *word)
{
    size_t n = strlen(word);
    if (v->len - v->pos < n || memcmp(v->s + v->pos, word, n) != 0)
        return jv_unexpected(v);
    v->pos += n;
    return true;
}

/* One scalar value at v->pos (the caller handles '{' and '['). */
static bool jv_scalar(jv *v)
{
    unsigned char c = v->s[v->pos];
    switch (c) {
        case '"':
            return jv_string(v);
        case 't':
            return jv_literal(v, "true");
        case 'f':
            return jv_literal(v, "false");
        case 'n':
            return jv_literal(v, "null");
        default:
            if (c == '-' || (c >= '0' && c <= '9'))
                return jv_number(v);
            return jv_unexpected(v);
    }
}

/* After '{' or ',' in an object: a key string and its colon. */
static bool jv_key(jv *v)
{
    jv_ws(v);
    if (v->pos >= v->len || v->s[v->pos] != '"') {
        if (v->pos < v->len)
            return jv_fail(v, "expected a string key");
        return jv_unexpected(v);
    }
    size_t key_start = v->pos;
    if (!jv_string(v))
        return false;
    if (v->saw_nul) { /* jansson keys are C strings */
        v->pos = key_start;
        return jv_fail(v, "NUL byte in object key");
    }
    jv_ws(v);
    if (v->pos >= v->len || v->s[v->pos] != ':')
        return v->pos >= v->len ? jv_unexpected(v) : jv_fail(v, "expected ':'");
    v->pos++;
    return true;
}

/* The open containers of the text: '{' or '[' each, innermost last. */
typedef struct jv_nest {
    char stack[JSON_MAX_DEPTH];
    size_t depth;
} jv_nest;

/* Where sl_json_valid's loop goes next. */
typedef enum { JV_FAIL, JV_WANT_VALUE, JV_AFTER_VALUE, JV_DONE } jv_next;

/* Reads the start of a value: a scalar whole, or the opening of a
 * container (and its first key) or an empty container. */
static jv_next jv_value(jv *v, jv_nest *n)
{
    jv_ws(v);
    if (v->pos >= v->len) {
        jv_unexpected(v);
        return JV_FAIL;
    }
    unsigned char c = v->s[v->pos];
    if (c != '{' && c != '[') {
        if (n->depth == JSON_MAX_DEPTH) { /* jansson counts a scalar as one more level */
            jv_fail(v, "nesting too deep");
            return JV_FAIL;
        }
        return jv_scalar(v) ? JV_AFTER_VALUE : JV_FAIL;
    }
    if (n->depth == JSON_MAX_DEPTH) {
        jv_fail(v, "nesting too deep");
        return JV_FAIL;
    }
    n->stack[n->depth++] = (char)c;
    v->pos++;
    jv_ws(v);
    unsigned char closer = c == '{' ? '}' : ']';
    if (v->pos < v->len && v->s[v->pos] == closer) {
        v->pos++;
        n->depth--;
        return JV_AFTER_VALUE;
    }
    if (c == '{' && !jv_key(v))
        return JV_FAIL;
    return JV_WANT_VALUE;
}

/* After a value: closes containers until a ',' (then reads the next key
 * in an object) or the end of the text. */
static jv_next jv_after_value(jv *v, jv_nest *n)
{
    for (;;) {
        jv_ws(v);
        if (n->depth == 0) {
            if (v->pos != v->len) {
                jv_fail(v, "end of input expected");
                return JV_FAIL;
            }
            return JV_DONE;
        }
        if (v->pos >= v->len) {
            jv_unexpected(v);
            return JV_FAIL;
        }
        unsigned char c = v->s[v->pos];
        char top = n->stack[n->depth - 1];
        if (c == ',') {
            v->pos++;
            if (top == '{' && !jv_key(v))
                return JV_FAIL;
            return JV_WANT_VALUE;
        }
        if ((top == '{' && c == '}') || (top == '[' && c == ']')) {
            v->pos++;
            n->depth--;
            continue;
        }
        jv_fail(v, top == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        return JV_FAIL;
    }
}

bool sl_json_valid(const char *buf, size_t len, char *msg, size_t cap)
{
    jv v = {(const unsigned char *)buf, len, 0, msg, cap, false};
    jv_nest n;
    n.depth = 0;
    if (cap > 0)
        msg[0] = '\0';
    jv_next next = JV_WANT_VALUE;
    while (next == JV_WANT_VALUE || next == JV_AFTER_VALUE)
        next = next == JV_WANT_VALUE ? jv_value(&v, &n) : jv_after_value(&v, &n);
    return next == JV_DONE;
}
