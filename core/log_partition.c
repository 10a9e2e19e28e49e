/* One partition of the event log: recovery on open, append (a memcpy into
 * the mapped active segment under the partition mutex), group-commit
 * bookkeeping, reads, durability waits and callbacks, committed offsets and
 * retention of whole segments. */
#include "clock.h"
#include "log_internal.h"
#include "logging.h"
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SL_CB_CHUNK 64
#ifndef SL_GATHER_MAX_US
#define SL_GATHER_MAX_US 1000
#endif

/* ---- small helpers ---------------------------------------------------- */

static void deadline_after(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Bumps the durability futex word and wakes every thread in
 * sl_partition_wait_durable. Call after changing durable, failed or closed. */
static void durable_notify(sl_partition *p)
{
    atomic_fetch_add(&p->durable_seq, 1);
    if (atomic_load(&p->n_durable_waiting))
        syscall(SYS_futex, &p->durable_seq, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, NULL, NULL,
                0);
}

/* Index of the segment holding offset: the last one with base <= offset
 * (0 when offset is before every segment). Caller holds p->mu. */
static size_t seg_lookup(const sl_partition *p, int64_t offset)
{
    size_t lo = 0, hi = p->nseg;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->segs[mid]->base <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : 0;
}

/* ---- durability callbacks: a min-heap on offset ------------------------ */

static int cb_push(sl_partition *p, int64_t offset, sl_durable_fn fn, void *arg)
{
    if (p->ncb == p->cb_cap) {
        size_t cap = p->cb_cap ? p->cb_cap * 2 : 64;
        sl_durable_cb *n = realloc(p->cbs, cap * sizeof *n);
        if (!n)
            return -1;
        p->cbs = n;
        p->cb_cap = cap;
    }
    size_t i = p->ncb++;
    while (i > 0 && p->cbs[(i - 1) / 2].offset > offset) {
        p->cbs[i] = p->cbs[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    p->cbs[i] = (sl_durable_cb){offset, fn, arg};
    return 0;
}

static sl_durable_cb cb_pop(sl_partition *p)
{
    sl_durable_cb top = p->cbs[0];
    sl_durable_cb last = p->cbs[--p->ncb];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= p->ncb)
            break;
        if (c + 1 < p->ncb && p->cbs[c + 1].offset < p->cbs[c].offset)
            c++;
        if (p->cbs[c].offset >= last.offset)
            break;
        p->cbs[i] = p->cbs[c];
        i = c;
    }
    if (p->ncb)
        p->cbs[i] = last;
    return top;
}

/* Runs, outside the mutex and in offset order, every callback whose offset
 * is below the durable offset, or all of them with err when err is set.
 * One thread at a time runs a partition's callbacks; another that finds
 * more due leaves them to it. Returns the number this thread ran. */
static size_t cb_run_ready(sl_partition *p, const sl_error *err)
{
    sl_durable_cb chunk[SL_CB_CHUNK];
    size_t total = 0;
    pthread_mutex_lock(&p->mu);
    if (p->cb_running && !err) { /* that thread runs ours too, in order */
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    p->cb_running++;
    for (;;) {
        size_t n = 0;
        while (n < SL_CB_CHUNK && p->ncb && (err || p->cbs[0].offset < p->durable))
            chunk[n++] = cb_pop(p);
        if (n == 0)
            break;
        pthread_mutex_unlock(&p->mu);
        for (size_t i = 0; i < n; i++)
            chunk[i].fn(chunk[i].arg, chunk[i].offset, err);
        total += n;
        pthread_mutex_lock(&p->mu);
    }
    p->cb_running--;
    pthread_mutex_unlock(&p->mu);
    return total;
}

/* ---- open and recovery ------------------------------------------------- */

static int parse_segment_name(const char *name, int64_t *base)
{
    size_t len = strlen(name);
    if (len != 24 || strcmp(name + 20, ".log") != 0)
        return 0;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (name[i] - '0');
    }
    *base = v;
    return 1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && strcmp(s + a - b, suffix) == 0;
}

static int consumer_load(sl_partition *p, const char *fname, sl_error *err)
{
    char buf[64], *end;
    size_t nlen = strlen(fname) - strlen(".offset");
    int fd = openat(p->dir_fd, fname, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "opening %s/%s: %s", p->dir, fname, strerror(errno));
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return sl_error_set(err, SL_EIO, "reading %s/%s: %s", p->dir, fname, strerror(errno));
    buf[n] = '\0';
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || end == buf || *end != '\n' || v < 0)
        return sl_error_set(err, SL_ECORRUPT, "committed offset file %s/%s is not a number", p->dir,
                            fname);
    sl_consumer *c = realloc(p->consumers, (p->ncons + 1) * sizeof *c);
    if (!c)
        return sl_error_set(err, SL_ENOMEM, "loading consumers of %s", p->dir);
    p->consumers = c;
    c[p->ncons].name = strndup(fname, nlen);
    if (!c[p->ncons].name)
        return sl_error_set(err, SL_ENOMEM, "loading consumers of %s", p->dir);
    c[p->ncons++].offset = v;
    return 0;
}

static int write_offset_file(sl_partition *p, const char *consumer, int64_t next_offset,
                             sl_error *err);

/* Brings every committed offset past the end of p back to the end, in its
 * file too. With `fsync: interval` or `never` a worker reads records before
 * they are durable and may commit past them; after a power cut those
 * records are gone, and the records appended after the restart take their
 * offsets: an offset left past the end would skip them. Caller: recover,
 * once p->end is known. Returns 0, or -1 with err. */
static int clamp_consumers(sl_partition *p, sl_error *err)
{
    for (size_t i = 0; i < p->ncons; i++) {
        sl_consumer *c = &p->consumers[i];
        if (c->offset <= p->end)
            continue;
        sl_warn("log",
                "%s: consumer %s had committed offset %" PRId64 ", past the end %" PRId64
                " of the log (records lost in a power cut with fsync interval or never); "
                "it goes on from %" PRId64,
                p->dir, c->name, c->offset, p->end, p->end);
        if (write_offset_file(p, c->name, p->end, err) != 0)
            return -1;
        c->offset = p->end;
    }
    return 0;
}

/* Lists the segment bases in p->dir (sorted), loads consumer offsets and
 * removes leftover temporary files. */
