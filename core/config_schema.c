/* Configuration loader, second stage: checks the node trees of the main file
 * and its includes against the schema of SPEC.md section 2 (keys, types,
 * required keys, connector references and roles) and fills sl_config. */
#include "config_priv.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PATH_LEN 512

typedef struct vctx {
    sl_conf_ctx *c;
    sl_config *cfg;
    sl_pool *pool;
    char defined[1024]; /* "crm, kafka, public" for reference errors */
} vctx;

/* A named definition (connector or route) and where it was written. */
typedef struct entry {
    const char *name;
    sl_conf_pos pos;
    const sl_node *node;
} entry;

enum { CT_AMQP, CT_FILE, CT_HTTP_CLIENT, CT_HTTP_SERVER, CT_KAFKA, CT_STDOUT, CT_UNKNOWN };

static const char *const CONN_TYPES[] = {"amqp",  "file",   "http_client", "http_server",
                                         "kafka", "stdout", NULL};
static const char *const TOP_KEYS[] = {"sluice", "connectors", "routes", NULL};
static const char *const INC_KEYS[] = {"connectors", "routes", NULL};
static const char *const GW_KEYS[] = {"data_dir",      "admin",     "log",
                                      "log_format",    "log_level", "shutdown_timeout",
                                      "dedupe_window", "include",   NULL};
static const char *const ADMIN_KEYS[] = {"listen", "token", NULL};
static const char *const LOG_KEYS[] = {
    "fsync", "fsync_interval", "segment_bytes", "max_disk_bytes", "retention", "retention_bytes",
    NULL};
static const char *const FSYNC_MODES[] = {"always", "interval", "never", NULL};
static const char *const LOG_FORMATS[] = {"text", "json", NULL};
static const char *const LOG_LEVELS[] = {"debug", "info", "warn", "error", NULL};
static const char *const BREAKER_KEYS[] = {"failure_rate",         "min_calls", "window",
                                           "consecutive_failures", "open_for",  "max_open_for",
                                           "half_open_calls",      NULL};
static const char *const CONN_KEYS[][8] = {
    [CT_AMQP] = {"type", "url", "prefetch", "timeout", "breaker", "tls", NULL},
    [CT_FILE] = {"type", "path", NULL},
    [CT_HTTP_CLIENT] = {"type", "base_url", "timeout", "max_in_flight", "headers", "breaker", NULL},
    [CT_HTTP_SERVER] = {"type", "listen", "max_body", NULL},
    [CT_KAFKA] = {"type", "brokers", "options", "timeout", "breaker", NULL},
    [CT_STDOUT] = {"type", NULL},
};
static const char *const IN_KEYS[][8] = {
    [CT_AMQP] = {"connector", "queue", "declare", "bind", "prefetch", NULL},
    [CT_FILE] = {"connector", "path", NULL},
    [CT_HTTP_SERVER] = {"connector", "path", "methods", "content_type", "reply", "sync_timeout",
                        "reply_from", NULL},
    [CT_KAFKA] = {"connector", "topics", "group", "start", NULL},
};
static const char *const IN_TOPIC_KEYS[] = {"topic", NULL};
static const char *const OUT_KEYS[][8] = {
    [CT_AMQP] = {"connector", "name", "when", "exchange", "routing_key", "persistent", "mandatory",
                 NULL},
    [CT_FILE] = {"connector", "name", "when", "path", NULL},
    [CT_HTTP_CLIENT] = {"connector", "name", "when", "method", "path", "headers", NULL},
    [CT_KAFKA] = {"connector", "name", "when", "topic", "key", NULL},
    [CT_STDOUT] = {"connector", "name", "when", NULL},
};
static const char *const OUT_TOPIC_KEYS[] = {"topic", "name", "when", NULL};
static const char *const ROUTE_KEYS[] = {"from", "partitions", "key",         "steps",
                                         "to",   "on_error",   "description", NULL};
static const char *const ON_ERROR_KEYS[] = {"retry", "dead_letter", NULL};
static const char *const RETRY_KEYS[] = {"max_attempts", "initial_backoff", "max_backoff",
                                         "multiplier", NULL};
