/* The gateway context: builds the event log, metrics, connectors and routes
 * from a loaded config, starts them in dependency order (routes, then inputs,
 * then the admin listener) and drains them in reverse on shutdown. */
#include "gateway.h"
#include "process_metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "clock.h"
#include "fs.h"
#include "logging.h"

#define STATUS_CAPACITY (1u << 17)
#define MAX_LISTENERS 64

struct sl_gateway {
    sl_runtime *rt;
    bool owns_rt;
    atomic_bool reloading; /* stopping to hand over to a new generation */
    sl_config *conf;
    sl_log *log;
    sl_metrics *metrics;
    sl_status *status;
    sl_connector *connectors;
    size_t n_connectors;
    sl_breaker **breakers; /* breakers[i] for connectors[i]; NULL for inputs-only types */
    sl_route **routes;
    size_t n_routes;
    struct sl_admin *admin;
    atomic_bool started;  /* every input and the admin listener are up */
    atomic_bool stopping; /* a drain has begun */
    int64_t started_ms;
    sl_step_services services; /* what the routes' steps call connectors through */
    sl_connector_env conn_env; /* what its connectors see of it */
};

struct sl_runtime {
    char *data_dir;
    sl_log_options log_options;
    sl_log *log;
    sl_metrics *metrics;
    sl_status *status;
    pthread_mutex_t mu;
    struct {
        char *listen;
        int fd;
    } listeners[MAX_LISTENERS];
    size_t n_listeners;
    struct {
        char *key;
        void *obj;
        void (*drop)(void *);
    } kept[MAX_LISTENERS]; /* handed from one generation to the next */
    size_t n_kept;
};

static void observe_fsync(void *arg, double seconds)
{
    sl_histogram_observe(arg, seconds);
}

int sl_data_dir_prepare(const char *data_dir, sl_data_mode mode, sl_error *err)
{
    if (sl_mkdir_p_durable(data_dir, SL_DATA_DIR_MODE(mode), NULL) < 0)
        return sl_error_set(err, SL_EIO, "cannot create data_dir %s: %s", data_dir,
                            strerror(errno));
    return 0;
}

sl_runtime *sl_runtime_open(const sl_config *conf, sl_error *err)
{
    sl_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&rt->mu, NULL);
    rt->data_dir = strdup(conf->gw.data_dir);
    rt->metrics = sl_metrics_new();
    rt->status = sl_status_new(STATUS_CAPACITY);
    if (!rt->data_dir || !rt->metrics || !rt->status) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    sl_process_metrics_register(rt->metrics);
    if (sl_data_dir_prepare(conf->gw.data_dir, conf->gw.log.data_mode, err) < 0)
        goto fail;
    rt->log_options = conf->gw.log;
    sl_log_options lo = conf->gw.log;
    lo.on_fsync = observe_fsync;
    lo.on_fsync_arg =
        sl_metrics_histogram(rt->metrics, "sluice_log_fsync_seconds",
                             "Duration of the event log's fdatasync calls.", "", NULL, 0);
    if (!lo.on_fsync_arg)
        lo.on_fsync = NULL;
    rt->log = sl_log_open(conf->gw.data_dir, &lo, err);
    if (!rt->log)
        goto fail;
    return rt;
fail:
    sl_runtime_close(rt);
    return NULL;
}

/* Drops what the last generation kept and the new one did not take, one
 * at a time outside rt->mu (a drop stops a daemon, which may take time). */
static void drop_unclaimed_kept(sl_runtime *rt)
{
    for (;;) {
        pthread_mutex_lock(&rt->mu);
        if (rt->n_kept == 0) {
            pthread_mutex_unlock(&rt->mu);
            return;
        }
        rt->n_kept--;
        char *key = rt->kept[rt->n_kept].key;
        void *obj = rt->kept[rt->n_kept].obj;
        void (*drop)(void *) = rt->kept[rt->n_kept].drop;
        pthread_mutex_unlock(&rt->mu);
        drop(obj);
        free(key);
    }
}

void sl_runtime_close(sl_runtime *rt)
{
    if (!rt)
        return;
    drop_unclaimed_kept(rt);
    sl_log_close(rt->log);
    sl_status_free(rt->status);
    sl_metrics_free(rt->metrics);
    for (size_t i = 0; i < rt->n_listeners; i++) {
        close(rt->listeners[i].fd);
        free(rt->listeners[i].listen);
    }
    pthread_mutex_destroy(&rt->mu);
    free(rt->data_dir);
    free(rt);
}

