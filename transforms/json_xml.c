/* The JSON <-> XML convention (SPEC.md section 7, JSON_XML.md): a JSON
 * writer that escapes straight into a growing buffer (no libxml2 tree), a
 * SAX2 reader that builds jansson values as elements close, and the hardened
 * tree parser and XPath helper used by the validate step and key expressions. */
#include "json_xml.h"
#include "logging.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/encoding.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlIO.h>
#include <libxml/xmlerror.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "buf.h"
#include "expr.h"
#include "hex.h"
#include "real.h"
#include "utf8.h"
#include "xpath_stream.h"

/* ---- shared helpers --------------------------------------------------------- */

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

/* libxml2's generic and structured errors, when nothing more specific
 * handles them, go to Sluice's log with the message only: its default
 * handler prints the offending line of the input, which could echo a file
 * that is not XML (an include of /etc/passwd) or a partner's body. */
static void xml_generic_error(void *ctx, const char *fmt, ...)
{
    (void)ctx;
    (void)fmt; /* fragments of one report; the structured handler logs it */
}

static void xml_structured_error(void *ctx, xmlErrorPtr e)
{
    (void)ctx;
    if (!e || e->level < XML_ERR_ERROR)
        return;
    char msg[300];
    snprintf(msg, sizeof msg, "%s", e->message ? e->message : "error");
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    sl_logf(SL_LVL_DEBUG, "xml", "libxml2: %s (line %d)", msg, e->line);
}

static void xml_init_once(void)
{
    xmlInitParser();
    xmlThrDefSetGenericErrorFunc(NULL, xml_generic_error);
    xmlThrDefSetStructuredErrorFunc(NULL, xml_structured_error);
    xmlSetGenericErrorFunc(NULL, xml_generic_error);
    xmlSetStructuredErrorFunc(NULL, xml_structured_error);
}

void sl_xml_init(void)
{
    pthread_once(&xml_once, xml_init_once);
}

void sl_xml_opts_init(sl_xml_opts *o)
{
    memset(o, 0, sizeof *o);
    o->declaration = true;
}

static int opt_depth(const sl_xml_opts *o)
{
    if (!o || o->max_depth <= 0 || o->max_depth > SL_XML_MAX_DEPTH)
        return SL_XML_MAX_DEPTH;
    return o->max_depth;
}

static size_t opt_size(const sl_xml_opts *o)
{
    size_t max = o && o->max_size ? o->max_size : SL_XML_MAX_SIZE;
    return max > INT_MAX ? INT_MAX : max; /* libxml2 takes an int size */
}

#define BUF_LIT(b, lit) sl_buf_put((b), (lit), sizeof(lit) - 1)

/* XML 1.0 fifth edition NameStartChar (without ':', handled apart). */
static bool is_name_start(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    return (c >= 0xC0 && c <= 0xD6) || (c >= 0xD8 && c <= 0xF6) || (c >= 0xF8 && c <= 0x2FF) ||
           (c >= 0x370 && c <= 0x37D) || (c >= 0x37F && c <= 0x1FFF) ||
           (c >= 0x200C && c <= 0x200D) || (c >= 0x2070 && c <= 0x218F) ||
           (c >= 0x2C00 && c <= 0x2FEF) || (c >= 0x3001 && c <= 0xD7FF) ||
           (c >= 0xF900 && c <= 0xFDCF) || (c >= 0xFDF0 && c <= 0xFFFD) ||
           (c >= 0x10000 && c <= 0xEFFFF);
}

/* XML 1.0 fifth edition NameChar (without ':'). */
static bool is_name_char(uint32_t c)
{
    if (is_name_start(c))
        return true;
    return (c >= '0' && c <= '9') || c == '-' || c == '.' || c == 0xB7 ||
           (c >= 0x300 && c <= 0x36F) || (c >= 0x203F && c <= 0x2040);
}

static bool valid_scalar(uint32_t v)
{
    return v != 0 && v <= 0x10FFFF && !(v >= 0xD800 && v <= 0xDFFF);
}

/* Reads `ndig` hex digits at s (n bytes available). Returns -1 when they
 * are not all hex digits. */
static long read_hex(const char *s, size_t n, size_t ndig)
{
    return n < ndig ? -1 : (long)sl_hex_value(s, ndig);
}

/* Whether the character at s[j] (j < n) would be written as an escape by
 * the name encoder (it is not a NameChar, or it is a ':' being escaped). */
static bool encodes(const char *s, size_t j, size_t n)
{
    uint32_t cp;
    size_t l = sl_utf8_decode((const unsigned char *)s + j, n - j, &cp);
    return l == 0 || cp == ':' || !is_name_char(cp);
}

/* The length of an _xHHHH_ / _xHHHHHHHH_ escape at s[i] (s[i] == '_'), with
 * its code point in *cp, or 0. When `encoding`, the closing '_' may also be
 * the start of the escape of the next character: the question is then
 * whether the decoder would see an escape in the encoded output. */
static size_t escape_at(const char *s, size_t i, size_t n, bool encoding, uint32_t *cp)
{
    if (i + 1 >= n || s[i + 1] != 'x')
        return 0;
    static const size_t widths[] = {4, 8};
    for (size_t w = 0; w < 2; w++) {
        size_t nd = widths[w];
        long v = read_hex(s + i + 2, n - i - 2, nd);
        size_t end = i + 2 + nd;
        if (v < 0 || !valid_scalar((uint32_t)v) || end >= n + (encoding ? 1 : 0))
            continue;
        bool closed = end < n && s[end] == '_';
        if (!closed && encoding && end < n)
            closed = encodes(s, end, n);
        if (closed) {
            *cp = (uint32_t)v;
            return nd + 3;
        }
    }
    return 0;
}

static void put_escape_cp(sl_buf *b, uint32_t cp)
{
    char tmp[16];
    int k = snprintf(tmp, sizeof tmp, cp > 0xFFFF ? "_x%08X_" : "_x%04X_", (unsigned)cp);
    sl_buf_put(b, tmp, (size_t)k);
}

/* Writes s[0..n) as an NCName: characters that cannot appear are written
 * as _xHHHH_, and a '_' that would read as such an escape as _x005F_.
 * Returns -1 on invalid UTF-8. */
static int put_ncname(sl_buf *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = sl_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (l == 0)
            return -1;
        uint32_t esc;
        if (cp == '_' && escape_at(s, i, n, true, &esc))
            put_escape_cp(b, '_');
        else if (cp != ':' && (i == 0 ? is_name_start(cp) : is_name_char(cp)))
            sl_buf_put(b, s + i, l);
        else
            put_escape_cp(b, cp);
        i += l;
    }
    return 0;
}

