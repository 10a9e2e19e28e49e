/* Unit tests for the event log (core/log*.c): append and read, segment
 * roll, index lookups by offset and time, recovery from torn, corrupt and
 * zero-filled tails and from an index ahead of its data, committed offsets,
 * retention, max_disk_bytes, group commit callbacks and waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "log_internal.h"
#include "record.h"

/* ---- helpers ------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup_dir(void **state)
{
    char *dir = strdup("/tmp/sluice_test_log_XXXXXX");
    if (!dir || !mkdtemp(dir))
        return -1;
    *state = dir;
    return 0;
}

static int teardown_dir(void **state)
{
    nftw(*state, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(*state);
    return 0;
}

static sl_log_options opts(sl_fsync_mode mode, uint64_t segment_bytes)
{
    sl_log_options o;
    sl_log_options_default(&o);
    o.fsync = mode;
    if (segment_bytes)
        o.segment_bytes = segment_bytes;
    return o;
}

static sl_log *open_log(const char *dir, const sl_log_options *o)
{
    sl_error err;
    sl_log *log = sl_log_open(dir, o, &err);
    if (!log)
        fail_msg("sl_log_open: %s", err.msg);
    return log;
}

static sl_partition *part(sl_log *log, const char *topic, int nparts, int index)
{
    sl_error err;
    sl_topic *t = sl_log_topic(log, topic, nparts, &err);
    if (!t)
        fail_msg("sl_log_topic: %s", err.msg);
    sl_partition *p = sl_topic_partition(t, index);
    assert_non_null(p);
    return p;
}

/* The value of record i: deterministic, of varying length. */
static size_t value_of(int64_t i, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "value-%lld-", (long long)i);
    size_t len = (size_t)n + (size_t)(i % 37);
    for (size_t k = (size_t)n; k < len && k < cap; k++)
        buf[k] = (char)('a' + (i + (int64_t)k) % 26);
    return len;
}

static int64_t append_i(sl_partition *p, int64_t i, int64_t ts)
{
    char key[32], val[128];
    sl_error err;
    int klen = snprintf(key, sizeof key, "k%lld", (long long)i);
    sl_header h = {"idx", 3, key, (size_t)klen};
    sl_record r = {.key = key,
                   .key_len = (size_t)klen,
                   .headers = &h,
                   .n_headers = 1,
                   .value = val,
                   .value_len = value_of(i, val, sizeof val),
                   .timestamp_ms = ts};
    int64_t off = sl_partition_append(p, &r, &err);
    if (off < 0)
        fail_msg("append %lld: %s", (long long)i, err.msg);
    return off;
}

static void check_record(const sl_record *r, int64_t i)
{
    char key[32], val[128];
    int klen = snprintf(key, sizeof key, "k%lld", (long long)i);
    size_t vlen = value_of(i, val, sizeof val);
    assert_int_equal(r->offset, i);
    assert_int_equal(r->key_len, (size_t)klen);
    assert_memory_equal(r->key, key, (size_t)klen);
    assert_int_equal(r->key[klen], '\0');
    assert_int_equal(r->value_len, vlen);
    assert_memory_equal(r->value, val, vlen);
    assert_int_equal(r->value[vlen], '\0');
    assert_int_equal(r->n_headers, 1);
    assert_int_equal(r->headers[0].name_len, 3);
    assert_string_equal(r->headers[0].name, "idx");
    assert_string_equal(r->headers[0].value, key);
}

/* Reads every record from `from` to the durable offset, checking each,
 * in batches of `batch`; returns the number read. */
static int64_t read_all(sl_partition *p, int64_t from, size_t batch)
{
    sl_batch b;
    sl_error err;
    int64_t next = from, n = 0;
    sl_batch_init(&b);
    for (;;) {
        int got = sl_partition_read(p, next, batch, 1 << 20, &b, &err);
        if (got < 0)
            fail_msg("read at %lld: %s", (long long)next, err.msg);
        if (got == 0)
            break;
        for (int i = 0; i < got; i++)
            check_record(&b.records[i], next + i);
        next = b.next_offset;
        n += got;
    }
    sl_batch_free(&b);
    return n;
}

