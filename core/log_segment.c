/* Segment files of the event log: a preallocated data file mapped
 * MAP_SHARED (appends are a memcpy into it) and its sparse .index file, plus
 * the recovery scan that finds where the valid records of a segment end. */
#include "log_internal.h"
#include "logging.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

char *sl_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s)
        return NULL;
    memcpy(s, dir, a);
    s[a] = '/';
    memcpy(s + a + 1, name, b + 1);
    return s;
}

int sl_fsync_dir_fd(int fd, const char *path, sl_error *err)
{
    if (fsync(fd) != 0)
        return sl_error_set(err, SL_EIO, "fsync of directory %s: %s", path, strerror(errno));
    return 0;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void entry_encode(unsigned char *p, const sl_index_entry *e)
{
    put_u32(p, e->rel);
    put_u32(p + 4, e->pos);
    put_u32(p + 8, (uint32_t)(uint64_t)e->max_ts_before);
    put_u32(p + 12, (uint32_t)((uint64_t)e->max_ts_before >> 32));
}

static void entry_decode(const unsigned char *p, sl_index_entry *e)
{
    e->rel = get_u32(p);
    e->pos = get_u32(p + 4);
    e->max_ts_before = (int64_t)((uint64_t)get_u32(p + 8) | (uint64_t)get_u32(p + 12) << 32);
}

/* Reserves size bytes for fd, so that stores into the mapping never meet
 * a full disk (which would be a SIGBUS). */
static int preallocate(int fd, size_t size, const char *path, sl_error *err)
{
    if (fallocate(fd, 0, 0, (off_t)size) == 0)
        return 0;
    if (errno == EOPNOTSUPP || errno == ENOSYS) {
        if (ftruncate(fd, (off_t)size) == 0)
            return 0;
    }
    if (errno == ENOSPC || errno == EDQUOT)
        return sl_error_set(err, SL_EFULL, "preallocating %zu bytes for %s: %s", size, path,
                            strerror(errno));
    return sl_error_set(err, SL_EIO, "preallocating %zu bytes for %s: %s", size, path,
                        strerror(errno));
}

static sl_segment *segment_new(const char *dir, int64_t base, sl_error *err)
{
    char name[40];
    sl_segment *s = calloc(1, sizeof *s);
    if (!s) {
        sl_error_set(err, SL_ENOMEM, "allocating a segment in %s", dir);
        return NULL;
    }
    s->base = base;
    s->next_offset = base;
    s->fd = -1;
    s->idx_fd = -1;
    s->max_ts = INT64_MIN;
    atomic_init(&s->refs, 1);
    snprintf(name, sizeof name, "%020" PRId64 ".log", base);
    s->path = sl_path_join(dir, name);
    snprintf(name, sizeof name, "%020" PRId64 ".index", base);
    s->idx_path = sl_path_join(dir, name);
    if (!s->path || !s->idx_path) {
        sl_error_set(err, SL_ENOMEM, "allocating a segment in %s", dir);
        sl_segment_unref(s);
        return NULL;
    }
    return s;
}

static int segment_map(sl_segment *s, size_t size, sl_error *err)
{
    s->map = NULL;
    s->map_size = size;
    if (size == 0)
        return 0;
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (m == MAP_FAILED) {
        s->map_size = 0;
        return sl_error_set(err, SL_EIO, "mmap of %zu bytes of %s: %s", size, s->path,
                            strerror(errno));
    }
    s->map = m;
    return 0;
}

/* Creates an empty segment starting at base in dir, preallocated and mapped
 * to size bytes, with an empty index. Returns NULL with err on failure
 * (SL_EFULL when the disk is full), leaving no file behind. */
sl_segment *sl_segment_create(const char *dir, int64_t base, size_t size, int file_mode,
                              sl_error *err)
{
    sl_segment *s = segment_new(dir, base, err);
    if (!s)
        return NULL;
    s->fd = open(s->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)file_mode);
    if (s->fd < 0) {
        sl_error_set(err, SL_EIO, "creating segment %s: %s", s->path, strerror(errno));
        goto fail;
    }
    s->idx_fd = open(s->idx_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)file_mode);
    if (s->idx_fd < 0) {
        sl_error_set(err, SL_EIO, "creating index %s: %s", s->idx_path, strerror(errno));
        goto fail;
    }
    if (preallocate(s->fd, size, s->path, err) != 0 || segment_map(s, size, err) != 0)
        goto fail;
    return s;
