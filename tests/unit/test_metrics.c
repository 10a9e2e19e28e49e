/* Unit tests for core/metrics.c: counter, gauge and histogram values, the
 * exact Prometheus text, concurrent updates and label escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static double fixed_lag(void *arg)
{
    return *(const double *)arg;
}

static void test_render_small_registry(void **state)
{
    sl_metrics *m = sl_metrics_new();
    assert_non_null(m);
    sl_counter *in_a =
        sl_metrics_counter(m, "sluice_messages_in_total", "Messages accepted.", "route=\"a\"");
    sl_counter *in_b =
        sl_metrics_counter(m, "sluice_messages_in_total", "ignored help", "route=\"b\"");
    assert_non_null(in_a);
    assert_non_null(in_b);
    /* The same name and labels give the same counter. */
    assert_ptr_equal(sl_metrics_counter(m, "sluice_messages_in_total", NULL, "route=\"a\""), in_a);
    sl_counter_add(in_a, 3);
    sl_counter_add(in_a, 2);
    sl_counter_add(in_b, 1);
    assert_int_equal(sl_counter_get(in_a), 5);

    sl_gauge *bytes = sl_metrics_gauge(m, "sluice_log_bytes", "Bytes in the log.", "", NULL, NULL);
    assert_non_null(bytes);
    sl_gauge_set(bytes, 1048576);
    double lag = 2.5;
    sl_gauge *lag_g = sl_metrics_gauge(m, "sluice_route_lag", "Lag.\nIn records \\ offsets.",
                                       "route=\"a\",partition=\"0\"", fixed_lag, &lag);
    assert_non_null(lag_g);

    const double bounds[] = {0.1, 1};
    sl_histogram *h = sl_metrics_histogram(m, "sluice_step_seconds", "Step time.",
                                           "route=\"a\",step=\"s\"", bounds, 2);
    assert_non_null(h);
    sl_histogram_observe(h, 0.05);
    sl_histogram_observe(h, 0.1); /* le is inclusive */
    sl_histogram_observe(h, 0.5);
    sl_histogram_observe(h, 7);
    sl_histogram_observe(h, NAN); /* ignored */

    size_t len;
    char *text = sl_metrics_render(m, &len);
    assert_non_null(text);
    const char *want = "# HELP sluice_messages_in_total Messages accepted.\n"
                       "# TYPE sluice_messages_in_total counter\n"
                       "sluice_messages_in_total{route=\"a\"} 5\n"
                       "sluice_messages_in_total{route=\"b\"} 1\n"
                       "# HELP sluice_log_bytes Bytes in the log.\n"
                       "# TYPE sluice_log_bytes gauge\n"
                       "sluice_log_bytes 1048576\n"
                       "# HELP sluice_route_lag Lag.\\nIn records \\\\ offsets.\n"
                       "# TYPE sluice_route_lag gauge\n"
                       "sluice_route_lag{route=\"a\",partition=\"0\"} 2.5\n"
                       "# HELP sluice_step_seconds Step time.\n"
                       "# TYPE sluice_step_seconds histogram\n"
                       "sluice_step_seconds_bucket{route=\"a\",step=\"s\",le=\"0.1\"} 2\n"
                       "sluice_step_seconds_bucket{route=\"a\",step=\"s\",le=\"1\"} 3\n"
                       "sluice_step_seconds_bucket{route=\"a\",step=\"s\",le=\"+Inf\"} 4\n"
                       "sluice_step_seconds_sum{route=\"a\",step=\"s\"} 7.65\n"
                       "sluice_step_seconds_count{route=\"a\",step=\"s\"} 4\n";
    assert_string_equal(text, want);
    assert_int_equal(len, strlen(want));
    free(text);

    /* A removed gauge disappears, with its HELP and TYPE when it was the last. */
    sl_metrics_remove_gauge(m, lag_g);
    sl_metrics_remove_gauge(m, NULL);
    lag = 99;
    text = sl_metrics_render(m, NULL);
    assert_non_null(text);
    assert_null(strstr(text, "sluice_route_lag"));
    free(text);
    sl_metrics_free(m);
}

