/* Micro-benchmark behind the zero-ahead experiment (README, Benchmarks;
 * measured, not kept in the log): fdatasync
 * latency after appending through a MAP_SHARED mapping into a fallocated
 * file whose blocks were never written (unwritten extents) against one whose
 * blocks were written with zeros and synced first. THREADS threads each
 * append APPEND bytes to their own 64 MiB file and fdatasync it, in a loop,
 * for 4 seconds, as the log's partitions do. Prints syncs/s and latency
 * percentiles for both kinds of file.
 * Usage: bench_fsync_prezero [dir [threads [append_bytes]]]   (default /tmp 4 5000) */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES ((size_t)64 << 20)
#define SECONDS 4.0
#define MAX_SYNCS 200000
#define MAX_THREADS 16

typedef struct worker {
    char path[512];
    int prezero;
    size_t append;
    pthread_barrier_t *start;
    double *lat; /* seconds per fdatasync */
    int n;
} worker;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Creates the file: fallocated, and with prezero written with zeros. */
static int prepare(const worker *w)
{
    int fd = open(w->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fallocate(fd, 0, 0, (off_t)FILE_BYTES) != 0)
        return -1;
    if (w->prezero) {
        static const char zeros[1 << 16];
        for (size_t o = 0; o < FILE_BYTES; o += sizeof zeros)
            if (pwrite(fd, zeros, sizeof zeros, (off_t)o) != (ssize_t)sizeof zeros)
                return -1;
    }
    return fdatasync(fd) == 0 ? fd : -1;
}

static void *run(void *arg)
{
    worker *w = arg;
    int fd = prepare(w);
    unsigned char *m =
        fd < 0 ? MAP_FAILED : mmap(NULL, FILE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    pthread_barrier_wait(w->start);
    if (m == MAP_FAILED)
        return NULL;
    size_t pos = 0;
    double end = now_s() + SECONDS;
    while (now_s() < end && w->n < MAX_SYNCS && pos + w->append <= FILE_BYTES) {
        memset(m + pos, 'x', w->append);
        pos += w->append;
        double t = now_s();
        if (fdatasync(fd) != 0)
            break;
        w->lat[w->n++] = now_s() - t;
    }
    munmap(m, FILE_BYTES);
    close(fd);
    unlink(w->path);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(int prezero, worker *w, int nt)
{
    size_t n = 0;
    for (int i = 0; i < nt; i++)
        n += (size_t)w[i].n;
    double *all = malloc((n ? n : 1) * sizeof *all), sum = 0;
    if (!all)
        return;
    n = 0;
    for (int i = 0; i < nt; i++)
        for (int k = 0; k < w[i].n; k++)
            sum += all[n++] = w[i].lat[k];
    qsort(all, n, sizeof *all, cmp_double);
    if (n)
        printf("%-22s %d threads: %6.0f syncs/s, mean %.3f ms, p50 %.3f, p90 %.3f, p99 %.3f ms\n",
               prezero ? "pre-zeroed blocks" : "fallocated (unwritten)", nt, (double)n / SECONDS,
               sum / (double)n * 1e3, all[n / 2] * 1e3, all[n * 9 / 10] * 1e3,
               all[n * 99 / 100] * 1e3);
    free(all);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    int nt = argc > 2 ? atoi(argv[2]) : 4;
    size_t append = argc > 3 ? (size_t)atol(argv[3]) : 5000;
    if (nt < 1 || nt > MAX_THREADS || append == 0)
        return 2;
    for (int prezero = 0; prezero <= 1; prezero++) {
        worker w[MAX_THREADS];
        pthread_t tid[MAX_THREADS];
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)nt);
        for (int i = 0; i < nt; i++) {
            w[i] = (worker){.prezero = prezero, .append = append, .start = &start};
            snprintf(w[i].path, sizeof w[i].path, "%s/bench_fsync_prezero.%d.%d", dir,
                     (int)getpid(), i);
            w[i].lat = malloc(MAX_SYNCS * sizeof *w[i].lat);
            if (!w[i].lat || pthread_create(&tid[i], NULL, run, &w[i]) != 0)
                return 1;
        }
        for (int i = 0; i < nt; i++)
            pthread_join(tid[i], NULL);
        report(prezero, w, nt);
        for (int i = 0; i < nt; i++)
            free(w[i].lat);
        pthread_barrier_destroy(&start);
    }
    return 0;
}
