/* `reply: sync` across gateways on a route whose log is a Kafka topic
 * (docs/KAFKA-LOG.md). The gateway that takes a sync request stamps the
 * record with its address (core/route.c, SL_HDR_REPLY_TO); the gateway whose
 * worker finishes the message produces the outcome to the replies topic,
 * keyed by that address; the first gateway reads the replies topic from its
 * end, with no group, keeps the records keyed by its own address and hands
 * each to the route, which answers the waiting request. Also the producer
 * that replies and dead letters (connectors/kafka_log_dlq.c) go through:
 * idempotent, acks=all, created when first needed. */
#include "kafka_log.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logging.h"
#include "message.h"
#include "thread_name.h"

#define KX_TIMEOUT_MS 10000
#define KX_FLUSH_MS 5000
#define KX_RETRY_MS 1000 /* after the reader failed to start, sync requests get 503 this long */

#define KX_HDR_ROUTE "x-sluice-route"
#define KX_HDR_STATE "x-sluice-state"
#define KX_HDR_STATUS "x-sluice-status"
#define KX_HDR_REPLIED "x-sluice-replied"
#define KX_HDR_ERROR "x-sluice-error"

/* One produce that waits for its delivery report (sl_kafka_log_extra_produce). */
typedef struct kx_wait {
    bool done;
    rd_kafka_resp_err_t err;
} kx_wait;

typedef struct kl_extra {
    sl_log_backend *b;
    char *replies, *dead_letters; /* the topics */
    pthread_rwlock_t lock;        /* write: creating or closing the handles below */
    bool closed;
    pthread_mutex_t wmu; /* the waits' outcomes */
    pthread_cond_t wcv;
    sl_kafka_client pcl;
    rd_kafka_t *prod; /* NULL until the first reply or dead letter */
    pthread_t prod_thread;
    sl_kafka_client rcl;
    rd_kafka_t *reader; /* the answers addressed here; NULL until the first sync request */
    pthread_t reader_thread;
    atomic_bool stop;
    char address[SL_ID_LEN + 1]; /* this gateway's, "" until the reader runs */
    int64_t failed_ms;           /* when starting the reader last failed, or 0 */
    sl_route_done_fn deliver;
    void *arg;
} kl_extra;

/* ---- the producer ---- */

static kl_extra *extra_of_producer(void *cl)
{
    return (kl_extra *)((char *)cl - offsetof(kl_extra, pcl));
}

/* A delivery report: wakes the dead letter waiting for it; a reply's error is
 * only logged (its request times out). */
static void kx_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kl_extra *x = extra_of_producer(opaque);
    kx_wait *w = m->_private;
    if (!w) {
        if (m->err)
            sl_warn(SL_KAFKA_COMPONENT, "route %s: reply to %s lost: %s", x->b->route->name,
                    rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        return;
    }
    pthread_mutex_lock(&x->wmu);
    w->err = m->err;
    w->done = true;
    pthread_cond_broadcast(&x->wcv);
    pthread_mutex_unlock(&x->wmu);
}

static void *kx_producer_main(void *arg)
{
    kl_extra *x = arg;
    while (!atomic_load(&x->stop))
        rd_kafka_poll(x->prod, 100);
    return NULL;
}

/* Creates the producer and its thread (lock held for writing). */
static int producer_start(kl_extra *x, sl_error *err)
{
    sl_log_backend *b = x->b;
    rd_kafka_conf_t *conf = sl_kafka_conf_new(b->k, &x->pcl, err);
    if (!conf)
        return -1;
    rd_kafka_conf_set_dr_msg_cb(conf, kx_dr_cb);
    char errstr[512];
    if (sl_kafka_conf_set(b->k, conf, "message.timeout.ms", "30000", err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "linger.ms", "0", err) < 0 ||
        sl_kafka_conf_apply_options(b->k, conf, err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "enable.idempotence", "true", err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "acks", "all", err) < 0) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    x->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!x->prod) {
        rd_kafka_conf_destroy(conf);
        return sl_error_set(err, SL_ECONFIG, "route %s: reply producer: %s", b->route->name,
                            errstr);
    }
    if (pthread_create(&x->prod_thread, NULL, kx_producer_main, x) != 0) {
        rd_kafka_destroy(x->prod);
        x->prod = NULL;
        return sl_error_set(err, SL_EIO, "route %s: cannot start a thread", b->route->name);
    }
    sl_thread_name(x->prod_thread, "klog-reply");
    return 0;
}

/* The producer, created when first needed; NULL with err once closed. Takes
 * the lock for reading (released by the caller) when it returns one. */
