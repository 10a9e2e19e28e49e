/* Process metrics read from /proc/self at every scrape (see
 * process_metrics.h). Linux only, as the rest of the gateway. */
#include "process_metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Fields 14, 15 (utime, stime, in clock ticks) and 22 (starttime, ticks
 * since boot) of /proc/self/stat. Returns 0, or -1 when unreadable. */
static int read_stat(double *cpu_ticks, double *start_ticks)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut, st, start;
    if (!p || sscanf(p + 2,
                     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                     "%*d %*d %llu",
                     &ut, &st, &start) != 3)
        return -1;
    *cpu_ticks = (double)(ut + st);
    *start_ticks = (double)start;
    return 0;
}

static double cpu_seconds(void *arg)
{
    (void)arg;
    double cpu, start;
    long hz = sysconf(_SC_CLK_TCK);
    return read_stat(&cpu, &start) == 0 && hz > 0 ? cpu / (double)hz : -1;
}

/* The process start as seconds since the epoch: boot time (btime in
 * /proc/stat) plus starttime. */
static double start_time_seconds(void *arg)
{
    (void)arg;
    double cpu, start;
    long hz = sysconf(_SC_CLK_TCK);
    if (read_stat(&cpu, &start) != 0 || hz <= 0)
        return -1;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char line[256];
    double btime = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "btime %lf", &btime) == 1)
            break;
    }
    fclose(f);
    return btime < 0 ? -1 : btime + start / (double)hz;
}

static double resident_bytes(void *arg)
{
    (void)arg;
    unsigned long long size, rss;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    int ok = fscanf(f, "%llu %llu", &size, &rss) == 2;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return ok && page > 0 ? (double)rss * (double)page : -1;
}

static double open_fds(void *arg)
{
    (void)arg;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    double n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static double one(void *arg)
{
    (void)arg;
    return 1;
}

void sl_process_metrics_register(sl_metrics *m)
{
    sl_metrics_gauge(m, "sluice_build_info", "Sluice's version (the value is always 1)",
                     "version=\"" SLUICE_VERSION "\"", one, NULL);
    sl_metrics_gauge(m, "sluice_process_cpu_seconds",
                     "User and system CPU time of the gateway process, in seconds", "", cpu_seconds,
                     NULL);
    sl_metrics_gauge(m, "sluice_process_resident_memory_bytes",
                     "Resident memory of the gateway process", "", resident_bytes, NULL);
    sl_metrics_gauge(m, "sluice_process_open_fds", "Open file descriptors of the gateway process",
                     "", open_fds, NULL);
    sl_metrics_gauge(m, "sluice_process_start_time_seconds",
                     "Start of the gateway process, seconds since the Unix epoch", "",
                     start_time_seconds, NULL);
}
