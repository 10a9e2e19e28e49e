/* Unit tests for core/message.c: UUIDv7 ids, headers, body, clone, the
 * record round trip and key expressions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "message.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* upper case is not allowed either */
}

/* Checks the text layout and the version/variant bits of one id. */
static void assert_uuid7(const char *id)
{
    assert_int_equal(strlen(id), SL_ID_LEN);
    for (int i = 0; i < SL_ID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(id[i], '-');
        else
            assert_true(hexval(id[i]) >= 0);
    }
    assert_int_equal(id[14], '7');              /* version */
    assert_true((hexval(id[19]) & 0xc) == 0x8); /* variant 10 */
}

static void test_uuid7_format(void **state)
{
    char id[SL_ID_LEN + 1];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    sl_uuid7(id);
    assert_uuid7(id);

    /* The first 48 bits are the Unix time in ms. */
    char hex[13];
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = '\0';
    int64_t ms = strtoll(hex, NULL, 16);
    assert_true(ms >= before && ms < before + 5000);
}

#define PER_THREAD 100000

typedef struct {
    char (*ids)[SL_ID_LEN + 1];
    int ordered; /* 1 when every id was greater than the previous one */
} gen_job;

static void *gen_ids(void *arg)
{
    gen_job *job = arg;
    job->ordered = 1;
    for (int i = 0; i < PER_THREAD; i++) {
        sl_uuid7(job->ids[i]);
        if (i > 0 && strcmp(job->ids[i - 1], job->ids[i]) >= 0)
            job->ordered = 0;
    }
    return NULL;
}

static int cmp_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_uuid7_monotonic_unique_two_threads(void **state)
{
    char(*ids)[SL_ID_LEN + 1] = malloc(2 * PER_THREAD * sizeof *ids);
    assert_non_null(ids);
    gen_job jobs[2] = {{ids, 0}, {ids + PER_THREAD, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, gen_ids, &jobs[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(jobs[0].ordered, 1);
    assert_int_equal(jobs[1].ordered, 1);

    qsort(ids, 2 * PER_THREAD, sizeof *ids, cmp_ids);
    for (int i = 0; i < 2 * PER_THREAD; i++) {
        if (i % 1000 == 0)
            assert_uuid7(ids[i]);
        if (i > 0)
            assert_true(strcmp(ids[i - 1], ids[i]) < 0);
    }
    free(ids);
}

static void test_new_message_defaults(void **state)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_uuid7(m->id);
    assert_non_null(m->body);
    assert_string_equal(m->body, "");
    assert_int_equal(m->body_len, 0);
    assert_null(m->key);
    assert_int_equal(m->partition, -1);
    assert_int_equal(m->offset, -1);
    assert_true(m->timestamp_ms > 1700000000000LL);
    sl_msg_free(m);
    sl_msg_free(NULL);
}

static void test_headers(void **state)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    size_t len = 99;
    assert_null(sl_msg_get_header(m, "x-tier", &len));
    assert_int_equal(len, 0);

    assert_int_equal(sl_msg_set_header(m, "x-tier", "gold", 4), 0);
    assert_int_equal(sl_msg_set_header(m, "content-type", "application/json", 16), 0);
    assert_string_equal(sl_msg_get_header(m, "X-Tier", &len), "gold");
    assert_int_equal(len, 4);

    /* Replacing matches case-insensitively and keeps one header. */
    assert_int_equal(sl_msg_set_header(m, "X-TIER", "silver", 6), 0);
    assert_int_equal(m->n_headers, 2);
    assert_string_equal(sl_msg_get_header(m, "x-tier", NULL), "silver");

    /* Values are length-delimited and NUL-terminated copies. */
    assert_int_equal(sl_msg_set_header(m, "bin", "a\0b", 3), 0);
    const char *v = sl_msg_get_header(m, "bin", &len);
    assert_int_equal(len, 3);
    assert_memory_equal(v, "a\0b", 4);

    /* Growing past the first allocation keeps every header. */
    char name[16];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "h%d", i);
        assert_int_equal(sl_msg_set_header(m, name, name, strlen(name)), 0);
    }
    assert_int_equal(m->n_headers, 43);
    assert_string_equal(sl_msg_get_header(m, "H39", NULL), "h39");

    /* The compatibility macro reaches the same function. */
    assert_string_equal(sl_msg_header(m, "content-type", NULL), "application/json");
    sl_msg_free(m);
}

