/* Unit tests for the AMQP connector (connectors/amqp*.c) that need no broker:
 * URL, credentials and TLS settings, and send() against an unreachable
 * broker (SL_RETRY naming the broker) or with a routing key that cannot be
 * built (SL_FAIL, whatever the broker's state). The broker-facing behaviour
 * is covered by tests/integration/test_amqp.py against a real RabbitMQ. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp_internal.h"
#include "connector.h"

extern const sl_connector_type sl_amqp_connector;

/* A connector conf holding url (and a node tree when tls is given). */
typedef struct fixture {
    sl_connector_conf cc;
    sl_amqp_conf ac;
    sl_node root, tls, ca, verify;
    sl_node_pair root_pairs[1], tls_pairs[2];
    sl_connector c;
} fixture;

static void setup_conf(fixture *f, const char *url, const char *ca_file, const char *verify)
{
    memset(f, 0, sizeof *f);
    f->cc.name = "rabbit";
    f->cc.type = "amqp";
    f->ac.url = (char *)url;
    f->ac.timeout_ms = 300;
    f->ac.prefetch = 16;
    f->cc.priv = &f->ac;
    f->cc.pos = (sl_conf_pos){"unit.yaml", 3, 5};
    f->root.kind = SL_NODE_MAP;
    if (ca_file || verify) {
        size_t n = 0;
        if (ca_file) {
            f->ca = (sl_node){.kind = SL_NODE_SCALAR, .scalar = (char *)ca_file};
            f->tls_pairs[n++] = (sl_node_pair){.key = "ca_file", .value = &f->ca};
        }
        if (verify) {
            f->verify = (sl_node){.kind = SL_NODE_SCALAR, .scalar = (char *)verify};
            f->tls_pairs[n++] = (sl_node_pair){.key = "verify", .value = &f->verify};
        }
        f->tls = (sl_node){.kind = SL_NODE_MAP, .pairs = f->tls_pairs, .n_pairs = n};
        f->root_pairs[0] = (sl_node_pair){.key = "tls", .value = &f->tls};
        f->root.pairs = f->root_pairs;
        f->root.n_pairs = 1;
    }
    f->cc.node = &f->root;
    f->c.type = &sl_amqp_connector;
    f->c.conf = &f->cc;
}

static void test_url_and_credentials(void **state)
{
    (void)state;
    fixture f;
    sl_error err;
    setenv("AMQP_USER", "envuser", 1);
    setenv("AMQP_PASSWORD", "envpass", 1);

    setup_conf(&f, "amqp://alice:secret@broker.example:5673/prod", NULL, NULL);
    assert_int_equal(sl_amqp_connector.init(&f.c, &err), 0);
    sl_amqp *a = f.c.state;
    assert_string_equal(a->target.host, "broker.example");
    assert_int_equal(a->target.port, 5673);
    assert_string_equal(a->target.vhost, "prod");
    assert_string_equal(a->target.user, "alice"); /* the URL's credentials win */
    assert_string_equal(a->target.password, "secret");
    assert_false(a->target.tls);
    assert_null(strstr(a->target.display, "secret"));
    sl_amqp_connector.destroy(&f.c);

    setup_conf(&f, "amqp://localhost/", NULL, NULL);
    assert_int_equal(sl_amqp_connector.init(&f.c, &err), 0);
    a = f.c.state;
    assert_string_equal(a->target.user, "envuser"); /* none in the URL: the environment */
    assert_string_equal(a->target.password, "envpass");
    assert_string_equal(a->target.vhost, "/"); /* "amqp://host/" is the default vhost */
    assert_int_equal(a->target.port, 5672);
    sl_amqp_connector.destroy(&f.c);

    unsetenv("AMQP_USER");
    unsetenv("AMQP_PASSWORD");
    setup_conf(&f, "amqp://localhost", NULL, NULL);
    assert_int_equal(sl_amqp_connector.init(&f.c, &err), 0);
    assert_string_equal(((sl_amqp *)f.c.state)->target.user, "guest");
    sl_amqp_connector.destroy(&f.c);

    setup_conf(&f, "http://nope", NULL, NULL);
    assert_int_equal(sl_amqp_connector.init(&f.c, &err), -1);
    assert_int_equal(err.code, SL_ECONFIG);
    assert_non_null(strstr(err.msg, "unit.yaml:3:5: connectors.rabbit.url"));
    assert_null(f.c.state);
}

