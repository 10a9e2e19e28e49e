/* The AMQP 0-9-1 connector's private interface, shared by its three files:
 * amqp.c (the connector table, settings, connections), amqp_input.c (one
 * consumer thread per input route) and amqp_output.c (publishers with
 * confirms). Built on rabbitmq-c, whose connections are not thread-safe:
 * every connection here belongs to exactly one thread at a time. */
#ifndef SLUICE_AMQP_INTERNAL_H
#define SLUICE_AMQP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#if defined(__has_include) && __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/ssl_socket.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#endif

#include "connector.h"
#include "expr.h"
#include "metrics.h"

#define SL_AMQP_HEARTBEAT_S 10   /* proposed to the broker; it may lower it */
#define SL_AMQP_FRAME_MAX 131072 /* the broker's default */
#define SL_AMQP_CHANNEL 1        /* every connection uses one channel */
#define SL_AMQP_BACKOFF_MIN_MS 100
#define SL_AMQP_BACKOFF_MAX_MS 5000

typedef struct sl_amqp_input sl_amqp_input;
typedef struct sl_amqp_pub sl_amqp_pub;

/* `connectors: NAME: { type: amqp, ... }` (sl_connector_conf.priv); `tls:`
 * is read from the node at init. */
typedef struct sl_amqp_conf {
    char *url;           /* required */
    int prefetch;        /* default 256 */
    uint64_t timeout_ms; /* default 5 s */
} sl_amqp_conf;

/* A route's `from:` naming an amqp connector (sl_input_conf.priv);
 * `declare:` and `bind:` are read from the node at attach. */
typedef struct sl_amqp_from {
    char *queue;  /* required */
    int prefetch; /* 0 = the connector's prefetch */
} sl_amqp_from;

/* A `to:` element naming an amqp connector (sl_output_conf.priv). */
typedef struct sl_amqp_output {
    char *exchange; /* required */
    char *routing_key;
    bool persistent; /* default true */
    bool mandatory;  /* default true */
} sl_amqp_output;

/* The table's config callbacks (core/connector.h), in amqp_conf.c. */
extern const char *const sl_amqp_conf_keys[];
extern const char *const sl_amqp_input_keys[];
extern const char *const sl_amqp_output_keys[];
extern const sl_conf_doc sl_amqp_conf_doc[];
extern const sl_conf_doc sl_amqp_input_doc[];
extern const sl_conf_doc sl_amqp_output_doc[];
void sl_amqp_parse_conf(sl_conf_reader *r, sl_connector_conf *cc, const sl_node *n,
                        const char *path);
void sl_amqp_parse_input(sl_conf_reader *r, const sl_route_conf *route, const sl_connector_conf *cc,
                         sl_input_conf *in, const sl_node *n, const char *path);
void sl_amqp_parse_output(sl_conf_reader *r, const sl_connector_conf *cc, sl_output_conf *out,
                          const sl_node *n, const char *path);

/* Where and how to connect, parsed once from the connector's config. */
typedef struct sl_amqp_target {
    char *host;
    int port;
    char *vhost;
    char *user;
    char *password;
    bool tls;
    bool tls_verify;   /* peer certificate and host name; default true */
    char *ca_file;     /* NULL: the system bundle when it exists */
    char display[300]; /* "amqp(s)://host:port/vhost" for logs: no credentials */
} sl_amqp_target;

/* The connector's state (c->state). */
typedef struct sl_amqp {
    sl_connector *c;
    const char *name;
    sl_amqp_target target;
    int timeout_ms; /* connect, login, RPCs and publisher confirms */
    sl_counter *published;
    sl_counter *confirm_failures;
    sl_counter *consumed;
    sl_counter *reconnects;
    sl_amqp_input **inputs; /* one per route whose `from:` names this connector */
    size_t n_inputs;
    pthread_mutex_t pool_mu; /* guards idle */
    sl_amqp_pub *idle;       /* publisher connections not in use by a send */
    atomic_int pub_lost;     /* publisher connections lost and not yet replaced */
    atomic_bool pub_down;    /* the last publisher connect failed (logged once) */
    sl_expr_set *keys;       /* the ${...} of the outputs' routing keys, compiled at init */
} sl_amqp;

/* Opens a connection to a's broker (TCP or TLS), logs in with heartbeat_s
 * (0 disables heartbeats) and opens channel SL_AMQP_CHANNEL. Every step is
 * bounded by a->timeout_ms. Returns the connection, or NULL with err filled
 * (nothing is left open then). Any thread; the connection then belongs to
 * the caller. */
amqp_connection_state_t sl_amqp_connect(const sl_amqp *a, int heartbeat_s, sl_error *err);

/* Closes conn politely (connection.close, bounded by the RPC timeout set at
 * connect) when graceful, and frees it. conn may be NULL. */
void sl_amqp_disconnect(amqp_connection_state_t conn, bool graceful);

/* Describes an RPC reply that is not AMQP_RESPONSE_NORMAL ("socket error",
 * "channel closed by the broker: 404 NOT_FOUND - no queue 'q'") into buf.
 * Returns buf. */
const char *sl_amqp_reply_text(amqp_rpc_reply_t r, char *buf, size_t cap);

/* Describes a connection.close or channel.close method frame's reason
 * ("320 CONNECTION_FORCED - broker forced connection closure...") into buf.
 * Returns buf. */
const char *sl_amqp_close_text(const amqp_frame_t *f, char *buf, size_t cap);

/* Answers a broker's connection.close or channel.close frame with its
 * close-ok, so that the broker can finish the close cleanly. */
void sl_amqp_close_ok(amqp_connection_state_t conn, const amqp_frame_t *f);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t sl_amqp_now_ms(void);

/* Sleeps ms, or less when *stop becomes true (checked every 50 ms). stop may
 * be NULL. */
void sl_amqp_sleep(int ms, const atomic_bool *stop);

/* Input side (amqp_input.c). */

/* Builds the input for route from its `from:` (queue, prefetch, declare,
 * bind), checking declare and bind. Returns NULL with err (SL_ECONFIG naming
 * FILE:LINE:COL, or SL_ENOMEM). */
sl_amqp_input *sl_amqp_input_new(sl_amqp *a, sl_route *route, sl_error *err);

/* Starts the input's consumer thread. Returns -1 with err. */
int sl_amqp_input_start(sl_amqp_input *in, sl_error *err);

/* Stops the consumer thread: cancels the consumer, acknowledges what is
 * durable, closes the connection and joins the thread. After it returns the
 * input appends nothing more. Idempotent; fine on a never-started input. */
void sl_amqp_input_stop(sl_amqp_input *in);

/* True while the input is connected and its consumer is registered.
 * Thread-safe. */
bool sl_amqp_input_ready(sl_amqp_input *in);

/* Frees a stopped input. in may be NULL. */
void sl_amqp_input_free(sl_amqp_input *in);

/* Output side (amqp_output.c). */

/* The connector's send(): publishes msgs with confirms on a publisher
 * connection taken from a's pool, and fills results. Thread-safe. */
void sl_amqp_send(sl_connector *c, const sl_output_conf *out, sl_msg *const *msgs, size_t n,
                  sl_send_result *results);

/* Compiles the ${...} expressions of the routing key of every route output
 * in conf that delivers to a (conf may be NULL: nothing to compile; keys
 * then compile per message). Returns -1 with err when out of memory. Called
 * by init; the set is freed with a. */
int sl_amqp_compile_keys(sl_amqp *a, const sl_config *conf, sl_error *err);

/* Closes and frees every idle publisher connection. Call once no send runs. */
void sl_amqp_pool_free(sl_amqp *a);

#endif
