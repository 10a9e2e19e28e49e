/* The libraries that layers outside core link, named by those layers, for
 * `sluice version` (core itself never includes their headers). */
#ifndef SLUICE_VERSION_H
#define SLUICE_VERSION_H

typedef struct sl_lib_version {
    const char *name;    /* "lua" */
    const char *version; /* "Lua 5.4.4" */
} sl_lib_version;

/* The libraries of transforms/ (defined in transforms/versions.c), ending
 * with an entry whose name is NULL. */
extern const sl_lib_version sl_transforms_lib_versions[];

#endif
