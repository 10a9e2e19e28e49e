/* mkdir -p for the event log (topic directories) and the gateway
 * (data_dir): see fs.h. The path is copied onto the stack, so creating a
 * directory allocates nothing. */
#include "fs.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

/* mkdir(dir) that counts an existing entry as success. */
static int make_one(const char *dir, mode_t mode)
{
    return mkdir(dir, mode) != 0 && errno != EEXIST ? -1 : 0;
}

int sl_mkdir_p(const char *path, mode_t mode, size_t *failed_len)
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
        int rc = make_one(buf, mode);
        buf[i] = c;
        if (rc != 0) {
            if (failed_len)
                *failed_len = i;
            return -1;
        }
    }
    return 0;
}
