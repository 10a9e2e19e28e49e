/* Unit tests for core/expr.c and the expression languages it finds in
 * transforms/expr_registry.c: keys in JSON path, header and XPath form,
 * compiled once and evaluated on many messages (from several threads),
 * `when:` conditions in Lua, and the errors of malformed expressions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"

static sl_msg *msg_with(const char *body)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
    assert_int_equal(sl_msg_set_header(m, "x-tier", "gold", 4), 0);
    return m;
}

static void assert_key(sl_expr *e, const char *body, const char *want)
{
    sl_msg *m = msg_with(body);
    char *out = NULL;
    size_t len = 0;
    sl_error err;
    if (sl_expr_eval_key(e, m, &out, &len, &err) < 0)
        fail_msg("eval: %s", err.msg);
    if (!want) {
        assert_null(out);
    } else {
        assert_non_null(out);
        assert_string_equal(out, want);
        assert_int_equal(len, strlen(want));
    }
    free(out);
    sl_msg_free(m);
}

static void test_key_languages(void **state)
{
    sl_error err;
    sl_expr *json = sl_expr_compile_key("$.customer.id", NULL, &err);
    sl_expr *hdr = sl_expr_compile_key("header:x-tier", NULL, &err);
    sl_expr *xp = sl_expr_compile_key("/order/customer/@id", NULL, &err);
    assert_non_null(json);
    assert_non_null(hdr);
    assert_non_null(xp);
    assert_key(json, "{\"customer\":{\"id\":\"c1\"}}", "c1");
    assert_key(json, "{\"customer\":{}}", NULL);
    assert_key(hdr, "{}", "gold");
    assert_key(xp, "<order><customer id=\"c9\"/></order>", "c9");
    assert_key(xp, "<order/>", NULL);
    /* the same compiled XPath, on a body that is not XML: a permanent error */
    sl_msg *m = msg_with("{}");
    char *out;
    assert_int_equal(sl_expr_eval_key(xp, m, &out, NULL, &err), -1);
    assert_null(out);
    sl_msg_free(m);
    sl_expr_free(json);
    sl_expr_free(hdr);
    sl_expr_free(xp);
}

static void test_key_errors(void **state)
{
    sl_error err;
    assert_null(sl_expr_compile_key("a.b", NULL, &err));
    assert_string_equal(err.msg, "malformed key expression \"a.b\": expected \"header:NAME\", a "
                                 "JSON path starting with '$' or an XPath starting with '/'");
    assert_null(sl_expr_compile_key("header:", NULL, &err));
    assert_string_equal(err.msg, "malformed key expression \"header:\": no header name");
    assert_null(sl_expr_compile_key("$.a[", NULL, &err));
    assert_non_null(strstr(err.msg, "malformed key expression \"$.a[\""));
    assert_null(sl_expr_compile_key("/a[", NULL, &err));
    assert_non_null(strstr(err.msg, "XPath '/a['"));
    /* the wrappers of message.h say the same */
    assert_int_equal(sl_msg_key_check("a.b", &err), -1);
    assert_non_null(strstr(err.msg, "expected \"header:NAME\""));
}

/* A connector's keys compiled once: the compiled one and the uncompiled
 * path (no set) give the same values and the same error texts. */
static void test_expr_set(void **state)
{
    sl_error err;
    sl_expr_set *set = sl_expr_set_new();
    assert_non_null(set);
    assert_int_equal(sl_expr_set_add(set, "$.customer.id", &err), 0);
    assert_int_equal(sl_expr_set_add(set, "$.customer.id", &err), 0); /* once */
    assert_int_equal(sl_expr_set_add(set, "a.b", &err), 0);           /* kept with its error */
    const sl_expr_set *sets[] = {set, NULL};
    for (size_t i = 0; i < 2; i++) {
        sl_msg *m = msg_with("{\"customer\":{\"id\":\"c7\"}}");
        char *out = NULL;
        size_t len = 0;
        assert_int_equal(sl_expr_set_eval(sets[i], "$.customer.id", m, &out, &len, &err), 0);
        assert_string_equal(out, "c7");
        assert_int_equal(len, 2);
        free(out);
        assert_int_equal(sl_expr_set_eval(sets[i], "a.b", m, &out, &len, &err), -1);
        assert_null(out);
        assert_non_null(strstr(err.msg, "malformed key expression \"a.b\": expected"));
        /* a text the set does not hold compiles for the call */
        assert_int_equal(sl_expr_set_eval(sets[i], "header:x-tier", m, &out, &len, &err), 0);
        assert_string_equal(out, "gold");
        free(out);
        sl_msg_free(m);
    }
    sl_expr_set_free(set);
}

typedef struct xpath_run {
    sl_expr *e;
    int ok;
} xpath_run;

static void *eval_many(void *arg)
{
    xpath_run *r = arg;
    for (int i = 0; i < 200; i++) {
        char body[128], want[32];
        snprintf(body, sizeof body, "<order><customer id=\"c%d\"/><n>%d</n></order>", i, i);
        snprintf(want, sizeof want, "c%d", i);
        sl_msg *m = sl_msg_new();
        sl_msg_set_body(m, body, strlen(body));
        char *out = NULL;
        sl_error err;
        if (sl_expr_eval_key(r->e, m, &out, NULL, &err) == 0 && out && strcmp(out, want) == 0)
            r->ok++;
        free(out);
        sl_msg_free(m);
    }
    return NULL;
}

/* A route's key is compiled once and evaluated by every input thread. */
static void test_shared_xpath_key_across_threads(void **state)
{
    sl_error err;
    sl_expr *e = sl_expr_compile_key("/order/customer[string-length(@id) > 0]/@id", NULL, &err);
    assert_non_null(e);
    pthread_t th[4];
    xpath_run runs[4] = {{e, 0}, {e, 0}, {e, 0}, {e, 0}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, eval_many, &runs[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(runs[i].ok, 200);
    }
    sl_expr_free(e);
}

static void test_conditions(void **state)
{
    sl_conf_pos pos = {"routes/r.yaml", 7, 5};
    sl_error err;
    sl_expr *e = sl_expr_compile_cond("msg.headers['x-tier'] == 'gold'", &pos, &err);
    assert_non_null(e);
    sl_msg *m = msg_with("{}");
    bool yes = false;
    assert_int_equal(sl_expr_eval_bool(e, m, &yes, &err), 0);
    assert_true(yes);
    /* a condition is not a key */
    char *out;
    assert_int_equal(sl_expr_eval_key(e, m, &out, NULL, &err), -1);
    sl_msg_free(m);
    sl_expr_free(e);
    assert_null(sl_expr_compile_cond("msg.headers[", &pos, &err));
    assert_non_null(strstr(err.msg, "routes/r.yaml:7:5: lua expression:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_languages),
        cmocka_unit_test(test_key_errors),
        cmocka_unit_test(test_expr_set),
        cmocka_unit_test(test_shared_xpath_key_across_threads),
        cmocka_unit_test(test_conditions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