static size_t count_files(const char *dir, const char *suffix)
{
    size_t n = 0, sl = strlen(suffix);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > sl && strcmp(de->d_name + l - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static char *part_dir(const char *dir, const char *topic, int index)
{
    char *s;
    assert_true(asprintf(&s, "%s/topics/%s/%d", dir, topic, index) > 0);
    return s;
}

static char *last_segment(const char *pdir)
{
    DIR *d = opendir(pdir);
    char best[256] = "";
    struct dirent *de;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strlen(de->d_name) == 24 && strcmp(de->d_name + 20, ".log") == 0 &&
            strcmp(de->d_name, best) > 0)
            memcpy(best, de->d_name, 25);
    closedir(d);
    char *s;
    assert_true(asprintf(&s, "%s/%s", pdir, best) > 0);
    return s;
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* ---- tests --------------------------------------------------------------- */

static void test_append_read(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 0);
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "orders", 3, 1);
    sl_error err;
    assert_int_equal(sl_partition_end_offset(p), 0);
    for (int64_t i = 0; i < 100; i++)
        assert_int_equal(append_i(p, i, 0), i);
    assert_int_equal(sl_partition_wait_durable(p, 99, 5000, &err), 0);
    assert_true(sl_partition_durable_offset(p) >= 100);
    assert_int_equal(read_all(p, 0, 7), 100);
    assert_int_equal(read_all(p, 42, 1000), 58);

    /* max_bytes limits a batch, but never below one record */
    sl_batch b;
    sl_batch_init(&b);
    assert_int_equal(sl_partition_read(p, 10, 100, 1, &b, &err), 1);
    assert_int_equal(b.next_offset, 11);
    assert_int_equal(sl_partition_read(p, 100, 100, 1 << 20, &b, &err), 0);
    assert_int_equal(b.next_offset, 100);
    sl_batch_free(&b);

    /* a record without key or headers reads back with empty NUL-terminated strings */
    sl_record r = {.value = "v", .value_len = 1};
    int64_t off = sl_partition_append(p, &r, &err);
    assert_int_equal(off, 100);
    assert_int_equal(sl_partition_wait_durable(p, off, -1, &err), 0);
    sl_batch_init(&b);
    assert_int_equal(sl_partition_read(p, 100, 10, 1 << 20, &b, &err), 1);
    assert_int_equal(b.records[0].key_len, 0);
    assert_string_equal(b.records[0].key, "");
    assert_null(b.records[0].headers);
    assert_string_equal(b.records[0].value, "v");
    assert_true(b.records[0].timestamp_ms > 1600000000000LL);
    sl_batch_free(&b);

    /* waiting for an offset never appended is an error, not a hang */
    assert_int_equal(sl_partition_wait_durable(p, 500, 10, &err), -1);
    assert_int_equal(err.code, SL_EINVAL);
    assert_true(sl_log_disk_bytes(log) > 100 * SL_RECORD_MIN_BYTES);
    assert_string_equal(sl_log_dir(log), dir);
    sl_log_close(log);

    /* everything is there after reopen, and appends continue */
    log = open_log(dir, &o);
    p = part(log, "orders", 0, 1);
    assert_int_equal(sl_partition_end_offset(p), 101);
    assert_int_equal(sl_partition_durable_offset(p), 101);
    sl_batch_init(&b);
    assert_int_equal(sl_partition_read(p, 0, 1000, 1 << 20, &b, &err), 101);
    for (int64_t i = 0; i < 100; i++)
        check_record(&b.records[i], i);
    assert_string_equal(b.records[100].value, "v");
    sl_batch_free(&b);
    sl_log_close(log);
}

static void test_topics(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_NEVER, 0);
    sl_error err;
    sl_log *log = open_log(dir, &o);
    assert_null(sl_log_topic(log, "missing", 0, &err));
    assert_int_equal(err.code, SL_ENOTFOUND);
    assert_null(sl_log_topic(log, "bad/name", 2, &err));
    assert_int_equal(err.code, SL_EINVAL);
    assert_null(sl_log_topic(log, "..", 2, &err));
    sl_topic *b = sl_log_topic(log, "beta", 2, &err);
    sl_topic *a = sl_log_topic(log, "alpha.dlq", 4, &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_equal(sl_log_topic(log, "beta", 9, &err), b);
    assert_string_equal(sl_topic_name(a), "alpha.dlq");
    assert_int_equal(sl_topic_partition_count(a), 4);
    assert_null(sl_topic_partition(a, 4));
    assert_null(sl_topic_partition(a, -1));
    char **names;
    size_t n;
    assert_int_equal(sl_log_list_topics(log, &names, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "alpha.dlq");
    assert_string_equal(names[1], "beta");
    sl_log_free_names(names, n);
    sl_log_close(log);

    log = open_log(dir, &o);
    b = sl_log_topic(log, "beta", 7, &err); /* the stored count wins */
    assert_non_null(b);
    assert_int_equal(sl_topic_partition_count(b), 2);
    /* a second process cannot open the same log */
    assert_null(sl_log_open(dir, &o, &err));
    assert_int_equal(err.code, SL_EIO);
    sl_log_close(log);
}

/* Resident kB of the mapping that starts at addr (/proc/self/smaps), or -1
 * when there is none. */
static long mapping_rss_kb(const void *addr)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    long rss = -1;
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            in = lo == (uintptr_t)addr;
            continue;
        }
        if (in && sscanf(line, "Rss: %ld kB", &rss) == 1)
            break;
    }
    fclose(f);
    return rss;
}

/* A long log does not stay in the process's resident memory: a segment's
 * pages are dropped from the mapping when a roll seals it, and again when a
 * reader reads a sealed segment to its end; the records are all there. */
static void test_sealed_segments_leave_resident_memory(void **state)
{
    sl_log_options o = opts(SL_FSYNC_NEVER, 256 * 1024);
    sl_log *log = open_log(*state, &o);
    sl_partition *p = part(log, "t", 1, 0);
    int64_t n = 0;
    while (p->nseg < 5)
        append_i(p, n++, 0);
    assert_true(mapping_rss_kb(p->segs[p->nseg - 1]->map) > 0);
    for (size_t k = 0; k + 1 < p->nseg; k++)
        assert_int_equal(mapping_rss_kb(p->segs[k]->map), 0);

    assert_int_equal(read_all(p, 0, 64), n);
    for (size_t k = 0; k + 1 < p->nseg; k++)
        assert_int_equal(mapping_rss_kb(p->segs[k]->map), 0);
    sl_log_close(log);

    log = open_log(*state, &o); /* reopened: everything still reads back */
    p = part(log, "t", 1, 0);
    assert_int_equal(read_all(p, 0, 1000), n);
    sl_log_close(log);
}

