/* The Kafka connector's input side: one high-level consumer and one thread
 * per route whose `from:` names the connector. Messages are appended to the
 * route's log; offsets are stored and committed only once what was appended
 * is durable (custody, SPEC section 3), so a crash re-reads, never skips.
 * On a route whose log a connector holds (`log:`, Kafka), every append is a
 * ticket, and a batch is durable once each of its tickets' delivery reports
 * said stored. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kafka_internal.h"
#include "logging.h"
#include "thread_name.h"
#include "uuid.h"

_Static_assert(SL_ID_LEN == SL_UUID_TEXT_LEN, "a message id is a UUID in text form");

#define BATCH_MAX_MESSAGES 500     /* commit at least every this many messages */
#define BATCH_MAX_BYTES (1u << 20) /* ... or bytes (keys and values) */
#define BATCH_MAX_MS 10            /* ... or this often */
#define POLL_MS 100                /* idle poll timeout: how fast stop() is noticed */
#define BACKOFF_MS 100             /* wait between attempts while the log pushes back */
/* Appended but not yet durable (sealed batches): at either limit the
 * consumer stops fetching until the oldest sealed batch is durable. As many
 * batches as fit go on being appended while an fdatasync runs, so the rate
 * does not follow the fdatasync latency until latency x rate reaches the
 * limit (about 200 ms at 150 K msg/s). */
#define INFLIGHT_MAX_MESSAGES 32768
#define INFLIGHT_MAX_BYTES (64u << 20)

/* A sealed batch: appended, waiting for the log to make it durable. */
typedef struct sl_kafka_sealed {
    struct sl_kafka_sealed *next;
    struct sl_kafka_input *in;
    rd_kafka_topic_partition_list_t *offsets; /* per Kafka partition: offset after the last */
    rd_kafka_topic_partition_list_t *first;   /* per Kafka partition: first offset */
    size_t messages, bytes;                   /* what the batch took */
    int waiting;                              /* durability callbacks to come; in->mu */
    bool failed;                              /* some part will never be durable; in->mu */
} sl_kafka_sealed;

enum {
    REAP_WAIT_ALL = 1,   /* wait until every sealed batch is settled */
    REAP_COMMIT = 2,     /* store and commit the offsets of durable batches */
    REAP_SYNC = 4,       /* ... synchronously */
    REAP_REWIND = 8,     /* seek back to what could not be made durable */
    REAP_WAIT_HEAD = 16, /* wait until the oldest sealed batch is settled */
};

/* One consumer feeding one route. cl must stay the first member: it is the
 * librdkafka opaque, and the callbacks cast it back. */
struct sl_kafka_input {
    sl_kafka_client cl;
    sl_kafka *k;
    sl_route *route;
    const sl_kafka_from *in;
    const char *group;
    rd_kafka_conf_t *conf; /* built at attach, owned by rk once created */
    rd_kafka_t *rk;
    pthread_t thread;
    bool running; /* thread started and not yet joined */
    atomic_bool stop;
    /* The batch: appended to the log, not yet durable and committed. */
    size_t count;
    size_t bytes; /* keys and values of the batch */
    int64_t batch_start_ms;
    int nparts;
    int64_t *last;    /* per log partition: last offset appended, or -1 */
    int64_t *tickets; /* a connector's log: the batch's appends */
    size_t n_tickets;
    rd_kafka_topic_partition_list_t *next;  /* per Kafka partition: offset after the last taken */
    rd_kafka_topic_partition_list_t *first; /* per Kafka partition: first offset taken */
    /* Per Kafka partition ever assigned: the offset after the last message
     * made durable here. When an assignment is lost (session timeout while
     * the coordinator was away) and comes back, fetching resumes from here
     * instead of the older committed offset: custody is already ours. */
    rd_kafka_topic_partition_list_t *durable;
    unsigned commit_failures; /* consecutive failed commits (logged once) */
    /* Sealed batches, oldest first; the flusher's callbacks count down
     * their `waiting` under mu and signal cv. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool sync_init; /* mu and cv initialised */
    sl_kafka_sealed *head, *tail;
    size_t n_sealed;
    /* What the sealed batches took (the input's thread only). */
    size_t sealed_messages, sealed_bytes;
};

static void batch_reap(sl_kafka_input *in, int how);

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* "topic [0, 2], other [1]" for log lines. */
static void describe_parts(const rd_kafka_topic_partition_list_t *parts, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; parts && i < parts->cnt && used + 1 < cap; i++) {
        int w = snprintf(out + used, cap - used, "%s%s[%" PRId32 "]", i ? " " : "",
                         parts->elems[i].topic, parts->elems[i].partition);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (!parts || parts->cnt == 0)
        snprintf(out, cap, "(none)");
}

