/* File-system helpers shared by the event log and the gateway's data_dir
 * preparation: errno-style results, no allocation, no logging. */
#ifndef SLUICE_LIB_FS_H
#define SLUICE_LIB_FS_H

#include <stddef.h>
#include <sys/types.h>

/* Creates the directory path and every missing parent (like `mkdir -p`),
 * each with mode (before the umask). An existing directory is fine. Returns
 * 0, or -1 with errno set (ENAMETOOLONG when path is PATH_MAX bytes or
 * longer, ENOENT for an empty path, else mkdir's errno) and, when failed_len
 * is not NULL, *failed_len set to the length of the prefix of path whose
 * creation failed, for the error message. Directories made before a failure
 * are left in place. Thread-safe. */
int sl_mkdir_p(const char *path, mode_t mode, size_t *failed_len);

/* sl_mkdir_p that also makes each new name durable: after creating a
 * directory it fsyncs the directory that holds it (so a power cut cannot
 * take back a directory, and with it what is later written inside). Only
 * directories it created cost an fsync. Errors as sl_mkdir_p, plus fsync's
 * errno (*failed_len then covers the directory just created). */
int sl_mkdir_p_durable(const char *path, mode_t mode, size_t *failed_len);

#endif
