/* An LD_PRELOAD shim for benchmarks that makes a slow-disk day
 * reproducible (tests/bench/kafka_bench.sh FSYNC_DELAY_US=...): fdatasync
 * and fsync call the real function, then sleep $FSYNC_DELAY_US microseconds
 * (0 or unset: no delay) before returning, so every durable write costs at
 * least that much more. Only the process it is preloaded into is slowed.
 * Build (one command):
 *   cc -O2 -shared -fPIC -o build-rel/fsync_delay.so
 *      tests/bench/preload/fsync_delay.c -ldl */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

static int (*real_fdatasync)(int);
static int (*real_fsync)(int);
static long delay_us = -1; /* -1: not read yet */

/* Reads FSYNC_DELAY_US once (a benign race: every thread reads the same). */
static long delay(void)
{
    if (delay_us < 0) {
        const char *s = getenv("FSYNC_DELAY_US");
        long v = s ? strtol(s, NULL, 10) : 0;
        delay_us = v > 0 ? v : 0;
    }
    return delay_us;
}

/* Sleeps the configured delay, keeping the caller's errno. */
static void pause_after(void)
{
    long us = delay();
    if (us == 0)
        return;
    int saved = errno;
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
    errno = saved;
}

/* fdatasync(2), then the delay. */
int fdatasync(int fd)
{
    if (!real_fdatasync)
        real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int rc = real_fdatasync(fd);
    pause_after();
    return rc;
}

/* fsync(2), then the delay. */
int fsync(int fd)
{
    if (!real_fsync)
        real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int rc = real_fsync(fd);
    pause_after();
    return rc;
}
