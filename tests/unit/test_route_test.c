/* Unit tests for `sluice test` (core/route_test.c): the examples in routes/
 * pass; a deliberately failing test file fails with a diff and exit 1; a
 * malformed one gives exit 2; fixtures and call counts are checked; the
 * route's key is computed (and refused) as `sluice run` does; dead letters,
 * topic outputs and partitions come from the real engine; environment
 * variables only the captured connectors use need not be set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route_test.h"

/* The repository root, from this file's path. */
static const char *root(void)
{
    static char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *p = strstr(dir, "/tests/unit/");
    assert_non_null(p);
    *p = '\0';
    return dir;
}

/* Runs files; returns the exit code and the output (malloc'd) in *text. */
static int run(char **files, size_t n, char **text)
{
    FILE *out = tmpfile();
    assert_non_null(out);
    int rc = sl_route_test_run(files, n, out);
    long len = ftell(out);
    rewind(out);
    *text = calloc(1, (size_t)len + 1);
    assert_int_equal(fread(*text, 1, (size_t)len, out), (size_t)len);
    fclose(out);
    return rc;
}

static void test_examples_pass(void **state)
{
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof a, "%s/routes/tests/enrich_orders.test.yaml", root());
    snprintf(b, sizeof b, "%s/routes/tests/json_to_xml_partner.test.yaml", root());
    char *files[] = {a, b};
    char *text;
    int rc = run(files, 2, &text);
    if (rc != 0)
        fail_msg("examples failed:\n%s", text);
    assert_non_null(strstr(text, "PASS "));
    assert_null(strstr(text, "FAIL "));
    assert_non_null(strstr(text, "12 passed, 0 failed\n"));
    free(text);
}

static char tmp_path[64];

static char *write_test(const char *body)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/sl_rt_XXXXXX");
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    char head[PATH_MAX + 64];
    int n = snprintf(head, sizeof head, "config: %s/routes/enrich_orders.yaml\n", root());
    assert_int_equal(write(fd, head, (size_t)n), n);
    assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    close(fd);
    return tmp_path;
}

static void test_failing_file(void **state)
{
    char *files[] = {write_test(
        "route: enrich-orders\n"
        "fixtures:\n"
        "  - { connector: crm, path: /customers/c-2, body: '{\"tier\":\"silver\"}' }\n"
        "cases:\n"
        "  - name: silver is not gold\n"
        "    input: { body: '{\"id\":\"o-2\",\"customer\":{\"id\":\"c-2\"}}' }\n"
        "    fixtures:\n"
        "      - { connector: crm, path: /customers/c-2, body: '{\"tier\":\"silver\"}', calls: 2 "
        "}\n"
        "    expect:\n"
        "      all:\n"
        "        - body: "
        "'{\"customer\":{\"id\":\"c-2\",\"tier\":\"gold\"},\"id\":\"o-2\",\"total\":0}'\n"
        "      gold: [ { json_subset: { customer: { tier: gold } } } ]\n"
        "  - name: a passing one\n"
        "    input: { body: '{\"id\":\"o-2\",\"customer\":{\"id\":\"c-2\"}}' }\n"
        "    expect: { gold: [] }\n"
        "  - name: no fixture\n"
        "    input: { body: '{\"customer\":{\"id\":\"c-9\"}}' }\n")};
    char *text;
    int rc = run(files, 1, &text);
    unlink(files[0]);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(text, "FAIL "));
    assert_non_null(strstr(text, ": silver is not gold\n"));
    assert_non_null(strstr(text, "PASS "));
    /* the diff */
    assert_non_null(strstr(text, "-     \"tier\": \"gold\"\n"));
    assert_non_null(strstr(text, "+     \"tier\": \"silver\"\n"));
    assert_non_null(strstr(text, "output gold: expected 1 message(s), got 0"));
    assert_non_null(strstr(text, "expected 2 call(s), got 1"));
    assert_non_null(strstr(text, "unexpected ctx.http call: GET crm /customers/c-9"));
    assert_non_null(strstr(text, "1 passed, 2 failed\n"));
    free(text);
}

static void test_malformed_file(void **state)
{
    char *text;
    char *files[] = {write_test("route: enrich-orders\ncases:\n  - name: x\n    input: {}\n"
                                "    expect: { nosuch: [] }\n")};
    assert_int_equal(run(files, 1, &text), 2);
    assert_non_null(strstr(text, "no output named 'nosuch'"));
    free(text);
    unlink(files[0]);
    files[0] = write_test("route: nosuch\ncases: []\n");
    assert_int_equal(run(files, 1, &text), 2);
    assert_non_null(strstr(text, "no route named 'nosuch'"));
    free(text);
    unlink(files[0]);
    files[0] = write_test("route: [unclosed\n");
    assert_int_equal(run(files, 1, &text), 2);
    assert_non_null(strstr(text, "ERROR "));
    free(text);
    unlink(files[0]);
    char missing[] = "/nonexistent/x.test.yaml";
    files[0] = missing;
    assert_int_equal(run(files, 1, &text), 2);
    assert_non_null(strstr(text, "cannot open"));
    free(text);
}