fail:
    unlink(s->path);
    unlink(s->idx_path);
    sl_segment_unref(s);
    return NULL;
}

/* Adds an index entry for the record at offset, starting at pos, to memory
 * and to the index file. Returns -1 when memory runs out (the index is then
 * only sparser; nothing else changes). Caller holds the partition mutex. */
int sl_segment_add_index(sl_segment *s, int64_t offset, size_t pos)
{
    if (s->idx_n == s->idx_cap) {
        size_t cap = s->idx_cap ? s->idx_cap * 2 : 64;
        sl_index_entry *n = realloc(s->idx, cap * sizeof *n);
        if (!n)
            return -1;
        s->idx = n;
        s->idx_cap = cap;
    }
    sl_index_entry *e = &s->idx[s->idx_n++];
    unsigned char buf[SL_INDEX_ENTRY_BYTES];
    e->rel = (uint32_t)(offset - s->base);
    e->pos = (uint32_t)pos;
    e->max_ts_before = s->max_ts;
    s->last_idx_pos = pos;
    entry_encode(buf, e);
    /* A failed write leaves a hole that recovery detects and rebuilds. */
    (void)!pwrite(s->idx_fd, buf, sizeof buf, (off_t)((s->idx_n - 1) * SL_INDEX_ENTRY_BYTES));
    return 0;
}

/* Reads the index file and keeps its longest plausible prefix: entries
 * strictly increasing in offset and position, inside the data, the first at
 * offset 0. Returns the number kept or -1 (err) on a read error. */
static long index_read(sl_segment *s, size_t data_size, sl_error *err)
{
    struct stat st;
    if (fstat(s->idx_fd, &st) != 0)
        return sl_error_set(err, SL_EIO, "stat of %s: %s", s->idx_path, strerror(errno));
    size_t n_raw = (size_t)st.st_size / SL_INDEX_ENTRY_BYTES;
    if (n_raw == 0)
        return 0;
    unsigned char *raw = malloc(n_raw * SL_INDEX_ENTRY_BYTES);
    s->idx = calloc(n_raw, sizeof *s->idx);
    if (!raw || !s->idx) {
        free(raw);
        return sl_error_set(err, SL_ENOMEM, "reading index %s", s->idx_path);
    }
    s->idx_cap = n_raw;
    ssize_t got = pread(s->idx_fd, raw, n_raw * SL_INDEX_ENTRY_BYTES, 0);
    if (got < 0) {
        free(raw);
        return sl_error_set(err, SL_EIO, "reading index %s: %s", s->idx_path, strerror(errno));
    }
    n_raw = (size_t)got / SL_INDEX_ENTRY_BYTES;
    size_t n = 0;
    for (; n < n_raw; n++) {
        sl_index_entry e;
        entry_decode(raw + n * SL_INDEX_ENTRY_BYTES, &e);
        if (e.pos >= data_size)
            break;
        if (n == 0 && (e.rel != 0 || e.pos != 0))
            break;
        if (n > 0 && (e.rel <= s->idx[n - 1].rel || e.pos <= s->idx[n - 1].pos ||
                      e.max_ts_before < s->idx[n - 1].max_ts_before))
            break;
        s->idx[n] = e;
    }
    free(raw);
    return (long)n;
}

/* Returns the start of the first 4 KiB block after pos that holds only
 * zeros (the preallocated, never written part of a segment), or size. A
 * resynchronisation never looks past it, so a torn tail costs a scan of the
 * written bytes, not of the whole preallocated file. */
