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
#include <strings.h>
#include <time.h>

#include "breaker.h"
#include "clock.h"
#include "connector.h"
#include "dlq.h"
#include "expr.h"
#include "fnv.h"
#include "log_backend.h"
#include "logging.h"
#include "step.h"
#include "tail.h"
#include "thread_name.h"

#define BATCH_MAX_RECORDS 512
#define BATCH_MAX_BYTES (4u << 20)
/* Lazy offset commits: the offset file of a partition is written when the
 * committed offset is this many records or milliseconds past the one on disk,
 * before the worker sleeps (paused, backoff, breaker) or stops, and when it
 * has been idle for that long. A crash redelivers at most what these bound
 * (at least once, same ids). */
#define COMMIT_MAX_RECORDS 4096
#define COMMIT_MAX_MS 100
#define WATCH_BUCKETS 1024
#define BREAKER_HOLD_MIN_MS 500 /* shorter breaker waits do not pause a connector's log */

/* One element of `to:` at run time. */
typedef struct sl_output_rt {
    const sl_output_conf *conf;
    sl_connector *conn;  /* NULL for topic outputs */
    sl_breaker *breaker; /* the connector's, or NULL */
    bool watching;       /* this route watches breaker (first output using it) */
    sl_topic *topic;     /* topic outputs */
    sl_counter *out_total;
    sl_counter *failed_total;
    sl_counter *retried_total;
} sl_output_rt;

typedef struct sl_watch {
    char id[SL_ID_LEN + 1];
    sl_route_done_fn fn;
    void *arg;
    int reply_output; /* the output whose answer is wanted, or -1 */
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
    int step;       /* dead at step `step` (1-based); -1 before the outputs; 0 at an output */
    uint32_t only;  /* a redriven copy: the outputs it still owes (0: all, by `when:`) */
    bool view;      /* msg is a view of its record (sl_msg_view_record) in the worker's storage */
    char error[256];
    int status;
    const sl_output_conf *failed_out; /* the output that last refused or failed it, or NULL */
    int reply_to;        /* 1 + the output whose answer a watch wants (reply_from), or 0 */
    sl_send_reply reply; /* that output's answer, once it acknowledged (body owned) */
    /* the gateway whose `reply: sync` request waits for it (a log a connector
     * holds; taken out of the message's SL_HDR_REPLY_TO), or "" */
    char reply_addr[96];
} sl_item;

/* Per-batch buffers for one output's send: the messages, the index of the
 * item of each, and their results. */
typedef struct send_buf {
    sl_msg **msgs;
    size_t *idx;
    sl_send_result *res;
} send_buf;

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
    bool breaker_closed; /* a breaker of an output closed since the round began */
    int64_t rewind_to;
    atomic_int_fast64_t committed; /* in the offset file: where a restart reads from */
    atomic_int head_attempts;
    char last_error[256]; /* under mu */
    sl_step **steps;      /* this worker's own (a Lua state belongs to one worker) */
    size_t n_steps;
    sl_expr **when;        /* when[i]: output i's compiled `when:`, or NULL (per worker:
                            * a condition language may not be shared) */
    int64_t retry_offset;  /* the record a step asked to retry, or -1 (worker thread only) */
    int retry_attempts;    /* how many times its steps were tried */
    char retry_error[256]; /* why a step asked to retry it */
    sl_gauge *lag;
    sl_gauge *lag_seconds;
    atomic_int_fast64_t oldest_ms; /* ingest time of the first uncommitted record read, or 0 */
    sl_batch batch;
    atomic_int_fast64_t corrupt_at; /* the damaged offset the worker is held at, or -1 */
    atomic_int_fast64_t corrupt_next;
    int64_t reported_at; /* the last damaged offset reported (worker thread only) */
    /* Lazy commits (worker thread only): the offset committed in memory and
     * not yet written (-1: none), the one in the offset file, and when that
     * was written (monotonic ms). */
    int64_t commit_due;
    int64_t commit_disk;
    uint64_t commit_disk_ms;
    /* Storage kept from batch to batch (worker thread only): the items of a
     * batch and the send buffers, so that a batch allocates no vectors. */
    sl_item *items;
    size_t items_cap;
    send_buf sb;
    size_t sb_cap;
    /* With no steps, a batch's messages are views of its records (nothing
     * copied, nothing allocated): their storage, kept too. */
    sl_msg *views;
    size_t views_cap;
    sl_msg_header *view_hdrs;
    size_t view_hdrs_cap;
} sl_worker;

struct sl_route {
    sl_route_env env; /* env.outs is not kept: outs[] holds what it gave */
    const sl_route_conf *conf;
    sl_expr *key;                  /* the compiled `key:`, or NULL */
    sl_topic *topic;               /* the embedded log's; NULL with a backend */
    const sl_log_backend_type *bt; /* `log: { connector }`: its backend, else NULL */
    sl_log_backend *backend;
    sl_topic *dlq;
    sl_dlq *dlq_state; /* entries' states, depth gauge */
    int n_parts;
    sl_worker *workers;
    sl_output_rt *outs;
    size_t n_outs;
    atomic_uint rr;
    bool count_in_on_read; /* topic-fed routes count messages_in when read */
    sl_counter *in_total;
    sl_counter *dlq_total;
    sl_counter *failed_total;  /* moves with dlq_total: every dead letter is a failed message */
    sl_histogram *latency;     /* ingest to commit of a delivered record */
    sl_counter *corrupt_total; /* sluice_log_corrupt_records_total{topic} */
    sl_counter *dropped_total;
    sl_counter **step_retried_total; /* [step]: transient step failures, retried */
    pthread_mutex_t redrive_mu;
    pthread_mutex_t watch_mu;
    atomic_int n_watches;
    sl_watch *watches[WATCH_BUCKETS];
    sl_tail *tail; /* the live tail (admin, console) */
};

/* Kafka's murmur2 would let keys land where Kafka puts them; FNV-1a is
 * enough for an embedded log and cheap. */
static uint64_t hash_key(const char *key, size_t len)
{
    return sl_fnv1a64(key, len);
}

static void wake_worker(sl_worker *w);
static int rewind_backend(sl_route *r, int64_t offset, int64_t timestamp_ms, sl_error *err);

static unsigned watch_bucket(const char *id)
{
    return (unsigned)(hash_key(id, strlen(id)) % WATCH_BUCKETS);
}

static double lag_gauge(void *arg)
{
    sl_worker *w = arg;
    if (!w->part) { /* a log a connector holds: what it knows of the partition */
        sl_log_backend_info bi;
        w->route->bt->info(w->route->backend, w->index, &bi);
        return bi.end_offset > bi.committed && bi.committed >= 0
                   ? (double)(bi.end_offset - bi.committed)
                   : 0.0;
    }
    int64_t end = sl_partition_end_offset(w->part);
    int64_t committed = atomic_load(&w->committed);
    return end > committed ? (double)(end - committed) : 0.0;
}

/* Seconds since the ingest of the oldest record the worker has read and
 * not committed; 0 when it has caught up (updated by the worker at each read
 * and commit, so a record not read yet does not count until it is read). */
static double lag_seconds_gauge(void *arg)
{
    sl_worker *w = arg;
    int64_t oldest = atomic_load(&w->oldest_ms);
    if (oldest <= 0 || lag_gauge(w) == 0.0)
        return 0.0;
    int64_t age = sl_wall_ms() - oldest;
    return age > 0 ? (double)age / 1000.0 : 0.0;
}

/* The counter name{route,output} of output oc of route r. */
static sl_counter *output_counter(sl_route *r, const sl_output_conf *oc, const char *name,
                                  const char *help)
{
    char rname[256], oname[256], labels[600];
    sl_metrics_escape(r->conf->name, rname, sizeof rname);
    sl_metrics_escape(oc->name, oname, sizeof oname);
    snprintf(labels, sizeof labels, "route=\"%s\",output=\"%s\"", rname, oname);
    return sl_metrics_counter(r->env.metrics, name, help, labels);
}

/* Fills r->outs from the config and the connectors and breakers the
 * environment resolved for each output. */
static int open_outputs(sl_route *r, sl_error *err)
{
    const sl_route_conf *conf = r->conf;
    if (conf->n_to > 32)
        return sl_error_set(err, SL_ECONFIG, "route %s: at most 32 outputs, got %zu", conf->name,
                            conf->n_to);
    r->outs = calloc(conf->n_to ? conf->n_to : 1, sizeof *r->outs);
    if (!r->outs)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    r->n_outs = conf->n_to;
    for (size_t i = 0; i < conf->n_to; i++) {
        const sl_output_conf *oc = &conf->to[i];
        sl_output_rt *o = &r->outs[i];
        o->conf = oc;
        if (oc->connector) {
            o->conn = r->env.outs ? r->env.outs[i].conn : NULL;
            if (!o->conn || !o->conn->type->send)
                return sl_error_set(err, SL_ECONFIG,
                                    "route %s: output %s: connector %s cannot send", conf->name,
                                    oc->name, oc->connector);
            o->breaker = r->env.outs[i].breaker;
        } else {
            o->topic = sl_log_topic(r->env.log, oc->topic, 1, err);
            if (!o->topic)
                return -1;
        }
        o->out_total =
            output_counter(r, oc, "sluice_messages_out_total", "Messages delivered to an output.");
        o->failed_total =
            output_counter(r, oc, "sluice_output_failed_total",
                           "Messages that failed permanently at an output (then dead-lettered).");
        o->retried_total =
            output_counter(r, oc, "sluice_messages_retried_total",
                           "Delivery attempts that failed transiently and were retried.");
    }
    return 0;
}

/* A breaker of an output closed: workers waiting for it go on at once. */
static void wake_on_breaker(void *arg)
{
    sl_route *r = arg;
    for (int i = 0; i < r->n_parts; i++) {
        sl_worker *w = &r->workers[i];
        pthread_mutex_lock(&w->mu);
        w->breaker_closed = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
    }
}

/* Watches every output breaker once (several outputs may share one). */
static int watch_breakers(sl_route *r, sl_error *err)
{
    for (size_t i = 0; i < r->n_outs; i++) {
        sl_output_rt *o = &r->outs[i];
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen |= r->outs[j].breaker == o->breaker;
        if (!o->breaker || seen)
            continue;
        if (sl_breaker_watch(o->breaker, wake_on_breaker, r) < 0)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        o->watching = true;
    }
    return 0;
}

static void unwatch_breakers(sl_route *r)
{
    for (size_t i = 0; r->outs && i < r->n_outs; i++) {
        if (r->outs[i].watching)
            sl_breaker_unwatch(r->outs[i].breaker, wake_on_breaker, r);
        r->outs[i].watching = false;
    }
}

/* Opens the dead letter topic (always in the embedded log). */
static int open_dlq(sl_route *r, sl_error *err)
{
    r->dlq = sl_log_topic(r->env.log, r->conf->dead_letter_topic, 1, err);
    if (!r->dlq)
        return -1;
    r->dlq_state = sl_dlq_open(sl_topic_partition(r->dlq, 0), r->env.metrics, r->conf->name, err);
    return r->dlq_state ? 0 : -1;
}

/* Opens the route's log on the connector that holds it (`log:`). */
static int open_backend(sl_route *r, sl_error *err)
{
    r->bt = r->env.log_conn->type->log_backend;
    r->backend = r->bt->open(r->env.log_conn, r->conf, err);
    if (!r->backend)
        return -1;
    r->n_parts = r->bt->partitions(r->backend);
    return open_dlq(r, err);
}

/* Opens the route's input topic (ROUTE or its `from: {topic}`) and its dead
 * letter topic. */
static int open_topics(sl_route *r, sl_error *err)
{
    const sl_route_conf *conf = r->conf;
    const char *topic = conf->from.topic ? conf->from.topic : conf->name;
    r->count_in_on_read = conf->from.topic != NULL;
    if (r->env.log_conn && r->env.log_conn->type->log_backend)
        return open_backend(r, err);
    r->topic = sl_log_topic(r->env.log, topic, conf->partitions > 0 ? conf->partitions : 1, err);
    if (!r->topic)
        return -1;
    r->n_parts = sl_topic_partition_count(r->topic);
    if (conf->partitions > 0 && r->n_parts != conf->partitions)
        sl_warn("route", "route %s: topic %s has %d partitions on disk, config says %d; using %d",
                conf->name, topic, r->n_parts, conf->partitions, r->n_parts);
    return open_dlq(r, err);
}

