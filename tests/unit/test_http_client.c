/* Unit tests for connectors/http_client.c against a tiny real HTTP/1.1
 * server running in this process (a thread per connection on 127.0.0.1:0):
 * result mapping, headers, timeouts, per-key order and max_in_flight. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "connector.h"
#include "gateway.h"
#include "http_client.h"
#include "metrics.h"

/* ---- the test server ---- */

#define MAX_RECS 512
#define MAX_CONNS 64

typedef struct rec {
    char method[16];
    char path[128];
    char idem[64];
    char msgid[64];
    char ctype[128];
    char xconn[64];
    char xout[64];
    bool expect;
    size_t body_len;
    char body[64]; /* first bytes */
    double t_start, t_end;
} rec;

typedef struct srv {
    int lfd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu;
    int open_conns, max_open_conns, total_conns;
    int busy, max_busy;
    rec recs[MAX_RECS];
    int n_recs;
    int delay_ms;
    pthread_t conn_threads[MAX_CONNS];
    int n_conn_threads;
} srv;

typedef struct conn_arg {
    srv *s;
    int fd;
} conn_arg;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to 50 ms for fd to be readable; returns >0, 0 (not yet), <0. */
static int wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 50);
}

static void header_value(const char *hdrs, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *l = hdrs; l && *l; l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL) {
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r\n");
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return;
        }
    }
}

static void send_all(int fd, const char *d, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, d, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        d += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, int status, const char *body)
{
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d Test\r\nContent-Length: %zu\r\nConnection: keep-alive\r\n\r\n",
                      status, strlen(body));
    send_all(fd, head, (size_t)hl);
    send_all(fd, body, strlen(body));
}

/* Serves requests on one connection until the peer closes or the server
 * stops. */
static void *conn_main(void *arg)
{
    conn_arg *ca = arg;
    srv *s = ca->s;
    int fd = ca->fd;
    free(ca);
    size_t cap = 4 << 20;
    char *buf = malloc(cap);
    size_t len = 0;
    while (buf && !atomic_load(&s->stop)) {
        char *end = NULL;
        /* Read the head. */
        while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
            int r = wait_readable(fd);
            if (atomic_load(&s->stop) || r < 0)
                goto out;
            if (r == 0)
                continue;
            ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
            if (n <= 0)
                goto out;
            len += (size_t)n;
        }
        size_t head_len = (size_t)(end - buf) + 4;
        buf[head_len - 2] = '\0';
        rec r;
        memset(&r, 0, sizeof r);
        r.t_start = now_s();
        sscanf(buf, "%15s %127s", r.method, r.path);
        const char *hdrs = strstr(buf, "\r\n") + 2;
        char cl[32];
        header_value(hdrs, "Content-Length", cl, sizeof cl);
        header_value(hdrs, "Idempotency-Key", r.idem, sizeof r.idem);
        header_value(hdrs, "X-Message-Id", r.msgid, sizeof r.msgid);
        header_value(hdrs, "Content-Type", r.ctype, sizeof r.ctype);
        header_value(hdrs, "X-Conn", r.xconn, sizeof r.xconn);
        header_value(hdrs, "X-Out", r.xout, sizeof r.xout);
        char ex[64];
        header_value(hdrs, "Expect", ex, sizeof ex);
        r.expect = ex[0] != '\0';
        size_t body_len = cl[0] ? (size_t)strtoul(cl, NULL, 10) : 0;
        if (head_len + body_len >= cap)
            goto out;
        while (len < head_len + body_len) {
            int w = wait_readable(fd);
            if (atomic_load(&s->stop) || w < 0)
                goto out;
            if (w == 0)
                continue;
            ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
            if (n <= 0)
                goto out;
            len += (size_t)n;
        }
        r.body_len = body_len;
        memcpy(r.body, buf + head_len, body_len < sizeof r.body - 1 ? body_len : sizeof r.body - 1);

        pthread_mutex_lock(&s->mu);
        if (++s->busy > s->max_busy)
            s->max_busy = s->busy;
        int delay = s->delay_ms;
        pthread_mutex_unlock(&s->mu);

        int status = 200;
        const char *body = "ok";
        char sbody[64];
        if (strncmp(r.path, "/status/", 8) == 0 || strncmp(r.path, "/api/status/", 12) == 0) {
            status = atoi(strrchr(r.path, '/') + 1);
            snprintf(sbody, sizeof sbody, "status %d body\nline2", status);
            body = sbody;
        } else if (strcmp(r.path, "/hang") == 0) {
            /* Never answer: wait for the client to give up. */
            for (;;) {
                int w = wait_readable(fd);
                if (atomic_load(&s->stop) || w < 0)
                    break;
                if (w > 0) {
                    char tmp[256];
                    if (recv(fd, tmp, sizeof tmp, 0) <= 0)
                        break;
                }
            }
            pthread_mutex_lock(&s->mu);
            s->busy--;
            pthread_mutex_unlock(&s->mu);
            goto out;
        } else if (strcmp(r.path, "/order") == 0) {
            if (strncmp(r.body, "fail", 4) == 0)
                status = 500;
        }
        if (delay > 0)
            sleep_ms(delay);
        r.t_end = now_s();
        pthread_mutex_lock(&s->mu);
        s->busy--;
        if (s->n_recs < MAX_RECS)
            s->recs[s->n_recs++] = r;
        pthread_mutex_unlock(&s->mu);
        respond(fd, status, body);
        memmove(buf, buf + head_len + body_len, len - head_len - body_len);
        len -= head_len + body_len;
    }
