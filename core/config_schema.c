/* Configuration loader, second stage: checks the node trees of the main file
 * and its includes against the gateway's own schema (SPEC.md section 2: keys,
 * types, connector references and roles), hands each connector, input,
 * output and step node to its type's parse callback, and fills sl_config.
 * Also the config reader (core/config.h) those callbacks use. */
#include "config_priv.h"
#include "connector.h"
#include "http_tls.h"
#include "log_backend.h"
#include "name_index.h"
#include "step.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The config reader handed to type callbacks: one load's context. */
struct sl_conf_reader {
    sl_conf_ctx *c;
    sl_config *cfg;
    sl_pool *pool;
    char defined[1024]; /* "crm, kafka, public" for reference errors */
};
typedef sl_conf_reader vctx;

/* A named definition (connector or route) and where it was written. */
typedef struct entry {
    const char *name;
    sl_conf_pos pos;
    const sl_node *node;
} entry;

static const char *const TOP_KEYS[] = {"sluice", "connectors", "routes", NULL};
static const char *const INC_KEYS[] = {"connectors", "routes", NULL};
static const char *const GW_KEYS[] = {
    "data_dir",  "data_dir_mode",    "admin",         "log",     "log_format",
    "log_level", "shutdown_timeout", "dedupe_window", "include", NULL};
static const char *const ADMIN_KEYS[] = {"listen", "token", "tls", NULL};
static const char *const LOG_KEYS[] = {
    "fsync",     "fsync_interval",  "segment_bytes", "max_disk_bytes",
    "retention", "retention_bytes", "on_corruption", NULL};
static const char *const CORRUPTION_POLICIES[] = {"skip", "stop", NULL};
static const char *const DATA_DIR_MODES[] = {"private", "group", NULL};
static const char *const FSYNC_MODES[] = {"always", "interval", "never", NULL};
static const char *const LOG_FORMATS[] = {"text", "json", NULL};
static const char *const LOG_LEVELS[] = {"debug", "info", "warn", "error", NULL};
static const char *const BREAKER_KEYS[] = {"failure_rate",         "min_calls", "window",
                                           "consecutive_failures", "open_for",  "max_open_for",
                                           "half_open_calls",      NULL};
/* The keys core reads; a type's own keys follow them (core/connector.h). */
static const char *const CONN_GENERIC_KEYS[] = {"type", NULL};
static const char *const IN_GENERIC_KEYS[] = {"connector", NULL};
static const char *const OUT_GENERIC_KEYS[] = {"connector", "name", "when", NULL};
static const char *const IN_TOPIC_KEYS[] = {"topic", NULL};
static const char *const OUT_TOPIC_KEYS[] = {"topic", "name", "when", NULL};
static const char *const ROUTE_KEYS[] = {"from",     "partitions",  "key", "steps", "to",
                                         "on_error", "description", "log", NULL};
static const char *const ROUTE_LOG_KEYS[] = {"connector", NULL};
static const char *const ON_ERROR_KEYS[] = {"retry", "dead_letter", NULL};
static const char *const RETRY_KEYS[] = {"max_attempts", "initial_backoff", "max_backoff",
                                         "multiplier", NULL};
static const char *const DLQ_KEYS[] = {"topic", NULL};

/* ---- the reader's own accessors ---- */

sl_pool *sl_conf_pool(sl_conf_reader *r)
{
    return r->pool;
}

const sl_config *sl_conf_config(const sl_conf_reader *r)
{
    return r->cfg;
}

void sl_conf_error_at(sl_conf_reader *r, sl_conf_pos pos, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        r->c->errs_oom = true;
        return;
    }
    sl_conf_error(r->c, pos, "%s", msg);
    free(msg);
}

/* ---- small helpers ---- */

int sl_conf_find_word(const char *const *list, const char *s)
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

void sl_conf_path_key(char out[SL_CONF_PATH_LEN], const char *path, const char *key)
{
    snprintf(out, SL_CONF_PATH_LEN, "%s%s%s", path, *path ? "." : "", key);
}