int sl_runtime_take_listener(sl_runtime *rt, const char *listen)
{
    if (!rt)
        return -1;
    int fd = -1;
    pthread_mutex_lock(&rt->mu);
    for (size_t i = 0; i < rt->n_listeners; i++) {
        if (strcmp(rt->listeners[i].listen, listen) == 0) {
            fd = rt->listeners[i].fd;
            free(rt->listeners[i].listen);
            rt->listeners[i] = rt->listeners[--rt->n_listeners];
            break;
        }
    }
    pthread_mutex_unlock(&rt->mu);
    return fd;
}

void sl_runtime_put_listener(sl_runtime *rt, const char *listen, int fd)
{
    char *copy = rt ? strdup(listen) : NULL;
    if (rt)
        pthread_mutex_lock(&rt->mu);
    if (!copy || rt->n_listeners == MAX_LISTENERS) {
        close(fd);
        free(copy);
    } else {
        rt->listeners[rt->n_listeners].listen = copy;
        rt->listeners[rt->n_listeners].fd = fd;
        rt->n_listeners++;
    }
    if (rt)
        pthread_mutex_unlock(&rt->mu);
}

void sl_runtime_keep(sl_runtime *rt, const char *key, void *obj, void (*drop)(void *))
{
    char *copy = rt ? strdup(key) : NULL;
    bool kept = false;
    if (copy) {
        pthread_mutex_lock(&rt->mu);
        if (rt->n_kept < MAX_LISTENERS) {
            rt->kept[rt->n_kept].key = copy;
            rt->kept[rt->n_kept].obj = obj;
            rt->kept[rt->n_kept].drop = drop;
            rt->n_kept++;
            kept = true;
        }
        pthread_mutex_unlock(&rt->mu);
    }
    if (!kept) {
        drop(obj);
        free(copy);
    }
}

void *sl_runtime_take_kept(sl_runtime *rt, const char *key)
{
    void *obj = NULL;
    if (!rt)
        return NULL;
    pthread_mutex_lock(&rt->mu);
    for (size_t i = 0; i < rt->n_kept; i++) {
        if (strcmp(rt->kept[i].key, key) == 0) {
            obj = rt->kept[i].obj;
            free(rt->kept[i].key);
            rt->kept[i] = rt->kept[--rt->n_kept];
            break;
        }
    }
    pthread_mutex_unlock(&rt->mu);
    return obj;
}

/* Closes the listening sockets that the last generation handed over and
 * the new one did not take (listeners removed from the config), and drops
 * the objects it kept that the new one did not take. */
static void close_unclaimed_listeners(sl_runtime *rt)
{
    drop_unclaimed_kept(rt);
    pthread_mutex_lock(&rt->mu);
    for (size_t i = 0; i < rt->n_listeners; i++) {
        sl_info("gateway", "closing listener %s (no longer in the config)",
                rt->listeners[i].listen);
        close(rt->listeners[i].fd);
        free(rt->listeners[i].listen);
    }
    rt->n_listeners = 0;
    pthread_mutex_unlock(&rt->mu);
}

/* The index of the connector named name, or -1. */
static ssize_t connector_index(const sl_gateway *gw, const char *name)
{
    for (size_t i = 0; i < gw->n_connectors; i++) {
        if (gw->connectors[i].conf && strcmp(gw->connectors[i].conf->name, name) == 0)
            return (ssize_t)i;
    }
    return -1;
}

/* Counts one step call to connector in sluice_ctx_http_total{connector,code}:
 * code is the partner's status, or "error" when none came, or
 * "circuit_open" when the breaker refused it. */
static void count_call(sl_gateway *gw, const char *connector, const char *code)
{
    char name[256], labels[400];
    sl_metrics_escape(connector, name, sizeof name);
    snprintf(labels, sizeof labels, "connector=\"%s\",code=\"%s\"", name, code);
    sl_counter_add(sl_metrics_counter(gw->metrics, "sluice_ctx_http_total",
                                      "Calls from steps (Lua ctx.http) to a connector, by "
                                      "partner status or error.",
                                      labels),
                   1);
}

/* The step services of this gateway: a call goes to the named connector's
 * `call` through its breaker (an open breaker fails it at once, transient). */
