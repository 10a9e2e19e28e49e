/* JSON for the Lua host: a direct parser from JSON text into Lua tables and
 * an encoder back (no intermediate tree), and the `json` module. Arrays carry
 * a shared marker metatable; every object carries its own metatable that
 * holds its key order (see "ordered objects" below), so {} and [] survive a
 * round trip and keys come back in the order they were read or assigned.
 * null is json.null (a light userdata). */
#define SL_LUA_INTERNAL
#include "lua_host.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fnv.h"
#include "hex.h"
#include "json_escape.h"
#include "real.h"
#include "utf8.h"

#define MAX_DEPTH 200

/* ---- decoding -------------------------------------------------------------- */

typedef struct jdec {
    lua_State *L;
    sl_lua_host *h;
    const char *start, *p, *end;
    int depth;
    int cache; /* stack index of the shape cache (push_shape, predictions) */
} jdec;

static int dec_error(jdec *d, const char *what)
{
    return luaL_error(d->L, "json: %s at offset %d", what, (int)(d->p - d->start));
}

static inline void skip_ws(jdec *d)
{
    if (d->p < d->end && (unsigned char)*d->p > ' ')
        return; /* compact text: no whitespace between tokens */
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t'))
        d->p++;
}

/* Consumes the ':' after a member's key. */
static inline void dec_colon(jdec *d)
{
    skip_ws(d);
    if (d->p >= d->end || *d->p != ':')
        dec_error(d, "expected ':'");
    d->p++;
}

/* Consumes what follows a member: ',' (returns true: another member
 * follows) or '}' (returns false); anything else is an error. */
static inline bool dec_member_next(jdec *d)
{
    skip_ws(d);
    if (d->p < d->end && *d->p == ',') {
        d->p++;
        return true;
    }
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        return false;
    }
    dec_error(d, "expected ',' or '}'");
    return false;
}

