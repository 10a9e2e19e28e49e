/* lazyfs: a FUSE file system for power-loss tests (the LazyFS model). It
 * passes everything through to a backing directory, except file contents:
 * data written to a file, and changes of its size, stay in this process's
 * memory until fsync or fdatasync of that file writes them to the backing
 * file and fdatasyncs it. Killing this process (SIGKILL), or unmounting it,
 * drops everything not synced: that is the power cut; mounting the backing
 * directory again is the reboot.
 *
 * Durability model, precisely:
 *  - file data and file size (write, pwrite, pages written back from a
 *    MAP_SHARED mapping, ftruncate, fallocate, O_TRUNC): pending until
 *    fsync/fdatasync of that file (both do the same: data and size);
 *    close, flush and munmap make nothing durable;
 *  - namespace and metadata (create, mkdir, rename, unlink, link, symlink,
 *    chmod, utimens): durable at once, as LazyFS treats them; a directory
 *    fsync is passed to the backing directory. With --lazy-dirs STATE_DIR
 *    (lazyfs_dirs.c), stricter: create, mkdir, rename, unlink, rmdir, link
 *    and symlink are durable only once their directory (the new name's, for
 *    a rename) is fsynced; the next mount undoes the others. An fsync of a
 *    file does not make its name durable then. Renaming a directory that
 *    holds pending entries is not modelled;
 *  - reads see the pending state (what the process wrote), as a page cache
 *    would.
 * The kernel's own page cache for this mount is used (no direct_io, so
 * MAP_SHARED works; no writeback cache, so write() reaches this process at
 * once): pages dirtied through a mapping reach us at writeback (msync,
 * fsync, memory pressure, unmount) and are pending like any other write.
 * Locks (flock, fcntl) are not implemented here, so the kernel keeps them
 * locally, which is right for processes on one machine.
 *
 * Usage: lazyfs [-f] [--pidfile FILE] [--ready-fd N] [--lazy-dirs STATE_DIR]
 *               BACKING_DIR MOUNTPOINT
 * Without -f it returns once mounted, running in the background; with
 * --ready-fd it stays in the foreground and writes one byte on fd N once
 * mounted (for a test that wants lazyfs as its own child). Single-threaded.
 * SIGTERM or SIGINT: unmounts (lazily) and exits, dropping what was not
 * synced. SIGKILL: the same, but the dead mount stays until
 * fusermount3 -u MOUNTPOINT. */
#define FUSE_USE_VERSION 31
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse3/fuse.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lazyfs_dirs.h"

#define PAGE 4096u

typedef struct page {
    uint64_t no;
    unsigned char *data; /* PAGE bytes; NULL = free slot */
} page;

/* The pending (not yet durable) state of one backing file. */
typedef struct pending {
    dev_t dev;
    ino_t ino;
    int fd;             /* O_RDWR on the backing file: keeps its inode alive */
    uint64_t size;      /* logical size */
    uint64_t zero_from; /* backing bytes at or past this read as zero */
    page *pages;        /* open addressing, cap a power of two */
    size_t cap, n;
    struct pending *next;
} pending;

static int root_fd = -1;
static char root_path[PATH_MAX]; /* the backing directory, resolved */
static pending *all_pending;
static FILE *trace; /* LAZYFS_TRACE: one line per operation that changes durable state */