static rd_kafka_t *producer_get(kl_extra *x, sl_error *err)
{
    pthread_rwlock_rdlock(&x->lock);
    if (x->prod || x->closed) {
        if (x->prod)
            return x->prod;
        pthread_rwlock_unlock(&x->lock);
        sl_error_set(err, SL_ECLOSED, "route %s is stopping", x->b->route->name);
        return NULL;
    }
    pthread_rwlock_unlock(&x->lock);
    pthread_rwlock_wrlock(&x->lock);
    int rc = x->closed ? sl_error_set(err, SL_ECLOSED, "route %s is stopping", x->b->route->name)
             : x->prod ? 0
                       : producer_start(x, err);
    pthread_rwlock_unlock(&x->lock);
    return rc < 0 ? NULL : producer_get(x, err);
}

static rd_kafka_headers_t *headers_of(const sl_record *rec)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(rec->n_headers ? rec->n_headers : 1);
    for (size_t i = 0; i < rec->n_headers; i++)
        rd_kafka_header_add(h, rec->headers[i].name, (ssize_t)rec->headers[i].name_len,
                            rec->headers[i].value, (ssize_t)rec->headers[i].value_len);
    return h;
}

/* Waits for w's report; returns 0 or -1 with err. */
static int wait_report(kl_extra *x, kx_wait *w, const char *topic, sl_error *err)
{
    pthread_mutex_lock(&x->wmu);
    while (!w->done)
        pthread_cond_wait(&x->wcv, &x->wmu);
    pthread_mutex_unlock(&x->wmu);
    if (w->err)
        return sl_error_set(err, SL_EIO, "Kafka %s: %s", topic, rd_kafka_err2str(w->err));
    return 0;
}

int sl_kafka_log_extra_produce(sl_log_backend *b, const char *topic, const sl_record *rec,
                               bool wait, sl_error *err)
{
    kl_extra *x = b->extra;
    rd_kafka_t *p = producer_get(x, err);
    if (!p)
        return -1;
    kx_wait w = {0};
    rd_kafka_headers_t *h = headers_of(rec);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(rec->key_len ? rec->key : NULL, rec->key_len),
        RD_KAFKA_V_VALUE((void *)rec->value, rec->value_len), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_OPAQUE(wait ? &w : NULL), RD_KAFKA_V_END);
    pthread_rwlock_unlock(&x->lock);
    if (e) {
        rd_kafka_headers_destroy(h);
        return sl_error_set(err, e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? SL_EFULL : SL_EIO,
                            "Kafka %s: %s", topic, rd_kafka_err2str(e));
    }
    return wait ? wait_report(x, &w, topic, err) : 0;
}

/* ---- sending a reply (the gateway that finished the message) ---- */

void sl_kafka_log_reply(sl_log_backend *b, const char *address, const char *id,
                        const sl_route_outcome *o)
{
    kl_extra *x = b->extra;
    pthread_rwlock_rdlock(&x->lock);
    bool ours = strcmp(address, x->address) == 0;
    pthread_rwlock_unlock(&x->lock);
    if (ours)
        return; /* the watch here answered, or gave up */
    char state[16], status[16];
    snprintf(state, sizeof state, "%d", (int)o->state);
    snprintf(status, sizeof status, "%d", o->status);
    const char *route = b->route->name;
    sl_header h[6] = {
        {SL_HDR_ID, strlen(SL_HDR_ID), id, strlen(id)},
        {KX_HDR_ROUTE, strlen(KX_HDR_ROUTE), route, strlen(route)},
        {KX_HDR_STATE, strlen(KX_HDR_STATE), state, strlen(state)},
        {KX_HDR_STATUS, strlen(KX_HDR_STATUS), status, strlen(status)},
    };
    size_t n = 4;
    if (o->replied)
        h[n++] = (sl_header){KX_HDR_REPLIED, strlen(KX_HDR_REPLIED), "1", 1};
    if (o->content_type)
        h[n++] = (sl_header){SL_HDR_CONTENT_TYPE, strlen(SL_HDR_CONTENT_TYPE), o->content_type,
                             strlen(o->content_type)};
    else if (o->error)
        h[n++] = (sl_header){KX_HDR_ERROR, strlen(KX_HDR_ERROR), o->error, strlen(o->error)};
    sl_record rec = {.key = address,
                     .key_len = strlen(address),
                     .value = o->body,
                     .value_len = o->body ? o->body_len : 0,
                     .headers = h,
                     .n_headers = n};
    sl_error e;
    if (sl_kafka_log_extra_produce(b, x->replies, &rec, false, &e) < 0)
        sl_warn(SL_KAFKA_COMPONENT, "route %s: cannot reply to gateway %s for message %s: %s",
                route, address, id, e.msg);
}

