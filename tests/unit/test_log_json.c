/* Unit tests for core/log_json.c: the JSON object of one record, as `sluice
 * log dump` prints it and the admin API answers it (key null or a string,
 * headers in order, bytes outside UTF-8 as \u00XX). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "log_json.h"

static void test_record_with_key_headers_and_binary_value(void **state)
{
    sl_header h[2] = {{.name = "message-id", .name_len = 10, .value = "m1", .value_len = 2},
                      {.name = "x\"q", .name_len = 3, .value = "v\n", .value_len = 2}};
    sl_record r = {.offset = 7,
                   .timestamp_ms = 1700000000123,
                   .key = "k",
                   .key_len = 1,
                   .headers = h,
                   .n_headers = 2,
                   .value = "a\xff\xc3\xa9",
                   .value_len = 4};
    sl_buf b = {0};
    sl_log_record_json(&b, "orders", 3, &r);
    assert_false(b.oom);
    assert_string_equal(sl_buf_cstr(&b),
                        "{\"topic\":\"orders\",\"partition\":3,\"offset\":7,\"timestamp\":"
                        "1700000000123,\"key\":\"k\",\"headers\":{\"message-id\":\"m1\","
                        "\"x\\\"q\":\"v\\n\"},\"value\":\"a\\u00ff\xc3\xa9\"}");
    free(b.p);
}

static void test_record_without_key_or_headers(void **state)
{
    sl_record r = {.offset = 0, .timestamp_ms = 1, .value = "", .value_len = 0};
    sl_buf b = {0};
    sl_log_record_json(&b, "t", 0, &r);
    assert_string_equal(sl_buf_cstr(&b), "{\"topic\":\"t\",\"partition\":0,\"offset\":0,"
                                         "\"timestamp\":1,\"key\":null,\"headers\":{},"
                                         "\"value\":\"\"}");
    free(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_with_key_headers_and_binary_value),
        cmocka_unit_test(test_record_without_key_or_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