out:
    free(buf);
    close(fd);
    pthread_mutex_lock(&s->mu);
    s->open_conns--;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void *accept_main(void *arg)
{
    srv *s = arg;
    while (!atomic_load(&s->stop)) {
        if (wait_readable(s->lfd) <= 0)
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        conn_arg *ca = malloc(sizeof *ca);
        pthread_mutex_lock(&s->mu);
        bool room = ca && s->n_conn_threads < MAX_CONNS;
        if (room) {
            s->open_conns++;
            s->total_conns++;
            if (s->open_conns > s->max_open_conns)
                s->max_open_conns = s->open_conns;
            ca->s = s;
            ca->fd = fd;
            if (pthread_create(&s->conn_threads[s->n_conn_threads], NULL, conn_main, ca) == 0) {
                s->n_conn_threads++;
            } else {
                s->open_conns--;
                room = false;
            }
        }
        pthread_mutex_unlock(&s->mu);
        if (!room) {
            free(ca);
            close(fd);
        }
    }
    return NULL;
}

static srv *srv_start(void)
{
    srv *s = calloc(1, sizeof *s);
    assert_non_null(s);
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 128), 0);
    socklen_t al = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, accept_main, s), 0);
    return s;
}

static void srv_stop(srv *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    for (int i = 0; i < s->n_conn_threads; i++)
        pthread_join(s->conn_threads[i], NULL);
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- messages and connectors ---- */

static sl_msg *mk_msg(const char *id, const char *key, const char *body, const char *ctype)
{
    sl_msg *m = calloc(1, sizeof *m);
    assert_non_null(m);
    snprintf(m->id, sizeof m->id, "%s", id);
    if (key) {
        m->key = strdup(key);
        m->key_len = strlen(key);
    }
    m->body = strdup(body);
    m->body_len = strlen(body);
    m->partition = -1;
    m->offset = -1;
    if (ctype) {
        m->headers = calloc(1, sizeof *m->headers);
        m->headers[0].name = strdup("content-type");
        m->headers[0].value = strdup(ctype);
        m->headers[0].value_len = strlen(ctype);
        m->n_headers = m->cap_headers = 1;
    }
    return m;
}

static void free_msg(sl_msg *m)
{
    for (size_t i = 0; i < m->n_headers; i++) {
        free(m->headers[i].name);
        free(m->headers[i].value);
    }
    free(m->headers);
    free(m->key);
    free(m->body);
    free(m);
}

typedef struct fixture {
    srv *s;
    char base[64];
    sl_connector_conf conf;
    sl_http_client_conf hconf; /* conf.priv */
    sl_connector c;
    sl_output_conf out;
    sl_http_client_output hout; /* out.priv */
} fixture;

static void fx_open(fixture *f, int max_in_flight, uint64_t timeout_ms)
{
    memset(f, 0, sizeof *f);
    f->s = srv_start();
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->s->port);
    f->conf.name = "crm";
    f->conf.type = "http_client";
    f->hconf.base_url = f->base;
    f->hconf.timeout_ms = timeout_ms;
    f->hconf.max_in_flight = max_in_flight;
    f->c.type = &sl_http_client_connector;
    f->conf.priv = &f->hconf;
    f->out.priv = &f->hout;
    f->c.conf = &f->conf;
    f->c.env = NULL;
    sl_error err;
    assert_int_equal(f->c.type->init(&f->c, &err), 0);
    assert_int_equal(f->c.type->start(&f->c, &err), 0);
    f->hout.method = "POST";
    f->hout.path = "/";
}

