/* Message status from the log itself, for ids the in-memory status table
 * does not hold (accepted before a restart, or forgotten when it was full):
 * the id (a UUIDv7) gives the time, the time index of each route's topic
 * gives the record, the route's committed offset and dead letter topic give
 * the state. Nothing is kept in memory. */
#ifndef SLUICE_STATUS_LOG_H
#define SLUICE_STATUS_LOG_H

#include "route.h"
#include "status.h"

/* Finds message id (a UUIDv7; any other id is not found) in the topics of
 * routes[0..n) of log, scanning each partition from the first record
 * stamped SL_STATUS_LOG_SKEW_MS before the id's time until a record stamped
 * that much after it (at most SL_STATUS_LOG_MAX_SCAN records per
 * partition). The last copy found in the first route that has one wins.
 * Fills out: offset at or past the route's committed offset = accepted
 * (retrying, with the partition's attempts and last error, when it is the
 * record the worker is retrying); below it = dead_lettered when the route's
 * dead letter topic holds it for that offset (attempts and error from its
 * headers), else delivered (a message a step dropped also reads
 * delivered). Returns 0, or -1 when not found. Thread-safe; reads the log. */
int sl_status_from_log(sl_log *log, sl_route *const *routes, size_t n, const char *id,
                       sl_msg_status *out);

#define SL_STATUS_LOG_SKEW_MS 2000
#define SL_STATUS_LOG_MAX_SCAN 100000

#endif
