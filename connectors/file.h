/* The file connector's config, shared by its output (file.c) and its input
 * (file_input.c): a default path on the connector, a path per `to:` element
 * and per route's `from:`. */
#ifndef SLUICE_FILE_H
#define SLUICE_FILE_H

#include "connector.h"

extern const sl_connector_type sl_file_connector;

/* `connectors: NAME: { type: file, path?: P }` (sl_connector_conf.priv). */
typedef struct sl_file_conf {
    char *path; /* default path of outputs and inputs; NULL when absent */
} sl_file_conf;

/* A `to:` element or a `from:` naming a file connector (sl_output_conf.priv,
 * sl_input_conf.priv): its path, else the connector's (one is required). */
typedef struct sl_file_target {
    char *path;
} sl_file_target;

/* ---- the input side (file_input.c), called from the table in file.c ---- */

typedef struct sl_file_inputs sl_file_inputs; /* every route this connector feeds */

/* Registers route (whose `from:` names this connector) in *ins, creating
 * the set on first use, and prepares DATA_DIR/file_input/ for its position
 * file. No thread yet. Returns 0, or -1 with err (no path, no memory). */
int sl_file_input_attach(sl_file_inputs **ins, sl_connector *c, sl_route *route, sl_error *err);

/* Starts one thread per attached route: it loads the saved position and
 * tails the file. ins may be NULL. Returns -1 with err when a thread cannot
 * start. */
int sl_file_input_start(sl_file_inputs *ins, sl_error *err);

/* Stops every thread: each makes what it appended durable, saves its
 * position and exits; no append happens after this returns. ins may be
 * NULL; calling it twice is harmless. */
void sl_file_input_stop(sl_file_inputs *ins);

/* Stops (if needed) and frees the set. ins may be NULL. */
void sl_file_input_free(sl_file_inputs *ins);

#endif
