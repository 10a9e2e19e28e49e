/* A route's dead letter topic: the state of each entry (pending, redriven,
 * purged) learnt from marker records appended after it, the depth gauge, and
 * how a dead letter keeps the original message beside the one that failed.
 * Used by the route engine (writing, redrive) and, through it, the admin API. */
#include "dlq.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "metrics.h"

#define LEGACY_CONSUMER "redrive" /* the cursor redrive kept before markers */

typedef struct dlq_mark {
    int64_t target;
    int64_t at_ms;
    char by[64];
} dlq_mark;

struct sl_dlq {
    sl_partition *p;
    char *route;
    sl_metrics *metrics;
    sl_gauge *gauge;
    pthread_mutex_t mu;
    uint8_t *st;      /* st[off - base]: an sl_dlq_state */
    uint32_t *mark_i; /* mark_i[off - base]: 1 + its index in marks, 0 when none */
    int64_t base;
    size_t cap;
    int64_t depth;
    dlq_mark *marks; /* who marked what, in marking order */
    size_t n_marks, cap_marks;
};

static double depth_gauge(void *arg)
{
    return (double)sl_dlq_depth(arg);
}

/* Makes st cover offset off. Returns its slot, or NULL (below base, or out
 * of memory). Under q->mu. */
static uint8_t *slot(sl_dlq *q, int64_t off)
{
    if (off < q->base)
        return NULL;
    size_t i = (size_t)(off - q->base);
    if (i >= q->cap) {
        size_t cap = q->cap ? q->cap : 1024;
        while (cap <= i)
            cap *= 2;
        uint8_t *st = realloc(q->st, cap);
        if (st)
            q->st = st;
        uint32_t *mi = st ? realloc(q->mark_i, cap * sizeof *mi) : NULL;
        if (!mi)
            return NULL; /* st may be bigger than cap: harmless */
        memset(st + q->cap, SL_DLQ_UNKNOWN, cap - q->cap);
        memset(mi + q->cap, 0, (cap - q->cap) * sizeof *mi);
        q->mark_i = mi;
        q->cap = cap;
    }
    return &q->st[i];
}

const char *sl_dlq_header(const sl_record *rec, const char *name, size_t *len)
{
    for (size_t i = 0; i < rec->n_headers; i++) {
        const sl_header *h = &rec->headers[i];
        if (h->name_len == strlen(name) && memcmp(h->name, name, h->name_len) == 0) {
            if (len)
                *len = h->value_len;
            return h->value ? h->value : "";
        }
    }
    return NULL;
}

/* Keeps who marked target and when. Under q->mu; out of memory loses only
 * this detail. */
static void remember_mark(sl_dlq *q, int64_t target, int64_t at_ms, const char *by, size_t by_len)
{
    if (q->n_marks == q->cap_marks) {
        size_t cap = q->cap_marks ? q->cap_marks * 2 : 16;
        dlq_mark *m = realloc(q->marks, cap * sizeof *m);
        if (!m)
            return;
        q->marks = m;
        q->cap_marks = cap;
    }
    if (target >= q->base && (size_t)(target - q->base) < q->cap && q->n_marks < UINT32_MAX)
        q->mark_i[target - q->base] = (uint32_t)q->n_marks + 1;
    dlq_mark *m = &q->marks[q->n_marks++];
    m->target = target;
    m->at_ms = at_ms;
    snprintf(m->by, sizeof m->by, "%.*s", (int)(by_len < 63 ? by_len : 63), by ? by : "");
}

/* Applies a marker to its target entry. Under q->mu. */
static void apply_marker(sl_dlq *q, const sl_record *rec, const char *what)
{
    const char *t = sl_dlq_header(rec, SL_DLQ_TARGET, NULL);
    int64_t target = t ? strtoll(t, NULL, 10) : -1;
    uint8_t *s = target >= 0 ? slot(q, target) : NULL;
    if (!s || *s != SL_DLQ_PENDING)
        return; /* unknown, gone with retention, or already marked */
    *s = strcmp(what, "purged") == 0 ? SL_DLQ_PURGED : SL_DLQ_REDRIVEN;
    q->depth--;
    size_t by_len = 0;
    const char *by = sl_dlq_header(rec, SL_DLQ_BY, &by_len);
    const char *at = sl_dlq_header(rec, SL_DLQ_AT, NULL);
    remember_mark(q, target, at ? strtoll(at, NULL, 10) : 0, by, by ? by_len : 0);
}