static const char *const DLQ_KEYS[] = {"topic", NULL};
static const char *const METHODS[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
static const char *const CONTENT_TYPES[] = {"json", "xml", "text", "any", NULL};
static const char *const REPLY_MODES[] = {"async", "sync", NULL};
static const char *const KAFKA_START[] = {"earliest", "latest", NULL};
static const char *const STEP_TYPES[] = {"lua", "json_to_xml", "xml_to_json", "filter",
                                         "set", "validate",    NULL};
static const char *const LUA_KEYS[] = {"file", "function", "timeout", "memory", NULL};
static const char *const J2X_KEYS[] = {"root", "declaration", "encoding", "pretty", NULL};
static const char *const X2J_KEYS[] = {"force_array", "coerce", NULL};
static const char *const SET_KEYS[] = {"headers", "fields", NULL};
static const char *const VALIDATE_KEYS[] = {"xml_schema", "json", NULL};

/* ---- small helpers ---- */

static int find_word(const char *const *list, const char *s)
{
    for (int i = 0; list[i]; i++) {
        if (!strcmp(list[i], s)) {
            return i;
        }
    }
    return -1;
}

static const char *join(const char *const *list, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; list[i] && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", list[i]);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    return buf;
}

static void child(char *out, const char *path, const char *key)
{
    snprintf(out, PATH_LEN, "%s%s%s", path, *path ? "." : "", key);
}

static void child_idx(char *out, const char *path, size_t i)
{
    snprintf(out, PATH_LEN, "%s[%zu]", path, i);
}

/* What a node is, for "got ..." in messages. */
static const char *got(const sl_node *n, char *buf, size_t size)
{
    switch (n->kind) {
        case SL_NODE_MAP:
            return "a map";
        case SL_NODE_SEQ:
            return "a list";
        case SL_NODE_NULL:
            return "nothing";
        case SL_NODE_SCALAR:
            break;
    }
    snprintf(buf, size, "'%s'", n->scalar);
    return buf;
}

static void type_error(vctx *v, const sl_node *n, const char *path, const char *expected)
{
    char buf[256];
    sl_conf_error(v->c, n->pos, "%s: expected %s, got %s", path, expected, got(n, buf, sizeof buf));
}

static void missing(vctx *v, const sl_node *map, const char *path, const char *key)
{
    sl_conf_error(v->c, map->pos, "%s: missing required key '%s'", path, key);
}

/* The value of key in map, or NULL when absent or written as null. */
static const sl_node *get(const sl_node *map, const char *key)
{
    const sl_node *n = sl_node_get(map, key);
    return n && n->kind != SL_NODE_NULL ? n : NULL;
}

static bool want_map(vctx *v, const sl_node *n, const char *path)
{
    if (n->kind == SL_NODE_MAP) {
        return true;
    }
    type_error(v, n, path, "a map");
    return false;
}

/* Reports every key of map that is not in allowed; where names the map. */
static void check_keys(vctx *v, const sl_node *map, const char *where, const char *const *allowed)
{
    char list[512];
    for (size_t i = 0; i < map->n_pairs; i++) {
        if (find_word(allowed, map->pairs[i].key) < 0) {
            sl_conf_error(v->c, map->pairs[i].key_pos,
                          "unknown key '%s' in %s (expected one of: %s)", map->pairs[i].key, where,
                          join(allowed, list, sizeof list));
        }
    }
}

static bool valid_name(const char *s)
{
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        char ch = *s;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* ---- typed getters: absent (or null) keeps *out and returns false ---- */

static bool get_str(vctx *v, const sl_node *map, const char *key, const char *path, char **out)
{
    const sl_node *n = get(map, key);
    if (!n) {
        return false;
    }
    char p[PATH_LEN];
    child(p, path, key);
    if (n->kind != SL_NODE_SCALAR) {
        type_error(v, n, p, "a string");
        return false;
    }
    *out = sl_pool_strdup(v->pool, n->scalar);
    return *out != NULL;
}

static bool need_str(vctx *v, const sl_node *map, const char *key, const char *path, char **out)
{
    if (!get(map, key)) {
        missing(v, map, path, key);
        return false;
    }
    return get_str(v, map, key, path, out);
}

static bool parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (!*s || *end || errno || s[0] == ' ' || s[0] == '+') {
        return false;
    }
    *out = x;
    return true;
}

static bool get_int(vctx *v, const sl_node *map, const char *key, const char *path, long min,
                    long max, int *out)
{
    const sl_node *n = get(map, key);
    if (!n) {
        return false;
    }
    char p[PATH_LEN];
    child(p, path, key);
    long x;
    if (n->kind != SL_NODE_SCALAR || !parse_long(n->scalar, &x)) {
        type_error(v, n, p, "an integer");
        return false;
    }
    if (x < min || x > max) {
        if (max == INT_MAX) {
            sl_conf_error(v->c, n->pos, "%s: expected an integer of at least %ld, got '%s'", p, min,
                          n->scalar);
        } else {
            sl_conf_error(v->c, n->pos, "%s: expected an integer from %ld to %ld, got '%s'", p, min,
                          max, n->scalar);
        }
        return false;
    }
    *out = (int)x;
    return true;
}

static bool get_bool(vctx *v, const sl_node *map, const char *key, const char *path, bool *out)
{
    const sl_node *n = get(map, key);
    if (!n) {
        return false;
    }
    char p[PATH_LEN];
    child(p, path, key);
    if (n->kind == SL_NODE_SCALAR) {
        if (!strcasecmp(n->scalar, "true") || !strcasecmp(n->scalar, "yes")) {
            *out = true;
            return true;
        }
        if (!strcasecmp(n->scalar, "false") || !strcasecmp(n->scalar, "no")) {
            *out = false;
            return true;
        }
    }
    type_error(v, n, p, "true or false");
    return false;
}

static bool get_duration(vctx *v, const sl_node *map, const char *key, const char *path,
                         uint64_t *out)
{
    const sl_node *n = get(map, key);
    if (!n) {
        return false;
    }
    char p[PATH_LEN];
    child(p, path, key);
    if (n->kind != SL_NODE_SCALAR || sl_parse_duration_ms(n->scalar, out) < 0) {
        type_error(v, n, p, "a duration (e.g. 500ms, 2s, 1m)");
        return false;
    }
    return true;
}

static bool get_size(vctx *v, const sl_node *map, const char *key, const char *path, uint64_t *out)
{
    const sl_node *n = get(map, key);
    if (!n) {
        return false;
    }
    char p[PATH_LEN];
    child(p, path, key);
    if (n->kind != SL_NODE_SCALAR || sl_parse_size(n->scalar, out) < 0) {
        type_error(v, n, p, "a size (e.g. 512KiB, 1MiB)");
        return false;
    }
    return true;
}

/* A decimal number with nothing after it. */
static bool parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (!*s || *end || errno || end == s || x != x || s[0] == ' ') {
        return false;
    }
    *out = x;
    return true;
}

/* "50%" or 0.5, into 0..1. */
static bool get_rate(vctx *v, const sl_node *map, const char *key, const char *path, double *out)
{
    const sl_node *n = get(map, key);
    if (!n) {
        return false;
    }
    char p[PATH_LEN];
    child(p, path, key);
    double x = -1;
    bool ok = false;
    if (n->kind == SL_NODE_SCALAR) {
        size_t len = strlen(n->scalar);
        if (len > 1 && n->scalar[len - 1] == '%') {
            char num[64];
            if (len - 1 < sizeof num) {
                memcpy(num, n->scalar, len - 1);
                num[len - 1] = '\0';
                ok = parse_double(num, &x);
                x /= 100.0;
            }
        } else {
            ok = parse_double(n->scalar, &x);
        }
    }
    if (!ok || x < 0.0 || x > 1.0) {
        type_error(v, n, p, "a rate from 0% to 100% (e.g. 50% or 0.5)");
        return false;
    }
    *out = x;
    return true;
}

