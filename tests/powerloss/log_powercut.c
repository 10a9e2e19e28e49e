/* Power-cut test of the event log's custody: like tests/crash/log_crash.c
 * (whose child and checks it reuses), but the log lives on a lazyfs mount
 * (lazyfs.c), which keeps every byte not fsynced in memory only. At a
 * random moment the parent SIGKILLs the appending child, then SIGKILLs
 * lazyfs (the power cut: what was not fsynced is gone), unmounts, mounts
 * the backing directory again (the reboot), reopens the log and checks that
 * every acknowledged record is there byte for byte and that the log
 * recovered cleanly. A missing fdatasync fails it; a SIGKILL alone would not.
 * Usage: log_powercut [cycles] [seed] [strict]  (also SL_POWERCUT_CYCLES,
 * SL_CRASH_SEED, SL_POWERCUT_STRICT_DIRS=1; SL_LAZYFS names the lazyfs
 * binary). strict: lazyfs --lazy-dirs, names are durable only once their
 * directory is fsynced. */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/vfs.h>

/* the child, the acknowledgement pipe and the checks of log_crash */
int log_crash_main(int argc, char **argv);
#define main log_crash_main
#include "../crash/log_crash.c"
#undef main

#ifndef SL_LAZYFS_PATH
#define SL_LAZYFS_PATH "lazyfs"
#endif
#define FUSE_SUPER_MAGIC 0x65735546

typedef struct power {
    char base[64];    /* the test's temporary directory */
    char backing[96]; /* the "disk" */
    char mnt[96];     /* where lazyfs shows it */
    char logdir[128]; /* the log's data_dir, on the mount */
    char state[96];   /* lazyfs --lazy-dirs journal, when strict */
    char trace[96];   /* lazyfs trace (SL_POWERCUT_TRACE=1), or "" */
    int strict;
    const char *lazyfs;
    pid_t fs_pid; /* 0 when not mounted */
} power;