/* 1 for the bytes of a plain ASCII name that need no look at all. */
static const unsigned char NAME_PLAIN[256] = {
    ['-'] = 1, ['.'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 2, ['B'] = 2, ['C'] = 2, ['D'] = 2,
    ['E'] = 2, ['F'] = 2, ['G'] = 2, ['H'] = 2, ['I'] = 2, ['J'] = 2, ['K'] = 2, ['L'] = 2,
    ['M'] = 2, ['N'] = 2, ['O'] = 2, ['P'] = 2, ['Q'] = 2, ['R'] = 2, ['S'] = 2, ['T'] = 2,
    ['U'] = 2, ['V'] = 2, ['W'] = 2, ['X'] = 2, ['Y'] = 2, ['Z'] = 2, ['a'] = 2, ['b'] = 2,
    ['c'] = 2, ['d'] = 2, ['e'] = 2, ['f'] = 2, ['g'] = 2, ['h'] = 2, ['i'] = 2, ['j'] = 2,
    ['k'] = 2, ['l'] = 2, ['m'] = 2, ['n'] = 2, ['o'] = 2, ['p'] = 2, ['q'] = 2, ['r'] = 2,
    ['s'] = 2, ['t'] = 2, ['u'] = 2, ['v'] = 2, ['w'] = 2, ['x'] = 2, ['y'] = 2, ['z'] = 2,
};

/* Writes a JSON key as an XML QName (see JSON_XML.md, "Names"): one ':'
 * that is neither first nor last separates a prefix from a local name and
 * is kept; every other character that XML does not allow is escaped.
 * Returns -1 on an empty key or invalid UTF-8. */
static int put_name(sl_buf *b, const char *s, size_t n)
{
    if (n == 0)
        return -1;
    bool plain = NAME_PLAIN[(unsigned char)s[0]] == 2;
    for (size_t i = 1; plain && i < n; i++)
        plain = NAME_PLAIN[(unsigned char)s[i]] != 0;
    if (plain && !memchr(s, '_', n)) {
        sl_buf_put(b, s, n);
        return 0;
    }
    const char *colon = memchr(s, ':', n);
    if (colon && colon != s && colon != s + n - 1 &&
        !memchr(colon + 1, ':', n - (size_t)(colon - s) - 1)) {
        size_t pn = (size_t)(colon - s);
        if (put_ncname(b, s, pn) < 0)
            return -1;
        sl_buf_putc(b, ':');
        return put_ncname(b, colon + 1, n - pn - 1);
    }
    return put_ncname(b, s, n);
}

/* Decodes the _xHHHH_ escapes of an XML name. Returns s itself when there
 * are none, else the decoded name in scratch (from offset 0); *out_n is
 * the length. Returns NULL when out of memory. */
static const char *decode_name(const char *s, size_t n, sl_buf *scratch, size_t *out_n)
{
    const char *u = memchr(s, '_', n);
    uint32_t cp;
    while (u && !escape_at(s, (size_t)(u - s), n, false, &cp))
        u = memchr(u + 1, '_', n - (size_t)(u - s) - 1);
    if (!u) {
        *out_n = n;
        return s;
    }
    scratch->len = 0;
    size_t i = 0;
    while (i < n) {
        size_t l = s[i] == '_' ? escape_at(s, i, n, false, &cp) : 0;
        if (l == 0) {
            sl_buf_putc(scratch, s[i]);
            i++;
            continue;
        }
        char u8[4];
        size_t k = sl_utf8_encode(cp, u8);
        sl_buf_put(scratch, u8, k);
        i += l;
    }
    if (scratch->oom)
        return NULL;
    *out_n = scratch->len;
    return scratch->p;
}

/* ---- JSON -> XML -------------------------------------------------------------- */

typedef struct enc {
    sl_buf b;
    int max_depth;
    const char *key; /* the element being written, for error messages */
    size_t key_len;
    sl_error *err;
    bool failed;
} enc;

static int enc_fail(enc *e, sl_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int enc_fail(enc *e, sl_errcode code, const char *fmt, ...)
{
    if (!e->failed) {
        va_list ap;
        va_start(ap, fmt);
        sl_error_setv(e->err, code, fmt, ap);
        va_end(ap);
        e->failed = true;
    }
    return -1;
}

/* What a byte of a string needs: 0 nothing, 1 an entity, 2 it is not
 * allowed in XML 1.0, 3 a UTF-8 lead byte to check. */
enum { CH_PLAIN = 0, CH_ENTITY = 1, CH_BAD = 2, CH_UTF8 = 3 };

static unsigned char TEXT_CLASS[256];
static unsigned char ATTR_CLASS[256];
static pthread_once_t class_once = PTHREAD_ONCE_INIT;

static void class_init(void)
{
    for (int c = 0; c < 256; c++) {
        unsigned char k = CH_PLAIN;
        if (c < 0x20)
            k = CH_BAD;
        else if (c >= 0x80)
            k = CH_UTF8;
        TEXT_CLASS[c] = k;
        ATTR_CLASS[c] = k;
    }
    TEXT_CLASS['\t'] = TEXT_CLASS['\n'] = CH_PLAIN;
    TEXT_CLASS['\r'] = TEXT_CLASS['<'] = TEXT_CLASS['>'] = TEXT_CLASS['&'] = CH_ENTITY;
    ATTR_CLASS['\t'] = ATTR_CLASS['\n'] = ATTR_CLASS['\r'] = CH_ENTITY;
    ATTR_CLASS['<'] = ATTR_CLASS['>'] = ATTR_CLASS['&'] = ATTR_CLASS['"'] = CH_ENTITY;
}

static const char *entity_of(unsigned char c, size_t *n)
{
    switch (c) {
        case '<':
            *n = 4;
            return "&lt;";
        case '>':
            *n = 4;
            return "&gt;";
        case '&':
            *n = 5;
            return "&amp;";
        case '"':
            *n = 6;
            return "&quot;";
        case '\t':
            *n = 4;
            return "&#9;";
        case '\n':
            *n = 5;
            return "&#10;";
        default: /* '\r' */
            *n = 5;
            return "&#13;";
    }
}

/* Writes a string escaped for text (cls TEXT_CLASS) or a double-quoted
 * attribute (ATTR_CLASS). Fails on characters XML 1.0 cannot carry. */
static int put_escaped(enc *e, const char *str, size_t n, const unsigned char *cls)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, start = 0;
    if (!sl_buf_reserve(&e->b, n))
        return -1;
    while (i < n) {
        unsigned char k = cls[s[i]];
        if (k == CH_PLAIN) {
            i++;
            continue;
        }
        if (k == CH_UTF8) {
            uint32_t cp;
            size_t l = sl_utf8_decode(s + i, n - i, &cp);
            if (l == 0)
                return enc_fail(e, SL_EINVAL, "a string in <%.*s> is not valid UTF-8",
                                (int)e->key_len, e->key);
            if (cp == 0xFFFE || cp == 0xFFFF)
                return enc_fail(e, SL_EINVAL,
                                "a string in <%.*s> contains U+%04X, which XML 1.0 cannot carry",
                                (int)e->key_len, e->key, (unsigned)cp);
            i += l;
            continue;
        }
        if (k == CH_BAD)
            return enc_fail(e, SL_EINVAL,
                            "a string in <%.*s> contains U+%04X, which XML 1.0 cannot carry",
                            (int)e->key_len, e->key, (unsigned)s[i]);
        sl_buf_put(&e->b, str + start, i - start);
        size_t en;
        const char *ent = entity_of(s[i], &en);
        sl_buf_put(&e->b, ent, en);
        i++;
        start = i;
    }
    sl_buf_put(&e->b, str + start, n - start);
    return 0;
}

/* Fast path of format_real for the usual "money and measures" reals: d
 * equals m / 10^k for an integer m < 2^53 and k <= 9. Both the division
 * and strtod of the decimal text are correctly rounded results of the
 * same rational, so the text reads back as exactly d. Returns 0 when d
 * does not qualify. */
static size_t format_real_fixed(double d, char *buf)
{
    static const double pow10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    double a = d < 0 ? -d : d;
    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    for (int k = 0; k <= 9; k++) {
        double scaled = a * pow10[k];
        if (scaled >= 9007199254740992.0)
            return 0;
        unsigned long long m = (unsigned long long)(scaled + 0.5);
        if ((double)m / pow10[k] != a)
            continue;
        char digits[24];
        size_t nd = 0;
        do {
            digits[nd++] = (char)('0' + m % 10);
            m /= 10;
        } while (m);
        while (nd <= (size_t)k) /* at least one digit before the point */
            digits[nd++] = '0';
        size_t n = 0;
        if (d < 0)
            buf[n++] = '-';
        while (nd > (size_t)k)
            buf[n++] = digits[--nd];
        buf[n++] = '.';
        if (k == 0)
            buf[n++] = '0';
        while (nd)
            buf[n++] = digits[--nd];
        return n;
    }
    return 0;
}

/* Writes a real so that it reads back as the same double, and as a real:
 * fixed notation when that is exact (format_real_fixed), else as every
 * real is written (sl_format_real). The fast path (JSON_XML.md, Numbers)
 * may pick another last digit than %.16g for a real of 16 significant
 * digits (both read back as d), so it stays this module's own. */
static size_t format_real(double d, char *buf, size_t cap)
{
    size_t fixed = format_real_fixed(d, buf);
    return fixed ? fixed : sl_format_real(d, buf, cap);
}

static size_t format_int(json_int_t v, char *buf)
{
    char tmp[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t k = 0;
    if (v < 0)
        buf[k++] = '-';
    while (n)
        buf[k++] = tmp[--n];
    return k;
}

/* Writes a string, number or boolean as text or attribute content. */
static int put_scalar(enc *e, const json_t *v, const unsigned char *cls)
{
    char num[64];
    size_t n;
    switch (json_typeof(v)) {
        case JSON_STRING:
            return put_escaped(e, json_string_value(v), json_string_length(v), cls);
        case JSON_INTEGER:
            n = format_int(json_integer_value(v), num);
            sl_buf_put(&e->b, num, n);
            return 0;
        case JSON_REAL:
            n = format_real(json_real_value(v), num, sizeof num);
            sl_buf_put(&e->b, num, n);
            return 0;
        case JSON_TRUE:
            BUF_LIT(&e->b, "true");
            return 0;
        case JSON_FALSE:
            BUF_LIT(&e->b, "false");
            return 0;
        default:
            return 0;
    }
}

static void put_indent(enc *e, int depth)
{
    if (!sl_buf_reserve(&e->b, (size_t)depth * 2 + 1))
        return;
    e->b.p[e->b.len++] = '\n';
    memset(e->b.p + e->b.len, ' ', (size_t)(depth - 1) * 2);
    e->b.len += (size_t)(depth - 1) * 2;
}

static int write_member(enc *e, const char *key, size_t klen, const json_t *v, int depth,
                        bool pretty);

static int put_elem_name(enc *e, const char *key, size_t klen)
{
    if (klen == 0)
        return enc_fail(e, SL_EINVAL, "an empty key cannot become an XML name (in <%.*s>)",
                        (int)e->key_len, e->key);
    if (put_name(&e->b, key, klen) < 0)
        return enc_fail(e, SL_EINVAL, "key '%.*s' is not valid UTF-8", (int)klen, key);
    return 0;
}

/* Writes the attributes of object v (its "@" members). */
static int write_attrs(enc *e, const json_t *v)
{
    const char *k;
    size_t kl;
    json_t *a;
    json_object_keylen_foreach((json_t *)v, k, kl, a)
    {
        if (kl == 0 || k[0] != '@' || json_is_null(a))
            continue;
        if (json_is_object(a) || json_is_array(a))
            return enc_fail(e, SL_EINVAL,
                            "attribute '%.*s' of <%.*s> must be a string, number or boolean",
                            (int)kl, k, (int)e->key_len, e->key);
        sl_buf_putc(&e->b, ' ');
        if (put_elem_name(e, k + 1, kl - 1) < 0)
            return -1;
        BUF_LIT(&e->b, "=\"");
        if (put_scalar(e, a, ATTR_CLASS) < 0)
            return -1;
        sl_buf_putc(&e->b, '"');
    }
    return 0;
}

/* Writes the text and child elements of object v; *any is set when
 * something was written (after the '>' that this function writes first). */
static int write_content(enc *e, const json_t *v, int depth, bool pretty, bool *any)
{
    /* pretty printing stays out of mixed content: look #text up first */
    const json_t *text = pretty ? json_object_get(v, "#text") : NULL;
    bool mixed = text && !json_is_null(text);
    bool children = false;
    const char *k;
    size_t kl;
    json_t *c;
    const char *pkey = e->key;
    size_t pkey_len = e->key_len;
    json_object_keylen_foreach((json_t *)v, k, kl, c)
    {
        if (kl && k[0] == '@')
            continue;
        if (!*any) {
            sl_buf_putc(&e->b, '>');
            *any = true;
        }
        if (kl == 5 && memcmp(k, "#text", 5) == 0) {
            if (json_is_object(c) || json_is_array(c))
                return enc_fail(e, SL_EINVAL, "#text of <%.*s> must be a string, number or boolean",
                                (int)e->key_len, e->key);
            if (put_scalar(e, c, TEXT_CLASS) < 0)
                return -1;
            continue;
        }
        if (write_member(e, k, kl, c, depth + 1, pretty && !mixed) < 0)
            return -1;
        e->key = pkey;
        e->key_len = pkey_len;
        children = children || !json_is_array(c) || json_array_size(c) > 0;
    }
    if (children && pretty && !mixed)
        put_indent(e, depth);
    return 0;
}

static int write_elem(enc *e, const char *key, size_t klen, const json_t *v, int depth,
                      bool pretty);

/* Writes the array v as the content of an element: <item> children. Sets
 * *any once the start tag is closed (v not empty). */
static int write_items(enc *e, const json_t *v, int depth, bool pretty, bool *any)
{
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!*any) {
            sl_buf_putc(&e->b, '>');
            *any = true;
        }
        if (write_elem(e, "item", 4, item, depth + 1, pretty) < 0)
            return -1;
    }
    if (*any && pretty)
        put_indent(e, depth);
    return 0;
}

