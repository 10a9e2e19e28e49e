/* Unit tests for the file and stdout outputs (connectors/file.c,
 * connectors/stdout.c) and their JSON-line format (connectors/jsonl.c):
 * one valid JSON line per message, appended, durable, errors as SL_RETRY. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "connector.h"
#include "file.h"
#include "jsonl.h"

extern const sl_connector_type sl_file_connector;
extern const sl_connector_type sl_stdout_connector;

static sl_msg *mk_msg(const char *id, const char *key, const char *body, size_t body_len,
                      const char *ctype)
{
    sl_msg *m = calloc(1, sizeof *m);
    assert_non_null(m);
    snprintf(m->id, sizeof m->id, "%s", id);
    if (key) {
        m->key = strdup(key);
        m->key_len = strlen(key);
    }
    m->body = malloc(body_len + 1);
    memcpy(m->body, body, body_len);
    m->body[body_len] = '\0';
    m->body_len = body_len;
    m->timestamp_ms = 1700000000123;
    m->headers = calloc(2, sizeof *m->headers);
    m->cap_headers = 2;
    m->headers[0].name = strdup("x-source");
    m->headers[0].value = strdup("unit\ttest");
    m->headers[0].value_len = strlen(m->headers[0].value);
    m->n_headers = 1;
    if (ctype) {
        m->headers[1].name = strdup("content-type");
        m->headers[1].value = strdup(ctype);
        m->headers[1].value_len = strlen(ctype);
        m->n_headers = 2;
    }
    return m;
}

static void free_msg(sl_msg *m)
{
    for (size_t i = 0; i < m->n_headers; i++) {
        free(m->headers[i].name);
        free(m->headers[i].value);
    }
    free(m->headers);
    free(m->key);
    free(m->body);
    free(m);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Splits text into lines (each must end in '\n') and parses each as JSON. */
static size_t parse_lines(char *text, json_t **out, size_t cap)
{
    size_t n = 0;
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        *nl = '\0';
        json_error_t jerr;
        assert_true(n < cap);
        out[n] = json_loads(p, 0, &jerr);
        if (!out[n])
            fail_msg("line %zu is not JSON: %s: %s", n + 1, jerr.text, p);
        n++;
        p = nl + 1;
    }
    return n;
}

typedef struct batch {
    sl_msg *m[4];
    size_t n;
} batch;

static void make_batch(batch *b)
{
    static const char text[] = "line1\nline2 \"quoted\" \\ \x01 \xff\xfe caf\xc3\xa9";
    static const char order[] =
        "{ \"order\": { \"id\": 7, \"total\": 0.1 },\n \"tags\": [\"a b\"] }";
    b->m[0] = mk_msg("0190f5e6-0000-7000-8000-000000000001", "cust-1", order, sizeof order - 1,
                     "application/json; charset=utf-8");
    b->m[1] =
        mk_msg("0190f5e6-0000-7000-8000-000000000002", NULL, text, sizeof text - 1, "text/plain");
    b->m[2] = mk_msg("0190f5e6-0000-7000-8000-000000000003", NULL, "[1, 2, 3]", 9, NULL);
    b->m[3] = mk_msg("0190f5e6-0000-7000-8000-000000000004", "k", "not json {", 10, NULL);
    b->n = 4;
}

static void free_batch(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free_msg(b->m[i]);
}

static void check_lines(json_t **j, size_t base)
{
    /* JSON body embedded as JSON, number text kept (0.1 stays 0.1). */
    json_t *l0 = j[base];
    assert_string_equal(json_string_value(json_object_get(l0, "id")),
                        "0190f5e6-0000-7000-8000-000000000001");
    assert_string_equal(json_string_value(json_object_get(l0, "key")), "cust-1");
    assert_int_equal(json_integer_value(json_object_get(l0, "timestamp")), 1700000000123);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(l0, "headers"), "x-source")),
        "unit\ttest");
    json_t *order = json_object_get(json_object_get(l0, "body"), "order");
    assert_true(json_is_object(order));
    assert_int_equal(json_integer_value(json_object_get(order, "id")), 7);
    /* Text body as a string; invalid UTF-8 bytes as Latin-1 \u00XX. */
    json_t *l1 = j[base + 1];
    assert_true(json_is_null(json_object_get(l1, "key")));
    assert_string_equal(json_string_value(json_object_get(l1, "body")),
                        "line1\nline2 \"quoted\" \\ \x01 \xc3\xbf\xc3\xbe caf\xc3\xa9");
    /* No content type: parsed when it is JSON, a string when not. */
    assert_true(json_is_array(json_object_get(j[base + 2], "body")));
    assert_string_equal(json_string_value(json_object_get(j[base + 3], "body")), "not json {");
}

