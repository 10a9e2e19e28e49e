/* The admin API's dead letter calls on a route whose log is a Kafka topic
 * (GET /v1/dlq/ROUTE, POST .../redrive and .../purge): the dead letters are
 * in the log's dead letter topic (connectors/kafka_log_dlq.c). Each call
 * reads that topic from its start to its end with a consumer of its own
 * (assigned partitions, never joining a group or committing). An entry's
 * position is partition * 2^40 + its Kafka offset (the plain offset in a
 * one-partition topic). Kafka cannot delete one record: as on the embedded
 * log, redrive and purge append marker records (x-sluice-dlq-marker,
 * x-sluice-dlq-target: the position) to the same topic, which every gateway
 * reads, and nothing is deleted. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dlq.h"
#include "kafka_log.h"
#include "logging.h"

#define KA_READ_MS 30000 /* the most reading the dead letter topic may take */
#define KA_POS_SHIFT 40

/* The last marker seen for one entry. */
typedef struct ka_mark {
    int64_t target;
    bool purged;
    int64_t at_ms;
    char by[64];
} ka_mark;

/* The dead letter topic as read by one call. */
typedef struct ka_scan {
    sl_batch batch; /* every record, by partition then offset; offset = position */
    ka_mark *marks;
    size_t n_marks;
} ka_scan;

/* ---- reading the topic ---- */

static int by_position(const void *a, const void *b)
{
    const rd_kafka_message_t *x = *(rd_kafka_message_t *const *)a;
    const rd_kafka_message_t *y = *(rd_kafka_message_t *const *)b;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Assigns every non-empty partition of topic (n of them) from its start;
 * sets *want to the number of records to read, hi[p] to each end. */
static int ka_assign(rd_kafka_t *rk, const char *topic, int n, int64_t *hi, size_t *want,
                     sl_error *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    *want = 0;
    int rc = 0;
    for (int p = 0; rc == 0 && p < n; p++) {
        int64_t lo = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi[p], 10000) != 0)
            rc = sl_error_set(err, SL_EIO, "Kafka: cannot ask %s [%d] for its offsets", topic, p);
        else if (hi[p] > lo) {
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = lo;
            *want += (size_t)(hi[p] - lo);
        }
    }
    if (rc == 0 && l->cnt > 0 && rd_kafka_assign(rk, l) != RD_KAFKA_RESP_ERR_NO_ERROR)
        rc = sl_error_set(err, SL_EIO, "Kafka: cannot read %s", topic);
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* Reads every record of topic (n partitions) up to its end as of now into
 * *out (malloc'd, sorted by position; *got of them). */
static int ka_read_all(rd_kafka_t *rk, const char *topic, int n, rd_kafka_message_t ***out,
                       size_t *got, sl_error *err)
{
    int64_t *hi = calloc((size_t)n, sizeof *hi);
    size_t want = 0;
    *out = NULL;
    *got = 0;
    int rc = hi ? ka_assign(rk, topic, n, hi, &want, err)
                : sl_error_set(err, SL_ENOMEM, "out of memory");
    rd_kafka_message_t **ms = rc == 0 ? calloc(want ? want : 1, sizeof *ms) : NULL;
    if (rc == 0 && !ms)
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    int64_t until = sl_mono_ms() + KA_READ_MS;
    while (rc == 0 && *got < want && sl_mono_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m && !m->err && m->partition >= 0 && m->partition < n && m->offset < hi[m->partition])
            ms[(*got)++] = m;
        else if (m)
            rd_kafka_message_destroy(m);
    }
    if (rc == 0 && *got < want)
        rc = sl_error_set(err, SL_ETIMEOUT, "Kafka: read %zu of the %zu records of %s in %d ms",
                          *got, want, topic, KA_READ_MS);
    if (ms)
        qsort(ms, *got, sizeof *ms, by_position);
    *out = ms;
    free(hi);
    return rc;
}

