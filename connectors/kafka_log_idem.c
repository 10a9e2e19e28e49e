/* The Idempotency-Key store shared by every gateway of a Kafka-backed route
 * (core/log_backend.h, idem_*): a compacted topic (`log.idem_topic`,
 * default TOPIC.idem) that every gateway produces to (key = the
 * Idempotency-Key, value = what the input stored: a claim or its answer;
 * no value = forgotten) and reads in full with its own consumer (no group,
 * every partition from the beginning, records older than the window
 * skipped) into a table in memory. A key's records all land in one
 * partition, so every gateway applies them in the same order: the last
 * one written wins, on every gateway and after compaction alike. A
 * gateway's own writes show at once; until they come back from Kafka,
 * records read before them are not applied (the own write is newer). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fnv.h"
#include "kafka_log.h"
#include "logging.h"
#include "metrics.h"
#include "thread_name.h"

#define KI_BUCKETS 4096
#define KI_MAX_KEYS 262144 /* per route; then the oldest keys are forgotten first */
#define KI_SWEEP_MS 10000
#define KI_TOPIC_TIMEOUT_MS 10000
#define KI_CATCH_UP_MS 30000    /* how long opening waits to have read the topic back */
#define KI_HDR "sluice-gateway" /* the writer's instance, to tell its own records */

/* One key's newest value. */
typedef struct ki_entry {
    struct ki_entry *next;          /* in its bucket */
    struct ki_entry *older, *newer; /* in the order keys were first seen */
    int64_t at_ms;                  /* when it was put */
    int pending;                    /* own writes not yet read back: newer than what is read */
    char *val;                      /* NULL: forgotten */
    size_t klen, vlen;
    char key[];
} ki_entry;

struct kl_idem {
    sl_log_backend *b;
    char *topic;
    int64_t window_ms;
    uint64_t instance;
    rd_kafka_t *cons;
    sl_kafka_client cl;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_mutex_t mu;
    ki_entry *buckets[KI_BUCKETS];
    ki_entry *oldest, *newest;
    size_t count;
    pthread_cond_t cv; /* signalled when behind drops */
    int n_parts;
    int64_t *catch_up; /* per partition: its end at open, or -1 once read up to it */
    int behind;        /* partitions not read up to their end at open yet */
    int64_t swept_ms;
    sl_counter *read; /* sluice_kafka_log_idem_records_total */
};

/* ---- the table (mu held) ---- */

static ki_entry **ki_slot(kl_idem *s, const char *key, size_t klen)
{
    ki_entry **pp = &s->buckets[sl_fnv1a64(key, klen) % KI_BUCKETS];
    while (*pp && !((*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0))
        pp = &(*pp)->next;
    return pp;
}

/* Unlinks e (in its bucket at *pp) and frees it. */
static void ki_remove(kl_idem *s, ki_entry **pp)
{
    ki_entry *e = *pp;
    *pp = e->next;
    *(e->older ? &e->older->newer : &s->oldest) = e->newer;
    *(e->newer ? &e->newer->older : &s->newest) = e->older;
    s->count--;
    free(e->val);
    free(e);
}

/* Makes room for one more key: forgets the oldest when full. */
static void ki_make_room(kl_idem *s)
{
    while (s->count >= KI_MAX_KEYS && s->oldest)
        ki_remove(s, ki_slot(s, s->oldest->key, s->oldest->klen));
}

/* Sets key's value (val NULL: forgotten), creating the entry. Returns it,
 * or NULL when out of memory. */
static ki_entry *ki_set(kl_idem *s, const char *key, size_t klen, const void *val, size_t vlen,
                        int64_t at_ms)
{
    ki_entry **pp = ki_slot(s, key, klen);
    if (!*pp) {
        ki_make_room(s);
        pp = ki_slot(s, key, klen);
        ki_entry *e = calloc(1, sizeof *e + klen + 1);
        if (!e)
            return NULL;
        memcpy(e->key, key, klen);
        e->klen = klen;
        e->older = s->newest;
        *(s->newest ? &s->newest->newer : &s->oldest) = e;
        s->newest = e;
        s->count++;
        *pp = e;
    }
    ki_entry *e = *pp;
    char *copy = NULL;
    if (val && (copy = malloc(vlen + 1)) != NULL) {
        memcpy(copy, val, vlen);
        copy[vlen] = '\0';
    }
    free(e->val);
    e->val = copy;
    e->vlen = copy ? vlen : 0;
    e->at_ms = at_ms;
    return e;
}

/* Forgets what lies outside the window (every KI_SWEEP_MS). */
static void ki_sweep(kl_idem *s, int64_t now)
{
    if (now - s->swept_ms < KI_SWEEP_MS)
        return;
    s->swept_ms = now;
    for (size_t i = 0; i < KI_BUCKETS; i++) {
        for (ki_entry **pp = &s->buckets[i]; *pp;) {
            if ((*pp)->at_ms + s->window_ms < now)
                ki_remove(s, pp);
            else
                pp = &(*pp)->next;
        }
    }
}

/* ---- reading the topic ---- */

/* Whether m was written by this gateway. */
static bool ki_own(kl_idem *s, rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    uint64_t id = 0;
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, KI_HDR, &v, &n) ||
        n != sizeof id)
        return false;
    memcpy(&id, v, sizeof id);
    return id == s->instance;
}

