/* Crash test of the event log's custody: a child appends from several
 * threads with fsync: always and reports each acknowledged (durable) offset
 * through a pipe; the parent SIGKILLs it at a random moment, reopens the log
 * and checks that every acknowledged record is there byte for byte, that
 * offsets are contiguous and that every record read is intact. Repeated on
 * the same directory. Exit 0 when every iteration passed.
 * Usage: log_crash [iterations] [seed]   (SL_CRASH_SEED also sets the seed) */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define PARTITIONS 2
#define THREADS 6
#define MAX_VALUE 3000

typedef struct ack {
    int32_t part;
    int32_t tid;
    int32_t iter;
    int32_t pad;
    int64_t seq;
    int64_t offset;
} ack;

typedef struct expect {
    int32_t iter; /* -1: not acknowledged */
    int32_t tid;
    int64_t seq;
} expect;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

/* The deterministic key and value of record (iter, tid, seq). */
static size_t make_key(char *buf, size_t cap, int iter, int tid, int64_t seq)
{
    return (size_t)snprintf(buf, cap, "i%d-t%d-s%" PRId64, iter, tid, seq);
}

static size_t make_value(char *buf, uint64_t seed, int iter, int tid, int64_t seq)
{
    uint64_t h = mix(seed ^ mix((uint64_t)iter << 40 ^ (uint64_t)tid << 32 ^ (uint64_t)seq));
    size_t len = 1 + (size_t)(h % MAX_VALUE);
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0)
            h = mix(h + i);
        buf[i] = (char)(h >> (8 * (i % 8)));
    }
    return len;
}

/* ---- child ------------------------------------------------------------- */

typedef struct child_ctx {
    sl_topic *topic;
    int fd;
    int iter;
    uint64_t seed;
} child_ctx;

typedef struct child_thread {
    child_ctx *ctx;
    int tid;
} child_thread;

static void send_ack(int fd, const ack *a)
{
    /* sizeof(ack) < PIPE_BUF, so concurrent writes do not interleave */
    if (write(fd, a, sizeof *a) != (ssize_t)sizeof *a)
        _exit(3);
}

typedef struct cb_ack {
    ack a;
    int fd;
} cb_ack;

static void on_durable(void *arg, int64_t offset, const sl_error *err)
{
    cb_ack *c = arg;
    if (err) {
        fprintf(stderr, "log_crash child: durability failed: %s\n", err->msg);
        _exit(2);
    }
    c->a.offset = offset;
    send_ack(c->fd, &c->a);
    free(c);
}

static void *child_appender(void *arg)
{
    child_thread *t = arg;
    child_ctx *ctx = t->ctx;
    char key[64], val[MAX_VALUE];
    sl_error err;
    for (int64_t seq = 0;; seq++) {
        int part = (int)((seq + t->tid) % PARTITIONS);
        sl_partition *p = sl_topic_partition(ctx->topic, part);
        char sbuf[24];
        int slen = snprintf(sbuf, sizeof sbuf, "%" PRId64, seq);
        sl_header h = {"seq", 3, sbuf, (size_t)slen};
        sl_record r = {.key = key,
                       .key_len = make_key(key, sizeof key, ctx->iter, t->tid, seq),
                       .headers = &h,
                       .n_headers = 1,
                       .value = val,
                       .value_len = make_value(val, ctx->seed, ctx->iter, t->tid, seq)};
        int64_t off = sl_partition_append(p, &r, &err);
        if (off < 0) {
            fprintf(stderr, "log_crash child: append: %s\n", err.msg);
            _exit(2);
        }
        ack a = {part, t->tid, ctx->iter, 0, seq, off};
        if (t->tid == 0) { /* this thread acknowledges through callbacks */
            cb_ack *c = malloc(sizeof *c);
            if (!c)
                _exit(2);
            c->a = a;
            c->fd = ctx->fd;
            if (sl_partition_on_durable(p, off, on_durable, c, &err) != 0) {
                fprintf(stderr, "log_crash child: on_durable: %s\n", err.msg);
                _exit(2);
            }
            continue;
        }
        if (sl_partition_wait_durable(p, off, -1, &err) != 0) {
            fprintf(stderr, "log_crash child: wait_durable: %s\n", err.msg);
            _exit(2);
        }
        send_ack(ctx->fd, &a);
    }
    return NULL;
}

