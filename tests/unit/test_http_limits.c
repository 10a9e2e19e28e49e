/* Unit tests for the http_server's rate buckets (connectors/http_limits.c)
 * and the basic-auth password hashes (core/password.c): a burst is served
 * and the next request waits (Retry-After at least 1 s), one client's
 * bucket does not drain another's, a per-route bucket is shared, and a
 * hash made by sl_password_hash checks its password and no other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "http_limits.h"
#include "password.h"

static void test_burst_then_wait_per_client(void **state)
{
    (void)state;
    hl_rate_conf rc = {.on = true, .per_s = 1.0 / 60, .burst = 3, .per_client = true};
    hl_bucket *b = hl_bucket_new(&rc);
    assert_non_null(b);
    for (int i = 0; i < 3; i++)
        assert_int_equal(hl_bucket_take(b, "10.0.0.1"), 0);
    int wait = hl_bucket_take(b, "10.0.0.1");
    assert_true(wait >= 1 && wait <= 60);
    /* another client has its own bucket */
    assert_int_equal(hl_bucket_take(b, "10.0.0.2"), 0);
    hl_bucket_free(b);
}

static void test_per_route_bucket_is_shared(void **state)
{
    (void)state;
    hl_rate_conf rc = {.on = true, .per_s = 0.5, .burst = 2, .per_client = false};
    hl_bucket *b = hl_bucket_new(&rc);
    assert_int_equal(hl_bucket_take(b, "10.0.0.1"), 0);
    assert_int_equal(hl_bucket_take(b, "10.0.0.2"), 0);
    assert_int_equal(hl_bucket_take(b, "10.0.0.3"), 2); /* 1 token at 0.5/s */
    hl_bucket_free(b);
}

static void test_many_clients_do_not_break_the_table(void **state)
{
    (void)state;
    hl_rate_conf rc = {.on = true, .per_s = 1, .burst = 1, .per_client = true};
    hl_bucket *b = hl_bucket_new(&rc);
    char ip[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(ip, sizeof ip, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        assert_int_equal(hl_bucket_take(b, ip), 0); /* new (or evicted) clients start full */
    }
    hl_bucket_free(b);
}

static void test_password_hash_checks_only_its_password(void **state)
{
    (void)state;
    char hash[256];
    assert_int_equal(sl_password_hash("correct horse", hash, sizeof hash), 0);
    assert_true(strncmp(hash, "$y$", 3) == 0);
    assert_true(sl_password_hash_valid(hash));
    assert_true(sl_password_check("correct horse", hash));
    assert_false(sl_password_check("correct horsE", hash));
    assert_false(sl_password_check("", hash));
    char again[256];
    assert_int_equal(sl_password_hash("correct horse", again, sizeof again), 0);
    assert_string_not_equal(hash, again); /* salted */
    assert_false(sl_password_hash_valid("plaintext"));
    assert_false(sl_password_hash_valid("abJnggxhB/yWI")); /* DES */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_wait_per_client),
        cmocka_unit_test(test_per_route_bucket_is_shared),
        cmocka_unit_test(test_many_clients_do_not_break_the_table),
        cmocka_unit_test(test_password_hash_checks_only_its_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