/* Ends the element whose name was written at name_off: "/>" when it has
 * no content (!any), else the end tag. */
static int close_elem(enc *e, size_t name_off, size_t name_len, bool any)
{
    if (!any) {
        BUF_LIT(&e->b, "/>");
        return 0;
    }
    if (!sl_buf_reserve(&e->b, name_len + 3))
        return -1;
    e->b.p[e->b.len++] = '<';
    e->b.p[e->b.len++] = '/';
    memcpy(e->b.p + e->b.len, e->b.p + name_off, name_len);
    e->b.len += name_len;
    e->b.p[e->b.len++] = '>';
    return 0;
}

/* Writes one element named key with value v (not itself expanded as
 * repeated siblings: an array here becomes <item> children). */
static int write_elem(enc *e, const char *key, size_t klen, const json_t *v, int depth, bool pretty)
{
    if (depth > e->max_depth)
        return enc_fail(e, SL_EINVAL, "the document nests deeper than %d XML levels", e->max_depth);
    if (pretty && depth > 1)
        put_indent(e, depth);
    e->key = key;
    e->key_len = klen;
    sl_buf_putc(&e->b, '<');
    size_t name_off = e->b.len;
    if (put_elem_name(e, key, klen) < 0)
        return -1;
    size_t name_len = e->b.len - name_off;
    bool any = false;
    switch (json_typeof(v)) {
        case JSON_NULL:
            BUF_LIT(&e->b, " xmlns:xsi=\"" SL_XSI_NS "\" xsi:nil=\"true\"/>");
            return 0;
        case JSON_OBJECT:
            if (write_attrs(e, v) < 0 || write_content(e, v, depth, pretty, &any) < 0)
                return -1;
            break;
        case JSON_ARRAY:
            if (write_items(e, v, depth, pretty, &any) < 0)
                return -1;
            break;
        default:
            if (json_is_string(v) && json_string_length(v) == 0)
                break;
            sl_buf_putc(&e->b, '>');
            any = true;
            if (put_scalar(e, v, TEXT_CLASS) < 0)
                return -1;
            break;
    }
    return close_elem(e, name_off, name_len, any);
}

/* Writes member key: v of an object: an array becomes repeated elements. */
static int write_member(enc *e, const char *key, size_t klen, const json_t *v, int depth,
                        bool pretty)
{
    if (!json_is_array(v))
        return write_elem(e, key, klen, v, depth, pretty);
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item)
    {
        if (write_elem(e, key, klen, item, depth, pretty) < 0)
            return -1;
    }
    return 0;
}

/* Transcodes UTF-8 XML to another encoding with libxml2's converters
 * (characters the encoding lacks become &#N;). Replaces b's content. */
static int transcode(enc *e, const char *encoding)
{
    xmlCharEncodingHandlerPtr h = xmlFindCharEncodingHandler(encoding);
    if (!h)
        return enc_fail(e, SL_EINVAL, "unknown encoding '%s'", encoding);
    xmlBufferPtr out = xmlBufferCreate();
    xmlOutputBufferPtr ob = out ? xmlOutputBufferCreateBuffer(out, h) : NULL;
    if (!ob) {
        xmlCharEncCloseFunc(h);
        xmlBufferFree(out);
        return enc_fail(e, SL_ENOMEM, "out of memory");
    }
    int rc = e->b.len > INT_MAX ? -1 : xmlOutputBufferWrite(ob, (int)e->b.len, e->b.p);
    if (xmlOutputBufferClose(ob) < 0 || rc < 0) { /* closes h too */
        xmlBufferFree(out);
        return enc_fail(e, SL_EINVAL, "cannot transcode the document to %s", encoding);
    }
    size_t n = (size_t)xmlBufferLength(out);
    e->b.len = 0;
    sl_buf_put(&e->b, (const char *)xmlBufferContent(out), n);
    xmlBufferFree(out);
    return e->b.oom ? enc_fail(e, SL_ENOMEM, "out of memory") : 0;
}

static bool is_utf8_name(const char *enc_name)
{
    return !enc_name || strcasecmp(enc_name, "UTF-8") == 0 || strcasecmp(enc_name, "UTF8") == 0;
}

/* Declares o's wrap namespaces on obj ("@xmlns:p" / "@xmlns"). */
static int declare_wrap_ns(json_t *obj, const sl_xml_opts *o)
{
    char key[300];
    for (size_t i = 0; i + 1 < 2 * o->n_wrap_ns; i += 2) {
        const char *prefix = o->wrap_ns[i], *uri = o->wrap_ns[i + 1];
        if (*prefix)
            snprintf(key, sizeof key, "@xmlns:%s", prefix);
        else
            snprintf(key, sizeof key, "@xmlns");
        if (json_object_set_new(obj, key, json_string(uri)) < 0)
            return -1;
    }
    return 0;
}

/* The document o->wrap asks for: doc (or {root: doc}) inside the elements
 * of the wrap path, the namespaces declared on the outermost one. A new
 * reference, or NULL with err (doc not an object, a malformed path, out of
 * memory). */
static json_t *wrap_doc(const json_t *doc, const sl_xml_opts *o, sl_error *err)
{
    const char *w = o->wrap;
    if (*w != '/' || !w[1]) {
        sl_error_set(err, SL_EINVAL, "wrap: '%s' is not a path like /soap:Envelope/soap:Body", w);
        return NULL;
    }
    json_t *inner = o->root ? json_pack("{sO}", o->root, (json_t *)doc)
                            : json_copy((json_t *)doc); /* shallow: the caller's stays as is */
    if (!json_is_object(inner)) {
        json_decref(inner);
        sl_error_set(err, SL_EINVAL, "wrap: the document must be a JSON object");
        return NULL;
    }
    const char *end = w + strlen(w);
    while (end > w + 1 && end[-1] == '/')
        end--;
    while (end > w && inner) { /* from the innermost element out */
        const char *seg = end;
        while (seg > w && seg[-1] != '/')
            seg--;
        json_t *outer = json_object();
        if (!outer || seg == end ||
            json_object_setn_new_nocheck(outer, seg, (size_t)(end - seg), inner) < 0) {
            json_decref(outer);
            inner = NULL;
            break;
        }
        inner = outer;
        end = seg - 1;
    }
    json_t *top = inner ? json_object_iter_value(json_object_iter(inner)) : NULL;
    if (!top || declare_wrap_ns(top, o) < 0) {
        json_decref(inner);
        sl_error_set(err, SL_EINVAL, "wrap: '%s' is not a path like /soap:Envelope/soap:Body", w);
        return NULL;
    }
    return inner;
}

/* sl_json_to_xml with o->wrap: the document wrapped (wrap_doc), written. */
static char *json_to_xml_wrapped(const json_t *doc, const sl_xml_opts *o, size_t *len,
                                 sl_error *err)
{
    json_t *wrapped = wrap_doc(doc, o, err);
    if (!wrapped)
        return NULL;
    sl_xml_opts inner = *o;
    inner.wrap = NULL;
    inner.root = NULL;
    char *xml = sl_json_to_xml(wrapped, &inner, len, err);
    json_decref(wrapped);
    return xml;
}

char *sl_json_to_xml(const json_t *doc, const sl_xml_opts *o, size_t *len, sl_error *err)
{
    sl_xml_opts defaults;
    if (!o) {
        sl_xml_opts_init(&defaults);
        o = &defaults;
    }
    if (o->wrap && doc)
        return json_to_xml_wrapped(doc, o, len, err);
    pthread_once(&class_once, class_init);
    enc e = {.max_depth = opt_depth(o), .err = err, .key = "", .key_len = 0};
    if (!doc) {
        enc_fail(&e, SL_EINVAL, "no document");
        return NULL;
    }
    const char *encoding = o->encoding ? o->encoding : "UTF-8";
    if (o->declaration) {
        BUF_LIT(&e.b, "<?xml version=\"1.0\" encoding=\"");
        sl_buf_put(&e.b, encoding, strlen(encoding));
        BUF_LIT(&e.b, "\"?>\n");
    }
    int rc;
    /* {"k": v} with v not an array is the element k itself */
    void *it = !o->root && json_is_object(doc) && json_object_size(doc) == 1
                   ? json_object_iter((json_t *)doc)
                   : NULL;
    const char *k = it ? json_object_iter_key(it) : NULL;
    const json_t *v = it ? json_object_iter_value(it) : NULL;
    if (k && v && !json_is_array(v) && k[0] != '@' && strcmp(k, "#text") != 0) {
        rc = write_elem(&e, k, json_object_iter_key_len(it), v, 1, o->pretty);
    } else {
        const char *root = o->root ? o->root : "root";
        rc = write_elem(&e, root, strlen(root), doc, 1, o->pretty);
    }
    if (rc == 0 && o->pretty)
        sl_buf_putc(&e.b, '\n');
    if (rc == 0 && !e.b.oom && !is_utf8_name(o->encoding))
        rc = transcode(&e, o->encoding);
    if (rc == 0 && e.b.oom)
        rc = enc_fail(&e, SL_ENOMEM, "out of memory");
    if (rc < 0 || !sl_buf_reserve(&e.b, 0)) {
        if (!e.failed)
            enc_fail(&e, SL_ENOMEM, "out of memory");
        free(e.b.p);
        return NULL;
    }
    e.b.p[e.b.len] = '\0';
    if (len)
        *len = e.b.len;
    return e.b.p;
}

