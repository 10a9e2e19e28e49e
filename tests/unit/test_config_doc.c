/* Unit tests for the config reference (core/config_doc.c): every key list
 * the loader checks against (core's sections, each connector and step type)
 * has a documentation table listing exactly those keys, so a key added
 * without a line of documentation fails here; and the two views built from
 * the tables name what an operator looks for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "connector.h"
#include "log_backend.h"
#include "step.h"

static const char *const TYPES[] = {"string", "integer", "number",  "boolean", "duration",
                                    "size",   "rate",    "listen",  "url",     "list",
                                    "map",    "any",     "breaker", "object",  NULL};

static bool known_type(const char *t)
{
    if (!strncmp(t, "enum:", 5)) {
        return t[5] != '\0';
    }
    return sl_conf_find_word(TYPES, t) >= 0;
}

static size_t count_keys(const char *const *keys)
{
    size_t n = 0;
    while (keys && keys[n]) {
        n++;
    }
    return n;
}

/* Fails naming owner and key unless doc lists exactly the keys of keys,
 * each once, with a known type and a meaning. */
static void check_table(const char *owner, const char *const *keys, const sl_conf_doc *doc)
{
    size_t n_doc = 0;
    for (const sl_conf_doc *d = doc; d && d->key; d++, n_doc++) {
        if (sl_conf_find_word(keys ? keys : (const char *const[]){NULL}, d->key) < 0) {
            fail_msg("%s: documents '%s', which its key list does not allow", owner, d->key);
        }
        for (const sl_conf_doc *e = doc; e != d; e++) {
            if (!strcmp(e->key, d->key)) {
                fail_msg("%s: documents '%s' twice", owner, d->key);
            }
        }
        if (!d->type || !known_type(d->type)) {
            fail_msg("%s.%s: unknown type '%s'", owner, d->key, d->type ? d->type : "(null)");
        }
        if (!d->meaning || strlen(d->meaning) < 10) {
            fail_msg("%s.%s: needs a line of meaning", owner, d->key);
        }
        if (d->required && d->def) {
            fail_msg("%s.%s: required, yet has a default", owner, d->key);
        }
    }
    for (size_t i = 0; keys && keys[i]; i++) {
        bool found = false;
        for (const sl_conf_doc *d = doc; d && d->key && !found; d++) {
            found = !strcmp(d->key, keys[i]);
        }
        if (!found) {
            fail_msg("%s: key '%s' is allowed but not documented", owner, keys[i]);
        }
    }
    assert_int_equal(n_doc, count_keys(keys));
}

static void test_core_sections_are_documented_exactly(void **state)
{
    (void)state;
    size_t n = 0;
    for (const sl_conf_section *s = sl_conf_core_sections; s->name; s++, n++) {
        const sl_conf_doc *doc = sl_conf_core_doc(s->name);
        if (!doc) {
            fail_msg("core section '%s' has no documentation table", s->name);
        }
        check_table(s->name, s->keys, doc);
    }
    assert_true(n >= 15);
}

static void test_connector_types_are_documented_exactly(void **state)
{
    (void)state;
    for (size_t i = 0; sl_connector_registry[i]; i++) {
        const sl_connector_type *t = sl_connector_registry[i];
        char owner[128];
        if (!t->summary || !*t->summary) {
            fail_msg("connector type %s has no summary", t->name);
        }
        snprintf(owner, sizeof owner, "connector %s", t->name);
        check_table(owner, t->conf_keys, t->conf_doc);
        snprintf(owner, sizeof owner, "connector %s (from:)", t->name);
        check_table(owner, t->input_keys, t->input_doc);
        snprintf(owner, sizeof owner, "connector %s (to:)", t->name);
        check_table(owner, t->output_keys, t->output_doc);
        if (t->log_backend) {
            snprintf(owner, sizeof owner, "connector %s (log:)", t->name);
            check_table(owner, t->log_backend->keys, t->log_backend->doc);
        }
        for (const sl_conf_doc *d = t->conf_doc; d && d->key; d++) {
            if (!strcmp(d->key, "breaker") && strcmp(d->type, "breaker")) {
                fail_msg("connector %s: 'breaker' must have type breaker", t->name);
            }
        }
    }
}

static void test_step_types_are_documented_exactly(void **state)
{
    (void)state;
    for (size_t i = 0; sl_step_registry[i]; i++) {
        const sl_step_type *t = sl_step_registry[i];
        if (!t->summary || !*t->summary) {
            fail_msg("step %s has no summary", t->name);
        }
        if (t->value) {
            assert_null(t->conf_keys);
            assert_non_null(t->value->meaning);
            assert_true(known_type(t->value->type));
            continue;
        }
        if (!t->conf_keys) {
            fail_msg("step %s: neither conf_keys nor value", t->name);
        }
        check_table(t->name, t->conf_keys, t->conf_doc);
    }
}

/* The type vocabulary the views understand. */
static void test_type_vocabulary(void **state)
{
    (void)state;
    assert_false(known_type("duraton"));
    assert_true(known_type("enum:a|b"));
    assert_false(known_type("enum:"));
}

static char *run_doc(const char *sub)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    char *argv[] = {"config", (char *)sub, NULL};
    assert_int_equal(sl_config_doc_main(2, argv, f), 0);
    fclose(f);
    return buf;
}

static void test_reference_names_the_keys_operators_look_for(void **state)
{
    (void)state;
    char *md = run_doc("reference");
    static const char *const want[] = {"| `dedupe_window` | duration | `24h` |",
                                       "| `log_level` | one of `debug` `info`",
                                       "| `multiplier` | number | `2` |",
                                       "| `retention_bytes` | size | `0` |",
                                       "| `max_open_for` | duration | `5m` |",
                                       "doubled each time a half-open trial fails",
                                       "### type: kafka",
                                       "| `tls.verify` | boolean | `true` |",
                                       "### filter",
                                       NULL};
    for (size_t i = 0; want[i]; i++) {
        if (!strstr(md, want[i])) {
            fail_msg("reference lacks: %s", want[i]);
        }
    }
    free(md);
}

static void test_schema_is_draft_2020_12_with_every_connector_type(void **state)
{
    (void)state;
    char *js = run_doc("schema");
    assert_non_null(strstr(js, "\"$schema\": \"https://json-schema.org/draft/2020-12/schema\""));
    for (size_t i = 0; sl_connector_registry[i]; i++) {
        char want[128];
        snprintf(want, sizeof want, "{\"const\": \"%s\"}", sl_connector_registry[i]->name);
        if (!strstr(js, want)) {
            fail_msg("schema lacks connector type %s", sl_connector_registry[i]->name);
        }
    }
    assert_non_null(strstr(js, "\"dedupe_window\": {\"type\": [\"string\", \"integer\"]"));
    free(js);
}

static void test_unknown_subcommand_is_usage(void **state)
{
    (void)state;
    char *argv[] = {"config", "nope", NULL};
    assert_int_equal(sl_config_doc_main(2, argv, stdout), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_sections_are_documented_exactly),
        cmocka_unit_test(test_connector_types_are_documented_exactly),
        cmocka_unit_test(test_step_types_are_documented_exactly),
        cmocka_unit_test(test_type_vocabulary),
        cmocka_unit_test(test_reference_names_the_keys_operators_look_for),
        cmocka_unit_test(test_schema_is_draft_2020_12_with_every_connector_type),
        cmocka_unit_test(test_unknown_subcommand_is_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
