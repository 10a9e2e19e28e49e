/* A minimal blocking HTTP/1.1 client for the admin API (see
 * admin_client.h): connect with a deadline, for https:// do a TLS handshake
 * (GnuTLS) verifying the server, send one request with `Connection:
 * close`, read the answer to EOF, parse status and body. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admin_client.h"
#include "buf.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline. Returns 0, or -1 with err. */
static int wait_fd(int fd, short events, int64_t deadline, sl_error *err)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return sl_error_set(err, SL_ETIMEOUT, "the admin API did not answer in time");
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return sl_error_set(err, SL_EIO, "poll: %s", strerror(errno));
    }
}

/* One connection: a socket, and a TLS session over it for https://. */
typedef struct conn {
    int fd;
    gnutls_session_t tls;                  /* NULL: plain HTTP */
    gnutls_certificate_credentials_t cred; /* with tls */
    bool clean_eof;                        /* the answer ended with a TLS close_notify */
} conn;

/* Strips "http://" or "https://" (then *tls is set) from addr. */
static const char *strip_scheme(const char *addr, bool *tls)
{
    *tls = strncmp(addr, "https://", 8) == 0;
    if (*tls)
        return addr + 8;
    return strncmp(addr, "http://", 7) == 0 ? addr + 7 : addr;
}

/* Splits "HOST:PORT" / "[V6]:PORT" into host and port. */
static int split_addr(const char *addr, char *host, size_t cap, const char **port, sl_error *err)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t len = colon ? (size_t)(colon - addr) : 0;
    if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
        h++;
        len -= 2;
    }
    if (colon == NULL || len == 0 || len >= cap || colon[1] == '\0')
        return sl_error_set(err, SL_EINVAL, "--admin wants [https://]HOST:PORT, not '%s'", addr);
    memcpy(host, h, len);
    host[len] = '\0';
    *port = colon + 1;
    return 0;
}

/* Connects a non-blocking socket to one address of ai before deadline. */
static int connect_one(const struct addrinfo *ai, int64_t deadline, sl_error *err)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "socket: %s", strerror(errno));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        sl_error_set(err, SL_EIO, "connect: %s", strerror(errno));
        close(fd);
        return -1;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (wait_fd(fd, POLLOUT, deadline, err) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
        if (soerr != 0)
            sl_error_set(err, SL_EIO, "connect: %s", strerror(soerr));
        close(fd);
        return -1;
    }
    return fd;
}

/* Connects to addr ("HOST:PORT", no scheme) before deadline; host gets
 * the host part (cap bytes). Returns the socket, or -1 with err. */
static int connect_addr(const char *addr, char *host, size_t cap, int64_t deadline, sl_error *err)
{
    const char *port;
    sl_error_clear(err);
    if (split_addr(addr, host, cap, &port, err) != 0)
        return -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0)
        return sl_error_set(err, SL_EINVAL, "cannot resolve %s: %s", addr, gai_strerror(gai));
    int fd = -1;
    for (const struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
        fd = connect_one(ai, deadline, err);
    freeaddrinfo(res);
    if (fd < 0) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        sl_error_set(err, err->code ? err->code : SL_EIO, "cannot reach the admin API at %s: %s",
                     addr, why);
    }
    return fd;
}

/* Loads the CAs to trust (tls->cacert, or the system's) and the client
 * certificate, if any, into c->cred. Returns 0, or -1 with err. */
static int tls_credentials(conn *c, const sl_admin_tls *tls, sl_error *err)
{
    if (gnutls_certificate_allocate_credentials(&c->cred) != GNUTLS_E_SUCCESS)
        return sl_error_set(err, SL_ENOMEM, "out of memory for TLS credentials");
    const char *ca = tls != NULL ? tls->cacert : NULL;
    int n = ca != NULL ? gnutls_certificate_set_x509_trust_file(c->cred, ca, GNUTLS_X509_FMT_PEM)
                       : gnutls_certificate_set_x509_system_trust(c->cred);
    if (n <= 0)
        return sl_error_set(err, SL_EINVAL, "no CA certificate loaded from %s%s%s",
                            ca != NULL ? ca : "the system's trust store", n < 0 ? ": " : "",
                            n < 0 ? gnutls_strerror(n) : "");
    if (tls != NULL && (tls->cert != NULL) != (tls->key != NULL))
        return sl_error_set(err, SL_EINVAL, "a client certificate needs both --cert and --key");
    if (tls != NULL && tls->cert != NULL) {
        int rc =
            gnutls_certificate_set_x509_key_file(c->cred, tls->cert, tls->key, GNUTLS_X509_FMT_PEM);
        if (rc < 0)
            return sl_error_set(err, SL_EINVAL, "loading the client certificate %s and key %s: %s",
                                tls->cert, tls->key, gnutls_strerror(rc));
    }
    return 0;
}