static void fx_close(fixture *f)
{
    f->c.type->stop(&f->c);
    f->c.type->destroy(&f->c);
    srv_stop(f->s);
}

/* Sends one message to path and returns its result. */
static sl_send_result send_one(fixture *f, const char *path)
{
    sl_msg *m =
        mk_msg("0190f5e6-0000-7000-8000-000000000001", NULL, "{\"a\":1}", "application/json");
    sl_send_result r = {0};
    memset(&r, 0, sizeof r);
    f->hout.path = (char *)path;
    f->c.type->send(&f->c, &f->out, &m, 1, &r);
    free_msg(m);
    return r;
}

/* ---- tests ---- */

static void test_2xx_is_ok(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 4, 2000);
    sl_send_result r = send_one(&f, "/status/200");
    assert_int_equal(r.result, SL_OK);
    assert_int_equal(r.status, 200);
    r = send_one(&f, "/status/204");
    assert_int_equal(r.result, SL_OK);
    assert_int_equal(r.status, 204);
    fx_close(&f);
}

static void test_transient_statuses_retry(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 4, 2000);
    const int codes[] = {500, 502, 503, 408, 429};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char path[32], want[160];
        snprintf(path, sizeof path, "/status/%d", codes[i]);
        sl_send_result r = send_one(&f, path);
        assert_int_equal(r.result, SL_RETRY);
        assert_int_equal(r.status, codes[i]);
        snprintf(want, sizeof want, "HTTP %d from POST %s/status/%d: status %d body line2",
                 codes[i], f.base, codes[i], codes[i]);
        assert_string_equal(r.error, want);
    }
    fx_close(&f);
}

static void test_permanent_statuses_fail(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 4, 2000);
    const int codes[] = {400, 404, 422, 302};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char path[32];
        snprintf(path, sizeof path, "/status/%d", codes[i]);
        sl_send_result r = send_one(&f, path);
        assert_int_equal(r.result, SL_FAIL);
        assert_int_equal(r.status, codes[i]);
        assert_non_null(strstr(r.error, "from POST http://127.0.0.1:"));
    }
    fx_close(&f);
}

static void test_connection_refused_retries(void **state)
{
    (void)state;
    /* A port that was just free: bind, read it, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/x", ntohs(a.sin_port));
    sl_http_client_conf hconf = {.base_url = base, .timeout_ms = 2000, .max_in_flight = 2};
    sl_connector_conf conf = {.name = "down", .type = "http_client", .priv = &hconf};
    sl_connector c = {.type = &sl_http_client_connector, .conf = &conf};
    sl_error err;
    assert_int_equal(c.type->init(&c, &err), 0);
    sl_http_client_output hout = {.method = "post", .path = "y"};
    sl_output_conf out = {.priv = &hout};
    sl_msg *m = mk_msg("0190f5e6-0000-7000-8000-000000000002", NULL, "hi", NULL);
    sl_send_result r = {0};
    c.type->send(&c, &out, &m, 1, &r); /* without start: send starts the loop */
    assert_int_equal(r.result, SL_RETRY);
    assert_int_equal(r.status, 0);
    char want[200];
    snprintf(want, sizeof want, "connect failed: POST %s/y: Couldn't connect to server", base);
    assert_string_equal(r.error, want);
    free_msg(m);
    c.type->destroy(&c);
}

static void test_timeout_retries(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 4, 300);
    double t0 = now_s();
    sl_send_result r = send_one(&f, "/hang");
    double took = now_s() - t0;
    assert_int_equal(r.result, SL_RETRY);
    char want[160];
    snprintf(want, sizeof want, "timeout after 300 ms: POST %s/hang", f.base);
    assert_string_equal(r.error, want);
    assert_true(took >= 0.25 && took < 2.0);
    fx_close(&f);
}

