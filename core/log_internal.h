/* Private structures of the event log, shared by log.c (log, topics,
 * flusher, retention), log_partition.c (append, read, wait, commit) and
 * log_segment.c (segment files, sparse index, recovery scan). */
#ifndef SLUICE_LOG_INTERNAL_H
#define SLUICE_LOG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "record.h"

/* One sparse index entry as stored in a segment's .index file (16 bytes,
 * little-endian): the record at relative offset rel starts at byte pos, and
 * every record of the segment before it has a timestamp <= max_ts_before
 * (INT64_MIN for the first entry). */
typedef struct sl_index_entry {
    uint32_t rel;
    uint32_t pos;
    int64_t max_ts_before;
} sl_index_entry;

#define SL_INDEX_ENTRY_BYTES 16u
#define SL_SEGMENT_MAX_BYTES ((uint64_t)1 << 30)
#define SL_SEGMENT_MIN_BYTES 1024u
/* Flusher threads in ALWAYS mode. More than one makes fdatasyncs overlap
 * (smaller batches, more of them); one flusher with gathering measured as
 * good or better here (LOG.md), so 1 is the default. */
#ifndef SL_FLUSHERS
#define SL_FLUSHERS 1
#endif

/* Sync helpers of the ALWAYS flusher (log_syncpool.c): the partitions of one
 * flush round are flushed concurrently, so that their fdatasyncs overlap
 * (the file system commits them together) instead of queueing one after
 * another. */
#ifndef SL_SYNC_HELPERS
#define SL_SYNC_HELPERS 3
#endif

typedef struct sl_syncpool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a round has partitions left to take, or stop */
    pthread_cond_t done_cv; /* a round's last partition is flushed */
    sl_partition **items;   /* (mu) the round's partitions */
    size_t n, next, left;   /* (mu) how many, the next to take, not yet flushed */
    int stop;               /* (mu) */
    int inited;
    pthread_t threads[SL_SYNC_HELPERS];
    int nthreads; /* started */
} sl_syncpool;

/* One segment: a data file mapped MAP_SHARED and its sparse index, kept in
 * memory and appended to the .index file. Fields marked (mu) are guarded by
 * the owning partition's mutex; the rest are fixed once the segment is
 * published. Reference counted: the partition holds one reference, readers
 * and the flusher pin it while they use the mapping outside the mutex. */
typedef struct sl_segment {
    int64_t base;          /* first offset */
    int fd;                /* data file */
    int idx_fd;            /* index file */
    unsigned char *map;    /* data mapping (NULL when map_size is 0) */
    size_t map_size;       /* bytes mapped, which is the capacity of the segment */
    char *path;            /* data file path */
    char *idx_path;        /* index file path */
    int64_t next_offset;   /* (mu) offset after its last record */
    size_t write_pos;      /* (mu) bytes of records written */
    size_t readable_pos;   /* (mu) bytes of durable, readable records */
    size_t synced_pos;     /* (mu) bytes known to be fdatasync'd */
    size_t last_idx_pos;   /* (mu) position of the last index entry */
    int64_t max_ts;        /* (mu) largest timestamp in the segment, INT64_MIN if empty */
    int sealed;            /* (mu) no longer the active segment */
    int idx_synced;        /* (mu) index fdatasync'd since sealing */
    sl_index_entry *idx;   /* (mu) index entries */
    size_t idx_n, idx_cap; /* (mu) */
    atomic_int refs;
} sl_segment;

typedef struct sl_durable_cb {
    int64_t offset;
    sl_durable_fn fn;
    void *arg;
} sl_durable_cb;

typedef struct sl_consumer {
    char *name;
    int64_t offset;
} sl_consumer;

struct sl_partition {
    sl_log *log;
    sl_topic *topic;
    int index;
    char *dir;
    int dir_fd;

