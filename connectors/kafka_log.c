/* A route's log on a Kafka topic (`log: { connector: KAFKA, topic, partitions,
 * group }`): the kafka connector's log backend (core/log_backend.h). This
 * file parses the keys, creates or checks the topic, and runs the
 * idempotent acks=all producer that inputs append through: an append is a
 * ticket that settles on its delivery report, so that an input acknowledges
 * its source only once the record is in Kafka. The consumer side is in
 * connectors/kafka_log_consume.c. */
#include "kafka_log.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logging.h"
#include "thread_name.h"

#define KL_TOPIC_TIMEOUT_MS 10000
#define KL_FLUSH_MS 10000
#define KL_PROBE_MS 1000 /* while the cluster is down, one append a second goes through */

/* ---- config ---- */

static const char *const KL_KEYS[] = {"topic",        "partitions", "group",        "idem_topic",
                                      "status_topic", "replies",    "dead_letters", NULL};
static const sl_conf_doc KL_DOC[] = {
    SL_DOC("topic", "string", "sluice.ROUTE", "Kafka topic that holds the route's log"),
    SL_DOC("partitions", "integer", NULL,
           "partition count (1 to 1024): the topic is created with it, or must have it; "
           "none: the topic's own (1 when created)"),
    SL_DOC("group", "string", "sluice.ROUTE",
           "consumer group of the gateways that run the route; they share the partitions"),
    SL_DOC("replies", "string", "sluice.replies",
           "topic that carries `reply: sync` answers to the gateway that took the request "
           "(created when missing)"),
    SL_DOC("dead_letters", "string", "sluice.ROUTE.dlq",
           "topic that receives the route's dead letters (created when missing)"),
    SL_DOC("idem_topic", "string", "TOPIC.idem",
           "compacted topic through which the gateways share Idempotency-Keys (docs/KAFKA-LOG.md)"),
    SL_DOC("status_topic", "string", "TOPIC.status",
           "compacted topic through which the gateways share the outcome of messages for "
           "GET /v1/messages/ID (created when missing; docs/KAFKA-LOG.md)"),
    SL_DOC_END};

static void kl_parse(sl_conf_reader *r, const sl_route_conf *route, const sl_connector_conf *cc,
                     void **priv, const sl_node *n, const char *path)
{
    (void)cc;
    sl_pool *pool = sl_conf_pool(r);
    const sl_connector_conf *in_cc =
        route->from.connector ? sl_config_connector(sl_conf_config(r), route->from.connector)
                              : NULL;
    const sl_connector_type *in_t = in_cc ? sl_connector_type_find(in_cc->type) : NULL;
    sl_kafka_log_conf *lc = sl_pool_alloc(pool, sizeof *lc);
    if (!lc)
        return;
    *priv = lc;
    lc->no_timeout = in_t && in_t->source_keeps_messages;
    lc->topic = sl_pool_printf(pool, "sluice.%s", route->name);
    lc->group = sl_pool_printf(pool, "sluice.%s", route->name);
    if (sl_conf_str(r, n, "topic", path, &lc->topic))
        sl_conf_check_topic(r, n, "topic", path, lc->topic);
    sl_conf_str(r, n, "group", path, &lc->group);
    lc->replies = sl_pool_printf(pool, "sluice.replies");
    lc->dead_letters = sl_pool_printf(pool, "sluice.%s.dlq", route->name);
    if (sl_conf_str(r, n, "replies", path, &lc->replies))
        sl_conf_check_topic(r, n, "replies", path, lc->replies);
    if (sl_conf_str(r, n, "dead_letters", path, &lc->dead_letters))
        sl_conf_check_topic(r, n, "dead_letters", path, lc->dead_letters);
    sl_conf_int(r, n, "partitions", path, 1, 1024, &lc->partitions);
    lc->idem_topic = sl_pool_printf(pool, "%s.idem", lc->topic);
    if (sl_conf_str(r, n, "idem_topic", path, &lc->idem_topic))
        sl_conf_check_topic(r, n, "idem_topic", path, lc->idem_topic);
    lc->status_topic = sl_pool_printf(pool, "%s.status", lc->topic);
    if (sl_conf_str(r, n, "status_topic", path, &lc->status_topic))
        sl_conf_check_topic(r, n, "status_topic", path, lc->status_topic);
}

/* The backend whose producer has client cl as its opaque. */
static sl_log_backend *backend_of(void *cl)
{
    return (sl_log_backend *)((char *)cl - offsetof(sl_log_backend, pcl));
}

/* ---- tickets ---- */

static unsigned ticket_bucket(int64_t id)
{
    return (unsigned)((uint64_t)id % KL_TICKET_BUCKETS);
}