/* A request queued while its lane's loop sleeps (nothing in flight) goes
 * out at once: the sender wakes the loop instead of it waiting out its
 * 1 s poll. */
static void test_sleeping_loop_woken_for_a_request(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 4, 5000);
    for (int i = 0; i < 5; i++) {
        usleep(100 * 1000); /* not a wait for a result: lets the loop go idle */
        double t0 = now_s();
        sl_send_result r = send_one(&f, "/status/200");
        assert_int_equal(r.result, SL_OK);
        assert_true(now_s() - t0 < 0.5);
    }
    fx_close(&f);
}

static void test_request_headers_and_url(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 4, 2000);
    snprintf(f.base, sizeof f.base, "http://127.0.0.1:%d/api/", f.s->port);
    sl_kv conn_h[] = {{"X-Conn", "c1"}, {"X-Out", "from-connector"}};
    sl_kv out_h[] = {{"x-out", "o1"}};
    f.hconf.headers = conn_h;
    f.hconf.n_headers = 2;
    f.hout.headers = out_h;
    f.hout.n_headers = 1;
    f.hout.method = "PUT";
    f.hout.path = "/orders";
    /* A body past curl's Expect: 100-continue threshold (1 MiB). */
    size_t big_len = 2 << 20;
    char *big = malloc(big_len + 1);
    memset(big, 'b', big_len);
    big[big_len] = '\0';
    sl_msg *m[2] = {
        mk_msg("0190f5e6-0000-7000-8000-00000000000a", NULL, "{\"n\":1}", "application/json"),
        mk_msg("0190f5e6-0000-7000-8000-00000000000b", NULL, big, NULL)};
    free(big);
    sl_send_result r[2] = {0};
    f.c.type->send(&f.c, &f.out, m, 2, r);
    assert_int_equal(r[0].result, SL_OK);
    assert_int_equal(r[1].result, SL_OK);
    assert_int_equal(f.s->n_recs, 2);
    for (int i = 0; i < 2; i++) {
        const rec *q = &f.s->recs[i];
        const sl_msg *mm = strcmp(q->idem, m[0]->id) == 0 ? m[0] : m[1];
        assert_string_equal(q->method, "PUT");
        assert_string_equal(q->path, "/api/orders");
        assert_string_equal(q->idem, mm->id);
        assert_string_equal(q->msgid, mm->id);
        assert_string_equal(q->xconn, "c1");
        assert_string_equal(q->xout, "o1");
        assert_false(q->expect);
        assert_int_equal(q->body_len, mm->body_len);
        if (mm == m[0]) {
            assert_string_equal(q->ctype, "application/json");
            assert_string_equal(q->body, "{\"n\":1}");
        } else {
            assert_string_equal(q->ctype, "application/octet-stream");
        }
    }
    /* An output path without a leading slash and a base without a trailing
     * one are joined with exactly one slash. */
    snprintf(f.base, sizeof f.base, "http://127.0.0.1:%d/api", f.s->port);
    sl_send_result r1 = send_one(&f, "status/201");
    assert_int_equal(r1.result, SL_OK);
    assert_int_equal(r1.status, 201);
    free_msg(m[0]);
    free_msg(m[1]);
    fx_close(&f);
}

static int find_rec(const srv *s, const char *body)
{
    for (int i = 0; i < s->n_recs; i++) {
        if (strcmp(s->recs[i].body, body) == 0)
            return i;
    }
    return -1;
}

