/* The route engine: a route owns a log topic (its partitions), one worker
 * thread per partition that reads batches in order, runs the steps, fans out
 * to every output, retries with backoff, dead-letters, and commits its offset
 * only once every output acknowledged. Inputs append through sl_route_append;
 * the admin API reads and steers routes through the rest. */
#ifndef SLUICE_ROUTE_H
#define SLUICE_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "message.h"
#include "status.h"

typedef struct sl_route sl_route;
typedef struct sl_connector sl_connector;
typedef struct sl_breaker sl_breaker;
typedef struct sl_metrics sl_metrics;
typedef struct sl_step_services sl_step_services;

/* What output i of a route reaches, resolved by whoever builds the route. */
typedef struct sl_route_output_env {
    sl_connector *conn;  /* for `connector:` outputs (must be able to send); NULL for topics */
    sl_breaker *breaker; /* the connector's circuit breaker, or NULL */
} sl_route_output_env;

/* Everything a route uses outside itself, as handles (the route never looks
 * anything up by name). Everything must outlive the route. */
typedef struct sl_route_env {
    sl_log *log;                      /* its topics live here */
    sl_metrics *metrics;              /* its counters and gauges */
    sl_status *status;                /* message states (GET /v1/messages/ID) */
    const sl_step_services *services; /* handed to every step; may be NULL */
    const sl_route_output_env *outs;  /* outs[i] for conf->to[i]; read only by sl_route_new */
    sl_connector *log_conn;           /* the connector named by `log:` (its type's log_backend holds
                                       * the route's log), or NULL: the embedded log */
} sl_route_env;

/* Creates route conf (which must outlive it) in env: compiles its key and
 * `when:` expressions, opens its topic (name ROUTE, or the `from: {topic}`
 * topic for a chained route) with conf->partitions partitions and its dead
 * letter topic, builds each worker's steps. No threads yet. Returns NULL
 * with err (a bad key reads "FILE:LINE:COL: routes.NAME.key: ..."). */
sl_route *sl_route_new(const sl_route_env *env, const sl_route_conf *conf, sl_error *err);

/* Compiles conf's key and `when:` expressions as sl_route_new does, for
 * `sluice check`: calls report(arg, message) once per error (the messages
 * sl_route_new would fail with). Returns the number of errors. */
size_t sl_route_check_exprs(const sl_route_conf *conf, void (*report)(void *arg, const char *msg),
                            void *arg);

/* Starts one worker per partition, reading from the committed offset.
 * Returns -1 with err when a thread cannot start. */
int sl_route_start(sl_route *r, sl_error *err);

/* Stops the workers: each finishes the delivery it has in flight or abandons
 * it without committing, then exits. Blocks until all have exited. */
void sl_route_stop(sl_route *r);

/* Frees a stopped (or never started) route. r may be NULL. */
void sl_route_free(sl_route *r);

/* Appends msg to the route's topic: evaluates the route's key (when set)
 * into msg->key, picks the partition by hash of the key (round robin without
 * one), appends, and fills msg->partition and msg->offset. Records the id as
 * accepted and counts sluice_messages_in_total. Does not wait: the caller
 * waits for durability (sl_partition_on_durable on sl_route_partition(r,
 * msg->partition)) before acknowledging its source. Thread-safe. Returns -1
 * with err: SL_EFULL under back-pressure, SL_EINVAL when the key expression
 * cannot be evaluated on this body (a permanent error for the source),
 * SL_EIO, SL_ECLOSED. */
int sl_route_append(sl_route *r, sl_msg *msg, sl_error *err);

/* For inputs: calls fn(arg, offset, NULL) once the message sl_route_append
 * appended (msg->partition, msg->offset) is durable, or fn(arg, -1, err)
 * when it never will be; on the caller's thread before this returns when
 * that is known already, else on the log's thread (keep fn quick). On the
 * embedded log this is sl_partition_on_durable; on a log a connector holds
 * (`log:`), msg->offset is a ticket and fn gets the real offset (a Kafka
 * delivery report). Returns -1 with err (fn never called) when fn cannot
 * be registered. Thread-safe. */
int sl_route_on_durable(sl_route *r, int partition, int64_t offset, sl_durable_fn fn, void *arg,
                        sl_error *err);

/* True when a connector holds the route's log (`log:`): then
 * sl_route_partition returns NULL, and inputs must acknowledge through
 * sl_route_on_durable. */
bool sl_route_external_log(const sl_route *r);