/* ---- the batch ---- */

/* Starts a new open batch (the previous one was sealed or dropped). */
static void batch_reset(sl_kafka_input *in)
{
    in->count = 0;
    in->bytes = 0;
    in->n_tickets = 0;
    for (int i = 0; i < in->nparts; i++)
        in->last[i] = -1;
    if (in->next)
        rd_kafka_topic_partition_list_destroy(in->next);
    if (in->first)
        rd_kafka_topic_partition_list_destroy(in->first);
    in->next = rd_kafka_topic_partition_list_new(8);
    in->first = rd_kafka_topic_partition_list_new(8);
}

/* Records that Kafka message m was taken (appended to log partition
 * log_part at offset log_off, or skipped when log_part < 0). */
static void batch_note(sl_kafka_input *in, const rd_kafka_message_t *m, int log_part,
                       int64_t log_off)
{
    if (in->count == 0)
        in->batch_start_ms = sl_kafka_now_ms();
    in->count++;
    in->bytes += m->len + m->key_len;
    if (log_part >= 0 && log_part < in->nparts)
        in->last[log_part] = log_off;
    if (log_part >= 0 && in->tickets && in->n_tickets < BATCH_MAX_MESSAGES)
        in->tickets[in->n_tickets++] = log_off;
    const char *topic = rd_kafka_topic_name(m->rkt);
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_find(in->next, topic, m->partition);
    if (!tp) {
        tp = rd_kafka_topic_partition_list_add(in->next, topic, m->partition);
        rd_kafka_topic_partition_list_add(in->first, topic, m->partition)->offset = m->offset;
    }
    tp->offset = m->offset + 1;
}

/* Adds each (topic, partition, offset) of from to to, unless to has it. */
static void parts_add_missing(rd_kafka_topic_partition_list_t *to,
                              const rd_kafka_topic_partition_list_t *from)
{
    for (int i = 0; i < from->cnt; i++) {
        const rd_kafka_topic_partition_t *f = &from->elems[i];
        if (!rd_kafka_topic_partition_list_find(to, f->topic, f->partition))
            rd_kafka_topic_partition_list_add(to, f->topic, f->partition)->offset = f->offset;
    }
}

/* Sets to's offset of each partition of from to the larger of the two. */
static void parts_merge_max(rd_kafka_topic_partition_list_t *to,
                            const rd_kafka_topic_partition_list_t *from)
{
    for (int i = 0; i < from->cnt; i++) {
        const rd_kafka_topic_partition_t *f = &from->elems[i];
        rd_kafka_topic_partition_t *t =
            rd_kafka_topic_partition_list_find(to, f->topic, f->partition);
        if (!t)
            t = rd_kafka_topic_partition_list_add(to, f->topic, f->partition);
        if (f->offset > t->offset)
            t->offset = f->offset;
    }
}

/* Stores offsets (when it has any) and commits what is stored, async or
 * sync; a sync commit also retries offsets whose async commit failed. */