/* The route's own counters: in, dead-lettered, dropped. */
static void route_counters(sl_route *r)
{
    char rname[256], labels[300];
    sl_metrics_escape(r->conf->name, rname, sizeof rname);
    snprintf(labels, sizeof labels, "route=\"%s\"", rname);
    r->in_total = sl_metrics_counter(r->env.metrics, "sluice_messages_in_total",
                                     "Messages accepted into a route's log.", labels);
    r->dlq_total = sl_metrics_counter(r->env.metrics, "sluice_dead_letter_total",
                                      "Messages sent to a route's dead letter topic.", labels);
    r->failed_total = sl_metrics_counter(
        r->env.metrics, "sluice_messages_failed_total",
        "Messages that failed (steps, outputs or input) and were dead-lettered; always equals "
        "sluice_dead_letter_total.",
        labels);
    static const double lat_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                        1,     2.5,  5,     10,   30,  60,   300};
    r->latency = sl_metrics_histogram(
        r->env.metrics, "sluice_delivery_latency_seconds",
        "Time from a record's ingest to the commit after its delivery (not for dead letters).",
        labels, lat_bounds, sizeof lat_bounds / sizeof lat_bounds[0]);
    r->dropped_total = sl_metrics_counter(r->env.metrics, "sluice_messages_dropped_total",
                                          "Messages dropped by a route's steps.", labels);
    sl_tail_count_drops(r->tail,
                        sl_metrics_counter(r->env.metrics, "sluice_tail_dropped_total",
                                           "Live-tail events dropped for readers that fell behind.",
                                           labels));
    if (!r->topic)
        return; /* corrupt records are the embedded log's */
    sl_metrics_escape(sl_topic_name(r->topic), rname, sizeof rname);
    snprintf(labels, sizeof labels, "topic=\"%s\"", rname);
    r->corrupt_total = sl_metrics_counter(
        r->env.metrics, "sluice_log_corrupt_records_total",
        "Offsets of a topic found unreadable (failed their checks) by a route worker.", labels);
}

/* sluice_messages_retried_total{route,step="N-TYPE"} for each step of the
 * chain (which every worker builds alike). */
static int step_counters(sl_route *r, sl_step **steps, size_t n, sl_error *err)
{
    r->step_retried_total = calloc(n ? n : 1, sizeof *r->step_retried_total);
    if (!r->step_retried_total)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    char rname[256], labels[400];
    sl_metrics_escape(r->conf->name, rname, sizeof rname);
    for (size_t i = 0; i < n; i++) {
        snprintf(labels, sizeof labels, "route=\"%s\",step=\"%zu-%s\"", rname, i + 1,
                 sl_step_type_name(steps[i]));
        r->step_retried_total[i] = sl_metrics_counter(
            r->env.metrics, "sluice_messages_retried_total",
            "Delivery attempts that failed transiently and were retried.", labels);
    }
    return 0;
}

/* Compiles the route's `key:` once (key languages are shared by every
 * input thread). */
static int compile_key(const sl_route_conf *conf, sl_expr **out, sl_error *err)
{
    *out = NULL;
    if (!conf->key)
        return 0;
    sl_error e;
    const sl_conf_pos *pos = conf->key_pos.file ? &conf->key_pos : &conf->pos;
    *out = sl_expr_compile_key(conf->key, pos, &e);
    if (!*out)
        return sl_error_set(err, e.code == SL_ENOMEM ? SL_ENOMEM : SL_ECONFIG,
                            "%s:%d:%d: routes.%s.key: %s", pos->file, pos->line, pos->col,
                            conf->name, e.msg);
    return 0;
}

/* Compiles output oi's `when:` into *out (NULL when it has none). */
static int compile_when(const sl_output_conf *oc, sl_expr **out, sl_error *err)
{
    *out = NULL;
    if (!oc->when)
        return 0;
    const sl_node *w = oc->node ? sl_node_get(oc->node, "when") : NULL;
    *out = sl_expr_compile_cond(oc->when, w ? &w->pos : &oc->pos, err);
    return *out ? 0 : -1;
}

size_t sl_route_check_exprs(const sl_route_conf *conf, void (*report)(void *arg, const char *msg),
                            void *arg)
{
    size_t errors = 0;
    sl_error err;
    sl_expr *e;
    if (compile_key(conf, &e, &err) < 0) {
        report(arg, err.msg);
        errors++;
    }
    sl_expr_free(e);
    for (size_t o = 0; o < conf->n_to; o++) {
        if (compile_when(&conf->to[o], &e, &err) < 0) {
            report(arg, err.msg);
            errors++;
        }
        sl_expr_free(e);
    }
    return errors;
}

/* The worker's steps (with the route's services) and `when:` conditions. */
static int build_chain(sl_worker *w, sl_error *err)
{
    sl_route *r = w->route;
    if (sl_steps_build(r->env.services, r->env.metrics, r->conf, &w->steps, &w->n_steps, err) < 0)
        return -1;
    if (!r->step_retried_total && step_counters(r, w->steps, w->n_steps, err) < 0)
        return -1;
    w->when = calloc(r->n_outs ? r->n_outs : 1, sizeof *w->when);
    if (!w->when)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t oi = 0; oi < r->n_outs; oi++) {
        if (compile_when(&r->conf->to[oi], &w->when[oi], err) < 0)
            return -1;
    }
    return 0;
}

/* Sets up worker i: its partition, chain, committed offset and lag gauge. */
static int init_worker(sl_route *r, int i, sl_error *err)
{
    sl_worker *w = &r->workers[i];
    w->route = r;
    w->index = i;
    w->part = r->topic ? sl_topic_partition(r->topic, i) : NULL;
    w->retry_offset = -1;
    w->reported_at = -1;
    atomic_store(&w->corrupt_at, -1);
    atomic_store(&w->corrupt_next, -1);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    sl_batch_init(&w->batch);
    if (build_chain(w, err) < 0)
        return -1;
    int64_t c = w->part ? sl_partition_committed(w->part, r->conf->name) : 0;
    if (c < 0) {
        /* a consumer holds retention back only once it has an offset */
        c = sl_partition_start_offset(w->part);
        if (sl_partition_commit(w->part, r->conf->name, c, err) < 0)
            return -1;
    }
    atomic_store(&w->committed, c);
    char rname[256], labels[300];
    sl_metrics_escape(r->conf->name, rname, sizeof rname);
    snprintf(labels, sizeof labels, "route=\"%s\",partition=\"%d\"", rname, i);
    w->lag =
        sl_metrics_gauge(r->env.metrics, "sluice_route_lag",
                         "Records in a route partition not yet committed.", labels, lag_gauge, w);
    w->lag_seconds = sl_metrics_gauge(
        r->env.metrics, "sluice_route_lag_seconds",
        "Age of the oldest record a route partition has read and not yet committed (0 when "
        "caught up).",
        labels, lag_seconds_gauge, w);
    return 0;
}

sl_route *sl_route_new(const sl_route_env *env, const sl_route_conf *conf, sl_error *err)
{
    sl_route *r = calloc(1, sizeof *r);
    if (!r) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    r->env = *env;
    r->conf = conf;
    pthread_mutex_init(&r->watch_mu, NULL);
    r->tail = sl_tail_new();
    if (!r->tail) {
        free(r);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->redrive_mu, NULL);
    if (compile_key(conf, &r->key, err) < 0 || open_topics(r, err) < 0 || open_outputs(r, err) < 0)
        goto fail;
    r->env.outs = NULL; /* resolved into r->outs; not the route's to keep */
    route_counters(r);
    r->workers = calloc((size_t)r->n_parts, sizeof *r->workers);
    if (!r->workers) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < r->n_parts; i++) {
        if (init_worker(r, i, err) < 0)
            goto fail;
    }
    if (watch_breakers(r, err) < 0)
        goto fail;
    return r;
fail:
    sl_route_free(r);
    return NULL;
}

/* ---- watches (reply: sync) ---- */

int sl_route_watch(sl_route *r, const char *id, sl_route_done_fn fn, void *arg)
{
    return sl_route_watch_reply(r, id, -1, fn, arg);
}

