/* HTTP listener helpers of core, shared by the admin API (core/admin.c) and
 * the http_server input connector: listen addresses and sockets, RFC 3339
 * timestamps and a constant-time secret comparison. */
#include "http_util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- listen addresses ---------------------------------------------------- */

/* Splits where ("[IPV6]:PORT" or "HOST:PORT") into host (cap bytes) and
 * *port (a pointer into where). Returns -1 with err set (SL_EINVAL). */
static int split_listen(const char *where, char *host, size_t cap, const char **port, sl_error *err)
{
    if (where[0] == '[') {
        const char *close_br = strchr(where, ']');
        if (close_br == NULL || close_br[1] != ':')
            return sl_error_set(err, SL_EINVAL, "listen address \"%s\": expected [IPV6]:PORT",
                                where);
        size_t hl = (size_t)(close_br - where - 1);
        if (hl == 0 || hl >= cap)
            return sl_error_set(err, SL_EINVAL, "listen address \"%s\": bad host", where);
        memcpy(host, where + 1, hl);
        host[hl] = '\0';
        *port = close_br + 2;
        return 0;
    }
    const char *colon = strrchr(where, ':');
    if (colon == NULL)
        return sl_error_set(err, SL_EINVAL, "listen address \"%s\": expected HOST:PORT", where);
    if (memchr(where, ':', (size_t)(colon - where)) != NULL)
        return sl_error_set(err, SL_EINVAL,
                            "listen address \"%s\": write IPv6 hosts as [HOST]:PORT", where);
    size_t hl = (size_t)(colon - where);
    if (hl >= cap)
        return sl_error_set(err, SL_EINVAL, "listen address \"%s\": host too long", where);
    memcpy(host, where, hl);
    host[hl] = '\0';
    *port = colon + 1;
    return 0;
}

/* Resolves host ("" or "*": any IPv4 address) and the numeric port into
 * addr and *len. Returns -1 with err set (SL_EINVAL). */
static int resolve_listen(const char *where, const char *host, const char *port,
                          struct sockaddr_storage *addr, socklen_t *len, sl_error *err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_family = AF_UNSPEC;
    const char *h = host;
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        h = NULL;
        hints.ai_family = AF_INET;
    }
    int rc = getaddrinfo(h, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        if (res != NULL)
            freeaddrinfo(res);
        return sl_error_set(err, SL_EINVAL, "listen address \"%s\": %s", where,
                            rc != 0 ? gai_strerror(rc) : "no address");
    }
    if (res->ai_addrlen > sizeof *addr) {
        freeaddrinfo(res);
        return sl_error_set(err, SL_EINVAL, "listen address \"%s\": address too long", where);
    }
    memset(addr, 0, sizeof *addr);
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int sl_httpd_parse_listen(const char *where, struct sockaddr_storage *addr, socklen_t *len,
                          sl_error *err)
{
    char host[256];
    const char *port;
    if (where == NULL || *where == '\0')
        return sl_error_set(err, SL_EINVAL, "empty listen address");
    if (split_listen(where, host, sizeof host, &port, err) != 0)
        return -1;
    char *end = NULL;
    errno = 0;
    long pn = strtol(port, &end, 10);
    if (*port == '\0' || !isdigit((unsigned char)*port) || end == NULL || *end != '\0' ||
        errno != 0 || pn < 0 || pn > 65535)
        return sl_error_set(err, SL_EINVAL, "listen address \"%s\": bad port \"%s\"", where, port);
    return resolve_listen(where, host, port, addr, len, err);
}

int sl_httpd_listen_socket(const char *where, int backlog, sl_error *err)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    if (sl_httpd_parse_listen(where, &ss, &sl, err) != 0)
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "cannot listen on %s: socket: %s", where, strerror(errno));
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6) {
        int zero = 0;
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (bind(fd, (const struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        close(fd);
        return sl_error_set(err, SL_EIO, "cannot bind %s: %s", where, strerror(e));
    }
    if (listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        return sl_error_set(err, SL_EIO, "cannot listen on %s: %s", where, strerror(e));
    }
    return fd;
}

void sl_httpd_sockname(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port;
    if (cap == 0)
        return;
    out[0] = '\0';
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%u", host, port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%u", host, port);
    }
}
/* ---- RFC 3339 ------------------------------------------------------------ */

static int num(const char *s, int n, int *out)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (s[i] - '0');
    }
    *out = x;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int sl_httpd_parse_rfc3339(const char *s, int64_t *ms_out)
{
    int y, mo, d, h, mi, sec;
    if (s == NULL || strlen(s) < 20)
        return -1;
    if (num(s, 4, &y) || s[4] != '-' || num(s + 5, 2, &mo) || s[7] != '-' || num(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || num(s + 11, 2, &h) || s[13] != ':' ||
        num(s + 14, 2, &mi) || s[16] != ':' || num(s + 17, 2, &sec))
        return -1;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 ||
        sec > 60)
        return -1;
    const char *p = s + 19;
    int64_t ms = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 3)
                ms = ms * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0)
            return -1;
        for (int i = nd; i < 3; i++)
            ms *= 10;
    }
    int64_t off_min = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        off_min = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (num(p + 1, 2, &oh) || num(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        off_min = (int64_t)oh * 60 + om;
        if (*p == '-')
            off_min = -off_min;
    } else {
        return -1;
    }
    int64_t days = days_from_civil(y, mo, d);
    int64_t secs = days * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec - off_min * 60;
    *ms_out = secs * 1000 + ms;
    return 0;
}
/* ---- comparison ----------------------------------------------------------- */

bool sl_httpd_secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    volatile unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++) {
        unsigned char ca = i < alen ? (unsigned char)a[i] : 0;
        diff |= (unsigned char)(ca ^ (unsigned char)b[i]);
    }
    return diff == 0;
}
