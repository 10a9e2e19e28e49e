/* mkdir -p for the event log (topic directories) and the gateway
 * (data_dir), with or without fsyncs of the directories that get new names:
 * see fs.h. The path is copied onto the stack, so creating a directory
 * allocates nothing. */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* fsyncs the directory that holds the last name of path (buf is writable:
 * the name is cut off and put back). */
static int sync_parent(char *path)
{
    char *slash = strrchr(path, '/');
    const char *parent = ".";
    if (slash == path)
        parent = "/";
    else if (slash) {
        *slash = '\0';
        parent = path;
    }
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (slash && slash != path)
        *slash = '/';
    errno = e;
    return rc;
}

/* mkdir(dir) that counts an existing entry as success; after a real
 * creation, fsyncs its parent when durable is set. */
static int make_one(char *dir, mode_t mode, int durable)
{
    if (mkdir(dir, mode) != 0)
        return errno == EEXIST ? 0 : -1;
    return durable ? sync_parent(dir) : 0;
}

static int mkdir_p(const char *path, mode_t mode, size_t *failed_len, int durable)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = n == 0 ? ENOENT : ENAMETOOLONG;
        if (failed_len)
            *failed_len = n;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        int rc = make_one(buf, mode, durable);
        buf[i] = c;
        if (rc != 0) {
            if (failed_len)
                *failed_len = i;
            return -1;
        }
    }
    return 0;
}

int sl_mkdir_p(const char *path, mode_t mode, size_t *failed_len)
{
    return mkdir_p(path, mode, failed_len, 0);
}

int sl_mkdir_p_durable(const char *path, mode_t mode, size_t *failed_len)
{
    return mkdir_p(path, mode, failed_len, 1);
}