static void test_segment_roll(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 4096);
    o.index_interval_bytes = 256;
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "roll", 1, 0);
    sl_error err;
    for (int64_t i = 0; i < 600; i++)
        assert_int_equal(append_i(p, i, 0), i);
    assert_int_equal(sl_partition_wait_durable(p, 599, 5000, &err), 0);
    char *pdir = part_dir(dir, "roll", 0);
    size_t nseg = count_files(pdir, ".log");
    assert_true(nseg >= 10);
    assert_int_equal(count_files(pdir, ".index"), nseg);
    /* read across every boundary, with batches that straddle them */
    assert_int_equal(read_all(p, 0, 13), 600);
    for (int64_t from = 0; from < 600; from += 37)
        assert_int_equal(read_all(p, from, 50), 600 - from);
    sl_log_close(log);

    /* sealed segments were trimmed to their records */
    log = open_log(dir, &o);
    p = part(log, "roll", 0, 0);
    assert_int_equal(sl_partition_end_offset(p), 600);
    assert_int_equal(read_all(p, 0, 64), 600);
    /* a record larger than segment_bytes still fits, in its own segment */
    char *big = malloc(10000);
    assert_non_null(big);
    memset(big, 'x', 10000);
    sl_record r = {.value = big, .value_len = 10000};
    assert_int_equal(sl_partition_append(p, &r, &err), 600);
    assert_int_equal(sl_partition_append(p, &r, &err), 601);
    assert_int_equal(append_i(p, 602, 0), 602);
    assert_int_equal(sl_partition_wait_durable(p, 602, 5000, &err), 0);
    sl_batch b;
    sl_batch_init(&b);
    assert_int_equal(sl_partition_read(p, 600, 10, 1 << 20, &b, &err), 3);
    assert_int_equal(b.records[1].value_len, 10000);
    assert_memory_equal(b.records[1].value, big, 10000);
    check_record(&b.records[2], 602);
    sl_batch_free(&b);
    free(big);
    sl_log_close(log);
    log = open_log(dir, &o);
    p = part(log, "roll", 0, 0);
    assert_int_equal(sl_partition_end_offset(p), 603);
    sl_batch_init(&b);
    assert_int_equal(sl_partition_read(p, 0, 600, 1 << 30, &b, &err), 600);
    for (int64_t i = 0; i < 600; i++)
        check_record(&b.records[i], i);
    assert_int_equal(sl_partition_read(p, 600, 600, 1 << 30, &b, &err), 3);
    assert_int_equal(b.records[0].value_len, 10000);
    assert_int_equal(b.records[1].value_len, 10000);
    check_record(&b.records[2], 602);
    sl_batch_free(&b);
    sl_log_close(log);
    free(pdir);
}

static void test_offset_and_time_lookup(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_NEVER, 8192);
    o.index_interval_bytes = 300;
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "times", 1, 0);
    /* timestamps 1000, 1010, ... with every 10th record 15 ms in the past */
    for (int64_t i = 0; i < 1000; i++) {
        int64_t ts = 1000 + i * 10 - (i % 10 == 9 ? 15 : 0);
        append_i(p, i, ts);
    }
    for (int pass = 0; pass < 2; pass++) {
        sl_batch b;
        sl_error err;
        sl_batch_init(&b);
        for (int64_t off = 0; off < 1000; off += 1) {
            assert_int_equal(sl_partition_read(p, off, 1, 1, &b, &err), 1);
            check_record(&b.records[0], off);
        }
        sl_batch_free(&b);
        for (int64_t t = 900; t < 11100; t += 3) {
            int64_t want = 1000; /* first offset with timestamp >= t */
            for (int64_t i = 0; i < 1000; i++)
                if (1000 + i * 10 - (i % 10 == 9 ? 15 : 0) >= t) {
                    want = i;
                    break;
                }
            assert_int_equal(sl_partition_offset_for_time(p, t), want);
        }
        sl_log_close(log);
        log = open_log(dir, &o);
        p = part(log, "times", 0, 0);
    }
    sl_log_close(log);
}

/* Appends n records to a fresh topic with the given options, then closes. */
static void fill(const char *dir, const char *topic, sl_log_options *o, int64_t n)
{
    sl_log *log = open_log(dir, o);
    sl_partition *p = part(log, topic, 1, 0);
    for (int64_t i = 0; i < n; i++)
        append_i(p, i, 0);
    sl_log_close(log);
}

/* Reopens and checks that exactly n records (0..n-1) are there, then that
 * appending continues at n and survives another reopen. */
static void expect_records(const char *dir, const char *topic, sl_log_options *o, int64_t n)
{
    sl_log *log = open_log(dir, o);
    sl_partition *p = part(log, topic, 0, 0);
    assert_int_equal(sl_partition_end_offset(p), n);
    assert_int_equal(read_all(p, 0, 100), n);
    assert_int_equal(append_i(p, n, 0), n);
    sl_log_close(log);
    log = open_log(dir, o);
    p = part(log, topic, 0, 0);
    assert_int_equal(sl_partition_end_offset(p), n + 1);
    assert_int_equal(read_all(p, 0, 100), n + 1);
    sl_log_close(log);
}

static void test_recover_truncated(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 16384);
    o.index_interval_bytes = 512;
    fill(dir, "t", &o, 300);
    char *pdir = part_dir(dir, "t", 0);
    char *seg = last_segment(pdir);
    off_t size = file_size(seg);
    assert_int_equal(truncate(seg, size - 7), 0); /* mid last record */
    expect_records(dir, "t", &o, 299);
    free(seg);
    free(pdir);
}

static void test_recover_flipped_byte(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 16384);
    fill(dir, "t", &o, 300);
    char *pdir = part_dir(dir, "t", 0);
    char *seg = last_segment(pdir);
    off_t size = file_size(seg);
    int fd = open(seg, O_RDWR);
    unsigned char c;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, size - 3), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, size - 3), 1);
    close(fd);
    expect_records(dir, "t", &o, 299);
    free(seg);
    free(pdir);
}

