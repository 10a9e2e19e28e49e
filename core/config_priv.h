/* Internals shared by the configuration loader's files (config.c, config_yaml.c,
 * config_schema.c): the allocation pool that owns a loaded config, the error
 * list, and the load context. Not for use outside core/config*.c. */
#ifndef SLUICE_CONFIG_PRIV_H
#define SLUICE_CONFIG_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* One error, kept with its place so that the list can be put in file order. */
typedef struct sl_conf_err {
    size_t file_idx;
    int line;
    int col;
    size_t seq;
    char *text; /* "FILE:LINE:COL: message", malloc'd */
} sl_conf_err;

/* The state of one sl_config_load: the pool, the files read (main first, then
 * includes in the order read) and the errors found so far. */
typedef struct sl_conf_ctx {
    sl_pool *pool;
    const char **files; /* pool strings; malloc'd array */
    size_t n_files;
    sl_conf_err *errs; /* malloc'd */
    size_t n_errs;
    size_t cap_errs;
    bool errs_oom; /* an error could not be recorded */
    /* May accept an unset ${VAR} (sl_config_load_env); NULL: an error. */
    sl_config_unset_fn unset_fn;
    void *unset_arg;
    /* Warnings ("FILE:LINE:COL: warning: ..."), pool strings; they do not
     * fail the load and go to sl_config.warnings. */
    char *warn[16];
    size_t n_warn;
} sl_conf_ctx;

/* Records the error "FILE:LINE:COL: message" at pos ("FILE: message" when
 * pos.line is 0). Never fails: on allocation failure it sets errs_oom. */
void sl_conf_error(sl_conf_ctx *c, sl_conf_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses the YAML file named file (a string owned by c->pool) into a node
 * tree allocated from c->pool, with ${VAR} expansion in scalar values.
 * Returns the root node, or NULL when the file is empty or cannot be parsed;
 * every problem found is recorded in c. */
sl_node *sl_conf_parse_file(sl_conf_ctx *c, const char *file);

/* Expands ${VAR}, ${VAR:-default} and $$ in raw. Returns a pool string, or
 * NULL after recording an error at pos (unset variable, bad reference) or on
 * allocation failure. */
char *sl_conf_expand_env(sl_conf_ctx *c, const char *raw, sl_conf_pos pos);

/* Validates the roots (roots[0] from the main file, the others from
 * includes; a NULL root is an empty file) against the schema and fills cfg's
 * typed fields, allocating from c->pool. Records every error in c. */
void sl_conf_validate(sl_conf_ctx *c, sl_config *cfg, sl_node *const *roots, size_t n_roots);

#endif