static void offsets_commit(sl_kafka_input *in, const rd_kafka_topic_partition_list_t *offsets,
                           bool sync)
{
    if (offsets && offsets->cnt > 0) {
        rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(offsets);
        rd_kafka_resp_err_t e = rd_kafka_offsets_store(in->rk, copy);
        if (e)
            sl_warn(SL_KAFKA_COMPONENT, "connector %s (%s): storing offsets: %s", in->k->name,
                    in->cl.role, rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(copy);
    } else if (!sync) {
        return;
    }
    rd_kafka_resp_err_t e = rd_kafka_commit(in->rk, NULL, sync ? 0 : 1);
    if (sync && e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        sl_warn(SL_KAFKA_COMPONENT, "connector %s (%s): commit: %s", in->k->name, in->cl.role,
                rd_kafka_err2str(e));
}

/* Seeks the consumer back to the offsets in parts, so that what could not
 * be made durable is consumed and appended again. */
static void rewind_to(sl_kafka_input *in, rd_kafka_topic_partition_list_t *parts)
{
    char desc[512];
    describe_parts(parts, desc, sizeof desc);
    sl_err(SL_KAFKA_COMPONENT, "connector %s (%s): not committing; consuming %s again", in->k->name,
           in->cl.role, desc);
    rd_kafka_error_t *er = rd_kafka_seek_partitions(in->rk, parts, 5000);
    if (er) {
        sl_err(SL_KAFKA_COMPONENT, "connector %s (%s): seek back failed: %s", in->k->name,
               in->cl.role, rd_kafka_error_string(er));
        rd_kafka_error_destroy(er);
    }
}

static void sealed_durable_cb(void *arg, int64_t offset, const sl_error *err);

/* Asks for the delivery report of each ticket of the open batch on sb,
 * whose waiting counts them. */
static void tickets_watch(sl_kafka_input *in, sl_kafka_sealed *sb)
{
    for (size_t i = 0; i < in->n_tickets; i++) {
        sl_error e;
        if (sl_route_on_durable(in->route, 0, in->tickets[i], sealed_durable_cb, sb, &e) < 0)
            sealed_durable_cb(sb, -1, &e);
    }
}

/* On a connector's log: waits for the delivery report of every append of
 * the open batch. Returns 0 when all were stored, -1 when one was not. */
static int tickets_wait(sl_kafka_input *in)
{
    sl_kafka_sealed local = {.in = in, .waiting = (int)in->n_tickets};
    tickets_watch(in, &local);
    pthread_mutex_lock(&in->mu);
    while (local.waiting > 0)
        pthread_cond_wait(&in->cv, &in->mu);
    pthread_mutex_unlock(&in->mu);
    in->n_tickets = 0;
    return local.failed ? -1 : 0;
}

/* The blocking way, when a sealed batch cannot be allocated: waits until
 * the open batch is durable, then stores and commits it (or rewinds). */
static void batch_flush_blocking(sl_kafka_input *in)
{
    if (in->tickets && tickets_wait(in) < 0) {
        rewind_to(in, in->first);
        batch_reset(in);
        return;
    }
    for (int p = 0; p < in->nparts && !in->tickets; p++) {
        sl_error e;
        if (in->last[p] >= 0 &&
            sl_partition_wait_durable(sl_route_partition(in->route, p), in->last[p], -1, &e) < 0) {
            sl_err(SL_KAFKA_COMPONENT, "connector %s (%s): log partition %d not durable: %s",
                   in->k->name, in->cl.role, p, e.msg);
            rewind_to(in, in->first);
            batch_reset(in);
            return;
        }
    }
    parts_merge_max(in->durable, in->next);
    offsets_commit(in, in->next, false);
    batch_reset(in);
}

/* The flusher says a log partition's part of sealed batch arg is durable
 * (or never will be). Quick: a counter under the input's lock. */
static void sealed_durable_cb(void *arg, int64_t offset, const sl_error *err)
{
    sl_kafka_sealed *sb = arg;
    sl_kafka_input *in = sb->in;
    if (err)
        sl_err(SL_KAFKA_COMPONENT, "connector %s (%s): offset %" PRId64 " not durable: %s",
               in->k->name, in->cl.role, offset, err->msg);
    pthread_mutex_lock(&in->mu);
    if (err)
        sb->failed = true;
    sb->waiting--;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
}

/* Seals the open batch: it waits for durability in the background (the
 * log's flusher calls back) while the consumer goes on; batch_reap stores
 * and commits sealed batches in order once durable. */
static void batch_seal(sl_kafka_input *in)
{
    if (in->count == 0)
        return;
    sl_kafka_sealed *sb = calloc(1, sizeof *sb);
    if (!sb) {
        batch_reap(in, REAP_WAIT_ALL | REAP_COMMIT | REAP_REWIND);
        batch_flush_blocking(in);
        return;
    }
    sb->in = in;
    sb->offsets = in->next;
    sb->first = in->first;
    sb->messages = in->count;
    sb->bytes = in->bytes;
    in->sealed_messages += sb->messages;
    in->sealed_bytes += sb->bytes;
    in->next = NULL;
    in->first = NULL;
    int touched = in->tickets ? (int)in->n_tickets : 0;
    for (int p = 0; p < in->nparts && !in->tickets; p++)
        touched += in->last[p] >= 0;
    pthread_mutex_lock(&in->mu);
    sb->waiting = touched;
    if (in->tail)
        in->tail->next = sb;
    else
        in->head = sb;
    in->tail = sb;
    in->n_sealed++;
    pthread_mutex_unlock(&in->mu);
    tickets_watch(in, sb);
    for (int p = 0; p < in->nparts && !in->tickets; p++) {
        sl_error e;
        if (in->last[p] >= 0 && sl_partition_on_durable(sl_route_partition(in->route, p),
                                                        in->last[p], sealed_durable_cb, sb, &e) < 0)
            sealed_durable_cb(sb, in->last[p], &e);
    }
    batch_reset(in);
}

static void sealed_free(sl_kafka_sealed *sb)
{
    sb->in->sealed_messages -= sb->messages;
    sb->in->sealed_bytes -= sb->bytes;
    rd_kafka_topic_partition_list_destroy(sb->offsets);
    rd_kafka_topic_partition_list_destroy(sb->first);
    free(sb);
}

/* Takes the sealed batches that are durable off the queue, in order (with
 * REAP_WAIT_ALL: every one, waiting; with REAP_WAIT_HEAD: at least the
 * oldest, waiting), notes them in the durable map and,
 * with REAP_COMMIT, stores their offsets and commits (REAP_SYNC:
 * synchronously). A batch the log could not make durable is not committed,
 * nor is anything after it; with REAP_REWIND the consumer seeks back to
 * consume all of that again. Runs on the input's thread. */
static void batch_reap(sl_kafka_input *in, int how)
{
    if (in->n_sealed == 0 && !(how & REAP_SYNC))
        return;
    rd_kafka_topic_partition_list_t *done = rd_kafka_topic_partition_list_new(8);
    rd_kafka_topic_partition_list_t *again = NULL; /* where to seek back to */
    bool wait_head = how & REAP_WAIT_HEAD;
    pthread_mutex_lock(&in->mu);
    for (;;) {
        sl_kafka_sealed *sb = in->head;
        if (!sb)
            break;
        if (sb->waiting > 0) {
            if (!(how & REAP_WAIT_ALL) && !again && !wait_head)
                break;
            pthread_cond_wait(&in->cv, &in->mu);
            continue;
        }
        in->head = sb->next;
        if (!in->head)
            in->tail = NULL;
        in->n_sealed--;
        wait_head = false;
        pthread_mutex_unlock(&in->mu);
        if (sb->failed && !again)
            again = rd_kafka_topic_partition_list_new(8);
        if (again) {
            parts_add_missing(again, sb->first);
        } else {
            parts_merge_max(in->durable, sb->offsets);
            parts_merge_max(done, sb->offsets);
        }
        sealed_free(sb);
        pthread_mutex_lock(&in->mu);
    }
    pthread_mutex_unlock(&in->mu);
    if (how & REAP_COMMIT)
        offsets_commit(in, done, how & REAP_SYNC);
    rd_kafka_topic_partition_list_destroy(done);
    if (again) {
        parts_add_missing(again, in->first);
        if (in->tickets) /* appended after the failure: settled before consuming again */
            tickets_wait(in);
        batch_reset(in);
        if (how & REAP_REWIND)
            rewind_to(in, again);
        rd_kafka_topic_partition_list_destroy(again);
    }
}

/* ---- librdkafka callbacks (run on the input's thread, inside poll) ---- */

/* For each partition in parts (about to be assigned) whose messages up to
 * some offset are durable in our log past the group's committed offset
 * (an assignment lost before its commit went through), starts fetching
 * from there and commits it, instead of appending them again. */
static void resume_from_durable(sl_kafka_input *in, rd_kafka_topic_partition_list_t *parts)
{
    bool any = false;
    for (int i = 0; i < parts->cnt && !any; i++)
        any = rd_kafka_topic_partition_list_find(in->durable, parts->elems[i].topic,
                                                 parts->elems[i].partition) != NULL;
    if (!any)
        return;
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_resp_err_t e = rd_kafka_committed(in->rk, committed, 10000);
    if (e) {
        sl_warn(SL_KAFKA_COMPONENT, "connector %s (%s): reading committed offsets: %s", in->k->name,
                in->cl.role, rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(committed);
        return;
    }
    rd_kafka_topic_partition_list_t *commit = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < committed->cnt; i++) {
        const rd_kafka_topic_partition_t *c = &committed->elems[i];
        const rd_kafka_topic_partition_t *d =
            rd_kafka_topic_partition_list_find(in->durable, c->topic, c->partition);
        if (!d || c->err || (c->offset >= 0 && c->offset >= d->offset))
            continue;
        sl_info(SL_KAFKA_COMPONENT,
                "connector %s (%s): %s[%" PRId32 "] resumes at %" PRId64
                " (durable in the log here; committed was %" PRId64 ")",
                in->k->name, in->cl.role, c->topic, c->partition, d->offset, c->offset);
        rd_kafka_topic_partition_list_find(parts, c->topic, c->partition)->offset = d->offset;
        rd_kafka_topic_partition_list_add(commit, c->topic, c->partition)->offset = d->offset;
    }
    if (commit->cnt > 0)
        rd_kafka_commit(in->rk, commit, 1);
    rd_kafka_topic_partition_list_destroy(commit);
    rd_kafka_topic_partition_list_destroy(committed);
}

static void input_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    sl_kafka_input *in = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    char desc[1024];
    describe_parts(parts, desc, sizeof desc);
    rd_kafka_error_t *er = NULL;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        sl_info(SL_KAFKA_COMPONENT, "connector %s (%s): assigned %s", in->k->name, in->cl.role,
                desc);
        resume_from_durable(in, parts);
        if (coop)
            er = rd_kafka_incremental_assign(rk, parts);
        else
            err = rd_kafka_assign(rk, parts);
    } else {
        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
            sl_info(SL_KAFKA_COMPONENT, "connector %s (%s): revoked %s", in->k->name, in->cl.role,
                    desc);
            /* What was appended becomes durable and committed before another
             * member may read these partitions. When the assignment was
             * lost, commits would fail: the new owner re-reads instead (and
             * the durable map lets us skip it if we get it back). */
            batch_seal(in);
            batch_reap(in, REAP_WAIT_ALL |
                               (rd_kafka_assignment_lost(rk) ? 0 : REAP_COMMIT | REAP_SYNC));
        } else {
            sl_warn(SL_KAFKA_COMPONENT, "connector %s (%s): rebalance error: %s", in->k->name,
                    in->cl.role, rd_kafka_err2str(err));
            batch_seal(in);
            batch_reap(in, REAP_WAIT_ALL);
        }
        if (coop)
            er = rd_kafka_incremental_unassign(rk, parts);
        else
            err = rd_kafka_assign(rk, NULL);
    }
    if (er) {
        sl_err(SL_KAFKA_COMPONENT, "connector %s (%s): (un)assign: %s", in->k->name, in->cl.role,
               rd_kafka_error_string(er));
        rd_kafka_error_destroy(er);
    } else if (!coop && err) {
        sl_err(SL_KAFKA_COMPONENT, "connector %s (%s): assign: %s", in->k->name, in->cl.role,
               rd_kafka_err2str(err));
    }
}