static void test_recover_zero_tail_and_garbage(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 1 << 20);
    fill(dir, "t", &o, 200);
    char *pdir = part_dir(dir, "t", 0);
    char *seg = last_segment(pdir);
    /* a zero-filled preallocated tail, as after a crash */
    assert_int_equal(truncate(seg, 1 << 20), 0);
    expect_records(dir, "t", &o, 200);
    /* garbage after the last record is cut, and never read */
    off_t size = file_size(seg);
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    char junk[300];
    memset(junk, 0xA5, sizeof junk);
    assert_int_equal(pwrite(fd, junk, sizeof junk, size), (ssize_t)sizeof junk);
    close(fd);
    expect_records(dir, "t", &o, 201);
    free(seg);
    free(pdir);
}

static void test_recover_index_ahead(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 1 << 20);
    o.index_interval_bytes = 128;
    fill(dir, "t", &o, 1000);
    char *pdir = part_dir(dir, "t", 0);
    char *seg = last_segment(pdir);
    off_t size = file_size(seg);
    /* cut the data in half: most index entries now point past it */
    assert_int_equal(truncate(seg, size / 2), 0);
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "t", 0, 0);
    int64_t end = sl_partition_end_offset(p);
    assert_true(end > 300 && end < 700);
    assert_int_equal(read_all(p, 0, 100), end);
    assert_int_equal(read_all(p, end - 3, 100), 3);
    sl_log_close(log);
    expect_records(dir, "t", &o, end);

    /* an index full of garbage is dropped and rebuilt */
    char *idx;
    assert_true(asprintf(&idx, "%.*s.index", (int)(strlen(seg) - 4), seg) > 0);
    int fd = open(idx, O_RDWR);
    assert_true(fd >= 0);
    char junk[4096];
    memset(junk, 0x3C, sizeof junk);
    assert_int_equal(pwrite(fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
    close(fd);
    expect_records(dir, "t", &o, end + 1);
    free(idx);
    free(seg);
    free(pdir);
}

static int64_t read_skipping(sl_partition *p, int64_t *first, int64_t *next);

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A sealed segment whose last record is torn no longer meets the next one:
 * the later segments are kept (their records may have been acknowledged)
 * and the torn record is a damaged range readers are told about. */
static void test_recover_gap_between_segments(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 4096);
    fill(dir, "t", &o, 400);
    char *pdir = part_dir(dir, "t", 0);
    char *names[256];
    size_t n = 0;
    DIR *d = opendir(pdir);
    struct dirent *de;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL && n < 256)
        if (strlen(de->d_name) == 24 && strcmp(de->d_name + 20, ".log") == 0)
            names[n++] = strdup(de->d_name);
    closedir(d);
    assert_true(n >= 5);
    qsort(names, n, sizeof *names, cmp_str);
    char *seg;
    assert_true(asprintf(&seg, "%s/%s", pdir, names[2]) > 0);
    assert_int_equal(truncate(seg, file_size(seg) - 5), 0);
    int64_t next_base = strtoll(names[3], NULL, 10);
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "t", 0, 0);
    assert_int_equal(sl_partition_end_offset(p), 400);
    int64_t first, next;
    assert_int_equal(read_skipping(p, &first, &next), 399);
    assert_int_equal(first, next_base - 1);
    assert_int_equal(next, next_base);
    sl_log_close(log);
    assert_int_equal(count_files(pdir, ".log"), n);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(seg);
    free(pdir);
}

/* Creates the empty segment files (data and index) of base in pdir. */
static void touch_segment(const char *pdir, int64_t base)
{
    const char *ext[] = {"log", "index"};
    for (int i = 0; i < 2; i++) {
        char *path;
        assert_true(asprintf(&path, "%s/%020" PRId64 ".%s", pdir, base, ext[i]) > 0);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        close(fd);
        free(path);
    }
}

/* What a power cut leaves when a flush's directory fsync made durable the
 * name of a segment that a roll created during that flush, before the next
 * flush synced the end of its predecessor: the predecessor ends early and
 * the new segment is empty. No record after the gap exists (none was
 * acknowledged): recovery removes the empty segments, the log has no
 * unreadable range and appends go on where the records end. */
static void test_recover_empty_segment_after_torn_one(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 4096);
    fill(dir, "t", &o, 100);
    char *pdir = part_dir(dir, "t", 0);
    char *seg = last_segment(pdir);
    int64_t last_base = strtoll(strrchr(seg, '/') + 1, NULL, 10);
    assert_true(last_base > 0 && last_base < 99);
    /* the end of the last segment never synced, its successor created */
    assert_int_equal(truncate(seg, file_size(seg) - 7), 0);
    touch_segment(pdir, 100);
    expect_records(dir, "t", &o, 99);
    char *gone;
    assert_true(asprintf(&gone, "%s/%020d.log", pdir, 100) > 0);
    assert_int_equal(access(gone, F_OK), -1);
    free(gone);

    /* a segment never synced at all (empty) followed by an empty one: the
     * later one goes, the empty one continues at its base */
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "t", 0, 0);
    while (sl_partition_end_offset(p) < 400)
        append_i(p, sl_partition_end_offset(p), 0);
    sl_log_close(log);
    free(seg);
    seg = last_segment(pdir);
    int64_t base = strtoll(strrchr(seg, '/') + 1, NULL, 10);
    assert_int_equal(truncate(seg, 0), 0);
    touch_segment(pdir, base + 20);
    expect_records(dir, "t", &o, base);
    free(seg);
    free(pdir);
}

/* Flips one byte, `into` bytes into the record with offset k of segment
 * file seg (found by walking its records). */
static void flip_in_record(const char *seg, int64_t k, size_t into)
{
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    off_t size = file_size(seg);
    unsigned char *buf = malloc((size_t)size);
    assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
    size_t pos = 0;
    sl_record_view v;
    while (sl_record_decode(buf + pos, (size_t)size - pos, &v) == SL_REC_OK && v.offset != k)
        pos += v.size;
    assert_int_equal(v.offset, k);
    unsigned char c = buf[pos + into] ^ 0x5A;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)(pos + into)), 1);
    free(buf);
    close(fd);
}