static void child_main(const char *dir, int fd, int iter, uint64_t seed)
{
    sl_log_options o;
    sl_error err;
    sl_log_options_default(&o);
    o.fsync = SL_FSYNC_ALWAYS;
    o.segment_bytes = 256 << 10; /* rolls often */
    o.index_interval_bytes = 1024;
    sl_log *log = sl_log_open(dir, &o, &err);
    if (!log) {
        fprintf(stderr, "log_crash child: open: %s\n", err.msg);
        _exit(2);
    }
    child_ctx ctx = {sl_log_topic(log, "crash", PARTITIONS, &err), fd, iter, seed};
    if (!ctx.topic) {
        fprintf(stderr, "log_crash child: topic: %s\n", err.msg);
        _exit(2);
    }
    child_thread th[THREADS];
    pthread_t tid[THREADS];
    for (int i = 0; i < THREADS; i++) {
        th[i] = (child_thread){&ctx, i};
        if (pthread_create(&tid[i], NULL, child_appender, &th[i]) != 0)
            _exit(2);
    }
    for (;;)
        pause(); /* until SIGKILL */
}

/* ---- parent ------------------------------------------------------------ */

typedef struct part_state {
    expect *e;
    size_t cap;
    int64_t max_acked;
} part_state;

static int record_ack(part_state *ps, const ack *a)
{
    if (a->part < 0 || a->part >= PARTITIONS || a->offset < 0)
        return -1;
    part_state *s = &ps[a->part];
    if ((size_t)a->offset >= s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap <= (size_t)a->offset)
            cap *= 2;
        expect *n = realloc(s->e, cap * sizeof *n);
        if (!n)
            return -1;
        for (size_t i = s->cap; i < cap; i++)
            n[i].iter = -1;
        s->e = n;
        s->cap = cap;
    }
    s->e[a->offset] = (expect){a->iter, a->tid, a->seq};
    if (a->offset > s->max_acked)
        s->max_acked = a->offset;
    return 0;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Reads acks from fd until deadline_us (or EOF when deadline_us is 0). */
