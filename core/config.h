/* The gateway configuration: YAML (libyaml) parsed into a tree of nodes that
 * remember file, line and column, validated against the schema of SPEC.md
 * section 2, and turned into the typed structs below. Every error names
 * FILE:LINE:COL. The config is immutable once loaded; a reload loads anew. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include "error.h"
#include "log.h"

/* Where something was written: file (as given or as globbed), 1-based line
 * and column. */
typedef struct sl_conf_pos {
    const char *file;
    int line;
    int col;
} sl_conf_pos;

typedef enum { SL_NODE_NULL, SL_NODE_SCALAR, SL_NODE_MAP, SL_NODE_SEQ } sl_node_kind;

typedef struct sl_node sl_node;

typedef struct sl_node_pair {
    char *key;
    sl_conf_pos key_pos;
    sl_node *value;
} sl_node_pair;

/* One YAML node after ${VAR} expansion. Kept in the config so that a module
 * can read options the typed structs do not carry (kafka options, amqp
 * declare/bind, step settings). */
struct sl_node {
    sl_node_kind kind;
    sl_conf_pos pos;
    char *scalar;        /* SCALAR: the expanded text, NUL-terminated */
    bool quoted;         /* SCALAR: written with quotes (so never null/bool/number) */
    sl_node_pair *pairs; /* MAP, in document order */
    size_t n_pairs;
    sl_node **items; /* SEQ */
    size_t n_items;
};

/* Returns the value of key in map node, or NULL (also when node is not a map). */
const sl_node *sl_node_get(const sl_node *map, const char *key);

/* A name and a value, both NUL-terminated (headers, kafka options, set fields). */
typedef struct sl_kv {
    char *key;
    char *value;
} sl_kv;

typedef struct sl_breaker_conf {
    double failure_rate;      /* 0..1; "50%" in YAML; default 0.5 */
    int min_calls;            /* default 10 */
    int window;               /* default 20 */
    int consecutive_failures; /* 0 = off; default 0 */
    uint64_t open_for_ms;     /* default 10 s */
    uint64_t max_open_for_ms; /* default 5 min */
    int half_open_calls;      /* default 3 */
} sl_breaker_conf;

/* A connector: `connectors: NAME: { type: T, ... }`. Only the fields of its
 * type are meaningful; the others are zero/NULL. */
typedef struct sl_connector_conf {
    char *name;
    char *type; /* http_server | http_client | amqp | kafka | file | stdout */
    sl_conf_pos pos;
    const sl_node *node; /* the whole mapping */
    /* http_server */
    char *listen;      /* "HOST:PORT"; required */
    uint64_t max_body; /* bytes; default 1 MiB */
    /* http_client */
    char *base_url;      /* required */
    uint64_t timeout_ms; /* default 5 s (also amqp, kafka) */
    int max_in_flight;   /* default 64 */
    sl_kv *headers;      /* sent with every request */
    size_t n_headers;
    sl_breaker_conf breaker; /* defaults filled even when absent */
    /* amqp */
    char *url;    /* required */
    int prefetch; /* default 256 */
    /* kafka */
    char *brokers;  /* required */
    sl_kv *options; /* librdkafka properties, passed through */
    size_t n_options;
    /* file */
    char *path; /* default output path for file outputs; optional */
} sl_connector_conf;

typedef struct sl_retry_conf {
    int max_attempts;            /* default 10; attempts in all, first included */
    uint64_t initial_backoff_ms; /* default 100 ms */
    uint64_t max_backoff_ms;     /* default 30 s */
    double multiplier;           /* default 2.0 */
} sl_retry_conf;

typedef enum { SL_CT_ANY = 0, SL_CT_JSON, SL_CT_XML, SL_CT_TEXT } sl_content_type;

/* A route's input: `from:`. Either connector (an http_server, amqp, kafka or
 * file connector) or topic (an internal log topic; connector is NULL). */
typedef struct sl_input_conf {
    sl_conf_pos pos;
    const sl_node *node;
    char *connector;
    char *topic;
    /* http_server */
    char *path;     /* required for http_server, starts with '/' */
    char **methods; /* default [POST] */
    size_t n_methods;
    sl_content_type content_type; /* default ANY */
    bool reply_sync;              /* reply: sync; default async */
    uint64_t sync_timeout_ms;     /* default 5 s */
    char *reply_from;             /* output name whose response is the sync reply */
    /* amqp */
    char *queue;
    int prefetch; /* per-input override; 0 = the connector's prefetch */
    /* kafka */
    char **topics;
    size_t n_topics;
    char *group;
    char *start; /* earliest | latest; default earliest */
    /* file */
    char *file_path;
} sl_input_conf;

/* A step: one of `- lua: {...}`, `- json_to_xml: {...}`, `- xml_to_json:`,
 * `- filter: EXPR`, `- set: {...}`, `- validate: {...}`. */
