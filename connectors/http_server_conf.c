/* The http_server connector's config: `listen`, `max_body` on the connector
 * and `path`, `methods`, `content_type`, `reply`, `sync_timeout`,
 * `reply_from` on a route's `from:`, read with the config reader. */
#include <string.h>
#include <strings.h>

#include "http_server.h"
#include "http_server_paths.h"

static const char *const METHODS[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
static const char *const CONTENT_TYPES[] = {"json", "xml", "text", "any", NULL};
static const char *const REPLY_MODES[] = {"async", "sync", NULL};

const char *const sl_http_server_conf_keys[] = {"listen",
                                                "max_body",
                                                "max_connections",
                                                "max_connections_per_client",
                                                "header_timeout",
                                                "body_timeout",
                                                "idle_timeout",
                                                "max_headers",
                                                "tls",
                                                NULL};
const char *const sl_http_server_input_keys[] = {"path",       "methods",      "content_type",
                                                 "reply",      "sync_timeout", "reply_from",
                                                 "rate_limit", "auth",         NULL};

const sl_conf_doc sl_http_server_conf_doc[] = {
    SL_DOC_REQ("listen", "listen",
               "HOST:PORT the ingest listener binds (empty host: every interface)"),
    SL_DOC("max_body", "size", "1MiB", "largest request body accepted; a larger one gets 413"),
    SL_DOC("max_connections", "integer", "2048",
           "open connections in total; more are closed at once (counted)"),
    SL_DOC("max_connections_per_client", "integer", "256",
           "open connections from one client address; more are closed at once (counted)"),
    SL_DOC("header_timeout", "duration", "10s",
           "time from accept (TLS handshake included) to the last request header; bytes arriving "
           "do not extend it; then the connection is closed"),
    SL_DOC("body_timeout", "duration", "30s",
           "time from the last header to the end of the body; then the connection is closed"),
    SL_DOC("idle_timeout", "duration", "60s",
           "an idle keep-alive connection is closed after this (the next request's headers must "
           "arrive within idle_timeout + header_timeout)"),
    SL_DOC("max_headers", "integer", "100",
           "request headers allowed; more get 431 (their total size is bounded at 32 KiB)"),
    SL_DOC_SUB("tls", "HTTPS for this listener (plain HTTP when absent); see docs/SECURITY.md",
               sl_tls_doc),
    SL_DOC_END};
const sl_conf_doc sl_http_server_input_doc[] = {
    SL_DOC_REQ("path", "string", "URL path this route answers, starting with '/'"),
    SL_DOC("methods", "list", "[POST]",
           "HTTP methods accepted (GET, POST, PUT, PATCH, DELETE); others get 405"),
    SL_DOC("content_type", "enum:json|xml|text|any", "any",
           "Content-Type required (json: application/json or +json, xml: application/xml, "
           "text/xml or +xml, text: text/*), else 415; a json body must parse, else 400"),
    SL_DOC("reply", "enum:async|sync", "async",
           "async: 202 once durable; sync: wait for the outputs and answer with the result"),
    SL_DOC("sync_timeout", "duration", "5s",
           "reply: sync: answer 504 after this (the message stays in custody)"),
    SL_DOC("reply_from", "string", NULL,
           "reply: sync: answer with this output's partner response (an http_client output, by "
           "name): its 2xx status, body and Content-Type; 502 when the message is dead-lettered; "
           "504 after sync_timeout (still delivered). Without it: 200 with the message after the "
           "steps"),
    SL_DOC_SUB("rate_limit",
               "token bucket; a request over it gets 429 with Retry-After (counted by reason)",
               hl_rate_doc),
    SL_DOC("auth", "list", NULL,
           "authentication: a list of {type: bearer|api_key|basic|hmac|mtls, ...}; one entry "
           "accepting is enough; else 401 (403: a verified identity not allowed); see "
           "docs/SECURITY.md"),
    SL_DOC_END};

void sl_http_server_parse_conf(sl_conf_reader *r, sl_connector_conf *cc, const sl_node *n,
                               const char *path)
{
    sl_http_server_conf *hc = sl_pool_alloc(sl_conf_pool(r), sizeof *hc);
    if (!hc)
        return;
    hc->max_body = 1ULL << 20;
    cc->priv = hc;
    if (sl_conf_need_str(r, n, "listen", path, &hc->listen))
        sl_conf_check_listen(r, n, path, "listen", hc->listen);
    sl_conf_size(r, n, "max_body", path, &hc->max_body);
    hl_parse_conf(r, n, path, &hc->limits);
    sl_tls_parse(r, n, path, &hc->tls);
}

/* Reports a reply_from that names no output of the route, or one that
 * cannot answer (a topic, or a connector type without can_reply). */
static void check_reply_from(sl_conf_reader *r, const sl_route_conf *route, const sl_node *n,
                             const char *path, const char *reply_from)
{
    sl_conf_pos pos = sl_conf_value(n, "reply_from")->pos;
    for (size_t i = 0; i < route->n_to; i++) {
        const sl_output_conf *o = &route->to[i];
        if (!o->name || strcmp(o->name, reply_from) != 0)
            continue;
        const sl_connector_conf *cc =
            o->connector ? sl_config_connector(sl_conf_config(r), o->connector) : NULL;
        const sl_connector_type *t = cc && cc->type ? sl_connector_type_find(cc->type) : NULL;
        if (!t || !t->can_reply)
            sl_conf_error_at(r, pos,
                             "%s.reply_from: output '%s' cannot answer (%s); name an HTTP "
                             "output (http_client)",
                             path, reply_from,
                             !o->connector ? "a topic output"
                             : t           ? t->name
                                           : "unknown connector");
        return;
    }
    sl_conf_error_at(r, pos, "%s.reply_from: no output named '%s' in this route", path, reply_from);
}

/* Refuses a method and path that an earlier route on the same connector
 * already takes (the gateway could not tell them apart). */
static void check_unique(sl_conf_reader *r, const sl_route_conf *route, const sl_connector_conf *cc,
                         const sl_http_server_input *hi, const sl_node *n, const char *path)
{
    sl_http_server_conf *hc = cc->priv;
    const char *m = NULL;
    const sl_route_conf *o =
        hc ? sl_hs_paths_claim(&hc->paths, sl_conf_pool(r), route, hi, &m) : NULL;
    if (o) {
        sl_conf_error_at(r, sl_conf_value(n, "path")->pos,
                         "%s.path: %s %s on connector '%s' is already taken by route '%s' "
                         "(%s:%d:%d)",
                         path, m, hi->path, cc->name, o->name, o->from.pos.file, o->from.pos.line,
                         o->from.pos.col);
    }
}

void sl_http_server_parse_input(sl_conf_reader *r, const sl_route_conf *route,
                                const sl_connector_conf *cc, sl_input_conf *in, const sl_node *n,
                                const char *path)
{
    sl_pool *pool = sl_conf_pool(r);
    sl_http_server_input *hi = sl_pool_alloc(pool, sizeof *hi);
    if (!hi)
        return;
    in->priv = hi;
    hi->content_type = SL_CT_ANY;
    hi->sync_timeout_ms = 5000;
    hi->methods = sl_pool_alloc(pool, sizeof *hi->methods);
    if (hi->methods) {
        hi->methods[0] = sl_pool_strdup(pool, "POST");
        hi->n_methods = 1;
    }
    if (sl_conf_need_str(r, n, "path", path, &hi->path) && hi->path[0] != '/') {
        char p[SL_CONF_PATH_LEN];
        sl_conf_path_key(p, path, "path");
        sl_conf_type_error(r, sl_conf_value(n, "path"), p, "a path starting with '/'");
    }
    bool methods_ok = !sl_conf_value(n, "methods") ||
                      sl_conf_list(r, n, "methods", path, METHODS, &hi->methods, &hi->n_methods);
    int i;
    if (sl_conf_enum(r, n, "content_type", path, CONTENT_TYPES, &i)) {
        static const sl_content_type cts[] = {SL_CT_JSON, SL_CT_XML, SL_CT_TEXT, SL_CT_ANY};
        hi->content_type = cts[i];
    }
    if (sl_conf_enum(r, n, "reply", path, REPLY_MODES, &i))
        hi->reply_sync = i == 1;
    sl_conf_duration(r, n, "sync_timeout", path, &hi->sync_timeout_ms);
    if (sl_conf_str(r, n, "reply_from", path, &hi->reply_from)) {
        check_reply_from(r, route, n, path, hi->reply_from);
        if (!hi->reply_sync)
            sl_conf_error_at(r, sl_conf_value(n, "reply_from")->pos,
                             "%s.reply_from: needs reply: sync", path);
    }
    hl_parse_rate(r, n, path, &hi->rate_limit);
    ha_parse(r, n, path, &hi->auth);
    if (methods_ok && hi->path && hi->path[0] == '/')
        check_unique(r, route, cc, hi, n, path);
}
