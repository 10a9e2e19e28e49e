/* Benchmark of the Idempotency-Key rebuild on start (http_server_idem_log.c):
 * a log of N records of 250 bytes over SPAN hours in 4 partitions, each with
 * its own key, then the rebuild into the default table (65,536 keys, 24 h
 * window) and into a table that holds every key (the cost of a full scan of
 * the window), with the heap the table takes per key.
 * Usage: bench_idem_rebuild [N [SPAN_HOURS]]   (default 2000000 24) */
#include <ftw.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_server_idem.h"
#include "http_server_idem_log.h"
#include "log.h"
#include "message.h"

#define PARTS 4
#define DAY_MS 86400000ull

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The 202 http_server gives, near enough in size. */
static void answer(void *arg, const char *id, int partition, int64_t offset, sl_idem_answer *out)
{
    char *buf = arg;
    int n = snprintf(buf, 256,
                     "{\"id\":\"%s\",\"route\":\"orders\",\"partition\":%d,\"offset\":%" PRId64 "}",
                     id, partition, offset);
    snprintf(buf + 256, 64, "/v1/messages/%s", id);
    *out = (sl_idem_answer){202, buf, (size_t)n, "application/json", buf + 256};
}

static void fill(sl_partition **parts, long n, uint64_t now, uint64_t span_ms)
{
    char value[250], id[SL_ID_LEN + 1], key[32];
    memset(value, 'x', sizeof value);
    for (long i = 0; i < n; i++) {
        sl_uuid7(id);
        int kl = snprintf(key, sizeof key, "key-%ld", i);
        sl_header h[2] = {{"message-id", 10, id, SL_ID_LEN},
                          {"idempotency-key", 15, key, (size_t)kl}};
        sl_record rec = {.timestamp_ms =
                             (int64_t)(now - span_ms + span_ms * (uint64_t)i / (uint64_t)n),
                         .headers = h,
                         .n_headers = 2,
                         .value = value,
                         .value_len = sizeof value};
        sl_error err;
        if (sl_partition_append(parts[i % PARTS], &rec, &err) < 0) {
            fprintf(stderr, "append: %s\n", err.msg);
            exit(1);
        }
    }
}

static void run(const char *label, sl_partition **parts, size_t cap, uint64_t now)
{
    char buf[320];
    size_t before = mallinfo2().uordblks;
    sl_idem *t = sl_idem_new(cap, DAY_MS);
    sl_idem_rebuild_stats st;
    double t0 = now_s();
    sl_idem_rebuild("orders", t, parts, PARTS, DAY_MS, now, 255, answer, buf, &st);
    double dt = now_s() - t0;
    size_t heap = mallinfo2().uordblks - before;
    printf("%-22s %9zu records read, %8zu keys held in %7.0f ms; table %6.1f MiB (%zu B/key)\n",
           label, st.scanned, st.held, dt * 1e3, (double)heap / 1048576.0,
           st.held ? heap / st.held : 0);
    sl_idem_free(t);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    double span_h = argc > 2 ? atof(argv[2]) : 24;
    char dir[] = "/tmp/sluice_bench_idem_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    sl_log_options o;
    sl_log_options_default(&o);
    o.fsync = SL_FSYNC_NEVER;
    sl_error err;
    sl_log *log = sl_log_open(dir, &o, &err);
    sl_topic *topic = log ? sl_log_topic(log, "orders", PARTS, &err) : NULL;
    if (!topic) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    sl_partition *parts[PARTS];
    for (int i = 0; i < PARTS; i++)
        parts[i] = sl_topic_partition(topic, i);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    double t0 = now_s();
    fill(parts, n, now, (uint64_t)(span_h * 3600e3));
    printf("log: %ld records of 250 B with keys over %.1f h in %d partitions (written in %.1f s)\n",
           n, span_h, PARTS, now_s() - t0);
    run("default (65,536 keys)", parts, 65536, now);
    run("every key of the window", parts, (size_t)n, now);
    sl_log_close(log);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