static int hex4(const char *p, unsigned *out)
{
    int64_t v = sl_hex_value(p, 4);
    if (v < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static void add_utf8(luaL_Buffer *b, unsigned cp)
{
    char s[4];
    luaL_addlstring(b, s, sl_utf8_encode(cp, s));
}

/* Does byte c stand for itself in a JSON string, read or written (as
 * SL_JSON_ESC_RAW writes it)? Printable ASCII and DEL, not '"' or '\\'. */
static inline bool plain_byte(unsigned char c)
{
    return (unsigned)c - 0x20u < 0x60u && c != '"' && c != '\\';
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* How many bytes from p (up to end) are plain (plain_byte), eight at a
 * time while whole words are: a word is plain when none of its bytes is
 * below 0x20, '"', '\\' or 0x80 and above. */
static inline size_t plain_run(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *q = p;
    while (end - q >= 8) {
        uint64_t v;
        memcpy(&v, q, 8);
        uint64_t quote = v ^ (ONES * '"'), bslash = v ^ (ONES * '\\');
        uint64_t stop =
            ((v - ONES * 0x20) & ~v) | ((quote - ONES) & ~quote) | ((bslash - ONES) & ~bslash) | v;
        stop &= HIGHS;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* no borrow reaches below the first flagged byte: the lowest flag is exact */
        if (stop)
            return (size_t)(q - p) + ((size_t)__builtin_ctzll(stop) >> 3);
#else
        if (stop)
            break;
#endif
        q += 8;
    }
    while (q < end && plain_byte(*q))
        q++;
    return (size_t)(q - p);
}

/* Scans plain string bytes from d->p: stops at '"', '\\' or the end.
 * Raises on control characters and invalid UTF-8. */
static void scan_plain(jdec *d)
{
    const unsigned char *p = (const unsigned char *)d->p, *end = (const unsigned char *)d->end;
    while (p < end) {
        p += plain_run(p, end);
        if (p == end)
            break;
        unsigned c = *p;
        if (c == '"' || c == '\\')
            break;
        if (c < 0x20) {
            d->p = (const char *)p;
            dec_error(d, "control character in a string");
        }
        if (c >= 0x80) {
            size_t n = sl_utf8_seq_len(p, (size_t)(end - p));
            if (!n) {
                d->p = (const char *)p;
                dec_error(d, "invalid UTF-8 in a string");
            }
            p += n;
        } else {
            p++;
        }
    }
    d->p = (const char *)p;
}

/* The byte a one-character escape \e stands for, or -1 when e is not one. */
static int simple_escape(char e)
{
    switch (e) {
        case '"':
        case '\\':
        case '/':
            return e;
        case 'b':
            return '\b';
        case 'f':
            return '\f';
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case 't':
            return '\t';
        default:
            return -1;
    }
}

/* Adds the code point of the \uXXXX escape whose hex digits start at d->p
 * (with the low half of a surrogate pair); raises on a bad or lone one. */
static void dec_unicode_escape(jdec *d, luaL_Buffer *b)
{
    unsigned cp = 0, lo = 0;
    if (d->end - d->p < 4 || hex4(d->p, &cp) < 0)
        dec_error(d, "bad \\u escape");
    d->p += 4;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (d->end - d->p < 6 || d->p[0] != '\\' || d->p[1] != 'u' || hex4(d->p + 2, &lo) < 0 ||
            lo < 0xdc00 || lo > 0xdfff)
            dec_error(d, "lone surrogate in a \\u escape");
        d->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        dec_error(d, "lone surrogate in a \\u escape");
    }
    add_utf8(b, cp);
}

/* Adds the escape at the backslash d->p; raises on a bad one. */
static void dec_escape(jdec *d, luaL_Buffer *b)
{
    if (d->end - d->p < 2)
        dec_error(d, "unterminated string");
    char e = d->p[1];
    d->p += 2;
    if (e == 'u') {
        dec_unicode_escape(d, b);
        return;
    }
    int c = simple_escape(e);
    if (c < 0) {
        d->p -= 2;
        dec_error(d, "bad escape in a string");
    }
    luaL_addchar(b, (char)c);
}

/* Pushes the string starting at the opening quote d->p. */
static void dec_string(jdec *d)
{
    lua_State *L = d->L;
    const char *s = ++d->p;
    scan_plain(d);
    if (d->p < d->end && *d->p == '"') { /* no escapes: the common case */
        lua_pushlstring(L, s, (size_t)(d->p - s));
        d->p++;
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, s, (size_t)(d->p - s));
    for (;;) {
        if (d->p >= d->end)
            dec_error(d, "unterminated string");
        if (*d->p == '"') {
            d->p++;
            break;
        }
        dec_escape(d, &b); /* scan_plain stopped at a backslash */
        const char *run = d->p;
        scan_plain(d);
        luaL_addlstring(&b, run, (size_t)(d->p - run));
    }
    luaL_pushresult(&b);
}

/* Skips the digits at q (none is fine) and returns where they end. */
static const char *skip_digits(const char *q, const char *end)
{
    while (q < end && *q >= '0' && *q <= '9')
        q++;
    return q;
}

/* Returns the end of the number token at d->p (JSON's grammar: no leading
 * zeros, digits after '.' and after the exponent); *is_float when it has a
 * fraction or an exponent. Raises on a malformed number. */
static const char *scan_number(jdec *d, bool *is_float)
{
    const char *q = d->p, *end = d->end;
    if (q < end && *q == '-')
        q++;
    if (q < end && *q == '0') {
        q++;
    } else if (q < end && *q >= '1' && *q <= '9') {
        q = skip_digits(q, end);
    } else {
        dec_error(d, "bad number");
    }
    if (q < end && *q == '.') {
        *is_float = true;
        q++;
        if (q >= end || *q < '0' || *q > '9')
            dec_error(d, "bad number");
        q = skip_digits(q, end);
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        *is_float = true;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || *q < '0' || *q > '9')
            dec_error(d, "bad number");
        q = skip_digits(q, end);
    }
    return q;
}

/* Pushes the integer token [s, q) when it fits a lua_Integer and returns
 * true; else pushes nothing and returns false. */
static bool push_integer(lua_State *L, const char *s, const char *q)
{
    const char *digits = s + (*s == '-');
    if ((size_t)(q - digits) <= 18) {
        lua_Integer v = 0;
        for (const char *c = digits; c < q; c++)
            v = v * 10 + (*c - '0');
        lua_pushinteger(L, *s == '-' ? -v : v);
        return true;
    }
    /* 19 digits or more: an integer when it fits, else a float */
    char tmp[32];
    if ((size_t)(q - s) < sizeof tmp) {
        memcpy(tmp, s, (size_t)(q - s));
        tmp[q - s] = '\0';
        if (lua_stringtonumber(L, tmp))
            return true;
    }
    return false;
}

/* Pushes the number token [s, q) as a float (the exact fast path for short
 * decimals, else strtod on a copy). */
static void push_float(lua_State *L, const char *s, const char *q)
{
    double fast;
    if (sl_real_parse_fast(s, (size_t)(q - s), &fast)) {
        lua_pushnumber(L, fast);
        return;
    }
    char tmp[64];
    size_t n = (size_t)(q - s);
    char *big = NULL;
    char *text = tmp;
    if (n >= sizeof tmp) {
        big = malloc(n + 1);
        if (!big)
            luaL_error(L, "json: out of memory");
        text = big;
    }
    memcpy(text, s, n);
    text[n] = '\0';
    double v = strtod(text, NULL);
    free(big);
    lua_pushnumber(L, v);
}

static void dec_number(jdec *d)
{
    const char *s = d->p;
    bool is_float = false;
    const char *q = scan_number(d, &is_float);
    d->p = q;
    if (!is_float && push_integer(d->L, s, q))
        return;
    push_float(d->L, s, q);
}

static void dec_value(jdec *d);

static void dec_literal(jdec *d, const char *word, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        dec_error(d, "unexpected character");
    d->p += n;
}

static void push_object_mt(lua_State *L, int narr);
static bool push_shape(lua_State *L, sl_lua_host *h, int cache, int first, int n);

#define KEYS_ON_STACK 32
#define SHAPE_SLOTS 64

/* Moves the keys decoded so far, kept on the stack above t + 1, into the
 * private (unshared) order of the object at t: the metatable at t + 1, made here (sized for
 * them, or for more when more may follow) when that slot is still nil. */
static void flush_keys(lua_State *L, int t, lua_Integer *n, int pending, bool last)
{
    if (lua_isnil(L, t + 1)) {
        push_object_mt(L, last ? pending : 2 * pending);
        lua_replace(L, t + 1);
    }
    for (int i = 0; i < pending; i++) {
        lua_pushvalue(L, t + 2 + i);
        lua_rawseti(L, t + 1, ++*n);
    }
    lua_settop(L, t + 1);
}

/* Reads the members of the object at t (its order at t + 1, nil until
 * made; `pending` keys already read on the stack above it) up to the
 * closing '}'. A repeated key takes a second place; the encoder drops it
 * (enc_ordered). Returns true when the order pushed is a shared one. */
static bool dec_members(jdec *d, int t, int pending)
{
    lua_State *L = d->L;
    lua_Integer n = 0;
    if (pending == KEYS_ON_STACK) {
        flush_keys(L, t, &n, pending, false);
        pending = 0;
    }
    for (;;) {
        skip_ws(d);
        if (d->p >= d->end || *d->p != '"')
            dec_error(d, "expected a string key");
        dec_string(d); /* stays on the stack for the order */
        dec_colon(d);
        lua_pushvalue(L, -1);
        dec_value(d);
        lua_rawset(L, t);
        if (++pending == KEYS_ON_STACK) {
            flush_keys(L, t, &n, pending, false);
            pending = 0;
        }
        if (!dec_member_next(d))
            break;
    }
    if (n == 0) /* the common case: no keys flushed */
        return push_shape(L, d->h, d->cache, t + 2, pending);
    flush_keys(L, t, &n, pending, true);
    return false;
}

/* ---- predicted keys ----
 * Objects at a depth mostly have the keys of the last object decoded at
 * that depth (every message of a partner, every item of a list). The shared
 * order of that object is kept per depth (in the shape cache, after its
 * slots) with a C mirror of its keys' bytes. A member whose key text is, byte
 * for byte, the predicted key takes the key string from the order (no
 * interning); an object whose keys were all the predicted ones takes that
 * order (no shape lookup). Only keys of printable ASCII without '"' or '\\'
 * are predicted: their JSON text is the string itself. */

#define PRED_DEPTHS 8 /* objects deeper than this are not predicted */

struct sl_lua_pred {
    const void *mt; /* the order predicted (held by the cache); valid while n > 0 */
    int n;          /* its keys; 0: nothing predicted */
    int plain;      /* how many of its first keys can be predicted */
    const char *s[KEYS_ON_STACK];
    uint32_t len[KEYS_ON_STACK];
};

/* Makes the shared order at mt the prediction for objects at depth. */
static void predict(jdec *d, int depth, int mt)
{
    lua_State *L = d->L;
    sl_lua_pred *pr = &d->h->pred[depth - 1];
    pr->n = 0; /* no stale pointers if anything below raises */
    lua_pushvalue(L, mt);
    lua_rawseti(L, d->cache, SHAPE_SLOTS + depth);
    int n = (int)lua_rawlen(L, mt), plain = 0;
    if (n > KEYS_ON_STACK)
        return;
    for (; plain < n; plain++) {
        size_t len = 0;
        const char *s = NULL;
        if (lua_rawgeti(L, mt, plain + 1) == LUA_TSTRING)
            s = lua_tolstring(L, -1, &len); /* the order holds it: the bytes stay put */
        lua_pop(L, 1);
        if (!s || plain_run((const unsigned char *)s, (const unsigned char *)s + len) != len)
            break;
        pr->s[plain] = s;
        pr->len[plain] = (uint32_t)len;
    }
    pr->mt = lua_topointer(L, mt);
    pr->plain = plain;
    pr->n = n;
}

/* Is the key whose opening quote is at d->p the predicted key i? Then
 * skips its text and returns true. */
static bool take_predicted(jdec *d, const sl_lua_pred *pr, int i)
{
    if (i >= pr->plain || d->p >= d->end || *d->p != '"')
        return false;
    size_t n = pr->len[i];
    const char *s = d->p + 1;
    if ((size_t)(d->end - s) <= n || s[n] != '"' || memcmp(s, pr->s[i], n) != 0)
        return false;
    d->p = s + n + 1;
    return true;
}

/* Leaves the prediction after i members of the object at t: their keys are
 * pushed (from the order at t + 1, which becomes nil), then the members go
 * on as dec_members reads them, or (at_end) the order of these keys is
 * found. Returns true when the order is a shared one. */
static bool unpredicted(jdec *d, int t, int i, bool at_end)
{
    lua_State *L = d->L;
    for (int j = 1; j <= i; j++)
        lua_rawgeti(L, t + 1, j);
    lua_pushnil(L);
    lua_replace(L, t + 1);
    if (at_end)
        return push_shape(L, d->h, d->cache, t + 2, i);
    return dec_members(d, t, i);
}

/* dec_members for an object whose predicted order (pr) is at t + 1, while
 * its keys are the predicted ones. */
static bool dec_members_pred(jdec *d, int t, const sl_lua_pred *pr)
{
    lua_State *L = d->L;
    for (int i = 0;;) {
        skip_ws(d);
        if (!take_predicted(d, pr, i))
            return unpredicted(d, t, i, false);
        lua_rawgeti(L, t + 1, ++i); /* the key */
        dec_colon(d);
        dec_value(d);
        lua_rawset(L, t);
        if (!dec_member_next(d))
            return i == pr->n || unpredicted(d, t, i, true);
    }
}

/* Reads the members of the object at t, with the prediction for its depth
 * when there is one, and pushes its order at t + 1 (the top). */
static void dec_object_members(jdec *d, int t)
{
    lua_State *L = d->L;
    int depth = d->depth;
    sl_lua_pred *pr = d->h->pred && depth <= PRED_DEPTHS ? &d->h->pred[depth - 1] : NULL;
    bool shared;
    if (pr && pr->n > 0) {
        lua_rawgeti(L, d->cache, SHAPE_SLOTS + depth);
        shared = dec_members_pred(d, t, pr);
    } else {
        lua_pushnil(L); /* the order, made when the first keys are flushed */
        shared = dec_members(d, t, 0);
    }
    if (shared && pr && (pr->n == 0 || pr->mt != lua_topointer(L, t + 1)))
        predict(d, depth, t + 1);
}

static void dec_object(jdec *d)
{
    lua_State *L = d->L;
    if (++d->depth > MAX_DEPTH)
        dec_error(d, "nested too deeply");
    /* the object, its order, up to KEYS_ON_STACK pending keys, a key and a
     * value: checked once here, not per member */
    luaL_checkstack(L, KEYS_ON_STACK + 8, "json: nested too deeply");
    /* sized like the last object at this depth: no rehash as members come
     * in when messages look alike */
    unsigned char *hint = &d->h->obj_hint[d->depth & 7];
    lua_createtable(L, 0, *hint ? *hint : 4);
    int t = lua_gettop(L);
    d->p++;
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        lua_pushnil(L);
        push_shape(L, d->h, d->cache, t + 2, 0);
    } else {
        dec_object_members(d, t);
    }
    *hint = (unsigned char)(lua_rawlen(L, -1) < 32 ? lua_rawlen(L, -1) + 1 : 32);
    lua_setmetatable(L, t);
    d->depth--;
}