/* ---- XML errors ----------------------------------------------------------------- */

/* The first error libxml2 reported, kept for the message. */
typedef struct xml_errs {
    int line;
    int level;
    char msg[400];
} xml_errs;

static void keep_error(xml_errs *c, const xmlError *x)
{
    if (!x || x->level < XML_ERR_ERROR || c->level >= (int)x->level)
        return;
    /* a fatal error replaces a non-fatal one (namespace errors are kept
     * only when nothing worse follows) */
    c->level = x->level;
    c->line = x->line;
    snprintf(c->msg, sizeof c->msg, "%s", x->message ? x->message : "malformed XML");
    size_t n = strlen(c->msg);
    while (n && (c->msg[n - 1] == '\n' || c->msg[n - 1] == ' '))
        c->msg[--n] = '\0';
}

/* ---- XML -> JSON ------------------------------------------------------------------ */

/* One open element. */
/* Text mode: one member of an element's object, its value already JSON
 * text (for an array, the elements joined by ','). */
typedef struct member {
    char *key;
    size_t klen;
    sl_buf val;
    bool array;
} member;

typedef struct frame {
    const char *key; /* the JSON key: in the parser's dictionary or in kbuf */
    size_t klen;
    sl_buf kbuf;
    json_t *obj; /* attributes and children; NULL until one shows up */
    /* text mode (sl_xml_to_json_text): the same as members of JSON text */
    member *mem;
    size_t n_mem, cap_mem;
    bool has_obj;
    sl_buf text;
    size_t path_len; /* length of dec.path before this element */
    bool has_child;
    bool nonws; /* text has a character other than XML white space */
    bool nil;   /* xsi:nil="true": the value is null */
    bool skip;  /* inside a nil element: ignored */
} frame;

/* A force_array entry: an absolute path or an element name. */
typedef struct forced {
    const char *s;
    size_t len;
    size_t parent_len; /* absolute: length of the parent path */
    bool absolute;
} force_entry;

typedef struct dec {
    xmlParserCtxtPtr ctxt;
    bool coerce;
    int max_depth;
    frame *frames; /* frames[0] is the document: its obj holds the result */
    int depth;
    int n_frames;    /* frames initialised so far */
    sl_buf scratch;  /* attribute keys */
    sl_buf scratch2; /* decoded names */
    sl_buf vbuf;     /* attribute values with '&' decoded */
    sl_buf path;     /* "/a/b/c" of the open elements, when absolute paths are forced */
    force_entry *fa;
    size_t n_fa;
    bool any_absolute;
    bool track_path;    /* keep d->path: absolute force_array paths or unwrap */
    bool strip_ns;      /* strip_namespaces */
    const char *unwrap; /* unwrap path, or NULL */
    size_t unwrap_len;
    bool unwrapped;      /* the element at unwrap was found */
    json_t *unwrap_tree; /* its value (tree mode) */
    sl_buf unwrap_text;  /* its value (text mode) */
    xml_errs xe;
    sl_error *err;
    bool failed;
    bool text; /* build JSON text (members) instead of a jansson tree */
} dec;

static void dec_fail(dec *d, sl_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void dec_fail(dec *d, sl_errcode code, const char *fmt, ...)
{
    if (!d->failed) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        int line = d->ctxt && d->ctxt->input ? d->ctxt->input->line : 0;
        if (code == SL_ENOMEM)
            sl_error_set(d->err, code, "%s", msg);
        else
            sl_error_set(d->err, code, "XML line %d: %s", line, msg);
        d->failed = true;
    }
    if (d->ctxt)
        xmlStopParser(d->ctxt);
}

static void dec_oom(dec *d)
{
    dec_fail(d, SL_ENOMEM, "out of memory");
}

/* What text reads as, for make_scalar and put_scalar_text. */
typedef enum scalar_kind { SC_STRING, SC_TRUE, SC_FALSE, SC_INT, SC_REAL } scalar_kind;

/* Is s[0..n) a whole JSON number? *real: it has a fraction or an exponent. */
static bool is_json_number(const char *s, size_t n, bool *real)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    size_t int_start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    size_t int_digits = i - int_start;
    bool ok = int_digits > 0 && !(int_digits > 1 && s[int_start] == '0');
    *real = false;
    if (ok && i < n && s[i] == '.') {
        size_t f = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        ok = i > f;
        *real = true;
    }
    if (ok && i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t x = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        ok = i > x;
        *real = true;
    }
    return ok && i == n;
}

/* Classifies text: without coerce always a string; with coerce "true",
 * "false", an integer that fits in 64 bits (*iv), a finite real (*dv), or
 * else a string. Returns -1 when out of memory. */
static int scalar_kind_of(const char *s, size_t n, bool coerce, long long *iv, double *dv,
                          scalar_kind *kind)
{
    *kind = SC_STRING;
    bool real;
    if (!coerce || !n)
        return 0;
    if (n == 4 && memcmp(s, "true", 4) == 0)
        *kind = SC_TRUE;
    else if (n == 5 && memcmp(s, "false", 5) == 0)
        *kind = SC_FALSE;
    if (*kind != SC_STRING || !is_json_number(s, n, &real))
        return 0;
    char small[64];
    char *copy = n < sizeof small ? small : malloc(n + 1);
    if (!copy)
        return -1;
    memcpy(copy, s, n);
    copy[n] = '\0';
    errno = 0;
    if (real) {
        *dv = strtod(copy, NULL);
        if (isfinite(*dv))
            *kind = SC_REAL;
    } else {
        *iv = strtoll(copy, NULL, 10);
        if (errno != ERANGE)
            *kind = SC_INT;
    }
    if (copy != small)
        free(copy);
    return 0;
}

/* Turns text into a JSON value: a string, or with coerce a number or a
 * boolean when the whole text reads as one (scalar_kind_of). NULL when out
 * of memory. */
static json_t *make_scalar(const char *s, size_t n, bool coerce)
{
    long long iv = 0;
    double dv = 0;
    scalar_kind k;
    if (scalar_kind_of(s, n, coerce, &iv, &dv, &k) < 0)
        return NULL;
    switch (k) {
        case SC_TRUE:
            return json_true();
        case SC_FALSE:
            return json_false();
        case SC_INT:
            return json_integer(iv);
        case SC_REAL:
            return json_real(dv);
        default:
            return json_stringn_nocheck(s, n);
    }
}

static int put_json(sl_buf *b, json_t *v);

/* Appends text as the JSON text of make_scalar's value, except that a
 * number is written exactly as the XML has it (123.40 stays 123.40, not
 * the double's 123.40000000000001). Returns -1 when out of memory. */