/* Publishes the offsets a commit wrote as sluice_kafka_committed_offset
 * {connector,topic,partition}: the next source offset of each partition,
 * everything before it durable in the route's log. */
static void committed_gauges(sl_kafka_input *in, const rd_kafka_topic_partition_list_t *offsets)
{
    sl_metrics *m = sl_connector_metrics(in->k->c);
    if (!m || !offsets)
        return;
    for (int i = 0; i < offsets->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &offsets->elems[i];
        if (p->err != RD_KAFKA_RESP_ERR_NO_ERROR || p->offset < 0)
            continue;
        char conn[256], topic[512], labels[900];
        snprintf(labels, sizeof labels, "connector=\"%s\",topic=\"%s\",partition=\"%d\"",
                 sl_metrics_escape(in->k->name, conn, sizeof conn),
                 sl_metrics_escape(p->topic, topic, sizeof topic), (int)p->partition);
        sl_gauge_set(sl_metrics_gauge(m, "sluice_kafka_committed_offset",
                                      "Next source offset a Kafka input committed (everything "
                                      "before it is durable in the route's log)",
                                      labels, NULL, NULL),
                     (double)p->offset);
    }
}

static void input_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    sl_kafka_input *in = opaque;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        sl_counter_add(in->k->commits, 1);
        committed_gauges(in, offsets);
        if (in->commit_failures > 0)
            sl_info(SL_KAFKA_COMPONENT,
                    "connector %s (%s): offsets commit again (after %u "
                    "failure(s))",
                    in->k->name, in->cl.role, in->commit_failures);
        in->commit_failures = 0;
    } else if (err != RD_KAFKA_RESP_ERR__NO_OFFSET && in->commit_failures++ == 0) {
        sl_warn(SL_KAFKA_COMPONENT,
                "connector %s (%s): offset commit failed: %s (stored "
                "offsets go with the next commit)",
                in->k->name, in->cl.role, rd_kafka_err2str(err));
    }
}