static void dec_array(jdec *d)
{
    lua_State *L = d->L;
    if (++d->depth > MAX_DEPTH)
        dec_error(d, "nested too deeply");
    luaL_checkstack(L, 4, "json: nested too deeply");
    lua_createtable(L, 4, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, d->h->array_mt);
    lua_setmetatable(L, -2);
    d->p++;
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        d->depth--;
        return;
    }
    for (lua_Integer i = 1;; i++) {
        dec_value(d);
        lua_rawseti(L, -2, i);
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            break;
        }
        dec_error(d, "expected ',' or ']'");
    }
    d->depth--;
}

static void dec_value(jdec *d)
{
    skip_ws(d);
    if (d->p >= d->end)
        dec_error(d, "unexpected end");
    switch (*d->p) {
        case '{':
            dec_object(d);
            break;
        case '[':
            dec_array(d);
            break;
        case '"':
            dec_string(d);
            break;
        case 't':
            dec_literal(d, "true", 4);
            lua_pushboolean(d->L, 1);
            break;
        case 'f':
            dec_literal(d, "false", 5);
            lua_pushboolean(d->L, 0);
            break;
        case 'n':
            dec_literal(d, "null", 4);
            lua_pushlightuserdata(d->L, NULL);
            break;
        default:
            if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))
                dec_number(d);
            else
                dec_error(d, "unexpected character");
    }
}

void sl_lua_json_decode(lua_State *L, const char *s, size_t len)
{
    jdec d = {.L = L, .h = sl_lua_host_of(L), .start = s, .p = s, .end = s + len};
    lua_rawgeti(L, LUA_REGISTRYINDEX, d.h->shape_cache);
    d.cache = lua_gettop(L);
    dec_value(&d);
    skip_ws(&d);
    if (d.p != d.end)
        dec_error(&d, "unexpected text after the value");
    lua_remove(L, d.cache);
}

/* ---- encoding -------------------------------------------------------------- */

struct sl_lua_keyent {
    const char *s;
    size_t len;
    int ltype; /* LUA_TSTRING or LUA_TNUMBER */
    bool is_int;
    lua_Integer i;
    lua_Number f;
    char num[40];
};

typedef struct jenc {
    lua_State *L;
    sl_lua_host *h;
    size_t ktop; /* keys in use in h->keys */
} jenc;

static char *grow(jenc *e, size_t n);

/* Room for n more bytes at the end of the buffer; returns where they go. */
static inline char *reserve(jenc *e, size_t n)
{
    sl_lua_host *h = e->h;
    if (h->buf_cap - h->buf_len < n)
        return grow(e, n);
    return h->buf + h->buf_len;
}

/* reserve()'s slow path: grows the buffer (doubling) for n more bytes. */
static char *grow(jenc *e, size_t n)
{
    sl_lua_host *h = e->h;
    size_t cap = h->buf_cap ? h->buf_cap : 256;
    while (cap - h->buf_len < n)
        cap *= 2;
    if (cap > h->limit + 4096)
        luaL_error(e->L, "json: the encoded text is larger than the memory limit");
    char *nb = realloc(h->buf, cap);
    if (!nb)
        luaL_error(e->L, "json: out of memory");
    h->buf = nb;
    h->buf_cap = cap;
    return h->buf + h->buf_len;
}

static inline void put(jenc *e, const char *s, size_t n)
{
    memcpy(reserve(e, n), s, n);
    e->h->buf_len += n;
}

/* Writes s (n bytes, any bytes: Lua strings are not checked for UTF-8) as
 * a quoted JSON string. Plain text is copied in one pass; from the first
 * byte that is not plain, the buffer grows by what is left plus room for
 * one escape each time an escape does not fit. */