/* Copies messages ms[0..n) into batch (positions as offsets). */
static int ka_fill(rd_kafka_message_t **ms, size_t n, sl_batch *batch, sl_error *err)
{
    size_t n_hdrs = 0;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_headers_t *h = NULL;
        if (rd_kafka_message_headers(ms[i], &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
            n_hdrs += rd_kafka_header_cnt(h);
    }
    sl_record *recs = calloc(n ? n : 1, sizeof *recs);
    sl_header *hdrs = calloc(n_hdrs ? n_hdrs : 1, sizeof *hdrs);
    int rc = recs && hdrs ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0, used = 0; rc == 0 && i < n; i++) {
        rd_kafka_timestamp_type_t tt;
        recs[i] = (sl_record){.offset = ((int64_t)ms[i]->partition << KA_POS_SHIFT) | ms[i]->offset,
                              .timestamp_ms = rd_kafka_message_timestamp(ms[i], &tt),
                              .key = ms[i]->key,
                              .key_len = ms[i]->key_len,
                              .value = ms[i]->payload,
                              .value_len = ms[i]->len,
                              .headers = hdrs + used};
        rd_kafka_headers_t *h = NULL;
        const char *name;
        const void *val;
        size_t size;
        if (rd_kafka_message_headers(ms[i], &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        for (size_t k = 0; rd_kafka_header_get_all(h, k, &name, &val, &size) == 0; k++) {
            hdrs[used++] = (sl_header){name, strlen(name), val, size};
            recs[i].n_headers++;
        }
    }
    if (rc == 0)
        rc = sl_batch_fill(batch, recs, n, err);
    free(recs);
    free(hdrs);
    return rc;
}

/* Header name of rec as a NUL-terminated string in out ("" when absent). */
static void ka_header(const sl_record *rec, const char *name, char *out, size_t cap)
{
    size_t len = 0;
    const char *v = sl_dlq_header(rec, name, &len);
    snprintf(out, cap, "%.*s", v ? (int)(len < cap ? len : cap - 1) : 0, v ? v : "");
}

/* Notes the markers of the scan (the last one of an entry wins). */
static int ka_note_marks(sl_log_backend *b, ka_scan *s, sl_error *err)
{
    s->marks = calloc(s->batch.count ? s->batch.count : 1, sizeof *s->marks);
    if (!s->marks)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->batch.count; i++) {
        const sl_record *rec = &s->batch.records[i];
        char what[32], route[256], v[64];
        ka_header(rec, SL_DLQ_MARKER, what, sizeof what);
        ka_header(rec, SL_DLQ_ROUTE, route, sizeof route);
        if (!what[0] || (route[0] && strcmp(route, b->route->name) != 0))
            continue;
        ka_mark *m = &s->marks[s->n_marks++];
        ka_header(rec, SL_DLQ_TARGET, v, sizeof v);
        m->target = strtoll(v, NULL, 10);
        m->purged = strcmp(what, "purged") == 0;
        ka_header(rec, SL_DLQ_AT, v, sizeof v);
        m->at_ms = strtoll(v, NULL, 10);
        ka_header(rec, SL_DLQ_BY, m->by, sizeof m->by);
    }
    return 0;
}

/* Reads the dead letter topic into s. */
static int ka_scan_read(sl_log_backend *b, ka_scan *s, sl_error *err)
{
    memset(s, 0, sizeof *s);
    sl_batch_init(&s->batch);
    const char *topic = sl_kafka_log_dead_letter_topic(b);
    int n = sl_kafka_log_topic_partitions(b, topic, err);
    if (n <= 0)
        return n; /* 0: the topic does not exist, so holds no dead letter */
    sl_kafka_client cl = {.k = b->k};
    snprintf(cl.role, sizeof cl.role, "dead letter reader of route %s", b->route->name);
    rd_kafka_t *rk = sl_kafka_log_reader(b, &cl, "dlq-admin", false, err);
    if (!rk)
        return -1;
    rd_kafka_message_t **ms = NULL;
    size_t got = 0;
    int rc = ka_read_all(rk, topic, n, &ms, &got, err);
    if (rc == 0)
        rc = ka_fill(ms, got, &s->batch, err);
    for (size_t i = 0; i < got; i++)
        rd_kafka_message_destroy(ms[i]);
    free(ms);
    sl_kafka_log_reader_close(&rk);
    return rc == 0 ? ka_note_marks(b, s, err) : -1;
}

static void ka_scan_free(ka_scan *s)
{
    sl_batch_free(&s->batch);
    free(s->marks);
}

/* The last marker of the entry at pos, or NULL. */
static const ka_mark *ka_mark_of(const ka_scan *s, int64_t pos)
{
    for (size_t i = s->n_marks; i > 0; i--)
        if (s->marks[i - 1].target == pos)
            return &s->marks[i - 1];
    return NULL;
}

/* Whether rec is a dead letter of b's route (not a marker, not another
 * route's entry in a shared topic). */
static bool ka_is_entry(sl_log_backend *b, const sl_record *rec)
{
    char route[256];
    ka_header(rec, SL_DLQ_ROUTE, route, sizeof route);
    return !sl_dlq_header(rec, SL_DLQ_MARKER, NULL) &&
           (!route[0] || strcmp(route, b->route->name) == 0);
}

static char *ka_dup(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s ? s : "", len);
        d[len] = '\0';
    }
    return d;
}

