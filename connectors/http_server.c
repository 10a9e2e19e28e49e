/* The http_server input connector (SPEC.md section 4): one libmicrohttpd
 * daemon per connector; each attached route takes requests on its path,
 * appends them to its log topic and answers 202 once the append is durable
 * (or, with `reply: sync`, the route's result). Handlers never block: the
 * connection is suspended and resumed by the log's flusher, the route worker
 * or this connector's timer thread. */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "connector.h"
#include "connector.h"
#include "metrics.h"
#include "http_server.h"
#include "http_listener.h"
#include "http_server_idem.h"
#include "http_server_idem_log.h"
#include "http_server_idem_shared.h"
#include "http_server_util.h"
#include "http_util.h"
#include "json_escape.h"
#include "log.h"
#include "logging.h"
#include "message.h"
#include "metrics.h"
#include "route.h"
#include "thread_name.h"

#define HS_COMPONENT "http_server"
#define HS_IDEM_CAPACITY 65536 /* Idempotency-Key entries kept per route */
#define HS_IDEM_KEY_MAX 255    /* longer keys get 400 */
#ifndef HS_POOL_THREADS
#define HS_POOL_THREADS 2 /* MHD epoll threads per connector */
#endif
#ifndef HS_CONN_MEMORY
#define HS_CONN_MEMORY                                                                             \
    (16 * 1024) /* MHD's per-connection pool: headers and read buffer; MHD                         \
                 * zeroes all of it after every request */
#endif
#define HS_DEFAULT_SYNC_TIMEOUT_MS 5000
#define SL_HDR_CLIENT_SUBJECT "x-client-subject" /* mutual TLS: the verified subject DN */

/* The status codes this connector answers with; their counters are created
 * once so that a request never formats a label. */
enum {
    C_200,
    C_202,
    C_204,
    C_400,
    C_401,
    C_403,
    C_404,
    C_405,
    C_409,
    C_413,
    C_415,
    C_429,
    C_431,
    C_500,
    C_502,
    C_503,
    C_504,
    C_OTHER,
    C_N
};
static const int hs_code_values[C_N] = {200, 202, 204, 400, 401, 403, 404, 405, 409,
                                        413, 415, 429, 431, 500, 502, 503, 504, 0};

typedef struct hs_server hs_server;
typedef struct hs_req hs_req;

/* One route fed by this connector. */
typedef struct hs_route {
    sl_route *route;
    const sl_http_server_input *in;
    const char *name;
    const char *path;
    char allow[96]; /* "POST, PUT": the Allow header of a 405 */
    sl_idem *idem;  /* NULL when dedupe_window is 0 */
    /* idem's keys are shared with the route's other gateways (its log's store) */
    bool idem_shared;
    const char *reply_ctype;
    int reply_output;  /* `reply_from`: the index of that output in the route's `to:`, or -1 */
    hl_bucket *bucket; /* from.rate_limit; NULL when off */
    sl_counter *rate_refused;    /* sluice_http_refused_total{reason="rate_limited"} */
    sl_counter *auth_refused[3]; /* reasons auth_missing, auth_invalid, auth_forbidden */
    char challenge[400];         /* WWW-Authenticate of a 401 */
} hs_route;

/* Deadlines of `reply: sync` requests: a min-heap served by one thread. */
typedef struct hs_timer {
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hs_req **heap;
    size_t n, cap;
    bool stop;  /* the thread must exit */
    bool flush; /* fire every deadline now (shutdown) */
} hs_timer;

struct hs_server {
    sl_connector *c;
    const char *name;
    const char *listen; /* "HOST:PORT", from the connector's config */
    hs_route *routes;
    size_t n_routes;
    hs_listener *listener; /* the daemon, kept across a reload (http_listener.h) */
    int listen_fd;         /* ours until MHD_start_daemon takes it */
    bool quiesced;
    bool stopped;
    char bound[96];
    uint64_t max_body;
    uint64_t dedupe_ms;
    atomic_bool accepting;
    atomic_long inflight; /* appended requests whose connection has not completed */
    atomic_long live;     /* hs_req structs allocated */
    atomic_int_least64_t last_warn_ms;
    pthread_mutex_t drain_mu;
    pthread_cond_t drain_cv;
    sl_counter *codes[C_N];
    sl_histogram *latency;
    hs_timer timer;
    hl_limits *limits; /* connections and read deadlines (the listener's) */
    sl_tls *tls;       /* NULL: plain HTTP (the listener's) */
    bool timer_inited;
    bool drain_inited;
};

/* One request. Owned jointly (refs) by MHD (until NOTIFY_COMPLETED), the
 * durability callback, the route watch and the timer heap; the last holder
 * frees it. Everything after the append is guarded by mu; exactly one answer
 * is chosen (answered) and the connection is resumed at most once. */
struct hs_req {
    hs_server *srv;
    hs_route *rt;
    struct MHD_Connection *conn; /* NULL once MHD completed the request */
    pthread_mutex_t mu;
    int refs;
    bool body_done; /* the final handler call happened */
    bool queued;    /* a response was queued */
    bool too_large;
    bool appended;
    bool suspended;
    bool resumed;
    bool answered;
    bool durable;
    bool durable_failed;
    int durable_code; /* why, when durable_failed (SL_EFULL: the log refused it for now) */
    bool replied;
    bool no_reply; /* delivered, but the reply_from output did not take it (its when:) */
    bool watching;
    bool timed_out;
    int status; /* the chosen answer, once answered */
    char *body;
    size_t body_len, body_cap;
    char id[SL_ID_LEN + 1];
    int partition;
    int64_t offset;
    char err[256];
    sl_msg_state reply_state;
    char *reply_body;
    size_t reply_len;
    char reply_ctype[128]; /* the delivered message's content type, "" for the route's */
    int reply_status;      /* the reply_from output's status (2xx), 0 for 200 */
    char reply_err[256];
    char *idem_key;
    size_t idem_len;
    uint64_t idem_token;
    bool idem_open;
    size_t heap_idx; /* in timer heap, under timer.mu; SIZE_MAX when not there */
    uint64_t deadline_ms;
    struct timespec t0;
    char subject[256]; /* mutual TLS: the client certificate's subject DN */
    bool auth_body;    /* an HMAC signature is checked once the body is in */
};

/* An answer about to be sent. */
typedef struct hs_answer {
    int status;
    char *body; /* points to buf, or malloc'd when heap */
    size_t len;
    bool heap;
    const char *ctype;
    const char *allow;
    const char *www_auth; /* WWW-Authenticate of a 401 */
    int retry_after;      /* seconds; 0: no Retry-After */
    bool replayed;
    char location[80];
    char msg_id[SL_ID_LEN + 1];
    char buf[1024];
} hs_answer;

/* ---- small helpers -------------------------------------------------------- */

static uint64_t mono_ms(void)
{
    return (uint64_t)sl_mono_ms();
}

static uint64_t wall_ms(void)
{
    return (uint64_t)sl_wall_ms();
}

static int code_index(int status)
{
    for (int i = 0; i < C_OTHER; i++)
        if (hs_code_values[i] == status)
            return i;
    return C_OTHER;
}

/* Logs at most one warning a second per connector (back-pressure). */
static bool warn_allowed(hs_server *srv)
{
    int64_t now = (int64_t)mono_ms();
    int64_t last = atomic_load(&srv->last_warn_ms);
    return now - last >= 1000 && atomic_compare_exchange_strong(&srv->last_warn_ms, &last, now);
}

/* Fills a with {"error":error,"detail":detail,"id":id or null}: the only
 * shape of an error answer to an ingest caller (docs/ERRORS.md lists the
 * codes). detail is shown to the caller: it must never carry an internal
 * URL, file path, partner body or traceback (those go to the log and to the
 * message's status on the admin listener). */
static void answer_error(hs_answer *a, int status, const char *error, const char *detail,
                         const char *id)
{
    size_t p = 0;
    memset(a, 0, offsetof(hs_answer, buf));
    a->status = status;
    a->ctype = "application/json";
    p = (size_t)snprintf(a->buf, sizeof a->buf, "{\"error\":\"%s\",\"detail\":\"", error);
    sl_json_escape_cstr(detail, strlen(detail), SL_JSON_ESC_RAW | SL_JSON_ESC_TERMINAL, a->buf,
                        sizeof a->buf - 64, &p);
    if (id != NULL && id[0] != '\0')
        p += (size_t)snprintf(a->buf + p, sizeof a->buf - p, "\",\"id\":\"%s\"}", id);
    else
        p += (size_t)snprintf(a->buf + p, sizeof a->buf - p, "\",\"id\":null}");
    a->body = a->buf;
    a->len = p < sizeof a->buf ? p : sizeof a->buf - 1;
}

/* ---- request lifetime ----------------------------------------------------- */

static hs_req *req_new(hs_server *srv, struct MHD_Connection *conn)
{
    hs_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->srv = srv;
    r->conn = conn;
    r->refs = 1; /* MHD's */
    r->partition = -1;
    r->offset = -1;
    r->heap_idx = SIZE_MAX;
    pthread_mutex_init(&r->mu, NULL);
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    atomic_fetch_add(&srv->live, 1);
    return r;
}