/* Appends "what name-of-fd size" to the trace (a diagnostic for the tests). */
static void trace_op(const char *what, int fd, const char *path, uint64_t size)
{
    char proc[64], buf[PATH_MAX];
    if (!trace)
        return;
    if (fd >= 0) {
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(proc, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        size_t rl = strlen(root_path);
        path = strncmp(buf, root_path, rl) == 0 ? buf + rl : buf;
    }
    fprintf(trace, "%d %s %s %llu\n", (int)getpid(), what, path ? path : "?",
            (unsigned long long)size);
}

/* ---- page table ---------------------------------------------------------- */

static size_t slot_of(const pending *f, uint64_t no)
{
    size_t i = (size_t)(no * 0x9e3779b97f4a7c15ULL) & (f->cap - 1);
    while (f->pages[i].data && f->pages[i].no != no)
        i = (i + 1) & (f->cap - 1);
    return i;
}

static unsigned char *page_find(const pending *f, uint64_t no)
{
    if (!f->cap)
        return NULL;
    return f->pages[slot_of(f, no)].data;
}

/* Rebuilds the table with cap slots, keeping the pages below keep_below
 * (freeing the others). Returns -1 when out of memory (nothing changed). */
static int pages_rehash(pending *f, size_t cap, uint64_t keep_below)
{
    page *old = f->pages;
    size_t old_cap = f->cap;
    page *np = calloc(cap, sizeof *np);
    if (!np)
        return -1;
    f->pages = np;
    f->cap = cap;
    f->n = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].data)
            continue;
        if (old[i].no >= keep_below) {
            free(old[i].data);
            continue;
        }
        f->pages[slot_of(f, old[i].no)] = old[i];
        f->n++;
    }
    free(old);
    return 0;
}

static void pending_free(pending *f)
{
    for (size_t i = 0; i < f->cap; i++)
        free(f->pages[i].data);
    free(f->pages);
    if (f->fd >= 0)
        close(f->fd);
    free(f);
}

/* ---- pending files --------------------------------------------------------- */

static pending *pending_find(dev_t dev, ino_t ino, pending ***link)
{
    pending **l = &all_pending;
    for (; *l; l = &(*l)->next) {
        if ((*l)->dev == dev && (*l)->ino == ino)
            break;
    }
    if (link)
        *link = l;
    return *l;
}

/* Drops the pending state of (dev, ino), if any (the file is gone). */
static void pending_drop(dev_t dev, ino_t ino)
{
    pending **l;
    pending *f = pending_find(dev, ino, &l);
    if (f) {
        *l = f->next;
        pending_free(f);
    }
}

/* Returns the pending state of the file open as fd, creating it (from the
 * backing file as it is) when needed. NULL with errno on failure. */
static pending *pending_get(int fd)
{
    struct stat st;
    char proc[64];
    if (fstat(fd, &st) != 0)
        return NULL;
    pending *f = pending_find(st.st_dev, st.st_ino, NULL);
    if (f)
        return f;
    f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    f->fd = open(proc, O_RDWR | O_CLOEXEC);
    if (f->fd < 0) {
        free(f);
        return NULL;
    }
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->size = f->zero_from = (uint64_t)st.st_size;
    f->next = all_pending;
    all_pending = f;
    return f;
}

/* Reads len bytes at off of the file's current (pending) content into buf,
 * which must lie within one page. Returns 0, or -errno. */
static int logical_read_in_page(const pending *f, int fd, char *buf, size_t len, uint64_t off)
{
    const unsigned char *pg = f ? page_find(f, off / PAGE) : NULL;
    if (pg) {
        memcpy(buf, pg + off % PAGE, len);
        return 0;
    }
    memset(buf, 0, len);
    uint64_t limit = f ? f->zero_from : UINT64_MAX;
    if (off >= limit)
        return 0;
    size_t want = off + len > limit ? (size_t)(limit - off) : len;
    ssize_t n = pread(f ? f->fd : fd, buf, want, (off_t)off);
    return n < 0 ? -errno : 0;
}

/* Returns page no of f, created from the current content when missing. */
static unsigned char *page_get(pending *f, uint64_t no)
{
    unsigned char *pg = page_find(f, no);
    if (pg)
        return pg;
    if ((f->n + 1) * 2 > f->cap && pages_rehash(f, f->cap ? f->cap * 2 : 64, UINT64_MAX) != 0)
        return NULL;
    pg = malloc(PAGE);
    if (!pg)
        return NULL;
    if (logical_read_in_page(f, -1, (char *)pg, PAGE, no * PAGE) != 0) {
        free(pg);
        return NULL;
    }
    size_t i = slot_of(f, no);
    f->pages[i] = (page){no, pg};
    f->n++;
    return pg;
}

/* Sets the logical size: bytes past it are gone (they read as zeros if the
 * file grows again). Returns 0 or -errno. */
