/* TLS for the HTTP listeners: the `tls:` map, the PEM files read into
 * GnuTLS credential sets that Sluice hands to each connection (so that a
 * reload swaps them under a running daemon), libmicrohttpd's HTTPS options,
 * and the check of a mutual-TLS client's certificate (GnuTLS verifies the
 * chain against client_ca and the dates). */
#include "http_tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TLS_FILE_MAX (1 << 20)

static const char *const TLS_KEYS[] = {"cert", "key", "client_ca", "min_version", NULL};
static const char *const VERSIONS[] = {"1.2", "1.3", NULL};

const sl_conf_doc sl_tls_doc[] = {
    SL_DOC_REQ("cert", "string", "PEM file: the server certificate (and its chain)"),
    SL_DOC_REQ("key", "string", "PEM file: the certificate's private key"),
    SL_DOC("client_ca", "string", NULL,
           "PEM file of CAs: turns on mutual TLS; a client certificate not signed by one of "
           "them or out of its dates fails the TLS handshake, and so does a client without a "
           "certificate (the admin listener: gets 401, except /health and /ready); the subject "
           "is available to `mtls` auth and as the x-client-subject header"),
    SL_DOC("min_version", "enum:1.2|1.3", "1.2", "oldest TLS version accepted"), SL_DOC_END};

/* One credential set: a certificate, its key and the client CAs, as GnuTLS
 * credentials. Shared by the connections that were handed it (refs); the
 * last one to let go frees it. */
struct sl_tls_set {
    gnutls_certificate_credentials_t cred;
    bool mutual;            /* client_ca set: a client certificate is required */
    const char *priorities; /* GnuTLS priority string for min_version */
    gnutls_priority_t prio; /* the same, parsed once */
    atomic_int refs;
};

/* A listener's TLS: the set new connections get, swapped by a reload. */
struct sl_tls {
    pthread_mutex_t mu;
    sl_tls_set *cur;
    sl_counter *_Atomic refused; /* client certificates refused in the handshake */
    char *cert, *key;            /* the first set's PEM text, for MHD's own start-up options */
    const char *priorities;
};

/* Records an error at map.key when file cannot be read (so that `sluice
 * check` finds it; the contents are checked when the listener starts). */
static void check_readable(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                           const char *file)
{
    if (access(file, R_OK) != 0)
        sl_conf_error_at(r, sl_conf_value(map, key)->pos, "%s.%s: cannot read %s: %s", path, key,
                         file, strerror(errno));
}

void sl_tls_parse(sl_conf_reader *r, const sl_node *map, const char *path, sl_tls_conf **out)
{
    const sl_node *n = sl_conf_value(map, "tls");
    char p[SL_CONF_PATH_LEN];
    if (n == NULL)
        return;
    sl_conf_path_key(p, path, "tls");
    if (!sl_conf_want_map(r, n, p))
        return;
    sl_conf_check_keys(r, n, p, TLS_KEYS);
    sl_tls_conf *c = sl_pool_alloc(sl_conf_pool(r), sizeof *c);
    if (c == NULL)
        return;
    if (sl_conf_need_str(r, n, "cert", p, &c->cert))
        check_readable(r, n, "cert", p, c->cert);
    if (sl_conf_need_str(r, n, "key", p, &c->key))
        check_readable(r, n, "key", p, c->key);
    if (sl_conf_str(r, n, "client_ca", p, &c->client_ca))
        check_readable(r, n, "client_ca", p, c->client_ca);
    int v = 0;
    if (sl_conf_enum(r, n, "min_version", p, VERSIONS, &v))
        c->tls13_only = v == 1;
    *out = c;
}

