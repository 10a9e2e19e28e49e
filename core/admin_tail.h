/* The admin listener's live tail: GET /v1/routes/NAME/tail streams the
 * route's messages as Server-Sent Events (core/tail.h publishes them), and a
 * keep-alive thread pings every stream so that a client that went away is
 * noticed. Used by core/admin.c only. */
#ifndef SLUICE_ADMIN_TAIL_H
#define SLUICE_ADMIN_TAIL_H

#include <microhttpd.h>

#include "gateway.h"
#include "route.h"

typedef struct sl_admin_tail sl_admin_tail;

/* Starts the keep-alive thread for the streams of gw's routes. Returns NULL
 * when out of memory or the thread cannot start (then streams are not
 * pinged: a client that went away is noticed at the next message). */
sl_admin_tail *sl_admin_tail_start(sl_gateway *gw);

/* Ends every stream of gw's routes (each sends its end; one that cannot
 * within 2 s has its socket shut down) and waits until MHD has let go of
 * them all (the daemon goes on running: the routes may be freed after
 * this), then stops the keep-alive thread and frees t. t may be NULL. */
void sl_admin_tail_stop(sl_admin_tail *t, sl_gateway *gw);

/* Answers GET /v1/routes/NAME/tail on conn (the token already checked), a
 * stream of t (500 when t is NULL):
 * text/event-stream with a "hello" event, then one "accepted" or
 * "delivered" event per message, "dropped" when this client fell more than
 * SL_TAIL_RING events behind (data: the total dropped), and ": ping"
 * comments. 503 when the route has SL_TAIL_MAX_CLIENTS streams already.
 * The daemon must allow suspend/resume. */
enum MHD_Result sl_admin_tail_serve(sl_admin_tail *t, struct MHD_Connection *conn, sl_route *r);

#endif
