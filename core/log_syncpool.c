/* The sync helpers of the ALWAYS flusher (log_internal.h): each flush round
 * hands its partitions to the flusher and up to SL_SYNC_HELPERS threads, so
 * that one round costs about one fdatasync latency, not one per partition.
 * Durability is unchanged: each partition is flushed by sl_partition_flush
 * as before, only concurrently. */
#include "log_internal.h"
#include "thread_name.h"

_Static_assert(SL_FLUSHERS == 1, "the sync helpers serve one flusher");

/* Takes the round's next partition, or NULL when none is left (mu held). */
static sl_partition *take_locked(sl_syncpool *sp)
{
    return sp->next < sp->n ? sp->items[sp->next++] : NULL;
}

/* Flushes p and counts it done (mu not held on entry or exit). */
static void flush_one(sl_syncpool *sp, sl_partition *p)
{
    sl_partition_flush(p, 1, NULL); /* failures stay on the partition */
    pthread_mutex_lock(&sp->mu);
    if (--sp->left == 0)
        pthread_cond_signal(&sp->done_cv);
    pthread_mutex_unlock(&sp->mu);
}

static void *helper_main(void *arg)
{
    sl_syncpool *sp = arg;
    pthread_mutex_lock(&sp->mu);
    while (!sp->stop) {
        sl_partition *p = take_locked(sp);
        if (p == NULL) {
            pthread_cond_wait(&sp->work_cv, &sp->mu);
            continue;
        }
        pthread_mutex_unlock(&sp->mu);
        flush_one(sp, p);
        pthread_mutex_lock(&sp->mu);
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

int sl_syncpool_start(sl_log *log, sl_error *err)
{
    sl_syncpool *sp = &log->sync;
    pthread_mutex_init(&sp->mu, NULL);
    pthread_cond_init(&sp->work_cv, NULL);
    pthread_cond_init(&sp->done_cv, NULL);
    sp->inited = 1;
    for (int i = 0; i < SL_SYNC_HELPERS; i++) {
        if (pthread_create(&sp->threads[i], NULL, helper_main, sp) != 0)
            return sl_error_set(err, SL_EIO, "starting the sync helpers of %s", log->dir);
        sl_thread_name(sp->threads[i], "sl-log-sync");
        sp->nthreads++;
    }
    return 0;
}

void sl_syncpool_flush(sl_log *log, sl_partition **parts, size_t n)
{
    sl_syncpool *sp = &log->sync;
    if (n == 1 || sp->nthreads == 0) {
        for (size_t i = 0; i < n; i++)
            sl_partition_flush(parts[i], 1, NULL);
        return;
    }
    pthread_mutex_lock(&sp->mu);
    sp->items = parts;
    sp->n = n;
    sp->next = 0;
    sp->left = n;
    pthread_cond_broadcast(&sp->work_cv);
    sl_partition *p;
    while ((p = take_locked(sp)) != NULL) {
        pthread_mutex_unlock(&sp->mu);
        flush_one(sp, p);
        pthread_mutex_lock(&sp->mu);
    }
    while (sp->left > 0)
        pthread_cond_wait(&sp->done_cv, &sp->mu);
    sp->items = NULL;
    sp->n = sp->next = 0;
    pthread_mutex_unlock(&sp->mu);
}

void sl_syncpool_stop(sl_log *log)
{
    sl_syncpool *sp = &log->sync;
    if (!sp->inited)
        return;
    pthread_mutex_lock(&sp->mu);
    sp->stop = 1;
    pthread_cond_broadcast(&sp->work_cv);
    pthread_mutex_unlock(&sp->mu);
    for (int i = 0; i < sp->nthreads; i++)
        pthread_join(sp->threads[i], NULL);
    pthread_cond_destroy(&sp->work_cv);
    pthread_cond_destroy(&sp->done_cv);
    pthread_mutex_destroy(&sp->mu);
    sp->inited = 0;
}
