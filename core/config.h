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
#include "name_index.h"

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

/* A connector: `connectors: NAME: { type: T, ... }`. The keys of its type
 * are parsed by the type's parse_conf (core/connector.h) into priv. */
typedef struct sl_connector_conf {
    char *name;
    char *type; /* a registered connector type (connectors/registry.c) */
    sl_conf_pos pos;
    const sl_node *node;     /* the whole mapping */
    sl_breaker_conf breaker; /* types with has_breaker; defaults filled even when absent */
    void *priv;              /* the type's parsed config, from the config's pool; or NULL */
} sl_connector_conf;

typedef struct sl_retry_conf {
    int max_attempts;            /* default 10; attempts in all, first included */
    uint64_t initial_backoff_ms; /* default 100 ms */
    uint64_t max_backoff_ms;     /* default 30 s */
    double multiplier;           /* default 2.0 */
} sl_retry_conf;

/* A route's input: `from:`. Either connector (a connector whose type can
 * input) or topic (an internal log topic; connector is NULL). The other keys
 * belong to the connector's type: its parse_input fills priv. */
typedef struct sl_input_conf {
    sl_conf_pos pos;
    const sl_node *node;
    char *connector;
    char *topic;
    void *priv; /* the connector type's parsed input, from the config's pool; or NULL */
} sl_input_conf;

/* A step: one of the registered step types (transforms/registry.c), written
 * `- TYPE: SETTINGS`. The type's parse_conf checks SETTINGS and fills priv. */
typedef struct sl_step_conf {
    char *type;
    sl_conf_pos pos;
    const sl_node *node; /* the value under the type key */
    void *priv;          /* the step type's parsed settings, from the config's pool; or NULL */
} sl_step_conf;

/* An output: one element of `to:`. Either connector or topic. */
typedef struct sl_output_conf {
    sl_conf_pos pos;
    const sl_node *node;
    char *name; /* `name:`, else the connector name, else "topic:NAME"; unique in a route */
    char *connector;
    char *topic; /* internal topic, or the kafka topic when connector is kafka */
    char *when;  /* Lua expression or NULL */
    void *priv;  /* the connector type's parsed output, from the config's pool; or NULL */
} sl_output_conf;

/* A route's `log:` held by a connector (core/log_backend.h); connector is
 * NULL for the embedded log. The other keys belong to the connector type's
 * log backend, which parses them into priv. */
typedef struct sl_route_log_conf {
    sl_conf_pos pos;
    const sl_node *node;
    char *connector;
    void *priv;
} sl_route_log_conf;

typedef struct sl_route_conf {
    char *name;
    sl_conf_pos pos;
    sl_input_conf from;
    int partitions;      /* default 1 */
    char *key;           /* "$.a.b[0]", "/a/b" or "header:NAME"; NULL = round robin */
    sl_conf_pos key_pos; /* where `key:` is written */
    sl_step_conf *steps;
    size_t n_steps;
    sl_output_conf *to;
    size_t n_to;
    sl_retry_conf retry;
    char *dead_letter_topic; /* default "ROUTE.dlq" */
    sl_route_log_conf log;   /* `log:`; log.connector NULL: the embedded log */
} sl_route_conf;

typedef enum { SL_LOG_TEXT = 0, SL_LOG_JSON } sl_log_format;

