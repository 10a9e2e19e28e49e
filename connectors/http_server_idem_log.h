/* Rebuilding an http_server route's Idempotency-Key table from its log on
 * start: every request's key is a header ("idempotency-key") of its
 * message's record, so the key and the message become durable in the same
 * append, and the records of the dedupe window hold every key answered
 * 202. */
#ifndef SLUICE_HTTP_SERVER_IDEM_LOG_H
#define SLUICE_HTTP_SERVER_IDEM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_server_idem.h"
#include "log.h"

/* Builds, into *out, the answer the request of message id (appended at
 * partition/offset) got. out's pointers may point into storage of the
 * callee valid until the next call. */
typedef void (*sl_idem_answer_fn)(void *arg, const char *id, int partition, int64_t offset,
                                  sl_idem_answer *out);

typedef struct sl_idem_rebuild_stats {
    size_t scanned; /* records read (those of the window) */
    size_t keyed;   /* of which with an Idempotency-Key */
    size_t held;    /* keys in the table afterwards */
    bool overflow;  /* more keys than the table holds: the newest were kept */
    bool failed;    /* a partition could not be read to its end (logged) */
} sl_idem_rebuild_stats;

/* Puts into t (fresh, not yet used by requests) every key found in the
 * records of parts[0..n) stamped within window_ms before now_ms (found
 * through the time index), with the answer fn builds, oldest first. When
 * the window holds more keys than t's capacity, the newest capacity keys
 * are kept (a second pass reads just those, by offset). Keys longer than
 * key_max are skipped (their requests were refused). Fills *st. Never
 * fails: what cannot be read is logged (naming `what`, e.g. the route's
 * topic) and counted as failed. */
void sl_idem_rebuild(const char *what, sl_idem *t, sl_partition *const *parts, int n,
                     uint64_t window_ms, uint64_t now_ms, size_t key_max, sl_idem_answer_fn fn,
                     void *arg, sl_idem_rebuild_stats *st);

#endif
