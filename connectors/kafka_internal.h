/* Shared between the Kafka connector's files: the connector state, the
 * librdkafka configuration and logging helpers (connectors/kafka.c) and the
 * consumer side that feeds routes (connectors/kafka_input.c). */
#ifndef SLUICE_KAFKA_INTERNAL_H
#define SLUICE_KAFKA_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "expr.h"
#include "connector.h"
#include "metrics.h"
#include "route.h"

#define SL_KAFKA_COMPONENT "kafka"

typedef struct sl_kafka_producer sl_kafka_producer;
typedef struct sl_kafka_input sl_kafka_input;

/* `connectors: NAME: { type: kafka, ... }` (sl_connector_conf.priv). */
typedef struct sl_kafka_conf {
    char *brokers;  /* required */
    sl_kv *options; /* librdkafka properties, passed through */
    size_t n_options;
    uint64_t timeout_ms; /* default 5 s; applied only when written */
} sl_kafka_conf;

/* A route's `from:` naming a kafka connector (sl_input_conf.priv). */
typedef struct sl_kafka_from {
    char **topics; /* at least one */
    size_t n_topics;
    char *group;
    char *start; /* earliest | latest; default earliest */
} sl_kafka_from;

/* A `to:` element naming a kafka connector (sl_output_conf.priv); its topic
 * is sl_output_conf.topic. */
typedef struct sl_kafka_output {
    char *key; /* "$.path" or "header:NAME"; NULL = none */
} sl_kafka_output;

/* The table's config callbacks (core/connector.h), in kafka_conf.c. */
extern const char *const sl_kafka_conf_keys[];
extern const char *const sl_kafka_input_keys[];
extern const char *const sl_kafka_output_keys[];
extern const sl_conf_doc sl_kafka_conf_doc[];
extern const sl_conf_doc sl_kafka_input_doc[];
extern const sl_conf_doc sl_kafka_output_doc[];
void sl_kafka_parse_conf(sl_conf_reader *r, sl_connector_conf *cc, const sl_node *n,
                         const char *path);
void sl_kafka_parse_input(sl_conf_reader *r, const sl_route_conf *route,
                          const sl_connector_conf *cc, sl_input_conf *in, const sl_node *n,
                          const char *path);
void sl_kafka_parse_output(sl_conf_reader *r, const sl_connector_conf *cc, sl_output_conf *out,
                           const sl_node *n, const char *path);

/* What every librdkafka handle of the connector has as its opaque: the
 * connector and a word for log lines ("producer", "consumer of route r"). */
typedef struct sl_kafka_client {
    struct sl_kafka *k;
    char role[160];
    atomic_bool *fatal; /* set on a fatal error (the producer's flag); may be NULL */
    atomic_bool down;   /* a broker connection failed and nothing succeeded since */
} sl_kafka_client;

/* Says once, after connection errors, that cl works again (a delivery
 * report or a message came in). Thread-safe. */
void sl_kafka_client_up(sl_kafka_client *cl);

/* The state of one `type: kafka` connector (c->state). */
typedef struct sl_kafka {
    sl_connector *c;
    const char *name; /* the connector's name, for logs and labels */
    /* The producer, created on first send (route workers may send before
     * start). Senders hold plock for reading while their batch is in
     * flight; replacing the producer after a fatal error takes it for
     * writing. */
    pthread_rwlock_t plock;
    sl_kafka_producer *prod;
    sl_kafka_input **ins; /* one per attached route */
    size_t n_ins;
    sl_counter *produced;        /* sluice_kafka_produced_total */
    sl_counter *delivery_errors; /* sluice_kafka_delivery_errors_total */
    sl_counter *consumed;        /* sluice_kafka_consumed_total */
    sl_counter *commits;         /* sluice_kafka_commits_total */
    sl_expr_set *keys;           /* the outputs' `key:` expressions, compiled at init */
} sl_kafka;

/* Returns a new librdkafka configuration for client cl of k: bootstrap
 * servers, client.id, log and error callbacks, cl as the opaque. The caller
 * adds role-specific defaults, then sl_kafka_conf_apply_options, then what
 * it enforces. Returns NULL with err (SL_ENOMEM, SL_ECONFIG). */
rd_kafka_conf_t *sl_kafka_conf_new(sl_kafka *k, sl_kafka_client *cl, sl_error *err);

/* Sets one property; returns 0, or -1 with err naming the connector, the
 * property and librdkafka's reason (SL_ECONFIG). */
int sl_kafka_conf_set(sl_kafka *k, rd_kafka_conf_t *conf, const char *name, const char *value,
                      sl_error *err);

/* Applies the connector's `options:` (librdkafka properties) to conf.
 * Returns 0 or -1 with err on an unknown property or a bad value. */
int sl_kafka_conf_apply_options(sl_kafka *k, rd_kafka_conf_t *conf, sl_error *err);

/* Registers route as fed by k: validates its `from:` and prepares (without
 * starting) its consumer. Returns 0 or -1 with err. */
int sl_kafka_input_attach(sl_kafka *k, sl_route *route, sl_error *err);

/* Creates every input's consumer, subscribes it and starts its thread.
 * Returns 0 or -1 with err (inputs already started keep running until
 * sl_kafka_inputs_stop). */
int sl_kafka_inputs_start(sl_kafka *k, sl_error *err);

/* Stops every consumer thread: each makes what it appended durable,
 * commits it synchronously, leaves the group and exits. Blocks until they
 * have exited; no append happens after it returns. Idempotent. */
void sl_kafka_inputs_stop(sl_kafka *k);

/* Frees every input (stopping it first if needed). */
void sl_kafka_inputs_free(sl_kafka *k);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t sl_kafka_now_ms(void);

#endif