static int put_scalar_text(sl_buf *out, const char *s, size_t n, bool coerce)
{
    long long iv = 0;
    double dv = 0;
    scalar_kind k;
    if (scalar_kind_of(s, n, coerce, &iv, &dv, &k) < 0)
        return -1;
    if (k == SC_STRING)
        return put_json(out, json_stringn_nocheck(s, n));
    if (k == SC_TRUE)
        sl_buf_put(out, "true", 4);
    else if (k == SC_FALSE)
        sl_buf_put(out, "false", 5);
    else
        sl_buf_put(out, s, n);
    return out->oom ? -1 : 0;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Builds "prefix:local" (or local) with escapes decoded, after `lead`
 * ("@" for attributes, "" for elements), into b. */
static const char *qname_key(sl_buf *b, const char *lead, const xmlChar *prefix,
                             const xmlChar *local, sl_buf *scratch, size_t *n)
{
    b->len = 0;
    sl_buf_put(b, lead, strlen(lead));
    if (prefix) {
        sl_buf_put(b, (const char *)prefix, strlen((const char *)prefix));
        sl_buf_putc(b, ':');
    }
    sl_buf_put(b, (const char *)local, strlen((const char *)local));
    if (b->oom)
        return NULL;
    size_t lead_len = strlen(lead);
    size_t dn;
    const char *dec_name = decode_name(b->p + lead_len, b->len - lead_len, scratch, &dn);
    if (!dec_name)
        return NULL;
    if (dec_name != b->p + lead_len) {
        b->len = lead_len;
        sl_buf_put(b, dec_name, dn);
        if (b->oom)
            return NULL;
    }
    *n = b->len;
    return b->p;
}

/* The text of an attribute value. Without entity substitution, libxml2
 * hands SAX2 an '&' (from &amp; or &#38;) as "&#38;", to be decoded by
 * the receiver; a '&' can come from nothing else (undeclared entity
 * references, kept as "&name;", are left as they are). */
static const char *attr_value(dec *d, const xmlChar *v, const xmlChar *end, size_t *n)
{
    const char *s = (const char *)v;
    size_t len = (size_t)(end - v);
    const char *amp = memchr(s, '&', len);
    if (!amp) {
        *n = len;
        return s;
    }
    d->vbuf.len = 0;
    while (amp) {
        sl_buf_put(&d->vbuf, s, (size_t)(amp - s));
        size_t rest = len - (size_t)(amp - s);
        bool esc = rest >= 5 && memcmp(amp, "&#38;", 5) == 0;
        sl_buf_putc(&d->vbuf, '&');
        len = rest - (esc ? 5 : 1);
        s = amp + (esc ? 5 : 1);
        amp = memchr(s, '&', len);
    }
    sl_buf_put(&d->vbuf, s, len);
    if (d->vbuf.oom)
        return NULL;
    *n = d->vbuf.len;
    return d->vbuf.p;
}

static frame *push_frame(dec *d)
{
    if (d->depth + 1 >= d->n_frames) {
        int n = d->n_frames ? d->n_frames * 2 : 16;
        if (n > d->max_depth + 2)
            n = d->max_depth + 2;
        frame *f = realloc(d->frames, (size_t)n * sizeof *f);
        if (!f)
            return NULL;
        memset(f + d->n_frames, 0, (size_t)(n - d->n_frames) * sizeof *f);
        d->frames = f;
        d->n_frames = n;
    }
    frame *f = &d->frames[++d->depth];
    f->obj = NULL;
    f->n_mem = 0;
    f->has_obj = false;
    f->text.len = 0;
    f->text.oom = false;
    f->kbuf.oom = false;
    f->has_child = f->nonws = f->nil = f->skip = false;
    return f;
}

/* ---- text mode: members of JSON text instead of jansson objects ---- */

static member *mem_find(frame *f, const char *key, size_t kn)
{
    for (size_t i = f->n_mem; i-- > 0;) {
        member *m = &f->mem[i];
        if (m->klen == kn && memcmp(m->key, key, kn) == 0)
            return m;
    }
    return NULL;
}

/* Appends an empty member named key. Returns NULL when out of memory. */
static member *mem_add(frame *f, const char *key, size_t kn)
{
    if (f->n_mem == f->cap_mem) {
        size_t cap = f->cap_mem ? f->cap_mem * 2 : 4;
        member *v = realloc(f->mem, cap * sizeof *v);
        if (!v)
            return NULL;
        memset(v + f->cap_mem, 0, (cap - f->cap_mem) * sizeof *v);
        f->mem = v;
        f->cap_mem = cap;
    }
    member *m = &f->mem[f->n_mem];
    char *k = realloc(m->key, kn + 1);
    if (!k)
        return NULL;
    memcpy(k, key, kn);
    k[kn] = '\0';
    m->key = k;
    m->klen = kn;
    m->val.len = 0;
    m->val.oom = false;
    m->array = false;
    f->n_mem++;
    return m;
}

/* Frees every member buffer of f (the frame is not reused after). */
static void mem_release(frame *f)
{
    for (size_t i = 0; i < f->cap_mem; i++) {
        free(f->mem[i].key);
        free(f->mem[i].val.p);
    }
    free(f->mem);
    f->mem = NULL;
    f->n_mem = f->cap_mem = 0;
}

/* Appends v as compact JSON text (the same as it would be inside a
 * json_dumps(JSON_COMPACT) of the tree) and releases v. Returns -1 when out
 * of memory. */
static int put_json(sl_buf *b, json_t *v)
{
    if (!v)
        return -1;
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (!t)
        return -1;
    sl_buf_put(b, t, strlen(t));
    free(t);
    return b->oom ? -1 : 0;
}

/* Sets member key of f to v (text), replacing an existing one in place as
 * json_object_setn does. */
static int mem_set(frame *f, const char *key, size_t kn, json_t *v)
{
    member *m = mem_find(f, key, kn);
    if (!m && !(m = mem_add(f, key, kn))) {
        json_decref(v);
        return -1;
    }
    m->val.len = 0;
    m->array = false;
    f->has_obj = true;
    return put_json(&m->val, v);
}

/* Writes f's members as a JSON object into out. */
static int mem_object(frame *f, sl_buf *out)
{
    sl_buf_putc(out, '{');
    for (size_t i = 0; i < f->n_mem; i++) {
        member *m = &f->mem[i];
        if (i)
            sl_buf_putc(out, ',');
        if (put_json(out, json_stringn(m->key, m->klen)) < 0)
            return -1;
        sl_buf_putc(out, ':');
        if (m->array)
            sl_buf_putc(out, '[');
        if (m->val.len) /* an empty array has no text yet */
            sl_buf_put(out, m->val.p, m->val.len);
        if (m->array)
            sl_buf_putc(out, ']');
    }
    sl_buf_putc(out, '}');
    return out->oom ? -1 : 0;
}

static int set_attr(dec *d, frame *f, const char *key, size_t kn, json_t *v)
{
    if (d->text)
        return v ? mem_set(f, key, kn, v) : -1;
    if (!v || (!f->obj && !(f->obj = json_object()))) {
        json_decref(v);
        return -1;
    }
    return json_object_setn_new_nocheck(f->obj, key, kn, v);
}

/* Member key of f, found or added, with its value emptied; NULL when out of
 * memory. */
static member *mem_slot(frame *f, const char *key, size_t kn)
{
    member *m = mem_find(f, key, kn);
    if (!m && !(m = mem_add(f, key, kn)))
        return NULL;
    m->val.len = 0;
    m->array = false;
    f->has_obj = true;
    return m;
}

/* Sets member key of f to the scalar read from text (make_scalar;
 * put_scalar_text in text mode). Returns -1 when out of memory. */
static int set_attr_scalar(dec *d, frame *f, const char *key, size_t kn, const char *text, size_t n)
{
    if (!d->text)
        return set_attr(d, f, key, kn, make_scalar(text, n, d->coerce));
    member *m = mem_slot(f, key, kn);
    return m ? put_scalar_text(&m->val, text, n, d->coerce) : -1;
}

/* Sets f's key: the local name, or prefix_local (qname_key) when the
 * element has a kept prefix or the name holds '_'. Returns -1 when out of
 * memory. */
static int set_frame_key(dec *d, frame *f, const xmlChar *prefix, const xmlChar *local)
{
    if (d->strip_ns)
        prefix = NULL;
    if (!prefix && !strchr((const char *)local, '_')) {
        f->key = (const char *)local;
        f->klen = strlen(f->key);
        return 0;
    }
    f->key = qname_key(&f->kbuf, "", prefix, local, &d->scratch2, &f->klen);
    return f->key ? 0 : -1;
}

/* Does one of the n attributes (libxml2's 5 pointers each: local, prefix,
 * URI, value, end) say xsi:nil="true" (or "1")? */
static bool has_xsi_nil(const xmlChar **attrs, int n)
{
    for (int i = 0; i < n; i++) {
        const xmlChar **a = attrs + 5 * i;
        if (a[2] && strcmp((const char *)a[0], "nil") == 0 &&
            strcmp((const char *)a[2], SL_XSI_NS) == 0) {
            size_t vl = (size_t)(a[4] - a[3]);
            if ((vl == 4 && memcmp(a[3], "true", 4) == 0) || (vl == 1 && a[3][0] == '1'))
                return true;
        }
    }
    return false;
}

/* Sets @xmlns / @xmlns:p members of f for the element's namespace
 * declarations (none when namespaces are stripped). Returns -1 when out
 * of memory. */
static int set_ns_attrs(dec *d, frame *f, int nb_ns, const xmlChar **ns)
{
    for (int i = 0; i < nb_ns && !d->strip_ns; i++) {
        const xmlChar *p = ns[2 * i], *href = ns[2 * i + 1];
        size_t kn;
        const char *key = qname_key(&d->scratch, "@", p ? (const xmlChar *)"xmlns" : NULL,
                                    p ? p : (const xmlChar *)"xmlns", &d->scratch2, &kn);
        if (!key || set_attr(d, f, key, kn, json_string(href ? (const char *)href : "")) < 0)
            return -1;
    }
    return 0;
}

/* Sets an @name member of f for each of the n attributes. Returns -1 when
 * out of memory. */
static int set_attrs(dec *d, frame *f, const xmlChar **attrs, int n)
{
    for (int i = 0; i < n; i++) {
        const xmlChar **a = attrs + 5 * i;
        size_t kn, vn;
        const char *key =
            qname_key(&d->scratch, "@", d->strip_ns ? NULL : a[1], a[0], &d->scratch2, &kn);
        const char *val = attr_value(d, a[3], a[4], &vn);
        if (!key || !val || set_attr_scalar(d, f, key, kn, val, vn) < 0)
            return -1;
    }
    return 0;
}

static void dec_start(void *ctx, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri,
                      int nb_ns, const xmlChar **ns, int nb_attrs, int nb_defaulted,
                      const xmlChar **attrs)
{
    dec *d = ctx;
    (void)uri;
    if (d->failed)
        return;
    if (d->depth + 1 > d->max_depth) {
        dec_fail(d, SL_EINVAL, "elements nest deeper than %d levels", d->max_depth);
        return;
    }
    frame *parent_before = &d->frames[d->depth];
    parent_before->has_child = true;
    bool skip = parent_before->nil || parent_before->skip;
    frame *f = push_frame(d);
    if (!f) {
        dec_oom(d);
        return;
    }
    f->skip = skip;
    if (skip)
        return;
    if (set_frame_key(d, f, prefix, local) < 0) {
        dec_oom(d);
        return;
    }
    if (d->track_path) {
        f->path_len = d->path.len;
        sl_buf_putc(&d->path, '/');
        sl_buf_put(&d->path, f->key, f->klen);
    }
    int n_real = nb_attrs - nb_defaulted; /* DTD defaults are not the document's */
    if (has_xsi_nil(attrs, n_real)) {
        f->nil = true;
        return;
    }
    if (set_ns_attrs(d, f, nb_ns, ns) < 0 || set_attrs(d, f, attrs, n_real) < 0)
        dec_oom(d);
}

static void dec_chars(void *ctx, const xmlChar *ch, int len)
{
    dec *d = ctx;
    if (d->failed || d->depth == 0)
        return;
    frame *f = &d->frames[d->depth];
    if (f->nil || f->skip)
        return;
    const char *s = (const char *)ch;
    if (!f->nonws) {
        for (int i = 0; i < len; i++) {
            if (!is_ws(s[i])) {
                f->nonws = true;
                break;
            }
        }
    }
    sl_buf_put(&f->text, s, (size_t)len);
    if (f->text.oom)
        dec_oom(d);
}

static bool is_forced_name(const dec *d, const frame *f)
{
    for (size_t i = 0; i < d->n_fa; i++) {
        const force_entry *x = &d->fa[i];
        if (x->absolute) {
            if (x->len == d->path.len && memcmp(x->s, d->path.p, x->len) == 0)
                return true;
        } else if (x->len == f->klen && memcmp(x->s, f->key, f->klen) == 0) {
            return true;
        }
    }
    return false;
}

/* Adds [] for each forced absolute path whose parent is the element just
 * closed (d->path) and which did not occur. */
static int add_missing_arrays(dec *d, frame *f)
{
    for (size_t i = 0; i < d->n_fa; i++) {
        const force_entry *x = &d->fa[i];
        if (!x->absolute || x->parent_len != d->path.len ||
            memcmp(x->s, d->path.p, x->parent_len) != 0)
            continue;
        const char *name = x->s + x->parent_len + 1;
        size_t nl = x->len - x->parent_len - 1;
        if (!f->obj && !(f->obj = json_object()))
            return -1;
        if (!json_object_getn(f->obj, name, nl) &&
            json_object_setn_new_nocheck(f->obj, name, nl, json_array()) < 0)
            return -1;
    }
    return 0;
}

static bool needs_missing_arrays(const dec *d)
{
    for (size_t i = 0; i < d->n_fa; i++) {
        const force_entry *x = &d->fa[i];
        if (x->absolute && x->parent_len == d->path.len &&
            memcmp(x->s, d->path.p, x->parent_len) == 0)
            return true;
    }
    return false;
}

/* The value of the element f, which is closing; NULL when out of memory. */
static json_t *frame_value(dec *d, frame *f)
{
    if (f->nil)
        return json_null();
    bool has_text = f->text.len > 0 && (f->nonws || !f->has_child);
    if (d->any_absolute && needs_missing_arrays(d) && !f->obj && !(f->obj = json_object()))
        return NULL;
    if (!f->obj)
        return make_scalar(has_text ? f->text.p : "", has_text ? f->text.len : 0, d->coerce);
    if (has_text) {
        json_t *t = make_scalar(f->text.p, f->text.len, d->coerce);
        if (!t || json_object_setn_new_nocheck(f->obj, "#text", 5, t) < 0)
            return NULL;
    }
    if (d->any_absolute && add_missing_arrays(d, f) < 0)
        return NULL;
    json_t *v = f->obj;
    f->obj = NULL;
    return v;
}

static int insert_child(dec *d, frame *parent, frame *f, json_t *v)
{
    if (!parent->obj && !(parent->obj = json_object())) {
        json_decref(v);
        return -1;
    }
    bool forced = d->depth > 1 && d->n_fa && is_forced_name(d, f);
    json_t *old = json_object_getn(parent->obj, f->key, f->klen);
    if (!old && !forced)
        return json_object_setn_new_nocheck(parent->obj, f->key, f->klen, v);
    if (old && json_is_array(old))
        return json_array_append_new(old, v);
    /* a new array: [v] when forced, [old, v] on the first repetition */
    json_t *arr = json_array();
    if (!arr || (old && json_array_append(arr, old) < 0)) {
        json_decref(arr);
        json_decref(v);
        return -1;
    }
    if (json_array_append_new(arr, v) < 0) {
        json_decref(arr);
        return -1;
    }
    return json_object_setn_new_nocheck(parent->obj, f->key, f->klen, arr);
}

/* Text mode's frame_value: the closing element's value as JSON text. */
static int frame_value_text(dec *d, frame *f, sl_buf *out)
{
    if (f->nil) {
        sl_buf_put(out, "null", 4);
        return out->oom ? -1 : 0;
    }
    bool has_text = f->text.len > 0 && (f->nonws || !f->has_child);
    if (d->any_absolute && needs_missing_arrays(d))
        f->has_obj = true;
    if (!f->has_obj)
        return put_scalar_text(out, has_text ? f->text.p : "", has_text ? f->text.len : 0,
                               d->coerce);
    if (has_text && set_attr_scalar(d, f, "#text", 5, f->text.p, f->text.len) < 0)
        return -1;
    for (size_t i = 0; d->any_absolute && i < d->n_fa; i++) {
        const force_entry *x = &d->fa[i];
        if (!x->absolute || x->parent_len != d->path.len ||
            memcmp(x->s, d->path.p, x->parent_len) != 0)
            continue;
        const char *name = x->s + x->parent_len + 1;
        size_t nl = x->len - x->parent_len - 1;
        if (!mem_find(f, name, nl)) {
            member *m = mem_add(f, name, nl);
            if (!m)
                return -1;
            m->array = true; /* [] */
        }
    }
    return mem_object(f, out);
}

/* Text mode's insert_child: v (n bytes of JSON text) becomes member f->key
 * of parent, or joins the array it already is (or becomes). */
static int insert_child_text(dec *d, frame *parent, frame *f, const char *v, size_t n)
{
    parent->has_obj = true;
    bool forced = d->depth > 1 && d->n_fa && is_forced_name(d, f);
    member *m = mem_find(parent, f->key, f->klen);
    if (!m) {
        if (!(m = mem_add(parent, f->key, f->klen)))
            return -1;
        m->array = forced;
    } else if (m->array) {
        if (m->val.len)
            sl_buf_putc(&m->val, ',');
    } else {
        m->array = true; /* [old, v] on the first repetition */
        sl_buf_putc(&m->val, ',');
    }
    sl_buf_put(&m->val, v, n);
    return m->val.oom ? -1 : 0;
}

/* Is the element closing now the first one at the unwrap path? Then it is
 * marked found. */
static bool at_unwrap(dec *d)
{
    if (!d->unwrap || d->unwrapped || d->path.len != d->unwrap_len ||
        memcmp(d->path.p, d->unwrap, d->unwrap_len) != 0)
        return false;
    d->unwrapped = true;
    return true;
}

static void dec_end(void *ctx, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri)
{
    dec *d = ctx;
    (void)local;
    (void)prefix;
    (void)uri;
    if (d->failed || d->depth == 0)
        return;
    frame *f = &d->frames[d->depth];
    if (d->text) {
        if (!f->skip) {
            sl_buf vt = {0};
            int rc = frame_value_text(d, f, &vt);
            if (rc == 0 && at_unwrap(d)) {
                sl_buf_put(&d->unwrap_text, vt.p ? vt.p : "", vt.len);
                rc = d->unwrap_text.oom ? -1 : 0;
            }
            if (rc == 0)
                rc = insert_child_text(d, &d->frames[d->depth - 1], f, vt.p, vt.len);
            free(vt.p);
            if (rc < 0) {
                dec_oom(d);
                return;
            }
            if (d->track_path)
                d->path.len = f->path_len;
        }
        f->n_mem = 0;
        d->depth--;
        return;
    }
    if (!f->skip) {
        frame *parent = &d->frames[d->depth - 1];
        json_t *v = frame_value(d, f);
        if (v && at_unwrap(d))
            d->unwrap_tree = json_incref(v);
        if (!v || insert_child(d, parent, f, v) < 0) {
            dec_oom(d);
            return;
        }
        if (d->track_path)
            d->path.len = f->path_len;
    }
    json_decref(f->obj);
    f->obj = NULL;
    d->depth--;
}

static void dec_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                            const xmlChar *system_id, xmlChar *content)
{
    (void)type;
    (void)public_id;
    (void)content;
    dec_fail(ctx, SL_EINVAL,
             "the DOCTYPE declares entity '%s'%s: entity declarations are refused "
             "(no entity expansion, no external entities)",
             name, system_id ? " (an external entity)" : "");
}