static int gateway_call(const sl_step_services *svc, const char *connector, const sl_call_req *req,
                        sl_call_resp *resp)
{
    sl_gateway *gw = svc->arg;
    ssize_t i = connector_index(gw, connector);
    sl_connector *c = i >= 0 ? &gw->connectors[i] : NULL;
    if (!c || !c->type || !c->type->call)
        return sl_call_resp_fail(resp, SL_FAIL, "no connector named '%s' that takes calls",
                                 connector);
    sl_breaker *b = gw->breakers ? gw->breakers[i] : NULL;
    if (b && sl_breaker_acquire(b, 1) == 0) {
        count_call(gw, connector, "circuit_open");
        return sl_call_resp_fail(resp, SL_RETRY, "circuit open");
    }
    memset(resp, 0, sizeof *resp);
    int rc = c->type->call(c, req, resp);
    if (b)
        sl_breaker_record(b, rc != SL_RETRY);
    char code[16];
    if (resp->status > 0)
        snprintf(code, sizeof code, "%d", resp->status);
    else
        snprintf(code, sizeof code, "error");
    count_call(gw, connector, code);
    return rc;
}

/* Builds route rc with handles to what it uses: the runtime's log, metrics
 * and status, the step services, and each output's connector and breaker. */
static sl_route *new_route(sl_gateway *gw, const sl_route_conf *rc, sl_error *err)
{
    sl_route_output_env *outs = calloc(rc->n_to ? rc->n_to : 1, sizeof *outs);
    if (!outs) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t o = 0; o < rc->n_to; o++) {
        ssize_t i = rc->to[o].connector ? connector_index(gw, rc->to[o].connector) : -1;
        outs[o].conn = i >= 0 ? &gw->connectors[i] : NULL;
        outs[o].breaker = i >= 0 && gw->breakers ? gw->breakers[i] : NULL;
    }
    sl_route_env env = {.log = gw->log,
                        .metrics = gw->metrics,
                        .status = gw->status,
                        .services = &gw->services,
                        .outs = outs,
                        .log_conn =
                            rc->log.connector ? sl_gateway_connector(gw, rc->log.connector) : NULL};
    sl_route *r = sl_route_new(&env, rc, err);
    free(outs);
    return r;
}

/* sl_gateway_new, with every connector's table replaced by `as` when it is
 * not NULL (see sl_gateway_new_as). */
/* Creates connector i of gw's config: its table (`as` in place of the real
 * type when set, with as_arg as its state), init, and a breaker when the
 * real type calls out to a partner (also when `sluice test` captures it).
 * Returns 0, or -1 with err. */
static int build_connector(sl_gateway *gw, size_t i, const sl_connector_type *as, void *as_arg,
                           sl_error *err)
{
    const sl_connector_conf *cc = &gw->conf->connectors[i];
    const sl_connector_type *real = sl_connector_type_find(cc->type);
    if (!real)
        return sl_error_set(err, SL_ECONFIG,
                            "%s:%d:%d: connectors.%s: connector type '%s' is not available in "
                            "this build yet",
                            cc->pos.file, cc->pos.line, cc->pos.col, cc->name, cc->type);
    sl_connector *c = &gw->connectors[i];
    c->type = as ? as : real;
    c->conf = cc;
    c->env = &gw->conn_env;
    c->state = as_arg; /* NULL unless replaced by `as` */
    if (c->type->init(c, err) < 0) {
        c->type = NULL; /* nothing to destroy */
        return -1;
    }
    gw->n_connectors = i + 1;
    if (real->has_breaker) {
        gw->breakers[i] = sl_breaker_new(cc->name, &cc->breaker, gw->metrics);
        if (!gw->breakers[i])
            return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    return 0;
}

/* Creates every connector of gw's config. Returns 0, or -1 with err. */
static int build_connectors(sl_gateway *gw, const sl_connector_type *as, void *as_arg,
                            sl_error *err)
{
    size_t n = gw->conf->n_connectors;
    if (n == 0)
        return 0;
    gw->connectors = calloc(n, sizeof *gw->connectors);
    gw->breakers = calloc(n, sizeof *gw->breakers);
    if (!gw->connectors || !gw->breakers)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (build_connector(gw, i, as, as_arg, err) < 0)
            return -1;
    }
    return 0;
}

/* Opens every route's input topic first, with the route's partition count
 * (so that a topic output of another route opens it as it is), then builds
 * the routes. Returns 0, or -1 with err. */
