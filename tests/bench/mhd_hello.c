/* The HTTP ceiling of tests/bench/ingest_ratio.sh: libmicrohttpd's hello
 * world, configured like Sluice's http_server listener (epoll thread pool of
 * the same size, turbo, suspend/resume, the same per-connection memory and
 * listen backlog). It reads the request body, keeps nothing, and answers 202
 * with a small JSON body. Usage: mhd_hello PORT; runs until SIGTERM/SIGINT. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HELLO_POOL_THREADS 2 /* HS_POOL_THREADS in connectors/http_server.c */
#ifndef HELLO_CONN_MEMORY
#define HELLO_CONN_MEMORY (16 * 1024) /* HS_CONN_MEMORY */
#endif
#define HELLO_BACKLOG 1024 /* sl_httpd_listen_socket's backlog in hs_start */

static const char hello_body[] =
    "{\"id\":\"hello\",\"route\":\"orders\",\"partition\":0,\"offset\":0}";
static volatile sig_atomic_t hello_stop;

static void on_signal(int sig)
{
    (void)sig;
    hello_stop = 1;
}

/* Discards the body; answers 202 once it is all in. */
static enum MHD_Result hello(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_data_size, void **con_cls)
{
    static int first;
    (void)cls, (void)url, (void)method, (void)version, (void)upload_data;
    if (*con_cls == NULL) {
        *con_cls = &first;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof hello_body - 1, (void *)hello_body, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, 202, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* A listening socket on 127.0.0.1:port with Sluice's backlog, or -1. */
static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, HELLO_BACKLOG) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mhd_hello PORT\n");
        return 2;
    }
    int fd = listen_on(atoi(argv[1]));
    if (fd < 0) {
        perror("mhd_hello: listen");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, hello, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HELLO_POOL_THREADS, MHD_OPTION_CONNECTION_TIMEOUT,
        120u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HELLO_CONN_MEMORY, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "mhd_hello: cannot start the daemon\n");
        return 1;
    }
    while (!hello_stop)
        pause();
    MHD_stop_daemon(d);
    return 0;
}