static int pending_truncate(pending *f, uint64_t size)
{
    if (size < f->size) {
        uint64_t keep = (size + PAGE - 1) / PAGE;
        if (f->cap && pages_rehash(f, f->cap, keep) != 0)
            return -ENOMEM;
        unsigned char *last = size % PAGE ? page_find(f, size / PAGE) : NULL;
        if (last)
            memset(last + size % PAGE, 0, PAGE - size % PAGE);
        if (size < f->zero_from)
            f->zero_from = size;
    }
    f->size = size;
    return 0;
}

/* Writes the pending state of f to its backing file and fdatasyncs it; the
 * state is then dropped. Returns 0 or -errno (the state is kept then). */
static int pending_sync(pending *f)
{
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return -errno;
    if (f->zero_from < (uint64_t)st.st_size && ftruncate(f->fd, (off_t)f->zero_from) != 0)
        return -errno;
    if (ftruncate(f->fd, (off_t)f->size) != 0)
        return -errno;
    for (size_t i = 0; i < f->cap; i++) {
        uint64_t off = f->pages[i].no * PAGE;
        if (!f->pages[i].data || off >= f->size)
            continue;
        size_t len = f->size - off < PAGE ? (size_t)(f->size - off) : PAGE;
        if (pwrite(f->fd, f->pages[i].data, len, (off_t)off) != (ssize_t)len)
            return errno ? -errno : -EIO;
    }
    if (fdatasync(f->fd) != 0)
        return -errno;
    pending_drop(f->dev, f->ino);
    return 0;
}

/* ---- helpers --------------------------------------------------------------- */

static const char *rel(const char *path)
{
    return path[1] ? path + 1 : ".";
}

/* Forgets the pending state of path's file when removing path drops its
 * last link (unlink, or rename over it). */
static void forget_if_last_link(const char *path)
{
    struct stat st;
    if (fstatat(root_fd, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
        st.st_nlink <= 1)
        pending_drop(st.st_dev, st.st_ino);
}

static int fd_of(const char *path, struct fuse_file_info *fi, int *owned)
{
    *owned = 0;
    if (fi)
        return (int)fi->fh;
    int fd = openat(root_fd, rel(path), O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    *owned = 1;
    return fd;
}

/* ---- operations ------------------------------------------------------------ */

static void *lz_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    cfg->direct_io = 0;    /* the kernel page cache: MAP_SHARED works */
    cfg->kernel_cache = 0; /* re-read pages at open */
    cfg->hard_remove = 1;  /* unlink for real; open files go on by fd */
    cfg->nullpath_ok = 1;
    cfg->use_ino = 0;
    return NULL;
}

/* Unmount: what was not synced is dropped, as at a power cut. */
static void lz_destroy(void *data)
{
    while (all_pending) {
        pending *f = all_pending;
        all_pending = f->next;
        pending_free(f);
    }
}

static int lz_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    int rc = fi ? fstat((int)fi->fh, st) : fstatat(root_fd, rel(path), st, AT_SYMLINK_NOFOLLOW);
    if (rc != 0)
        return -errno;
    const pending *f = pending_find(st->st_dev, st->st_ino, NULL);
    if (f) {
        st->st_size = (off_t)f->size;
        st->st_blocks = (blkcnt_t)((f->size + 511) / 512);
    }
    return 0;
}

static int lz_access(const char *path, int mask)
{
    return faccessat(root_fd, rel(path), mask, 0) == 0 ? 0 : -errno;
}

static int lz_readlink(const char *path, char *buf, size_t size)
{
    ssize_t n = readlinkat(root_fd, rel(path), buf, size - 1);
    if (n < 0)
        return -errno;
    buf[n] = 0;
    return 0;
}

static int lz_mkdir(const char *path, mode_t mode)
{
    if (mkdirat(root_fd, rel(path), mode) != 0)
        return -errno;
    ld_created(rel(path));
    return 0;
}

/* Drops a stash that the operation it was made for did not need. */
static void stash_drop(char *stash)
{
    if (stash)
        unlink(stash);
    free(stash);
}

static int lz_unlink(const char *path)
{
    forget_if_last_link(path);
    char *stash = ld_stash(rel(path));
    if (unlinkat(root_fd, rel(path), 0) != 0) {
        int e = errno;
        stash_drop(stash);
        return -e;
    }
    ld_unlinked(rel(path), stash);
    trace_op("unlink", -1, path, 0);
    return 0;
}

