/* Authentication of http_server routes (`from.auth`, a list: a request
 * passes when one entry accepts it): bearer tokens, API keys, basic users
 * with crypt(3) hashes, HMAC signatures of the raw body (GitHub style, and
 * Stripe's `t=…,v1=…` with a replay window) and mutual-TLS subjects.
 * Secrets come through sl_conf_secret and are compared in constant time;
 * none is ever written to a log, a metric or an answer. */
#ifndef SLUICE_HTTP_AUTH_H
#define SLUICE_HTTP_AUTH_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "crypto.h"

typedef enum { HA_BEARER, HA_API_KEY, HA_BASIC, HA_HMAC, HA_MTLS } ha_type;

/* One entry of `auth:`. */
typedef struct ha_entry {
    ha_type type;
    const char **secrets; /* bearer tokens, API keys */
    size_t n_secrets;
    char *header; /* api_key, hmac: the header carrying the credential */
    sl_kv *users; /* basic: NAME -> crypt(3) hash */
    size_t n_users;
    const char *secret;   /* hmac: the shared key */
    sl_digest alg;        /* hmac: default sha256 */
    bool base64;          /* hmac: encoding; default hex */
    char *prefix;         /* hmac: e.g. "sha256="; default none */
    bool stripe;          /* hmac: scheme stripe (t=…,v1=… over "t.body") */
    uint64_t tolerance_s; /* stripe: largest |now - t|; default 300 */
    char **subjects;      /* mtls: allowed subject DNs */
    size_t n_subjects;
} ha_entry;

typedef struct ha_conf {
    ha_entry *entries;
    size_t n;
    bool has_hmac; /* some entry needs the body */
} ha_conf;

/* Reads `auth` of route map n into c (c->n stays 0 when absent). */
void ha_parse(sl_conf_reader *r, const sl_node *n, const char *path, ha_conf *c);

/* The outcome of a check, from the best entry. */
typedef enum {
    HA_PASS,      /* an entry accepted */
    HA_NEED_BODY, /* no cheap entry accepted; an HMAC signature is present */
    HA_MISSING,   /* 401: no credential */
    HA_INVALID,   /* 401: a credential that does not match (or a stale signature) */
    HA_FORBIDDEN  /* 403: a verified identity not allowed on this route */
} ha_result;

/* The reason label of a refusal ("auth_missing", ...). */
const char *ha_reason(ha_result res);

/* Checks the entries that need no body (subject: the verified mutual-TLS
 * subject or NULL). Call before reading the body. */
ha_result ha_check_headers(const ha_conf *c, struct MHD_Connection *conn, const char *subject);

/* True when conn carries a bearer token or API key that one of c's entries
 * accepts (only these cheap types: no password hash is computed). Tells a
 * credential valid on another route (403) from a wrong one (401). */
bool ha_known_token(const ha_conf *c, struct MHD_Connection *conn);

/* Checks the HMAC entries over the exact raw body; now_s is Unix time. */
ha_result ha_check_body(const ha_conf *c, struct MHD_Connection *conn, const char *body, size_t len,
                        int64_t now_s);

/* The WWW-Authenticate value of a 401 for c (one challenge per scheme). */
void ha_challenge(const ha_conf *c, char *out, size_t cap);

#endif
