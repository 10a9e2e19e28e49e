/* A route's dead letter topic as the route and the admin API see it: what
 * each dead letter holds (the original message, the failed outputs), the
 * marker records that say an entry was redriven or purged (nothing is ever
 * deleted), and the depth (entries neither redriven nor purged). */
#ifndef SLUICE_DLQ_H
#define SLUICE_DLQ_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "log.h"
#include "message.h"

typedef struct sl_metrics sl_metrics;

/* Headers of a dead letter (documented in README.md, "Dead letters"). */
#define SL_DLQ_ERROR "x-sluice-error"
#define SL_DLQ_ATTEMPTS "x-sluice-attempts"
#define SL_DLQ_STATUS "x-sluice-status"
#define SL_DLQ_ROUTE "x-sluice-route"
#define SL_DLQ_FAILED_OUTPUTS "x-sluice-failed-outputs" /* "a,b": outputs still owed it */
#define SL_DLQ_FAILED_STEP "x-sluice-failed-step"       /* "2 (lua)" when a step failed */
#define SL_DLQ_QUARANTINE                                                                          \
    "x-sluice-quarantine" /* "corrupt": unreadable log bytes, never redriven */
#define SL_DLQ_ORIG_PREFIX "x-sluice-original-"
#define SL_DLQ_ORIG_BODY "x-sluice-original-body"
#define SL_DLQ_ORIG_KEY "x-sluice-original-key"
#define SL_DLQ_ORIG_HEADER "x-sluice-original-header-" /* + the original header's name */
/* Headers of a marker record (empty body) and of a redriven copy. */
#define SL_DLQ_MARKER "x-sluice-dlq-marker" /* "redriven" | "purged" */
#define SL_DLQ_TARGET "x-sluice-dlq-target" /* the dead letter's offset */
#define SL_DLQ_BY "x-sluice-dlq-by"
#define SL_DLQ_AT "x-sluice-dlq-at" /* Unix ms */
#define SL_DLQ_REDRIVE_OUTPUTS "x-sluice-redrive-outputs"

typedef enum {
    SL_DLQ_UNKNOWN = 0, /* not seen yet */
    SL_DLQ_PENDING,
    SL_DLQ_REDRIVEN,
    SL_DLQ_PURGED,
    SL_DLQ_IS_MARKER, /* a marker record, not an entry */
    SL_DLQ_FOREIGN,   /* an entry of another route sharing the topic */
} sl_dlq_state;

typedef struct sl_dlq sl_dlq;

/* Opens the dead letter state of partition p (a route's dead letter topic
 * has one): reads every record on disk once to learn which entries are
 * redriven or purged (markers, and the cursor of the old "redrive" consumer
 * for entries written before markers existed), and registers the gauge
 * sluice_dlq_depth{route}. Returns NULL with err on a read error or out of
 * memory. Free with sl_dlq_free. */
sl_dlq *sl_dlq_open(sl_partition *p, sl_metrics *m, const char *route, sl_error *err);

/* Removes the gauge and frees q. q may be NULL. */
void sl_dlq_free(sl_dlq *q);

/* Notes record rec of the partition (read or just appended): a new entry is
 * pending (foreign when its x-sluice-route names another route: routes may
 * share a dead letter topic), a marker applies to its target. Idempotent. Returns -1 when out
 * of memory (the state is then unchanged). Thread-safe. */
int sl_dlq_note(sl_dlq *q, const sl_record *rec);

/* Notes that the entry just appended at off is pending. Thread-safe. */
void sl_dlq_note_entry(sl_dlq *q, int64_t off);

/* The state of the record at off (SL_DLQ_UNKNOWN when not seen). */
sl_dlq_state sl_dlq_state_at(sl_dlq *q, int64_t off);

/* "pending", "redriven", "purged", "marker", "foreign" or "unknown". */
const char *sl_dlq_state_name(sl_dlq_state s);

/* Who marked entry off and when (*at_ms 0 and by "" when unmarked or marked
 * before this process saw the marker's by/at). */
void sl_dlq_marked_by(sl_dlq *q, int64_t off, int64_t *at_ms, char *by, size_t cap);

/* Entries neither redriven nor purged. Thread-safe. */
int64_t sl_dlq_depth(sl_dlq *q);

/* Appends one marker (state SL_DLQ_REDRIVEN or SL_DLQ_PURGED, by whom) per
 * target offset, waits until they are durable, then applies them. Returns
 * 0, or -1 with err (then none is applied; those appended are applied on the
 * next start: a marker on disk is the truth). Serialize calls (the caller's
 * redrive lock). */
int sl_dlq_mark(sl_dlq *q, const int64_t *targets, size_t n, sl_dlq_state what, const char *by,
                sl_error *err);

/* Adds to dead the original message, as it entered the route, of record
 * orig: when orig itself carries SL_DLQ_ORIG_* headers (a redriven copy)
 * those are copied, else orig's body, key and headers become
 * SL_DLQ_ORIG_BODY, SL_DLQ_ORIG_KEY and SL_DLQ_ORIG_HEADER+name. Returns 0,
 * or -1 when out of memory. */
int sl_dlq_add_original(sl_msg *dead, const sl_record *orig);

/* The value of header name of rec (exact name), its length in *len, or
 * NULL when absent. */
const char *sl_dlq_header(const sl_record *rec, const char *name, size_t *len);

/* A new message from dead letter rec: with original, the message as it
 * entered the route (from the SL_DLQ_ORIG_* headers; a dead letter without
 * them is taken as it is); else the message as stored. Either way the
 * x-sluice-* headers are left out, the id and key kept. With keep_original
 * (and not original), the SL_DLQ_ORIG_* headers are kept, for a redriven
 * copy that may die again. Returns NULL with err when out of memory. */
sl_msg *sl_dlq_message(const sl_record *rec, bool original, bool keep_original, sl_error *err);

#endif