/* Takes ticket id out of the table (tmu held). */
static kl_ticket *ticket_take(sl_log_backend *b, int64_t id)
{
    for (kl_ticket **pp = &b->tickets[ticket_bucket(id)]; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            kl_ticket *t = *pp;
            *pp = t->next;
            return t;
        }
    }
    return NULL;
}

/* Calls the ticket's callback with its outcome and frees it. */
static void ticket_settle(kl_ticket *t)
{
    t->fn(t->arg, t->failed ? -1 : t->offset, t->failed ? &t->err : NULL);
    free(t);
}

/* The delivery report of one append: settles its ticket now when on_durable
 * was called, else leaves the outcome for it. Producer thread. */
static void kl_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    sl_log_backend *b = backend_of(opaque);
    kl_ticket *t = m->_private;
    if (!t)
        return;
    pthread_mutex_lock(&b->tmu);
    t->done = true;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        t->offset = m->offset;
        atomic_store(&b->cluster_down, false);
        sl_kafka_client_up(&b->pcl);
    } else {
        t->failed = true;
        /* never written: the source may send it again; else it may be in the log */
        bool never = rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
        sl_error_set(&t->err, never ? SL_EFULL : SL_EIO, "Kafka %s [%d]: %s%s", b->topic,
                     (int)m->partition, rd_kafka_err2str(m->err),
                     never ? " (not written)" : " (it may have been written)");
    }
    bool settle = t->fn != NULL;
    if (settle)
        ticket_take(b, t->id);
    pthread_mutex_unlock(&b->tmu);
    if (settle)
        ticket_settle(t);
}

static int kl_on_durable(sl_log_backend *b, int64_t ticket, sl_durable_fn fn, void *arg,
                         sl_error *err)
{
    pthread_mutex_lock(&b->tmu);
    kl_ticket *t = NULL;
    for (t = b->tickets[ticket_bucket(ticket)]; t && t->id != ticket; t = t->next)
        ;
    if (!t) {
        pthread_mutex_unlock(&b->tmu);
        return sl_error_set(err, SL_EINVAL, "no append %" PRId64 " waits for Kafka", ticket);
    }
    t->fn = fn;
    t->arg = arg;
    bool now = t->done;
    if (now)
        ticket_take(b, ticket);
    pthread_mutex_unlock(&b->tmu);
    if (now)
        ticket_settle(t);
    return 0;
}

/* ---- the producer ---- */

/* Like the connector's error callback, but tells "the whole cluster is
 * unreachable" (back-pressure for inputs) from one broker's trouble. */
