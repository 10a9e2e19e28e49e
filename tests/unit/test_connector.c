/* Unit tests for the type lookups of core/connector.c and core/step.c over
 * the registries outside core (connectors/registry.c, transforms/registry.c):
 * every type is found by its name, the listed names are what `sluice check`
 * prints, and the flags core reads say what each connector can do. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "connector.h"
#include "step.h"

static void test_every_registered_connector_is_found_by_name(void **state)
{
    (void)state;
    size_t n = 0;
    for (size_t i = 0; sl_connector_registry[i]; i++, n++)
        assert_ptr_equal(sl_connector_type_find(sl_connector_registry[i]->name),
                         sl_connector_registry[i]);
    assert_int_equal(n, 6);
    assert_null(sl_connector_type_find("nope"));
    assert_null(sl_connector_type_find(""));
}

static void test_connector_type_list_is_alphabetical(void **state)
{
    (void)state;
    char buf[256];
    assert_string_equal(sl_connector_type_list(buf, sizeof buf),
                        "amqp, file, http_client, http_server, kafka, stdout");
    char small[8];
    assert_string_equal(sl_connector_type_list(small, sizeof small), "amqp, f");
}

/* The flags core reads: roles in the config, breakers in the gateway. */
static void test_connector_flags(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool in, out, breaker;
    } want[] = {
        {"amqp", true, true, true},         {"file", true, true, false},
        {"http_client", false, true, true}, {"http_server", true, false, false},
        {"kafka", true, true, true},        {"stdout", false, true, false},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const sl_connector_type *t = sl_connector_type_find(want[i].name);
        assert_non_null(t);
        assert_int_equal(t->can_input, want[i].in);
        assert_int_equal(t->can_output, want[i].out);
        assert_int_equal(t->has_breaker, want[i].breaker);
        /* a role the type can play has its entry points */
        assert_true(!t->can_input || t->attach_input);
        assert_true(!t->can_output || t->send);
    }
}

static void test_every_registered_step_is_found_in_check_order(void **state)
{
    (void)state;
    static const char *const order[] = {"lua",    "json_to_xml", "xml_to_json",
                                        "filter", "set",         "validate"};
    size_t n = 0;
    for (; sl_step_registry[n]; n++) {
        assert_true(n < 6);
        assert_string_equal(sl_step_registry[n]->name, order[n]);
        assert_ptr_equal(sl_step_type_find(order[n]), sl_step_registry[n]);
        assert_non_null(sl_step_registry[n]->parse_conf);
    }
    assert_int_equal(n, 6);
    assert_null(sl_step_type_find("nope"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_registered_connector_is_found_by_name),
        cmocka_unit_test(test_connector_type_list_is_alphabetical),
        cmocka_unit_test(test_connector_flags),
        cmocka_unit_test(test_every_registered_step_is_found_in_check_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
