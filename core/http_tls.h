/* TLS for the gateway's HTTP listeners (the http_server connector and the
 * admin API) through libmicrohttpd's own HTTPS support (GnuTLS): the `tls:`
 * config map, loading the PEM files, the daemon options, and the verified
 * client certificate of a mutual-TLS connection. No crypto of our own. */
#ifndef SLUICE_HTTP_TLS_H
#define SLUICE_HTTP_TLS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "error.h"

/* `tls: { cert, key, client_ca, min_version }`. */
typedef struct sl_tls_conf {
    char *cert;      /* PEM certificate chain file; required */
    char *key;       /* PEM private key file; required */
    char *client_ca; /* PEM CA file; set: clients must present a certificate it signed */
    bool tls13_only; /* min_version "1.3"; default "1.2" */
} sl_tls_conf;

/* The documentation of the map (for the doc tables). */
extern const sl_conf_doc sl_tls_doc[];

/* Reads map.tls (path names map) into a pool-allocated *out; *out stays
 * NULL when absent. Errors are recorded on r. */
void sl_tls_parse(sl_conf_reader *r, const sl_node *map, const char *path, sl_tls_conf **out);

/* A listener's TLS material, read from the files at start (a SIGHUP reload
 * starts a new generation, which reads them again). */
typedef struct sl_tls sl_tls;

/* Reads the files of c. NULL with err naming the file on failure. */
sl_tls *sl_tls_load(const sl_tls_conf *c, sl_error *err);
void sl_tls_free(sl_tls *t);

/* Fills opts (at least 6 items) with the daemon options for t, ending with
 * MHD_OPTION_END; pass them with MHD_OPTION_ARRAY and add MHD_USE_TLS to
 * the flags. */
void sl_tls_mhd_options(const sl_tls *t, struct MHD_OptionItem *opts);

/* True when t asks clients for a certificate (client_ca set). */
bool sl_tls_mutual(const sl_tls *t);

/* For a mutual-TLS listener: checks conn's client certificate against
 * client_ca (signature chain, validity dates). Returns 0 with its subject
 * DN ("CN=orders,O=Acme") in subject, or -1 with why ("no client
 * certificate", "certificate expired", ...) in subject. */
int sl_tls_client_subject(struct MHD_Connection *conn, char *subject, size_t cap);

#endif
