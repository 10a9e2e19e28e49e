/* The stdout output: writes every message a route delivers to standard
 * output as one JSON line (connectors/jsonl.c), flushed per batch. For
 * debugging routes and for piping into other tools. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "connector.h"
#include "jsonl.h"

/* No state: stdout is the process's, and stdio's own lock (flockfile)
 * keeps batches from several workers and connectors whole. */
static int stdout_init(sl_connector *c, sl_error *err)
{
    (void)err;
    c->state = NULL;
    return 0;
}

static void stdout_destroy(sl_connector *c)
{
    (void)c;
}

static void stdout_stop(sl_connector *c)
{
    (void)c;
}

/* Formats the batch, writes it to stdout under the stream's lock and
 * flushes it. Every result is SL_OK once fflush succeeded, else SL_RETRY
 * with the errno text (a closed pipe, a full disk behind a redirect).
 * Thread-safe. */
static void stdout_send(sl_connector *c, const sl_output_conf *out, sl_msg *const *msgs, size_t n,
                        sl_send_result *results)
{
    (void)c;
    (void)out;
    if (n == 0)
        return;
    sl_jsonl_buf buf;
    sl_jsonl_buf_init(&buf);
    for (size_t i = 0; i < n; i++) {
        if (sl_jsonl_append_msg(&buf, msgs[i]) < 0) {
            sl_jsonl_buf_free(&buf);
            for (size_t j = 0; j < n; j++)
                sl_send_result_set(&results[j], SL_RETRY, 0, "out of memory formatting a batch");
            return;
        }
    }
    int errnum = 0;
    flockfile(stdout);
    errno = 0;
    if (fwrite_unlocked(buf.data, 1, buf.len, stdout) != buf.len)
        errnum = errno ? errno : EIO;
    if (fflush_unlocked(stdout) != 0 && errnum == 0)
        errnum = errno ? errno : EIO;
    if (errnum)
        clearerr_unlocked(stdout);
    funlockfile(stdout);
    sl_jsonl_buf_free(&buf);
    char ebuf[128];
    const char *etext = errnum ? strerror_r(errnum, ebuf, sizeof ebuf) : "";
    for (size_t i = 0; i < n; i++) {
        if (errnum)
            sl_send_result_set(&results[i], SL_RETRY, 0, "write stdout: %s", etext);
        else
            sl_send_result_set(&results[i], SL_OK, 0, NULL);
    }
}

const sl_connector_type sl_stdout_connector = {
    .name = "stdout",
    .can_input = false,
    .can_output = true,
    .has_breaker = false,
    .summary = "writes each message to standard output as one JSON line",
    .init = stdout_init,
    .attach_input = NULL,
    .start = NULL,
    .send = stdout_send,
    .stop = stdout_stop,
    .destroy = stdout_destroy,
};
