/* Benchmark of the event log: append throughput of 250-byte records with
 * fsync: never (one thread) and fsync: always (64 threads, each waiting for
 * durability per record: group commit), fdatasync against msync on a mapped
 * segment, and the recovery time of a 1 GiB partition after SIGKILL.
 * Usage: bench_log [dir|- [sections]]   dir ("-": the default) is to a new directory under
 * /tmp; sections is a comma list of never,always,sync,recovery (default all). */
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define VALUE_BYTES 250
#define ALWAYS_THREADS 64
#define ALWAYS_SECONDS 5.0

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static sl_partition *open_partition(const char *dir, const sl_log_options *o, sl_log **log)
{
    sl_error err;
    *log = sl_log_open(dir, o, &err);
    if (!*log) {
        fprintf(stderr, "bench_log: open %s: %s\n", dir, err.msg);
        exit(1);
    }
    sl_topic *t = sl_log_topic(*log, "bench", 1, &err);
    if (!t) {
        fprintf(stderr, "bench_log: topic: %s\n", err.msg);
        exit(1);
    }
    return sl_topic_partition(t, 0);
}

static char value[VALUE_BYTES];

static void bench_never(const char *base)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/never", base);
    sl_log_options o;
    sl_log_options_default(&o);
    o.fsync = SL_FSYNC_NEVER;
    sl_log *log;
    sl_partition *p = open_partition(dir, &o, &log);
    sl_record r = {.value = value, .value_len = VALUE_BYTES};
    sl_error err;
    const int64_t n = 4000000;
    double t0 = now_s();
    for (int64_t i = 0; i < n; i++)
        if (sl_partition_append(p, &r, &err) < 0) {
            fprintf(stderr, "bench_log: append: %s\n", err.msg);
            exit(1);
        }
    double dt = now_s() - t0;
    sl_batch b;
    sl_batch_init(&b);
    int64_t next = 0, got = 0;
    double r0 = now_s();
    for (;;) {
        int k = sl_partition_read(p, next, 1000, 1 << 20, &b, &err);
        if (k <= 0)
            break;
        got += k;
        next = b.next_offset;
    }
    double rt = now_s() - r0;
    sl_batch_free(&b);
    double c0 = now_s();
    sl_log_close(log);
    double ct = now_s() - c0;
    printf("append fsync=never, 1 thread, %d-byte values: %" PRId64 " records in %.3f s = %.0f "
           "records/s (%.0f MB/s); close (final fdatasync) %.3f s\n",
           VALUE_BYTES, n, dt, (double)n / dt, (double)n * VALUE_BYTES / dt / 1e6, ct);
    printf("read (CRC checked, copied into batches of 1000), 1 thread: %" PRId64
           " records in %.3f s = %.0f records/s\n",
           got, rt, (double)got / rt);
    rm_rf(dir);
}

typedef struct always_ctx {
    sl_partition *p;
    volatile int stop;
    int64_t counts[ALWAYS_THREADS];
    pthread_mutex_t mu;
    int64_t fsyncs;
    double fsync_seconds;
} always_ctx;

typedef struct always_arg {
    always_ctx *ctx;
    int id;
} always_arg;

static void on_fsync(void *arg, double seconds)
{
    always_ctx *c = arg;
    pthread_mutex_lock(&c->mu);
    c->fsyncs++;
    c->fsync_seconds += seconds;
    pthread_mutex_unlock(&c->mu);
}

static void *always_thread(void *arg)
{
    always_arg *a = arg;
    always_ctx *c = a->ctx;
    sl_record r = {.value = value, .value_len = VALUE_BYTES};
    sl_error err;
    int64_t n = 0;
    while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
        int64_t off = sl_partition_append(c->p, &r, &err);
        if (off < 0 || sl_partition_wait_durable(c->p, off, -1, &err) != 0) {
            fprintf(stderr, "bench_log: %s\n", err.msg);
            exit(1);
        }
        n++;
    }
    c->counts[a->id] = n;
    return NULL;
}