int sl_route_watch_reply(sl_route *r, const char *id, int reply_output, sl_route_done_fn fn,
                         void *arg)
{
    sl_watch *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    snprintf(w->id, sizeof w->id, "%s", id);
    w->fn = fn;
    w->arg = arg;
    w->reply_output = reply_output >= 0 && (size_t)reply_output < r->n_outs ? reply_output : -1;
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

/* 1 + the output whose answer the watch on id wants, or 0 (no such watch,
 * or it wants none). Route worker. */
static int watch_reply_to(sl_route *r, const char *id)
{
    if (atomic_load(&r->n_watches) == 0)
        return 0;
    unsigned b = watch_bucket(id);
    int to = 0;
    pthread_mutex_lock(&r->watch_mu);
    for (sl_watch *w = r->watches[b]; w; w = w->next) {
        if (strcmp(w->id, id) == 0) {
            to = w->reply_output + 1;
            break;
        }
    }
    pthread_mutex_unlock(&r->watch_mu);
    return to;
}

/* The watch on id, if this gateway has one (else NULL). */
static sl_watch *take_watch_any(sl_route *r, const char *id)
{
    return atomic_load(&r->n_watches) == 0 ? NULL : take_watch(r, id);
}

/* Shares msg's outcome with the route's other gateways (a log a connector
 * holds that can carry it): attempts as the status table has them. */
static void share_status(sl_route *r, const sl_msg *msg, sl_msg_state st, const sl_item *it,
                         const char *error)
{
    if (!r->backend || !r->bt->status_finished)
        return;
    sl_msg_status s = {.partition = msg->partition, .offset = msg->offset, .state = st};
    snprintf(s.id, sizeof s.id, "%s", msg->id);
    snprintf(s.route, sizeof s.route, "%s", r->conf->name);
    snprintf(s.last_error, sizeof s.last_error, "%s", error ? error : "");
    s.attempts = !it ? 0 : st == SL_MSG_DELIVERED ? it->attempts + 1 : it->attempts;
    r->bt->status_finished(r->backend, &s);
}

/* Tells the watch on msg (if any) that its message is finished: it (NULL for
 * a dropped message) carries the message and, for a reply_from watch, the
 * output's answer. A watch on another gateway (a log a connector holds) is
 * told through the backend. */
static void notify_done(sl_route *r, const sl_msg *msg, sl_msg_state st, const sl_item *it,
                        const char *error)
{
    const char *id = msg->id;
    share_status(r, msg, st, it, error);
    sl_watch *w = take_watch_any(r, id);
    const char *remote = it && it->reply_addr[0] ? it->reply_addr : NULL;
    if (!w && !remote && r->backend && r->bt->reply)
        remote = sl_msg_get_header(msg, SL_HDR_REPLY_TO, NULL);
    if (!w && !remote)
        return;
    sl_route_outcome o = {.state = st, .error = error};
    if (st == SL_MSG_DELIVERED && it && it->reply_to > 0) {
        o.replied = it->reply.status != 0;
        o.body = it->reply.body;
        o.body_len = it->reply.body_len;
        o.content_type = it->reply.content_type[0] ? it->reply.content_type : NULL;
        o.status = it->reply.status;
    } else if (st == SL_MSG_DELIVERED && it) {
        o.body = it->msg->body;
        o.body_len = it->msg->body_len;
        o.content_type = sl_msg_get_header(it->msg, SL_HDR_CONTENT_TYPE, NULL);
    }
    if (!w) {
        const char *addr = strchr(remote, ' '); /* "N ADDRESS" */
        if (addr && r->bt->reply)
            r->bt->reply(r->backend, addr + 1, id, &o);
        return;
    }
    w->fn(w->arg, id, &o);
    free(w);
}

/* The backend's deliver for answers from other gateways: as notify_done
 * for the watch here. */
static void remote_done(void *arg, const char *id, const sl_route_outcome *o)
{
    sl_watch *w = take_watch_any(arg, id);
    if (!w)
        return; /* answered already, or timed out */
    w->fn(w->arg, id, o);
    free(w);
}

/* A watched message appended to a log a connector holds: the stamp that
 * tells the gateway that works on it where to send the outcome, "N ADDRESS"
 * (N as sl_item.reply_to), in buf. Returns 1 with the stamp, 0 when nothing
 * here watches the message, or -1 with err. */
static int reply_stamp(sl_route *r, const char *id, char *buf, size_t cap, sl_error *err)
{
    if (!r->bt->reply_address || atomic_load(&r->n_watches) == 0)
        return 0;
    int out = -2;
    unsigned b = watch_bucket(id);
    pthread_mutex_lock(&r->watch_mu);
    for (sl_watch *w = r->watches[b]; w; w = w->next)
        if (strcmp(w->id, id) == 0)
            out = w->reply_output;
    pthread_mutex_unlock(&r->watch_mu);
    if (out == -2)
        return 0;
    const char *addr = r->bt->reply_address(r->backend, remote_done, r, err);
    if (!addr)
        return -1;
    snprintf(buf, cap, "%d %s", out + 1, addr);
    return 1;
}

/* Takes a remote watcher's stamp out of it's message (so that no output
 * sees it) into it: reply_to and reply_addr. */
static void take_reply_stamp(sl_route *r, sl_item *it)
{
    size_t len;
    const char *v = r->backend ? sl_msg_get_header(it->msg, SL_HDR_REPLY_TO, &len) : NULL;
    if (!v)
        return;
    snprintf(it->reply_addr, sizeof it->reply_addr, "%s", v);
    int n = atoi(v);
    if (n > 0 && (size_t)n <= r->n_outs)
        it->reply_to = n;
    sl_msg *m = it->msg;
    for (size_t i = 0; i < m->n_headers; i++) {
        if (strcasecmp(m->headers[i].name, SL_HDR_REPLY_TO) != 0)
            continue;
        free(m->headers[i].name);
        free(m->headers[i].value);
        m->headers[i] = m->headers[--m->n_headers];
        break;
    }
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

/* append_msg for a route whose log a connector holds: *ticket is what
 * sl_route_on_durable takes. */
static int append_backend(sl_route *r, int part, const sl_msg *msg, sl_error *err, int64_t *ticket)
{
    char stamp[128];
    int stamped = reply_stamp(r, msg->id, stamp, sizeof stamp, err);
    if (stamped < 0)
        return -1;
    size_t cap = msg->n_headers + 2;
    sl_header *hdrs = malloc(cap * sizeof *hdrs);
    if (!hdrs)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    sl_record rec;
    *ticket = sl_msg_to_record(msg, &rec, hdrs, cap) == 0
                  ? 0
                  : sl_error_set(err, SL_EINVAL, "too many headers");
    size_t i = 0, hl = strlen(SL_HDR_REPLY_TO);
    while (*ticket == 0 && i < rec.n_headers) { /* only ours: never one a client sent */
        if (hdrs[i].name_len == hl && strncasecmp(hdrs[i].name, SL_HDR_REPLY_TO, hl) == 0)
            hdrs[i] = hdrs[--rec.n_headers];
        else
            i++;
    }
    if (*ticket == 0 && stamped)
        hdrs[rec.n_headers++] =
            (sl_header){SL_HDR_REPLY_TO, strlen(SL_HDR_REPLY_TO), stamp, strlen(stamp)};
    if (*ticket == 0)
        *ticket = r->bt->append(r->backend, part, &rec, err);
    free(hdrs);
    return *ticket < 0 ? -1 : 0;
}

int sl_route_on_durable(sl_route *r, int partition, int64_t offset, sl_durable_fn fn, void *arg,
                        sl_error *err)
{
    if (r->backend)
        return r->bt->on_durable(r->backend, offset, fn, arg, err);
    sl_partition *p = sl_route_partition(r, partition);
    if (!p)
        return sl_error_set(err, SL_EINVAL, "no partition %d", partition);
    return sl_partition_on_durable(p, offset, fn, arg, err);
}

bool sl_route_external_log(const sl_route *r)
{
    return r->backend != NULL;
}

int sl_route_idem_open(sl_route *r, uint64_t window_ms, sl_error *err)
{
    if (!r->backend || !r->bt->idem_open)
        return 0;
    return r->bt->idem_open(r->backend, window_ms, err) < 0 ? -1 : 1;
}

int sl_route_idem_get(sl_route *r, const char *key, size_t klen, char **val, size_t *len,
                      uint64_t *at_ms)
{
    return r->backend && r->bt->idem_get ? r->bt->idem_get(r->backend, key, klen, val, len, at_ms)
                                         : 0;
}

int sl_route_idem_put(sl_route *r, const char *key, size_t klen, const char *val, size_t len,
                      sl_error *err)
{
    if (!r->backend || !r->bt->idem_put)
        return sl_error_set(err, SL_EINVAL, "route %s has no shared Idempotency-Key store",
                            r->conf->name);
    return r->bt->idem_put(r->backend, key, klen, val, len, err);
}

static int pick_partition(sl_route *r, const sl_msg *msg)
{
    if (r->n_parts == 1)
        return 0;
    if (msg->key && msg->key_len > 0)
        return (int)(hash_key(msg->key, msg->key_len) % (uint64_t)r->n_parts);
    return (int)(atomic_fetch_add(&r->rr, 1) % (unsigned)r->n_parts);
}

/* Appends msg to r's topic (sl_route_append without its check). */
static int append_to_route(sl_route *r, sl_msg *msg, sl_error *err)
{
    if (r->key && !msg->key) {
        char *key = NULL;
        size_t len = 0;
        if (sl_expr_eval_key(r->key, msg, &key, &len, err) < 0)
            return -1;
        if (!key)
            return sl_error_set(err, SL_EINVAL,
                                "the route key %s is missing or null in the message", r->conf->key);
        msg->key = key;
        msg->key_len = len;
    }
    int part = pick_partition(r, msg);
    int64_t off;
    /* accepted before the record is visible: a worker may deliver it (and
     * mark it so) before append_msg returns here */
    sl_status_accepted(r->env.status, msg->id, r->conf->name, part, -1);
    if (r->backend ? append_backend(r, part, msg, err, &off) < 0
                   : append_msg(sl_topic_partition(r->topic, part), msg, err, &off) < 0) {
        sl_status_forget(r->env.status, msg->id);
        return -1;
    }
    msg->partition = part;
    msg->offset = off;
    if (!r->backend) /* a backend's is a ticket until the delivery report */
        sl_status_set_offset(r->env.status, msg->id, off);
    sl_counter_add(r->in_total, 1);
    /* a backend's offset is known only at the delivery report: -1 here */
    sl_tail_publish(r->tail, "accepted", msg, part, r->backend ? -1 : off);
    return 0;
}

int sl_route_append(sl_route *r, sl_msg *msg, sl_error *err)
{
    /* only redrive may tell a message to skip the steps */
    if (sl_msg_get_header(msg, SL_DLQ_REDRIVE_OUTPUTS, NULL))
        return sl_error_set(err, SL_EINVAL, "header %s is reserved for redrive",
                            SL_DLQ_REDRIVE_OUTPUTS);
    return append_to_route(r, msg, err);
}

/* ---- accessors ---- */

sl_tail *sl_route_tail(sl_route *r)
{
    return r->tail;
}

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

/* The offsets of partition i as the backend knows them (-1: unknown here). */
static void backend_partition_info(sl_route *r, sl_worker *w, sl_route_partition_info *info)
{
    sl_log_backend_info bi;
    r->bt->info(r->backend, w->index, &bi);
    info->assigned = bi.assigned;
    info->start_offset = bi.start_offset;
    info->end_offset = bi.end_offset;
    info->committed = bi.committed;
    info->fetch_paused = bi.fetch_paused;
    info->held = bi.held;
    info->buffered = bi.buffered;
}

int sl_route_get_partition_info(sl_route *r, int i, sl_route_partition_info *info)
{
    if (i < 0 || i >= r->n_parts)
        return -1;
    sl_worker *w = &r->workers[i];
    memset(info, 0, sizeof *info);
    info->partition = i;
    if (r->backend) {
        backend_partition_info(r, w, info);
    } else {
        info->assigned = true;
        info->start_offset = sl_partition_start_offset(w->part);
        info->end_offset = sl_partition_end_offset(w->part);
        info->committed = atomic_load(&w->committed);
        info->buffered = -1;
    }
    info->lag = info->end_offset > info->committed ? info->end_offset - info->committed : 0;
    info->attempts = atomic_load(&w->head_attempts);
    info->corrupt_offset = atomic_load(&w->corrupt_at);
    info->corrupt_next = atomic_load(&w->corrupt_next);
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
    if (r->backend)
        return rewind_backend(r, offset, timestamp_ms, err);
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
        wake_worker(w);
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

/* Wakes worker w out of its read, to see its stop, pause or rewind flag. */
static void wake_worker(sl_worker *w)
{
    if (w->part)
        sl_partition_wake(w->part);
    else
        w->route->bt->wake(w->route->backend, w->index);
}

/* sl_route_rewind on a log a connector holds: the backend moves the
 * partitions this gateway holds; the workers drop what they have in flight. */
static int rewind_backend(sl_route *r, int64_t offset, int64_t timestamp_ms, sl_error *err)
{
    for (int i = 0; i < r->n_parts; i++) {
        sl_worker *w = &r->workers[i];
        pthread_mutex_lock(&w->mu);
        w->rewind = true;
        w->rewind_to = -1;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
    }
    int rc = r->bt->rewind(r->backend, offset, timestamp_ms, err);
    for (int i = 0; i < r->n_parts; i++)
        wake_worker(&r->workers[i]);
    if (rc == 0)
        sl_info("route", "route %s: rewind to %s %" PRId64, r->conf->name,
                offset >= 0 ? "offset" : "timestamp", offset >= 0 ? offset : timestamp_ms);
    return rc;
}

void sl_route_pause(sl_route *r, bool paused)
{
    for (int i = 0; i < r->n_parts; i++) {
        sl_worker *w = &r->workers[i];
        pthread_mutex_lock(&w->mu);
        w->paused = paused;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
        wake_worker(w);
    }
    sl_info("route", "route %s %s", r->conf->name, paused ? "paused" : "resumed");
}

/* ---- the worker ---- */

static void write_commit(sl_worker *w);

/* Sleeps up to ms, returning early on stop or rewind (true), or, with
 * on_breaker, when an output's breaker closed (false). Writes a due commit
 * first: nothing stays lazy across a wait. */
static bool sleep_until(sl_worker *w, uint64_t ms, bool on_breaker)
{
    struct timespec ts;
    write_commit(w);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->stop && !w->rewind && !(on_breaker && w->breaker_closed)) {
        if (pthread_cond_timedwait(&w->cond, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    bool r = w->stop || w->rewind;
    pthread_mutex_unlock(&w->mu);
    return r;
}

/* Sleeps up to ms, returning early (true) on stop or rewind. */
static bool sleep_interruptible(sl_worker *w, uint64_t ms)
{
    return sleep_until(w, ms, false);
}

/* Writes the committed offset the worker holds in memory (if any) to the
 * partition's offset file, retrying every second while that fails until the
 * worker is told to stop or rewind (then it stays due). Worker thread only. */
static void write_commit(sl_worker *w)
{
    int64_t to = w->commit_due;
    if (to < 0)
        return;
    w->commit_due = -1; /* sleep_interruptible below must not recurse */
    sl_error e;
    while (sl_partition_commit(w->part, w->route->conf->name, to, &e) < 0) {
        sl_err("route", "route %s partition %d: commit failed: %s", w->route->conf->name, w->index,
               e.msg);
        if (sleep_interruptible(w, 1000)) {
            w->commit_due = to;
            return;
        }
    }
    w->commit_disk = to;
    w->commit_disk_ms = sl_mono_ms();
    atomic_store(&w->committed, to); /* lag and the admin API show what survives a crash */
}

/* Commits `to` in memory and writes it to disk when the file is
 * COMMIT_MAX_RECORDS or COMMIT_MAX_MS behind. */
static void commit_lazily(sl_worker *w, int64_t to)
{
    w->commit_due = to;
    if (to - w->commit_disk >= COMMIT_MAX_RECORDS || to < w->commit_disk ||
        sl_mono_ms() - w->commit_disk_ms >= COMMIT_MAX_MS)
        write_commit(w);
}

/* How long a worker that read everything may wait for more: while a
 * commit is due, only until it is COMMIT_MAX_MS old (written then, if
 * nothing came: a route that keeps up does not write its offset file after
 * every group commit), else a second. */
static int idle_wait_ms(sl_worker *w)
{
    if (w->commit_due < 0)
        return 1000;
    uint64_t age = sl_mono_ms() - w->commit_disk_ms;
    if (age >= COMMIT_MAX_MS) {
        write_commit(w);
        return 1000;
    }
    return (int)(COMMIT_MAX_MS - age);
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

/* The partition of topic output messages: by key hash, else spread. */
static int topic_partition_for(const sl_msg *m, size_t i, int nparts)
{
    if (nparts <= 1)
        return 0;
    if (m->key && m->key_len)
        return (int)(hash_key(m->key, m->key_len) % (uint64_t)nparts);
    return (int)(i % (size_t)nparts);
}

/* Waits until last[p] (when >= 0) is durable in partition p of t, for each
 * of its n partitions. Returns 0, or -1 with e when one cannot be. */
static int wait_last_durable(sl_topic *t, const int64_t *last, int n, sl_error *e)
{
    int rc = 0;
    for (int p = 0; p < n; p++) {
        if (last[p] >= 0 && sl_partition_wait_durable(sl_topic_partition(t, p), last[p], -1, e) < 0)
            rc = -1;
    }
    return rc;
}

/* A malloc'd array of n offsets, all -1 (no append yet), or NULL. */
static int64_t *new_last_offsets(int n)
{
    int64_t *last = malloc((size_t)(n > 0 ? n : 1) * sizeof *last);
    for (int p = 0; last && p < n; p++)
        last[p] = -1;
    return last;
}

/* Delivers to a topic output: append all, then wait for the last append of
 * every partition to be durable. */
static void send_to_topic(sl_output_rt *o, sl_msg *const *msgs, size_t n, sl_send_result *res)
{
    int nparts = sl_topic_partition_count(o->topic);
    int64_t *last = new_last_offsets(nparts);
    for (size_t i = 0; i < n; i++) {
        const sl_msg *m = msgs[i];
        int part = topic_partition_for(m, i, nparts);
        sl_error e;
        int64_t off;
        if (!last) {
            sl_send_result_set(&res[i], SL_RETRY, 0, "append to topic %s: out of memory",
                               sl_topic_name(o->topic));
        } else if (append_msg(sl_topic_partition(o->topic, part), m, &e, &off) < 0) {
            sl_send_result_set(&res[i], SL_RETRY, 0, "append to topic %s: %s",
                               sl_topic_name(o->topic), e.msg);
        } else {
            last[part] = off;
            sl_send_result_set(&res[i], SL_OK, 0, NULL);
        }
    }
    sl_error e;
    if (last && wait_last_durable(o->topic, last, nparts, &e) < 0) {
        for (size_t i = 0; i < n; i++)
            if (res[i].result == SL_OK)
                sl_send_result_set(&res[i], SL_RETRY, 0, "topic %s not durable: %s",
                                   sl_topic_name(o->topic), e.msg);
    }
    free(last);
}

/* Makes w->sb hold at least n entries (kept across batches: a batch
 * allocates nothing once the worker has seen one as large). Returns 0, or -1
 * when out of memory (w->sb still holds what it had). */
static int send_buf_reserve(sl_worker *w, size_t n)
{
    send_buf *sb = &w->sb;
    if (n <= w->sb_cap)
        return 0;
    sl_msg **msgs = realloc(sb->msgs, n * sizeof *msgs);
    if (msgs)
        sb->msgs = msgs;
    size_t *idx = realloc(sb->idx, n * sizeof *idx);
    if (idx)
        sb->idx = idx;
    sl_send_result *res = realloc(sb->res, n * sizeof *res);
    if (res)
        sb->res = res;
    if (!msgs || !idx || !res)
        return -1;
    w->sb_cap = n;
    return 0;
}

static void send_buf_free(send_buf *sb)
{
    free(sb->msgs);
    free(sb->idx);
    free(sb->res);
}

/* Puts every live item still pending at output bit into sb. Returns how
 * many. */
static size_t collect_pending(sl_item *items, size_t n, uint32_t bit, send_buf *sb)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].msg && !items[i].dead && (items[i].pending & bit)) {
            sb->msgs[k] = items[i].msg;
            sb->idx[k++] = i;
        }
    }
    return k;
}

/* Asks o's breaker (if any) for k calls. Items beyond what it grants wait
 * without an attempt (their error says why). Returns how many may go. */
static size_t breaker_grant(sl_output_rt *o, sl_item *items, const send_buf *sb, size_t k)
{
    if (!o->breaker)
        return k;
    size_t granted = sl_breaker_acquire(o->breaker, k);
    for (size_t j = granted; j < k; j++) {
        sl_item *it = &items[sb->idx[j]];
        snprintf(it->error, sizeof it->error, "output %s: circuit open for connector %s",
                 o->conf->name, o->conf->connector);
    }
    return granted;
}

/* Logs what happened to item it of worker w, with its route, message id,
 * partition, offset, attempt, partner status, output, connector and error
 * as structured fields. */
static void log_item(const sl_worker *w, sl_level lvl, const sl_item *it, int attempt,
                     const char *what)
{
    const sl_route *r = w->route;
    const sl_output_conf *oc = it->failed_out;
    sl_log_field f[] = {
        SL_LF_STR("route", r->conf->name),
        SL_LF_STR("msg_id", it->msg->id),
        SL_LF_INT("partition", w->index),
        SL_LF_INT("offset", w->batch.records[it->rec].offset),
        SL_LF_INT("attempt", attempt),
        it->status ? SL_LF_INT("status", it->status) : SL_LF_NONE,
        oc ? SL_LF_STR("output", oc->name) : SL_LF_NONE,
        oc && oc->connector ? SL_LF_STR("connector", oc->connector) : SL_LF_NONE,
        SL_LF_STR("error", it->error),
    };
    sl_logf_fields(lvl, "route", f, sizeof f / sizeof f[0], "route %s: message %s: %s: %s",
                   r->conf->name, it->msg->id, what, it->error);
}

/* Applies the result of one send of an item to output o (bit): a held-back
 * message was not an attempt; the others tell the breaker and update the
 * item and the output's counters. */
static void record_result(const sl_worker *w, sl_output_rt *o, uint32_t bit, sl_item *it,
                          const sl_send_result *res)
{
    if (res->result == SL_RETRY && res->held_back) {
        if (o->breaker)
            sl_breaker_release(o->breaker); /* never reached the partner */
        if (!it->error[0])
            snprintf(it->error, sizeof it->error, "output %s: %s", o->conf->name, res->error);
        return; /* not sent: not an attempt */
    }
    if (o->breaker)
        sl_breaker_record(o->breaker, res->result != SL_RETRY);
    it->attempted = true;
    if (res->result == SL_OK) {
        it->pending &= ~bit;
        sl_counter_add(o->out_total, 1);
        return;
    }
    it->status = res->status;
    it->failed_out = o->conf;
    snprintf(it->error, sizeof it->error, "output %s: %s", o->conf->name, res->error);
    if (res->result == SL_FAIL) {
        it->dead = true;
        sl_counter_add(o->failed_total, 1);
        log_item(w, SL_LVL_INFO, it, it->attempts + 1, "delivery failed for good");
    } else {
        sl_counter_add(o->retried_total, 1);
    }
}

/* Sends every item with output oi pending to output oi and updates items.
 * With a breaker, only as many items as it grants go out (none when it is
 * open, a few probes when half-open); the others wait without an attempt.
 * Returns true when the breaker held some items back. */
static bool deliver_output(sl_worker *w, size_t oi, sl_item *items, size_t n, send_buf *sb)
{
    sl_output_rt *o = &w->route->outs[oi];
    uint32_t bit = 1u << oi;
    size_t k = collect_pending(items, n, bit, sb);
    if (k == 0)
        return false;
    size_t granted = breaker_grant(o, items, sb, k);
    if (granted == 0)
        return true;
    memset(sb->res, 0, granted * sizeof *sb->res);
    for (size_t j = 0; j < granted; j++) {
        sl_item *it = &items[sb->idx[j]];
        if (it->reply_to == (int)oi + 1 && o->conn && o->conn->type->can_reply)
            sb->res[j].reply = &it->reply;
    }
    if (o->conn)
        o->conn->type->send(o->conn, o->conf, sb->msgs, granted, sb->res);
    else
        send_to_topic(o, sb->msgs, granted, sb->res);
    for (size_t j = 0; j < granted; j++)
        record_result(w, o, bit, &items[sb->idx[j]], &sb->res[j]);
    return granted < k;
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

/* dlq_append to the dead letter topic of a log a connector holds. */
static int dead_letter_backend(sl_route *r, const sl_msg *m, sl_error *e)
{
    size_t cap = m->n_headers + 1;
    sl_header *hdrs = malloc(cap * sizeof *hdrs);
    if (!hdrs)
        return sl_error_set(e, SL_ENOMEM, "out of memory");
    sl_record rec;
    int rc = sl_msg_to_record(m, &rec, hdrs, cap) == 0
                 ? r->bt->dead_letter(r->backend, &rec, e)
                 : sl_error_set(e, SL_EINVAL, "too many headers");
    free(hdrs);
    return rc;
}

/* The name of r's dead letter topic, for logs. */
static const char *dlq_name(const sl_route *r)
{
    if (r->backend && r->bt->dead_letter)
        return r->bt->dead_letter_topic(r->backend);
    return r->conf->dead_letter_topic;
}

const char *sl_route_dlq_topic(const sl_route *r)
{
    return dlq_name(r);
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
    rc |= sl_msg_set_header(m, SL_DLQ_ROUTE, r->conf->name, strlen(r->conf->name));
    if (partition >= 0) {
        snprintf(buf, sizeof buf, "%d", partition);
        rc |= sl_msg_set_header(m, "x-sluice-partition", buf, strlen(buf));
        snprintf(buf, sizeof buf, "%" PRId64, m->offset);
        rc |= sl_msg_set_header(m, "x-sluice-offset", buf, strlen(buf));
    }
    if (rc != 0)
        return sl_error_set(e, SL_ENOMEM, "out of memory adding dead-letter headers");
    if (r->backend && r->bt->dead_letter) {
        if (dead_letter_backend(r, m, e) < 0)
            return -1;
    } else {
        int64_t off;
        sl_partition *p = sl_topic_partition(r->dlq, 0);
        if (append_msg(p, m, e, &off) < 0 || sl_partition_wait_durable(p, off, -1, e) < 0)
            return -1;
        sl_dlq_note_entry(r->dlq_state, off);
    }
    sl_counter_add(r->dlq_total, 1);
    sl_counter_add(r->failed_total, 1);
    return 0;
}

/* Writes into buf (cap bytes) the names of the outputs in mask, comma
 * separated. */
static void output_names(const sl_route *r, uint32_t mask, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t oi = 0; oi < r->n_outs && oi < 32; oi++) {
        if (!(mask & (1u << oi)))
            continue;
        int n = snprintf(buf + len, cap - len, "%s%s", len ? "," : "", r->outs[oi].conf->name);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}

/* Adds to a dead item's message what redrive needs: the original message
 * (the record it came from), and which outputs still owe it (an output
 * failure) or which step failed. Returns 0, or -1 when out of memory. */
static int dlq_custody(sl_worker *w, const sl_item *it)
{
    sl_route *r = w->route;
    int rc = sl_dlq_add_original(it->msg, &w->batch.records[it->rec]);
    char buf[1024];
    if (it->step > 0) {
        snprintf(buf, sizeof buf, "%d (%s)", it->step,
                 sl_step_type_name(w->steps[(size_t)it->step - 1]));
        rc |= sl_msg_set_header(it->msg, SL_DLQ_FAILED_STEP, buf, strlen(buf));
    } else if (it->step == 0) {
        output_names(r, it->pending, buf, sizeof buf);
        rc |= sl_msg_set_header(it->msg, SL_DLQ_FAILED_OUTPUTS, buf, strlen(buf));
    }
    return rc ? -1 : 0;
}

/* Appends a failed message to the route's dead letter topic with its error,
 * and waits until that is durable. Returns -1 when it cannot (the partition
 * then retries the dead-lettering: nothing is lost). */
static int dead_letter(sl_worker *w, sl_item *it)
{
    sl_route *r = w->route;
    sl_error e;
    if (it->view) { /* the dead letter headers change it: a copy of its own */
        sl_msg *own = sl_msg_from_record(&w->batch.records[it->rec], w->index, &e);
        if (!own)
            return -1;
        memcpy(own->id, it->msg->id, sizeof own->id);
        sl_msg_view_release(it->msg);
        it->msg = own;
        it->view = false;
    }
    sl_msg *m = it->msg;
    if (dlq_custody(w, it) < 0) {
        sl_err("route", "route %s: cannot dead-letter message %s: out of memory", r->conf->name,
               m->id);
        return -1;
    }
    if (dlq_append(r, m, it->error, it->attempts, it->status, w->index, &e) < 0) {
        sl_err("route", "route %s: cannot dead-letter message %s: %s", r->conf->name, m->id, e.msg);
        return -1;
    }
    char what[300];
    snprintf(what, sizeof what, "dead-lettered to %s after %d attempt(s)", dlq_name(r),
             it->attempts);
    log_item(w, SL_LVL_WARN, it, it->attempts, what);
    return 0;
}

int sl_route_dead_letter(sl_route *r, sl_msg *msg, const char *error, sl_error *err)
{
    if (dlq_append(r, msg, error, 0, 0, -1, err) < 0)
        return -1;
    sl_status_accepted(r->env.status, msg->id, r->conf->name, -1, -1);
    sl_status_update(r->env.status, msg->id, SL_MSG_DEAD_LETTERED, 0, error);
    sl_log_field f[] = {SL_LF_STR("route", r->conf->name), SL_LF_STR("msg_id", msg->id),
                        SL_LF_STR("connector", r->conf->from.connector), SL_LF_STR("error", error)};
    sl_logf_fields(SL_LVL_WARN, "route", f, sizeof f / sizeof f[0],
                   "route %s: message %s from its input dead-lettered to %s: %s", r->conf->name,
                   msg->id, dlq_name(r), error);
    return 0;
}

static void set_last_error(sl_worker *w, const char *e)
{
    pthread_mutex_lock(&w->mu);
    snprintf(w->last_error, sizeof w->last_error, "%s", e ? e : "");
    pthread_mutex_unlock(&w->mu);
}

/* What one delivery round over every output left to do. */
typedef struct round_state {
    bool blocked[32]; /* output i's breaker held items back */
    bool any_blocked;
    bool any_attempted; /* some output really tried some item */
    bool retry;         /* some live item is still pending */
    int head_attempts;  /* of the first such item */
    const char *head_error;
} round_state;

/* One round: every output gets the items still pending for it. */
static void run_round(sl_worker *w, sl_item *items, size_t n, send_buf *sb, round_state *rs)
{
    memset(rs, 0, sizeof *rs);
    pthread_mutex_lock(&w->mu);
    w->breaker_closed = false; /* from now on, a close means another try may pass */
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < n; i++)
        items[i].attempted = false;
    for (size_t oi = 0; oi < w->route->n_outs; oi++) {
        rs->blocked[oi] = deliver_output(w, oi, items, n, sb);
        rs->any_blocked |= rs->blocked[oi];
    }
}

/* Marks an item that used up its attempts as dead, saying so. */
static void give_up(sl_item *it)
{
    it->dead = true;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s (gave up after %d attempts)", it->error, it->attempts);
    snprintf(it->error, sizeof it->error, "%s", tmp);
}

/* Counts the round's attempts, gives up on items past max_attempts, and
 * notes in rs whether some item is still to retry (and which comes first). */
static void tally_round(sl_worker *w, sl_item *items, size_t n, round_state *rs)
{
    sl_route *r = w->route;
    for (size_t i = 0; i < n; i++) {
        sl_item *it = &items[i];
        if (!it->msg || it->pending == 0)
            continue;
        if (it->attempted || it->dead)
            it->attempts++;
        rs->any_attempted |= it->attempted;
        if (!it->dead && it->attempts >= r->conf->retry.max_attempts)
            give_up(it);
        if (it->dead)
            continue;
        rs->retry = true;
        if (!rs->head_error) {
            rs->head_attempts = it->attempts;
            rs->head_error = it->error;
        }
        sl_status_update(r->env.status, it->msg->id, SL_MSG_RETRYING, it->attempts, it->error);
        if (it->attempted)
            log_item(w, SL_LVL_DEBUG, it, it->attempts, "delivery will be retried");
    }
}

/* Dead-letters every dead item still pending, in order, so that the retry
 * wait does not hold them. Returns -1 when interrupted (stop or rewind)
 * while the dead letter topic refused one. */
static int dead_letter_dead(sl_worker *w, sl_item *items, size_t n)
{
    sl_route *r = w->route;
    for (size_t i = 0; i < n; i++) {
        sl_item *it = &items[i];
        if (!it->msg || !it->dead || it->pending == 0)
            continue;
        while (dead_letter(w, it) < 0) {
            if (sleep_interruptible(w, 1000))
                return -1;
        }
        it->pending = 0;
        sl_status_update(r->env.status, it->msg->id, SL_MSG_DEAD_LETTERED, it->attempts, it->error);
        notify_done(r, it->msg, SL_MSG_DEAD_LETTERED, it, it->error);
    }
    return 0;
}

/* Shows the head item's attempts and error on the partition and sleeps
 * before the next round: when only breakers held items back (no attempt
 * was burned), until one lets probes through or closes (reset, or another
 * route's probes succeeded); else the backoff. Returns true when
 * interrupted. */
static bool wait_before_retry(sl_worker *w, const round_state *rs, unsigned *seed)
{
    sl_route *r = w->route;
    atomic_store(&w->head_attempts, rs->head_attempts);
    set_last_error(w, rs->head_error);
    bool for_breaker = rs->any_blocked && !rs->any_attempted;
    uint64_t wait = for_breaker ? breaker_wait_ms(r, rs->blocked)
                                : backoff_ms(&r->conf->retry, rs->head_attempts, seed);
    sl_debug("route", "route %s partition %d: retry in %" PRIu64 " ms (attempt %d): %s",
             r->conf->name, w->index, wait, rs->head_attempts, rs->head_error);
    /* a log a connector holds stops fetching the partition meanwhile; not for
     * the short waits of a half-open breaker whose probes are all out */
    bool hold = for_breaker && wait >= BREAKER_HOLD_MIN_MS && r->backend && r->bt->hold;
    if (hold)
        r->bt->hold(r->backend, w->index, true);
    bool stopped = sleep_until(w, wait, for_breaker);
    if (hold)
        r->bt->hold(r->backend, w->index, false);
    return stopped;
}

/* The number of leading items that are finished. */
static size_t finished_prefix(const sl_item *items, size_t n)
{
    size_t done = 0;
    while (done < n && (!items[done].msg || items[done].pending == 0))
        done++;
    return done;
}

/* Delivers every item of the batch to every output, retrying transient
 * failures with backoff until each item is delivered or dead-lettered.
 * Returns the number of leading items that are finished (all of them unless
 * the worker was interrupted). */
static size_t deliver_batch(sl_worker *w, sl_item *items, size_t n, unsigned *seed)
{
    int rc = -1; /* 0: all finished, 1: interrupted in a wait, -1: otherwise */
    if (send_buf_reserve(w, n) == 0) {
        for (;;) {
            round_state rs;
            run_round(w, items, n, &w->sb, &rs);
            tally_round(w, items, n, &rs);
            if (dead_letter_dead(w, items, n) < 0) {
                rc = -1;
                break;
            }
            rc = rs.retry ? 1 : 0;
            if (!rs.retry || wait_before_retry(w, &rs, seed))
                break;
        }
    }
    if (rc >= 0) {
        atomic_store(&w->head_attempts, 0);
        set_last_error(w, NULL);
    }
    return rc == 0 ? n : finished_prefix(items, n);
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

/* Frees the messages (and replies) of iv's items and empties it, keeping
 * its storage. */
static void clear_items(item_vec *iv)
{
    for (size_t i = 0; i < iv->n; i++) {
        if (iv->v[i].msg) /* a moved item's reply moved with it */
            free(iv->v[i].reply.body);
        if (iv->v[i].view)
            sl_msg_view_release(iv->v[i].msg);
        else
            sl_msg_free(iv->v[i].msg);
    }
    iv->n = 0;
}

static void free_items(item_vec *iv)
{
    clear_items(iv);
    free(iv->v);
    iv->v = NULL;
    iv->n = iv->cap = 0;
}

static void free_msgs(sl_msg **msgs, size_t n)
{
    for (size_t k = 0; k < n; k++)
        sl_msg_free(msgs[k]);
    free(msgs);
}

/* Step s of worker w said SL_STEP_RETRY for message m: frees m and what the
 * step split off, counts the retry and keeps its reason in w->retry_error. */
static void step_wants_retry(sl_worker *w, size_t s, sl_msg *m, sl_msg **more, size_t n_more,
                             const sl_error *e)
{
    snprintf(w->retry_error, sizeof w->retry_error, "step %zu (%s): %s", s + 1,
             sl_step_type_name(w->steps[s]), e->msg);
    sl_counter_add(w->route->step_retried_total[s], 1);
    sl_msg_free(m);
    free_msgs(more, n_more);
}

/* Runs step s on the live item it (taken) into next: a dropped message is
 * freed, a failed one is kept (dead, for the dead letter topic), a split
 * adds its new messages right after their source. Returns 0, -1 when out
 * of memory, 1 when the step asked for a retry. */
static int run_step_on(sl_worker *w, size_t s, sl_item it, item_vec *next)
{
    sl_route *r = w->route;
    double t0 = sl_mono_seconds();
    sl_error e;
    sl_error_clear(&e);
    sl_msg **more = NULL;
    size_t n_more = 0;
    int rc = sl_step_process_split(w->steps[s], it.msg, &more, &n_more, &e);
    sl_step_observe(w->steps[s], sl_mono_seconds() - t0);
    if (rc == SL_STEP_RETRY) {
        step_wants_retry(w, s, it.msg, more, n_more, &e);
        return 1;
    }
    if (rc == SL_STEP_DROP) {
        sl_counter_add(r->dropped_total, 1);
        sl_status_update(r->env.status, it.msg->id, SL_MSG_DROPPED, 0, NULL);
        notify_done(r, it.msg, SL_MSG_DROPPED, NULL, NULL);
        sl_msg_free(it.msg);
        return 0;
    }
    sl_item *out = push_item(next, it.msg, it.rec);
    if (!out) {
        sl_msg_free(it.msg);
        free_msgs(more, n_more);
        return -1;
    }
    if (rc == SL_STEP_FAIL) {
        out->dead = true;
        out->step = (int)s + 1;
        snprintf(out->error, sizeof out->error, "step %zu (%s): %s", s + 1,
                 sl_step_type_name(w->steps[s]), e.msg);
    }
    int rc2 = 0;
    for (size_t k = 0; k < n_more; k++) {
        if (rc2 < 0 || !push_item(next, more[k], it.rec)) {
            sl_msg_free(more[k]);
            rc2 = -1;
        }
    }
    free(more);
    return rc2;
}

/* Runs one step over every item of cur into next (dead items pass as they
 * are). Returns 0, -1 when out of memory, 1 when the step asked for a
 * retry. */
static int run_step_over(sl_worker *w, size_t s, item_vec *cur, item_vec *next)
{
    for (size_t i = 0; i < cur->n; i++) {
        sl_item it = cur->v[i];
        cur->v[i].msg = NULL; /* moved */
        if (!it.dead) {
            int rc = run_step_on(w, s, it, next);
            if (rc != 0)
                return rc;
            continue;
        }
        sl_item *d = push_item(next, it.msg, it.rec);
        if (!d) {
            sl_msg_free(it.msg);
            return -1;
        }
        *d = it;
    }
    return 0;
}

/* Moves the items of cur (all from record rec) to the end of iv. Returns
 * -1 when out of memory: iv then holds none of rec's items. */
static int move_items(item_vec *cur, size_t rec, item_vec *iv)
{
    for (size_t i = 0; i < cur->n; i++) {
        sl_item *it = push_item(iv, cur->v[i].msg, rec);
        if (!it) {
            /* undo this record's items: it is read again later */
            while (iv->n > 0 && iv->v[iv->n - 1].rec == rec) {
                iv->n--;
                iv->v[iv->n].msg = NULL;
            }
            return -1;
        }
        *it = cur->v[i];
        cur->v[i].msg = NULL;
    }
    return 0;
}

/* Runs the steps on m (taken) from record rec and appends what comes out to
 * iv: nothing when a step dropped it, one item, or several when a step split
 * it; a failed step leaves a dead item. Returns 0, -1 when out of memory, 1
 * when a step asked for a retry (w->retry_error says why); nothing is
 * appended then. */
static int run_steps(sl_worker *w, sl_msg *m, size_t rec, item_vec *iv)
{
    if (w->n_steps == 0) { /* no steps: straight into the batch, no vector of its own */
        if (push_item(iv, m, rec))
            return 0;
        sl_msg_free(m);
        return -1;
    }
    item_vec cur = {0}, next = {0};
    if (!push_item(&cur, m, rec)) {
        sl_msg_free(m);
        return -1;
    }
    int rc = 0;
    for (size_t s = 0; s < w->n_steps && rc == 0; s++) {
        rc = run_step_over(w, s, &cur, &next);
        free_items(&cur);
        cur = next;
        memset(&next, 0, sizeof next);
    }
    if (rc == 0)
        rc = move_items(&cur, rec, iv);
    free_items(&cur);
    return rc;
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
        if (sl_expr_eval_bool(w->when[oi], it->msg, &yes, &e) < 0) {
            it->dead = true;
            it->step = -1; /* before the outputs: redrive runs it again */
            it->pending = 1;
            snprintf(it->error, sizeof it->error, "output %s: when: %s",
                     w->route->outs[oi].conf->name, e.msg);
            return;
        }
        if (!yes)
            it->pending &= ~(1u << oi);
    }
}

/* A step asked to retry record rec (message id) for the attempts-th time:
 * marks it retrying. Returns true when it has used up max_attempts: its
 * message, as read from the log, then joins iv as a dead item. */
static bool step_retry_exhausted(sl_worker *w, const sl_record *rec, size_t i, const char *id,
                                 int attempts, item_vec *iv)
{
    sl_route *r = w->route;
    if (attempts < r->conf->retry.max_attempts) {
        sl_status_update(r->env.status, id, SL_MSG_RETRYING, attempts, w->retry_error);
        sl_log_field f[] = {SL_LF_STR("route", r->conf->name), SL_LF_STR("msg_id", id),
                            SL_LF_INT("partition", w->index),  SL_LF_INT("offset", rec->offset),
                            SL_LF_INT("attempt", attempts),    SL_LF_STR("error", w->retry_error)};
        sl_logf_fields(SL_LVL_DEBUG, "route", f, sizeof f / sizeof f[0],
                       "route %s: message %s: step will retry: %s", r->conf->name, id,
                       w->retry_error);
        return false;
    }
    sl_error e;
    sl_msg *m = sl_msg_from_record(rec, w->index, &e);
    sl_item *it = m ? push_item(iv, m, i) : NULL;
    if (!it) {
        sl_msg_free(m);
        return false; /* out of memory: it is tried again */
    }
    it->dead = true;
    it->step = -1;               /* a step kept asking for retries: redrive runs it again */
    it->attempts = attempts - 1; /* the dead-lettering round counts as the last */
    snprintf(it->error, sizeof it->error, "%.200s (gave up after %d attempts)", w->retry_error,
             attempts);
    return true;
}

/* The outputs of r named in list ("a,b"), as a bit mask. */
static uint32_t outputs_named(const sl_route *r, const char *list)
{
    uint32_t mask = 0;
    for (size_t oi = 0; oi < r->n_outs && oi < 32; oi++) {
        const char *name = r->outs[oi].conf->name;
        size_t len = strlen(name);
        for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
            if (strncmp(p, name, len) == 0 && (p[len] == ',' || p[len] == '\0'))
                mask |= 1u << oi;
        }
    }
    return mask;
}

/* Record rec (index i, message m, taken) is a redriven copy of a dead
 * letter: it skips the steps (it went through them before it failed) and
 * owes only the outputs its SL_DLQ_REDRIVE_OUTPUTS header names. Returns 0,
 * or -1 when out of memory. */
static int push_redriven(sl_worker *w, sl_msg *m, size_t i, item_vec *iv)
{
    const sl_record *rec = &w->batch.records[i];
    sl_msg_free(m);
    sl_error e;
    m = sl_dlq_message(rec, false, false, &e);
    sl_item *it = m ? push_item(iv, m, i) : NULL;
    if (!it) {
        sl_msg_free(m);
        return -1;
    }
    m->partition = w->index;
    m->offset = rec->offset;
    const char *names = sl_dlq_header(rec, SL_DLQ_REDRIVE_OUTPUTS, NULL);
    it->only = outputs_named(w->route, names);
    if (it->only == 0) {
        it->dead = true;
        it->step = -1;
        snprintf(it->error, sizeof it->error, "redrive: route %s has no output %.150s",
                 w->route->conf->name, names);
    }
    return 0;
}

/* Makes the worker's view storage hold a message and the headers of every
 * record of its batch, for a route without steps or `when:` on the embedded
 * log (a step or a condition's language may change its message; a
 * connector's log may give records without the NULs a view needs). Returns
 * true when the batch's messages are to be views. */
static bool reserve_views(sl_worker *w)
{
    const sl_batch *b = &w->batch;
    if (w->n_steps > 0 || !w->part || w->route->backend)
        return false;
    for (size_t oi = 0; oi < w->route->n_outs; oi++) {
        if (w->when[oi])
            return false;
    }
    size_t nh = 0;
    for (size_t i = 0; i < b->count; i++)
        nh += b->records[i].n_headers;
    if (b->count > w->views_cap) {
        sl_msg *v = realloc(w->views, b->count * sizeof *v);
        if (!v)
            return false;
        w->views = v;
        w->views_cap = b->count;
    }
    if (nh > w->view_hdrs_cap) {
        sl_msg_header *h = realloc(w->view_hdrs, nh * sizeof *h);
        if (!h)
            return false;
        w->view_hdrs = h;
        w->view_hdrs_cap = nh;
    }
    return true;
}

/* Appends record i of the batch to iv as a view (w->views[i], its headers
 * from w->view_hdrs at *hoff, which moves past them). Returns 0, or -1 when
 * out of memory. */
static int push_view(sl_worker *w, size_t i, item_vec *iv, size_t *hoff)
{
    const sl_record *rec = &w->batch.records[i];
    sl_msg *m = &w->views[i];
    sl_msg_view_record(m, rec, w->index, w->view_hdrs + *hoff);
    sl_item *it = push_item(iv, m, i);
    if (!it) {
        sl_msg_view_release(m);
        return -1;
    }
    it->view = true;
    *hoff += rec->n_headers;
    return 0;
}

/* Runs the steps over the batch's records into iv. Returns how many
 * records went through: all, unless memory ran out or a step asked to retry
 * a record (*retry_attempts is then its attempts so far; the records from
 * there are read again later). */
static size_t run_batch_steps(sl_worker *w, item_vec *iv, int *retry_attempts)
{
    sl_route *r = w->route;
    sl_batch *b = &w->batch;
    *retry_attempts = 0;
    bool views = reserve_views(w);
    size_t hoff = 0;
    for (size_t i = 0; i < b->count; i++) {
        const sl_record *rec = &b->records[i];
        bool redriven = sl_dlq_header(rec, SL_DLQ_REDRIVE_OUTPUTS, NULL) != NULL;
        if (views && !redriven) {
            if (push_view(w, i, iv, &hoff) < 0)
                return i;
            if (r->count_in_on_read && rec->offset >= atomic_load(&w->committed))
                sl_counter_add(r->in_total, 1);
            continue;
        }
        sl_error e;
        sl_msg *m = sl_msg_from_record(rec, w->index, &e);
        if (!m)
            return i; /* out of memory: stop here; the rest is read again */
        char id[SL_ID_LEN + 1];
        memcpy(id, m->id, sizeof id);
        int rc = redriven ? push_redriven(w, m, i, iv) : run_steps(w, m, i, iv);
        if (rc < 0)
            return i;
        if (rc > 0) {
            int attempts = (w->retry_offset == rec->offset ? w->retry_attempts : 0) + 1;
            w->retry_offset = rec->offset;
            w->retry_attempts = attempts;
            if (!step_retry_exhausted(w, rec, i, id, attempts, iv)) {
                *retry_attempts = attempts;
                return i;
            }
        }
        if (w->retry_offset == rec->offset)
            w->retry_offset = -1; /* through at last */
        if (r->count_in_on_read && rec->offset >= atomic_load(&w->committed))
            sl_counter_add(r->in_total, 1);
    }
    return b->count;
}

/* Marks every delivered item of the first done as delivered. */
static void report_delivered(sl_worker *w, item_vec *iv, size_t done)
{
    sl_route *r = w->route;
    for (size_t i = 0; i < done; i++) {
        sl_item *it = &iv->v[i];
        if (!it->dead) {
            sl_status_update(r->env.status, it->msg->id, SL_MSG_DELIVERED, it->attempts + 1, NULL);
            sl_tail_publish(r->tail, "delivered", it->msg, w->index,
                            w->batch.records[it->rec].offset);
            notify_done(r, it->msg, SL_MSG_DELIVERED, it, NULL);
        }
    }
}

/* Observes the delivery latency of the records the first done items came
 * from: once per record that some live (not dead-lettered) item left. */
static void observe_latency(sl_worker *w, const item_vec *iv, size_t done)
{
    int64_t now = sl_wall_ms();
    size_t last = (size_t)-1;
    for (size_t k = 0; k < done; k++) {
        const sl_item *it = &iv->v[k];
        if (!it->msg || it->dead || it->rec == last)
            continue;
        last = it->rec;
        int64_t age = now - w->batch.records[it->rec].timestamp_ms;
        sl_histogram_observe(w->route->latency, age > 0 ? (double)age / 1000.0 : 0.0);
    }
}

/* Stores `to` as w's committed offset, in the log that holds the route. */
static int commit_offset(sl_worker *w, int64_t to, sl_error *e)
{
    sl_route *r = w->route;
    if (r->backend)
        return r->bt->commit(r->backend, w->index, to, e);
    return sl_partition_commit(w->part, r->conf->name, to, e);
}

/* Commits the partition past the records that are finished: a record is
 * finished when every item it made (none, when its message was dropped) is;
 * nrec records went through the steps, done items are finished. Sets *next
 * to where reading goes on when it moved. */
static void commit_finished(sl_worker *w, const item_vec *iv, size_t done, size_t nrec,
                            int64_t *next)
{
    sl_batch *b = &w->batch;
    int64_t to;
    if (done < iv->n)
        to = b->records[iv->v[done].rec].offset;
    else
        to = nrec == b->count ? b->next_offset : b->records[nrec].offset;
    if (nrec == 0 || to <= b->records[0].offset)
        return;
    if (w->route->backend) { /* a connector's log: committed at once, as it acknowledges */
        sl_error e;
        while (commit_offset(w, to, &e) < 0) {
            sl_err("route", "route %s partition %d: commit failed: %s", w->route->conf->name,
                   w->index, e.msg);
            if (sleep_interruptible(w, 1000))
                break;
        }
    } else {
        commit_lazily(w, to);
    }
    observe_latency(w, iv, done);
    int64_t oldest = 0;
    for (size_t k = 0; k < b->count; k++) {
        if (b->records[k].offset >= to) {
            oldest = b->records[k].timestamp_ms;
            break;
        }
    }
    atomic_store(&w->oldest_ms, oldest);
    *next = to; /* w->committed moves once the offset file does (write_commit) */
}

/* A step asked to retry the record after what was committed: shows it on
 * the partition and waits the route's backoff before it is read again. */
static void wait_step_retry(sl_worker *w, int attempts, unsigned *seed)
{
    sl_route *r = w->route;
    atomic_store(&w->head_attempts, attempts);
    set_last_error(w, w->retry_error);
    uint64_t wait = backoff_ms(&r->conf->retry, attempts, seed);
    sl_debug("route", "route %s partition %d: step retry in %" PRIu64 " ms (attempt %d): %s",
             r->conf->name, w->index, wait, attempts, w->retry_error);
    sleep_interruptible(w, wait);
}

/* Runs the batch read into w->batch through the steps and the outputs and
 * commits what is finished. */
static void process_batch(sl_worker *w, unsigned *seed, int64_t *next)
{
    sl_route *r = w->route;
    item_vec iv = {w->items, 0, w->items_cap}; /* the worker's storage, kept */
    uint32_t all = r->n_outs >= 32 ? 0xffffffffu : ((1u << r->n_outs) - 1);
    int retry_attempts;
    size_t nrec = run_batch_steps(w, &iv, &retry_attempts);
    for (size_t i = 0; i < iv.n; i++) {
        sl_item *it = &iv.v[i];
        it->pending = it->dead ? 1 : it->only ? it->only : all;
        if (!it->dead && !it->only)
            select_outputs(w, it);
        if (!it->dead)
            it->reply_to = watch_reply_to(r, it->msg->id);
        if (!it->dead && r->backend)
            take_reply_stamp(r, it);
    }
    size_t done = iv.n ? deliver_batch(w, iv.v, iv.n, seed) : 0;
    report_delivered(w, &iv, done);
    commit_finished(w, &iv, done, nrec, next);
    if (retry_attempts > 0)
        wait_step_retry(w, retry_attempts, seed);
    else if (nrec == 0)
        sleep_interruptible(w, 100); /* out of memory on the first record: breathe */
    clear_items(&iv);
    w->items = iv.v;
    w->items_cap = iv.cap;
}

/* Says loudly, once per range, that worker w met damaged records d. */
static void report_damage(sl_worker *w, const sl_damage *d, bool stop)
{
    sl_route *r = w->route;
    char msg[256];
    snprintf(msg, sizeof msg,
             "corrupt records at offsets %" PRId64 "..%" PRId64 " of %s (bytes %zu..%zu: %s)",
             d->first_offset, d->next_offset - 1, d->segment, d->from_byte, d->to_byte, d->reason);
    set_last_error(w, msg);
    if (w->reported_at == d->first_offset)
        return;
    w->reported_at = d->first_offset;
    sl_counter_add(r->corrupt_total, (uint64_t)(d->next_offset - d->first_offset));
    sl_err("route", "route %s: topic %s partition %d offset %" PRId64 ": %s; %s", r->conf->name,
           sl_topic_name(r->topic), w->index, d->first_offset, msg,
           stop ? "the partition is held (sluice.log.on_corruption: stop)"
                : "quarantining them to the dead letter topic and going on");
}

/* Appends the unreadable bytes of d to the dead letter topic with an error
 * naming the offsets. Returns 0, or -1 (logged) when it cannot. */
static int quarantine(sl_worker *w, const sl_damage *d)
{
    sl_route *r = w->route;
    sl_error e;
    char why[700];
    snprintf(why, sizeof why,
             "corrupt records at offsets %" PRId64 "..%" PRId64 " of topic %s partition %d: %s "
             "bytes %zu..%zu (%s)%s",
             d->first_offset, d->next_offset - 1, sl_topic_name(r->topic), w->index, d->segment,
             d->from_byte, d->to_byte, d->reason,
             d->n_bytes < d->to_byte - d->from_byte ? "; the body holds the first 1 MiB" : "");
    sl_msg *m = sl_msg_new();
    int rc = m && sl_msg_set_body(m, (const char *)d->bytes, d->n_bytes) == 0 &&
                     sl_msg_set_header(m, SL_DLQ_QUARANTINE, "corrupt", 7) == 0
                 ? 0
                 : -1;
    if (rc == 0) {
        m->offset = d->first_offset;
        rc = dlq_append(r, m, why, 0, 0, w->index, &e);
    } else {
        sl_error_set(&e, SL_ENOMEM, "out of memory");
    }
    if (rc != 0)
        sl_err("route", "route %s partition %d: cannot quarantine offset %" PRId64 ": %s",
               r->conf->name, w->index, d->first_offset, e.msg);
    sl_msg_free(m);
    return rc;
}

/* The record at *next is damaged: reports it, and by the log's policy
 * holds the partition (retrying in a second) or quarantines the range and
 * commits past it. */
static void on_damage(sl_worker *w, int64_t *next)
{
    sl_route *r = w->route;
    sl_damage d;
    sl_error e;
    int rc = sl_partition_damage(w->part, *next, &d, &e);
    if (rc <= 0) { /* gone (rewound past, or memory): read again */
        if (rc < 0)
            set_last_error(w, e.msg);
        sleep_interruptible(w, 1000);
        return;
    }
    bool stop = sl_log_corruption_policy(r->env.log) == SL_CORRUPT_STOP;
    report_damage(w, &d, stop);
    if (stop || quarantine(w, &d) != 0 ||
        sl_partition_commit(w->part, r->conf->name, d.next_offset, &e) < 0) {
        free(d.bytes);
        write_commit(w); /* the offset up to the damage is on disk before anyone sees the hold */
        atomic_store(&w->corrupt_next, d.next_offset);
        atomic_store(&w->corrupt_at, d.first_offset); /* held: /ready says so */
        sleep_interruptible(w, 1000);
        return;
    }
    free(d.bytes);
    w->commit_due = -1; /* written past it just now */
    w->commit_disk = d.next_offset;
    atomic_store(&w->committed, d.next_offset);
    set_last_error(w, NULL);
    *next = d.next_offset;
}

bool sl_route_corrupt_held(sl_route *r, char *why, size_t n)
{
    for (int i = 0; r->workers && i < r->n_parts; i++) {
        int64_t at = atomic_load(&r->workers[i].corrupt_at);
        if (at >= 0) {
            snprintf(why, n, "route %s partition %d held at corrupt offset %" PRId64, r->conf->name,
                     i, at);
            return true;
        }
    }
    return false;
}

/* Reads the next batch of a partition whose log a connector holds (waiting
 * up to a second). Returns 0 when records came, -1 when none did. */
static int read_backend(sl_worker *w, int64_t *next)
{
    sl_route *r = w->route;
    sl_error e;
    int n = r->bt->read(r->backend, w->index, *next, BATCH_MAX_RECORDS, &w->batch, 1000, &e);
    if (n < 0) {
        set_last_error(w, e.msg);
        sleep_interruptible(w, 1000);
    }
    if (n <= 0) {
        atomic_store(&w->oldest_ms, 0);
        return -1;
    }
    *next = w->batch.records[0].offset; /* the log may have moved (a new assignment) */
    atomic_store(&w->committed, *next);
    atomic_store(&w->oldest_ms, w->batch.records[0].timestamp_ms);
    return 0;
}

/* With w->mu held: a worker about to wait while paused first writes the
 * commit it holds (dropping w->mu meanwhile: that may sleep on it). */
static void commit_before_pause(sl_worker *w)
{
    if (w->paused && w->commit_due >= 0 && !w->stop && !w->rewind) {
        pthread_mutex_unlock(&w->mu);
        write_commit(w);
        pthread_mutex_lock(&w->mu);
    }
}

/* With w->mu held (released here): commits the rewind's offset at once and
 * returns it, where reading goes on. */
static int64_t apply_rewind(sl_worker *w)
{
    sl_route *r = w->route;
    int64_t next = w->rewind_to;
    w->rewind = false;
    pthread_mutex_unlock(&w->mu);
    sl_error e;
    if (sl_partition_commit(w->part, r->conf->name, next, &e) < 0)
        sl_err("route", "route %s partition %d: commit on rewind failed: %s", r->conf->name,
               w->index, e.msg);
    w->commit_due = -1;
    w->commit_disk = next;
    atomic_store(&w->committed, next);
    return next;
}

/* The worker stops: one attempt to write the commit it still holds. */
static void commit_at_stop(sl_worker *w)
{
    sl_error e;
    if (w->commit_due < 0)
        return;
    if (sl_partition_commit(w->part, w->route->conf->name, w->commit_due, &e) < 0)
        sl_err("route", "route %s partition %d: commit at stop failed: %s", w->route->conf->name,
               w->index, e.msg);
    else
        atomic_store(&w->committed, w->commit_due);
}

/* What the worker does next after looking at its controls. */
typedef enum { TURN_READ, TURN_AGAIN, TURN_STOP } worker_turn;

/* Under w->mu: commits before a pause, waits while paused, and applies a
 * stop or a rewind (moving *next). */
static worker_turn worker_controls(sl_worker *w, int64_t *next)
{
    pthread_mutex_lock(&w->mu);
    commit_before_pause(w);
    while (w->paused && !w->stop && !w->rewind)
        pthread_cond_wait(&w->cond, &w->mu);
    if (w->stop) {
        pthread_mutex_unlock(&w->mu);
        return TURN_STOP;
    }
    if (w->rewind) {
        if (!w->part) { /* the backend moved its position itself */
            w->rewind = false;
            *next = w->rewind_to;
            pthread_mutex_unlock(&w->mu);
            return TURN_AGAIN;
        }
        *next = apply_rewind(w); /* unlocks w->mu */
        return TURN_AGAIN;
    }
    pthread_mutex_unlock(&w->mu);
    return TURN_READ;
}

/* Reads the next batch from the embedded log at *next into w->batch.
 * Returns TURN_READ with records to process, TURN_AGAIN when there were
 * none (damage handled, an error logged, or it waited for more), or
 * TURN_STOP when the partition closed. */
static worker_turn read_embedded(sl_worker *w, int64_t *next)
{
    sl_error e;
    sl_route *r = w->route;
    int n = sl_partition_read(w->part, *next, BATCH_MAX_RECORDS, BATCH_MAX_BYTES, &w->batch, &e);
    if (n < 0 && e.code == SL_ECORRUPT) {
        on_damage(w, next);
        return TURN_AGAIN;
    }
    atomic_store(&w->corrupt_at, -1); /* rewound past it, or repaired */
    if (n < 0) {
        sl_err("route", "route %s partition %d: read at offset %" PRId64 " failed: %s",
               r->conf->name, w->index, *next, e.msg);
        set_last_error(w, e.msg);
        sleep_interruptible(w, 1000);
        return TURN_AGAIN;
    }
    if (n > 0) {
        atomic_store(&w->oldest_ms, w->batch.records[0].timestamp_ms);
        return TURN_READ;
    }
    atomic_store(&w->oldest_ms, 0);
    if (w->batch.next_offset > *next)
        *next = w->batch.next_offset; /* skipped past deleted segments */
    else if (sl_partition_wait_readable(w->part, *next, idle_wait_ms(w)) < 0)
        return TURN_STOP;
    return TURN_AGAIN;
}

static void *worker_main(void *arg)
{
    sl_worker *w = arg;
    unsigned seed = (unsigned)(sl_wall_ms() ^ (w->index * 2654435761u));
    int64_t next = atomic_load(&w->committed);
    w->commit_due = -1;
    w->commit_disk = next;
    w->commit_disk_ms = sl_mono_ms();
    for (;;) {
        worker_turn t = worker_controls(w, &next);
        if (t == TURN_STOP)
            break;
        if (t == TURN_AGAIN)
            continue;
        if (!w->part) {
            if (read_backend(w, &next) == 0)
                process_batch(w, &seed, &next);
            continue;
        }
        t = read_embedded(w, &next);
        if (t == TURN_STOP)
            break;
        if (t == TURN_READ)
            process_batch(w, &seed, &next);
    }
    commit_at_stop(w);
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
        sl_thread_name(w->thread, "w%d:%s", i, r->conf->name);
        w->started = true;
    }
    if (!r->backend)
        return 0;
    if (r->bt->start(r->backend, err) < 0)
        return -1;
    return r->bt->status_open ? r->bt->status_open(r->backend, r->env.status, err) : 0;
}