typedef struct sl_step_conf {
    char *type;
    sl_conf_pos pos;
    const sl_node *node; /* the value under the type key */
    /* set */
    sl_kv *set_headers; /* set: { headers: {NAME: VALUE} } */
    size_t n_set_headers;
    sl_kv *set_fields; /* set: { fields: {"$.a.b": VALUE} } */
    size_t n_set_fields;
    /* filter */
    char *expr;
} sl_step_conf;

/* An output: one element of `to:`. Either connector or topic. */
typedef struct sl_output_conf {
    sl_conf_pos pos;
    const sl_node *node;
    char *name; /* `name:`, else the connector name, else "topic:NAME"; unique in a route */
    char *connector;
    char *topic; /* internal topic, or the kafka topic when connector is kafka */
    char *when;  /* Lua expression or NULL */
    /* http_client */
    char *method; /* default POST */
    char *path;   /* default "" (base_url as is); also file path for file outputs */
    sl_kv *headers;
    size_t n_headers;
    /* amqp */
    char *exchange;
    char *routing_key;
    bool persistent; /* default true */
    bool mandatory;  /* default true */
    /* kafka */
    char *key; /* "$.path" or "header:NAME" */
} sl_output_conf;

typedef struct sl_route_conf {
    char *name;
    sl_conf_pos pos;
    sl_input_conf from;
    int partitions; /* default 1 */
    char *key;      /* "$.a.b[0]", "/a/b" or "header:NAME"; NULL = round robin */
    sl_step_conf *steps;
    size_t n_steps;
    sl_output_conf *to;
    size_t n_to;
    sl_retry_conf retry;
    char *dead_letter_topic; /* default "ROUTE.dlq" */
} sl_route_conf;

typedef enum { SL_LOG_TEXT = 0, SL_LOG_JSON } sl_log_format;

typedef struct sl_gateway_conf {
    char *data_dir;           /* default "./data" */
    char *admin_listen;       /* default "127.0.0.1:9400"; "" disables */
    char *admin_token;        /* "" or NULL = no auth */
    sl_log_options log;       /* fsync, fsync_interval, segment_bytes, max_disk_bytes, retention */
    sl_log_format log_format; /* `sluice: { log_format: json }` */
    char *log_level;          /* debug | info | warn | error; default info */
    uint64_t shutdown_timeout_ms; /* default 30 s */
    uint64_t dedupe_window_ms;    /* Idempotency-Key window; default 24 h */
} sl_gateway_conf;

typedef struct sl_config {
    char *path; /* the main file */
    sl_gateway_conf gw;
    sl_connector_conf *connectors;
    size_t n_connectors;
    sl_route_conf *routes;
    size_t n_routes;
    void *priv; /* the node trees and file names */
} sl_config;

/* The errors found while loading: each line "FILE:LINE:COL: message",
 * in file order. */
typedef struct sl_config_errors {
    char **lines;
    size_t n;
} sl_config_errors;

/* Loads path (and its includes), expands ${VAR} and ${VAR:-default}, checks
 * syntax, unknown keys, types, required keys, connector references and
 * connector types, and fills the defaults. Returns the config, or NULL with
 * every error found appended to errs (which the caller frees with
 * sl_config_errors_free). Not thread-safe with respect to the environment. */
sl_config *sl_config_load(const char *path, sl_config_errors *errs);

/* Asked by sl_config_load_env about each ${VAR} (without a default) that
 * is not set, with where it is written (pos.file lives as long as the
 * config): true expands it to "" and the load goes on, false makes it the
 * usual error. */
typedef bool (*sl_config_unset_fn)(void *arg, const char *var, sl_conf_pos pos);

/* sl_config_load, asking unset_fn (when not NULL) about unset environment
 * variables instead of failing on them. For `sluice test`, whose captured
 * connectors need none of their settings. */
sl_config *sl_config_load_env(const char *path, sl_config_unset_fn unset_fn, void *arg,
                              sl_config_errors *errs);

/* Frees a config from sl_config_load. cfg may be NULL. */
void sl_config_free(sl_config *cfg);

/* Frees every line of errs and empties it; errs itself is the caller's.
 * errs may be NULL. */
void sl_config_errors_free(sl_config_errors *errs);

/* Returns the connector named name, or NULL. */
const sl_connector_conf *sl_config_connector(const sl_config *cfg, const char *name);

/* Parses "10ms", "2s", "1m", "1h", "1d" (a bare 0 is allowed) into ms.
 * Returns 0 or -1 on a malformed value. */
int sl_parse_duration_ms(const char *s, uint64_t *out);

/* Parses "512", "64KiB", "1MiB", "10GiB" (also KB/MB/GB as powers of 10)
 * into bytes. Returns 0 or -1. */
int sl_parse_size(const char *s, uint64_t *out);

/* `sluice check -c FILE`: loads path and prints "ok" to out and returns 0,
 * or prints every error line (one per line) to out and returns 2. */
int sl_config_check_main(const char *path, FILE *out);

#endif