static size_t written_end(const unsigned char *m, size_t pos, size_t size)
{
    for (size_t blk = (pos / 4096 + 1) * 4096; blk + 4096 <= size; blk += 4096) {
        size_t i = 0;
        while (i < 4096 && m[blk + i] == 0)
            i++;
        if (i == 4096)
            return blk;
    }
    return size;
}

/* Past a record that does not decode at pos: finds the next good record
 * of the segment (offset past the expected one, at most one record per
 * SL_RECORD_MIN_BYTES skipped, before the written end: a record whose
 * payload holds a whole zeroed 4 KiB block can hide the records after it,
 * which are then cut as a torn tail). A good record after the damage means the
 * damage is corruption, not a torn tail: it is reported and the scan goes on
 * from there (the index gets an entry at that record, so readers of later
 * offsets never meet the damage). Returns the position to go on from, or
 * SIZE_MAX when nothing good follows (a torn tail, cut by activation). */
static size_t skip_damage(sl_segment *s, size_t pos, sl_rec_status st, sl_record_view *v)
{
    if (st == SL_REC_END)
        return SIZE_MAX;
    size_t end = written_end(s->map, pos, s->map_size);
    int64_t below = s->next_offset + 1 + (int64_t)((end - pos) / SL_RECORD_MIN_BYTES);
    size_t at = sl_record_resync(s->map, end, pos + 1, s->next_offset - 1, below, v);
    if (at == SIZE_MAX) {
        sl_warn("log",
                "segment %s: %s at byte %zu (offset %" PRId64
                "): nothing readable follows in the segment (a torn tail is cut)",
                s->path, sl_rec_status_name(st), pos, s->next_offset);
        return SIZE_MAX;
    }
    sl_warn("log",
            "segment %s: corrupt records at offsets %" PRId64 "..%" PRId64
            " (bytes %zu..%zu): %s; they are skipped when read",
            s->path, s->next_offset, v->offset - 1, pos, at, sl_rec_status_name(st));
    s->next_offset = v->offset;
    sl_segment_add_index(s, v->offset, at);
    return at;
}

/* Checks records one by one from pos (the record at pos has offset
 * s->next_offset), adding index entries every interval bytes, past
 * corrupt ranges, up to the end of the good records. Returns that end. */
static size_t scan_records(sl_segment *s, size_t pos, uint32_t interval)
{
    if (!s->map) /* an empty file is not mapped: no record (found by the fuzzer) */
        return pos;
    for (;;) {
        sl_record_view v;
        sl_rec_status st = sl_record_decode(s->map + pos, s->map_size - pos, &v);
        if (st != SL_REC_OK || v.offset != s->next_offset) {
            size_t at = skip_damage(s, pos, st == SL_REC_OK ? SL_REC_BADLEN : st, &v);
            if (at == SIZE_MAX)
                return pos;
            pos = at;
        } else if (s->idx_n == 0 || pos - s->last_idx_pos >= interval) {
            sl_segment_add_index(s, v.offset, pos);
        }
        if (v.timestamp_ms > s->max_ts)
            s->max_ts = v.timestamp_ms;
        pos += v.size;
        s->next_offset++;
    }
}

/* Opens the existing segment at base in dir and finds its valid end: the
 * index is validated (entries that do not point at a good record with the
 * right offset are dropped), then records are checked one by one from the
 * last good index entry, re-adding index entries, until one is missing or
 * torn with nothing good after it. A damaged range followed by good records
 * is corruption, not a torn write: it is logged and kept (readers skip
 * it). The data past the end is left as it is (sl_segment_activate cuts it). The segment comes back
 * sealed, mapped read-write over its current file size. Returns NULL with err on an I/O or memory
 * error. */
/* Opens s's data and index files and maps the data over its file size.
 * Returns 0, or -1 with err. */
