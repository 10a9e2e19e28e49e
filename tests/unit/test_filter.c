/* Unit tests for the filter step (transforms/filter.c) and compiled
 * expressions (transforms/lua_expr.c, used for `when:`): keep, drop, fail,
 * syntax errors with the config position, errors and timeouts that leave
 * the expression usable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua_expr.h"
#include "step.h"

static sl_msg *msg_with(const char *body, const char *tier)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
    if (tier)
        assert_int_equal(sl_msg_set_header(m, "x-tier", tier, strlen(tier)), 0);
    return m;
}

static void test_expr_eval(void **state)
{
    sl_conf_pos pos = {"routes/r.yaml", 12, 9};
    sl_error err;
    sl_lua_expr *e = sl_lua_expr_compile("msg.headers['x-tier'] == 'gold'", &pos, &err);
    assert_non_null(e);
    bool r;
    sl_msg *gold = msg_with("{}", "gold"), *silver = msg_with("{}", "silver"),
           *none = msg_with("{}", NULL);
    assert_int_equal(sl_lua_expr_eval(e, gold, &r, &err), 0);
    assert_true(r);
    assert_int_equal(sl_lua_expr_eval(e, silver, &r, &err), 0);
    assert_false(r);
    assert_int_equal(sl_lua_expr_eval(e, none, &r, &err), 0);
    assert_false(r);
    sl_lua_expr_free(e);

    /* the SPEC's form, a JSON body, and truthiness of non-booleans */
    e = sl_lua_expr_compile("msg.headers.tier == 'gold' or msg:json().total", NULL, &err);
    assert_non_null(e);
    sl_msg *j = msg_with("{\"total\": 0}", NULL);
    assert_int_equal(sl_lua_expr_eval(e, j, &r, &err), 0);
    assert_true(r); /* 0 is true in Lua */
    assert_int_equal(sl_msg_set_body(j, "{}", 2), 0);
    assert_int_equal(sl_lua_expr_eval(e, j, &r, &err), 0);
    assert_false(r);
    /* a body that is not JSON is an error, and the next one works */
    assert_int_equal(sl_msg_set_body(j, "nope", 4), 0);
    assert_int_equal(sl_lua_expr_eval(e, j, &r, &err), -1);
    assert_false(r);
    assert_non_null(strstr(err.msg, "json: unexpected character"));
    assert_int_equal(sl_msg_set_body(j, "{\"total\":3}", 11), 0);
    assert_int_equal(sl_lua_expr_eval(e, j, &r, &err), 0);
    assert_true(r);
    sl_lua_expr_free(e);
    sl_msg_free(gold);
    sl_msg_free(silver);
    sl_msg_free(none);
    sl_msg_free(j);
}

static void test_expr_errors(void **state)
{
    sl_conf_pos pos = {"routes/r.yaml", 12, 9};
    sl_error err;
    assert_null(sl_lua_expr_compile("msg.body ==", &pos, &err));
    assert_int_equal(err.code, SL_ECONFIG);
    assert_non_null(strstr(err.msg, "routes/r.yaml:12:9: lua expression:"));
    /* a statement is not an expression; neither is an injection attempt */
    assert_null(sl_lua_expr_compile("x = 1", &pos, &err));
    assert_null(sl_lua_expr_compile("1) os.exit(1) --", &pos, &err));
    /* a trailing comment is fine */
    sl_lua_expr *e = sl_lua_expr_compile("true -- always", &pos, &err);
    assert_non_null(e);
    sl_lua_expr_free(e);

    /* sandboxed like steps: no io, and a loop times out */
    e = sl_lua_expr_compile("io.open('/etc/passwd')", NULL, &err);
    assert_non_null(e);
    sl_msg *m = msg_with("{}", NULL);
    bool r = true;
    assert_int_equal(sl_lua_expr_eval(e, m, &r, &err), -1);
    assert_non_null(strstr(err.msg, "global 'io'"));
    sl_lua_expr_free(e);
    e = sl_lua_expr_compile("(function() while true do end end)()", NULL, &err);
    assert_non_null(e);
    assert_int_equal(sl_lua_expr_eval(e, m, &r, &err), -1);
    assert_non_null(strstr(err.msg, "timeout after 100 ms"));
    sl_lua_expr_free(e);
    sl_msg_free(m);
}

static void test_filter_step(void **state)
{
    char dir[] = "/tmp/sl_filter_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char conf[256];
    snprintf(conf, sizeof conf, "%s/sluice.yaml", dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fputs("connectors:\n"
          "  out: { type: stdout }\n"
          "  in: { type: http_server, listen: \"127.0.0.1:0\" }\n"
          "routes:\n"
          "  r:\n"
          "    from: { connector: in, path: /x }\n"
          "    steps:\n"
          "      - filter: \"msg.headers['x-tier'] == 'gold' and msg:json().n > 1\"\n"
          "    to: [ { connector: out } ]\n"
          "  bad:\n"
          "    from: { connector: in, path: /y }\n"
          "    steps:\n"
          "      - filter: \"msg.body ==\"\n"
          "    to: [ { connector: out } ]\n",
          f);
    fclose(f);
    sl_config_errors errs = {0};
    sl_config *cfg = sl_config_load(conf, &errs);
    assert_non_null(cfg);
    sl_step **steps;
    size_t n;
    sl_error err;
    assert_int_equal(sl_steps_build(NULL, NULL, &cfg->routes[0], &steps, &n, &err), 0);
    sl_msg *keep = msg_with("{\"n\":2}", "gold"), *drop1 = msg_with("{\"n\":2}", "silver"),
           *drop2 = msg_with("{\"n\":1}", "gold"), *fail = msg_with("not json", "gold");
    assert_int_equal(sl_step_process(steps[0], keep, &err), SL_STEP_OK);
    assert_int_equal(sl_step_process(steps[0], drop1, &err), SL_STEP_DROP);
    assert_int_equal(sl_step_process(steps[0], drop2, &err), SL_STEP_DROP);
    assert_int_equal(sl_step_process(steps[0], fail, &err), SL_STEP_FAIL);
    assert_non_null(strstr(err.msg, "json:"));
    assert_int_equal(sl_step_process(steps[0], keep, &err), SL_STEP_OK);
    sl_steps_free(steps, n);
    /* a syntax error fails the build, naming the step's place */
    assert_int_equal(sl_steps_build(NULL, NULL, &cfg->routes[1], &steps, &n, &err), -1);
    assert_non_null(strstr(err.msg, "sluice.yaml:13:"));
    sl_msg_free(keep);
    sl_msg_free(drop1);
    sl_msg_free(drop2);
    sl_msg_free(fail);
    sl_config_free(cfg);
    sl_config_errors_free(&errs);
    unlink(conf);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expr_eval),
        cmocka_unit_test(test_expr_errors),
        cmocka_unit_test(test_filter_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
