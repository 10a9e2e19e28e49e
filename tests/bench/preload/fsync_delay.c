/* An LD_PRELOAD shim for benchmarks that makes a slow-disk day
 * reproducible (tests/bench/kafka_bench.sh FSYNC_DELAY_US=...): fdatasync
 * and fsync call the real function, then sleep $FSYNC_DELAY_US microseconds
 * (0 or unset: no delay) before returning, so every durable write costs at
 * least that much more. Only the process it is preloaded into is slowed.
 * With FSYNC_STALL_FILE=PATH, while PATH exists the calls do not return
 * (they look every 5 ms): durability stalls until the file is removed
 * (tests/integration/test_kafka.py uses it).
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
#include <unistd.h>

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

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Sleeps the configured delay, then while the stall file exists, keeping
 * the caller's errno. */
static void pause_after(void)
{
    const char *stall = getenv("FSYNC_STALL_FILE");
    long us = delay();
    if (us == 0 && !stall)
        return;
    int saved = errno;
    if (us > 0)
        sleep_us(us);
    while (stall && access(stall, F_OK) == 0)
        sleep_us(5000);
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
