/* The file input: tails a file (polling), appends each line to the route's
 * log and, once those appends are durable, records how far it got (inode
 * and byte offset) in a small state file under data_dir, so that a restart
 * resumes there. Survives rotation (rename + new file) and truncation. On a
 * route whose log a connector holds (`log:`, Kafka), each append is a ticket
 * and the position is saved once every ticket's delivery report said
 * stored; after a failed one the input reads again from the saved position. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "file.h"
#include "gateway.h"
#include "logging.h"
#include "route.h"
#include "thread_name.h"

#define FI_COMPONENT "file"
#define FI_READ_CHUNK 65536      /* bytes read per read(2) */
#define FI_BATCH_BYTES (1 << 20) /* lines appended before waiting for durability */
#define FI_MAX_LINE (64 << 20)   /* a longer line is cut there (and a warning logged) */
#define FI_POLL_MS 50            /* how often an idle file is looked at again */
#define FI_ROTATE_GRACE_MS 1000  /* a rotated file idle this long is finished */
#define FI_BACKOFF_MS 200        /* between append attempts under back-pressure */

/* One route reading one file. All fields but stop belong to its thread once
 * started. */
typedef struct file_input {
    sl_connector *c;
    sl_route *route;
    const char *route_name;
    const char *path;  /* the file tailed (config) */
    char *state_path;  /* DATA_DIR/file_input/ROUTE.pos */
    int fd;            /* -1 while the file does not exist */
    ino_t ino;         /* of fd */
    int64_t pos;       /* file offset after the last line taken */
    int64_t saved_pos; /* what the state file says (with saved_ino) */
    ino_t saved_ino;
    bool rotating;         /* the path names another file: finishing this one */
    int64_t idle_since_ms; /* rotating, and nothing read since then; 0 = data was read */
    char *buf;             /* bytes read past pos: a partial line */
    size_t len, cap;
    int64_t *last; /* per partition: highest offset appended since the last save; -1 none */
    int n_parts;
    /* A connector's log: the delivery reports of the appends since the
     * last save (reports under mu; tickets owned by the thread). */
    bool external;
    int64_t *tickets;
    size_t n_tickets, cap_tickets;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t reports_due;
    atomic_bool report_failed;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    struct file_input *next;
} file_input;

