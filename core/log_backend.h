/* A route's log held outside the gateway: `log: { connector: NAME, ... }`.
 * A connector type that can hold one (Kafka) fills an sl_log_backend_type
 * in its table (core/connector.h); the route engine then appends, reads and
 * commits through it instead of the embedded log, and runs its workers,
 * steps and outputs exactly as on the embedded log. Core never names the
 * connector: it only sees this table. */
#ifndef SLUICE_LOG_BACKEND_H
#define SLUICE_LOG_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "route.h"
#include "status.h"

/* The record header by which a gateway asks for a message's outcome
 * (`reply: sync`): "N ADDRESS", N being 1 + the index of the reply_from
 * output (0: none) and ADDRESS what reply_address returned. Core adds it on
 * append and takes it out of the message before the outputs. */
#define SL_HDR_REPLY_TO "x-sluice-reply-to"

typedef struct sl_connector sl_connector;
typedef struct sl_log_backend sl_log_backend; /* one route's log; the connector's own */

/* What a backend says about one partition (sl_route_get_partition_info). */
typedef struct sl_log_backend_info {
    bool assigned;        /* this gateway works on it now (a consumer group share) */
    int64_t start_offset; /* first offset in the log, or -1 when unknown */
    int64_t end_offset;   /* next offset to be appended, or -1 when unknown */
    int64_t committed;    /* next offset to process, or -1 when unknown */
    bool fetch_paused;    /* fetching from the log is paused (buffer full, or held) */
    bool held;            /* held by the worker (hold): an output's breaker is open */
    int64_t buffered;     /* records fetched and not yet committed past, or -1 */
} sl_log_backend_info;

/* Appends the redrive of dead letter `dead` to the route (as
 * sl_route_dlq_redrive describes: the failed outputs' message, or with
 * rerun the original), to the partition the route's key picks. Sets
 * *ticket (for on_durable). Returns 0, 1 when the route refuses it for
 * good (its key cannot be read), or -1 with err. Given by core. */
typedef int (*sl_log_redrive_fn)(void *arg, const sl_record *dead, bool rerun, int64_t *ticket,
                                 sl_error *err);

