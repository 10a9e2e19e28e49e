/* The kafka connector's config: `brokers`, `options`, `timeout` on the
 * connector, `topics`, `group`, `start` on a route's `from:`, `topic`, `key`
 * on a `to:` element, read with the config reader. */
#include "kafka_internal.h"

static const char *const KAFKA_START[] = {"earliest", "latest", NULL};

const char *const sl_kafka_conf_keys[] = {"brokers", "options", "timeout", "breaker", NULL};
const char *const sl_kafka_input_keys[] = {"topics", "group", "start", NULL};
const char *const sl_kafka_output_keys[] = {"topic", "key", NULL};

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