static void req_unref(hs_req *r)
{
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left > 0)
        return;
    hs_server *srv = r->srv;
    pthread_mutex_destroy(&r->mu);
    free(r->body);
    free(r->reply_body);
    free(r->idem_key);
    free(r);
    if (atomic_fetch_sub(&srv->live, 1) == 1) {
        pthread_mutex_lock(&srv->drain_mu);
        pthread_cond_broadcast(&srv->drain_cv);
        pthread_mutex_unlock(&srv->drain_mu);
    }
}

/* ---- timer heap ----------------------------------------------------------- */

static void heap_swap(hs_timer *t, size_t i, size_t j)
{
    hs_req *a = t->heap[i];
    t->heap[i] = t->heap[j];
    t->heap[j] = a;
    t->heap[i]->heap_idx = i;
    t->heap[j]->heap_idx = j;
}

static void heap_up(hs_timer *t, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (t->heap[p]->deadline_ms <= t->heap[i]->deadline_ms)
            break;
        heap_swap(t, i, p);
        i = p;
    }
}

static void heap_down(hs_timer *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->n && t->heap[l]->deadline_ms < t->heap[m]->deadline_ms)
            m = l;
        if (r < t->n && t->heap[r]->deadline_ms < t->heap[m]->deadline_ms)
            m = r;
        if (m == i)
            return;
        heap_swap(t, i, m);
        i = m;
    }
}

/* Removes heap entry i (timer.mu held). */
static void heap_remove(hs_timer *t, size_t i)
{
    hs_req *r = t->heap[i];
    t->n--;
    if (i != t->n) {
        t->heap[i] = t->heap[t->n];
        t->heap[i]->heap_idx = i;
        heap_down(t, i);
        heap_up(t, i);
    }
    r->heap_idx = SIZE_MAX;
}

/* Puts r in the heap; the heap holds a reference (taken by the caller).
 * Returns -1 when out of memory. */
static int timer_add(hs_timer *t, hs_req *r)
{
    pthread_mutex_lock(&t->mu);
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 256;
        hs_req **nh = realloc(t->heap, nc * sizeof *nh);
        if (nh == NULL) {
            pthread_mutex_unlock(&t->mu);
            return -1;
        }
        t->heap = nh;
        t->cap = nc;
    }
    t->heap[t->n] = r;
    r->heap_idx = t->n++;
    heap_up(t, r->heap_idx);
    if (r->heap_idx == 0)
        pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return 0;
}

/* Takes r out of the heap. Returns true when it was there (the caller then
 * owns the heap's reference). */
static bool timer_cancel(hs_timer *t, hs_req *r)
{
    bool was = false;
    pthread_mutex_lock(&t->mu);
    if (r->heap_idx != SIZE_MAX) {
        heap_remove(t, r->heap_idx);
        was = true;
    }
    pthread_mutex_unlock(&t->mu);
    return was;
}

/* ---- settling a request (any thread) -------------------------------------- */

/* Chooses the answer when everything it needs is known (r->mu held).
 * Returns true when this call chose it. */
static bool settle(hs_req *r)
{
    if (r->answered || !r->appended)
        return false;
    if (r->durable_failed)
        r->status = r->durable_code == SL_EFULL ? 503 : 500;
    else if (!r->durable)
        return false;
    else if (!r->rt->in->reply_sync)
        r->status = 202;
    else if (r->replied)
        r->status = r->reply_state == SL_MSG_DELIVERED ? 200
                    : r->reply_state == SL_MSG_DROPPED ? 204
                                                       : 502;
    else if (r->timed_out)
        r->status = 504;
    else
        return false;
    r->answered = true;
    return true;
}

/* What a thread must do after settle() chose the answer, outside r->mu:
 * resume the connection, drop the deadline and the watch. */
typedef struct after_answer {
    struct MHD_Connection *resume;
    bool cancel_timer;
    bool unwatch;
} after_answer;

static void answered_locked(hs_req *r, after_answer *aa)
{
    memset(aa, 0, sizeof *aa);
    if (r->suspended && !r->resumed && r->conn != NULL) {
        r->resumed = true;
        aa->resume = r->conn;
    }
    if (r->rt->in->reply_sync) {
        aa->cancel_timer = true;
        if (r->watching && !r->replied) {
            r->watching = false;
            aa->unwatch = true;
        }
    }
}

static void after_answered(hs_req *r, const after_answer *aa)
{
    hs_server *srv = r->srv;
    if (aa->cancel_timer && timer_cancel(&srv->timer, r))
        req_unref(r);
    if (aa->unwatch && sl_route_unwatch(r->rt->route, r->id) == 0)
        req_unref(r); /* the watch's reference: its callback will never run */
    if (aa->resume != NULL)
        MHD_resume_connection(aa->resume);
}

/* sl_route_on_durable callback: the log's thread, or inline in the handler.
 * offset is the record's (on a log a connector holds, known only now). */
static void on_durable(void *arg, int64_t offset, const sl_error *err)
{
    hs_req *r = arg;
    after_answer aa;
    bool chose;
    pthread_mutex_lock(&r->mu);
    if (err != NULL) {
        r->durable_failed = true;
        r->durable_code = err->code;
        snprintf(r->err, sizeof r->err, "%s", err->msg);
    } else {
        r->durable = true;
        r->offset = offset;
    }
    chose = settle(r);
    if (chose)
        answered_locked(r, &aa);
    pthread_mutex_unlock(&r->mu);
    if (chose)
        after_answered(r, &aa);
    req_unref(r);
}

/* Keeps a copy of the delivered answer o in r (r->mu held); out of memory
 * turns it into a 502. */
static void keep_reply(hs_req *r, const sl_route_outcome *o)
{
    const char *ct = o->content_type;
    if (ct && strlen(ct) < sizeof r->reply_ctype && !strpbrk(ct, "\r\n"))
        snprintf(r->reply_ctype, sizeof r->reply_ctype, "%s", ct);
    r->reply_status = o->replied ? o->status : 0;
    if (o->body == NULL)
        return;
    r->reply_body = malloc(o->body_len + 1);
    if (r->reply_body == NULL) {
        r->reply_state = SL_MSG_DEAD_LETTERED; /* answered as 502 */
        snprintf(r->reply_err, sizeof r->reply_err,
                 "out of memory copying the reply (the message was delivered)");
        return;
    }
    memcpy(r->reply_body, o->body, o->body_len);
    r->reply_body[o->body_len] = '\0';
    r->reply_len = o->body_len;
}

/* sl_route_watch callback: a route worker thread. */
static void on_reply(void *arg, const char *id, const sl_route_outcome *o)
{
    hs_req *r = arg;
    after_answer aa;
    bool chose = false;
    (void)id;
    pthread_mutex_lock(&r->mu);
    r->watching = false;
    if (!r->answered) {
        r->replied = true;
        r->reply_state = o->state;
        if (o->state == SL_MSG_DELIVERED && r->rt->reply_output >= 0 && !o->replied) {
            r->reply_state = SL_MSG_DEAD_LETTERED; /* answered as 502 no_reply */
            r->no_reply = true;
            sl_warn(HS_COMPONENT,
                    "%s: route %s: message %s delivered, but output %s gave no answer to reply "
                    "with (its when:, or over 8 MiB): 502 no_reply",
                    r->srv->name, r->rt->name, r->id, r->rt->in->reply_from);
        } else if (o->state == SL_MSG_DELIVERED) {
            keep_reply(r, o);
        }
        if (o->state != SL_MSG_DELIVERED && o->error != NULL)
            snprintf(r->reply_err, sizeof r->reply_err, "%s", o->error);
        chose = settle(r);
        if (chose)
            answered_locked(r, &aa);
    }
    pthread_mutex_unlock(&r->mu);
    if (chose)
        after_answered(r, &aa);
    req_unref(r);
}

/* A deadline passed (or the connector is stopping): timer thread. */
static void on_timeout(hs_req *r)
{
    after_answer aa;
    pthread_mutex_lock(&r->mu);
    r->timed_out = true;
    bool chose = settle(r);
    if (chose)
        answered_locked(r, &aa);
    pthread_mutex_unlock(&r->mu);
    if (chose)
        after_answered(r, &aa);
    req_unref(r); /* the heap's reference */
}

static void *timer_main(void *arg)
{
    hs_server *srv = arg;
    hs_timer *t = &srv->timer;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        if (t->n == 0) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        hs_req *top = t->heap[0];
        uint64_t now = mono_ms();
        if (!t->flush && top->deadline_ms > now) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait = top->deadline_ms - now;
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
            continue;
        }
        heap_remove(t, 0);
        pthread_mutex_unlock(&t->mu);
        on_timeout(top);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* ---- sending -------------------------------------------------------------- */

/* Stores the answer under the request's Idempotency-Key when the message was
 * durably appended (2xx, and 502/504 too: a repeat must not append a second
 * copy), or forgets the key (errors before the append, 500 not durable) so
 * that the client can retry. Called once per claimed key. */