/* ---- messages ---- */

/* Builds the message for Kafka message m: body = value, key = key, the
 * Kafka headers, and kafka-topic/-partition/-offset/-timestamp. A valid
 * `message-id` header becomes the id. Returns NULL when out of memory. */
static sl_msg *msg_from_kafka(const rd_kafka_message_t *m)
{
    sl_msg *msg = sl_msg_new();
    if (!msg)
        return NULL;
    if (m->len > 0 && sl_msg_set_body(msg, m->payload, m->len) < 0)
        goto oom;
    if (m->key && sl_msg_set_key(msg, m->key, m->key_len) < 0)
        goto oom;
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *val;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == 0; i++) {
            if (strcasecmp(name, SL_HDR_ID) == 0) {
                if (val && sl_is_uuid(val, size)) {
                    memcpy(msg->id, val, SL_ID_LEN);
                    msg->id[SL_ID_LEN] = '\0';
                }
                continue;
            }
            if (sl_msg_set_header(msg, name, val ? val : "", val ? size : 0) < 0)
                goto oom;
        }
    }
    char num[32];
    const char *topic = rd_kafka_topic_name(m->rkt);
    if (sl_msg_set_header(msg, "kafka-topic", topic, strlen(topic)) < 0)
        goto oom;
    snprintf(num, sizeof num, "%" PRId32, m->partition);
    if (sl_msg_set_header(msg, "kafka-partition", num, strlen(num)) < 0)
        goto oom;
    snprintf(num, sizeof num, "%" PRId64, m->offset);
    if (sl_msg_set_header(msg, "kafka-offset", num, strlen(num)) < 0)
        goto oom;
    int64_t ts = rd_kafka_message_timestamp(m, NULL);
    if (ts >= 0) {
        snprintf(num, sizeof num, "%" PRId64, ts);
        if (sl_msg_set_header(msg, "kafka-timestamp", num, strlen(num)) < 0)
            goto oom;
    }
    return msg;
