/* GET /v1/routes/NAME/tail (see admin_tail.h): one tail subscriber per
 * stream; MHD pulls the stream through a content reader that formats the
 * subscriber's events as Server-Sent Events and suspends the connection
 * when there is nothing to send (the first publisher after that resumes
 * it), so a stream costs the admin thread nothing while it waits and a slow
 * client costs the route only the drops of its own ring. */
#include "admin_tail.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "json_escape.h"
#include "logging.h"
#include "tail.h"
#include "thread_name.h"

#define PING_EVERY_MS 10000
#define END_WAIT_MS 2000          /* for the streams to send their end at a stop */
#define CLOSE_WAIT_MS 5000        /* for the ones that did not to be closed */
#define STREAM_SNDBUF (32 * 1024) /* kernel bytes a stream may have in flight */

/* One open stream: what MHD's reader still has to send, and its client. */
typedef struct tail_stream {
    sl_admin_tail *owner; /* counts it until MHD frees it */
    struct tail_stream *prev, *next;
    sl_tail *tail;
    sl_tail_client *client;
    struct MHD_Connection *conn;
    char route[128];
    bool hello_sent;
    char buf[4096];
    size_t len, pos; /* buf[pos..len) is still to send */
} tail_stream;

struct sl_admin_tail {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    tail_stream *streams; /* open ones (mu) */
    pthread_cond_t gone;  /* a stream was freed */
    sl_gateway *gw;
};

static void wake_conn(void *arg)
{
    MHD_resume_connection(arg);
}

static void sleep_conn(void *arg)
{
    MHD_suspend_connection(arg);
}

/* Appends s[0..n) escaped as a JSON string (with quotes) to ts->buf. */
static void put_json_string(tail_stream *ts, const char *s, size_t n)
{
    ts->buf[ts->len++] = '"';
    sl_json_escape_cstr(s, n, SL_JSON_ESC_REPLACE, ts->buf, sizeof ts->buf - 64, &ts->len);
    ts->buf[ts->len++] = '"';
}

