/* An http_server listener that outlives a reload (http_listener.h): the
 * daemon, limits and TLS credentials, the generation requests go to, and
 * the requests parked while no generation is attached. */
#include "http_listener.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct hs_listener {
    char *name; /* the connector's (the limits log with it) */
    struct MHD_Daemon *daemon;
    char bound[96];
    hl_conf conf;
    hl_limits *limits;
    sl_tls *tls; /* NULL: plain HTTP */
    pthread_mutex_t mu;
    void *gen;                      /* the generation attached; NULL between two */
    bool closing;                   /* no generation will attach again */
    bool quiesced;                  /* the daemon gave its listening socket up */
    struct MHD_Connection **parked; /* suspended until a generation attaches */
    size_t n_parked, cap_parked;
};

static char parked_marker; /* the con_cls of a parked request */

hs_listener *hs_listener_new(const char *name, const hl_conf *c, sl_tls *tls, sl_metrics *m)
{
    hs_listener *l = calloc(1, sizeof *l);
    if (l == NULL || (l->name = strdup(name)) == NULL) {
        free(l);
        sl_tls_free(tls);
        return NULL;
    }
    l->conf = *c;
    l->tls = tls;
    pthread_mutex_init(&l->mu, NULL);
    l->limits = hl_new(l->name, c, m);
    if (l->limits == NULL || hl_start(l->limits) != 0) {
        hs_listener_close(l, NULL, NULL);
        return NULL;
    }
    return l;
}

void hs_listener_set_daemon(hs_listener *l, struct MHD_Daemon *d, const char *bound)
{
    l->daemon = d;
    snprintf(l->bound, sizeof l->bound, "%s", bound);
}

struct MHD_Daemon *hs_listener_daemon(const hs_listener *l)
{
    return l->daemon;
}

const char *hs_listener_bound(const hs_listener *l)
{
    return l->bound;
}

hl_limits *hs_listener_limits(const hs_listener *l)
{
    return l->limits;
}

sl_tls *hs_listener_tls(const hs_listener *l)
{
    return l->tls;
}

const char *hs_listener_name(const hs_listener *l)
{
    return l->name;
}

bool hs_listener_fits(const hs_listener *l, const char *name, const hl_conf *c, bool tls)
{
    const hl_conf *o = &l->conf;
    return l->daemon != NULL && strcmp(l->name, name) == 0 && (l->tls != NULL) == tls &&
           o->max_connections == c->max_connections &&
           o->max_connections_per_client == c->max_connections_per_client &&
           o->header_timeout_ms == c->header_timeout_ms &&
           o->body_timeout_ms == c->body_timeout_ms && o->idle_timeout_ms == c->idle_timeout_ms &&
           o->max_headers == c->max_headers;
}

/* Adds conn to the parked list (l->mu held). False when out of memory. */
static bool park(hs_listener *l, struct MHD_Connection *conn)
{
    if (l->n_parked == l->cap_parked) {
        size_t cap = l->cap_parked ? l->cap_parked * 2 : 16;
        struct MHD_Connection **p = realloc(l->parked, cap * sizeof *p);
        if (p == NULL)
            return false;
        l->parked = p;
        l->cap_parked = cap;
    }
    l->parked[l->n_parked++] = conn;
    return true;
}

void *hs_listener_enter(hs_listener *l, struct MHD_Connection *conn, void **con_cls,
                        void *(*start)(void *gen, struct MHD_Connection *conn),
                        enum MHD_Result *ret)
{
    void *req = NULL;
    *ret = MHD_NO;
    pthread_mutex_lock(&l->mu);
    if (l->gen != NULL) {
        req = start(l->gen, conn);
    } else if (!l->closing && park(l, conn)) {
        *con_cls = &parked_marker;
        MHD_suspend_connection(conn); /* resumed by hs_listener_attach or close */
        *ret = MHD_YES;
    }
    pthread_mutex_unlock(&l->mu);
    return req;
}

bool hs_listener_parked(const void *con_cls)
{
    return con_cls == &parked_marker;
}

/* Resumes every parked connection (l->mu held). */
static void resume_parked(hs_listener *l)
{
    for (size_t i = 0; i < l->n_parked; i++)
        MHD_resume_connection(l->parked[i]);
    l->n_parked = 0;
}

void hs_listener_attach(hs_listener *l, void *gen)
{
    pthread_mutex_lock(&l->mu);
    l->gen = gen;
    resume_parked(l);
    pthread_mutex_unlock(&l->mu);
}

void hs_listener_detach(hs_listener *l, const void *gen)
{
    pthread_mutex_lock(&l->mu);
    if (l->gen == gen)
        l->gen = NULL;
    pthread_mutex_unlock(&l->mu);
}

int hs_listener_quiesce(hs_listener *l)
{
    if (l->daemon == NULL || l->quiesced)
        return -1;
    l->quiesced = true;
    MHD_socket s = MHD_quiesce_daemon(l->daemon);
    return s != MHD_INVALID_SOCKET ? s : -1;
}

void hs_listener_close(hs_listener *l, int *fd, sl_tls **tls)
{
    if (fd != NULL)
        *fd = -1;
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    l->gen = NULL;
    l->closing = true;
    resume_parked(l); /* their handler call closes them */
    pthread_mutex_unlock(&l->mu);
    if (l->daemon != NULL) {
        int s = hs_listener_quiesce(l);
        if (fd != NULL)
            *fd = s;
        else if (s >= 0)
            close(s);
        MHD_stop_daemon(l->daemon); /* completes every connection */
    }
    hl_free(l->limits);
    if (tls != NULL)
        *tls = l->tls;
    else
        sl_tls_free(l->tls);
    pthread_mutex_destroy(&l->mu);
    free(l->parked);
    free(l->name);
    free(l);
}

void hs_listener_drop(void *l)
{
    hs_listener_close(l, NULL, NULL);
}