static void test_per_key_order_and_hold_back(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 8, 2000);
    f.s->delay_ms = 100;
    f.hout.path = "/order";
    const char *keys[] = {"A", "B", "A", "A", NULL, "B", "C"};
    const char *bodies[] = {"a1", "b1", "fail-a2", "a3", "nokey", "b2", "c1"};
    enum { N = 7 };
    sl_msg *m[N];
    for (int i = 0; i < N; i++) {
        char id[40];
        snprintf(id, sizeof id, "0190f5e6-0000-7000-8000-0000000001%02d", i % 100);
        m[i] = mk_msg(id, keys[i], bodies[i], "text/plain");
    }
    sl_send_result r[N] = {0};
    f.c.type->send(&f.c, &f.out, m, N, r);
    assert_int_equal(r[0].result, SL_OK);
    assert_int_equal(r[1].result, SL_OK);
    assert_int_equal(r[2].result, SL_RETRY);
    assert_int_equal(r[2].status, 500);
    assert_int_equal(r[3].result, SL_RETRY);
    assert_int_equal(r[3].status, 0);
    assert_string_equal(r[3].error, "held back: an earlier message with the same key failed");
    assert_int_equal(r[4].result, SL_OK);
    assert_int_equal(r[5].result, SL_OK);
    assert_int_equal(r[6].result, SL_OK);
    /* a3 never reached the server; the others did, once each. */
    assert_int_equal(f.s->n_recs, 6);
    assert_int_equal(find_rec(f.s, "a3"), -1);
    /* Same key: the next one starts only after the previous one answered. */
    const rec *a1 = &f.s->recs[find_rec(f.s, "a1")];
    const rec *a2 = &f.s->recs[find_rec(f.s, "fail-a2")];
    const rec *b1 = &f.s->recs[find_rec(f.s, "b1")];
    const rec *b2 = &f.s->recs[find_rec(f.s, "b2")];
    assert_true(a2->t_start >= a1->t_end);
    assert_true(b2->t_start >= b1->t_end);
    /* Different keys ran concurrently (the server saw two at once). */
    assert_true(f.s->max_busy >= 2);
    for (int i = 0; i < N; i++)
        free_msg(m[i]);
    fx_close(&f);
}

typedef struct sender_arg {
    fixture *f;
    int base;
    int n;
    int ok;
} sender_arg;

static void *sender_main(void *arg)
{
    sender_arg *a = arg;
    sl_msg *m[16];
    sl_send_result r[16] = {0};
    for (int i = 0; i < a->n; i++) {
        char id[40];
        snprintf(id, sizeof id, "0190f5e6-0000-7000-8000-0000000002%02d", (a->base + i) % 100);
        m[i] = mk_msg(id, NULL, "x", NULL);
    }
    a->f->c.type->send(&a->f->c, &a->f->out, m, (size_t)a->n, r);
    for (int i = 0; i < a->n; i++) {
        a->ok += r[i].result == SL_OK;
        free_msg(m[i]);
    }
    return NULL;
}

static void test_max_in_flight_is_a_bulkhead(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 3, 5000);
    f.s->delay_ms = 60;
    f.hout.path = "/slow";
    sender_arg a[2] = {{&f, 0, 8, 0}, {&f, 50, 8, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, sender_main, &a[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(a[0].ok, 8);
    assert_int_equal(a[1].ok, 8);
    assert_int_equal(f.s->n_recs, 16);
    assert_true(f.s->max_busy <= 3);
    assert_true(f.s->max_busy >= 2);
    assert_true(f.s->max_open_conns <= 3);
    /* Keep-alive: the connections were reused, not one per request. */
    assert_true(f.s->total_conns <= 3);
    fx_close(&f);
}

/* With a max_in_flight large enough to be split between event loops (one
 * per CPU), the bulkhead holds over all of them: however many route workers
 * send at once, at most max_in_flight requests and connections. */
static void test_max_in_flight_holds_over_event_loops(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 32, 5000);
    f.s->delay_ms = 60;
    f.hout.path = "/slow";
    sender_arg a[4] = {{&f, 0, 16, 0}, {&f, 20, 16, 0}, {&f, 40, 16, 0}, {&f, 60, 16, 0}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, sender_main, &a[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i].ok, 16);
    assert_int_equal(f.s->n_recs, 64);
    assert_true(f.s->max_busy <= 32);
    assert_true(f.s->max_open_conns <= 32);
    fx_close(&f);
}

static void test_init_checks_base_url(void **state)
{
    (void)state;
    assert_ptr_equal(sl_connector_type_find("http_client"), &sl_http_client_connector);
    assert_true(sl_http_client_connector.can_output);
    const char *bad[] = {NULL, "", "ftp://example.com", "not a url"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_http_client_conf hconf = {.base_url = (char *)bad[i]};
        sl_connector_conf conf = {.name = "bad", .type = "http_client", .priv = &hconf};
        sl_connector c = {.type = &sl_http_client_connector, .conf = &conf};
        sl_error err;
        assert_int_equal(c.type->init(&c, &err), -1);
        assert_null(c.state);
    }
}

static void test_credentials_hidden_in_errors(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 2, 2000);
    snprintf(f.base, sizeof f.base, "http://user:secret@127.0.0.1:%d", f.s->port);
    sl_send_result r = send_one(&f, "/status/503");
    assert_int_equal(r.result, SL_RETRY);
    assert_null(strstr(r.error, "secret"));
    assert_non_null(strstr(r.error, "from POST http://127.0.0.1:"));
    fx_close(&f);
}

