/* Unit tests for core/breaker.c: the closed / open / half-open state machine
 * of SPEC.md section 8, its window, doubling, reset, metrics and thread
 * safety. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "breaker.h"
#include "metrics.h"

static sl_breaker_conf conf_of(int window, int min_calls, double rate, int consecutive,
                               uint64_t open_for, uint64_t max_open_for, int half_open)
{
    sl_breaker_conf c = {.window = window,
                         .min_calls = min_calls,
                         .failure_rate = rate,
                         .consecutive_failures = consecutive,
                         .open_for_ms = open_for,
                         .max_open_for_ms = max_open_for,
                         .half_open_calls = half_open};
    return c;
}

static void call(sl_breaker *b, bool ok)
{
    assert_int_equal(sl_breaker_acquire(b, 1), 1);
    sl_breaker_record(b, ok);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_opens_on_failure_rate_after_min_calls(void **st)
{
    (void)st;
    sl_breaker_conf c = conf_of(20, 10, 0.5, 0, 10000, 60000, 3);
    sl_breaker *b = sl_breaker_new("crm", &c, NULL);
    /* 9 failures: below min_calls, stays closed */
    for (int i = 0; i < 9; i++)
        call(b, false);
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_CLOSED);
    /* the 10th call fails: 10 of 10 */
    call(b, false);
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_OPEN);
    assert_int_equal(sl_breaker_acquire(b, 5), 0);
    sl_breaker_info info;
    sl_breaker_get_info(b, &info);
    assert_int_equal(info.rejected, 5);
    assert_true(info.retry_in_ms > 9000 && info.retry_in_ms <= 10000);
    sl_breaker_free(b);
}

static void test_rate_below_threshold_stays_closed(void **st)
{
    (void)st;
    sl_breaker_conf c = conf_of(20, 10, 0.5, 0, 10000, 60000, 3);
    sl_breaker *b = sl_breaker_new("crm", &c, NULL);
    /* 30% failures, at most 6 of any 13 in a row: never reaches 50% */
    for (int i = 0; i < 200; i++)
        call(b, i % 10 >= 3);
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_CLOSED);
    sl_breaker_free(b);
}

static void test_window_forgets_old_calls(void **st)
{
    (void)st;
    sl_breaker_conf c = conf_of(10, 10, 0.5, 0, 10000, 60000, 3);
    sl_breaker *b = sl_breaker_new("crm", &c, NULL);
    for (int i = 0; i < 4; i++)
        call(b, false);
    for (int i = 0; i < 10; i++)
        call(b, true); /* pushes the 4 failures out of the window */
    for (int i = 0; i < 4; i++)
        call(b, false); /* 4 of the last 10 */
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_CLOSED);
    call(b, false); /* 5 of the last 10 */
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_OPEN);
    sl_breaker_free(b);
}

static void test_consecutive_failures_open_early(void **st)
{
    (void)st;
    sl_breaker_conf c = conf_of(20, 10, 0.5, 3, 10000, 60000, 3);
    sl_breaker *b = sl_breaker_new("crm", &c, NULL);
    call(b, false);
    call(b, false);
    call(b, true);
    call(b, false);
    call(b, false);
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_CLOSED);
    call(b, false);
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_OPEN);
    sl_breaker_free(b);
}

static void test_half_open_probes_close_it(void **st)
{
    (void)st;
    sl_breaker_conf c = conf_of(20, 1, 0.5, 0, 50, 1000, 3);
    sl_breaker *b = sl_breaker_new("crm", &c, NULL);
    call(b, false);
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_OPEN);
    sleep_ms(70);
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_HALF_OPEN);
    /* only 3 probes at once */
    assert_int_equal(sl_breaker_acquire(b, 10), 3);
    assert_int_equal(sl_breaker_acquire(b, 1), 0);
    sl_breaker_record(b, true);
    sl_breaker_record(b, true);
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_HALF_OPEN);
    sl_breaker_record(b, true);
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_CLOSED);
    assert_int_equal(sl_breaker_acquire(b, 10), 10);
    for (int i = 0; i < 10; i++)
        sl_breaker_record(b, true);
    sl_breaker_free(b);
}