/* Applies one record of the topic, in the topic's order. */
static void ki_apply(kl_idem *s, rd_kafka_message_t *m)
{
    rd_kafka_timestamp_type_t tt;
    int64_t at = rd_kafka_message_timestamp(m, &tt), now = sl_wall_ms();
    if (m->err || !m->key || m->key_len == 0 || at + s->window_ms < now)
        return;
    bool own = ki_own(s, m);
    pthread_mutex_lock(&s->mu);
    ki_entry **pp = ki_slot(s, m->key, m->key_len);
    if (*pp && own && (*pp)->pending > 0)
        (*pp)->pending--;
    if (!*pp || (*pp)->pending == 0) /* else a newer own write is on its way */
        ki_set(s, m->key, m->key_len, m->payload, m->len, at);
    ki_sweep(s, now);
    pthread_mutex_unlock(&s->mu);
    sl_counter_add(s->read, 1);
}

/* Notes that partition p was read up to offset (catching up at open). */
static void ki_note(kl_idem *s, int p, int64_t offset)
{
    pthread_mutex_lock(&s->mu);
    if (p >= 0 && p < s->n_parts && s->catch_up[p] >= 0 && offset + 1 >= s->catch_up[p]) {
        s->catch_up[p] = -1;
        s->behind--;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

static void *ki_main(void *arg)
{
    kl_idem *s = arg;
    while (!atomic_load(&s->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->cons, 100);
        if (!m)
            continue;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            sl_warn(SL_KAFKA_COMPONENT, "connector %s (%s): %s", s->b->k->name, s->cl.role,
                    rd_kafka_message_errstr(m));
        else if (!m->err)
            ki_apply(s, m);
        if (!m->err)
            ki_note(s, (int)m->partition, m->offset);
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

/* ---- the topic ---- */

/* Creates the store's topic, compacted, with n partitions. */
static int ki_create(kl_idem *s, int n, sl_error *err)
{
    char retention[32];
    snprintf(retention, sizeof retention, "%" PRId64, 2 * s->window_ms);
    const char *const configs[] = {"cleanup.policy", "compact,delete", "retention.ms", retention,
                                   NULL};
    sl_error e;
    if (sl_kafka_log_topic_create(s->b, s->topic, n, configs, &e) < 0)
        return sl_error_set(err, e.code,
                            "%s (the Idempotency-Key topic: create it, compacted, or set "
                            "log.idem_topic)",
                            e.msg);
    return 0;
}

/* ---- the table's calls ---- */

/* Notes where each partition of the topic ends now: opening waits until
 * they are read up to there. Returns 0 or -1 with err. */
static int ki_ends(kl_idem *s, int n, sl_error *err)
{
    s->catch_up = calloc((size_t)n, sizeof *s->catch_up);
    if (!s->catch_up)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->n_parts = n;
    for (int p = 0; p < n; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(s->cons, s->topic, p, &lo, &hi, KI_TOPIC_TIMEOUT_MS);
        if (e)
            return sl_error_set(err, SL_EIO, "%s: end of %s [%d]: %s", s->cl.role, s->topic, p,
                                rd_kafka_err2str(e));
        s->catch_up[p] = hi > lo ? hi : -1;
        s->behind += hi > lo;
    }
    return 0;
}

/* Waits (bounded) until the topic was read up to where it ended at open. */
static bool ki_catch_up(kl_idem *s)
{
    int64_t until = sl_mono_ms() + KI_CATCH_UP_MS;
    pthread_mutex_lock(&s->mu);
    while (s->behind > 0 && sl_mono_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    bool done = s->behind == 0;
    pthread_mutex_unlock(&s->mu);
    return done;
}

static int ki_start(kl_idem *s, sl_error *err)
{
    int n = sl_kafka_log_topic_partitions(s->b, s->topic, err);
    if (n == 0) {
        if (ki_create(s, s->b->n_parts, err) < 0)
            return -1;
        n = sl_kafka_log_topic_partitions(s->b, s->topic, err);
        if (n == 0)
            sl_error_set(err, SL_EIO, "topic %s not visible after creating it", s->topic);
    }
    if (n <= 0 || (s->cons = sl_kafka_log_read_all(s->b, &s->cl, s->topic, n, err)) == NULL ||
        ki_ends(s, n, err) < 0)
        return -1;
    if (pthread_create(&s->thread, NULL, ki_main, s) != 0)
        return sl_error_set(err, SL_EIO, "%s: cannot start its thread", s->cl.role);
    sl_thread_name(s->thread, "klog-idem");
    s->running = true;
    int64_t t0 = sl_mono_ms();
    bool done = ki_catch_up(s);
    sl_logf(done ? SL_LVL_INFO : SL_LVL_WARN, SL_KAFKA_COMPONENT,
            "connector %s: route %s: Idempotency-Keys shared through %s: %s in %" PRId64 " ms",
            s->b->k->name, s->b->route->name, s->topic,
            done ? "read back" : "NOT read back (a repeat of an older key may be appended again)",
            sl_mono_ms() - t0);
    return 0;
}

static sl_counter *ki_counter(kl_idem *s)
{
    sl_metrics *m = sl_connector_metrics(s->b->k->c);
    char e1[256], e2[256], labels[600];
    snprintf(labels, sizeof labels, "connector=\"%s\",route=\"%s\"",
             sl_metrics_escape(s->b->k->name, e1, sizeof e1),
             sl_metrics_escape(s->b->route->name, e2, sizeof e2));
    return m ? sl_metrics_counter(m, "sluice_kafka_log_idem_records_total",
                                  "Records read from the route's shared Idempotency-Key topic",
                                  labels)
             : NULL;
}

int sl_kafka_log_idem_open(sl_log_backend *b, uint64_t window_ms, sl_error *err)
{
    if (b->idem)
        return 0;
    kl_idem *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    const sl_kafka_log_conf *lc = b->route->log.priv;
    s->b = b;
    s->topic = strdup(lc->idem_topic);
    s->window_ms = (int64_t)window_ms;
    s->instance = ((uint64_t)getpid() << 40) ^ (uint64_t)sl_mono_us() ^ (uint64_t)(uintptr_t)s;
    s->cl.k = b->k;
    snprintf(s->cl.role, sizeof s->cl.role, "Idempotency-Keys of route %s", b->route->name);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->read = ki_counter(s);
    b->idem = s;
    if (!s->topic)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return ki_start(s, err);
}

int sl_kafka_log_idem_get(sl_log_backend *b, const char *key, size_t klen, char **val, size_t *len,
                          uint64_t *at_ms)
{
    kl_idem *s = b->idem;
    if (!s)
        return 0;
    int found = 0;
    pthread_mutex_lock(&s->mu);
    ki_entry *e = *ki_slot(s, key, klen);
    if (e && e->val && e->at_ms + s->window_ms >= sl_wall_ms() &&
        (*val = malloc(e->vlen + 1)) != NULL) {
        memcpy(*val, e->val, e->vlen + 1);
        *len = e->vlen;
        *at_ms = (uint64_t)e->at_ms;
        found = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

/* Produces key -> val (NULL: a tombstone) with this gateway's mark. */
static int ki_produce(kl_idem *s, const char *key, size_t klen, const char *val, size_t len,
                      int64_t at)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, KI_HDR, -1, &s->instance, sizeof s->instance);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        s->b->prod, RD_KAFKA_V_TOPIC(s->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, val ? len : 0),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_TIMESTAMP(at), RD_KAFKA_V_END);
    if (e)
        rd_kafka_headers_destroy(h);
    return e ? -1 : 0;
}

int sl_kafka_log_idem_put(sl_log_backend *b, const char *key, size_t klen, const char *val,
                          size_t len, sl_error *err)
{
    kl_idem *s = b->idem;
    if (!s || atomic_load(&b->stopped))
        return sl_error_set(err, SL_ECLOSED, "route %s: no Idempotency-Key store now",
                            b->route->name);
    int64_t at = sl_wall_ms();
    pthread_mutex_lock(&s->mu);
    ki_entry *e = ki_set(s, key, klen, val, len, at);
    int rc = e ? ki_produce(s, key, klen, val, len, at) : -1;
    if (e && rc == 0)
        e->pending++;
    pthread_mutex_unlock(&s->mu);
    if (rc < 0)
        return sl_error_set(err, SL_EIO, "route %s: cannot write Idempotency-Key to %s",
                            b->route->name, s->topic);
    return 0;
}

void sl_kafka_log_idem_stop(sl_log_backend *b)
{
    kl_idem *s = b->idem;
    if (!s)
        return;
    atomic_store(&s->stop, true);
    if (s->running)
        pthread_join(s->thread, NULL);
    s->running = false;
    sl_kafka_log_reader_close(&s->cons);
}

void sl_kafka_log_idem_free(sl_log_backend *b)
{
    kl_idem *s = b->idem;
    if (!s)
        return;
    sl_kafka_log_idem_stop(b);
    for (size_t i = 0; i < KI_BUCKETS; i++) {
        while (s->buckets[i])
            ki_remove(s, &s->buckets[i]);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->catch_up);
    free(s->topic);
    free(s);
    b->idem = NULL;
}