/* Waits for the direction GnuTLS is blocked on. */
static int tls_wait(const conn *c, int64_t deadline, sl_error *err)
{
    return wait_fd(c->fd, gnutls_record_get_direction(c->tls) ? POLLOUT : POLLIN, deadline, err);
}

/* Runs the handshake on c->fd, verifying the server's certificate against
 * c->cred and host (a name, or an IP address checked against the
 * certificate's IP addresses). Returns 0, or -1 with err. */
static int tls_handshake(conn *c, const char *host, int64_t deadline, sl_error *err)
{
    unsigned char ip[16];
    if (gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK) != GNUTLS_E_SUCCESS) {
        c->tls = NULL;
        return sl_error_set(err, SL_ENOMEM, "out of memory for a TLS session");
    }
    gnutls_set_default_priority(c->tls);
    gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->cred);
    if (inet_pton(AF_INET, host, ip) != 1 && inet_pton(AF_INET6, host, ip) != 1)
        gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, host, strlen(host));
    gnutls_session_set_verify_cert(c->tls, host, 0);
    gnutls_transport_set_int(c->tls, c->fd);
    for (;;) {
        int rc = gnutls_handshake(c->tls);
        if (rc == GNUTLS_E_SUCCESS)
            return 0;
        if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
            gnutls_datum_t why = {0};
            gnutls_certificate_verification_status_print(
                gnutls_session_get_verify_cert_status(c->tls), GNUTLS_CRT_X509, &why, 0);
            sl_error_set(err, SL_EIO, "the admin API's certificate is not trusted: %s",
                         why.data != NULL ? (const char *)why.data : "unknown reason");
            gnutls_free(why.data);
            return -1;
        }
        if (gnutls_error_is_fatal(rc))
            return sl_error_set(err, SL_EIO, "TLS handshake with the admin API: %s",
                                gnutls_strerror(rc));
        if (tls_wait(c, deadline, err) != 0)
            return -1;
    }
}

/* Opens c to addr (with its scheme) before deadline: the socket, and for
 * https:// the verified TLS session. Returns 0, or -1 with err (c is then
 * for conn_close). */
static int conn_open(conn *c, const char *addr, const sl_admin_tls *tls, int64_t deadline,
                     sl_error *err)
{
    bool use_tls;
    char host[256];
    const char *hostport = strip_scheme(addr, &use_tls);
    *c = (conn){.fd = -1};
    if (use_tls && tls_credentials(c, tls, err) != 0)
        return -1;
    c->fd = connect_addr(hostport, host, sizeof host, deadline, err);
    if (c->fd < 0)
        return -1;
    return use_tls ? tls_handshake(c, host, deadline, err) : 0;
}

static void conn_close(conn *c)
{
    if (c->tls != NULL)
        gnutls_deinit(c->tls);
    if (c->cred != NULL)
        gnutls_certificate_free_credentials(c->cred);
    if (c->fd >= 0)
        close(c->fd);
}

/* Sends up to len bytes of p; returns the count, 0 when it would block, or
 * -1 with err. */
static ssize_t conn_send(conn *c, const char *p, size_t len, sl_error *err)
{
    if (c->tls != NULL) {
        ssize_t n = gnutls_record_send(c->tls, p, len);
        if (n >= 0 || n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            return n > 0 ? n : 0;
        return sl_error_set(err, SL_EIO, "TLS send: %s", gnutls_strerror((int)n));
    }
    ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return n > 0 ? n : 0;
    return sl_error_set(err, SL_EIO, "send: %s", strerror(errno));
}

/* Reads into p (cap bytes); returns the count, 0 at the end of the answer,
 * -2 when it would block, or -1 with err. */
static ssize_t conn_recv(conn *c, char *p, size_t cap, sl_error *err)
{
    if (c->tls != NULL) {
        ssize_t n = gnutls_record_recv(c->tls, p, cap);
        if (n == 0)
            c->clean_eof = true;
        if (n >= 0)
            return n;
        if (n == GNUTLS_E_PREMATURE_TERMINATION)
            return 0; /* no close_notify: the Content-Length must say the answer is whole */
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            return -2;
        return sl_error_set(err, SL_EIO, "TLS receive: %s", gnutls_strerror((int)n));
    }
    ssize_t n = recv(c->fd, p, cap, 0);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EINTR)
        return -2;
    return sl_error_set(err, SL_EIO, "recv: %s", strerror(errno));
}

/* Waits until c can move data in direction events (POLLIN/POLLOUT). */
static int conn_wait(const conn *c, short events, int64_t deadline, sl_error *err)
{
    if (c->tls != NULL && gnutls_record_check_pending(c->tls) > 0)
        return 0;
    return c->tls != NULL ? tls_wait(c, deadline, err) : wait_fd(c->fd, events, deadline, err);
}

static int send_all(conn *c, const char *p, size_t len, int64_t deadline, sl_error *err)
{
    while (len > 0) {
        ssize_t n = conn_send(c, p, len, err);
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
        if (n == 0 && conn_wait(c, POLLOUT, deadline, err) != 0)
            return -1;
    }
    return 0;
}

