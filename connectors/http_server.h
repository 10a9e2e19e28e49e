/* The http_server connector's config, parsed by its own table's callbacks
 * (connectors/http_server_conf.c): the connector's listen address and body
 * limit, and each route's `from:` (path, methods, reply mode). */
#ifndef SLUICE_HTTP_SERVER_H
#define SLUICE_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "connector.h"
#include "http_auth.h"
#include "http_limits.h"
#include "http_tls.h"
#include "http_server_util.h"

extern const sl_connector_type sl_http_server_connector;

/* `connectors: NAME: { type: http_server, ... }` (sl_connector_conf.priv). */
typedef struct sl_http_server_conf {
    char *listen;              /* "HOST:PORT"; required */
    uint64_t max_body;         /* bytes; default 1 MiB */
    struct sl_hs_paths *paths; /* methods and paths taken by routes, while the config is read */
    hl_conf limits;            /* connections, deadlines, header count (http_limits.h) */
    sl_tls_conf *tls;          /* NULL: plain HTTP (core/http_tls.h) */
} sl_http_server_conf;

/* A route's `from: { connector: NAME, ... }` (sl_input_conf.priv). */
typedef struct sl_http_server_input {
    char *path;     /* required, starts with '/' */
    char **methods; /* default [POST] */
    size_t n_methods;
    sl_content_type content_type; /* default ANY */
    bool reply_sync;              /* reply: sync; default async */
    uint64_t sync_timeout_ms;     /* default 5 s */
    char *reply_from;             /* output name whose response is the sync reply */
    hl_rate_conf rate_limit;      /* off unless set */
    ha_conf auth;                 /* from.auth; open when empty (http_auth.h) */
} sl_http_server_input;

/* The table's config callbacks (core/connector.h), in http_server_conf.c. */
extern const char *const sl_http_server_conf_keys[];
extern const char *const sl_http_server_input_keys[];
extern const sl_conf_doc sl_http_server_conf_doc[];
extern const sl_conf_doc sl_http_server_input_doc[];
void sl_http_server_parse_conf(sl_conf_reader *r, sl_connector_conf *cc, const sl_node *n,
                               const char *path);
void sl_http_server_parse_input(sl_conf_reader *r, const sl_route_conf *route,
                                const sl_connector_conf *cc, sl_input_conf *in, const sl_node *n,
                                const char *path);

#endif