/* Whether entry rec names another route than q's. */
static bool is_foreign(const sl_dlq *q, const sl_record *rec)
{
    size_t len = 0;
    const char *route = sl_dlq_header(rec, SL_DLQ_ROUTE, &len);
    return route && (len != strlen(q->route) || memcmp(route, q->route, len) != 0);
}

int sl_dlq_note(sl_dlq *q, const sl_record *rec)
{
    pthread_mutex_lock(&q->mu);
    uint8_t *s = slot(q, rec->offset);
    int rc = s ? 0 : -1;
    if (s && *s == SL_DLQ_UNKNOWN) {
        const char *what = sl_dlq_header(rec, SL_DLQ_MARKER, NULL);
        if (what) {
            *s = SL_DLQ_IS_MARKER;
            apply_marker(q, rec, what);
        } else if (is_foreign(q, rec)) {
            *s = SL_DLQ_FOREIGN;
        } else {
            *s = SL_DLQ_PENDING;
            q->depth++;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void sl_dlq_note_entry(sl_dlq *q, int64_t off)
{
    pthread_mutex_lock(&q->mu);
    uint8_t *s = slot(q, off);
    if (s && *s == SL_DLQ_UNKNOWN) {
        *s = SL_DLQ_PENDING;
        q->depth++;
    }
    pthread_mutex_unlock(&q->mu);
}

/* Reads the whole partition once, noting every record; entries below the
 * legacy redrive cursor count as redriven. Returns 0, or -1 with err. */
static int scan(sl_dlq *q, sl_error *err)
{
    int64_t legacy = sl_partition_committed(q->p, LEGACY_CONSUMER);
    sl_batch b;
    sl_batch_init(&b);
    int64_t off = q->base;
    int rc = 0;
    for (;;) {
        int got = sl_partition_read(q->p, off, 1024, 8u << 20, &b, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        for (int i = 0; i < got && rc == 0; i++) {
            const sl_record *rec = &b.records[i];
            if (sl_dlq_note(q, rec) < 0)
                rc = sl_error_set(err, SL_ENOMEM, "out of memory reading the dead letters");
            else if (rec->offset < legacy && sl_dlq_state_at(q, rec->offset) == SL_DLQ_PENDING) {
                q->st[rec->offset - q->base] = SL_DLQ_REDRIVEN;
                q->depth--;
            }
        }
        if (rc < 0)
            break;
        off = b.next_offset;
    }
    sl_batch_free(&b);
    return rc;
}

sl_dlq *sl_dlq_open(sl_partition *p, sl_metrics *m, const char *route, sl_error *err)
{
    sl_dlq *q = calloc(1, sizeof *q);
    if (!q) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    q->p = p;
    q->metrics = m;
    q->route = strdup(route);
    q->base = sl_partition_start_offset(p);
    pthread_mutex_init(&q->mu, NULL);
    if (!q->route) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        sl_dlq_free(q);
        return NULL;
    }
    if (scan(q, err) < 0) {
        sl_dlq_free(q);
        return NULL;
    }
    char rname[256], labels[300];
    sl_metrics_escape(route, rname, sizeof rname);
    snprintf(labels, sizeof labels, "route=\"%s\"", rname);
    q->gauge = sl_metrics_gauge(m, "sluice_dlq_depth",
                                "Dead letters of a route neither redriven nor purged.", labels,
                                depth_gauge, q);
    return q;
}

void sl_dlq_free(sl_dlq *q)
{
    if (!q)
        return;
    if (q->gauge)
        sl_metrics_remove_gauge(q->metrics, q->gauge);
    pthread_mutex_destroy(&q->mu);
    free(q->st);
    free(q->mark_i);
    free(q->marks);
    free(q->route);
    free(q);
}

sl_dlq_state sl_dlq_state_at(sl_dlq *q, int64_t off)
{
    pthread_mutex_lock(&q->mu);
    sl_dlq_state s = SL_DLQ_UNKNOWN;
    if (off >= q->base && (size_t)(off - q->base) < q->cap)
        s = (sl_dlq_state)q->st[off - q->base];
    pthread_mutex_unlock(&q->mu);
    return s;
}

const char *sl_dlq_state_name(sl_dlq_state s)
{
    switch (s) {
        case SL_DLQ_PENDING:
            return "pending";
        case SL_DLQ_REDRIVEN:
            return "redriven";
        case SL_DLQ_PURGED:
            return "purged";
        case SL_DLQ_IS_MARKER:
            return "marker";
        default:
            return "unknown";
    }
}

void sl_dlq_marked_by(sl_dlq *q, int64_t off, int64_t *at_ms, char *by, size_t cap)
{
    *at_ms = 0;
    snprintf(by, cap, "%s", "");
    pthread_mutex_lock(&q->mu);
    uint32_t i = off >= q->base && (size_t)(off - q->base) < q->cap ? q->mark_i[off - q->base] : 0;
    if (i > 0) {
        *at_ms = q->marks[i - 1].at_ms;
        snprintf(by, cap, "%s", q->marks[i - 1].by);
    }
    pthread_mutex_unlock(&q->mu);
}

int64_t sl_dlq_depth(sl_dlq *q)
{
    pthread_mutex_lock(&q->mu);
    int64_t d = q->depth;
    pthread_mutex_unlock(&q->mu);
    return d;
}

/* Appends the marker for target. Returns its offset, or -1 with err. */
static int64_t append_marker(sl_dlq *q, int64_t target, const char *what, const char *by,
                             int64_t at_ms, sl_error *err)
{
    char t[32], at[32];
    snprintf(t, sizeof t, "%" PRId64, target);
    snprintf(at, sizeof at, "%" PRId64, at_ms);
    sl_header h[4] = {
        {SL_DLQ_MARKER, strlen(SL_DLQ_MARKER), what, strlen(what)},
        {SL_DLQ_TARGET, strlen(SL_DLQ_TARGET), t, strlen(t)},
        {SL_DLQ_BY, strlen(SL_DLQ_BY), by, strlen(by)},
        {SL_DLQ_AT, strlen(SL_DLQ_AT), at, strlen(at)},
    };
    sl_record rec = {.timestamp_ms = at_ms, .headers = h, .n_headers = 4, .value = ""};
    return sl_partition_append(q->p, &rec, err);
}

int sl_dlq_mark(sl_dlq *q, const int64_t *targets, size_t n, sl_dlq_state what, const char *by,
                sl_error *err)
{
    const char *name = what == SL_DLQ_PURGED ? "purged" : "redriven";
    int64_t at_ms = sl_wall_ms();
    int64_t *offs = malloc((n ? n : 1) * sizeof *offs);
    if (!offs)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        offs[i] = append_marker(q, targets[i], name, by, at_ms, err);
        if (offs[i] < 0) {
            free(offs);
            return -1;
        }
    }
    if (n > 0 && sl_partition_wait_durable(q->p, offs[n - 1], -1, err) < 0) {
        free(offs);
        return -1;
    }
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        uint8_t *s = slot(q, offs[i]);
        uint8_t *t = slot(q, targets[i]);
        if (s)
            *s = SL_DLQ_IS_MARKER;
        if (t && *t == SL_DLQ_PENDING) {
            *t = (uint8_t)what;
            q->depth--;
            remember_mark(q, targets[i], at_ms, by, strlen(by));
        }
    }
    pthread_mutex_unlock(&q->mu);
    free(offs);
    return 0;
}

/* Sets header prefix+name (name of len bytes) of m to value. Returns 0 or
 * -1 when out of memory or the name is too long. */
static int set_prefixed(sl_msg *m, const char *prefix, const char *name, size_t len,
                        const char *value, size_t value_len)
{
    char full[512];
    int n = snprintf(full, sizeof full, "%s%.*s", prefix, (int)len, name);
    if (n < 0 || (size_t)n >= sizeof full)
        return -1;
    return sl_msg_set_header(m, full, value ? value : "", value_len);
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t pl = strlen(prefix);
    return len >= pl && strncasecmp(s, prefix, pl) == 0;
}

int sl_dlq_add_original(sl_msg *dead, const sl_record *orig)
{
    int rc = 0;
    bool carried = sl_dlq_header(orig, SL_DLQ_ORIG_BODY, NULL) != NULL;
    if (!carried) {
        rc |= sl_msg_set_header(dead, SL_DLQ_ORIG_BODY, orig->value ? orig->value : "",
                                orig->value_len);
        if (orig->key_len > 0)
            rc |= sl_msg_set_header(dead, SL_DLQ_ORIG_KEY, orig->key, orig->key_len);
    }
    for (size_t i = 0; i < orig->n_headers && rc == 0; i++) {
        const sl_header *h = &orig->headers[i];
        bool is_orig = has_prefix(h->name, h->name_len, SL_DLQ_ORIG_PREFIX);
        if (carried && is_orig)
            rc |= set_prefixed(dead, "", h->name, h->name_len, h->value, h->value_len);
        else if (!carried && !has_prefix(h->name, h->name_len, "x-sluice-") &&
                 !(h->name_len == strlen(SL_HDR_ID) &&
                   memcmp(h->name, SL_HDR_ID, h->name_len) == 0))
            rc |= set_prefixed(dead, SL_DLQ_ORIG_HEADER, h->name, h->name_len, h->value,
                               h->value_len);
    }
    return rc ? -1 : 0;
}

/* Copies into m the headers of src wanted: with original, the
 * SL_DLQ_ORIG_HEADER ones under their own names; else those not x-sluice-*
 * (and, with keep_original, the SL_DLQ_ORIG_* ones as they are). */
static int copy_headers(sl_msg *m, const sl_msg *src, bool original, bool keep_original)
{
    size_t hl = strlen(SL_DLQ_ORIG_HEADER);
    int rc = 0;
    for (size_t i = 0; i < src->n_headers && rc == 0; i++) {
        const sl_msg_header *h = &src->headers[i];
        size_t len = strlen(h->name);
        if (original) {
            if (has_prefix(h->name, len, SL_DLQ_ORIG_HEADER) && len > hl)
                rc = sl_msg_set_header(m, h->name + hl, h->value, h->value_len);
        } else if (!has_prefix(h->name, len, "x-sluice-") ||
                   (keep_original && has_prefix(h->name, len, SL_DLQ_ORIG_PREFIX))) {
            rc = sl_msg_set_header(m, h->name, h->value, h->value_len);
        }
    }
    return rc;
}

sl_msg *sl_dlq_message(const sl_record *rec, bool original, bool keep_original, sl_error *err)
{
    sl_msg *dead = sl_msg_from_record(rec, 0, err);
    if (!dead)
        return NULL;
    size_t blen = 0, klen = 0;
    const char *body = original ? sl_msg_get_header(dead, SL_DLQ_ORIG_BODY, &blen) : NULL;
    const char *key = body ? sl_msg_get_header(dead, SL_DLQ_ORIG_KEY, &klen) : NULL;
    original = body != NULL; /* a dead letter without its original is taken as it is */
    if (!original) {
        body = dead->body;
        blen = dead->body_len;
        key = dead->key;
        klen = dead->key_len;
    }
    sl_msg *m = sl_msg_new();
    int rc = m ? 0 : -1;
    if (m) {
        memcpy(m->id, dead->id, sizeof m->id);
        m->timestamp_ms = dead->timestamp_ms;
        rc |= sl_msg_set_body(m, body, blen);
        if (key)
            rc |= sl_msg_set_key(m, key, klen);
        rc |= copy_headers(m, dead, original, keep_original);
    }
    sl_msg_free(dead);
    if (rc != 0) {
        sl_msg_free(m);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    return m;
}
