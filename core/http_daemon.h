/* A libmicrohttpd daemon that outlives a SIGHUP reload, for the gateway's
 * HTTP listeners (the http_server connector through connectors/
 * http_listener.c, and the admin listener): the daemon, its TLS
 * credentials and the config generation its requests go to. Each
 * generation attaches its state while it runs; a request that needs one
 * while none is attached (between two) is parked (its connection
 * suspended) until the next one attaches. Open connections, idle
 * keep-alive ones included, thus survive a reload. */
#ifndef SLUICE_HTTP_DAEMON_H
#define SLUICE_HTTP_DAEMON_H

#include <microhttpd.h>
#include <stdbool.h>

#include "http_tls.h"

typedef struct sl_http_daemon sl_http_daemon;

/* A daemon holder named name (what a next generation compares to decide
 * whether it can take it over: a connector's name, the admin's listen
 * address) with tls (taken over; NULL: plain HTTP). The MHD daemon is
 * started by the caller, with d as the callbacks' cls, and handed over with
 * sl_http_daemon_set. NULL when out of memory (tls is then freed). */
sl_http_daemon *sl_http_daemon_new(const char *name, sl_tls *tls);

/* The daemon serving d and its bound address ("127.0.0.1:8080"). */
void sl_http_daemon_set(sl_http_daemon *d, struct MHD_Daemon *mhd, const char *bound);
struct MHD_Daemon *sl_http_daemon_mhd(const sl_http_daemon *d);
const char *sl_http_daemon_bound(const sl_http_daemon *d);
const char *sl_http_daemon_name(const sl_http_daemon *d);
sl_tls *sl_http_daemon_tls(const sl_http_daemon *d);

/* True when a generation with this name and TLS on or off can take d over
 * (its daemon is running). */
bool sl_http_daemon_fits(const sl_http_daemon *d, const char *name, bool tls);

/* From an MHD callback of conn that needs the generation: returns the one
 * attached, held until sl_http_daemon_release(d) (sl_http_daemon_detach
 * waits for it). With none attached: parks conn (suspends it; MHD calls the
 * handler again once a generation attaches) and sets *ret to MHD_YES; while
 * d closes, sets *ret to MHD_NO (MHD closes conn). Both return NULL. The
 * caller must remember that conn is parked (its con_cls) if it matters. */
void *sl_http_daemon_hold(sl_http_daemon *d, struct MHD_Connection *conn, enum MHD_Result *ret);
void sl_http_daemon_release(sl_http_daemon *d);

/* Attaches gen (requests go to it; parked ones are resumed). Detaches gen
 * when it is the one attached (new requests are parked) and waits until no
 * callback holds it. Thread-safe; never from an MHD callback of d. */
void sl_http_daemon_attach(sl_http_daemon *d, void *gen);
void sl_http_daemon_detach(sl_http_daemon *d, const void *gen);

/* Stops accepting connections (at shutdown) and returns the listening
 * socket, now the caller's; -1 when already done or no daemon. */
int sl_http_daemon_quiesce(sl_http_daemon *d);

/* Stops d: stops accepting, gives its listening socket to *fd (when fd is
 * not NULL; else it is closed), closes every connection (parked ones
 * included; MHD_stop_daemon returns once they are) and frees d. Its TLS
 * credentials go to *tls when tls is not NULL (else they are freed). d may
 * be NULL (then *fd = -1, *tls untouched). sl_http_daemon_drop(d) is
 * sl_http_daemon_close(d, NULL, NULL), for sl_gateway_keep. */
void sl_http_daemon_close(sl_http_daemon *d, int *fd, sl_tls **tls);
void sl_http_daemon_drop(void *d);

#endif
