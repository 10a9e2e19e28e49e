/* The message model (see message.h): UUIDv7 ids, headers, body and key
 * expressions. Inputs build sl_msg values, sl_msg_to_record/from_record move
 * them in and out of the log, and routes evaluate keys on every ingest. */
#include "message.h"
#include "json_scan.h"
#include "real.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "expr.h"

/* ---- UUIDv7 ---------------------------------------------------------------- */

/* Per-thread xoshiro256** state, seeded from getrandom() on first use. */
static _Thread_local uint64_t rng_state[4];
static _Thread_local bool rng_seeded;

/* The last (unix_ms << 12 | rand_a) handed out: ids are ordered by it. */
static _Atomic uint64_t uuid_last;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(void)
{
    uint64_t seed[4];
    size_t got = 0;
    while (got < sizeof seed) {
        ssize_t n = getrandom((char *)seed + got, sizeof seed - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    if (got < sizeof seed) {
        /* No getrandom (old kernel, seccomp): mix time, pid and a stack address. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
        x ^= (uint64_t)getpid() << 32;
        x ^= (uint64_t)(uintptr_t)&x;
        for (int i = 0; i < 4; i++)
            seed[i] = splitmix64(&x);
    }
    /* Run the seed through splitmix so that an all-zero state cannot happen. */
    for (int i = 0; i < 4; i++) {
        uint64_t x = seed[i] + (uint64_t)i;
        rng_state[i] = splitmix64(&x);
    }
    rng_seeded = true;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    if (!rng_seeded)
        rng_seed();
    uint64_t *s = rng_state;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void sl_uuid7(char out[SL_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t ms = (uint64_t)sl_wall_ms() & 0xffffffffffffULL;
    uint64_t r1 = rng_next();
    uint64_t r2 = rng_next();

    /* A new millisecond starts rand_a at a random value below 0x800, which
     * leaves at least 2048 increments before the counter spills into the
     * timestamp. Within the same (or an earlier, after a clock step)
     * millisecond the counter goes up by one: ids stay ordered. */
    uint64_t prev = atomic_load_explicit(&uuid_last, memory_order_relaxed);
    uint64_t next;
    do {
        if (ms > (prev >> 12))
            next = (ms << 12) | (r1 & 0x7ff);
        else
            next = prev + 1;
    } while (!atomic_compare_exchange_weak_explicit(&uuid_last, &prev, next, memory_order_relaxed,
                                                    memory_order_relaxed));

    uint8_t b[16];
    uint64_t ts = next >> 12;
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ts >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | ((next >> 8) & 0x0f));
    b[7] = (uint8_t)(next & 0xff);
    b[8] = (uint8_t)(0x80 | ((r2 >> 56) & 0x3f));
    for (int i = 9; i < 16; i++)
        b[i] = (uint8_t)(r2 >> (8 * (15 - i)));

    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 0x0f];
    }
    *o = '\0';
}

/* ---- construction and headers --------------------------------------------- */

/* Returns a malloc'd copy of len bytes of s followed by a NUL, or NULL. */
static char *dup_bytes(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

sl_msg *sl_msg_new(void)
{
    sl_msg *msg = calloc(1, sizeof *msg);
    if (!msg)
        return NULL;
    msg->body = calloc(1, 1);
    if (!msg->body) {
        free(msg);
        return NULL;
    }
    sl_uuid7(msg->id);
    msg->timestamp_ms = sl_wall_ms();
    msg->partition = -1;
    msg->offset = -1;
    return msg;
}

static void drop_json(sl_msg *msg)
{
    msg->json_checked = false;
    if (msg->json) {
        json_decref((json_t *)msg->json);
        msg->json = NULL;
    }
}

void sl_msg_free(sl_msg *msg)
{
    if (!msg)
        return;
    for (size_t i = 0; i < msg->n_headers; i++) {
        free(msg->headers[i].name);
        free(msg->headers[i].value);
    }
    free(msg->headers);
    free(msg->key);
    free(msg->body);
    drop_json(msg);
    free(msg);
}

int sl_msg_set_body(sl_msg *msg, const char *body, size_t len)
{
    char *copy = dup_bytes(body, len);
    if (!copy)
        return -1;
    free(msg->body);
    msg->body = copy;
    msg->body_len = len;
    drop_json(msg);
    return 0;
}

void sl_msg_take_body(sl_msg *msg, char *body, size_t len)
{
    body[len] = '\0';
    free(msg->body);
    msg->body = body;
    msg->body_len = len;
    drop_json(msg);
}

int sl_msg_set_key(sl_msg *msg, const char *key, size_t len)
{
    char *copy = NULL;
    if (key) {
        copy = dup_bytes(key, len);
        if (!copy)
            return -1;
    }
    free(msg->key);
    msg->key = copy;
    msg->key_len = key ? len : 0;
    return 0;
}

/* Makes room for one more header. Returns 0 or -1 (nothing changed). */
static int reserve_header(sl_msg *msg)
{
    if (msg->n_headers < msg->cap_headers)
        return 0;
    size_t cap = msg->cap_headers ? msg->cap_headers * 2 : 8;
    sl_msg_header *h = realloc(msg->headers, cap * sizeof *h);
    if (!h)
        return -1;
    msg->headers = h;
    msg->cap_headers = cap;
    return 0;
}

/* Appends a header (copies of name and value) without looking for an
 * existing one. Returns 0 or -1 (nothing changed). */
static int append_header(sl_msg *msg, const char *name, size_t name_len, const char *value,
                         size_t value_len)
{
    if (reserve_header(msg) < 0)
        return -1;
    char *n = dup_bytes(name, name_len);
    char *v = dup_bytes(value, value_len);
    if (!n || !v) {
        free(n);
        free(v);
        return -1;
    }
    sl_msg_header *h = &msg->headers[msg->n_headers++];
    h->name = n;
    h->value = v;
    h->value_len = value_len;
    return 0;
}

static sl_msg_header *find_header(const sl_msg *msg, const char *name)
{
    for (size_t i = 0; i < msg->n_headers; i++) {
        if (strcasecmp(msg->headers[i].name, name) == 0)
            return &msg->headers[i];
    }
    return NULL;
}

int sl_msg_set_header(sl_msg *msg, const char *name, const char *value, size_t len)
{
    sl_msg_header *h = find_header(msg, name);
    if (!h)
        return append_header(msg, name, strlen(name), value, len);
    char *v = dup_bytes(value, len);
    if (!v)
        return -1;
    free(h->value);
    h->value = v;
    h->value_len = len;
    return 0;
}

const char *sl_msg_get_header(const sl_msg *msg, const char *name, size_t *len)
{
    const sl_msg_header *h = find_header(msg, name);
    if (len)
        *len = h ? h->value_len : 0;
    return h ? h->value : NULL;
}

sl_msg *sl_msg_clone(const sl_msg *msg)
{
    sl_msg *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    memcpy(c->id, msg->id, sizeof c->id);
    c->timestamp_ms = msg->timestamp_ms;
    c->attempts = msg->attempts;
    c->partition = msg->partition;
    c->offset = msg->offset;
    c->body = dup_bytes(msg->body ? msg->body : "", msg->body_len);
    if (!c->body)
        goto fail;
    c->body_len = msg->body_len;
    if (msg->key) {
        c->key = dup_bytes(msg->key, msg->key_len);
        if (!c->key)
            goto fail;
        c->key_len = msg->key_len;
    }
    if (msg->n_headers) {
        c->headers = calloc(msg->n_headers, sizeof *c->headers);
        if (!c->headers)
            goto fail;
        c->cap_headers = msg->n_headers;
        for (size_t i = 0; i < msg->n_headers; i++) {
            const sl_msg_header *h = &msg->headers[i];
            if (append_header(c, h->name, strlen(h->name), h->value, h->value_len) < 0)
                goto fail;
        }
    }
    return c;
fail:
    sl_msg_free(c);
    return NULL;
}

/* ---- records --------------------------------------------------------------- */

static bool is_id_header(const sl_header *h)
{
    size_t n = sizeof SL_HDR_ID - 1;
    return h->name_len == n && strncasecmp(h->name, SL_HDR_ID, n) == 0;
}

sl_msg *sl_msg_from_record(const sl_record *rec, int partition, sl_error *err)
{
    sl_msg *msg = calloc(1, sizeof *msg);
    if (!msg)
        goto oom;
    msg->timestamp_ms = rec->timestamp_ms;
    msg->partition = partition;
    msg->offset = rec->offset;
    msg->body = dup_bytes(rec->value ? rec->value : "", rec->value_len);
    if (!msg->body)
        goto oom;
    msg->body_len = rec->value_len;
    if (rec->key_len > 0 && sl_msg_set_key(msg, rec->key, rec->key_len) < 0)
        goto oom;

    /* The first SL_HDR_ID header of a plausible length is the id; any other
     * one (a header an input copied from its source) stays a header. */
    bool have_id = false;
    for (size_t i = 0; i < rec->n_headers; i++) {
        const sl_header *h = &rec->headers[i];
        if (!have_id && is_id_header(h) && h->value_len > 0 && h->value_len <= SL_ID_LEN) {
            memcpy(msg->id, h->value, h->value_len);
            msg->id[h->value_len] = '\0';
            have_id = true;
            continue;
        }
        if (append_header(msg, h->name, h->name_len, h->value ? h->value : "", h->value_len) < 0)
            goto oom;
    }
    if (!have_id)
        sl_uuid7(msg->id);
    return msg;
oom:
    sl_msg_free(msg);
    sl_error_set(err, SL_ENOMEM, "out of memory building a message from offset %" PRId64,
                 rec->offset);
    return NULL;
}

void sl_msg_view_record(sl_msg *view, const sl_record *rec, int partition, sl_msg_header *hdrs)
{
    memset(view, 0, sizeof *view);
    view->timestamp_ms = rec->timestamp_ms;
    view->partition = partition;
    view->offset = rec->offset;
    view->body = (char *)(rec->value ? rec->value : "");
    view->body_len = rec->value_len;
    if (rec->key_len > 0) {
        view->key = (char *)rec->key;
        view->key_len = rec->key_len;
    }
    view->headers = hdrs;
    bool have_id = false; /* as sl_msg_from_record */
    for (size_t i = 0; i < rec->n_headers; i++) {
        const sl_header *h = &rec->headers[i];
        if (!have_id && is_id_header(h) && h->value_len > 0 && h->value_len <= SL_ID_LEN) {
            memcpy(view->id, h->value, h->value_len);
            view->id[h->value_len] = '\0';
            have_id = true;
            continue;
        }
        sl_msg_header *out = &hdrs[view->n_headers++];
        out->name = (char *)h->name;
        out->value = (char *)(h->value ? h->value : "");
        out->value_len = h->value_len;
    }
    view->cap_headers = view->n_headers;
    if (!have_id)
        sl_uuid7(view->id);
}

void sl_msg_view_release(sl_msg *view)
{
    drop_json(view);
}

int sl_msg_to_record(const sl_msg *msg, sl_record *rec, sl_header *hdrs, size_t cap)
{
    if (cap < msg->n_headers + 1)
        return -1;
    hdrs[0].name = SL_HDR_ID;
    hdrs[0].name_len = sizeof SL_HDR_ID - 1;
    hdrs[0].value = msg->id;
    hdrs[0].value_len = strlen(msg->id);
    for (size_t i = 0; i < msg->n_headers; i++) {
        const sl_msg_header *h = &msg->headers[i];
        hdrs[i + 1].name = h->name;
        hdrs[i + 1].name_len = strlen(h->name);
        hdrs[i + 1].value = h->value;
        hdrs[i + 1].value_len = h->value_len;
    }
    rec->offset = msg->offset;
    rec->timestamp_ms = msg->timestamp_ms;
    rec->key = msg->key;
    rec->key_len = msg->key ? msg->key_len : 0;
    rec->headers = hdrs;
    rec->n_headers = msg->n_headers + 1;
    rec->value = msg->body ? msg->body : "";
    rec->value_len = msg->body_len;
    return 0;
}

/* ---- JSON body and key expressions ---------------------------------------- */

void *sl_msg_json(sl_msg *msg, sl_error *err)
{
    if (msg->json)
        return msg->json;
    json_error_t jerr;
    /* JSON_ALLOW_NUL: a "\u0000" inside a string is valid JSON, so it must
     * not turn the message into a permanent failure. */
    json_t *root = json_loadb(msg->body ? msg->body : "", msg->body_len,
                              JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        sl_error_set(err, SL_EINVAL, "body is not JSON: %s (line %d, column %d)", jerr.text,
                     jerr.line, jerr.column);
        return NULL;
    }
    msg->json = root;
    return root;
}

/* One step of a JSON path: a member name or an array index. */
typedef struct path_step {
    bool is_index;
    size_t index;     /* SIZE_MAX when it does not fit: never matches */
    const char *name; /* not NUL-terminated */
    size_t name_len;
    bool escaped; /* a bracket-quoted name holding backslash escapes */
} path_step;

/* The path_* readers below take s just past the '.' or '[' of a step and
 * return as path_next does. */

/* .name: up to the next '.', '[' or ']'. */
static int path_member(const char *s, const char **p, path_step *st, const char **why)
{
    const char *start = s;
    while (*s && *s != '.' && *s != '[' && *s != ']')
        s++;
    if (s == start) {
        *why = "empty member name";
        return -1;
    }
    st->name = start;
    st->name_len = (size_t)(s - start);
    *p = s;
    return 1;
}

/* [digits]: an index, saturating at SIZE_MAX. */
static int path_index(const char *s, const char **p, path_step *st, const char **why)
{
    size_t idx = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        size_t d = (size_t)(*s - '0');
        idx = (idx > (SIZE_MAX - d) / 10) ? SIZE_MAX : idx * 10 + d;
    }
    if (*s != ']') {
        *why = "expected ']' after an index";
        return -1;
    }
    st->is_index = true;
    st->index = idx;
    *p = s + 1;
    return 1;
}

/* ['name'] or ["name"]: the name may hold backslash escapes (st->escaped). */
static int path_quoted(const char *s, const char **p, path_step *st, const char **why)
{
    char q = *s++;
    const char *start = s;
    while (*s && *s != q) {
        if (*s == '\\') {
            st->escaped = true;
            if (*++s == '\0')
                break;
        }
        s++;
    }
    if (*s != q || s[1] != ']') {
        *why = "unterminated quoted name";
        return -1;
    }
    st->name = start;
    st->name_len = (size_t)(s - start);
    *p = s + 2;
    return 1;
}

/* Reads the step at *p. Returns 1 (step filled, *p advanced), 0 at the end
 * of the path, or -1 with *why set when the path is malformed there. */
static int path_next(const char **p, path_step *st, const char **why)
{
    const char *s = *p;
    memset(st, 0, sizeof *st);
    if (*s == '\0')
        return 0;
    if (*s == '.')
        return path_member(s + 1, p, st, why);
    if (*s != '[') {
        *why = "expected '.' or '['";
        return -1;
    }
    s++;
    if (*s >= '0' && *s <= '9')
        return path_index(s, p, st, why);
    if (*s == '\'' || *s == '"')
        return path_quoted(s, p, st, why);
    *why = "expected an index or a quoted name after '['";
    return -1;
}

/* Returns member st->name of obj, or NULL. Sets *oom when decoding the
 * escapes of a long quoted name ran out of memory. */
static json_t *member(const json_t *obj, const path_step *st, bool *oom)
{
    if (!st->escaped)
        return json_object_getn(obj, st->name, st->name_len);
    char small[128];
    char *buf = st->name_len <= sizeof small ? small : malloc(st->name_len);
    if (!buf) {
        *oom = true;
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < st->name_len; i++) {
        if (st->name[i] == '\\' && i + 1 < st->name_len)
            i++;
        buf[n++] = st->name[i];
    }
    json_t *v = json_object_getn(obj, buf, n);
    if (buf != small)
        free(buf);
    return v;
}

/* Follows path (the expression after '$') from root. root NULL only checks
 * the syntax. Sets *res to the value found or NULL. Returns 0, or -1 with
 * err when the path is malformed (SL_EINVAL) or memory ran out. */
static int path_eval(const char *expr, const json_t *root, json_t **res, sl_error *err)
{
    const char *p = expr + 1;
    const json_t *cur = root;
    path_step st;
    const char *why = "";
    int r;
    while ((r = path_next(&p, &st, &why)) > 0) {
        if (!cur)
            continue;
        if (st.is_index) {
            cur = json_is_array(cur) ? json_array_get(cur, st.index) : NULL;
        } else if (json_is_object(cur)) {
            bool oom = false;
            cur = member(cur, &st, &oom);
            if (oom)
                return sl_error_set(err, SL_ENOMEM, "out of memory evaluating key \"%s\"", expr);
        } else {
            cur = NULL;
        }
    }
    if (r < 0)
        return sl_error_set(err, SL_EINVAL, "malformed key expression \"%s\": %s at column %zu",
                            expr, why, (size_t)(p - expr) + 1);
    *res = (json_t *)cur;
    return 0;
}

/* Turns the JSON value v that expr found into key text in *out (malloc'd)
 * and *len: a string as is, a number or boolean as its JSON text; null and
 * missing give NULL. Returns 0, or -1 with err: SL_EINVAL for an object or
 * an array (no key), SL_ENOMEM. */
static int json_to_key(const char *expr, const json_t *v, char **out, size_t *len, sl_error *err)
{
    char num[64];
    const char *text = NULL;
    size_t n = 0;

    switch (v ? json_typeof(v) : JSON_NULL) {
        case JSON_NULL:
            *out = NULL;
            *len = 0;
            return 0;
        case JSON_STRING:
            text = json_string_value(v);
            n = json_string_length(v);
            break;
        case JSON_INTEGER:
            snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            text = num;
            n = strlen(num);
            break;
        case JSON_REAL:
            sl_format_real(json_real_value(v), num, sizeof num);
            text = num;
            n = strlen(num);
            break;
        case JSON_TRUE:
            text = "true";
            n = 4;
            break;
        case JSON_FALSE:
            text = "false";
            n = 5;
            break;
        case JSON_OBJECT:
        case JSON_ARRAY:
            return sl_error_set(err, SL_EINVAL, "%s \"%s\" is %s, not a string, number or boolean",
                                "the key", expr, json_is_object(v) ? "an object" : "an array");
    }
    *out = dup_bytes(text, n);
    if (!*out)
        return sl_error_set(err, SL_ENOMEM, "out of memory copying a key");
    *len = n;
    return 0;
}

#define HEADER_PREFIX "header:"
#define HEADER_PREFIX_LEN (sizeof HEADER_PREFIX - 1)

/* ---- key languages implemented here: `$.json.path` and `header:NAME` ---- */

static bool json_path_accepts(const char *text)
{
    return text[0] == '$';
}

static void *json_path_compile(const char *text, const sl_conf_pos *pos, sl_error *err)
{
    json_t *unused;
    if (path_eval(text, NULL, &unused, err) < 0)
        return NULL;
    char *h = strdup(text);
    if (!h)
        sl_error_set(err, SL_ENOMEM, "out of memory");
    return h;
}

#define SCAN_MAX_STEPS 16

/* Reads the key of path expr from a body already validated as JSON with a
 * scan, no tree (lib/json_scan.h). Returns 0 with *out set (NULL when
 * missing or null), 1 when the scan cannot decide (use the tree), -1 when
 * out of memory. */
static int json_path_scan(const char *expr, const sl_msg *msg, char **out, size_t *len,
                          sl_error *err)
{
    sl_json_step steps[SCAN_MAX_STEPS];
    size_t n = 0;
    const char *p = expr + 1, *why = "";
    path_step st;
    int r;
    while ((r = path_next(&p, &st, &why)) > 0) {
        if (n == SCAN_MAX_STEPS || st.escaped)
            return 1;
        steps[n++] = (sl_json_step){st.is_index, st.index, st.name, st.name_len};
    }
    if (r < 0)
        return 1; /* the tree path reports it */
    const char *v = NULL;
    size_t vlen = 0;
    switch (sl_json_scan(msg->body, msg->body_len, steps, n, &v, &vlen)) {
        case SL_JSON_SCAN_MISSING:
            return 0;
        case SL_JSON_SCAN_FOUND:
            *out = dup_bytes(v, vlen);
            if (!*out)
                return sl_error_set(err, SL_ENOMEM, "out of memory copying a key");
            *len = vlen;
            return 0;
        case SL_JSON_SCAN_UNSURE:
        default:
            return 1;
    }
}

static int json_path_eval(void *h, sl_msg *msg, char **out, size_t *len, sl_error *err)
{
    if (!msg->json && msg->json_checked) {
        int rc = json_path_scan(h, msg, out, len, err);
        if (rc <= 0)
            return rc;
    }
    const json_t *root = sl_msg_json(msg, err);
    if (!root)
        return -1;
    json_t *v;
    if (path_eval(h, root, &v, err) < 0)
        return -1;
    return json_to_key(h, v, out, len, err);
}

const sl_expr_lang sl_expr_json_path = {
    .name = "json_path",
    .syntax = "a JSON path starting with '$'",
    .accepts = json_path_accepts,
    .compile = json_path_compile,
    .eval_key = json_path_eval,
    .free = free,
    .shared = true,
};

static bool header_accepts(const char *text)
{
    return strncmp(text, HEADER_PREFIX, HEADER_PREFIX_LEN) == 0;
}

static void *header_compile(const char *text, const sl_conf_pos *pos, sl_error *err)
{
    if (text[HEADER_PREFIX_LEN] == '\0') {
        sl_error_set(err, SL_EINVAL, "malformed key expression \"%s\": no header name", text);
        return NULL;
    }
    char *h = strdup(text + HEADER_PREFIX_LEN);
    if (!h)
        sl_error_set(err, SL_ENOMEM, "out of memory");
    return h;
}

static int header_eval(void *h, sl_msg *msg, char **out, size_t *len, sl_error *err)
{
    size_t n;
    const char *v = sl_msg_get_header(msg, h, &n);
    if (!v)
        return 0;
    *out = dup_bytes(v, n);
    if (!*out)
        return sl_error_set(err, SL_ENOMEM, "out of memory copying a key");
    *len = n;
    return 0;
}

const sl_expr_lang sl_expr_header = {
    .name = "header",
    .syntax = "\"header:NAME\"",
    .accepts = header_accepts,
    .compile = header_compile,
    .eval_key = header_eval,
    .free = free,
    .shared = true,
};

int sl_msg_key_check(const char *expr, sl_error *err)
{
    sl_expr *e = sl_expr_compile_key(expr, NULL, err);
    if (!e)
        return -1;
    sl_expr_free(e);
    return 0;
}

int sl_msg_eval_key(sl_msg *msg, const char *expr, char **out, size_t *len, sl_error *err)
{
    size_t unused_len;
    if (!len)
        len = &unused_len;
    *out = NULL;
    *len = 0;
    sl_expr *e = sl_expr_compile_key(expr, NULL, err);
    if (!e)
        return -1;
    int rc = sl_expr_eval_key(e, msg, out, len, err);
    sl_expr_free(e);
    return rc;
}
