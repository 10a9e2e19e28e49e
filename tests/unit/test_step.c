/* Unit tests for the step chain (core/step.c): a chain built from a loaded
 * config through the registry, each step's answer (OK, DROP, FAIL, RETRY),
 * a split, the services and metrics handed to every step, and the errors
 * of an unknown step type (at load, and at build for a hand-made conf). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "metrics.h"
#include "step.h"

typedef struct fx {
    char dir[64];
    char conf[128];
    char script[128];
    sl_config *cfg;
    sl_step **steps;
    size_t n;
} fx;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The script: answers by the body (retry, fail, split), otherwise passes. */
static const char SCRIPT[] = "function f(msg, ctx)\n"
                             "  if msg.body == 'retry' then ctx.retry('partner busy') end\n"
                             "  if msg.body == 'fail' then error('bad order') end\n"
                             "  if msg.body == 'split' then\n"
                             "    local a, b = msg:clone(), msg:clone()\n"
                             "    a.body = '{\"n\":1}'\n"
                             "    b.body = '{\"n\":2}'\n"
                             "    return { a, b }\n"
                             "  end\n"
                             "  return msg\n"
                             "end\n";

static const char ROUTE[] = "connectors:\n"
                            "  in: { type: http_server, listen: \"127.0.0.1:0\" }\n"
                            "  out: { type: stdout }\n"
                            "routes:\n"
                            "  r:\n"
                            "    from: { connector: in, path: /x }\n"
                            "    steps:\n"
                            "      - lua: { file: s.lua, function: f }\n"
                            "      - set: { headers: { x-seen: yes } }\n"
                            "      - filter: \"msg.body ~= 'drop'\"\n"
                            "      - validate: { json: true }\n"
                            "    to: [ { connector: out } ]\n";

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sl_test_step_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->conf, sizeof f->conf, "%s/sluice.yaml", f->dir);
    snprintf(f->script, sizeof f->script, "%s/s.lua", f->dir);
    write_file(f->script, SCRIPT);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sl_steps_free(f->steps, f->n);
    sl_config_free(f->cfg);
    unlink(f->script);
    unlink(f->conf);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Loads yaml; returns the first load error (a static copy) or NULL. */
static const char *load(fx *f, const char *yaml)
{
    static char first[1024];
    write_file(f->conf, yaml);
    sl_config_errors errs = {0};
    f->cfg = sl_config_load(f->conf, &errs);
    first[0] = '\0';
    if (!f->cfg)
        snprintf(first, sizeof first, "%s", errs.n ? errs.lines[0] : "?");
    sl_config_errors_free(&errs);
    return f->cfg ? NULL : first;
}

static sl_msg *msg_with(const char *body)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
    return m;
}

/* Runs body through the whole chain as a route worker does: stops at the
 * first step that does not answer OK. Returns that answer (or OK) and the
 * 0-based step that gave it in *at. */
static int run_chain(fx *f, const char *body, size_t *at, sl_error *err)
{
    sl_msg *m = msg_with(body);
    int rc = SL_STEP_OK;
    for (*at = 0; *at < f->n && rc == SL_STEP_OK; (*at)++) {
        rc = sl_step_process(f->steps[*at], m, err);
        if (rc != SL_STEP_OK)
            break;
    }
    sl_msg_free(m);
    return rc;
}

static void build(fx *f, const sl_step_services *svc, sl_metrics *metrics)
{
    const char *e = load(f, ROUTE);
    if (e)
        fail_msg("load: %s", e);
    sl_error err;
    if (sl_steps_build(svc, metrics, &f->cfg->routes[0], &f->steps, &f->n, &err) < 0)
        fail_msg("build: %s", err.msg);
}

static void test_build_from_conf(void **state)
{
    fx *f = *state;
    static const sl_step_services svc = {.call = NULL, .arg = "svc"};
    sl_metrics *metrics = sl_metrics_new();
    assert_non_null(metrics);
    build(f, &svc, metrics);
    assert_int_equal(f->n, 4);
    const char *names[] = {"lua", "set", "filter", "validate"};
    for (size_t i = 0; i < f->n; i++) {
        assert_string_equal(sl_step_type_name(f->steps[i]), names[i]);
        assert_ptr_equal(f->steps[i]->services, &svc); /* handed to every step */
        assert_string_equal(f->steps[i]->route, "r");
    }
    sl_step_observe(f->steps[0], 0.002);
    size_t len = 0;
    char *text = sl_metrics_render(metrics, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "sluice_step_seconds_count{route=\"r\",step=\"1-lua\"} 1"));
    assert_non_null(strstr(text, "sluice_step_seconds_count{route=\"r\",step=\"4-validate\"} 0"));
    free(text);
    sl_steps_free(f->steps, f->n);
    f->steps = NULL;
    f->n = 0;
    sl_metrics_free(metrics);
}