static void dec_unparsed_entity_decl(void *ctx, const xmlChar *name, const xmlChar *public_id,
                                     const xmlChar *system_id, const xmlChar *notation)
{
    (void)notation;
    dec_entity_decl(ctx, name, 0, public_id, system_id, NULL);
}

static xmlEntityPtr dec_get_entity(void *ctx, const xmlChar *name)
{
    (void)ctx;
    return xmlGetPredefinedEntity(name);
}

static xmlParserInputPtr dec_resolve_entity(void *ctx, const xmlChar *public_id,
                                            const xmlChar *system_id)
{
    (void)public_id;
    dec_fail(ctx, SL_EINVAL, "refusing to load external resource '%s'",
             system_id ? (const char *)system_id : "?");
    return NULL;
}

static void dec_serror(void *ctx, xmlErrorPtr x)
{
    dec *d = ctx;
    keep_error(&d->xe, x);
}

static void dec_free(dec *d)
{
    for (int i = 0; i < d->n_frames; i++) {
        if (i <= d->depth)
            json_decref(d->frames[i].obj);
        free(d->frames[i].kbuf.p);
        free(d->frames[i].text.p);
        mem_release(&d->frames[i]);
    }
    free(d->frames);
    free(d->scratch.p);
    free(d->scratch2.p);
    free(d->vbuf.p);
    free(d->path.p);
    free(d->fa);
    json_decref(d->unwrap_tree);
    free(d->unwrap_text.p);
}

static int dec_setup_forced(dec *d, const sl_xml_opts *o)
{
    if (!o || !o->n_force_array)
        return 0;
    d->fa = calloc(o->n_force_array, sizeof *d->fa);
    if (!d->fa)
        return -1;
    for (size_t i = 0; i < o->n_force_array; i++) {
        const char *s = o->force_array[i];
        if (!s || !*s)
            continue;
        force_entry *x = &d->fa[d->n_fa++];
        x->s = s;
        x->len = strlen(s);
        while (x->len > 1 && s[x->len - 1] == '/')
            x->len--;
        x->absolute = s[0] == '/';
        if (x->absolute) {
            const char *slash = s + x->len;
            while (slash > s && *--slash != '/')
                ;
            x->parent_len = (size_t)(slash - s);
            d->any_absolute = true;
        }
    }
    d->track_path = d->any_absolute;
    return 0;
}

/* Reads strip_namespaces and unwrap from o into d. */
static void dec_setup_unwrap(dec *d, const sl_xml_opts *o)
{
    d->strip_ns = o && o->strip_namespaces;
    if (!o || !o->unwrap || !*o->unwrap)
        return;
    d->unwrap = o->unwrap;
    d->unwrap_len = strlen(o->unwrap);
    while (d->unwrap_len > 1 && d->unwrap[d->unwrap_len - 1] == '/')
        d->unwrap_len--;
    d->track_path = true;
}

/* The result when unwrapping: the value of the element at the unwrap path,
 * which must be an object. Fails d (with its error) when there is none. */
