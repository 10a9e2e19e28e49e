/* Unit tests for core/logging.c: the text and JSON line formats as written to
 * stderr (captured through a pipe), level filtering, escaping, truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logging.h"

/* Swaps stderr for a pipe; capture_end returns what was written. */
typedef struct capture {
    int saved;
    int rd;
    char buf[16384];
} capture;

static void capture_begin(capture *c)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
    close(fds[1]);
    c->rd = fds[0];
}

static const char *capture_end(capture *c)
{
    assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
    close(c->saved);
    size_t len = 0;
    ssize_t n;
    while ((n = read(c->rd, c->buf + len, sizeof c->buf - 1 - len)) > 0)
        len += (size_t)n;
    close(c->rd);
    c->buf[len] = '\0';
    return c->buf;
}

static void test_text_line(void **state)
{
    sl_logging_setup(false, SL_LVL_INFO);
    capture c;
    capture_begin(&c);
    sl_info("http_server", "listening on %s:%d", "0.0.0.0", 8080);
    sl_debug("http_server", "not shown");
    sl_err("log", "fsync failed:\nEIO");
    const char *out = capture_end(&c);

    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                             "INFO  http_server: listening on 0\\.0\\.0\\.0:8080\n"
                             "[0-9T:.Z-]{24} ERROR log: fsync failed:\\\\nEIO\n$",
                             REG_EXTENDED),
                     0);
    int rc = regexec(&re, out, 0, NULL, 0);
    regfree(&re);
    if (rc != 0)
        fail_msg("unexpected output: %s", out);
}

static void test_json_line_parses(void **state)
{
    sl_logging_setup(true, SL_LVL_DEBUG);
    capture c;
    capture_begin(&c);
    errno = EAGAIN;
    sl_warn("amqp \"in\"", "quote \" backslash \\ tab\t ctrl \x01 bad utf8 \xff ok \xc3\xa9");
    assert_int_equal(errno, EAGAIN); /* logging leaves errno alone */
    const char *out = capture_end(&c);
    sl_logging_setup(false, SL_LVL_INFO);

    size_t len = strlen(out);
    assert_true(len > 0);
    assert_int_equal(out[len - 1], '\n');
    assert_null(memchr(out, '\n', len - 1)); /* one line */
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    if (!j)
        fail_msg("not JSON (%s): %s", jerr.text, out);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "component")), "amqp \"in\"");
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "quote \" backslash \\ tab\t ctrl \x01 bad utf8 \xef\xbf\xbd ok \xc3\xa9");
    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[23], 'Z');
    assert_int_equal(json_object_size(j), 4);
    json_decref(j);
}

static void test_long_lines_truncated(void **state)
{
    char *big = malloc(20000);
    assert_non_null(big);
    memset(big, 'a', 19999);
    big[19999] = '\0';
    big[5000] = '"'; /* escapes near the cut must not break the JSON */

    for (int json = 0; json <= 1; json++) {
        sl_logging_setup(json, SL_LVL_INFO);
        capture c;
        capture_begin(&c);
        sl_info("big", "%s", big);
        const char *out = capture_end(&c);
        size_t len = strlen(out);
        assert_true(len <= 4096);
        assert_int_equal(out[len - 1], '\n');
        if (json) {
            assert_memory_equal(out + len - 6, "...\"}\n", 6);
            json_t *j = json_loads(out, 0, NULL);
            assert_non_null(j);
            json_decref(j);
        } else {
            assert_memory_equal(out + len - 4, "...\n", 4);
        }
    }
    sl_logging_setup(false, SL_LVL_INFO);
    free(big);
}

/* Structured fields: JSON members (strings and numbers) before msg; in
 * text, ` key=value` after the message, quoted when needed. */
static void test_fields(void **state)
{
    (void)state;
    sl_log_field f[] = {SL_LF_STR("route", "orders"),
                        SL_LF_STR("msg_id", "m-1"),
                        SL_LF_INT("partition", 2),
                        SL_LF_INT("offset", 41),
                        SL_LF_NONE,
                        SL_LF_STR("error", "HTTP 503 \"busy\"")};
    sl_logging_setup(true, SL_LVL_DEBUG);
    capture c;
    capture_begin(&c);
    sl_logf_fields(SL_LVL_WARN, "route", f, 6, "dead-lettered %s", "m-1");
    const char *out = capture_end(&c);
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "route")), "orders");
    assert_string_equal(json_string_value(json_object_get(o, "msg_id")), "m-1");
    assert_int_equal(json_integer_value(json_object_get(o, "partition")), 2);
    assert_int_equal(json_integer_value(json_object_get(o, "offset")), 41);
    assert_string_equal(json_string_value(json_object_get(o, "error")), "HTTP 503 \"busy\"");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "dead-lettered m-1");
    assert_int_equal(json_object_size(o), 9);
    json_decref(o);

    sl_logging_setup(false, SL_LVL_DEBUG);
    capture_begin(&c);
    sl_logf_fields(SL_LVL_DEBUG, "route", f, 6, "retry");
    out = capture_end(&c);
    assert_non_null(strstr(out, "route: retry route=orders msg_id=m-1 partition=2 offset=41 "
                                "error=\"HTTP 503 \\\"busy\\\"\"\n"));
    sl_logging_setup(false, SL_LVL_INFO);
}

static void test_level_parse(void **state)
{
    assert_int_equal(sl_level_parse("debug"), SL_LVL_DEBUG);
    assert_int_equal(sl_level_parse("INFO"), SL_LVL_INFO);
    assert_int_equal(sl_level_parse("warn"), SL_LVL_WARN);
    assert_int_equal(sl_level_parse("error"), SL_LVL_ERROR);
    assert_int_equal(sl_level_parse("loud"), SL_LVL_INFO);
    assert_int_equal(sl_level_parse(NULL), SL_LVL_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_line),
        cmocka_unit_test(test_json_line_parses),
        cmocka_unit_test(test_long_lines_truncated),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