static void test_body_key_clone(void **state)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, "{\"a\":1}", 7), 0);
    assert_int_equal(m->body_len, 7);
    assert_int_equal(m->body[7], '\0');
    assert_non_null(sl_msg_json(m, NULL));
    assert_non_null(m->json);
    /* A new body drops the cached tree. */
    assert_int_equal(sl_msg_set_body(m, "[2]", 3), 0);
    assert_null(m->json);

    assert_int_equal(sl_msg_set_key(m, "k1", 2), 0);
    assert_string_equal(m->key, "k1");
    assert_int_equal(sl_msg_set_header(m, "x", "y", 1), 0);
    m->attempts = 3;
    m->partition = 2;
    m->offset = 77;
    assert_non_null(sl_msg_json(m, NULL));

    sl_msg *c = sl_msg_clone(m);
    assert_non_null(c);
    assert_string_equal(c->id, m->id);
    assert_string_equal(c->body, "[2]");
    assert_int_equal(c->body_len, 3);
    assert_string_equal(c->key, "k1");
    assert_int_equal(c->key_len, 2);
    assert_string_equal(sl_msg_get_header(c, "x", NULL), "y");
    assert_int_equal(c->attempts, 3);
    assert_int_equal(c->partition, 2);
    assert_int_equal(c->offset, 77);
    assert_null(c->json);
    /* Deep copy: changing the clone leaves the original alone. */
    assert_int_equal(sl_msg_set_header(c, "x", "z", 1), 0);
    assert_string_equal(sl_msg_get_header(m, "x", NULL), "y");
    assert_true(c->body != m->body);

    assert_int_equal(sl_msg_set_key(m, NULL, 0), 0);
    assert_null(m->key);
    assert_int_equal(m->key_len, 0);
    sl_msg_free(c);
    sl_msg_free(m);
}

static void test_record_round_trip(void **state)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, "hello", 5), 0);
    assert_int_equal(sl_msg_set_key(m, "cust-1", 6), 0);
    assert_int_equal(sl_msg_set_header(m, "content-type", "text/plain", 10), 0);
    assert_int_equal(sl_msg_set_header(m, "x-tier", "gold", 4), 0);
    m->timestamp_ms = 1763758246123LL;

    sl_header small[2];
    sl_record rec;
    assert_int_equal(sl_msg_to_record(m, &rec, small, 2), -1);

    sl_header hdrs[3];
    assert_int_equal(sl_msg_to_record(m, &rec, hdrs, 3), 0);
    assert_int_equal(rec.n_headers, 3);
    assert_int_equal(rec.headers[0].name_len, strlen(SL_HDR_ID));
    assert_memory_equal(rec.headers[0].name, SL_HDR_ID, strlen(SL_HDR_ID));
    assert_int_equal(rec.headers[0].value_len, SL_ID_LEN);
    assert_memory_equal(rec.headers[0].value, m->id, SL_ID_LEN);
    assert_int_equal(rec.key_len, 6);
    assert_int_equal(rec.value_len, 5);
    assert_int_equal(rec.timestamp_ms, 1763758246123LL);

    rec.offset = 42; /* as if read back from the log */
    sl_error err;
    sl_msg *back = sl_msg_from_record(&rec, 3, &err);
    assert_non_null(back);
    assert_string_equal(back->id, m->id);
    assert_string_equal(back->body, "hello");
    assert_int_equal(back->body_len, 5);
    assert_string_equal(back->key, "cust-1");
    assert_int_equal(back->n_headers, 2); /* the id is not a header */
    assert_string_equal(sl_msg_get_header(back, "content-type", NULL), "text/plain");
    assert_string_equal(sl_msg_get_header(back, "x-tier", NULL), "gold");
    assert_int_equal(back->partition, 3);
    assert_int_equal(back->offset, 42);
    assert_int_equal(back->timestamp_ms, 1763758246123LL);
    sl_msg_free(back);
    sl_msg_free(m);
}

