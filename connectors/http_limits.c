/* Abuse limits of the http_server connector: connection counts (total and
 * per client address), read deadlines that run from a fixed start (bytes
 * trickling in do not push them back), closed by a reaper thread that shuts
 * the socket down, and token buckets for `from.rate_limit`. */
#include "http_limits.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "fnv.h"
#include "logging.h"
#include "thread_name.h"

#define HL_IP_SLOTS 1024     /* per-client connection counts: hash chains */
#define HL_BUCKET_SLOTS 4096 /* per-client rate buckets kept per route */
#define HL_PROBE 8
#define HL_TICK_MS 100

enum {
    R_TOTAL,
    R_PER_CLIENT,
    R_HEADER_TIMEOUT,
    R_BODY_TIMEOUT,
    R_HEADERS,
    R_CERT,
    R_TLS_CERT,
    R_N
};
static const char *const REASONS[R_N] = {"too_many_connections",  "too_many_connections_per_client",
                                         "header_timeout",        "body_timeout",
                                         "too_many_headers",      "client_certificate",
                                         "tls_client_certificate"};

const sl_conf_doc hl_rate_doc[] = {
    SL_DOC_REQ("rate", "string", "requests allowed, as N/s, N/m or N/h (\"100/s\")"),
    SL_DOC("burst", "integer", "rate per second, at least 1",
           "requests that may arrive at once (the bucket's size)"),
    SL_DOC("per", "enum:client|route", "client",
           "client: one bucket per client address; route: one for the whole route"),
    SL_DOC_END};

typedef struct ip_count {
    struct ip_count *next;
    char ip[INET6_ADDRSTRLEN];
    long n;
} ip_count;

struct hl_conn {
    hl_conn *prev, *next;
    int fd;
    /* deadline(ms) << 3 | reason (R_HEADER_TIMEOUT or R_BODY_TIMEOUT), or 0
     * for none: one word, so that the reaper never counts a deadline under
     * the reason of the next one (set without the lock; a race only shifts
     * it) */
    _Atomic uint64_t deadline;
    bool counted; /* holds a place in the counts */
    char ip[INET6_ADDRSTRLEN];
};

struct hl_limits {
    hl_conf conf;
    const char *name;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool running, stop;
    hl_conn *head;
    long total;
    ip_count *ips[HL_IP_SLOTS];
    sl_counter *refused[R_N];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* hl_conn.deadline for after_ms from now with reason; 0 (none) when
 * after_ms is 0. */
static uint64_t deadline_word(uint64_t after_ms, int reason)
{
    _Static_assert(R_N <= 8, "a reason fits in 3 bits");
    return after_ms ? (now_ms() + after_ms) << 3 | (uint64_t)reason : 0;
}

/* ---- config ---------------------------------------------------------------- */

void hl_parse_conf(sl_conf_reader *r, const sl_node *n, const char *path, hl_conf *c)
{
    c->max_connections = 2048;
    c->max_connections_per_client = 256;
    c->header_timeout_ms = 10000;
    c->body_timeout_ms = 30000;
    c->idle_timeout_ms = 60000;
    c->max_headers = 100;
    sl_conf_int(r, n, "max_connections", path, 1, 1000000, &c->max_connections);
    sl_conf_int(r, n, "max_connections_per_client", path, 1, 1000000,
                &c->max_connections_per_client);
    sl_conf_duration(r, n, "header_timeout", path, &c->header_timeout_ms);
    sl_conf_duration(r, n, "body_timeout", path, &c->body_timeout_ms);
    sl_conf_duration(r, n, "idle_timeout", path, &c->idle_timeout_ms);
    sl_conf_int(r, n, "max_headers", path, 1, 10000, &c->max_headers);
}

/* Parses "100/s", "10/m", "5/h" (or a bare number, per second). */
static bool parse_rate(const char *s, double *per_s)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || !(v > 0) || !isfinite(v))
        return false;
    double div = 1;
    if (*end == '/') {
        if (!strcmp(end + 1, "s"))
            div = 1;
        else if (!strcmp(end + 1, "m"))
            div = 60;
        else if (!strcmp(end + 1, "h"))
            div = 3600;
        else
            return false;
    } else if (*end != '\0') {
        return false;
    }
    *per_s = v / div;
    return true;
}

