/* The route engine: inputs append to a route's topic; one worker per
 * partition reads batches in order, runs the steps, fans out to every
 * output, retries with backoff, dead-letters permanent failures and commits
 * its offset only when every output has acknowledged (the synchronous half of
 * half-sync/half-async). */
#include "route.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "fnv.h"
#include "gateway.h"
#include "logging.h"
#include "lua_expr.h"
#include "lua_host.h"
#include "step.h"

#define BATCH_MAX_RECORDS 512
#define BATCH_MAX_BYTES (4u << 20)
#define WATCH_BUCKETS 1024

/* One element of `to:` at run time. */
typedef struct sl_output_rt {
    const sl_output_conf *conf;
    sl_connector *conn;  /* NULL for topic outputs */
    sl_breaker *breaker; /* the connector's, or NULL */
    sl_topic *topic;     /* topic outputs */
    sl_counter *out_total;
    sl_counter *failed_total;
    sl_counter *retried_total;
} sl_output_rt;

typedef struct sl_watch {
    char id[SL_ID_LEN + 1];
    sl_route_done_fn fn;
    void *arg;
    struct sl_watch *next;
} sl_watch;

/* Per message bookkeeping while a batch is being delivered. */
typedef struct sl_item {
    sl_msg *msg;      /* after the steps */
    uint32_t pending; /* bit i set: output i still has to acknowledge */
    int attempts;
    bool dead;      /* dead-lettered */
    bool attempted; /* some output really tried it in this round */
    size_t rec;     /* the record (index in the batch) it came from */
    char error[256];
    int status;
} sl_item;

typedef struct sl_worker {
    sl_route *route;
    int index;
    sl_partition *part;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;
    bool paused;
    bool rewind;
    int64_t rewind_to;
    atomic_int_fast64_t committed;
    atomic_int head_attempts;
    char last_error[256]; /* under mu */
    sl_step **steps;      /* this worker's own (a Lua state belongs to one worker) */
    size_t n_steps;
    sl_lua_expr **when; /* when[i]: output i's compiled `when:`, or NULL */
    sl_gauge *lag;
    sl_batch batch;
} sl_worker;

struct sl_route {
    sl_gateway *gw;
    const sl_route_conf *conf;
    sl_topic *topic;
    sl_topic *dlq;
    int n_parts;
    sl_worker *workers;
    sl_output_rt *outs;
    size_t n_outs;
    atomic_uint rr;
    bool count_in_on_read; /* topic-fed routes count messages_in when read */
    sl_counter *in_total;
    sl_counter *dlq_total;
    sl_counter *dropped_total;
    pthread_mutex_t redrive_mu;
    pthread_mutex_t watch_mu;
    atomic_int n_watches;
    sl_watch *watches[WATCH_BUCKETS];
};

/* Kafka's murmur2 would let keys land where Kafka puts them; FNV-1a is
 * enough for an embedded log and cheap. */
static uint64_t hash_key(const char *key, size_t len)
{
    return sl_fnv1a64(key, len);
}

static unsigned watch_bucket(const char *id)
{
    return (unsigned)(hash_key(id, strlen(id)) % WATCH_BUCKETS);
}

static double lag_gauge(void *arg)
{
    sl_worker *w = arg;
    int64_t end = sl_partition_end_offset(w->part);
    int64_t committed = atomic_load(&w->committed);
    return end > committed ? (double)(end - committed) : 0.0;
}

static int open_outputs(sl_route *r, sl_error *err)
{
    sl_gateway *gw = r->gw;
    const sl_route_conf *conf = r->conf;
    if (conf->n_to > 32)
        return sl_error_set(err, SL_ECONFIG, "route %s: at most 32 outputs, got %zu", conf->name,
                            conf->n_to);
    r->outs = calloc(conf->n_to, sizeof *r->outs);
    if (!r->outs)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    r->n_outs = conf->n_to;
    for (size_t i = 0; i < conf->n_to; i++) {
        const sl_output_conf *oc = &conf->to[i];
        sl_output_rt *o = &r->outs[i];
        o->conf = oc;
        if (oc->connector) {
            o->conn = sl_gateway_connector(gw, oc->connector);
            if (!o->conn || !o->conn->type->send)
                return sl_error_set(err, SL_ECONFIG,
                                    "route %s: output %s: connector %s cannot send", conf->name,
                                    oc->name, oc->connector);
            o->breaker = sl_gateway_breaker(gw, oc->connector);
        } else {
            o->topic = sl_log_topic(gw->log, oc->topic, 1, err);
            if (!o->topic)
                return -1;
        }
        char rname[256], oname[256], labels[600];
        sl_metrics_escape(conf->name, rname, sizeof rname);
        sl_metrics_escape(oc->name, oname, sizeof oname);
        snprintf(labels, sizeof labels, "route=\"%s\",output=\"%s\"", rname, oname);
        o->out_total = sl_metrics_counter(gw->metrics, "sluice_messages_out_total",
                                          "Messages delivered to an output.", labels);
        o->failed_total = sl_metrics_counter(
            gw->metrics, "sluice_messages_failed_total",
            "Messages that failed permanently at an output (dead-lettered).", labels);
        o->retried_total = sl_metrics_counter(
            gw->metrics, "sluice_messages_retried_total",
            "Delivery attempts that failed transiently and were retried.", labels);
    }
    return 0;
}

/* ctx.http from Lua steps, through the named connector's circuit breaker:
 * while it is open the call fails at once with "circuit open". */
