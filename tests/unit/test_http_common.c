/* Unit tests for the header policy of connectors/http_common.c: which
 * message headers go to a partner (forward_headers) and which never do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http_common.h"

static const char *const ALLOW[] = {"x-tier", "X-Partner-*", "traceparent"};

static void test_default_forwards_trace_headers_only(void **state)
{
    (void)state;
    assert_true(sl_http_forwarded("traceparent", NULL, 0, false));
    assert_true(sl_http_forwarded("TraceState", NULL, 0, false));
    assert_false(sl_http_forwarded("x-tier", NULL, 0, false));
    assert_false(sl_http_forwarded("x-anything", NULL, 0, false));
    assert_false(sl_http_forwarded("idempotency-key", NULL, 0, false));
}

static void test_configured_names_and_prefixes(void **state)
{
    (void)state;
    assert_true(sl_http_forwarded("X-Tier", ALLOW, 3, true));
    assert_true(sl_http_forwarded("x-partner-ref", ALLOW, 3, true));
    assert_true(sl_http_forwarded("x-partner-", ALLOW, 3, true));
    assert_false(sl_http_forwarded("x-partne", ALLOW, 3, true));
    assert_false(sl_http_forwarded("x-tiers", ALLOW, 3, true));
    assert_false(sl_http_forwarded("tracestate", ALLOW, 3, true)); /* configured: only those */
    assert_false(sl_http_forwarded("x-tier", ALLOW, 0, true));     /* forward_headers: [] */
}

/* Even "x-*" or a list naming them never lets these through. */
static void test_never_forwarded_whatever_the_config(void **state)
{
    (void)state;
    static const char *const all[] = {
        "x-*",     "authorization", "host",           "cookie",
        "proxy-*", "forwarded",     "content-length", "transfer-encoding"};
    static const char *const never[] = {"Authorization",       "Host",         "Cookie",
                                        "Proxy-Authorization", "Forwarded",    "X-Forwarded-For",
                                        "x-forwarded-host",    "X-Real-IP",    "Content-Length",
                                        "Transfer-Encoding",   "Connection",   "Upgrade",
                                        "X-Sluice-Attempts",   "X-Message-Id", "Idempotency-Key",
                                        "Content-Type",        "TE",           "Trailer",
                                        "Keep-Alive",          "Expect"};
    for (size_t i = 0; i < sizeof never / sizeof *never; i++) {
        assert_true(sl_http_never_forwarded(never[i]));
        if (sl_http_forwarded(never[i], all, sizeof all / sizeof *all, true))
            fail_msg("%s was forwarded", never[i]);
    }
    assert_true(sl_http_forwarded("x-custom", all, sizeof all / sizeof *all, true));
    assert_false(sl_http_never_forwarded("x-forward")); /* a prefix of a name, not of the rule */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_forwards_trace_headers_only),
        cmocka_unit_test(test_configured_names_and_prefixes),
        cmocka_unit_test(test_never_forwarded_whatever_the_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
