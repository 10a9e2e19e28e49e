/* TLS for the gateway's HTTP listeners (the http_server connector and the
 * admin API) through libmicrohttpd's own HTTPS support (GnuTLS): the `tls:`
 * config map, the credential sets read from the PEM files (swapped by a
 * SIGHUP reload while connections stay open), the daemon options, and the
 * verified client certificate of a mutual-TLS connection. No crypto of our
 * own. */
#ifndef SLUICE_HTTP_TLS_H
#define SLUICE_HTTP_TLS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "error.h"
#include "metrics.h"

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

/* A listener's TLS: the credential set (certificate, key, client CAs, as
 * GnuTLS credentials) that new connections get. Sluice owns the sets, not
 * libmicrohttpd: each connection is handed the current set when it opens
 * (sl_tls_conn_start) and keeps it until it closes, so a reload swaps the
 * set without touching the daemon or its open connections. */
typedef struct sl_tls sl_tls;
typedef struct sl_tls_set sl_tls_set;

/* Reads the files of c (and checks that they parse and that the key matches
 * the certificate). NULL with err naming the file on failure. */
sl_tls *sl_tls_load(const sl_tls_conf *c, sl_error *err);

/* Reads the files of c again; when they are good, new connections get them
 * and connections already open keep the set they had. When they are not,
 * the running set stays and -1 is returned with err saying why. Thread-safe
 * against sl_tls_conn_start. */
int sl_tls_reload(sl_tls *t, const sl_tls_conf *c, sl_error *err);

/* Frees t (NULL is fine). A set still held by a connection is freed by its
 * sl_tls_conn_end. sl_tls_drop is the same with a void * (for handing t over
 * a reload). */
void sl_tls_free(sl_tls *t);
void sl_tls_drop(void *t);

/* Fills opts (at least 4 items) with the daemon options for t, ending with
 * MHD_OPTION_END; pass them with MHD_OPTION_ARRAY and add MHD_USE_TLS to
 * the flags. They only start MHD's TLS: the credentials a connection uses
 * are set by sl_tls_conn_start. */
void sl_tls_mhd_options(const sl_tls *t, struct MHD_OptionItem *opts);

/* True when t's current set asks clients for a certificate (client_ca set).
 * False for NULL. */
bool sl_tls_mutual(sl_tls *t);

/* Counts every client certificate refused in the handshake in c (may be
 * NULL; c must outlive t's connections). Call before the daemon starts or
 * any time after (atomic). */
void sl_tls_count_refused(sl_tls *t, sl_counter *c);

/* From MHD's MHD_CONNECTION_NOTIFY_STARTED (before the TLS handshake):
 * gives conn's TLS session t's current set and min_version and, when
 * client_ca is set, asks for a client certificate: with require a client
 * without one fails the handshake; without, it completes it (and the
 * per-request check refuses it). With client_ca, a certificate that does
 * not verify against it (signature chain, dates) fails the handshake
 * either way (counted, sl_tls_count_refused). Returns the set, to be passed to
 * sl_tls_conn_end once the connection is closed (MHD_CONNECTION_NOTIFY_
 * CLOSED); NULL when t is NULL or conn is not a TLS connection. */
sl_tls_set *sl_tls_conn_start(sl_tls *t, struct MHD_Connection *conn, bool require);
void sl_tls_conn_end(sl_tls_set *set);

/* For a mutual-TLS listener: checks conn's client certificate against
 * client_ca (signature chain, validity dates). Returns 0 with its subject
 * DN ("CN=orders,O=Acme") in subject, or -1 with why ("no client
 * certificate", "certificate expired", ...) in subject. */
int sl_tls_client_subject(struct MHD_Connection *conn, char *subject, size_t cap);

#endif