/* Fills e from dead letter rec and its marker mk (or NULL). */
static int ka_entry(const sl_record *rec, const ka_mark *mk, sl_dlq_entry *e)
{
    char v[32];
    e->offset = rec->offset;
    e->timestamp_ms = rec->timestamp_ms;
    ka_header(rec, SL_HDR_ID, e->id, sizeof e->id);
    ka_header(rec, SL_DLQ_ERROR, e->error, sizeof e->error);
    ka_header(rec, SL_DLQ_FAILED_OUTPUTS, e->failed_outputs, sizeof e->failed_outputs);
    ka_header(rec, SL_DLQ_FAILED_STEP, e->failed_step, sizeof e->failed_step);
    ka_header(rec, SL_DLQ_STATUS, v, sizeof v);
    e->status = atoi(v);
    ka_header(rec, SL_DLQ_ATTEMPTS, v, sizeof v);
    e->attempts = atoi(v);
    e->redriven = mk && !mk->purged;
    e->purged = mk && mk->purged;
    e->marked_at_ms = mk ? mk->at_ms : 0;
    snprintf(e->marked_by, sizeof e->marked_by, "%s", mk ? mk->by : "");
    e->body = ka_dup(rec->value, rec->value_len);
    e->body_len = rec->value_len;
    size_t olen = 0;
    const char *o = sl_dlq_header(rec, SL_DLQ_ORIG_BODY, &olen);
    e->original_body = o ? ka_dup(o, olen) : NULL;
    e->original_len = olen;
    return e->body && (!o || e->original_body) ? 0 : -1;
}

int sl_kafka_log_dlq_list(sl_log_backend *b, int64_t from, size_t limit, sl_dlq_entry **out,
                          size_t *n, int64_t *pending, sl_error *err)
{
    *out = NULL;
    *n = 0;
    *pending = 0;
    ka_scan s;
    int rc = ka_scan_read(b, &s, err);
    sl_dlq_entry *entries = rc == 0 && limit ? calloc(limit, sizeof *entries) : NULL;
    if (rc == 0 && limit && !entries)
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < s.batch.count; i++) {
        const sl_record *rec = &s.batch.records[i];
        if (!ka_is_entry(b, rec))
            continue;
        const ka_mark *mk = ka_mark_of(&s, rec->offset);
        *pending += mk == NULL;
        if (rec->offset >= from && *n < limit && ka_entry(rec, mk, &entries[(*n)++]) < 0)
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    ka_scan_free(&s);
    if (rc < 0) {
        sl_dlq_entries_free(entries, *n);
        *n = 0;
        return -1;
    }
    *out = entries;
    return 0;
}