static int segment_open_files(sl_segment *s, int file_mode, sl_error *err)
{
    struct stat st;
    s->fd = open(s->path, O_RDWR | O_CLOEXEC);
    if (s->fd < 0)
        return sl_error_set(err, SL_EIO, "opening segment %s: %s", s->path, strerror(errno));
    s->idx_fd = open(s->idx_path, O_RDWR | O_CREAT | O_CLOEXEC, (mode_t)file_mode);
    if (s->idx_fd < 0)
        return sl_error_set(err, SL_EIO, "opening index %s: %s", s->idx_path, strerror(errno));
    if (fstat(s->fd, &st) != 0)
        return sl_error_set(err, SL_EIO, "stat of %s: %s", s->path, strerror(errno));
    if ((uint64_t)st.st_size > SL_SEGMENT_MAX_BYTES + SL_RECORD_MAX_BYTES)
        return sl_error_set(err, SL_ECORRUPT, "segment %s is %lld bytes, more than the maximum",
                            s->path, (long long)st.st_size);
    return segment_map(s, (size_t)st.st_size, err);
}

/* Reads s's index and keeps the entries up to the last one that points at
 * a good record with the right offset (the index may run ahead of the data
 * after a crash), cutting the index file to them. Returns 0, or -1 with
 * err. */
static int index_load_valid(sl_segment *s, sl_error *err)
{
    long n = index_read(s, s->map_size, err);
    if (n < 0)
        return -1;
    while (n > 0) {
        sl_record_view v;
        const sl_index_entry *e = &s->idx[n - 1];
        if (sl_record_decode(s->map + e->pos, s->map_size - e->pos, &v) == SL_REC_OK &&
            v.offset == s->base + (int64_t)e->rel)
            break;
        n--;
    }
    s->idx_n = (size_t)n;
    if (ftruncate(s->idx_fd, (off_t)(s->idx_n * SL_INDEX_ENTRY_BYTES)) != 0)
        return sl_error_set(err, SL_EIO, "truncating index %s: %s", s->idx_path, strerror(errno));
    return 0;
}

sl_segment *sl_segment_load(const char *dir, int64_t base, uint32_t interval, int file_mode,
                            sl_error *err)
{
    sl_segment *s = segment_new(dir, base, err);
    if (!s)
        return NULL;
    if (segment_open_files(s, file_mode, err) != 0 || index_load_valid(s, err) != 0) {
        sl_segment_unref(s);
        return NULL;
    }
    size_t pos = 0;
    if (s->idx_n > 0) {
        const sl_index_entry *last = &s->idx[s->idx_n - 1];
        pos = last->pos;
        s->next_offset = base + (int64_t)last->rel;
        s->max_ts = last->max_ts_before;
        s->last_idx_pos = pos;
    }
    pos = scan_records(s, pos, interval);
    s->write_pos = s->readable_pos = s->synced_pos = pos;
    s->sealed = 1;
    s->idx_synced = 1;
    return s;
}

/* Makes a loaded segment the active one: cuts everything past its valid
 * records (so that no stale byte can ever be taken for a record), then
 * preallocates and maps it to at least size bytes and makes the result
 * durable. Returns -1 with err on an I/O error. */
int sl_segment_activate(sl_segment *s, size_t size, sl_error *err)
{
    if (s->map)
        munmap(s->map, s->map_size);
    s->map = NULL;
    if (s->write_pos < s->map_size && ftruncate(s->fd, (off_t)s->write_pos) != 0)
        return sl_error_set(err, SL_EIO, "cutting segment %s at %zu: %s", s->path, s->write_pos,
                            strerror(errno));
    if (size < s->write_pos)
        size = s->write_pos;
    if (preallocate(s->fd, size, s->path, err) != 0 || segment_map(s, size, err) != 0)
        return -1;
    if (fdatasync(s->fd) != 0 || fdatasync(s->idx_fd) != 0)
        return sl_error_set(err, SL_EIO, "fdatasync of %s: %s", s->path, strerror(errno));
    s->sealed = 0;
    s->idx_synced = 0;
    return 0;
}

