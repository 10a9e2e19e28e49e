/* The http_client connector's call API, beside its output table: one
 * synchronous request/response through the connector's multi loop, for
 * Lua's ctx.http and for `reply_from` (the response of an output). */
#ifndef SLUICE_HTTP_CLIENT_H
#define SLUICE_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "connector.h"

#define SL_HTTP_MAX_RESPONSE (8u << 20) /* response bytes kept by sl_http_client_call */

extern const sl_connector_type sl_http_client_connector;

/* `auth:` of an http_client connector: the credentials sent on every call
 * (connectors/http_client_auth.c). Secrets come through sl_conf_secret. */
typedef enum {
    SL_HC_AUTH_NONE,
    SL_HC_AUTH_BASIC,  /* user, password */
    SL_HC_AUTH_BEARER, /* token, or token_file (re-read when it changes) */
    SL_HC_AUTH_OAUTH2, /* client credentials grant against token_url */
} sl_hc_auth_type;

typedef struct sl_hc_auth_conf {
    sl_hc_auth_type type;
    const char *user, *password;
    const char *token, *token_file;
    const char *token_url, *client_id, *client_secret, *scope, *audience;
    bool client_auth_body;      /* oauth2: id and secret in the form, not HTTP Basic */
    uint64_t refresh_margin_ms; /* oauth2: a token is renewed this long before it expires */
} sl_hc_auth_conf;

/* `tls:` of an http_client connector: files handed to libcurl. */
typedef struct sl_hc_tls_conf {
    const char *ca;   /* PEM CA bundle that replaces the system's; NULL = system */
    const char *cert; /* PEM client certificate (mutual TLS); NULL = none */
    const char *key;  /* PEM private key of cert */
} sl_hc_tls_conf;

/* `connectors: NAME: { type: http_client, ... }` (sl_connector_conf.priv). */
typedef struct sl_http_client_conf {
    char *base_url;      /* required */
    uint64_t timeout_ms; /* default 5 s */
    int max_in_flight;   /* default 64 */
    sl_kv *headers;      /* sent with every request */
    size_t n_headers;
    char **forward; /* forward_headers: names or "prefix*" */
    size_t n_forward;
    bool forward_set; /* forward_headers is configured (else: trace headers only) */
    sl_hc_auth_conf auth;
    sl_hc_tls_conf tls;
} sl_http_client_conf;

/* A `to:` element naming an http_client connector (sl_output_conf.priv). */
typedef struct sl_http_client_output {
    char *method; /* default POST */
    char *path;   /* default "" (base_url as is) */
    sl_kv *headers;
    size_t n_headers;
} sl_http_client_output;

/* The table's config callbacks (core/connector.h), in http_client_conf.c. */
extern const char *const sl_http_client_conf_keys[];
extern const char *const sl_http_client_output_keys[];
extern const sl_conf_doc sl_http_client_conf_doc[];
extern const sl_conf_doc sl_http_client_output_doc[];
void sl_http_client_parse_conf(sl_conf_reader *r, sl_connector_conf *cc, const sl_node *n,
                               const char *path);
/* auth: and tls: of the connector (http_client_auth.c), called by
 * sl_http_client_parse_conf; errors are recorded at their keys. */
extern const sl_conf_doc sl_http_client_auth_doc[];
extern const sl_conf_doc sl_http_client_tls_doc[];
void sl_http_client_parse_auth(sl_conf_reader *r, sl_http_client_conf *hc, const sl_node *n,
                               const char *path);
void sl_http_client_parse_tls(sl_conf_reader *r, sl_http_client_conf *hc, const sl_node *n,
                              const char *path);
void sl_http_client_parse_output(sl_conf_reader *r, const sl_connector_conf *cc,
                                 sl_output_conf *out, const sl_node *n, const char *path);

/* What one call got back. body is malloc'd and NUL-terminated (not counted
 * in body_len), or NULL when the response had no body; free it with
 * sl_http_response_free. */
typedef struct sl_http_response {
    sl_result result; /* as for send: SL_OK on 2xx, SL_RETRY, SL_FAIL */
    int status;       /* HTTP status, 0 when no response arrived */
    char error[256];  /* why, when not SL_OK */
    char *body;
    size_t body_len;
    bool truncated; /* the body was longer than SL_HTTP_MAX_RESPONSE (or memory ran out) */
} sl_http_response;

/* Makes one request through c, an initialised http_client connector:
 * method (NULL = GET) to base_url joined with path, with the connector's
 * headers and then headers (later ones win; a Content-Type there sets the
 * body's type, else application/octet-stream), body (body_len bytes, may be
 * NULL) and the connector's timeout. Counts against max_in_flight, as
 * sends do, and in the connector's metrics. Blocks until the response (or
 * an error) and fills *resp; resp->result maps as send() does, and resp->body
 * holds the response body whatever the status. No Idempotency-Key is sent
 * unless headers carry one. Thread-safe; must not be called from the
 * connector's own loop thread, nor after destroy. A connector that is not
 * an http_client gives SL_FAIL. */
void sl_http_client_call(sl_connector *c, const char *method, const char *path,
                         const sl_kv *headers, size_t n_headers, const char *body, size_t body_len,
                         sl_http_response *resp);

/* Frees resp->body and clears it. resp may be NULL. */
void sl_http_response_free(sl_http_response *resp);

#endif
