/* Abuse limits of the http_server connector (connectors/http_limits.c):
 * connections in total and per client address, header and body read
 * deadlines that a slow client cannot push back byte by byte, and the
 * per-route token-bucket rate limit (`from.rate_limit`). The connector calls
 * the hooks below from libmicrohttpd's callbacks; a reaper thread closes
 * connections past their deadline. */
#ifndef SLUICE_HTTP_LIMITS_H
#define SLUICE_HTTP_LIMITS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "metrics.h"

/* The connector's limit keys (flat on `connectors: NAME:`), with defaults
 * that are safe without configuration. */
typedef struct hl_conf {
    int max_connections;            /* default 2048 */
    int max_connections_per_client; /* default 256 */
    uint64_t header_timeout_ms;     /* accept (or keep-alive idle end) to headers read; 10 s */
    uint64_t body_timeout_ms;       /* headers read to body read; 30 s */
    uint64_t idle_timeout_ms;       /* keep-alive idle; 60 s */
    int max_headers;                /* default 100 */
} hl_conf;

/* `from.rate_limit: { rate: 100/s, burst: 200, per: client|route }`. */
typedef struct hl_rate_conf {
    bool on;
    double per_s;    /* tokens per second */
    double burst;    /* bucket size; default max(1, per_s) */
    bool per_client; /* one bucket per client address (default) or per route */
} hl_rate_conf;

/* rate_limit's sub-table, for the route's doc table. */
extern const sl_conf_doc hl_rate_doc[];

/* Fills c with the defaults and reads the limit keys of connector map n. */
void hl_parse_conf(sl_conf_reader *r, const sl_node *n, const char *path, hl_conf *c);

/* Reads `rate_limit` of route map n into rc (rc->on stays false when absent). */
void hl_parse_rate(sl_conf_reader *r, const sl_node *n, const char *path, hl_rate_conf *rc);

typedef struct hl_limits hl_limits;
typedef struct hl_conn hl_conn;

/* Creates the limiter of connector name; metrics (may be NULL) get
 * sluice_http_refused_total{connector,route="",reason} counters. NULL on
 * out of memory. Starts no thread yet. */
hl_limits *hl_new(const char *name, const hl_conf *c, sl_metrics *m);

/* Starts the reaper thread. 0 or -1. */
int hl_start(hl_limits *l);

/* Stops the reaper and frees l (every connection must have been closed). */
void hl_free(hl_limits *l);

/* libmicrohttpd's connection limit to configure: above ours, so that the
 * connector's own check (counted) refuses first. */
unsigned hl_mhd_connection_limit(const hl_limits *l);

/* A new connection fd from addr: tracked with the header deadline. When the
 * total or per-client limit is exceeded it is shut down at once (counted).
 * Returns the tracking handle for socket_context (NULL on out of memory:
 * the connection is shut down). */
hl_conn *hl_conn_open(hl_limits *l, int fd, const struct sockaddr *addr);

/* The connection closed (libmicrohttpd's NOTIFY_CLOSED, before the fd is
 * closed): forgets it. c may be NULL. */
void hl_conn_close(hl_limits *l, hl_conn *c);

/* Phases: headers read (the body deadline starts), body read (no deadline
 * while the gateway works), request completed (keep-alive: the next
 * request's headers must arrive within idle + header timeout). */
void hl_conn_headers_done(hl_limits *l, hl_conn *c);
void hl_conn_body_done(hl_limits *l, hl_conn *c);
void hl_conn_request_done(hl_limits *l, hl_conn *c);

/* The client address of c as text ("127.0.0.1"), "" when unknown. */
const char *hl_conn_client(const hl_conn *c);

/* Counts a refusal of connection-level reason ("too_many_headers"). */
void hl_count(hl_limits *l, const char *reason);

/* The counter of that reason (NULL when unknown or without metrics), for
 * counting elsewhere (sl_tls_count_refused). */
sl_counter *hl_counter(hl_limits *l, const char *reason);

typedef struct hl_bucket hl_bucket;

/* A route's rate limiter (per route or per client). NULL on out of memory. */
hl_bucket *hl_bucket_new(const hl_rate_conf *rc);
void hl_bucket_free(hl_bucket *b);

/* Takes one token for client (ignored for per-route limits). Returns 0 when
 * the request may go on, else the seconds to wait (>= 1, Retry-After). */
int hl_bucket_take(hl_bucket *b, const char *client);

#endif
