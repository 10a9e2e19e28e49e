/* The gateway context: the one object that holds the config, the event log,
 * metrics, message status, connectors and routes. Every module gets it
 * passed; there is no other mutable global state (besides logging). */
#ifndef SLUICE_GATEWAY_H
#define SLUICE_GATEWAY_H

#include <stdatomic.h>
#include <stdbool.h>

#include "breaker.h"
#include "config.h"
#include "connector.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "status.h"

struct sl_gateway {
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
    int lock_fd; /* flock'd data_dir/LOCK, -1 when not held */
};

/* Creates data_dir if needed and takes an exclusive lock on data_dir/LOCK
 * (writing our pid into it), so that two processes never open one log.
 * Returns the lock's fd (close it to release), or -1 with err naming the pid
 * that holds it. */
int sl_data_dir_lock(const char *data_dir, sl_error *err);

/* Builds the gateway from conf (taking ownership of it): opens the log in
 * data_dir, creates every connector and every route. Nothing runs yet.
 * Returns NULL with err. */
sl_gateway *sl_gateway_new(sl_config *conf, sl_error *err);

/* Starts the routes' workers, then the connectors' inputs, then the admin
 * listener. Returns -1 with err (the caller then calls sl_gateway_free). */
int sl_gateway_start(sl_gateway *gw, sl_error *err);

/* Drains: stops inputs, stops route workers (in-flight deliveries finish or
 * are abandoned uncommitted), syncs the log. Safe to call once after start. */
void sl_gateway_stop(sl_gateway *gw);

/* Frees everything. gw may be NULL. */
void sl_gateway_free(sl_gateway *gw);

/* Returns the route or connector named name, or NULL. */
sl_route *sl_gateway_route(sl_gateway *gw, const char *name);
sl_connector *sl_gateway_connector(sl_gateway *gw, const char *name);

/* Returns the circuit breaker of the outbound connector named name, or NULL
 * when it has none (inputs, file, stdout). */
sl_breaker *sl_gateway_breaker(sl_gateway *gw, const char *name);

/* True when every input is started and the log is writable. */
bool sl_gateway_ready(sl_gateway *gw);

#endif