static void idem_close(hs_req *r, const hs_answer *a)
{
    if (!r->idem_open)
        return;
    r->idem_open = false;
    sl_idem_answer ans = {0};
    if (a != NULL && !(r->answered && r->durable && !r->durable_failed))
        a = NULL;
    if (a != NULL) {
        ans.status = a->status;
        ans.body = a->body;
        ans.body_len = a->len;
        ans.content_type = (char *)a->ctype;
        ans.location = a->location[0] ? (char *)a->location : NULL;
    }
    if (r->rt->idem_shared)
        hs_idem_shared_close(r->rt->route, r->idem_key, r->idem_len, a != NULL ? &ans : NULL);
    if (sl_idem_finish(r->rt->idem, r->idem_key, r->idem_len, r->idem_token,
                       a != NULL ? &ans : NULL, wall_ms()) != 0)
        sl_warn(HS_COMPONENT, "%s: out of memory storing the answer for an Idempotency-Key",
                r->srv->name);
}

static enum MHD_Result send_answer(hs_req *r, struct MHD_Connection *conn, hs_answer *a)
{
    hs_server *srv = r->srv;
    struct MHD_Response *resp;
    if (r->rt != NULL && r->idem_open)
        idem_close(r, a);
    if (a->heap) {
        resp = MHD_create_response_from_buffer(a->len, a->body, MHD_RESPMEM_MUST_FREE);
        if (resp == NULL)
            free(a->body);
    } else {
        resp = MHD_create_response_from_buffer(a->len, a->body, MHD_RESPMEM_MUST_COPY);
    }
    a->heap = false;
    a->body = NULL;
    if (resp == NULL)
        return MHD_NO; /* out of memory: MHD closes the connection */
    if (a->ctype != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->ctype);
    if (a->location[0] != '\0')
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, a->location);
    if (a->allow != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, a->allow);
    if (a->www_auth != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, a->www_auth);
    if (a->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", a->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (a->replayed)
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    if (a->msg_id[0] != '\0')
        MHD_add_response_header(resp, "X-Message-Id", a->msg_id);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)a->status, resp);
    MHD_destroy_response(resp);
    r->queued = true;
    sl_counter_add(srv->codes[code_index(a->status)], 1);
    if (srv->latency != NULL) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double s =
            (double)(now.tv_sec - r->t0.tv_sec) + (double)(now.tv_nsec - r->t0.tv_nsec) / 1e9;
        sl_histogram_observe(srv->latency, s);
    }
    return ret;
}

static enum MHD_Result send_error(hs_req *r, struct MHD_Connection *conn, int status,
                                  const char *error, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static enum MHD_Result send_error(hs_req *r, struct MHD_Connection *conn, int status,
                                  const char *error, const char *fmt, ...)
{
    hs_answer a;
    char detail[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    answer_error(&a, status, error, detail, NULL);
    return send_answer(r, conn, &a);
}

/* Builds the 202 answer for message id appended to rt at partition/offset:
 * {"id","route","partition","offset"} and its Location. */
static void build_accepted(hs_answer *a, const hs_route *rt, const char *id, int partition,
                           int64_t offset)
{
    memset(a, 0, offsetof(hs_answer, buf));
    a->status = 202;
    a->ctype = "application/json";
    size_t p = (size_t)snprintf(a->buf, sizeof a->buf, "{\"id\":\"%s\",\"route\":\"", id);
    sl_json_escape_cstr(rt->name, strlen(rt->name), SL_JSON_ESC_RAW | SL_JSON_ESC_TERMINAL, a->buf,
                        sizeof a->buf - 64, &p);
    p += (size_t)snprintf(a->buf + p, sizeof a->buf - p,
                          "\",\"partition\":%d,\"offset\":%" PRId64 "}", partition, offset);
    a->body = a->buf;
    a->len = p;
    snprintf(a->location, sizeof a->location, "/v1/messages/%s", id);
}

/* Builds the 502 of a sync request whose message was not delivered: a
 * stable code and a detail that says which kind of failure it was, never
 * the route's own error text (it names partner URLs and bodies, Lua
 * tracebacks); that text is in the log (the route's dead-letter line) and
 * in GET /v1/messages/ID on the admin listener. */
static void failed_answer(hs_req *r, hs_answer *a)
{
    const char *code = "dead_lettered";
    const char *detail = "the message could not be processed and was set aside (dead-lettered); "
                         "the operator can look it up by its id";
    if (r->no_reply) {
        code = "no_reply";
        detail = "the message was delivered, but the output that answers this route did not "
                 "take it or its answer could not be passed on";
    } else if (strncmp(r->reply_err, "step ", 5) == 0) {
        detail = "a processing step refused the message; it was set aside (dead-lettered) "
                 "and the operator can look it up by its id";
    } else if (strncmp(r->reply_err, "output ", 7) == 0) {
        detail = "a partner did not accept the message; it was set aside (dead-lettered) and "
                 "the operator can look it up by its id";
    }
    answer_error(a, 502, code, detail, r->id);
}

/* Builds the answer chosen by settle() (r->answered, r->mu not needed: no
 * other thread writes the fields read here once answered is set). */
/* The 200 of a `reply: sync` request: the route's (or reply_from's)
 * answer, its body handed to MHD. */
static void sync_answer(hs_req *r, hs_answer *a)
{
    memset(a, 0, offsetof(hs_answer, buf));
    a->status = r->reply_status >= 200 && r->reply_status < 300 ? r->reply_status : 200;
    a->ctype = r->reply_ctype[0] ? r->reply_ctype : r->rt->reply_ctype;
    a->body = r->reply_body != NULL ? r->reply_body : a->buf;
    a->len = r->reply_len;
    a->heap = r->reply_body != NULL;
    r->reply_body = NULL; /* handed to MHD */
    r->reply_len = 0;
    a->buf[0] = '\0';
}

/* The 500 when the log could not say whether the message is stored. */
static void not_durable_answer(hs_req *r, hs_answer *a)
{
    char detail[600];
    snprintf(detail, sizeof detail,
             "the gateway could not confirm that the message is stored; it may or may "
             "not be kept: ask the operator about message %s before resending",
             r->id);
    answer_error(a, 500, "not_durable", detail, r->id);
    sl_err(HS_COMPONENT, "%s: route %s: message %s not durable: %s", r->srv->name, r->rt->name,
           r->id, r->err);
}

static void build_final(hs_req *r, hs_answer *a)
{
    const hs_route *rt = r->rt;
    switch (r->status) {
        case 202:
            build_accepted(a, rt, r->id, r->partition, r->offset);
            return;
        case 200:
            sync_answer(r, a);
            break;
        case 204:
            memset(a, 0, offsetof(hs_answer, buf));
            a->status = 204;
            a->buf[0] = '\0';
            a->body = a->buf;
            a->len = 0;
            break;
        case 502:
            failed_answer(r, a);
            break;
        case 504:
            answer_error(a, 504, "timeout", "the message is in custody and will still be delivered",
                         r->id);
            break;
        case 503: /* the log refused it after all: nothing was kept, resend later */
            answer_error(a, 503, "backpressure",
                         "the route's log did not take the message (nothing was kept); retry later",
                         NULL);
            a->retry_after = true;
            sl_warn(HS_COMPONENT, "%s: route %s: message %s refused by the log (503): %s",
                    r->srv->name, rt->name, r->id, r->err);
            break;
        default:
            not_durable_answer(r, a);
            break;
    }
    memcpy(a->msg_id, r->id, sizeof a->msg_id);
    if (r->status != 202 && r->status != 200 && r->status != 204)
        return;
    snprintf(a->location, sizeof a->location, "/v1/messages/%s", r->id);
}

/* ---- the request handler -------------------------------------------------- */

static hs_route *find_route(hs_server *srv, const char *url, const char *method,
                            const hs_route **path_match)
{
    *path_match = NULL;
    for (size_t i = 0; i < srv->n_routes; i++) {
        hs_route *rt = &srv->routes[i];
        if (strcmp(rt->path, url) != 0)
            continue;
        if (*path_match == NULL)
            *path_match = rt;
        for (size_t m = 0; m < rt->in->n_methods; m++)
            if (strcasecmp(rt->in->methods[m], method) == 0)
                return rt;
    }
    return NULL;
}

typedef struct framing_ctx {
    unsigned n_length; /* Content-Length headers */
    bool chunked;      /* a Transfer-Encoding header */
} framing_ctx;

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    framing_ctx *f = cls;
    (void)kind;
    (void)value;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
        f->n_length++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
        f->chunked = true;
    return MHD_YES;
}

/* Why a request's framing or path is refused (400), or NULL: more than one
 * Content-Length, Content-Length with Transfer-Encoding (request smuggling
 * behind a proxy that reads the other one), a NUL in the path (unescape_url
 * empties such a path). */
static const char *bad_framing(struct MHD_Connection *conn, const char *url)
{
    framing_ctx f = {0, false};
    if (url[0] == '\0')
        return "the path contains a NUL byte (%00)";
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing, &f);
    if (f.n_length > 1)
        return "more than one Content-Length header";
    if (f.n_length == 1 && f.chunked)
        return "both Content-Length and Transfer-Encoding";
    return NULL;
}

