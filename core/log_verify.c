/* `sluice log verify DIR`: an offline, read-only check of every record of
 * every segment of a data_dir (no lock taken, nothing recovered or cut).
 * Prints each damaged range with the resynchronisation the route workers
 * use (sl_record_resync), so what it reports is what they would quarantine. */
#include "log_verify.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "record.h"

typedef struct verify_state {
    FILE *out;
    const char *where; /* TOPIC/PARTITION */
    int64_t expect;    /* the next offset the partition should hold */
    size_t bad;
    uint64_t records;
    /* a segment's unreadable tail, reported with the next segment's base */
    char tail_seg[32];
    size_t tail_from, tail_to;
    const char *tail_why;
} verify_state;

static void report(verify_state *vs, const char *seg, int64_t first, int64_t next, size_t from,
                   size_t to, const char *why)
{
    fprintf(vs->out, "%s %s: offsets %" PRId64 "..%" PRId64 " unreadable, bytes %zu..%zu: %s\n",
            vs->where, seg, first, next - 1, from, to, why);
    vs->bad++;
}

/* Reports the unreadable tail left by the previous segment: up to base
 * when a segment follows (base >= 0), else as the partition's torn tail. */
static void flush_tail(verify_state *vs, int64_t base)
{
    if (base >= 0 && vs->expect < base)
        report(vs, vs->tail_seg[0] ? vs->tail_seg : "(between segments)", vs->expect, base,
               vs->tail_from, vs->tail_to, vs->tail_why ? vs->tail_why : "missing");
    else if (base < 0 && vs->tail_seg[0]) {
        fprintf(vs->out,
                "%s %s: bytes %zu..%zu from offset %" PRId64 " unreadable: %s; nothing readable "
                "follows (a torn tail: cut when the log opens)\n",
                vs->where, vs->tail_seg, vs->tail_from, vs->tail_to, vs->expect, vs->tail_why);
        vs->bad++;
    }
    vs->tail_seg[0] = '\0';
    vs->tail_why = NULL;
}

/* Past a zero length at pos: the end of the data when only zeros follow. */
static int zeros_to_end(const unsigned char *b, size_t pos, size_t size)
{
    for (size_t i = pos; i < size; i++)
        if (b[i])
            return 0;
    return 1;
}

/* Checks the records of one segment (base, bytes b[0..size)) in order. */
static void verify_segment(verify_state *vs, const char *name, int64_t base, const unsigned char *b,
                           size_t size)
{
    size_t pos = 0;
    flush_tail(vs, base);
    vs->expect = base;
    while (pos < size) {
        sl_record_view v;
        sl_rec_status st = sl_record_decode(b + pos, size - pos, &v);
        if (st == SL_REC_OK && v.offset == vs->expect) {
            pos += v.size;
            vs->expect++;
            vs->records++;
            continue;
        }
        if (st == SL_REC_END && zeros_to_end(b, pos, size))
            return;
        size_t at = sl_record_resync(b, size, pos + 1, vs->expect - 1, INT64_MAX, &v);
        const char *why = st == SL_REC_OK ? "offset out of sequence" : sl_rec_status_name(st);
        if (at == SIZE_MAX) {
            snprintf(vs->tail_seg, sizeof vs->tail_seg, "%s", name);
            vs->tail_from = pos;
            vs->tail_to = size;
            vs->tail_why = why;
            return;
        }
        report(vs, name, vs->expect, v.offset, pos, at, why);
        vs->expect = v.offset;
        pos = at;
    }
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the NNN.log names of dir, sorted (zero-padded: by offset). */
static size_t list_segments(const char *dir, char ***names)
{
    size_t n = 0, cap = 0;
    *names = NULL;
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len != 24 || strcmp(de->d_name + 20, ".log") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **g = realloc(*names, cap * sizeof *g);
            if (!g)
                break;
            *names = g;
        }
        if (((*names)[n] = strdup(de->d_name)) != NULL)
            n++;
    }
    if (d)
        closedir(d);
    if (n)
        qsort(*names, n, sizeof **names, cmp_name);
    return n;
}

/* Reads and checks one segment file; returns -1 when it cannot be read. */
static int verify_file(verify_state *vs, const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(vs->out, "%s %s: cannot read\n", vs->where, name);
        if (fd >= 0)
            close(fd);
        vs->bad++;
        return -1;
    }
    size_t size = (size_t)st.st_size;
    unsigned char *b = size ? malloc(size) : NULL;
    ssize_t got = b ? pread(fd, b, size, 0) : 0;
    close(fd);
    if (size && (!b || got != (ssize_t)size)) {
        fprintf(vs->out, "%s %s: cannot read\n", vs->where, name);
        free(b);
        vs->bad++;
        return -1;
    }
    verify_segment(vs, name, strtoll(name, NULL, 10), b, size);
    free(b);
    return 0;
}

/* Checks every segment of partition directory dir, in offset order. */
static void verify_partition(verify_state *vs, const char *dir)
{
    char **names;
    size_t n = list_segments(dir, &names);
    vs->expect = n ? strtoll(names[0], NULL, 10) : 0;
    for (size_t i = 0; i < n; i++) {
        verify_file(vs, dir, names[i]);
        free(names[i]);
    }
    flush_tail(vs, -1);
    free(names);
}

int sl_log_verify(const char *data_dir, FILE *out, size_t *bad, uint64_t *records)
{
    char topics[4096], where[512], pdir[4096];
    snprintf(topics, sizeof topics, "%s/topics", data_dir);
    verify_state vs = {.out = out, .tail_seg = ""};
    char **tnames = NULL;
    size_t nt = 0, cap = 0;
    DIR *d = opendir(topics);
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (nt == cap) {
            cap = cap ? cap * 2 : 16;
            char **g = realloc(tnames, cap * sizeof *g);
            if (!g)
                break;
            tnames = g;
        }
        if ((tnames[nt] = strdup(de->d_name)) != NULL)
            nt++;
    }
    closedir(d);
    if (nt)
        qsort(tnames, nt, sizeof *tnames, cmp_name);
    for (size_t t = 0; t < nt; t++) {
        for (int p = 0;; p++) {
            snprintf(pdir, sizeof pdir, "%s/%s/%d", topics, tnames[t], p);
            struct stat st;
            if (stat(pdir, &st) != 0 || !S_ISDIR(st.st_mode))
                break;
            snprintf(where, sizeof where, "%s/%d", tnames[t], p);
            vs.where = where;
            verify_partition(&vs, pdir);
        }
        free(tnames[t]);
    }
    free(tnames);
    *bad = vs.bad;
    *records = vs.records;
    return 0;
}