static void test_file_lines_json_one_per_message(void **state)
{
    (void)state;
    char dir[] = "/tmp/sluice-file-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/a/b/out.jsonl", dir);

    sl_file_conf fconf = {0};
    sl_connector_conf conf = {.name = "files", .type = "file", .priv = &fconf};
    sl_connector c = {.type = &sl_file_connector, .conf = &conf};
    sl_error err;
    assert_ptr_equal(sl_connector_type_find("file"), &sl_file_connector);
    assert_int_equal(c.type->init(&c, &err), 0);
    sl_file_target target = {.path = path};
    sl_output_conf out = {.connector = "files", .priv = &target};
    batch b;
    make_batch(&b);
    sl_send_result r[4];
    c.type->send(&c, &out, b.m, b.n, r);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(r[i].result, SL_OK);
    /* A second batch appends. */
    c.type->send(&c, &out, b.m, b.n, r);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(r[i].result, SL_OK);

    size_t len;
    char *text = read_all(path, &len);
    assert_non_null(strstr(text, "\"total\":0.1}")); /* minified, number text kept */
    json_t *j[16];
    size_t n = parse_lines(text, j, 16);
    assert_int_equal(n, 8);
    check_lines(j, 0);
    check_lines(j, 4);
    for (size_t i = 0; i < n; i++)
        json_decref(j[i]);
    free(text);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    /* Rotated away: the next batch goes to a new file at the path. */
    char moved[300];
    snprintf(moved, sizeof moved, "%s.1", path);
    assert_int_equal(rename(path, moved), 0);
    c.type->send(&c, &out, b.m, 1, r);
    assert_int_equal(r[0].result, SL_OK);
    text = read_all(path, &len);
    n = parse_lines(text, j, 16);
    assert_int_equal(n, 1);
    json_decref(j[0]);
    free(text);

    /* Without an output path, the connector's path is used. */
    char cpath[256];
    snprintf(cpath, sizeof cpath, "%s/conn.jsonl", dir);
    fconf.path = cpath; // cppcheck-suppress unreadVariable ; read through c.conf
    sl_output_conf out2 = {.connector = "files"};
    c.type->send(&c, &out2, b.m, 2, r);
    assert_int_equal(r[0].result, SL_OK);
    assert_int_equal(r[1].result, SL_OK);
    text = read_all(cpath, &len);
    n = parse_lines(text, j, 16);
    assert_int_equal(n, 2);
    json_decref(j[0]);
    json_decref(j[1]);
    free(text);

    c.type->stop(&c);
    c.type->destroy(&c);
    free_batch(&b);
    unlink(path);
    unlink(moved);
    unlink(cpath);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/a", dir);
    rmdir(sub);
    rmdir(dir);
}

static void test_file_errors(void **state)
{
    (void)state;
    char dir[] = "/tmp/sluice-file-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char blocker[256], path[300];
    snprintf(blocker, sizeof blocker, "%s/plain", dir);
    FILE *f = fopen(blocker, "w");
    assert_non_null(f);
    fclose(f);
    /* A parent that is a regular file: cannot be created. */
    snprintf(path, sizeof path, "%s/sub/out.jsonl", blocker);

    sl_connector_conf conf = {.name = "files", .type = "file"};
    sl_connector c = {.type = &sl_file_connector, .conf = &conf};
    sl_error err;
    assert_int_equal(c.type->init(&c, &err), 0);
    batch b;
    make_batch(&b);
    sl_send_result r[4];
    sl_file_target target = {.path = path};
    sl_output_conf out = {.priv = &target};
    c.type->send(&c, &out, b.m, 2, r);
    assert_int_equal(r[0].result, SL_RETRY);
    assert_int_equal(r[1].result, SL_RETRY);
    assert_non_null(strstr(r[0].error, path));
    assert_non_null(strstr(r[0].error, "Not a directory"));

    /* No path anywhere: a permanent configuration error. */
    sl_output_conf none = {.connector = "files"};
    c.type->send(&c, &none, b.m, 1, r);
    assert_int_equal(r[0].result, SL_FAIL);
    assert_non_null(strstr(r[0].error, "no path"));

    c.type->destroy(&c);
    free_batch(&b);
    unlink(blocker);
    rmdir(dir);
}