/* What a connection holds from open to close (its socket_context). */
typedef struct hs_sock {
    hl_conn *limits; /* the limits' handle (NULL when not tracked) */
    sl_tls_set *tls; /* the TLS credentials it was handed (NULL: plain HTTP) */
} hs_sock;

/* The limits' handle of conn's socket (NULL when not tracked). */
static hl_conn *conn_limits(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const hs_sock *sock = ci != NULL ? ci->socket_context : NULL;
    return sock != NULL ? sock->limits : NULL;
}

/* Answers a request refused by authentication (401 or 403), counted by
 * route and reason. The detail names no credential. */
static enum MHD_Result refuse_auth(hs_req *r, struct MHD_Connection *conn, ha_result res)
{
    hs_answer a;
    sl_counter_add(r->rt->auth_refused[res == HA_FORBIDDEN ? 2 : res == HA_INVALID ? 1 : 0], 1);
    if (res == HA_FORBIDDEN) {
        answer_error(&a, 403, "forbidden", "this client is not allowed on this route", NULL);
        return send_answer(r, conn, &a);
    }
    answer_error(&a, 401, "unauthorized",
                 res == HA_INVALID ? "the credential was not accepted" : "a credential is required",
                 NULL);
    a.www_auth = r->rt->challenge;
    return send_answer(r, conn, &a);
}

/* Admission of a request for rt before its body is read: the route's rate
 * limit, then the credentials that need no body. Returns true when it
 * answered (*ret set). */
static bool refuse_admission(hs_server *srv, hs_req *r, struct MHD_Connection *conn,
                             enum MHD_Result *ret)
{
    if (r->rt->in->auth.n > 0) {
        ha_result res = ha_check_headers(&r->rt->in->auth, conn, r->subject);
        for (size_t i = 0; (res == HA_INVALID || res == HA_MISSING) && i < srv->n_routes; i++)
            if (&srv->routes[i] != r->rt && ha_known_token(&srv->routes[i].in->auth, conn))
                res = HA_FORBIDDEN; /* valid, but for another route */
        if (res != HA_PASS && res != HA_NEED_BODY) {
            *ret = refuse_auth(r, conn, res);
            return true;
        }
        r->auth_body = res == HA_NEED_BODY;
    }
    if (r->rt->bucket != NULL) {
        int wait = hl_bucket_take(r->rt->bucket, hl_conn_client(conn_limits(conn)));
        if (wait > 0) {
            hs_answer a;
            sl_counter_add(r->rt->rate_refused, 1);
            answer_error(&a, 429, "rate_limited", "too many requests for this route; retry later",
                         NULL);
            a.retry_after = wait;
            *ret = send_answer(r, conn, &a);
            return true;
        }
    }
    return false;
}

/* Refusals before routing: a mutual-TLS client without a valid certificate
 * (401) and too many headers (431). Returns true when it answered. */
static bool refuse_client(hs_server *srv, hs_req *r, struct MHD_Connection *conn,
                          enum MHD_Result *ret)
{
    const sl_http_server_conf *hc = srv->c->conf->priv;
    if (sl_tls_mutual(srv->tls) && sl_tls_client_subject(conn, r->subject, sizeof r->subject)) {
        hl_count(srv->limits, "client_certificate");
        hs_answer a;
        answer_error(&a, 401, "client_certificate_required", r->subject, NULL);
        r->subject[0] = '\0';
        *ret = send_answer(r, conn, &a);
        return true;
    }
    if (MHD_get_connection_values(conn, MHD_HEADER_KIND, NULL, NULL) > hc->limits.max_headers) {
        hl_count(srv->limits, "too_many_headers");
        *ret = send_error(r, conn, 431, "too_many_headers", "more than %d request headers",
                          hc->limits.max_headers);
        return true;
    }
    return false;
}

static enum MHD_Result first_call(hs_server *srv, hs_req *r, struct MHD_Connection *conn,
                                  const char *url, const char *method)
{
    enum MHD_Result ret;
    hl_conn_headers_done(srv->limits, conn_limits(conn));
    const hs_route *path_match = NULL;
    if (!atomic_load(&srv->accepting)) {
        hs_answer a;
        answer_error(&a, 503, "shutting_down", "the gateway is shutting down", NULL);
        a.retry_after = true;
        return send_answer(r, conn, &a);
    }
    if (refuse_client(srv, r, conn, &ret))
        return ret;
    const char *framing = bad_framing(conn, url);
    if (framing != NULL)
        return send_error(r, conn, 400, "bad_request", "%s", framing);
    hs_route *rt = find_route(srv, url, method, &path_match);
    if (rt == NULL && path_match == NULL)
        return send_error(r, conn, 404, "not_found", "no route takes %s", url);
    if (rt == NULL) {
        hs_answer a;
        char detail[200];
        snprintf(detail, sizeof detail, "%s takes %s", url, path_match->allow);
        answer_error(&a, 405, "method_not_allowed", detail, NULL);
        a.allow = path_match->allow;
        return send_answer(r, conn, &a);
    }
    r->rt = rt;
    if (refuse_admission(srv, r, conn, &ret))
        return ret;
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (!sl_httpd_content_type_ok(rt->in->content_type, ct))
        return send_error(r, conn, 415, "unsupported_media_type", "%s takes %s (got %s)", rt->path,
                          rt->reply_ctype, ct != NULL ? ct : "no Content-Type");
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl != NULL) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && n > srv->max_body)
            return send_error(r, conn, 413, "payload_too_large",
                              "the body is %llu bytes; max_body is %" PRIu64, n, srv->max_body);
        if (errno == 0 && end != cl && n > 0) {
            r->body = malloc((size_t)n + 1);
            if (r->body == NULL)
                return send_error(r, conn, 500, "internal", "out of memory");
            r->body_cap = (size_t)n + 1;
        }
    }
    return MHD_YES;
}

