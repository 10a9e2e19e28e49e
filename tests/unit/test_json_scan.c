/* Unit tests for lib/json_scan.c: the scan finds what jansson's tree finds
 * (through the json_path key language of core/message.c, evaluated once with
 * the scan and once with the tree), says UNSURE rather than guess, and
 * never reads past the text it is given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_scan.h"
#include "message.h"

/* Evaluates key expr on body with the scan allowed (checked) or not, and
 * renders the outcome as text: "=VALUE", "missing" or "error". */
static void eval(const char *body, const char *expr, bool checked, char *out, size_t cap)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
    m->json_checked = checked;
    char *key = NULL;
    size_t len = 0;
    sl_error err;
    int rc = sl_msg_eval_key(m, expr, &key, &len, &err);
    if (rc < 0)
        snprintf(out, cap, "error");
    else if (key == NULL)
        snprintf(out, cap, "missing");
    else
        snprintf(out, cap, "=%.*s", (int)len, key);
    free(key);
    sl_msg_free(m);
}

static void test_scan_agrees_with_the_tree(void **state)
{
    (void)state;
    static const struct {
        const char *body, *expr;
    } cases[] = {
        {"{\"customer\":{\"id\":\"c001\",\"tier\":\"gold\"},\"order\":\"o-1\"}", "$.customer.id"},
        {"{\"customer\":{\"id\":\"c001\"}}", "$.customer.tier"},
        {"{\"customer\":\"c\"}", "$.customer.id"},
        {"{\"a\":1,\"a\":2}", "$.a"},
        {"{\"a\":{\"b\":1},\"a\":{\"c\":2}}", "$.a.b"},
        {"{\"a\":{\"b\":\"x\"},\"a\":{\"b\":\"y\"}}", "$.a.b"},
        {" { \"n\" : -42 } ", "$.n"},
        {"{\"n\":-0}", "$.n"},
        {"{\"n\":1.50}", "$.n"},
        {"{\"n\":1e3}", "$.n"},
        {"{\"n\":123456789012345678901}", "$.n"},
        {"{\"t\":true,\"f\":false,\"z\":null}", "$.t"},
        {"{\"t\":true,\"f\":false,\"z\":null}", "$.f"},
        {"{\"t\":true,\"f\":false,\"z\":null}", "$.z"},
        {"{\"o\":{\"x\":1}}", "$.o"},
        {"{\"o\":[1,2]}", "$.o"},
        {"{\"items\":[{\"sku\":\"A\"},{\"sku\":\"B\"}]}", "$.items[1].sku"},
        {"{\"items\":[{\"sku\":\"A\"}]}", "$.items[3].sku"},
        {"{\"items\":[]}", "$.items[0]"},
        {"[\"a\",[\"b\",\"c\"]]", "$[1][0]"},
        {"\"top\"", "$"},
        {"{\"s\":\"a\\\"b\"}", "$.s"},
        {"{\"s\":\"caf\\u00e9\"}", "$.s"},
        {"{\"k\\u0065y\":\"v\"}", "$.key"},
        {"{\"x\":\"}]{[\\\"\",\"key\":\"v\"}", "$.key"},
        {"{\"a b\":\"v\"}", "$['a b']"},
        {"{\"a.b\":\"v\"}", "$['a.b']"},
        {"{\"q\":\"v\"}", "$['q\\'']"},
        {"{}", "$.a"},
        {"{\"id\":\"\"}", "$.id"},
        {"{\"u\":\"\xc3\xa9t\xc3\xa9\"}", "$.u"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char scanned[128], tree[128];
        eval(cases[i].body, cases[i].expr, true, scanned, sizeof scanned);
        eval(cases[i].body, cases[i].expr, false, tree, sizeof tree);
        if (strcmp(scanned, tree) != 0)
            fail_msg("%s on %s: scan %s, tree %s", cases[i].expr, cases[i].body, scanned, tree);
    }
}

static sl_json_scan_result scan_path(const char *body, size_t len, const char *a, const char *b,
                                     const char **v, size_t *vlen)
{
    sl_json_step steps[2] = {{false, 0, a, strlen(a)}, {false, 0, b, b ? strlen(b) : 0}};
    return sl_json_scan(body, len, steps, b ? 2 : 1, v, vlen);
}

static void test_scan_decides_plain_cases_itself(void **state)
{
    (void)state;
    const char *body = "{\"customer\":{\"id\":\"c001\"},\"n\":7,\"e\":\"a\\nb\",\"r\":1.5}";
    const char *v = NULL;
    size_t n = 0;
    assert_int_equal(scan_path(body, strlen(body), "customer", "id", &v, &n), SL_JSON_SCAN_FOUND);
    assert_int_equal(n, 4);
    assert_memory_equal(v, "c001", 4);
    assert_int_equal(scan_path(body, strlen(body), "n", NULL, &v, &n), SL_JSON_SCAN_FOUND);
    assert_memory_equal(v, "7", 1);
    assert_int_equal(scan_path(body, strlen(body), "nope", NULL, &v, &n), SL_JSON_SCAN_MISSING);
    assert_int_equal(scan_path(body, strlen(body), "e", NULL, &v, &n), SL_JSON_SCAN_UNSURE);
    assert_int_equal(scan_path(body, strlen(body), "r", NULL, &v, &n), SL_JSON_SCAN_UNSURE);
}

/* Every prefix of a document, copied to a buffer of exactly its length (so
 * that ASan sees a read past it), stops without reading beyond it. */
static void test_scan_stays_within_truncated_text(void **state)
{
    (void)state;
    const char *doc =
        "{\"a\":[1,{\"b\":\"x\\\"y\"},[2,3]],\"customer\":{\"id\":\"c001\"},\"z\":true}";
    size_t full = strlen(doc);
    for (size_t len = 0; len <= full; len++) {
        char *buf = malloc(len ? len : 1);
        assert_non_null(buf);
        memcpy(buf, doc, len);
        const char *v = NULL;
        size_t n = 0;
        sl_json_scan_result r = scan_path(buf, len, "customer", "id", &v, &n);
        if (r == SL_JSON_SCAN_FOUND) {
            assert_true(v >= buf && v + n <= buf + len);
            assert_int_equal(n, 4);
        }
        scan_path(buf, len, "z", NULL, &v, &n);
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_agrees_with_the_tree),
        cmocka_unit_test(test_scan_decides_plain_cases_itself),
        cmocka_unit_test(test_scan_stays_within_truncated_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