static void test_default_buckets_and_special_values(void **state)
{
    sl_metrics *m = sl_metrics_new();
    assert_non_null(m);
    sl_histogram *h =
        sl_metrics_histogram(m, "sluice_log_fsync_seconds", "Fsync time.", "", NULL, 0);
    assert_non_null(h);
    sl_histogram_observe(h, 0.0003);
    sl_gauge *g = sl_metrics_gauge(m, "g", "", "", NULL, NULL);
    sl_gauge_set(g, -INFINITY);
    char *text = sl_metrics_render(m, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "sluice_log_fsync_seconds_bucket{le=\"0.0001\"} 0\n"
                                 "sluice_log_fsync_seconds_bucket{le=\"0.00025\"} 0\n"
                                 "sluice_log_fsync_seconds_bucket{le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(text, "sluice_log_fsync_seconds_bucket{le=\"10\"} 1\n"
                                 "sluice_log_fsync_seconds_bucket{le=\"+Inf\"} 1\n"
                                 "sluice_log_fsync_seconds_sum 0.0003\n"
                                 "sluice_log_fsync_seconds_count 1\n"));
    assert_non_null(strstr(text, "# HELP g \n# TYPE g gauge\ng -Inf\n"));
    free(text);

    /* A name registered with another type is refused; NULL is harmless. */
    sl_counter *bad = sl_metrics_counter(m, "g", "", "x=\"1\"");
    assert_null(bad);
    sl_counter_add(bad, 1);
    assert_int_equal(sl_counter_get(bad), 0);
    sl_histogram_observe(NULL, 1);
    sl_gauge_set(NULL, 1);
    sl_metrics_free(m);
    sl_metrics_free(NULL);
}

static void test_empty_registry(void **state)
{
    sl_metrics *m = sl_metrics_new();
    assert_non_null(m);
    size_t len = 7;
    char *text = sl_metrics_render(m, &len);
    assert_non_null(text);
    assert_string_equal(text, "");
    assert_int_equal(len, 0);
    free(text);
    sl_metrics_free(m);
}

#define THREADS 4
#define ADDS 100000

typedef struct {
    sl_metrics *m;
    sl_counter *c;
    sl_histogram *h;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < ADDS; i++) {
        sl_counter_add(a->c, 1);
        sl_histogram_observe(a->h, 0.5);
        if (i % 10000 == 0) {
            /* Registration and scrapes race with updates. */
            sl_counter_add(sl_metrics_counter(a->m, "c_total", "", "k=\"v\""), 1);
            free(sl_metrics_render(a->m, NULL));
        }
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    sl_metrics *m = sl_metrics_new();
    assert_non_null(m);
    const double bounds[] = {1};
    worker_arg a = {m, sl_metrics_counter(m, "c_total", "", "k=\"v\""),
                    sl_metrics_histogram(m, "h_seconds", "", "", bounds, 1)};
    assert_non_null(a.c);
    assert_non_null(a.h);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, &a), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(sl_counter_get(a.c), THREADS * ADDS + THREADS * (ADDS / 10000));

    char *text = sl_metrics_render(m, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "h_seconds_bucket{le=\"1\"} 400000\n"));
    assert_non_null(strstr(text, "h_seconds_sum 200000\n")); /* 0.5 sums exactly */
    assert_non_null(strstr(text, "h_seconds_count 400000\n"));
    free(text);
    sl_metrics_free(m);
}

static void test_label_escaping(void **state)
{
    char out[64];
    assert_string_equal(sl_metrics_escape("a\"b\\c\nd", out, sizeof out), "a\\\"b\\\\c\\nd");
    assert_ptr_equal(sl_metrics_escape("plain", out, sizeof out), out);
    assert_string_equal(out, "plain");
    /* Truncation never splits an escape sequence and always terminates. */
    assert_string_equal(sl_metrics_escape("ab\"c", out, 4), "ab");
    assert_string_equal(sl_metrics_escape("abcdef", out, 4), "abc");
    assert_string_equal(sl_metrics_escape("x", out, 1), "");

    /* An escaped value renders as given. */
    sl_metrics *m = sl_metrics_new();
    assert_non_null(m);
    char esc[64], labels[96];
    snprintf(labels, sizeof labels, "route=\"%s\"", sl_metrics_escape("we\"ird", esc, sizeof esc));
    sl_counter_add(sl_metrics_counter(m, "x_total", "X.", labels), 1);
    char *text = sl_metrics_render(m, NULL);
    assert_non_null(text);
    assert_string_equal(text, "# HELP x_total X.\n# TYPE x_total counter\n"
                              "x_total{route=\"we\\\"ird\"} 1\n");
    free(text);
    sl_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_small_registry),
        cmocka_unit_test(test_default_buckets_and_special_values),
        cmocka_unit_test(test_empty_registry),
        cmocka_unit_test(test_concurrent_updates),
        cmocka_unit_test(test_label_escaping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