static void take_body(hs_server *srv, hs_req *r, const char *data, size_t n)
{
    if (r->too_large)
        return;
    if (r->body_len + n > srv->max_body) {
        r->too_large = true;
        free(r->body);
        r->body = NULL;
        r->body_len = r->body_cap = 0;
        return;
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t nc = r->body_cap ? r->body_cap : 1024;
        while (nc < r->body_len + n + 1)
            nc *= 2;
        if (nc > srv->max_body + 1)
            nc = (size_t)srv->max_body + 1;
        char *nb = realloc(r->body, nc);
        if (nb == NULL) {
            /* answered as 500 at the end */
            free(r->body);
            r->body = NULL;
            r->body_len = r->body_cap = 0;
            r->too_large = true;
            snprintf(r->err, sizeof r->err, "out of memory");
            return;
        }
        r->body = nb;
        r->body_cap = nc;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
}

typedef struct hdr_ctx {
    sl_msg *msg;
    bool oom;
} hdr_ctx;

/* Keeps x-*, idempotency-key, traceparent and tracestate, lower-cased. */
static enum MHD_Result keep_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    hdr_ctx *h = cls;
    char name[128];
    size_t n = strlen(key);
    (void)kind;
    if (n == 0 || n >= sizeof name || value == NULL)
        return MHD_YES;
    for (size_t i = 0; i <= n; i++) {
        char ch = key[i];
        name[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    if (strcmp(name, SL_HDR_CLIENT_SUBJECT) == 0) /* set by the gateway only */
        return MHD_YES;
    if (!(n > 2 && name[0] == 'x' && name[1] == '-') && strcmp(name, "idempotency-key") != 0 &&
        strcmp(name, "traceparent") != 0 && strcmp(name, "tracestate") != 0)
        return MHD_YES;
    if (sl_msg_set_header(h->msg, name, value, strlen(value)) != 0) {
        h->oom = true;
        return MHD_NO;
    }
    return MHD_YES;
}

/* Sends prev, the answer stored for the request's Idempotency-Key, and
 * frees it. */
static enum MHD_Result send_replay(hs_req *r, struct MHD_Connection *conn, sl_idem_answer *prev)
{
    hs_answer a;
    memset(&a, 0, offsetof(hs_answer, buf));
    a.status = prev->status;
    a.ctype = prev->content_type;
    a.replayed = true;
    if (prev->location != NULL)
        snprintf(a.location, sizeof a.location, "%s", prev->location);
    if (prev->body != NULL) {
        a.body = prev->body; /* handed to MHD */
        a.len = prev->body_len;
        a.heap = true;
        prev->body = NULL;
    } else {
        a.buf[0] = '\0';
        a.body = a.buf;
    }
    enum MHD_Result ret = send_answer(r, conn, &a);
    sl_idem_answer_free(prev);
    return ret;
}

/* For a route whose gateways share Idempotency-Keys: answers a key another
 * gateway (or this one) answered or handles now. Returns 1 when the request
 * was answered, 0 to go on. */
static int idem_shared_begin(hs_req *r, struct MHD_Connection *conn, const char *key, size_t klen,
                             enum MHD_Result *ret)
{
    sl_idem_answer prev;
    switch (hs_idem_shared_get(r->rt->route, key, klen, wall_ms(), &prev)) {
        case HS_SHARED_ANSWERED:
            *ret = send_replay(r, conn, &prev);
            return 1;
        case HS_SHARED_CLAIMED:
            *ret = send_error(r, conn, 409, "conflict",
                              "a request with this Idempotency-Key is in progress");
            return 1;
        case HS_SHARED_NONE:
        default:
            return 0;
    }
}

/* Answers a key seen before: its stored answer, or 409 while in flight.
 * Returns 1 when the request was answered, 0 to go on, -1 on MHD failure. */
static int idem_begin(hs_req *r, struct MHD_Connection *conn, enum MHD_Result *ret)
{
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (key == NULL || r->rt->idem == NULL)
        return 0;
    size_t klen = strlen(key);
    if (klen == 0 || klen > HS_IDEM_KEY_MAX) {
        *ret = send_error(r, conn, 400, "bad_idempotency_key",
                          "Idempotency-Key must be 1 to %d characters", HS_IDEM_KEY_MAX);
        return 1;
    }
    if (r->rt->idem_shared && idem_shared_begin(r, conn, key, klen, ret))
        return 1;
    sl_idem_answer prev;
    uint64_t token = 0;
    switch (sl_idem_begin(r->rt->idem, key, klen, wall_ms(), &token, &prev)) {
        case SL_IDEM_NEW:
            r->idem_key = malloc(klen + 1);
            if (r->idem_key == NULL) {
                sl_idem_finish(r->rt->idem, key, klen, token, NULL, wall_ms());
                return 0;
            }
            memcpy(r->idem_key, key, klen + 1);
            r->idem_len = klen;
            r->idem_token = token;
            r->idem_open = true;
            if (r->rt->idem_shared)
                hs_idem_shared_claim(r->rt->route, key, klen);
            return 0;
        case SL_IDEM_IN_FLIGHT:
            *ret = send_error(r, conn, 409, "conflict",
                              "a request with this Idempotency-Key is in progress");
            return 1;
        case SL_IDEM_REPLAY:
            *ret = send_replay(r, conn, &prev);
            return 1;
        case SL_IDEM_NOMEM:
        default:
            return 0;
    }
}

static enum MHD_Result append_error(hs_req *r, struct MHD_Connection *conn, const sl_error *err)
{
    hs_server *srv = r->srv;
    hs_answer a;
    switch (err->code) {
        case SL_EFULL:
            if (warn_allowed(srv))
                sl_warn(HS_COMPONENT, "%s: route %s: back-pressure (503): %s", srv->name,
                        r->rt->name, err->msg);
            answer_error(&a, 503, "backpressure",
                         "the gateway is holding back input (its log is full); retry later", NULL);
            a.retry_after = true;
            break;
        case SL_ECLOSED:
            answer_error(&a, 503, "shutting_down", "the gateway is shutting down", NULL);
            a.retry_after = true;
            break;
        case SL_EINVAL:
            sl_debug(HS_COMPONENT, "%s: route %s: refused (400 bad_key): %s", srv->name,
                     r->rt->name, err->msg);
            /* the key is a header, JSON path or XPath: its error describes the
             * caller's own body (where the XML is malformed, which field is
             * missing), nothing of the gateway's */
            answer_error(&a, 400, "bad_key", err->msg, NULL);
            break;
        default:
            sl_err(HS_COMPONENT, "%s: route %s: append failed (500): %s", srv->name, r->rt->name,
                   err->msg);
            answer_error(&a, 500, "append_failed", "the gateway could not store the message", NULL);
            break;
    }
    return send_answer(r, conn, &a);
}

/* Refuses a request whose body was too large (or could not be kept) and
 * any request while the gateway shuts down. Returns true when it answered
 * (*ret set). */
static bool refuse_early(hs_server *srv, hs_req *r, struct MHD_Connection *conn,
                         enum MHD_Result *ret)
{
    if (r->too_large) {
        if (r->err[0] != '\0') {
            sl_err(HS_COMPONENT, "%s: route %s: %s", srv->name, r->rt->name, r->err);
            *ret = send_error(r, conn, 500, "internal", "the gateway could not take the body");
        } else
            *ret = send_error(r, conn, 413, "payload_too_large",
                              "the body exceeds max_body (%" PRIu64 " bytes)", srv->max_body);
        return true;
    }
    if (!atomic_load(&srv->accepting)) {
        hs_answer a;
        answer_error(&a, 503, "shutting_down", "the gateway is shutting down", NULL);
        a.retry_after = true;
        *ret = send_answer(r, conn, &a);
        return true;
    }
    return false;
}

/* Checks a JSON route's body, validating it without allocating (a JSON
 * path key is then read by a scan, without a tree). Returns false when it
 * answered 400 (*ret set). */
static bool check_json(hs_req *r, struct MHD_Connection *conn, enum MHD_Result *ret)
{
    const char *body = r->body != NULL ? r->body : "";
    if (r->rt->in->content_type != SL_CT_JSON)
        return true;
    char msg_err[300];
    if (!sl_httpd_json_valid(body, r->body_len, msg_err, sizeof msg_err)) {
        *ret = send_error(r, conn, 400, "invalid_json", "%s", msg_err);
        return false;
    }
    return true;
}

/* Builds the message: the body (moved out of r, not copied), Content-Type
 * and the kept headers; copies its id into r. Returns NULL when out of
 * memory. */
static sl_msg *build_msg(hs_server *srv, hs_req *r, struct MHD_Connection *conn)
{
    sl_msg *msg = sl_msg_new();
    if (msg == NULL) {
        sl_err(HS_COMPONENT, "%s: out of memory building a message", srv->name);
        return NULL;
    }
    if (r->body != NULL) {
        sl_msg_take_body(msg, r->body, r->body_len); /* take_body kept room for the NUL */
        r->body = NULL;
    }
    msg->json_checked = r->rt->in->content_type == SL_CT_JSON; /* check_json passed */
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (ct == NULL)
        ct = sl_httpd_content_type_name(r->rt->in->content_type);
    hdr_ctx hc = {msg, false};
    if (ct != NULL && sl_msg_set_header(msg, SL_HDR_CONTENT_TYPE, ct, strlen(ct)) != 0)
        hc.oom = true;
    if (!hc.oom)
        MHD_get_connection_values(conn, MHD_HEADER_KIND, keep_header, &hc);
    if (!hc.oom && r->subject[0] != '\0' &&
        sl_msg_set_header(msg, SL_HDR_CLIENT_SUBJECT, r->subject, strlen(r->subject)) != 0)
        hc.oom = true;
    if (hc.oom) {
        sl_msg_free(msg);
        return NULL;
    }
    memcpy(r->id, msg->id, sizeof r->id);
    return msg;
}

/* `reply: sync`: watches the route for r's outcome before the append, so
 * that no outcome is missed; the watch holds a reference. Called before any
 * other thread knows r. Returns -1 when out of memory (nothing held). */
static int watch_reply(hs_req *r)
{
    r->refs++; /* the watch's; no other thread knows r yet */
    r->watching = true;
    if (sl_route_watch_reply(r->rt->route, r->id, r->rt->reply_output, on_reply, r) != 0) {
        r->refs--;
        r->watching = false;
        return -1;
    }
    return 0;
}

/* Appends msg (freed here either way) to the route. Returns 0 with r's
 * partition and offset set and the request counted in flight, or -1 with
 * err, the reply watch (if any) dropped. */
static int append_msg(hs_req *r, sl_msg *msg, sl_error *err)
{
    hs_route *rt = r->rt;
    if (sl_route_append(rt->route, msg, err) != 0) {
        sl_msg_free(msg);
        if (r->watching) {
            r->watching = false;
            if (sl_route_unwatch(rt->route, r->id) == 0)
                req_unref(r);
        }
        return -1;
    }
    r->partition = msg->partition;
    r->offset = msg->offset;
    sl_msg_free(msg);
    atomic_fetch_add(&r->srv->inflight, 1);
    return 0;
}

/* Marks r appended and takes the references of the holders it is about to
 * be handed to: the timer heap (`reply: sync`, with its deadline) and the
 * durability callback. From here other threads may touch r. */
static void take_holder_refs(hs_req *r)
{
    const sl_http_server_input *in = r->rt->in;
    pthread_mutex_lock(&r->mu);
    r->appended = true;
    if (in->reply_sync) {
        uint64_t to = in->sync_timeout_ms ? in->sync_timeout_ms : HS_DEFAULT_SYNC_TIMEOUT_MS;
        r->deadline_ms = mono_ms() + to;
        r->refs++; /* the heap's */
    }
    r->refs++; /* the durability callback's */
    pthread_mutex_unlock(&r->mu);
}

/* Puts r's deadline in the timer heap; without room for it r answers 504
 * as soon as it is durable (the heap's reference is dropped). */
static void arm_deadline(hs_server *srv, hs_req *r)
{
    if (timer_add(&srv->timer, r) == 0)
        return;
    pthread_mutex_lock(&r->mu);
    r->timed_out = true;
    pthread_mutex_unlock(&r->mu);
    req_unref(r);
}

/* Asks the route's log to call on_durable once r's record is durable; when
 * that cannot be arranged, settles r as 500 now (dropping the reference). */
static void await_durable(hs_req *r)
{
    sl_error err;
    if (sl_route_on_durable(r->rt->route, r->partition, r->offset, on_durable, r, &err) != 0)
        on_durable(r, r->offset, &err); /* settles as 500 and drops its reference */
}

/* The callbacks may have answered already (inline durability): then answer
 * now; else suspend the connection until one of them resumes it. */
static enum MHD_Result suspend_or_answer(hs_req *r, struct MHD_Connection *conn)
{
    pthread_mutex_lock(&r->mu);
    if (!r->answered) {
        r->suspended = true;
        MHD_suspend_connection(conn);
        pthread_mutex_unlock(&r->mu);
        return MHD_YES;
    }
    /* Answered inline: the callback that chose the answer already dropped
     * the deadline and the watch; there is nothing to resume. */
    pthread_mutex_unlock(&r->mu);
    hs_answer a;
    build_final(r, &a);
    return send_answer(r, conn, &a);
}

/* The whole body is in: check it, append it, wait for durability. */
static enum MHD_Result final_call(hs_server *srv, hs_req *r, struct MHD_Connection *conn)
{
    enum MHD_Result ret = MHD_YES;
    hl_conn_body_done(srv->limits, conn_limits(conn));
    if (refuse_early(srv, r, conn, &ret))
        return ret;
    if (r->auth_body) {
        ha_result res = ha_check_body(&r->rt->in->auth, conn, r->body != NULL ? r->body : "",
                                      r->body_len, (int64_t)(wall_ms() / 1000));
        if (res != HA_PASS)
            return refuse_auth(r, conn, res);
    }
    if (!check_json(r, conn, &ret))
        return ret;
    if (idem_begin(r, conn, &ret) != 0)
        return ret;
    sl_msg *msg = build_msg(srv, r, conn);
    if (msg == NULL)
        return send_error(r, conn, 500, "internal", "out of memory");
    if (r->rt->in->reply_sync && watch_reply(r) != 0) {
        sl_msg_free(msg);
        return send_error(r, conn, 500, "internal", "out of memory");
    }
    sl_error err;
    if (append_msg(r, msg, &err) != 0)
        return append_error(r, conn, &err);
    take_holder_refs(r);
    if (r->rt->in->reply_sync)
        arm_deadline(srv, r);
    await_durable(r);
    return suspend_or_answer(r, conn);
}

/* A request's state for generation gen (hs_listener_enter); NULL when out
 * of memory (MHD closes the connection). */
static void *start_req(void *gen, struct MHD_Connection *conn)
{
    return req_new(gen, conn);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    hs_req *r = *con_cls;
    (void)version;
    if (r == NULL || hs_listener_parked(r)) {
        enum MHD_Result ret;
        r = hs_listener_enter(cls, conn, con_cls, start_req, &ret);
        if (r == NULL)
            return ret; /* parked until a generation attaches, or closing */
        *con_cls = r;
        return first_call(r->srv, r, conn, url, method);
    }
    hs_server *srv = r->srv;
    if (r->queued) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        take_body(srv, r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!r->body_done) {
        r->body_done = true;
        return final_call(srv, r, conn);
    }
    /* Resumed: the answer was chosen by another thread. */
    pthread_mutex_lock(&r->mu);
    bool ready = r->answered;
    pthread_mutex_unlock(&r->mu);
    if (!ready)
        return MHD_YES; /* spurious call; keep waiting */
    hs_answer a;
    build_final(r, &a);
    return send_answer(r, conn, &a);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    hs_req *r = *con_cls;
    (void)toe;
    hl_conn_request_done(hs_listener_limits(cls), conn_limits(conn));
    *con_cls = NULL;
    if (r == NULL || hs_listener_parked(r))
        return;
    hs_server *srv = r->srv;
    pthread_mutex_lock(&r->mu);
    r->conn = NULL;
    bool appended = r->appended;
    bool answered = r->answered;
    pthread_mutex_unlock(&r->mu);
    if (r->idem_open) {
        if (appended && answered) {
            hs_answer a;
            build_final(r, &a);
            idem_close(r, &a);
            if (a.heap)
                free(a.body);
        } else {
            idem_close(r, NULL);
        }
    }
    if (appended && atomic_fetch_sub(&srv->inflight, 1) == 1) {
        pthread_mutex_lock(&srv->drain_mu);
        pthread_cond_broadcast(&srv->drain_cv);
        pthread_mutex_unlock(&srv->drain_mu);
    }
    req_unref(r);
}

/* MHD's URL unescaper: percent-decodes s in place; a path that decodes to a
 * NUL byte is emptied (an empty path is refused in first_call). Returns
 * the decoded length. */
static size_t unescape_url(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    size_t n = MHD_http_unescape(s);
    if (strlen(s) != n) {
        s[0] = '\0';
        return 0;
    }
    return n;
}

/* MHD's connection notifications: a new connection is counted and gets its
 * header deadline (or is shut down over a limit); a closed one is forgotten
 * (MHD closes the fd after this call). */
static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    hs_listener *l = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        hs_sock *sock = calloc(1, sizeof *sock);
        if (sock == NULL || fd == NULL) {
            free(sock);
            if (fd != NULL)
                shutdown(fd->connect_fd, SHUT_RDWR); /* out of memory */
            return;
        }
        sock->limits = hl_conn_open(hs_listener_limits(l), fd->connect_fd,
                                    ad != NULL ? ad->client_addr : NULL);
        sock->tls = sl_tls_conn_start(hs_listener_tls(l), conn, true); /* before the handshake */
        *socket_context = sock;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        hs_sock *sock = *socket_context;
        if (sock != NULL) {
            hl_conn_close(hs_listener_limits(l), sock->limits);
            sl_tls_conn_end(sock->tls);
            free(sock);
        }
        *socket_context = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    sl_warn(HS_COMPONENT, "%s: libmicrohttpd: %s", hs_listener_name(cls), line);
}

/* ---- the connector table -------------------------------------------------- */

static int hs_init(sl_connector *c, sl_error *err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    const sl_http_server_conf *hc = c->conf->priv;
    if (hc == NULL || hc->listen == NULL)
        return sl_error_set(err, SL_ECONFIG, "connector %s: listen is required", c->conf->name);
    if (sl_httpd_parse_listen(hc->listen, &ss, &sl, err) != 0)
        return sl_error_set(err, SL_ECONFIG, "connector %s: %s", c->conf->name, err->msg);
    hs_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return sl_error_set(err, SL_ENOMEM, "connector %s: out of memory", c->conf->name);
    srv->c = c;
    srv->name = c->conf->name;
    srv->listen_fd = -1;
    srv->listen = hc->listen;
    srv->max_body = hc->max_body ? hc->max_body : (uint64_t)1 << 20;
    const sl_gateway_conf *settings = sl_connector_settings(c);
    srv->dedupe_ms = settings ? settings->dedupe_window_ms : 24ull * 3600 * 1000;
    atomic_init(&srv->accepting, false);
    atomic_init(&srv->inflight, 0);
    atomic_init(&srv->live, 0);
    atomic_init(&srv->last_warn_ms, 0);
    pthread_mutex_init(&srv->drain_mu, NULL);
    pthread_cond_init(&srv->drain_cv, NULL);
    srv->drain_inited = true;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&srv->timer.mu, NULL);
    pthread_cond_init(&srv->timer.cv, &ca);
    pthread_condattr_destroy(&ca);
    srv->timer_inited = true;
    c->state = srv;
    return 0;
}

