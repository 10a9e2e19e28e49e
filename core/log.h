/* The embedded event log: the unit of custody between inputs and routes.
 * A log is a data_dir of topics; a topic has partitions; a partition is a
 * directory of segment files (named by their first offset) with a sparse
 * index. Inputs append and wait for durability before acknowledging their
 * source; route workers read batches and commit their offsets. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum {
    SL_FSYNC_ALWAYS = 0, /* group commit: durable means fdatasync'd */
    SL_FSYNC_INTERVAL,   /* fdatasync every fsync_interval_ms; durable at append */
    SL_FSYNC_NEVER,      /* the OS decides; durable at append */
} sl_fsync_mode;

/* What a route worker does when the record it reads next is damaged (see
 * sl_partition_damage). Either way it reports the range (log line, metric,
 * /ready, admin API). */
typedef enum {
    SL_CORRUPT_SKIP = 0, /* quarantine the range to the dead letter topic, go on after it */
    SL_CORRUPT_STOP,     /* hold the partition until an operator rewinds past it */
} sl_corruption_policy;

/* Who may read the data_dir: its directories are created 0700 and its files
 * 0600 (PRIVATE), or 0750 and 0640 (GROUP); the umask still applies. */
typedef enum { SL_DATA_PRIVATE = 0, SL_DATA_GROUP } sl_data_mode;

/* The modes for data_dir directories and files under mode m. */
#define SL_DATA_DIR_MODE(m) ((m) == SL_DATA_GROUP ? 0750 : 0700)
#define SL_DATA_FILE_MODE(m) ((m) == SL_DATA_GROUP ? 0640 : 0600)

typedef struct sl_log_options {
    sl_fsync_mode fsync;
    uint64_t fsync_interval_ms;    /* INTERVAL mode period; default 10 */
    uint64_t segment_bytes;        /* roll a segment past this size; default 64 MiB */
    uint64_t max_disk_bytes;       /* whole log; past it appends fail with SL_EFULL; 0 = no cap */
    uint64_t retention_ms;         /* delete segments older than this; 0 = no age limit */
    uint64_t retention_bytes;      /* per partition; 0 = no size limit */
    uint32_t index_interval_bytes; /* one sparse index entry per this many bytes; default 4096 */
    /* Called by the flusher after each fdatasync with its duration, for the
     * sluice_log_fsync_seconds histogram. May be NULL. */
    void (*on_fsync)(void *arg, double seconds);
    void *on_fsync_arg;
    sl_corruption_policy on_corruption; /* read by route workers; default SKIP */
    sl_data_mode data_mode;             /* modes of what the log creates; default PRIVATE */
} sl_log_options;

/* One header of a record. Names and values are byte strings, not
 * NUL-terminated (though read records keep a NUL after each for convenience). */
typedef struct sl_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} sl_header;

/* A record as appended or as read. On append, offset is ignored and a
 * timestamp_ms of 0 means "now". On read, every pointer points into the
 * sl_batch that holds the record, and each of key, value, header names and
 * header values is followed by a NUL byte (not counted in its length). */
typedef struct sl_record {
    int64_t offset;
    int64_t timestamp_ms;
    const char *key; /* may be NULL when key_len is 0 */
    size_t key_len;
    const sl_header *headers;
    size_t n_headers;
    const char *value;
    size_t value_len;
} sl_record;

/* Records read from one partition. Owns their memory; reuse it across reads
 * (sl_partition_read clears it first) and free it with sl_batch_free. */
typedef struct sl_batch {
    sl_record *records;
    size_t count;
    int64_t next_offset; /* the offset after the last record read */
    /* private storage */
    sl_header *hdrs;
    size_t hdrs_cap;
    char *buf;
    size_t buf_cap;
    size_t rec_cap;
} sl_batch;

typedef struct sl_log sl_log;
typedef struct sl_topic sl_topic;
typedef struct sl_partition sl_partition;

/* Callback for sl_partition_on_durable: err is NULL when every record up to
 * and including offset is durable, or describes why it never will be (an
 * fdatasync failure, or the log closing first). */
typedef void (*sl_durable_fn)(void *arg, int64_t offset, const sl_error *err);