/* ---- redrive and purge ---- */

/* Appends a marker saying the entry at pos was redriven or purged by `by`,
 * and waits until Kafka has it. */
static int ka_put_mark(sl_log_backend *b, int64_t pos, bool purged, const char *by, sl_error *err)
{
    char target[32], at[32];
    snprintf(target, sizeof target, "%" PRId64, pos);
    snprintf(at, sizeof at, "%" PRId64, sl_wall_ms());
    const char *what = purged ? "purged" : "redriven";
    const char *route = b->route->name;
    sl_header h[] = {
        {SL_DLQ_MARKER, strlen(SL_DLQ_MARKER), what, strlen(what)},
        {SL_DLQ_TARGET, strlen(SL_DLQ_TARGET), target, strlen(target)},
        {SL_DLQ_BY, strlen(SL_DLQ_BY), by, strlen(by)},
        {SL_DLQ_AT, strlen(SL_DLQ_AT), at, strlen(at)},
        {SL_DLQ_ROUTE, strlen(SL_DLQ_ROUTE), route, strlen(route)},
    };
    sl_record rec = {.headers = h, .n_headers = 5, .value = "", .value_len = 0};
    return sl_kafka_log_extra_produce(b, sl_kafka_log_dead_letter_topic(b), &rec, true, err);
}

/* A wait for one append's delivery report (on_durable). */
typedef struct ka_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    sl_error err;
} ka_wait;

static void ka_durable(void *arg, int64_t offset, const sl_error *err)
{
    ka_wait *w = arg;
    (void)offset;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->rc = err ? -1 : 0;
    if (err)
        w->err = *err;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Waits until the append of ticket is in Kafka. */
static int ka_wait_durable(sl_log_backend *b, int64_t ticket, sl_error *err)
{
    ka_wait w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = sl_kafka_log_backend.on_durable(b, ticket, ka_durable, &w, err);
    pthread_mutex_lock(&w.mu);
    while (rc == 0 && !w.done)
        pthread_cond_wait(&w.cv, &w.mu); /* the producer reports within message.timeout.ms */
    pthread_mutex_unlock(&w.mu);
    if (rc == 0 && w.rc < 0) {
        *err = w.err;
        rc = -1;
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

/* Redrives (through core's redrive, made durable) or purges entry rec,
 * then marks it. Returns 0, 1 when the route refused it, or -1 with err. */
static int ka_act_one(sl_log_backend *b, const sl_record *rec, bool purge, const char *by,
                      const sl_dlq_select *sel, sl_log_redrive_fn redrive, void *arg, sl_error *err)
{
    if (!purge) {
        int64_t ticket = -1;
        int got = redrive(arg, rec, sel->rerun, &ticket, err);
        if (got != 0)
            return got;
        if (ka_wait_durable(b, ticket, err) < 0)
            return -1; /* not marked: a later redrive may send it again (at least once) */
    }
    return ka_put_mark(b, rec->offset, purge, by, err);
}

int sl_kafka_log_dlq_act(sl_log_backend *b, const sl_dlq_select *sel, bool purge, const char *by,
                         sl_log_redrive_fn redrive, void *arg, size_t *count, size_t *refused,
                         sl_error *err)
{
    *count = *refused = 0;
    ka_scan s;
    int rc = ka_scan_read(b, &s, err);
    size_t left = sel->limit ? sel->limit : SIZE_MAX;
    for (size_t i = 0; rc == 0 && left > 0 && i < s.batch.count; i++) {
        const sl_record *rec = &s.batch.records[i];
        if (!ka_is_entry(b, rec) || ka_mark_of(&s, rec->offset) || !sl_dlq_select_picks(sel, rec))
            continue;
        int got = ka_act_one(b, rec, purge, by, sel, redrive, arg, err);
        if (got < 0)
            rc = -1;
        else if (got > 0)
            (*refused)++;
        else {
            (*count)++;
            left--;
        }
    }
    ka_scan_free(&s);
    return rc;
}