static void take_unwrapped(dec *d, bool text_mode, json_t **tree, char **text, size_t *text_len)
{
    bool object = text_mode ? d->unwrap_text.len && d->unwrap_text.p[0] == '{'
                            : json_is_object(d->unwrap_tree);
    if (!d->unwrapped || !object) {
        sl_error_set(d->err, SL_EINVAL, "unwrap: %s %.*s",
                     d->unwrapped ? "no child elements or attributes in"
                                  : "the document has no element at",
                     (int)d->unwrap_len, d->unwrap);
        d->failed = true;
        return;
    }
    if (text_mode) {
        if (!sl_buf_reserve(&d->unwrap_text, 0)) {
            sl_error_set(d->err, SL_ENOMEM, "out of memory");
            d->failed = true;
            return;
        }
        d->unwrap_text.p[d->unwrap_text.len] = '\0';
        *text = d->unwrap_text.p;
        *text_len = d->unwrap_text.len;
        d->unwrap_text.p = NULL;
    } else {
        *tree = d->unwrap_tree;
        d->unwrap_tree = NULL;
    }
}

/* Refuses a document over the size limit, an empty one, or one whose
 * attributes sl_xml_check_attrs refuses. Returns -1 with err set. */
static int check_document(const char *xml, size_t len, const sl_xml_opts *o, sl_error *err)
{
    size_t max = opt_size(o);
    if (len > max) {
        sl_error_set(err, SL_EINVAL, "XML document of %zu bytes is larger than the limit of %zu",
                     len, max);
        return -1;
    }
    if (!xml || len == 0) {
        sl_error_set(err, SL_EINVAL, "XML line 1: the document is empty");
        return -1;
    }
    return sl_xml_check_attrs(xml, len, err);
}

/* Sets up d from o: 16 frames, unwrap and forced arrays, and the root
 * object in tree mode. Returns -1 (SL_ENOMEM in err, d freed). */
static int dec_init(dec *d, const sl_xml_opts *o, bool text_mode, sl_error *err)
{
    *d = (dec){.coerce = o && o->coerce,
               .max_depth = opt_depth(o),
               .err = err,
               .depth = 0,
               .text = text_mode};
    d->frames = calloc(16, sizeof *d->frames);
    if (d->frames)
        d->n_frames = 16;
    if (d->frames)
        dec_setup_unwrap(d, o);
    if (!d->frames || dec_setup_forced(d, o) < 0 ||
        (!text_mode && !(d->frames[0].obj = json_object()))) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        dec_free(d);
        return -1;
    }
    return 0;
}

/* Points ctxt's SAX callbacks at the dec_* handlers, with d as their
 * context; no network, no entity substitution, no DTD loading. */
static void dec_set_sax(xmlParserCtxtPtr ctxt, dec *d)
{
    xmlCtxtUseOptions(ctxt, XML_PARSE_NONET);
    xmlSAXHandler sax;
    memset(&sax, 0, sizeof sax);
    sax.initialized = XML_SAX2_MAGIC;
    sax.startElementNs = dec_start;
    sax.endElementNs = dec_end;
    sax.characters = dec_chars;
    sax.ignorableWhitespace = dec_chars;
    sax.cdataBlock = dec_chars;
    sax.entityDecl = dec_entity_decl;
    sax.unparsedEntityDecl = dec_unparsed_entity_decl;
    sax.getEntity = dec_get_entity;
    sax.resolveEntity = dec_resolve_entity;
    sax.serror = dec_serror;
    memcpy(ctxt->sax, &sax, sizeof sax);
    ctxt->userData = d;
    ctxt->replaceEntities = 0;
    ctxt->loadsubset = 0;
    ctxt->validate = 0;
    d->ctxt = ctxt;
}

/* Runs libxml2's SAX parser over xml into d; d->failed (with d->err) when
 * it is not well-formed. Returns -1 (SL_ENOMEM) when no parser could be
 * made. */
static int dec_parse(dec *d, const char *xml, size_t len)
{
    xmlParserCtxtPtr ctxt = xmlCreateMemoryParserCtxt(xml, (int)len);
    if (!ctxt) {
        sl_error_set(d->err, SL_ENOMEM, "out of memory");
        return -1;
    }
    dec_set_sax(ctxt, d);
    xmlParseDocument(ctxt);
    bool well_formed = ctxt->wellFormed;
    if (ctxt->myDoc)
        xmlFreeDoc(ctxt->myDoc);
    ctxt->myDoc = NULL;
    xmlFreeParserCtxt(ctxt);
    if (!d->failed && !well_formed) {
        sl_error_set(d->err, SL_EINVAL, "XML line %d: %s", d->xe.line,
                     d->xe.level ? d->xe.msg : "malformed XML");
        d->failed = true;
    }
    return 0;
}

/* Moves the result out of a parsed d: the unwrapped element, the compact
 * JSON text, or the tree. Fails d when there is no single root element. */
static void dec_take_result(dec *d, bool text_mode, json_t **tree, char **text, size_t *text_len)
{
    size_t members = text_mode ? d->frames[0].n_mem : json_object_size(d->frames[0].obj);
    if (!d->failed && (d->depth != 0 || members != 1)) {
        sl_error_set(d->err, SL_EINVAL, "XML line %d: the document has no root element",
                     d->xe.line);
        d->failed = true;
    }
    if (!d->failed && d->unwrap)
        take_unwrapped(d, text_mode, tree, text, text_len);
    else if (!d->failed && text_mode) {
        sl_buf out = {0};
        if (mem_object(&d->frames[0], &out) < 0) {
            free(out.p);
            sl_error_set(d->err, SL_ENOMEM, "out of memory");
            d->failed = true;
        } else {
            out.p[out.len] = '\0'; /* buf_reserve keeps room for it */
            *text = out.p;
            *text_len = out.len;
        }
    } else if (!d->failed) {
        *tree = d->frames[0].obj;
        d->frames[0].obj = NULL;
    }
}

/* Parses xml into a jansson tree (*tree) or, in text mode, straight into
 * compact JSON text (*text, *text_len). Returns 0, or -1 with err. */
static int xml_decode(const char *xml, size_t len, const sl_xml_opts *o, bool text_mode,
                      json_t **tree, char **text, size_t *text_len, sl_error *err)
{
    sl_xml_init();
    if (check_document(xml, len, o, err) < 0)
        return -1;
    dec d;
    if (dec_init(&d, o, text_mode, err) < 0)
        return -1;
    if (dec_parse(&d, xml, len) < 0) {
        dec_free(&d);
        return -1;
    }
    dec_take_result(&d, text_mode, tree, text, text_len);
    dec_free(&d);
    return d.failed ? -1 : 0;
}

json_t *sl_xml_to_json(const char *xml, size_t len, const sl_xml_opts *o, sl_error *err)
{
    json_t *tree = NULL;
    if (xml_decode(xml, len, o, false, &tree, NULL, NULL, err) < 0)
        return NULL;
    return tree;
}

char *sl_xml_to_json_text(const char *xml, size_t len, const sl_xml_opts *o, size_t *out_len,
                          sl_error *err)
{
    char *text = NULL;
    size_t n = 0;
    if (xml_decode(xml, len, o, true, NULL, &text, &n, err) < 0)
        return NULL;
    if (out_len)
        *out_len = n;
    return text;
}

/* ---- the attribute limit ----------------------------------------------------- */

/* Skips from s (just after "<!" or "<?") past the end of a comment, CDATA
 * section, processing instruction or declaration; counts newlines. */
static const char *skip_markup(const char *s, const char *end, int *line)
{
    const char *close = "?>";
    if (end - s >= 2 && memcmp(s, "--", 2) == 0)
        close = "-->";
    else if (end - s >= 7 && memcmp(s, "[CDATA[", 7) == 0)
        close = "]]>";
    else if (s[-1] == '!')
        close = ">";
    size_t cn = strlen(close);
    for (; s < end; s++) {
        if (*s == '\n')
            (*line)++;
        if ((size_t)(end - s) >= cn && memcmp(s, close, cn) == 0)
            return s + cn;
    }
    return end;
}

/* Counts the '=' outside quotes of the tag starting at s (after '<') up to
 * its '>': at least its attribute count. Returns the end of the tag. */
static const char *count_attrs(const char *s, const char *end, int *line, long *n)
{
    char quote = 0;
    *n = 0;
    for (; s < end; s++) {
        if (*s == '\n')
            (*line)++;
        if (quote) {
            quote = *s == quote ? 0 : quote;
        } else if (*s == '"' || *s == '\'') {
            quote = *s;
        } else if (*s == '=') {
            (*n)++;
        } else if (*s == '>') {
            return s + 1;
        }
    }
    return end;
}

int sl_xml_check_attrs(const char *xml, size_t len, sl_error *err)
{
    const char *s = xml, *end = xml + len;
    int line = 1;
    while (s < end) {
        const char *lt = memchr(s, '<', (size_t)(end - s));
        if (!lt)
            break;
        for (const char *q = s; q < lt; q++)
            line += *q == '\n';
        s = lt + 1;
        if (s < end && (*s == '!' || *s == '?')) {
            s = skip_markup(s + 1, end, &line);
            continue;
        }
        int tag_line = line;
        long n = 0;
        const char *name = s;
        s = count_attrs(s, end, &line, &n);
        if (n > SL_XML_MAX_ATTRS) {
            size_t nl = 0; /* the input need not be NUL-terminated */
            while (name + nl < end && !strchr(" \t\r\n/>", name[nl]))
                nl++;
            return sl_error_set(err, SL_EINVAL,
                                "XML line %d: element <%.*s> has more than %d attributes", tag_line,
                                (int)(nl > 100 ? 100 : nl), name, SL_XML_MAX_ATTRS);
        }
    }
    return 0;
}

/* ---- tree parsing and XPath --------------------------------------------------- */

/* What the hardened tree parser found besides libxml2's own errors. */
typedef struct tree_guard {
    xml_errs xe;
    bool refused;
    int refused_line;
    char refused_msg[300];
} tree_guard;

