/* Which route takes which method and path on one http_server connector,
 * while the config is read: lets `sluice check` refuse a second route on a
 * method and path already taken, in time linear in the number of routes. */
#ifndef SLUICE_HTTP_SERVER_PATHS_H
#define SLUICE_HTTP_SERVER_PATHS_H

#include "config.h"
#include "http_server.h"

typedef struct sl_hs_paths sl_hs_paths;

/* Records that route takes hi's methods on hi's path, in *paths (created
 * on first use; all memory from pool, freed with it). Returns the earliest
 * route already recorded that takes one of those methods on that path,
 * with the method in *method, or NULL. hi is recorded either way, so that
 * later routes are compared with it too. NULL also when out of memory
 * (pool->oom set; the load fails anyway). */
const sl_route_conf *sl_hs_paths_claim(sl_hs_paths **paths, sl_pool *pool,
                                       const sl_route_conf *route, const sl_http_server_input *hi,
                                       const char **method);

#endif
