/* The `filter` step's settings (transforms/filter.c): the Lua expression
 * written under `filter:`. */
#ifndef SLUICE_FILTER_H
#define SLUICE_FILTER_H

#include "step.h"

/* `- filter: EXPR` (sl_step_conf.priv). */
typedef struct sl_filter_conf {
    char *expr; /* not empty */
} sl_filter_conf;

#endif