static bool get_enum(vctx *v, const sl_node *map, const char *key, const char *path,
                     const char *const *values, int *out)
{
    const sl_node *n = get(map, key);
    if (!n) {
        return false;
    }
    char p[PATH_LEN];
    child(p, path, key);
    int i = n->kind == SL_NODE_SCALAR ? find_word(values, n->scalar) : -1;
    if (i < 0) {
        char list[256], buf[256];
        sl_conf_error(v->c, n->pos, "%s: expected one of %s, got %s", p,
                      join(values, list, sizeof list), got(n, buf, sizeof buf));
        return false;
    }
    *out = i;
    return true;
}

/* A map of names to scalars (headers, kafka options, set fields). */
static bool get_kv(vctx *v, const sl_node *map, const char *key, const char *path, sl_kv **out,
                   size_t *n_out)
{
    const sl_node *n = get(map, key);
    if (!n) {
        return false;
    }
    char p[PATH_LEN], item[PATH_LEN];
    child(p, path, key);
    if (!want_map(v, n, p)) {
        return false;
    }
    sl_kv *kv = n->n_pairs ? sl_pool_alloc(v->pool, n->n_pairs * sizeof *kv) : NULL;
    size_t cnt = 0;
    bool ok = true;
    for (size_t i = 0; i < n->n_pairs; i++) {
        const sl_node *val = n->pairs[i].value;
        if (val->kind != SL_NODE_SCALAR) {
            child(item, p, n->pairs[i].key);
            type_error(v, val, item, "a string");
            ok = false;
            continue;
        }
        if (kv) {
            kv[cnt].key = sl_pool_strdup(v->pool, n->pairs[i].key);
            kv[cnt].value = sl_pool_strdup(v->pool, val->scalar);
            cnt++;
        }
    }
    *out = kv;
    *n_out = cnt;
    return ok;
}

/* A list of strings; when values is not NULL each must be one of them. */
static bool get_list(vctx *v, const sl_node *map, const char *key, const char *path,
                     const char *const *values, char ***out, size_t *n_out)
{
    const sl_node *n = get(map, key);
    if (!n) {
        return false;
    }
    char p[PATH_LEN], item[PATH_LEN], list[256], buf[256];
    child(p, path, key);
    if (n->kind != SL_NODE_SEQ) {
        type_error(v, n, p, "a list");
        return false;
    }
    char **vec = n->n_items ? sl_pool_alloc(v->pool, n->n_items * sizeof *vec) : NULL;
    size_t cnt = 0;
    bool ok = true;
    for (size_t i = 0; i < n->n_items; i++) {
        const sl_node *it = n->items[i];
        child_idx(item, p, i);
        if (it->kind != SL_NODE_SCALAR) {
            type_error(v, it, item, "a string");
            ok = false;
        } else if (values && find_word(values, it->scalar) < 0) {
            sl_conf_error(v->c, it->pos, "%s: expected one of %s, got %s", item,
                          join(values, list, sizeof list), got(it, buf, sizeof buf));
            ok = false;
        } else if (vec) {
            vec[cnt++] = sl_pool_strdup(v->pool, it->scalar);
        }
    }
    if (!ok) {
        return false;
    }
    *out = vec;
    *n_out = cnt;
    return true;
}

/* "HOST:PORT"; an empty host listens on every interface. */
static bool valid_listen(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || !colon[1] || strlen(colon + 1) > 5) {
        return false;
    }
    long port = 0;
    for (const char *d = colon + 1; *d; d++) {
        if (*d < '0' || *d > '9') {
            return false;
        }
        port = port * 10 + (*d - '0');
    }
    return port <= 65535;
}

static void check_listen(vctx *v, const sl_node *map, const char *path, const char *key,
                         const char *value)
{
    if (value && *value && !valid_listen(value)) {
        char p[PATH_LEN];
        child(p, path, key);
        type_error(v, get(map, key), p, "HOST:PORT (e.g. 127.0.0.1:8080)");
    }
}