static void test_jsonl_string_escaping(void **state)
{
    (void)state;
    sl_jsonl_buf b;
    sl_jsonl_buf_init(&b);
    /* Controls, quote, backslash, NUL, valid 2/3/4-byte UTF-8, then a stray
     * continuation byte, an overlong '/', a surrogate and a truncated
     * sequence. */
    static const char in[] = "\"\\\b\f\n\r\t\x1f\x7f"
                             "\0"
                             "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                             "\x80\xc0\xaf\xed\xa0\x80\xe2\x82";
    assert_int_equal(sl_jsonl_append_string(&b, in, sizeof in - 1), 0);
    const char want[] = "\"\\\"\\\\\\b\\f\\n\\r\\t\\u001f\x7f\\u0000"
                        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                        "\\u0080\\u00c0\\u00af\\u00ed\\u00a0\\u0080\\u00e2\\u0082\"";
    assert_int_equal(b.len, sizeof want - 1);
    assert_memory_equal(b.data, want, b.len);
    json_error_t jerr;
    json_t *j = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    assert_non_null(j);
    json_decref(j);
    sl_jsonl_buf_free(&b);

    char out[16];
    size_t n = sl_jsonl_safe_text("a\r\nb\xff\xc3\xa9xyz", 10, 7, out, sizeof out);
    assert_string_equal(out, "a  b?\xc3\xa9");
    assert_int_equal(n, 7);
    /* A sequence cut by max_in is dropped whole. */
    sl_jsonl_safe_text("ab\xc3\xa9", 4, 3, out, sizeof out);
    assert_string_equal(out, "ab");
}

/* The content type decides: +json types are embedded, a JSON type with a
 * body that is not JSON falls back to a string, a non-JSON type never
 * parses the body. */
static void test_jsonl_body_by_content_type(void **state)
{
    (void)state;
    struct {
        const char *ctype, *body, *want;
    } cases[] = {
        {" Application/Vnd.Api+JSON ; charset=utf-8", "{\"a\": [1, 2]}", "{\"a\":[1,2]}"},
        {"application/json", "{broken", "\"{broken\""},
        {"text/plain", "{\"a\":1}", "\"{\\\"a\\\":1}\""},
        {NULL, "  \"s p\" ", "\"s p\""},
        {NULL, "", "\"\""},
        {NULL, "12345678901234567890123", "12345678901234567890123"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_msg *m = mk_msg("0190f5e6-0000-7000-8000-000000000009", NULL, cases[i].body,
                           strlen(cases[i].body), cases[i].ctype);
        sl_jsonl_buf b = {0};
        assert_int_equal(sl_jsonl_append_msg(&b, m), 0);
        assert_true(b.len > 0 && b.data[b.len - 1] == '\n');
        b.data[b.len - 1] = '\0';
        const char *body = strstr(b.data, ",\"body\":");
        assert_non_null(body);
        char want[128];
        snprintf(want, sizeof want, ",\"body\":%s}", cases[i].want);
        assert_string_equal(body, want);
        sl_jsonl_buf_free(&b);
        free_msg(m);
    }
}

static void test_stdout_lines(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-stdout-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);

    sl_connector_conf conf = {.name = "out", .type = "stdout"};
    sl_connector c = {.type = &sl_stdout_connector, .conf = &conf};
    sl_error err;
    assert_int_equal(c.type->init(&c, &err), 0);
    batch b;
    make_batch(&b);
    sl_send_result r[4];
    sl_output_conf out = {.connector = "out"};
    c.type->send(&c, &out, b.m, b.n, r);

    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(fd);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(r[i].result, SL_OK);
    size_t len;
    char *text = read_all(path, &len);
    json_t *j[8];
    size_t n = parse_lines(text, j, 8);
    assert_int_equal(n, 4);
    check_lines(j, 0);
    for (size_t i = 0; i < n; i++)
        json_decref(j[i]);
    free(text);
    c.type->destroy(&c);
    free_batch(&b);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_lines_json_one_per_message),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_jsonl_string_escaping),
        cmocka_unit_test(test_jsonl_body_by_content_type),
        cmocka_unit_test(test_stdout_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