static int ctx_http_with_breaker(void *arg, const char *connector, const sl_http_call_req *req,
                                 sl_http_call_resp *resp)
{
    sl_gateway *gw = arg;
    sl_breaker *b = sl_gateway_breaker(gw, connector);
    if (b && sl_breaker_acquire(b, 1) == 0) {
        memset(resp, 0, sizeof *resp);
        resp->result = SL_RETRY;
        snprintf(resp->error, sizeof resp->error, "circuit open");
        return SL_RETRY;
    }
    int rc = sl_lua_http_default(gw->conf, connector, req, resp);
    if (b)
        sl_breaker_record(b, rc != SL_RETRY);
    return rc;
}

sl_route *sl_route_new(sl_gateway *gw, const sl_route_conf *conf, sl_error *err)
{
    sl_route *r = calloc(1, sizeof *r);
    if (!r) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    r->gw = gw;
    r->conf = conf;
    pthread_mutex_init(&r->watch_mu, NULL);
    pthread_mutex_init(&r->redrive_mu, NULL);

    const char *topic = conf->from.topic ? conf->from.topic : conf->name;
    r->count_in_on_read = conf->from.topic != NULL;
    r->topic = sl_log_topic(gw->log, topic, conf->partitions > 0 ? conf->partitions : 1, err);
    if (!r->topic)
        goto fail;
    r->n_parts = sl_topic_partition_count(r->topic);
    if (conf->partitions > 0 && r->n_parts != conf->partitions)
        sl_warn("route", "route %s: topic %s has %d partitions on disk, config says %d; using %d",
                conf->name, topic, r->n_parts, conf->partitions, r->n_parts);
    r->dlq = sl_log_topic(gw->log, conf->dead_letter_topic, 1, err);
    if (!r->dlq)
        goto fail;
    if (open_outputs(r, err) < 0)
        goto fail;

    char rname[256], labels[300];
    sl_metrics_escape(conf->name, rname, sizeof rname);
    snprintf(labels, sizeof labels, "route=\"%s\"", rname);
    r->in_total = sl_metrics_counter(gw->metrics, "sluice_messages_in_total",
                                     "Messages accepted into a route's log.", labels);
    r->dlq_total = sl_metrics_counter(gw->metrics, "sluice_dead_letter_total",
                                      "Messages sent to a route's dead letter topic.", labels);
    r->dropped_total = sl_metrics_counter(gw->metrics, "sluice_messages_dropped_total",
                                          "Messages dropped by a route's steps.", labels);

    r->workers = calloc((size_t)r->n_parts, sizeof *r->workers);
    if (!r->workers) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < r->n_parts; i++) {
        sl_worker *w = &r->workers[i];
        w->route = r;
        w->index = i;
        w->part = sl_topic_partition(r->topic, i);
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cond, NULL);
        sl_batch_init(&w->batch);
        if (sl_steps_build(gw, conf, &w->steps, &w->n_steps, err) < 0)
            goto fail;
        for (size_t s = 0; s < w->n_steps; s++)
            sl_lua_step_set_http(w->steps[s], ctx_http_with_breaker, gw); /* lua steps only */
        w->when = calloc(r->n_outs, sizeof *w->when);
        if (!w->when) {
            sl_error_set(err, SL_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t oi = 0; oi < r->n_outs; oi++) {
            const sl_output_conf *oc = &conf->to[oi];
            if (oc->when && !(w->when[oi] = sl_lua_expr_compile(oc->when, &oc->pos, err)))
                goto fail;
        }
        int64_t c = sl_partition_committed(w->part, conf->name);
        if (c < 0) {
            /* a consumer holds retention back only once it has an offset */
            c = sl_partition_start_offset(w->part);
            if (sl_partition_commit(w->part, conf->name, c, err) < 0)
                goto fail;
        }
        atomic_store(&w->committed, c);
        snprintf(labels, sizeof labels, "route=\"%s\",partition=\"%d\"", rname, i);
        w->lag = sl_metrics_gauge(gw->metrics, "sluice_route_lag",
                                  "Records in a route partition not yet committed.", labels,
                                  lag_gauge, w);
    }
    return r;
fail:
    sl_route_free(r);
    return NULL;
}

/* ---- watches (reply: sync) ---- */

int sl_route_watch(sl_route *r, const char *id, sl_route_done_fn fn, void *arg)
{
    sl_watch *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    snprintf(w->id, sizeof w->id, "%s", id);
    w->fn = fn;
    w->arg = arg;
    unsigned b = watch_bucket(id);
    pthread_mutex_lock(&r->watch_mu);
    w->next = r->watches[b];
    r->watches[b] = w;
    atomic_fetch_add(&r->n_watches, 1);
    pthread_mutex_unlock(&r->watch_mu);
    return 0;
}

static sl_watch *take_watch(sl_route *r, const char *id)
{
    unsigned b = watch_bucket(id);
    sl_watch *found = NULL;
    pthread_mutex_lock(&r->watch_mu);
    for (sl_watch **pp = &r->watches[b]; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            found = *pp;
            *pp = found->next;
            atomic_fetch_sub(&r->n_watches, 1);
            break;
        }
    }
    pthread_mutex_unlock(&r->watch_mu);
    return found;
}

int sl_route_unwatch(sl_route *r, const char *id)
{
    sl_watch *w = take_watch(r, id);
    if (!w)
        return -1;
    free(w);
    return 0;
}

static void notify_done(sl_route *r, const char *id, sl_msg_state st, const sl_msg *msg,
                        const char *error)
{
    if (atomic_load(&r->n_watches) == 0)
        return;
    sl_watch *w = take_watch(r, id);
    if (!w)
        return;
    w->fn(w->arg, id, st, msg ? msg->body : NULL, msg ? msg->body_len : 0,
          msg ? sl_msg_get_header(msg, SL_HDR_CONTENT_TYPE, NULL) : NULL, error);
    free(w);
}