void hl_parse_rate(sl_conf_reader *r, const sl_node *n, const char *path, hl_rate_conf *rc)
{
    static const char *const PER[] = {"client", "route", NULL};
    const sl_node *m = sl_conf_value(n, "rate_limit");
    char p[SL_CONF_PATH_LEN];
    if (m == NULL)
        return;
    sl_conf_path_key(p, path, "rate_limit");
    if (!sl_conf_want_map(r, m, p))
        return;
    static const char *const KEYS[] = {"rate", "burst", "per", NULL};
    sl_conf_check_keys(r, m, p, KEYS);
    char *rate = NULL;
    if (!sl_conf_need_str(r, m, "rate", p, &rate))
        return;
    if (!parse_rate(rate, &rc->per_s)) {
        char rp[SL_CONF_PATH_LEN];
        sl_conf_path_key(rp, p, "rate");
        sl_conf_type_error(r, sl_conf_value(m, "rate"), rp, "a rate like 100/s, 10/m or 5/h");
        return;
    }
    int burst = 0;
    sl_conf_int(r, m, "burst", p, 1, 100000000, &burst);
    rc->burst = burst > 0 ? (double)burst : (rc->per_s < 1 ? 1 : ceil(rc->per_s));
    int per = 0;
    sl_conf_enum(r, m, "per", p, PER, &per);
    rc->per_client = per == 0;
    rc->on = true;
}

/* ---- connections ----------------------------------------------------------- */

hl_limits *hl_new(const char *name, const hl_conf *c, sl_metrics *m)
{
    hl_limits *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->conf = *c;
    l->name = name;
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    char esc[200], labels[400];
    if (m == NULL)
        return l;
    sl_metrics_escape(name, esc, sizeof esc);
    for (int i = 0; i < R_N; i++) {
        snprintf(labels, sizeof labels, "connector=\"%s\",route=\"\",reason=\"%s\"", esc,
                 REASONS[i]);
        l->refused[i] = sl_metrics_counter(
            m, "sluice_http_refused_total",
            "Requests and connections refused by http_server inputs, by route and reason", labels);
    }
    return l;
}

unsigned hl_mhd_connection_limit(const hl_limits *l)
{
    return (unsigned)(l->conf.max_connections + l->conf.max_connections / 4 + 16);
}

void hl_count(hl_limits *l, const char *reason)
{
    sl_counter_add(hl_counter(l, reason), 1);
}

sl_counter *hl_counter(hl_limits *l, const char *reason)
{
    for (int i = 0; i < R_N; i++)
        if (!strcmp(REASONS[i], reason))
            return l->refused[i];
    return NULL;
}

static ip_count **ip_slot(hl_limits *l, const char *ip)
{
    ip_count **pp = &l->ips[sl_fnv1a64(ip, strlen(ip)) % HL_IP_SLOTS];
    while (*pp != NULL && strcmp((*pp)->ip, ip) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Takes a place for c in the counts (under mu). Returns the refusal
 * reason, or -1 when it fits. */
static int admit_locked(hl_limits *l, hl_conn *c)
{
    if (l->total >= l->conf.max_connections)
        return R_TOTAL;
    ip_count **pp = ip_slot(l, c->ip);
    if (*pp == NULL) {
        ip_count *ic = calloc(1, sizeof *ic);
        if (ic == NULL)
            return R_TOTAL;
        snprintf(ic->ip, sizeof ic->ip, "%s", c->ip);
        *pp = ic;
    }
    if ((*pp)->n >= l->conf.max_connections_per_client)
        return R_PER_CLIENT;
    (*pp)->n++;
    l->total++;
    c->counted = true;
    return -1;
}

static void addr_text(const struct sockaddr *addr, char *out, size_t cap)
{
    out[0] = '\0';
    if (addr == NULL)
        return;
    if (addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, out, (socklen_t)cap);
    else if (addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, out, (socklen_t)cap);
}

hl_conn *hl_conn_open(hl_limits *l, int fd, const struct sockaddr *addr)
{
    hl_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        shutdown(fd, SHUT_RDWR);
        return NULL;
    }
    c->fd = fd;
    addr_text(addr, c->ip, sizeof c->ip);
    pthread_mutex_lock(&l->mu);
    int refused = admit_locked(l, c);
    c->deadline = deadline_word(l->conf.header_timeout_ms, R_HEADER_TIMEOUT);
    if (refused >= 0) {
        c->deadline = 0;
        shutdown(fd, SHUT_RDWR);
    }
    c->next = l->head;
    if (l->head != NULL)
        l->head->prev = c;
    l->head = c;
    pthread_mutex_unlock(&l->mu);
    if (refused >= 0)
        sl_counter_add(l->refused[refused], 1);
    return c;
}

void hl_conn_close(hl_limits *l, hl_conn *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->counted) {
        l->total--;
        ip_count **pp = ip_slot(l, c->ip);
        if (*pp != NULL && --(*pp)->n <= 0) {
            ip_count *dead = *pp;
            *pp = dead->next;
            free(dead);
        }
    }
    pthread_mutex_unlock(&l->mu);
    free(c);
}

/* Sets c's deadline without the lock: c lives until hl_conn_close, and the
 * reaper reading an old value only closes at the previous deadline. */
static void set_deadline(hl_limits *l, hl_conn *c, uint64_t after_ms, int reason)
{
    (void)l;
    if (c == NULL)
        return;
    atomic_store(&c->deadline, deadline_word(after_ms, reason));
}