/* Fills opt with the defaults: ALWAYS, 10 ms, 64 MiB segments, no caps,
 * 4 KiB index interval, no fsync observer. */
void sl_log_options_default(sl_log_options *opt);

/* Opens (creating it if needed) the log in dir and starts its flusher
 * thread. Existing topics are not opened until sl_log_topic names them.
 * Returns NULL and fills err when dir cannot be created or read. */
sl_log *sl_log_open(const char *dir, const sl_log_options *opt, sl_error *err);

/* Makes everything appended durable, releases every durability waiter,
 * stops the flusher and frees the log with all its topics. Readers blocked in
 * sl_partition_wait_readable return -1. No other thread may use the log or
 * anything obtained from it once this is called. log may be NULL. */
void sl_log_close(sl_log *log);

/* fdatasyncs every partition now, whatever the fsync mode, and releases the
 * waiters. Thread-safe. Returns -1 and fills err on an I/O error. */
int sl_log_sync(sl_log *log, sl_error *err);

/* Bytes the log holds, all topics: the records written plus the index
 * entries. Segment files are preallocated to segment_bytes, so the space
 * taken on disk can be up to one segment_bytes per partition more; this is
 * the figure max_disk_bytes is checked against. Thread-safe. */
uint64_t sl_log_disk_bytes(sl_log *log);

/* The on_corruption policy the log was opened with. */
sl_corruption_policy sl_log_corruption_policy(const sl_log *log);

/* The directory the log was opened on. */
const char *sl_log_dir(const sl_log *log);

/* Opens topic name, creating it with `partitions` partitions when it does
 * not exist. When it exists, its stored partition count wins (check it with
 * sl_topic_partition_count). partitions <= 0 opens only an existing topic.
 * Repeated calls return the same topic. Thread-safe. Names are
 * [A-Za-z0-9._-]+. Returns NULL and fills err (SL_ENOTFOUND, SL_EINVAL,
 * SL_EIO, SL_ECORRUPT). Opening recovers each partition: the last segment
 * is checked record by record from its last index point and a torn or
 * corrupt tail is cut off. */
sl_topic *sl_log_topic(sl_log *log, const char *name, int partitions, sl_error *err);

/* Lists the names of the topics present on disk, sorted. *names is a
 * malloc'd array of malloc'd strings; free with sl_log_free_names. */
int sl_log_list_topics(sl_log *log, char ***names, size_t *n, sl_error *err);
void sl_log_free_names(char **names, size_t n);

const char *sl_topic_name(const sl_topic *t);
int sl_topic_partition_count(const sl_topic *t);

/* Returns partition index of t, or NULL when index is out of range. */
sl_partition *sl_topic_partition(sl_topic *t, int index);

/* Appends one record and returns its offset. The record is not durable yet:
 * call sl_partition_wait_durable() or sl_partition_on_durable() before
 * acknowledging the source. Thread-safe; never calls fsync. Returns -1 and
 * fills err when the log is over max_disk_bytes (SL_EFULL: back-pressure),
 * closed (SL_ECLOSED) or a write fails (SL_EIO); nothing is written then. */
int64_t sl_partition_append(sl_partition *p, const sl_record *rec, sl_error *err);

/* Blocks until offset is durable (per the fsync mode). timeout_ms < 0
 * waits forever. Returns 0, or -1 with err on timeout (SL_ETIMEOUT), an
 * fsync failure (SL_EIO), close (SL_ECLOSED) or an offset never appended
 * (SL_EINVAL). Thread-safe. */
int sl_partition_wait_durable(sl_partition *p, int64_t offset, int timeout_ms, sl_error *err);

/* Calls fn(arg, offset, NULL) once offset is durable, without blocking the
 * caller. fn runs either on the calling thread before this returns (when the
 * offset is already durable) or on the flusher thread, in offset order; it
 * must be quick and must not call back into this partition's append. When
 * the offset never becomes durable (fdatasync failure, close), fn gets an
 * err instead. Returns 0, or -1 with err when the callback cannot be
 * registered (offset never appended, no memory, closed, failed): fn is then
 * never called. */