/* ---- append (inputs) ---- */

static int append_msg(sl_partition *p, const sl_msg *msg, sl_error *err, int64_t *offset)
{
    sl_header stack_hdrs[32];
    sl_header *hdrs = stack_hdrs;
    size_t cap = sizeof stack_hdrs / sizeof stack_hdrs[0];
    if (msg->n_headers + 1 > cap) {
        cap = msg->n_headers + 1;
        hdrs = malloc(cap * sizeof *hdrs);
        if (!hdrs)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    sl_record rec;
    int rc = sl_msg_to_record(msg, &rec, hdrs, cap);
    if (rc == 0) {
        *offset = sl_partition_append(p, &rec, err);
        rc = *offset < 0 ? -1 : 0;
    } else {
        sl_error_set(err, SL_EINVAL, "too many headers");
    }
    if (hdrs != stack_hdrs)
        free(hdrs);
    return rc;
}

static int pick_partition(sl_route *r, const sl_msg *msg)
{
    if (r->n_parts == 1)
        return 0;
    if (msg->key && msg->key_len > 0)
        return (int)(hash_key(msg->key, msg->key_len) % (uint64_t)r->n_parts);
    return (int)(atomic_fetch_add(&r->rr, 1) % (unsigned)r->n_parts);
}

int sl_route_append(sl_route *r, sl_msg *msg, sl_error *err)
{
    if (r->conf->key && !msg->key) {
        char *key = NULL;
        size_t len = 0;
        if (sl_msg_eval_key(msg, r->conf->key, &key, &len, err) < 0)
            return -1;
        msg->key = key;
        msg->key_len = len;
    }
    int part = pick_partition(r, msg);
    int64_t off;
    if (append_msg(sl_topic_partition(r->topic, part), msg, err, &off) < 0)
        return -1;
    msg->partition = part;
    msg->offset = off;
    sl_status_accepted(r->gw->status, msg->id, r->conf->name, part, off);
    sl_counter_add(r->in_total, 1);
    return 0;
}

/* ---- accessors ---- */

const char *sl_route_name(const sl_route *r)
{
    return r->conf->name;
}

const sl_route_conf *sl_route_get_conf(const sl_route *r)
{
    return r->conf;
}

int sl_route_partition_count(const sl_route *r)
{
    return r->n_parts;
}

sl_partition *sl_route_partition(sl_route *r, int i)
{
    if (i < 0 || i >= r->n_parts)
        return NULL;
    return r->workers[i].part;
}

int sl_route_get_partition_info(sl_route *r, int i, sl_route_partition_info *info)
{
    if (i < 0 || i >= r->n_parts)
        return -1;
    sl_worker *w = &r->workers[i];
    memset(info, 0, sizeof *info);
    info->partition = i;
    info->start_offset = sl_partition_start_offset(w->part);
    info->end_offset = sl_partition_end_offset(w->part);
    info->committed = atomic_load(&w->committed);
    info->lag = info->end_offset > info->committed ? info->end_offset - info->committed : 0;
    info->attempts = atomic_load(&w->head_attempts);
    pthread_mutex_lock(&w->mu);
    info->paused = w->paused;
    snprintf(info->last_error, sizeof info->last_error, "%s", w->last_error);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int sl_route_rewind(sl_route *r, int64_t offset, int64_t timestamp_ms, sl_error *err)
{
    if (offset < 0 && timestamp_ms < 0)
        return sl_error_set(err, SL_EINVAL, "rewind needs an offset or a timestamp");
    for (int i = 0; i < r->n_parts; i++) {
        sl_worker *w = &r->workers[i];
        int64_t to = offset >= 0 ? offset : sl_partition_offset_for_time(w->part, timestamp_ms);
        int64_t start = sl_partition_start_offset(w->part);
        int64_t end = sl_partition_end_offset(w->part);
        if (to < start)
            to = start;
        if (to > end)
            to = end;
        pthread_mutex_lock(&w->mu);
        w->rewind = true;
        w->rewind_to = to;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
        sl_partition_wake(w->part);
        if (!w->started) {
            /* not running: apply it now so that the next start reads from there */
            if (sl_partition_commit(w->part, r->conf->name, to, err) < 0)
                return -1;
            atomic_store(&w->committed, to);
            w->rewind = false;
        }
    }
    sl_info("route", "route %s: rewind to %s %" PRId64, r->conf->name,
            offset >= 0 ? "offset" : "timestamp", offset >= 0 ? offset : timestamp_ms);
    return 0;
}

void sl_route_pause(sl_route *r, bool paused)
{
    for (int i = 0; i < r->n_parts; i++) {
        sl_worker *w = &r->workers[i];
        pthread_mutex_lock(&w->mu);
        w->paused = paused;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
        sl_partition_wake(w->part);
    }
    sl_info("route", "route %s %s", r->conf->name, paused ? "paused" : "resumed");
}

/* ---- the worker ---- */

/* Sleeps up to ms, returning early (true) on stop or rewind. */
static bool sleep_interruptible(sl_worker *w, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->stop && !w->rewind) {
        if (pthread_cond_timedwait(&w->cond, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    bool r = w->stop || w->rewind;
    pthread_mutex_unlock(&w->mu);
    return r;
}

static uint64_t backoff_ms(const sl_retry_conf *rc, int attempts, unsigned *seed)
{
    double b = (double)rc->initial_backoff_ms;
    for (int i = 1; i < attempts && b < (double)rc->max_backoff_ms; i++)
        b *= rc->multiplier > 1.0 ? rc->multiplier : 2.0;
    if (b > (double)rc->max_backoff_ms)
        b = (double)rc->max_backoff_ms;
    /* equal jitter: half fixed, half random, so retries of many partitions spread */
    double half = b / 2.0;
    return (uint64_t)(half + half * ((double)rand_r(seed) / (double)RAND_MAX));
}

/* Delivers to a topic output: append all, then wait for the last to be
 * durable. */
static void send_to_topic(sl_output_rt *o, sl_msg *const *msgs, size_t n, sl_send_result *res)
{
    int nparts = sl_topic_partition_count(o->topic);
    int64_t last[64];
    int nl = nparts < 64 ? nparts : 64;
    for (int i = 0; i < nl; i++)
        last[i] = -1;
    for (size_t i = 0; i < n; i++) {
        const sl_msg *m = msgs[i];
        int part = 0;
        if (nparts > 1)
            part = m->key && m->key_len ? (int)(hash_key(m->key, m->key_len) % (uint64_t)nparts)
                                        : (int)(i % (size_t)nparts);
        sl_error e;
        int64_t off;
        if (append_msg(sl_topic_partition(o->topic, part), m, &e, &off) < 0) {
            sl_send_result_set(&res[i], SL_RETRY, 0, "append to topic %s: %s",
                               sl_topic_name(o->topic), e.msg);
            continue;
        }
        if (part < nl)
            last[part] = off;
        sl_send_result_set(&res[i], SL_OK, 0, NULL);
    }
    for (int p = 0; p < nl; p++) {
        sl_error e;
        if (last[p] >= 0 &&
            sl_partition_wait_durable(sl_topic_partition(o->topic, p), last[p], -1, &e) < 0) {
            for (size_t i = 0; i < n; i++)
                if (res[i].result == SL_OK)
                    sl_send_result_set(&res[i], SL_RETRY, 0, "topic %s not durable: %s",
                                       sl_topic_name(o->topic), e.msg);
        }
    }
}

/* Sends every item with output oi pending to output oi and updates items.
 * With a breaker, only as many items as it grants go out (none when it is
 * open, a few probes when half-open); the others wait without an attempt.
 * Returns true when the breaker held some items back. */
static bool deliver_output(sl_worker *w, size_t oi, sl_item *items, size_t n, sl_msg **scratch,
                           size_t *idx, sl_send_result *res)
{
    sl_route *r = w->route;
    sl_output_rt *o = &r->outs[oi];
    uint32_t bit = 1u << oi;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].msg && !items[i].dead && (items[i].pending & bit)) {
            scratch[k] = items[i].msg;
            idx[k++] = i;
        }
    }
    if (k == 0)
        return false;
    bool blocked = false;
    if (o->breaker) {
        size_t granted = sl_breaker_acquire(o->breaker, k);
        if (granted < k) {
            blocked = true;
            for (size_t j = granted; j < k; j++) {
                sl_item *it = &items[idx[j]];
                snprintf(it->error, sizeof it->error, "output %s: circuit open for connector %s",
                         o->conf->name, o->conf->connector);
            }
            k = granted;
        }
        if (k == 0)
            return true;
    }
    memset(res, 0, k * sizeof *res);
    if (o->conn)
        o->conn->type->send(o->conn, o->conf, scratch, k, res);
    else
        send_to_topic(o, scratch, k, res);
    for (size_t j = 0; j < k; j++) {
        sl_item *it = &items[idx[j]];
        if (res[j].result == SL_RETRY && res[j].held_back) {
            if (o->breaker)
                sl_breaker_release(o->breaker); /* never reached the partner */
            if (!it->error[0])
                snprintf(it->error, sizeof it->error, "output %s: %s", o->conf->name, res[j].error);
            continue; /* not sent: not an attempt */
        }
        if (o->breaker)
            sl_breaker_record(o->breaker, res[j].result != SL_RETRY);
        it->attempted = true;
        switch (res[j].result) {
            case SL_OK:
                it->pending &= ~bit;
                sl_counter_add(o->out_total, 1);
                break;
            case SL_FAIL:
                it->dead = true;
                it->status = res[j].status;
                snprintf(it->error, sizeof it->error, "output %s: %s", o->conf->name, res[j].error);
                sl_counter_add(o->failed_total, 1);
                break;
            default:
                it->status = res[j].status;
                snprintf(it->error, sizeof it->error, "output %s: %s", o->conf->name, res[j].error);
                sl_counter_add(o->retried_total, 1);
                break;
        }
    }
    return blocked;
}

/* How long the worker waits for the breakers that held items back: until the
 * first of them lets probes through, at least 10 ms. */
static uint64_t breaker_wait_ms(sl_route *r, const bool *blocked)
{
    int64_t wait = -1;
    for (size_t oi = 0; oi < r->n_outs; oi++) {
        if (!blocked[oi] || !r->outs[oi].breaker)
            continue;
        int64_t t = sl_breaker_retry_in_ms(r->outs[oi].breaker);
        if (wait < 0 || t < wait)
            wait = t;
    }
    return wait < 10 ? 10 : (uint64_t)wait;
}

/* Adds the dead-letter headers to m, appends it to r's dead letter topic and
 * waits until that is durable. Returns 0, or -1 with e. */
static int dlq_append(sl_route *r, sl_msg *m, const char *error, int attempts, int status,
                      int partition, sl_error *e)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%d", attempts);
    int rc = sl_msg_set_header(m, "x-sluice-error", error, strlen(error));
    rc |= sl_msg_set_header(m, "x-sluice-attempts", buf, strlen(buf));
    snprintf(buf, sizeof buf, "%d", status);
    rc |= sl_msg_set_header(m, "x-sluice-status", buf, strlen(buf));
    rc |= sl_msg_set_header(m, "x-sluice-route", r->conf->name, strlen(r->conf->name));
    if (partition >= 0) {
        snprintf(buf, sizeof buf, "%d", partition);
        rc |= sl_msg_set_header(m, "x-sluice-partition", buf, strlen(buf));
        snprintf(buf, sizeof buf, "%" PRId64, m->offset);
        rc |= sl_msg_set_header(m, "x-sluice-offset", buf, strlen(buf));
    }
    if (rc != 0)
        return sl_error_set(e, SL_ENOMEM, "out of memory adding dead-letter headers");
    int64_t off;
    sl_partition *p = sl_topic_partition(r->dlq, 0);
    if (append_msg(p, m, e, &off) < 0 || sl_partition_wait_durable(p, off, -1, e) < 0)
        return -1;
    sl_counter_add(r->dlq_total, 1);
    return 0;
}