/* Reads the whole partition as a worker with `skip` would: on SL_ECORRUPT
 * asks for the damage and goes on after it. Returns the records read;
 * first and next get the one damaged range met (-1 when none). */
static int64_t read_skipping(sl_partition *p, int64_t *first, int64_t *next)
{
    sl_batch b;
    sl_error err;
    int64_t off = 0, n = 0;
    *first = *next = -1;
    sl_batch_init(&b);
    for (;;) {
        int got = sl_partition_read(p, off, 64, 1 << 20, &b, &err);
        if (got < 0) {
            sl_damage d;
            assert_int_equal(err.code, SL_ECORRUPT);
            assert_int_equal(sl_partition_damage(p, off, &d, &err), 1);
            assert_int_equal(*first, -1); /* one range only */
            assert_true(d.n_bytes > 0 && d.to_byte > d.from_byte);
            assert_non_null(strstr(d.segment, ".log"));
            free(d.bytes);
            *first = d.first_offset;
            *next = off = d.next_offset;
            continue;
        }
        if (got == 0)
            break;
        for (int i = 0; i < got; i++)
            check_record(&b.records[i], off + i);
        off = b.next_offset;
        n += got;
    }
    sl_batch_free(&b);
    return n;
}

/* One damaged record (byte `into` of the k-th record of segment number
 * segno flipped; k = -1: its last record; segno = -1: the last segment):
 * recovery keeps everything after it, a read of k fails with SL_ECORRUPT,
 * sl_partition_damage names exactly [k, k+1), every other record reads,
 * and appends go on at 300. */
static void corrupt_one(const char *dir, int segno, int64_t k, size_t into)
{
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 4096);
    o.index_interval_bytes = 512;
    fill(dir, "t", &o, 300);
    char *pdir = part_dir(dir, "t", 0);
    char *names[64];
    size_t n = 0;
    DIR *dd = opendir(pdir);
    struct dirent *de;
    assert_non_null(dd);
    while ((de = readdir(dd)) != NULL && n < 64)
        if (strlen(de->d_name) == 24 && strcmp(de->d_name + 20, ".log") == 0)
            names[n++] = strdup(de->d_name);
    closedir(dd);
    qsort(names, n, sizeof *names, cmp_str);
    int idx = segno < 0 ? (int)n - 1 : segno;
    char *seg;
    assert_true(asprintf(&seg, "%s/%s", pdir, names[idx]) > 0);
    int64_t base = strtoll(names[idx], NULL, 10);
    if (k < 0) /* its last record */
        k = (idx + 1 < (int)n ? strtoll(names[idx + 1], NULL, 10) : 300) - 1;
    else
        k += base;
    flip_in_record(seg, k, into);

    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "t", 0, 0);
    assert_int_equal(sl_partition_end_offset(p), 300);
    int64_t first, next;
    assert_int_equal(read_skipping(p, &first, &next), 299);
    assert_int_equal(first, k);
    assert_int_equal(next, k + 1);
    assert_int_equal(append_i(p, 300, 0), 300);
    sl_log_close(log);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(seg);
    free(pdir);
}

static void test_corrupt_records(void **state)
{
    const char *dir = *state;
    char sub[512];
    /* (segment, record, byte): middle, start and end of sealed segments,
     * the start and middle of the last one; length, checksum and payload
     * bytes */
    static const struct {
        int seg;
        int64_t k;
        size_t into;
    } cases[] = {{0, 5, 20}, {2, 0, 1},   {2, 0, 5},  {1, -1, 30},
                 {0, -1, 2}, {-1, 0, 12}, {-1, 1, 40}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(sub, sizeof sub, "%s/c%zu", dir, i);
        assert_int_equal(mkdir(sub, 0700), 0);
        corrupt_one(sub, cases[i].seg, cases[i].k, cases[i].into);
    }
}

static void test_committed_offsets(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 0);
    sl_error err;
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "c", 2, 1);
    for (int64_t i = 0; i < 50; i++)
        append_i(p, i, 1000 + i);
    assert_int_equal(sl_partition_committed(p, "route-a"), -1);
    assert_int_equal(sl_partition_commit(p, "route-a", 17, &err), 0);
    assert_int_equal(sl_partition_commit(p, "route-a", 42, &err), 0);
    assert_int_equal(sl_partition_commit(p, "route_b", 7, &err), 0);
    assert_int_equal(sl_partition_commit(p, "bad/name", 7, &err), -1);
    assert_int_equal(err.code, SL_EINVAL);
    assert_int_equal(sl_partition_committed(p, "route-a"), 42);
    sl_log_close(log);
    log = open_log(dir, &o);
    p = part(log, "c", 0, 1);
    assert_int_equal(sl_partition_committed(p, "route-a"), 42);
    assert_int_equal(sl_partition_committed(p, "route_b"), 7);
    assert_int_equal(sl_partition_committed(p, "route-c"), -1);
    assert_int_equal(sl_partition_committed(part(log, "c", 0, 0), "route-a"), -1);
    sl_log_close(log);
}

/* A committed offset past the log's end (a worker in `fsync: never` read
 * and committed records that a power cut then took) is brought back to the
 * end at open, in its file too: the records appended after the restart
 * take those offsets and must be delivered. */