static int read_acks(int fd, part_state *ps, int64_t deadline_us, int64_t *count)
{
    ack a;
    size_t have = 0;
    char *buf = (char *)&a;
    for (;;) {
        int timeout = -1;
        if (deadline_us) {
            int64_t left = deadline_us - now_us();
            if (left <= 0)
                return 0;
            timeout = (int)(left / 1000) + 1;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            continue;
        ssize_t n = read(fd, buf + have, sizeof a - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return have == 0 ? 0 : -1;
        have += (size_t)n;
        if (have == sizeof a) {
            if (record_ack(ps, &a) != 0)
                return -1;
            (*count)++;
            have = 0;
        }
    }
}

/* Prints how many acknowledged offsets lie at or past from (never read),
 * and the first of them with the iteration that acknowledged it. */
static void report_unread_acks(const part_state *s, int pi, int64_t from)
{
    int64_t n = 0, first = -1;
    for (int64_t o = from; o >= 0 && (size_t)o < s->cap; o++) {
        if (s->e[o].iter < 0)
            continue;
        if (first < 0)
            first = o;
        n++;
    }
    if (n)
        printf("  partition %d: %" PRId64 " acknowledged offsets from %" PRId64
               " on were not read, the first %" PRId64 " (iteration %d)\n",
               pi, n, from, first, s->e[first].iter);
    else
        printf("  partition %d: no acknowledged offset from %" PRId64 " on\n", pi, from);
}

/* Reopens the log and checks it against what was acknowledged. Returns the
 * number of problems found. */
static int verify(const char *dir, part_state *ps, uint64_t seed, int64_t *records)
{
    sl_log_options o;
    sl_error err;
    int bad = 0;
    sl_log_options_default(&o);
    o.segment_bytes = 256 << 10;
    o.index_interval_bytes = 1024;
    sl_log *log = sl_log_open(dir, &o, &err);
    if (!log) {
        printf("  reopen failed: %s\n", err.msg);
        return 1;
    }
    sl_topic *t = sl_log_topic(log, "crash", 0, &err);
    if (!t) {
        sl_log_close(log);
        int acked = 0;
        for (int pi = 0; pi < PARTITIONS; pi++)
            acked |= ps[pi].max_acked >= 0;
        if (!acked && err.code == SL_ENOTFOUND) {
            /* killed while creating the topic: nothing was promised yet */
            printf("  killed before the topic was created, nothing acknowledged\n");
            return 0;
        }
        printf("  topic missing after restart: %s\n", err.msg);
        return 1;
    }
    char key[64], val[MAX_VALUE];
    sl_batch b;
    sl_batch_init(&b);
    *records = 0;
    for (int pi = 0; pi < PARTITIONS && bad < 10; pi++) {
        sl_partition *p = sl_topic_partition(t, pi);
        part_state *s = &ps[pi];
        int64_t end = sl_partition_end_offset(p);
        if (end <= s->max_acked) {
            printf("  partition %d: end %" PRId64 " but offset %" PRId64
                   " was acknowledged (in iteration %d)\n",
                   pi, end, s->max_acked, s->e[s->max_acked].iter);
            bad++;
        }
        int64_t next = 0;
        for (;;) {
            int n = sl_partition_read(p, next, 512, 4 << 20, &b, &err);
            if (n < 0) {
                printf("  partition %d: read at %" PRId64 ": %s\n", pi, next, err.msg);
                bad++;
                break;
            }
            if (n == 0)
                break;
            for (int i = 0; i < n && bad < 10; i++) {
                const sl_record *r = &b.records[i];
                int iter, tid;
                int64_t seq;
                if (r->offset != next + i) {
                    printf("  partition %d: offset %" PRId64 " where %" PRId64 " was due\n", pi,
                           r->offset, next + i);
                    bad++;
                    continue;
                }
                /* every record, acknowledged or not, is exactly what was appended */
                if (sscanf(r->key, "i%d-t%d-s%" SCNd64, &iter, &tid, &seq) != 3 ||
                    make_key(key, sizeof key, iter, tid, seq) != r->key_len ||
                    make_value(val, seed, iter, tid, seq) != r->value_len ||
                    memcmp(val, r->value, r->value_len) != 0 || r->n_headers != 1 ||
                    strtoll(r->headers[0].value, NULL, 10) != seq) {
                    printf("  partition %d offset %" PRId64 ": content differs from its key %s\n",
                           pi, r->offset, r->key);
                    bad++;
                    continue;
                }
                if ((size_t)r->offset < s->cap && s->e[r->offset].iter >= 0) {
                    const expect *e = &s->e[r->offset];
                    if (e->iter != iter || e->tid != tid || e->seq != seq) {
                        printf("  partition %d offset %" PRId64 ": acknowledged i%d-t%d-s%" PRId64
                               ", found %s\n",
                               pi, r->offset, e->iter, e->tid, e->seq, r->key);
                        bad++;
                    }
                }
            }
            next = b.next_offset;
            *records += n;
        }
        if (next != end) {
            printf("  partition %d: read up to %" PRId64 ", end is %" PRId64 "\n", pi, next, end);
            report_unread_acks(s, pi, next);
            bad++;
        }
    }
    sl_batch_free(&b);
    sl_log_close(log);
    return bad;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : 50;
    const char *env = getenv("SL_CRASH_SEED");
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0)
                    : env    ? strtoull(env, NULL, 0)
                             : 20240601u;
    char dir[] = "/tmp/sluice_log_crash_XXXXXX";
    part_state ps[PARTITIONS] = {{0}};
    int passed = 0, failed = 0;
    unsigned rng = (unsigned)seed;
    int64_t total_acks = 0, records = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!mkdtemp(dir)) {
        perror("log_crash: mkdtemp");
        return 1;
    }
    for (int i = 0; i < PARTITIONS; i++)
        ps[i].max_acked = -1;
    printf("log_crash: seed %" PRIu64 ", %d iterations, dir %s\n", seed, iterations, dir);
    for (int iter = 0; iter < iterations; iter++) {
        int fds[2];
        if (pipe(fds) != 0) {
            perror("log_crash: pipe");
            return 1;
        }
        /* mostly 20-220 ms of appends; sometimes a kill during open and recovery */
        int r = rand_r(&rng);
        int64_t delay_us = r % 8 == 0 ? rand_r(&rng) % 5000 : 20000 + rand_r(&rng) % 200000;
        pid_t pid = fork();
        if (pid < 0) {
            perror("log_crash: fork");
            return 1;
        }
        if (pid == 0) {
            close(fds[0]);
            child_main(dir, fds[1], iter, seed);
        }
        close(fds[1]);
        int64_t acks = 0;
        int bad = read_acks(fds[0], ps, now_us() + delay_us, &acks) != 0;
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        bad += read_acks(fds[0], ps, 0, &acks) != 0; /* acks still in the pipe */
        close(fds[0]);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
            printf("  child exited by itself (status %d) before the kill\n", status);
            bad++;
        }
        total_acks += acks;
        bad += verify(dir, ps, seed, &records);
        if (bad) {
            failed++;
            printf("log_crash: iteration %d FAILED (killed after %" PRId64 " us, %" PRId64
                   " acks)\n",
                   iter, delay_us, acks);
        } else {
            passed++;
        }
    }
    printf("log_crash: %" PRId64 " acknowledged records checked, %" PRId64
           " records in the log at the end\n",
           total_acks, records);
    printf("log_crash: %d passed, %d failed\n", passed, failed);
    for (int i = 0; i < PARTITIONS; i++)
        free(ps[i].e);
    if (failed == 0)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        printf("log_crash: data left in %s\n", dir);
    return failed ? 1 : 0;
}
