/* An LD_PRELOAD allocation counter for benchmarks (tests/bench/e2e_http.sh
 * ALLOCS=...): counts the calls of malloc, calloc and realloc by who made
 * them (the gateway's own code, libcurl, or libc on behalf of either, found
 * by walking the stack), and writes the counts to the file $MC_OUT every
 * 50 ms, one "NAME COUNT" line each. Build (one command):
 *   cc -O2 -shared -fPIC -o build-rel/malloc_count.so
 *      tests/bench/preload/malloc_count.c -ldl -lpthread */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

enum { D_SLUICE, D_CURL, D_LIBC, D_OTHER, D_LIBC_SLUICE, D_LIBC_CURL, D_N };
static const char *const names[D_N] = {"sluice", "libcurl",         "libc_itself",
                                       "other",  "libc_for_sluice", "libc_for_curl"};
static atomic_ulong counts[D_N];
static __thread int busy; /* counting (dladdr, backtrace) may allocate: not counted */

#define CACHE 8192
static struct {
    void *ra;
    int d;
} cache[CACHE];

/* Which library the code at ra belongs to (cached; races only cost a lookup). */
static int classify(void *ra)
{
    size_t h = ((size_t)ra >> 2) & (CACHE - 1);
    if (cache[h].ra == ra)
        return cache[h].d;
    Dl_info info;
    int d = D_OTHER;
    if (dladdr(ra, &info) && info.dli_fname) {
        if (strstr(info.dli_fname, "libcurl"))
            d = D_CURL;
        else if (strstr(info.dli_fname, "libc.so"))
            d = D_LIBC;
        else if (strstr(info.dli_fname, "sluice"))
            d = D_SLUICE;
    }
    cache[h].ra = ra;
    cache[h].d = d;
    return d;
}

static void count(void *ra)
{
    if (busy)
        return;
    busy = 1;
    int d = classify(ra);
    if (d == D_LIBC) { /* strdup and the like: on whose behalf */
        void *bt[8];
        int n = backtrace(bt, 8);
        for (int i = 2; i < n; i++) {
            int e = classify(bt[i]);
            if (e == D_SLUICE || e == D_CURL) {
                d = e == D_SLUICE ? D_LIBC_SLUICE : D_LIBC_CURL;
                break;
            }
        }
    }
    atomic_fetch_add(&counts[d], 1);
    busy = 0;
}

void *malloc(size_t n)
{
    count(__builtin_return_address(0));
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    count(__builtin_return_address(0));
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    count(__builtin_return_address(0));
    return __libc_realloc(p, n);
}

static void *dumper(void *arg)
{
    const char *out = arg;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    for (;;) {
        FILE *f = fopen(tmp, "w");
        if (f) {
            for (int i = 0; i < D_N; i++)
                fprintf(f, "%s %lu\n", names[i], atomic_load(&counts[i]));
            fclose(f);
            rename(tmp, out);
        }
        usleep(50000);
    }
    return NULL;
}

__attribute__((constructor)) static void start(void)
{
    const char *out = getenv("MC_OUT");
    if (!out)
        return;
    busy = 1;
    pthread_t t;
    if (pthread_create(&t, NULL, dumper, (void *)out) == 0)
        pthread_detach(t);
    busy = 0;
}