/* ---- reading the replies (the gateway that took the request) ---- */

/* Copies header name of hs into buf (cap bytes, NUL-terminated); false when
 * absent. */
static bool header_str(rd_kafka_headers_t *hs, const char *name, char *buf, size_t cap)
{
    const void *v = NULL;
    size_t len = 0;
    buf[0] = '\0';
    if (!hs || rd_kafka_header_get_last(hs, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    if (len >= cap)
        len = cap - 1;
    if (len)
        memcpy(buf, v, len);
    buf[len] = '\0';
    return true;
}

/* Hands one record of the replies topic to the route when it is ours. */
static void take_reply(kl_extra *x, const rd_kafka_message_t *m)
{
    size_t alen = strlen(x->address);
    if (m->key_len != alen || memcmp(m->key, x->address, alen) != 0)
        return;
    rd_kafka_headers_t *hs = NULL;
    rd_kafka_message_headers(m, &hs);
    char id[SL_ID_LEN + 1], route[256], num[16], ctype[256], error[512];
    if (!header_str(hs, SL_HDR_ID, id, sizeof id) ||
        !header_str(hs, KX_HDR_ROUTE, route, sizeof route) || strcmp(route, x->b->route->name) != 0)
        return;
    sl_route_outcome o = {.body = m->payload ? (const char *)m->payload : "",
                          .body_len = m->payload ? m->len : 0};
    header_str(hs, KX_HDR_STATE, num, sizeof num);
    o.state = (sl_msg_state)atoi(num);
    header_str(hs, KX_HDR_STATUS, num, sizeof num);
    o.status = atoi(num);
    o.replied = header_str(hs, KX_HDR_REPLIED, num, sizeof num);
    if (header_str(hs, SL_HDR_CONTENT_TYPE, ctype, sizeof ctype))
        o.content_type = ctype;
    if (header_str(hs, KX_HDR_ERROR, error, sizeof error))
        o.error = error;
    x->deliver(x->arg, id, &o);
}

static void *kx_reader_main(void *arg)
{
    kl_extra *x = arg;
    while (!atomic_load(&x->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(x->reader, 100);
        if (!m)
            continue;
        if (!m->err)
            take_reply(x, m);
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            sl_warn(SL_KAFKA_COMPONENT, "route %s: reading %s: %s", x->b->route->name, x->replies,
                    rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

/* The reader's handle: a consumer of its own group, which never joins it
 * (it assigns) nor commits. */
static rd_kafka_t *reader_new(kl_extra *x, sl_error *err)
{
    sl_log_backend *b = x->b;
    rd_kafka_conf_t *conf = sl_kafka_conf_new(b->k, &x->rcl, err);
    if (!conf)
        return NULL;
    char group[64], errstr[512];
    snprintf(group, sizeof group, "sluice.replies.%s", x->address);
    if (sl_kafka_conf_apply_options(b->k, conf, err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "group.id", group, err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "enable.auto.commit", "false", err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "enable.auto.offset.store", "false", err) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        sl_error_set(err, SL_ECONFIG, "route %s: replies reader: %s", b->route->name, errstr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* The partition count of the replies topic (listing every topic, which
 * never creates one), 0 when it does not exist, or -1 with err. */
static int replies_partitions(kl_extra *x, sl_error *err)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(x->reader, 1, NULL, &md, KX_TIMEOUT_MS);
    if (e)
        return sl_error_set(err, SL_EFULL, "cannot describe topic %s: %s", x->replies,
                            rd_kafka_err2str(e));
    int n = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, x->replies) == 0 && !md->topics[i].err)
            n = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return n;
}

/* Assigns every partition of the replies topic at its current end, so that
 * every reply to a request stamped from now on is read. */
static int reader_assign(kl_extra *x, sl_error *err)
{
    int n = replies_partitions(x, err);
    if (n <= 0)
        return n < 0 ? -1
                     : sl_error_set(err, SL_EIO, "the replies topic %s does not exist", x->replies);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int p = 0; p < n && !e; p++) {
        int64_t lo, hi;
        e = rd_kafka_query_watermark_offsets(x->reader, x->replies, p, &lo, &hi, KX_TIMEOUT_MS);
        rd_kafka_topic_partition_list_add(l, x->replies, p)->offset = hi;
    }
    if (!e)
        e = rd_kafka_assign(x->reader, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return sl_error_set(err, SL_EIO, "cannot read topic %s: %s", x->replies,
                            rd_kafka_err2str(e));
    return 0;
}

/* Creates and starts the reader (lock held for writing). */
static int reader_start(kl_extra *x, sl_error *err)
{
    sl_uuid7(x->address);
    x->reader = reader_new(x, err);
    if (!x->reader || reader_assign(x, err) < 0 ||
        pthread_create(&x->reader_thread, NULL, kx_reader_main, x) != 0) {
        if (x->reader)
            rd_kafka_destroy(x->reader);
        x->reader = NULL;
        x->address[0] = '\0';
        return err->code ? -1 : sl_error_set(err, SL_EIO, "cannot start a thread");
    }
    sl_thread_name(x->reader_thread, "klog-replies");
    sl_info(SL_KAFKA_COMPONENT, "route %s: reading the answers to gateway %s from %s",
            x->b->route->name, x->address, x->replies);
    return 0;
}

const char *sl_kafka_log_reply_address(sl_log_backend *b, sl_route_done_fn deliver, void *arg,
                                       sl_error *err)
{
    kl_extra *x = b->extra;
    pthread_rwlock_rdlock(&x->lock);
    bool ready = x->reader != NULL;
    pthread_rwlock_unlock(&x->lock);
    if (ready)
        return x->address;
    pthread_rwlock_wrlock(&x->lock);
    int rc = 0;
    if (x->closed)
        rc = sl_error_set(err, SL_ECLOSED, "route %s is stopping", b->route->name);
    else if (!x->reader && sl_kafka_now_ms() - x->failed_ms < KX_RETRY_MS)
        rc = sl_error_set(err, SL_EFULL, "the replies topic %s could not be read just now",
                          x->replies); /* no new 10 s wait for every request */
    else if (!x->reader) {
        x->deliver = deliver;
        x->arg = arg;
        err->code = 0;
        rc = reader_start(x, err);
        x->failed_ms = rc < 0 ? sl_kafka_now_ms() : 0;
    }
    pthread_rwlock_unlock(&x->lock);
    return rc < 0 ? NULL : x->address;
}

/* ---- life ---- */

int sl_kafka_log_extra_new(sl_log_backend *b, sl_error *err)
{
    const sl_kafka_log_conf *lc = b->route->log.priv;
    kl_extra *x = calloc(1, sizeof *x);
    if (!x)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    b->extra = x;
    x->b = b;
    x->replies = strdup(lc->replies);
    x->dead_letters = strdup(lc->dead_letters);
    pthread_rwlock_init(&x->lock, NULL);
    pthread_mutex_init(&x->wmu, NULL);
    pthread_cond_init(&x->wcv, NULL);
    x->pcl.k = x->rcl.k = b->k;
    snprintf(x->pcl.role, sizeof x->pcl.role, "reply producer of route %s", b->route->name);
    snprintf(x->rcl.role, sizeof x->rcl.role, "replies reader of route %s", b->route->name);
    if (!x->replies || !x->dead_letters)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return 0;
}

void sl_kafka_log_extra_stop(sl_log_backend *b)
{
    kl_extra *x = b->extra;
    if (!x)
        return;
    pthread_rwlock_wrlock(&x->lock);
    bool was = x->closed;
    x->closed = true;
    pthread_rwlock_unlock(&x->lock);
    if (was)
        return;
    if (x->prod && rd_kafka_flush(x->prod, KX_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_purge(x->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    atomic_store(&x->stop, true);
    if (x->prod) {
        pthread_join(x->prod_thread, NULL);
        rd_kafka_poll(x->prod, 0); /* the purged ones' reports wake their waiters */
        rd_kafka_destroy(x->prod);
        x->prod = NULL;
    }
    if (x->reader) {
        pthread_join(x->reader_thread, NULL);
        sl_kafka_log_reader_close(&x->reader);
    }
}

void sl_kafka_log_extra_free(sl_log_backend *b)
{
    kl_extra *x = b->extra;
    if (!x)
        return;
    sl_kafka_log_extra_stop(b);
    pthread_rwlock_destroy(&x->lock);
    pthread_mutex_destroy(&x->wmu);
    pthread_cond_destroy(&x->wcv);
    free(x->replies);
    free(x->dead_letters);
    free(x);
    b->extra = NULL;
}

const char *sl_kafka_log_dead_letter_topic(sl_log_backend *b)
{
    return b->extra->dead_letters;
}