static int hs_attach(sl_connector *c, sl_route *route, sl_error *err)
{
    hs_server *srv = c->state;
    const sl_route_conf *rc = sl_route_get_conf(route);
    const sl_http_server_input *in = rc->from.priv;
    if (in == NULL || in->path == NULL || in->path[0] != '/')
        return sl_error_set(err, SL_ECONFIG, "route %s: http_server input needs a path like /x",
                            rc->name);
    for (size_t i = 0; i < srv->n_routes; i++) {
        const hs_route *o = &srv->routes[i];
        if (strcmp(o->path, in->path) != 0)
            continue;
        for (size_t m = 0; m < in->n_methods; m++)
            for (size_t k = 0; k < o->in->n_methods; k++)
                if (strcasecmp(in->methods[m], o->in->methods[k]) == 0)
                    return sl_error_set(err, SL_ECONFIG,
                                        "routes %s and %s both take %s %s on connector %s", o->name,
                                        rc->name, in->methods[m], in->path, srv->name);
    }
    hs_route *nr = realloc(srv->routes, (srv->n_routes + 1) * sizeof *nr);
    if (nr == NULL)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    srv->routes = nr;
    hs_route *rt = &srv->routes[srv->n_routes];
    memset(rt, 0, sizeof *rt);
    rt->route = route;
    rt->in = in;
    rt->name = sl_route_name(route);
    rt->path = in->path;
    rt->reply_output = -1;
    for (size_t i = 0; in->reply_from && i < rc->n_to; i++)
        if (rc->to[i].name && strcmp(rc->to[i].name, in->reply_from) == 0)
            rt->reply_output = (int)i;
    rt->reply_ctype = sl_httpd_content_type_name(in->content_type);
    if (rt->reply_ctype == NULL)
        rt->reply_ctype = "application/octet-stream";
    size_t p = 0;
    rt->allow[0] = '\0';
    if (in->n_methods == 0)
        snprintf(rt->allow, sizeof rt->allow, "POST");
    for (size_t m = 0; m < in->n_methods && p < sizeof rt->allow; m++)
        p += (size_t)snprintf(rt->allow + p, sizeof rt->allow - p, "%s%s", m ? ", " : "",
                              in->methods[m]);
    ha_challenge(&in->auth, rt->challenge, sizeof rt->challenge);
    if (in->rate_limit.on && (rt->bucket = hl_bucket_new(&in->rate_limit)) == NULL)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (srv->dedupe_ms > 0) {
        rt->idem = sl_idem_new(HS_IDEM_CAPACITY, srv->dedupe_ms);
        if (rt->idem == NULL)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    srv->n_routes++;
    return 0;
}

static void make_metrics(hs_server *srv)
{
    sl_metrics *m = sl_connector_metrics(srv->c);
    char esc[200], labels[300];
    if (m == NULL)
        return;
    sl_metrics_escape(srv->name, esc, sizeof esc);
    for (int i = 0; i < C_N; i++) {
        if (i == C_OTHER)
            snprintf(labels, sizeof labels, "connector=\"%s\",code=\"other\"", esc);
        else
            snprintf(labels, sizeof labels, "connector=\"%s\",code=\"%d\"", esc, hs_code_values[i]);
        srv->codes[i] =
            sl_metrics_counter(m, "sluice_http_requests_total",
                               "HTTP requests answered by http_server inputs, by code", labels);
    }
    for (size_t i = 0; i < srv->n_routes; i++) {
        char rname[200];
        sl_metrics_escape(srv->routes[i].name, rname, sizeof rname);
        snprintf(labels, sizeof labels, "connector=\"%s\",route=\"%s\",reason=\"rate_limited\"",
                 esc, rname);
        srv->routes[i].rate_refused = sl_metrics_counter(
            m, "sluice_http_refused_total",
            "Requests and connections refused by http_server inputs, by route and reason", labels);
        for (int k = 0; k < 3; k++) {
            static const char *const why[] = {"auth_missing", "auth_invalid", "auth_forbidden"};
            snprintf(labels, sizeof labels, "connector=\"%s\",route=\"%s\",reason=\"%s\"", esc,
                     rname, why[k]);
            srv->routes[i].auth_refused[k] = sl_metrics_counter(
                m, "sluice_http_refused_total",
                "Requests and connections refused by http_server inputs, by route and reason",
                labels);
        }
    }
    snprintf(labels, sizeof labels, "connector=\"%s\"", esc);
    srv->latency = sl_metrics_histogram(m, "sluice_http_request_seconds",
                                        "Time from request headers to answer, http_server inputs",
                                        labels, NULL, 0);
}

/* ---- Idempotency-Keys survive restarts --------------------------------- */

/* The route whose answers are rebuilt, and room for one answer. */
typedef struct rebuild_ctx {
    const hs_route *rt;
    hs_answer a;
} rebuild_ctx;

/* sl_idem_answer_fn: the 202 a request appended to the route got. */
static void accepted_answer(void *arg, const char *id, int partition, int64_t offset,
                            sl_idem_answer *out)
{
    rebuild_ctx *ctx = arg;
    build_accepted(&ctx->a, ctx->rt, id, partition, offset);
    *out = (sl_idem_answer){.status = 202,
                            .body = ctx->a.body,
                            .body_len = ctx->a.len,
                            .content_type = (char *)ctx->a.ctype,
                            .location = ctx->a.location};
}

/* Rebuilds every route's Idempotency-Key table from the log before the
 * listener opens: the key of each request travels in its message's record,
 * so every key whose request got a 202 (durable) is found again. */
static void rebuild_idem(hs_server *srv)
{
    for (size_t r = 0; r < srv->n_routes; r++) {
        hs_route *rt = &srv->routes[r];
        int n = sl_route_partition_count(rt->route);
        if (rt->idem == NULL || n <= 0 || sl_route_external_log(rt->route))
            continue; /* a log a connector holds is not read back here (docs/KAFKA-LOG.md) */
        sl_partition **parts = calloc((size_t)n, sizeof *parts);
        if (parts == NULL) {
            sl_err(HS_COMPONENT, "%s: route %s: out of memory: Idempotency-Keys not recovered",
                   srv->name, rt->name);
            continue;
        }
        for (int i = 0; i < n; i++)
            parts[i] = sl_route_partition(rt->route, i);
        uint64_t t0 = mono_ms();
        sl_idem_rebuild_stats st;
        rebuild_ctx ctx = {.rt = rt};
        sl_idem_rebuild(rt->name, rt->idem, parts, n, srv->dedupe_ms, wall_ms(), HS_IDEM_KEY_MAX,
                        accepted_answer, &ctx, &st);
        free(parts);
        if (st.scanned > 0)
            sl_info(HS_COMPONENT,
                    "%s: route %s: %zu Idempotency-Key(s) recovered from %zu record(s) of the "
                    "dedupe window in %" PRIu64 " ms",
                    srv->name, rt->name, st.held, st.scanned, mono_ms() - t0);
        if (st.overflow)
            sl_warn(HS_COMPONENT,
                    "%s: route %s: the dedupe window holds %zu keys, more than the %d kept: "
                    "the oldest are forgotten early",
                    srv->name, rt->name, st.keyed, HS_IDEM_CAPACITY);
    }
}

/* Opens the Idempotency-Key store each route with a log a connector holds
 * shares with its other gateways (docs/KAFKA-LOG.md). Returns 0 or -1 with err. */
static int open_shared_idem(hs_server *srv, sl_error *err)
{
    for (size_t r = 0; r < srv->n_routes; r++) {
        hs_route *rt = &srv->routes[r];
        int rc = rt->idem != NULL ? sl_route_idem_open(rt->route, srv->dedupe_ms, err) : 0;
        if (rc < 0) {
            sl_err(HS_COMPONENT, "%s: route %s: %s", srv->name, rt->name, err->msg);
            return -1;
        }
        rt->idem_shared = rc == 1;
    }
    return 0;
}

/* The key under which a listener outlives a reload. */
static void listener_key(const hs_server *srv, char *key, size_t cap)
{
    snprintf(key, cap, "http_server:%s", srv->listen);
}

/* The listener's TLS credentials: kept ones (from the previous generation's
 * listener) with the files read again, where a broken new certificate keeps
 * the running one (logged); or the files read anew. NULL with err. */
static sl_tls *hs_tls_start(hs_server *srv, const sl_tls_conf *conf, sl_tls *kept, sl_error *err)
{
    if (kept != NULL) {
        if (sl_tls_reload(kept, conf, err) != 0)
            sl_err(HS_COMPONENT, "%s: keeping the running certificate: %s", srv->name, err->msg);
        return kept;
    }
    sl_tls *t = sl_tls_load(conf, err);
    if (t == NULL)
        sl_err(HS_COMPONENT, "%s: %s", srv->name, err->msg);
    return t;
}

/* Starts the libmicrohttpd daemon of l on srv->listen_fd (which it takes). */
static struct MHD_Daemon *start_daemon(hs_server *srv, hs_listener *l)
{
    const sl_http_server_conf *hc = srv->c->conf->priv;
    struct MHD_OptionItem tls_opts[8] = {{MHD_OPTION_END, 0, NULL}};
    if (srv->tls != NULL)
        sl_tls_mhd_options(srv->tls, tls_opts);
    unsigned tls_flag = srv->tls != NULL ? MHD_USE_TLS : 0;
#ifndef HS_NO_TURBO
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC;
#else
    unsigned flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_ITC;
#endif
    return MHD_start_daemon(
        flags | tls_flag, 0, NULL, NULL, handler, l, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l,
        MHD_OPTION_LISTEN_SOCKET, srv->listen_fd, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)HS_POOL_THREADS, MHD_OPTION_NOTIFY_COMPLETED, completed, l,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)((hc->limits.idle_timeout_ms + 999) / 1000),
        MHD_OPTION_NOTIFY_CONNECTION, notify_connection, l, MHD_OPTION_CONNECTION_LIMIT,
        hl_mhd_connection_limit(hs_listener_limits(l)), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)HS_CONN_MEMORY, MHD_OPTION_UNESCAPE_CALLBACK, unescape_url, NULL, MHD_OPTION_ARRAY,
        tls_opts, MHD_OPTION_END);
}