/* For inputs: the Idempotency-Key store shared by every gateway of the
 * route, when its log's connector keeps one (core/log_backend.h, idem_*).
 * sl_route_idem_open starts it (reading back window_ms): returns 1, 0 when
 * the route has none (keys stay local to the gateway), or -1 with err.
 * sl_route_idem_get returns 1 with a malloc'd copy of key's newest value
 * (NUL-terminated) and when it was put, or 0. sl_route_idem_put stores val
 * (NULL: forgets key) for every gateway; 0 or -1 with err. Thread-safe. */
int sl_route_idem_open(sl_route *r, uint64_t window_ms, sl_error *err);
int sl_route_idem_get(sl_route *r, const char *key, size_t klen, char **val, size_t *len,
                      uint64_t *at_ms);
int sl_route_idem_put(sl_route *r, const char *key, size_t klen, const char *val, size_t len,
                      sl_error *err);

/* For inputs: puts msg, which can never enter the route (its key cannot be
 * evaluated on its body, say), straight into the route's dead letter topic
 * with `error`, and waits until that is durable, so that the input can
 * acknowledge its source without losing the message. Blocks (an fsync).
 * Returns 0, or -1 with err (then the input must not acknowledge it). */
int sl_route_dead_letter(sl_route *r, sl_msg *msg, const char *error, sl_error *err);

/* What a watched message came to. Pointers are valid only during the
 * callback. */
typedef struct sl_route_outcome {
    sl_msg_state state; /* SL_MSG_DELIVERED, SL_MSG_DROPPED or SL_MSG_DEAD_LETTERED */
    /* Delivered: the answer. With a reply output (sl_route_watch_reply) and
     * replied set, that output's answer (body, content_type, status); else
     * the message after the steps (status 0). content_type NULL when none. */
    const char *body;
    size_t body_len;
    const char *content_type;
    int status;
    bool replied;      /* body is the reply output's answer */
    const char *error; /* not delivered: why (internal detail: for logs, never for callers) */
} sl_route_outcome;

/* Called once when a watched message is finished by the route. Runs on a
 * route worker thread. */
typedef void (*sl_route_done_fn)(void *arg, const char *id, const sl_route_outcome *outcome);

/* Asks to be told when message id is finished (for `reply: sync`). Call it
 * before sl_route_append of that message. Returns 0, or -1 when out of
 * memory. */
int sl_route_watch(sl_route *r, const char *id, sl_route_done_fn fn, void *arg);

/* As sl_route_watch, and asks output reply_output (an index in the route's
 * `to:`, whose connector type can_reply) for its partner's answer to the
 * message, which the outcome then carries (replied). reply_output < 0:
 * none. Returns 0, or -1 when out of memory. */
int sl_route_watch_reply(sl_route *r, const char *id, int reply_output, sl_route_done_fn fn,
                         void *arg);

/* Cancels a watch. Returns 0 when it was removed before fn ran (fn will
 * never run), or -1 when fn has already run or is running now. */
int sl_route_unwatch(sl_route *r, const char *id);

const char *sl_route_name(const sl_route *r);

/* The route's live tail (core/tail.h): it publishes each message as it is
 * accepted and as it is delivered. Lives as long as the route. */
struct sl_tail *sl_route_tail(sl_route *r);
const sl_route_conf *sl_route_get_conf(const sl_route *r);
int sl_route_partition_count(const sl_route *r);

/* Returns the log partition i of the route's input topic, or NULL (also
 * for every partition of a route whose log a connector holds). */
sl_partition *sl_route_partition(sl_route *r, int i);

typedef struct sl_route_partition_info {
    int partition;
    int64_t start_offset; /* first offset on disk */
    int64_t end_offset;   /* next offset to be appended */
    int64_t committed;    /* next offset to process */
    int64_t lag;          /* end_offset - committed */
    bool paused;
    bool assigned; /* a log a connector holds: this gateway works on the partition now */
    int attempts;  /* of the message at the head, when it is being retried */
    char last_error[256];
    int64_t corrupt_offset; /* the damaged offset the partition is held at, or -1 */
    int64_t corrupt_next;   /* the first readable offset after that damage */
    /* a log a connector holds: its fetching is paused (held for an open
     * breaker, or its buffer is full); how many records it buffers (-1: none) */
    bool fetch_paused;
    bool held;
    int64_t buffered;
} sl_route_partition_info;

/* Fills info about partition i. Returns 0, or -1 when i is out of range. */
int sl_route_get_partition_info(sl_route *r, int i, sl_route_partition_info *info);

/* Tells whether a partition of r is held at a damaged record (policy
 * `stop`, or `skip` while the quarantine fails): writes "route R partition
 * P held at corrupt offset O" into why (size n) for the first one and
 * returns true. Thread-safe. */
