/* Zero-ahead of the active segments (ALWAYS mode, log_internal.h): a
 * background thread writes zeros into the preallocated part of each active
 * segment a few MiB ahead of its appends and syncs them, so that the
 * flusher's fdatasync after an append writes data blocks only, not the
 * conversion of unwritten extents (block allocation metadata, a journal
 * commit). The bytes on disk are the same as before (a preallocated file
 * reads as zeros; recovery takes zeros as the end of the records), so a
 * crash at any point, zeroing included, leaves nothing new to recover.
 * Zeroing is an optimisation only: a failure leaves blocks unwritten, which
 * costs speed, not data. It writes through its own file descriptor, so a
 * writeback error it meets is still reported to the flusher's fdatasync. */
#include "log_internal.h"

#include <fcntl.h>
#include <unistd.h>

#define SL_ZERO_CHUNK ((size_t)1 << 20) /* bytes zeroed per claim */
#define SL_ZERO_PAGE ((size_t)4096)

static size_t page_up(size_t pos)
{
    return (pos + SL_ZERO_PAGE - 1) / SL_ZERO_PAGE * SL_ZERO_PAGE;
}

/* Writes zeros over [lo, hi) of the segment's file through a descriptor of
 * its own; returns it (for the fdatasync after) or -1. */
static int write_zeros(const sl_segment *s, size_t lo, size_t hi)
{
    static const unsigned char zeros[1 << 16];
    int fd = open(s->path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    for (size_t o = lo; o < hi;) {
        size_t n = hi - o < sizeof zeros ? hi - o : sizeof zeros;
        ssize_t w = pwrite(fd, zeros, n, (off_t)o);
        if (w <= 0)
            break;
        o += (size_t)w;
    }
    return fd;
}

/* Claims (p->mu held) the next range of p's active segment to zero: from
 * the zeroed end (or the page after the written records, when appends ran
 * past it) to at most SL_ZERO_LEAD past the records, when an append asked
 * for it. Returns the segment, referenced and marked zeroing, or NULL (and
 * clears zero_wanted) when there is nothing to do. */
static sl_segment *claim(sl_partition *p, size_t *lo, size_t *hi)
{
    sl_segment *s = p->segs[p->nseg - 1];
    size_t from = page_up(s->write_pos);
    size_t a = s->zero_end > from ? s->zero_end : from;
    size_t target = from + SL_ZERO_LEAD < s->map_size ? from + SL_ZERO_LEAD : s->map_size;
    if (!p->zero_wanted || p->closing || p->failed || s->sealed || s->zeroing || a >= target) {
        p->zero_wanted = 0;
        return NULL;
    }
    *lo = a;
    *hi = target - a > SL_ZERO_CHUNK ? a + SL_ZERO_CHUNK : target;
    s->zeroing = 1;
    s->zero_lo = a;
    sl_segment_ref(s);
    return s;
}

/* Zeroes p's active segment up to its lead, one chunk per claim. Appends
 * below the claimed range go on meanwhile; one that would reach into it, or
 * would roll the segment, waits for the pwrite (sl_zero_wait_room). */
static void zero_partition(sl_partition *p)
{
    for (;;) {
        size_t lo, hi;
        pthread_mutex_lock(&p->mu);
        sl_segment *s = claim(p, &lo, &hi);
        pthread_mutex_unlock(&p->mu);
        if (s == NULL)
            return;
        int fd = write_zeros(s, lo, hi);
        pthread_mutex_lock(&p->mu);
        s->zeroing = 0;
        if (s->zero_end < hi)
            s->zero_end = hi;
        pthread_cond_broadcast(&p->zero_cv);
        pthread_mutex_unlock(&p->mu);
        if (fd >= 0) {
            (void)!fdatasync(fd); /* commits the extents as written */
            close(fd);
        }
        sl_segment_unref(s);
    }
}

static void zero_all(sl_log *log)
{
    pthread_mutex_lock(&log->topics_mu);
    sl_topic *head = log->topics;
    pthread_mutex_unlock(&log->topics_mu);
    for (sl_topic *t = head; t; t = t->next)
        for (int i = 0; i < t->nparts; i++)
            zero_partition(t->parts[i]);
}

static void *zeroer_main(void *arg)
{
    sl_log *log = arg;
    sl_zeroer *z = &log->zero;
    pthread_mutex_lock(&z->mu);
    while (!z->stop) {
        if (!z->wanted) {
            pthread_cond_wait(&z->cv, &z->mu);
            continue;
        }
        z->wanted = 0;
        pthread_mutex_unlock(&z->mu);
        zero_all(log);
        pthread_mutex_lock(&z->mu);
    }
    pthread_mutex_unlock(&z->mu);
    return NULL;
}

int sl_zeroer_start(sl_log *log, sl_error *err)
{
    sl_zeroer *z = &log->zero;
    pthread_mutex_init(&z->mu, NULL);
    pthread_cond_init(&z->cv, NULL);
    z->inited = 1;
    if (pthread_create(&z->thread, NULL, zeroer_main, log) != 0)
        return sl_error_set(err, SL_EIO, "starting the zeroing thread of %s", log->dir);
    z->started = 1;
    return 0;
}

void sl_zeroer_stop(sl_log *log)
{
    sl_zeroer *z = &log->zero;
    if (!z->inited)
        return;
    pthread_mutex_lock(&z->mu);
    z->stop = 1;
    pthread_cond_signal(&z->cv);
    pthread_mutex_unlock(&z->mu);
    if (z->started)
        pthread_join(z->thread, NULL);
    pthread_cond_destroy(&z->cv);
    pthread_mutex_destroy(&z->mu);
    z->inited = z->started = 0;
}

sl_segment *sl_zero_wait_room(sl_partition *p, size_t size)
{
    for (;;) {
        sl_segment *s = p->segs[p->nseg - 1];
        int roll = s->map_size - s->write_pos < size;
        if (!s->zeroing || (!roll && s->write_pos + size <= s->zero_lo))
            return s;
        pthread_cond_wait(&p->zero_cv, &p->mu);
    }
}

void sl_zero_request(sl_partition *p, const sl_segment *s, size_t end)
{
    sl_zeroer *z = &p->log->zero;
    if (!z->started || p->zero_wanted || s->zero_end >= s->map_size ||
        s->zero_end >= end + SL_ZERO_LEAD / 2)
        return;
    p->zero_wanted = 1;
    pthread_mutex_lock(&z->mu);
    z->wanted = 1;
    pthread_cond_signal(&z->cv);
    pthread_mutex_unlock(&z->mu);
}

void sl_zero_wait_idle(sl_partition *p, sl_segment *s)
{
    while (s->zeroing)
        pthread_cond_wait(&p->zero_cv, &p->mu);
}
