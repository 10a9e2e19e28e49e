/* Secrets in the config (see sl_conf_secret in config.h): a value written
 * in the YAML (usually "${VAR}", expanded like every string) or
 * "file:PATH", read from a file beside the config. The value is never
 * copied into an error message. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Largest secret file read: keys and tokens, not documents. */
#define SECRET_MAX (64 * 1024)

/* Writes into out PATH resolved against the directory of the config file
 * that names it (an absolute PATH is kept). False when it does not fit. */
static bool resolve(const char *conf_file, const char *path, char *out, size_t cap)
{
    if (path[0] == '/' || !conf_file || !strrchr(conf_file, '/'))
        return (size_t)snprintf(out, cap, "%s", path) < cap;
    int dir = (int)(strrchr(conf_file, '/') - conf_file);
    return (size_t)snprintf(out, cap, "%.*s/%s", dir, conf_file, path) < cap;
}

/* Reads the whole secret file into a pool string, one trailing "\n" or
 * "\r\n" stripped. NULL with *why set (an errno text or a size message). */
static const char *read_secret(sl_conf_reader *r, const char *file, const char **why)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        *why = strerror(errno);
        return NULL;
    }
    char *buf = sl_pool_alloc(sl_conf_pool(r), SECRET_MAX + 1);
    size_t n = buf ? fread(buf, 1, SECRET_MAX + 1, f) : 0;
    bool failed = !buf || ferror(f);
    fclose(f);
    if (failed || n > SECRET_MAX) {
        *why = failed ? "cannot be read" : "is larger than 64 KiB";
        return NULL;
    }
    if (n && buf[n - 1] == '\n')
        n--;
    if (n && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return buf;
}

bool sl_conf_secret(sl_conf_reader *r, const sl_node *map, const char *key, const char *path,
                    bool required, const char **out)
{
    const sl_node *n = sl_conf_value(map, key);
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, key);
    if (!n) {
        if (required)
            sl_conf_missing(r, map, path, key);
        return false;
    }
    if (n->kind != SL_NODE_SCALAR) {
        sl_conf_type_error(r, n, p, "a string (the secret, \"${VAR}\" or \"file:PATH\")");
        return false;
    }
    if (strncmp(n->scalar, "file:", 5) != 0) {
        if (!n->scalar[0]) {
            sl_conf_error_at(r, n->pos, "%s: the secret is empty (an unset variable?)", p);
            return false;
        }
        *out = sl_pool_strdup(sl_conf_pool(r), n->scalar);
        return *out != NULL;
    }
    char file[4096];
    const char *why = "path too long";
    const char *v =
        resolve(n->pos.file, n->scalar + 5, file, sizeof file) ? read_secret(r, file, &why) : NULL;
    if (!v) {
        sl_conf_error_at(r, n->pos, "%s: secret file %s: %s", p, file, why);
        return false;
    }
    if (!v[0]) {
        sl_conf_error_at(r, n->pos, "%s: secret file %s is empty", p, file);
        return false;
    }
    *out = v;
    return true;
}
