/* lazyfs --lazy-dirs: the undo journal of namespace operations not yet made
 * durable by an fsync of their directory (see lazyfs_dirs.h). The journal
 * is rewritten whole (temp file + rename) on every change: it lives on the
 * real disk, whose page cache survives the SIGKILL of lazyfs that the tests
 * use as a power cut, so no fsync is needed for it. */
#include "lazyfs_dirs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* C path: created; R from to stash: renamed (stash: the old to, or "-");
 * U path stash: unlinked; D path: directory removed. */
typedef struct op {
    char kind;
    char *a, *b, *stash;
} op;

static char state[PATH_MAX / 2];
static int root = -1;
static op *ops;
static size_t n_ops, cap_ops;
static unsigned long stash_seq;

int ld_active(void)
{
    return root >= 0;
}

static char *dup_or_dash(const char *s)
{
    return strdup(s ? s : "-");
}

static void journal_write(void)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    snprintf(path, sizeof path, "%s/journal", state);
    snprintf(tmp, sizeof tmp, "%s/journal.tmp", state);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "lazyfs: %s: %s\n", tmp, strerror(errno));
        return;
    }
    for (size_t i = 0; i < n_ops; i++)
        fprintf(f, "%c\t%s\t%s\t%s\n", ops[i].kind, ops[i].a, ops[i].b, ops[i].stash);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        fprintf(stderr, "lazyfs: writing %s: %s\n", path, strerror(errno));
}

static void push(char kind, const char *a, const char *b, char *stash)
{
    if (n_ops == cap_ops) {
        size_t cap = cap_ops ? cap_ops * 2 : 64;
        op *n = realloc(ops, cap * sizeof *n);
        if (!n) {
            fprintf(stderr, "lazyfs: out of memory: %c %s stays durable\n", kind, a);
            free(stash);
            return;
        }
        ops = n;
        cap_ops = cap;
    }
    ops[n_ops++] = (op){kind, strdup(a), dup_or_dash(b), stash ? stash : strdup("-")};
    journal_write();
}

void ld_created(const char *rel)
{
    if (ld_active())
        push('C', rel, NULL, NULL);
}

char *ld_stash(const char *rel)
{
    struct stat st;
    char name[64], *path;
    if (!ld_active() || fstatat(root, rel, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode))
        return NULL;
    snprintf(name, sizeof name, "stash-%lu", ++stash_seq);
    if (asprintf(&path, "%s/%s", state, name) < 0)
        return NULL;
    if (linkat(root, rel, AT_FDCWD, path, 0) != 0) {
        fprintf(stderr, "lazyfs: stashing %s: %s\n", rel, strerror(errno));
        free(path);
        return NULL;
    }
    return path;
}

void ld_renamed(const char *from, const char *to, char *stash)
{
    if (ld_active())
        push('R', from, to, stash);
}

void ld_unlinked(const char *rel, char *stash)
{
    if (ld_active())
        push('U', rel, NULL, stash);
}

void ld_rmdired(const char *rel)
{
    if (ld_active())
        push('D', rel, NULL, NULL);
}

/* The directory holding the entry that op changes. */
static void parent_of(const char *rel, char *out, size_t cap)
{
    const char *slash = strrchr(rel, '/');
    if (!slash || !strcmp(rel, "."))
        snprintf(out, cap, ".");
    else
        snprintf(out, cap, "%.*s", (int)(slash - rel), rel);
}

static void op_free(op *o)
{
    if (strcmp(o->stash, "-") != 0)
        unlink(o->stash);
    free(o->a);
    free(o->b);
    free(o->stash);
}

void ld_dir_synced(const char *dir)
{
    char parent[PATH_MAX];
    size_t kept = 0;
    if (!ld_active())
        return;
    for (size_t i = 0; i < n_ops; i++) {
        parent_of(ops[i].kind == 'R' ? ops[i].b : ops[i].a, parent, sizeof parent);
        if (!strcmp(parent, dir))
            op_free(&ops[i]);
        else
            ops[kept++] = ops[i];
    }
    if (kept != n_ops) {
        n_ops = kept;
        journal_write();
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* Undoes one operation on the backing directory (best effort). */
static void undo(int rootfd, const char *root_path, char kind, const char *a, const char *b,
                 const char *stash)
{
    int has_stash = strcmp(stash, "-") != 0;
    if (kind == 'C') {
        char full[PATH_MAX];
        snprintf(full, sizeof full, "%s/%s", root_path, a);
        if (unlinkat(rootfd, a, 0) != 0 && (errno == EISDIR || errno == EPERM))
            nftw(full, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    } else if (kind == 'R') {
        renameat(rootfd, b, rootfd, a);
        if (has_stash)
            renameat(AT_FDCWD, stash, rootfd, b);
    } else if (kind == 'U') {
        if (has_stash)
            renameat(AT_FDCWD, stash, rootfd, a);
    } else if (kind == 'D') {
        mkdirat(rootfd, a, 0755);
    }
}

/* The reboot: undoes, newest first, what the journal holds. */
static int replay(const char *journal, int rootfd)
{
    char root_path[PATH_MAX], proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", rootfd);
    ssize_t rl = readlink(proc, root_path, sizeof root_path - 1);
    if (rl < 0)
        return -1;
    root_path[rl] = 0;
    FILE *f = fopen(journal, "r");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    char **lines = NULL, buf[3 * PATH_MAX];
    size_t n = 0;
    while (fgets(buf, sizeof buf, f)) {
        char **nl = realloc(lines, (n + 1) * sizeof *nl);
        if (!nl)
            break;
        lines = nl;
        lines[n++] = strdup(buf);
    }
    fclose(f);
    for (size_t i = n; i-- > 0;) {
        char *save = NULL, *kind = strtok_r(lines[i], "\t\n", &save);
        char *a = strtok_r(NULL, "\t\n", &save), *b = strtok_r(NULL, "\t\n", &save);
        char *stash = strtok_r(NULL, "\t\n", &save);
        if (kind && a && b && stash)
            undo(rootfd, root_path, kind[0], a, b, stash);
        free(lines[i]);
    }
    free(lines);
    return unlink(journal);
}

int ld_open(const char *state_dir, int root_fd)
{
    char journal[PATH_MAX];
    if (strlen(state_dir) >= sizeof state) {
        fprintf(stderr, "lazyfs: %s: path too long\n", state_dir);
        return -1;
    }
    snprintf(state, sizeof state, "%s", state_dir);
    if (mkdir(state, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "lazyfs: %s: %s\n", state, strerror(errno));
        return -1;
    }
    snprintf(journal, sizeof journal, "%s/journal", state);
    if (replay(journal, root_fd) != 0 && errno != ENOENT) {
        fprintf(stderr, "lazyfs: replaying %s: %s\n", journal, strerror(errno));
        return -1;
    }
    /* stash files left by the last run are no longer needed */
    nftw(state, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (mkdir(state, 0755) != 0) {
        fprintf(stderr, "lazyfs: %s: %s\n", state, strerror(errno));
        return -1;
    }
    root = root_fd;
    return 0;
}
