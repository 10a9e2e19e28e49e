/* Pure helpers of the HTTP listeners (http_server connector, admin API):
 * listen addresses, content types, a fast JSON validator (so that ingest
 * checks a body without building a tree), RFC 3339 and escaping. */
#include "http_server_util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- listen addresses ---------------------------------------------------- */

int sl_httpd_parse_listen(const char *where, struct sockaddr_storage *addr, socklen_t *len,
                          sl_error *err)
{
    char host[256];
    const char *port;
    if (where == NULL || *where == '\0')
        return sl_error_set(err, SL_EINVAL, "empty listen address");
    if (where[0] == '[') {
        const char *close_br = strchr(where, ']');
        if (close_br == NULL || close_br[1] != ':')
            return sl_error_set(err, SL_EINVAL, "listen address \"%s\": expected [IPV6]:PORT",
                                where);
        size_t hl = (size_t)(close_br - where - 1);
        if (hl == 0 || hl >= sizeof host)
            return sl_error_set(err, SL_EINVAL, "listen address \"%s\": bad host", where);
        memcpy(host, where + 1, hl);
        host[hl] = '\0';
        port = close_br + 2;
    } else {
        const char *colon = strrchr(where, ':');
        if (colon == NULL)
            return sl_error_set(err, SL_EINVAL, "listen address \"%s\": expected HOST:PORT", where);
        if (memchr(where, ':', (size_t)(colon - where)) != NULL)
            return sl_error_set(err, SL_EINVAL,
                                "listen address \"%s\": write IPv6 hosts as [HOST]:PORT", where);
        size_t hl = (size_t)(colon - where);
        if (hl >= sizeof host)
            return sl_error_set(err, SL_EINVAL, "listen address \"%s\": host too long", where);
        memcpy(host, where, hl);
        host[hl] = '\0';
        port = colon + 1;
    }
    char *end = NULL;
    errno = 0;
    long pn = strtol(port, &end, 10);
    if (*port == '\0' || !isdigit((unsigned char)*port) || end == NULL || *end != '\0' ||
        errno != 0 || pn < 0 || pn > 65535)
        return sl_error_set(err, SL_EINVAL, "listen address \"%s\": bad port \"%s\"", where, port);

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_family = AF_UNSPEC;
    const char *h = host;
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        h = NULL;
        hints.ai_family = AF_INET;
    }
    int rc = getaddrinfo(h, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        if (res != NULL)
            freeaddrinfo(res);
        return sl_error_set(err, SL_EINVAL, "listen address \"%s\": %s", where,
                            rc != 0 ? gai_strerror(rc) : "no address");
    }
    if (res->ai_addrlen > sizeof *addr) {
        freeaddrinfo(res);
        return sl_error_set(err, SL_EINVAL, "listen address \"%s\": address too long", where);
    }
    memset(addr, 0, sizeof *addr);
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int sl_httpd_listen_socket(const char *where, int backlog, sl_error *err)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    if (sl_httpd_parse_listen(where, &ss, &sl, err) != 0)
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "cannot listen on %s: socket: %s", where, strerror(errno));
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6) {
        int zero = 0;
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (bind(fd, (const struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        close(fd);
        return sl_error_set(err, SL_EIO, "cannot bind %s: %s", where, strerror(e));
    }
    if (listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        return sl_error_set(err, SL_EIO, "cannot listen on %s: %s", where, strerror(e));
    }
    return fd;
}

void sl_httpd_sockname(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port;
    if (cap == 0)
        return;
    out[0] = '\0';
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%u", host, port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%u", host, port);
    }
}

/* ---- content types ------------------------------------------------------- */

static bool ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

static bool iends(const char *a, size_t alen, const char *suffix)
{
    size_t sl = strlen(suffix);
    return alen >= sl && strncasecmp(a + alen - sl, suffix, sl) == 0;
}

bool sl_httpd_content_type_ok(sl_content_type kind, const char *ctype)
{
    if (kind == SL_CT_ANY)
        return true;
    if (ctype == NULL)
        return false;
    while (*ctype == ' ' || *ctype == '\t')
        ctype++;
    size_t n = strcspn(ctype, ";");
    while (n > 0 && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
        n--;
    const char *slash = memchr(ctype, '/', n);
    if (slash == NULL || slash == ctype || slash + 1 == ctype + n)
        return false;
    size_t tlen = (size_t)(slash - ctype);
    const char *sub = slash + 1;
    size_t slen = n - tlen - 1;
    switch (kind) {
        case SL_CT_JSON:
            return ieq(ctype, n, "application/json") || iends(sub, slen, "+json");
        case SL_CT_XML:
            return ieq(ctype, n, "application/xml") || ieq(ctype, n, "text/xml") ||
                   iends(sub, slen, "+xml");
        case SL_CT_TEXT:
            return ieq(ctype, tlen, "text");
        case SL_CT_ANY:
        default:
            return true;
    }
}

const char *sl_httpd_content_type_name(sl_content_type kind)
{
    switch (kind) {
        case SL_CT_JSON:
            return "application/json";
        case SL_CT_XML:
            return "application/xml";
        case SL_CT_TEXT:
            return "text/plain";
        case SL_CT_ANY:
        default:
            return NULL;
    }
}

/* ---- JSON validation ----------------------------------------------------- */

#define JSON_MAX_DEPTH 2048

typedef struct jv {
    const unsigned char *s;
    size_t len;
    size_t pos;
    char *msg;
    size_t cap;
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
    int x = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        x = x * 16 + d;
    }
    return x;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when invalid. */
static size_t jv_utf8(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < need + 1)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i <= need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need + 1;
}