static void tree_refuse(xmlParserCtxtPtr ctxt, const char *what, const xmlChar *name)
{
    tree_guard *g = ctxt->_private;
    if (!g->refused) {
        g->refused = true;
        g->refused_line = ctxt->input ? ctxt->input->line : 0;
        snprintf(g->refused_msg, sizeof g->refused_msg, "%s '%s' %s", what,
                 name ? (const char *)name : "?",
                 "is refused (no entity expansion, no external entities)");
    }
    xmlStopParser(ctxt);
}

static void tree_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                             const xmlChar *system_id, xmlChar *content)
{
    (void)type;
    (void)public_id;
    (void)system_id;
    (void)content;
    tree_refuse(ctx, "the DOCTYPE declares entity", name);
}

static void tree_unparsed_entity_decl(void *ctx, const xmlChar *name, const xmlChar *public_id,
                                      const xmlChar *system_id, const xmlChar *notation)
{
    (void)public_id;
    (void)system_id;
    (void)notation;
    tree_refuse(ctx, "the DOCTYPE declares entity", name);
}

static xmlParserInputPtr tree_resolve_entity(void *ctx, const xmlChar *public_id,
                                             const xmlChar *system_id)
{
    (void)public_id;
    tree_refuse(ctx, "loading external resource", system_id);
    return NULL;
}

static void tree_serror(void *ctx, xmlErrorPtr x)
{
    xmlParserCtxtPtr ctxt = ctx;
    tree_guard *g = ctxt->_private;
    keep_error(&g->xe, x);
}

struct _xmlDoc *sl_xml_parse_tree(const char *xml, size_t len, sl_error *err)
{
    sl_xml_init();
    if (len > SL_XML_MAX_SIZE) {
        sl_error_set(err, SL_EINVAL, "XML document of %zu bytes is larger than the limit of %zu",
                     len, SL_XML_MAX_SIZE);
        return NULL;
    }
    if (!xml || len == 0) {
        sl_error_set(err, SL_EINVAL, "XML line 1: the document is empty");
        return NULL;
    }
    if (sl_xml_check_attrs(xml, len, err) < 0)
        return NULL;
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    tree_guard g;
    memset(&g, 0, sizeof g);
    ctxt->_private = &g;
    ctxt->sax->entityDecl = tree_entity_decl;
    ctxt->sax->unparsedEntityDecl = tree_unparsed_entity_decl;
    ctxt->sax->resolveEntity = tree_resolve_entity;
    ctxt->sax->externalSubset = NULL;
    ctxt->sax->serror = tree_serror;
    ctxt->sax->warning = NULL;
    ctxt->sax->error = NULL;
    ctxt->sax->fatalError = NULL;
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, xml, (int)len, NULL, NULL, XML_PARSE_NONET);
    if (g.refused) {
        xmlFreeDoc(doc);
        doc = NULL;
        sl_error_set(err, SL_EINVAL, "XML line %d: %s", g.refused_line, g.refused_msg);
    } else if (!doc) {
        sl_error_set(err, g.xe.level ? SL_EINVAL : SL_ENOMEM, "XML line %d: %s", g.xe.line,
                     g.xe.level ? g.xe.msg : "cannot parse (out of memory?)");
    }
    xmlFreeParserCtxt(ctxt);
    return doc;
}

static void xpath_serror(void *ctx, xmlErrorPtr x)
{
    xml_errs *c = ctx;
    if (x && x->level >= XML_ERR_ERROR && !c->level) {
        c->level = x->level;
        snprintf(c->msg, sizeof c->msg, "%s", x->message ? x->message : "invalid expression");
        size_t n = strlen(c->msg);
        while (n && (c->msg[n - 1] == '\n' || c->msg[n - 1] == ' '))
            c->msg[--n] = '\0';
    }
}

/* Binds every prefix declared in the document (first declaration wins).
 * Returns -1 when out of memory. */
static int register_doc_ns(xmlXPathContextPtr xp, xmlNodePtr node)
{
    while (node) {
        if (node->type == XML_ELEMENT_NODE) {
            for (xmlNsPtr ns = node->nsDef; ns; ns = ns->next) {
                if (ns->prefix && ns->href && !xmlXPathNsLookup(xp, ns->prefix) &&
                    xmlXPathRegisterNs(xp, ns->prefix, ns->href) != 0)
                    return -1;
            }
            if (node->children) {
                node = node->children;
                continue;
            }
        }
        while (node && !node->next) {
            node = node->parent;
            if (node && node->type != XML_ELEMENT_NODE)
                return 0; /* back at the document */
        }
        if (node)
            node = node->next;
    }
    return 0;
}

/* Compiles xpath (no document needed: prefixes are bound at evaluation).
 * Returns NULL with err. */
static xmlXPathCompExprPtr xpath_compile(const char *xpath, sl_error *err)
{
    sl_xml_init();
    xmlXPathContextPtr xp = xmlXPathNewContext(NULL);
    if (!xp) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    xml_errs c;
    memset(&c, 0, sizeof c);
    xp->error = xpath_serror;
    xp->userData = &c;
    xmlXPathCompExprPtr comp = xmlXPathCtxtCompile(xp, (const xmlChar *)xpath);
    xmlXPathFreeContext(xp);
    if (!comp)
        sl_error_set(err, SL_EINVAL, "XPath '%s': %s", xpath,
                     c.level ? c.msg : "invalid expression");
    return comp;
}

int sl_xml_xpath_check(const char *xpath, sl_error *err)
{
    xmlXPathCompExprPtr comp = xpath_compile(xpath, err);
    if (!comp)
        return -1;
    xmlXPathFreeCompExpr(comp);
    return 0;
}

/* The string value of an XPath result: of the first node in document order
 * for a node set (NULL, not an error, when it is empty). Returns 0, or -1
 * with err when out of memory. */
static int xpath_result_string(xmlXPathObjectPtr r, char **out, size_t *out_len, sl_error *err)
{
    xmlChar *s = NULL;
    if (r->type == XPATH_NODESET) {
        if (!r->nodesetval || r->nodesetval->nodeNr == 0)
            return 0; /* nothing matches */
        xmlXPathNodeSetSort(r->nodesetval);
        s = xmlXPathCastNodeToString(r->nodesetval->nodeTab[0]);
    } else {
        s = xmlXPathCastToString(r);
    }
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    size_t n = strlen((const char *)s);
    *out = malloc(n + 1);
    if (!*out) {
        xmlFree(s);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    memcpy(*out, s, n + 1);
    xmlFree(s);
    if (out_len)
        *out_len = n;
    return 0;
}

/* Evaluates comp (or, when NULL, the text xpath) over the XML document in
 * xml. lock (may be NULL) is held around the evaluation of a shared comp:
 * libxml2 caches function lookups in it. */
static int xpath_eval_doc(const char *xml, size_t len, const char *xpath, xmlXPathCompExprPtr comp,
                          pthread_mutex_t *lock, char **out, size_t *out_len, sl_error *err)
{
    *out = NULL;
    if (out_len)
        *out_len = 0;
    xmlDocPtr doc = sl_xml_parse_tree(xml, len, err);
    if (!doc)
        return -1;
    int rc = -1;
    xmlXPathObjectPtr r = NULL;
    xml_errs c;
    memset(&c, 0, sizeof c);
    xmlXPathContextPtr xp = xmlXPathNewContext(doc);
    if (!xp || register_doc_ns(xp, xmlDocGetRootElement(doc)) < 0) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        goto done;
    }
    xp->error = xpath_serror;
    xp->userData = &c;
    if (comp) {
        if (lock)
            pthread_mutex_lock(lock);
        r = xmlXPathCompiledEval(comp, xp);
        if (lock)
            pthread_mutex_unlock(lock);
    } else {
        r = xmlXPathEvalExpression((const xmlChar *)xpath, xp);
    }
    if (!r) {
        sl_error_set(err, SL_EINVAL, "XPath '%s': %s", xpath, c.level ? c.msg : "cannot evaluate");
        goto done;
    }
    rc = xpath_result_string(r, out, out_len, err);
done:
    xmlXPathFreeObject(r);
    xmlXPathFreeContext(xp);
    xmlFreeDoc(doc);
    return rc;
}

int sl_xml_eval_xpath(const char *xml, size_t len, const char *xpath, char **out, size_t *out_len,
                      sl_error *err)
{
    return xpath_eval_doc(xml, len, xpath, NULL, NULL, out, out_len, err);
}

/* ---- XPath as a key language (core/expr.h) ----------------------------------- */

typedef struct xpath_key {
    char *text;
    xmlXPathCompExprPtr comp;
    sl_xps *fast; /* the streaming form of a simple path, or NULL */
    pthread_mutex_t lock;
} xpath_key;

static bool xpath_key_accepts(const char *text)
{
    return text[0] == '/';
}

static void xpath_key_free(void *h)
{
    xpath_key *k = h;
    if (!k)
        return;
    xmlXPathFreeCompExpr(k->comp);
    sl_xps_free(k->fast);
    pthread_mutex_destroy(&k->lock);
    free(k->text);
    free(k);
}

static void *xpath_key_compile(const char *text, const sl_conf_pos *pos, sl_error *err)
{
    xpath_key *k = calloc(1, sizeof *k);
    if (!k || !(k->text = strdup(text))) {
        free(k);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&k->lock, NULL);
    k->comp = xpath_compile(text, err);
    if (!k->comp) {
        xpath_key_free(k);
        return NULL;
    }
    k->fast = sl_xps_compile(text);
    return k;
}

static int xpath_key_eval(void *h, sl_msg *msg, char **out, size_t *len, sl_error *err)
{
    xpath_key *k = h;
    if (k->fast) {
        size_t unused;
        return sl_xps_eval(k->fast, msg->body, msg->body_len, out, len ? len : &unused, err);
    }
    return xpath_eval_doc(msg->body, msg->body_len, k->text, k->comp, &k->lock, out, len, err);
}

const sl_expr_lang sl_expr_xpath = {
    .name = "xpath",
    .syntax = "an XPath starting with '/'",
    .accepts = xpath_key_accepts,
    .compile = xpath_key_compile,
    .eval_key = xpath_key_eval,
    .free = xpath_key_free,
    .shared = true,
};