/* A new listener for srv: its limits, TLS credentials (kept ones reloaded,
 * or read), socket (fd when >= 0, else the one the previous generation
 * handed over, else a new one) and daemon. NULL with err. */
static hs_listener *new_listener(hs_server *srv, int fd, sl_tls *kept, sl_error *err)
{
    const sl_http_server_conf *hc = srv->c->conf->priv;
    sl_tls *tls = NULL;
    if (hc->tls == NULL)
        sl_tls_free(kept);
    else if ((tls = hs_tls_start(srv, hc->tls, kept, err)) == NULL)
        return NULL;
    hs_listener *l = hs_listener_new(srv->name, &hc->limits, tls, sl_connector_metrics(srv->c));
    if (l == NULL) {
        sl_error_set(err, SL_ENOMEM, "%s: cannot start the connection limits", srv->name);
        return NULL;
    }
    srv->tls = tls;
    srv->limits = hs_listener_limits(l);
    srv->listen_fd = fd >= 0 ? fd : sl_connector_take_listener(srv->c, srv->listen);
    if (srv->listen_fd < 0)
        srv->listen_fd = sl_httpd_listen_socket(srv->listen, 1024, err);
    if (srv->listen_fd < 0) {
        sl_err(HS_COMPONENT, "%s: %s", srv->name, err->msg);
        hs_listener_close(l, NULL, NULL);
        return NULL;
    }
    sl_httpd_sockname(srv->listen_fd, srv->bound, sizeof srv->bound);
    struct MHD_Daemon *d = start_daemon(srv, l);
    if (d == NULL) {
        close(srv->listen_fd);
        srv->listen_fd = -1;
        hs_listener_close(l, NULL, NULL);
        sl_error_set(err, SL_EIO, "%s: cannot start the HTTP server on %s", srv->name, srv->listen);
        sl_err(HS_COMPONENT, "%s", err->msg);
        return NULL;
    }
    srv->listen_fd = -1; /* the daemon's */
    hs_listener_set_daemon(l, d, srv->bound);
    return l;
}

