/* The `set` step's settings (transforms/set.c): headers to set and JSON
 * fields to set, as written under `set:`. */
#ifndef SLUICE_SET_H
#define SLUICE_SET_H

#include <stddef.h>

#include "step.h"

/* `- set: { headers: {NAME: VALUE}, fields: {"$.a.b": VALUE} }`
 * (sl_step_conf.priv). */
typedef struct sl_set_conf {
    sl_kv *set_headers;
    size_t n_set_headers;
    sl_kv *set_fields;
    size_t n_set_fields;
} sl_set_conf;

#endif