void hl_conn_headers_done(hl_limits *l, hl_conn *c)
{
    set_deadline(l, c, l->conf.body_timeout_ms, R_BODY_TIMEOUT);
}

void hl_conn_body_done(hl_limits *l, hl_conn *c)
{
    set_deadline(l, c, 0, R_BODY_TIMEOUT);
}

void hl_conn_request_done(hl_limits *l, hl_conn *c)
{
    set_deadline(l, c, l->conf.idle_timeout_ms + l->conf.header_timeout_ms, R_HEADER_TIMEOUT);
}

const char *hl_conn_client(const hl_conn *c)
{
    return c != NULL ? c->ip : "";
}

/* Shuts down every connection past its deadline (under mu: the fd stays
 * open until hl_conn_close, which takes mu). */
static void reap_locked(hl_limits *l, long counts[R_N])
{
    uint64_t now = now_ms();
    for (hl_conn *c = l->head; c != NULL; c = c->next) {
        uint64_t d = atomic_load(&c->deadline);
        if (d == 0 || (d >> 3) > now || !atomic_compare_exchange_strong(&c->deadline, &d, 0))
            continue; /* none, not yet, or just set again */
        shutdown(c->fd, SHUT_RDWR);
        counts[d & 7]++;
    }
}

static void *reaper_main(void *arg)
{
    hl_limits *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        long counts[R_N] = {0};
        reap_locked(l, counts);
        for (int i = 0; i < R_N; i++)
            if (counts[i] > 0)
                sl_counter_add(l->refused[i], (uint64_t)counts[i]);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += HL_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int hl_start(hl_limits *l)
{
    if (pthread_create(&l->thread, NULL, reaper_main, l) != 0)
        return -1;
    sl_thread_name(l->thread, "http-reaper");
    l->running = true;
    return 0;
}

void hl_free(hl_limits *l)
{
    if (l == NULL)
        return;
    if (l->running) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    for (hl_conn *c = l->head, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    for (int i = 0; i < HL_IP_SLOTS; i++)
        for (ip_count *ic = l->ips[i], *next; ic != NULL; ic = next) {
            next = ic->next;
            free(ic);
        }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

/* ---- rate limits ----------------------------------------------------------- */

typedef struct slot {
    char key[INET6_ADDRSTRLEN];
    double tokens;
    uint64_t last_ms;
} slot;

struct hl_bucket {
    hl_rate_conf conf;
    pthread_mutex_t mu;
    slot one;    /* per route */
    slot *slots; /* per client: HL_BUCKET_SLOTS, open addressing */
};

hl_bucket *hl_bucket_new(const hl_rate_conf *rc)
{
    hl_bucket *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->conf = *rc;
    b->one.tokens = rc->burst;
    b->one.last_ms = now_ms();
    if (rc->per_client) {
        b->slots = calloc(HL_BUCKET_SLOTS, sizeof *b->slots);
        if (b->slots == NULL) {
            free(b);
            return NULL;
        }
    }
    pthread_mutex_init(&b->mu, NULL);
    return b;
}

void hl_bucket_free(hl_bucket *b)
{
    if (b == NULL)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b->slots);
    free(b);
}

/* The client's bucket: its slot, a free one, or the least recently used of
 * the probed ones (that client starts again with a full bucket). */
static slot *client_slot(hl_bucket *b, const char *client, uint64_t now)
{
    size_t h = (size_t)(sl_fnv1a64(client, strlen(client)) % HL_BUCKET_SLOTS);
    slot *oldest = NULL;
    for (int i = 0; i < HL_PROBE; i++) {
        slot *s = &b->slots[(h + (size_t)i) % HL_BUCKET_SLOTS];
        if (!strcmp(s->key, client))
            return s;
        if (s->key[0] == '\0' || oldest == NULL || s->last_ms < oldest->last_ms)
            oldest = s;
        if (s->key[0] == '\0')
            break;
    }
    snprintf(oldest->key, sizeof oldest->key, "%s", client);
    oldest->tokens = b->conf.burst;
    oldest->last_ms = now;
    return oldest;
}

int hl_bucket_take(hl_bucket *b, const char *client)
{
    uint64_t now = now_ms();
    pthread_mutex_lock(&b->mu);
    slot *s = b->conf.per_client ? client_slot(b, client != NULL ? client : "", now) : &b->one;
    s->tokens += (double)(now - s->last_ms) / 1000.0 * b->conf.per_s;
    if (s->tokens > b->conf.burst)
        s->tokens = b->conf.burst;
    s->last_ms = now;
    int wait = 0;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
    } else {
        wait = (int)ceil((1.0 - s->tokens) / b->conf.per_s);
        if (wait < 1)
            wait = 1;
    }
    pthread_mutex_unlock(&b->mu);
    return wait;
}