static void kl_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    sl_kafka_client *cl = opaque;
    sl_log_backend *b = backend_of(cl);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        atomic_store(&b->cluster_down, true);
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        atomic_store(&cl->down, true);
    sl_warn(SL_KAFKA_COMPONENT, "connector %s (%s): %s: %s", cl->k->name, cl->role,
            rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void *kl_producer_main(void *arg)
{
    sl_log_backend *b = arg;
    while (!atomic_load(&b->stop)) {
        rd_kafka_poll(b->prod, 100);
        sl_kafka_log_topics_poll(b, false);
    }
    return NULL;
}

/* What appending needs, whatever the connector's options say: idempotence
 * (no duplicate, no reorder on retry), acks=all, and a bounded wait so that
 * an HTTP client gets an answer while the cluster is away (unbounded when
 * the input's source keeps the message: sl_kafka_log_conf.no_timeout). */
static rd_kafka_conf_t *producer_conf(sl_log_backend *b, sl_error *err)
{
    rd_kafka_conf_t *conf = sl_kafka_conf_new(b->k, &b->pcl, err);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_error_cb(conf, kl_error_cb);
    rd_kafka_conf_set_dr_msg_cb(conf, kl_dr_cb);
    rd_kafka_conf_set_opaque(conf, &b->pcl);
    const sl_kafka_log_conf *lc = b->route->log.priv;
    const char *timeout = lc && lc->no_timeout ? "0" : "30000";
    if (sl_kafka_conf_set(b->k, conf, "message.timeout.ms", timeout, err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "linger.ms", "2", err) < 0 ||
        sl_kafka_conf_apply_options(b->k, conf, err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "enable.idempotence", "true", err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "acks", "all", err) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static int producer_new(sl_log_backend *b, sl_error *err)
{
    rd_kafka_conf_t *conf = producer_conf(b, err);
    if (!conf)
        return -1;
    char errstr[512];
    b->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!b->prod) {
        rd_kafka_conf_destroy(conf);
        return sl_error_set(err, SL_ECONFIG, "connector %s: producer of route %s: %s", b->k->name,
                            b->route->name, errstr);
    }
    return 0;
}

/* Builds the record's Kafka headers (NULL when it has none). */
static rd_kafka_headers_t *record_headers(const sl_record *rec)
{
    if (rec->n_headers == 0)
        return NULL;
    rd_kafka_headers_t *h = rd_kafka_headers_new(rec->n_headers);
    for (size_t i = 0; h && i < rec->n_headers; i++)
        rd_kafka_header_add(h, rec->headers[i].name, (ssize_t)rec->headers[i].name_len,
                            rec->headers[i].value, (ssize_t)rec->headers[i].value_len);
    return h;
}

/* Refuses appends while the cluster is unreachable, letting one through a
 * second to find out when it is back. */
static bool cluster_refuses(sl_log_backend *b)
{
    if (!atomic_load(&b->cluster_down))
        return false;
    int64_t now = sl_kafka_now_ms(), last = atomic_load(&b->probe_ms);
    return now - last < KL_PROBE_MS || !atomic_compare_exchange_strong(&b->probe_ms, &last, now);
}

/* Produces rec with ticket t as its opaque. Returns 0 or -1 with err. */
static int produce(sl_log_backend *b, int p, const sl_record *rec, kl_ticket *t, sl_error *err)
{
    rd_kafka_headers_t *h = record_headers(rec);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        b->prod, RD_KAFKA_V_TOPIC(b->topic), RD_KAFKA_V_PARTITION(p),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(rec->key_len ? rec->key : NULL, rec->key_len),
        RD_KAFKA_V_VALUE((void *)rec->value, rec->value_len), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_TIMESTAMP(rec->timestamp_ms), RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0; /* the headers belong to the message now */
    if (h)
        rd_kafka_headers_destroy(h);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return sl_error_set(err, SL_EFULL, "Kafka producer queue of route %s is full",
                            b->route->name);
    return sl_error_set(err, SL_EIO, "Kafka %s [%d]: %s", b->topic, p, rd_kafka_err2str(e));
}

static int64_t kl_append(sl_log_backend *b, int p, const sl_record *rec, sl_error *err)
{
    if (atomic_load(&b->stopped))
        return sl_error_set(err, SL_ECLOSED, "route %s is stopping", b->route->name);
    if (cluster_refuses(b))
        return sl_error_set(err, SL_EFULL, "the Kafka cluster of route %s is unreachable",
                            b->route->name);
    kl_ticket *t = calloc(1, sizeof *t);
    if (!t)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    pthread_mutex_lock(&b->tmu);
    t->id = b->next_ticket++;
    unsigned k = ticket_bucket(t->id);
    t->next = b->tickets[k];
    b->tickets[k] = t;
    pthread_mutex_unlock(&b->tmu);
    if (produce(b, p, rec, t, err) == 0)
        return t->id;
    pthread_mutex_lock(&b->tmu);
    ticket_take(b, t->id);
    pthread_mutex_unlock(&b->tmu);
    free(t);
    return -1;
}

/* ---- the topic ---- */

int sl_kafka_log_topic_partitions(sl_log_backend *b, const char *topic, sl_error *err)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(b->prod, 1, NULL, &md, KL_TOPIC_TIMEOUT_MS);
    if (e)
        return sl_error_set(err, SL_EIO, "connector %s: cannot describe topic %s: %s", b->k->name,
                            topic, rd_kafka_err2str(e));
    int n = 0;
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err)
            n = md->topics[i].partition_cnt;
    }
    rd_kafka_metadata_destroy(md);
    return n;
}

/* Creates the topic when missing, or checks its partition count. */
static int topic_ensure(sl_log_backend *b, int want, sl_error *err)
{
    int have = sl_kafka_log_topic_ensure(b, b->topic, want > 0 ? want : 1, NULL, err);
    if (have < 0)
        return -1;
    if (want > 0 && have != want)
        return sl_error_set(err, SL_ECONFIG,
                            "route %s: Kafka topic %s has %d partitions, log.partitions says %d",
                            b->route->name, b->topic, have, want);
    b->n_parts = have;
    sl_kafka_log_topics_extra(b);
    return 0;
}

/* ---- the table ---- */

static void kl_free(sl_log_backend *b);