static void test_ok_drop_fail_retry(void **state)
{
    fx *f = *state;
    build(f, NULL, NULL);
    sl_error err;
    size_t at;
    /* OK: every step ran, and each changed what it should */
    sl_msg *m = msg_with("{\"a\":1}");
    for (size_t i = 0; i < f->n; i++)
        assert_int_equal(sl_step_process(f->steps[i], m, &err), SL_STEP_OK);
    assert_string_equal(sl_msg_get_header(m, "x-seen", NULL), "yes");
    assert_string_equal(m->body, "{\"a\":1}");
    sl_msg_free(m);
    /* DROP: the filter */
    assert_int_equal(run_chain(f, "drop", &at, &err), SL_STEP_DROP);
    assert_int_equal(at, 2);
    /* FAIL: the script raises; the validator refuses a body that is not JSON */
    assert_int_equal(run_chain(f, "fail", &at, &err), SL_STEP_FAIL);
    assert_int_equal(at, 0);
    assert_non_null(strstr(err.msg, "bad order"));
    assert_int_equal(run_chain(f, "not json", &at, &err), SL_STEP_FAIL);
    assert_int_equal(at, 3);
    assert_non_null(strstr(err.msg, "validate: "));
    /* RETRY: transient, with the reason */
    assert_int_equal(run_chain(f, "retry", &at, &err), SL_STEP_RETRY);
    assert_int_equal(at, 0);
    assert_non_null(strstr(err.msg, "partner busy"));
}

static void test_split(void **state)
{
    fx *f = *state;
    build(f, NULL, NULL);
    sl_error err;
    sl_msg *m = msg_with("split");
    sl_msg **more = NULL;
    size_t n_more = 0;
    assert_int_equal(sl_step_process_split(f->steps[0], m, &more, &n_more, &err), SL_STEP_OK);
    assert_string_equal(m->body, "{\"n\":1}"); /* the first replaces the message */
    assert_int_equal(n_more, 1);
    assert_string_equal(more[0]->body, "{\"n\":2}");
    /* each goes through the remaining steps */
    for (size_t i = 1; i < f->n; i++) {
        assert_int_equal(sl_step_process(f->steps[i], m, &err), SL_STEP_OK);
        assert_int_equal(sl_step_process(f->steps[i], more[0], &err), SL_STEP_OK);
    }
    assert_string_equal(sl_msg_get_header(more[0], "x-seen", NULL), "yes");
    sl_msg_free(more[0]);
    free(more);
    /* a step without process_split answers through process: nothing more */
    assert_int_equal(sl_step_process_split(f->steps[1], m, &more, &n_more, &err), SL_STEP_OK);
    assert_null(more);
    assert_int_equal(n_more, 0);
    sl_msg_free(m);
}

static void test_unknown_type(void **state)
{
    fx *f = *state;
    /* at load, with its position and the known types */
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "connectors:\n"
             "  in: { type: http_server, listen: \"127.0.0.1:0\" }\n"
             "  out: { type: stdout }\n"
             "routes:\n"
             "  r:\n"
             "    from: { connector: in, path: /x }\n"
             "    steps:\n"
             "      - uppercase: {}\n"
             "    to: [ { connector: out } ]\n");
    const char *e = load(f, yaml);
    assert_non_null(e);
    char want[1200];
    snprintf(want, sizeof want,
             "%s:8:9: unknown step 'uppercase' in routes.r.steps[0] (expected one of: lua, "
             "json_to_xml, xml_to_json, filter, set, validate)",
             f->conf);
    assert_string_equal(e, want);
    /* at build, for a conf made by hand: the step's position, nothing left */
    build(f, NULL, NULL);
    sl_steps_free(f->steps, f->n);
    f->steps = NULL;
    f->n = 0;
    sl_route_conf *rc = &f->cfg->routes[0];
    rc->steps[2].type = (char *)"uppercase";
    sl_error err;
    assert_int_equal(sl_steps_build(NULL, NULL, rc, &f->steps, &f->n, &err), -1);
    assert_null(f->steps);
    assert_int_equal(f->n, 0);
    snprintf(want, sizeof want,
             "%s:10:9: routes.r.steps[2]: step type 'uppercase' is not available in this build yet",
             f->conf);
    assert_string_equal(err.msg, want);
}

/* The settings a step checks at load keep their texts (lua's used to be
 * checked only when a worker built the step). */
static void test_step_settings_checked_at_load(void **state)
{
    fx *f = *state;
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "connectors:\n"
             "  in: { type: http_server, listen: \"127.0.0.1:0\" }\n"
             "  out: { type: stdout }\n"
             "routes:\n"
             "  r:\n"
             "    from: { connector: in, path: /x }\n"
             "    steps:\n"
             "      - lua: { file: s.lua, function: f, timeout: 0ms }\n"
             "      - lua: { file: s.lua, function: f, memory: 1KiB }\n"
             "      - json_to_xml: { encoding: KLINGON }\n"
             "    to: [ { connector: out } ]\n");
    write_file(f->conf, yaml);
    sl_config_errors errs = {0};
    assert_null(sl_config_load(f->conf, &errs));
    assert_int_equal(errs.n, 3);
    char want[3][400];
    snprintf(want[0], sizeof want[0], "%s:8:51: lua: timeout must be a duration above 0", f->conf);
    snprintf(want[1], sizeof want[1], "%s:9:50: lua: memory must be a size of 256KiB or more",
             f->conf);
    snprintf(want[2], sizeof want[2], "%s:10:34: json_to_xml: unknown encoding 'KLINGON'", f->conf);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(errs.lines[i], want[i]);
    sl_config_errors_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_build_from_conf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ok_drop_fail_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_settings_checked_at_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