/* Appends a failed message to the route's dead letter topic with its error,
 * and waits until that is durable. Returns -1 when it cannot (the partition
 * then retries the dead-lettering: nothing is lost). */
static int dead_letter(sl_worker *w, sl_item *it)
{
    sl_route *r = w->route;
    sl_msg *m = it->msg;
    sl_error e;
    if (dlq_append(r, m, it->error, it->attempts, it->status, w->index, &e) < 0) {
        sl_err("route", "route %s: cannot dead-letter message %s: %s", r->conf->name, m->id, e.msg);
        return -1;
    }
    sl_warn("route", "route %s: message %s dead-lettered to %s after %d attempt(s): %s",
            r->conf->name, m->id, r->conf->dead_letter_topic, it->attempts, it->error);
    return 0;
}

int sl_route_dead_letter(sl_route *r, sl_msg *msg, const char *error, sl_error *err)
{
    if (dlq_append(r, msg, error, 0, 0, -1, err) < 0)
        return -1;
    sl_status_accepted(r->gw->status, msg->id, r->conf->name, -1, -1);
    sl_status_update(r->gw->status, msg->id, SL_MSG_DEAD_LETTERED, 0, error);
    sl_warn("route", "route %s: message %s from its input dead-lettered to %s: %s", r->conf->name,
            msg->id, r->conf->dead_letter_topic, error);
    return 0;
}

