/* The Kafka connector (librdkafka): its table of functions, the shared
 * librdkafka configuration and logging, and the output side: one idempotent
 * producer (acks=all) per connector; a route worker's batch is delivered
 * when every delivery report of it has arrived. The input side (consumers
 * that append to routes) is in connectors/kafka_input.c. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "connector.h"
#include "kafka_internal.h"
#include "thread_name.h"
#include "kafka_log.h"
#include "logging.h"
#include "metrics.h"

/* Kafka connectors alive in the process, across gateway generations: the
 * last one destroyed waits for librdkafka's threads, which are process-wide
 * too (rd_kafka_wait_destroyed counts every handle of the process). */
static atomic_int live_kafka_connectors;

/* The producer and the thread that serves its delivery reports. */
struct sl_kafka_producer {
    sl_kafka_client cl;
    rd_kafka_t *rk;
    pthread_t poller;
    atomic_bool stop;
    atomic_bool fatal; /* idempotence broke: purge, then replace the producer */
};

/* One send() call: counts the delivery reports still to come. */
typedef struct kafka_batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending;
} kafka_batch;

/* One message of a batch: where its delivery report goes (V_OPAQUE). */
typedef struct kafka_slot {
    kafka_batch *batch;
    sl_send_result *res;
} kafka_slot;

int64_t sl_kafka_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration and logging shared by producers and consumers ---- */

/* librdkafka's log lines (syslog levels) into the gateway's log. Runs on
 * librdkafka's threads. */
static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const sl_kafka_client *cl = rd_kafka_opaque(rk);
    const char *name = cl ? cl->k->name : "?";
    const char *role = cl ? cl->role : "";
    /* Options are shared by the producer and the consumers: a consumer
     * property ignored by the producer (and the reverse) is expected. */
    if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "will be ignored by this"))
        level = 7;
    /* Connection failures come again through the error callback. */
    if (strcmp(fac, "FAIL") == 0)
        level = 7;
    sl_level lvl = level <= 3   ? SL_LVL_ERROR
                   : level == 4 ? SL_LVL_WARN
                   : level <= 6 ? SL_LVL_INFO
                                : SL_LVL_DEBUG;
    sl_logf(lvl, SL_KAFKA_COMPONENT, "connector %s (%s): %s: %s", name, role, fac, buf);
}

/* Errors librdkafka reports (broker down, all brokers down, fatal). Runs on
 * the thread that polls the handle. */
static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    sl_kafka_client *cl = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        sl_err(SL_KAFKA_COMPONENT, "connector %s (%s): fatal error %s: %s", cl->k->name, cl->role,
               rd_kafka_err2name(orig), why);
        if (cl->fatal)
            atomic_store(cl->fatal, true);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
        err == RD_KAFKA_RESP_ERR__RESOLVE)
        atomic_store(&cl->down, true);
    sl_warn(SL_KAFKA_COMPONENT, "connector %s (%s): %s: %s", cl->k->name, cl->role,
            rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

void sl_kafka_client_up(sl_kafka_client *cl)
{
    if (atomic_load_explicit(&cl->down, memory_order_relaxed) && atomic_exchange(&cl->down, false))
        sl_info(SL_KAFKA_COMPONENT, "connector %s (%s): connected to the brokers again",
                cl->k->name, cl->role);
}

int sl_kafka_conf_set(sl_kafka *k, rd_kafka_conf_t *conf, const char *name, const char *value,
                      sl_error *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
        return sl_error_set(err, SL_ECONFIG, "connector %s: librdkafka property %s=%s: %s", k->name,
                            name, value, errstr);
    return 0;
}

int sl_kafka_conf_apply_options(sl_kafka *k, rd_kafka_conf_t *conf, sl_error *err)
{
    const sl_kafka_conf *cc = k->c->conf->priv;
    for (size_t i = 0; i < cc->n_options; i++) {
        if (sl_kafka_conf_set(k, conf, cc->options[i].key, cc->options[i].value, err) < 0)
            return -1;
    }
    return 0;
}

rd_kafka_conf_t *sl_kafka_conf_new(sl_kafka *k, sl_kafka_client *cl, sl_error *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        sl_error_set(err, SL_ENOMEM, "connector %s: out of memory", k->name);
        return NULL;
    }
    char client_id[256];
    snprintf(client_id, sizeof client_id, "sluice-%s", k->name);
    const sl_kafka_conf *kc = k->c->conf->priv;
    if (sl_kafka_conf_set(k, conf, "bootstrap.servers", kc->brokers, err) < 0 ||
        sl_kafka_conf_set(k, conf, "client.id", client_id, err) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    rd_kafka_conf_set_opaque(conf, cl);
    return conf;
}

/* ---- the producer ---- */

/* Whether a delivery error can never succeed by retrying the same message. */
static bool kafka_err_permanent(rd_kafka_resp_err_t e)
{
    switch (e) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_INVALID_MSG:
        case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
        case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
        case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
        case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        case RD_KAFKA_RESP_ERR__INVALID_ARG:
            return true;
        default:
            return false;
    }
}

