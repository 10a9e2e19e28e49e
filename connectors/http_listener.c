/* An http_server listener that outlives a reload (http_listener.h): core's
 * daemon holder (core/http_daemon.h: the daemon, its TLS credentials, the
 * generation requests go to, parked requests) plus the connection limits. */
#include "http_listener.h"

#include <stdlib.h>

#include "http_daemon.h"

struct hs_listener {
    sl_http_daemon *d; /* named after the connector */
    hl_conf conf;
    hl_limits *limits;
};

static char parked_marker; /* the con_cls of a parked request */

hs_listener *hs_listener_new(const char *name, const hl_conf *c, sl_tls *tls, sl_metrics *m)
{
    hs_listener *l = calloc(1, sizeof *l);
    if (l == NULL) {
        sl_tls_free(tls);
        return NULL;
    }
    l->conf = *c;
    l->d = sl_http_daemon_new(name, tls);
    if (l->d == NULL) {
        free(l);
        return NULL;
    }
    l->limits = hl_new(name, c, m);
    if (l->limits == NULL || hl_start(l->limits) != 0) {
        hs_listener_close(l, NULL, NULL);
        return NULL;
    }
    if (tls != NULL)
        sl_tls_count_refused(tls, hl_counter(l->limits, "tls_client_certificate"));
    return l;
}

void hs_listener_set_daemon(hs_listener *l, struct MHD_Daemon *d, const char *bound)
{
    sl_http_daemon_set(l->d, d, bound);
}

struct MHD_Daemon *hs_listener_daemon(const hs_listener *l)
{
    return sl_http_daemon_mhd(l->d);
}

const char *hs_listener_bound(const hs_listener *l)
{
    return sl_http_daemon_bound(l->d);
}

hl_limits *hs_listener_limits(const hs_listener *l)
{
    return l->limits;
}

sl_tls *hs_listener_tls(const hs_listener *l)
{
    return sl_http_daemon_tls(l->d);
}

const char *hs_listener_name(const hs_listener *l)
{
    return sl_http_daemon_name(l->d);
}

bool hs_listener_fits(const hs_listener *l, const char *name, const hl_conf *c, bool tls)
{
    const hl_conf *o = &l->conf;
    return sl_http_daemon_fits(l->d, name, tls) && o->max_connections == c->max_connections &&
           o->max_connections_per_client == c->max_connections_per_client &&
           o->header_timeout_ms == c->header_timeout_ms &&
           o->body_timeout_ms == c->body_timeout_ms && o->idle_timeout_ms == c->idle_timeout_ms &&
           o->max_headers == c->max_headers;
}

void *hs_listener_enter(hs_listener *l, struct MHD_Connection *conn, void **con_cls,
                        void *(*start)(void *gen, struct MHD_Connection *conn),
                        enum MHD_Result *ret)
{
    void *gen = sl_http_daemon_hold(l->d, conn, ret);
    if (gen == NULL) {
        if (*ret == MHD_YES)
            *con_cls = &parked_marker; /* called again once a generation attaches */
        return NULL;
    }
    void *req = start(gen, conn);
    sl_http_daemon_release(l->d);
    *ret = MHD_NO;
    return req;
}

bool hs_listener_parked(const void *con_cls)
{
    return con_cls == &parked_marker;
}

void hs_listener_attach(hs_listener *l, void *gen)
{
    sl_http_daemon_attach(l->d, gen);
}

void hs_listener_detach(hs_listener *l, const void *gen)
{
    sl_http_daemon_detach(l->d, gen);
}

int hs_listener_quiesce(hs_listener *l)
{
    return sl_http_daemon_quiesce(l->d);
}

void hs_listener_close(hs_listener *l, int *fd, sl_tls **tls)
{
    if (fd != NULL)
        *fd = -1;
    if (l == NULL)
        return;
    sl_http_daemon_close(l->d, fd, tls); /* completes every connection */
    hl_free(l->limits);
    free(l);
}

void hs_listener_drop(void *l)
{
    hs_listener_close(l, NULL, NULL);
}