static void test_metrics_counted(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof f);
    f.s = srv_start();
    snprintf(f.base, sizeof f.base, "http://127.0.0.1:%d", f.s->port);
    sl_connector_env env = {.metrics = sl_metrics_new()};
    assert_non_null(env.metrics);
    f.conf.name = "crm";
    f.hconf.base_url = f.base;
    f.hconf.timeout_ms = 2000;
    f.hconf.max_in_flight = 2;
    f.c.type = &sl_http_client_connector;
    f.conf.priv = &f.hconf;
    f.out.priv = &f.hout;
    f.c.conf = &f.conf;
    f.c.env = &env;
    sl_error err;
    assert_int_equal(f.c.type->init(&f.c, &err), 0);
    f.hout.method = "POST";
    assert_int_equal(send_one(&f, "/status/200").result, SL_OK);
    assert_int_equal(send_one(&f, "/status/200").result, SL_OK);
    assert_int_equal(send_one(&f, "/status/503").result, SL_RETRY);
    size_t len = 0;
    char *text = sl_metrics_render(env.metrics, &len);
    assert_non_null(text);
    assert_non_null(
        strstr(text, "sluice_http_client_requests_total{connector=\"crm\",code=\"200\"} 2"));
    assert_non_null(
        strstr(text, "sluice_http_client_requests_total{connector=\"crm\",code=\"503\"} 1"));
    assert_non_null(strstr(text, "sluice_http_client_request_seconds_count{connector=\"crm\"} 3"));
    free(text);
    fx_close(&f);
    sl_metrics_free(env.metrics);
}

static void test_call_returns_response(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 2, 2000);
    sl_kv h[] = {{"X-Out", "lua"}, {"Content-Type", "text/plain"}};
    sl_http_response resp;
    sl_http_client_call(&f.c, "get", "/status/200", h, 2, NULL, 0, &resp);
    assert_int_equal(resp.result, SL_OK);
    assert_int_equal(resp.status, 200);
    assert_non_null(resp.body);
    assert_string_equal(resp.body, "status 200 body\nline2");
    assert_int_equal(resp.body_len, strlen(resp.body));
    assert_false(resp.truncated);
    sl_http_response_free(&resp);
    assert_null(resp.body);
    assert_int_equal(f.s->n_recs, 1);
    assert_string_equal(f.s->recs[0].method, "GET");
    assert_string_equal(f.s->recs[0].xout, "lua");
    assert_string_equal(f.s->recs[0].ctype, "text/plain");
    assert_string_equal(f.s->recs[0].idem, "");

    sl_http_client_call(&f.c, "POST", "/status/404", NULL, 0, "q", 1, &resp);
    assert_int_equal(resp.result, SL_FAIL);
    assert_int_equal(resp.status, 404);
    assert_string_equal(resp.body, "status 404 body\nline2");
    sl_http_response_free(&resp);

    sl_connector other = {.type = &sl_http_client_connector};
    sl_http_client_call(&other, "GET", "/", NULL, 0, NULL, 0, &resp);
    assert_int_equal(resp.result, SL_FAIL);
    assert_null(resp.body);
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_2xx_is_ok),
        cmocka_unit_test(test_transient_statuses_retry),
        cmocka_unit_test(test_permanent_statuses_fail),
        cmocka_unit_test(test_connection_refused_retries),
        cmocka_unit_test(test_timeout_retries),
        cmocka_unit_test(test_sleeping_loop_woken_for_a_request),
        cmocka_unit_test(test_request_headers_and_url),
        cmocka_unit_test(test_per_key_order_and_hold_back),
        cmocka_unit_test(test_max_in_flight_is_a_bulkhead),
        cmocka_unit_test(test_max_in_flight_holds_over_event_loops),
        cmocka_unit_test(test_init_checks_base_url),
        cmocka_unit_test(test_credentials_hidden_in_errors),
        cmocka_unit_test(test_metrics_counted),
        cmocka_unit_test(test_call_returns_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
