/* The admin listener: health, readiness, Prometheus metrics, route
 * inspection and steering (rewind, pause, resume) and message status, over
 * one libmicrohttpd daemon with its own epoll thread, which outlives a
 * SIGHUP reload (core/http_daemon.h: open connections stay). Every endpoint
 * but /health and /ready (open for probes) takes `Authorization: Bearer
 * TOKEN` when a token is set. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admin.h"
#include "admin_tail.h"
#include "console.h"
#include "gateway.h"
#include "crypto.h"
#include "http_daemon.h"
#include "http_tls.h"
#include "http_util.h"
#include "json_escape.h"
#include "log_json.h"
#include "logging.h"
#include "metrics.h"
#include "route.h"
#include "status.h"
#include "status_log.h"

#define ADM_COMPONENT "admin"
#define ADM_KEEP_KEY "admin.daemon" /* the daemon across a reload */
#define ADM_MAX_BODY (64 * 1024)
#define ADM_MAX_RECORDS 1000            /* records per GET .../records */
#define ADM_MAX_RECORD_BYTES (8u << 20) /* about this many bytes per answer */

struct sl_admin {
    sl_gateway *gw;
    sl_http_daemon *d; /* NULL: disabled; else attached while a runs */
    sl_gauge *log_bytes;
    sl_gauge *ready;     /* sluice_ready: what /ready answers, as 1 or 0 */
    sl_admin_tail *tail; /* pings the live tails' streams */
    const char *token;   /* NULL when no auth */
    size_t token_len;
    char bound[96];
};

/* The state of one admin request: the body of a POST. */
typedef struct adm_req {
    char *body;
    size_t len, cap;
    bool too_large;
    bool oom;
} adm_req;

/* ---- responses ------------------------------------------------------------ */

/* Queues status with body: a heap body (body_is_heap: malloc'd) is handed to
 * MHD, which frees it, even on failure; any other body is copied. */
static enum MHD_Result reply(struct MHD_Connection *conn, int status, const char *body, size_t len,
                             const char *ctype, const char *allow, bool body_is_heap)
{
    struct MHD_Response *resp;
    void *data = (void *)(uintptr_t)body; /* MHD's API is not const-correct */
    if (body_is_heap) {
        resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
        if (resp == NULL)
            free(data);
    } else {
        resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_COPY);
    }
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"sluice\"");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, int status, const char *allow,
                                   const char *error, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Answers {"error":error,"detail":...} with status. */
