/* The libraries that layers outside core link, named by those layers, for
 * `sluice version` (core itself never includes their headers). */
#ifndef SLUICE_VERSION_H
#define SLUICE_VERSION_H

typedef struct sl_lib_version {
    const char *name;    /* "lua" */
    const char *version; /* "Lua 5.4.4" */
} sl_lib_version;

/* The libraries of connectors/ (defined in connectors/versions.c): libcurl,
 * libmicrohttpd, librdkafka, rabbitmq-c, as the linked libraries report them
 * at run time; ends with an entry whose name is NULL. The table is static
 * (refilled on each call): call from one thread. */
const sl_lib_version *sl_connectors_lib_versions(void);

/* The libraries of transforms/ (defined in transforms/versions.c), ending
 * with an entry whose name is NULL. */
extern const sl_lib_version sl_transforms_lib_versions[];

#endif
