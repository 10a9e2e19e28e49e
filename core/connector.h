/* The connector interface: one table of functions per connector type (as
 * nginx modules and Fluent Bit plugins), and the registry that maps a
 * config `type:` to its table. The core knows connectors only through this. */
#ifndef SLUICE_CONNECTOR_H
#define SLUICE_CONNECTOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "call.h"
#include "config.h"
#include "error.h"
#include "message.h"

typedef struct sl_route sl_route;
typedef struct sl_connector sl_connector;
typedef struct sl_metrics sl_metrics;
typedef struct sl_runtime sl_runtime;

/* What a connector may use of the gateway that runs it, filled by the
 * gateway (core/gateway.c) and valid for the connector's whole life. A
 * connector never sees the gateway itself. Every field may be NULL (a
 * connector built alone, in a unit test): the connector then uses its
 * defaults, has no metrics and hands no socket over. */
typedef struct sl_connector_env {
    const sl_config *conf;        /* the gateway's config: `sluice:` settings, routes */
    sl_metrics *metrics;          /* where its counters go */
    sl_runtime *rt;               /* listening sockets handed across reloads */
    const atomic_bool *reloading; /* true while this generation stops for a reload */
} sl_connector_env;

/* The answer an output got from its partner for one message, for a route's
 * `reply_from` (a `reply: sync` request is answered with it). */
typedef struct sl_send_reply {
    int status;             /* the partner's status (HTTP) */
    char content_type[128]; /* its Content-Type, "" when none */
    char *body;             /* malloc'd, NUL-terminated (not counted in body_len), or NULL;
                             * owned by the route once send returns */
    size_t body_len;
} sl_send_reply;

/* What one output said about one message. */
typedef struct sl_send_result {
    sl_result result; /* SL_OK, SL_RETRY (transient) or SL_FAIL (permanent) */
    int status;       /* protocol status (HTTP status), 0 when there is none */
    char error[256];  /* why, when not SL_OK: "HTTP 503 from http://...", "timeout after 2000 ms" */
    bool held_back;   /* SL_RETRY without an attempt: not sent, to keep the order of its key
                       * behind an earlier failure; not an attempt, not a breaker failure */
    sl_send_reply *reply; /* set by the route before send when it wants the partner's answer
                           * (`reply_from`), else NULL; a can_reply type fills it on SL_OK.
                           * sl_send_result_set leaves it alone. */
} sl_send_result;

typedef struct sl_connector_type {
    const char *name; /* the config `type:` */
    bool can_input;   /* may be a route's `from:` */
    bool can_output;  /* may be an element of a route's `to:` */
    bool has_breaker; /* calls a partner: gets `breaker:` and a circuit breaker */
    bool can_reply;   /* send fills results[i].reply when asked: may be a `reply_from` */
    /* The type's own keys (NULL-terminated; NULL = none). Core checks a
     * connector against "type" followed by conf_keys (a has_breaker type
     * lists "breaker" where it wants it: core parses it), a `from:` against
     * "connector" followed by input_keys, and a `to:` element against
     * "connector", "name", "when" followed by output_keys. */
    const char *const *conf_keys;
    const char *const *input_keys;
    const char *const *output_keys;
    /* Documentation of the same keys, one table per list (core/config.h;
     * NULL when the list is NULL), and one line saying what the type is:
     * the reference and the JSON Schema are built from them. */
    const char *summary;
    const sl_conf_doc *conf_doc;
    const sl_conf_doc *input_doc;
    const sl_conf_doc *output_doc;
    /* Parses the connector's own keys of n (a map; keys already checked) into
     * cc->priv. Records errors in r (core/config.h); path is
     * "connectors.NAME". Optional. */
    void (*parse_conf)(sl_conf_reader *r, sl_connector_conf *cc, const sl_node *n,
                       const char *path);
    /* Parses a route's `from:` naming this connector (n, keys checked) into
     * in->priv. Called once the route's `to:` is parsed, so route->to may be
     * cross-checked. cc is the connector. Optional. */
    void (*parse_input)(sl_conf_reader *r, const sl_route_conf *route, const sl_connector_conf *cc,
                        sl_input_conf *in, const sl_node *n, const char *path);
    /* Parses a `to:` element naming this connector (n, keys checked) into
     * out->priv. cc is the connector. Optional. */
    void (*parse_output)(sl_conf_reader *r, const sl_connector_conf *cc, sl_output_conf *out,
                         const sl_node *n, const char *path);
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
    /* Can hold a route's log (`log: { connector: NAME }`): its table
     * (core/log_backend.h). NULL for types that cannot. */
    const struct sl_log_backend_type *log_backend;
    /* Its inputs acknowledge through sl_route_on_durable, so they may feed
     * a route whose log a connector holds (`log:`). */
    bool feeds_external_log;
    /* Its source keeps a message until the input acknowledges it (a queue,
     * a topic, a file), so a log a connector holds may wait for its cluster
     * without a time limit instead of failing the append (no client waits
     * for an answer, as over HTTP). */
    bool source_keeps_messages;
} sl_connector_type;

struct sl_connector {
    const sl_connector_type *type;
    const sl_connector_conf *conf;
    const sl_connector_env *env; /* never NULL once built by a gateway; see above */
    void *state;
};

/* Every connector type built in, NULL-terminated. Defined outside core, in
 * connectors/registry.c: a new connector is one file and one line there. */
extern const sl_connector_type *const sl_connector_registry[];

/* Returns the table for a config type name, or NULL when no such connector
 * is built in. */
const sl_connector_type *sl_connector_type_find(const char *name);

/* Writes the registered type names, sorted and comma-separated ("amqp,
 * file, ..."), into buf (truncated to size). Returns buf. */
const char *sl_connector_type_list(char *buf, size_t size);

/* The gateway's metrics registry, or NULL (no env, or none). */
sl_metrics *sl_connector_metrics(const sl_connector *c);

/* The gateway's `sluice:` settings, or NULL when c runs without a gateway
 * config (the caller then uses its defaults). */
const sl_gateway_conf *sl_connector_settings(const sl_connector *c);

/* Returns a listening socket bound to `listen` that the previous gateway
 * generation handed over (the caller owns it now), or -1 when there is none
 * (the caller then binds its own). */
int sl_connector_take_listener(const sl_connector *c, const char *listen);

/* Gives up a listening socket the connector is done with: during a reload it
 * is kept for the next generation (the runtime owns it then), otherwise it is
 * closed. */
void sl_connector_release_listener(const sl_connector *c, const char *listen, int fd);

/* True while c's generation stops to hand over to a new one (a reload). */
bool sl_connector_reloading(const sl_connector *c);

/* The same for an object the connector wants to outlive a reload (its TLS
 * credentials): keep hands obj to the next generation under key during a
 * reload, otherwise (or without a gateway) calls drop(obj); take returns
 * what the previous generation kept under key (now the caller's), or NULL. */
void sl_connector_keep(const sl_connector *c, const char *key, void *obj, void (*drop)(void *));
void *sl_connector_take_kept(const sl_connector *c, const char *key);

/* Fills a result: r->result = res, r->status = status, error formatted,
 * held_back cleared. */
void sl_send_result_set(sl_send_result *r, sl_result res, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