static void test_committed_offset_past_end_clamped(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_NEVER, 0);
    sl_error err;
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "c", 1, 0);
    for (int64_t i = 0; i < 5; i++)
        append_i(p, i, 1000 + i);
    assert_int_equal(sl_partition_commit(p, "route-a", 1277, &err), 0);
    assert_int_equal(sl_partition_commit(p, "route-b", 3, &err), 0);
    sl_log_close(log);

    log = open_log(dir, &o);
    p = part(log, "c", 0, 0);
    assert_int_equal(sl_partition_committed(p, "route-a"), 5);
    assert_int_equal(sl_partition_committed(p, "route-b"), 3);
    for (int64_t i = 5; i < 8; i++)
        append_i(p, i, 1000 + i);
    sl_log_close(log);

    /* reopened again without a commit: the file said 5, not 1277 */
    log = open_log(dir, &o);
    p = part(log, "c", 0, 0);
    assert_int_equal(sl_partition_committed(p, "route-a"), 5);
    assert_int_equal(read_all(p, 5, 16), 3);
    sl_log_close(log);
}

static void test_retention(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_NEVER, 4096);
    o.retention_bytes = 8192;
    sl_error err;
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "r", 1, 0);
    char *pdir = part_dir(dir, "r", 0);
    for (int64_t i = 0; i < 500; i++)
        append_i(p, i, 0);
    size_t nseg = count_files(pdir, ".log");
    assert_true(nseg > 10);
    /* a consumer at 0 holds everything */
    assert_int_equal(sl_partition_commit(p, "slow", 0, &err), 0);
    assert_int_equal(sl_partition_commit(p, "fast", 450, &err), 0);
    assert_int_equal(sl_log_enforce_retention(log, &err), 0);
    assert_int_equal(count_files(pdir, ".log"), nseg);
    assert_int_equal(sl_partition_start_offset(p), 0);
    /* once it moves, segments wholly below it go, and no more */
    assert_int_equal(sl_partition_commit(p, "slow", 200, &err), 0);
    uint64_t before = sl_log_disk_bytes(log);
    int deleted = sl_log_enforce_retention(log, &err);
    assert_true(deleted > 0);
    assert_int_equal(count_files(pdir, ".log"), nseg - (size_t)deleted);
    int64_t start = sl_partition_start_offset(p);
    assert_true(start > 0 && start <= 200);
    assert_true(sl_log_disk_bytes(log) < before);
    assert_int_equal(read_all(p, start, 50), 500 - start);
    sl_batch b;
    sl_batch_init(&b);
    assert_int_equal(sl_partition_read(p, 0, 1, 1, &b, &err), 1); /* from < start reads start */
    assert_int_equal(b.records[0].offset, start);
    sl_batch_free(&b);
    /* with everyone past the end, the size limit applies; the active segment stays */
    assert_int_equal(sl_partition_commit(p, "slow", 500, &err), 0);
    assert_int_equal(sl_partition_commit(p, "fast", 500, &err), 0);
    assert_true(sl_log_enforce_retention(log, &err) > 0);
    size_t left = count_files(pdir, ".log");
    assert_true(left >= 1 && left <= 3);
    assert_int_equal(sl_partition_end_offset(p), 500);
    sl_log_close(log);
    log = open_log(dir, &o);
    p = part(log, "r", 0, 0);
    assert_int_equal(sl_partition_end_offset(p), 500);
    start = sl_partition_start_offset(p);
    assert_int_equal(read_all(p, start, 50), 500 - start);
    sl_log_close(log);
    free(pdir);
}

static void test_retention_age(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_NEVER, 4096);
    o.retention_ms = 60000;
    sl_error err;
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "age", 1, 0);
    for (int64_t i = 0; i < 200; i++) /* old records: an hour ago */
        append_i(p, i, (int64_t)time(NULL) * 1000 - 3600 * 1000);
    for (int64_t i = 200; i < 400; i++)
        append_i(p, i, 0);
    assert_int_equal(sl_partition_commit(p, "r", 400, &err), 0);
    assert_true(sl_log_enforce_retention(log, &err) > 0);
    int64_t start = sl_partition_start_offset(p);
    assert_true(start > 100 && start <= 200);
    assert_int_equal(sl_log_enforce_retention(log, &err), 0);
    sl_log_close(log);
}

static void test_max_disk_bytes(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_NEVER, 4096);
    o.max_disk_bytes = 32768;
    o.retention_bytes = 4096;
    sl_error err;
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "full", 1, 0);
    assert_int_equal(sl_partition_commit(p, "r", 0, &err), 0);
    char val[100];
    memset(val, 'v', sizeof val);
    sl_record r = {.value = val, .value_len = sizeof val};
    int64_t n = 0;
    while (sl_partition_append(p, &r, &err) >= 0)
        n++;
    assert_int_equal(err.code, SL_EFULL);
    assert_true(n > 100 && n < 32768 / 100);
    assert_true(sl_log_disk_bytes(log) <= 32768);
    /* retention cannot free what the consumer has not committed */
    assert_int_equal(sl_log_enforce_retention(log, &err), 0);
    assert_int_equal(sl_partition_append(p, &r, &err), -1);
    assert_int_equal(err.code, SL_EFULL);
    /* once it commits, retention frees space and appends resume */
    assert_int_equal(sl_partition_commit(p, "r", n, &err), 0);
    assert_true(sl_log_enforce_retention(log, &err) > 0);
    assert_int_equal(sl_partition_append(p, &r, &err), n);
    sl_log_close(log);
}

/* ---- group commit ---------------------------------------------------------- */

typedef struct gc_state {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on every callback and fsync */
    int64_t fired;
    int64_t last[4]; /* last offset seen per partition, for order */
    int errors;
    double fsyncs;
    int gate_armed;   /* fsync callbacks block while set */
    int gate_blocked; /* flusher threads blocked in the gate */
} gc_state;

/* Waits (30 s at most) until *counter (guarded by st->mu) reaches want;
 * returns its value. */
