/* The gateway context: builds the event log, metrics, connectors and routes
 * from a loaded config, starts them in dependency order (routes, then inputs,
 * then the admin listener) and drains them in reverse on shutdown. */
#include "gateway.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "logging.h"

#define STATUS_CAPACITY (1u << 17)

static void observe_fsync(void *arg, double seconds)
{
    sl_histogram_observe(arg, seconds);
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int sl_data_dir_lock(const char *data_dir, sl_error *err)
{
    if (mkdir_p(data_dir) < 0)
        return sl_error_set(err, SL_EIO, "cannot create data_dir %s: %s", data_dir,
                            strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "cannot open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        close(fd);
        if (e == EWOULDBLOCK)
            return sl_error_set(err, SL_EIO, "data_dir %s is in use by another sluice (pid %s)",
                                data_dir, pid[0] ? pid : "?");
        return sl_error_set(err, SL_EIO, "cannot lock %s: %s", path, strerror(e));
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        sl_warn("gateway", "cannot write pid to %s: %s", path, strerror(errno));
    return fd; /* held (and the lock with it) until the process exits or it is closed */
}

sl_gateway *sl_gateway_new(sl_config *conf, sl_error *err)
{
    sl_gateway *gw = calloc(1, sizeof *gw);
    if (!gw) {
        sl_config_free(conf);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    gw->conf = conf;
    gw->lock_fd = -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    gw->started_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

    gw->metrics = sl_metrics_new();
    gw->status = sl_status_new(STATUS_CAPACITY);
    if (!gw->metrics || !gw->status) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    gw->lock_fd = sl_data_dir_lock(conf->gw.data_dir, err);
    if (gw->lock_fd < 0)
        goto fail;

    sl_log_options lo = conf->gw.log;
    lo.on_fsync = observe_fsync;
    lo.on_fsync_arg = sl_metrics_histogram(gw->metrics, "sluice_log_fsync_seconds",
                                           "Duration of the event log's fdatasync calls.", "",
                                           NULL, 0);
    if (!lo.on_fsync_arg)
        lo.on_fsync = NULL;
    gw->log = sl_log_open(conf->gw.data_dir, &lo, err);
    if (!gw->log)
        goto fail;

    if (conf->n_connectors) {
        gw->connectors = calloc(conf->n_connectors, sizeof *gw->connectors);
        gw->breakers = calloc(conf->n_connectors, sizeof *gw->breakers);
        if (!gw->connectors || !gw->breakers) {
            sl_error_set(err, SL_ENOMEM, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < conf->n_connectors; i++) {
        const sl_connector_conf *cc = &conf->connectors[i];
        const sl_connector_type *t = sl_connector_type_find(cc->type);
        if (!t) {
            sl_error_set(err, SL_ECONFIG,
                         "%s:%d:%d: connectors.%s: connector type '%s' is not available in this "
                         "build yet",
                         cc->pos.file, cc->pos.line, cc->pos.col, cc->name, cc->type);
            goto fail;
        }
        sl_connector *c = &gw->connectors[i];
        c->type = t;
        c->conf = cc;
        c->gw = gw;
        if (t->init(c, err) < 0) {
            c->type = NULL; /* nothing to destroy */
            goto fail;
        }
        gw->n_connectors = i + 1;
        /* Every connector that calls out to a partner gets a breaker; local
         * outputs (file, stdout) do not fail the way partners do. */
        if (t->can_output && strcmp(t->name, "file") != 0 && strcmp(t->name, "stdout") != 0) {
            gw->breakers[i] = sl_breaker_new(cc->name, &cc->breaker, gw->metrics);
            if (!gw->breakers[i]) {
                sl_error_set(err, SL_ENOMEM, "out of memory");
                goto fail;
            }
        }
    }

    /* Every route's input topic first, with the route's partition count, so
     * that a topic output of another route opens it as it is. */
    for (size_t i = 0; i < conf->n_routes; i++) {
        const sl_route_conf *rc = &conf->routes[i];
        const char *topic = rc->from.topic ? rc->from.topic : rc->name;
        if (!sl_log_topic(gw->log, topic, rc->partitions > 0 ? rc->partitions : 1, err))
            goto fail;
    }
    if (conf->n_routes) {
        gw->routes = calloc(conf->n_routes, sizeof *gw->routes);
        if (!gw->routes) {
            sl_error_set(err, SL_ENOMEM, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < conf->n_routes; i++) {
        gw->routes[i] = sl_route_new(gw, &conf->routes[i], err);
        if (!gw->routes[i])
            goto fail;
        gw->n_routes = i + 1;
    }
    for (size_t i = 0; i < gw->n_routes; i++) {
        const sl_route_conf *rc = &conf->routes[i];
        if (!rc->from.connector)
            continue;
        sl_connector *c = sl_gateway_connector(gw, rc->from.connector);
        if (!c || !c->type->attach_input) {
            sl_error_set(err, SL_ECONFIG, "%s:%d:%d: routes.%s.from: connector %s cannot be an input",
                         rc->from.pos.file, rc->from.pos.line, rc->from.pos.col, rc->name,
                         rc->from.connector);
            goto fail;
        }
        if (c->type->attach_input(c, gw->routes[i], err) < 0)
            goto fail;
    }
    return gw;
fail:
    sl_gateway_free(gw);
    return NULL;
}

int sl_gateway_start(sl_gateway *gw, sl_error *err)
{
    for (size_t i = 0; i < gw->n_routes; i++) {
        if (sl_route_start(gw->routes[i], err) < 0)
            return -1;
    }
    for (size_t i = 0; i < gw->n_connectors; i++) {
        sl_connector *c = &gw->connectors[i];
        if (c->type->start && c->type->start(c, err) < 0)
            return -1;
    }
    const char *admin = gw->conf->gw.admin_listen;
    if (admin && admin[0]) {
        gw->admin = sl_admin_start(gw, err);
        if (!gw->admin)
            return -1;
    }
    atomic_store(&gw->started, true);
    sl_info("gateway", "started: %zu connector(s), %zu route(s), data_dir %s", gw->n_connectors,
            gw->n_routes, gw->conf->gw.data_dir);
    return 0;
}

void sl_gateway_stop(sl_gateway *gw)
{
    if (atomic_exchange(&gw->stopping, true))
        return;
    sl_info("gateway", "draining: stopping inputs");
    for (size_t i = 0; i < gw->n_connectors; i++) {
        sl_connector *c = &gw->connectors[i];
        if (c->type && c->type->stop)
            c->type->stop(c);
    }
    sl_info("gateway", "draining: stopping route workers");
    for (size_t i = 0; i < gw->n_routes; i++)
        sl_route_stop(gw->routes[i]);
    sl_error e;
    if (gw->log && sl_log_sync(gw->log, &e) < 0)
        sl_err("gateway", "final sync of the log failed: %s", e.msg);
    sl_info("gateway", "drained");
}

void sl_gateway_free(sl_gateway *gw)
{
    if (!gw)
        return;
    sl_admin_stop(gw->admin);
    for (size_t i = 0; i < gw->n_routes; i++)
        sl_route_stop(gw->routes[i]);
    for (size_t i = 0; i < gw->n_connectors; i++) {
        sl_connector *c = &gw->connectors[i];
        if (c->type && c->type->stop && !atomic_load(&gw->stopping))
            c->type->stop(c);
    }
    for (size_t i = 0; i < gw->n_connectors; i++) {
        sl_connector *c = &gw->connectors[i];
        if (c->type)
            c->type->destroy(c);
    }
    for (size_t i = 0; i < gw->n_routes; i++)
        sl_route_free(gw->routes[i]);
    free(gw->routes);
    for (size_t i = 0; gw->breakers && i < gw->n_connectors; i++)
        sl_breaker_free(gw->breakers[i]);
    free(gw->breakers);
    free(gw->connectors);
    sl_log_close(gw->log);
    sl_status_free(gw->status);
    sl_metrics_free(gw->metrics);
    if (gw->lock_fd >= 0)
        close(gw->lock_fd);
    sl_config_free(gw->conf);
    free(gw);
}

sl_route *sl_gateway_route(sl_gateway *gw, const char *name)
{
    for (size_t i = 0; i < gw->n_routes; i++) {
        if (strcmp(sl_route_name(gw->routes[i]), name) == 0)
            return gw->routes[i];
    }
    return NULL;
}

sl_connector *sl_gateway_connector(sl_gateway *gw, const char *name)
{
    for (size_t i = 0; i < gw->n_connectors; i++) {
        if (gw->connectors[i].conf && strcmp(gw->connectors[i].conf->name, name) == 0)
            return &gw->connectors[i];
    }
    return NULL;
}

sl_breaker *sl_gateway_breaker(sl_gateway *gw, const char *name)
{
    for (size_t i = 0; i < gw->n_connectors; i++) {
        if (gw->connectors[i].conf && strcmp(gw->connectors[i].conf->name, name) == 0)
            return gw->breakers ? gw->breakers[i] : NULL;
    }
    return NULL;
}

bool sl_gateway_ready(sl_gateway *gw)
{
    return atomic_load(&gw->started) && !atomic_load(&gw->stopping);
}