/* Reads until EOF into b. */
static int recv_all(conn *c, sl_buf *b, int64_t deadline, sl_error *err)
{
    for (;;) {
        if (b->len > SL_ADMIN_CLIENT_MAX_BODY)
            return sl_error_set(err, SL_EIO, "the answer exceeds %u bytes",
                                SL_ADMIN_CLIENT_MAX_BODY);
        if (!sl_buf_reserve(b, 16384))
            return sl_error_set(err, SL_ENOMEM, "out of memory reading the answer");
        ssize_t n = conn_recv(c, b->p + b->len, b->cap - b->len - 1, err);
        if (n == 0)
            return 0;
        if (n == -1)
            return -1;
        if (n > 0)
            b->len += (size_t)n;
        else if (conn_wait(c, POLLIN, deadline, err) != 0)
            return -1;
    }
}

/* Parses the status line and finds the body; honours Content-Length and
 * refuses a chunked answer (the admin API sends neither without a length).
 * need_length: the end of the stream does not prove the answer whole (TLS
 * without close_notify), so a Content-Length must. */
static int parse_answer(sl_buf *b, bool need_length, int *status, size_t *body_at, size_t *body_len,
                        sl_error *err)
{
    bool has_length = false;
    char *p = sl_buf_cstr(b);
    char *hend = p != NULL ? strstr(p, "\r\n\r\n") : NULL;
    if (hend == NULL || sscanf(p, "HTTP/1.%*c %3d", status) != 1)
        return sl_error_set(err, SL_EIO, "the admin API sent no valid HTTP answer");
    *hend = '\0';
    *body_at = (size_t)(hend + 4 - p);
    *body_len = b->len - *body_at;
    for (char *h = strstr(p, "\r\n"); h != NULL; h = strstr(h + 2, "\r\n")) {
        if (strncasecmp(h + 2, "Transfer-Encoding:", 18) == 0)
            return sl_error_set(err, SL_EIO, "the admin API sent a chunked answer");
        if (strncasecmp(h + 2, "Content-Length:", 15) == 0) {
            size_t cl = strtoul(h + 17, NULL, 10);
            if (cl > *body_len)
                return sl_error_set(err, SL_EIO, "the answer was cut short");
            *body_len = cl;
            has_length = true;
        }
    }
    if (need_length && !has_length)
        return sl_error_set(err, SL_EIO,
                            "the answer may have been cut short (no length, and "
                            "the TLS connection ended without close_notify)");
    return 0;
}

/* Formats the request head and body into b. */
static void build_request(sl_buf *b, const char *addr, const char *method, const char *path,
                          const char *token, const char *body)
{
    char line[512];
    size_t blen = body != NULL ? strlen(body) : 0;
    snprintf(line, sizeof line, "%s ", method);
    sl_buf_puts(b, line);
    sl_buf_puts(b, path);
    snprintf(line, sizeof line, " HTTP/1.1\r\nHost: %.256s\r\nConnection: close\r\n", addr);
    sl_buf_puts(b, line);
    if (token != NULL && token[0] != '\0') {
        sl_buf_puts(b, "Authorization: Bearer ");
        sl_buf_puts(b, token);
        sl_buf_puts(b, "\r\n");
    }
    if (body != NULL) {
        snprintf(line, sizeof line, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                 blen);
        sl_buf_puts(b, line);
    }
    sl_buf_puts(b, "\r\n");
    if (body != NULL)
        sl_buf_put(b, body, blen);
}

int sl_admin_request(const char *addr, const sl_admin_tls *tls, const char *method,
                     const char *path, const char *token, const char *body, int timeout_ms,
                     int *status, char **resp, size_t *resp_len, sl_error *err)
{
    int64_t deadline = now_ms() + timeout_ms;
    sl_buf req = {0}, ans = {0};
    size_t at = 0, len = 0;
    bool use_tls;
    int rc = -1;
    *resp = NULL;
    if (token != NULL && strpbrk(token, "\r\n") != NULL)
        return sl_error_set(err, SL_EINVAL, "the admin token holds a line break");
    build_request(&req, strip_scheme(addr, &use_tls), method, path, token, body);
    if (req.oom)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    conn c;
    if (conn_open(&c, addr, tls, deadline, err) == 0 &&
        send_all(&c, req.p, req.len, deadline, err) == 0 &&
        recv_all(&c, &ans, deadline, err) == 0 &&
        parse_answer(&ans, use_tls && !c.clean_eof, status, &at, &len, err) == 0) {
        memmove(ans.p, ans.p + at, len);
        ans.p[len] = '\0';
        *resp = ans.p;
        *resp_len = len;
        ans.p = NULL;
        rc = 0;
    }
    conn_close(&c);
    free(req.p);
    free(ans.p);
    return rc;
}