static enum MHD_Result reply_error(struct MHD_Connection *conn, int status, const char *allow,
                                   const char *error, const char *fmt, ...)
{
    char detail[700], body[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    size_t p = (size_t)snprintf(body, sizeof body, "{\"error\":\"%s\",\"detail\":\"", error);
    sl_json_escape_cstr(detail, strlen(detail), SL_JSON_ESC_RAW | SL_JSON_ESC_TERMINAL, body,
                        sizeof body - 4, &p);
    memcpy(body + p, "\"}", 3);
    return reply(conn, status, body, p + 2, "application/json", allow, false);
}

/* Answers root (consumed) as compact JSON. */
static enum MHD_Result reply_json(struct MHD_Connection *conn, int status, json_t *root)
{
    char *text = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (text == NULL)
        return reply_error(conn, 500, NULL, "internal", "out of memory building the answer");
    return reply(conn, status, text, strlen(text), "application/json", NULL, true);
}

/* ---- endpoints -------------------------------------------------------------- */

static enum MHD_Result ep_metrics(sl_admin *a, struct MHD_Connection *conn)
{
    size_t len = 0;
    sl_metrics *m = sl_gateway_metrics(a->gw);
    char *text = m != NULL ? sl_metrics_render(m, &len) : NULL;
    if (text == NULL)
        return reply_error(conn, 500, NULL, "internal", "cannot render the metrics");
    return reply(conn, 200, text, len, "text/plain; version=0.0.4; charset=utf-8", NULL, true);
}

/* Sums the lag of every partition of r and tells whether all are paused. */
static void route_totals(sl_route *r, int64_t *lag, bool *paused)
{
    int n = sl_route_partition_count(r);
    sl_route_partition_info info;
    *lag = 0;
    *paused = n > 0;
    for (int i = 0; i < n; i++) {
        if (sl_route_get_partition_info(r, i, &info) != 0)
            continue;
        *lag += info.lag;
        *paused = *paused && info.paused;
    }
}

static enum MHD_Result ep_routes(sl_admin *a, struct MHD_Connection *conn)
{
    json_t *list = json_array();
    json_t *root = json_pack("{s:o}", "routes", list);
    if (root == NULL)
        return reply_error(conn, 500, NULL, "internal", "out of memory");
    for (size_t i = 0; i < sl_gateway_n_routes(a->gw); i++) {
        sl_route *r = sl_gateway_route_at(a->gw, i);
        int64_t lag;
        bool paused;
        route_totals(r, &lag, &paused);
        json_t *o =
            json_pack("{s:s,s:i,s:I,s:b}", "name", sl_route_name(r), "partitions",
                      sl_route_partition_count(r), "lag", (json_int_t)lag, "paused", paused);
        if (o == NULL || json_array_append_new(list, o) != 0) {
            json_decref(root);
            return reply_error(conn, 500, NULL, "internal", "out of memory");
        }
    }
    return reply_json(conn, 200, root);
}

/* Adds to partition o whether fetching from a log a connector holds is
 * paused and why ("breaker": held while an output's breaker is open;
 * "buffer_full"), and how many records are buffered; null on the embedded
 * log. Returns 0, or -1 when out of memory. */
static int add_fetch_state(json_t *o, const sl_route_partition_info *info)
{
    bool embedded = info->buffered < 0;
    const char *by = !info->fetch_paused ? NULL : info->held ? "breaker" : "buffer_full";
    int rc = json_object_set_new(o, "fetch_paused",
                                 embedded ? json_null() : json_boolean(info->fetch_paused));
    rc |= json_object_set_new(o, "fetch_paused_by", by ? json_string(by) : json_null());
    rc |= json_object_set_new(o, "buffered", embedded ? json_null() : json_integer(info->buffered));
    return rc ? -1 : 0;
}

static enum MHD_Result ep_route(sl_admin *a, struct MHD_Connection *conn, sl_route *r)
{
    const sl_route_conf *rc = sl_route_get_conf(r);
    const char *from = rc->from.connector != NULL ? rc->from.connector : rc->from.topic;
    const sl_node *path = sl_node_get(rc->from.node, "path"); /* an input's `path:`, if any */
    json_t *parts = json_array();
    json_t *root =
        json_pack("{s:s,s:s?,s:s?,s:o}", "name", sl_route_name(r), "from", from, "path",
                  path && path->kind == SL_NODE_SCALAR ? path->scalar : NULL, "partitions", parts);
    if (root == NULL)
        return reply_error(conn, 500, NULL, "internal", "out of memory");
    int n = sl_route_partition_count(r);
    for (int i = 0; i < n; i++) {
        sl_route_partition_info info;
        if (sl_route_get_partition_info(r, i, &info) != 0)
            continue;
        json_t *o = json_pack(
            "{s:i,s:b,s:I,s:I,s:I,s:I,s:b,s:i,s:o,s:o,s:o}", "partition", info.partition,
            "assigned", info.assigned, "start_offset", (json_int_t)info.start_offset, "end_offset",
            (json_int_t)info.end_offset, "committed", (json_int_t)info.committed, "lag",
            (json_int_t)info.lag, "paused", info.paused, "attempts", info.attempts, "last_error",
            info.last_error[0] ? json_stringn_nocheck(info.last_error, strlen(info.last_error))
                               : json_null(),
            "corrupt_offset",
            info.corrupt_offset >= 0 ? json_integer(info.corrupt_offset) : json_null(),
            "corrupt_next_offset",
            info.corrupt_offset >= 0 ? json_integer(info.corrupt_next) : json_null());
        if (o == NULL || add_fetch_state(o, &info) < 0 || json_array_append_new(parts, o) != 0) {
            json_decref(root);
            return reply_error(conn, 500, NULL, "internal", "out of memory");
        }
    }
    return reply_json(conn, 200, root);
}

/* Parses a rewind body, {"offset":N} or {"timestamp":"RFC3339"}: true
 * with *offset (-1 for a timestamp), *ts_ms and the timestamp's text in ts
 * (cap bytes); false with *ret, the 4xx answer already queued. */
static bool parse_rewind(struct MHD_Connection *conn, const adm_req *q, int64_t *offset,
                         int64_t *ts_ms, char *ts, size_t cap, enum MHD_Result *ret)
{
    json_error_t jerr;
    json_t *body = json_loadb(q->body != NULL ? q->body : "", q->len, 0, &jerr);
    if (body == NULL) {
        *ret = reply_error(conn, 400, NULL, "invalid_json",
                           "expected {\"offset\":N} or {\"timestamp\":\"RFC3339\"}: %s at line %d, "
                           "column %d",
                           jerr.text, jerr.line, jerr.column);
        return false;
    }
    json_t *jo = json_object_get(body, "offset");
    json_t *jt = json_object_get(body, "timestamp");
    const char *ts_text = json_string_value(jt);
    if ((jo == NULL) == (jt == NULL) || json_object_size(body) != 1)
        *ret = reply_error(conn, 400, NULL, "bad_request",
                           "give exactly one of \"offset\" (an integer >= 0) or \"timestamp\" "
                           "(RFC 3339)");
    else if (jo != NULL && (!json_is_integer(jo) || json_integer_value(jo) < 0))
        *ret = reply_error(conn, 400, NULL, "bad_request", "\"offset\" must be an integer >= 0");
    else if (jt != NULL && (ts_text == NULL || sl_httpd_parse_rfc3339(ts_text, ts_ms) != 0))
        *ret = reply_error(conn, 400, NULL, "bad_request",
                           "\"timestamp\" must be RFC 3339, e.g. \"2024-05-01T12:00:00Z\" or "
                           "\"2024-05-01T14:00:00.250+02:00\"");
    else {
        *offset = jo != NULL ? (int64_t)json_integer_value(jo) : -1;
        snprintf(ts, cap, "%s", ts_text != NULL ? ts_text : "");
        json_decref(body);
        return true;
    }
    json_decref(body);
    return false;
}

static enum MHD_Result ep_rewind(sl_admin *a, struct MHD_Connection *conn, sl_route *r,
                                 const adm_req *q)
{
    sl_error err;
    int64_t offset = -1, ts_ms = 0;
    char ts_text[256];
    enum MHD_Result ret;
    (void)a;
    if (q->too_large)
        return reply_error(conn, 413, NULL, "payload_too_large", "the body exceeds %d bytes",
                           ADM_MAX_BODY);
    if (!parse_rewind(conn, q, &offset, &ts_ms, ts_text, sizeof ts_text, &ret))
        return ret;
    json_t *ans;
    if (offset >= 0)
        ans = json_pack("{s:s,s:I}", "route", sl_route_name(r), "rewound_to", (json_int_t)offset);
    else
        ans = json_pack("{s:s,s:s,s:I}", "route", sl_route_name(r), "rewound_to", ts_text,
                        "timestamp_ms", (json_int_t)ts_ms);
    if (ans == NULL)
        return reply_error(conn, 500, NULL, "internal", "out of memory");
    if (sl_route_rewind(r, offset, offset >= 0 ? 0 : ts_ms, &err) != 0) {
        json_decref(ans);
        int st = err.code == SL_EINVAL || err.code == SL_ENOTFOUND ? 400 : 500;
        if (st == 500)
            sl_err(ADM_COMPONENT, "rewind of route %s failed: %s", sl_route_name(r), err.msg);
        return reply_error(conn, st, NULL, st == 400 ? "bad_request" : "rewind_failed", "%s",
                           err.msg);
    }
    return reply_json(conn, 200, ans);
}

static enum MHD_Result ep_pause(struct MHD_Connection *conn, sl_route *r, bool paused)
{
    sl_route_pause(r, paused);
    return reply_json(conn, 200,
                      json_pack("{s:s,s:b}", "route", sl_route_name(r), "paused", paused));
}

static enum MHD_Result ep_message(sl_admin *a, struct MHD_Connection *conn, const char *id)
{
    sl_msg_status st;
    /* Not in memory (accepted before a restart, or forgotten): the log. */
    sl_status *status = sl_gateway_status(a->gw);
    size_t n_routes = 0;
    sl_route *const *routes = sl_gateway_routes(a->gw, &n_routes);
    if ((status == NULL || sl_status_get(status, id, &st) != 0) &&
        sl_status_from_log(sl_gateway_log(a->gw), routes, n_routes, id, &st) != 0)
        return reply_error(conn, 404, NULL, "not_found",
                           "no message %s in the status table or in the log of any route", id);
    json_t *o =
        json_pack("{s:s,s:s,s:i,s:I,s:s,s:i,s:o}", "id", st.id, "route", st.route, "partition",
                  st.partition, "offset", (json_int_t)st.offset, "state",
                  sl_msg_state_name(st.state), "attempts", st.attempts, "last_error",
                  st.last_error[0] ? json_stringn_nocheck(st.last_error, strlen(st.last_error))
                                   : json_null());
    return reply_json(conn, 200, o);
}

/* ---- dispatch ------------------------------------------------------------- */

static bool is_get(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static enum MHD_Result method_not_allowed(struct MHD_Connection *conn, const char *allow,
                                          const char *method, const char *url)
{
    return reply_error(conn, 405, allow, "method_not_allowed", "%s takes %s, not %s", url, allow,
                       method);
}

/* Checks the bearer token. Returns 0 when the request may go on, else the
 * HTTP status to answer (401 without credentials, 403 with wrong ones). */
static int check_auth(const sl_admin *a, struct MHD_Connection *conn)
{
    if (a->token == NULL)
        return 0;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (h == NULL)
        return 401;
    while (*h == ' ')
        h++;
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return 401;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n > 0 && h[n - 1] == ' ')
        n--;
    return sl_ct_equal(h, n, a->token, a->token_len) ? 0 : 403;
}

static json_t *breaker_json(sl_breaker *b)
{
    sl_breaker_info info;
    sl_breaker_get_info(b, &info);
    return json_pack("{s:s,s:s,s:i,s:I,s:I,s:i,s:I,s:I,s:I}", "connector", sl_breaker_name(b),
                     "state", sl_breaker_state_name(info.state), "state_value", (int)info.state,
                     "calls", (json_int_t)info.calls, "failures", (json_int_t)info.failures,
                     "consecutive_failures", info.consecutive_failures, "open_for_ms",
                     (json_int_t)info.open_for_ms, "retry_in_ms", (json_int_t)info.retry_in_ms,
                     "rejected", (json_int_t)info.rejected);
}

static enum MHD_Result ep_breakers(sl_admin *a, struct MHD_Connection *conn)
{
    json_t *list = json_array();
    json_t *root = json_pack("{s:o}", "breakers", list);
    if (!root)
        return reply_error(conn, 500, NULL, "internal", "out of memory");
    for (size_t i = 0; i < sl_gateway_n_connectors(a->gw); i++) {
        sl_breaker *b = sl_gateway_breaker_at(a->gw, i);
        if (b && json_array_append_new(list, breaker_json(b)) != 0) {
            json_decref(root);
            return reply_error(conn, 500, NULL, "internal", "out of memory");
        }
    }
    return reply_json(conn, 200, root);
}

/* Splits "NAME" or "NAME/ACTION" (the rest of a URL) into name and *slash
 * (pointing at "/ACTION", or NULL). Returns false when the name is empty or
 * does not fit. */
static bool split_name(const char *rest, char *name, size_t cap, const char **slash)
{
    *slash = strchr(rest, '/');
    size_t len = *slash ? (size_t)(*slash - rest) : strlen(rest);
    if (len == 0 || len >= cap)
        return false;
    memcpy(name, rest, len);
    name[len] = '\0';
    return true;
}

/* /v1/breakers/NAME[/reset] */
static enum MHD_Result dispatch_breaker(sl_admin *a, struct MHD_Connection *conn, const char *url,
                                        const char *method, const char *rest)
{
    char name[256];
    const char *slash;
    if (!split_name(rest, name, sizeof name, &slash))
        return reply_error(conn, 404, NULL, "not_found", "no such endpoint: %s", url);
    sl_breaker *b = sl_gateway_breaker(a->gw, name);
    if (!b)
        return reply_error(conn, 404, NULL, "not_found", "no breaker for connector %s", name);
    if (!slash) {
        if (!is_get(method))
            return method_not_allowed(conn, "GET", method, url);
        return reply_json(conn, 200, breaker_json(b));
    }
    if (strcmp(slash, "/reset") != 0)
        return reply_error(conn, 404, NULL, "not_found", "no such endpoint: %s", url);
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return method_not_allowed(conn, "POST", method, url);
    sl_breaker_reset(b);
    sl_info(ADM_COMPONENT, "breaker %s reset by the admin API", name);
    return reply_json(conn, 200, breaker_json(b));
}

/* text as a JSON string, or null when it is not UTF-8 (or absent). */
static json_t *text_or_null(const char *text, size_t len)
{
    json_t *s = text ? json_stringn(text, len) : NULL;
    return s ? s : json_null();
}

/* One dead letter as the list shows it. */
static json_t *dlq_entry_json(const sl_dlq_entry *e)
{
    const char *state = e->purged ? "purged" : e->redriven ? "redriven" : "pending";
    json_t *o =
        json_pack("{s:I,s:s,s:I,s:s,s:s,s:i,s:i,s:b,s:b,s:o,s:o}", "offset", (json_int_t)e->offset,
                  "id", e->id, "timestamp", (json_int_t)e->timestamp_ms, "state", state, "error",
                  e->error, "status", e->status, "attempts", e->attempts, "redriven", e->redriven,
                  "purged", e->purged, "body", text_or_null(e->body, e->body_len), "original_body",
                  text_or_null(e->original_body, e->original_len));
    if (o && e->failed_outputs[0])
        json_object_set_new(o, "failed_outputs", json_string(e->failed_outputs));
    if (o && e->failed_step[0])
        json_object_set_new(o, "failed_step", json_string(e->failed_step));
    if (o && (e->redriven || e->purged)) {
        json_object_set_new(o, e->purged ? "purged_by" : "redriven_by", json_string(e->marked_by));
        json_object_set_new(o, e->purged ? "purged_at" : "redriven_at",
                            json_integer((json_int_t)e->marked_at_ms));
    }
    return o;
}

static enum MHD_Result ep_dlq(struct MHD_Connection *conn, sl_route *r)
{
    const char *lim = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    const char *from_s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "from");
    char *end = NULL;
    long long limit = lim ? strtoll(lim, &end, 10) : 100;
    if (lim && (*end != '\0' || limit < 0 || limit > 10000))
        return reply_error(conn, 400, NULL, "bad_request", "limit must be 0..10000, got '%s'", lim);
    long long from = from_s ? strtoll(from_s, &end, 10) : 0;
    if (from_s && (*end != '\0' || from < 0))
        return reply_error(conn, 400, NULL, "bad_request", "from must be an offset >= 0");
    sl_dlq_entry *entries = NULL;
    size_t n = 0;
    int64_t pending = 0;
    sl_error err;
    if (sl_route_dlq_list(r, from, (size_t)limit, &entries, &n, &pending, &err) < 0)
        return reply_error(conn, 500, NULL, "dlq_read_failed", "%s", err.msg);
    json_t *list = json_array();
    json_t *root =
        json_pack("{s:s,s:s,s:I,s:o}", "route", sl_route_name(r), "topic", sl_route_dlq_topic(r),
                  "pending", (json_int_t)pending, "entries", list);
    for (size_t i = 0; root && i < n; i++) {
        json_t *o = dlq_entry_json(&entries[i]);
        if (!o || json_array_append_new(list, o) != 0) {
            json_decref(root);
            root = NULL;
        }
    }
    sl_dlq_entries_free(entries, n);
    if (!root)
        return reply_error(conn, 500, NULL, "internal", "out of memory");
    return reply_json(conn, 200, root);
}