static int scan_dir(sl_partition *p, int64_t **bases, size_t *nbases, sl_error *err)
{
    int rc = 0;
    size_t cap = 0;
    *bases = NULL;
    *nbases = 0;
    DIR *d = opendir(p->dir);
    if (!d)
        return sl_error_set(err, SL_EIO, "reading directory %s: %s", p->dir, strerror(errno));
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        int64_t base;
        if (parse_segment_name(de->d_name, &base)) {
            if (*nbases == cap) {
                cap = cap ? cap * 2 : 16;
                int64_t *n = realloc(*bases, cap * sizeof *n);
                if (!n) {
                    rc = sl_error_set(err, SL_ENOMEM, "listing segments of %s", p->dir);
                    break;
                }
                *bases = n;
            }
            (*bases)[(*nbases)++] = base;
        } else if (has_suffix(de->d_name, ".offset")) {
            rc = consumer_load(p, de->d_name, err);
        } else if (has_suffix(de->d_name, ".tmp")) {
            unlinkat(p->dir_fd, de->d_name, 0);
        }
    }
    closedir(d);
    if (rc == 0 && *nbases)
        qsort(*bases, *nbases, sizeof **bases, cmp_i64);
    return rc;
}

static void unlink_segment_files(const sl_partition *p, int64_t base)
{
    char name[40];
    snprintf(name, sizeof name, "%020" PRId64 ".log", base);
    unlinkat(p->dir_fd, name, 0);
    snprintf(name, sizeof name, "%020" PRId64 ".index", base);
    unlinkat(p->dir_fd, name, 0);
}

/* Removes the empty segments at the end of the partition that start past
 * their predecessor's records. A power cut leaves them: a flush's fsync of
 * the directory also makes durable the name of a segment that a roll
 * created during that flush, before the flush that syncs the rest of its
 * predecessor. No record after such a gap exists, so none was acknowledged:
 * kept, the gap would be an unreadable range forever. Caller: recover.
 * Returns 1 when it removed any. */
static int drop_empty_tail(sl_partition *p)
{
    int dropped = 0;
    while (p->nseg >= 2) {
        sl_segment *last = p->segs[p->nseg - 1];
        const sl_segment *prev = p->segs[p->nseg - 2];
        if (last->next_offset != last->base || prev->next_offset >= last->base)
            break;
        sl_warn("log",
                "%s: %s is empty and starts at offset %" PRId64 " past the end %" PRId64
                " of the segment before it (a power cut before the "
                "flush of that segment's end); it is removed and appends go on at %" PRId64,
                p->dir, last->path, last->base, prev->next_offset, prev->next_offset);
        unlink_segment_files(p, last->base);
        sl_segment_unref(last);
        p->segs[--p->nseg] = NULL;
        dropped = 1;
    }
    return dropped;
}

/* Logs each range of offsets between a segment's readable records and the
 * next segment's base (a damaged range, which readers report). */
static void warn_gaps(const sl_partition *p)
{
    for (size_t i = 1; i < p->nseg; i++)
        if (p->segs[i - 1]->next_offset < p->segs[i]->base)
            sl_warn("log", "%s: offsets %" PRId64 "..%" PRId64 " are unreadable (the end of %s)",
                    p->dir, p->segs[i - 1]->next_offset, p->segs[i]->base - 1,
                    p->segs[i - 1]->path);
}

/* Loads the segments of bases (sorted) into p->segs, which has room for
 * them. One that overlaps its predecessor is removed with all after it
 * (*changed is then set). Returns 0, or -1 with err. */
static int load_segments(sl_partition *p, const int64_t *bases, size_t nbases, int *changed,
                         sl_error *err)
{
    const sl_log_options *o = &p->log->opt;
    for (size_t i = 0; i < nbases; i++) {
        if (p->nseg && p->segs[p->nseg - 1]->next_offset > bases[i]) {
            sl_warn("log",
                    "%s: the records of %s run to offset %" PRId64 ", past the base %" PRId64
                    " of the next segment: that segment and the %zu after it are removed",
                    p->dir, p->segs[p->nseg - 1]->path, p->segs[p->nseg - 1]->next_offset, bases[i],
                    nbases - i - 1);
            for (size_t j = i; j < nbases; j++)
                unlink_segment_files(p, bases[j]);
            *changed = 1;
            return 0;
        }
        sl_segment *s = sl_segment_load(p->dir, bases[i], o->index_interval_bytes,
                                        SL_DATA_FILE_MODE(o->data_mode), err);
        if (!s)
            return -1;
        p->segs[p->nseg++] = s;
    }
    return 0;
}

/* Loads every segment and makes the last one active. A segment whose
 * predecessor's readable records end early is kept (the gap is a damaged
 * range, which readers report: the flusher syncs a sealed segment before any
 * later record is durable, so the records after a gap may have been
 * acknowledged), unless it and every segment after it are empty
 * (drop_empty_tail); one that overlaps its predecessor is cut with all after
 * it. Committed offsets past the end are brought back to it
 * (clamp_consumers). */
static int recover(sl_partition *p, sl_error *err)
{
    int64_t *bases;
    size_t nbases;
    int changed = 0;
    const sl_log_options *o = &p->log->opt;
    if (scan_dir(p, &bases, &nbases, err) != 0) {
        free(bases);
        return -1;
    }
    p->seg_cap = nbases ? nbases + 8 : 8;
    p->segs = calloc(p->seg_cap, sizeof *p->segs);
    if (!p->segs) {
        free(bases);
        return sl_error_set(err, SL_ENOMEM, "opening partition %s", p->dir);
    }
    int rc = load_segments(p, bases, nbases, &changed, err);
    free(bases);
    if (rc != 0)
        return -1;
    if (drop_empty_tail(p))
        changed = 1;
    warn_gaps(p);
    if (p->nseg == 0) {
        sl_segment *s = sl_segment_create(p->dir, 0, (size_t)o->segment_bytes,
                                          SL_DATA_FILE_MODE(o->data_mode), err);
        if (!s)
            return -1;
        p->segs[p->nseg++] = s;
        changed = 1;
    } else {
        sl_segment *last = p->segs[p->nseg - 1];
        if (last->write_pos < last->map_size)
            changed = 1;
        if (sl_segment_activate(last, (size_t)o->segment_bytes, err) != 0)
            return -1;
    }
    if (changed && sl_fsync_dir_fd(p->dir_fd, p->dir, err) != 0)
        return -1;
    for (size_t i = 0; i < p->nseg; i++)
        p->bytes += sl_segment_bytes(p->segs[i]);
    p->end = p->segs[p->nseg - 1]->next_offset;
    p->durable = p->end;
    return clamp_consumers(p, err);
}

