/* Unit tests for core/log_backend.c: sl_batch_fill copies records that a
 * log backend hands to the route's workers into a batch laid out as
 * sl_partition_read leaves them (every string NUL-terminated, the batch
 * owning its bytes), reuses the batch across fills, and empties it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log_backend.h"

static void test_fill_copies_records_with_nuls_and_owns_them(void **state)
{
    (void)state;
    char key[] = "k1", value[] = "{\"a\":1}", name[] = "message-id", hval[] = "01abc";
    sl_header h[] = {{name, 10, hval, 5}, {"empty", 5, NULL, 0}};
    sl_record recs[] = {
        {.offset = 7,
         .timestamp_ms = 1000,
         .key = key,
         .key_len = 2,
         .headers = h,
         .n_headers = 2,
         .value = value,
         .value_len = 7},
        {.offset = 9,
         .timestamp_ms = 1001,
         .key = NULL,
         .key_len = 0,
         .value = "x",
         .value_len = 1},
    };
    sl_batch b;
    sl_batch_init(&b);
    sl_error err;
    assert_int_equal(sl_batch_fill(&b, recs, 2, &err), 0);
    memset(key, 'z', 2); /* the batch holds copies, not the caller's bytes */
    memset(hval, 'z', 5);
    assert_int_equal(b.count, 2);
    assert_int_equal(b.next_offset, 10);
    const sl_record *r = &b.records[0];
    assert_int_equal(r->offset, 7);
    assert_int_equal(r->timestamp_ms, 1000);
    assert_string_equal(r->key, "k1");
    assert_string_equal(r->value, "{\"a\":1}");
    assert_int_equal(r->n_headers, 2);
    assert_string_equal(r->headers[0].name, "message-id");
    assert_string_equal(r->headers[0].value, "01abc");
    assert_int_equal(r->headers[1].value_len, 0);
    assert_string_equal(r->headers[1].value, "");
    r = &b.records[1];
    assert_int_equal(r->key_len, 0);
    assert_string_equal(r->key, "");
    assert_null(r->headers);
    assert_string_equal(r->value, "x");
    sl_batch_free(&b);
}

static void test_fill_reuses_the_batch_and_empties_it(void **state)
{
    (void)state;
    char big[5000];
    memset(big, 'b', sizeof big);
    sl_record one = {.offset = 1, .value = "small", .value_len = 5};
    sl_record large = {.offset = 2, .value = big, .value_len = sizeof big};
    sl_batch b;
    sl_batch_init(&b);
    sl_error err;
    assert_int_equal(sl_batch_fill(&b, &one, 1, &err), 0);
    assert_int_equal(sl_batch_fill(&b, &large, 1, &err), 0);
    assert_int_equal(b.count, 1);
    assert_int_equal(b.records[0].value_len, sizeof big);
    assert_memory_equal(b.records[0].value, big, sizeof big);
    assert_int_equal(b.records[0].value[sizeof big], '\0');
    assert_int_equal(sl_batch_fill(&b, NULL, 0, &err), 0);
    assert_int_equal(b.count, 0);
    assert_int_equal(b.next_offset, 3); /* an empty fill leaves where reading goes on */
    sl_batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fill_copies_records_with_nuls_and_owns_them),
        cmocka_unit_test(test_fill_reuses_the_batch_and_empties_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