/* Counts one delivery report down; wakes the sender at zero. */
static void kafka_batch_done(kafka_batch *b)
{
    pthread_mutex_lock(&b->mu);
    if (--b->pending == 0)
        pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* A delivery report: fills the message's result and counts it. Runs on the
 * poller thread. */
static void kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    sl_kafka_producer *p = opaque;
    kafka_slot *slot = m->_private;
    if (!slot)
        return;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        sl_kafka_client_up(&p->cl);
        sl_send_result_set(slot->res, SL_OK, 0, NULL);
        sl_counter_add(p->cl.k->produced, 1);
    } else {
        sl_send_result_set(slot->res, kafka_err_permanent(m->err) ? SL_FAIL : SL_RETRY, 0,
                           "kafka %s [%d]: %s: %s", rd_kafka_topic_name(m->rkt), (int)m->partition,
                           rd_kafka_err2name(m->err), rd_kafka_err2str(m->err));
        sl_counter_add(p->cl.k->delivery_errors, 1);
    }
    kafka_batch_done(slot->batch);
}

/* Serves delivery reports and errors until told to stop. After a fatal
 * error it purges what is queued, so that waiting senders get their
 * reports (retriable) and the producer can be replaced. */
static void *kafka_poller_main(void *arg)
{
    sl_kafka_producer *p = arg;
    bool purged = false;
    while (!atomic_load(&p->stop)) {
        rd_kafka_poll(p->rk, 100);
        if (!purged && atomic_load(&p->fatal)) {
            rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            purged = true;
        }
    }
    return NULL;
}

/* Stops the poller and destroys the producer. No send may be in flight
 * (the caller holds plock for writing, or the routes are stopped). */
static void kafka_producer_free(sl_kafka_producer *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    pthread_join(p->poller, NULL);
    /* Nothing of ours is queued: every send waited for its reports. */
    rd_kafka_flush(p->rk, 1000);
    rd_kafka_destroy(p->rk);
    free(p);
}

/* Builds the producer's configuration: the connector's timeout as the
 * delivery timeout, then the options, then what custody needs (acks=all,
 * idempotence). Returns NULL with err. */