/* Opens partition index of topic t (its directory is t->dir/INDEX), creating
 * it empty when missing, and recovers it. Returns NULL with err. */
sl_partition *sl_partition_open(sl_log *log, sl_topic *t, int index, sl_error *err)
{
    char name[16];
    pthread_condattr_t ca;
    sl_partition *p = calloc(1, sizeof *p);
    if (!p) {
        sl_error_set(err, SL_ENOMEM, "allocating partition %d of %s", index, t->name);
        return NULL;
    }
    p->log = log;
    p->topic = t;
    p->index = index;
    p->dir_fd = -1;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    /* spin briefly before sleeping: the critical sections are a memcpy */
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&p->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_mutex_init(&p->commit_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_cond_init(&p->gather_cv, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(name, sizeof name, "%d", index);
    p->dir = sl_path_join(t->dir, name);
    if (!p->dir) {
        sl_error_set(err, SL_ENOMEM, "allocating partition %d of %s", index, t->name);
        goto fail;
    }
    if (sl_mkdir_p_durable(p->dir, SL_DATA_DIR_MODE(log->opt.data_mode), NULL) != 0) {
        sl_error_set(err, SL_EIO, "creating directory %s: %s", p->dir, strerror(errno));
        goto fail;
    }
    p->dir_fd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (p->dir_fd < 0) {
        sl_error_set(err, SL_EIO, "opening directory %s: %s", p->dir, strerror(errno));
        goto fail;
    }
    if (recover(p, err) != 0)
        goto fail;
    atomic_fetch_add(&log->disk_bytes, p->bytes);
    return p;
fail:
    sl_partition_free(p);
    return NULL;
}

/* Frees p and everything it holds. No thread may use p any more. */
void sl_partition_free(sl_partition *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nseg; i++)
        sl_segment_unref(p->segs[i]);
    free(p->segs);
    free(p->cbs);
    for (size_t i = 0; i < p->ncons; i++)
        free(p->consumers[i].name);
    free(p->consumers);
    if (p->dir_fd >= 0)
        close(p->dir_fd);
    free(p->dir);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->gather_cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->commit_mu);
    free(p);
}

/* ---- append ------------------------------------------------------------ */

/* Makes room for a record of need bytes: a new active segment starting at
 * p->end (the old one is sealed and trimmed, and returned in *sealed with a
 * reference for the caller), or, when the active segment is still empty, a
 * bigger one. Caller holds p->mu. */
static int roll(sl_partition *p, size_t need, sl_segment **sealed, sl_error *err)
{
    sl_segment *old = p->segs[p->nseg - 1];
    size_t size = (size_t)p->log->opt.segment_bytes;
    if (size < need)
        size = need;
    if (old->write_pos == 0)
        return sl_segment_grow(old, size, err);
    if (p->nseg == p->seg_cap) {
        size_t cap = p->seg_cap * 2;
        sl_segment **n = realloc(p->segs, cap * sizeof *n);
        if (!n)
            return sl_error_set(err, SL_ENOMEM, "growing the segment list of %s", p->dir);
        p->segs = n;
        p->seg_cap = cap;
    }
    sl_segment *s =
        sl_segment_create(p->dir, p->end, size, SL_DATA_FILE_MODE(p->log->opt.data_mode), err);
    if (!s)
        return -1;
    sl_segment_seal(old);
    sl_segment_ref(old);
    *sealed = old;
    p->segs[p->nseg++] = s;
    p->dir_dirty = 1;
    return 0;
}

/* Refuses an append to a closing or failed partition, and makes room for
 * size bytes in the active segment (rolling it: *sealed is then the segment
 * sealed, referenced for the caller). Caller holds p->mu. Returns the
 * segment to write to, or NULL with err. */
static sl_segment *append_target(sl_partition *p, size_t size, sl_segment **sealed, sl_error *err)
{
    if (p->closing) {
        sl_error_set(err, SL_ECLOSED, "partition %s is closed", p->dir);
        return NULL;
    }
    if (p->failed) {
        sl_error_set(err, SL_EIO, "partition %s failed earlier: %s", p->dir, p->io_err.msg);
        return NULL;
    }
    sl_segment *s = p->segs[p->nseg - 1];
    if (s->map_size - s->write_pos < size) {
        if (roll(p, size, sealed, err) != 0)
            return NULL;
        s = p->segs[p->nseg - 1];
    }
    return s;
}

/* Encodes rec at p's end in s (which has room for its size bytes), indexes
 * it, and publishes the new end (and, unless `fsync: always`, the new
 * durable offset to readers). Caller holds p->mu. Returns the record's
 * offset; *added is the bytes it took on disk, *enqueue 1 when p must join
 * the flush list. */
static int64_t append_locked(sl_partition *p, sl_segment *s, const sl_record *rec, size_t size,
                             int64_t ts, uint64_t *added, int *enqueue)
{
    const sl_log_options *o = &p->log->opt;
    int64_t offset = p->end;
    size_t pos = s->write_pos;
    *added = size;
    sl_record_encode(s->map + pos, rec, offset, ts);
    if ((s->idx_n == 0 || pos - s->last_idx_pos >= o->index_interval_bytes) &&
        sl_segment_add_index(s, offset, pos) == 0)
        *added += SL_INDEX_ENTRY_BYTES;
    if (ts > s->max_ts)
        s->max_ts = ts;
    s->write_pos = pos + size;
    s->next_offset = offset + 1;
    atomic_store_explicit(&p->end, offset + 1, memory_order_release);
    p->bytes += *added;
    if (o->fsync != SL_FSYNC_ALWAYS) {
        s->readable_pos = s->write_pos;
        atomic_store_explicit(&p->durable, offset + 1, memory_order_release);
        if (p->n_waiting)
            pthread_cond_broadcast(&p->cv);
    }
    *enqueue = o->fsync != SL_FSYNC_NEVER && !p->queued;
    if (*enqueue)
        p->queued = 1;
    if (p->gather_target && p->end - p->durable >= p->gather_target) {
        p->gather_target = 0;
        pthread_cond_signal(&p->gather_cv);
    }
    return offset;
}

