/* libFuzzer target: log recovery. The input replaces the only segment of
 * a one-partition topic (its index removed); the log is opened (recovery
 * scans and truncates the segment) and every readable record read. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char seg[512];
static char idx[512];

/* Finds the .log under d (one level of partition dirs below the topic). */
static int find_segment(const char *d, int depth)
{
    DIR *dh = opendir(d);
    struct dirent *e;
    while (dh && (e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        size_t n = strlen(e->d_name);
        if (n > 4 && !strcmp(e->d_name + n - 4, ".log")) {
            snprintf(seg, sizeof seg, "%s", p);
            snprintf(idx, sizeof idx, "%.*s.index", (int)(strlen(p) - 4), p);
            closedir(dh);
            return 0;
        }
        if (depth < 4 && e->d_type == DT_DIR && find_segment(p, depth + 1) == 0) {
            closedir(dh);
            return 0;
        }
    }
    if (dh)
        closedir(dh);
    return -1;
}

static sl_log *open_log(void)
{
    sl_log_options o = {.fsync = SL_FSYNC_NEVER};
    sl_error err;
    return sl_log_open(dir, &o, &err);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/sluice-fuzz-log-%d", (int)getpid());
    sl_error err;
    sl_log *log = open_log();
    sl_topic *t = log ? sl_log_topic(log, "t", 1, &err) : NULL;
    sl_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1};
    if (!t || sl_partition_append(sl_topic_partition(t, 0), &r, &err) < 0)
        abort();
    sl_log_close(log);
    if (find_segment(dir, 0) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!seg[0])
        setup();
    FILE *f = fopen(seg, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    unlink(idx);
    sl_log *log = open_log();
    if (!log)
        return 0;
    sl_error err;
    sl_topic *t = sl_log_topic(log, "t", 1, &err);
    if (t) {
        sl_partition *p = sl_topic_partition(t, 0);
        sl_batch b = {0};
        int64_t from = 0;
        int n;
        while ((n = sl_partition_read(p, from, 64, 1 << 20, &b, &err)) > 0)
            from = b.next_offset;
        sl_batch_free(&b);
    }
    sl_log_close(log);
    return 0;
}