static int lz_rmdir(const char *path)
{
    if (unlinkat(root_fd, rel(path), AT_REMOVEDIR) != 0)
        return -errno;
    ld_rmdired(rel(path));
    return 0;
}

static int lz_symlink(const char *target, const char *path)
{
    if (symlinkat(target, root_fd, rel(path)) != 0)
        return -errno;
    ld_created(rel(path));
    return 0;
}

static int lz_rename(const char *from, const char *to, unsigned int flags)
{
    struct stat a, b;
    if (fstatat(root_fd, rel(from), &a, AT_SYMLINK_NOFOLLOW) == 0 &&
        fstatat(root_fd, rel(to), &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_ino != b.st_ino &&
        !(flags & RENAME_EXCHANGE))
        forget_if_last_link(to);
    if (flags & RENAME_EXCHANGE) /* not undone at a cut: durable at once */
        return renameat2(root_fd, rel(from), root_fd, rel(to), flags) == 0 ? 0 : -errno;
    char *stash = ld_stash(rel(to));
    if (renameat2(root_fd, rel(from), root_fd, rel(to), flags) != 0) {
        int e = errno;
        stash_drop(stash);
        return -e;
    }
    ld_renamed(rel(from), rel(to), stash);
    return 0;
}

static int lz_link(const char *from, const char *to)
{
    if (linkat(root_fd, rel(from), root_fd, rel(to), 0) != 0)
        return -errno;
    ld_created(rel(to));
    return 0;
}

static int lz_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    int rc = fi ? fchmod((int)fi->fh, mode) : fchmodat(root_fd, rel(path), mode, 0);
    return rc == 0 ? 0 : -errno;
}

static int lz_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    int rc = fi ? fchown((int)fi->fh, uid, gid)
                : fchownat(root_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
    return rc == 0 ? 0 : -errno;
}

static int lz_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    int rc =
        fi ? futimens((int)fi->fh, tv) : utimensat(root_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW);
    return rc == 0 ? 0 : -errno;
}

static int lz_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    int owned;
    int fd = fd_of(path, fi, &owned);
    if (fd < 0)
        return fd;
    pending *f = pending_get(fd);
    int rc = f ? pending_truncate(f, (uint64_t)size) : -errno;
    trace_op("truncate", fd, NULL, (uint64_t)size);
    if (owned)
        close(fd);
    return rc;
}

/* Opens the backing file read-write (pages are filled from it), never
 * truncating it there: O_TRUNC becomes a pending truncation. */
static int open_backing(const char *path, int flags, mode_t mode, struct fuse_file_info *fi)
{
    int bflags = (flags & ~(O_TRUNC | O_APPEND | O_ACCMODE | O_DIRECT)) | O_RDWR | O_CLOEXEC;
    struct stat st;
    int existed = fstatat(root_fd, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0;
    int fd = openat(root_fd, rel(path), bflags, mode);
    if (fd < 0 && errno == EACCES && (flags & O_ACCMODE) == O_RDONLY)
        fd = openat(root_fd, rel(path), (bflags & ~O_RDWR) | O_RDONLY, mode);
    if (fd < 0)
        return -errno;
    if (flags & O_TRUNC) {
        pending *f = pending_get(fd);
        int rc = f ? pending_truncate(f, 0) : -errno;
        if (rc != 0) {
            close(fd);
            return rc;
        }
    }
    if (!existed)
        ld_created(rel(path));
    trace_op(!existed ? "create" : flags & O_TRUNC ? "open-trunc" : "open", fd, NULL, 0);
    fi->fh = (uint64_t)fd;
    fi->direct_io = 0;
    fi->keep_cache = 0;
    return 0;
}

static int lz_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    return open_backing(path, fi->flags | O_CREAT, mode, fi);
}

static int lz_open(const char *path, struct fuse_file_info *fi)
{
    return open_backing(path, fi->flags, 0, fi);
}