/* Drops the mapped pages of a segment a roll sealed (NULL: none) and the
 * reference roll() took, outside p->mu. */
static void release_sealed(sl_segment *sealed)
{
    if (sealed == NULL)
        return;
    sl_segment_release_pages(sealed);
    sl_segment_unref(sealed);
}

int64_t sl_partition_append(sl_partition *p, const sl_record *rec, sl_error *err)
{
    sl_log *log = p->log;
    size_t size = sl_record_size(rec);
    if (size == 0)
        return sl_error_set(err, SL_EINVAL, "record for %s is larger than %zu bytes", p->dir,
                            SL_RECORD_MAX_BYTES);
    int64_t ts = rec->timestamp_ms ? rec->timestamp_ms : sl_wall_ms();
    uint64_t cap = log->opt.max_disk_bytes;
    if (cap && atomic_load_explicit(&log->disk_bytes, memory_order_relaxed) + size > cap)
        return sl_error_set(err, SL_EFULL, "log %s is at max_disk_bytes (%" PRIu64 " bytes)",
                            log->dir, cap);

    sl_segment *sealed = NULL;
    pthread_mutex_lock(&p->mu);
    sl_segment *s = append_target(p, size, &sealed, err);
    if (!s) {
        pthread_mutex_unlock(&p->mu);
        release_sealed(sealed);
        return -1;
    }
    uint64_t added;
    int enqueue;
    int64_t offset = append_locked(p, s, rec, size, ts, &added, &enqueue);
    pthread_mutex_unlock(&p->mu);
    release_sealed(sealed);

    atomic_fetch_add_explicit(&log->disk_bytes, added, memory_order_relaxed);
    if (enqueue) {
        pthread_mutex_lock(&log->flush_mu);
        log->flush_list[log->flush_n++] = p;
        if (log->opt.fsync == SL_FSYNC_ALWAYS)
            pthread_cond_signal(&log->flush_cv);
        pthread_mutex_unlock(&log->flush_mu);
    }
    return offset;
}

/* ---- flush (group commit) ---------------------------------------------- */

typedef struct flush_item {
    sl_segment *s;
    size_t pos;    /* write position at the snapshot */
    size_t synced; /* synced position at the snapshot */
    int sync_idx;  /* sealed: its index needs its one fdatasync */
} flush_item;

static int sync_fd(sl_log *log, int fd, const char *path, sl_error *err)
{
    double t0 = sl_mono_seconds();
    if (fdatasync(fd) != 0)
        return sl_error_set(err, SL_EIO, "fdatasync of %s: %s", path, strerror(errno));
    if (log->opt.on_fsync)
        log->opt.on_fsync(log->opt.on_fsync_arg, sl_mono_seconds() - t0);
    return 0;
}

/* What one flush syncs: the dirty segments at the snapshot, each holding a
 * reference until snap_release. */
typedef struct flush_snap {
    flush_item stack_items[8];
    flush_item *items; /* stack_items, or malloc'd when more are dirty */
    size_t n;
    int64_t end;   /* p->end at the snapshot */
    int dir_dirty; /* a segment file was created since the last flush */
} flush_snap;

/* Waits (p->mu held), at most until the gather deadline, for as many
 * appends past the durable offset as the previous flush released. */
static void gather_appends(sl_partition *p)
{
    if (!p->gather_target)
        return;
    struct timespec dl = {(time_t)(p->gather_deadline_us / 1000000),
                          (long)(p->gather_deadline_us % 1000000) * 1000};
    while (p->gather_target && p->end - p->durable < p->gather_target && !p->closing &&
           pthread_cond_timedwait(&p->gather_cv, &p->mu, &dl) == 0)
        ;
}

/* Snapshots (p->mu held) the end offset and the segments from the oldest
 * one with unsynced data or an unsynced sealed index, referencing each, and
 * takes the directory's dirty flag. Returns 0, or -1 with err (SL_ENOMEM)
 * with nothing held. */
static int snapshot_dirty(sl_partition *p, flush_snap *snap, sl_error *err)
{
    size_t first = p->nseg;
    for (size_t i = p->nseg; i-- > 0;) {
        const sl_segment *s = p->segs[i];
        if (s->synced_pos < s->write_pos || (s->sealed && !s->idx_synced))
            first = i;
        else if (s->sealed)
            break;
    }
    snap->items = snap->stack_items;
    snap->n = 0;
    if (p->nseg - first > 8) {
        snap->items = malloc((p->nseg - first) * sizeof *snap->items);
        if (!snap->items)
            return sl_error_set(err, SL_ENOMEM, "flushing %s", p->dir);
    }
    for (size_t i = first; i < p->nseg; i++) {
        sl_segment *s = p->segs[i];
        sl_segment_ref(s);
        snap->items[snap->n++] =
            (flush_item){s, s->write_pos, s->synced_pos, s->sealed && !s->idx_synced};
    }
    snap->end = p->end;
    snap->dir_dirty = p->dir_dirty;
    p->dir_dirty = 0;
    return 0;
}

/* fdatasyncs, without p->mu, the snapshot's segments and sealed indexes,
 * then the directory when a segment was created. Stores how long that took
 * in *seconds. Returns 0, or -1 with ferr at the first failure. */
static int sync_snapshot(sl_partition *p, const flush_snap *snap, double *seconds, sl_error *ferr)
{
    int rc = 0;
    double t0 = sl_mono_seconds();
    for (size_t i = 0; i < snap->n && rc == 0; i++) {
        const flush_item *it = &snap->items[i];
        if (it->pos > it->synced)
            rc = sync_fd(p->log, it->s->fd, it->s->path, ferr);
        if (rc == 0 && it->sync_idx)
            rc = sync_fd(p->log, it->s->idx_fd, it->s->idx_path, ferr);
    }
    if (rc == 0 && snap->dir_dirty)
        rc = sl_fsync_dir_fd(p->dir_fd, p->dir, ferr);
    *seconds = sl_mono_seconds() - t0;
    return rc;
}

/* Publishes the outcome under p->mu: on success the synced and readable
 * positions and the durable offset advance to the snapshot; on failure the
 * partition is marked failed with ferr. Wakes the threads waiting on p->cv. */