/* A view of a record (the no-steps delivery path) reads as the message
 * sl_msg_from_record builds, pointing into the record instead of copying,
 * and can cache a tree that its release frees. */
static void test_view_of_record_reads_as_the_copy(void **state)
{
    (void)state;
    const char *id = "0190f5e6-0000-7000-8000-000000000042";
    sl_header h[3] = {{"content-type", 12, "application/json", 16},
                      {SL_HDR_ID, sizeof SL_HDR_ID - 1, id, strlen(id)},
                      {"x-tier", 6, "gold", 4}};
    const char *body = "{\"a\":1}";
    sl_record rec = {.offset = 7,
                     .timestamp_ms = 1763758246123LL,
                     .key = "k1",
                     .key_len = 2,
                     .headers = h,
                     .n_headers = 3,
                     .value = body,
                     .value_len = strlen(body)};
    sl_error err;
    sl_msg *copy = sl_msg_from_record(&rec, 2, &err);
    assert_non_null(copy);
    sl_msg view;
    sl_msg_header vh[3];
    sl_msg_view_record(&view, &rec, 2, vh);
    assert_string_equal(view.id, copy->id);
    assert_string_equal(view.id, id);
    assert_ptr_equal(view.body, body); /* not copied */
    assert_int_equal(view.body_len, copy->body_len);
    assert_int_equal(view.key_len, 2);
    assert_memory_equal(view.key, "k1", 2);
    assert_int_equal(view.n_headers, copy->n_headers);
    for (size_t i = 0; i < view.n_headers; i++) {
        assert_string_equal(view.headers[i].name, copy->headers[i].name);
        assert_string_equal(view.headers[i].value, copy->headers[i].value);
        assert_int_equal(view.headers[i].value_len, copy->headers[i].value_len);
    }
    assert_string_equal(sl_msg_get_header(&view, "x-tier", NULL), "gold");
    assert_int_equal(view.partition, 2);
    assert_int_equal(view.offset, 7);
    assert_int_equal(view.timestamp_ms, copy->timestamp_ms);
    assert_non_null(sl_msg_json(&view, &err)); /* cached in the view, freed by its release */
    sl_msg_view_release(&view);
    assert_null(view.json);
    sl_msg_free(copy);
}

static void test_record_without_id_gets_fresh_id(void **state)
{
    sl_header h = {"x-a", 3, "1", 1};
    sl_record rec = {.offset = 5, .headers = &h, .n_headers = 1, .value = "v", .value_len = 1};
    sl_error err;
    sl_msg *m = sl_msg_from_record(&rec, 0, &err);
    assert_non_null(m);
    assert_uuid7(m->id);
    assert_null(m->key);
    assert_string_equal(sl_msg_get_header(m, "x-a", NULL), "1");
    sl_msg_free(m);
}

/* One row of the key expression table. */
typedef struct {
    const char *body;
    const char *expr;
    int rc;
    const char *want; /* NULL: no key */
} key_case;