oom:
    sl_msg_free(msg);
    return NULL;
}

/* Pauses (or resumes) every partition assigned to the consumer. */
static void pause_all(sl_kafka_input *in, bool pause)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(in->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return;
    if (pause)
        rd_kafka_pause_partitions(in->rk, parts);
    else
        rd_kafka_resume_partitions(in->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
}

/* Appends Kafka message m to the route, retrying the same message while
 * the log pushes back (the consumer's partitions paused meanwhile). Returns
 * 0 when taken (appended, or skipped because it can never be appended), -1
 * when stop was asked first (m is then neither appended nor stored). */
/* The route's key cannot be evaluated on msg's body (e): a permanent
 * failure, so msg goes to the dead letter topic (durably) rather than being
 * lost. Returns 0 when it did, else -1 with *e the dead-lettering error (to
 * be retried like back-pressure). */
static int dead_letter_bad_key(sl_kafka_input *in, const rd_kafka_message_t *m, sl_msg *msg,
                               sl_error *e)
{
    sl_kafka *k = in->k;
    char why[sizeof e->msg + 64];
    snprintf(why, sizeof why, "input %s: %s", k->name, e->msg);
    sl_error de;
    if (sl_route_dead_letter(in->route, msg, why, &de) != 0) {
        *e = de;
        return -1;
    }
    sl_err(SL_KAFKA_COMPONENT,
           "connector %s (%s): %s [%" PRId32 "] offset %" PRId64 " dead-lettered: %s", k->name,
           in->cl.role, rd_kafka_topic_name(m->rkt), m->partition, m->offset, e->msg);
    batch_note(in, m, -1, -1);
    return 0;
}

/* The log refused an append (e): commits what is durable, rewinds the rest
 * and pauses consumption until appending works again. */
static void pause_for_retry(sl_kafka_input *in, const sl_error *e)
{
    sl_warn(SL_KAFKA_COMPONENT,
            "connector %s (%s): cannot append (%s: %s); pausing consumption and retrying",
            in->k->name, in->cl.role, sl_errcode_name(e->code), e->msg);
    batch_seal(in);
    batch_reap(in, REAP_COMMIT | REAP_REWIND);
    pause_all(in, true);
}

static int input_take(sl_kafka_input *in, const rd_kafka_message_t *m)
{
    sl_kafka *k = in->k;
    sl_msg *msg = NULL;
    bool paused = false;
    int rc = -1;
    for (;;) {
        sl_error e;
        if (!msg)
            msg = msg_from_kafka(m);
        if (!msg)
            sl_error_set(&e, SL_ENOMEM, "out of memory");
        else if (sl_route_append(in->route, msg, &e) == 0)
            break;
        if (e.code == SL_EINVAL && dead_letter_bad_key(in, m, msg, &e) == 0) {
            rc = 0;
            goto out;
        }
        if (!paused) {
            pause_for_retry(in, &e);
            paused = true;
        }
        if (atomic_load(&in->stop))
            goto out;
        sleep_ms(BACKOFF_MS);
    }
    batch_note(in, m, msg->partition, msg->offset);
    sl_counter_add(k->consumed, 1);
    rc = 0;
out:
    if (paused) {
        pause_all(in, false);
        if (rc == 0)
            sl_info(SL_KAFKA_COMPONENT, "connector %s (%s): appending again; consumption resumed",
                    k->name, in->cl.role);
    }
    sl_msg_free(msg);
    return rc;
}

/* Whether the sealed batches reach a limit on what may be appended but not
 * yet durable: the consumer then waits for the oldest before fetching. */
static bool inflight_full(const sl_kafka_input *in)
{
    return in->sealed_messages >= INFLIGHT_MAX_MESSAGES || in->sealed_bytes >= INFLIGHT_MAX_BYTES;
}

/* The consumer loop: poll, append, and every BATCH_MAX_MESSAGES messages,
 * BATCH_MAX_BYTES or BATCH_MAX_MS seal the batch (it becomes durable in the
 * background); durable batches are committed in order. On stop: wait until
 * everything appended is durable, commit it synchronously, leave the group. */
static void *input_main(void *arg)
{
    sl_kafka_input *in = arg;
    while (!atomic_load(&in->stop)) {
        int64_t age = in->count > 0 ? sl_kafka_now_ms() - in->batch_start_ms : 0;
        if (in->count >= BATCH_MAX_MESSAGES || in->bytes >= BATCH_MAX_BYTES ||
            (in->count > 0 && age >= BATCH_MAX_MS)) {
            batch_seal(in);
            age = 0;
        }
        if (in->n_sealed > 0)
            batch_reap(in, REAP_COMMIT | REAP_REWIND | (inflight_full(in) ? REAP_WAIT_HEAD : 0));
        int timeout = POLL_MS;
        if (in->count > 0)
            timeout = (int)(BATCH_MAX_MS - age);
        else if (in->n_sealed > 0)
            timeout = BATCH_MAX_MS; /* come back to commit them */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(in->rk, timeout);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                sl_warn(SL_KAFKA_COMPONENT, "connector %s (%s): %s", in->k->name, in->cl.role,
                        rd_kafka_message_errstr(m));
        } else {
            sl_kafka_client_up(&in->cl);
            input_take(in, m);
        }
        rd_kafka_message_destroy(m);
    }
    batch_seal(in);
    batch_reap(in, REAP_WAIT_ALL | REAP_COMMIT | REAP_SYNC);
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(in->rk);
    if (e)
        sl_warn(SL_KAFKA_COMPONENT, "connector %s (%s): leaving the group: %s", in->k->name,
                in->cl.role, rd_kafka_err2str(e));
    return NULL;
}

