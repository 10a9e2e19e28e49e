/* The connector interface: one table of functions per connector type (as
 * nginx modules and Fluent Bit plugins), and the registry that maps a
 * config `type:` to its table. The core knows connectors only through this. */
#ifndef SLUICE_CONNECTOR_H
#define SLUICE_CONNECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "call.h"
#include "config.h"
#include "error.h"
#include "message.h"

typedef struct sl_gateway sl_gateway;
typedef struct sl_route sl_route;
typedef struct sl_connector sl_connector;

/* What one output said about one message. */
typedef struct sl_send_result {
    sl_result result; /* SL_OK, SL_RETRY (transient) or SL_FAIL (permanent) */
    int status;       /* protocol status (HTTP status), 0 when there is none */
    char error[256];  /* why, when not SL_OK: "HTTP 503 from http://...", "timeout after 2000 ms" */
    bool held_back;   /* SL_RETRY without an attempt: not sent, to keep the order of its key
                       * behind an earlier failure; not an attempt, not a breaker failure */
} sl_send_result;

typedef struct sl_connector_type {
    const char *name; /* the config `type:` */
    bool can_input;
    bool can_output;
    /* Builds c->state from c->conf. No threads or sockets yet. Required. */
    int (*init)(sl_connector *c, sl_error *err);
    /* Registers route as fed by this connector (its `from:` names it). Called
     * before start, once per route. Optional (inputs only). */
    int (*attach_input)(sl_connector *c, sl_route *route, sl_error *err);
    /* Starts listeners and threads once every route is attached. Optional. */
    int (*start)(sl_connector *c, sl_error *err);
    /* Delivers n messages to output `out` and fills results[i] for each;
     * returns when every message has a result. Called by route workers,
     * concurrently from several threads. Must not keep msgs. Optional
     * (outputs only). */
    void (*send)(sl_connector *c, const sl_output_conf *out, sl_msg *const *msgs, size_t n,
                 sl_send_result *results);
    /* Stops taking input: after it returns, no more appends happen. Optional. */
    void (*stop)(sl_connector *c);
    /* Frees c->state. Called after stop, once no send is running. Required. */
    void (*destroy)(sl_connector *c);
    /* True when every input of this connector is connected and consuming
     * (for GET /ready). Optional: without it the connector counts as ready.
     * Called from the admin thread; must be thread-safe and quick. */
    bool (*ready)(sl_connector *c);
    /* Makes one synchronous request to the partner (for steps: Lua's
     * ctx.http), fills *resp (the caller frees it with sl_call_resp_free,
     * whatever the result) and returns resp->result: SL_OK, SL_RETRY
     * (timeout, connection error, overload) or SL_FAIL. One attempt, no
     * retry, no sleep; bounded by the connector's timeout. Called by route
     * workers, concurrently. Optional: connectors without it cannot be
     * called. The caller goes through the connector's breaker. */
    int (*call)(sl_connector *c, const sl_call_req *req, sl_call_resp *resp);
} sl_connector_type;

struct sl_connector {
    const sl_connector_type *type;
    const sl_connector_conf *conf;
    sl_gateway *gw;
    void *state;
};

/* Returns the table for a config type name, or NULL when no such connector
 * is built in. */
const sl_connector_type *sl_connector_type_find(const char *name);

/* Fills a result: r->result = res, r->status = status, error formatted,
 * held_back cleared. */
void sl_send_result_set(sl_send_result *r, sl_result res, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