static int64_t gc_wait_for(gc_state *st, const int64_t *counter, int64_t want)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    pthread_mutex_lock(&st->mu);
    while (*counter < want && pthread_cond_timedwait(&st->cv, &st->mu, &dl) == 0)
        ;
    int64_t v = *counter;
    pthread_mutex_unlock(&st->mu);
    return v;
}

typedef struct gc_cb_arg {
    gc_state *st;
    int part;
} gc_cb_arg;

static void gc_on_durable(void *arg, int64_t offset, const sl_error *err)
{
    gc_cb_arg *a = arg;
    pthread_mutex_lock(&a->st->mu);
    if (err)
        a->st->errors++;
    a->st->fired++;
    a->st->last[a->part] = offset;
    pthread_cond_broadcast(&a->st->cv);
    pthread_mutex_unlock(&a->st->mu);
}

static void gc_on_fsync(void *arg, double seconds)
{
    gc_state *st = arg;
    pthread_mutex_lock(&st->mu);
    st->fsyncs += 1;
    if (st->gate_armed) {
        st->gate_blocked++;
        pthread_cond_broadcast(&st->cv);
        while (st->gate_armed)
            pthread_cond_wait(&st->cv, &st->mu);
        st->gate_blocked--;
    }
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    assert_true(seconds >= 0);
}

typedef struct gc_thread {
    sl_topic *topic;
    gc_state *st;
    gc_cb_arg args[4];
    int id;
    int failures;
} gc_thread;

static void *gc_appender(void *arg)
{
    gc_thread *t = arg;
    sl_error err;
    for (int i = 0; i < 200; i++) {
        int pi = (i + t->id) % 4;
        sl_partition *p = sl_topic_partition(t->topic, pi);
        char val[64];
        sl_record r = {.value = val,
                       .value_len = (size_t)snprintf(val, sizeof val, "%d-%d", t->id, i)};
        int64_t off = sl_partition_append(p, &r, &err);
        if (off < 0 || sl_partition_on_durable(p, off, gc_on_durable, &t->args[pi], &err) != 0) {
            t->failures++;
            continue;
        }
        if (i % 3 == 0 && sl_partition_wait_durable(p, off, 10000, &err) != 0)
            t->failures++;
        else if (i % 3 == 0 && sl_partition_durable_offset(p) <= off)
            t->failures++;
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    const char *dir = *state;
    gc_state st = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 65536);
    o.on_fsync = gc_on_fsync;
    o.on_fsync_arg = &st;
    sl_error err;
    sl_log *log = open_log(dir, &o);
    sl_topic *topic = sl_log_topic(log, "gc", 4, &err);
    assert_non_null(topic);
    gc_thread th[8];
    pthread_t tid[8];
    for (int i = 0; i < 8; i++) {
        th[i] = (gc_thread){.topic = topic, .st = &st, .id = i};
        for (int k = 0; k < 4; k++)
            th[i].args[k] = (gc_cb_arg){&st, k};
        assert_int_equal(pthread_create(&tid[i], NULL, gc_appender, &th[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(tid[i], NULL);
        assert_int_equal(th[i].failures, 0);
    }
    for (int k = 0; k < 4; k++) {
        sl_partition *p = sl_topic_partition(topic, k);
        assert_int_equal(sl_partition_end_offset(p), 400);
        assert_int_equal(sl_partition_wait_durable(p, 399, 10000, &err), 0);
    }
    /* callbacks fire once the flusher is done with the batch that made them durable */
    assert_int_equal(gc_wait_for(&st, &st.fired, 1600), 1600);
    pthread_mutex_lock(&st.mu);
    assert_int_equal(st.errors, 0);
    /* group commit: 8 threads, 1600 records, far fewer fdatasyncs */
    assert_true(st.fsyncs >= 1 && st.fsyncs < 1600);
    pthread_mutex_unlock(&st.mu);
    /* already durable: the callback runs inline */
    gc_cb_arg a = {&st, 0};
    assert_int_equal(
        sl_partition_on_durable(sl_topic_partition(topic, 0), 5, gc_on_durable, &a, &err), 0);
    pthread_mutex_lock(&st.mu);
    assert_int_equal(st.fired, 1601);
    pthread_mutex_unlock(&st.mu);
    /* a callback for an offset never appended is refused */
    assert_int_equal(
        sl_partition_on_durable(sl_topic_partition(topic, 0), 400, gc_on_durable, &a, &err), -1);
    assert_int_equal(sl_log_sync(log, &err), 0);
    sl_log_close(log);
}

/* Group commit, decided without timing: the one flusher is held inside its
 * first fdatasync's callback while 99 more records are appended; once let go,
 * a single further fdatasync makes all 99 durable. */
static void test_group_commit_one_fsync_covers_queued_appends(void **state)
{
    const char *dir = *state;
    gc_state st = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    st.gate_armed = 1;
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 0);
    o.on_fsync = gc_on_fsync;
    o.on_fsync_arg = &st;
    sl_error err;
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "gq", 1, 0);
    append_i(p, 0, 0);
    int blocked;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    pthread_mutex_lock(&st.mu);
    while (st.gate_blocked < 1 && pthread_cond_timedwait(&st.cv, &st.mu, &dl) == 0)
        ;
    blocked = st.gate_blocked;
    pthread_mutex_unlock(&st.mu);
    assert_int_equal(blocked, 1); /* the flusher is inside its first fdatasync's callback */
    for (int64_t i = 1; i < 100; i++)
        append_i(p, i, 0);
    assert_true(sl_partition_durable_offset(p) <= 1);
    pthread_mutex_lock(&st.mu);
    st.gate_armed = 0;
    pthread_cond_broadcast(&st.cv);
    pthread_mutex_unlock(&st.mu);
    assert_int_equal(sl_partition_wait_durable(p, 99, 30000, &err), 0);
    pthread_mutex_lock(&st.mu);
    assert_true(st.fsyncs == 2);
    pthread_mutex_unlock(&st.mu);
    sl_log_close(log);
}

/* Callbacks run by the flusher come in offset order; those registered for
 * an offset already durable run inline on the registering thread. */
typedef struct order_state {
    pthread_mutex_t mu;
    pthread_t main;
    int64_t last_flusher;
    int64_t fired;
    int bad;
} order_state;

static void order_cb(void *arg, int64_t offset, const sl_error *err)
{
    order_state *s = arg;
    pthread_mutex_lock(&s->mu);
    if (err)
        s->bad++;
    if (!pthread_equal(pthread_self(), s->main)) {
        if (offset <= s->last_flusher)
            s->bad++;
        s->last_flusher = offset;
    }
    s->fired++;
    pthread_mutex_unlock(&s->mu);
}

static void test_callbacks_in_order(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 0);
    sl_error err;
    order_state s = {.mu = PTHREAD_MUTEX_INITIALIZER, .main = pthread_self(), .last_flusher = -1};
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "order", 1, 0);
    int64_t offs[300];
    for (int i = 0; i < 300; i++)
        offs[i] = append_i(p, i, 0);
    /* registered out of order, within a batch that is not durable yet */
    int reg = 0;
    for (int i = 299; i >= 0; i--)
        if (sl_partition_on_durable(p, offs[i], order_cb, &s, &err) == 0)
            reg++;
    assert_int_equal(sl_partition_wait_durable(p, 299, 10000, &err), 0);
    sl_log_close(log); /* runs whatever is left */
    assert_int_equal(reg, 300);
    assert_int_equal(s.fired, 300);
    assert_int_equal(s.bad, 0);
}

