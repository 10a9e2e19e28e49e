/* `sluice log ls|dump|tail|replay --admin [https://]HOST:PORT`: the log of a running
 * gateway, read (and rewound) through its admin API, printed as the offline
 * commands print a data_dir. */
#ifndef SLUICE_LOG_REMOTE_H
#define SLUICE_LOG_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include "admin_client.h"

/* Where and how to reach the admin API: addr is [http://|https://]HOST:PORT;
 * token may be NULL (no auth); tls applies to https://. */
typedef struct sl_log_remote {
    const char *addr;
    const char *token;
    sl_admin_tls tls;
    int timeout_ms;
} sl_log_remote;

/* Prints the topics with their partitions and start/end offsets, as
 * `sluice log ls` does. Returns the exit code: 0, or 1 with a message on
 * stderr (unreachable, refused token, error answer). */
int sl_log_remote_ls(const sl_log_remote *r);

/* Prints the records of topic (partition part, or every partition when part
 * < 0) as JSON lines: from offset from, or, when tail, the last count (10
 * when count < 0); at most count records per partition when count >= 0.
 * With follow, keeps polling for new records until the process is killed.
 * Returns the exit code (0, 1, 2 for a bad topic name). */
int sl_log_remote_dump(const sl_log_remote *r, const char *topic, int part, int64_t from,
                       int64_t count, bool tail, bool follow);

/* POSTs route's rewind to from (an offset, all digits, or an RFC 3339
 * time) and prints the answer. Returns 0 when the API answered 200, else 1
 * (2 for a bad route name). */
int sl_log_remote_replay(const sl_log_remote *r, const char *route, const char *from);

#endif
