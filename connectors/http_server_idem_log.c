/* Rebuilds an Idempotency-Key table from the log (see
 * http_server_idem_log.h): one pass over the records of the dedupe window,
 * and, only when they hold more keys than the table, a second pass that
 * reads the newest ones again by offset, oldest first. */
#include "http_server_idem_log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "logging.h"
#include "message.h"

/* Where a keyed record is: the second pass reads it again from there. */
typedef struct ref {
    int64_t ts;
    int64_t offset;
    int partition;
} ref;

/* The newest keyed records seen, in a min-heap by time (at most cap). */
typedef struct newest {
    ref *v;
    size_t n, cap;
} newest;

typedef struct rebuild {
    const char *what;
    sl_idem *t;
    sl_partition *const *parts;
    uint64_t now_ms;
    size_t key_max;
    sl_idem_answer_fn fn;
    void *arg;
    newest heap;
    sl_idem_rebuild_stats *st;
} rebuild;

static bool ref_less(const ref *a, const ref *b)
{
    if (a->ts != b->ts)
        return a->ts < b->ts;
    if (a->partition != b->partition)
        return a->partition < b->partition;
    return a->offset < b->offset;
}

static void sift_down(newest *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < h->n && ref_less(&h->v[l], &h->v[m]))
            m = l;
        if (l + 1 < h->n && ref_less(&h->v[l + 1], &h->v[m]))
            m = l + 1;
        if (m == i)
            return;
        ref tmp = h->v[i];
        h->v[i] = h->v[m];
        h->v[m] = tmp;
        i = m;
    }
}

/* Keeps r when it is among the cap newest seen so far. */
static void heap_offer(newest *h, ref r)
{
    if (h->n < h->cap) {
        size_t i = h->n++;
        h->v[i] = r;
        while (i > 0 && ref_less(&h->v[i], &h->v[(i - 1) / 2])) {
            ref tmp = h->v[i];
            h->v[i] = h->v[(i - 1) / 2];
            h->v[(i - 1) / 2] = tmp;
            i = (i - 1) / 2;
        }
    } else if (h->cap > 0 && ref_less(&h->v[0], &r)) {
        h->v[0] = r;
        sift_down(h, 0);
    }
}

static int ref_cmp(const void *a, const void *b)
{
    return ref_less(a, b) ? -1 : ref_less(b, a) ? 1 : 0;
}

static const char *rec_header(const sl_record *rec, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < rec->n_headers; i++) {
        const sl_header *h = &rec->headers[i];
        if (h->name_len == n && memcmp(h->name, name, n) == 0)
            return h->value;
    }
    return NULL;
}

/* Puts rec's key into the table. Returns false when rec has no usable key. */
static bool put_record(rebuild *rb, int partition, const sl_record *rec)
{
    const char *key = rec_header(rec, "idempotency-key");
    const char *id = rec_header(rec, SL_HDR_ID);
    if (key == NULL || id == NULL || strlen(id) != SL_ID_LEN || key[0] == '\0' ||
        strlen(key) > rb->key_max || rec->timestamp_ms <= 0)
        return false;
    sl_idem_answer ans = {0};
    rb->fn(rb->arg, id, partition, rec->offset, &ans);
    if (sl_idem_put(rb->t, key, strlen(key), &ans, (uint64_t)rec->timestamp_ms, rb->now_ms) != 0)
        sl_warn("http_server", "out of memory rebuilding the Idempotency-Key table");
    return true;
}

/* True when rec carries an Idempotency-Key the table would take. */
static bool keyed(const rebuild *rb, const sl_record *rec)
{
    const char *key = rec_header(rec, "idempotency-key");
    return key != NULL && key[0] != '\0' && strlen(key) <= rb->key_max && rec->timestamp_ms > 0;
}

/* Reads partition i's offsets [from, to) and offers every keyed record to
 * the heap of the newest. Returns false when the partition cannot be read. */
