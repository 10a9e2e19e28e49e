/* The gateway context: the one object that holds the config, the event log,
 * metrics, message status, connectors and routes. Its struct is private
 * (core/gateway.c): routes get handles (sl_route_env), connectors an env
 * (sl_connector_env), steps their services; admin and the CLI use the
 * accessors below. There is no other mutable global state (besides logging). */
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
#include "step.h"

/* What outlives a config reload: the log, metrics, message status, and the
 * listening sockets handed from one gateway generation to the next. */
typedef struct sl_runtime sl_runtime;
typedef struct sl_gateway sl_gateway;

/* Creates data_dir and its parents if needed, with SL_DATA_DIR_MODE(mode),
 * fsyncing each directory that gets a new name (a power cut cannot take the
 * directory back). (The log itself takes an exclusive lock in it, so two
 * processes never open one log.) Returns -1 with err when it cannot. */
int sl_data_dir_prepare(const char *data_dir, sl_data_mode mode, sl_error *err);

/* Opens what outlives reloads for conf: creates data_dir, opens the log with
 * conf's log options, makes the metrics registry and the status table.
 * Returns NULL with err. */
sl_runtime *sl_runtime_open(const sl_config *conf, sl_error *err);

/* Closes the log (syncing it), frees the rest and closes listening sockets
 * nobody took. rt may be NULL. No gateway may use it any more. */
void sl_runtime_close(sl_runtime *rt);

/* Returns a listening socket bound to `listen` that an earlier gateway
 * generation handed over (the caller owns it now), or -1 when there is none. */
int sl_runtime_take_listener(sl_runtime *rt, const char *listen);

/* Keeps a listening socket for the next generation (taking ownership). When
 * it cannot, the socket is closed. */
void sl_runtime_put_listener(sl_runtime *rt, const char *listen, int fd);

/* An object a connector hands to the next generation across a reload (its
 * TLS credentials, say), under a key of its choosing ("tls:HOST:PORT"):
 * keep gives obj to rt (drop(obj) is called at once when rt is NULL or
 * full, and later when the next generation does not take it); take returns
 * the object kept under key (the caller owns it again), or NULL.
 * Thread-safe. */
void sl_runtime_keep(sl_runtime *rt, const char *key, void *obj, void (*drop)(void *));
void *sl_runtime_take_kept(sl_runtime *rt, const char *key);

/* Builds the gateway from conf (taking ownership of it) on rt, or on a
 * runtime of its own when rt is NULL: creates every connector and every
 * route. Nothing runs yet. Returns NULL with err (conf is freed then). */
sl_gateway *sl_gateway_new(sl_config *conf, sl_runtime *rt, sl_error *err);

/* For `sluice test`: builds the gateway as sl_gateway_new does, on a
 * runtime of its own, except that every connector runs the table `as`
 * instead of its type's (its conf, and its breaker, stay those of its real
 * type): c->state is set to as_arg before as->init(c) runs. Nothing runs
 * yet. Returns NULL with err (conf is freed then). */
sl_gateway *sl_gateway_new_as(sl_config *conf, const sl_connector_type *as, void *as_arg,
                              sl_error *err);

/* Replaces *gwp by a gateway for new_conf (taking ownership of it) without
 * losing a message: the old generation stops its inputs (its listening
 * sockets are handed over, so clients are not refused), finishes or abandons
 * its in-flight deliveries uncommitted, and is freed; the new one starts from
 * the committed offsets. Log options and data_dir cannot change (a warning
 * says so). When the new config cannot start, the old config is started
 * again and -1 is returned with err. */
int sl_gateway_reload(sl_gateway **gwp, sl_config *new_conf, sl_error *err);

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

/* The gateway's config, event log, metrics registry and message status
 * table (owned by the gateway; valid until sl_gateway_free). */
const sl_config *sl_gateway_config(const sl_gateway *gw);
sl_log *sl_gateway_log(const sl_gateway *gw);
sl_metrics *sl_gateway_metrics(const sl_gateway *gw);
sl_status *sl_gateway_status(const sl_gateway *gw);

/* The gateway's routes as an array of *n (valid until the gateway is
 * freed or reloaded). */
sl_route *const *sl_gateway_routes(const sl_gateway *gw, size_t *n);

/* The routes in config order: how many, and route i (i < that count). */
size_t sl_gateway_n_routes(const sl_gateway *gw);
sl_route *sl_gateway_route_at(const sl_gateway *gw, size_t i);

/* The connectors in config order: how many, connector i, and its breaker
 * (NULL when its type has none). */
size_t sl_gateway_n_connectors(const sl_gateway *gw);
sl_connector *sl_gateway_connector_at(const sl_gateway *gw, size_t i);
sl_breaker *sl_gateway_breaker_at(const sl_gateway *gw, size_t i);

/* The admin listener's socket across reloads, as connectors do theirs:
 * take returns one the previous generation handed over (or -1); release
 * keeps fd for the next generation while reloading, otherwise closes it. */
int sl_gateway_take_listener(sl_gateway *gw, const char *listen);
void sl_gateway_release_listener(sl_gateway *gw, const char *listen, int fd);

/* The same for an object (sl_runtime_keep): keep hands obj to the next
 * generation while reloading, otherwise calls drop(obj). */
void *sl_gateway_take_kept(sl_gateway *gw, const char *key);
void sl_gateway_keep(sl_gateway *gw, const char *key, void *obj, void (*drop)(void *));

/* The admin listener, once sl_gateway_start has started it (NULL before). */
struct sl_admin *sl_gateway_admin(const sl_gateway *gw);

/* True when the gateway has started, is not draining, and every connector
 * with inputs says they are connected (AMQP consumers, for instance). */
bool sl_gateway_ready(sl_gateway *gw);

/* True when the gateway runs but cannot deliver everything it accepts: a
 * route partition is held at a corrupt record. Writes the reason into why
 * (size n). /ready answers 503 with it. Thread-safe. */
bool sl_gateway_degraded(sl_gateway *gw, char *why, size_t n);

#endif