static void put(tail_stream *ts, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(tail_stream *ts, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(ts->buf + ts->len, sizeof ts->buf - ts->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        ts->len += (size_t)n < sizeof ts->buf - ts->len ? (size_t)n : sizeof ts->buf - ts->len - 1;
}

/* Formats ev as one SSE event into ts->buf. */
static void format_event(tail_stream *ts, const sl_tail_event *ev)
{
    put(ts, "event: %s\ndata: {\"event\":\"%s\",\"id\":\"%s\",\"key\":", ev->kind, ev->kind,
        ev->id);
    if (ev->has_key)
        put_json_string(ts, ev->key, strlen(ev->key));
    else
        put(ts, "null");
    put(ts,
        ",\"partition\":%d,\"offset\":%" PRId64 ",\"size\":%zu,\"ts\":%" PRId64
        ",\"truncated\":%s,\"preview\":",
        ev->partition, ev->offset, ev->size, ev->ts_ms,
        ev->size > ev->preview_len ? "true" : "false");
    put_json_string(ts, ev->preview, ev->preview_len);
    put(ts, "}\n\n");
}

/* Fills ts->buf with the next thing to send. Returns 1 when there is some,
 * 0 when the connection was suspended (nothing yet), -1 at the end. */
static int refill(tail_stream *ts)
{
    ts->len = ts->pos = 0;
    if (!ts->hello_sent) {
        ts->hello_sent = true;
        put(ts, "retry: 2000\nevent: hello\ndata: {\"route\":");
        put_json_string(ts, ts->route, strlen(ts->route));
        put(ts, ",\"ring\":%d,\"preview\":%d}\n\n", SL_TAIL_RING, SL_TAIL_PREVIEW);
        return 1;
    }
    sl_tail_event ev;
    uint64_t dropped = 0;
    switch (sl_tail_next(ts->client, &ev, &dropped, sleep_conn, ts->conn)) {
        case SL_TAIL_EVENT:
            format_event(ts, &ev);
            return 1;
        case SL_TAIL_DROPS:
            put(ts, "event: dropped\ndata: {\"dropped\":%" PRIu64 "}\n\n", dropped);
            return 1;
        case SL_TAIL_PING:
            put(ts, ": ping\n\n");
            return 1;
        case SL_TAIL_CLOSED:
            return -1;
        case SL_TAIL_EMPTY:
        default:
            return 0;
    }
}

/* MHD's content reader: the admin thread. */
static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    tail_stream *ts = cls;
    (void)pos;
    if (ts->pos == ts->len) {
        int rc = refill(ts);
        if (rc < 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (rc == 0)
            return 0; /* suspended until a publisher resumes it */
    }
    size_t n = ts->len - ts->pos < max ? ts->len - ts->pos : max;
    memcpy(buf, ts->buf + ts->pos, n);
    ts->pos += n;
    return (ssize_t)n;
}

/* MHD frees the response: the connection is done with the stream. */
static void free_stream(void *cls)
{
    tail_stream *ts = cls;
    sl_admin_tail *t = ts->owner;
    sl_tail_unsubscribe(ts->tail, ts->client);
    pthread_mutex_lock(&t->mu);
    if (ts->prev != NULL)
        ts->prev->next = ts->next;
    else
        t->streams = ts->next;
    if (ts->next != NULL)
        ts->next->prev = ts->prev;
    pthread_cond_broadcast(&t->gone);
    pthread_mutex_unlock(&t->mu);
    free(ts);
}

/* Adds ts to t's open streams. */
static void add_stream(sl_admin_tail *t, tail_stream *ts)
{
    ts->owner = t;
    pthread_mutex_lock(&t->mu);
    ts->next = t->streams;
    if (t->streams != NULL)
        t->streams->prev = ts;
    t->streams = ts;
    pthread_mutex_unlock(&t->mu);
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned status, const char *json)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result sl_admin_tail_serve(sl_admin_tail *t, struct MHD_Connection *conn, sl_route *r)
{
    tail_stream *ts = t != NULL ? calloc(1, sizeof *ts) : NULL;
    if (ts == NULL)
        return answer_text(conn, 500, "{\"error\":\"internal\",\"detail\":\"out of memory\"}");
    ts->tail = sl_route_tail(r);
    ts->conn = conn;
    snprintf(ts->route, sizeof ts->route, "%s", sl_route_name(r));
    ts->client = sl_tail_subscribe(ts->tail, wake_conn, conn);
    if (ts->client == NULL) {
        free(ts);
        return answer_text(conn, 503,
                           "{\"error\":\"too_many_streams\",\"detail\":\"this route has its "
                           "maximum of live tails open\"}");
    }
    add_stream(t, ts);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, read_stream, ts, free_stream);
    if (resp == NULL) {
        free_stream(ts);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    /* a client that stops reading gets drops counted in its ring, not
     * megabytes queued in the kernel's send buffer for it */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci != NULL) {
        int sndbuf = STREAM_SNDBUF;
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
    /* a stream may be quiet for long: the pings keep it, not the idle timeout */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)0);
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Pings every route's streams every PING_EVERY_MS until told to stop. */
static void *ping_main(void *arg)
{
    sl_admin_tail *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += PING_EVERY_MS / 1000;
        pthread_cond_timedwait(&t->cv, &t->mu, &until);
        if (t->stop)
            break;
        pthread_mutex_unlock(&t->mu);
        size_t n = 0;
        sl_route *const *routes = sl_gateway_routes(t->gw, &n);
        for (size_t i = 0; i < n; i++)
            sl_tail_ping(sl_route_tail(routes[i]));
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

sl_admin_tail *sl_admin_tail_start(sl_gateway *gw)
{
    sl_admin_tail *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->gw = gw;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    pthread_cond_init(&t->gone, NULL);
    if (pthread_create(&t->thread, NULL, ping_main, t) != 0) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        pthread_cond_destroy(&t->gone);
        free(t);
        return NULL;
    }
    sl_thread_name(t->thread, "sl-tail-ping");
    return t;
}

/* Waits up to ms for t's streams to be freed (t->mu held). True when they
 * are. */
static bool wait_streams(sl_admin_tail *t, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (t->streams != NULL)
        if (pthread_cond_timedwait(&t->gone, &t->mu, &until) != 0)
            break;
    return t->streams == NULL;
}

/* Shuts down the sockets of t's streams (t->mu held): MHD closes them. */
static void cut_streams(sl_admin_tail *t)
{
    size_t n = 0;
    for (tail_stream *ts = t->streams; ts != NULL; ts = ts->next, n++) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(ts->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci != NULL)
            shutdown(ci->connect_fd, SHUT_RDWR);
    }
    sl_warn("admin", "%zu live tail stream(s) did not take their end; closing them", n);
}

void sl_admin_tail_stop(sl_admin_tail *t, sl_gateway *gw)
{
    size_t n = 0;
    sl_route *const *routes = sl_gateway_routes(gw, &n);
    for (size_t i = 0; i < n; i++)
        sl_tail_close(sl_route_tail(routes[i]));
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->cv);
    bool done = wait_streams(t, END_WAIT_MS);
    if (!done) {
        cut_streams(t); /* a client that does not read its end */
        done = wait_streams(t, CLOSE_WAIT_MS);
    }
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    if (!done) {
        sl_err("admin", "live tail streams still open after the stop; leaking their state");
        return;
    }
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    pthread_cond_destroy(&t->gone);
    free(t);
}
