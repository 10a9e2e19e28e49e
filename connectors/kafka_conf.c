/* The kafka connector's config: `brokers`, `options`, `timeout` on the
 * connector, `topics`, `group`, `start` on a route's `from:`, `topic`, `key`
 * on a `to:` element, read with the config reader. */
#include "kafka_internal.h"

static const char *const KAFKA_START[] = {"earliest", "latest", NULL};

const char *const sl_kafka_conf_keys[] = {"brokers", "options", "timeout", "breaker", NULL};
const char *const sl_kafka_input_keys[] = {"topics", "group", "start", NULL};
const char *const sl_kafka_output_keys[] = {"topic", "key", NULL};

const sl_conf_doc sl_kafka_conf_doc[] = {
    SL_DOC_REQ("brokers", "string", "bootstrap brokers, comma-separated HOST:PORT"),
    SL_DOC("options", "map", NULL,
           "librdkafka properties passed as written (e.g. compression.type: lz4)"),
    SL_DOC("timeout", "duration", "5s",
           "time allowed for a produce to be acknowledged; then a retry"),
    SL_DOC("breaker", "breaker", NULL,
           "circuit breaker settings (see Breaker); defaults apply when absent"),
    SL_DOC_END};
const sl_conf_doc sl_kafka_input_doc[] = {
    SL_DOC_REQ("topics", "list", "Kafka topics consumed (at least one)"),
    SL_DOC_REQ("group", "string",
               "consumer group; offsets are committed once messages are durable"),
    SL_DOC("start", "enum:earliest|latest", "earliest",
           "where a group without committed offsets starts"),
    SL_DOC_END};
const sl_conf_doc sl_kafka_output_doc[] = {
    SL_DOC_REQ("topic", "string", "Kafka topic produced to"),
    SL_DOC("key", "string", NULL,
           "record key: a key expression ($.json.path, header:NAME, XPath); none: the message key"),
    SL_DOC_END};

void sl_kafka_parse_conf(sl_conf_reader *r, sl_connector_conf *cc, const sl_node *n,
                         const char *path)
{
    sl_kafka_conf *kc = sl_pool_alloc(sl_conf_pool(r), sizeof *kc);
    if (!kc)
        return;
    kc->timeout_ms = 5000;
    cc->priv = kc;
    sl_conf_need_str(r, n, "brokers", path, &kc->brokers);
    sl_conf_kv(r, n, "options", path, &kc->options, &kc->n_options);
    sl_conf_duration(r, n, "timeout", path, &kc->timeout_ms);
}

void sl_kafka_parse_input(sl_conf_reader *r, const sl_route_conf *route,
                          const sl_connector_conf *cc, sl_input_conf *in, const sl_node *n,
                          const char *path)
{
    sl_pool *pool = sl_conf_pool(r);
    sl_kafka_from *kf = sl_pool_alloc(pool, sizeof *kf);
    if (!kf)
        return;
    in->priv = kf;
    kf->start = sl_pool_strdup(pool, "earliest");
    if (!sl_conf_value(n, "topics")) {
        sl_conf_missing(r, n, path, "topics");
    } else if (sl_conf_list(r, n, "topics", path, NULL, &kf->topics, &kf->n_topics) &&
               kf->n_topics == 0) {
        char p[SL_CONF_PATH_LEN];
        sl_conf_path_key(p, path, "topics");
        sl_conf_error_at(r, sl_conf_value(n, "topics")->pos, "%s: expected at least one topic", p);
    }
    sl_conf_need_str(r, n, "group", path, &kf->group);
    int i;
    if (sl_conf_enum(r, n, "start", path, KAFKA_START, &i))
        kf->start = sl_pool_strdup(pool, KAFKA_START[i]);
}

void sl_kafka_parse_output(sl_conf_reader *r, const sl_connector_conf *cc, sl_output_conf *out,
                           const sl_node *n, const char *path)
{
    sl_kafka_output *ko = sl_pool_alloc(sl_conf_pool(r), sizeof *ko);
    if (!ko)
        return;
    out->priv = ko;
    if (sl_conf_need_str(r, n, "topic", path, &out->topic))
        sl_conf_check_topic(r, n, "topic", path, out->topic);
    sl_conf_str(r, n, "key", path, &ko->key);
}
