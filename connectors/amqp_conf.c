/* The amqp connector's config: `url`, `prefetch`, `timeout` (and `tls`,
 * read at init) on the connector, `queue`, `declare`, `bind`, `prefetch` on
 * a route's `from:`, `exchange`, `routing_key`, `persistent`, `mandatory` on
 * a `to:` element, read with the config reader. */
#include <string.h>

#include "amqp_internal.h"

const char *const sl_amqp_conf_keys[] = {"url", "prefetch", "timeout", "breaker", "tls", NULL};
const char *const sl_amqp_input_keys[] = {"queue", "declare", "bind", "prefetch", NULL};
const char *const sl_amqp_output_keys[] = {"exchange", "routing_key", "persistent", "mandatory",
                                           NULL};

static const sl_conf_doc tls_doc[] = {
    SL_DOC("ca_file", "string", NULL, "PEM file of the CAs trusted (default: the system's)"),
    SL_DOC("verify", "boolean", "true", "verify the broker's certificate and host name"),
    SL_DOC_END};
const sl_conf_doc sl_amqp_conf_doc[] = {
    SL_DOC_REQ("url", "url",
               "amqp:// or amqps:// URL of the broker (user and password may come from "
               "AMQP_USER/AMQP_PASSWORD)"),
    SL_DOC("prefetch", "integer", "256",
           "unacknowledged deliveries a consumer may hold (basic.qos), 1 to 65535"),
    SL_DOC("timeout", "duration", "5s",
           "time allowed for connecting and for a publisher confirm; then a retry"),
    SL_DOC("breaker", "breaker", NULL,
           "circuit breaker settings (see Breaker); defaults apply when absent"),
    SL_DOC_SUB("tls", "TLS settings for amqps://", tls_doc),
    SL_DOC_END};
const sl_conf_doc sl_amqp_input_doc[] = {
    SL_DOC_REQ("queue", "string", "queue consumed; a delivery is acknowledged once durable"),
    SL_DOC("declare", "any", NULL,
           "queue.declare settings (durable, exclusive, auto_delete, arguments); absent: not "
           "declared"),
    SL_DOC("bind", "any", NULL, "list of {exchange, routing_key} the queue is bound to"),
    SL_DOC("prefetch", "integer", NULL, "this consumer's prefetch, overriding the connector's"),
    SL_DOC_END};
const sl_conf_doc sl_amqp_output_doc[] = {
    SL_DOC_REQ("exchange", "string", "exchange published to (\"\" is the default exchange)"),
    SL_DOC("routing_key", "string", NULL,
           "routing key; ${header:NAME} and ${$.json.path} are expanded per message"),
    SL_DOC("persistent", "boolean", "true",
           "publish with delivery_mode 2 (survives a broker restart)"),
    SL_DOC("mandatory", "boolean", "true",
           "an unroutable message is returned and counts as a failure"),
    SL_DOC_END};

static bool has_prefix(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

void sl_amqp_parse_conf(sl_conf_reader *r, sl_connector_conf *cc, const sl_node *n,
                        const char *path)
{
    sl_amqp_conf *ac = sl_pool_alloc(sl_conf_pool(r), sizeof *ac);
    if (!ac)
        return;
    ac->prefetch = 256;
    ac->timeout_ms = 5000;
    cc->priv = ac;
    if (sl_conf_need_str(r, n, "url", path, &ac->url) && !has_prefix(ac->url, "amqp://") &&
        !has_prefix(ac->url, "amqps://")) {
        char p[SL_CONF_PATH_LEN];
        sl_conf_path_key(p, path, "url");
        sl_conf_type_error(r, sl_conf_value(n, "url"), p, "an amqp:// or amqps:// URL");
    }
    sl_conf_int(r, n, "prefetch", path, 1, 65535, &ac->prefetch);
    sl_conf_duration(r, n, "timeout", path, &ac->timeout_ms);
}

void sl_amqp_parse_input(sl_conf_reader *r, const sl_route_conf *route, const sl_connector_conf *cc,
                         sl_input_conf *in, const sl_node *n, const char *path)
{
    sl_amqp_from *af = sl_pool_alloc(sl_conf_pool(r), sizeof *af);
    if (!af)
        return;
    in->priv = af;
    sl_conf_need_str(r, n, "queue", path, &af->queue);
    char p[SL_CONF_PATH_LEN];
    const sl_node *d = sl_conf_value(n, "declare");
    sl_conf_path_key(p, path, "declare");
    if (d)
        sl_conf_want_map(r, d, p);
    const sl_node *b = sl_conf_value(n, "bind");
    sl_conf_path_key(p, path, "bind");
    if (b && b->kind != SL_NODE_SEQ)
        sl_conf_type_error(r, b, p, "a list");
    sl_conf_int(r, n, "prefetch", path, 1, 65535, &af->prefetch);
}

void sl_amqp_parse_output(sl_conf_reader *r, const sl_connector_conf *cc, sl_output_conf *out,
                          const sl_node *n, const char *path)
{
    sl_amqp_output *ao = sl_pool_alloc(sl_conf_pool(r), sizeof *ao);
    if (!ao)
        return;
    ao->persistent = true;
    ao->mandatory = true;
    out->priv = ao;
    sl_conf_need_str(r, n, "exchange", path, &ao->exchange);
    sl_conf_str(r, n, "routing_key", path, &ao->routing_key);
    sl_conf_bool(r, n, "persistent", path, &ao->persistent);
    sl_conf_bool(r, n, "mandatory", path, &ao->mandatory);
}