static bool has_prefix(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

/* ---- sluice: ---- */

static void gateway_defaults(vctx *v, sl_gateway_conf *gw)
{
    gw->data_dir = sl_pool_strdup(v->pool, "./data");
    gw->admin_listen = sl_pool_strdup(v->pool, "127.0.0.1:9400");
    gw->admin_token = sl_pool_strdup(v->pool, "");
    memset(&gw->log, 0, sizeof gw->log);
    gw->log.fsync = SL_FSYNC_ALWAYS;
    gw->log.fsync_interval_ms = 10;
    gw->log.segment_bytes = 64ULL << 20;
    gw->log.max_disk_bytes = 0;
    gw->log.retention_ms = 0;
    gw->log.retention_bytes = 0;
    gw->log.index_interval_bytes = 4096;
    gw->log_format = SL_LOG_TEXT;
    gw->log_level = sl_pool_strdup(v->pool, "info");
    gw->shutdown_timeout_ms = 30000;
    gw->dedupe_window_ms = 24ULL * 3600 * 1000;
}

static void parse_log(vctx *v, const sl_node *n, sl_log_options *log)
{
    const char *path = "sluice.log";
    if (!want_map(v, n, path)) {
        return;
    }
    check_keys(v, n, path, LOG_KEYS);
    int mode;
    if (get_enum(v, n, "fsync", path, FSYNC_MODES, &mode)) {
        static const sl_fsync_mode modes[] = {SL_FSYNC_ALWAYS, SL_FSYNC_INTERVAL, SL_FSYNC_NEVER};
        log->fsync = modes[mode];
    }
    get_duration(v, n, "fsync_interval", path, &log->fsync_interval_ms);
    uint64_t seg;
    if (get_size(v, n, "segment_bytes", path, &seg)) {
        if (seg < 4096) {
            sl_conf_error(v->c, get(n, "segment_bytes")->pos,
                          "sluice.log.segment_bytes: must be at least 4KiB, got '%s'",
                          get(n, "segment_bytes")->scalar);
        } else {
            log->segment_bytes = seg;
        }
    }
    get_size(v, n, "max_disk_bytes", path, &log->max_disk_bytes);
    get_duration(v, n, "retention", path, &log->retention_ms);
    get_size(v, n, "retention_bytes", path, &log->retention_bytes);
}

static void parse_gateway(vctx *v, const sl_node *n, sl_gateway_conf *gw)
{
    const char *path = "sluice";
    if (!want_map(v, n, path)) {
        return;
    }
    check_keys(v, n, path, GW_KEYS);
    get_str(v, n, "data_dir", path, &gw->data_dir);
    const sl_node *admin = get(n, "admin");
    if (admin && want_map(v, admin, "sluice.admin")) {
        check_keys(v, admin, "sluice.admin", ADMIN_KEYS);
        if (get_str(v, admin, "listen", "sluice.admin", &gw->admin_listen)) {
            check_listen(v, admin, "sluice.admin", "listen", gw->admin_listen);
        }
        get_str(v, admin, "token", "sluice.admin", &gw->admin_token);
    }
    const sl_node *log = get(n, "log");
    if (log) {
        parse_log(v, log, &gw->log);
    }
    int i;
    if (get_enum(v, n, "log_format", path, LOG_FORMATS, &i)) {
        gw->log_format = i == 1 ? SL_LOG_JSON : SL_LOG_TEXT;
    }
    if (get_enum(v, n, "log_level", path, LOG_LEVELS, &i)) {
        gw->log_level = sl_pool_strdup(v->pool, LOG_LEVELS[i]);
    }
    get_duration(v, n, "shutdown_timeout", path, &gw->shutdown_timeout_ms);
    get_duration(v, n, "dedupe_window", path, &gw->dedupe_window_ms);
    /* include: resolved (and type-checked) by the loader in config.c. */
}

/* ---- connectors ---- */

static void parse_breaker(vctx *v, const sl_node *conn, const char *path, sl_breaker_conf *b)
{
    b->failure_rate = 0.5;
    b->min_calls = 10;
    b->window = 20;
    b->consecutive_failures = 0;
    b->open_for_ms = 10000;
    b->max_open_for_ms = 300000;
    b->half_open_calls = 3;
    const sl_node *n = get(conn, "breaker");
    char p[PATH_LEN];
    child(p, path, "breaker");
    if (!n || !want_map(v, n, p)) {
        return;
    }
    check_keys(v, n, p, BREAKER_KEYS);
    get_rate(v, n, "failure_rate", p, &b->failure_rate);
    get_int(v, n, "min_calls", p, 1, INT_MAX, &b->min_calls);
    get_int(v, n, "window", p, 1, INT_MAX, &b->window);
    get_int(v, n, "consecutive_failures", p, 0, INT_MAX, &b->consecutive_failures);
    get_duration(v, n, "open_for", p, &b->open_for_ms);
    get_duration(v, n, "max_open_for", p, &b->max_open_for_ms);
    get_int(v, n, "half_open_calls", p, 1, INT_MAX, &b->half_open_calls);
}

static int conn_type(const sl_connector_conf *cc)
{
    int t = cc && cc->type ? find_word(CONN_TYPES, cc->type) : -1;
    return t < 0 ? CT_UNKNOWN : t;
}

static void parse_connector(vctx *v, sl_connector_conf *cc, const entry *e)
{
    char path[PATH_LEN];
    child(path, "connectors", e->name);
    cc->name = sl_pool_strdup(v->pool, e->name);
    cc->pos = e->pos;
    cc->node = e->node;
    cc->max_body = 1ULL << 20;
    cc->timeout_ms = 5000;
    cc->max_in_flight = 64;
    cc->prefetch = 256;
    parse_breaker(v, NULL, path, &cc->breaker);
    const sl_node *n = e->node;
    if (!want_map(v, n, path)) {
        return;
    }
    if (!need_str(v, n, "type", path, &cc->type)) {
        return;
    }
    int t = conn_type(cc);
    if (t == CT_UNKNOWN) {
        char list[256];
        sl_conf_error(v->c, get(n, "type")->pos,
                      "%s.type: unknown connector type '%s' (expected one of: %s)", path, cc->type,
                      join(CONN_TYPES, list, sizeof list));
        cc->type = NULL; /* references to it are not checked further */
        return;
    }
    check_keys(v, n, path, CONN_KEYS[t]);
    switch (t) {
        case CT_HTTP_SERVER:
            if (need_str(v, n, "listen", path, &cc->listen)) {
                check_listen(v, n, path, "listen", cc->listen);
            }
            get_size(v, n, "max_body", path, &cc->max_body);
            break;
        case CT_HTTP_CLIENT:
            if (need_str(v, n, "base_url", path, &cc->base_url) &&
                !has_prefix(cc->base_url, "http://") && !has_prefix(cc->base_url, "https://")) {
                char p[PATH_LEN];
                child(p, path, "base_url");
                type_error(v, get(n, "base_url"), p, "an http:// or https:// URL");
            }
            get_int(v, n, "max_in_flight", path, 1, INT_MAX, &cc->max_in_flight);
            get_kv(v, n, "headers", path, &cc->headers, &cc->n_headers);
            break;
        case CT_AMQP:
            if (need_str(v, n, "url", path, &cc->url) && !has_prefix(cc->url, "amqp://") &&
                !has_prefix(cc->url, "amqps://")) {
                char p[PATH_LEN];
                child(p, path, "url");
                type_error(v, get(n, "url"), p, "an amqp:// or amqps:// URL");
            }
            get_int(v, n, "prefetch", path, 1, 65535, &cc->prefetch);
            break;
        case CT_KAFKA:
            need_str(v, n, "brokers", path, &cc->brokers);
            get_kv(v, n, "options", path, &cc->options, &cc->n_options);
            break;
        case CT_FILE:
            get_str(v, n, "path", path, &cc->path);
            break;
        default:
            break;
    }
    if (t == CT_HTTP_CLIENT || t == CT_AMQP || t == CT_KAFKA) {
        get_duration(v, n, "timeout", path, &cc->timeout_ms);
        parse_breaker(v, n, path, &cc->breaker);
    }
}

/* Looks up the connector named by `connector:` in n; reports an unknown
 * name. Returns its type, or CT_UNKNOWN (then nothing more is checked). */
static int ref_connector(vctx *v, const sl_node *n, const char *path, char **name)
{
    if (!get_str(v, n, "connector", path, name)) {
        return CT_UNKNOWN;
    }
    const sl_connector_conf *cc = sl_config_connector(v->cfg, *name);
    if (!cc) {
        sl_conf_error(v->c, get(n, "connector")->pos,
                      "%s.connector: no connector named '%s' (defined: %s)", path, *name,
                      v->defined);
        return CT_UNKNOWN;
    }
    return conn_type(cc);
}

static void check_topic_name(vctx *v, const sl_node *map, const char *key, const char *path,
                             const char *name)
{
    if (name && !valid_name(name)) {
        char p[PATH_LEN];
        child(p, path, key);
        sl_conf_error(v->c, get(map, key)->pos,
                      "%s: invalid topic name '%s' (use letters, digits, '.', '_' and '-')", p,
                      name);
    }
}

/* ---- routes: from ---- */

/* Checks that exactly one of `connector` and `topic` is set. */
static bool one_of_connector_topic(vctx *v, const sl_node *n, const char *path)
{
    bool has_conn = get(n, "connector") != NULL;
    bool has_topic = get(n, "topic") != NULL;
    if (has_conn && has_topic) {
        sl_conf_error(v->c, n->pos, "%s: expected exactly one of 'connector' or 'topic', got both",
                      path);
        return false;
    }
    if (!has_conn && !has_topic) {
        sl_conf_error(v->c, n->pos, "%s: missing required key 'connector' or 'topic'", path);
        return false;
    }
    return true;
}

static void parse_input(vctx *v, sl_input_conf *in, const sl_node *n, const char *path)
{
    in->pos = n->pos;
    in->node = n;
    in->content_type = SL_CT_ANY;
    in->sync_timeout_ms = 5000;
    in->start = sl_pool_strdup(v->pool, "earliest");
    in->methods = sl_pool_alloc(v->pool, sizeof *in->methods);
    if (in->methods) {
        in->methods[0] = sl_pool_strdup(v->pool, "POST");
        in->n_methods = 1;
    }
    if (!want_map(v, n, path) || !one_of_connector_topic(v, n, path)) {
        return;
    }
    if (get(n, "topic")) {
        check_keys(v, n, path, IN_TOPIC_KEYS);
        if (get_str(v, n, "topic", path, &in->topic)) {
            check_topic_name(v, n, "topic", path, in->topic);
        }
        return;
    }
    int t = ref_connector(v, n, path, &in->connector);
    if (t == CT_UNKNOWN) {
        return;
    }
    if (t == CT_HTTP_CLIENT || t == CT_STDOUT) {
        sl_conf_error(v->c, get(n, "connector")->pos,
                      "%s.connector: connector '%s' has type %s, which cannot be an input", path,
                      in->connector, CONN_TYPES[t]);
        return;
    }
    check_keys(v, n, path, IN_KEYS[t]);
    int i;
    switch (t) {
        case CT_HTTP_SERVER:
            if (need_str(v, n, "path", path, &in->path) && in->path[0] != '/') {
                char p[PATH_LEN];
                child(p, path, "path");
                type_error(v, get(n, "path"), p, "a path starting with '/'");
            }
            get_list(v, n, "methods", path, METHODS, &in->methods, &in->n_methods);
            if (get_enum(v, n, "content_type", path, CONTENT_TYPES, &i)) {
                static const sl_content_type cts[] = {SL_CT_JSON, SL_CT_XML, SL_CT_TEXT, SL_CT_ANY};
                in->content_type = cts[i];
            }
            if (get_enum(v, n, "reply", path, REPLY_MODES, &i)) {
                in->reply_sync = i == 1;
            }
            get_duration(v, n, "sync_timeout", path, &in->sync_timeout_ms);
            get_str(v, n, "reply_from", path, &in->reply_from);
            break;
        case CT_AMQP: {
            need_str(v, n, "queue", path, &in->queue);
            char p[PATH_LEN];
            const sl_node *d = get(n, "declare");
            child(p, path, "declare");
            if (d) {
                want_map(v, d, p);
            }
            const sl_node *b = get(n, "bind");
            child(p, path, "bind");
            if (b && b->kind != SL_NODE_SEQ) {
                type_error(v, b, p, "a list");
            }
            get_int(v, n, "prefetch", path, 1, 65535, &in->prefetch);
            break;
        }
        case CT_KAFKA:
            if (!get(n, "topics")) {
                missing(v, n, path, "topics");
            } else if (get_list(v, n, "topics", path, NULL, &in->topics, &in->n_topics) &&
                       in->n_topics == 0) {
                char p[PATH_LEN];
                child(p, path, "topics");
                sl_conf_error(v->c, get(n, "topics")->pos, "%s: expected at least one topic", p);
            }
            need_str(v, n, "group", path, &in->group);
            if (get_enum(v, n, "start", path, KAFKA_START, &i)) {
                in->start = sl_pool_strdup(v->pool, KAFKA_START[i]);
            }
            break;
        case CT_FILE: {
            const sl_connector_conf *cc = sl_config_connector(v->cfg, in->connector);
            if (!get(n, "path") && cc->path) {
                in->file_path = sl_pool_strdup(v->pool, cc->path);
            } else {
                need_str(v, n, "path", path, &in->file_path);
            }
            break;
        }
        default:
            break;
    }
}

/* ---- routes: steps ---- */

static void parse_step(vctx *v, sl_step_conf *st, const sl_node *n, const char *path)
{
    char list[256], p[PATH_LEN];
    st->pos = n->pos;
    if (n->kind != SL_NODE_MAP || n->n_pairs != 1) {
        sl_conf_error(v->c, n->pos, "%s: expected a map with exactly one step (one of: %s)", path,
                      join(STEP_TYPES, list, sizeof list));
        return;
    }
    const sl_node_pair *kv = &n->pairs[0];
    st->pos = kv->key_pos;
    st->node = kv->value;
    int t = find_word(STEP_TYPES, kv->key);
    if (t < 0) {
        sl_conf_error(v->c, kv->key_pos, "unknown step '%s' in %s (expected one of: %s)", kv->key,
                      path, join(STEP_TYPES, list, sizeof list));
        return;
    }
    st->type = sl_pool_strdup(v->pool, kv->key);
    child(p, path, kv->key);
    const sl_node *val = kv->value;
    bool is_null = val->kind == SL_NODE_NULL;
    uint64_t u;
    bool b;
    char *tmp = NULL; /* step settings stay in st->node; only their types are checked here */
    char **tmp_list = NULL;
    size_t tmp_n = 0;
    switch (t) {
        case 0: /* lua */
            if (!want_map(v, val, p)) {
                break;
            }
            check_keys(v, val, p, LUA_KEYS);
            need_str(v, val, "file", p, &tmp);
            need_str(v, val, "function", p, &tmp);
            get_duration(v, val, "timeout", p, &u);
            get_size(v, val, "memory", p, &u);
            break;
        case 1: /* json_to_xml */
            if (is_null || !want_map(v, val, p)) {
                break;
            }
            check_keys(v, val, p, J2X_KEYS);
            get_str(v, val, "root", p, &tmp);
            get_bool(v, val, "declaration", p, &b);
            get_str(v, val, "encoding", p, &tmp);
            get_bool(v, val, "pretty", p, &b);
            break;
        case 2: /* xml_to_json */
            if (is_null || !want_map(v, val, p)) {
                break;
            }
            check_keys(v, val, p, X2J_KEYS);
            get_list(v, val, "force_array", p, NULL, &tmp_list, &tmp_n);
            get_bool(v, val, "coerce", p, &b);
            break;
        case 3: /* filter */
            if (val->kind != SL_NODE_SCALAR || !*val->scalar) {
                type_error(v, val, p, "a Lua expression");
                break;
            }
            st->expr = sl_pool_strdup(v->pool, val->scalar);
            break;
        case 4: /* set */
            if (!want_map(v, val, p)) {
                break;
            }
            check_keys(v, val, p, SET_KEYS);
            if (!get(val, "headers") && !get(val, "fields")) {
                sl_conf_error(v->c, val->pos, "%s: missing required key 'headers' or 'fields'", p);
            }
            get_kv(v, val, "headers", p, &st->set_headers, &st->n_set_headers);
            get_kv(v, val, "fields", p, &st->set_fields, &st->n_set_fields);
            break;
        case 5: { /* validate */
            if (!want_map(v, val, p)) {
                break;
            }
            check_keys(v, val, p, VALIDATE_KEYS);
            bool has_xsd = get(val, "xml_schema") != NULL;
            bool has_json = get(val, "json") != NULL;
            bool json = false;
            get_str(v, val, "xml_schema", p, &tmp);
            bool json_ok = get_bool(v, val, "json", p, &json);
            if (has_xsd == has_json || (json_ok && !json)) {
                sl_conf_error(v->c, val->pos,
                              "%s: expected exactly one of 'xml_schema: FILE' or 'json: true'", p);
            }
            break;
        }
        default:
            break;
    }
}

/* ---- routes: to ---- */

static void parse_output(vctx *v, sl_output_conf *out, const sl_node *n, const char *path)
{
    out->pos = n->pos;
    out->node = n;
    out->persistent = true;
    out->mandatory = true;
    if (!want_map(v, n, path)) {
        return;
    }
    get_str(v, n, "name", path, &out->name);
    get_str(v, n, "when", path, &out->when);
    if (!get(n, "connector")) {
        if (!get(n, "topic")) {
            sl_conf_error(v->c, n->pos, "%s: missing required key 'connector' or 'topic'", path);
            return;
        }
        check_keys(v, n, path, OUT_TOPIC_KEYS);
        if (get_str(v, n, "topic", path, &out->topic)) {
            check_topic_name(v, n, "topic", path, out->topic);
            if (!out->name) {
                out->name = sl_pool_printf(v->pool, "topic:%s", out->topic);
            }
        }
        return;
    }
    int t = ref_connector(v, n, path, &out->connector);
    if (!out->name && out->connector) {
        out->name = sl_pool_strdup(v->pool, out->connector);
    }
    if (t == CT_UNKNOWN) {
        return;
    }
    if (t == CT_HTTP_SERVER) {
        sl_conf_error(v->c, get(n, "connector")->pos,
                      "%s.connector: connector '%s' has type %s, which cannot be an output", path,
                      out->connector, CONN_TYPES[t]);
        return;
    }
    check_keys(v, n, path, OUT_KEYS[t]);
    int i;
    switch (t) {
        case CT_HTTP_CLIENT:
            out->method = sl_pool_strdup(v->pool, "POST");
            out->path = sl_pool_strdup(v->pool, "");
            if (get_enum(v, n, "method", path, METHODS, &i)) {
                out->method = sl_pool_strdup(v->pool, METHODS[i]);
            }
            get_str(v, n, "path", path, &out->path);
            get_kv(v, n, "headers", path, &out->headers, &out->n_headers);
            break;
        case CT_AMQP:
            need_str(v, n, "exchange", path, &out->exchange);
            get_str(v, n, "routing_key", path, &out->routing_key);
            get_bool(v, n, "persistent", path, &out->persistent);
            get_bool(v, n, "mandatory", path, &out->mandatory);
            break;
        case CT_KAFKA:
            if (need_str(v, n, "topic", path, &out->topic)) {
                check_topic_name(v, n, "topic", path, out->topic);
            }
            get_str(v, n, "key", path, &out->key);
            break;
        case CT_FILE: {
            const sl_connector_conf *cc = sl_config_connector(v->cfg, out->connector);
            if (!get_str(v, n, "path", path, &out->path) && !get(n, "path")) {
                if (cc && cc->path) {
                    out->path = sl_pool_strdup(v->pool, cc->path);
                } else {
                    sl_conf_error(v->c, n->pos,
                                  "%s: missing required key 'path' (connector '%s' has no path)",
                                  path, out->connector);
                }
            }
            break;
        }
        default:
            break;
    }
}

/* ---- routes ---- */

static void parse_on_error(vctx *v, sl_route_conf *r, const sl_node *n, const char *path)
{
    char p[PATH_LEN], rp[PATH_LEN], dp[PATH_LEN];
    child(p, path, "on_error");
    if (!want_map(v, n, p)) {
        return;
    }
    check_keys(v, n, p, ON_ERROR_KEYS);
    const sl_node *retry = get(n, "retry");
    child(rp, p, "retry");
    if (retry && want_map(v, retry, rp)) {
        check_keys(v, retry, rp, RETRY_KEYS);
        get_int(v, retry, "max_attempts", rp, 1, INT_MAX, &r->retry.max_attempts);
        get_duration(v, retry, "initial_backoff", rp, &r->retry.initial_backoff_ms);
        get_duration(v, retry, "max_backoff", rp, &r->retry.max_backoff_ms);
        const sl_node *m = get(retry, "multiplier");
        if (m) {
            char mp[PATH_LEN];
            child(mp, rp, "multiplier");
            double x;
            if (m->kind != SL_NODE_SCALAR || !parse_double(m->scalar, &x) || x < 1.0) {
                type_error(v, m, mp, "a number of at least 1 (e.g. 2 or 1.5)");
            } else {
                r->retry.multiplier = x;
            }
        }
        if (r->retry.max_backoff_ms < r->retry.initial_backoff_ms) {
            sl_conf_error(v->c, retry->pos, "%s: max_backoff must not be less than initial_backoff",
                          rp);
        }
    }
    const sl_node *dl = get(n, "dead_letter");
    child(dp, p, "dead_letter");
    if (dl && want_map(v, dl, dp)) {
        check_keys(v, dl, dp, DLQ_KEYS);
        if (need_str(v, dl, "topic", dp, &r->dead_letter_topic)) {
            check_topic_name(v, dl, "topic", dp, r->dead_letter_topic);
        }
    }
}

static void parse_route(vctx *v, sl_route_conf *r, const entry *e)
{
    char path[PATH_LEN], p[PATH_LEN];
    child(path, "routes", e->name);
    r->name = sl_pool_strdup(v->pool, e->name);
    r->pos = e->pos;
    r->partitions = 1;
    r->retry.max_attempts = 10;
    r->retry.initial_backoff_ms = 100;
    r->retry.max_backoff_ms = 30000;
    r->retry.multiplier = 2.0;
    r->dead_letter_topic = sl_pool_printf(v->pool, "%s.dlq", e->name);
    if (!valid_name(e->name)) {
        sl_conf_error(v->c, e->pos,
                      "invalid route name '%s' (use letters, digits, '.', '_' and '-')", e->name);
    }
    const sl_node *n = e->node;
    if (!want_map(v, n, path)) {
        return;
    }
    check_keys(v, n, path, ROUTE_KEYS);
    const sl_node *from = get(n, "from");
    child(p, path, "from");
    if (from) {
        parse_input(v, &r->from, from, p);
    } else {
        missing(v, n, path, "from");
    }
    get_int(v, n, "partitions", path, 1, 1024, &r->partitions);
    get_str(v, n, "key", path, &r->key);
    char *description = NULL;
    get_str(v, n, "description", path, &description);
    const sl_node *steps = get(n, "steps");
    child(p, path, "steps");
    if (steps && steps->kind != SL_NODE_SEQ) {
        type_error(v, steps, p, "a list");
    } else if (steps && steps->n_items) {
        r->steps = sl_pool_alloc(v->pool, steps->n_items * sizeof *r->steps);
        for (size_t i = 0; r->steps && i < steps->n_items; i++) {
            char ip[PATH_LEN];
            child_idx(ip, p, i);
            parse_step(v, &r->steps[i], steps->items[i], ip);
            r->n_steps++;
        }
    }
    const sl_node *to = get(n, "to");
    child(p, path, "to");
    if (!to) {
        missing(v, n, path, "to");
    } else if (to->kind != SL_NODE_SEQ) {
        type_error(v, to, p, "a list");
    } else if (!to->n_items) {
        sl_conf_error(v->c, to->pos, "%s: expected at least one output", p);
    } else {
        r->to = sl_pool_alloc(v->pool, to->n_items * sizeof *r->to);
        for (size_t i = 0; r->to && i < to->n_items; i++) {
            char ip[PATH_LEN];
            child_idx(ip, p, i);
            parse_output(v, &r->to[i], to->items[i], ip);
            r->n_to++;
            for (size_t j = 0; j < i && r->to[i].name; j++) {
                if (r->to[j].name && !strcmp(r->to[j].name, r->to[i].name)) {
                    sl_conf_error(v->c, r->to[i].pos,
                                  "%s: output name '%s' is already used by %s[%zu] "
                                  "(set 'name' to tell them apart)",
                                  ip, r->to[i].name, p, j);
                    break;
                }
            }
        }
    }
    const sl_node *on_error = get(n, "on_error");
    if (on_error) {
        parse_on_error(v, r, on_error, path);
    }
    if (r->from.reply_from) {
        bool found = false;
        for (size_t i = 0; i < r->n_to && !found; i++) {
            found = r->to[i].name && !strcmp(r->to[i].name, r->from.reply_from);
        }
        if (!found) {
            sl_conf_error(v->c, get(from, "reply_from")->pos,
                          "%s.from.reply_from: no output named '%s' in this route", path,
                          r->from.reply_from);
        }
    }
}

/* ---- top level ---- */

/* Gathers `section:` of every root into a malloc'd vector, reporting names
 * defined twice. */
static entry *collect(vctx *v, sl_node *const *roots, size_t n_roots, const char *section,
                      size_t *n_out)
{
    entry *vec = NULL;
    size_t cnt = 0, cap = 0;
    for (size_t r = 0; r < n_roots; r++) {
        const sl_node *sec = roots[r] ? get(roots[r], section) : NULL;
        if (!sec) {
            continue;
        }
        if (!want_map(v, sec, section)) {
            continue;
        }
        for (size_t i = 0; i < sec->n_pairs; i++) {
            const sl_node_pair *kv = &sec->pairs[i];
            const entry *dup = NULL;
            for (size_t j = 0; j < cnt && !dup; j++) {
                dup = !strcmp(vec[j].name, kv->key) ? &vec[j] : NULL;
            }
            if (dup) {
                sl_conf_error(v->c, kv->key_pos, "%s.%s: already defined at %s:%d:%d", section,
                              kv->key, dup->pos.file, dup->pos.line, dup->pos.col);
                continue;
            }
            if (cnt == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                entry *nv = realloc(vec, ncap * sizeof *nv);
                if (!nv) {
                    v->pool->oom = true;
                    break;
                }
                vec = nv;
                cap = ncap;
            }
            vec[cnt].name = kv->key;
            vec[cnt].pos = kv->key_pos;
            vec[cnt].node = kv->value;
            cnt++;
        }
    }
    *n_out = cnt;
    return vec;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fills v->defined with the sorted connector names. */
static void list_connectors(vctx *v)
{
    const sl_config *cfg = v->cfg;
    const char **names = cfg->n_connectors ? calloc(cfg->n_connectors + 1, sizeof *names) : NULL;
    size_t n = 0;
    for (size_t i = 0; names && i < cfg->n_connectors; i++) {
        if (cfg->connectors[i].name) {
            names[n++] = cfg->connectors[i].name;
        }
    }
    if (!n) {
        snprintf(v->defined, sizeof v->defined, "none");
    } else {
        qsort(names, n, sizeof *names, cmp_str);
        join(names, v->defined, sizeof v->defined);
    }
    free(names);
}

static void check_top(vctx *v, const sl_node *root, bool is_main)
{
    char list[128];
    if (root->kind == SL_NODE_NULL) {
        return;
    }
    if (root->kind != SL_NODE_MAP) {
        char buf[256];
        sl_conf_error(v->c, root->pos, "expected a map at the top level, got %s",
                      got(root, buf, sizeof buf));
        return;
    }
    for (size_t i = 0; i < root->n_pairs; i++) {
        const sl_node_pair *kv = &root->pairs[i];
        if (!is_main && !strcmp(kv->key, "sluice")) {
            sl_conf_error(v->c, kv->key_pos,
                          "'sluice' is only allowed in the main config file (an included file "
                          "may hold connectors and routes)");
        } else if (find_word(is_main ? TOP_KEYS : INC_KEYS, kv->key) < 0) {
            sl_conf_error(v->c, kv->key_pos, "unknown key '%s' %s (expected one of: %s)", kv->key,
                          is_main ? "at the top level" : "in an included file",
                          join(is_main ? TOP_KEYS : INC_KEYS, list, sizeof list));
        }
    }
}

void sl_conf_validate(sl_conf_ctx *c, sl_config *cfg, sl_node *const *roots, size_t n_roots)
{
    vctx v = {.c = c, .cfg = cfg, .pool = c->pool};
    gateway_defaults(&v, &cfg->gw);
    for (size_t i = 0; i < n_roots; i++) {
        if (roots[i]) {
            check_top(&v, roots[i], i == 0);
        }
    }
    const sl_node *gw = n_roots && roots[0] ? get(roots[0], "sluice") : NULL;
    if (gw) {
        parse_gateway(&v, gw, &cfg->gw);
    }
    /* Only the main file may hold sluice:, so only its root is a real source
     * of connectors and routes, plus the includes. */
    size_t n_conn = 0, n_routes = 0;
    entry *conns = collect(&v, roots, n_roots, "connectors", &n_conn);
    entry *routes = collect(&v, roots, n_roots, "routes", &n_routes);
    if (n_conn) {
        cfg->connectors = sl_pool_alloc(v.pool, n_conn * sizeof *cfg->connectors);
        for (size_t i = 0; cfg->connectors && i < n_conn; i++) {
            parse_connector(&v, &cfg->connectors[i], &conns[i]);
            cfg->n_connectors++;
        }
    }
    list_connectors(&v);
    if (n_routes) {
        cfg->routes = sl_pool_alloc(v.pool, n_routes * sizeof *cfg->routes);
        for (size_t i = 0; cfg->routes && i < n_routes; i++) {
            parse_route(&v, &cfg->routes[i], &routes[i]);
            cfg->n_routes++;
        }
    }
    free(conns);
    free(routes);
}
