/* The consumer side of a route's log on Kafka (connectors/kafka_log.h): the
 * gateways that run the route form one consumer group and share the topic's
 * partitions. One consumer thread polls and files each fetched message in
 * its partition's buffer; the route worker of that partition reads batches
 * from there and commits an offset once every output acknowledged. On a
 * rebalance a partition is given up only after its worker came back from
 * the batch it holds (bounded), so its last commit goes through first. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka_log.h"
#include "logging.h"
#include "thread_name.h"

#define KL_BUF_MAX 4096   /* fetched messages buffered per partition before pausing it */
#define KL_DRAIN_MS 10000 /* how long a rebalance waits for a worker's batch */
#define KL_REWIND_WAIT_MS 30000

/* ---- the buffer of one partition (its mutex held) ---- */

static rd_kafka_message_t *ring_at(const kl_part *pp, size_t i)
{
    return pp->q[(pp->head + i) % pp->cap];
}

static int ring_push(kl_part *pp, rd_kafka_message_t *m)
{
    if (pp->n == pp->cap) {
        size_t cap = pp->cap ? pp->cap * 2 : 256;
        rd_kafka_message_t **q = malloc(cap * sizeof *q);
        if (!q)
            return -1;
        for (size_t i = 0; i < pp->n; i++)
            q[i] = ring_at(pp, i);
        free(pp->q);
        pp->q = q;
        pp->cap = cap;
        pp->head = 0;
    }
    pp->q[(pp->head + pp->n) % pp->cap] = m;
    pp->n++;
    return 0;
}

static void ring_drop_front(kl_part *pp)
{
    rd_kafka_message_destroy(ring_at(pp, 0));
    pp->head = (pp->head + 1) % pp->cap;
    pp->n--;
}

/* Drops what lies below offset `below` (committed, or to be read again). */
static void ring_drop_below(kl_part *pp, int64_t below)
{
    while (pp->n > 0 && ring_at(pp, 0)->offset < below)
        ring_drop_front(pp);
}

static void ring_clear(kl_part *pp)
{
    while (pp->n > 0)
        ring_drop_front(pp);
}

/* ---- pausing fetches ---- */

