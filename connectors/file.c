/* The file connector. Output: appends every message a route delivers to a
 * file as one JSON line (connectors/jsonl.c), one write and one fdatasync per
 * batch, so a batch is acknowledged only once it is on disk. Input: tails a
 * file into a route (connectors/file_input.c). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connector.h"
#include "file.h"
#include "jsonl.h"

/* One open output file. fd and the file's bytes are guarded by mu. */
typedef struct file_entry {
    char *path;
    int fd; /* -1 until opened, or after a failed reopen */
    pthread_mutex_t mu;
    struct file_entry *next;
} file_entry;

/* The connector's table of open files, path -> fd. A path is opened once
 * and kept open; a file renamed or removed behind our back (log rotation)
 * is reopened at the next batch. */
typedef struct file_state {
    pthread_mutex_t mu; /* guards the list, not the files */
    file_entry *files;
    sl_file_inputs *inputs; /* routes this connector feeds (file_input.c); NULL for none */
} file_state;

static int file_init(sl_connector *c, sl_error *err)
{
    file_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "file connector: out of memory");
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return sl_error_set(err, SL_ENOMEM, "file connector: cannot create a mutex");
    }
    c->state = s;
    return 0;
}

static void file_destroy(sl_connector *c)
{
    file_state *s = c->state;
    if (!s)
        return;
    sl_file_input_free(s->inputs);
    file_entry *e = s->files;
    while (e) {
        file_entry *next = e->next;
        if (e->fd >= 0)
            close(e->fd);
        pthread_mutex_destroy(&e->mu);
        free(e->path);
        free(e);
        e = next;
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
    c->state = NULL;
}

/* Returns the entry for path, creating it (not yet opened), or NULL when out
 * of memory. */
static file_entry *file_entry_get(file_state *s, const char *path)
{
    pthread_mutex_lock(&s->mu);
    file_entry *e = s->files;
    while (e && strcmp(e->path, path) != 0)
        e = e->next;
    if (!e) {
        e = calloc(1, sizeof *e);
        if (e) {
            e->path = strdup(path);
            if (!e->path || pthread_mutex_init(&e->mu, NULL) != 0) {
                free(e->path);
                free(e);
                e = NULL;
            } else {
                e->fd = -1;
                e->next = s->files;
                s->files = e;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* Creates every missing parent directory of path (mode 0755). Returns 0, or
 * -1 with errno set. */
static int make_parent_dirs(const char *path)
{
    char *p = strdup(path);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    for (char *q = p + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            errno = e;
            return -1;
        }
        *q = '/';
    }
    free(p);
    return 0;
}

/* Makes e->fd an fd open on e->path, reopening it when the file at path is
 * no longer the one we hold. Caller holds e->mu. Returns 0, or -1 with
 * errno set. */
static int file_entry_open(file_entry *e)
{
    if (e->fd >= 0) {
        struct stat held, now;
        if (stat(e->path, &now) == 0 && fstat(e->fd, &held) == 0 && held.st_dev == now.st_dev &&
            held.st_ino == now.st_ino)
            return 0;
        close(e->fd);
        e->fd = -1;
    }
    if (make_parent_dirs(e->path) < 0)
        return -1;
    int fd = open(e->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    e->fd = fd;
    return 0;
}

/* Writes len bytes at the end of e's file and fdatasyncs it. On failure the
 * file is cut back (best effort) to where it ended, so that a retry does not
 * leave a torn line behind. Caller holds e->mu. Returns 0 or -1 with errno. */
static int file_entry_write(file_entry *e, const char *data, size_t len)
{
    if (file_entry_open(e) < 0)
        return -1;
    off_t before = lseek(e->fd, 0, SEEK_END);
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(e->fd, data + done, len - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        done += (size_t)w;
    }
    if (fdatasync(e->fd) < 0)
        goto fail;
    return 0;
fail:;
    int saved = errno;
    if (before >= 0 && ftruncate(e->fd, before) < 0) {
        /* Nothing more to do: the retry appends the batch again. */
    }
    errno = saved;
    return -1;
}

/* Gives every result the same outcome; error is the text for non-OK ones. */
static void set_all(sl_send_result *results, size_t n, sl_result res, const char *error)
{
    for (size_t i = 0; i < n; i++)
        sl_send_result_set(&results[i], res, 0, "%s", res == SL_OK ? "" : error);
}

/* Appends the batch to the output's file (out->path, else the connector's
 * path) and fdatasyncs it; every result is SL_OK once the data is durable,
 * SL_RETRY with the errno text and path when opening, writing or syncing
 * fails, SL_FAIL when neither path is configured. Thread-safe: batches to
 * one file are written whole, one after the other. */
static void file_send(sl_connector *c, const sl_output_conf *out, sl_msg *const *msgs, size_t n,
                      sl_send_result *results)
{
    file_state *s = c->state;
    const sl_file_target *fo = out ? out->priv : NULL;
    const sl_file_conf *fc = c->conf ? c->conf->priv : NULL;
    const char *path = fo && fo->path && fo->path[0] ? fo->path : NULL;
    if (!path && fc && fc->path && fc->path[0])
        path = fc->path;
    if (n == 0)
        return;
    if (!path) {
        set_all(results, n, SL_FAIL,
                "file output has no path: set `path` on the output or on the connector");
        return;
    }
    char error[sizeof results[0].error];
    sl_jsonl_buf buf;
    sl_jsonl_buf_init(&buf);
    for (size_t i = 0; i < n; i++) {
        if (sl_jsonl_append_msg(&buf, msgs[i]) < 0) {
            sl_jsonl_buf_free(&buf);
            snprintf(error, sizeof error, "out of memory formatting a batch for %s", path);
            set_all(results, n, SL_RETRY, error);
            return;
        }
    }
    file_entry *e = file_entry_get(s, path);
    if (!e) {
        sl_jsonl_buf_free(&buf);
        snprintf(error, sizeof error, "out of memory opening %s", path);
        set_all(results, n, SL_RETRY, error);
        return;
    }
    pthread_mutex_lock(&e->mu);
    int rc = file_entry_write(e, buf.data, buf.len);
    int errnum = rc < 0 ? errno : 0;
    pthread_mutex_unlock(&e->mu);
    sl_jsonl_buf_free(&buf);
    if (rc < 0) {
        char ebuf[128];
        snprintf(error, sizeof error, "write %s: %s", path, strerror_r(errnum, ebuf, sizeof ebuf));
        set_all(results, n, SL_RETRY, error);
    } else {
        set_all(results, n, SL_OK, NULL);
    }
}

/* Stops the inputs (file_input.c); outputs have nothing to stop. */
static void file_stop(sl_connector *c)
{
    file_state *s = c->state;
    if (s)
        sl_file_input_stop(s->inputs);
}

static int file_attach_input(sl_connector *c, sl_route *route, sl_error *err)
{
    file_state *s = c->state;
    return sl_file_input_attach(&s->inputs, c, route, err);
}

static int file_start(sl_connector *c, sl_error *err)
{
    file_state *s = c->state;
    return sl_file_input_start(s->inputs, err);
}

/* ---- config ---- */

static const char *const conf_keys[] = {"path", NULL};
static const char *const target_keys[] = {"path", NULL};
static const sl_conf_doc conf_doc[] = {
    SL_DOC("path", "string", NULL, "file used by routes that give no path of their own"),
    SL_DOC_END};
static const sl_conf_doc input_doc[] = {
    SL_DOC(
        "path", "string", NULL,
        "file tailed (each line is one message; survives rotation); default: the connector's path"),
    SL_DOC_END};
static const sl_conf_doc output_doc[] = {
    SL_DOC("path", "string", NULL, "JSON Lines file appended to; default: the connector's path"),
    SL_DOC_END};

static void file_parse_conf(sl_conf_reader *r, sl_connector_conf *cc, const sl_node *n,
                            const char *path)
{
    sl_file_conf *fc = sl_pool_alloc(sl_conf_pool(r), sizeof *fc);
    if (!fc)
        return;
    cc->priv = fc;
    sl_conf_str(r, n, "path", path, &fc->path);
}

/* `from:` of a route: its path, else the connector's; one is required. */
static void file_parse_input(sl_conf_reader *r, const sl_route_conf *route,
                             const sl_connector_conf *cc, sl_input_conf *in, const sl_node *n,
                             const char *path)
{
    const sl_file_conf *fc = cc->priv;
    sl_file_target *ft = sl_pool_alloc(sl_conf_pool(r), sizeof *ft);
    if (!ft)
        return;
    in->priv = ft;
    if (!sl_conf_value(n, "path") && fc && fc->path)
        ft->path = sl_pool_strdup(sl_conf_pool(r), fc->path);
    else
        sl_conf_need_str(r, n, "path", path, &ft->path);
}

/* A `to:` element: its path, else the connector's; one is required. */
static void file_parse_output(sl_conf_reader *r, const sl_connector_conf *cc, sl_output_conf *out,
                              const sl_node *n, const char *path)
{
    const sl_file_conf *fc = cc->priv;
    sl_file_target *ft = sl_pool_alloc(sl_conf_pool(r), sizeof *ft);
    if (!ft)
        return;
    out->priv = ft;
    if (sl_conf_str(r, n, "path", path, &ft->path) || sl_conf_value(n, "path"))
        return;
    if (fc && fc->path)
        ft->path = sl_pool_strdup(sl_conf_pool(r), fc->path);
    else
        sl_conf_error_at(r, n->pos, "%s: missing required key 'path' (connector '%s' has no path)",
                         path, cc->name);
}

const sl_connector_type sl_file_connector = {
    .name = "file",
    .can_input = true,
    .can_output = true,
    .has_breaker = false,
    .conf_keys = conf_keys,
    .input_keys = target_keys,
    .output_keys = target_keys,
    .summary = "files: tail one (a message per line) or append one JSON line per message",
    .conf_doc = conf_doc,
    .input_doc = input_doc,
    .output_doc = output_doc,
    .parse_conf = file_parse_conf,
    .parse_input = file_parse_input,
    .parse_output = file_parse_output,
    .init = file_init,
    .attach_input = file_attach_input,
    .feeds_external_log = true, /* saves its position on the log's delivery reports */
    .source_keeps_messages = true,
    .start = file_start,
    .send = file_send,
    .stop = file_stop,
    .destroy = file_destroy,
};
