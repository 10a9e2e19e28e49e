/* Unit tests for core/http_util.c, the listener helpers shared by the admin
 * API and the http_server connector: RFC 3339 timestamps, listen addresses
 * and sockets, and the constant-time secret comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "http_util.h"

/* ---- RFC 3339 --------------------------------------------------------------- */

static void test_rfc3339(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(sl_httpd_parse_rfc3339("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(sl_httpd_parse_rfc3339("2024-05-01T12:00:00Z", &ms), 0);
    assert_int_equal(ms, 1714564800000LL);
    assert_int_equal(sl_httpd_parse_rfc3339("2024-05-01T14:00:00.250+02:00", &ms), 0);
    assert_int_equal(ms, 1714564800250LL);
    assert_int_equal(sl_httpd_parse_rfc3339("2024-05-01t07:30:00.1234567-04:30", &ms), 0);
    assert_int_equal(ms, 1714564800123LL);
    assert_int_equal(sl_httpd_parse_rfc3339("2024-02-29 00:00:00z", &ms), 0);
    assert_int_equal(ms, 1709164800000LL);
    assert_int_equal(sl_httpd_parse_rfc3339("1969-12-31T23:59:59.5Z", &ms), 0);
    assert_int_equal(ms, -500);
    assert_int_equal(sl_httpd_parse_rfc3339("2000-03-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 951868800000LL);
    const char *bad[] = {NULL,
                         "",
                         "2024-05-01",
                         "2024-05-01T12:00:00",
                         "2024-05-01T12:00Z",
                         "2024-13-01T00:00:00Z",
                         "2023-02-29T00:00:00Z",
                         "1900-02-29T00:00:00Z",
                         "2024-04-31T00:00:00Z",
                         "2024-05-01T24:00:00Z",
                         "2024-05-01T12:60:00Z",
                         "2024-05-01T12:00:61Z",
                         "2024-05-01T12:00:00.Z",
                         "2024-05-01T12:00:00+0200",
                         "2024-05-01T12:00:00+24:00",
                         "2024-05-01T12:00:00Zjunk",
                         "2024/05/01T12:00:00Z",
                         "yesterday"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sl_httpd_parse_rfc3339(bad[i], &ms) == 0)
            fail_msg("accepted [%s]", bad[i] ? bad[i] : "(null)");
}

/* ---- listen addresses ------------------------------------------------------- */

static void test_listen_parse(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    sl_error err;
    assert_int_equal(sl_httpd_parse_listen("127.0.0.1:8080", &ss, &len, &err), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
    assert_int_equal(sl_httpd_parse_listen("0.0.0.0:80", &ss, &len, &err), 0);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_ANY));
    assert_int_equal(sl_httpd_parse_listen(":9000", &ss, &len, &err), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(sl_httpd_parse_listen("[::1]:8443", &ss, &len, &err), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 8443);
    const char *bad[] = {
        "",         "8080",      "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000",
        "::1:8080", "[::1]8080", "[]:80",     "1.2.3.4:-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (sl_httpd_parse_listen(bad[i], &ss, &len, &err) == 0)
            fail_msg("accepted [%s]", bad[i]);
        assert_int_equal(err.code, SL_EINVAL);
    }
}

static void test_listen_socket_bind_error(void **state)
{
    (void)state;
    sl_error err;
    char where[96], again[120];
    int fd = sl_httpd_listen_socket("127.0.0.1:0", 16, &err);
    assert_true(fd >= 0);
    sl_httpd_sockname(fd, where, sizeof where);
    assert_non_null(strstr(where, "127.0.0.1:"));
    snprintf(again, sizeof again, "%s", where);
    assert_int_equal(sl_httpd_listen_socket(again, 16, &err), -1);
    assert_non_null(strstr(err.msg, "cannot bind"));
    assert_non_null(strstr(err.msg, again));
    assert_non_null(strstr(err.msg, "Address already in use"));
    close(fd);
}

/* ---- comparison ------------------------------------------------------------- */

static void test_secret_equal(void **state)
{
    (void)state;
    assert_true(sl_httpd_secret_equal("s3cret", 6, "s3cret", 6));
    assert_false(sl_httpd_secret_equal("s3cre", 5, "s3cret", 6));
    assert_false(sl_httpd_secret_equal("s3crett", 7, "s3cret", 6));
    assert_false(sl_httpd_secret_equal("s3creT", 6, "s3cret", 6));
    assert_false(sl_httpd_secret_equal("", 0, "s3cret", 6));
    assert_true(sl_httpd_secret_equal("", 0, "", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_listen_parse),
        cmocka_unit_test(test_listen_socket_bind_error),
        cmocka_unit_test(test_secret_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