static void set_last_error(sl_worker *w, const char *e)
{
    pthread_mutex_lock(&w->mu);
    snprintf(w->last_error, sizeof w->last_error, "%s", e ? e : "");
    pthread_mutex_unlock(&w->mu);
}

/* Delivers every item of the batch to every output, retrying transient
 * failures with backoff until each item is delivered or dead-lettered.
 * Returns the number of leading items that are finished (all of them unless
 * the worker was interrupted). */
static size_t deliver_batch(sl_worker *w, sl_item *items, size_t n, unsigned *seed)
{
    sl_route *r = w->route;
    const sl_retry_conf *rc = &r->conf->retry;
    sl_msg **scratch = malloc(n * sizeof *scratch);
    size_t *idx = malloc(n * sizeof *idx);
    sl_send_result *res = malloc(n * sizeof *res);
    size_t done = 0;
    if (!scratch || !idx || !res)
        goto out;
    for (;;) {
        for (size_t i = 0; i < n; i++)
            items[i].attempted = false;
        bool blocked[32] = {false};
        bool any_blocked = false;
        for (size_t oi = 0; oi < r->n_outs; oi++) {
            blocked[oi] = deliver_output(w, oi, items, n, scratch, idx, res);
            any_blocked |= blocked[oi];
        }
        bool retry = false;
        bool any_attempted = false;
        int head_attempts = 0;
        const char *head_error = NULL;
        for (size_t i = 0; i < n; i++) {
            sl_item *it = &items[i];
            if (!it->msg || it->pending == 0)
                continue;
            if (it->attempted || it->dead)
                it->attempts++;
            any_attempted |= it->attempted;
            if (!it->dead && it->attempts >= rc->max_attempts) {
                it->dead = true;
                char tmp[256];
                snprintf(tmp, sizeof tmp, "%s (gave up after %d attempts)", it->error,
                         it->attempts);
                snprintf(it->error, sizeof it->error, "%s", tmp);
            }
            if (it->dead)
                continue;
            retry = true;
            if (!head_error) {
                head_attempts = it->attempts;
                head_error = it->error;
            }
            sl_status_update(r->gw->status, it->msg->id, SL_MSG_RETRYING, it->attempts, it->error);
        }
        /* Dead letters first, so that the retry wait does not hold them. */
        for (size_t i = 0; i < n; i++) {
            sl_item *it = &items[i];
            if (it->msg && it->dead && it->pending != 0) {
                while (dead_letter(w, it) < 0) {
                    if (sleep_interruptible(w, 1000))
                        goto out;
                }
                it->pending = 0;
                sl_status_update(r->gw->status, it->msg->id, SL_MSG_DEAD_LETTERED, it->attempts,
                                 it->error);
                notify_done(r, it->msg->id, SL_MSG_DEAD_LETTERED, it->msg, it->error);
            }
        }
        if (!retry) {
            done = n;
            break;
        }
        atomic_store(&w->head_attempts, head_attempts);
        set_last_error(w, head_error);
        /* An open breaker pauses the partition: no attempt was burned, so
         * wait for the breaker rather than back off. */
        uint64_t wait = any_blocked && !any_attempted ? breaker_wait_ms(r, blocked)
                                                      : backoff_ms(rc, head_attempts, seed);
        sl_debug("route", "route %s partition %d: retry in %" PRIu64 " ms (attempt %d): %s",
                 r->conf->name, w->index, wait, head_attempts, head_error);
        if (sleep_interruptible(w, wait))
            break;
    }
    atomic_store(&w->head_attempts, 0);
    set_last_error(w, NULL);
out:
    if (done < n) {
        /* interrupted: only the finished prefix counts */
        done = 0;
        while (done < n && (!items[done].msg || items[done].pending == 0))
            done++;
    }
    free(scratch);
    free(idx);
    free(res);
    return done;
}