static rd_kafka_conf_t *kafka_producer_conf(sl_kafka *k, sl_kafka_client *cl, sl_error *err)
{
    rd_kafka_conf_t *conf = sl_kafka_conf_new(k, cl, err);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, kafka_dr_cb);
    const sl_connector_conf *cc = k->c->conf;
    const sl_kafka_conf *kc = cc->priv;
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%llu", (unsigned long long)kc->timeout_ms);
    /* The connector's timeout bounds a delivery only when it is written
     * down; librdkafka's default (5 min) rides out broker restarts. */
    if ((cc->node && sl_node_get(cc->node, "timeout") && kc->timeout_ms > 0 &&
         sl_kafka_conf_set(k, conf, "message.timeout.ms", timeout, err) < 0) ||
        sl_kafka_conf_apply_options(k, conf, err) < 0 ||
        sl_kafka_conf_set(k, conf, "acks", "all", err) < 0 ||
        sl_kafka_conf_set(k, conf, "enable.idempotence", "true", err) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

/* Creates the producer and its poller thread. Returns NULL with err. */
static sl_kafka_producer *kafka_producer_new(sl_kafka *k, sl_error *err)
{
    sl_kafka_producer *p = calloc(1, sizeof *p);
    if (!p) {
        sl_error_set(err, SL_ENOMEM, "connector %s: out of memory", k->name);
        return NULL;
    }
    p->cl.k = k;
    snprintf(p->cl.role, sizeof p->cl.role, "producer");
    p->cl.fatal = &p->fatal;
    rd_kafka_conf_t *conf = kafka_producer_conf(k, &p->cl, err);
    if (!conf) {
        free(p);
        return NULL;
    }
    char errstr[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        free(p);
        sl_error_set(err, SL_ECONFIG, "connector %s: cannot create the producer: %s", k->name,
                     errstr);
        return NULL;
    }
    if (pthread_create(&p->poller, NULL, kafka_poller_main, p) != 0) {
        rd_kafka_destroy(p->rk);
        free(p);
        sl_error_set(err, SL_ENOMEM, "connector %s: cannot start the producer's poller", k->name);
        return NULL;
    }
    sl_thread_name(p->poller, "kafka-poll");
    sl_info(SL_KAFKA_COMPONENT, "connector %s: producer started (brokers %s)", k->name,
            ((const sl_kafka_conf *)k->c->conf->priv)->brokers);
    return p;
}

/* Returns the usable producer with plock held for reading, creating it (or
 * replacing one that hit a fatal error) first. Returns NULL with err and no
 * lock held when it cannot be created. */
static sl_kafka_producer *kafka_producer_acquire(sl_kafka *k, sl_error *err)
{
    pthread_rwlock_rdlock(&k->plock);
    if (k->prod && !atomic_load(&k->prod->fatal))
        return k->prod;
    pthread_rwlock_unlock(&k->plock);

    pthread_rwlock_wrlock(&k->plock);
    if (!k->prod || atomic_load(&k->prod->fatal)) {
        if (k->prod)
            sl_warn(SL_KAFKA_COMPONENT, "connector %s: replacing the producer after a fatal error",
                    k->name);
        kafka_producer_free(k->prod);
        k->prod = kafka_producer_new(k, err);
    }
    bool ok = k->prod != NULL;
    pthread_rwlock_unlock(&k->plock);
    if (!ok)
        return NULL;
    pthread_rwlock_rdlock(&k->plock);
    if (k->prod)
        return k->prod;
    pthread_rwlock_unlock(&k->plock);
    sl_error_set(err, SL_ECLOSED, "connector %s: the producer is gone", k->name);
    return NULL;
}

/* Builds the Kafka headers of msg: its headers and `message-id`. Returns
 * NULL when out of memory. */
static rd_kafka_headers_t *kafka_headers_of(const sl_msg *msg)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(msg->n_headers + 1);
    if (!h)
        return NULL;
    for (size_t i = 0; i < msg->n_headers; i++) {
        const sl_msg_header *mh = &msg->headers[i];
        if (strcasecmp(mh->name, SL_HDR_ID) == 0)
            continue;
        if (rd_kafka_header_add(h, mh->name, -1, mh->value, (ssize_t)mh->value_len) != 0) {
            rd_kafka_headers_destroy(h);
            return NULL;
        }
    }
    if (rd_kafka_header_add(h, SL_HDR_ID, -1, msg->id, -1) != 0) {
        rd_kafka_headers_destroy(h);
        return NULL;
    }
    return h;
}