static void put_string(jenc *e, const char *s, size_t n)
{
    char *o = reserve(e, n + 2);
    size_t i = plain_run((const unsigned char *)s, (const unsigned char *)s + n);
    o[0] = '"';
    memcpy(o + 1, s, i); /* the common case: all of it */
    if (i == n) {
        o[n + 1] = '"';
        e->h->buf_len += n + 2;
        return;
    }
    e->h->buf_len += 1 + i; /* the quote and the plain head; the rest escaped */
    while (i < n) {
        /* at least the rest, one escape (6 bytes) and the closing quote */
        reserve(e, (n - i) + SL_JSON_ESC_MAX_GROWTH + 1);
        sl_lua_host *h = e->h;
        size_t w;
        i += sl_json_escape(s + i, n - i, SL_JSON_ESC_RAW, h->buf + h->buf_len,
                            h->buf_cap - h->buf_len - 1, &w);
        h->buf_len += w;
    }
    put(e, "\"", 1);
}

/* Writes a finite double so that it reads back equal, and always as a
 * float ("3.0", not "3"). Returns the length. */
static int format_double(double x, char *out, size_t cap)
{
    int n = cap >= 32 ? (int)sl_real_fixed15(x, out) : 0;
    if (n) /* what %.15g writes, and it reads back */
        return n;
    if (x == floor(x) && fabs(x) < 1e15) {
        n = snprintf(out, cap, "%.1f", x);
    } else {
        n = snprintf(out, cap, "%.15g", x);
        if (strtod(out, NULL) != x)
            n = snprintf(out, cap, "%.17g", x);
        if (!strpbrk(out, ".eEn"))
            n += snprintf(out + n, cap - (size_t)n, ".0");
    }
    return n;
}

/* Writes v in decimal into out (at least 21 bytes) as LUA_INTEGER_FMT
 * would, without printf; returns the length. */
static int format_integer(lua_Integer v, char *out)
{
    char digits[24];
    int nd = 0, n = 0;
    /* the magnitude as unsigned: LUA_MININTEGER has no positive twin */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[nd++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[n++] = '-';
    while (nd)
        out[n++] = digits[--nd];
    out[n] = '\0';
    return n;
}

static void put_number(jenc *e, int idx)
{
    char num[40];
    int n;
    if (lua_isinteger(e->L, idx)) {
        n = format_integer(lua_tointeger(e->L, idx), num);
    } else {
        double x = (double)lua_tonumber(e->L, idx);
        if (!isfinite(x))
            luaL_error(e->L, "json: cannot encode %s", isnan(x) ? "NaN" : "infinity");
        n = format_double(x, num, sizeof num);
    }
    put(e, num, (size_t)n);
}

static void enc_value(jenc *e, int idx, int depth);

static int key_cmp(const void *a, const void *b)
{
    const sl_lua_keyent *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

static void sort_keys(sl_lua_keyent *k, size_t n)
{
    if (n > 16) {
        qsort(k, n, sizeof *k, key_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        sl_lua_keyent t = k[i];
        size_t j = i;
        while (j > 0 && key_cmp(&k[j - 1], &t) > 0) {
            k[j] = k[j - 1];
            j--;
        }
        k[j] = t;
    }
}

static sl_lua_keyent *key_slot(jenc *e)
{
    sl_lua_host *h = e->h;
    if (e->ktop == h->keys_cap) {
        size_t cap = h->keys_cap ? h->keys_cap * 2 : 64;
        sl_lua_keyent *nk = realloc(h->keys, cap * sizeof *nk);
        if (!nk)
            luaL_error(e->L, "json: out of memory");
        h->keys = nk;
        h->keys_cap = cap;
    }
    return &h->keys[e->ktop++];
}

/* The text of the key at stack index k (a string, or a number written as
 * JSON would write it, into num[40]); its length in *len. Raises for other
 * key types. */
static const char *key_text(lua_State *L, int k, char *num, size_t *len)
{
    int t = lua_type(L, k);
    if (t == LUA_TSTRING)
        return lua_tolstring(L, k, len);
    if (t != LUA_TNUMBER)
        luaL_error(L, "json: cannot encode a table key of type %s", luaL_typename(L, k));
    int n;
    if (lua_isinteger(L, k)) {
        n = snprintf(num, 40, LUA_INTEGER_FMT, lua_tointeger(L, k));
    } else {
        double f = (double)lua_tonumber(L, k);
        if (!isfinite(f))
            luaL_error(L, "json: cannot encode a NaN or infinite key");
        n = format_double(f, num, 40);
    }
    *len = (size_t)n;
    return num;
}

/* Records the key at stack index k in a new key slot. */
static void read_key(jenc *e, int k)
{
    lua_State *L = e->L;
    sl_lua_keyent *ke = key_slot(e);
    ke->ltype = lua_type(L, k);
    ke->s = key_text(L, k, ke->num, &ke->len);
    if (ke->ltype == LUA_TNUMBER) {
        ke->is_int = lua_isinteger(L, k);
        if (ke->is_int)
            ke->i = lua_tointeger(L, k);
        else
            ke->f = lua_tonumber(L, k);
    }
}

/* Writes the keys in slots base.. (to e->ktop) of the table at idx, sorted,
 * as members after `written` members already written, and frees the slots. */
static void put_sorted(jenc *e, int idx, size_t base, size_t written, int depth)
{
    lua_State *L = e->L;
    size_t n = e->ktop - base;
    /* the array may move while values are encoded: work by index */
    sort_keys(e->h->keys + base, n);
    for (size_t i = 0; i < n; i++) {
        sl_lua_keyent *k = &e->h->keys[base + i];
        /* string keys point into the table's own strings, alive while it is */
        if (k->ltype == LUA_TNUMBER)
            k->s = k->num;
        if (written + i)
            put(e, ",", 1);
        put_string(e, k->s, k->len);
        put(e, ":", 1);
        k = &e->h->keys[base + i];
        if (k->ltype == LUA_TSTRING)
            lua_pushlstring(L, k->s, k->len);
        else if (k->is_int)
            lua_pushinteger(L, k->i);
        else
            lua_pushnumber(L, k->f);
        lua_rawget(L, idx);
        enc_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    e->ktop = base;
}

/* A table without a marker that is not a sequence: its keys sorted. */
static void enc_object(jenc *e, int idx, int depth)
{
    lua_State *L = e->L;
    size_t base = e->ktop;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        read_key(e, -2);
        lua_pop(L, 1);
    }
    put(e, "{", 1);
    put_sorted(e, idx, base, 0, depth);
    put(e, "}", 1);
}

/* ---- ordered objects ----------------------------------------------------------
 * Every JSON object (decoded, or made by json.object()) is a plain table
 * whose own metatable is its order: the keys in order in the metatable's
 * array part (false where a key was removed and later assigned again, which
 * moves it to the end), __newindex = obj_newindex (Lua calls it only for a
 * key the table does not hold, so assigning an existing key leaves it in
 * place and reads cost nothing), and the marker __metatable = "json.object". Past ORDER_SCAN keys
 * the metatable also holds an index key -> place (under IDX_KEY), so a returning key is found in
 * O(1). The sandbox's rawset gives a new key its place too (sl_lua_json_rawset). */

#define ORDER_SCAN 32
static const char IDX_KEY = 'i';  /* metatable[&IDX_KEY]: key -> place */
static const char TOMB_KEY = 't'; /* metatable[&TOMB_KEY]: how many places are false */

static int obj_newindex(lua_State *L);

/* Pushes a new object metatable with room for narr keys. */
static void push_object_mt(lua_State *L, int narr)
{
    lua_createtable(L, narr, 2);
    lua_pushcfunction(L, obj_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "json.object");
    lua_setfield(L, -2, "__metatable"); /* getmetatable/setmetatable cannot reach it */
}

/* Is the table at idx an object? Then its metatable is pushed; else nothing. */
static bool push_order(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return false;
    lua_getfield(L, -1, "__newindex"); /* a metatable has no metatable: a raw read */
    bool is_obj = lua_tocfunction(L, -1) == obj_newindex;
    lua_pop(L, is_obj ? 1 : 2);
    return is_obj;
}

/* ---- shared orders (shapes) ----
 * Decoded objects with the same keys in the same order (every message of a
 * partner, every item of a list) share one order metatable, found in a
 * small cache (SHAPE_SLOTS, by a hash of the interned key strings, checked
 * key by key), so decoding makes no table for the order in the common case.
 * A shared order never holds a key twice (an object whose text repeats a
 * key gets its own order), is marked (SHARED_KEY) and never changed: a key added to
 * an object moves it to the next shared order (push_transition; cached, so
 * a script that adds the same keys to every message makes no table either),
 * and past ORDER_SCAN keys, or to drop a repeated key, the object gets its
 * own copy (own_order). */

static const char SHARED_KEY = 's'; /* metatable[&SHARED_KEY] = true: shared, read-only */
static const char TRANS_KEY = 'n';  /* metatable[&TRANS_KEY]: key -> the next shared order */

/* Does the order at mt hold exactly the n keys on the stack from first? */
static bool shape_matches(lua_State *L, int mt, int first, int n)
{
    if (lua_rawlen(L, mt) != (size_t)n)
        return false;
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, mt, i + 1);
        bool same = lua_rawequal(L, -1, first + i);
        lua_pop(L, 1);
        if (!same)
            return false;
    }
    return true;
}

/* Looks for the order of the n keys on the stack from first in the slot of
 * the cache at cache: pushes it and returns true, or returns false. */
static bool shape_find(lua_State *L, int cache, lua_Integer slot, int first, int n)
{
    if (lua_rawgeti(L, cache, slot) == LUA_TTABLE && shape_matches(L, lua_gettop(L), first, n))
        return true;
    lua_pop(L, 1);
    return false;
}

/* The C mirror of the shape cache: per slot, 1 + the number of keys, then
 * the keys' object pointers (0 for an empty slot). The shape in the slot
 * holds its keys, so they stay alive and no other string takes their
 * addresses while the mirror names them; a new state clears the mirror. */
#define MIRROR_STRIDE (KEYS_ON_STACK + 1)

/* Does cache slot `slot` hold the n keys (pointers) keys, by the mirror? */
static bool mirror_has(const sl_lua_host *h, lua_Integer slot, const void *const *keys, int n)
{
    if (!h->shape_keys)
        return false;
    const void *const *m = h->shape_keys + (slot - 1) * MIRROR_STRIDE;
    return (uintptr_t)m[0] == (uintptr_t)n + 1 &&
           memcmp(m + 1, keys, (size_t)n * sizeof *keys) == 0;
}

static void mirror_set(sl_lua_host *h, lua_Integer slot, const void *const *keys, int n)
{
    if (!h->shape_keys)
        return;
    const void **m = h->shape_keys + (slot - 1) * MIRROR_STRIDE;
    m[0] = (const void *)((uintptr_t)n + 1);
    memcpy(m + 1, keys, (size_t)n * sizeof *keys);
}

/* Is a key among the n keys on the stack from first there twice? */
static bool has_repeat(lua_State *L, int first, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++)
            if (lua_rawequal(L, first + i, first + j))
                return true;
    return false;
}

