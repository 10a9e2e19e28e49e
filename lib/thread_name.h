/* Thread names: what `top -H`, `ps -L`, perf and gdb show for each of the
 * gateway's threads (log flusher, route workers, connector loops), so an
 * operator can tell which one is busy or stuck. */
#ifndef SLUICE_LIB_THREAD_NAME_H
#define SLUICE_LIB_THREAD_NAME_H

#include <pthread.h>

/* Names thread t with the printf-style fmt, cut to the 15 bytes Linux
 * keeps. Best effort: a name that cannot be set leaves the thread as it
 * was (the name is only for people reading process listings). */
void sl_thread_name(pthread_t t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