typedef struct sl_gateway_conf {
    char *data_dir;                /* default "./data" */
    char *admin_listen;            /* default "127.0.0.1:9400"; "" disables */
    char *admin_token;             /* "" or NULL = no auth */
    struct sl_tls_conf *admin_tls; /* NULL: plain HTTP (core/http_tls.h) */
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
    /* What is suspicious but not wrong, "FILE:LINE:COL: warning: ...":
     * e.g. an include pattern matching no file. `sluice check` prints them. */
    char **warnings;
    size_t n_warnings;
    sl_name_index conn_index; /* connectors by name (a loaded config); empty: scanned */
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

/* ---- the reference: one line of documentation per key ----
 * Every key list (core's own sections in core/config_schema.c, a connector
 * type's conf_keys/input_keys/output_keys, a step type's conf_keys) has a
 * table beside it documenting the same keys; `sluice config reference`
 * (docs/config-reference.md) and `sluice config schema` (JSON Schema) are
 * built from the tables, and test_config_doc checks that each table lists
 * exactly the keys its list allows. */

typedef struct sl_conf_doc sl_conf_doc;
struct sl_conf_doc {
    const char *key;     /* NULL ends a table */
    const char *type;    /* string, integer, number, boolean, duration, size, rate,
                          * listen, url, list, map, any, breaker, object (sub documents
                          * it), or enum:A|B|C */
    const char *def;     /* the default as written in YAML; NULL when there is none */
    const char *meaning; /* one line */
    bool required;
    const sl_conf_doc *sub; /* type object: its keys; else NULL */
};

/* Table rows: a key with a default (NULL: none), a required key, a key whose
 * value is a map documented by sub, and the end of a table. */
/* clang-format off */
#define SL_DOC(key, type, def, meaning) {key, type, def, meaning, false, NULL}
#define SL_DOC_REQ(key, type, meaning) {key, type, NULL, meaning, true, NULL}
#define SL_DOC_SUB(key, meaning, sub) {key, "object", NULL, meaning, false, sub}
#define SL_DOC_END {NULL, NULL, NULL, NULL, false, NULL}
/* clang-format on */

/* One of core's own sections: its name and the keys the loader allows
 * there; its documentation is sl_conf_core_doc(name). */
typedef struct sl_conf_section {
    const char *name;        /* "sluice.log", "on_error.retry", ... */
    const char *const *keys; /* the list sl_conf_check_keys uses */
} sl_conf_section;

/* core's own sections, ended by {NULL}: defined in core/config_schema.c
 * beside the key lists. */
extern const sl_conf_section sl_conf_core_sections[];

/* Returns the documentation table of core's section name (core/config_doc.c),
 * or NULL. */
const sl_conf_doc *sl_conf_core_doc(const char *name);

/* `sluice config reference|schema`: writes the Markdown reference or the
 * JSON Schema (draft 2020-12) of the config to out. Returns 0, or 2 with a
 * usage line on stderr for another subcommand. */
int sl_config_doc_main(int argc, char **argv, FILE *out);

/* ---- the config reader: what connector and step types parse with ----
 *
 * A type's parse callback (core/connector.h, core/step.h) gets a reader and
 * its YAML node. It records every problem with the functions below (each
 * error is "FILE:LINE:COL: message" and does not stop the load) and
 * allocates what it keeps from the config's pool, which is freed with the
 * config. PATH arguments name the node in messages ("connectors.crm",
 * "routes.r.to[0]"). Only valid during sl_config_load, on its thread. */

/* Every allocation of a loaded config (nodes, strings, arrays, the priv of
 * connectors and steps) comes from one pool and is freed with it. */
typedef struct sl_pool_blk sl_pool_blk;
typedef struct sl_pool {
    sl_pool_blk *head;
    bool oom; /* an allocation failed; the load must fail */
} sl_pool;

/* Returns size zeroed bytes owned by pool, or NULL (and sets pool->oom). */
void *sl_pool_alloc(sl_pool *pool, size_t size);

/* Returns a copy of s (NULL when s is NULL) owned by pool, or NULL on
 * allocation failure (pool->oom set). */
char *sl_pool_strdup(sl_pool *pool, const char *s);

/* Same as sl_pool_strdup for the first n bytes of s. */
char *sl_pool_strndup(sl_pool *pool, const char *s, size_t n);

/* printf into a pool string; NULL on allocation failure (pool->oom set). */
char *sl_pool_printf(sl_pool *pool, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees everything allocated from pool; the pool may be reused afterwards. */
void sl_pool_free(sl_pool *pool);

#define SL_CONF_PATH_LEN 512 /* room for a PATH built by the helpers below */

typedef struct sl_conf_reader sl_conf_reader;

/* The pool of the config being loaded (an allocation failure there fails
 * the load, so a callback may simply stop on NULL). */
sl_pool *sl_conf_pool(sl_conf_reader *r);

/* The config being loaded: its connectors are all parsed before any route,
 * so a route's callbacks may look them up with sl_config_connector. */
const sl_config *sl_conf_config(const sl_conf_reader *r);

/* Records the error "FILE:LINE:COL: message" at pos. Never fails. */
void sl_conf_error_at(sl_conf_reader *r, sl_conf_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes "PATH.key" (or "key" when path is empty) into out. */
void sl_conf_path_key(char out[SL_CONF_PATH_LEN], const char *path, const char *key);

/* Writes "PATH[i]" into out. */
void sl_conf_path_index(char out[SL_CONF_PATH_LEN], const char *path, size_t i);

/* Returns the value of key in map, or NULL when absent, written as null, or
 * when map is not a map. */
const sl_node *sl_conf_value(const sl_node *map, const char *key);

/* Returns the index of s in the NULL-terminated list, or -1. */
int sl_conf_find_word(const char *const *list, const char *s);

/* Records "PATH: expected EXPECTED, got WHAT-N-IS" at n. */
void sl_conf_type_error(sl_conf_reader *r, const sl_node *n, const char *path,
                        const char *expected);

/* Records "PATH: missing required key 'key'" at map. */
void sl_conf_missing(sl_conf_reader *r, const sl_node *map, const char *path, const char *key);

/* True when n is a map; else records "PATH: expected a map, got ..." and
 * returns false. */
bool sl_conf_want_map(sl_conf_reader *r, const sl_node *n, const char *path);

/* Records "unknown key 'X' in PATH (expected one of: A, B, ...)" for every
 * key of map that is not in the NULL-terminated list allowed. */
void sl_conf_check_keys(sl_conf_reader *r, const sl_node *map, const char *path,
                        const char *const *allowed);

/* The typed getters read map's key (PATH.key in messages). Each returns true
 * and sets *out when the key holds a valid value; returns false and keeps
 * *out when the key is absent or null (no error) or invalid (error
 * recorded). Strings and arrays are allocated from the config's pool. */

/* A scalar, as a string. */
bool sl_conf_str(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                 char **out);

/* As sl_conf_str, and records "missing required key" when absent. */
bool sl_conf_need_str(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                      char **out);

/* A secret (password, token, key): the string written (usually "${VAR}",
 * expanded like every string), or "file:PATH" for the contents of a file
 * (PATH relative to the directory of the YAML file that names it; one
 * trailing newline stripped; at most 64 KiB). An empty secret, an
 * unreadable file or a missing required key is an error at the key's
 * position; no message ever contains the value. *out is pool-allocated. */
bool sl_conf_secret(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                    bool required, const char **out);

/* A decimal integer from min to max. */
bool sl_conf_int(sl_conf_reader *r, const sl_node *map, const char *key, const char *path, long min,
                 long max, int *out);

/* true/yes or false/no (any case). */
bool sl_conf_bool(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                  bool *out);

/* A duration ("500ms", "2s", "1m"), in ms. */
bool sl_conf_duration(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                      uint64_t *out);

/* A size ("512KiB", "1MiB"), in bytes. */
bool sl_conf_size(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                  uint64_t *out);

/* A rate ("50%" or 0.5), into 0..1. */
bool sl_conf_rate(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                  double *out);

/* One of the NULL-terminated values; *out is its index. */
bool sl_conf_enum(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                  const char *const *values, int *out);

/* A map of names to scalars, into a pool array of *n_out pairs. Returns
 * false (after recording) when a value is not a scalar; *out then holds the
 * valid pairs. */
bool sl_conf_kv(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                sl_kv **out, size_t *n_out);

/* A list of strings; when values is not NULL each must be one of them. */
bool sl_conf_list(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                  const char *const *values, char ***out, size_t *n_out);

/* Records "PATH.key: expected HOST:PORT ..." when value (map's key) is not
 * empty and not HOST:PORT. */
void sl_conf_check_listen(sl_conf_reader *r, const sl_node *map, const char *path, const char *key,
                          const char *value);

/* Records "PATH.key: invalid topic name ..." when name (map's key) is not
 * a valid topic name. name may be NULL. */
void sl_conf_check_topic(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                         const char *name);

#endif
