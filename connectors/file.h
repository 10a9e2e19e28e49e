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

#endif