static bool scan_range(rebuild *rb, int i, int64_t from, int64_t to, sl_batch *b)
{
    sl_partition *p = rb->parts[i];
    sl_error err;
    while (from < to) {
        size_t max = to - from < 4096 ? (size_t)(to - from) : 4096;
        int n = sl_partition_read(p, from, max, (size_t)8 << 20, b, &err);
        if (n < 0) {
            sl_err("http_server",
                   "%s partition %d: Idempotency-Keys from offset %" PRId64 " not recovered: %s",
                   rb->what, i, from, err.msg);
            rb->st->failed = true;
            return false;
        }
        if (n == 0)
            return true;
        for (size_t k = 0; k < b->count && b->records[k].offset < to; k++) {
            const sl_record *rec = &b->records[k];
            rb->st->scanned++;
            if (!keyed(rb, rec))
                continue;
            rb->st->keyed++;
            heap_offer(&rb->heap, (ref){rec->timestamp_ms, rec->offset, i});
        }
        from = b->next_offset;
    }
    return true;
}

/* First pass, newest first: time slices going back from the end of every
 * partition (1 s, then twice as long each time) down to `since`, each
 * slice the offsets between the time index's answers for its two ends, so
 * that no record is read twice or missed. It stops early once the heap
 * holds as many keys as the table and none older can get in: returns true
 * then (the window may hold more keys than the table). */
static bool collect_newest(rebuild *rb, int n, int64_t since, int64_t *upto, sl_batch *b)
{
    int64_t lo = (int64_t)rb->now_ms, span = 1000;
    for (int i = 0; i < n; i++)
        upto[i] = sl_partition_durable_offset(rb->parts[i]);
    for (;;) {
        lo = lo - span > since ? lo - span : since;
        for (int i = 0; i < n; i++) {
            int64_t from = sl_partition_offset_for_time(rb->parts[i], lo);
            if (from < upto[i]) {
                scan_range(rb, i, from, upto[i], b); /* what it cannot read is logged */
                upto[i] = from;
            }
        }
        newest *h = &rb->heap;
        if (lo <= since)
            return false;
        if (h->n == h->cap && h->v[0].ts >= lo)
            return true; /* every record left is older than lo */
        span *= 2;
    }
}

/* Second pass: the keys kept, read again by offset, oldest first. */
static void put_newest(rebuild *rb, sl_batch *b)
{
    qsort(rb->heap.v, rb->heap.n, sizeof *rb->heap.v, ref_cmp);
    for (size_t k = 0; k < rb->heap.n; k++) {
        const ref *r = &rb->heap.v[k];
        sl_error err;
        int n = sl_partition_read(rb->parts[r->partition], r->offset, 1, 1, b, &err);
        if (n == 1 && b->records[0].offset == r->offset)
            put_record(rb, r->partition, &b->records[0]);
        else
            rb->st->failed = true;
    }
}

void sl_idem_rebuild(const char *what, sl_idem *t, sl_partition *const *parts, int n,
                     uint64_t window_ms, uint64_t now_ms, size_t key_max, sl_idem_answer_fn fn,
                     void *arg, sl_idem_rebuild_stats *st)
{
    memset(st, 0, sizeof *st);
    rebuild rb = {what, t, parts, now_ms, key_max, fn, arg, {NULL, 0, sl_idem_capacity(t)}, st};
    rb.heap.v = malloc(rb.heap.cap * sizeof *rb.heap.v);
    int64_t *upto = malloc((size_t)(n > 0 ? n : 1) * sizeof *upto);
    if (rb.heap.v == NULL || upto == NULL) {
        sl_err("http_server", "%s: out of memory: Idempotency-Keys not recovered", what);
        st->failed = true;
    } else {
        sl_batch b;
        sl_batch_init(&b);
        int64_t since = now_ms > window_ms ? (int64_t)(now_ms - window_ms) : 0;
        st->overflow = collect_newest(&rb, n, since, upto, &b) || st->keyed > rb.heap.cap;
        put_newest(&rb, &b);
        sl_batch_free(&b);
    }
    st->held = sl_idem_count(t);
    free(upto);
    free(rb.heap.v);
}