static int lz_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    int fd = (int)fi->fh;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    const pending *f = pending_find(st.st_dev, st.st_ino, NULL);
    uint64_t end = f ? f->size : (uint64_t)st.st_size;
    if ((uint64_t)off >= end)
        return 0;
    if ((uint64_t)off + size > end)
        size = (size_t)(end - (uint64_t)off);
    if (!f) {
        ssize_t n = pread(fd, buf, size, off);
        return n < 0 ? -errno : (int)n;
    }
    for (size_t done = 0; done < size;) {
        uint64_t pos = (uint64_t)off + done;
        size_t len = PAGE - pos % PAGE;
        if (len > size - done)
            len = size - done;
        int rc = logical_read_in_page(f, fd, buf + done, len, pos);
        if (rc != 0)
            return rc;
        done += len;
    }
    return (int)size;
}

static int lz_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    pending *f = pending_get((int)fi->fh);
    if (!f)
        return -errno;
    for (size_t done = 0; done < size;) {
        uint64_t pos = (uint64_t)off + done;
        size_t len = PAGE - pos % PAGE;
        if (len > size - done)
            len = size - done;
        unsigned char *pg = page_get(f, pos / PAGE);
        if (!pg)
            return -ENOMEM;
        memcpy(pg + pos % PAGE, buf + done, len);
        done += len;
    }
    if ((uint64_t)off + size > f->size)
        f->size = (uint64_t)off + size;
    return (int)size;
}

static int lz_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
    if (mode != 0)
        return -EOPNOTSUPP;
    pending *f = pending_get((int)fi->fh);
    if (!f)
        return -errno;
    if ((uint64_t)(off + len) > f->size)
        f->size = (uint64_t)(off + len);
    trace_op("fallocate", (int)fi->fh, NULL, f->size);
    return 0;
}

static int lz_statfs(const char *path, struct statvfs *st)
{
    return fstatvfs(root_fd, st) == 0 ? 0 : -errno;
}

static int lz_flush(const char *path, struct fuse_file_info *fi)
{
    return 0; /* close makes nothing durable */
}

static int lz_release(const char *path, struct fuse_file_info *fi)
{
    close((int)fi->fh);
    return 0;
}

static int lz_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    int fd = (int)fi->fh;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    pending *f = pending_find(st.st_dev, st.st_ino, NULL);
    trace_op(f ? "fsync" : "fsync-clean", fd, NULL, f ? f->size : (uint64_t)st.st_size);
    if (f)
        return pending_sync(f);
    return fdatasync(fd) == 0 ? 0 : -errno;
}

/* A directory's handle is its fd, as a file's is: the kernel may pass it to
 * chmod, chown or utimens. */
static int lz_opendir(const char *path, struct fuse_file_info *fi)
{
    int fd = openat(root_fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    fi->fh = (uint64_t)fd;
    return 0;
}

static int lz_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    int fd = dup((int)fi->fh);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return -e;
    }
    rewinddir(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (fill(buf, de->d_name, NULL, 0, 0))
            break;
    }
    closedir(d);
    return 0;
}

static int lz_releasedir(const char *path, struct fuse_file_info *fi)
{
    close((int)fi->fh);
    return 0;
}

/* The path of the open directory fd relative to the backing root ("."),
 * or NULL (lazyfs runs with nullpath_ok: fsyncdir gets no path). */
static const char *dir_rel(int fd, char *buf, size_t cap)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, buf, cap - 1);
    size_t rl = strlen(root_path);
    if (n < 0 || (size_t)n < rl || memcmp(buf, root_path, rl) != 0)
        return NULL;
    buf[n] = 0;
    if ((size_t)n == rl)
        return ".";
    return buf[rl] == '/' ? buf + rl + 1 : NULL;
}

static int lz_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    char buf[PATH_MAX];
    int fd = (int)fi->fh;
    if (fsync(fd) != 0)
        return -errno;
    const char *dir = dir_rel(fd, buf, sizeof buf);
    trace_op("fsyncdir", -1, dir, 0);
    if (dir)
        ld_dir_synced(dir);
    return 0;
}