void sl_conf_path_index(char out[SL_CONF_PATH_LEN], const char *path, size_t i)
{
    snprintf(out, SL_CONF_PATH_LEN, "%s[%zu]", path, i);
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

void sl_conf_type_error(vctx *v, const sl_node *n, const char *path, const char *expected)
{
    char buf[256];
    sl_conf_error(v->c, n->pos, "%s: expected %s, got %s", path, expected, got(n, buf, sizeof buf));
}

void sl_conf_missing(vctx *v, const sl_node *map, const char *path, const char *key)
{
    sl_conf_error(v->c, map->pos, "%s: missing required key '%s'", path, key);
}

/* The value of key in map, or NULL when absent or written as null. */
const sl_node *sl_conf_value(const sl_node *map, const char *key)
{
    const sl_node *n = sl_node_get(map, key);
    return n && n->kind != SL_NODE_NULL ? n : NULL;
}

bool sl_conf_want_map(vctx *v, const sl_node *n, const char *path)
{
    if (n->kind == SL_NODE_MAP) {
        return true;
    }
    sl_conf_type_error(v, n, path, "a map");
    return false;
}

/* Reports every key of map that is not in allowed; where names the map. */
void sl_conf_check_keys(vctx *v, const sl_node *map, const char *where, const char *const *allowed)
{
    char list[512];
    for (size_t i = 0; i < map->n_pairs; i++) {
        if (sl_conf_find_word(allowed, map->pairs[i].key) < 0) {
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

bool sl_conf_str(vctx *v, const sl_node *map, const char *key, const char *path, char **out)
{
    const sl_node *n = sl_conf_value(map, key);
    if (!n) {
        return false;
    }
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, key);
    if (n->kind != SL_NODE_SCALAR) {
        sl_conf_type_error(v, n, p, "a string");
        return false;
    }
    *out = sl_pool_strdup(v->pool, n->scalar);
    return *out != NULL;
}

bool sl_conf_need_str(vctx *v, const sl_node *map, const char *key, const char *path, char **out)
{
    if (!sl_conf_value(map, key)) {
        sl_conf_missing(v, map, path, key);
        return false;
    }
    return sl_conf_str(v, map, key, path, out);
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

bool sl_conf_int(vctx *v, const sl_node *map, const char *key, const char *path, long min, long max,
                 int *out)
{
    const sl_node *n = sl_conf_value(map, key);
    if (!n) {
        return false;
    }
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, key);
    long x;
    if (n->kind != SL_NODE_SCALAR || !parse_long(n->scalar, &x)) {
        sl_conf_type_error(v, n, p, "an integer");
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

bool sl_conf_bool(vctx *v, const sl_node *map, const char *key, const char *path, bool *out)
{
    const sl_node *n = sl_conf_value(map, key);
    if (!n) {
        return false;
    }
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, key);
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
    sl_conf_type_error(v, n, p, "true or false");
    return false;
}

bool sl_conf_duration(vctx *v, const sl_node *map, const char *key, const char *path, uint64_t *out)
{
    const sl_node *n = sl_conf_value(map, key);
    if (!n) {
        return false;
    }
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, key);
    if (n->kind != SL_NODE_SCALAR || sl_parse_duration_ms(n->scalar, out) < 0) {
        sl_conf_type_error(v, n, p, "a duration (e.g. 500ms, 2s, 1m)");
        return false;
    }
    return true;
}

bool sl_conf_size(vctx *v, const sl_node *map, const char *key, const char *path, uint64_t *out)
{
    const sl_node *n = sl_conf_value(map, key);
    if (!n) {
        return false;
    }
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, key);
    if (n->kind != SL_NODE_SCALAR || sl_parse_size(n->scalar, out) < 0) {
        sl_conf_type_error(v, n, p, "a size (e.g. 512KiB, 1MiB)");
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
bool sl_conf_rate(vctx *v, const sl_node *map, const char *key, const char *path, double *out)
{
    const sl_node *n = sl_conf_value(map, key);
    if (!n) {
        return false;
    }
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, key);
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
        sl_conf_type_error(v, n, p, "a rate from 0% to 100% (e.g. 50% or 0.5)");
        return false;
    }
    *out = x;
    return true;
}

bool sl_conf_enum(vctx *v, const sl_node *map, const char *key, const char *path,
                  const char *const *values, int *out)
{
    const sl_node *n = sl_conf_value(map, key);
    if (!n) {
        return false;
    }
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, key);
    int i = n->kind == SL_NODE_SCALAR ? sl_conf_find_word(values, n->scalar) : -1;
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
bool sl_conf_kv(vctx *v, const sl_node *map, const char *key, const char *path, sl_kv **out,
                size_t *n_out)
{
    const sl_node *n = sl_conf_value(map, key);
    if (!n) {
        return false;
    }
    char p[SL_CONF_PATH_LEN], item[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, key);
    if (!sl_conf_want_map(v, n, p)) {
        return false;
    }
    sl_kv *kv = n->n_pairs ? sl_pool_alloc(v->pool, n->n_pairs * sizeof *kv) : NULL;
    size_t cnt = 0;
    bool ok = true;
    for (size_t i = 0; i < n->n_pairs; i++) {
        const sl_node *val = n->pairs[i].value;
        if (val->kind != SL_NODE_SCALAR) {
            sl_conf_path_key(item, p, n->pairs[i].key);
            sl_conf_type_error(v, val, item, "a string");
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
bool sl_conf_list(vctx *v, const sl_node *map, const char *key, const char *path,
                  const char *const *values, char ***out, size_t *n_out)
{
    const sl_node *n = sl_conf_value(map, key);
    if (!n) {
        return false;
    }
    char p[SL_CONF_PATH_LEN], item[SL_CONF_PATH_LEN], list[256], buf[256];
    sl_conf_path_key(p, path, key);
    if (n->kind != SL_NODE_SEQ) {
        sl_conf_type_error(v, n, p, "a list");
        return false;
    }
    char **vec = n->n_items ? sl_pool_alloc(v->pool, n->n_items * sizeof *vec) : NULL;
    size_t cnt = 0;
    bool ok = true;
    for (size_t i = 0; i < n->n_items; i++) {
        const sl_node *it = n->items[i];
        sl_conf_path_index(item, p, i);
        if (it->kind != SL_NODE_SCALAR) {
            sl_conf_type_error(v, it, item, "a string");
            ok = false;
        } else if (values && sl_conf_find_word(values, it->scalar) < 0) {
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

void sl_conf_check_listen(vctx *v, const sl_node *map, const char *path, const char *key,
                          const char *value)
{
    if (value && *value && !valid_listen(value)) {
        char p[SL_CONF_PATH_LEN];
        sl_conf_path_key(p, path, key);
        sl_conf_type_error(v, sl_conf_value(map, key), p, "HOST:PORT (e.g. 127.0.0.1:8080)");
    }
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
    if (!sl_conf_want_map(v, n, path)) {
        return;
    }
    sl_conf_check_keys(v, n, path, LOG_KEYS);
    int mode;
    if (sl_conf_enum(v, n, "fsync", path, FSYNC_MODES, &mode)) {
        static const sl_fsync_mode modes[] = {SL_FSYNC_ALWAYS, SL_FSYNC_INTERVAL, SL_FSYNC_NEVER};
        log->fsync = modes[mode];
    }
    sl_conf_duration(v, n, "fsync_interval", path, &log->fsync_interval_ms);
    uint64_t seg;
    if (sl_conf_size(v, n, "segment_bytes", path, &seg)) {
        if (seg < 4096) {
            sl_conf_error(v->c, sl_conf_value(n, "segment_bytes")->pos,
                          "sluice.log.segment_bytes: must be at least 4KiB, got '%s'",
                          sl_conf_value(n, "segment_bytes")->scalar);
        } else {
            log->segment_bytes = seg;
        }
    }
    sl_conf_size(v, n, "max_disk_bytes", path, &log->max_disk_bytes);
    sl_conf_duration(v, n, "retention", path, &log->retention_ms);
    sl_conf_size(v, n, "retention_bytes", path, &log->retention_bytes);
    if (sl_conf_enum(v, n, "on_corruption", path, CORRUPTION_POLICIES, &mode)) {
        log->on_corruption = mode == 1 ? SL_CORRUPT_STOP : SL_CORRUPT_SKIP;
    }
}

static void parse_gateway(vctx *v, const sl_node *n, sl_gateway_conf *gw)
{
    const char *path = "sluice";
    if (!sl_conf_want_map(v, n, path)) {
        return;
    }
    sl_conf_check_keys(v, n, path, GW_KEYS);
    sl_conf_str(v, n, "data_dir", path, &gw->data_dir);
    int dm;
    if (sl_conf_enum(v, n, "data_dir_mode", path, DATA_DIR_MODES, &dm)) {
        gw->log.data_mode = dm == 1 ? SL_DATA_GROUP : SL_DATA_PRIVATE;
    }
    const sl_node *admin = sl_conf_value(n, "admin");
    if (admin && sl_conf_want_map(v, admin, "sluice.admin")) {
        sl_conf_check_keys(v, admin, "sluice.admin", ADMIN_KEYS);
        if (sl_conf_str(v, admin, "listen", "sluice.admin", &gw->admin_listen)) {
            sl_conf_check_listen(v, admin, "sluice.admin", "listen", gw->admin_listen);
        }
        const sl_node *tok = sl_conf_value(admin, "token");
        const char *secret = NULL;
        if (tok != NULL && tok->kind == SL_NODE_SCALAR && tok->scalar[0] != '\0' &&
            sl_conf_secret(v, admin, "token", "sluice.admin", false, &secret))
            gw->admin_token = (char *)secret;
        sl_tls_parse(v, admin, "sluice.admin", &gw->admin_tls);
    }
    const sl_node *log = sl_conf_value(n, "log");
    if (log) {
        parse_log(v, log, &gw->log);
    }
    int i;
    if (sl_conf_enum(v, n, "log_format", path, LOG_FORMATS, &i)) {
        gw->log_format = i == 1 ? SL_LOG_JSON : SL_LOG_TEXT;
    }
    if (sl_conf_enum(v, n, "log_level", path, LOG_LEVELS, &i)) {
        gw->log_level = sl_pool_strdup(v->pool, LOG_LEVELS[i]);
    }
    sl_conf_duration(v, n, "shutdown_timeout", path, &gw->shutdown_timeout_ms);
    sl_conf_duration(v, n, "dedupe_window", path, &gw->dedupe_window_ms);
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
    const sl_node *n = sl_conf_value(conn, "breaker");
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, "breaker");
    if (!n || !sl_conf_want_map(v, n, p)) {
        return;
    }
    sl_conf_check_keys(v, n, p, BREAKER_KEYS);
    sl_conf_rate(v, n, "failure_rate", p, &b->failure_rate);
    sl_conf_int(v, n, "min_calls", p, 1, INT_MAX, &b->min_calls);
    sl_conf_int(v, n, "window", p, 1, INT_MAX, &b->window);
    sl_conf_int(v, n, "consecutive_failures", p, 0, INT_MAX, &b->consecutive_failures);
    sl_conf_duration(v, n, "open_for", p, &b->open_for_ms);
    sl_conf_duration(v, n, "max_open_for", p, &b->max_open_for_ms);
    sl_conf_int(v, n, "half_open_calls", p, 1, INT_MAX, &b->half_open_calls);
}

/* The type of a parsed connector, or NULL when it has none (a bad type). */
static const sl_connector_type *conn_type(const sl_connector_conf *cc)
{
    return cc && cc->type ? sl_connector_type_find(cc->type) : NULL;
}

/* Checks map's keys against the generic keys followed by the type's own. */
static void check_type_keys(vctx *v, const sl_node *map, const char *path,
                            const char *const *generic, const char *const *own)
{
    const char *all[64];
    size_t n = 0;
    for (size_t i = 0; generic[i] && n < 63; i++) {
        all[n++] = generic[i];
    }
    for (size_t i = 0; own && own[i] && n < 63; i++) {
        all[n++] = own[i];
    }
    all[n] = NULL;
    sl_conf_check_keys(v, map, path, all);
}

static void parse_connector(vctx *v, sl_connector_conf *cc, const entry *e)
{
    char path[SL_CONF_PATH_LEN];
    sl_conf_path_key(path, "connectors", e->name);
    cc->name = sl_pool_strdup(v->pool, e->name);
    cc->pos = e->pos;
    cc->node = e->node;
    parse_breaker(v, NULL, path, &cc->breaker);
    const sl_node *n = e->node;
    if (!sl_conf_want_map(v, n, path)) {
        return;
    }
    if (!sl_conf_need_str(v, n, "type", path, &cc->type)) {
        return;
    }
    const sl_connector_type *t = conn_type(cc);
    if (!t) {
        char list[256];
        sl_conf_error(v->c, sl_conf_value(n, "type")->pos,
                      "%s.type: unknown connector type '%s' (expected one of: %s)", path, cc->type,
                      sl_connector_type_list(list, sizeof list));
        cc->type = NULL; /* references to it are not checked further */
        return;
    }
    check_type_keys(v, n, path, CONN_GENERIC_KEYS, t->conf_keys);
    if (t->parse_conf) {
        t->parse_conf(v, cc, n, path);
    }
    if (t->has_breaker) {
        parse_breaker(v, n, path, &cc->breaker);
    }
}

/* Looks up the connector named by `connector:` in n; reports an unknown
 * name. Returns it, or NULL (then nothing more is checked). */
static const sl_connector_conf *ref_connector(vctx *v, const sl_node *n, const char *path,
                                              char **name)
{
    if (!sl_conf_str(v, n, "connector", path, name)) {
        return NULL;
    }
    const sl_connector_conf *cc = sl_config_connector(v->cfg, *name);
    if (!cc) {
        sl_conf_error(v->c, sl_conf_value(n, "connector")->pos,
                      "%s.connector: no connector named '%s' (defined: %s)", path, *name,
                      v->defined);
        return NULL;
    }
    return conn_type(cc) ? cc : NULL;
}

/* Reports a connector used in a role its type cannot play. */
static bool check_role(vctx *v, const sl_node *n, const char *path, const sl_connector_conf *cc,
                       bool ok, const char *role)
{
    if (!ok) {
        sl_conf_error(v->c, sl_conf_value(n, "connector")->pos,
                      "%s.connector: connector '%s' has type %s, which cannot be an %s", path,
                      cc->name, cc->type, role);
    }
    return ok;
}

void sl_conf_check_topic(vctx *v, const sl_node *map, const char *key, const char *path,
                         const char *name)
{
    if (name && !valid_name(name)) {
        char p[SL_CONF_PATH_LEN];
        sl_conf_path_key(p, path, key);
        sl_conf_error(v->c, sl_conf_value(map, key)->pos,
                      "%s: invalid topic name '%s' (use letters, digits, '.', '_' and '-')", p,
                      name);
    }
}

/* ---- routes: from ---- */

/* Checks that exactly one of `connector` and `topic` is set. */
static bool one_of_connector_topic(vctx *v, const sl_node *n, const char *path)
{
    bool has_conn = sl_conf_value(n, "connector") != NULL;
    bool has_topic = sl_conf_value(n, "topic") != NULL;
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

/* Parses `from:` up to the connector's own keys; returns the connector whose
 * parse_input must still run (once `to:` is parsed), or NULL. */
static const sl_connector_conf *parse_input(vctx *v, sl_input_conf *in, const sl_node *n,
                                            const char *path)
{
    in->pos = n->pos;
    in->node = n;
    if (!sl_conf_want_map(v, n, path) || !one_of_connector_topic(v, n, path)) {
        return NULL;
    }
    if (sl_conf_value(n, "topic")) {
        sl_conf_check_keys(v, n, path, IN_TOPIC_KEYS);
        if (sl_conf_str(v, n, "topic", path, &in->topic)) {
            sl_conf_check_topic(v, n, "topic", path, in->topic);
        }
        return NULL;
    }
    const sl_connector_conf *cc = ref_connector(v, n, path, &in->connector);
    const sl_connector_type *t = conn_type(cc);
    if (!t || !check_role(v, n, path, cc, t->can_input, "input")) {
        return NULL;
    }
    check_type_keys(v, n, path, IN_GENERIC_KEYS, t->input_keys);
    return cc;
}

/* ---- routes: log ---- */

/* `log: { connector: NAME, ... }`: a connector whose type can hold a
 * route's log parses the rest (core/log_backend.h). Routes chained on an
 * internal topic and `partitions:` beside it are refused: the log's own
 * partition count is its backend's. */
static void parse_route_log(vctx *v, sl_route_conf *r, const sl_node *n, const char *path)
{
    sl_route_log_conf *lc = &r->log;
    lc->pos = n->pos;
    lc->node = n;
    if (!sl_conf_want_map(v, n, path)) {
        return;
    }
    char *name = NULL;
    const sl_connector_conf *cc = ref_connector(v, n, path, &name);
    if (!cc) {
        if (!sl_conf_value(n, "connector")) {
            sl_conf_missing(v, n, path, "connector");
        }
        return;
    }
    const sl_connector_type *t = conn_type(cc);
    if (!t->log_backend) {
        sl_conf_error(v->c, sl_conf_value(n, "connector")->pos,
                      "%s.connector: connector '%s' has type %s, which cannot hold a route's log",
                      path, cc->name, cc->type);
        return;
    }
    check_type_keys(v, n, path, ROUTE_LOG_KEYS, t->log_backend->keys);
    lc->connector = name;
    const sl_connector_type *in_t =
        r->from.connector ? conn_type(sl_config_connector(v->cfg, r->from.connector)) : NULL;
    if (in_t && !in_t->feeds_external_log) {
        sl_conf_error(v->c, n->pos,
                      "%s: an input of type %s cannot feed a route whose log a connector "
                      "holds yet",
                      path, in_t->name);
    }
    if (r->from.topic) {
        sl_conf_error(v->c, n->pos, "%s: a route fed by an internal topic keeps the embedded log",
                      path);
    }
    t->log_backend->parse(v, r, cc, &lc->priv, n, path);
}

/* ---- routes: steps ---- */

/* Writes the step type names, in registry order, into buf. */
static const char *step_types(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; sl_step_registry[i] && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", sl_step_registry[i]->name);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    return buf;
}

static void parse_step(vctx *v, sl_step_conf *st, const sl_node *n, const char *path)
{
    char list[256], p[SL_CONF_PATH_LEN];
    st->pos = n->pos;
    if (n->kind != SL_NODE_MAP || n->n_pairs != 1) {
        sl_conf_error(v->c, n->pos, "%s: expected a map with exactly one step (one of: %s)", path,
                      step_types(list, sizeof list));
        return;
    }
    const sl_node_pair *kv = &n->pairs[0];
    st->pos = kv->key_pos;
    st->node = kv->value;
    const sl_step_type *t = sl_step_type_find(kv->key);
    if (!t) {
        sl_conf_error(v->c, kv->key_pos, "unknown step '%s' in %s (expected one of: %s)", kv->key,
                      path, step_types(list, sizeof list));
        return;
    }
    st->type = sl_pool_strdup(v->pool, kv->key);
    sl_conf_path_key(p, path, kv->key);
    if (t->parse_conf) {
        t->parse_conf(v, st, kv->value, p);
    }
}

int sl_step_conf_parse(const sl_step_type *t, sl_step_conf *st, const sl_node *node, sl_pool *pool,
                       sl_error *err)
{
    sl_conf_ctx c = {.pool = pool};
    vctx v = {.c = &c, .pool = pool};
    st->type = sl_pool_strdup(pool, t->name);
    st->node = node;
    if (!st->type)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (node && t->parse_conf)
        t->parse_conf(&v, st, node, t->name);
    int rc = 0;
    if (c.n_errs > 0 || c.errs_oom) {
        rc = sl_error_set(err, c.n_errs ? SL_ECONFIG : SL_ENOMEM, "%s",
                          c.n_errs ? c.errs[0].text : "out of memory");
    }
    for (size_t i = 0; i < c.n_errs; i++)
        free(c.errs[i].text);
    free(c.errs);
    return rc;
}

/* ---- routes: to ---- */

static void parse_output(vctx *v, sl_output_conf *out, const sl_node *n, const char *path)
{
    out->pos = n->pos;
    out->node = n;
    if (!sl_conf_want_map(v, n, path)) {
        return;
    }
    sl_conf_str(v, n, "name", path, &out->name);
    sl_conf_str(v, n, "when", path, &out->when);
    if (!sl_conf_value(n, "connector")) {
        if (!sl_conf_value(n, "topic")) {
            sl_conf_error(v->c, n->pos, "%s: missing required key 'connector' or 'topic'", path);
            return;
        }
        sl_conf_check_keys(v, n, path, OUT_TOPIC_KEYS);
        if (sl_conf_str(v, n, "topic", path, &out->topic)) {
            sl_conf_check_topic(v, n, "topic", path, out->topic);
            if (!out->name) {
                out->name = sl_pool_printf(v->pool, "topic:%s", out->topic);
            }
        }
        return;
    }
    const sl_connector_conf *cc = ref_connector(v, n, path, &out->connector);
    if (!out->name && out->connector) {
        out->name = sl_pool_strdup(v->pool, out->connector);
    }
    const sl_connector_type *t = conn_type(cc);
    if (!t || !check_role(v, n, path, cc, t->can_output, "output")) {
        return;
    }
    check_type_keys(v, n, path, OUT_GENERIC_KEYS, t->output_keys);
    if (t->parse_output) {
        t->parse_output(v, cc, out, n, path);
    }
}

/* ---- routes ---- */

static void parse_on_error(vctx *v, sl_route_conf *r, const sl_node *n, const char *path)
{
    char p[SL_CONF_PATH_LEN], rp[SL_CONF_PATH_LEN], dp[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, "on_error");
    if (!sl_conf_want_map(v, n, p)) {
        return;
    }
    sl_conf_check_keys(v, n, p, ON_ERROR_KEYS);
    const sl_node *retry = sl_conf_value(n, "retry");
    sl_conf_path_key(rp, p, "retry");
    if (retry && sl_conf_want_map(v, retry, rp)) {
        sl_conf_check_keys(v, retry, rp, RETRY_KEYS);
        sl_conf_int(v, retry, "max_attempts", rp, 1, INT_MAX, &r->retry.max_attempts);
        sl_conf_duration(v, retry, "initial_backoff", rp, &r->retry.initial_backoff_ms);
        sl_conf_duration(v, retry, "max_backoff", rp, &r->retry.max_backoff_ms);
        const sl_node *m = sl_conf_value(retry, "multiplier");
        if (m) {
            char mp[SL_CONF_PATH_LEN];
            sl_conf_path_key(mp, rp, "multiplier");
            double x;
            if (m->kind != SL_NODE_SCALAR || !parse_double(m->scalar, &x) || x < 1.0) {
                sl_conf_type_error(v, m, mp, "a number of at least 1 (e.g. 2 or 1.5)");
            } else {
                r->retry.multiplier = x;
            }
        }
        if (r->retry.max_backoff_ms < r->retry.initial_backoff_ms) {
            sl_conf_error(v->c, retry->pos, "%s: max_backoff must not be less than initial_backoff",
                          rp);
        }
    }
    const sl_node *dl = sl_conf_value(n, "dead_letter");
    sl_conf_path_key(dp, p, "dead_letter");
    if (dl && sl_conf_want_map(v, dl, dp)) {
        sl_conf_check_keys(v, dl, dp, DLQ_KEYS);
        if (sl_conf_need_str(v, dl, "topic", dp, &r->dead_letter_topic)) {
            sl_conf_check_topic(v, dl, "topic", dp, r->dead_letter_topic);
        }
    }
}

/* Sets the defaults of a route before its keys are read: one partition,
 * the default retry policy and the dead-letter topic NAME.dlq. */
static void route_defaults(vctx *v, sl_route_conf *r, const entry *e)
{
    r->name = sl_pool_strdup(v->pool, e->name);
    r->pos = e->pos;
    r->partitions = 1;
    r->retry.max_attempts = 10;
    r->retry.initial_backoff_ms = 100;
    r->retry.max_backoff_ms = 30000;
    r->retry.multiplier = 2.0;
    r->dead_letter_topic = sl_pool_printf(v->pool, "%s.dlq", e->name);
}

/* steps: an optional list, each item parsed by parse_step. */
static void parse_route_steps(vctx *v, sl_route_conf *r, const sl_node *n, const char *path)
{
    char p[SL_CONF_PATH_LEN];
    const sl_node *steps = sl_conf_value(n, "steps");
    sl_conf_path_key(p, path, "steps");
    if (steps && steps->kind != SL_NODE_SEQ) {
        sl_conf_type_error(v, steps, p, "a list");
    } else if (steps && steps->n_items) {
        r->steps = sl_pool_alloc(v->pool, steps->n_items * sizeof *r->steps);
        for (size_t i = 0; r->steps && i < steps->n_items; i++) {
            char ip[SL_CONF_PATH_LEN];
            sl_conf_path_index(ip, p, i);
            parse_step(v, &r->steps[i], steps->items[i], ip);
            r->n_steps++;
        }
    }
}

/* Reports output i (at path ip) when an earlier output of the list at p has
 * the same name. */
static void check_output_name(vctx *v, const sl_route_conf *r, size_t i, const char *p,
                              const char *ip)
{
    for (size_t j = 0; j < i && r->to[i].name; j++) {
        if (r->to[j].name && !strcmp(r->to[j].name, r->to[i].name)) {
            sl_conf_error(v->c, r->to[i].pos,
                          "%s: output name '%s' is already used by %s[%zu] "
                          "(set 'name' to tell them apart)",
                          ip, r->to[i].name, p, j);
            return;
        }
    }
}

/* to: a required, non-empty list of outputs with distinct names. */
static void parse_route_outputs(vctx *v, sl_route_conf *r, const sl_node *n, const char *path)
{
    char p[SL_CONF_PATH_LEN];
    const sl_node *to = sl_conf_value(n, "to");
    sl_conf_path_key(p, path, "to");
    if (!to) {
        sl_conf_missing(v, n, path, "to");
    } else if (to->kind != SL_NODE_SEQ) {
        sl_conf_type_error(v, to, p, "a list");
    } else if (!to->n_items) {
        sl_conf_error(v->c, to->pos, "%s: expected at least one output", p);
    } else {
        r->to = sl_pool_alloc(v->pool, to->n_items * sizeof *r->to);
        for (size_t i = 0; r->to && i < to->n_items; i++) {
            char ip[SL_CONF_PATH_LEN];
            sl_conf_path_index(ip, p, i);
            parse_output(v, &r->to[i], to->items[i], ip);
            r->n_to++;
            check_output_name(v, r, i, p, ip);
        }
    }
}

/* log: optional; a route with a log takes its partitions from it, so
 * `partitions:` beside it is an error. */
static void parse_route_log_key(vctx *v, sl_route_conf *r, const sl_node *n, const char *path)
{
    const sl_node *log = sl_conf_value(n, "log");
    if (!log) {
        return;
    }
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, "log");
    if (sl_conf_value(n, "partitions")) {
        sl_conf_error(v->c, sl_conf_value(n, "partitions")->pos,
                      "%s.partitions: a route with log: has the partitions of its log "
                      "(set log.partitions)",
                      path);
    }
    parse_route_log(v, r, log, p);
}

static void parse_route(vctx *v, sl_route_conf *r, const entry *e)
{
    char path[SL_CONF_PATH_LEN], p[SL_CONF_PATH_LEN];
    sl_conf_path_key(path, "routes", e->name);
    route_defaults(v, r, e);
    if (!valid_name(e->name)) {
        sl_conf_error(v->c, e->pos,
                      "invalid route name '%s' (use letters, digits, '.', '_' and '-')", e->name);
    }
    const sl_node *n = e->node;
    if (!sl_conf_want_map(v, n, path)) {
        return;
    }
    sl_conf_check_keys(v, n, path, ROUTE_KEYS);
    const sl_node *from = sl_conf_value(n, "from");
    sl_conf_path_key(p, path, "from");
    const sl_connector_conf *in_cc = NULL;
    if (from) {
        in_cc = parse_input(v, &r->from, from, p);
    } else {
        sl_conf_missing(v, n, path, "from");
    }
    sl_conf_int(v, n, "partitions", path, 1, 1024, &r->partitions);
    if (sl_conf_str(v, n, "key", path, &r->key)) {
        r->key_pos = sl_conf_value(n, "key")->pos;
    }
    char *description = NULL;
    sl_conf_str(v, n, "description", path, &description);
    parse_route_steps(v, r, n, path);
    parse_route_outputs(v, r, n, path);
    const sl_node *on_error = sl_conf_value(n, "on_error");
    if (on_error) {
        parse_on_error(v, r, on_error, path);
    }
    parse_route_log_key(v, r, n, path);
    const sl_connector_type *in_t = conn_type(in_cc);
    if (in_t && in_t->parse_input) {
        /* last: the input may cross-check the route's to: (core/connector.h) */
        in_t->parse_input(v, r, in_cc, &r->from, from, p);
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
    sl_name_index ix = {NULL, 0};
    for (size_t r = 0; r < n_roots; r++) {
        const sl_node *sec = roots[r] ? sl_conf_value(roots[r], section) : NULL;
        if (!sec) {
            continue;
        }
        if (!sl_conf_want_map(v, sec, section)) {
            continue;
        }
        for (size_t i = 0; i < sec->n_pairs; i++) {
            const sl_node_pair *kv = &sec->pairs[i];
            long at = sl_name_index_find(&ix, vec, sizeof *vec, kv->key);
            const entry *dup = at >= 0 ? &vec[at] : NULL;
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
            if (!sl_name_index_add(&ix, vec, sizeof *vec, cnt))
                v->pool->oom = true;
            cnt++;
        }
    }
    sl_name_index_free(&ix);
    *n_out = cnt;
    return vec;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Indexes the connectors by name for sl_config_connector (route checks look
 * each route's connectors up: a scan per route was quadratic). */
static void index_connectors(vctx *v)
{
    sl_config *cfg = v->cfg;
    for (size_t i = 0; i < cfg->n_connectors; i++) {
        if (!cfg->connectors[i].name)
            return; /* scanned instead */
    }
    for (size_t i = 0; i < cfg->n_connectors; i++) {
        if (!sl_name_index_add(&cfg->conn_index, cfg->connectors, sizeof *cfg->connectors, i)) {
            sl_name_index_free(&cfg->conn_index);
            v->pool->oom = true;
            return;
        }
    }
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

/* True when root has at least one key of the config's top level: a file
 * with none is not a Sluice config, and its keys are not quoted back. */
static bool has_known_top_key(const sl_node *root, bool is_main)
{
    for (size_t i = 0; i < root->n_pairs; i++) {
        if (sl_conf_find_word(is_main ? TOP_KEYS : INC_KEYS, root->pairs[i].key) >= 0 ||
            !strcmp(root->pairs[i].key, "sluice"))
            return true;
    }
    return false;
}

/* The top level of a file. A file that is not a map, or a map without one
 * known key (a password file, say), is refused without quoting any of its
 * content: an include may name any readable file. */
static void check_top(vctx *v, const sl_node *root, bool is_main)
{
    char list[128];
    const char *expected = join(is_main ? TOP_KEYS : INC_KEYS, list, sizeof list);
    if (root->kind == SL_NODE_NULL) {
        return;
    }
    if (root->kind != SL_NODE_MAP) {
        sl_conf_error(v->c, root->pos, "expected a map at the top level, got %s",
                      root->kind == SL_NODE_SEQ ? "a list" : "a scalar (not shown)");
        return;
    }
    if (!has_known_top_key(root, is_main)) {
        sl_conf_error(
            v->c, root->pos,
            "not a Sluice config: none of its %zu top-level keys (not shown) is one of: %s",
            root->n_pairs, expected);
        return;
    }
    for (size_t i = 0; i < root->n_pairs; i++) {
        const sl_node_pair *kv = &root->pairs[i];
        if (!is_main && !strcmp(kv->key, "sluice")) {
            sl_conf_error(v->c, kv->key_pos,
                          "'sluice' is only allowed in the main config file (an included file "
                          "may hold connectors and routes)");
        } else if (sl_conf_find_word(is_main ? TOP_KEYS : INC_KEYS, kv->key) < 0) {
            sl_conf_error(v->c, kv->key_pos, "unknown key '%s' %s (expected one of: %s)", kv->key,
                          is_main ? "at the top level" : "in an included file", expected);
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
    const sl_node *gw = n_roots && roots[0] ? sl_conf_value(roots[0], "sluice") : NULL;
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
    index_connectors(&v);
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

/* ---- core's own sections, for the reference (core/config_doc.c) ---- */

const sl_conf_section sl_conf_core_sections[] = {
    {"top", TOP_KEYS},
    {"include", INC_KEYS},
    {"sluice", GW_KEYS},
    {"sluice.admin", ADMIN_KEYS},
    {"sluice.log", LOG_KEYS},
    {"connector", CONN_GENERIC_KEYS},
    {"breaker", BREAKER_KEYS},
    {"route", ROUTE_KEYS},
    {"route.log", ROUTE_LOG_KEYS},
    {"from.connector", IN_GENERIC_KEYS},
    {"from.topic", IN_TOPIC_KEYS},
    {"to.connector", OUT_GENERIC_KEYS},
    {"to.topic", OUT_TOPIC_KEYS},
    {"on_error", ON_ERROR_KEYS},
    {"on_error.retry", RETRY_KEYS},
    {"on_error.dead_letter", DLQ_KEYS},
    {NULL, NULL},
};