/* Reads path into a malloc'd NUL-terminated string. */
static char *read_pem(const char *what, const char *path, sl_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        sl_error_set(err, SL_ECONFIG, "tls.%s: cannot read %s: %s", what, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(TLS_FILE_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, TLS_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (buf == NULL || n == 0 || n > TLS_FILE_MAX) {
        free(buf);
        sl_error_set(err, SL_ECONFIG, "tls.%s: %s is empty, too large or unreadable", what, path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* Checks that the PEM text cert holds a certificate chain GnuTLS can read
 * (done first because gnutls_certificate_set_x509_key_mem2 of GnuTLS 3.7.9
 * leaks when the certificate does not parse). Returns 0, or -1 with err. */
static int check_chain(const char *cert, const sl_tls_conf *c, sl_error *err)
{
    gnutls_datum_t cd = {(unsigned char *)cert, (unsigned)strlen(cert)};
    gnutls_x509_crt_t *list = NULL;
    unsigned n = 0;
    int rc = gnutls_x509_crt_list_import2(&list, &n, &cd, GNUTLS_X509_FMT_PEM, 0);
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
    if (rc < 0)
        return sl_error_set(err, SL_ECONFIG, "tls.cert: %s: %s", c->cert, gnutls_strerror(rc));
    return 0;
}

/* Builds the GnuTLS credentials of cert + key (+ ca) into *out. Returns 0,
 * or -1 with err naming the file when one does not parse or the key does
 * not match the certificate. */
static int make_cred(const char *cert, const char *key, const char *ca, const sl_tls_conf *c,
                     gnutls_certificate_credentials_t *out, sl_error *err)
{
    gnutls_certificate_credentials_t cred;
    if (check_chain(cert, c, err) != 0)
        return -1;
    if (gnutls_certificate_allocate_credentials(&cred) != 0)
        return sl_error_set(err, SL_ENOMEM, "tls: out of memory");
    gnutls_datum_t cd = {(unsigned char *)cert, (unsigned)strlen(cert)};
    gnutls_datum_t kd = {(unsigned char *)key, (unsigned)strlen(key)};
    int rc = gnutls_certificate_set_x509_key_mem2(cred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        gnutls_certificate_free_credentials(cred);
        return sl_error_set(err, SL_ECONFIG, "tls: %s and %s: %s", c->cert, c->key,
                            gnutls_strerror(rc));
    }
    if (ca != NULL) {
        gnutls_datum_t ad = {(unsigned char *)ca, (unsigned)strlen(ca)};
        rc = gnutls_certificate_set_x509_trust_mem(cred, &ad, GNUTLS_X509_FMT_PEM);
        if (rc <= 0) {
            gnutls_certificate_free_credentials(cred);
            return sl_error_set(err, SL_ECONFIG, "tls.client_ca: %s: %s", c->client_ca,
                                rc == 0 ? "no certificate" : gnutls_strerror(rc));
        }
    }
    *out = cred;
    return 0;
}

/* Frees a PEM text, wiping it first (it may be a private key). */
static void free_pem(char *pem)
{
    if (pem != NULL)
        memset(pem, 0, strlen(pem));
    free(pem);
}

/* Reads the files of c into a new set (one ref, the caller's). On success
 * the PEM texts of cert and key are moved to *cert and *key when those are
 * not NULL (else wiped and freed). NULL with err on failure. */
static sl_tls_set *set_load(const sl_tls_conf *c, char **cert, char **key, sl_error *err)
{
    char *cp = NULL, *kp = NULL, *ap = NULL;
    sl_tls_set *set = calloc(1, sizeof *set);
    if (set == NULL) {
        sl_error_set(err, SL_ENOMEM, "tls: out of memory");
        return NULL;
    }
    set->mutual = c->client_ca != NULL;
    set->priorities = c->tls13_only ? "NORMAL:-VERS-ALL:+VERS-TLS1.3"
                                    : "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
    atomic_init(&set->refs, 1);
    if ((cp = read_pem("cert", c->cert, err)) == NULL ||
        (kp = read_pem("key", c->key, err)) == NULL ||
        (c->client_ca != NULL && (ap = read_pem("client_ca", c->client_ca, err)) == NULL) ||
        make_cred(cp, kp, ap, c, &set->cred, err) != 0) {
        free(set);
        set = NULL;
    } else if (gnutls_priority_init(&set->prio, set->priorities, NULL) < 0) {
        sl_error_set(err, SL_ENOMEM, "tls: cannot set up the priorities");
        gnutls_certificate_free_credentials(set->cred);
        free(set);
        set = NULL;
    }
    free(ap);
    if (set != NULL && cert != NULL && key != NULL) {
        *cert = cp;
        *key = kp;
        return set;
    }
    free(cp);
    free_pem(kp);
    return set;
}

static void set_unref(sl_tls_set *set)
{
    if (set != NULL && atomic_fetch_sub(&set->refs, 1) == 1) {
        gnutls_certificate_free_credentials(set->cred);
        gnutls_priority_deinit(set->prio);
        free(set);
    }
}

sl_tls *sl_tls_load(const sl_tls_conf *c, sl_error *err)
{
    sl_tls *t = calloc(1, sizeof *t);
    if (t == NULL) {
        sl_error_set(err, SL_ENOMEM, "tls: out of memory");
        return NULL;
    }
    t->cur = set_load(c, &t->cert, &t->key, err);
    if (t->cur == NULL) {
        free(t);
        return NULL;
    }
    t->priorities = t->cur->priorities;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

int sl_tls_reload(sl_tls *t, const sl_tls_conf *c, sl_error *err)
{
    sl_tls_set *set = set_load(c, NULL, NULL, err);
    if (set == NULL)
        return -1;
    pthread_mutex_lock(&t->mu);
    sl_tls_set *old = t->cur;
    t->cur = set;
    pthread_mutex_unlock(&t->mu);
    set_unref(old); /* freed now, or by the last connection that holds it */
    return 0;
}

void sl_tls_free(sl_tls *t)
{
    if (t == NULL)
        return;
    set_unref(t->cur);
    free(t->cert);
    free_pem(t->key);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void sl_tls_drop(void *t)
{
    sl_tls_free(t);
}

void sl_tls_mhd_options(const sl_tls *t, struct MHD_OptionItem *opts)
{
    size_t i = 0;
    opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, t->cert};
    opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, t->key};
    opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)t->priorities};
    opts[i] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
}

bool sl_tls_mutual(sl_tls *t)
{
    if (t == NULL)
        return false;
    pthread_mutex_lock(&t->mu);
    bool mutual = t->cur->mutual;
    pthread_mutex_unlock(&t->mu);
    return mutual;
}

void sl_tls_count_refused(sl_tls *t, sl_counter *c)
{
    atomic_store(&t->refused, c);
}

/* GnuTLS's check of the client's certificate, in the handshake (after the
 * client's Certificate message; TLS 1.2 and 1.3): one that does not verify
 * against client_ca (signature chain, validity dates) fails the handshake
 * and is counted. None at all passes here (GNUTLS_CERT_REQUIRE has refused
 * it already where one is required; elsewhere the per-request check
 * answers). The session's db pointer is t (set by sl_tls_conn_start). */
static int verify_client(gnutls_session_t s)
{
    unsigned status = 0;
    if (gnutls_certificate_get_peers(s, NULL) == NULL)
        return 0;
    if (gnutls_certificate_verify_peers2(s, &status) == 0 && status == 0)
        return 0;
    sl_tls *t = gnutls_db_get_ptr(s);
    if (t != NULL)
        sl_counter_add(atomic_load(&t->refused), 1);
    return -1;
}

sl_tls_set *sl_tls_conn_start(sl_tls *t, struct MHD_Connection *conn, bool require)
{
    const union MHD_ConnectionInfo *ci =
        t != NULL ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION) : NULL;
    if (ci == NULL || ci->tls_session == NULL)
        return NULL;
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    pthread_mutex_lock(&t->mu);
    sl_tls_set *set = t->cur;
    atomic_fetch_add(&set->refs, 1);
    pthread_mutex_unlock(&t->mu);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, set->cred);
    gnutls_priority_set(s, set->prio);
    /* GnuTLS reads this when it sends the CertificateRequest and when the
     * client's Certificate arrives (TLS 1.2 and 1.3): with REQUIRE an empty
     * one fails the handshake. (MHD set REQUEST only when it was given
     * MHD_OPTION_HTTPS_MEM_TRUST, which it no longer is.) */
    gnutls_certificate_server_set_request(s, !set->mutual ? GNUTLS_CERT_IGNORE
                                             : require    ? GNUTLS_CERT_REQUIRE
                                                          : GNUTLS_CERT_REQUEST);
    if (set->mutual) {
        /* libmicrohttpd keeps the session's own pointer for itself and
         * uses no session cache, so the cache's pointer carries t */
        gnutls_db_set_ptr(s, t);
        gnutls_session_set_verify_function(s, verify_client);
    }
    return set;
}

void sl_tls_conn_end(sl_tls_set *set)
{
    set_unref(set);
}

/* The subject DN of the peer's first certificate into out. */
static int peer_dn(gnutls_session_t s, char *out, size_t cap)
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    gnutls_x509_crt_t crt;
    gnutls_datum_t dn = {NULL, 0};
    if (certs == NULL || n == 0 || gnutls_x509_crt_init(&crt) != 0)
        return -1;
    int rc = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER);
    if (rc == 0)
        rc = gnutls_x509_crt_get_dn3(crt, &dn, 0);
    gnutls_x509_crt_deinit(crt);
    if (rc != 0)
        return -1;
    snprintf(out, cap, "%.*s", (int)dn.size, (const char *)dn.data);
    gnutls_free(dn.data);
    return 0;
}

int sl_tls_client_subject(struct MHD_Connection *conn, char *subject, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || ci->tls_session == NULL) {
        snprintf(subject, cap, "not a TLS connection");
        return -1;
    }
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    unsigned status = 0;
    int rc = gnutls_certificate_verify_peers2(s, &status);
    if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND || gnutls_certificate_get_peers(s, NULL) == NULL) {
        snprintf(subject, cap, "no client certificate");
        return -1;
    }
    if (rc != 0 || status != 0) {
        gnutls_datum_t why = {NULL, 0};
        if (rc == 0 &&
            gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) == 0) {
            snprintf(subject, cap, "client certificate refused: %s", (const char *)why.data);
            gnutls_free(why.data);
        } else {
            snprintf(subject, cap, "client certificate refused: %s", gnutls_strerror(rc));
        }
        return -1;
    }
    if (peer_dn(s, subject, cap) != 0) {
        snprintf(subject, cap, "client certificate without a readable subject");
        return -1;
    }
    return 0;
}