static void fetch_pause(sl_log_backend *b, int p, bool pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, b->topic, p);
    if (pause)
        rd_kafka_pause_partitions(b->cons, l);
    else
        rd_kafka_resume_partitions(b->cons, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* ---- the consumer thread ---- */

/* Files fetched message m in its partition's buffer (or drops it when the
 * partition is not ours any more), pausing the fetch when the buffer is full. */
static void take(sl_log_backend *b, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            sl_warn(SL_KAFKA_COMPONENT, "connector %s (%s): %s", b->k->name, b->ccl.role,
                    rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    sl_kafka_client_up(&b->ccl);
    if (m->partition < 0 || m->partition >= b->n_parts) {
        rd_kafka_message_destroy(m);
        return;
    }
    kl_part *pp = &b->parts[m->partition];
    pthread_mutex_lock(&pp->mu);
    bool keep = pp->assigned && !pp->revoking && ring_push(pp, m) == 0;
    bool pause = keep && pp->n >= KL_BUF_MAX && !pp->fetch_paused;
    if (pause)
        pp->fetch_paused = true;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
    if (!keep)
        rd_kafka_message_destroy(m); /* fetched again by whoever owns it */
    if (pause)
        fetch_pause(b, (int)m->partition, true);
}

static void part_assign(kl_part *pp)
{
    pthread_mutex_lock(&pp->mu);
    ring_clear(pp);
    pp->assigned = true;
    pp->revoking = false;
    pp->fresh = true;
    pp->fetch_paused = false;
    pp->committed = -1;
    pp->gen++;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
}

static struct timespec deadline_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Gives partition p up: hands out nothing more, waits (bounded, when the
 * assignment is not lost already) for the worker to come back from its
 * batch, whose commit then went through, and forgets the buffer. */
static void part_revoke(sl_log_backend *b, int p, bool drain)
{
    kl_part *pp = &b->parts[p];
    struct timespec until = deadline_in(KL_DRAIN_MS);
    pthread_mutex_lock(&pp->mu);
    pp->revoking = true;
    pthread_cond_broadcast(&pp->cv);
    while (drain && pp->busy && pthread_cond_timedwait(&pp->cv, &pp->mu, &until) != ETIMEDOUT)
        ;
    if (drain && pp->busy)
        sl_warn(SL_KAFKA_COMPONENT,
                "connector %s (%s): partition %d given up with a batch still in delivery after "
                "%d ms; its next owner delivers it again",
                b->k->name, b->ccl.role, p, KL_DRAIN_MS);
    ring_clear(pp);
    pp->assigned = false;
    pp->revoking = false;
    pp->gen++;
    pthread_mutex_unlock(&pp->mu);
}

/* Writes "0 1 2" for the partitions of parts on b's topic. */
static void describe(const sl_log_backend *b, const rd_kafka_topic_partition_list_t *parts,
                     char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < parts->cnt && used < cap; i++) {
        if (strcmp(parts->elems[i].topic, b->topic) != 0)
            continue;
        int n = snprintf(out + used, cap - used, "%s%d", used ? " " : "",
                         (int)parts->elems[i].partition);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* Reads the group's committed offsets of the assigned partitions, for the
 * lag (GET /v1/routes/NAME) until the worker commits. */
static void note_committed(sl_log_backend *b, rd_kafka_t *rk,
                           const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_copy(parts);
    if (rd_kafka_committed(rk, l, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++) {
            int p = (int)l->elems[i].partition;
            if (strcmp(l->elems[i].topic, b->topic) != 0 || p < 0 || p >= b->n_parts)
                continue;
            pthread_mutex_lock(&b->parts[p].mu);
            b->parts[p].committed = l->elems[i].offset >= 0 ? l->elems[i].offset : 0;
            pthread_mutex_unlock(&b->parts[p].mu);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Commits, for the partitions assigned back to us, what was delivered but
 * refused by the group while it rebalanced (librdkafka's mock cluster
 * refuses every commit then), before fetching starts from the committed
 * offset: those records are not delivered twice. Partitions that moved to
 * another gateway are delivered again from their last commit. */
static void commit_unsaved(sl_log_backend *b, rd_kafka_t *rk,
                           const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int p = 0; p < b->n_parts; p++) {
        pthread_mutex_lock(&b->parts[p].mu);
        /* one that went elsewhere may have moved on there: never commit it */
        if (b->parts[p].unsaved >= 0 && rd_kafka_topic_partition_list_find(parts, b->topic, p))
            rd_kafka_topic_partition_list_add(l, b->topic, p)->offset = b->parts[p].unsaved;
        b->parts[p].unsaved = -1;
        pthread_mutex_unlock(&b->parts[p].mu);
    }
    rd_kafka_resp_err_t e = l->cnt ? rd_kafka_commit(rk, l, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e)
        sl_warn(SL_KAFKA_COMPONENT,
                "connector %s (%s): commit of what was delivered during the "
                "rebalance failed (%s): delivered again",
                b->k->name, b->ccl.role, rd_kafka_err2name(e));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Applies an assignment or a revocation to the partition states. */
static void rebalance_parts(sl_log_backend *b, rd_kafka_topic_partition_list_t *parts, bool assign,
                            bool drain)
{
    for (int i = 0; i < parts->cnt; i++) {
        int p = (int)parts->elems[i].partition;
        if (strcmp(parts->elems[i].topic, b->topic) != 0 || p < 0 || p >= b->n_parts)
            continue;
        if (assign)
            part_assign(&b->parts[p]);
        else
            part_revoke(b, p, drain);
    }
}

/* Pauses again, among the partitions of l just assigned, those whose worker
 * still waits for a breaker (the assignment resumed them). */
static void pause_held(sl_log_backend *b, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        int p = (int)l->elems[i].partition;
        if (strcmp(l->elems[i].topic, b->topic) != 0 || p < 0 || p >= b->n_parts)
            continue;
        pthread_mutex_lock(&b->parts[p].mu);
        if (b->parts[p].held)
            fetch_pause(b, p, true);
        pthread_mutex_unlock(&b->parts[p].mu);
    }
}

static void kl_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    sl_log_backend *b = (sl_log_backend *)((char *)opaque - offsetof(sl_log_backend, ccl));
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    char desc[1024];
    describe(b, parts, desc, sizeof desc);
    sl_info(SL_KAFKA_COMPONENT, "connector %s (%s): %s %s", b->k->name, b->ccl.role,
            assign ? "assigned" : "revoked", desc);
    if (!assign && err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        sl_warn(SL_KAFKA_COMPONENT, "connector %s (%s): rebalance error: %s", b->k->name,
                b->ccl.role, rd_kafka_err2str(err));
    rebalance_parts(b, parts, assign,
                    err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && !rd_kafka_assignment_lost(rk));
    if (assign) {
        commit_unsaved(b, rk, parts);
        note_committed(b, rk, parts);
    }
    rd_kafka_error_t *er = NULL;
    if (coop)
        er = assign ? rd_kafka_incremental_assign(rk, parts)
                    : rd_kafka_incremental_unassign(rk, parts);
    else
        err = rd_kafka_assign(rk, assign ? parts : NULL);
    if (assign) { /* a partition paused under an earlier assignment fetches again */
        rd_kafka_resume_partitions(rk, parts);
        pause_held(b, parts); /* unless its worker waits for a breaker */
    }
    if (er) {
        sl_err(SL_KAFKA_COMPONENT, "connector %s (%s): (un)assign: %s", b->k->name, b->ccl.role,
               rd_kafka_error_string(er));
        rd_kafka_error_destroy(er);
    } else if (!coop && err) {
        sl_err(SL_KAFKA_COMPONENT, "connector %s (%s): assign: %s", b->k->name, b->ccl.role,
               rd_kafka_err2str(err));
    }
}

static void serve_rewind(sl_log_backend *b);

static void *kl_consumer_main(void *arg)
{
    sl_log_backend *b = arg;
    while (!atomic_load(&b->stopped)) {
        serve_rewind(b);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(b->cons, 100);
        if (m)
            take(b, m);
    }
    return NULL;
}

/* ---- create, start, stop ---- */

static rd_kafka_conf_t *consumer_conf(sl_log_backend *b, sl_error *err)
{
    rd_kafka_conf_t *conf = sl_kafka_conf_new(b->k, &b->ccl, err);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_rebalance_cb(conf, kl_rebalance_cb);
    if (sl_kafka_conf_set(b->k, conf, "auto.offset.reset", "earliest", err) < 0 ||
        sl_kafka_conf_apply_options(b->k, conf, err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "group.id", b->group, err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "enable.auto.commit", "false", err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "enable.auto.offset.store", "false", err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "enable.partition.eof", "false", err) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

int sl_kafka_log_consumer_new(sl_log_backend *b, sl_error *err)
{
    b->parts = calloc((size_t)b->n_parts, sizeof *b->parts);
    if (!b->parts)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (int i = 0; i < b->n_parts; i++) {
        pthread_mutex_init(&b->parts[i].mu, NULL);
        pthread_cond_init(&b->parts[i].cv, NULL);
        b->parts[i].committed = -1;
        b->parts[i].unsaved = -1;
    }
    rd_kafka_conf_t *conf = consumer_conf(b, err);
    if (!conf)
        return -1;
    char errstr[512];
    b->cons = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!b->cons) {
        rd_kafka_conf_destroy(conf);
        return sl_error_set(err, SL_ECONFIG, "connector %s: consumer of route %s: %s", b->k->name,
                            b->route->name, errstr);
    }
    rd_kafka_poll_set_consumer(b->cons);
    return 0;
}

int sl_kafka_log_consumer_start(sl_log_backend *b, sl_error *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, b->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(b->cons, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return sl_error_set(err, SL_EIO, "route %s: cannot subscribe to %s: %s", b->route->name,
                            b->topic, rd_kafka_err2str(e));
    if (pthread_create(&b->cons_thread, NULL, kl_consumer_main, b) != 0)
        return sl_error_set(err, SL_EIO, "route %s: cannot start the Kafka consumer thread",
                            b->route->name);
    sl_thread_name(b->cons_thread, "klog-cons:%s", b->route->name);
    b->cons_running = true;
    return 0;
}

void sl_kafka_log_consumer_stop(sl_log_backend *b)
{
    if (b->cons_running)
        pthread_join(b->cons_thread, NULL);
    b->cons_running = false;
    pthread_mutex_lock(&b->rmu);
    if (b->rewind_asked) {
        b->rewind_asked = false;
        b->rewind_rc = sl_error_set(&b->rewind_err, SL_ECLOSED, "route stopping");
        pthread_cond_broadcast(&b->rcv);
    }
    pthread_mutex_unlock(&b->rmu);
    if (b->cons) {
        /* revokes (draining each partition's worker) and leaves the group */
        sl_kafka_log_reader_close(&b->cons);
    }
    for (int i = 0; b->parts && i < b->n_parts; i++)
        sl_kafka_log_wake(b, i);
}

void sl_kafka_log_consumer_free(sl_log_backend *b)
{
    for (int i = 0; b->parts && i < b->n_parts; i++) {
        ring_clear(&b->parts[i]);
        free(b->parts[i].q);
        pthread_mutex_destroy(&b->parts[i].mu);
        pthread_cond_destroy(&b->parts[i].cv);
    }
    free(b->parts);
    b->parts = NULL;
}

/* ---- what the route's workers call ---- */

/* The records partition pp can hand out now (its mutex held): none unless
 * assigned; those below `from` were committed and go, unless the partition
 * was assigned or rewound since the worker read (its `from` is stale). */
static size_t ready(kl_part *pp, int64_t from)
{
    if (!pp->assigned || pp->revoking)
        return 0;
    if (!pp->fresh)
        ring_drop_below(pp, from);
    return pp->n;
}

/* Copies the first n buffered messages of pp into out (its mutex held). */
static int fill_batch(kl_part *pp, size_t n, sl_batch *out, sl_error *err)
{
    size_t n_hdrs = 0;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_headers_t *h = NULL;
        if (rd_kafka_message_headers(ring_at(pp, i), &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
            n_hdrs += rd_kafka_header_cnt(h);
    }
    sl_record *recs = calloc(n, sizeof *recs);
    sl_header *hdrs = calloc(n_hdrs ? n_hdrs : 1, sizeof *hdrs);
    int rc = recs && hdrs ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0, h_used = 0; rc == 0 && i < n; i++) {
        rd_kafka_message_t *m = ring_at(pp, i);
        rd_kafka_timestamp_type_t tt;
        recs[i] = (sl_record){.offset = m->offset,
                              .timestamp_ms = rd_kafka_message_timestamp(m, &tt),
                              .key = m->key,
                              .key_len = m->key_len,
                              .value = m->payload,
                              .value_len = m->len,
                              .headers = hdrs + h_used};
        rd_kafka_headers_t *h = NULL;
        if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        const char *name;
        const void *val;
        size_t size;
        for (size_t k = 0; rd_kafka_header_get_all(h, k, &name, &val, &size) == 0; k++) {
            hdrs[h_used++] = (sl_header){name, strlen(name), val, size};
            recs[i].n_headers++;
        }
    }
    if (rc == 0)
        rc = sl_batch_fill(out, recs, n, err);
    free(recs);
    free(hdrs);
    return rc;
}

int sl_kafka_log_read(sl_log_backend *b, int p, int64_t from, size_t max_records, sl_batch *out,
                      int timeout_ms, sl_error *err)
{
    kl_part *pp = &b->parts[p];
    struct timespec until = deadline_in(timeout_ms);
    out->count = 0;
    pthread_mutex_lock(&pp->mu);
    if (pp->busy) { /* back from its batch: a rebalance may give the partition up */
        pp->busy = false;
        pthread_cond_broadcast(&pp->cv);
    }
    while (ready(pp, from) == 0 && !pp->woken && !atomic_load(&b->stopped) &&
           pthread_cond_timedwait(&pp->cv, &pp->mu, &until) != ETIMEDOUT)
        ;
    pp->woken = false;
    size_t n = ready(pp, from);
    if (n > max_records)
        n = max_records;
    int rc = n > 0 ? fill_batch(pp, n, out, err) : 0;
    if (rc == 0 && n > 0) {
        pp->busy = true;
        pp->read_gen = pp->gen;
        pp->fresh = false;
    }
    bool resume = pp->fetch_paused && pp->n < KL_BUF_MAX / 2;
    if (resume)
        pp->fetch_paused = false;
    resume = resume && !pp->held; /* a held partition stays paused */
    pthread_mutex_unlock(&pp->mu);
    if (resume)
        fetch_pause(b, p, false);
    return rc < 0 ? -1 : (int)out->count;
}

/* Errors of a commit that mean "the partition is not ours now": the new
 * owner delivers from the last commit that went through. */
static bool commit_lost(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
           e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
           e == RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST || e == RD_KAFKA_RESP_ERR__STATE;
}

int sl_kafka_log_commit(sl_log_backend *b, int p, int64_t next, sl_error *err)
{
    kl_part *pp = &b->parts[p];
    pthread_mutex_lock(&pp->mu);
    bool ours = pp->assigned && pp->gen == pp->read_gen;
    if (ours)
        ring_drop_below(pp, next);
    pthread_mutex_unlock(&pp->mu);
    if (!ours)
        return 0; /* given up or rewound since the read: not this worker's to move */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, b->topic, p)->offset = next;
    rd_kafka_resp_err_t e = rd_kafka_commit(b->cons, l, 0);
    if (!e && l->elems[0].err)
        e = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || commit_lost(e)) {
        pthread_mutex_lock(&pp->mu);
        if (!e && pp->gen == pp->read_gen)
            pp->committed = next;
        if (!e)
            pp->unsaved = -1; /* superseded */
        else if (e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS && next > pp->unsaved)
            pp->unsaved = next;
        pthread_mutex_unlock(&pp->mu);
        if (e)
            sl_warn(SL_KAFKA_COMPONENT,
                    "connector %s (%s): commit of partition %d at %" PRId64 " refused (%s): "
                    "committed if the partition comes back here, else its next owner delivers "
                    "from the last commit again",
                    b->k->name, b->ccl.role, p, next, rd_kafka_err2name(e));
        return 0;
    }
    return sl_error_set(err, SL_EIO, "Kafka commit of %s [%d] at %" PRId64 ": %s", b->topic, p,
                        next, rd_kafka_err2str(e));
}

void sl_kafka_log_wake(sl_log_backend *b, int p)
{
    kl_part *pp = &b->parts[p];
    pthread_mutex_lock(&pp->mu);
    pp->woken = true;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
}

void sl_kafka_log_info(sl_log_backend *b, int p, sl_log_backend_info *out)
{
    kl_part *pp = &b->parts[p];
    pthread_mutex_lock(&pp->mu);
    out->assigned = pp->assigned;
    out->committed = pp->committed;
    out->held = pp->held && pp->assigned;
    out->fetch_paused = (pp->fetch_paused || pp->held) && pp->assigned;
    out->buffered = (int64_t)pp->n;
    pthread_mutex_unlock(&pp->mu);
    int64_t lo = -1, hi = -1;
    if (!out->assigned || !b->cons ||
        rd_kafka_get_watermark_offsets(b->cons, b->topic, p, &lo, &hi) != 0)
        lo = hi = -1;
    out->start_offset = lo >= 0 ? lo : -1;
    out->end_offset = hi >= 0 ? hi : -1;
}

void sl_kafka_log_hold(sl_log_backend *b, int p, bool held)
{
    kl_part *pp = &b->parts[p];
    pthread_mutex_lock(&pp->mu);
    bool change = pp->held != held;
    pp->held = held;
    /* librdkafka pauses asynchronously (its own threads act on it): calling
     * it under pp->mu keeps the order of pauses and resumes that of the
     * decisions. The consumer thread keeps polling meanwhile, so the group
     * sees a live member (max.poll.interval.ms) and nothing rebalances. */
    if (change && !pp->fetch_paused && pp->assigned) {
        fetch_pause(b, p, held);
        sl_info(SL_KAFKA_COMPONENT, "connector %s (%s): partition %d fetching %s", b->k->name,
                b->ccl.role, p, held ? "paused: an output's breaker is open" : "resumed");
    }
    pthread_mutex_unlock(&pp->mu);
}

/* ---- rewind: asked by the admin thread, done by the consumer thread ---- */

/* The partitions this gateway holds, each with `offset` (or timestamp). */
static rd_kafka_topic_partition_list_t *held_parts(sl_log_backend *b, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(b->n_parts);
    for (int p = 0; p < b->n_parts; p++) {
        pthread_mutex_lock(&b->parts[p].mu);
        bool held = b->parts[p].assigned;
        pthread_mutex_unlock(&b->parts[p].mu);
        if (held)
            rd_kafka_topic_partition_list_add(l, b->topic, p)->offset = offset;
    }
    return l;
}

/* Turns the wanted offsets of l into ones that exist: offsets_for_times
 * answers -1 past the last record, and an offset past the end is the end. */
static void clamp_offsets(sl_log_backend *b, rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(b->cons, b->topic, l->elems[i].partition, &lo, &hi,
                                             5000) != 0)
            continue;
        int64_t o = l->elems[i].offset;
        l->elems[i].offset = o < 0 || o > hi ? hi : o < lo ? lo : o;
    }
}

/* Moves the held partitions to the rewind's offsets: forget the buffers
 * (a stale commit of the workers is dropped by the generation), seek, and
 * commit the new positions so that a rebalance keeps them. */
static int do_rewind(sl_log_backend *b, int64_t offset, int64_t ts, sl_error *err)
{
    rd_kafka_topic_partition_list_t *l = held_parts(b, offset >= 0 ? offset : ts);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (offset < 0 && l->cnt > 0)
        e = rd_kafka_offsets_for_times(b->cons, l, 10000);
    if (!e && offset < 0 && sl_kafka_log_times_check(b, l, ts, err) < 0) {
        rd_kafka_topic_partition_list_destroy(l);
        return -1;
    }
    if (!e)
        clamp_offsets(b, l);
    for (int i = 0; !e && i < l->cnt; i++) {
        kl_part *pp = &b->parts[l->elems[i].partition];
        sl_info(SL_KAFKA_COMPONENT, "connector %s (%s): partition %d rewound to offset %" PRId64,
                b->k->name, b->ccl.role, (int)l->elems[i].partition, l->elems[i].offset);
        pthread_mutex_lock(&pp->mu);
        ring_clear(pp);
        pp->gen++;
        pp->fresh = true;
        pp->committed = l->elems[i].offset;
        pthread_mutex_unlock(&pp->mu);
    }
    rd_kafka_error_t *er = !e && l->cnt ? rd_kafka_seek_partitions(b->cons, l, 10000) : NULL;
    if (er) {
        sl_error_set(err, SL_EIO, "Kafka seek: %s", rd_kafka_error_string(er));
        rd_kafka_error_destroy(er);
    } else if (!e && l->cnt) {
        e = rd_kafka_commit(b->cons, l, 0);
    }
    if (e)
        sl_error_set(err, SL_EIO, "Kafka rewind of %s: %s", b->topic, rd_kafka_err2str(e));
    int rc = e || er ? -1 : 0;
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static void serve_rewind(sl_log_backend *b)
{
    pthread_mutex_lock(&b->rmu);
    if (b->rewind_asked) {
        b->rewind_rc = do_rewind(b, b->rewind_offset, b->rewind_ts, &b->rewind_err);
        b->rewind_asked = false;
        pthread_cond_broadcast(&b->rcv);
    }
    pthread_mutex_unlock(&b->rmu);
}

int sl_kafka_log_rewind(sl_log_backend *b, int64_t offset, int64_t timestamp_ms, sl_error *err)
{
    struct timespec until = deadline_in(KL_REWIND_WAIT_MS);
    pthread_mutex_lock(&b->rmu);
    if (!b->cons_running || b->rewind_asked) {
        pthread_mutex_unlock(&b->rmu);
        return sl_error_set(err, SL_EINVAL, "route %s: the Kafka log is not consuming now",
                            b->route->name);
    }
    b->rewind_asked = true;
    b->rewind_offset = offset;
    b->rewind_ts = timestamp_ms;
    while (b->rewind_asked && pthread_cond_timedwait(&b->rcv, &b->rmu, &until) != ETIMEDOUT)
        ;
    int rc =
        b->rewind_asked ? sl_error_set(err, SL_ETIMEOUT, "rewind not done in time") : b->rewind_rc;
    if (!b->rewind_asked && rc < 0)
        *err = b->rewind_err;
    pthread_mutex_unlock(&b->rmu);
    return rc;
}
