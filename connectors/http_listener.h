/* The part of an http_server listener that outlives a SIGHUP reload: the
 * libmicrohttpd daemon, its connections' limits and its TLS credentials.
 * Each config generation attaches its connector state (the "generation")
 * to it; requests go to the generation attached, and a request that arrives
 * while none is (between two) is parked until the next one attaches. Open
 * connections, idle keep-alive ones included, thus survive a reload. */
#ifndef SLUICE_HTTP_LISTENER_H
#define SLUICE_HTTP_LISTENER_H

#include <microhttpd.h>
#include <stdbool.h>

#include "http_limits.h"
#include "http_tls.h"

typedef struct hs_listener hs_listener;

/* A listener for connector name with the limits c (copied) and tls (taken
 * over; may be NULL); m gets the limits' counters. Starts the limits'
 * reaper, not the daemon (hs_listener_set_daemon). NULL on failure (tls is
 * then freed). */
hs_listener *hs_listener_new(const char *name, const hl_conf *c, sl_tls *tls, sl_metrics *m);

/* The daemon serving it (started by the connector with l as every
 * callback's cls), and its bound address ("127.0.0.1:8080"). */
void hs_listener_set_daemon(hs_listener *l, struct MHD_Daemon *d, const char *bound);
struct MHD_Daemon *hs_listener_daemon(const hs_listener *l);
const char *hs_listener_bound(const hs_listener *l);

hl_limits *hs_listener_limits(const hs_listener *l);
sl_tls *hs_listener_tls(const hs_listener *l);
const char *hs_listener_name(const hs_listener *l);

/* True when a generation with this name, limits and TLS on or off can take
 * l over (otherwise the daemon must be started again). */
bool hs_listener_fits(const hs_listener *l, const char *name, const hl_conf *c, bool tls);

/* The first call of a request: under l's lock, calls start(gen, conn) with
 * the generation attached and returns what it returns (the request's
 * state). With none attached, parks the request: sets *con_cls to a marker
 * (hs_listener_parked tells it), suspends conn, sets *ret to MHD_YES and
 * returns NULL; the handler is called again, with the marker, once a
 * generation attaches. While l closes: *ret = MHD_NO (the connection is
 * closed) and NULL. */
void *hs_listener_enter(hs_listener *l, struct MHD_Connection *conn, void **con_cls,
                        void *(*start)(void *gen, struct MHD_Connection *conn),
                        enum MHD_Result *ret);
bool hs_listener_parked(const void *con_cls);

/* Attaches gen (requests go to it, parked ones are resumed); detaches gen
 * when it is the one attached (new requests are parked). Thread-safe. */
void hs_listener_attach(hs_listener *l, void *gen);
void hs_listener_detach(hs_listener *l, const void *gen);

/* Stops accepting connections (at shutdown) and returns the listening
 * socket, now the caller's; -1 when already done. */
int hs_listener_quiesce(hs_listener *l);

/* Stops l: stops accepting, gives its listening socket to *fd (when fd is
 * not NULL; else it is closed), closes every connection (parked ones
 * included), and frees l. Its TLS credentials go to *tls when tls is not
 * NULL (else they are freed). hs_listener_drop(l) is hs_listener_close(l,
 * NULL, NULL) for sl_connector_keep. */
void hs_listener_close(hs_listener *l, int *fd, sl_tls **tls);
void hs_listener_drop(void *l);

#endif