/* Produces msg to out->topic with slot as its opaque, waiting while the
 * local queue is full. Returns 0 when queued (the delivery report fills the
 * result), or -1 after filling slot->res (no report will come). */
static int kafka_produce_one(sl_kafka_producer *p, const sl_output_conf *out, sl_msg *msg,
                             kafka_slot *slot)
{
    char *key = NULL;
    size_t key_len = 0;
    const sl_kafka_output *ko = out->priv;
    if (ko && ko->key) {
        sl_error e;
        if (sl_expr_set_eval(p->cl.k->keys, ko->key, msg, &key, &key_len, &e) < 0) {
            sl_send_result_set(slot->res, SL_FAIL, 0, "kafka key %s: %s", ko->key, e.msg);
            return -1;
        }
    }
    const char *k = key ? key : msg->key;
    size_t klen = key ? key_len : msg->key_len;
    rd_kafka_headers_t *h = kafka_headers_of(msg);
    if (!h) {
        free(key);
        sl_send_result_set(slot->res, SL_RETRY, 0, "kafka: out of memory");
        return -1;
    }
    rd_kafka_resp_err_t e;
    for (;;) {
        e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(out->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(k, k ? klen : 0), RD_KAFKA_V_VALUE(msg->body, msg->body_len),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(slot), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || atomic_load(&p->fatal))
            break;
        /* The poller frees room as delivery reports come in. */
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    free(key);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0; /* h now belongs to the message */
    rd_kafka_headers_destroy(h);
    if (e == RD_KAFKA_RESP_ERR__FATAL)
        atomic_store(&p->fatal, true);
    sl_send_result_set(slot->res, kafka_err_permanent(e) ? SL_FAIL : SL_RETRY, 0,
                       "kafka produce to %s: %s: %s", out->topic, rd_kafka_err2name(e),
                       rd_kafka_err2str(e));
    sl_counter_add(p->cl.k->delivery_errors, 1);
    return -1;
}

static void set_all(sl_send_result *results, size_t n, sl_result res, const char *error)
{
    for (size_t i = 0; i < n; i++)
        sl_send_result_set(&results[i], res, 0, "%s", error);
}

/* Produces every message to out->topic (key: out->key evaluated, else the
 * message's key; headers: the message's and `message-id`) and returns once
 * every delivery report arrived: SL_OK when acknowledged by all in-sync
 * replicas, SL_FAIL for what can never be accepted (too large, invalid, not
 * authorised, key expression on a non-JSON body), SL_RETRY otherwise.
 * Thread-safe: several route workers send at once, each waits only for its
 * own batch. */
static void kafka_send(sl_connector *c, const sl_output_conf *out, sl_msg *const *msgs, size_t n,
                       sl_send_result *results)
{
    sl_kafka *k = c->state;
    if (n == 0)
        return;
    if (!out->topic || !out->topic[0]) {
        set_all(results, n, SL_FAIL, "kafka output has no topic");
        return;
    }
    kafka_slot *slots = calloc(n, sizeof *slots);
    if (!slots) {
        set_all(results, n, SL_RETRY, "kafka: out of memory");
        return;
    }
    kafka_batch b = {.pending = n};
    if (pthread_mutex_init(&b.mu, NULL) != 0) {
        free(slots);
        set_all(results, n, SL_RETRY, "kafka: cannot create a mutex");
        return;
    }
    if (pthread_cond_init(&b.cv, NULL) != 0) {
        pthread_mutex_destroy(&b.mu);
        free(slots);
        set_all(results, n, SL_RETRY, "kafka: cannot create a condition variable");
        return;
    }
    sl_error e;
    sl_kafka_producer *p = kafka_producer_acquire(k, &e);
    if (!p) {
        set_all(results, n, SL_RETRY, e.msg);
    } else {
        for (size_t i = 0; i < n; i++) {
            slots[i].batch = &b;
            slots[i].res = &results[i];
            if (kafka_produce_one(p, out, msgs[i], &slots[i]) < 0)
                kafka_batch_done(&b);
        }
        pthread_mutex_lock(&b.mu);
        while (b.pending > 0)
            pthread_cond_wait(&b.cv, &b.mu);
        pthread_mutex_unlock(&b.mu);
        pthread_rwlock_unlock(&k->plock);
    }
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
    free(slots);
}

/* ---- the table ---- */

/* Compiles the `key:` of every route output that delivers to c, once, so
 * that sending a message only evaluates it. Returns -1 with err when out of
 * memory (a key that does not compile fails each of its messages, as
 * before). */
static int kafka_compile_keys(sl_kafka *k, const sl_connector *c, sl_error *err)
{
    const sl_config *conf = c->env ? c->env->conf : NULL;
    if (!conf)
        return 0; /* built alone: keys compile per message */
    if (!(k->keys = sl_expr_set_new()))
        return sl_error_set(err, SL_ENOMEM, "connector %s: out of memory", c->conf->name);
    for (size_t i = 0; i < conf->n_routes; i++) {
        for (size_t j = 0; j < conf->routes[i].n_to; j++) {
            const sl_output_conf *out = &conf->routes[i].to[j];
            const sl_kafka_output *ko = out->priv;
            if (out->connector && strcmp(out->connector, c->conf->name) == 0 && ko && ko->key &&
                sl_expr_set_add(k->keys, ko->key, err) < 0)
                return -1;
        }
    }
    return 0;
}

/* Builds the connector's state and its metrics. No librdkafka handle yet. */
static int kafka_init(sl_connector *c, sl_error *err)
{
    const sl_kafka_conf *kc = c->conf->priv;
    if (!kc || !kc->brokers || !kc->brokers[0])
        return sl_error_set(err, SL_ECONFIG, "connector %s: kafka needs brokers", c->conf->name);
    sl_kafka *k = calloc(1, sizeof *k);
    if (!k)
        return sl_error_set(err, SL_ENOMEM, "connector %s: out of memory", c->conf->name);
    if (pthread_rwlock_init(&k->plock, NULL) != 0) {
        free(k);
        return sl_error_set(err, SL_ENOMEM, "connector %s: cannot create a lock", c->conf->name);
    }
    k->c = c;
    k->name = c->conf->name;
    /* Bad options fail the start, not the first delivery. */
    sl_kafka_client probe = {.k = k};
    rd_kafka_conf_t *conf = kafka_producer_conf(k, &probe, err);
    if (!conf || kafka_compile_keys(k, c, err) < 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        sl_expr_set_free(k->keys);
        pthread_rwlock_destroy(&k->plock);
        free(k);
        return -1;
    }
    rd_kafka_conf_destroy(conf);
    char esc[256], labels[300];
    snprintf(labels, sizeof labels, "connector=\"%s\"",
             sl_metrics_escape(k->name, esc, sizeof esc));
    sl_metrics *m = sl_connector_metrics(c);
    if (m) {
        k->produced = sl_metrics_counter(m, "sluice_kafka_produced_total",
                                         "Messages acknowledged by Kafka (acks=all)", labels);
        k->delivery_errors =
            sl_metrics_counter(m, "sluice_kafka_delivery_errors_total",
                               "Messages Kafka did not acknowledge (delivery errors)", labels);
        k->consumed =
            sl_metrics_counter(m, "sluice_kafka_consumed_total",
                               "Messages consumed from Kafka and appended to a route", labels);
        k->commits = sl_metrics_counter(m, "sluice_kafka_commits_total",
                                        "Successful consumer offset commits", labels);
    }
    c->state = k;
    atomic_fetch_add(&live_kafka_connectors, 1);
    return 0;
}

static int kafka_attach_input(sl_connector *c, sl_route *route, sl_error *err)
{
    return sl_kafka_input_attach(c->state, route, err);
}

/* Creates the producer when a route delivers to c and fetches the
 * metadata of every topic it delivers to, so that the first batch waits
 * neither for the connection nor for a metadata refresh. A topic that
 * cannot be described yet (broker down, not created) is only logged. */
static int kafka_warm_up(sl_connector *c, sl_error *err)
{
    sl_kafka *k = c->state;
    const sl_config *conf = c->env ? c->env->conf : NULL;
    sl_kafka_producer *p = NULL;
    for (size_t i = 0; conf && i < conf->n_routes; i++) {
        for (size_t j = 0; j < conf->routes[i].n_to; j++) {
            const sl_output_conf *out = &conf->routes[i].to[j];
            if (!out->connector || strcmp(out->connector, c->conf->name) != 0 || !out->topic)
                continue;
            if (!p && !(p = kafka_producer_acquire(k, err)))
                return -1;
            rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, out->topic, NULL);
            const struct rd_kafka_metadata *md = NULL;
            rd_kafka_resp_err_t e =
                rkt ? rd_kafka_metadata(p->rk, 0, rkt, &md, 5000) : rd_kafka_last_error();
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err)
                e = md->topics[0].err;
            if (e)
                sl_warn(SL_KAFKA_COMPONENT, "connector %s: topic %s: %s (deliveries wait for it)",
                        k->name, out->topic, rd_kafka_err2str(e));
            if (md)
                rd_kafka_metadata_destroy(md);
            if (rkt)
                rd_kafka_topic_destroy(rkt);
        }
    }
    if (p)
        pthread_rwlock_unlock(&k->plock);
    return 0;
}