/* Runs argv to completion; returns its exit status, -1 if it did not run. */
static int run(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* 1 when path is a FUSE mount, a dead one (its daemon gone) included. */
static int is_fuse_mount(const char *path)
{
    struct statfs sf;
    if (statfs(path, &sf) != 0)
        return errno == ENOTCONN;
    return sf.f_type == FUSE_SUPER_MAGIC;
}

static int power_cut(power *pw);

/* Mounts the backing directory with lazyfs (boot), as a child of this
 * process that unmounts and exits when this process dies. Returns 0 or -1. */
static int power_on(power *pw)
{
    int p[2];
    char fdarg[16];
    if (pipe(p) != 0)
        return -1;
    snprintf(fdarg, sizeof fdarg, "%d", p[1]);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(p[0]);
        /* if this test dies, lazyfs exits and unmounts (lazily: the log
         * child may still hold files there) */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (pw->strict)
            execl(pw->lazyfs, pw->lazyfs, "-f", "--ready-fd", fdarg, "--lazy-dirs", pw->state,
                  pw->backing, pw->mnt, (char *)NULL);
        else
            execl(pw->lazyfs, pw->lazyfs, "-f", "--ready-fd", fdarg, pw->backing, pw->mnt,
                  (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    pw->fs_pid = pid;
    char c;
    struct pollfd pfd = {p[0], POLLIN, 0};
    int ready = poll(&pfd, 1, 10000) == 1 && read(p[0], &c, 1) == 1;
    close(p[0]);
    if (!ready || !is_fuse_mount(pw->mnt)) {
        printf("log_powercut: %s could not mount %s\n", pw->lazyfs, pw->mnt);
        power_cut(pw);
        return -1;
    }
    return 0;
}

/* Cuts the power: lazyfs dies with everything not fsynced, and its mount
 * is taken away. Only processes this test started are killed, by pid.
 * Returns 0, or -1 if the mount stayed. */
static int power_cut(power *pw)
{
    if (pw->fs_pid > 0) {
        kill(pw->fs_pid, SIGKILL);
        waitpid(pw->fs_pid, NULL, 0);
        pw->fs_pid = 0;
    }
    if (is_fuse_mount(pw->mnt)) {
        char *um[] = {"fusermount3", "-u", "-z", "-q", pw->mnt, NULL};
        if (run(um) != 0 || is_fuse_mount(pw->mnt)) {
            printf("log_powercut: could not unmount %s\n", pw->mnt);
            return -1;
        }
    }
    return 0;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
    if (fd >= 0)
        close(fd);
    return rc;
}

static int power_setup(power *pw)
{
    snprintf(pw->base, sizeof pw->base, "/tmp/sluice_powercut_XXXXXX");
    if (!mkdtemp(pw->base)) {
        perror("log_powercut: mkdtemp");
        return -1;
    }
    snprintf(pw->backing, sizeof pw->backing, "%s/disk", pw->base);
    snprintf(pw->mnt, sizeof pw->mnt, "%s/mnt", pw->base);
    snprintf(pw->logdir, sizeof pw->logdir, "%s/log", pw->mnt);
    snprintf(pw->state, sizeof pw->state, "%s/lazy-dirs", pw->base);
    const char *env = getenv("SL_LAZYFS");
    pw->lazyfs = env && *env ? env : SL_LAZYFS_PATH;
    const char *tr = getenv("SL_POWERCUT_TRACE");
    if (tr && !strcmp(tr, "1")) {
        snprintf(pw->trace, sizeof pw->trace, "%s/trace", pw->base);
        setenv("LAZYFS_TRACE", pw->trace, 1);
    }
    if (mkdir(pw->backing, 0755) != 0 || mkdir(pw->mnt, 0755) != 0) {
        perror("log_powercut: mkdir");
        return -1;
    }
    if (power_on(pw) != 0)
        return -1;
    if (mkdir(pw->logdir, 0755) != 0 || fsync_dir(pw->mnt) != 0) {
        perror("log_powercut: mkdir on the mount");
        return -1;
    }
    return 0;
}

/* Writes, in dir on the mount, what a power cut must partly undo: synced
 * bytes followed by unsynced ones (write), a store through a MAP_SHARED
 * mapping never msynced, an ftruncate never fsynced, and a file fsynced
 * whose directory is not. Returns 0 or -1. */
static int model_write(const char *mnt, const char *dir)
{
    char path[160];
    int ok = mkdir(dir, 0755) == 0 && fsync_dir(mnt) == 0;
    snprintf(path, sizeof path, "%s/w", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ok = ok && fd >= 0 && pwrite(fd, "synced", 6, 0) == 6 && fsync(fd) == 0 &&
         pwrite(fd, "lost", 4, 6) == 4 && close(fd) == 0;
    snprintf(path, sizeof path, "%s/m", dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ok = ok && fd >= 0 && ftruncate(fd, 8192) == 0 && fdatasync(fd) == 0;
    char *m = ok ? mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    ok = ok && m != MAP_FAILED;
    if (ok) {
        memcpy(m + 5000, "lost", 4);
        munmap(m, 8192);
    }
    ok = ok && close(fd) == 0;
    snprintf(path, sizeof path, "%s/t", dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ok = ok && fd >= 0 && pwrite(fd, path, 100, 0) == 100 && fsync(fd) == 0 &&
         ftruncate(fd, 10) == 0 && close(fd) == 0;
    ok = ok && fsync_dir(dir) == 0;
    snprintf(path, sizeof path, "%s/n", dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ok = ok && fd >= 0 && pwrite(fd, "n", 1, 0) == 1 && fsync(fd) == 0 && close(fd) == 0;
    return ok ? 0 : -1;
}

/* Checks, after the cut, that exactly the synced state came back (the
 * name of n only when names are durable at once). */
static int model_check(const char *dir, int strict)
{
    char path[160], buf[16];
    struct stat st;
    snprintf(path, sizeof path, "%s/w", dir);
    int fd = open(path, O_RDONLY);
    int ok = fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 6 && pread(fd, buf, 6, 0) == 6 &&
             memcmp(buf, "synced", 6) == 0;
    if (fd >= 0)
        close(fd);
    snprintf(path, sizeof path, "%s/m", dir);
    fd = open(path, O_RDONLY);
    ok = ok && fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 8192 &&
         pread(fd, buf, 4, 5000) == 4 && memcmp(buf, "\0\0\0\0", 4) == 0;
    if (fd >= 0)
        close(fd);
    snprintf(path, sizeof path, "%s/t", dir);
    ok = ok && stat(path, &st) == 0 && st.st_size == 100;
    snprintf(path, sizeof path, "%s/n", dir);
    ok = ok && (stat(path, &st) == 0) == !strict;
    return ok ? 0 : -1;
}

/* Proves the test bed before using it: a power cut must lose what was not
 * synced and keep what was (else every cycle would pass for nothing). */
static int model_selftest(power *pw)
{
    char dir[160];
    snprintf(dir, sizeof dir, "%s/model", pw->mnt);
    if (model_write(pw->mnt, dir) != 0) {
        printf("log_powercut: writing the model files in %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (power_cut(pw) != 0 || power_on(pw) != 0)
        return -1;
    if (model_check(dir, pw->strict) != 0) {
        printf("log_powercut: lazyfs kept unsynced data or lost synced data (%s)\n", dir);
        return -1;
    }
    printf("log_powercut: lazyfs checked: a cut loses an unsynced write, an mmap store "
           "never msynced and an ftruncate never fsynced, and keeps synced data%s\n",
           pw->strict ? "; a name whose directory was not fsynced is lost" : "");
    return 0;
}

/* Adds a line to the lazyfs trace (SL_POWERCUT_TRACE=1), if any. */
static void trace_mark(const power *pw, const char *what, int iter)
{
    if (!pw->trace[0])
        return;
    FILE *f = fopen(pw->trace, "a");
    if (f) {
        fprintf(f, "test %s cycle %d\n", what, iter);
        fclose(f);
    }
}

static int list_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_F)
        printf("    %s %lld\n", path, (long long)st->st_size);
    return 0;
}

/* Prints the files of the log on the disk (after a failed check). */
static void list_segments(const power *pw)
{
    char dir[160];
    snprintf(dir, sizeof dir, "%s/log/topics", pw->backing);
    printf("  files on the disk:\n");
    nftw(dir, list_entry, 16, FTW_PHYS);
}

/* One cycle: a child appends until the cut, then reboot and check. Returns
 * the number of problems. */
static int cycle(power *pw, int iter, part_state *ps, uint64_t seed, unsigned *rng, int64_t *acks,
                 int64_t *records)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("log_powercut: pipe");
        return 1;
    }
    /* mostly 20-220 ms of appends; sometimes a cut during open and recovery */
    int r = rand_r(rng);
    int64_t delay_us = r % 8 == 0 ? rand_r(rng) % 5000 : 20000 + rand_r(rng) % 200000;
    pid_t pid = fork();
    if (pid < 0) {
        perror("log_powercut: fork");
        return 1;
    }
    if (pid == 0) {
        close(fds[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        child_main(pw->logdir, fds[1], iter, seed);
    }
    close(fds[1]);
    int bad = read_acks(fds[0], ps, now_us() + delay_us, acks) != 0;
    /* the process dies first (its fsyncs in flight still complete or
     * fail), then the storage loses what was never synced */
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    bad += power_cut(pw) != 0;
    bad += read_acks(fds[0], ps, 0, acks) != 0; /* acks still in the pipe */
    close(fds[0]);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        printf("  child exited by itself (status %d) before the cut\n", status);
        bad++;
    }
    if (power_on(pw) != 0)
        return bad + 1;
    trace_mark(pw, "verify", iter);
    bad += verify(pw->logdir, ps, seed, records);
    if (bad) {
        printf("log_powercut: cycle %d FAILED (cut after %" PRId64 " us)\n", iter, delay_us);
        list_segments(pw);
    }
    trace_mark(pw, "child", iter + 1);
    return bad;
}

int main(int argc, char **argv)
{
    const char *env_cycles = getenv("SL_POWERCUT_CYCLES");
    int cycles = argc > 1 ? atoi(argv[1]) : env_cycles ? atoi(env_cycles) : 50;
    const char *env = getenv("SL_CRASH_SEED");
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0)
                    : env    ? strtoull(env, NULL, 0)
                             : 20240601u;
    part_state ps[PARTITIONS] = {{0}};
    power pw = {0};
    int passed = 0, failed = 0;
    unsigned rng = (unsigned)seed;
    int64_t total_acks = 0, records = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN); /* output into a closed pipe must not skip the unmount */
    for (int i = 0; i < PARTITIONS; i++)
        ps[i].max_acked = -1;
    const char *env_strict = getenv("SL_POWERCUT_STRICT_DIRS");
    pw.strict = argc > 3 ? !strcmp(argv[3], "strict") : env_strict && !strcmp(env_strict, "1");
    if (power_setup(&pw) != 0 || model_selftest(&pw) != 0) {
        power_cut(&pw);
        return 1;
    }
    printf("log_powercut: seed %" PRIu64 ", %d power cuts, disk %s, mount %s, names %s\n", seed,
           cycles, pw.backing, pw.mnt,
           pw.strict ? "durable at directory fsync" : "durable at once");
    double t0 = now_us() / 1e6;
    for (int iter = 0; iter < cycles; iter++) {
        int64_t acks = 0;
        if (cycle(&pw, iter, ps, seed, &rng, &acks, &records) == 0)
            passed++;
        else
            failed++;
        total_acks += acks;
        if (pw.fs_pid == 0)
            break; /* could not boot again */
    }
    int unmount_bad = power_cut(&pw) != 0;
    printf("log_powercut: %" PRId64 " acknowledged records checked, %" PRId64
           " records in the log at the end, %.1f s\n",
           total_acks, records, now_us() / 1e6 - t0);
    printf("log_powercut: %d passed, %d failed (seed %" PRIu64 ")\n", passed, failed, seed);
    for (int i = 0; i < PARTITIONS; i++)
        free(ps[i].e);
    if (failed == 0 && !unmount_bad)
        nftw(pw.base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        printf("log_powercut: data left in %s\n", pw.backing);
    return failed || unmount_bad || passed != cycles ? 1 : 0;
}