bool sl_route_corrupt_held(sl_route *r, char *why, size_t n);

/* Replays the route from an offset (the same offset in every partition,
 * clamped to what is on disk) or, when offset < 0, from the first record at
 * or after timestamp_ms in each partition. Workers drop what they have in
 * flight (without committing) and read again from there; the committed
 * offsets are set back. Returns 0, or -1 with err. Thread-safe. */
int sl_route_rewind(sl_route *r, int64_t offset, int64_t timestamp_ms, sl_error *err);

/* Pauses or resumes every partition's worker (messages stay in the log). */
void sl_route_pause(sl_route *r, bool paused);

/* One dead letter, as listed by sl_route_dlq_list. */
typedef struct sl_dlq_entry {
    int64_t offset; /* in the dead letter topic */
    int64_t timestamp_ms;
    char id[SL_ID_LEN + 1];
    char error[512];
    char failed_outputs[256]; /* "a,b": the outputs still owed it (an output failure), or "" */
    char failed_step[64];     /* "2 (lua)" when a step failed, or "" */
    int status;               /* the output's protocol status (HTTP), 0 when none */
    int attempts;
    bool redriven;        /* sent back into the route (a marker record says so) */
    bool purged;          /* purged by an operator (a marker record says so) */
    int64_t marked_at_ms; /* when it was redriven or purged, 0 when unknown */
    char marked_by[64];   /* by whom ("admin" or a token's name) */
    char *body;           /* malloc'd, NUL-terminated: the message as the failed outputs
                           * should have received it (after the steps) */
    size_t body_len;
    char *original_body; /* malloc'd, NUL-terminated: as it entered the route; NULL when
                          * the dead letter predates originals (or came from an input) */
    size_t original_len;
} sl_dlq_entry;

/* Lists up to limit dead letters of the route from offset `from` of its
 * dead letter topic (oldest first; marker records are skipped) into a
 * malloc'd array (*out, *n; free with sl_dlq_entries_free). *pending is set
 * to the depth: entries neither redriven nor purged. Returns -1 with err on
 * a read error. Thread-safe. */
int sl_route_dlq_list(sl_route *r, int64_t from, size_t limit, sl_dlq_entry **out, size_t *n,
                      int64_t *pending, sl_error *err);
void sl_dlq_entries_free(sl_dlq_entry *entries, size_t n);

/* The name of the route's dead letter topic (the embedded log's, or the one
 * its log's connector writes to). */
const char *sl_route_dlq_topic(const sl_route *r);

/* Which dead letters a redrive or purge takes: pending entries only (never
 * one already redriven or purged), oldest first. */
typedef struct sl_dlq_select {
    const char *const *ids; /* only entries of these message ids; n_ids 0: every one */
    size_t n_ids;
    bool *matched; /* when not NULL (n_ids of them): set for each id that took an entry */
    size_t limit;  /* at most this many entries; 0: no limit */
    bool rerun;    /* redrive: run the whole route again from the original message */
} sl_dlq_select;

/* Whether sel picks dead letter rec by its message id (every record when sel
 * names no ids), setting sel->matched for the id it matched. */
bool sl_dlq_select_picks(const sl_dlq_select *sel, const sl_record *rec);

/* Redrives the dead letters sel picks. An entry of an output failure goes
 * back (without rerun) as the message the failed outputs should have
 * received, to those outputs only: the steps do not run again, the other
 * outputs get nothing. Any other entry (a step failed, `when:` failed, an
 * input dead-lettered it), and every entry with sel->rerun, goes back as
 * its original message and runs the whole route. Either way it is appended
 * to the route's topic (same id; its status goes back to accepted and
 * follows the delivery, through the outputs' breakers and retry policy),
 * made durable, and only then marked redriven by `by` in a marker record
 * (nothing is deleted). Sets *count to the number redriven, and *refused to
 * the number the route refused for good (the key cannot be read on the
 * message: they stay pending, the others go on). Only entries on disk when
 * the call began are taken. Returns -1 with err when an append fails (those
 * redriven before stay marked). Serialized per route (with purge). */
int sl_route_dlq_redrive(sl_route *r, const sl_dlq_select *sel, const char *by, size_t *count,
                         size_t *refused, sl_error *err);

/* Marks the dead letters sel picks as purged by `by` (marker records, made
 * durable; nothing is deleted, the list shows them as purged). Sets *count.
 * Returns -1 with err when a marker cannot be written. */
int sl_route_dlq_purge(sl_route *r, const sl_dlq_select *sel, const char *by, size_t *count,
                       sl_error *err);

#endif