static sl_log_backend *kl_open(sl_connector *c, const sl_route_conf *route, sl_error *err)
{
    const sl_kafka_log_conf *lc = route->log.priv;
    sl_log_backend *b = calloc(1, sizeof *b);
    if (!b || !lc) {
        free(b);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    b->k = c->state;
    b->route = route;
    b->topic = strdup(lc->topic);
    b->group = strdup(lc->group);
    pthread_mutex_init(&b->tmu, NULL);
    pthread_mutex_init(&b->rmu, NULL);
    pthread_cond_init(&b->rcv, NULL);
    b->pcl.k = b->ccl.k = b->k;
    snprintf(b->pcl.role, sizeof b->pcl.role, "log producer of route %s", route->name);
    snprintf(b->ccl.role, sizeof b->ccl.role, "log of route %s", route->name);
    if (!b->topic || !b->group) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    if (producer_new(b, err) < 0 || topic_ensure(b, lc->partitions, err) < 0 ||
        sl_kafka_log_consumer_new(b, err) < 0 || sl_kafka_log_extra_new(b, err) < 0)
        goto fail;
    return b;
fail:
    kl_free(b);
    return NULL;
}

static int kl_partitions(sl_log_backend *b)
{
    return b->n_parts;
}

static int kl_start(sl_log_backend *b, sl_error *err)
{
    int rc = pthread_create(&b->prod_thread, NULL, kl_producer_main, b);
    if (rc != 0)
        return sl_error_set(err, SL_EIO, "route %s: cannot start the Kafka producer thread",
                            b->route->name);
    sl_thread_name(b->prod_thread, "klog-prod:%s", b->route->name);
    b->prod_running = true;
    return sl_kafka_log_consumer_start(b, err);
}

/* Settles every ticket left (their reports will never come). */
static void tickets_fail(sl_log_backend *b)
{
    for (unsigned i = 0; i < KL_TICKET_BUCKETS; i++) {
        while (b->tickets[i]) {
            kl_ticket *t = b->tickets[i];
            b->tickets[i] = t->next;
            if (t->fn) {
                t->failed = true;
                sl_error_set(&t->err, SL_ECLOSED, "route %s stopped before Kafka answered",
                             b->route->name);
                ticket_settle(t);
            } else {
                free(t);
            }
        }
    }
}

/* Waits (bounded) for what was appended, stops the threads, gives the
 * partitions up and destroys the librdkafka handles, so that nothing of
 * them outlives the connector. */
static void kl_stop(sl_log_backend *b)
{
    if (atomic_exchange(&b->stopped, true))
        return;
    if (b->prod && rd_kafka_flush(b->prod, KL_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        sl_warn(SL_KAFKA_COMPONENT, "route %s: %d append(s) still unanswered by Kafka at stop",
                b->route->name, rd_kafka_outq_len(b->prod));
    sl_kafka_log_consumer_stop(b); /* a drained batch may still dead-letter */
    sl_kafka_log_extra_stop(b);
    sl_kafka_log_idem_stop(b);
    sl_kafka_log_status_stop(b);
    atomic_store(&b->stop, true);
    if (b->prod_running)
        pthread_join(b->prod_thread, NULL);
    b->prod_running = false;
    sl_kafka_log_topics_poll(b, true);
    if (b->prod) {
        rd_kafka_purge(b->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(b->prod, 0); /* the purged appends' reports */
        rd_kafka_destroy(b->prod);
        b->prod = NULL;
    }
    pthread_mutex_lock(&b->tmu);
    tickets_fail(b);
    pthread_mutex_unlock(&b->tmu);
}

static void kl_free(sl_log_backend *b)
{
    if (!b)
        return;
    kl_stop(b);
    sl_kafka_log_consumer_free(b);
    sl_kafka_log_extra_free(b);
    sl_kafka_log_idem_free(b);
    sl_kafka_log_status_free(b);
    pthread_mutex_destroy(&b->tmu);
    pthread_mutex_destroy(&b->rmu);
    pthread_cond_destroy(&b->rcv);
    free(b->topic);
    free(b->group);
    free(b);
}

const sl_log_backend_type sl_kafka_log_backend = {
    .keys = KL_KEYS,
    .doc = KL_DOC,
    .parse = kl_parse,
    .open = kl_open,
    .partitions = kl_partitions,
    .append = kl_append,
    .on_durable = kl_on_durable,
    .read = sl_kafka_log_read,
    .commit = sl_kafka_log_commit,
    .wake = sl_kafka_log_wake,
    .info = sl_kafka_log_info,
    .rewind = sl_kafka_log_rewind,
    .hold = sl_kafka_log_hold,
    .start = kl_start,
    .stop = kl_stop,
    .free = kl_free,
    .reply_address = sl_kafka_log_reply_address,
    .reply = sl_kafka_log_reply,
    .dead_letter = sl_kafka_log_dead_letter,
    .dead_letter_topic = sl_kafka_log_dead_letter_topic,
    .dlq_list = sl_kafka_log_dlq_list,
    .dlq_act = sl_kafka_log_dlq_act,
    .idem_open = sl_kafka_log_idem_open,
    .idem_get = sl_kafka_log_idem_get,
    .idem_put = sl_kafka_log_idem_put,
    .status_open = sl_kafka_log_status_open,
    .status_finished = sl_kafka_log_status_finished,
};
