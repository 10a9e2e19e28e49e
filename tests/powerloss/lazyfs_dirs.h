/* lazyfs --lazy-dirs: namespace operations (create, mkdir, rename, unlink,
 * rmdir, link, symlink) pending until their directory is fsynced. They are
 * applied to the backing directory at once and recorded in an undo journal
 * on the real disk; the next mount (the reboot) undoes, newest first, every
 * one whose directory was not fsynced before the cut. Paths are relative to
 * the backing directory ("." is its root). Single-threaded, like lazyfs. */
#ifndef LAZYFS_DIRS_H
#define LAZYFS_DIRS_H

/* Opens the journal in state_dir (same file system as the backing
 * directory, outside it), first undoing what the last run left pending.
 * Returns 0, or -1 with a message on stderr. */
int ld_open(const char *state_dir, int root_fd);

/* 1 once ld_open succeeded: namespace operations are then pending. */
int ld_active(void);

/* rel was just created (file, directory, link or symlink). */
void ld_created(const char *rel);

/* Before rel is replaced by a rename or unlinked: keeps its current inode
 * under a stash name. Returns the stash (caller passes it on to
 * ld_renamed / ld_unlinked, which own it) or NULL when rel does not exist
 * or is a directory. */
char *ld_stash(const char *rel);

/* from was renamed to to; stash holds what to was before (or NULL). */
void ld_renamed(const char *from, const char *to, char *stash);

/* rel was unlinked; stash holds its inode (or NULL: nothing to restore). */
void ld_unlinked(const char *rel, char *stash);

/* The empty directory rel was removed. */
void ld_rmdired(const char *rel);

/* Directory dir was fsynced: operations on its entries become durable. */
void ld_dir_synced(const char *dir);

#endif