/* A parsed redrive or purge request. */
typedef struct dlq_req {
    json_t *body; /* owns the id strings */
    const char **ids;
    bool *matched;
    sl_dlq_select sel;
    bool all;
} dlq_req;

static void dlq_req_free(dlq_req *d)
{
    json_decref(d->body);
    free(d->ids);
    free(d->matched);
}

/* Reads "ids" (a non-empty array of strings) into d. Returns NULL, or what
 * is wrong. */
static const char *dlq_req_ids(dlq_req *d, json_t *ids)
{
    size_t n = json_array_size(ids);
    if (!json_is_array(ids) || n == 0 || n > 10000)
        return "\"ids\" must be an array of 1..10000 message ids";
    d->ids = calloc(n, sizeof *d->ids);
    d->matched = calloc(n, sizeof *d->matched);
    if (!d->ids || !d->matched)
        return "out of memory";
    for (size_t i = 0; i < n; i++) {
        d->ids[i] = json_string_value(json_array_get(ids, i));
        if (!d->ids[i])
            return "\"ids\" must be an array of 1..10000 message ids";
    }
    d->sel.ids = d->ids;
    d->sel.n_ids = n;
    d->sel.matched = d->matched;
    return NULL;
}

/* Parses a redrive ({"ids":[...], "limit":N, "rerun":bool}, every key
 * optional) or purge ({"ids":[...]} or {"all":true}, with "limit") body.
 * Returns NULL, or what is wrong. */