/* Grows the (empty) active segment's file and mapping to size bytes, for a
 * record larger than the segment size. Caller holds the partition mutex;
 * readers never touch the mapping of an empty segment. */
int sl_segment_grow(sl_segment *s, size_t size, sl_error *err)
{
    if (preallocate(s->fd, size, s->path, err) != 0)
        return -1;
    void *m = s->map ? mremap(s->map, s->map_size, size, MREMAP_MAYMOVE)
                     : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (m == MAP_FAILED)
        return sl_error_set(err, SL_EIO, "mapping %zu bytes of %s: %s", size, s->path,
                            strerror(errno));
    s->map = m;
    s->map_size = size;
    return 0;
}

/* Marks the segment no longer active and trims its file to the records it
 * holds (a failure only leaves zeros at the end, which readers and recovery
 * take as the end of data). Caller holds the partition mutex. */
void sl_segment_seal(sl_segment *s)
{
    s->sealed = 1;
    (void)!ftruncate(s->fd, (off_t)s->write_pos);
}

/* Drops the process's view of a sealed segment's pages (MADV_DONTNEED on
 * its shared file mapping): they stay in the page cache, unwritten ones
 * still dirty there, and a later read maps them again. Keeps the resident
 * memory of a long log down to the segments being written and read. No
 * lock needed: the caller holds a reference. */
void sl_segment_release_pages(sl_segment *s)
{
    if (s->map != NULL && s->map_size > 0)
        (void)madvise(s->map, s->map_size, MADV_DONTNEED);
}

/* Returns the position of the record at offset, or of an earlier record of
 * the segment from which a scan finds it (sparse index lookup). */
size_t sl_segment_find_pos(const sl_segment *s, int64_t offset)
{
    size_t lo = 0, hi = s->idx_n; /* first entry with rel > target */
    int64_t rel = offset - s->base;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((int64_t)s->idx[mid].rel <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? s->idx[lo - 1].pos : 0;
}

/* Returns a position, and the offset of the record there, from which the
 * first record with timestamp >= ts is found by scanning: every record of
 * the segment before it has a smaller timestamp. */
size_t sl_segment_find_time(const sl_segment *s, int64_t ts, int64_t *offset)
{
    size_t lo = 0, hi = s->idx_n; /* first entry with max_ts_before >= ts */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->idx[mid].max_ts_before < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    *offset = s->base + (lo ? (int64_t)s->idx[lo - 1].rel : 0);
    return lo ? s->idx[lo - 1].pos : 0;
}

/* Bytes the segment counts for in disk usage: records plus index entries. */
uint64_t sl_segment_bytes(const sl_segment *s)
{
    return (uint64_t)s->write_pos + (uint64_t)s->idx_n * SL_INDEX_ENTRY_BYTES;
}

void sl_segment_ref(sl_segment *s)
{
    atomic_fetch_add(&s->refs, 1);
}

/* Drops a reference; the last one unmaps, closes and frees the segment. */
void sl_segment_unref(sl_segment *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    if (s->map)
        munmap(s->map, s->map_size);
    if (s->fd >= 0)
        close(s->fd);
    if (s->idx_fd >= 0)
        close(s->idx_fd);
    free(s->idx);
    free(s->path);
    free(s->idx_path);
    free(s);
}

/* Removes the segment's files (the mapping stays valid for pinned readers). */
int sl_segment_unlink(sl_segment *s, sl_error *err)
{
    int rc = 0;
    if (unlink(s->path) != 0 && errno != ENOENT)
        rc = sl_error_set(err, SL_EIO, "deleting segment %s: %s", s->path, strerror(errno));
    if (unlink(s->idx_path) != 0 && errno != ENOENT && rc == 0)
        rc = sl_error_set(err, SL_EIO, "deleting index %s: %s", s->idx_path, strerror(errno));
    return rc;
}