static void test_failed_probe_reopens_with_doubled_period_capped(void **st)
{
    (void)st;
    sl_breaker_conf c = conf_of(20, 1, 0.5, 0, 40, 100, 2);
    sl_breaker *b = sl_breaker_new("crm", &c, NULL);
    call(b, false);
    sl_breaker_info info;
    sl_breaker_get_info(b, &info);
    assert_int_equal(info.open_for_ms, 40);
    sleep_ms(60);
    call(b, false); /* the probe fails */
    sl_breaker_get_info(b, &info);
    assert_int_equal(info.state, SL_BREAKER_OPEN);
    assert_int_equal(info.open_for_ms, 80);
    sleep_ms(100);
    call(b, false);
    sl_breaker_get_info(b, &info);
    assert_int_equal(info.open_for_ms, 100); /* capped by max_open_for */
    /* a released permit is given back */
    sleep_ms(120);
    assert_int_equal(sl_breaker_acquire(b, 2), 2);
    assert_int_equal(sl_breaker_acquire(b, 1), 0);
    sl_breaker_release(b);
    assert_int_equal(sl_breaker_acquire(b, 1), 1);
    sl_breaker_record(b, true);
    sl_breaker_record(b, true);
    sl_breaker_get_info(b, &info);
    assert_int_equal(info.state, SL_BREAKER_CLOSED);
    assert_int_equal(info.open_for_ms, 40); /* closing forgets the doubling */
    sl_breaker_free(b);
}

static void test_reset_and_metrics(void **st)
{
    (void)st;
    sl_metrics *m = sl_metrics_new();
    sl_breaker_conf c = conf_of(20, 1, 0.5, 0, 10000, 60000, 3);
    sl_breaker *b = sl_breaker_new("partner \"x\"", &c, m);
    call(b, false);
    assert_int_equal(sl_breaker_acquire(b, 2), 0);
    size_t len;
    char *text = sl_metrics_render(m, &len);
    assert_non_null(strstr(text, "sluice_breaker_state{connector=\"partner \\\"x\\\"\"} 2"));
    assert_non_null(
        strstr(text, "sluice_breaker_rejected_total{connector=\"partner \\\"x\\\"\"} 2"));
    assert_non_null(strstr(
        text, "sluice_breaker_transitions_total{connector=\"partner \\\"x\\\"\",to=\"open\"} 1"));
    free(text);
    sl_breaker_reset(b);
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_CLOSED);
    text = sl_metrics_render(m, &len);
    assert_non_null(strstr(text, "sluice_breaker_state{connector=\"partner \\\"x\\\"\"} 0"));
    free(text);
    sl_breaker_free(b);
    sl_metrics_free(m);
}

static void *hammer(void *arg)
{
    sl_breaker *b = arg;
    for (int i = 0; i < 20000; i++) {
        size_t g = sl_breaker_acquire(b, 2);
        for (size_t k = 0; k < g; k++)
            sl_breaker_record(b, (i + (int)k) % 3 != 0);
    }
    return NULL;
}

static void count_close(void *arg)
{
    (*(int *)arg)++;
}

/* Watchers hear every close: probes that succeed, and a reset; not an
 * opening; and nothing once they unwatch. */
static void test_watchers_told_when_it_closes(void **st)
{
    (void)st;
    sl_breaker_conf c = conf_of(20, 1, 0.5, 0, 30, 1000, 1);
    sl_breaker *b = sl_breaker_new("crm", &c, NULL);
    int closes = 0, other = 0;
    assert_int_equal(sl_breaker_watch(b, count_close, &closes), 0);
    assert_int_equal(sl_breaker_watch(b, count_close, &other), 0);
    call(b, false);
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_OPEN);
    assert_int_equal(closes, 0);
    sl_breaker_reset(b);
    assert_int_equal(closes, 1);
    call(b, false);
    sleep_ms(50);
    call(b, true); /* the half-open probe succeeds: closed */
    assert_int_equal(sl_breaker_get_state(b), SL_BREAKER_CLOSED);
    assert_int_equal(closes, 2);
    sl_breaker_unwatch(b, count_close, &closes);
    sl_breaker_reset(b);
    assert_int_equal(closes, 2);
    assert_int_equal(other, 3);
    sl_breaker_free(b);
}

static void test_concurrent_use(void **st)
{
    (void)st;
    sl_breaker_conf c = conf_of(20, 10, 0.3, 0, 1, 2, 3);
    sl_breaker *b = sl_breaker_new("crm", &c, NULL);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, b);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    sl_breaker_info info;
    sl_breaker_get_info(b, &info);
    assert_true(info.calls <= 20);
    assert_true(info.failures <= info.calls);
    sl_breaker_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_on_failure_rate_after_min_calls),
        cmocka_unit_test(test_rate_below_threshold_stays_closed),
        cmocka_unit_test(test_window_forgets_old_calls),
        cmocka_unit_test(test_consecutive_failures_open_early),
        cmocka_unit_test(test_half_open_probes_close_it),
        cmocka_unit_test(test_failed_probe_reopens_with_doubled_period_capped),
        cmocka_unit_test(test_reset_and_metrics),
        cmocka_unit_test(test_watchers_told_when_it_closes),
        cmocka_unit_test(test_concurrent_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