static const char *dlq_req_parse(const adm_req *q, bool purge, dlq_req *d)
{
    memset(d, 0, sizeof *d);
    d->body = q->len ? json_loadb(q->body, q->len, 0, NULL) : json_object();
    if (!json_is_object(d->body))
        return "the body must be a JSON object";
    const char *key;
    json_t *v;
    json_object_foreach(d->body, key, v)
    {
        const char *bad = NULL;
        if (strcmp(key, "ids") == 0)
            bad = dlq_req_ids(d, v);
        else if (strcmp(key, "limit") == 0 && json_is_integer(v) && json_integer_value(v) > 0)
            d->sel.limit = (size_t)json_integer_value(v);
        else if (strcmp(key, "rerun") == 0 && !purge && json_is_boolean(v))
            d->sel.rerun = json_is_true(v);
        else if (strcmp(key, "all") == 0 && purge && json_is_boolean(v))
            d->all = json_is_true(v);
        else
            bad = purge ? "expected {\"ids\":[...]} or {\"all\":true}, and optionally \"limit\":N"
                        : "expected {\"ids\":[...], \"limit\":N, \"rerun\":bool} (all optional)";
        if (bad)
            return bad;
    }
    if (purge && (d->sel.n_ids > 0) == d->all)
        return "a purge takes exactly one of \"ids\":[...] or \"all\":true";
    return NULL;
}

