/* The event log as a whole: opening a data_dir, topics and their partition
 * count, the flusher thread (group commit, interval fsync, retention once a
 * second), sl_log_sync and close. Partitions live in log_partition.c and
 * segment files in log_segment.c; LOG.md describes the design. */
#include "clock.h"
#include "log_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "thread_name.h"

#define SL_FLUSH_CHUNK 256
#define SL_MAX_PARTITIONS 4096
#define SL_RETENTION_PERIOD_MS 1000

/* Returns 1 when name is 1 to 200 characters of [A-Za-z0-9._-] and not "."
 * or "..", else 0. */
int sl_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 200 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

void sl_log_options_default(sl_log_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->fsync = SL_FSYNC_ALWAYS;
    opt->fsync_interval_ms = 10;
    opt->segment_bytes = (uint64_t)64 << 20;
    opt->index_interval_bytes = 4096;
}

/* Creates path and its parents with mode, fsyncing the directory that holds
 * each new name; fills err naming the directory that failed. */
static int mkdir_p(const char *path, int mode, sl_error *err)
{
    size_t failed = 0;
    if (sl_mkdir_p_durable(path, (mode_t)mode, &failed) != 0)
        return sl_error_set(err, SL_EIO, "creating directory %.*s: %s", (int)failed, path,
                            strerror(errno));
    return 0;
}

static int fsync_dir_path(const char *path, sl_error *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "opening directory %s: %s", path, strerror(errno));
    int rc = sl_fsync_dir_fd(fd, path, err);
    close(fd);
    return rc;
}

/* ---- flusher ----------------------------------------------------------- */

/* Runs retention if a second has passed since the last run. */
static void maybe_retain(sl_log *log, int64_t *next_ms)
{
    int64_t now = sl_mono_ms();
    if (now < *next_ms)
        return;
    *next_ms = now + SL_RETENTION_PERIOD_MS;
    if (log->opt.retention_ms || log->opt.retention_bytes)
        sl_log_enforce_retention(log, NULL);
}

/* A flusher: in ALWAYS mode (SL_FLUSHERS threads, whose fdatasyncs
 * overlap) waits for partitions with appends past their durable offset and
 * flushes them (group commit: each fdatasync covers every
 * append made before it started); in INTERVAL mode flushes every
 * fsync_interval_ms; in every mode runs retention about once a second. */
static void *flusher_main(void *arg)
{
    sl_log *log = arg;
    /* the first flusher runs retention */
    pthread_mutex_lock(&log->flush_mu);
    int first = pthread_equal(pthread_self(), log->flushers[0]);
    pthread_mutex_unlock(&log->flush_mu);
    sl_partition *chunk[SL_FLUSH_CHUNK];
    int64_t next_retention = sl_mono_ms() + SL_RETENTION_PERIOD_MS;
    int always = log->opt.fsync == SL_FSYNC_ALWAYS;
    int64_t period = log->opt.fsync == SL_FSYNC_INTERVAL ? (int64_t)log->opt.fsync_interval_ms
                                                         : SL_RETENTION_PERIOD_MS;
    int64_t next_flush = sl_mono_ms() + period;

    pthread_mutex_lock(&log->flush_mu);
    while (!log->stop) {
        int64_t deadline = always ? next_retention : next_flush;
        int64_t now = sl_mono_ms();
        if ((!always || log->flush_n == 0) && now < deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t wait = deadline - now;
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&log->flush_cv, &log->flush_mu, &ts);
            continue;
        }
        if (!always)
            next_flush = now + period;
        size_t n = 0;
        while (n < SL_FLUSH_CHUNK && log->flush_n)
            chunk[n++] = log->flush_list[--log->flush_n];
        pthread_mutex_unlock(&log->flush_mu);
        if (always)
            sl_syncpool_flush(log, chunk, n); /* the round's fdatasyncs overlap */
        else
            for (size_t i = 0; i < n; i++)
                sl_partition_flush(chunk[i], 0, NULL); /* failures stay on the partition */
        if (first)
            maybe_retain(log, &next_retention);
        pthread_mutex_lock(&log->flush_mu);
    }
    pthread_mutex_unlock(&log->flush_mu);
    return NULL;
}

/* ---- open and close ---------------------------------------------------- */

