/* Offline verification of an event log's data_dir (`sluice log verify`):
 * every record of every segment is decoded and checked, without opening the
 * log (nothing is locked, recovered or cut). */
#ifndef SLUICE_LOG_VERIFY_H
#define SLUICE_LOG_VERIFY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Checks every segment under data_dir/topics and prints one line per
 * damaged range to out ("TOPIC/P SEGMENT: offsets A..B unreadable, bytes
 * X..Y: REASON"). Sets *bad to the number of ranges and *records to the
 * records that read. Returns 0, or -1 (errno) when data_dir/topics cannot
 * be listed. Reads only; safe while a gateway runs, though it may then see
 * a record half written. */
int sl_log_verify(const char *data_dir, FILE *out, size_t *bad, uint64_t *records);

#endif