/* POST /v1/dlq/ROUTE/redrive and /purge. */
static enum MHD_Result ep_dlq_action(struct MHD_Connection *conn, sl_route *r, bool purge,
                                     const adm_req *q)
{
    if (q->too_large)
        return reply_error(conn, 413, NULL, "payload_too_large", "the body exceeds %d bytes",
                           ADM_MAX_BODY);
    dlq_req d;
    const char *bad = dlq_req_parse(q, purge, &d);
    if (bad) {
        dlq_req_free(&d);
        return reply_error(conn, 400, NULL, "bad_request", "%s", bad);
    }
    size_t count = 0, refused = 0;
    sl_error err;
    const char *by = "admin"; /* one admin token, no names yet */
    int rc = purge ? sl_route_dlq_purge(r, &d.sel, by, &count, &err)
                   : sl_route_dlq_redrive(r, &d.sel, by, &count, &refused, &err);
    if (rc < 0) {
        dlq_req_free(&d);
        return reply_error(conn, err.code == SL_EFULL ? 503 : 500, NULL,
                           purge ? "purge_failed" : "redrive_failed", "%zu done, then: %s", count,
                           err.msg);
    }
    json_t *not_pending = json_array();
    for (size_t i = 0; i < d.sel.n_ids; i++)
        if (!d.matched[i])
            json_array_append_new(not_pending, json_string(d.ids[i]));
    json_t *root =
        json_pack("{s:s,s:I,s:o}", "route", sl_route_name(r), purge ? "purged" : "redriven",
                  (json_int_t)count, "not_pending", not_pending);
    if (root && !purge)
        json_object_set_new(root, "refused", json_integer((json_int_t)refused));
    dlq_req_free(&d);
    return reply_json(conn, 200, root);
}

/* /v1/dlq/ROUTE[/redrive|/purge] */
static enum MHD_Result dispatch_dlq(sl_admin *a, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *rest, const adm_req *q)
{
    char name[256];
    const char *slash;
    if (!split_name(rest, name, sizeof name, &slash))
        return reply_error(conn, 404, NULL, "not_found", "no such endpoint: %s", url);
    sl_route *r = sl_gateway_route(a->gw, name);
    if (!r)
        return reply_error(conn, 404, NULL, "not_found", "no route %s", name);
    if (!slash) {
        if (!is_get(method))
            return method_not_allowed(conn, "GET", method, url);
        return ep_dlq(conn, r);
    }
    bool purge = strcmp(slash, "/purge") == 0;
    if (!purge && strcmp(slash, "/redrive") != 0)
        return reply_error(conn, 404, NULL, "not_found", "no such endpoint: %s", url);
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return method_not_allowed(conn, "POST", method, url);
    return ep_dlq_action(conn, r, purge, q);
}

