/* A minimal blocking HTTP/1.1 client for the admin API (see
 * admin_client.h): connect with a deadline, send one request with
 * `Connection: close`, read the answer to EOF, parse status and body. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
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
        return sl_error_set(err, SL_EINVAL, "--admin wants HOST:PORT, not '%s'", addr);
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

static int connect_addr(const char *addr, int64_t deadline, sl_error *err)
{
    char host[256];
    const char *port;
    sl_error_clear(err);
    if (split_addr(addr, host, sizeof host, &port, err) != 0)
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

static int send_all(int fd, const char *p, size_t len, int64_t deadline, sl_error *err)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline, err) != 0)
                return -1;
        } else {
            return sl_error_set(err, SL_EIO, "send: %s", strerror(errno));
        }
    }
    return 0;
}

/* Reads until EOF into b. */
static int recv_all(int fd, sl_buf *b, int64_t deadline, sl_error *err)
{
    for (;;) {
        if (b->len > SL_ADMIN_CLIENT_MAX_BODY)
            return sl_error_set(err, SL_EIO, "the answer exceeds %u bytes",
                                SL_ADMIN_CLIENT_MAX_BODY);
        if (!sl_buf_reserve(b, 16384))
            return sl_error_set(err, SL_ENOMEM, "out of memory reading the answer");
        ssize_t n = recv(fd, b->p + b->len, b->cap - b->len - 1, 0);
        if (n == 0)
            return 0;
        if (n > 0)
            b->len += (size_t)n;
        else if (errno == EAGAIN || errno == EINTR) {
            if (wait_fd(fd, POLLIN, deadline, err) != 0)
                return -1;
        } else
            return sl_error_set(err, SL_EIO, "recv: %s", strerror(errno));
    }
}

/* Parses the status line and finds the body; honours Content-Length and
 * refuses a chunked answer (the admin API sends neither without a length). */
static int parse_answer(sl_buf *b, int *status, size_t *body_at, size_t *body_len, sl_error *err)
{
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
        }
    }
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

int sl_admin_request(const char *addr, const char *method, const char *path, const char *token,
                     const char *body, int timeout_ms, int *status, char **resp, size_t *resp_len,
                     sl_error *err)
{
    int64_t deadline = now_ms() + timeout_ms;
    sl_buf req = {0}, ans = {0};
    size_t at = 0, len = 0;
    int rc = -1;
    *resp = NULL;
    if (token != NULL && strpbrk(token, "\r\n") != NULL)
        return sl_error_set(err, SL_EINVAL, "the admin token holds a line break");
    build_request(&req, addr, method, path, token, body);
    if (req.oom)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    int fd = connect_addr(addr, deadline, err);
    if (fd < 0)
        goto cleanup;
    if (send_all(fd, req.p, req.len, deadline, err) == 0 &&
        recv_all(fd, &ans, deadline, err) == 0 && parse_answer(&ans, status, &at, &len, err) == 0) {
        memmove(ans.p, ans.p + at, len);
        ans.p[len] = '\0';
        *resp = ans.p;
        *resp_len = len;
        ans.p = NULL;
        rc = 0;
    }
    close(fd);
cleanup:
    free(req.p);
    free(ans.p);
    return rc;
}