static int build_routes(sl_gateway *gw, sl_error *err)
{
    const sl_config *conf = gw->conf;
    for (size_t i = 0; i < conf->n_routes; i++) {
        const sl_route_conf *rc = &conf->routes[i];
        const char *topic = rc->from.topic ? rc->from.topic : rc->name;
        if (rc->log.connector)
            continue; /* a connector holds its log */
        if (!sl_log_topic(gw->log, topic, rc->partitions > 0 ? rc->partitions : 1, err))
            return -1;
    }
    if (conf->n_routes == 0)
        return 0;
    gw->routes = calloc(conf->n_routes, sizeof *gw->routes);
    if (!gw->routes)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < conf->n_routes; i++) {
        gw->routes[i] = new_route(gw, &conf->routes[i], err);
        if (!gw->routes[i])
            return -1;
        gw->n_routes = i + 1;
    }
    return 0;
}

/* Attaches every route with a connector input to that connector. Returns
 * 0, or -1 with err (a connector that cannot be an input). */
static int attach_inputs(sl_gateway *gw, sl_error *err)
{
    for (size_t i = 0; i < gw->n_routes; i++) {
        const sl_route_conf *rc = &gw->conf->routes[i];
        if (!rc->from.connector)
            continue;
        sl_connector *c = sl_gateway_connector(gw, rc->from.connector);
        if (!c || !c->type->attach_input)
            return sl_error_set(err, SL_ECONFIG,
                                "%s:%d:%d: routes.%s.from: connector %s cannot be an input",
                                rc->from.pos.file, rc->from.pos.line, rc->from.pos.col, rc->name,
                                rc->from.connector);
        if (c->type->attach_input(c, gw->routes[i], err) < 0)
            return -1;
    }
    return 0;
}

static sl_gateway *gateway_build(sl_config *conf, sl_runtime *rt, const sl_connector_type *as,
                                 void *as_arg, sl_error *err)
{
    sl_gateway *gw = calloc(1, sizeof *gw);
    if (!gw) {
        sl_config_free(conf);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    gw->conf = conf;
    gw->started_ms = sl_wall_ms();
    gw->services.call = gateway_call;
    gw->services.arg = gw;
    if (!rt) {
        rt = sl_runtime_open(conf, err);
        if (!rt)
            goto fail;
        gw->owns_rt = true;
    }
    gw->rt = rt;
    gw->log = rt->log;
    gw->metrics = rt->metrics;
    gw->status = rt->status;
    gw->conn_env = (sl_connector_env){
        .conf = conf, .metrics = gw->metrics, .rt = rt, .reloading = &gw->reloading};
    if (build_connectors(gw, as, as_arg, err) < 0 || build_routes(gw, err) < 0 ||
        attach_inputs(gw, err) < 0)
        goto fail;
    return gw;
fail:
    sl_gateway_free(gw);
    return NULL;
}

sl_gateway *sl_gateway_new(sl_config *conf, sl_runtime *rt, sl_error *err)
{
    return gateway_build(conf, rt, NULL, NULL, err);
}

sl_gateway *sl_gateway_new_as(sl_config *conf, const sl_connector_type *as, void *as_arg,
                              sl_error *err)
{
    return gateway_build(conf, NULL, as, as_arg, err);
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
    if (gw->owns_rt)
        sl_runtime_close(gw->rt);
    sl_config_free(gw->conf);
    free(gw);
}

int sl_gateway_reload(sl_gateway **gwp, sl_config *new_conf, sl_error *err)
{
    sl_gateway *old = *gwp;
    sl_runtime *rt = old->rt;
    if (strcmp(new_conf->gw.data_dir, rt->data_dir) != 0)
        sl_warn("gateway", "reload: data_dir changed to %s; it takes a restart, keeping %s",
                new_conf->gw.data_dir, rt->data_dir);
    const sl_log_options *a = &new_conf->gw.log, *b = &rt->log_options;
    if (a->fsync != b->fsync || a->fsync_interval_ms != b->fsync_interval_ms ||
        a->segment_bytes != b->segment_bytes || a->max_disk_bytes != b->max_disk_bytes ||
        a->retention_ms != b->retention_ms || a->retention_bytes != b->retention_bytes)
        sl_warn("gateway", "reload: sluice.log settings take a restart; keeping the running ones");
    sl_info("gateway", "reload: draining the running generation");
    atomic_store(&old->reloading, true);
    sl_gateway_stop(old);
    sl_admin_stop(old->admin);
    old->admin = NULL;
    sl_config *old_conf = old->conf;
    old->conf = NULL;
    bool owned = old->owns_rt;
    old->owns_rt = false;
    sl_gateway_free(old);

    sl_gateway *ng = sl_gateway_new(new_conf, rt, err);
    if (ng && sl_gateway_start(ng, err) == 0) {
        sl_config_free(old_conf);
        ng->owns_rt = owned;
        close_unclaimed_listeners(rt);
        *gwp = ng;
        sl_info("gateway", "reload: done");
        return 0;
    }
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg);
    sl_err("gateway", "reload failed, going back to the previous config: %s", why);
    if (ng) {
        atomic_store(&ng->reloading, true);
        sl_gateway_stop(ng);
        sl_gateway_free(ng);
    }
    ng = sl_gateway_new(old_conf, rt, err);
    if (!ng || sl_gateway_start(ng, err) < 0) {
        sl_err("gateway", "cannot restart the previous config either: %s", err->msg);
        if (ng)
            sl_gateway_free(ng);
        *gwp = NULL;
        return -1;
    }
    ng->owns_rt = owned;
    *gwp = ng;
    sl_error_set(err, SL_ECONFIG, "%s", why);
    return -1;
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
    ssize_t i = connector_index(gw, name);
    return i >= 0 ? &gw->connectors[i] : NULL;
}