static int options_check(sl_log_options *o, sl_error *err)
{
    if (o->fsync != SL_FSYNC_ALWAYS && o->fsync != SL_FSYNC_INTERVAL && o->fsync != SL_FSYNC_NEVER)
        return sl_error_set(err, SL_EINVAL, "unknown fsync mode %d", (int)o->fsync);
    if (o->fsync_interval_ms == 0)
        o->fsync_interval_ms = 10;
    if (o->segment_bytes == 0)
        o->segment_bytes = (uint64_t)64 << 20;
    if (o->segment_bytes < SL_SEGMENT_MIN_BYTES || o->segment_bytes > SL_SEGMENT_MAX_BYTES)
        return sl_error_set(err, SL_EINVAL, "segment_bytes %llu is outside [%u, %llu]",
                            (unsigned long long)o->segment_bytes, SL_SEGMENT_MIN_BYTES,
                            (unsigned long long)SL_SEGMENT_MAX_BYTES);
    if (o->index_interval_bytes == 0)
        o->index_interval_bytes = 4096;
    return 0;
}

/* Creates dir/topics and takes dir/lock (one process per log). Returns 0,
 * or -1 with err. */
static int take_dir(sl_log *log, const char *dir, sl_error *err)
{
    log->dir = strdup(dir);
    log->topics_dir = sl_path_join(dir, "topics");
    char *lock_path = sl_path_join(dir, "lock");
    int rc = 0;
    if (!log->dir || !log->topics_dir || !lock_path) {
        rc = sl_error_set(err, SL_ENOMEM, "allocating the log for %s", dir);
    } else if (mkdir_p(log->topics_dir, SL_DATA_DIR_MODE(log->opt.data_mode), err) != 0) {
        rc = -1;
    } else {
        log->lock_fd =
            open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, SL_DATA_FILE_MODE(log->opt.data_mode));
        if (log->lock_fd < 0 || flock(log->lock_fd, LOCK_EX | LOCK_NB) != 0)
            rc = sl_error_set(err, SL_EIO, "locking %s: %s%s", lock_path, strerror(errno),
                              errno == EWOULDBLOCK ? " (another process has this log open)" : "");
    }
    free(lock_path);
    return rc;
}

/* Starts the sync pool (`fsync: always`) and the flusher threads. Returns
 * 0, or -1 with err (the threads started are stopped by sl_log_close). */
static int start_flushers(sl_log *log, sl_error *err)
{
    if (log->opt.fsync == SL_FSYNC_ALWAYS && sl_syncpool_start(log, err) != 0)
        return -1;
    int nthreads = log->opt.fsync == SL_FSYNC_ALWAYS ? SL_FLUSHERS : 1;
    int rc = 0;
    pthread_mutex_lock(&log->flush_mu); /* flushers read flushers[0] */
    for (int i = 0; i < nthreads && rc == 0; i++) {
        if (pthread_create(&log->flushers[i], NULL, flusher_main, log) != 0) {
            rc = sl_error_set(err, SL_EIO, "starting the flusher threads of %s", log->dir);
        } else {
            sl_thread_name(log->flushers[i], "sl-log-flush");
            log->nflushers++;
        }
    }
    pthread_mutex_unlock(&log->flush_mu);
    return rc;
}

sl_log *sl_log_open(const char *dir, const sl_log_options *opt, sl_error *err)
{
    pthread_condattr_t ca;
    sl_log *log = calloc(1, sizeof *log);
    if (!log) {
        sl_error_set(err, SL_ENOMEM, "allocating the log for %s", dir);
        return NULL;
    }
    log->lock_fd = -1;
    if (opt)
        log->opt = *opt;
    else
        sl_log_options_default(&log->opt);
    pthread_mutex_init(&log->topics_mu, NULL);
    pthread_mutex_init(&log->flush_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&log->flush_cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&log->disk_bytes, 0);
    if (options_check(&log->opt, err) != 0 || take_dir(log, dir, err) != 0 ||
        start_flushers(log, err) != 0) {
        sl_log_close(log);
        return NULL;
    }
    return log;
}

static void topic_free(sl_topic *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->nparts; i++)
        sl_partition_free(t->parts[i]);
    free(t->parts);
    free(t->name);
    free(t->dir);
    free(t);
}

void sl_log_close(sl_log *log)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->flush_mu);
    log->stop = 1;
    pthread_cond_broadcast(&log->flush_cv);
    pthread_mutex_unlock(&log->flush_mu);
    for (int i = 0; i < log->nflushers; i++)
        pthread_join(log->flushers[i], NULL);
    sl_syncpool_stop(log);
    for (sl_topic *t = log->topics; t; t = t->next)
        for (int i = 0; i < t->nparts; i++)
            sl_partition_close(t->parts[i]);
    sl_topic *t = log->topics;
    while (t) {
        sl_topic *next = t->next;
        topic_free(t);
        t = next;
    }
    if (log->lock_fd >= 0)
        close(log->lock_fd);
    free(log->flush_list);
    free(log->dir);
    free(log->topics_dir);
    pthread_cond_destroy(&log->flush_cv);
    pthread_mutex_destroy(&log->flush_mu);
    pthread_mutex_destroy(&log->topics_mu);
    free(log);
}