/* A growable array of items. */
typedef struct item_vec {
    sl_item *v;
    size_t n, cap;
} item_vec;

/* Appends a zeroed item for msg from record rec. Returns it, or NULL when
 * out of memory (msg is then not taken). */
static sl_item *push_item(item_vec *iv, sl_msg *msg, size_t rec)
{
    if (iv->n == iv->cap) {
        size_t cap = iv->cap ? iv->cap * 2 : 64;
        sl_item *v = realloc(iv->v, cap * sizeof *v);
        if (!v)
            return NULL;
        iv->v = v;
        iv->cap = cap;
    }
    sl_item *it = &iv->v[iv->n++];
    memset(it, 0, sizeof *it);
    it->msg = msg;
    it->rec = rec;
    return it;
}

static void free_items(item_vec *iv)
{
    for (size_t i = 0; i < iv->n; i++)
        sl_msg_free(iv->v[i].msg);
    free(iv->v);
    iv->v = NULL;
    iv->n = iv->cap = 0;
}

/* Runs one step over every live item of cur into next: a dropped message
 * is freed, a failed one is kept (dead, for the dead letter topic), a split
 * adds its new messages right after their source. Returns -1 when out of
 * memory. */
static int run_step_over(sl_worker *w, size_t s, item_vec *cur, item_vec *next)
{
    sl_route *r = w->route;
    for (size_t i = 0; i < cur->n; i++) {
        sl_item it = cur->v[i];
        cur->v[i].msg = NULL; /* moved */
        if (it.dead) {
            sl_item *d = push_item(next, it.msg, it.rec);
            if (!d) {
                sl_msg_free(it.msg);
                return -1;
            }
            *d = it;
            continue;
        }
        double t0 = sl_mono_seconds();
        sl_error e;
        sl_error_clear(&e);
        sl_msg **more = NULL;
        size_t n_more = 0;
        int rc = sl_step_process_split(w->steps[s], it.msg, &more, &n_more, &e);
        sl_step_observe(w->steps[s], sl_mono_seconds() - t0);
        if (rc == SL_STEP_DROP) {
            sl_counter_add(r->dropped_total, 1);
            sl_status_update(r->gw->status, it.msg->id, SL_MSG_DROPPED, 0, NULL);
            notify_done(r, it.msg->id, SL_MSG_DROPPED, NULL, NULL);
            sl_msg_free(it.msg);
            continue;
        }
        sl_item *out = push_item(next, it.msg, it.rec);
        if (!out) {
            sl_msg_free(it.msg);
            rc = -1;
        } else if (rc == SL_STEP_FAIL) {
            out->dead = true;
            snprintf(out->error, sizeof out->error, "step %zu (%s): %s", s + 1,
                     sl_step_type_name(w->steps[s]), e.msg);
        }
        for (size_t k = 0; k < n_more; k++) {
            if (rc < 0 || !push_item(next, more[k], it.rec)) {
                sl_msg_free(more[k]);
                rc = -1;
            }
        }
        free(more);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Runs the steps on m (taken) from record rec and appends what comes out to
 * iv: nothing when a step dropped it, one item, or several when a step split
 * it; a failed step leaves a dead item. Returns -1 when out of memory
 * (nothing is appended then). */
static int run_steps(sl_worker *w, sl_msg *m, size_t rec, item_vec *iv)
{
    item_vec cur = {0}, next = {0};
    if (!push_item(&cur, m, rec)) {
        sl_msg_free(m);
        return -1;
    }
    for (size_t s = 0; s < w->n_steps; s++) {
        int rc = run_step_over(w, s, &cur, &next);
        free_items(&cur);
        cur = next;
        memset(&next, 0, sizeof next);
        if (rc < 0) {
            free_items(&cur);
            return -1;
        }
    }
    for (size_t i = 0; i < cur.n; i++) {
        sl_item *it = push_item(iv, cur.v[i].msg, rec);
        if (!it) {
            /* undo this record's items: it is read again later */
            while (iv->n > 0 && iv->v[iv->n - 1].rec == rec) {
                iv->n--;
                iv->v[iv->n].msg = NULL;
            }
            free_items(&cur);
            return -1;
        }
        *it = cur.v[i];
        cur.v[i].msg = NULL;
    }
    free_items(&cur);
    return 0;
}

/* Content-based routing: clears the pending bit of every output whose
 * `when:` is false for the message; an expression that fails is a permanent
 * error (dead letter). */
static void select_outputs(sl_worker *w, sl_item *it)
{
    for (size_t oi = 0; oi < w->route->n_outs; oi++) {
        if (!w->when[oi])
            continue;
        bool yes = false;
        sl_error e;
        if (sl_lua_expr_eval(w->when[oi], it->msg, &yes, &e) < 0) {
            it->dead = true;
            it->pending = 1;
            snprintf(it->error, sizeof it->error, "output %s: when: %s",
                     w->route->outs[oi].conf->name, e.msg);
            return;
        }
        if (!yes)
            it->pending &= ~(1u << oi);
    }
}

static void process_batch(sl_worker *w, unsigned *seed, int64_t *next)
{
    sl_route *r = w->route;
    sl_batch *b = &w->batch;
    size_t nrec = b->count;
    item_vec iv = {0};
    uint32_t all = r->n_outs >= 32 ? 0xffffffffu : ((1u << r->n_outs) - 1);
    for (size_t i = 0; i < b->count; i++) {
        sl_error e;
        sl_msg *m = sl_msg_from_record(&b->records[i], w->index, &e);
        if (!m || run_steps(w, m, i, &iv) < 0) {
            nrec = i; /* out of memory: stop here; the rest is read again */
            break;
        }
        if (r->count_in_on_read && b->records[i].offset >= atomic_load(&w->committed))
            sl_counter_add(r->in_total, 1);
    }
    for (size_t i = 0; i < iv.n; i++) {
        sl_item *it = &iv.v[i];
        it->pending = it->dead ? 1 : all;
        if (!it->dead)
            select_outputs(w, it);
    }
    size_t done = iv.n ? deliver_batch(w, iv.v, iv.n, seed) : 0;
    for (size_t i = 0; i < done; i++) {
        sl_item *it = &iv.v[i];
        if (!it->dead) {
            sl_status_update(r->gw->status, it->msg->id, SL_MSG_DELIVERED, it->attempts + 1, NULL);
            notify_done(r, it->msg->id, SL_MSG_DELIVERED, it->msg, NULL);
        }
    }
    /* The commit follows records: a record is done when every item it made
     * (none, when its message was dropped) is done. */
    int64_t to;
    if (done < iv.n)
        to = b->records[iv.v[done].rec].offset;
    else
        to = nrec == b->count ? b->next_offset : b->records[nrec].offset;
    if (nrec > 0 && to > b->records[0].offset) {
        sl_error e;
        while (sl_partition_commit(w->part, r->conf->name, to, &e) < 0) {
            sl_err("route", "route %s partition %d: commit failed: %s", r->conf->name, w->index,
                   e.msg);
            if (sleep_interruptible(w, 1000))
                break;
        }
        atomic_store(&w->committed, to);
        *next = to;
    } else if (nrec == 0) {
        sleep_interruptible(w, 100); /* out of memory on the first record: breathe */
    }
    free_items(&iv);
}

static void *worker_main(void *arg)
{
    sl_worker *w = arg;
    sl_route *r = w->route;
    unsigned seed = (unsigned)(sl_wall_ms() ^ (w->index * 2654435761u));
    int64_t next = atomic_load(&w->committed);
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (w->paused && !w->stop && !w->rewind)
            pthread_cond_wait(&w->cond, &w->mu);
        if (w->stop) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        if (w->rewind) {
            w->rewind = false;
            next = w->rewind_to;
            pthread_mutex_unlock(&w->mu);
            sl_error e;
            if (sl_partition_commit(w->part, r->conf->name, next, &e) < 0)
                sl_err("route", "route %s partition %d: commit on rewind failed: %s", r->conf->name,
                       w->index, e.msg);
            atomic_store(&w->committed, next);
            continue;
        }
        pthread_mutex_unlock(&w->mu);

        sl_error e;
        int n = sl_partition_read(w->part, next, BATCH_MAX_RECORDS, BATCH_MAX_BYTES, &w->batch, &e);
        if (n < 0) {
            sl_err("route", "route %s partition %d: read at offset %" PRId64 " failed: %s",
                   r->conf->name, w->index, next, e.msg);
            set_last_error(w, e.msg);
            sleep_interruptible(w, 1000);
            continue;
        }
        if (n == 0) {
            if (w->batch.next_offset > next)
                next = w->batch.next_offset; /* skipped past deleted segments */
            else if (sl_partition_wait_readable(w->part, next, 1000) < 0)
                break;
            continue;
        }
        process_batch(w, &seed, &next);
    }
    return NULL;
}

int sl_route_start(sl_route *r, sl_error *err)
{
    for (int i = 0; i < r->n_parts; i++) {
        sl_worker *w = &r->workers[i];
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0)
            return sl_error_set(err, SL_EIO, "route %s: cannot start worker %d: %s", r->conf->name,
                                i, strerror(rc));
        w->started = true;
    }
    return 0;
}