/* Starts the producer (when a route delivers here) and the consumers. */
static int kafka_start(sl_connector *c, sl_error *err)
{
    if (kafka_warm_up(c, err) < 0)
        return -1;
    return sl_kafka_inputs_start(c->state, err);
}

static void kafka_stop(sl_connector *c)
{
    if (c->state)
        sl_kafka_inputs_stop(c->state);
}

static void kafka_destroy(sl_connector *c)
{
    sl_kafka *k = c->state;
    if (!k)
        return;
    sl_kafka_inputs_free(k);
    kafka_producer_free(k->prod);
    sl_expr_set_free(k->keys);
    pthread_rwlock_destroy(&k->plock);
    free(k);
    c->state = NULL;
    /* librdkafka finishes its own threads in the background; the last
     * kafka connector waits for them, so that nothing outlives the gateway. */
    if (atomic_fetch_sub(&live_kafka_connectors, 1) == 1 && rd_kafka_wait_destroyed(5000) != 0)
        sl_warn(SL_KAFKA_COMPONENT, "librdkafka threads still running after 5 s");
}

const sl_connector_type sl_kafka_connector = {
    .name = "kafka",
    .can_input = true,
    .can_output = true,
    .has_breaker = true,
    .conf_keys = sl_kafka_conf_keys,
    .input_keys = sl_kafka_input_keys,
    .output_keys = sl_kafka_output_keys,
    .summary = "Kafka (librdkafka): consume topics with a group, produce with acks=all",
    .conf_doc = sl_kafka_conf_doc,
    .input_doc = sl_kafka_input_doc,
    .output_doc = sl_kafka_output_doc,
    .parse_conf = sl_kafka_parse_conf,
    .parse_input = sl_kafka_parse_input,
    .parse_output = sl_kafka_parse_output,
    .init = kafka_init,
    .attach_input = kafka_attach_input,
    .start = kafka_start,
    .send = kafka_send,
    .stop = kafka_stop,
    .destroy = kafka_destroy,
    .log_backend = &sl_kafka_log_backend,
    .feeds_external_log = true, /* commits on the log's delivery reports */
    .source_keeps_messages = true,
};