    pthread_mutex_t mu; /* appends, segment list, offsets, callbacks */
    pthread_cond_t cv;  /* durable advanced, wake, close */
    sl_segment **segs;  /* (mu) sorted by base; the last is the active one */
    size_t nseg, seg_cap;
    _Atomic int64_t end;          /* (mu for writes) next offset to assign */
    _Atomic int64_t durable;      /* (mu for writes) every offset below is durable, readable */
    _Atomic uint32_t durable_seq; /* futex word: bumped when durable, failed or closed change */
    uint64_t bytes;               /* (mu) record and index bytes of this partition */
    int dir_dirty;     /* (mu) a segment file was created since the last directory fsync */
    int queued;        /* (mu) on the log's flush list */
    int cb_running;    /* (mu) a thread is running this partition's callbacks */
    int closing;       /* (mu) appends and callbacks refused */
    atomic_int closed; /* (mu for writes) waiters released */
    atomic_int failed; /* (mu for writes) an fdatasync failed: io_err says which */
    sl_error io_err;   /* (mu) set once, before failed */
    unsigned wake_gen; /* (mu) bumped by sl_partition_wake */
    int n_waiting;     /* (mu) threads in sl_partition_wait_readable */
    atomic_int n_durable_waiting; /* threads in sl_partition_wait_durable */
    pthread_cond_t gather_cv;     /* the flusher waits here for released appenders */
    int64_t gather_target;        /* (mu) appends past durable that end the gather wait */
    int64_t gather_deadline_us;   /* (mu) CLOCK_MONOTONIC microseconds */
    sl_durable_cb *cbs;           /* (mu) min-heap on offset */
    size_t ncb, cb_cap;

    pthread_mutex_t commit_mu; /* consumers and their files */
    sl_consumer *consumers;
    size_t ncons;
};

struct sl_topic {
    sl_log *log;
    char *name;
    char *dir;
    int nparts;
    sl_partition **parts;
    sl_topic *next; /* immutable once published */
};

struct sl_log {
    char *dir;
    char *topics_dir;
    sl_log_options opt;
    int lock_fd;

    pthread_mutex_t topics_mu;
    sl_topic *topics; /* (topics_mu) newest first; never removed before close */
    size_t total_parts;

    pthread_mutex_t flush_mu;
    pthread_cond_t flush_cv;
    sl_partition **flush_list; /* (flush_mu) partitions with unsynced appends */
    size_t flush_n, flush_cap;
    int stop; /* (flush_mu) */
    pthread_t flushers[SL_FLUSHERS];
    int nflushers; /* started */

    atomic_uint_fast64_t disk_bytes;
    sl_syncpool sync; /* ALWAYS mode only */
};

/* log_segment.c */
/* file_mode: the mode new files get (SL_DATA_FILE_MODE). */
sl_segment *sl_segment_create(const char *dir, int64_t base, size_t size, int file_mode,
                              sl_error *err);
sl_segment *sl_segment_load(const char *dir, int64_t base, uint32_t interval, int file_mode,
                            sl_error *err);
int sl_segment_activate(sl_segment *s, size_t size, sl_error *err);
int sl_segment_add_index(sl_segment *s, int64_t offset, size_t pos);
int sl_segment_grow(sl_segment *s, size_t size, sl_error *err);
void sl_segment_seal(sl_segment *s);
void sl_segment_release_pages(sl_segment *s);
size_t sl_segment_find_pos(const sl_segment *s, int64_t offset);
size_t sl_segment_find_time(const sl_segment *s, int64_t ts, int64_t *offset);
uint64_t sl_segment_bytes(const sl_segment *s);
void sl_segment_ref(sl_segment *s);
void sl_segment_unref(sl_segment *s);
int sl_segment_unlink(sl_segment *s, sl_error *err);
char *sl_path_join(const char *dir, const char *name);
int sl_fsync_dir_fd(int fd, const char *path, sl_error *err);

/* log_syncpool.c */
/* Starts the sync helpers of log (ALWAYS mode). Returns 0, or -1 with err
 * (helpers already started keep running until sl_syncpool_stop). */
int sl_syncpool_start(sl_log *log, sl_error *err);
/* Flushes parts[0..n) (sl_partition_flush with gather), the calling
 * flusher and the helpers each taking the next one; returns when all are
 * done. Failures stay on their partitions. Flusher thread only. */
void sl_syncpool_flush(sl_log *log, sl_partition **parts, size_t n);
/* Stops and joins the helpers; safe when none started. */
void sl_syncpool_stop(sl_log *log);

/* log_partition.c */
sl_partition *sl_partition_open(sl_log *log, sl_topic *t, int index, sl_error *err);
void sl_partition_free(sl_partition *p);
int sl_partition_flush(sl_partition *p, int gather, sl_error *err);
void sl_partition_close(sl_partition *p);
int sl_partition_retain(sl_partition *p, int64_t now_ms, sl_error *err);

/* log.c */
int sl_valid_name(const char *name);

#endif