static void test_eval_key_table(void **state)
{
    const char *doc = "{\"customer\":{\"id\":\"c-42\",\"n\":7,\"r\":1.5,\"vip\":true,\"off\":false,"
                      "\"none\":null,\"tags\":[\"a\",\"b\"],\"addr\":{\"z\":\"9\"}},"
                      "\"items\":[{\"sku\":\"s1\"},{\"sku\":\"s2\"}],\"a b\":\"sp\","
                      "\"q'\":\"quoted\",\"big\":-9007199254740993,\"f\":0.1,\"w\":2.0}";
    const key_case cases[] = {
        {doc, "header:x-tier", 0, "gold"},
        {doc, "header:X-TIER", 0, "gold"},
        {doc, "header:absent", 0, NULL},
        {doc, "$.customer.id", 0, "c-42"},
        {doc, "$.items[1].sku", 0, "s2"},
        {doc, "$.customer.tags[0]", 0, "a"},
        {doc, "$.customer.n", 0, "7"},
        {doc, "$.big", 0, "-9007199254740993"},
        {doc, "$.customer.r", 0, "1.5"},
        {doc, "$.f", 0, "0.1"},
        {doc, "$.w", 0, "2.0"},
        {doc, "$.customer.vip", 0, "true"},
        {doc, "$.customer.off", 0, "false"},
        {doc, "$.customer.none", 0, NULL},
        {doc, "$.customer.missing", 0, NULL},
        {doc, "$.items[9].sku", 0, NULL},
        {doc, "$.items[99999999999999999999999]", 0, NULL},
        {doc, "$.customer.id.deeper", 0, NULL},
        {doc, "$.items.sku", 0, NULL},
        {doc, "$.customer[0]", 0, NULL},
        /* an object or an array is no key (400 at ingest) */
        {doc, "$.customer.addr", -1, NULL},
        {doc, "$.customer.tags", -1, NULL},
        {doc, "$['a b']", 0, "sp"},
        {doc, "$[\"customer\"]['id']", 0, "c-42"},
        {doc, "$['q\\'']", 0, "quoted"},
        {"\"just a string\"", "$", 0, "just a string"},
        {"12", "$", 0, "12"},
        {"[1, {\"a\": 2}]", "$", -1, NULL},
        {"null", "$", 0, NULL},
        {"{\"s\":\"a\\u0000b\"}", "$.s", 0, "a"}, /* length checked below */
        /* malformed expressions */
        {doc, "customer.id", -1, NULL},
        {doc, "", -1, NULL},
        {doc, "header:", -1, NULL},
        {doc, "$.", -1, NULL},
        {doc, "$..id", -1, NULL},
        {doc, "$customer", -1, NULL},
        {doc, "$.items[", -1, NULL},
        {doc, "$.items[x]", -1, NULL},
        {doc, "$.items[-1]", -1, NULL},
        {doc, "$.items[1", -1, NULL},
        {doc, "$['open", -1, NULL},
        {doc, "$['a b'", -1, NULL},
        {doc, "$.a]", -1, NULL},
        /* a malformed expression is reported even when the body is not JSON */
        {"not json", "$..x", -1, NULL},
        /* bodies that are not JSON */
        {"not json", "$.a", -1, NULL},
        {"", "$", -1, NULL},
        {"{\"a\":", "$.a", -1, NULL},
        /* a header key does not need a JSON body */
        {"not json", "header:x-tier", 0, "gold"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const key_case *c = &cases[i];
        sl_msg *m = sl_msg_new();
        assert_non_null(m);
        assert_int_equal(sl_msg_set_body(m, c->body, strlen(c->body)), 0);
        assert_int_equal(sl_msg_set_header(m, "x-tier", "gold", 4), 0);
        char *out = (char *)"sentinel";
        size_t len = 12345;
        sl_error err;
        sl_error_clear(&err);
        int rc = sl_msg_eval_key(m, c->expr, &out, &len, &err);
        if (rc != c->rc || (c->want == NULL) != (out == NULL) ||
            (c->want && strcmp(out, c->want) != 0))
            fail_msg("case %zu: %s on %s: rc %d out %s (%s)", i, c->expr, c->body, rc,
                     out ? out : "(null)", err.msg);
        if (rc < 0) {
            assert_int_equal(err.code, SL_EINVAL);
            assert_true(err.msg[0] != '\0');
        }
        if (c->want && strcmp(c->expr, "$.s") != 0)
            assert_int_equal(len, strlen(c->want));
        if (c->want && strcmp(c->expr, "$.s") == 0) {
            assert_int_equal(len, 3);
            assert_memory_equal(out, "a\0b", 4);
        }
        if (!c->want)
            assert_int_equal(len, 0);
        free(out);
        sl_msg_free(m);
    }
}

static void test_eval_key_error_text_and_cache(void **state)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, "{\n  \"a\": tru\n}", 14), 0);
    char *out;
    sl_error err;
    assert_int_equal(sl_msg_eval_key(m, "$.a", &out, NULL, &err), -1);
    assert_null(out);
    assert_int_equal(err.code, SL_EINVAL);
    assert_non_null(strstr(err.msg, "not JSON"));
    assert_non_null(strstr(err.msg, "line 2"));

    assert_int_equal(sl_msg_eval_key(m, "$.items[x]", &out, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "$.items[x]"));
    assert_non_null(strstr(err.msg, "column"));

    /* The parsed tree is cached on the message and reused. */
    assert_int_equal(sl_msg_set_body(m, "{\"a\":{\"b\":1}}", 13), 0);
    assert_int_equal(sl_msg_eval_key(m, "$.a.b", &out, NULL, &err), 0);
    assert_string_equal(out, "1");
    free(out);
    void *tree = m->json;
    assert_non_null(tree);
    assert_ptr_equal(sl_msg_json(m, &err), tree);
    assert_int_equal(sl_msg_eval_key(m, "$.a", &out, NULL, &err), -1);
    assert_null(out);
    assert_string_equal(err.msg, "the key \"$.a\" is an object, not a string, number or boolean");
    assert_ptr_equal(m->json, tree);
    sl_msg_free(m);
}