void sl_route_stop(sl_route *r)
{
    if (r->backend) /* gives its partitions up while the workers still commit */
        r->bt->stop(r->backend);
    if (!r->workers)
        return;
    for (int i = 0; i < r->n_parts; i++) {
        sl_worker *w = &r->workers[i];
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
        wake_worker(w);
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
    unwatch_breakers(r);
    if (r->workers) {
        sl_route_stop(r);
        for (int i = 0; i < r->n_parts; i++) {
            sl_worker *w = &r->workers[i];
            if (w->lag)
                sl_metrics_remove_gauge(r->env.metrics, w->lag);
            if (w->lag_seconds)
                sl_metrics_remove_gauge(r->env.metrics, w->lag_seconds);
            sl_batch_free(&w->batch);
            free(w->items);
            send_buf_free(&w->sb);
            free(w->views);
            free(w->view_hdrs);
            sl_steps_free(w->steps, w->n_steps);
            for (size_t oi = 0; w->when && oi < r->n_outs; oi++)
                sl_expr_free(w->when[oi]);
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
    if (r->bt)
        r->bt->free(r->backend);
    pthread_mutex_destroy(&r->watch_mu);
    sl_tail_free(r->tail);
    pthread_mutex_destroy(&r->redrive_mu);
    sl_dlq_free(r->dlq_state);
    sl_expr_free(r->key);
    free(r->step_retried_total);
    free(r->outs);
    free(r);
}

/* ---- dead letters: list, redrive, purge ---- */

static void copy_header(const sl_record *rec, const char *name, char *out, size_t cap)
{
    size_t len = 0;
    const char *v = sl_dlq_header(rec, name, &len);
    snprintf(out, cap, "%.*s", v ? (int)(len < cap ? len : cap - 1) : 0, v ? v : "");
}

void sl_dlq_entries_free(sl_dlq_entry *entries, size_t n)
{
    if (!entries)
        return;
    for (size_t i = 0; i < n; i++) {
        free(entries[i].body);
        free(entries[i].original_body);
    }
    free(entries);
}

/* A malloc'd NUL-terminated copy of len bytes, or NULL. */
static char *dup_text(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* Fills e from dead letter rec. Returns -1 when out of memory. */
static int dlq_entry_from(sl_route *r, const sl_record *rec, sl_dlq_entry *e)
{
    e->offset = rec->offset;
    e->timestamp_ms = rec->timestamp_ms;
    copy_header(rec, SL_HDR_ID, e->id, sizeof e->id);
    copy_header(rec, SL_DLQ_ERROR, e->error, sizeof e->error);
    copy_header(rec, SL_DLQ_FAILED_OUTPUTS, e->failed_outputs, sizeof e->failed_outputs);
    copy_header(rec, SL_DLQ_FAILED_STEP, e->failed_step, sizeof e->failed_step);
    const char *v = sl_dlq_header(rec, SL_DLQ_STATUS, NULL);
    e->status = v ? atoi(v) : 0;
    v = sl_dlq_header(rec, SL_DLQ_ATTEMPTS, NULL);
    e->attempts = v ? atoi(v) : 0;
    sl_dlq_state st = sl_dlq_state_at(r->dlq_state, rec->offset);
    e->redriven = st == SL_DLQ_REDRIVEN;
    e->purged = st == SL_DLQ_PURGED;
    sl_dlq_marked_by(r->dlq_state, rec->offset, &e->marked_at_ms, e->marked_by,
                     sizeof e->marked_by);
    e->body = dup_text(rec->value ? rec->value : "", rec->value_len);
    e->body_len = rec->value_len;
    size_t olen = 0;
    v = sl_dlq_header(rec, SL_DLQ_ORIG_BODY, &olen);
    e->original_body = v ? dup_text(v, olen) : NULL;
    e->original_len = olen;
    return e->body && (!v || e->original_body) ? 0 : -1;
}

/* Reads the dead letters of batch b into entries (up to limit in all, *k
 * so far), skipping markers. Returns -1 with err when out of memory. */
static int list_batch(sl_route *r, const sl_batch *b, sl_dlq_entry *entries, size_t limit,
                      size_t *k, sl_error *err)
{
    for (size_t i = 0; i < b->count && *k < limit; i++) {
        const sl_record *rec = &b->records[i];
        if (sl_dlq_note(r->dlq_state, rec) < 0)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        sl_dlq_state st = sl_dlq_state_at(r->dlq_state, rec->offset);
        if (st == SL_DLQ_IS_MARKER || st == SL_DLQ_FOREIGN)
            continue; /* not an entry of this route */
        if (dlq_entry_from(r, rec, &entries[*k]) < 0) {
            (*k)++; /* freed with the others */
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        }
        (*k)++;
    }
    return 0;
}

int sl_route_dlq_list(sl_route *r, int64_t from, size_t limit, sl_dlq_entry **out, size_t *n,
                      int64_t *pending, sl_error *err)
{
    *out = NULL;
    *n = 0;
    if (r->backend && r->bt->dlq_list) /* the backend's dead letter topic */
        return r->bt->dlq_list(r->backend, from, limit, out, n, pending, err);
    sl_partition *p = sl_topic_partition(r->dlq, 0);
    *pending = sl_dlq_depth(r->dlq_state);
    if (limit == 0)
        return 0;
    sl_dlq_entry *entries = calloc(limit, sizeof *entries);
    if (!entries)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    sl_batch b;
    sl_batch_init(&b);
    size_t k = 0;
    int64_t off = from;
    int rc = 0;
    while (k < limit && rc == 0) {
        int got = sl_partition_read(p, off, limit - k, 8u << 20, &b, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        rc = list_batch(r, &b, entries, limit, &k, err);
        off = b.next_offset;
    }
    sl_batch_free(&b);
    if (rc < 0) {
        sl_dlq_entries_free(entries, k);
        return -1;
    }
    *out = entries;
    *n = k;
    return 0;
}

/* Whether dead letter rec is a pending entry that sel picks (marking the id
 * it matched in sel->matched). */
bool sl_dlq_select_picks(const sl_dlq_select *sel, const sl_record *rec)
{
    if (sel->n_ids == 0)
        return true;
    size_t len = 0;
    const char *id = sl_dlq_header(rec, SL_HDR_ID, &len);
    for (size_t i = 0; id && i < sel->n_ids; i++) {
        if (strlen(sel->ids[i]) == len && memcmp(sel->ids[i], id, len) == 0) {
            if (sel->matched)
                sel->matched[i] = true;
            return true;
        }
    }
    return false;
}

static bool dlq_selected(sl_route *r, const sl_record *rec, const sl_dlq_select *sel)
{
    if (sl_dlq_note(r->dlq_state, rec) < 0 ||
        sl_dlq_state_at(r->dlq_state, rec->offset) != SL_DLQ_PENDING)
        return false;
    return sl_dlq_select_picks(sel, rec);
}

/* The message a redrive of dead letter rec appends to the route: for an
 * output failure (without rerun), the message the failed outputs should
 * have received, told to go to those outputs only and carrying the
 * original along; else the original message, to run the whole route. */
static sl_msg *redrive_message(const sl_record *rec, bool rerun, sl_error *err)
{
    size_t len = 0;
    const char *outs = sl_dlq_header(rec, SL_DLQ_FAILED_OUTPUTS, &len);
    if (rerun || !outs || len == 0)
        return sl_dlq_message(rec, true, false, err);
    sl_msg *m = sl_dlq_message(rec, false, true, err);
    if (m && sl_msg_set_header(m, SL_DLQ_REDRIVE_OUTPUTS, outs, len) < 0) {
        sl_msg_free(m);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    return m;
}

/* What one pass of redrive or purge over the dead letters does. */
typedef struct dlq_pass {
    const sl_dlq_select *sel;
    bool purge;
    const char *by;
    size_t left; /* entries still allowed by sel->limit (SIZE_MAX: no limit) */
    size_t done;
    int64_t end;    /* the end of the topic when the pass began: a message redriven
                     * and dead-lettered again during the pass is not taken again */
    size_t refused; /* entries the route refused (their key cannot be read) */
} dlq_pass;

/* Appends the redrive message of dead letter rec to the route (last[p]: the
 * last offset appended to partition p). Returns 0, 1 when the route refuses
 * it for good (SL_EINVAL: its key cannot be read; it stays pending and the
 * pass goes on), or -1 with err. */
static int redrive_one(sl_route *r, const sl_record *rec, dlq_pass *ps, int64_t *last,
                       sl_error *err)
{
    size_t qlen = 0;
    if (sl_dlq_header(rec, SL_DLQ_QUARANTINE, &qlen)) {
        /* unreadable bytes of the log: appending them would deliver garbage */
        sl_warn("route",
                "route %s: dead letter at offset %" PRId64 " holds quarantined corrupt "
                "log bytes: not redriven (purge it once inspected)",
                r->conf->name, rec->offset);
        ps->refused++;
        return 1;
    }
    sl_msg *m = redrive_message(rec, ps->sel->rerun, err);
    int rc = m ? append_to_route(r, m, err) : -1;
    if (rc == 0)
        last[m->partition] = m->offset;
    else if (m && err->code == SL_EINVAL) {
        sl_warn("route",
                "route %s: dead letter at offset %" PRId64 " (message %s) not redriven: %s",
                r->conf->name, rec->offset, m->id, err->msg);
        ps->refused++;
        rc = 1;
    }
    sl_msg_free(m);
    return rc;
}

/* Redrives (appends back into the route, made durable) or purges the
 * selected entries of batch b, then marks them. Returns 0, or -1 with err
 * (those appended before are marked unless the marking itself failed). */
static int dlq_pass_batch(sl_route *r, const sl_batch *b, dlq_pass *ps, sl_error *err)
{
    int64_t *targets = malloc((b->count ? b->count : 1) * sizeof *targets);
    int64_t *last = new_last_offsets(r->n_parts);
    int rc = targets && last ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; rc == 0 && i < b->count && ps->left > 0; i++) {
        const sl_record *rec = &b->records[i];
        if (rec->offset >= ps->end)
            break; /* dead-lettered since the pass began */
        if (!dlq_selected(r, rec, ps->sel))
            continue;
        int got = ps->purge ? 0 : redrive_one(r, rec, ps, last, err);
        if (got < 0) {
            rc = -1;
            break;
        }
        if (got > 0)
            continue; /* refused: stays pending */
        targets[k++] = rec->offset;
        ps->left--;
    }
    /* what was appended is made durable before it is marked redriven */
    if (last && k > 0 && wait_last_durable(r->topic, last, r->n_parts, err) < 0) {
        rc = -1;
        k = 0; /* not marked: a later redrive may send them again (at least once) */
    }
    if (k > 0 && sl_dlq_mark(r->dlq_state, targets, k, ps->purge ? SL_DLQ_PURGED : SL_DLQ_REDRIVEN,
                             ps->by, err) < 0)
        rc = -1;
    else
        ps->done += k;
    free(targets);
    free(last);
    return rc;
}

/* Runs pass ps over every dead letter on disk, oldest first. */
static int dlq_pass_run(sl_route *r, dlq_pass *ps, size_t *count, sl_error *err)
{
    sl_partition *p = sl_topic_partition(r->dlq, 0);
    pthread_mutex_lock(&r->redrive_mu);
    sl_batch b;
    sl_batch_init(&b);
    int64_t off = sl_partition_start_offset(p);
    ps->end = sl_partition_end_offset(p);
    int rc = 0;
    while (ps->left > 0 && off < ps->end) {
        int got = sl_partition_read(p, off, 256, 8u << 20, &b, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        if ((rc = dlq_pass_batch(r, &b, ps, err)) < 0)
            break;
        off = b.next_offset;
    }
    sl_batch_free(&b);
    pthread_mutex_unlock(&r->redrive_mu);
    *count = ps->done;
    if (ps->done)
        sl_info("route", "route %s: %zu dead letter(s) %s by %s", r->conf->name, ps->done,
                ps->purge ? "purged" : "redriven", ps->by);
    return rc < 0 ? -1 : 0;
}

/* The backend's redrive callback (sl_log_redrive_fn): redrive_message,
 * appended to the route. */
static int redrive_to_backend(void *arg, const sl_record *dead, bool rerun, int64_t *ticket,
                              sl_error *err)
{
    sl_route *r = arg;
    sl_msg *m = redrive_message(dead, rerun, err);
    int rc = m ? append_to_route(r, m, err) : -1;
    if (rc == 0)
        *ticket = m->offset;
    else if (m && err->code == SL_EINVAL) {
        sl_warn("route", "route %s: dead letter of message %s not redriven: %s", r->conf->name,
                m->id, err->msg);
        rc = 1;
    }
    sl_msg_free(m);
    return rc;
}

/* Redrive or purge on a log a connector holds: the backend's dead letters. */
static int dlq_act_backend(sl_route *r, const sl_dlq_select *sel, bool purge, const char *by,
                           size_t *count, size_t *refused, sl_error *err)
{
    *count = *refused = 0;
    if (!r->bt->dlq_act)
        return sl_error_set(err, SL_EINVAL,
                            "dead letter calls are not available on route %s: its log's "
                            "connector keeps no dead letters",
                            r->conf->name);
    pthread_mutex_lock(&r->redrive_mu);
    int rc = r->bt->dlq_act(r->backend, sel, purge, by, redrive_to_backend, r, count, refused, err);
    pthread_mutex_unlock(&r->redrive_mu);
    if (*count)
        sl_info("route", "route %s: %zu dead letter(s) %s by %s", r->conf->name, *count,
                purge ? "purged" : "redriven", by);
    return rc;
}

int sl_route_dlq_redrive(sl_route *r, const sl_dlq_select *sel, const char *by, size_t *count,
                         size_t *refused, sl_error *err)
{
    *count = *refused = 0;
    if (r->backend)
        return dlq_act_backend(r, sel, false, by, count, refused, err);
    dlq_pass ps = {sel, false, by, sel->limit ? sel->limit : SIZE_MAX, 0, 0, 0};
    int rc = dlq_pass_run(r, &ps, count, err);
    *refused = ps.refused;
    return rc;
}

int sl_route_dlq_purge(sl_route *r, const sl_dlq_select *sel, const char *by, size_t *count,
                       sl_error *err)
{
    size_t refused = 0;
    if (r->backend)
        return dlq_act_backend(r, sel, true, by, count, &refused, err);
    dlq_pass ps = {sel, true, by, sel->limit ? sel->limit : SIZE_MAX, 0, 0, 0};
    return dlq_pass_run(r, &ps, count, err);
}
