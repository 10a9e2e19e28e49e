/* Unit tests for transforms/validate.c: the `validate` step with an XML
 * Schema (fixtures in tests/unit/json_xml/, the path relative to the config
 * file) and with `json: true`, its config errors, and its hardening. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_xml.h"
#include "message.h"
#include "step.h"

extern const sl_step_type sl_validate_step;
extern const sl_step_type sl_json_to_xml_step;

/* The fixture directory, from this file's path (CMake compiles with
 * absolute paths). */
static char fixture_dir[1024];
static char route_file[1100];

static void set_paths(void)
{
    snprintf(fixture_dir, sizeof fixture_dir, "%s", __FILE__);
    char *slash = strrchr(fixture_dir, '/');
    if (slash)
        snprintf(slash, sizeof fixture_dir - (size_t)(slash - fixture_dir), "/json_xml");
    else
        snprintf(fixture_dir, sizeof fixture_dir, "json_xml");
    /* the config file the step was "written in": relative paths resolve
     * against its directory */
    snprintf(route_file, sizeof route_file, "%s/route.yaml", fixture_dir);
}

static char *read_fixture(const char *name)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static sl_node *mk_scalar(const char *v)
{
    sl_node *n = calloc(1, sizeof *n);
    n->kind = SL_NODE_SCALAR;
    n->scalar = strdup(v);
    n->pos = (sl_conf_pos){route_file, 12, 21};
    return n;
}

/* mk_map(n, "key", node, ...) */
static sl_node *mk_map(int n, ...)
{
    sl_node *m = calloc(1, sizeof *m);
    m->kind = SL_NODE_MAP;
    m->pos = (sl_conf_pos){route_file, 12, 9};
    m->pairs = calloc((size_t)(n ? n : 1), sizeof *m->pairs);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        sl_node_pair *p = &m->pairs[m->n_pairs++];
        p->key = strdup(va_arg(ap, const char *));
        p->key_pos = (sl_conf_pos){route_file, 12, 11};
        p->value = va_arg(ap, sl_node *);
    }
    va_end(ap);
    return m;
}

static void free_node(sl_node *n)
{
    if (!n)
        return;
    free(n->scalar);
    for (size_t i = 0; i < n->n_pairs; i++) {
        free(n->pairs[i].key);
        free_node(n->pairs[i].value);
    }
    free(n->pairs);
    free(n);
}

typedef struct fixture {
    sl_step_conf conf;
    sl_step step;
    sl_node *node;
    sl_pool pool; /* the parsed settings (conf.priv) */
} fixture;

static int init_step(fixture *f, const sl_step_type *t, sl_node *node, sl_error *err)
{
    memset(f, 0, sizeof *f);
    f->node = node;
    f->conf.pos = (sl_conf_pos){route_file, 12, 7};
    f->step.type = t;
    f->step.conf = &f->conf;
    f->step.route = "test";
    /* as a config load does: the type parses its settings, then init */
    int rc = sl_step_conf_parse(t, &f->conf, node, &f->pool, err);
    if (rc == 0)
        rc = t->init(&f->step, err);
    if (rc < 0)
        assert_null(f->step.state); /* a failed init leaves nothing behind */
    return rc;
}

static void done_step(fixture *f)
{
    if (f->step.state)
        f->step.type->destroy(&f->step);
    free_node(f->node);
    sl_pool_free(&f->pool);
}

static sl_msg *msg_with(const char *body)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
    return m;
}

static int run(fixture *f, const char *body, sl_error *err)
{
    sl_msg *m = msg_with(body);
    int rc = f->step.type->process(&f->step, m, err);
    assert_string_equal(m->body, body); /* validate never changes the body */
    sl_msg_free(m);
    return rc;
}

static void test_schema_valid_and_invalid(void **state)
{
    (void)state;
    fixture f;
    sl_error err = {0};
    /* relative to the config file's directory */
    assert_int_equal(
        init_step(&f, &sl_validate_step, mk_map(1, "xml_schema", mk_scalar("order.xsd")), &err), 0);
    char *valid = read_fixture("order-valid.xml");
    char *invalid = read_fixture("order-invalid.xml");
    assert_int_equal(run(&f, valid, &err), SL_STEP_OK);
    assert_int_equal(run(&f, invalid, &err), SL_STEP_FAIL);
    assert_string_equal(err.msg, "validate: XML line 6: Element 'qty': 'zero' is not a valid value "
                                 "of the atomic type 'xs:positiveInteger'.");
    /* the compiled schema is reused, and the first error of each message is reported */
    assert_int_equal(run(&f, valid, &err), SL_STEP_OK);
    assert_int_equal(run(&f, "<order id=\"1\">\n<customer>x</customer>\n</order>", &err),
                     SL_STEP_FAIL);
    assert_string_equal(err.msg, "validate: XML line 1: Element 'order': Missing child element(s). "
                                 "Expected is ( item ).");
    assert_int_equal(run(&f,
                         "<order><customer>x</customer><item><sku>a</sku><qty>1</qty></item>"
                         "</order>",
                         &err),
                     SL_STEP_FAIL);
    assert_non_null(strstr(err.msg, "The attribute 'id' is required but missing"));
    /* malformed XML is reported with its line */
    assert_int_equal(run(&f, "<order id=\"1\">\n<customer>\n</order>", &err), SL_STEP_FAIL);
    assert_string_equal(
        err.msg,
        "validate: XML line 3: Opening and ending tag mismatch: customer line 2 and order");
    /* and hostile XML is refused before validation */
    assert_int_equal(run(&f,
                         "<!DOCTYPE order [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
                         "<order id=\"&x;\"/>",
                         &err),
                     SL_STEP_FAIL);
    assert_non_null(strstr(err.msg, "validate: XML line 1: the DOCTYPE declares entity 'x'"));
    free(valid);
    free(invalid);
    done_step(&f);

    /* an absolute path works too */
    char abs[1200];
    snprintf(abs, sizeof abs, "%s/order.xsd", fixture_dir);
    assert_int_equal(
        init_step(&f, &sl_validate_step, mk_map(1, "xml_schema", mk_scalar(abs)), &err), 0);
    done_step(&f);
}

