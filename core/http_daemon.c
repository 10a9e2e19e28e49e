/* An HTTP daemon that outlives a reload (http_daemon.h): the MHD daemon and
 * its TLS credentials, the generation requests go to, the callbacks holding
 * it, and the requests parked while no generation is attached. */
#include "http_daemon.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sl_http_daemon {
    char *name;
    struct MHD_Daemon *mhd;
    char bound[96];
    sl_tls *tls; /* NULL: plain HTTP */
    pthread_mutex_t mu;
    pthread_cond_t idle;            /* signalled when holders drops to 0 */
    void *gen;                      /* the generation attached; NULL between two */
    unsigned holders;               /* callbacks holding gen (sl_http_daemon_hold) */
    bool closing;                   /* no generation will attach again */
    bool quiesced;                  /* the daemon gave its listening socket up */
    struct MHD_Connection **parked; /* suspended until a generation attaches */
    size_t n_parked, cap_parked;
};

sl_http_daemon *sl_http_daemon_new(const char *name, sl_tls *tls)
{
    sl_http_daemon *d = calloc(1, sizeof *d);
    if (d == NULL || (d->name = strdup(name)) == NULL) {
        free(d);
        sl_tls_free(tls);
        return NULL;
    }
    d->tls = tls;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->idle, NULL);
    return d;
}

void sl_http_daemon_set(sl_http_daemon *d, struct MHD_Daemon *mhd, const char *bound)
{
    d->mhd = mhd;
    snprintf(d->bound, sizeof d->bound, "%s", bound);
}

struct MHD_Daemon *sl_http_daemon_mhd(const sl_http_daemon *d)
{
    return d->mhd;
}

const char *sl_http_daemon_bound(const sl_http_daemon *d)
{
    return d->bound;
}

const char *sl_http_daemon_name(const sl_http_daemon *d)
{
    return d->name;
}

sl_tls *sl_http_daemon_tls(const sl_http_daemon *d)
{
    return d->tls;
}

bool sl_http_daemon_fits(const sl_http_daemon *d, const char *name, bool tls)
{
    return d->mhd != NULL && !d->quiesced && strcmp(d->name, name) == 0 && (d->tls != NULL) == tls;
}

/* Adds conn to the parked list (d->mu held). False when out of memory. */
static bool park(sl_http_daemon *d, struct MHD_Connection *conn)
{
    if (d->n_parked == d->cap_parked) {
        size_t cap = d->cap_parked ? d->cap_parked * 2 : 16;
        struct MHD_Connection **p = realloc(d->parked, cap * sizeof *p);
        if (p == NULL)
            return false;
        d->parked = p;
        d->cap_parked = cap;
    }
    d->parked[d->n_parked++] = conn;
    return true;
}

void *sl_http_daemon_hold(sl_http_daemon *d, struct MHD_Connection *conn, enum MHD_Result *ret)
{
    void *gen = NULL;
    *ret = MHD_NO;
    pthread_mutex_lock(&d->mu);
    if (d->gen != NULL) {
        gen = d->gen;
        d->holders++;
    } else if (!d->closing && park(d, conn)) {
        MHD_suspend_connection(conn); /* resumed by sl_http_daemon_attach or close */
        *ret = MHD_YES;
    }
    pthread_mutex_unlock(&d->mu);
    return gen;
}

void sl_http_daemon_release(sl_http_daemon *d)
{
    pthread_mutex_lock(&d->mu);
    if (--d->holders == 0)
        pthread_cond_broadcast(&d->idle);
    pthread_mutex_unlock(&d->mu);
}

/* Resumes every parked connection (d->mu held). */
static void resume_parked(sl_http_daemon *d)
{
    for (size_t i = 0; i < d->n_parked; i++)
        MHD_resume_connection(d->parked[i]);
    d->n_parked = 0;
}

void sl_http_daemon_attach(sl_http_daemon *d, void *gen)
{
    pthread_mutex_lock(&d->mu);
    d->gen = gen;
    resume_parked(d);
    pthread_mutex_unlock(&d->mu);
}

void sl_http_daemon_detach(sl_http_daemon *d, const void *gen)
{
    pthread_mutex_lock(&d->mu);
    if (d->gen == gen) {
        d->gen = NULL;
        while (d->holders > 0)
            pthread_cond_wait(&d->idle, &d->mu);
    }
    pthread_mutex_unlock(&d->mu);
}

int sl_http_daemon_quiesce(sl_http_daemon *d)
{
    if (d->mhd == NULL || d->quiesced)
        return -1;
    d->quiesced = true;
    MHD_socket s = MHD_quiesce_daemon(d->mhd);
    return s != MHD_INVALID_SOCKET ? s : -1;
}

void sl_http_daemon_close(sl_http_daemon *d, int *fd, sl_tls **tls)
{
    if (fd != NULL)
        *fd = -1;
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    d->gen = NULL;
    d->closing = true;
    resume_parked(d); /* their handler call closes them */
    pthread_mutex_unlock(&d->mu);
    if (d->mhd != NULL) {
        int s = sl_http_daemon_quiesce(d);
        if (fd != NULL)
            *fd = s;
        else if (s >= 0)
            close(s);
        MHD_stop_daemon(d->mhd); /* completes every connection */
    }
    if (tls != NULL)
        *tls = d->tls;
    else
        sl_tls_free(d->tls);
    pthread_cond_destroy(&d->idle);
    pthread_mutex_destroy(&d->mu);
    free(d->parked);
    free(d->name);
    free(d);
}

void sl_http_daemon_drop(void *d)
{
    sl_http_daemon_close(d, NULL, NULL);
}
