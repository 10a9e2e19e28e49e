/* The admin listener: health, readiness, Prometheus metrics, routes,
 * message status and rewind over HTTP (libmicrohttpd), on sluice.admin.listen,
 * with a bearer token when sluice.admin.token is set. */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include "error.h"

typedef struct sl_gateway sl_gateway;
typedef struct sl_admin sl_admin;

/* Starts listening on the config's sluice.admin.listen. Returns NULL with err when
 * the address cannot be bound. */
sl_admin *sl_admin_start(sl_gateway *gw, sl_error *err);

/* The address the listener is bound to ("127.0.0.1:PORT", the port the
 * kernel chose for port 0), or "" when the listener is disabled. */
const char *sl_admin_address(const sl_admin *a);

/* Stops the listener and frees it. a may be NULL. */
void sl_admin_stop(sl_admin *a);

#endif