/* Pushes the shared order of the n keys on the stack from first (the top
 * of the stack then), from the cache (at stack index cache) or made and
 * cached, and pops the keys. Two slots per hash (an empty one is filled
 * first), so that two shapes of the same traffic rarely evict each other.
 * Returns false when the keys repeat one: the order is then the object's
 * own. */
static bool push_shape(lua_State *L, sl_lua_host *h, int cache, int first, int n)
{
    const void *keys[KEYS_ON_STACK];
    uint64_t hash = SL_FNV1A64_INIT ^ (uint64_t)n;
    for (int i = 0; i < n; i++) { /* short strings are interned: equal keys, equal pointers */
        keys[i] = lua_topointer(L, first + i);
        hash ^= (uint64_t)(uintptr_t)keys[i];
        hash *= 0x9e3779b97f4a7c15ULL; /* a word at a time: spreads into the high bits */
    }
    hash ^= hash >> 29;
    lua_Integer s1 = (lua_Integer)(hash % SHAPE_SLOTS) + 1;
    lua_Integer s2 = (lua_Integer)((hash >> 32) % SHAPE_SLOTS) + 1;
    if (mirror_has(h, s1, keys, n) || mirror_has(h, s2, keys, n)) {
        lua_rawgeti(L, cache, mirror_has(h, s1, keys, n) ? s1 : s2);
    } else if (!shape_find(L, cache, s1, first, n) && !shape_find(L, cache, s2, first, n)) {
        push_object_mt(L, n);
        for (int i = 0; i < n; i++) {
            lua_pushvalue(L, first + i);
            lua_rawseti(L, -2, i + 1);
        }
        if (has_repeat(L, first, n)) { /* the object's own order, deduplicated when encoded */
            lua_replace(L, first - 1);
            lua_settop(L, first - 1);
            return false;
        }
        lua_pushboolean(L, 1);
        lua_rawsetp(L, -2, &SHARED_KEY);
        bool s1_taken = lua_rawgeti(L, cache, s1) != LUA_TNIL;
        bool s2_free = lua_rawgeti(L, cache, s2) == LUA_TNIL;
        lua_pop(L, 2);
        lua_Integer slot = s1_taken && s2_free ? s2 : s1;
        lua_pushvalue(L, -1);
        lua_rawseti(L, cache, slot);
        mirror_set(h, slot, keys, n);
    }
    lua_replace(L, first - 1);
    lua_settop(L, first - 1);
    return true;
}

/* The shape cache also holds the last TRANS_KEEP orders made by
 * push_transition (after the predictions): a transition's table is weak,
 * so without this the order that a script's added key leads to would be
 * made again after every collection (messages die between calls). */
#define TRANS_KEEP 16

/* Keeps the order at the top of the stack alive in the next keep slot. */
static void keep_transition(lua_State *L)
{
    sl_lua_host *h = sl_lua_host_of(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->shape_cache);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, SHAPE_SLOTS + PRED_DEPTHS + 1 + h->trans_next);
    h->trans_next = (h->trans_next + 1) % TRANS_KEEP;
    lua_pop(L, 1);
}

