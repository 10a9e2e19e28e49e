/* Unit tests for gateway assembly (core/gateway.c): connectors built from
 * the registry's types with a breaker exactly where the type says so, each
 * connector's env, routes attached to their input and delivering to the
 * outputs they name, an input that cannot be one refused, a reload that
 * keeps the runtime (log, metrics, status), and the objects a generation
 * keeps for the next (sl_runtime_keep). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "connector.h"
#include "gateway.h"
#include "logging.h"

/* ---- a capture connector: records attachments and deliveries ---------------- */

typedef struct capture {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char attached[4][96]; /* "CONNECTOR<-ROUTE" */
    size_t n_attached;
    char sent[8][160]; /* "CONNECTOR: BODY" */
    size_t n_sent;
} capture;

static int cap_init(sl_connector *c, sl_error *err)
{
    return 0; /* c->state is the capture, preset by sl_gateway_new_as */
}

static int cap_attach(sl_connector *c, sl_route *route, sl_error *err)
{
    capture *k = c->state;
    pthread_mutex_lock(&k->mu);
    if (k->n_attached < 4)
        snprintf(k->attached[k->n_attached++], sizeof k->attached[0], "%s<-%s", c->conf->name,
                 sl_route_name(route));
    pthread_mutex_unlock(&k->mu);
    return 0;
}

static void cap_send(sl_connector *c, const sl_output_conf *out, sl_msg *const *msgs, size_t n,
                     sl_send_result *results)
{
    capture *k = c->state;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < n; i++) {
        if (k->n_sent < 8)
            snprintf(k->sent[k->n_sent++], sizeof k->sent[0], "%s: %.*s", c->conf->name,
                     (int)msgs[i]->body_len, msgs[i]->body);
        sl_send_result_set(&results[i], SL_OK, 0, "%s", "");
    }
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

static void cap_destroy(sl_connector *c)
{
    c->state = NULL;
}

static const sl_connector_type cap_type = {
    .name = "capture",
    .can_input = true,
    .can_output = true,
    .init = cap_init,
    .attach_input = cap_attach,
    .send = cap_send,
    .destroy = cap_destroy,
};

/* The same without inputs. */
static const sl_connector_type cap_output_only = {
    .name = "capture-output",
    .can_output = true,
    .init = cap_init,
    .send = cap_send,
    .destroy = cap_destroy,
};

/* ---- fixture ---------------------------------------------------------------- */

typedef struct fx {
    char dir[64];
    char conf[128];
    capture cap;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sl_test_gateway_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->conf, sizeof f->conf, "%s/sluice.yaml", f->dir);
    pthread_mutex_init(&f->cap.mu, NULL);
    pthread_cond_init(&f->cap.cv, NULL);
    sl_logging_setup(false, SL_LVL_WARN);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    pthread_mutex_destroy(&f->cap.mu);
    pthread_cond_destroy(&f->cap.cv);
    free(f);
    return 0;
}

/* Writes the config (sluice: block with the fixture's data_dir, then body)
 * and loads it. Returns NULL and the first error in why. */
static sl_config *load(fx *f, const char *body, char *why, size_t cap)
{
    FILE *fp = fopen(f->conf, "w");
    assert_non_null(fp);
    fprintf(fp,
            "sluice:\n"
            "  data_dir: %s/data\n"
            "  admin: { listen: \"127.0.0.1:0\" }\n"
            "%s",
            f->dir, body);
    fclose(fp);
    sl_config_errors errs = {0};
    sl_config *conf = sl_config_load(f->conf, &errs);
    if (!conf)
        snprintf(why, cap, "%s", errs.n ? errs.lines[0] : "?");
    sl_config_errors_free(&errs);
    return conf;
}

static const char THREE[] = "connectors:\n"
                            "  in: { type: http_server, listen: \"127.0.0.1:0\" }\n"
                            "  crm: { type: http_client, base_url: \"http://127.0.0.1:9\" }\n"
                            "  out: { type: stdout }\n"
                            "routes:\n"
                            "  r:\n"
                            "    from: { connector: in, path: /x }\n"
                            "    to:\n"
                            "      - { connector: crm, path: /orders }\n"
                            "      - { connector: out }\n";

/* Waits up to 10 s for n deliveries. */
static void wait_sent(capture *k, size_t n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&k->mu);
    int rc = 0;
    while (k->n_sent < n && rc == 0)
        rc = pthread_cond_timedwait(&k->cv, &k->mu, &until);
    size_t got = k->n_sent;
    pthread_mutex_unlock(&k->mu);
    if (got < n)
        fail_msg("%zu of %zu deliveries after 10 s", got, n);
}