static void test_key_check(void **state)
{
    sl_error err;
    assert_int_equal(sl_msg_key_check("$.customer.id", &err), 0);
    assert_int_equal(sl_msg_key_check("header:x", &err), 0);
    assert_int_equal(sl_msg_key_check("$", &err), 0);
    assert_int_equal(sl_msg_key_check("/a/b", &err), 0); /* XPath, for XML bodies */
    assert_int_equal(sl_msg_key_check("/a[", &err), -1);
    assert_int_equal(sl_msg_key_check("a.b", &err), -1);
    assert_int_equal(err.code, SL_EINVAL);
    assert_int_equal(sl_msg_key_check("$.a[", &err), -1);
}

static void test_eval_key_xpath_on_xml_body(void **state)
{
    sl_error err;
    sl_msg *m = sl_msg_new();
    const char *xml = "<order><customer id=\"c9\"><name>Ada</name></customer></order>";
    assert_int_equal(sl_msg_set_body(m, xml, strlen(xml)), 0);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(sl_msg_eval_key(m, "/order/customer/@id", &out, &len, &err), 0);
    assert_string_equal(out, "c9");
    assert_int_equal(len, 2);
    free(out);
    assert_int_equal(sl_msg_eval_key(m, "/order/customer/name", &out, &len, &err), 0);
    assert_string_equal(out, "Ada");
    free(out);
    assert_int_equal(sl_msg_eval_key(m, "/order/nothing", &out, &len, &err), 0);
    assert_null(out);
    assert_int_equal(sl_msg_set_body(m, "{\"a\":1}", 7), 0);
    assert_int_equal(sl_msg_eval_key(m, "/order", &out, &len, &err), -1); /* not XML */
    sl_msg_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid7_format),
        cmocka_unit_test(test_uuid7_monotonic_unique_two_threads),
        cmocka_unit_test(test_new_message_defaults),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_body_key_clone),
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_record_without_id_gets_fresh_id),
        cmocka_unit_test(test_eval_key_table),
        cmocka_unit_test(test_eval_key_error_text_and_cache),
        cmocka_unit_test(test_key_check),
        cmocka_unit_test(test_view_of_record_reads_as_the_copy),
        cmocka_unit_test(test_eval_key_xpath_on_xml_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