void sl_route_stop(sl_route *r)
{
    if (!r->workers)
        return;
    for (int i = 0; i < r->n_parts; i++) {
        sl_worker *w = &r->workers[i];
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
        sl_partition_wake(w->part);
    }
    for (int i = 0; i < r->n_parts; i++) {
        sl_worker *w = &r->workers[i];
        if (w->started) {
            pthread_join(w->thread, NULL);
            w->started = false;
        }
    }
}

void sl_route_free(sl_route *r)
{
    if (!r)
        return;
    if (r->workers) {
        sl_route_stop(r);
        for (int i = 0; i < r->n_parts; i++) {
            sl_worker *w = &r->workers[i];
            if (w->lag)
                sl_metrics_remove_gauge(r->gw->metrics, w->lag);
            sl_batch_free(&w->batch);
            sl_steps_free(w->steps, w->n_steps);
            for (size_t oi = 0; w->when && oi < r->n_outs; oi++)
                sl_lua_expr_free(w->when[oi]);
            free(w->when);
            pthread_mutex_destroy(&w->mu);
            pthread_cond_destroy(&w->cond);
        }
        free(r->workers);
    }
    for (unsigned b = 0; b < WATCH_BUCKETS; b++) {
        while (r->watches[b]) {
            sl_watch *w = r->watches[b];
            r->watches[b] = w->next;
            free(w);
        }
    }
    pthread_mutex_destroy(&r->watch_mu);
    pthread_mutex_destroy(&r->redrive_mu);
    free(r->outs);
    free(r);
}

/* ---- dead letters: list and redrive ---- */

#define REDRIVE_CONSUMER "redrive"

static const char *record_header(const sl_record *rec, const char *name)
{
    for (size_t i = 0; i < rec->n_headers; i++) {
        if (strcmp(rec->headers[i].name, name) == 0)
            return rec->headers[i].value;
    }
    return NULL;
}