/* ---- tests -------------------------------------------------------------------- */

static void test_connectors_and_breakers(void **state)
{
    fx *f = *state;
    char why[512];
    sl_config *conf = load(f, THREE, why, sizeof why);
    if (!conf)
        fail_msg("load: %s", why);
    sl_error err;
    sl_gateway *gw = sl_gateway_new(conf, NULL, &err);
    if (!gw)
        fail_msg("new: %s", err.msg);
    assert_int_equal(sl_gateway_n_connectors(gw), 3);
    const char *names[] = {"in", "crm", "out"};
    size_t with_breaker = 0;
    for (size_t i = 0; i < 3; i++) {
        sl_connector *c = sl_gateway_connector_at(gw, i);
        assert_string_equal(c->conf->name, names[i]);
        assert_ptr_equal(c->type, sl_connector_type_find(c->conf->type)); /* from the registry */
        assert_ptr_equal(sl_gateway_connector(gw, names[i]), c);
        /* a breaker exactly where the type says it calls a partner */
        sl_breaker *b = sl_gateway_breaker_at(gw, i);
        assert_int_equal(b != NULL, c->type->has_breaker);
        assert_ptr_equal(sl_gateway_breaker(gw, names[i]), b);
        if (b) {
            assert_string_equal(sl_breaker_name(b), names[i]);
            with_breaker++;
        }
        /* what the connector sees of the gateway */
        assert_non_null(c->env);
        assert_ptr_equal(sl_connector_metrics(c), sl_gateway_metrics(gw));
        assert_ptr_equal(c->env->conf, sl_gateway_config(gw));
        assert_non_null(sl_connector_settings(c));
        assert_non_null(strstr(sl_connector_settings(c)->data_dir, "/data"));
    }
    assert_int_equal(with_breaker, 1); /* crm only */
    assert_null(sl_gateway_connector_at(gw, 3));
    assert_int_equal(sl_gateway_n_routes(gw), 1);
    assert_ptr_equal(sl_gateway_route_at(gw, 0), sl_gateway_route(gw, "r"));
    assert_null(sl_gateway_route(gw, "nope"));
    sl_gateway_free(gw);
}

/* Every connector captured: the route is attached to its input and
 * delivers to the two connectors its `to:` names; the captured connectors
 * keep their real type's breaker. */
static void test_routes_attached_and_outputs_resolved(void **state)
{
    fx *f = *state;
    char why[512];
    sl_config *conf = load(f, THREE, why, sizeof why);
    if (!conf)
        fail_msg("load: %s", why);
    sl_error err;
    sl_gateway *gw = sl_gateway_new_as(conf, &cap_type, &f->cap, &err);
    if (!gw)
        fail_msg("new_as: %s", err.msg);
    assert_int_equal(f->cap.n_attached, 1);
    assert_string_equal(f->cap.attached[0], "in<-r");
    assert_non_null(sl_gateway_breaker(gw, "crm"));
    assert_null(sl_gateway_breaker(gw, "out"));
    if (sl_gateway_start(gw, &err) < 0)
        fail_msg("start: %s", err.msg);
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, "{\"n\":1}", 7), 0);
    assert_int_equal(sl_route_append(sl_gateway_route(gw, "r"), m, &err), 0);
    sl_msg_free(m);
    wait_sent(&f->cap, 2);
    sl_gateway_stop(gw);
    sl_gateway_free(gw);
    assert_int_equal(f->cap.n_sent, 2);
    bool crm = false, out = false;
    for (size_t i = 0; i < 2; i++) {
        crm |= strcmp(f->cap.sent[i], "crm: {\"n\":1}") == 0;
        out |= strcmp(f->cap.sent[i], "out: {\"n\":1}") == 0;
    }
    assert_true(crm);
    assert_true(out);
}

static void test_input_that_cannot_be_one_is_refused(void **state)
{
    fx *f = *state;
    char why[512], want[700];
    /* at load: the type's can_input says no */
    sl_config *conf = load(f,
                           "connectors:\n"
                           "  out: { type: stdout }\n"
                           "routes:\n"
                           "  r:\n"
                           "    from: { connector: out }\n"
                           "    to: [ { topic: t } ]\n",
                           why, sizeof why);
    assert_null(conf);
    snprintf(want, sizeof want,
             "%s:8:24: routes.r.from.connector: connector 'out' has type stdout, which cannot be "
             "an input",
             f->conf);
    assert_string_equal(why, want);
    /* at assembly: the table that runs it has no attach_input */
    conf = load(f, THREE, why, sizeof why);
    assert_non_null(conf);
    sl_error err;
    assert_null(sl_gateway_new_as(conf, &cap_output_only, &f->cap, &err));
    snprintf(want, sizeof want, "%s:10:11: routes.r.from: connector in cannot be an input",
             f->conf);
    assert_string_equal(err.msg, want);
}

