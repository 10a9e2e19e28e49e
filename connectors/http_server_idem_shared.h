/* Idempotency-Keys shared by the gateways of a route whose log a connector
 * holds (`log: { connector: KAFKA }`): what the http_server stores in the
 * route's shared store (sl_route_idem_*) and how it reads it back. A
 * request's key is first claimed (in flight), then holds its answer, or is
 * forgotten when no message was kept. See docs/KAFKA-LOG.md. */
#ifndef SLUICE_HTTP_SERVER_IDEM_SHARED_H
#define SLUICE_HTTP_SERVER_IDEM_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "http_server_idem.h"
#include "route.h"

/* How long a claim holds a key on the other gateways without an answer (the
 * gateway that claimed it may have died): then the key is free again. */
#define HS_IDEM_CLAIM_MS 120000

typedef enum {
    HS_SHARED_NONE = 0, /* unknown (or a claim older than HS_IDEM_CLAIM_MS) */
    HS_SHARED_CLAIMED,  /* a gateway is handling a request with this key now */
    HS_SHARED_ANSWERED, /* *ans holds the answer (free it with sl_idem_answer_free) */
} hs_shared_state;

/* Looks key up in route's shared store at now_ms. */
hs_shared_state hs_idem_shared_get(sl_route *route, const char *key, size_t klen, uint64_t now_ms,
                                   sl_idem_answer *ans);

/* Claims key for a request this gateway handles now. Logs failures (the
 * request goes on: dedupe is then local to this gateway). */
void hs_idem_shared_claim(sl_route *route, const char *key, size_t klen);

/* Stores ans as key's answer for every gateway, or forgets key (ans NULL).
 * Logs failures. */
void hs_idem_shared_close(sl_route *route, const char *key, size_t klen, const sl_idem_answer *ans);

#endif