/* At the opening quote: checks the string and moves past the closing quote. */
static bool jv_string(jv *v)
{
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
        size_t n = jv_utf8(v->s + v->pos, v->len - v->pos);
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
    /* The range checks jansson makes: integers must fit int64, reals must be
     * finite. Tokens too long for the buffer: integers cannot fit, reals are
     * let through unchecked. */
    char tok[400];
    size_t n = v->pos - start;
    if (n >= sizeof tok) {
        if (real)
            return true;
        v->pos = start;
        return jv_fail(v, "integer out of range");
    }
    memcpy(tok, v->s + start, n);
    tok[n] = '\0';
    errno = 0;
    if (real) {
        double d = strtod(tok, NULL);
        if (errno == ERANGE && isinf(d)) {
            v->pos = start;
            return jv_fail(v, "real number overflow");
        }
    } else {
        (void)strtoll(tok, NULL, 10);
        if (errno == ERANGE) {
            v->pos = start;
            return jv_fail(v, "integer out of range");
        }
    }
    return true;
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
    if (!jv_string(v))
        return false;
    jv_ws(v);
    if (v->pos >= v->len || v->s[v->pos] != ':')
        return v->pos >= v->len ? jv_unexpected(v) : jv_fail(v, "expected ':'");
    v->pos++;
    return true;
}

bool sl_httpd_json_valid(const char *buf, size_t len, char *msg, size_t cap)
{
    jv v = {(const unsigned char *)buf, len, 0, msg, cap};
    char stack[JSON_MAX_DEPTH];
    size_t depth = 0;
    if (cap > 0)
        msg[0] = '\0';
    for (;;) {
        /* expecting a value */
        jv_ws(&v);
        if (v.pos >= v.len)
            return jv_unexpected(&v);
        unsigned char c = v.s[v.pos];
        if (c == '{' || c == '[') {
            if (depth == JSON_MAX_DEPTH)
                return jv_fail(&v, "nesting too deep");
            stack[depth++] = (char)c;
            v.pos++;
            jv_ws(&v);
            unsigned char closer = c == '{' ? '}' : ']';
            if (v.pos < v.len && v.s[v.pos] == closer) {
                v.pos++;
                depth--;
            } else {
                if (c == '{' && !jv_key(&v))
                    return false;
                continue;
            }
        } else if (!jv_scalar(&v)) {
            return false;
        }
        /* after a value: close containers or move to the next element */
        for (;;) {
            jv_ws(&v);
            if (depth == 0) {
                if (v.pos != v.len)
                    return jv_fail(&v, "end of input expected");
                return true;
            }
            if (v.pos >= v.len)
                return jv_unexpected(&v);
            c = v.s[v.pos];
            char top = stack[depth - 1];
            if (c == ',') {
                v.pos++;
                if (top == '{' && !jv_key(&v))
                    return false;
                break;
            }
            if ((top == '{' && c == '}') || (top == '[' && c == ']')) {
                v.pos++;
                depth--;
                continue;
            }
            return jv_fail(&v, top == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
}

/* ---- RFC 3339 ------------------------------------------------------------ */

static int num(const char *s, int n, int *out)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (s[i] - '0');
    }
    *out = x;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int sl_httpd_parse_rfc3339(const char *s, int64_t *ms_out)
{
    int y, mo, d, h, mi, sec;
    if (s == NULL || strlen(s) < 20)
        return -1;
    if (num(s, 4, &y) || s[4] != '-' || num(s + 5, 2, &mo) || s[7] != '-' || num(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || num(s + 11, 2, &h) || s[13] != ':' ||
        num(s + 14, 2, &mi) || s[16] != ':' || num(s + 17, 2, &sec))
        return -1;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 ||
        sec > 60)
        return -1;
    const char *p = s + 19;
    int64_t ms = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 3)
                ms = ms * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0)
            return -1;
        for (int i = nd; i < 3; i++)
            ms *= 10;
    }
    int64_t off_min = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        off_min = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (num(p + 1, 2, &oh) || num(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        off_min = (int64_t)oh * 60 + om;
        if (*p == '-')
            off_min = -off_min;
    } else {
        return -1;
    }
    int64_t days = days_from_civil(y, mo, d);
    int64_t secs = days * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec - off_min * 60;
    *ms_out = secs * 1000 + ms;
    return 0;
}

/* ---- escaping and comparison ---------------------------------------------- */

bool sl_httpd_json_escape(const char *s, size_t len, char *out, size_t cap, size_t *pos)
{
    static const char hex[] = "0123456789abcdef";
    size_t p = *pos;
    bool ok = true;
    if (cap == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t n;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2);
            n = 2;
        } else if (c == '\r') {
            memcpy(esc, "\\r", 2);
            n = 2;
        } else if (c == '\t') {
            memcpy(esc, "\\t", 2);
            n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        } else {
            esc[0] = (char)c;
            n = 1;
        }
        if (p + n >= cap) {
            ok = false;
            break;
        }
        memcpy(out + p, esc, n);
        p += n;
    }
    out[p < cap ? p : cap - 1] = '\0';
    *pos = p;
    return ok;
}

bool sl_httpd_secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    volatile unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++) {
        unsigned char ca = i < alen ? (unsigned char)a[i] : 0;
        diff |= (unsigned char)(ca ^ (unsigned char)b[i]);
    }
    return diff == 0;
}