static void bench_always(const char *base)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/always", base);
    static always_ctx c;
    c.stop = 0;
    pthread_mutex_init(&c.mu, NULL);
    sl_log_options o;
    sl_log_options_default(&o);
    o.fsync = SL_FSYNC_ALWAYS;
    o.on_fsync = on_fsync;
    o.on_fsync_arg = &c;
    sl_log *log;
    c.p = open_partition(dir, &o, &log);
    pthread_t tid[ALWAYS_THREADS];
    always_arg args[ALWAYS_THREADS];
    double t0 = now_s();
    for (int i = 0; i < ALWAYS_THREADS; i++) {
        args[i] = (always_arg){&c, i};
        pthread_create(&tid[i], NULL, always_thread, &args[i]);
    }
    usleep((useconds_t)(ALWAYS_SECONDS * 1e6));
    __atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
    int64_t total = 0;
    for (int i = 0; i < ALWAYS_THREADS; i++) {
        pthread_join(tid[i], NULL);
        total += c.counts[i];
    }
    double dt = now_s() - t0;
    pthread_mutex_lock(&c.mu);
    printf("append fsync=always, %d threads each waiting for durability per record: %" PRId64
           " records in %.3f s = %.0f records/s; %" PRId64 " fdatasyncs (mean %.0f us, %.1f "
           "records each)\n",
           ALWAYS_THREADS, total, dt, (double)total / dt, c.fsyncs,
           c.fsyncs ? c.fsync_seconds / (double)c.fsyncs * 1e6 : 0.0,
           c.fsyncs ? (double)total / (double)c.fsyncs : 0.0);
    pthread_mutex_unlock(&c.mu);
    sl_log_close(log);
    rm_rf(dir);
}

/* fdatasync of the whole file against msync(MS_SYNC) of the dirty range,
 * after 16 KiB written into a preallocated mapping. */
static void bench_sync_primitives(const char *base)
{
    char path[512];
    snprintf(path, sizeof path, "%s/sync.dat", base);
    const size_t size = 64 << 20, chunk = 16 << 10;
    const int n = 1000;
    for (int mode = 0; mode < 2; mode++) {
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || fallocate(fd, 0, 0, (off_t)size) != 0) {
            perror("bench_log: sync.dat");
            return;
        }
        fdatasync(fd);
        unsigned char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            perror("bench_log: mmap");
            close(fd);
            return;
        }
        double t0 = now_s();
        for (int i = 0; i < n; i++) {
            size_t pos = (size_t)i * chunk;
            memset(m + pos, 'a' + i % 26, chunk);
            if (mode == 0)
                fdatasync(fd);
            else
                msync(m + pos / 4096 * 4096, chunk + 4096, MS_SYNC);
        }
        double dt = now_s() - t0;
        printf("sync primitive %s after %zu KiB into a mapped segment: %.0f us each\n",
               mode == 0 ? "fdatasync(fd)" : "msync(MS_SYNC, dirty range)", chunk >> 10,
               dt / n * 1e6);
        munmap(m, size);
        close(fd);
        unlink(path);
    }
}

static void bench_recovery(const char *base)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/recovery", base);
    const uint64_t target = (uint64_t)1 << 30;
    int fds[2];
    if (pipe(fds) != 0) {
        perror("bench_log: pipe");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        sl_log_options o;
        sl_log_options_default(&o);
        o.fsync = SL_FSYNC_NEVER;
        sl_log *log;
        sl_partition *p = open_partition(dir, &o, &log);
        sl_record r = {.value = value, .value_len = VALUE_BYTES};
        sl_error err;
        while (sl_log_disk_bytes(log) < target)
            if (sl_partition_append(p, &r, &err) < 0)
                _exit(1);
        char c = 'k';
        if (write(fds[1], &c, 1) != 1)
            _exit(1);
        /* keep appending until killed, so the kill lands mid-write */
        for (;;)
            if (sl_partition_append(p, &r, &err) < 0)
                pause();
    }
    close(fds[1]);
    char c;
    if (read(fds[0], &c, 1) != 1) {
        fprintf(stderr, "bench_log: recovery child failed\n");
        return;
    }
    usleep(20000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(fds[0]);
    sl_log_options o;
    sl_log_options_default(&o);
    sl_log *log;
    double t0 = now_s();
    sl_partition *p = open_partition(dir, &o, &log);
    double dt = now_s() - t0;
    printf("recovery after SIGKILL of a %.2f GiB partition (%" PRId64
           " records, page cache warm): open %.3f s\n",
           (double)sl_log_disk_bytes(log) / (double)(1 << 30), sl_partition_end_offset(p), dt);
    sl_log_close(log);
    rm_rf(dir);
}

int main(int argc, char **argv)
{
    char base[512];
    int made = 0;
    if (argc > 1 && strcmp(argv[1], "-") != 0) {
        snprintf(base, sizeof base, "%s", argv[1]);
        mkdir(base, 0755);
    } else {
        snprintf(base, sizeof base, "/tmp/sluice_bench_log_XXXXXX");
        if (!mkdtemp(base)) {
            perror("bench_log: mkdtemp");
            return 1;
        }
        made = 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(value, 'v', sizeof value);
    printf("bench_log: data in %s\n", base);
    const char *only = argc > 2 ? argv[2] : "never,always,sync,recovery";
    if (strstr(only, "never"))
        bench_never(base);
    if (strstr(only, "always"))
        bench_always(base);
    if (strstr(only, "sync"))
        bench_sync_primitives(base);
    if (strstr(only, "recovery"))
        bench_recovery(base);
    if (made)
        rm_rf(base);
    return 0;
}