/* srv's listener: the previous generation's, when it kept one that fits
 * this config (its open connections stay; the TLS files are read again),
 * else a new one (on the socket of one that does not fit). NULL with err. */
static hs_listener *take_listener(hs_server *srv, sl_error *err)
{
    const sl_http_server_conf *hc = srv->c->conf->priv;
    char key[160];
    listener_key(srv, key, sizeof key);
    hs_listener *l = sl_connector_take_kept(srv->c, key);
    if (l != NULL && hs_listener_fits(l, srv->name, &hc->limits, hc->tls != NULL)) {
        srv->limits = hs_listener_limits(l);
        srv->tls = hs_listener_tls(l);
        if (srv->tls != NULL)
            hs_tls_start(srv, hc->tls, srv->tls, err);
        snprintf(srv->bound, sizeof srv->bound, "%s", hs_listener_bound(l));
        return l;
    }
    int fd = -1;
    sl_tls *kept = NULL;
    hs_listener_close(l, &fd, &kept); /* NULL l: nothing */
    return new_listener(srv, fd, kept, err);
}

static int hs_start(sl_connector *c, sl_error *err)
{
    rebuild_idem(c->state);
    hs_server *srv = c->state;
    if (open_shared_idem(srv, err) != 0)
        return -1;
    bool any_sync = false;
    for (size_t i = 0; i < srv->n_routes; i++)
        any_sync |= srv->routes[i].in->reply_sync;
    if (srv->n_routes == 0)
        sl_warn(HS_COMPONENT, "%s: no route uses this connector; every request gets 404",
                srv->name);
    make_metrics(srv);
    srv->listener = take_listener(srv, err);
    if (srv->listener == NULL)
        return -1;
    if (any_sync) {
        if (pthread_create(&srv->timer.thread, NULL, timer_main, srv) != 0)
            return sl_error_set(err, SL_EIO, "%s: cannot start the timer thread", srv->name);
        sl_thread_name(srv->timer.thread, "http-timer");
        srv->timer.running = true;
    }
    atomic_store(&srv->accepting, true);
    hs_listener_attach(srv->listener, srv);
    sl_info(HS_COMPONENT, "http_server %s listening on %s (%zu route%s%s)", srv->name, srv->bound,
            srv->n_routes, srv->n_routes == 1 ? "" : "s",
            srv->tls == NULL          ? ""
            : sl_tls_mutual(srv->tls) ? ", mutual TLS"
                                      : ", TLS");
    return 0;
}

/* Waits until no appended request is unanswered, or deadline_ms passes. */
static void wait_drained(hs_server *srv, atomic_long *count, uint64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(timeout_ms / 1000);
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&srv->drain_mu);
    while (atomic_load(count) > 0)
        if (pthread_cond_timedwait(&srv->drain_cv, &srv->drain_mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&srv->drain_mu);
}

static void hs_stop(sl_connector *c)
{
    hs_server *srv = c->state;
    if (srv == NULL || srv->listener == NULL || srv->stopped)
        return;
    srv->stopped = true;
    atomic_store(&srv->accepting, false);
    if (sl_connector_reloading(c)) {
        /* the daemon stays for the next generation: new requests wait for it */
        hs_listener_detach(srv->listener, srv);
    } else {
        int fd = hs_listener_quiesce(srv->listener);
        if (fd >= 0)
            sl_connector_release_listener(c, srv->listen, fd);
    }
    srv->quiesced = true;
    /* `reply: sync` requests waiting for their route are answered 504 (the
     * message is in custody) instead of holding the shutdown. */
    if (srv->timer.running) {
        pthread_mutex_lock(&srv->timer.mu);
        srv->timer.flush = true;
        pthread_cond_signal(&srv->timer.cv);
        pthread_mutex_unlock(&srv->timer.mu);
    }
    uint64_t to = 10000;
    const sl_gateway_conf *settings = sl_connector_settings(c);
    if (settings != NULL && settings->shutdown_timeout_ms > 0)
        to = settings->shutdown_timeout_ms;
    wait_drained(srv, &srv->inflight, to);
    long left = atomic_load(&srv->inflight);
    if (left > 0)
        sl_warn(HS_COMPONENT, "%s: stopped with %ld request(s) still unanswered", srv->name, left);
    else
        sl_info(HS_COMPONENT, "http_server %s stopped", srv->name);
}

/* Stops the `reply: sync` timer thread and answers 504 to every request
 * still on its heap. */
static void stop_timer(hs_server *srv)
{
    if (srv->timer.running) {
        pthread_mutex_lock(&srv->timer.mu);
        srv->timer.stop = true;
        pthread_cond_signal(&srv->timer.cv);
        pthread_mutex_unlock(&srv->timer.mu);
        pthread_join(srv->timer.thread, NULL);
        srv->timer.running = false;
    }
    while (srv->timer.n > 0) {
        hs_req *r = srv->timer.heap[0];
        heap_remove(&srv->timer, 0);
        on_timeout(r);
    }
}

/* Frees srv once no request refers to it. */
static void free_server(hs_server *srv)
{
    for (size_t i = 0; i < srv->n_routes; i++) {
        sl_idem_free(srv->routes[i].idem);
        hl_bucket_free(srv->routes[i].bucket);
    }
    free(srv->routes);
    free(srv->timer.heap);
    if (srv->timer_inited) {
        pthread_mutex_destroy(&srv->timer.mu);
        pthread_cond_destroy(&srv->timer.cv);
    }
    if (srv->drain_inited) {
        pthread_mutex_destroy(&srv->drain_mu);
        pthread_cond_destroy(&srv->drain_cv);
    }
    free(srv);
}

static void hs_destroy(sl_connector *c)
{
    hs_server *srv = c->state;
    if (srv == NULL)
        return;
    atomic_store(&srv->accepting, false);
    if (srv->listener != NULL) {
        char key[160];
        listener_key(srv, key, sizeof key);
        hs_listener_detach(srv->listener, srv);
        /* reloading: kept for the next generation; else stopped, which
         * completes every connection */
        sl_connector_keep(c, key, srv->listener, hs_listener_drop);
        srv->listener = NULL;
    } else if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
    }
    stop_timer(srv);
    /* Durability and watch callbacks may still hold requests briefly. */
    wait_drained(srv, &srv->live, 5000);
    if (atomic_load(&srv->live) > 0) {
        sl_err(HS_COMPONENT,
               "%s: %ld request(s) still referenced by the log or a route; "
               "leaking the connector state",
               srv->name, atomic_load(&srv->live));
        c->state = NULL;
        return;
    }
    free_server(srv);
    c->state = NULL;
}

const sl_connector_type sl_http_server_connector = {
    .name = "http_server",
    .can_input = true,
    .can_output = false,
    .has_breaker = false,
    .conf_keys = sl_http_server_conf_keys,
    .input_keys = sl_http_server_input_keys,
    .summary = "HTTP ingest listener: each route takes one path",
    .conf_doc = sl_http_server_conf_doc,
    .input_doc = sl_http_server_input_doc,
    .parse_conf = sl_http_server_parse_conf,
    .parse_input = sl_http_server_parse_input,
    .init = hs_init,
    .attach_input = hs_attach,
    .feeds_external_log = true,
    .start = hs_start,
    .send = NULL,
    .stop = hs_stop,
    .destroy = hs_destroy,
};
