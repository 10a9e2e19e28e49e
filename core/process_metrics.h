/* Process metrics for /metrics: build info, CPU time, resident memory, open
 * file descriptors and start time of the gateway process, read from /proc
 * at every scrape. */
#ifndef SLUICE_PROCESS_METRICS_H
#define SLUICE_PROCESS_METRICS_H

#include "metrics.h"

/* Registers sluice_build_info{version} (always 1) and the sluice_process_*
 * gauges on m. Each gauge reads /proc/self when scraped (a value that cannot
 * be read is reported as -1). Call once per registry; the gauges take no
 * argument that could be freed, so they need no removal. */
void sl_process_metrics_register(sl_metrics *m);

#endif