typedef struct sl_log_backend_type {
    /* The keys of `log:` after `connector` (NULL-terminated) and their
     * documentation (core/config.h), for the loader and the reference. */
    const char *const *keys;
    const sl_conf_doc *doc;
    /* Parses the route's `log:` map n (keys checked; `connector` read by
     * core) into *priv from the config's pool; errors go to r. path is
     * "routes.NAME.log". Required. */
    void (*parse)(sl_conf_reader *r, const sl_route_conf *route, const sl_connector_conf *cc,
                  void **priv, const sl_node *n, const char *path);
    /* Opens route's log on connector c: creates the topic when missing, or
     * checks it. No threads yet. Returns NULL with err. */
    sl_log_backend *(*open)(sl_connector *c, const sl_route_conf *route, sl_error *err);
    /* The partition count, fixed once open. */
    int (*partitions)(sl_log_backend *b);
    /* Appends rec to partition p without waiting. Returns a ticket (>= 0)
     * for on_durable, or -1 with err: SL_EFULL under back-pressure (queue
     * full, cluster unreachable), SL_ECLOSED, SL_EINVAL. Thread-safe. */
    int64_t (*append)(sl_log_backend *b, int p, const sl_record *rec, sl_error *err);
    /* Calls fn(arg, offset, NULL) once the record of ticket is durable
     * (offset is its offset in the log), or fn(arg, -1, err) when it never
     * will be; inline when that is known already. Each ticket takes exactly
     * one call. Returns -1 with err (fn never called) for an unknown
     * ticket. Thread-safe. */
    int (*on_durable)(sl_log_backend *b, int64_t ticket, sl_durable_fn fn, void *arg,
                      sl_error *err);
    /* Reads the next records of partition p into out (replacing it), at
     * most max_records, waiting up to timeout_ms for some. Records below
     * `from` that the worker has seen are skipped, unless the partition was
     * assigned anew since the last read (then reading starts where the log's
     * committed offset is). Returns the count (0: none, or p is not this
     * gateway's now), or -1 with err. Called by p's worker only. */
    int (*read)(sl_log_backend *b, int p, int64_t from, size_t max_records, sl_batch *out,
                int timeout_ms, sl_error *err);
    /* Commits next as partition p's next offset to process, when every
     * record before it was delivered. A commit for a partition given up
     * since its records were read is dropped (returns 0): the new owner
     * delivers them again. Returns -1 with err on failure. */
    int (*commit)(sl_log_backend *b, int p, int64_t next, sl_error *err);
    /* Wakes p's worker out of read (stop, pause, rewind). Thread-safe. */
    void (*wake)(sl_log_backend *b, int p);
    /* Optional (NULL: the log keeps fetching while the worker waits):
     * held true stops fetching partition p from the log while its worker
     * waits for an output's breaker (no attempt spent, nothing dropped:
     * what was fetched stays buffered); false fetches again. Fetching
     * stops only there: the backend keeps its group membership alive.
     * Called by p's worker only. */
    void (*hold)(sl_log_backend *b, int p, bool held);
    /* Fills what is known about partition p. Thread-safe, quick. */
    void (*info)(sl_log_backend *b, int p, sl_log_backend_info *out);
    /* Moves every partition this gateway holds back to the first offset at
     * or after timestamp_ms (offset < 0), or to offset. Returns -1 with err. */
    int (*rewind)(sl_log_backend *b, int64_t offset, int64_t timestamp_ms, sl_error *err);
    /* Starts consuming (joins the group) once the workers run. */
    int (*start)(sl_log_backend *b, sl_error *err);
    /* Stops: waits for what was appended to be durable (bounded), gives the
     * partitions up (the workers' last commits go through), leaves the
     * group. Idempotent. */
    void (*stop)(sl_log_backend *b);
    /* Frees b (stopping it first). b may be NULL. */
    void (*free)(sl_log_backend *b);
    /* `reply: sync` across gateways (optional: NULL when the backend cannot
     * carry answers; then only the gateway that works on a message's
     * partition answers it). reply_address starts, on its first call, reading
     * the answers addressed to this gateway, each handed to deliver(arg, id,
     * outcome) on the backend's thread, and returns this gateway's address
     * (valid while b lives), or NULL with err when answers cannot be read.
     * Thread-safe. */
    const char *(*reply_address)(sl_log_backend *b, sl_route_done_fn deliver, void *arg,
                                 sl_error *err);
    /* Sends outcome o of message id to the gateway at address (as
     * reply_address returned there), without waiting; an address that is
     * this gateway's own is ignored. Errors are logged (the waiting request
     * then times out). Called by route workers. */
    void (*reply)(sl_log_backend *b, const char *address, const char *id,
                  const sl_route_outcome *o);
    /* Dead letters (optional: NULL keeps them in the embedded log). Appends
     * rec, which carries the dead-letter headers, to the log's dead letter
     * topic and waits until it is durable. Returns 0, or -1 with err. Called
     * by route workers, before the message's offset is committed. */
    int (*dead_letter)(sl_log_backend *b, const sl_record *rec, sl_error *err);
    /* The name of that topic (for logs); NULL when dead_letter is. */
    const char *(*dead_letter_topic)(sl_log_backend *b);
    /* The admin API's dead letter calls (optional, with dead_letter; NULL:
     * refused). dlq_list is sl_route_dlq_list on the dead letter topic (an
     * entry's offset is a position unique in that topic). dlq_act is
     * sl_route_dlq_redrive (purge false: each picked entry goes through
     * redrive(arg, ...), its append is made durable, then it is marked
     * redriven) or sl_route_dlq_purge (purge true: marked purged); marks are
     * records in the dead letter topic, seen by every gateway. Core
     * serializes the calls per route. Return 0 or -1 with err. */
    int (*dlq_list)(sl_log_backend *b, int64_t from, size_t limit, sl_dlq_entry **out, size_t *n,
                    int64_t *pending, sl_error *err);
    int (*dlq_act)(sl_log_backend *b, const sl_dlq_select *sel, bool purge, const char *by,
                   sl_log_redrive_fn redrive, void *arg, size_t *count, size_t *refused,
                   sl_error *err);
    /* Optional (NULL: each gateway remembers Idempotency-Keys alone): a
     * key -> value store shared by every gateway of the route, for inputs'
     * Idempotency-Key dedupe. idem_open starts it, reading back what was
     * put within window_ms; returns 0 or -1 with err. Thread-safe after:
     * idem_get copies the newest value put for key (by any gateway, once
     * it reached this one) into *val (malloc'd, *len bytes, NUL-terminated)
     * and when it was put into *at_ms, and returns 1; 0 when none within
     * the window (or forgotten). idem_put stores val (NULL: forgets key)
     * here at once and for the other gateways; returns 0 or -1 with err. */
    int (*idem_open)(sl_log_backend *b, uint64_t window_ms, sl_error *err);
    int (*idem_get)(sl_log_backend *b, const char *key, size_t klen, char **val, size_t *len,
                    uint64_t *at_ms);
    int (*idem_put)(sl_log_backend *b, const char *key, size_t klen, const char *val, size_t len,
                    sl_error *err);
    /* Message status across gateways (optional: NULL keeps each gateway's
     * status table to itself). status_open starts putting what the other
     * gateways (and this one) finished into table (sl_status_put), without
     * waiting; table outlives b. Returns 0 or -1 with err. status_finished
     * shares st (a message this gateway's worker finished) without waiting
     * and without fail (a status that cannot be shared is lost). Called by
     * route workers. */
    int (*status_open)(sl_log_backend *b, sl_status *table, sl_error *err);
    void (*status_finished)(sl_log_backend *b, const sl_msg_status *st);
} sl_log_backend_type;

/* Replaces what out holds with copies of recs[0..n) (keys, values and
 * headers, each followed by a NUL as sl_partition_read leaves them), and
 * sets out->next_offset to one past the last record's offset. Returns 0, or
 * -1 with err when memory runs out (out is then empty). */
int sl_batch_fill(sl_batch *out, const sl_record *recs, size_t n, sl_error *err);

#endif
