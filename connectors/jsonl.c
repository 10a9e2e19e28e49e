/* JSON-line formatting for the file and stdout outputs (the last hop of a
 * route): each message becomes one self-contained JSON object on one line.
 * JSON bodies are validated with jansson and embedded minified. */
#include "jsonl.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "json_escape.h"
#include "json_valid.h"
#include "utf8.h"

void sl_jsonl_buf_init(sl_jsonl_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void sl_jsonl_buf_free(sl_jsonl_buf *b)
{
    if (!b)
        return;
    free(b->data);
    sl_jsonl_buf_init(b);
}

/* Makes room for extra more bytes. Returns 0 or -1. */
static int buf_reserve(sl_jsonl_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static int buf_put(sl_jsonl_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

static int buf_puts(sl_jsonl_buf *b, const char *s)
{
    return buf_put(b, s, strlen(s));
}

int sl_jsonl_append_string(sl_jsonl_buf *b, const char *s, size_t len)
{
    /* Worst case SL_JSON_ESC_MAX_GROWTH output bytes per input byte, plus the quotes. */
    if (len > (SIZE_MAX - 2) / SL_JSON_ESC_MAX_GROWTH ||
        buf_reserve(b, len * SL_JSON_ESC_MAX_GROWTH + 2) < 0)
        return -1;
    char *o = b->data + b->len;
    size_t w;
    *o++ = '"';
    sl_json_escape(s, len, SL_JSON_ESC_LATIN1, o, len * SL_JSON_ESC_MAX_GROWTH, &w);
    o[w] = '"';
    b->len += w + 2;
    return 0;
}

/* Appends a valid JSON text without the whitespace outside its strings. */
static int append_minified(sl_jsonl_buf *b, const char *s, size_t len)
{
    if (buf_reserve(b, len) < 0)
        return -1;
    char *o = b->data + b->len;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        } else if (c == '"') {
            in_str = true;
        }
        *o++ = c;
    }
    b->len = (size_t)(o - b->data);
    return 0;
}

/* The value of header name (case-insensitive), or NULL. */
static const sl_msg_header *find_header(const sl_msg *msg, const char *name)
{
    for (size_t i = 0; i < msg->n_headers; i++) {
        if (msg->headers[i].name && strcasecmp(msg->headers[i].name, name) == 0)
            return &msg->headers[i];
    }
    return NULL;
}

/* True when the media type (before any ';' parameters) is JSON. */
static bool is_json_media_type(const char *v, size_t len)
{
    const char *t = v;
    const char *end = memchr(v, ';', len);
    if (!end)
        end = v + len;
    while (t < end && (*t == ' ' || *t == '\t'))
        t++;
    size_t n = 0; /* up to the last character that is not a blank */
    for (size_t i = 0; t + i < end; i++) {
        if (t[i] != ' ' && t[i] != '\t')
            n = i + 1;
    }
    if (n == strlen("application/json") && strncasecmp(t, "application/json", n) == 0)
        return true;
    if (n == strlen("text/json") && strncasecmp(t, "text/json", n) == 0)
        return true;
    return n > 5 && strncasecmp(t + n - 5, "+json", 5) == 0;
}

/* True when body is one complete JSON document (any value at top level).
 * The allocation-free validator decides nearly every body; only what it
 * refuses is parsed, for the integers beyond int64 that jansson takes as
 * reals here. */
static bool is_valid_json(const char *body, size_t len)
{
    if (len == 0)
        return false;
    if (sl_json_valid(body, len, NULL, 0))
        return true;
    json_error_t jerr;
    json_t *j =
        json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!j)
        return false;
    json_decref(j);
    return true;
}

static int append_body(sl_jsonl_buf *b, const sl_msg *msg)
{
    const char *body = msg->body ? msg->body : "";
    size_t len = msg->body ? msg->body_len : 0;
    const sl_msg_header *ct = find_header(msg, SL_HDR_CONTENT_TYPE);
    bool json;
    if (ct && ct->value && ct->value_len > 0)
        json = is_json_media_type(ct->value, ct->value_len) && is_valid_json(body, len);
    else
        json = is_valid_json(body, len);
    if (json)
        return append_minified(b, body, len);
    return sl_jsonl_append_string(b, body, len);
}

int sl_jsonl_append_msg(sl_jsonl_buf *b, const sl_msg *msg)
{
    size_t start = b->len;
    char num[64];
    if (buf_puts(b, "{\"id\":") < 0 || sl_jsonl_append_string(b, msg->id, strlen(msg->id)) < 0 ||
        buf_puts(b, ",\"key\":") < 0)
        goto oom;
    if (msg->key) {
        if (sl_jsonl_append_string(b, msg->key, msg->key_len) < 0)
            goto oom;
    } else if (buf_puts(b, "null") < 0) {
        goto oom;
    }
    int nl =
        snprintf(num, sizeof num, ",\"timestamp\":%" PRId64 ",\"headers\":{", msg->timestamp_ms);
    if (nl < 0 || (size_t)nl >= sizeof num || buf_put(b, num, (size_t)nl) < 0)
        goto oom;
    bool first = true;
    for (size_t i = 0; i < msg->n_headers; i++) {
        const sl_msg_header *h = &msg->headers[i];
        if (!h->name)
            continue;
        if ((!first && buf_put(b, ",", 1) < 0) ||
            sl_jsonl_append_string(b, h->name, strlen(h->name)) < 0 || buf_put(b, ":", 1) < 0 ||
            sl_jsonl_append_string(b, h->value ? h->value : "", h->value ? h->value_len : 0) < 0)
            goto oom;
        first = false;
    }
    if (buf_puts(b, "},\"body\":") < 0 || append_body(b, msg) < 0 || buf_puts(b, "}\n") < 0)
        goto oom;
    return 0;
oom:
    b->len = start;
    return -1;
}

size_t sl_jsonl_safe_text(const char *in, size_t len, size_t max_in, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0, o = 0;
    if (cap == 0)
        return 0;
    size_t end = len < max_in ? len : max_in;
    while (i < end && o + 1 < cap) {
        unsigned char c = p[i];
        if (c < 0x20 || c == 0x7F) {
            out[o++] = ' ';
            i++;
        } else if (c < 0x80) {
            out[o++] = (char)c;
            i++;
        } else {
            size_t sl = sl_utf8_seq_len(p + i, len - i);
            if (sl == 0) {
                out[o++] = '?';
                i++;
            } else if (i + sl <= end && o + sl < cap) {
                memcpy(out + o, p + i, sl);
                o += sl;
                i += sl;
            } else {
                break;
            }
        }
    }
    out[o] = '\0';
    return o;
}
