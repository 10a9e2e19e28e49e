/* One log record as a JSON object, the shape `sluice log dump` prints and
 * GET /v1/topics/TOPIC/records answers: topic, partition, offset,
 * timestamp, key, headers, value. One writer for the CLI and the admin API. */
#ifndef SLUICE_LOG_JSON_H
#define SLUICE_LOG_JSON_H

#include "buf.h"
#include "log.h"

/* Appends r (read from partition part of topic) to b as one compact JSON
 * object, without a newline. Strings are escaped as the file output writes
 * them (bytes outside valid UTF-8 as \u00XX); a record without a key has
 * "key":null. Out of memory sets b->oom (see sl_buf). Thread-safe. */
void sl_log_record_json(sl_buf *b, const char *topic, int part, const sl_record *r);

#endif