/* ---- lifecycle ---- */

static void input_free(sl_kafka_input *in)
{
    if (!in)
        return;
    if (in->rk)
        rd_kafka_destroy(in->rk);
    else if (in->conf)
        rd_kafka_conf_destroy(in->conf);
    if (in->next)
        rd_kafka_topic_partition_list_destroy(in->next);
    if (in->first)
        rd_kafka_topic_partition_list_destroy(in->first);
    if (in->durable)
        rd_kafka_topic_partition_list_destroy(in->durable);
    while (in->head) { /* only after a failed start: no callback is pending */
        sl_kafka_sealed *sb = in->head;
        in->head = sb->next;
        sealed_free(sb);
    }
    if (in->sync_init) {
        pthread_cond_destroy(&in->cv);
        pthread_mutex_destroy(&in->mu);
    }
    free(in->last);
    free(in->tickets);
    free(in);
}

/* Builds the consumer's configuration: the connector's options between our
 * defaults and what custody needs (no automatic commit or store). */
static rd_kafka_conf_t *input_conf(sl_kafka_input *in, sl_error *err)
{
    sl_kafka *k = in->k;
    rd_kafka_conf_t *conf = sl_kafka_conf_new(k, &in->cl, err);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_rebalance_cb(conf, input_rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(conf, input_commit_cb);
    const char *start = in->in->start ? in->in->start : "earliest";
    if (sl_kafka_conf_set(k, conf, "auto.offset.reset", start, err) < 0 ||
        sl_kafka_conf_apply_options(k, conf, err) < 0 ||
        sl_kafka_conf_set(k, conf, "group.id", in->group, err) < 0 ||
        sl_kafka_conf_set(k, conf, "enable.auto.commit", "false", err) < 0 ||
        sl_kafka_conf_set(k, conf, "enable.auto.offset.store", "false", err) < 0 ||
        sl_kafka_conf_set(k, conf, "enable.partition.eof", "false", err) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

/* Allocates in's batch state for route. Returns 0, or -1 out of memory
 * (input_free frees what was allocated). */
static int input_alloc(sl_kafka_input *in, sl_route *route)
{
    in->nparts = sl_route_partition_count(route);
    in->last = calloc(in->nparts > 0 ? (size_t)in->nparts : 1, sizeof *in->last);
    if (sl_route_external_log(route))
        in->tickets = calloc(BATCH_MAX_MESSAGES, sizeof *in->tickets);
    in->next = rd_kafka_topic_partition_list_new(8);
    in->first = rd_kafka_topic_partition_list_new(8);
    in->durable = rd_kafka_topic_partition_list_new(8);
    bool ok = in->last && in->next && in->first && in->durable &&
              (in->tickets || !sl_route_external_log(route));
    return ok ? 0 : -1;
}

int sl_kafka_input_attach(sl_kafka *k, sl_route *route, sl_error *err)
{
    const sl_route_conf *rc = sl_route_get_conf(route);
    const sl_kafka_from *ic = rc->from.priv;
    if (!ic || ic->n_topics == 0)
        return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: routes.%s.from: kafka input needs topics",
                            rc->from.pos.file, rc->from.pos.line, rc->from.pos.col, rc->name);
    sl_kafka_input **ins = realloc(k->ins, (k->n_ins + 1) * sizeof *ins);
    if (!ins)
        return sl_error_set(err, SL_ENOMEM, "connector %s: out of memory", k->name);
    k->ins = ins;
    sl_kafka_input *in = calloc(1, sizeof *in);
    if (!in)
        return sl_error_set(err, SL_ENOMEM, "connector %s: out of memory", k->name);
    if (pthread_mutex_init(&in->mu, NULL) != 0) {
        free(in);
        return sl_error_set(err, SL_ENOMEM, "connector %s: cannot create a mutex", k->name);
    }
    if (pthread_cond_init(&in->cv, NULL) != 0) {
        pthread_mutex_destroy(&in->mu);
        free(in);
        return sl_error_set(err, SL_ENOMEM, "connector %s: cannot create a condition variable",
                            k->name);
    }
    in->sync_init = true;
    in->k = k;
    in->cl.k = k;
    in->route = route;
    in->in = ic;
    in->group = ic->group && ic->group[0] ? ic->group : rc->name;
    snprintf(in->cl.role, sizeof in->cl.role, "consumer of route %s, group %s", rc->name,
             in->group);
    if (input_alloc(in, route) < 0) {
        input_free(in);
        return sl_error_set(err, SL_ENOMEM, "connector %s: out of memory", k->name);
    }
    batch_reset(in);
    in->conf = input_conf(in, err);
    if (!in->conf) {
        input_free(in);
        return -1;
    }
    k->ins[k->n_ins++] = in;
    return 0;
}

/* Creates in's consumer, subscribes it and starts its thread. */
static int input_start(sl_kafka_input *in, sl_error *err)
{
    sl_kafka *k = in->k;
    char errstr[512];
    in->rk = rd_kafka_new(RD_KAFKA_CONSUMER, in->conf, errstr, sizeof errstr);
    if (!in->rk)
        return sl_error_set(err, SL_ECONFIG, "connector %s (%s): cannot create the consumer: %s",
                            k->name, in->cl.role, errstr);
    in->conf = NULL; /* rk owns it now */
    rd_kafka_poll_set_consumer(in->rk);
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new((int)in->in->n_topics);
    for (size_t i = 0; i < in->in->n_topics; i++)
        rd_kafka_topic_partition_list_add(topics, in->in->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(in->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e)
        return sl_error_set(err, SL_ECONFIG, "connector %s (%s): subscribe: %s", k->name,
                            in->cl.role, rd_kafka_err2str(e));
    if (pthread_create(&in->thread, NULL, input_main, in) != 0)
        return sl_error_set(err, SL_ENOMEM, "connector %s (%s): cannot start a thread", k->name,
                            in->cl.role);
    sl_thread_name(in->thread, "kafka-in:%s", sl_route_get_conf(in->route)->name);
    in->running = true;
    sl_info(SL_KAFKA_COMPONENT, "connector %s (%s): consuming from %zu topic(s), start %s", k->name,
            in->cl.role, in->in->n_topics, in->in->start ? in->in->start : "earliest");
    return 0;
}

int sl_kafka_inputs_start(sl_kafka *k, sl_error *err)
{
    for (size_t i = 0; i < k->n_ins; i++) {
        if (input_start(k->ins[i], err) < 0)
            return -1;
    }
    return 0;
}

void sl_kafka_inputs_stop(sl_kafka *k)
{
    for (size_t i = 0; i < k->n_ins; i++)
        atomic_store(&k->ins[i]->stop, true);
    for (size_t i = 0; i < k->n_ins; i++) {
        if (k->ins[i]->running) {
            pthread_join(k->ins[i]->thread, NULL);
            k->ins[i]->running = false;
        }
    }
}

void sl_kafka_inputs_free(sl_kafka *k)
{
    sl_kafka_inputs_stop(k);
    for (size_t i = 0; i < k->n_ins; i++)
        input_free(k->ins[i]);
    free(k->ins);
    k->ins = NULL;
    k->n_ins = 0;
}