/* Pushes the shared order that follows the shared order at mt when the key
 * at k is assigned (k removed from its place if it had one, and appended),
 * from mt's transitions (a weak table: orders no object uses go away, but
 * for the last TRANS_KEEP made) or made there. */
static void push_transition(lua_State *L, int mt, int k)
{
    if (lua_rawgetp(L, mt, &TRANS_KEY) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "v");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, mt, &TRANS_KEY);
    }
    int tr = lua_gettop(L);
    lua_pushvalue(L, k);
    if (lua_rawget(L, tr) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_Integer n = (lua_Integer)lua_rawlen(L, mt), w = 0;
        push_object_mt(L, (int)n + 1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, mt, i);
            if (lua_rawequal(L, -1, k))
                lua_pop(L, 1);
            else
                lua_rawseti(L, -2, ++w);
        }
        lua_pushvalue(L, k);
        lua_rawseti(L, -2, ++w);
        lua_pushboolean(L, 1);
        lua_rawsetp(L, -2, &SHARED_KEY);
        lua_pushvalue(L, k);
        lua_pushvalue(L, -2);
        lua_rawset(L, tr);
        keep_transition(L);
    }
    lua_remove(L, tr);
}

/* The order of the object at t, whose metatable is at mt, made its own: a
 * shared order is copied and set as t's metatable (pushed; its index is
 * returned), else mt is returned. */
static int own_order(lua_State *L, int t, int mt)
{
    if (lua_rawgetp(L, mt, &SHARED_KEY) == LUA_TNIL) {
        lua_pop(L, 1);
        return mt;
    }
    lua_pop(L, 1);
    lua_Integer n = (lua_Integer)lua_rawlen(L, mt);
    push_object_mt(L, (int)(n < INT_MAX - 4 ? n + 4 : INT_MAX));
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, mt, i);
        lua_rawseti(L, -2, i);
    }
    lua_pushvalue(L, -1);
    lua_setmetatable(L, t);
    return lua_gettop(L);
}

/* Pushes the index key -> place of the order at mt, building it first when
 * the order has none. */
static void push_index(lua_State *L, int mt)
{
    if (lua_rawgetp(L, mt, &IDX_KEY) != LUA_TNIL)
        return;
    lua_pop(L, 1);
    lua_Integer n = (lua_Integer)lua_rawlen(L, mt);
    lua_createtable(L, 0, (int)(n < (1 << 20) ? n : (1 << 20)));
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, mt, i) == LUA_TBOOLEAN) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushinteger(L, i);
        lua_rawset(L, -3);
    }
    lua_pushvalue(L, -1);
    lua_rawsetp(L, mt, &IDX_KEY);
}

/* The place of the key at k in the order at mt, or 0. */
static lua_Integer order_find(lua_State *L, int mt, int k)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, mt), at = 0;
    if (n <= ORDER_SCAN) {
        int has_index = lua_rawgetp(L, mt, &IDX_KEY) != LUA_TNIL;
        lua_pop(L, 1);
        for (lua_Integer i = 1; i <= n && !at && !has_index; i++) {
            lua_rawgeti(L, mt, i);
            if (lua_rawequal(L, -1, k))
                at = i;
            lua_pop(L, 1);
        }
        if (!has_index)
            return at;
    }
    push_index(L, mt);
    lua_pushvalue(L, k);
    if (lua_rawget(L, -2) == LUA_TNUMBER)
        at = lua_tointeger(L, -1);
    lua_pop(L, 2);
    return at;
}

/* Counts one more false place in the order at mt, and drops them all (and
 * the index, rebuilt when next needed) once they are most of it. */
static void order_count_tomb(lua_State *L, int mt)
{
    lua_rawgetp(L, mt, &TOMB_KEY);
    lua_Integer tombs = lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
    lua_Integer n = (lua_Integer)lua_rawlen(L, mt);
    if (tombs < 16 || tombs * 2 < n) {
        lua_pushinteger(L, tombs);
        lua_rawsetp(L, mt, &TOMB_KEY);
        return;
    }
    lua_Integer w = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, mt, i) == LUA_TBOOLEAN)
            lua_pop(L, 1);
        else
            lua_rawseti(L, mt, ++w);
    }
    for (lua_Integer i = n; i > w; i--) {
        lua_pushnil(L);
        lua_rawseti(L, mt, i);
    }
    lua_pushnil(L);
    lua_rawsetp(L, mt, &IDX_KEY);
    lua_pushnil(L);
    lua_rawsetp(L, mt, &TOMB_KEY);
}

/* Appends the key at k to the order at mt; a key that had a place (it was
 * removed, and comes back) leaves false there. */
static void order_append(lua_State *L, int mt, int k)
{
    lua_Integer old = order_find(L, mt, k);
    lua_Integer n = (lua_Integer)lua_rawlen(L, mt);
    lua_pushvalue(L, k);
    lua_rawseti(L, mt, n + 1);
    if (lua_rawgetp(L, mt, &IDX_KEY) != LUA_TNIL || n + 1 > ORDER_SCAN) {
        lua_pop(L, 1);
        push_index(L, mt);
        lua_pushvalue(L, k);
        lua_pushinteger(L, n + 1);
        lua_rawset(L, -3);
    }
    lua_pop(L, 1);
    if (old) {
        lua_pushboolean(L, 0);
        lua_rawseti(L, mt, old);
        order_count_tomb(L, mt);
    }
}

/* __newindex(t, k, v) of an object: k is not in t. Stores v and, unless v
 * is nil, appends k to the order. Raises for a nil or NaN key as t[k] = v
 * would. */
static int obj_newindex(lua_State *L)
{
    lua_settop(L, 3);
    lua_Integer i;
    if (lua_type(L, 2) == LUA_TNUMBER && !lua_isinteger(L, 2) &&
        lua_numbertointeger(lua_tonumber(L, 2), &i) &&
        (lua_Number)i == lua_tonumber(L, 2)) { /* 2.0 is the key 2, as stored; 1.5 stays */
        lua_pushinteger(L, i);
        lua_replace(L, 2);
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, 1);
    int kt = lua_type(L, 2);
    if (lua_isnil(L, 3) || (kt != LUA_TSTRING && kt != LUA_TNUMBER))
        return 0; /* nothing stored, or a key that encoding refuses anyway */
    lua_getmetatable(L, 1);
    lua_rawgetp(L, 4, &SHARED_KEY);
    if (lua_toboolean(L, -1) && lua_rawlen(L, 4) < ORDER_SCAN) {
        push_transition(L, 4, 2); /* small shared orders: share the next one too */
        lua_setmetatable(L, 1);
        return 0;
    }
    order_append(L, own_order(L, 1, 4), 2);
    return 0;
}

/* How many keys the table at idx holds. */
static size_t count_keys(lua_State *L, int idx)
{
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        n++;
    }
    return n;
}

/* Writes the keys of the object at idx that have no place in its order at
 * mt (stored with rawset), sorted, after `written` members. */