static sl_topic *topics_head(sl_log *log)
{
    pthread_mutex_lock(&log->topics_mu);
    sl_topic *t = log->topics;
    pthread_mutex_unlock(&log->topics_mu);
    return t;
}

int sl_log_sync(sl_log *log, sl_error *err)
{
    int rc = 0;
    sl_error e;
    for (sl_topic *t = topics_head(log); t; t = t->next)
        for (int i = 0; i < t->nparts; i++)
            if (sl_partition_flush(t->parts[i], 0, &e) != 0 && rc == 0) {
                rc = -1;
                if (err)
                    *err = e;
            }
    return rc;
}

uint64_t sl_log_disk_bytes(sl_log *log)
{
    return atomic_load(&log->disk_bytes);
}

sl_corruption_policy sl_log_corruption_policy(const sl_log *log)
{
    return log->opt.on_corruption;
}

const char *sl_log_dir(const sl_log *log)
{
    return log->dir;
}

int sl_log_enforce_retention(sl_log *log, sl_error *err)
{
    int total = 0, rc = 0;
    int64_t now = sl_wall_ms();
    for (sl_topic *t = topics_head(log); t; t = t->next)
        for (int i = 0; i < t->nparts; i++) {
            int n = sl_partition_retain(t->parts[i], now, err);
            if (n < 0)
                rc = -1;
            else
                total += n;
        }
    return rc ? -1 : total;
}

/* ---- topics ------------------------------------------------------------ */

/* Reads the partition count stored in dir/partitions: returns it, 0 when
 * the file does not exist, or -1 with err. */
static int meta_read(const char *dir, sl_error *err)
{
    char *path = sl_path_join(dir, "partitions");
    char buf[32], *end;
    if (!path)
        return sl_error_set(err, SL_ENOMEM, "reading topic %s", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(path);
        if (e == ENOENT)
            return 0;
        return sl_error_set(err, SL_EIO, "opening %s/partitions: %s", dir, strerror(e));
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    free(path);
    if (n < 0)
        return sl_error_set(err, SL_EIO, "reading %s/partitions: %s", dir, strerror(errno));
    buf[n] = '\0';
    long v = strtol(buf, &end, 10);
    if (end == buf || *end != '\n' || v < 1 || v > SL_MAX_PARTITIONS)
        return sl_error_set(err, SL_ECORRUPT, "%s/partitions does not hold a partition count", dir);
    return (int)v;
}

static int meta_write(const char *dir, int count, int file_mode, sl_error *err)
{
    char *tmp = sl_path_join(dir, "partitions.tmp");
    char *path = sl_path_join(dir, "partitions");
    char text[32];
    int rc = -1;
    if (!tmp || !path) {
        sl_error_set(err, SL_ENOMEM, "writing topic %s", dir);
        goto out;
    }
    int len = snprintf(text, sizeof text, "%d\n", count);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)file_mode);
    if (fd < 0) {
        sl_error_set(err, SL_EIO, "creating %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write(fd, text, (size_t)len) != len || fsync(fd) != 0) {
        sl_error_set(err, SL_EIO, "writing %s: %s", tmp, strerror(errno));
        close(fd);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        sl_error_set(err, SL_EIO, "renaming %s: %s", tmp, strerror(errno));
        goto out;
    }
    rc = fsync_dir_path(dir, err);
out:
    free(tmp);
    free(path);
    return rc;
}

/* Makes room in the flush list for n more partitions. Caller holds
 * topics_mu. */
static int flush_list_reserve(sl_log *log, size_t n, sl_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&log->flush_mu);
    if (log->total_parts + n > log->flush_cap) {
        size_t cap = log->total_parts + n;
        sl_partition **l = realloc(log->flush_list, cap * sizeof *l);
        if (l) {
            log->flush_list = l;
            log->flush_cap = cap;
        } else {
            rc = sl_error_set(err, SL_ENOMEM, "growing the flush list of %s", log->dir);
        }
    }
    pthread_mutex_unlock(&log->flush_mu);
    return rc;
}

