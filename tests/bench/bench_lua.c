/* Benchmark: the per-message cost of a Lua step that reads two fields of a
 * 250-byte JSON body and sets one (decode, call, encode, set the body), and
 * of a `when:` expression on a header. Prints microseconds per message:
 * wall clock, and the thread's CPU time (steadier on a shared machine). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lua_expr.h"
#include "lua_host.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char SCRIPT[] =
    "function step(msg, ctx)\n"
    "  local o = msg:json()\n"
    "  local tier = o.customer.tier\n"
    "  local total = o.total\n"
    "  o.priority = (tier == 'gold' and total > 100) and 'high' or 'normal'\n"
    "  msg:set_json(o)\n"
    "  return msg\n"
    "end\n";

static const char BODY[] =
    "{\"id\":\"ord-000123\",\"customer\":{\"id\":\"c-42\",\"tier\":\"gold\",\"name\":\"Ada "
    "Lovelace\"},\"items\":[{\"sku\":\"A-1\",\"qty\":2,\"price\":19.99},{\"sku\":\"B-22\","
    "\"qty\":1,\"price\":5.5}],\"currency\":\"EUR\",\"total\":145.48,\"channel\":\"web\","
    "\"created\":\"2024-05-01T12:00:00Z\",\"notes\":\"leave at the door\"}";

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    char path[] = "/tmp/sl_bench_lua_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, SCRIPT, strlen(SCRIPT)) != (ssize_t)strlen(SCRIPT))
        return 1;
    close(fd);
    sl_lua_opts o = {.route = "bench"};
    sl_error err;
    sl_lua_host *h = sl_lua_host_new(&o, &err);
    if (!h || sl_lua_host_load_script(h, path, "bench.lua", "step", &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    unlink(path);
    sl_msg *m = sl_msg_new();
    if (!m)
        return 1;
    for (long i = 0; i < n / 10; i++) { /* warm up */
        sl_msg_set_body(m, BODY, strlen(BODY));
        sl_lua_host_run_step(h, m, &err);
    }
    double t0 = now_s(), c0 = cpu_s();
    for (long i = 0; i < n; i++) {
        if (sl_msg_set_body(m, BODY, strlen(BODY)) < 0 ||
            sl_lua_host_run_step(h, m, &err) != SL_STEP_OK) {
            fprintf(stderr, "step failed: %s\n", err.msg);
            return 1;
        }
    }
    double step_us = (now_s() - t0) / (double)n * 1e6;
    double step_cpu_us = (cpu_s() - c0) / (double)n * 1e6;
    /* the same loop without the step: what setting the body costs */
    t0 = now_s();
    for (long i = 0; i < n; i++)
        sl_msg_set_body(m, BODY, strlen(BODY));
    double base_us = (now_s() - t0) / (double)n * 1e6;

    sl_lua_expr *e = sl_lua_expr_compile("msg.headers['x-tier'] == 'gold'", NULL, &err);
    sl_msg_set_header(m, "x-tier", "gold", 4);
    bool r;
    t0 = now_s();
    for (long i = 0; i < n; i++)
        sl_lua_expr_eval(e, m, &r, &err);
    double when_us = (now_s() - t0) / (double)n * 1e6;

    printf("body %zu bytes -> %zu bytes, %ld messages\n", strlen(BODY), m->body_len, n);
    printf("lua step (decode + 2 reads + 1 write + encode): %.2f us/msg (set_body alone %.2f)\n",
           step_us, base_us);
    printf("lua step, CPU time of the thread: %.2f us/msg\n", step_cpu_us);
    printf("when: expression on a header: %.2f us/msg\n", when_us);
    printf("state memory: %zu KiB\n", sl_lua_host_memory(h) >> 10);
    sl_lua_expr_free(e);
    sl_msg_free(m);
    sl_lua_host_free(h);
    return 0;
}