static void publish_flush(sl_partition *p, const flush_snap *snap, int rc, const sl_error *ferr)
{
    pthread_mutex_lock(&p->mu);
    if (rc != 0) {
        p->io_err = *ferr;
        atomic_store(&p->failed, 1);
    } else {
        for (size_t i = 0; i < snap->n; i++) {
            sl_segment *s = snap->items[i].s;
            if (s->synced_pos < snap->items[i].pos)
                s->synced_pos = snap->items[i].pos;
            if (s->readable_pos < snap->items[i].pos)
                s->readable_pos = snap->items[i].pos;
            if (snap->items[i].sync_idx)
                s->idx_synced = 1;
        }
        if (snap->end > p->durable)
            p->durable = snap->end;
    }
    if (p->n_waiting)
        pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Sets up the next flush's gather: wait for `released` appends, at most as
 * long as this fdatasync took (capped at SL_GATHER_MAX_US). */
static void arm_gather(sl_partition *p, int64_t released, double synced_seconds)
{
    int64_t linger_us = (int64_t)(synced_seconds * 1e6);
    if (linger_us > SL_GATHER_MAX_US)
        linger_us = SL_GATHER_MAX_US;
    pthread_mutex_lock(&p->mu);
    p->gather_target = released;
    p->gather_deadline_us = sl_mono_us() + linger_us;
    pthread_mutex_unlock(&p->mu);
}

/* Drops the snapshot's segment references and its item array. */
static void snap_release(flush_snap *snap)
{
    for (size_t i = 0; i < snap->n; i++)
        sl_segment_unref(snap->items[i].s);
    if (snap->items != snap->stack_items)
        free(snap->items);
}

/* Makes everything appended to p so far durable: snapshots the end offset
 * and the dirty segments, fdatasyncs them (and the directory when a segment
 * was created) without holding the mutex, then advances the durable offset,
 * wakes the waiters and runs the callbacks now due. On failure the partition
 * is marked failed: pending callbacks get the error and later appends fail.
 * With gather (the flusher in ALWAYS mode), it first waits, at most as long
 * as the previous fdatasync took, for as many appends as the previous flush
 * released waiters and callbacks: those producers are usually about to
 * append again, and one fdatasync for all of them beats two half-full ones.
 * Called by the flusher, sl_log_sync and close. */
int sl_partition_flush(sl_partition *p, int gather, sl_error *err)
{
    flush_snap snap;
    sl_error ferr;
    double synced_seconds = 0;

    pthread_mutex_lock(&p->mu);
    if (gather)
        gather_appends(p);
    p->gather_target = 0;
    p->queued = 0;
    if (p->failed) {
        if (err)
            *err = p->io_err;
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    if (snapshot_dirty(p, &snap, err) != 0) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    pthread_mutex_unlock(&p->mu);

    int rc = sync_snapshot(p, &snap, &synced_seconds, &ferr);
    publish_flush(p, &snap, rc, &ferr);
    int64_t released = atomic_load(&p->n_durable_waiting);
    durable_notify(p);
    released += (int64_t)cb_run_ready(p, rc ? &ferr : NULL);
    if (gather && rc == 0 && snap.n)
        arm_gather(p, released, synced_seconds);
    snap_release(&snap);
    if (rc != 0 && err)
        *err = ferr;
    return rc;
}

/* Final flush at close, after the flusher stopped: seals and trims the
 * active segment, makes everything durable, then fails the callbacks left
 * and releases every waiter (which return SL_ECLOSED or -1) and waits for
 * them to leave. */
void sl_partition_close(sl_partition *p)
{
    sl_error err;
    pthread_mutex_lock(&p->mu);
    p->closing = 1;
    if (!p->failed)
        sl_segment_seal(p->segs[p->nseg - 1]);
    pthread_mutex_unlock(&p->mu);
    sl_partition_flush(p, 0, &err);
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->closed, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    durable_notify(p);
    sl_error_set(&err, SL_ECLOSED, "log closed before offset became durable in %s", p->dir);
    cb_run_ready(p, &err);
    pthread_mutex_lock(&p->mu);
    while (p->n_waiting)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    while (atomic_load(&p->n_durable_waiting))
        usleep(100);
}

/* ---- waits and callbacks ----------------------------------------------- */

int sl_partition_wait_durable(sl_partition *p, int64_t offset, int timeout_ms, sl_error *err)
{
    struct timespec dl;
    int rc, timed_out = 0;
    /* No mutex here: waiters sleep on a futex word and, once released, go
     * straight back to appending instead of queueing for the mutex. */
    if (offset >= 0 && atomic_load_explicit(&p->durable, memory_order_acquire) > offset)
        return 0;
    int64_t end = atomic_load(&p->end);
    if (offset < 0 || offset >= end)
        return sl_error_set(err, SL_EINVAL,
                            "offset %" PRId64 " of %s was never appended (end %" PRId64 ")", offset,
                            p->dir, end);
    if (timeout_ms >= 0)
        deadline_after(&dl, timeout_ms);
    atomic_fetch_add(&p->n_durable_waiting, 1);
    for (;;) {
        uint32_t seq = atomic_load(&p->durable_seq);
        if (atomic_load(&p->durable) > offset || atomic_load(&p->failed) ||
            atomic_load(&p->closed) || timed_out)
            break;
        if (syscall(SYS_futex, &p->durable_seq, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, seq,
                    timeout_ms >= 0 ? &dl : NULL, NULL, FUTEX_BITSET_MATCH_ANY) != 0 &&
            errno == ETIMEDOUT)
            timed_out = 1;
    }
    if (atomic_load(&p->durable) > offset)
        rc = 0;
    else if (atomic_load(&p->failed))
        rc = sl_error_set(err, SL_EIO, "offset %" PRId64 " of %s is not durable: %s", offset,
                          p->dir, p->io_err.msg);
    else if (atomic_load(&p->closed))
        rc = sl_error_set(err, SL_ECLOSED, "partition %s closed", p->dir);
    else
        rc = sl_error_set(err, SL_ETIMEOUT, "offset %" PRId64 " of %s not durable after %d ms",
                          offset, p->dir, timeout_ms);
    atomic_fetch_sub(&p->n_durable_waiting, 1); /* the last touch of p */
    return rc;
}

int sl_partition_on_durable(sl_partition *p, int64_t offset, sl_durable_fn fn, void *arg,
                            sl_error *err)
{
    pthread_mutex_lock(&p->mu);
    int64_t end = p->end;
    int rc = 0, now = 0;
    if (p->closing)
        rc = sl_error_set(err, SL_ECLOSED, "partition %s is closed", p->dir);
    else if (p->failed)
        rc = sl_error_set(err, SL_EIO, "partition %s failed: %s", p->dir, p->io_err.msg);
    else if (offset < 0 || offset >= end)
        rc = sl_error_set(err, SL_EINVAL, "offset %" PRId64 " of %s was never appended", offset,
                          p->dir);
    else if (offset < p->durable)
        now = 1;
    else if (cb_push(p, offset, fn, arg) != 0)
        rc = sl_error_set(err, SL_ENOMEM, "registering a durability callback on %s", p->dir);
    pthread_mutex_unlock(&p->mu);
    if (now)
        fn(arg, offset, NULL);
    return rc;
}

int sl_partition_wait_readable(sl_partition *p, int64_t offset, int timeout_ms)
{
    struct timespec dl;
    int timed_out = 0, rc;
    if (timeout_ms >= 0)
        deadline_after(&dl, timeout_ms);
    pthread_mutex_lock(&p->mu);
    unsigned gen = p->wake_gen;
    p->n_waiting++;
    while (p->durable <= offset && !p->closed && gen == p->wake_gen && !timed_out) {
        if (timeout_ms < 0)
            pthread_cond_wait(&p->cv, &p->mu);
        else if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) == ETIMEDOUT)
            timed_out = 1;
    }
    rc = p->closed ? -1 : p->durable > offset ? 1 : 0;
    if (--p->n_waiting == 0 && p->closed)
        pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void sl_partition_wake(sl_partition *p)
{
    pthread_mutex_lock(&p->mu);
    p->wake_gen++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int64_t sl_partition_start_offset(sl_partition *p)
{
    pthread_mutex_lock(&p->mu);
    int64_t v = p->segs[0]->base;
    pthread_mutex_unlock(&p->mu);
    return v;
}

int64_t sl_partition_end_offset(sl_partition *p)
{
    pthread_mutex_lock(&p->mu);
    int64_t v = p->end;
    pthread_mutex_unlock(&p->mu);
    return v;
}

int64_t sl_partition_durable_offset(sl_partition *p)
{
    pthread_mutex_lock(&p->mu);
    int64_t v = p->durable;
    pthread_mutex_unlock(&p->mu);
    return v;
}

/* ---- read -------------------------------------------------------------- */

void sl_batch_init(sl_batch *b)
{
    memset(b, 0, sizeof *b);
}

void sl_batch_free(sl_batch *b)
{
    if (!b)
        return;
    free(b->records);
    free(b->hdrs);
    free(b->buf);
    sl_batch_init(b);
}

static int grow(void **ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *n = realloc(*ptr, c * elem);
    if (!n)
        return -1;
    *ptr = n;
    *cap = c;
    return 0;
}

static size_t copy_nul(char *dst, const char *src, size_t len)
{
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
    return len + 1;
}

/* Appends a copy of v to b. While the batch is being filled, the pointers of
 * its records hold offsets into b->buf and b->hdrs (fixed by batch_fixup),
 * since both may move as they grow. */
static int batch_add(sl_batch *b, size_t *used, size_t *hused, const sl_record_view *v)
{
    size_t need = (size_t)v->key_len + v->value_len + 2 + v->headers_len -
                  (size_t)v->n_headers * 6; /* 8 bytes of lengths become 2 NULs */
    if (grow((void **)&b->records, &b->rec_cap, b->count + 1, sizeof *b->records) != 0 ||
        grow((void **)&b->buf, &b->buf_cap, *used + need, 1) != 0 ||
        grow((void **)&b->hdrs, &b->hdrs_cap, *hused + v->n_headers, sizeof *b->hdrs) != 0)
        return -1;
    sl_record *r = &b->records[b->count++];
    r->offset = v->offset;
    r->timestamp_ms = v->timestamp_ms;
    r->key = (const char *)(uintptr_t)*used;
    r->key_len = v->key_len;
    *used += copy_nul(b->buf + *used, v->key, v->key_len);
    r->headers = (const sl_header *)(uintptr_t)*hused;
    r->n_headers = v->n_headers;
    const unsigned char *hp = v->headers;
    for (uint32_t i = 0; i < v->n_headers; i++) {
        sl_header h, *out = &b->hdrs[(*hused)++];
        hp = sl_record_next_header(hp, &h);
        out->name = (const char *)(uintptr_t)*used;
        out->name_len = h.name_len;
        *used += copy_nul(b->buf + *used, h.name, h.name_len);
        out->value = (const char *)(uintptr_t)*used;
        out->value_len = h.value_len;
        *used += copy_nul(b->buf + *used, h.value, h.value_len);
    }
    r->value = (const char *)(uintptr_t)*used;
    r->value_len = v->value_len;
    *used += copy_nul(b->buf + *used, v->value, v->value_len);
    return 0;
}

static void batch_fixup(sl_batch *b, size_t hused)
{
    for (size_t i = 0; i < hused; i++) {
        b->hdrs[i].name = b->buf + (uintptr_t)b->hdrs[i].name;
        b->hdrs[i].value = b->buf + (uintptr_t)b->hdrs[i].value;
    }
    for (size_t i = 0; i < b->count; i++) {
        sl_record *r = &b->records[i];
        r->key = b->buf + (uintptr_t)r->key;
        r->value = b->buf + (uintptr_t)r->value;
        r->headers = r->n_headers ? b->hdrs + (uintptr_t)r->headers : NULL;
    }
}

/* A read in progress: the batch being filled, its limits, the next offset. */
typedef struct read_state {
    sl_batch *out;
    size_t used, hused, bytes, max_records, max_bytes;
    int64_t cur;
} read_state;

static bool read_has_room(const read_state *rs)
{
    return rs->out->count < rs->max_records && (rs->out->count == 0 || rs->bytes < rs->max_bytes);
}

/* Adds the records of segment s (mapped at map) between byte pos and limit,
 * from rs->cur on, while the batch has room; damage before rs->cur (already
 * quarantined) is stepped over. Returns 0, or -1 with err set (the records
 * added before stay in the batch). */
static int read_segment(const sl_partition *p, const sl_segment *s, const unsigned char *map,
                        size_t pos, size_t limit, read_state *rs, sl_error *err)
{
    int64_t seen = s->base - 1;
    while (pos < limit && read_has_room(rs)) {
        sl_record_view v;
        sl_rec_status st = sl_record_decode(map + pos, limit - pos, &v);
        if (st != SL_REC_OK || v.offset > rs->cur) {
            size_t at = sl_record_resync(map, limit, pos + 1, seen, rs->cur + 1, &v);
            if (at == SIZE_MAX)
                return sl_error_set(
                    err, SL_ECORRUPT, "%s at byte %zu of %s while reading offset %" PRId64,
                    st != SL_REC_OK ? sl_rec_status_name(st) : "offset gap", pos, s->path, rs->cur);
            pos = at;
        }
        seen = v.offset;
        pos += v.size;
        if (v.offset < rs->cur)
            continue;
        if (batch_add(rs->out, &rs->used, &rs->hused, &v) != 0)
            return sl_error_set(err, SL_ENOMEM, "growing a read batch for %s", p->dir);
        rs->bytes += v.size;
        rs->cur++;
    }
    return 0;
}

int sl_partition_read(sl_partition *p, int64_t from, size_t max_records, size_t max_bytes,
                      sl_batch *out, sl_error *err)
{
    read_state rs = {.out = out, .max_records = max_records, .max_bytes = max_bytes, .cur = from};
    int rc = 0;
    out->count = 0;
    while (rc == 0 && read_has_room(&rs)) {
        pthread_mutex_lock(&p->mu);
        if (rs.cur < p->segs[0]->base)
            rs.cur = p->segs[0]->base;
        if (rs.cur >= p->durable) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        sl_segment *s = p->segs[seg_lookup(p, rs.cur)];
        size_t pos = sl_segment_find_pos(s, rs.cur);
        size_t limit = s->readable_pos;
        const unsigned char *map = s->map;
        bool sealed = s->sealed && limit == s->write_pos;
        int64_t seg_end = s->next_offset;
        sl_segment_ref(s);
        pthread_mutex_unlock(&p->mu);

        int64_t before = rs.cur;
        rc = read_segment(p, s, map, pos, limit, &rs, err);
        if (rc == 0 && sealed && rs.cur == seg_end)
            sl_segment_release_pages(s); /* read to its end: its pages are not needed here */
        sl_segment_unref(s);
        if (rc == 0 && rs.cur == before)
            rc = sl_error_set(err, SL_ECORRUPT, "offset %" PRId64 " not found in %s", rs.cur,
                              p->dir);
    }
    batch_fixup(out, rs.hused);
    out->next_offset = rs.cur;
    /* Records read before an error are returned; the next read meets it. */
    if (rc != 0 && out->count == 0)
        return -1;
    return (int)out->count;
}

/* What the damage scan needs of one segment, taken under the mutex. */
typedef struct damage_view {
    sl_segment *s;
    size_t pos, limit;
    int64_t end;     /* the first offset after this segment's readable records */
    int sealed;      /* a later segment follows */
    size_t file_end; /* bytes of a sealed segment's file (its damaged tail ends there) */
} damage_view;

static void damage_fill(sl_damage *d, const damage_view *dv, size_t pos, size_t to,
                        sl_rec_status st, int64_t first, int64_t next)
{
    d->first_offset = first;
    d->next_offset = next;
    d->from_byte = pos;
    d->to_byte = to;
    snprintf(d->segment, sizeof d->segment, "%s", dv->s->path);
    snprintf(d->reason, sizeof d->reason, "%s",
             st == SL_REC_OK ? "offset gap" : sl_rec_status_name(st));
    d->n_bytes = to - pos < ((size_t)1 << 20) ? to - pos : (size_t)1 << 20;
    d->bytes = d->n_bytes ? malloc(d->n_bytes) : NULL;
    if (d->bytes)
        memcpy(d->bytes, dv->s->map + pos, d->n_bytes);
    else
        d->n_bytes = 0;
}

/* Scans dv's segment from dv->pos for offset: 0 when it reads, 1 (d filled)
 * when it lies in a damaged range. */
static int damage_scan(const damage_view *dv, int64_t offset, sl_damage *d)
{
    const unsigned char *map = dv->s->map;
    size_t pos = dv->pos;
    int64_t seen = dv->s->base - 1;
    while (pos < dv->limit) {
        sl_record_view v;
        sl_rec_status st = sl_record_decode(map + pos, dv->limit - pos, &v);
        if (st == SL_REC_OK && v.offset == offset)
            return 0;
        if (st != SL_REC_OK || v.offset > offset) {
            size_t at = sl_record_resync(map, dv->limit, pos + 1, seen, dv->end, &v);
            if (at == SIZE_MAX || v.offset > offset) {
                damage_fill(d, dv, pos, at == SIZE_MAX ? dv->limit : at, st, seen + 1,
                            at == SIZE_MAX ? dv->end : v.offset);
                return 1;
            }
            pos = at;
        }
        seen = v.offset;
        pos += v.size;
    }
    if (offset < dv->end && dv->sealed) { /* the segment ends before offset */
        damage_fill(d, dv, dv->limit, dv->file_end, SL_REC_TORN, seen + 1, dv->end);
        return 1;
    }
    return 0;
}

int sl_partition_damage(sl_partition *p, int64_t offset, sl_damage *d, sl_error *err)
{
    memset(d, 0, sizeof *d);
    pthread_mutex_lock(&p->mu);
    if (offset < p->segs[0]->base || offset >= p->durable) {
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    size_t i = seg_lookup(p, offset);
    damage_view dv = {.s = p->segs[i]};
    dv.pos = sl_segment_find_pos(dv.s, offset);
    dv.limit = dv.s->readable_pos;
    dv.end = i + 1 < p->nseg ? p->segs[i + 1]->base : p->durable;
    dv.sealed = i + 1 < p->nseg;
    dv.file_end = dv.sealed ? dv.s->map_size : dv.limit;
    sl_segment_ref(dv.s);
    pthread_mutex_unlock(&p->mu);
    int rc = damage_scan(&dv, offset, d);
    sl_segment_unref(dv.s);
    if (rc == 1 && d->n_bytes == 0 && d->to_byte > d->from_byte)
        return sl_error_set(err, SL_ENOMEM, "copying damaged bytes of %s", d->segment);
    return rc;
}

int64_t sl_partition_offset_for_time(sl_partition *p, int64_t timestamp_ms)
{
    int64_t after = INT64_MIN; /* base of the last segment looked at */
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int64_t durable = p->durable;
        sl_segment *s = NULL;
        for (size_t i = after == INT64_MIN ? 0 : seg_lookup(p, after) + 1; i < p->nseg; i++) {
            if (p->segs[i]->base > after && p->segs[i]->max_ts >= timestamp_ms) {
                s = p->segs[i];
                break;
            }
        }
        if (!s || s->base >= durable) {
            pthread_mutex_unlock(&p->mu);
            return durable;
        }
        int64_t off;
        size_t pos = sl_segment_find_time(s, timestamp_ms, &off);
        size_t limit = s->readable_pos;
        const unsigned char *map = s->map;
        sl_segment_ref(s);
        pthread_mutex_unlock(&p->mu);
        int found = 0;
        while (pos < limit) {
            sl_record_view v;
            if (sl_record_decode(map + pos, limit - pos, &v) != SL_REC_OK) {
                found = 1; /* a reader at this offset will be told it is corrupt */
                break;
            }
            if (v.timestamp_ms >= timestamp_ms) {
                found = 1;
                break;
            }
            pos += v.size;
            off++;
        }
        after = s->base;
        sl_segment_unref(s);
        if (found)
            return off;
    }
}

/* ---- committed offsets ------------------------------------------------- */

static sl_consumer *consumer_find(sl_partition *p, const char *name)
{
    for (size_t i = 0; i < p->ncons; i++)
        if (strcmp(p->consumers[i].name, name) == 0)
            return &p->consumers[i];
    return NULL;
}

static int write_offset_file(sl_partition *p, const char *consumer, int64_t next_offset,
                             sl_error *err)
{
    char tmp[300], final[300], text[32];
    snprintf(tmp, sizeof tmp, "%s.offset.tmp", consumer);
    snprintf(final, sizeof final, "%s.offset", consumer);
    int len = snprintf(text, sizeof text, "%" PRId64 "\n", next_offset);
    int fd = openat(p->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                    SL_DATA_FILE_MODE(p->log->opt.data_mode));
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "creating %s/%s: %s", p->dir, tmp, strerror(errno));
    if (write(fd, text, (size_t)len) != len || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlinkat(p->dir_fd, tmp, 0);
        return sl_error_set(err, SL_EIO, "writing %s/%s: %s", p->dir, tmp, strerror(e));
    }
    close(fd);
    if (renameat(p->dir_fd, tmp, p->dir_fd, final) != 0) {
        int e = errno;
        unlinkat(p->dir_fd, tmp, 0);
        return sl_error_set(err, SL_EIO, "renaming %s/%s: %s", p->dir, tmp, strerror(e));
    }
    return sl_fsync_dir_fd(p->dir_fd, p->dir, err);
}

int sl_partition_commit(sl_partition *p, const char *consumer, int64_t next_offset, sl_error *err)
{
    if (!consumer || !sl_valid_name(consumer))
        return sl_error_set(err, SL_EINVAL, "bad consumer name \"%s\" for %s",
                            consumer ? consumer : "(null)", p->dir);
    if (next_offset < 0)
        return sl_error_set(err, SL_EINVAL, "negative committed offset %" PRId64 " for %s",
                            next_offset, p->dir);
    pthread_mutex_lock(&p->commit_mu);
    sl_consumer *c = consumer_find(p, consumer);
    int rc = 0;
    if (!c) {
        char *name = strdup(consumer);
        sl_consumer *n = name ? realloc(p->consumers, (p->ncons + 1) * sizeof *n) : NULL;
        if (!n) {
            free(name);
            pthread_mutex_unlock(&p->commit_mu);
            return sl_error_set(err, SL_ENOMEM, "adding consumer %s to %s", consumer, p->dir);
        }
        p->consumers = n;
        c = &n[p->ncons++];
        c->name = name;
        c->offset = -1;
    }
    rc = write_offset_file(p, consumer, next_offset, err);
    if (rc == 0)
        c->offset = next_offset;
    pthread_mutex_unlock(&p->commit_mu);
    return rc;
}

int64_t sl_partition_committed(sl_partition *p, const char *consumer)
{
    pthread_mutex_lock(&p->commit_mu);
    const sl_consumer *c = consumer ? consumer_find(p, consumer) : NULL;
    int64_t v = c ? c->offset : -1;
    pthread_mutex_unlock(&p->commit_mu);
    return v;
}

/* ---- retention --------------------------------------------------------- */

/* Deletes the oldest segments of p that are past the age or size limit,
 * stopping at the active segment and at the first one holding an offset at
 * or past the smallest committed offset. Returns the number deleted. */
int sl_partition_retain(sl_partition *p, int64_t now_ms, sl_error *err)
{
    const sl_log_options *o = &p->log->opt;
    int64_t min_commit = INT64_MAX;
    sl_segment *victims[64];
    size_t n = 0;
    int rc = 0;

    pthread_mutex_lock(&p->commit_mu);
    for (size_t i = 0; i < p->ncons; i++)
        if (p->consumers[i].offset >= 0 && p->consumers[i].offset < min_commit)
            min_commit = p->consumers[i].offset;
    pthread_mutex_unlock(&p->commit_mu);

    pthread_mutex_lock(&p->mu);
    uint64_t bytes = p->bytes;
    while (n < sizeof victims / sizeof *victims && n + 1 < p->nseg) {
        sl_segment *s = p->segs[n];
        int old = o->retention_ms && s->max_ts < now_ms - (int64_t)o->retention_ms;
        int big = o->retention_bytes && bytes > o->retention_bytes;
        if (s->next_offset > min_commit || !(old || big))
            break;
        bytes -= sl_segment_bytes(s);
        victims[n++] = s;
    }
    if (n) {
        memmove(p->segs, p->segs + n, (p->nseg - n) * sizeof *p->segs);
        p->nseg -= n;
        atomic_fetch_sub(&p->log->disk_bytes, p->bytes - bytes);
        p->bytes = bytes;
    }
    pthread_mutex_unlock(&p->mu);

    for (size_t i = 0; i < n; i++) {
        if (sl_segment_unlink(victims[i], err) != 0)
            rc = -1;
        sl_segment_unref(victims[i]);
    }
    return rc ? -1 : (int)n;
}
