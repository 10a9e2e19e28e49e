/* AMQP throughput benchmark (rabbitmq-c): one thread publishes N messages of
 * SIZE bytes with publisher confirms (a window of outstanding confirms) while
 * another consumes and acks them; the time runs from the first publish to
 * the last delivery. "direct" measures RabbitMQ alone (publish and consume
 * one queue); "through" publishes to one queue and consumes another, with
 * the Sluice gateway routing between them (tests/bench/amqp_bench.sh);
 * "relay" does the same with an ideal forwarder in this process instead of
 * the gateway (consume IN, publish to OUT with confirms, ack after the
 * confirms, no log): the broker's own cost of two hops.
 *
 *   amqp_bench URL direct N SIZE QUEUE
 *   amqp_bench URL through N SIZE IN_QUEUE OUT_QUEUE
 *   amqp_bench URL relay N SIZE IN_QUEUE OUT_QUEUE */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__has_include) && __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

#define CH 1
#define WINDOW 2000 /* publishes outstanding before waiting for confirms */

static const char *g_url;
static long g_n;
static size_t g_size;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("amqp_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static amqp_connection_state_t open_conn(void)
{
    char *url = strdup(g_url);
    struct amqp_connection_info ci;
    if (!url || amqp_parse_url(url, &ci) != AMQP_STATUS_OK)
        die("bad URL %s", g_url);
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (!s || amqp_socket_open(s, ci.host, ci.port) != AMQP_STATUS_OK)
        die("cannot connect to %s:%d", ci.host, ci.port);
    amqp_rpc_reply_t r = amqp_login(c, ci.vhost && *ci.vhost ? ci.vhost : "/", 0, 131072, 0,
                                    AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        die("login failed");
    amqp_channel_open(c, CH);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
        die("channel.open failed");
    free(url);
    return c;
}

static void close_conn(amqp_connection_state_t c)
{
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

typedef struct consumer {
    const char *queue;
    double done_at;
    long got;
} consumer;

static void *consume_main(void *arg)
{
    consumer *k = arg;
    amqp_connection_state_t c = open_conn();
    amqp_basic_qos(c, CH, 0, 1000, 0);
    amqp_basic_consume(c, CH, amqp_cstring_bytes(k->queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
        die("basic.consume %s failed", k->queue);
    uint64_t acked = 0;
    while (k->got < g_n) {
        amqp_maybe_release_buffers(c);
        amqp_envelope_t e;
        struct timeval tv = {120, 0};
        amqp_rpc_reply_t r = amqp_consume_message(c, &e, &tv, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL)
            die("consume: stalled after %ld messages", k->got);
        k->got++;
        if (e.delivery_tag - acked >= 100 || k->got == g_n) {
            amqp_basic_ack(c, CH, e.delivery_tag, 1);
            acked = e.delivery_tag;
        }
        amqp_destroy_envelope(&e);
    }
    k->done_at = now_s();
    close_conn(c);
    return NULL;
}

static void wait_confirms(amqp_connection_state_t c, uint64_t upto, uint64_t *confirmed)
{
    while (*confirmed < upto) {
        amqp_frame_t f;
        if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK)
            die("waiting for confirms: connection lost");
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            if (a->delivery_tag > *confirmed)
                *confirmed = a->delivery_tag;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            die("a publish was nacked");
        }
    }
}

/* The ideal forwarder of "relay": consumes in_q, publishes each message to
 * out_q on a confirm-mode connection, and acks a batch once its confirms
 * are in. */
static void *relay_main(void *arg)
{
    const char *const *qs = arg;
    amqp_connection_state_t c = open_conn(), p = open_conn();
    amqp_basic_qos(c, CH, 0, 2000, 0);
    amqp_basic_consume(c, CH, amqp_cstring_bytes(qs[0]), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    amqp_confirm_select(p, CH);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL ||
        amqp_get_rpc_reply(p).reply_type != AMQP_RESPONSE_NORMAL)
        die("relay setup failed");
    uint64_t published = 0, confirmed = 0, last_tag = 0;
    long done = 0, batch = 0;
    while (done < g_n) {
        amqp_maybe_release_buffers(c);
        amqp_envelope_t e;
        struct timeval tv = {0, batch ? 0 : 100000};
        amqp_rpc_reply_t r = amqp_consume_message(c, &e, &tv, 0);
        bool got = r.reply_type == AMQP_RESPONSE_NORMAL;
        if (!got && !(r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                      r.library_error == AMQP_STATUS_TIMEOUT))
            die("relay: consume failed");
        if (got) {
            if (amqp_basic_publish(p, CH, amqp_empty_bytes, amqp_cstring_bytes(qs[1]), 0, 0,
                                   &e.message.properties, e.message.body) != AMQP_STATUS_OK)
                die("relay: publish failed");
            published++;
            last_tag = e.delivery_tag;
            batch++;
            done++;
            amqp_destroy_envelope(&e);
        }
        if (batch && (!got || batch >= 500 || done == g_n)) {
            wait_confirms(p, published, &confirmed);
            amqp_basic_ack(c, CH, last_tag, 1);
            batch = 0;
        }
    }
    close_conn(c);
    close_conn(p);
    return NULL;
}

static void publish_all(const char *queue)
{
    amqp_connection_state_t c = open_conn();
    amqp_confirm_select(c, CH);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
        die("confirm.select failed");
    char *body = malloc(g_size + 1);
    if (!body)
        die("out of memory");
    uint64_t confirmed = 0;
    for (long i = 0; i < g_n; i++) {
        int n =
            snprintf(body, g_size + 1, "{\"key\":\"k%ld\",\"seq\":%ld,\"pad\":\"", i % 16, i / 16);
        size_t len = (size_t)n < g_size ? (size_t)n : g_size;
        memset(body + len, 'x', g_size - len);
        if (g_size >= len + 2)
            memcpy(body + g_size - 2, "\"}", 2);
        amqp_basic_properties_t p;
        memset(&p, 0, sizeof p);
        p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
        p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
        p.content_type = amqp_cstring_bytes("application/json");
        amqp_bytes_t b = {.len = g_size, .bytes = body};
        if (amqp_basic_publish(c, CH, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &p, b) !=
            AMQP_STATUS_OK)
            die("publish failed");
        if ((uint64_t)(i + 1) - confirmed >= WINDOW)
            wait_confirms(c, (uint64_t)(i + 1) - WINDOW / 2, &confirmed);
    }
    wait_confirms(c, (uint64_t)g_n, &confirmed);
    free(body);
    close_conn(c);
}

int main(int argc, char **argv)
{
    if (argc < 6)
        die("usage: amqp_bench URL direct N SIZE QUEUE | URL through|relay N SIZE IN_Q OUT_Q");
    g_url = argv[1];
    const char *mode = argv[2];
    g_n = atol(argv[3]);
    g_size = (size_t)atol(argv[4]);
    bool relay = strcmp(mode, "relay") == 0;
    bool through = relay || strcmp(mode, "through") == 0;
    if (g_n <= 0 || g_size < 40 || (through && argc < 7))
        die("bad arguments");
    const char *in_q = argv[5], *out_q = through ? argv[6] : argv[5];
    consumer k = {.queue = out_q};
    pthread_t t, tr;
    const char *qs[2] = {in_q, out_q};
    double t0 = now_s();
    if (pthread_create(&t, NULL, consume_main, &k) != 0 ||
        (relay && pthread_create(&tr, NULL, relay_main, (void *)qs) != 0))
        die("cannot start the consumer");
    publish_all(in_q);
    double published = now_s();
    pthread_join(t, NULL);
    if (relay)
        pthread_join(tr, NULL);
    double secs = k.done_at - t0;
    printf("%s: %ld messages of %zu bytes in %.2f s (published in %.2f s): %.0f msg/s\n", mode, g_n,
           g_size, secs, published - t0, (double)g_n / secs);
    return 0;
}