/* ---- wait_readable ---------------------------------------------------------- */

typedef struct waiter {
    sl_partition *p;
    int64_t offset;
    int timeout;
    int result;
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    w->result = sl_partition_wait_readable(w->p, w->offset, w->timeout);
    return NULL;
}

/* Waits (30 s at most) until a thread is inside sl_partition_wait_readable
 * on p: the barrier the tests below need, instead of a sleep. */
static void wait_for_reader(sl_partition *p)
{
    for (int i = 0; i < 30000; i++) {
        pthread_mutex_lock(&p->mu);
        int n = p->n_waiting;
        pthread_mutex_unlock(&p->mu);
        if (n > 0)
            return;
        usleep(1000);
    }
    fail_msg("no reader started waiting within 30 s");
}

static void test_wait_readable(void **state)
{
    const char *dir = *state;
    sl_log_options o = opts(SL_FSYNC_ALWAYS, 0);
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "w", 1, 0);
    pthread_t t;

    /* a timeout returns 0 */
    assert_int_equal(sl_partition_wait_readable(p, 0, 20), 0);

    /* an append (made durable by the flusher) wakes the reader */
    waiter w = {p, 0, 10000, -7};
    assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
    wait_for_reader(p);
    append_i(p, 0, 0);
    pthread_join(t, NULL);
    assert_int_equal(w.result, 1);
    assert_int_equal(sl_partition_wait_readable(p, 0, 0), 1);

    /* sl_partition_wake releases it with 0, long before its timeout */
    w = (waiter){p, 1, 60000, -7};
    assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
    wait_for_reader(p);
    sl_partition_wake(p);
    pthread_join(t, NULL);
    assert_int_equal(w.result, 0);

    /* close releases it with -1 */
    w = (waiter){p, 1, -1, -7};
    assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
    wait_for_reader(p);
    sl_log_close(log);
    pthread_join(t, NULL);
    assert_int_equal(w.result, -1);
}

static void test_interval_mode(void **state)
{
    const char *dir = *state;
    gc_state st = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    sl_log_options o = opts(SL_FSYNC_INTERVAL, 0);
    o.fsync_interval_ms = 5;
    o.on_fsync = gc_on_fsync;
    o.on_fsync_arg = &st;
    sl_error err;
    sl_log *log = open_log(dir, &o);
    sl_partition *p = part(log, "iv", 1, 0);
    for (int64_t i = 0; i < 50; i++)
        append_i(p, i, 0);
    /* durable at append */
    assert_int_equal(sl_partition_durable_offset(p), 50);
    assert_int_equal(sl_partition_wait_durable(p, 49, 0, &err), 0);
    assert_int_equal(read_all(p, 0, 10), 50);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    pthread_mutex_lock(&st.mu);
    while (st.fsyncs < 1 && pthread_cond_timedwait(&st.cv, &st.mu, &dl) == 0)
        ;
    assert_true(st.fsyncs >= 1);
    pthread_mutex_unlock(&st.mu);
    sl_log_close(log);
    o.fsync = SL_FSYNC_NEVER;
    log = open_log(dir, &o);
    p = part(log, "iv", 0, 0);
    assert_int_equal(read_all(p, 0, 10), 50);
    sl_log_close(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_read, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_topics, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_segment_roll, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_sealed_segments_leave_resident_memory, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_offset_and_time_lookup, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_recover_truncated, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_recover_flipped_byte, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_recover_zero_tail_and_garbage, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_recover_index_ahead, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_recover_gap_between_segments, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_recover_empty_segment_after_torn_one, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_corrupt_records, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_committed_offsets, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_committed_offset_past_end_clamped, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_retention, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_retention_age, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_max_disk_bytes, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_group_commit, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_group_commit_one_fsync_covers_queued_appends,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_callbacks_in_order, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_wait_readable, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_interval_mode, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