static void test_reload_keeps_the_runtime(void **state)
{
    fx *f = *state;
    char why[512];
    static const char ONE[] = "connectors:\n"
                              "  in: { type: http_server, listen: \"127.0.0.1:0\" }\n"
                              "  out: { type: stdout }\n"
                              "routes:\n"
                              "  r:\n"
                              "    from: { connector: in, path: /x }\n"
                              "    to: [ { topic: t } ]\n";
    sl_config *conf = load(f, ONE, why, sizeof why);
    if (!conf)
        fail_msg("load: %s", why);
    sl_error err;
    sl_gateway *gw = sl_gateway_new(conf, NULL, &err);
    if (!gw || sl_gateway_start(gw, &err) < 0)
        fail_msg("start: %s", err.msg);
    sl_log *log = sl_gateway_log(gw);
    sl_metrics *metrics = sl_gateway_metrics(gw);
    sl_status *status = sl_gateway_status(gw);
    sl_msg *m = sl_msg_new();
    assert_int_equal(sl_msg_set_body(m, "before", 6), 0);
    assert_int_equal(sl_route_append(sl_gateway_route(gw, "r"), m, &err), 0);
    sl_msg_free(m);

    char two[1024];
    snprintf(two, sizeof two,
             "%s  r2:\n"
             "    from: { connector: in, path: /y }\n"
             "    to: [ { topic: t } ]\n",
             ONE);
    sl_config *next = load(f, two, why, sizeof why);
    if (!next)
        fail_msg("load: %s", why);
    if (sl_gateway_reload(&gw, next, &err) < 0)
        fail_msg("reload: %s", err.msg);
    assert_non_null(gw);
    assert_int_equal(sl_gateway_n_routes(gw), 2);
    assert_non_null(sl_gateway_route(gw, "r2"));
    /* the same log, metrics and status: what was appended is still there */
    assert_ptr_equal(sl_gateway_log(gw), log);
    assert_ptr_equal(sl_gateway_metrics(gw), metrics);
    assert_ptr_equal(sl_gateway_status(gw), status);
    sl_route_partition_info info;
    assert_int_equal(sl_route_get_partition_info(sl_gateway_route(gw, "r"), 0, &info), 0);
    assert_int_equal(info.end_offset, 1);
    sl_gateway_stop(gw);
    sl_gateway_free(gw);
}

static int dropped[3];

static void drop_counted(void *obj)
{
    dropped[(int *)obj - dropped]++;
}

/* What a generation keeps for the next one: taken back by its key once,
 * and dropped when nobody took it (here, when the runtime closes). */
static void test_runtime_keeps_objects_across_generations(void **state)
{
    fx *f = *state;
    char why[512];
    sl_config *conf = load(f, "routes: {}\n", why, sizeof why);
    if (!conf)
        fail_msg("load: %s", why);
    sl_error err;
    sl_runtime *rt = sl_runtime_open(conf, &err);
    if (!rt)
        fail_msg("runtime: %s", err.msg);
    memset(dropped, 0, sizeof dropped);
    sl_runtime_keep(rt, "http_server:127.0.0.1:1", &dropped[0], drop_counted);
    sl_runtime_keep(rt, "admin.tls", &dropped[1], drop_counted);
    assert_ptr_equal(sl_runtime_take_kept(rt, "http_server:127.0.0.1:1"), &dropped[0]);
    assert_null(sl_runtime_take_kept(rt, "http_server:127.0.0.1:1"));
    assert_null(sl_runtime_take_kept(rt, "http_server:127.0.0.1:2"));
    sl_runtime_keep(NULL, "x", &dropped[2], drop_counted); /* no runtime: dropped at once */
    assert_int_equal(dropped[2], 1);
    assert_int_equal(dropped[1], 0);
    sl_runtime_close(rt);
    assert_int_equal(dropped[0], 0); /* taken: the taker's */
    assert_int_equal(dropped[1], 1); /* not taken: dropped */
    sl_config_free(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connectors_and_breakers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_attached_and_outputs_resolved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input_that_cannot_be_one_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_keeps_the_runtime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_keeps_objects_across_generations, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