static void test_tls_settings(void **state)
{
    (void)state;
    fixture f;
    sl_error err;
    setup_conf(&f, "amqps://guest:guest@localhost/", "/tmp/ca.pem", NULL);
    assert_int_equal(sl_amqp_connector.init(&f.c, &err), 0);
    sl_amqp *a = f.c.state;
    assert_true(a->target.tls);
    assert_true(a->target.tls_verify); /* verified unless told otherwise */
    assert_int_equal(a->target.port, 5671);
    assert_string_equal(a->target.ca_file, "/tmp/ca.pem");
    sl_amqp_connector.destroy(&f.c);

    setup_conf(&f, "amqps://localhost/", NULL, "false");
    assert_int_equal(sl_amqp_connector.init(&f.c, &err), 0);
    assert_false(((sl_amqp *)f.c.state)->target.tls_verify);
    sl_amqp_connector.destroy(&f.c);

    setup_conf(&f, "amqps://localhost/", NULL, "maybe");
    assert_int_equal(sl_amqp_connector.init(&f.c, &err), -1);
    assert_non_null(strstr(err.msg, "tls.verify: expected true or false"));
}

static sl_msg *mk_msg(const char *body, const char *hname, const char *hval)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
    if (hname)
        assert_int_equal(sl_msg_set_header(m, hname, hval, strlen(hval)), 0);
    return m;
}

static void test_send_without_broker(void **state)
{
    (void)state;
    fixture f;
    sl_error err;
    /* port 1 on loopback: refused at once */
    setup_conf(&f, "amqp://guest:guest@127.0.0.1:1/", NULL, NULL);
    assert_int_equal(sl_amqp_connector.init(&f.c, &err), 0);
    sl_amqp_output ao = {.exchange = "orders",
                         .routing_key = "orders.${header:type}",
                         .persistent = true,
                         .mandatory = true};
    sl_output_conf out = {.priv = &ao};
    sl_msg *msgs[4] = {
        mk_msg("{\"a\":1}", "type", "created"),
        mk_msg("{\"a\":2}", NULL, NULL), /* no header: the key has no value */
        mk_msg("not json", "type", "x"), /* fine: the template reads a header */
        mk_msg("{\"a\":3}", "type", "y"),
    };
    sl_send_result res[4];
    memset(res, 0, sizeof res);
    sl_amqp_connector.send(&f.c, &out, msgs, 4, res);
    assert_int_equal(res[0].result, SL_RETRY);
    assert_non_null(strstr(res[0].error, "connect to amqp://127.0.0.1:1/"));
    assert_int_equal(res[1].result, SL_FAIL);
    assert_non_null(strstr(res[1].error, "${header:type} has no value"));
    assert_int_equal(res[2].result, SL_RETRY);
    assert_int_equal(res[3].result, SL_RETRY);

    /* a JSON path over a body that is not JSON: permanent */
    sl_amqp_output ao2 = {.exchange = "", .routing_key = "k.${$.a}"};
    sl_output_conf out2 = {.priv = &ao2};
    sl_send_result r2[1];
    sl_amqp_connector.send(&f.c, &out2, &msgs[2], 1, r2);
    assert_int_equal(r2[0].result, SL_FAIL);
    assert_non_null(strstr(r2[0].error, "routing key 'k.${$.a}'"));

    /* an unterminated template: permanent */
    sl_amqp_output ao3 = {.exchange = "", .routing_key = "k.${header:type"};
    sl_output_conf out3 = {.priv = &ao3};
    sl_amqp_connector.send(&f.c, &out3, msgs, 1, r2);
    assert_int_equal(r2[0].result, SL_FAIL);
    assert_non_null(strstr(r2[0].error, "unterminated"));

    for (int i = 0; i < 4; i++)
        sl_msg_free(msgs[i]);
    sl_amqp_connector.stop(&f.c);
    sl_amqp_connector.destroy(&f.c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_and_credentials),
        cmocka_unit_test(test_tls_settings),
        cmocka_unit_test(test_send_without_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