static enum MHD_Result dispatch_route(sl_admin *a, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *rest, const adm_req *q)
{
    char name[256];
    const char *slash = strchr(rest, '/');
    size_t nl = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    if (nl == 0 || nl >= sizeof name)
        return reply_error(conn, 404, NULL, "not_found", "no such endpoint: %s", url);
    memcpy(name, rest, nl);
    name[nl] = '\0';
    const char *action = slash != NULL ? slash + 1 : NULL;
    if (action != NULL && *action == '\0')
        action = NULL; /* "/v1/routes/NAME/" */
    bool tail = action != NULL && strcmp(action, "tail") == 0;
    if (action != NULL && !tail && strcmp(action, "rewind") != 0 && strcmp(action, "pause") != 0 &&
        strcmp(action, "resume") != 0)
        return reply_error(conn, 404, NULL, "not_found", "no such endpoint: %s", url);
    if (tail && !is_get(method))
        return method_not_allowed(conn, "GET", method, url);
    if (action == NULL && !is_get(method))
        return method_not_allowed(conn, "GET", method, url);
    if (action != NULL && !tail && strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return method_not_allowed(conn, "POST", method, url);
    sl_route *r = sl_gateway_route(a->gw, name);
    if (r == NULL)
        return reply_error(conn, 404, NULL, "not_found", "no route named %s", name);
    if (action == NULL)
        return ep_route(a, conn, r);
    if (tail)
        return sl_admin_tail_serve(a->tail, conn, r);
    if (strcmp(action, "rewind") == 0)
        return ep_rewind(a, conn, r, q);
    return ep_pause(conn, r, strcmp(action, "pause") == 0);
}

/* ---- topics (the log, read while the gateway holds it) --------------------- */

/* One topic's partitions as [{"partition":P,"start":S,"end":E}, ...]. */
static json_t *topic_partitions_json(sl_topic *t)
{
    json_t *arr = json_array();
    for (int p = 0; arr != NULL && p < sl_topic_partition_count(t); p++) {
        sl_partition *pp = sl_topic_partition(t, p);
        if (json_array_append_new(arr, json_pack("{s:i,s:I,s:I}", "partition", p, "start",
                                                 (json_int_t)sl_partition_start_offset(pp), "end",
                                                 (json_int_t)sl_partition_end_offset(pp))) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* GET /v1/topics: {"topics":[{"name":N,"partitions":[...]}, ...]}. A topic
 * that cannot be opened is listed with "error". */
static enum MHD_Result ep_topics(sl_admin *a, struct MHD_Connection *conn)
{
    sl_error err;
    char **names = NULL;
    size_t n = 0;
    if (sl_log_list_topics(sl_gateway_log(a->gw), &names, &n, &err) < 0)
        return reply_error(conn, 500, NULL, "internal", "cannot list the topics: %s", err.msg);
    json_t *topics = json_array();
    for (size_t i = 0; topics != NULL && i < n; i++) {
        sl_topic *t = sl_log_topic(sl_gateway_log(a->gw), names[i], 0, &err);
        json_t *o = t != NULL ? json_pack("{s:s,s:o}", "name", names[i], "partitions",
                                          topic_partitions_json(t))
                              : json_pack("{s:s,s:s}", "name", names[i], "error", err.msg);
        if (json_array_append_new(topics, o) != 0) {
            json_decref(topics);
            topics = NULL;
        }
    }
    sl_log_free_names(names, n);
    return reply_json(conn, 200, topics != NULL ? json_pack("{s:o}", "topics", topics) : NULL);
}

/* Reads query argument name as an integer >= 0 into *out (left as is when
 * absent). Returns false when present but not such an integer. */
static bool query_int(struct MHD_Connection *conn, const char *name, int64_t *out)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    if (v == NULL)
        return true;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0 || x < 0)
        return false;
    *out = x;
    return true;
}

/* Appends the records of batch b to out as the "records" array and the
 * offset to read next. */
static void records_body(sl_buf *out, const char *topic, int part, const sl_batch *b, int64_t next,
                         int64_t end)
{
    char tail[96];
    sl_buf_puts(out, "{\"records\":[");
    for (size_t i = 0; i < b->count; i++) {
        if (i)
            sl_buf_putc(out, ',');
        sl_log_record_json(out, topic, part, &b->records[i]);
    }
    int n = snprintf(tail, sizeof tail, "],\"next_offset\":%" PRId64 ",\"end_offset\":%" PRId64 "}",
                     next, end);
    sl_buf_put(out, tail, (size_t)n);
}

/* GET /v1/topics/TOPIC/records?partition=P&from=OFFSET&limit=N: up to N
 * (at most ADM_MAX_RECORDS, default 100) durable records from OFFSET. */
static enum MHD_Result ep_records(sl_admin *a, struct MHD_Connection *conn, const char *topic)
{
    int64_t part = 0, from = 0, limit = 100;
    if (!query_int(conn, "partition", &part) || !query_int(conn, "from", &from) ||
        !query_int(conn, "limit", &limit) || part > INT32_MAX)
        return reply_error(conn, 400, NULL, "bad_request",
                           "partition, from and limit must be integers >= 0");
    if (limit > ADM_MAX_RECORDS || limit == 0)
        limit = limit == 0 ? 1 : ADM_MAX_RECORDS;
    sl_error err;
    sl_topic *t = sl_log_topic(sl_gateway_log(a->gw), topic, 0, &err);
    if (t == NULL)
        return reply_error(conn, err.code == SL_ENOTFOUND || err.code == SL_EINVAL ? 404 : 500,
                           NULL, "not_found", "topic %s: %s", topic, err.msg);
    sl_partition *p = sl_topic_partition(t, (int)part);
    if (p == NULL)
        return reply_error(conn, 404, NULL, "not_found", "topic %s has no partition %d (it has %d)",
                           topic, (int)part, sl_topic_partition_count(t));
    sl_batch b;
    sl_batch_init(&b);
    int got = sl_partition_read(p, from, (size_t)limit, ADM_MAX_RECORD_BYTES, &b, &err);
    if (got < 0) {
        sl_batch_free(&b);
        return reply_error(conn, 500, NULL, "read_failed", "%s partition %d: %s", topic, (int)part,
                           err.msg);
    }
    sl_buf out = {0};
    int64_t next = got > 0 ? b.next_offset : from;
    if (next < sl_partition_start_offset(p))
        next = sl_partition_start_offset(p);
    records_body(&out, topic, (int)part, &b, next, sl_partition_end_offset(p));
    sl_batch_free(&b);
    char *text = sl_buf_cstr(&out);
    if (text == NULL) {
        free(out.p);
        return reply_error(conn, 500, NULL, "internal", "out of memory building the answer");
    }
    return reply(conn, 200, text, out.len, "application/json", NULL, true);
}

/* /v1/topics and /v1/topics/TOPIC/records (GET). */
static enum MHD_Result dispatch_topics(sl_admin *a, struct MHD_Connection *conn, const char *url,
                                       const char *method)
{
    const char *rest = url + 10; /* after "/v1/topics" */
    char name[256];
    const char *slash = NULL;
    if (!is_get(method))
        return method_not_allowed(conn, "GET", method, url);
    if (*rest == '\0' || strcmp(rest, "/") == 0)
        return ep_topics(a, conn);
    if (*rest != '/' || !split_name(rest + 1, name, sizeof name, &slash) || slash == NULL ||
        strcmp(slash, "/records") != 0)
        return reply_error(conn, 404, NULL, "not_found", "no such endpoint: %s", url);
    return ep_records(a, conn, name);
}

/* GET /health (the process answers) and GET /ready (ready and not
 * degraded). */
static enum MHD_Result ep_probe(sl_admin *a, struct MHD_Connection *conn, const char *url,
                                const char *method)
{
    if (!is_get(method))
        return method_not_allowed(conn, "GET", method, url);
    if (strcmp(url, "/health") == 0)
        return reply(conn, 200, "{\"status\":\"ok\"}", 15, "application/json", NULL, false);
    char why[300];
    if (!sl_gateway_ready(a->gw))
        return reply(conn, 503, "{\"status\":\"not_ready\"}", 22, "application/json", NULL, false);
    if (sl_gateway_degraded(a->gw, why, sizeof why))
        return reply_json(conn, 503, json_pack("{s:s,s:s}", "status", "degraded", "reason", why));
    return reply(conn, 200, "{\"status\":\"ready\"}", 18, "application/json", NULL, false);
}

/* The endpoints open without the token: /health and /ready (for probes:
 * Kubernetes, Docker) and the console's static files (the API calls they
 * make are not open). Returns true with *ret when url is one of them. */
static bool dispatch_open(sl_admin *a, struct MHD_Connection *conn, const char *url,
                          const char *method, enum MHD_Result *ret)
{
    if (strcmp(url, "/health") == 0 || strcmp(url, "/ready") == 0)
        *ret = ep_probe(a, conn, url, method);
    else if (strcmp(url, "/") == 0 || strncmp(url, "/console", 8) == 0)
        *ret = (enum MHD_Result)sl_console_serve(conn, url, method);
    else
        return false;
    return true;
}

/* The API behind the token. */
static enum MHD_Result dispatch_api(sl_admin *a, struct MHD_Connection *conn, const char *url,
                                    const char *method, const adm_req *q)
{
    if (strcmp(url, "/metrics") == 0) {
        if (!is_get(method))
            return method_not_allowed(conn, "GET", method, url);
        return ep_metrics(a, conn);
    }
    if (strcmp(url, "/v1/routes") == 0 || strcmp(url, "/v1/routes/") == 0) {
        if (!is_get(method))
            return method_not_allowed(conn, "GET", method, url);
        return ep_routes(a, conn);
    }
    if (strncmp(url, "/v1/routes/", 11) == 0)
        return dispatch_route(a, conn, url, method, url + 11, q);
    if (strcmp(url, "/v1/breakers") == 0 || strcmp(url, "/v1/breakers/") == 0) {
        if (!is_get(method))
            return method_not_allowed(conn, "GET", method, url);
        return ep_breakers(a, conn);
    }
    if (strncmp(url, "/v1/breakers/", 13) == 0)
        return dispatch_breaker(a, conn, url, method, url + 13);
    if (strncmp(url, "/v1/dlq/", 8) == 0)
        return dispatch_dlq(a, conn, url, method, url + 8, q);
    if (strcmp(url, "/v1/topics") == 0 || strncmp(url, "/v1/topics/", 11) == 0)
        return dispatch_topics(a, conn, url, method);
    if (strncmp(url, "/v1/messages/", 13) == 0 && url[13] != '\0' &&
        strchr(url + 13, '/') == NULL) {
        if (!is_get(method))
            return method_not_allowed(conn, "GET", method, url);
        return ep_message(a, conn, url + 13);
    }
    return reply_error(conn, 404, NULL, "not_found", "no such endpoint: %s", url);
}

static enum MHD_Result dispatch(sl_admin *a, struct MHD_Connection *conn, const char *url,
                                const char *method, const adm_req *q)
{
    enum MHD_Result ret;
    if (dispatch_open(a, conn, url, method, &ret))
        return ret;
    char subject[256];
    if (sl_tls_mutual(sl_http_daemon_tls(a->d)) &&
        sl_tls_client_subject(conn, subject, sizeof subject) != 0)
        return reply_error(conn, 401, NULL, "client_certificate_required", "%s", subject);
    int auth = check_auth(a, conn);
    if (auth == 401)
        return reply_error(conn, 401, NULL, "unauthorized",
                           "send Authorization: Bearer TOKEN (sluice.admin.token)");
    if (auth == 403)
        return reply_error(conn, 403, NULL, "forbidden", "wrong admin token");
    return dispatch_api(a, conn, url, method, q);
}

/* Dispatches the request with the generation attached to d; none (during a
 * reload): the connection is parked, and this is called again once the
 * next generation attaches. */
static enum MHD_Result dispatch_held(sl_http_daemon *d, struct MHD_Connection *conn,
                                     const char *url, const char *method, const adm_req *q)
{
    enum MHD_Result ret;
    sl_admin *a = sl_http_daemon_hold(d, conn, &ret);
    if (a == NULL)
        return ret;
    ret = dispatch(a, conn, url, method, q);
    sl_http_daemon_release(d);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    adm_req *q = *con_cls;
    (void)version;
    if (q == NULL) {
        q = calloc(1, sizeof *q);
        if (q == NULL)
            return MHD_NO;
        *con_cls = q;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (q->too_large || q->oom)
            return MHD_YES;
        if (q->len + n > ADM_MAX_BODY) {
            q->too_large = true;
            return MHD_YES;
        }
        if (q->len + n > q->cap) {
            size_t nc = q->len + n + 1024;
            char *nb = realloc(q->body, nc);
            if (nb == NULL) {
                q->oom = true;
                return MHD_YES;
            }
            q->body = nb;
            q->cap = nc;
        }
        memcpy(q->body + q->len, upload_data, n);
        q->len += n;
        return MHD_YES;
    }
    if (q->oom)
        return reply_error(conn, 500, NULL, "internal", "out of memory");
    return dispatch_held(cls, conn, url, method, q);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    adm_req *q = *con_cls;
    (void)cls;
    (void)conn;
    (void)toe;
    if (q != NULL) {
        free(q->body);
        free(q);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    sl_warn(ADM_COMPONENT, "libmicrohttpd: %s", line);
}

static double log_bytes(void *arg)
{
    return (double)sl_log_disk_bytes(arg);
}

/* 1 when /ready would answer 200 (started, inputs ready, no partition held
 * at a corrupt record), else 0. */
static double ready_gauge(void *arg)
{
    char why[300];
    return sl_gateway_ready(arg) && !sl_gateway_degraded(arg, why, sizeof why) ? 1.0 : 0.0;
}

/* ---- public --------------------------------------------------------------- */

/* MHD's connection notifications: a TLS connection is handed the current
 * credentials before its handshake and lets go of them when it closes. A
 * client certificate is asked for, not required: /health and /ready stay
 * open to probes without one; the rest checks it per request. */
static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context = sl_tls_conn_start(sl_http_daemon_tls(cls), conn, false);
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        sl_tls_conn_end(*socket_context);
}

/* The admin listening socket for where: the one the last generation handed
 * over, else a new one. Returns the fd, or -1 with err (logged). */
static int admin_listen_fd(sl_gateway *gw, const char *where, sl_error *err)
{
    int fd = sl_gateway_take_listener(gw, where);
    if (fd < 0)
        fd = sl_httpd_listen_socket(where, 64, err);
    if (fd < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        sl_error_set(err, SL_EIO, "admin listener: %s", msg);
        sl_err(ADM_COMPONENT, "%s", err->msg);
    }
    return fd;
}

/* The admin TLS credentials for settings: kept ones with the files read
 * again (a broken file keeps the running ones, logged), or the files read
 * anew. NULL without TLS (kept is then freed) or with err (logged). */
static sl_tls *admin_tls(const sl_gateway_conf *settings, sl_tls *kept, sl_error *err)
{
    if (settings->admin_tls == NULL) {
        sl_tls_free(kept);
        return NULL;
    }
    if (kept != NULL) {
        if (sl_tls_reload(kept, settings->admin_tls, err) != 0)
            sl_err(ADM_COMPONENT, "admin listener: keeping the running certificate: %s", err->msg);
        return kept;
    }
    sl_tls *t = sl_tls_load(settings->admin_tls, err);
    if (t == NULL)
        sl_err(ADM_COMPONENT, "admin listener: %s", err->msg);
    return t;
}

/* Starts the MHD daemon of d on fd (which it takes, also on failure). */
static struct MHD_Daemon *start_mhd(sl_http_daemon *d, int fd)
{
    sl_tls *tls = sl_http_daemon_tls(d);
    struct MHD_OptionItem tls_opts[8] = {{MHD_OPTION_END, 0, NULL}};
    if (tls != NULL)
        sl_tls_mhd_options(tls, tls_opts);
    struct MHD_Daemon *mhd =
        MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC |
                             MHD_ALLOW_SUSPEND_RESUME | (tls != NULL ? MHD_USE_TLS : 0),
                         0, NULL, NULL, handler, d, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, d,
                         MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, completed, d,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_NOTIFY_CONNECTION,
                         notify_connection, d, MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    if (mhd == NULL)
        close(fd);
    return mhd;
}

/* A new admin daemon for settings on fd (>= 0: the previous daemon's
 * socket; else the one the gateway kept, or a new one) with kept TLS
 * credentials (may be NULL; taken). NULL with err (logged). */
static sl_http_daemon *new_daemon(sl_gateway *gw, const sl_gateway_conf *settings, int fd,
                                  sl_tls *kept, sl_error *err)
{
    const char *where = settings->admin_listen;
    sl_tls *tls = admin_tls(settings, kept, err);
    if ((settings->admin_tls != NULL && tls == NULL) ||
        (fd < 0 && (fd = admin_listen_fd(gw, where, err)) < 0)) {
        if (fd >= 0)
            close(fd);
        sl_tls_free(tls);
        return NULL;
    }
    char bound[96];
    sl_httpd_sockname(fd, bound, sizeof bound);
    sl_http_daemon *d = sl_http_daemon_new(where, tls);
    struct MHD_Daemon *mhd = d != NULL ? start_mhd(d, fd) : NULL;
    if (mhd == NULL) {
        if (d == NULL)
            close(fd);
        sl_http_daemon_close(d, NULL, NULL);
        sl_error_set(err, SL_EIO, "admin listener: cannot start the HTTP server on %s", where);
        sl_err(ADM_COMPONENT, "%s", err->msg);
        return NULL;
    }
    sl_http_daemon_set(d, mhd, bound);
    return d;
}

/* The admin daemon: the previous generation's when it kept one on the same
 * address with TLS on or off alike (its open connections stay; the TLS
 * files are read again), else a new one (on the old one's socket when the
 * address is the same; the old one's connections are closed). NULL with
 * err (logged). */
static sl_http_daemon *admin_daemon(sl_gateway *gw, const sl_gateway_conf *settings, sl_error *err)
{
    sl_http_daemon *d = sl_gateway_take_kept(gw, ADM_KEEP_KEY);
    const char *where = settings->admin_listen;
    if (d != NULL && sl_http_daemon_fits(d, where, settings->admin_tls != NULL)) {
        if (sl_http_daemon_tls(d) != NULL)
            (void)admin_tls(settings, sl_http_daemon_tls(d), err); /* the files again */
        return d;
    }
    int fd = -1;
    sl_tls *kept = NULL;
    bool same = d != NULL && strcmp(sl_http_daemon_name(d), where) == 0;
    sl_http_daemon_close(d, &fd, &kept); /* NULL d: nothing */
    if (fd >= 0 && !same) {
        close(fd);
        fd = -1;
    }
    return new_daemon(gw, settings, fd, kept, err);
}

/* The admin's own gauges: log bytes and readiness. */
static void admin_gauges(sl_admin *a)
{
    sl_gateway *gw = a->gw;
    sl_metrics *m = sl_gateway_metrics(gw);
    if (m != NULL && sl_gateway_log(gw) != NULL)
        a->log_bytes =
            sl_metrics_gauge(m, "sluice_log_bytes", "Bytes of log segment and index files on disk",
                             "", log_bytes, sl_gateway_log(gw));
    if (m != NULL)
        a->ready = sl_metrics_gauge(m, "sluice_ready",
                                    "1 when /ready answers 200, 0 when not ready or degraded", "",
                                    ready_gauge, gw);
}

sl_admin *sl_admin_start(sl_gateway *gw, sl_error *err)
{
    const sl_gateway_conf *settings = &sl_gateway_config(gw)->gw;
    const char *where = settings->admin_listen;
    sl_admin *a = calloc(1, sizeof *a);
    if (a == NULL) {
        sl_error_set(err, SL_ENOMEM, "admin: out of memory");
        return NULL;
    }
    a->gw = gw;
    if (settings->admin_token != NULL && settings->admin_token[0] != '\0') {
        a->token = settings->admin_token;
        a->token_len = strlen(a->token);
    }
    if (where == NULL || where[0] == '\0')
        return a; /* disabled */
    a->d = admin_daemon(gw, settings, err);
    if (a->d == NULL) {
        free(a);
        return NULL;
    }
    snprintf(a->bound, sizeof a->bound, "%s", sl_http_daemon_bound(a->d));
    a->tail = sl_admin_tail_start(gw);
    admin_gauges(a);
    sl_http_daemon_attach(a->d, a); /* requests parked during a reload go on */
    sl_tls *tls = sl_http_daemon_tls(a->d);
    sl_info(ADM_COMPONENT, "admin listening on %s%s%s", a->bound,
            tls == NULL          ? ""
            : sl_tls_mutual(tls) ? " (mutual TLS)"
                                 : " (TLS)",
            a->token != NULL ? " (bearer token required)" : "");
    return a;
}

const char *sl_admin_address(const sl_admin *a)
{
    return a->bound;
}

void sl_admin_stop(sl_admin *a)
{
    if (a == NULL)
        return;
    if (a->d != NULL) {
        /* new requests wait for the next generation (reload) or the close */
        sl_http_daemon_detach(a->d, a);
        sl_admin_tail_stop(a->tail, a->gw); /* the streams end: none uses a's routes */
        /* kept for the next generation during a reload, closed otherwise */
        sl_gateway_keep(a->gw, ADM_KEEP_KEY, a->d, sl_http_daemon_drop);
    }
    if (a->log_bytes != NULL && sl_gateway_metrics(a->gw) != NULL)
        sl_metrics_remove_gauge(sl_gateway_metrics(a->gw), a->log_bytes);
    if (a->ready != NULL && sl_gateway_metrics(a->gw) != NULL)
        sl_metrics_remove_gauge(sl_gateway_metrics(a->gw), a->ready);
    free(a);
}