static void put_unordered(jenc *e, int idx, int mt, size_t written, int depth)
{
    lua_State *L = e->L;
    size_t base = e->ktop;
    push_index(L, mt);
    int index = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pushvalue(L, -2);
        if (lua_rawget(L, index) == LUA_TNIL)
            read_key(e, -3);
        lua_pop(L, 2);
    }
    put_sorted(e, idx, base, written, depth);
    lua_pop(L, 1);
}

/* Rewrites the order at mt without its false places and without the second
 * place of a key (a key repeated in the decoded text keeps its first). */
static void order_dedupe(lua_State *L, int mt)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, mt), w = 0;
    lua_createtable(L, 0, (int)(n < (1 << 20) ? n : (1 << 20)));
    int seen = lua_gettop(L);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, mt, i) == LUA_TBOOLEAN) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -1);
        if (lua_rawget(L, seen) != LUA_TNIL) {
            lua_pop(L, 2);
            continue;
        }
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_rawset(L, seen);
        lua_rawseti(L, mt, ++w);
    }
    for (lua_Integer i = n; i > w; i--) {
        lua_pushnil(L);
        lua_rawseti(L, mt, i);
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawsetp(L, mt, &IDX_KEY);
    lua_pushnil(L);
    lua_rawsetp(L, mt, &TOMB_KEY);
}

/* Writes the members of the object at idx in the order at mt; returns how
 * many. */
static size_t put_in_order(jenc *e, int idx, int mt, int depth)
{
    lua_State *L = e->L;
    lua_Integer n = (lua_Integer)lua_rawlen(L, mt);
    size_t written = 0;
    char num[40];
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, mt, i) == LUA_TBOOLEAN) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -1);
        if (lua_rawget(L, idx) == LUA_TNIL) { /* removed */
            lua_pop(L, 2);
            continue;
        }
        size_t len;
        const char *k = key_text(L, -2, num, &len);
        if (written++)
            put(e, ",", 1);
        put_string(e, k, len);
        put(e, ":", 1);
        enc_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 2);
    }
    return written;
}

/* The keys of a shared order, written once (`,"key":` each) and kept in
 * the order (under TEXT_KEY, a full userdata): objects of that order are
 * written without converting or escaping their keys again. */
static const char TEXT_KEY = 'x';

typedef struct keytext {
    uint32_t n;                      /* keys */
    uint32_t off[KEYS_ON_STACK + 1]; /* key i is text[off[i], off[i + 1]) */
    char text[];
} keytext;

/* Writes the keys of the shared order at mt into a keytext kept in mt, or
 * false there when one cannot be written (a key JSON cannot hold: such a
 * key raises only when the object holds it, so put_in_order writes those
 * objects). Uses the end of the output buffer as scratch. */
static void make_keytext(jenc *e, int mt)
{
    lua_State *L = e->L;
    size_t start = e->h->buf_len, n = lua_rawlen(L, mt);
    uint32_t off[KEYS_ON_STACK + 1];
    bool ok = n <= KEYS_ON_STACK;
    for (size_t i = 0; ok && i < n; i++) {
        off[i] = (uint32_t)(e->h->buf_len - start);
        int t = lua_rawgeti(L, mt, (lua_Integer)i + 1);
        ok = t == LUA_TSTRING || (t == LUA_TNUMBER && isfinite((double)lua_tonumber(L, -1)));
        if (ok) {
            char num[40];
            size_t len;
            const char *k = key_text(L, -1, num, &len);
            put(e, ",", 1);
            put_string(e, k, len);
            put(e, ":", 1);
        }
        lua_pop(L, 1);
    }
    if (ok) {
        size_t len = e->h->buf_len - start;
        off[n] = (uint32_t)len;
        keytext *kt = lua_newuserdatauv(L, sizeof *kt + len, 0);
        kt->n = (uint32_t)n;
        memcpy(kt->off, off, (n + 1) * sizeof *off);
        memcpy(kt->text, e->h->buf + start, len);
    } else {
        lua_pushboolean(L, 0);
    }
    e->h->buf_len = start;
    lua_rawsetp(L, mt, &TEXT_KEY);
}

/* put_in_order for an object of a shared order with its keys written
 * (kt): each member is its key's text and its value. */
static void put_in_shared_order(jenc *e, int idx, int mt, const keytext *kt, int depth)
{
    lua_State *L = e->L;
    size_t written = 0;
    for (uint32_t i = 0; i < kt->n; i++) {
        lua_rawgeti(L, mt, (lua_Integer)i + 1);
        if (lua_rawget(L, idx) == LUA_TNIL) { /* removed */
            lua_pop(L, 1);
            continue;
        }
        size_t skip = written++ ? 0 : 1; /* the first member without its ',' */
        put(e, kt->text + kt->off[i] + skip, kt->off[i + 1] - kt->off[i] - skip);
        enc_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
}

/* The keytext of the shared order at mt, made when it has none yet; NULL
 * when its keys cannot be written ahead. */
static const keytext *get_keytext(jenc *e, int mt)
{
    lua_State *L = e->L;
    int t = lua_rawgetp(L, mt, &TEXT_KEY);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        make_keytext(e, mt);
        t = lua_rawgetp(L, mt, &TEXT_KEY);
    }
    const keytext *kt = t == LUA_TUSERDATA ? lua_touserdata(L, -1) : NULL;
    lua_pop(L, 1); /* mt holds it */
    return kt;
}

/* Writes the object at idx, whose order is at mt, keys in order. Every
 * way of adding a key (t[k] = v, rawset, the table library) gives it a
 * place, so more members written than keys held means a key with two places
 * (repeated in the decoded text): the order is deduplicated and the object
 * written again. Objects of a shared order skip that count (see push_shape). */
static void enc_ordered(jenc *e, int idx, int mt, int depth)
{
    lua_State *L = e->L;
    size_t start = e->h->buf_len;
    put(e, "{", 1);
    if (lua_rawgetp(L, mt, &SHARED_KEY) != LUA_TNIL) {
        /* a shared order holds each key once and every key of the object:
         * nothing to deduplicate, nothing past it */
        lua_pop(L, 1);
        const keytext *kt = get_keytext(e, mt);
        if (kt)
            put_in_shared_order(e, idx, mt, kt, depth);
        else
            put_in_order(e, idx, mt, depth);
        put(e, "}", 1);
        return;
    }
    lua_pop(L, 1);
    size_t written = put_in_order(e, idx, mt, depth);
    size_t held = count_keys(L, idx);
    if (written > held) {
        e->h->buf_len = start + 1;
        mt = own_order(L, idx, mt);
        order_dedupe(L, mt);
        written = put_in_order(e, idx, mt, depth);
    }
    if (held > written) /* not expected: keys stored past the order */
        put_unordered(e, idx, mt, written, depth);
    put(e, "}", 1);
}

/* The rawset of the sandbox on an object: a key it does not hold yet gets
 * its place as with t[k] = v. Arguments as rawset's (t, k, v); returns 1
 * (t pushed) when it did the work, 0 when t is not an object or holds k. */
int sl_lua_json_rawset(lua_State *L)
{
    if (!push_order(L, 1))
        return 0;
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, 1) != LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, obj_newindex);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_call(L, 3, 0);
    lua_settop(L, 1);
    return 1;
}

