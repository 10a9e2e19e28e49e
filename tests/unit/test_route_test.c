/* Unit tests for `sluice test` (core/route_test.c): the examples in routes/
 * pass; a deliberately failing test file fails with a diff and exit 1; a
 * malformed one gives exit 2; fixtures and call counts are checked. */
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
    assert_non_null(strstr(text, "11 passed, 0 failed\n"));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_pass),
        cmocka_unit_test(test_failing_file),
        cmocka_unit_test(test_malformed_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