int sl_partition_on_durable(sl_partition *p, int64_t offset, sl_durable_fn fn, void *arg,
                            sl_error *err);

/* The first offset still on disk (segments before it were deleted by
 * retention). */
int64_t sl_partition_start_offset(sl_partition *p);

/* The offset the next append will get. */
int64_t sl_partition_end_offset(sl_partition *p);

/* Every offset below this is durable, and readable. */
int64_t sl_partition_durable_offset(sl_partition *p);

/* Reads up to max_records records (and about max_bytes, at least one) with
 * offsets from `from` up to the durable offset into out, replacing what
 * out held. A `from` below the start offset reads from the start offset.
 * Returns the number of records (0 when none is readable yet) and sets
 * out->next_offset. Never returns a record whose CRC fails: returns -1 with
 * SL_ECORRUPT when the record at `from` is damaged (see sl_partition_damage);
 * damaged bytes before `from` are stepped over. Thread-safe; may run concurrently with appends. */
int sl_partition_read(sl_partition *p, int64_t from, size_t max_records, size_t max_bytes,
                      sl_batch *out, sl_error *err);

/* A damaged range of a partition: records that fail their checks, as found
 * by sl_partition_damage. */
typedef struct sl_damage {
    int64_t first_offset; /* the first offset that cannot be read */
    int64_t next_offset;  /* the first readable offset after the damage */
    size_t from_byte;     /* the unreadable bytes of the segment: [from_byte, to_byte) */
    size_t to_byte;
    char segment[512];    /* the segment file's path */
    char reason[32];      /* "bad crc", "bad length", "torn", "offset gap" */
    unsigned char *bytes; /* a malloc'd copy of the unreadable bytes (at most 1 MiB); */
    size_t n_bytes;       /* free with free() */
} sl_damage;

/* Looks at the record at offset: returns 0 when it reads (or is not
 * readable yet), 1 when it lies in a damaged range and fills d (the range
 * ends at the next record whose checksum holds, or at the end of the
 * segment's data), or -1 with err when memory runs out. Thread-safe; used
 * after sl_partition_read failed with SL_ECORRUPT. */
int sl_partition_damage(sl_partition *p, int64_t offset, sl_damage *d, sl_error *err);

/* Blocks until a record at `offset` is readable (durable offset > offset),
 * timeout_ms passes (timeout_ms < 0 waits forever), or sl_partition_wake is
 * called. Returns 1 when readable, 0 otherwise, -1 when the log is closing.
 * No polling: a condition variable signalled by the flusher. */
int sl_partition_wait_readable(sl_partition *p, int64_t offset, int timeout_ms);

/* Wakes every thread blocked in sl_partition_wait_readable on p, so that it
 * can check its own stop or pause flag. Thread-safe. */
void sl_partition_wake(sl_partition *p);

/* Returns the first offset whose record has timestamp >= timestamp_ms (using
 * the sparse time index, then a scan), or the durable offset (where the next
 * readable record will be) when no readable record has one. Timestamps may
 * go backwards: the answer is still the first such offset, not a guess. */
int64_t sl_partition_offset_for_time(sl_partition *p, int64_t timestamp_ms);

/* Stores next_offset as consumer's committed offset for p atomically (write
 * a temp file, fsync, rename, fsync the directory). Consumer names are
 * [A-Za-z0-9._-]+. Retention never deletes a segment holding offsets at or
 * past any consumer's committed offset. A consumer that never committed
 * holds nothing back: commit its start offset (0) when it is created.
 * Thread-safe. Returns -1 with err on I/O error or a bad name. */
int sl_partition_commit(sl_partition *p, const char *consumer, int64_t next_offset, sl_error *err);

/* Returns consumer's committed offset for p, or -1 when it never committed. */
int64_t sl_partition_committed(sl_partition *p, const char *consumer);

/* Deletes whole segments past the retention limits (age, bytes), never the
 * active one and never one a consumer has not committed past. The flusher
 * also runs this about once a second. Returns the number of segments deleted,
 * or -1 with err. */
int sl_log_enforce_retention(sl_log *log, sl_error *err);

void sl_batch_init(sl_batch *b);
void sl_batch_free(sl_batch *b);

#endif