static void enc_array(jenc *e, int idx, lua_Integer n, int depth)
{
    put(e, "[", 1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            put(e, ",", 1);
        lua_rawgeti(e->L, idx, i);
        enc_value(e, lua_gettop(e->L), depth + 1);
        lua_pop(e->L, 1);
    }
    put(e, "]", 1);
}

/* Is the unmarked table at idx a sequence 1..n with n > 0 and nothing else? */
static bool is_sequence(lua_State *L, int idx, lua_Integer *n_out)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    if (n == 0)
        return false;
    lua_Integer count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
            lua_pop(L, 1);
            return false;
        }
        count++;
    }
    *n_out = n;
    return count == n;
}

static void enc_array(jenc *e, int idx, lua_Integer n, int depth);

/* Writes the table at idx when it is a decoded array or an object of a
 * shared order whose keys are written (the common cases) and returns true;
 * else false. Only object orders hold TEXT_KEY, and scripts cannot reach
 * the orders. */
static bool enc_marked(jenc *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (!lua_getmetatable(L, idx))
        return false;
    int mt = lua_gettop(L);
    if (lua_topointer(L, mt) == e->h->array_mt_p) { /* the registry holds it */
        lua_settop(L, mt - 1);
        enc_array(e, idx, (lua_Integer)lua_rawlen(L, idx), depth);
        return true;
    }
    bool done = lua_rawgetp(L, mt, &TEXT_KEY) == LUA_TUSERDATA;
    if (done) {
        const keytext *kt = lua_touserdata(L, -1); /* mt holds it */
        put(e, "{", 1);
        put_in_shared_order(e, idx, mt, kt, depth);
        put(e, "}", 1);
    }
    lua_settop(L, mt - 1);
    return done;
}

static void enc_table(jenc *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth > MAX_DEPTH)
        luaL_error(L, "json: nested too deeply (or a table contains itself)");
    luaL_checkstack(L, 8, "json: nested too deeply");
    if (enc_marked(e, idx, depth))
        return;
    if (push_order(L, idx)) {
        enc_ordered(e, idx, lua_gettop(L), depth);
        lua_pop(L, 1);
        return;
    }
    bool is_array = false;
    if (lua_getmetatable(L, idx)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, e->h->array_mt);
        is_array = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    lua_Integer n = 0;
    if (is_array)
        enc_array(e, idx, (lua_Integer)lua_rawlen(L, idx), depth);
    else if (is_sequence(L, idx, &n))
        enc_array(e, idx, n, depth);
    else
        enc_object(e, idx, depth);
}

static void enc_value(jenc *e, int idx, int depth)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
        case LUA_TNIL:
            put(e, "null", 4);
            break;
        case LUA_TBOOLEAN:
            if (lua_toboolean(L, idx))
                put(e, "true", 4);
            else
                put(e, "false", 5);
            break;
        case LUA_TNUMBER:
            put_number(e, idx);
            break;
        case LUA_TSTRING: {
            size_t n;
            const char *s = lua_tolstring(L, idx, &n);
            put_string(e, s, n);
            break;
        }
        case LUA_TTABLE:
            enc_table(e, idx, depth);
            break;
        case LUA_TLIGHTUSERDATA:
            if (lua_touserdata(L, idx) == NULL) {
                put(e, "null", 4);
                break;
            }
            /* fall through */
        default:
            luaL_error(L, "json: cannot encode a %s", luaL_typename(L, idx));
    }
}

void sl_lua_json_encode(lua_State *L, int idx)
{
    jenc e = {.L = L, .h = sl_lua_host_of(L)};
    enc_value(&e, lua_absindex(L, idx), 0);
}

/* ---- the json module ---------------------------------------------------------- */

static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    sl_lua_host *h = sl_lua_host_of(L);
    h->buf_len = 0;
    sl_lua_json_encode(L, 1);
    lua_pushlstring(L, h->buf, h->buf_len);
    return 1;
}

static int l_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    sl_lua_json_decode(L, s, n);
    return 1;
}

/* json.array([t]) / json.object([t]): marks t (or a new table) so that it
 * encodes as an array / an object even when empty. Returns it. */
/* json.array([t]): marks t (or a new table) so that it encodes as an array
 * even when empty. Returns it. */
static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, sl_lua_host_of(L)->array_mt);
    lua_setmetatable(L, 1);
    return 1;
}

/* json.object([t]): makes t (or a new table) an ordered object: the keys
 * it holds take places sorted by name, keys assigned later are appended in
 * assignment order. An object is returned as it is. Raises for a key that
 * is not a string or a number. */
static int l_object(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        if (push_order(L, 1)) {
            lua_settop(L, 1);
            return 1;
        }
    }
    jenc e = {.L = L, .h = sl_lua_host_of(L)};
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        read_key(&e, -2);
        lua_pop(L, 1);
    }
    sort_keys(e.h->keys, e.ktop);
    push_object_mt(L, (int)(e.ktop < 4 ? 4 : e.ktop < INT_MAX ? e.ktop : INT_MAX));
    for (size_t i = 0; i < e.ktop; i++) {
        sl_lua_keyent *k = &e.h->keys[i];
        if (k->ltype == LUA_TSTRING)
            lua_pushlstring(L, k->s, k->len);
        else if (k->is_int)
            lua_pushinteger(L, k->i);
        else
            lua_pushnumber(L, k->f);
        lua_rawseti(L, 2, (lua_Integer)i + 1);
    }
    lua_setmetatable(L, 1);
    return 1;
}

/* A shared marker metatable (json.array), as a registry ref. */
static int new_marker(lua_State *L, const char *name)
{
    lua_createtable(L, 0, 2);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__metatable"); /* getmetatable/setmetatable cannot reach it */
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

void sl_lua_open_json(lua_State *L)
{
    sl_lua_host *h = sl_lua_host_of(L);
    h->array_mt = new_marker(L, "json.array");
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->array_mt);
    h->array_mt_p = lua_topointer(L, -1);
    lua_pop(L, 1);
    /* the shapes, then the predictions, then the transitions kept */
    lua_createtable(L, SHAPE_SLOTS + PRED_DEPTHS + TRANS_KEEP, 0);
    h->trans_next = 0;
    h->shape_cache = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!h->shape_keys) /* without it, shapes are matched in Lua only */
        h->shape_keys = malloc(SHAPE_SLOTS * MIRROR_STRIDE * sizeof *h->shape_keys);
    if (h->shape_keys) /* a new state: none of the old pointers is valid */
        memset(h->shape_keys, 0, SHAPE_SLOTS * MIRROR_STRIDE * sizeof *h->shape_keys);
    if (!h->pred) /* without it, nothing is predicted */
        h->pred = malloc(PRED_DEPTHS * sizeof *h->pred);
    for (int i = 0; h->pred && i < PRED_DEPTHS; i++)
        h->pred[i].n = 0;
    static const luaL_Reg fns[] = {
        {"encode", l_encode}, {"decode", l_decode}, {"array", l_array},
        {"object", l_object}, {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_setglobal(L, "json");
}
