/* Benchmark of the message status table (core/status.c) as ingest uses it:
 * every accepted message is recorded (the oldest forgotten once the ring of
 * the gateway's capacity is full) and updated when delivered, 64 messages
 * later. Prints nanoseconds per accepted + delivered pair, best of ROUNDS
 * rounds of N messages (wall clock: run it beside a build to compare).
 * Usage: bench_status [N (1000000) [ROUNDS (3)]] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "message.h"
#include "status.h"

#define CAPACITY (1u << 17) /* the gateway's (core/gateway.c) */
#define LAG 64              /* delivered this many messages after being accepted */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One round over n ids: ns per accepted + delivered pair. */
static double round_ns(char (*ids)[SL_ID_LEN + 1], int n)
{
    sl_status *s = sl_status_new(CAPACITY);
    if (!s) {
        fprintf(stderr, "bench_status: out of memory\n");
        exit(1);
    }
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        sl_status_accepted(s, ids[i], "orders", i & 3, i);
        if (i >= LAG)
            sl_status_update(s, ids[i - LAG], SL_MSG_DELIVERED, 1, NULL);
    }
    double ns = (now_s() - t0) * 1e9 / n;
    sl_status_free(s);
    return ns;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    if (n <= LAG || rounds < 1) {
        fprintf(stderr, "usage: bench_status [N > %d [ROUNDS >= 1]]\n", LAG);
        return 2;
    }
    char(*ids)[SL_ID_LEN + 1] = malloc((size_t)n * sizeof *ids);
    if (!ids)
        return 1;
    for (int i = 0; i < n; i++)
        sl_uuid7(ids[i]);
    double best = 0;
    for (int r = 0; r < rounds; r++) {
        double ns = round_ns(ids, n);
        if (r == 0 || ns < best)
            best = ns;
    }
    printf(
        "status table, capacity %u, %d messages: %.0f ns per accepted + delivered (best of %d)\n",
        CAPACITY, n, best, rounds);
    free(ids);
    return 0;
}