static sl_topic *topic_open(sl_log *log, const char *name, int partitions, sl_error *err)
{
    sl_topic *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(name)) || !(t->dir = sl_path_join(log->topics_dir, name))) {
        sl_error_set(err, SL_ENOMEM, "opening topic %s", name);
        topic_free(t);
        return NULL;
    }
    t->log = log;
    int stored = meta_read(t->dir, err);
    int created = 0;
    if (stored < 0)
        goto fail;
    if (stored == 0) {
        if (partitions <= 0) {
            sl_error_set(err, SL_ENOTFOUND, "topic %s does not exist in %s", name, log->dir);
            goto fail;
        }
        if (partitions > SL_MAX_PARTITIONS) {
            sl_error_set(err, SL_EINVAL, "topic %s: %d partitions is more than %d", name,
                         partitions, SL_MAX_PARTITIONS);
            goto fail;
        }
        if (mkdir_p(t->dir, SL_DATA_DIR_MODE(log->opt.data_mode), err) != 0)
            goto fail;
        stored = partitions;
        created = 1;
    }
    if (flush_list_reserve(log, (size_t)stored, err) != 0)
        goto fail;
    t->parts = calloc((size_t)stored, sizeof *t->parts);
    if (!t->parts) {
        sl_error_set(err, SL_ENOMEM, "opening topic %s", name);
        goto fail;
    }
    for (int i = 0; i < stored; i++) {
        t->parts[i] = sl_partition_open(log, t, i, err);
        if (!t->parts[i])
            goto fail;
        t->nparts = i + 1;
    }
    /* The count is written last: a topic without it was never created. */
    if (created && (meta_write(t->dir, stored, SL_DATA_FILE_MODE(log->opt.data_mode), err) != 0 ||
                    fsync_dir_path(log->topics_dir, err) != 0))
        goto fail;
    return t;
fail:
    for (int i = 0; i < t->nparts; i++)
        atomic_fetch_sub(&log->disk_bytes, t->parts[i]->bytes);
    topic_free(t);
    return NULL;
}

sl_topic *sl_log_topic(sl_log *log, const char *name, int partitions, sl_error *err)
{
    if (!name || !sl_valid_name(name)) {
        sl_error_set(err, SL_EINVAL, "bad topic name \"%s\": use 1-200 of [A-Za-z0-9._-]",
                     name ? name : "(null)");
        return NULL;
    }
    pthread_mutex_lock(&log->topics_mu);
    sl_topic *t = log->topics;
    while (t && strcmp(t->name, name) != 0)
        t = t->next;
    if (!t) {
        t = topic_open(log, name, partitions, err);
        if (t) {
            t->next = log->topics;
            log->topics = t;
            log->total_parts += (size_t)t->nparts;
        }
    }
    pthread_mutex_unlock(&log->topics_mu);
    return t;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sl_log_list_topics(sl_log *log, char ***names, size_t *n, sl_error *err)
{
    *names = NULL;
    *n = 0;
    size_t cap = 0;
    DIR *d = opendir(log->topics_dir);
    if (!d)
        return sl_error_set(err, SL_EIO, "reading directory %s: %s", log->topics_dir,
                            strerror(errno));
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (!sl_valid_name(de->d_name))
            continue;
        char *tdir = sl_path_join(log->topics_dir, de->d_name);
        if (!tdir) {
            rc = sl_error_set(err, SL_ENOMEM, "listing topics of %s", log->dir);
            break;
        }
        sl_error ignored;
        int count = meta_read(tdir, &ignored);
        free(tdir);
        if (count <= 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **l = realloc(*names, cap * sizeof *l);
            if (!l) {
                rc = sl_error_set(err, SL_ENOMEM, "listing topics of %s", log->dir);
                break;
            }
            *names = l;
        }
        if (!((*names)[*n] = strdup(de->d_name))) {
            rc = sl_error_set(err, SL_ENOMEM, "listing topics of %s", log->dir);
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (rc != 0) {
        sl_log_free_names(*names, *n);
        *names = NULL;
        *n = 0;
        return -1;
    }
    if (*n)
        qsort(*names, *n, sizeof **names, cmp_str);
    return 0;
}

void sl_log_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

const char *sl_topic_name(const sl_topic *t)
{
    return t->name;
}

int sl_topic_partition_count(const sl_topic *t)
{
    return t->nparts;
}

sl_partition *sl_topic_partition(sl_topic *t, int index)
{
    if (index < 0 || index >= t->nparts)
        return NULL;
    return t->parts[index];
}