/* json_to_xml output checked by the schema: the two steps in a chain. */
static void test_json_to_xml_then_validate(void **state)
{
    (void)state;
    fixture j2x, val;
    sl_error err = {0};
    assert_int_equal(init_step(&j2x, &sl_json_to_xml_step, NULL, &err), 0);
    assert_int_equal(
        init_step(&val, &sl_validate_step, mk_map(1, "xml_schema", mk_scalar("order.xsd")), &err),
        0);
    sl_msg *m =
        msg_with("{\"order\":{\"@id\":\"A-1\",\"customer\":\"ACME\","
                 "\"item\":[{\"sku\":\"X\",\"qty\":\"2\"},{\"sku\":\"Y\",\"qty\":\"1\"}]}}");
    assert_int_equal(sl_json_to_xml_step.process(&j2x.step, m, &err), SL_STEP_OK);
    assert_int_equal(sl_validate_step.process(&val.step, m, &err), SL_STEP_OK);
    sl_msg_free(m);
    m = msg_with("{\"order\":{\"@id\":\"A-1\",\"customer\":\"ACME\",\"item\":{\"qty\":\"2\"}}}");
    assert_int_equal(sl_json_to_xml_step.process(&j2x.step, m, &err), SL_STEP_OK);
    assert_int_equal(sl_validate_step.process(&val.step, m, &err), SL_STEP_FAIL);
    assert_non_null(
        strstr(err.msg, "Element 'qty': This element is not expected. Expected is ( sku )"));
    sl_msg_free(m);
    done_step(&j2x);
    done_step(&val);
}

static void test_json_mode(void **state)
{
    (void)state;
    fixture f;
    sl_error err = {0};
    assert_int_equal(init_step(&f, &sl_validate_step, mk_map(1, "json", mk_scalar("true")), &err),
                     0);
    sl_msg *m = msg_with("{\"a\":[1,2,{\"b\":null}]}");
    assert_int_equal(sl_validate_step.process(&f.step, m, &err), SL_STEP_OK);
    assert_non_null(m->json); /* parsed once, cached for the next steps */
    sl_msg_free(m);
    assert_int_equal(run(&f, "\"a string is JSON too\"", &err), SL_STEP_OK);
    assert_int_equal(run(&f, "{\"a\":1,\n\"b\":}", &err), SL_STEP_FAIL);
    assert_non_null(strstr(err.msg, "validate: body is not JSON:"));
    assert_non_null(strstr(err.msg, "line 2"));
    assert_int_equal(run(&f, "", &err), SL_STEP_FAIL);
    assert_int_equal(run(&f, "<xml/>", &err), SL_STEP_FAIL);
    done_step(&f);
}

static void test_config_errors(void **state)
{
    (void)state;
    fixture f;
    sl_error err = {0};
    char want[2300];

    assert_int_equal(
        init_step(&f, &sl_validate_step, mk_map(1, "xml_schema", mk_scalar("missing.xsd")), &err),
        -1);
    snprintf(want, sizeof want, "%s:12:21: validate: cannot read XML schema '%s/missing.xsd'",
             route_file, fixture_dir);
    assert_string_equal(err.msg, want);
    assert_int_equal(err.code, SL_ECONFIG);
    done_step(&f);

    assert_int_equal(
        init_step(&f, &sl_validate_step, mk_map(1, "xml_schema", mk_scalar("broken.xsd")), &err),
        -1);
    assert_non_null(strstr(err.msg, "broken.xsd' is invalid: line 3:"));
    assert_non_null(strstr(err.msg, "noSuchType"));
    done_step(&f);

    /* a document is not a schema */
    assert_int_equal(init_step(&f, &sl_validate_step,
                               mk_map(1, "xml_schema", mk_scalar("order-valid.xml")), &err),
                     -1);
    assert_non_null(strstr(err.msg, "order-valid.xml' is invalid"));
    done_step(&f);

    assert_int_equal(
        init_step(&f, &sl_validate_step,
                  mk_map(2, "xml_schema", mk_scalar("order.xsd"), "json", mk_scalar("true")), &err),
        -1);
    assert_non_null(strstr(err.msg, "expected exactly one of 'xml_schema: FILE' or 'json: true'"));
    done_step(&f);

    assert_int_equal(init_step(&f, &sl_validate_step, mk_map(1, "json", mk_scalar("false")), &err),
                     -1);
    assert_non_null(strstr(err.msg, "expected exactly one of"));
    done_step(&f);

    assert_int_equal(init_step(&f, &sl_validate_step, mk_map(1, "schema", mk_scalar("x")), &err),
                     -1);
    assert_non_null(strstr(err.msg, "unknown key 'schema'"));
    done_step(&f);

    assert_int_equal(init_step(&f, &sl_validate_step, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "validate: expected 'xml_schema: FILE' or 'json: true'"));
    done_step(&f);
}

int main(void)
{
    set_paths();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_valid_and_invalid),
        cmocka_unit_test(test_json_to_xml_then_validate),
        cmocka_unit_test(test_json_mode),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