struct sl_file_inputs {
    file_input *head;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the state file ---- */

/* Reads "1 INODE OFFSET" from the state file into saved_ino/saved_pos; a
 * missing or unreadable file leaves them 0 (start from the beginning). */
static void state_load(file_input *in)
{
    in->saved_ino = 0;
    in->saved_pos = 0;
    FILE *f = fopen(in->state_path, "r");
    if (!f)
        return;
    unsigned long long ino = 0;
    long long off = 0;
    int version = 0;
    if (fscanf(f, "%d %llu %lld", &version, &ino, &off) == 3 && version == 1 && off >= 0) {
        in->saved_ino = (ino_t)ino;
        in->saved_pos = off;
    } else {
        sl_warn(FI_COMPONENT, "route %s: ignoring unreadable position file %s", in->route_name,
                in->state_path);
    }
    fclose(f);
}

/* Writes the position atomically (temp file, fsync, rename, fsync of the
 * directory). Returns 0, or -1 with err. */
static int state_write(const char *path, ino_t ino, int64_t pos, sl_error *err)
{
    char tmp[4096], text[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int n = snprintf(text, sizeof text, "1 %llu %" PRId64 "\n", (unsigned long long)ino, pos);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "open %s: %s", tmp, strerror(errno));
    bool ok = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    int errnum = errno;
    close(fd);
    if (!ok || rename(tmp, path) != 0)
        return sl_error_set(err, SL_EIO, "write %s: %s", path, strerror(ok ? errno : errnum));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* sl_route_on_durable callback of one ticket (the log's thread, or inline). */
static void on_report(void *arg, int64_t offset, const sl_error *err)
{
    file_input *in = arg;
    (void)offset;
    if (err)
        atomic_store(&in->report_failed, true);
    pthread_mutex_lock(&in->mu);
    in->reports_due--;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
}

/* Makes room for one more ticket. Returns 0, or -1 with err (SL_ENOMEM). */
static int tickets_reserve(file_input *in, sl_error *err)
{
    if (in->n_tickets < in->cap_tickets)
        return 0;
    size_t cap = in->cap_tickets ? in->cap_tickets * 2 : 256;
    int64_t *t = realloc(in->tickets, cap * sizeof *t);
    if (!t)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    in->tickets = t;
    in->cap_tickets = cap;
    return 0;
}

/* Waits for the delivery report of every ticket since the last save. After
 * a failed one, the lines since the saved position are read again (those
 * stored are then appended twice: at least once). Returns 0 when all were
 * stored, else -1 (logged). */
static int tickets_wait(file_input *in)
{
    pthread_mutex_lock(&in->mu);
    in->reports_due += in->n_tickets;
    pthread_mutex_unlock(&in->mu);
    for (size_t i = 0; i < in->n_tickets; i++) {
        sl_error e;
        if (sl_route_on_durable(in->route, 0, in->tickets[i], on_report, in, &e) < 0)
            on_report(in, -1, &e);
    }
    in->n_tickets = 0;
    pthread_mutex_lock(&in->mu);
    while (in->reports_due > 0)
        pthread_cond_wait(&in->cv, &in->mu);
    pthread_mutex_unlock(&in->mu);
    if (!atomic_exchange(&in->report_failed, false))
        return 0;
    in->pos = in->saved_ino == in->ino ? in->saved_pos : 0;
    in->len = 0;
    if (in->fd >= 0 && lseek(in->fd, in->pos, SEEK_SET) != in->pos)
        in->pos = 0;
    sl_err(FI_COMPONENT,
           "route %s: Kafka did not store some lines; reading %s again from byte %" PRId64,
           in->route_name, in->path, in->pos);
    return -1;
}

/* Waits until every line appended since the last save is durable in the
 * log, then saves (ino, pos). Returns 0, or -1 (logged) when the log could
 * not make them durable: nothing is saved then, so they are read again. */
static int commit(file_input *in)
{
    if (in->external && tickets_wait(in) < 0)
        return -1;
    for (int p = 0; p < in->n_parts && !in->external; p++) {
        if (in->last[p] < 0)
            continue;
        sl_error e;
        if (sl_partition_wait_durable(sl_route_partition(in->route, p), in->last[p], -1, &e) < 0) {
            sl_err(FI_COMPONENT, "route %s: appended lines not durable: %s", in->route_name, e.msg);
            return -1;
        }
        in->last[p] = -1;
    }
    if (in->saved_ino == in->ino && in->saved_pos == in->pos)
        return 0;
    sl_error e;
    if (state_write(in->state_path, in->ino, in->pos, &e) < 0) {
        sl_err(FI_COMPONENT, "route %s: cannot save the position: %s", in->route_name, e.msg);
        return -1;
    }
    in->saved_ino = in->ino;
    in->saved_pos = in->pos;
    return 0;
}

/* ---- lines into messages ---- */

static bool is_uuid(const char *s, size_t len)
{
    if (len != SL_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* Fills msg from a line the file output wrote ({"id","key","timestamp",
 * "headers","body"}): the id when it is a UUID, key, timestamp, string
 * headers and the body (a string's bytes, else the JSON text, then with
 * content-type application/json unless a header says otherwise). Returns
 * 0, or -1 when out of memory. */
static int msg_from_jsonl(sl_msg *msg, json_t *o)
{
    json_t *id = json_object_get(o, "id"), *key = json_object_get(o, "key");
    json_t *ts = json_object_get(o, "timestamp"), *hdrs = json_object_get(o, "headers");
    json_t *body = json_object_get(o, "body");
    if (json_is_string(id) && is_uuid(json_string_value(id), json_string_length(id)))
        memcpy(msg->id, json_string_value(id), SL_ID_LEN + 1);
    if (json_is_integer(ts) && json_integer_value(ts) > 0)
        msg->timestamp_ms = json_integer_value(ts);
    if (json_is_string(key) &&
        sl_msg_set_key(msg, json_string_value(key), json_string_length(key)) < 0)
        return -1;
    const char *name;
    json_t *v;
    json_object_foreach(hdrs, name, v)
    {
        if (json_is_string(v) &&
            sl_msg_set_header(msg, name, json_string_value(v), json_string_length(v)) < 0)
            return -1;
    }
    if (json_is_string(body))
        return sl_msg_set_body(msg, json_string_value(body), json_string_length(body));
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    int rc = text ? sl_msg_set_body(msg, text, strlen(text)) : -1;
    free(text);
    if (rc == 0 && !sl_msg_get_header(msg, SL_HDR_CONTENT_TYPE, NULL))
        rc = sl_msg_set_header(msg, SL_HDR_CONTENT_TYPE, "application/json", 16);
    return rc;
}

/* The message for one line (without its '\n'; a trailing '\r' is dropped):
 * a JSON object with a "body" member is read as the file output writes a
 * message, any other line becomes the body as it is. NULL when out of
 * memory. */
static sl_msg *msg_from_line(const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    sl_msg *msg = sl_msg_new();
    if (!msg)
        return NULL;
    json_t *o = NULL;
    if (len > 0 && line[0] == '{')
        o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    int rc;
    if (json_is_object(o) && json_object_get(o, "body"))
        rc = msg_from_jsonl(msg, o);
    else
        rc = sl_msg_set_body(msg, line, len);
    json_decref(o);
    if (rc < 0) {
        sl_msg_free(msg);
        return NULL;
    }
    return msg;
}

/* Appends one line to the route, retrying while the log pushes back; a line
 * the route's key cannot be read from goes to the dead letter topic.
 * Returns 0 when taken, -1 when stop was asked first or a delivery report
 * failed since the last save (not taken). */
static int take_line(file_input *in, const char *line, size_t len)
{
    for (bool warned = false;; warned = true) {
        sl_error e;
        if (atomic_load(&in->report_failed))
            return -1; /* commit reads again from the saved position */
        sl_msg *msg = msg_from_line(line, len);
        if (!msg || (in->external && tickets_reserve(in, &e) < 0))
            sl_error_set(&e, SL_ENOMEM, "out of memory");
        else if (sl_route_append(in->route, msg, &e) == 0) {
            if (in->external)
                in->tickets[in->n_tickets++] = msg->offset;
            else if (msg->offset > in->last[msg->partition])
                in->last[msg->partition] = msg->offset;
            sl_msg_free(msg);
            return 0;
        }
        if (msg && e.code == SL_EINVAL) {
            char why[sizeof e.msg + 64];
            snprintf(why, sizeof why, "input %s: %s", in->c->conf->name, e.msg);
            sl_error de;
            int rc = sl_route_dead_letter(in->route, msg, why, &de);
            sl_msg_free(msg);
            if (rc == 0)
                return 0;
            e = de;
        } else {
            sl_msg_free(msg);
        }
        if (!warned) /* once per line, not every FI_BACKOFF_MS */
            sl_warn(FI_COMPONENT, "route %s: cannot append a line of %s (%s); retrying",
                    in->route_name, in->path, e.msg);
        if (atomic_load(&in->stop))
            return -1;
        sleep_ms(FI_BACKOFF_MS);
    }
}

/* ---- reading ---- */

/* Takes every complete line in the buffer (and, when all is set, the
 * partial one at its end too). Advances pos past each line taken. Returns
 * the number of bytes taken, or -1 when stop interrupted it. */
static ssize_t take_lines(file_input *in, bool all)
{
    size_t start = 0;
    int rc = 0;
    while (start < in->len && rc == 0) {
        char *nl = memchr(in->buf + start, '\n', in->len - start);
        if (!nl && !all)
            break;
        size_t end = nl ? (size_t)(nl - in->buf) : in->len;
        bool empty = nl && end == start; /* an empty line carries no message */
        if (!empty) // cppcheck-suppress knownConditionTrueFalse ; nl may point at buf[start]
            rc = take_line(in, in->buf + start, end - start);
        if (rc == 0) {
            size_t next = nl ? end + 1 : end;
            in->pos += (int64_t)(next - start);
            start = next;
        }
    }
    memmove(in->buf, in->buf + start, in->len - start);
    in->len -= start;
    return rc < 0 ? -1 : (ssize_t)start;
}

/* Reads what the file has past the buffer, up to about FI_BATCH_BYTES, and
 * takes its complete lines. Returns the bytes read (0 at end of file), or
 * -1 on a read error or stop. */
static ssize_t read_some(file_input *in)
{
    ssize_t total = 0;
    while (total < FI_BATCH_BYTES) {
        if (in->cap - in->len < FI_READ_CHUNK) {
            size_t ncap = in->cap ? in->cap * 2 : 2 * FI_READ_CHUNK;
            char *nb = ncap <= FI_MAX_LINE + 2 * FI_READ_CHUNK ? realloc(in->buf, ncap) : NULL;
            if (!nb) { /* a line longer than FI_MAX_LINE: take what we have */
                sl_warn(FI_COMPONENT, "route %s: a line of %s is longer than %d bytes; cut",
                        in->route_name, in->path, FI_MAX_LINE);
                if (take_lines(in, true) < 0)
                    return -1;
                continue;
            }
            in->buf = nb;
            in->cap = ncap;
        }
        ssize_t n = read(in->fd, in->buf + in->len, in->cap - in->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sl_err(FI_COMPONENT, "route %s: read %s: %s", in->route_name, in->path,
                   strerror(errno));
            return -1;
        }
        if (n == 0)
            break;
        in->len += (size_t)n;
        total += n;
        if (take_lines(in, false) < 0)
            return -1;
    }
    return total;
}

/* Opens the file at start: resumes at the saved offset when the inode is
 * the saved one and the file is not shorter, else starts from 0. Returns
 * 0, or -1 when the file does not exist (yet). */
static int open_file(file_input *in, bool resume)
{
    int fd = open(in->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    in->fd = fd;
    in->ino = st.st_ino;
    in->pos = 0;
    in->len = 0;
    if (resume && st.st_ino == in->saved_ino && st.st_size >= in->saved_pos)
        in->pos = in->saved_pos;
    if (in->pos > 0 && lseek(fd, in->pos, SEEK_SET) != in->pos)
        in->pos = 0;
    sl_info(FI_COMPONENT, "route %s: reading %s (inode %llu) from byte %" PRId64, in->route_name,
            in->path, (unsigned long long)in->ino, in->pos);
    return 0;
}

/* At the end of the file: notices truncation (start over at 0) and
 * rotation (the path names another inode, or nothing: once the old file has
 * been idle for FI_ROTATE_GRACE_MS, finish it, its last partial line
 * included, and open the new one from 0). */
static void check_file(file_input *in)
{
    struct stat fst, pst;
    if (fstat(in->fd, &fst) == 0 && fst.st_size < in->pos + (int64_t)in->len) {
        sl_warn(FI_COMPONENT, "route %s: %s was truncated; reading it from the start",
                in->route_name, in->path);
        lseek(in->fd, 0, SEEK_SET);
        in->pos = 0;
        in->len = 0;
        return;
    }
    if (stat(in->path, &pst) == 0 && pst.st_ino == in->ino)
        return;
    /* Rotated. A writer may still append to the old file until it reopens:
     * keep reading it until it has been idle for FI_ROTATE_GRACE_MS. */
    int64_t now = sl_mono_ms();
    if (!in->rotating)
        sl_info(FI_COMPONENT, "route %s: %s was rotated; reading the old file until it is idle",
                in->route_name, in->path);
    in->rotating = true;
    if (in->idle_since_ms == 0)
        in->idle_since_ms = now;
    if (now - in->idle_since_ms < FI_ROTATE_GRACE_MS)
        return;
    if (take_lines(in, true) < 0 || commit(in) < 0)
        return;
    sl_info(FI_COMPONENT, "route %s: %s was rotated; finished the old file at byte %" PRId64,
            in->route_name, in->path, in->pos);
    close(in->fd);
    in->fd = -1;
    in->idle_since_ms = 0;
    in->rotating = false;
    if (open_file(in, false) == 0)
        commit(in); /* the new inode at 0: a restart must not go back to the old one */
}

static void *input_main(void *arg)
{
    file_input *in = arg;
    bool warned = false;
    state_load(in); /* here, not at attach: a reload's old generation has saved by now */
    while (!atomic_load(&in->stop)) {
        if (in->fd < 0 && open_file(in, true) < 0) {
            if (!warned)
                sl_warn(FI_COMPONENT, "route %s: waiting for %s to exist", in->route_name,
                        in->path);
            warned = true;
            sleep_ms(FI_POLL_MS);
            continue;
        }
        ssize_t n = read_some(in);
        if (commit(in) < 0 || n < 0) {
            sleep_ms(FI_BACKOFF_MS);
            continue;
        }
        if (n > 0)
            in->idle_since_ms = 0;
        if (n == 0) {
            check_file(in);
            sleep_ms(FI_POLL_MS);
        }
    }
    commit(in); /* what was appended is durable and saved before stop returns */
    return NULL;
}

/* ---- the connector's input side ---- */

static void input_free(file_input *in)
{
    if (in->fd >= 0)
        close(in->fd);
    free(in->state_path);
    free(in->buf);
    free(in->last);
    free(in->tickets);
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cv);
    free(in);
}

/* Builds DATA_DIR/file_input/ROUTE.pos (creating the directory). */
static char *state_path_for(sl_connector *c, const char *route, sl_error *err)
{
    const sl_gateway_conf *gw = sl_connector_settings(c);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/file_input", gw ? gw->data_dir : "./data");
    if (sl_data_dir_prepare(dir, gw ? gw->log.data_mode : SL_DATA_PRIVATE, err) < 0)
        return NULL;
    char *p = NULL;
    if (asprintf(&p, "%s/%s.pos", dir, route) < 0) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    return p;
}

int sl_file_input_attach(sl_file_inputs **ins, sl_connector *c, sl_route *route, sl_error *err)
{
    const sl_route_conf *rc = sl_route_get_conf(route);
    const sl_file_target *ft = rc->from.priv;
    if (!ft || !ft->path || !ft->path[0])
        return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: routes.%s.from: file input needs a path",
                            rc->from.pos.file, rc->from.pos.line, rc->from.pos.col, rc->name);
    if (!*ins && !(*ins = calloc(1, sizeof **ins)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    file_input *in = calloc(1, sizeof *in);
    int n_parts = sl_route_partition_count(route);
    if (!in || !(in->last = malloc((size_t)n_parts * sizeof *in->last))) {
        free(in);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    for (int p = 0; p < n_parts; p++)
        in->last[p] = -1;
    in->n_parts = n_parts;
    in->external = sl_route_external_log(route);
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
    atomic_init(&in->report_failed, false);
    in->c = c;
    in->route = route;
    in->route_name = rc->name;
    in->path = ft->path;
    in->fd = -1;
    atomic_init(&in->stop, false);
    in->state_path = state_path_for(c, rc->name, err);
    if (!in->state_path) {
        input_free(in);
        return -1;
    }
    in->next = (*ins)->head;
    (*ins)->head = in;
    return 0;
}

int sl_file_input_start(sl_file_inputs *ins, sl_error *err)
{
    for (file_input *in = ins ? ins->head : NULL; in; in = in->next) {
        if (pthread_create(&in->thread, NULL, input_main, in) != 0)
            return sl_error_set(err, SL_ENOMEM, "route %s: cannot start the file input thread",
                                in->route_name);
        sl_thread_name(in->thread, "file-in:%s", in->route_name);
        in->started = true;
    }
    return 0;
}

void sl_file_input_stop(sl_file_inputs *ins)
{
    for (file_input *in = ins ? ins->head : NULL; in; in = in->next)
        atomic_store(&in->stop, true);
    for (file_input *in = ins ? ins->head : NULL; in; in = in->next) {
        if (in->started)
            pthread_join(in->thread, NULL);
        in->started = false;
    }
}

void sl_file_input_free(sl_file_inputs *ins)
{
    if (!ins)
        return;
    sl_file_input_stop(ins);
    file_input *in = ins->head;
    while (in) {
        file_input *next = in->next;
        input_free(in);
        in = next;
    }
    free(ins);
}
