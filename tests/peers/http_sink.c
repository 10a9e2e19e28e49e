/* A fast HTTP sink for benchmarks and load tests: answers every request with
 * 200 (or a configured status for the first N), counts messages, and measures
 * ingest-to-delivery latency from the UUIDv7 timestamp in X-Message-Id.
 * GET /stats returns {"count":N,"p50_ms":..,"p99_ms":..,"max_ms":..};
 * POST /reset clears the counters. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LAT_BUCKETS 60001 /* 0..60000 ms, one per ms */

static atomic_uint_fast64_t count;
static atomic_uint_fast64_t lat[LAT_BUCKETS];
static long fail_first;
static int fail_status = 503;
static atomic_long seen;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The first 48 bits of a UUIDv7 are its Unix time in ms. */
static int64_t uuid7_ms(const char *id)
{
    if (!id || strlen(id) < 13)
        return -1;
    char hex[13];
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = '\0';
    return strtoll(hex, NULL, 16);
}

static void percentiles(uint64_t *p50, uint64_t *p99, uint64_t *max)
{
    uint64_t total = 0;
    for (int i = 0; i < LAT_BUCKETS; i++)
        total += atomic_load(&lat[i]);
    *p50 = *p99 = *max = 0;
    uint64_t acc = 0;
    for (int i = 0; i < LAT_BUCKETS; i++) {
        uint64_t c = atomic_load(&lat[i]);
        if (!c)
            continue;
        acc += c;
        if (*p50 == 0 && acc * 2 >= total)
            *p50 = (uint64_t)i;
        if (*p99 == 0 && acc * 100 >= total * 99)
            *p99 = (uint64_t)i;
        *max = (uint64_t)i;
    }
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **state)
{
    if (*state == NULL) {
        *state = (void *)1;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* discard the body */
        return MHD_YES;
    }
    if (strcmp(url, "/stats") == 0) {
        uint64_t p50, p99, max;
        percentiles(&p50, &p99, &max);
        char buf[256];
        snprintf(buf, sizeof buf,
                 "{\"count\":%llu,\"p50_ms\":%llu,\"p99_ms\":%llu,\"max_ms\":%llu}\n",
                 (unsigned long long)atomic_load(&count), (unsigned long long)p50,
                 (unsigned long long)p99, (unsigned long long)max);
        return reply(c, 200, buf);
    }
    if (strcmp(url, "/reset") == 0) {
        atomic_store(&count, 0);
        for (int i = 0; i < LAT_BUCKETS; i++)
            atomic_store(&lat[i], 0);
        return reply(c, 200, "{}\n");
    }
    if (atomic_fetch_add(&seen, 1) < fail_first)
        return reply(c, (unsigned)fail_status, "failing on purpose\n");
    const char *id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Message-Id");
    int64_t t = uuid7_ms(id);
    if (t > 0) {
        int64_t d = now_ms() - t;
        if (d < 0)
            d = 0;
        if (d >= LAT_BUCKETS)
            d = LAT_BUCKETS - 1;
        atomic_fetch_add(&lat[d], 1);
    }
    atomic_fetch_add(&count, 1);
    return reply(c, 200, "ok\n");
}

int main(int argc, char **argv)
{
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--fail-first") == 0)
            fail_first = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--fail-status") == 0)
            fail_status = atoi(argv[i + 1]);
    }
    if (port <= 0) {
        fprintf(stderr, "usage: http_sink --port N [--fail-first N] [--fail-status CODE]\n");
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO, (uint16_t)port, NULL, NULL, handler, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, 2u,
        MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "http_sink: cannot listen on port %d\n", port);
        return 1;
    }
    printf("http_sink listening on 127.0.0.1:%d\n", port);
    fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