void sl_dlq_entries_free(sl_dlq_entry *entries, size_t n)
{
    if (!entries)
        return;
    for (size_t i = 0; i < n; i++)
        free(entries[i].body);
    free(entries);
}

static int64_t redrive_cursor(sl_partition *p)
{
    int64_t c = sl_partition_committed(p, REDRIVE_CONSUMER);
    return c < 0 ? sl_partition_start_offset(p) : c;
}

int sl_route_dlq_list(sl_route *r, int64_t from, size_t limit, sl_dlq_entry **out, size_t *n,
                      int64_t *pending, sl_error *err)
{
    *out = NULL;
    *n = 0;
    sl_partition *p = sl_topic_partition(r->dlq, 0);
    int64_t cursor = redrive_cursor(p);
    int64_t end = sl_partition_end_offset(p);
    *pending = end > cursor ? end - cursor : 0;
    if (limit == 0)
        return 0;
    sl_dlq_entry *entries = calloc(limit, sizeof *entries);
    if (!entries)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    sl_batch b;
    sl_batch_init(&b);
    size_t k = 0;
    int64_t off = from;
    while (k < limit) {
        int got = sl_partition_read(p, off, limit - k, 8u << 20, &b, err);
        if (got < 0) {
            sl_batch_free(&b);
            sl_dlq_entries_free(entries, k);
            return -1;
        }
        if (got == 0)
            break;
        for (int i = 0; i < got && k < limit; i++) {
            const sl_record *rec = &b.records[i];
            sl_dlq_entry *e = &entries[k];
            e->offset = rec->offset;
            e->timestamp_ms = rec->timestamp_ms;
            const char *v = record_header(rec, SL_HDR_ID);
            snprintf(e->id, sizeof e->id, "%s", v ? v : "");
            v = record_header(rec, "x-sluice-error");
            snprintf(e->error, sizeof e->error, "%s", v ? v : "");
            v = record_header(rec, "x-sluice-status");
            e->status = v ? atoi(v) : 0;
            v = record_header(rec, "x-sluice-attempts");
            e->attempts = v ? atoi(v) : 0;
            e->redriven = rec->offset < cursor;
            e->body = malloc(rec->value_len + 1);
            if (!e->body) {
                sl_batch_free(&b);
                sl_dlq_entries_free(entries, k);
                return sl_error_set(err, SL_ENOMEM, "out of memory");
            }
            memcpy(e->body, rec->value, rec->value_len);
            e->body[rec->value_len] = '\0';
            e->body_len = rec->value_len;
            k++;
        }
        off = b.next_offset;
    }
    sl_batch_free(&b);
    *out = entries;
    *n = k;
    return 0;
}

/* A copy of a dead letter as it was before it failed: same id and key,
 * without the x-sluice-* headers the dead-lettering added. */
static sl_msg *undead(const sl_record *rec, sl_error *err)
{
    sl_msg *dead = sl_msg_from_record(rec, 0, err);
    if (!dead)
        return NULL;
    sl_msg *m = sl_msg_new();
    int rc = m ? 0 : -1;
    if (m) {
        memcpy(m->id, dead->id, sizeof m->id);
        m->timestamp_ms = dead->timestamp_ms;
        rc |= sl_msg_set_body(m, dead->body, dead->body_len);
        if (dead->key)
            rc |= sl_msg_set_key(m, dead->key, dead->key_len);
        for (size_t i = 0; i < dead->n_headers; i++) {
            const sl_msg_header *h = &dead->headers[i];
            if (strncmp(h->name, "x-sluice-", 9) != 0)
                rc |= sl_msg_set_header(m, h->name, h->value, h->value_len);
        }
    }
    sl_msg_free(dead);
    if (rc != 0) {
        sl_msg_free(m);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    return m;
}

int sl_route_dlq_redrive(sl_route *r, size_t *count, sl_error *err)
{
    *count = 0;
    pthread_mutex_lock(&r->redrive_mu);
    sl_partition *p = sl_topic_partition(r->dlq, 0);
    int64_t cursor = redrive_cursor(p);
    sl_batch b;
    sl_batch_init(&b);
    int rc = 0;
    for (;;) {
        int got = sl_partition_read(p, cursor, 256, 8u << 20, &b, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        int64_t last_off[64];
        int nparts = r->n_parts < 64 ? r->n_parts : 64;
        for (int i = 0; i < nparts; i++)
            last_off[i] = -1;
        int i;
        for (i = 0; i < got; i++) {
            sl_msg *m = undead(&b.records[i], err);
            if (!m || sl_route_append(r, m, err) < 0) {
                sl_msg_free(m);
                rc = -1;
                break;
            }
            if (m->partition < nparts)
                last_off[m->partition] = m->offset;
            sl_msg_free(m);
        }
        /* what was appended is made durable before the cursor moves past it */
        for (int k = 0; k < nparts; k++) {
            if (last_off[k] >= 0 &&
                sl_partition_wait_durable(sl_route_partition(r, k), last_off[k], -1, err) < 0) {
                rc = -1;
                i = 0;
            }
        }
        int64_t to = i == got ? b.next_offset : b.records[i].offset;
        if (i > 0 && sl_partition_commit(p, REDRIVE_CONSUMER, to, err) < 0)
            rc = -1;
        else if (i > 0) {
            *count += (size_t)i;
            cursor = to;
        }
        if (rc < 0)
            break;
    }
    sl_batch_free(&b);
    pthread_mutex_unlock(&r->redrive_mu);
    if (*count)
        sl_info("route", "route %s: %zu dead letter(s) redriven", r->conf->name, *count);
    return rc < 0 ? -1 : 0;
}