static void test_key_as_run_computes_it(void **state)
{
    char *files[] = {write_test(
        "route: enrich-orders\n"
        "fixtures: [ { connector: crm, path: /customers/c-7, body: '{\"tier\":\"gold\"}' } ]\n"
        "cases:\n"
        "  - name: the key comes from the body\n"
        "    input: { json: { id: o-1, customer: { id: c-7 } } }\n"
        "    expect: { all: [ { key: c-7 } ], gold: [ { key: c-7 } ] }\n"
        "  - name: a key the route cannot read\n"
        "    input: { body: '<order/>' }\n"
        "  - name: a wrong key\n"
        "    input: { json: { id: o-2, customer: { id: c-7 } } }\n"
        "    expect: { all: [ { key: c-8 } ] }\n")};
    char *text;
    int rc = run(files, 1, &text);
    unlink(files[0]);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(text, "PASS "));
    assert_non_null(strstr(text, ": the key comes from the body\n"));
    assert_non_null(strstr(text, "FAIL "));
    assert_non_null(strstr(text,
                           "    input 1: refused at ingest (HTTP 400, or a dead letter from a "
                           "queue): body is not JSON"));
    assert_non_null(strstr(text, "output all, message 1: key: expected c-8, got c-7\n"));
    assert_non_null(strstr(text, "1 passed, 2 failed\n"));
    free(text);
}

static void test_dead_letter_is_reported(void **state)
{
    char *files[] = {write_test(
        "route: enrich-orders\n"
        "fixtures: [ { connector: crm, path: /customers/c-1, body: '{\"tier\":\"gold\"}' } ]\n"
        "cases:\n"
        "  - name: the script fails\n"
        "    input: { json: { id: o-1, customer: { id: c-1 }, items: 3 } }\n"
        "    expect: { all: [], gold: [] }\n")};
    char *text;
    int rc = run(files, 1, &text);
    unlink(files[0]);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(text, "FAIL "));
    assert_non_null(strstr(text, "    input 1: step 2 (lua): "));
    assert_non_null(strstr(text, "0 passed, 1 failed\n"));
    free(text);
}

/* Writes text to a new temporary file with the given suffix; returns its path. */
static char *write_tmp(char *path, size_t cap, const char *suffix, const char *text)
{
    snprintf(path, cap, "/tmp/sl_rt_XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_topic_output_and_partitions(void **state)
{
    char conf[64], test[64], body[512];
    write_tmp(conf, sizeof conf, ".yaml",
              "connectors:\n"
              "  in: { type: http_server, listen: \"127.0.0.1:1\" }\n"
              "routes:\n"
              "  r:\n"
              "    from: { connector: in, path: /x }\n"
              "    partitions: 4\n"
              "    key: \"header:x-k\"\n"
              "    steps: [ { set: { headers: { x-seen: yes } } } ]\n"
              "    to: [ { topic: out.t } ]\n");
    snprintf(body, sizeof body,
             "config: %s\nroute: r\ncases:\n"
             "  - name: four partitions keyed by a header; a topic output read back from the log\n"
             "    inputs:\n"
             "      - { body: one, headers: { x-k: a } }\n"
             "      - { body: two, headers: { x-k: b } }\n"
             "    expect:\n"
             "      topic:out.t: [ { body: one, key: a, headers: { x-seen: \"yes\" } },\n"
             "                     { body: two, key: b } ]\n",
             conf);
    char *files[] = {write_tmp(test, sizeof test, ".test.yaml", body)};
    char *text;
    int rc = run(files, 1, &text);
    unlink(conf);
    unlink(test);
    if (rc != 0)
        fail_msg("topic test failed:\n%s", text);
    assert_non_null(strstr(text, "1 passed, 0 failed\n"));
    free(text);
}

static void test_yaml_errors_have_positions(void **state)
{
    char *text;
    char *files[] = {write_test("route: enrich-orders\nroute: again\ncases: []\n")};
    assert_int_equal(run(files, 1, &text), 2);
    assert_non_null(strstr(text, "3:1: duplicate key 'route' (first at line 2, column 1)"));
    free(text);
    unlink(files[0]);
}

static void test_unset_variables_the_route_does_not_use(void **state)
{
    char conf[64], test[64], body[512];
    unsetenv("SL_RT_UNSET_KEY");
    unsetenv("SL_RT_UNSET_TOKEN");
    write_tmp(conf, sizeof conf, ".yaml",
              "connectors:\n"
              "  in: { type: http_server, listen: \"127.0.0.1:1\" }\n"
              "  api: { type: http_client, base_url: \"http://127.0.0.1:1\",\n"
              "         headers: { x-api-key: \"${SL_RT_UNSET_KEY}\" } }\n"
              "routes:\n"
              "  plain:\n"
              "    from: { connector: in, path: /a }\n"
              "    to: [ { connector: api } ]\n"
              "  secret:\n"
              "    from: { connector: in, path: /b }\n"
              "    steps: [ { set: { headers: { x-t: \"${SL_RT_UNSET_TOKEN}\" } } } ]\n"
              "    to: [ { connector: api } ]\n");
    const char *routes[] = {"plain", "secret"};
    for (int i = 0; i < 2; i++) {
        snprintf(body, sizeof body,
                 "config: %s\nroute: %s\ncases:\n"
                 "  - input: { body: x }\n"
                 "    expect: { api: [ { body: x } ] }\n",
                 conf, routes[i]);
        char *files[] = {write_tmp(test, sizeof test, ".test.yaml", body)};
        char *text;
        int rc = run(files, 1, &text);
        unlink(test);
        if (i == 0 && rc != 0)
            fail_msg("a variable only a captured connector uses was required:\n%s", text);
        if (i == 1) {
            assert_int_equal(rc, 2);
            assert_non_null(strstr(text, ":11:39: environment variable SL_RT_UNSET_TOKEN is not "
                                         "set (route secret uses it)"));
        }
        free(text);
    }
    unlink(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_pass),
        cmocka_unit_test(test_failing_file),
        cmocka_unit_test(test_malformed_file),
        cmocka_unit_test(test_key_as_run_computes_it),
        cmocka_unit_test(test_dead_letter_is_reported),
        cmocka_unit_test(test_topic_output_and_partitions),
        cmocka_unit_test(test_yaml_errors_have_positions),
        cmocka_unit_test(test_unset_variables_the_route_does_not_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