sl_breaker *sl_gateway_breaker(sl_gateway *gw, const char *name)
{
    ssize_t i = connector_index(gw, name);
    return i >= 0 && gw->breakers ? gw->breakers[i] : NULL;
}

bool sl_gateway_ready(sl_gateway *gw)
{
    if (!atomic_load(&gw->started) || atomic_load(&gw->stopping))
        return false;
    for (size_t i = 0; i < gw->n_connectors; i++) {
        sl_connector *c = &gw->connectors[i];
        if (c->type && c->type->ready && !c->type->ready(c))
            return false;
    }
    return true;
}

bool sl_gateway_degraded(sl_gateway *gw, char *why, size_t n)
{
    for (size_t i = 0; i < gw->n_routes; i++)
        if (sl_route_corrupt_held(gw->routes[i], why, n))
            return true;
    return false;
}

const sl_config *sl_gateway_config(const sl_gateway *gw)
{
    return gw->conf;
}

sl_log *sl_gateway_log(const sl_gateway *gw)
{
    return gw->log;
}

sl_metrics *sl_gateway_metrics(const sl_gateway *gw)
{
    return gw->metrics;
}

sl_status *sl_gateway_status(const sl_gateway *gw)
{
    return gw->status;
}

size_t sl_gateway_n_routes(const sl_gateway *gw)
{
    return gw->n_routes;
}

sl_route *const *sl_gateway_routes(const sl_gateway *gw, size_t *n)
{
    *n = gw->n_routes;
    return gw->routes;
}

sl_route *sl_gateway_route_at(const sl_gateway *gw, size_t i)
{
    return i < gw->n_routes ? gw->routes[i] : NULL;
}

size_t sl_gateway_n_connectors(const sl_gateway *gw)
{
    return gw->n_connectors;
}

sl_connector *sl_gateway_connector_at(const sl_gateway *gw, size_t i)
{
    return i < gw->n_connectors ? &gw->connectors[i] : NULL;
}

sl_breaker *sl_gateway_breaker_at(const sl_gateway *gw, size_t i)
{
    return i < gw->n_connectors && gw->breakers ? gw->breakers[i] : NULL;
}

int sl_gateway_take_listener(sl_gateway *gw, const char *listen)
{
    return sl_runtime_take_listener(gw->rt, listen);
}

void sl_gateway_release_listener(sl_gateway *gw, const char *listen, int fd)
{
    if (atomic_load(&gw->reloading))
        sl_runtime_put_listener(gw->rt, listen, fd); /* for the next generation */
    else
        close(fd);
}

void *sl_gateway_take_kept(sl_gateway *gw, const char *key)
{
    return sl_runtime_take_kept(gw->rt, key);
}

void sl_gateway_keep(sl_gateway *gw, const char *key, void *obj, void (*drop)(void *))
{
    if (atomic_load(&gw->reloading))
        sl_runtime_keep(gw->rt, key, obj, drop); /* for the next generation */
    else
        drop(obj);
}

struct sl_admin *sl_gateway_admin(const sl_gateway *gw)
{
    return gw->admin;
}
