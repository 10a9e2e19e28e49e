/* The http_client connector's config: `base_url`, `timeout`,
 * `max_in_flight`, `headers`, `forward_headers` (and `auth`, `tls` in
 * http_client_auth_conf.c) on the connector and `method`, `path`,
 * `headers` on a `to:` element, read with the config reader. */
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "http_client.h"
#include "http_common.h"

static const char *const METHODS[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

const char *const sl_http_client_conf_keys[] = {"base_url", "timeout", "max_in_flight",
                                                "headers",  "breaker", "forward_headers",
                                                "auth",     "tls",     NULL};
const char *const sl_http_client_output_keys[] = {"method", "path", "headers", NULL};

const sl_conf_doc sl_http_client_conf_doc[] = {
    SL_DOC_REQ("base_url", "url", "http:// or https:// URL that output paths are joined to"),
    SL_DOC("timeout", "duration", "5s",
           "time allowed for one request (connect to last byte); then a retry"),
    SL_DOC("max_in_flight", "integer", "64",
           "requests (and connections) at once across the routes using it; on a machine "
           "with several CPUs, from 32 up, split between up to 4 event loops (one per CPU), "
           "each partition's requests using one loop's share"),
    SL_DOC("headers", "map", NULL, "headers sent with every request (NAME: VALUE)"),
    SL_DOC("breaker", "breaker", NULL,
           "circuit breaker settings (see Breaker); defaults apply when absent"),
    SL_DOC("forward_headers", "list", "[traceparent, tracestate]",
           "message headers sent to the partner: names or prefixes (\"x-partner-*\"); Host, "
           "Authorization, Cookie, X-Forwarded-* and hop-by-hop headers never are"),
    SL_DOC_SUB("auth", "credentials sent on every request (docs/OUTBOUND.md)",
               sl_http_client_auth_doc),
    SL_DOC_SUB("tls", "CA and client certificate for https:// (docs/OUTBOUND.md)",
               sl_http_client_tls_doc),
    SL_DOC_END};
const sl_conf_doc sl_http_client_output_doc[] = {
    SL_DOC("method", "enum:GET|POST|PUT|PATCH|DELETE", "POST", "HTTP method of the request"),
    SL_DOC("path", "string", "\"\"", "path joined to base_url"),
    SL_DOC("headers", "map", NULL, "headers for this output, added to the connector's"),
    SL_DOC_END};

static bool has_prefix(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

/* forward_headers: a list of names or prefixes, none of which may name a
 * header that is never forwarded (a config that asks for one is wrong). */
static void parse_forward(sl_conf_reader *r, sl_http_client_conf *hc, const sl_node *n,
                          const char *path)
{
    if (!sl_conf_list(r, n, "forward_headers", path, NULL, &hc->forward, &hc->n_forward))
        return;
    hc->forward_set = true;
    const sl_node *list = sl_conf_value(n, "forward_headers");
    for (size_t i = 0; i < hc->n_forward; i++) {
        const char *f = hc->forward[i];
        size_t len = strlen(f);
        bool prefix = len > 0 && f[len - 1] == '*';
        if (len == 0 || strchr(f, ':') || strchr(f, ' ') || (prefix && len == 1)) {
            sl_conf_error_at(r, list->items[i]->pos,
                             "forward_headers: '%s' is not a header name "
                             "or a prefix such as \"x-partner-*\"",
                             f);
        } else if (!prefix && sl_http_never_forwarded(f)) {
            sl_conf_error_at(r, list->items[i]->pos,
                             "forward_headers: '%s' is never taken from "
                             "a message (set it in headers or auth instead)",
                             f);
        }
    }
}

/* Records an error when the connector has auth: and headers (at node)
 * also set Authorization: the credential is configured in one place. */
static void check_auth_header(sl_conf_reader *r, const sl_http_client_conf *hc, const sl_kv *kv,
                              size_t n, const sl_node *node)
{
    for (size_t i = 0; hc->auth.type != SL_HC_AUTH_NONE && i < n; i++) {
        if (strcasecmp(kv[i].key, "authorization") == 0)
            sl_conf_error_at(r, node->pos,
                             "headers: Authorization is set by the connector's auth; name it in "
                             "one place");
    }
}

void sl_http_client_parse_conf(sl_conf_reader *r, sl_connector_conf *cc, const sl_node *n,
                               const char *path)
{
    sl_http_client_conf *hc = sl_pool_alloc(sl_conf_pool(r), sizeof *hc);
    if (!hc)
        return;
    hc->timeout_ms = 5000;
    hc->max_in_flight = 64;
    cc->priv = hc;
    if (sl_conf_need_str(r, n, "base_url", path, &hc->base_url) &&
        !has_prefix(hc->base_url, "http://") && !has_prefix(hc->base_url, "https://")) {
        char p[SL_CONF_PATH_LEN];
        sl_conf_path_key(p, path, "base_url");
        sl_conf_type_error(r, sl_conf_value(n, "base_url"), p, "an http:// or https:// URL");
    }
    sl_conf_int(r, n, "max_in_flight", path, 1, INT_MAX, &hc->max_in_flight);
    sl_conf_kv(r, n, "headers", path, &hc->headers, &hc->n_headers);
    sl_conf_duration(r, n, "timeout", path, &hc->timeout_ms);
    parse_forward(r, hc, n, path);
    sl_http_client_parse_auth(r, hc, n, path);
    sl_http_client_parse_tls(r, hc, n, path);
    check_auth_header(r, hc, hc->headers, hc->n_headers, sl_conf_value(n, "headers"));
}

void sl_http_client_parse_output(sl_conf_reader *r, const sl_connector_conf *cc,
                                 sl_output_conf *out, const sl_node *n, const char *path)
{
    sl_pool *pool = sl_conf_pool(r);
    sl_http_client_output *ho = sl_pool_alloc(pool, sizeof *ho);
    if (!ho)
        return;
    out->priv = ho;
    ho->method = sl_pool_strdup(pool, "POST");
    ho->path = sl_pool_strdup(pool, "");
    int i;
    if (sl_conf_enum(r, n, "method", path, METHODS, &i))
        ho->method = sl_pool_strdup(pool, METHODS[i]);
    sl_conf_str(r, n, "path", path, &ho->path);
    sl_conf_kv(r, n, "headers", path, &ho->headers, &ho->n_headers);
    const sl_http_client_conf *hc = cc ? cc->priv : NULL;
    if (hc)
        check_auth_header(r, hc, ho->headers, ho->n_headers, sl_conf_value(n, "headers"));
}
