/* The topics of a route's log on Kafka (connectors/kafka_log.c): one way to
 * create a topic (Kafka's CreateTopics, the brokers' replication default,
 * the configs asked for), used for the log's topic, the Idempotency-Key
 * topic, the dead letter topic and the replies topic, each created when
 * missing at open. */
#include "kafka_log.h"

#include <stdio.h>
#include <string.h>

#include "logging.h"

#define KT_TIMEOUT_MS 10000

/* Sends CreateTopics for nt with a request timeout of KT_TIMEOUT_MS; the
 * answer comes to q, with topic (which must outlive it) as its opaque. */
static void create_send(sl_log_backend *b, rd_kafka_NewTopic_t *nt, rd_kafka_queue_t *q,
                        const char *topic)
{
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(b->prod, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    if (o) {
        char errstr[128];
        rd_kafka_AdminOptions_set_request_timeout(o, KT_TIMEOUT_MS, errstr, sizeof errstr);
        rd_kafka_AdminOptions_set_opaque(o, (void *)topic);
    }
    rd_kafka_CreateTopics(b->prod, &nt, 1, o, q);
    if (o)
        rd_kafka_AdminOptions_destroy(o);
}

/* The error of the one topic CreateTopics answered in ev (none when it
 * already exists); *why its text. */
static rd_kafka_resp_err_t create_result(rd_kafka_event_t *ev, const char **why)
{
    rd_kafka_resp_err_t e = ev ? rd_kafka_event_error(ev) : RD_KAFKA_RESP_ERR__TIMED_OUT;
    *why = ev && e ? rd_kafka_event_error_string(ev) : rd_kafka_err2str(e);
    size_t cnt = 0;
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    const rd_kafka_topic_result_t **tr =
        res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;
    if (!e && cnt == 1 && rd_kafka_topic_result_error(tr[0]) &&
        rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        e = rd_kafka_topic_result_error(tr[0]);
        *why = rd_kafka_topic_result_error_string(tr[0]);
    }
    if (e && !*why)
        *why = rd_kafka_err2str(e);
    return e;
}

int sl_kafka_log_topic_create(sl_log_backend *b, const char *topic, int n,
                              const char *const *configs, sl_error *err)
{
    char errstr[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, n, -1, errstr, sizeof errstr);
    if (!nt)
        return sl_error_set(err, SL_ECONFIG, "topic %s: %s", topic, errstr);
    for (size_t i = 0; configs && configs[i] && configs[i + 1]; i += 2)
        rd_kafka_NewTopic_set_config(nt, configs[i], configs[i + 1]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(b->prod);
    create_send(b, nt, q, topic);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, KT_TIMEOUT_MS + 1000);
    const char *why = NULL;
    rd_kafka_resp_err_t e = create_result(ev, &why);
    int rc = e ? sl_error_set(err, SL_EIO, "connector %s: cannot create topic %s: %s", b->k->name,
                              topic, why)
               : 0;
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

int sl_kafka_log_topic_create_async(sl_log_backend *b, const char *topic, int n,
                                    const char *const *configs, rd_kafka_queue_t *q)
{
    char errstr[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, n, -1, errstr, sizeof errstr);
    if (!nt)
        return -1;
    for (size_t i = 0; configs && configs[i] && configs[i + 1]; i += 2)
        rd_kafka_NewTopic_set_config(nt, configs[i], configs[i + 1]);
    create_send(b, nt, q, topic);
    rd_kafka_NewTopic_destroy(nt);
    return 0;
}

const char *sl_kafka_log_topic_created(rd_kafka_event_t *ev)
{
    const char *why = NULL;
    return create_result(ev, &why) ? why : NULL;
}

int sl_kafka_log_topic_ensure(sl_log_backend *b, const char *topic, int n,
                              const char *const *configs, sl_error *err)
{
    int have = sl_kafka_log_topic_partitions(b, topic, err);
    if (have != 0)
        return have;
    if (sl_kafka_log_topic_create(b, topic, n, configs, err) < 0)
        return -1;
    sl_info(SL_KAFKA_COMPONENT, "connector %s: route %s: created topic %s with %d partitions",
            b->k->name, b->route->name, topic, n);
    have = sl_kafka_log_topic_partitions(b, topic, err);
    if (have == 0)
        return sl_error_set(err, SL_EIO, "topic %s not visible after creating it", topic);
    return have;
}

/* Asks for topic (what for: `what`) to be created when missing, with the
 * log's partition count; the answer comes to b->topics_q. */
static void create_later(sl_log_backend *b, const char *topic, const char *what)
{
    sl_error e;
    int have = sl_kafka_log_topic_partitions(b, topic, &e);
    if (have != 0) {
        if (have < 0)
            sl_warn(SL_KAFKA_COMPONENT, "route %s: the %s topic %s: %s", b->route->name, what,
                    topic, e.msg);
        return;
    }
    char errstr[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, b->n_parts, -1, errstr, sizeof errstr);
    if (!b->topics_q)
        b->topics_q = rd_kafka_queue_new(b->prod);
    if (!nt || !b->topics_q) {
        sl_warn(SL_KAFKA_COMPONENT, "route %s: cannot create the %s topic %s: %s", b->route->name,
                what, topic, nt ? "out of memory" : errstr);
    } else {
        sl_info(SL_KAFKA_COMPONENT, "route %s: the %s topic %s is missing; creating it",
                b->route->name, what, topic);
        create_send(b, nt, b->topics_q, topic);
    }
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
}

void sl_kafka_log_topics_extra(sl_log_backend *b)
{
    const sl_kafka_log_conf *lc = b->route->log.priv;
    create_later(b, lc->dead_letters, "dead letter");
    if (strcmp(lc->replies, lc->dead_letters) != 0)
        create_later(b, lc->replies, "replies");
}

void sl_kafka_log_topics_poll(sl_log_backend *b, bool final)
{
    rd_kafka_event_t *ev;
    while (b->topics_q && (ev = rd_kafka_queue_poll(b->topics_q, 0)) != NULL) {
        const char *why = NULL;
        const char *topic = rd_kafka_event_opaque(ev);
        if (!topic)
            topic = "(no name: out of memory)";
        if (create_result(ev, &why))
            sl_warn(SL_KAFKA_COMPONENT,
                    "route %s: could not create topic %s: %s; create it (with the partition "
                    "count of the route's log)",
                    b->route->name, topic, why);
        else
            sl_info(SL_KAFKA_COMPONENT, "route %s: created topic %s with %d partitions",
                    b->route->name, topic, b->n_parts);
        rd_kafka_event_destroy(ev);
    }
    if (final && b->topics_q) {
        rd_kafka_queue_destroy(b->topics_q);
        b->topics_q = NULL;
    }
}