static const struct fuse_operations lz_ops = {
    .init = lz_init,
    .destroy = lz_destroy,
    .getattr = lz_getattr,
    .access = lz_access,
    .readlink = lz_readlink,
    .mkdir = lz_mkdir,
    .unlink = lz_unlink,
    .rmdir = lz_rmdir,
    .symlink = lz_symlink,
    .rename = lz_rename,
    .link = lz_link,
    .chmod = lz_chmod,
    .chown = lz_chown,
    .utimens = lz_utimens,
    .truncate = lz_truncate,
    .create = lz_create,
    .open = lz_open,
    .read = lz_read,
    .write = lz_write,
    .fallocate = lz_fallocate,
    .statfs = lz_statfs,
    .flush = lz_flush,
    .release = lz_release,
    .fsync = lz_fsync,
    .opendir = lz_opendir,
    .readdir = lz_readdir,
    .releasedir = lz_releasedir,
    .fsyncdir = lz_fsyncdir,
};

static int usage(void)
{
    fprintf(stderr, "usage: lazyfs [-f] [--pidfile FILE] [--ready-fd N] [--lazy-dirs STATE_DIR] "
                    "BACKING_DIR MOUNTPOINT\n");
    return 2;
}

static int write_pidfile(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

/* Without -f: forks; the parent returns 0 once the child has mounted and
 * written the pid file (it writes a byte on ready_fd), 1 if it failed. */
static int background(int *ready_fd)
{
    int p[2];
    char c;
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        _exit(read(p[0], &c, 1) == 1 ? 0 : 1);
    }
    close(p[0]);
    setsid();
    *ready_fd = p[1];
    return 0;
}

static int serve(const char *mountpoint, const char *pidfile, int ready_fd)
{
    char *fargv[] = {"lazyfs", "-o", "fsname=lazyfs,subtype=lazyfs", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
    struct fuse *fuse = fuse_new(&args, &lz_ops, sizeof lz_ops, NULL);
    fuse_opt_free_args(&args);
    if (!fuse)
        return 1;
    if (fuse_mount(fuse, mountpoint) != 0) {
        fuse_destroy(fuse);
        return 1;
    }
    int rc = 1;
    if ((!pidfile || write_pidfile(pidfile) == 0) &&
        fuse_set_signal_handlers(fuse_get_session(fuse)) == 0) {
        if (ready_fd >= 0) {
            (void)!write(ready_fd, "", 1);
            close(ready_fd);
        }
        rc = fuse_loop(fuse) < 0 ? 1 : 0; /* > 0: ended by a signal */
        fuse_remove_signal_handlers(fuse_get_session(fuse));
    }
    fuse_unmount(fuse);
    fuse_destroy(fuse);
    return rc;
}

/* Mounts, goes to the background unless -f (the caller's process returns
 * once the mount is up and the pid file written), serves until unmounted
 * or killed. Exit 0 after an unmount, 1 on a failure, 2 on bad usage. */
int main(int argc, char **argv)
{
    int foreground = 0, ready_fd = -1;
    const char *pidfile = NULL, *lazy_dirs = NULL, *dirs[2];
    int ndirs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-f"))
            foreground = 1;
        else if (!strcmp(argv[i], "--pidfile") && i + 1 < argc)
            pidfile = argv[++i];
        else if (!strcmp(argv[i], "--ready-fd") && i + 1 < argc)
            ready_fd = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lazy-dirs") && i + 1 < argc)
            lazy_dirs = argv[++i];
        else if (argv[i][0] != '-' && ndirs < 2)
            dirs[ndirs++] = argv[i];
        else
            return usage();
    }
    if (ndirs != 2)
        return usage();
    root_fd = open(dirs[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0 || !realpath(dirs[0], root_path)) {
        fprintf(stderr, "lazyfs: %s: %s\n", dirs[0], strerror(errno));
        return 1;
    }
    if (lazy_dirs && ld_open(lazy_dirs, root_fd) != 0)
        return 1;
    const char *tp = getenv("LAZYFS_TRACE");
    if (tp && *tp && (trace = fopen(tp, "a")) != NULL) {
        setvbuf(trace, NULL, _IOLBF, 0);
        fprintf(trace, "%d mount\n", (int)getpid());
    }
    if (!foreground && ready_fd < 0 && background(&ready_fd) != 0) {
        perror("lazyfs: fork");
        return 1;
    }
    return serve(dirs[1], pidfile, ready_fd);
}
